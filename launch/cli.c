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

int cli_build_model(Model *m, const Config *cfg, const Dataset *data, int max_batch, Err *e) {
    if (cfg->input.ndim) {
        int same = cfg->input.ndim == data->shape.ndim;
        for (int i = 0; same && i < cfg->input.ndim; i++) same = cfg->input.d[i] == data->shape.d[i];
        if (!same) {
            char a[64] = "", b[64] = "";
            for (int i = 0; i < data->shape.ndim; i++)
                snprintf(a + strlen(a), sizeof a - strlen(a), i ? ",%d" : "%d", data->shape.d[i]);
            for (int i = 0; i < cfg->input.ndim; i++)
                snprintf(b + strlen(b), sizeof b - strlen(b), i ? ",%d" : "%d", cfg->input.d[i]);
            return err_set(e, ERR_INPUT,
                           "%s: /%s/x samples are (%s) but the model takes (%s) (model.input in %s)",
                           data->file, data->split, a, b, cfg->source);
        }
    }
    if (model_build(m, cfg->layers, cfg->nlayers, data->shape, data->num_classes, e)) {
        char msg[ERR_MAX];
        snprintf(msg, sizeof msg, "%s", e->msg);
        int code = e->code;
        model_free(m);
        return err_set(e, code, "%s: %s (data %s)", cfg->source, msg, data->file);
    }
    if (model_plan(m, max_batch, e)) {
        model_free(m);
        return e->code;
    }
    return ERR_OK;
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

void cli_load_checkpoint_model(const Dist *d, const char *ckpt, const char *data,
                               const char *split, Config *cfg, Model *m, Dataset *ds,
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
    if (dataset_load(ds, data, split, 0, &e)) cli_fail(d, &e);
    int batch = cfg->batch < 256 ? 256 : cfg->batch;
    if (cli_build_model(m, cfg, ds, batch, &e)) cli_fail(d, &e);
    if (ckpt_load(ckpt, m, NULL, NULL, &e)) cli_fail(d, &e);
    cli_set_threads(d, cfg->threads);
}

const char *blas_kernel_name(void) { return openblas_get_corename(); }
