// cli.c: helpers shared by the subcommands (cli.h).
#include "cli.h"

#include <cblas.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/loss.h"
#include "outpath.h"

_Noreturn void cli_fail(const Dist *d, const Err *e) {
    dist_fail(d, e->code ? e->code : ERR_RUNTIME, e->msg);
}

_Noreturn void cli_usage_fail(const Dist *d, const char *cmd, const char *fmt, ...) {
    char msg[ERR_MAX], full[ERR_MAX + 128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(full, sizeof full, "%s: %s (see regdist %s --help)", cmd, msg, cmd);
    dist_fail(d, ERR_INPUT, full);
}

void cli_check_out_file(const Dist *d, const char *opt, const char *path, int overwrite) {
    Err e = {0};
    if (d->rank == 0) out_file_check(opt, path, overwrite, &e);
    if (dist_agree(d, &e)) dist_exit_agreed((Dist *)d, &e);
}

int64_t cli_parse_int(const Dist *d, const char *cmd, const char *opt, const char *v, int64_t lo,
                      int64_t hi) {
    char *end = NULL;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (!*v || *end || errno || x < lo || x > hi)
        cli_usage_fail(d, cmd, "%s must be an integer in [%lld, %lld], got '%s'", opt,
                       (long long)lo, (long long)hi, v);
    return x;
}

int cli_set_threads(const Dist *d, int requested) {
    int threads = requested;
    if (threads <= 0) {
        long cores = d->local_cores > 0 ? d->local_cores : sysconf(_SC_NPROCESSORS_ONLN);
        threads = (int)(cores / (d->local_size > 0 ? d->local_size : 1));
        if (threads < 1) threads = 1;
    }
    openblas_set_num_threads(threads);
    return threads;
}

// "1,28,28" into buf.
static void shape_str(char *buf, size_t len, Shape s) {
    buf[0] = 0;
    for (int i = 0; i < s.ndim; i++)
        snprintf(buf + strlen(buf), len - strlen(buf), i ? ",%d" : "%d", s.d[i]);
}

static int same_shape(Shape a, Shape b) {
    int same = a.ndim == b.ndim;
    for (int i = 0; same && i < a.ndim; i++) same = a.d[i] == b.d[i];
    return same;
}

int cli_build_model_for(Model *m, const Config *cfg, Shape shape, int num_classes,
                        const char *what, int max_batch, Err *e) {
    if (cfg->input.ndim && !same_shape(cfg->input, shape)) {
        char a[64], b[64];
        shape_str(a, sizeof a, shape);
        shape_str(b, sizeof b, cfg->input);
        return err_set(e, ERR_INPUT, "%s are (%s) but the model takes (%s) (model.input in %s)",
                       what, a, b, cfg->source);
    }
    if (model_build(m, cfg->layers, cfg->nlayers, shape, num_classes, e)) {
        char msg[ERR_MAX];
        snprintf(msg, sizeof msg, "%s", e->msg);
        int code = e->code;
        model_free(m);
        return err_set(e, code, "%s: %s (%s)", cfg->source, msg, what);
    }
    if (model_plan(m, max_batch, e)) {
        model_free(m);
        return e->code;
    }
    return ERR_OK;
}

int cli_build_model(Model *m, const Config *cfg, const Dataset *data, int max_batch, Err *e) {
    char what[DATASET_PATH_MAX + 64];
    snprintf(what, sizeof what, "%s: /%s/x samples", data->file, data->split);
    return cli_build_model_for(m, cfg, data->shape, data->num_classes, what, max_batch, e);
}

void cli_eval_rows(Model *m, const Dataset *data, int64_t lo, int64_t hi, float *x, int32_t *y,
                   int64_t *ids, float *probs, EvalSums *s) {
    StepCtx c = {.train = 0, .dropout_on = 0, .sample_ids = ids};
    int64_t correct = 0;
    for (int64_t start = lo; start < hi; start += m->max_batch) {
        int B = (int)(hi - start < m->max_batch ? hi - start : m->max_batch);
        for (int i = 0; i < B; i++) ids[i] = start + i;
        dataset_gather(data, ids, B, x, y);
        const float *logits = model_forward(m, x, B, &c);
        s->loss += xent_forward(probs, &correct, logits, y, B, m->num_classes, 0.0f);
        ece_accumulate(&s->bins, probs, y, B, m->num_classes);
    }
    s->hits += (double)correct;
}

void cli_eval_finish(const Dist *d, EvalSums *s, int64_t n, EvalResult *r) {
    // all doubles, summed over ranks in one call
    double sums[2 + ECE_BINS_DOUBLES];
    sums[0] = s->loss;
    sums[1] = s->hits;
    memcpy(sums + 2, &s->bins, sizeof s->bins);
    dist_sum_f64(d, sums, 2 + ECE_BINS_DOUBLES);
    EceBins bins;
    memcpy(&bins, sums + 2, sizeof bins);
    r->count = n;
    r->loss = n ? sums[0] / (double)n : 0.0;
    r->accuracy = n ? sums[1] / (double)n : 0.0;
    r->ece = ece_value(&bins);
    r->confidence = ece_mean_confidence(&bins);
}

void cli_evaluate(const Dist *d, Model *m, const Dataset *data, float *x, int32_t *y,
                  int64_t *ids, float *probs, EvalResult *r) {
    EvalSums s;
    memset(&s, 0, sizeof s);
    int64_t lo = data->n * d->rank / d->world, hi = data->n * (d->rank + 1) / d->world;
    cli_eval_rows(m, data, lo, hi, x, y, ids, probs, &s);
    cli_eval_finish(d, &s, data->n, r);
}

double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// The data must be what the checkpoint's model was trained on: sample shape and class count.
static int check_data_fits(const Dataset *ds, const char *ckpt, const Preprocess *p, Err *e) {
    if (!same_shape(ds->shape, p->input)) {
        char a[64], b[64];
        shape_str(a, sizeof a, ds->shape);
        shape_str(b, sizeof b, p->input);
        return err_set(e, ERR_INPUT, "%s: /%s/x samples are (%s) but %s was trained on (%s)",
                       ds->file, ds->split, a, ckpt, b);
    }
    if (p->num_classes && p->num_classes != ds->num_classes)
        return err_set(e, ERR_INPUT, "%s has %d classes but %s was trained on %d", ds->file,
                       ds->num_classes, ckpt, p->num_classes);
    return ERR_OK;
}

// Normalizes ds as the checkpoint's run did, saying so when the data file disagrees.
static void use_checkpoint_norm(const Dist *d, const char *ckpt, const CkptMeta *meta,
                                Dataset *ds) {
    Err e = {0};
    char have[1024], want[1024];
    prep_norm_str(have, sizeof have, &ds->prep);
    if (!meta->has_prep) {
        if (d->rank == 0)
            fprintf(stderr, "regdist: note: %s predates stored normalization (no /preprocessing); "
                    "using %s's: %s\n", ckpt, ds->file, have);
        return;
    }
    if (prep_same_norm(&meta->stored_prep, &ds->prep)) return;
    prep_norm_str(want, sizeof want, &meta->stored_prep);
    if (d->rank == 0)
        fprintf(stderr, "regdist: warning: %s says normalization %s but %s was trained with %s; "
                "using the checkpoint's\n", ds->file, have, ckpt, want);
    if (dataset_use_norm(ds, &meta->stored_prep, &e)) cli_fail(d, &e);
}

void cli_load_checkpoint_model(const Dist *d, const char *ckpt, const char *data,
                               const char *split, int need_y, Config *cfg, Model *m, Dataset *ds,
                               CkptMeta *meta) {
    Err e = {0};
    if (ckpt_read_meta(ckpt, meta, &e)) cli_fail(d, &e);
    if (config_load(cfg, ckpt, meta->config_text, NULL, 0, &e)) cli_fail(d, &e);
    int has = dataset_has_split(data, split, &e);
    if (has < 0) cli_fail(d, &e);
    if (!has) {
        err_set(&e, ERR_INPUT, "%s: has no /%s group", data, split);
        cli_fail(d, &e);
    }
    if (need_y ? dataset_load(ds, data, split, 0, &e) : dataset_load_x(ds, data, split, &e))
        cli_fail(d, &e);
    if (meta->has_prep && check_data_fits(ds, ckpt, &meta->stored_prep, &e)) cli_fail(d, &e);
    use_checkpoint_norm(d, ckpt, meta, ds);
    int batch = cfg->batch < 256 ? 256 : cfg->batch;
    if (cli_build_model(m, cfg, ds, batch, &e)) cli_fail(d, &e);
    if (ckpt_load(ckpt, m, NULL, NULL, &e)) cli_fail(d, &e);
    cli_set_threads(d, cfg->threads);
}

void cli_load_checkpoint_alone(const Dist *d, const char *ckpt, Config *cfg, Model *m,
                               CkptMeta *meta) {
    Err e = {0};
    if (ckpt_read_meta(ckpt, meta, &e)) cli_fail(d, &e);
    const Preprocess *p = &meta->stored_prep;
    if (!meta->has_prep || !p->num_classes) {
        err_set(&e, ERR_INPUT, "%s predates stored preprocessing (no /preprocessing with "
                "num_classes), so its input is unknown; predict on a dataset file with --data, "
                "or retrain with this regdist", ckpt);
        cli_fail(d, &e);
    }
    if (config_load(cfg, ckpt, meta->config_text, NULL, 0, &e)) cli_fail(d, &e);
    char what[DATASET_PATH_MAX + 64];
    snprintf(what, sizeof what, "%s: the samples it was trained on", ckpt);
    int batch = cfg->batch < 256 ? 256 : cfg->batch;
    if (cli_build_model_for(m, cfg, p->input, p->num_classes, what, batch, &e)) cli_fail(d, &e);
    if (ckpt_load(ckpt, m, NULL, NULL, &e)) cli_fail(d, &e);
    cli_set_threads(d, cfg->threads);
}

const char *blas_kernel_name(void) { return openblas_get_corename(); }
