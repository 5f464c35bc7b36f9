// step.c: one data-parallel optimizer step (step.h).
#include "step.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/augment.h"
#include "core/loss.h"
#include "core/philox.h"
#include "core/regularize.h"

void stepper_slice(const Dist *d, const Config *c, int64_t n, int j, int64_t *lo, int64_t *hi) {
    int64_t mlo = n * j / c->accum, mn = n * (j + 1) / c->accum - mlo;
    *lo = mlo + mn * d->rank / d->world;
    *hi = mlo + mn * (d->rank + 1) / d->world;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

void stepper_sort_rows(int64_t *rows, int64_t n) {
    qsort(rows, (size_t)n, sizeof *rows, cmp_i64);
}

// Sorts rows[0..n) and drops repeats; returns how many remain.
static int64_t sort_unique(int64_t *rows, int64_t n) {
    stepper_sort_rows(rows, n);
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++)
        if (k == 0 || rows[i] != rows[k - 1]) rows[k++] = rows[i];
    return k;
}

int64_t stepper_rank_rows(const Dist *d, const Config *c, const int64_t *perm, int64_t total,
                          int64_t nbatches, int partners, int64_t *rows, int64_t *off) {
    int64_t k = 0;
    for (int64_t b = 0; b < nbatches; b++) {
        off[b] = k;
        int64_t start = b * c->batch, n = total - start < c->batch ? total - start : c->batch;
        for (int j = 0; j < c->accum; j++) {
            int64_t lo, hi;
            stepper_slice(d, c, n, j, &lo, &hi);
            for (int64_t i = lo; i < hi; i++) rows[k++] = perm[start + i];
            for (int64_t i = lo; partners && i < hi; i++)
                rows[k++] = perm[start + augment_mix_partner(i, n)];
        }
        if (partners) k = off[b] + sort_unique(rows + off[b], k - off[b]);
    }
    off[nbatches] = k;
    return k;
}

int stepper_max_local(const Dist *d, const Config *c) {
    int micro = (c->batch + c->accum - 1) / c->accum;
    return (micro + d->world - 1) / d->world;
}

// The widest BatchNorm layer, residual branches included (each has a running mean of its
// channel count in the parameter table): what bnsync must hold.
static int max_bn_channels(const ParamTable *t) {
    size_t mx = 0;
    for (int i = 0; i < t->n; i++)
        if (t->p[i].role == PARAM_RUNNING_MEAN && t->p[i].numel > mx) mx = t->p[i].numel;
    return (int)mx;
}

// augment on: the input must be images (C,H,W) the keys fit; the scratch is planned here so
// that a step allocates nothing.
static int augment_init(Stepper *s, const Config *c, const Model *m, Err *e) {
    const AugmentConfig *a = &c->augment;
    if (!augment_per_sample_on(a) && !augment_mix_on(a)) return ERR_OK;
    if (m->in.ndim != 3)
        return err_set(e, ERR_INPUT, "augment needs image input (C, H, W), and this model's "
                       "input is flat (%d values): set augment = \"off\"",
                       (int)shape_numel(m->in));
    int C = m->in.d[0], H = m->in.d[1], W = m->in.d[2];
    if (augment_check(a, C, H, W, e)) return e->code;
    s->aug_c = C, s->aug_h = H, s->aug_w = W;
    size_t L = (size_t)s->max_local, in = (size_t)C * H * W;
    s->aug_scratch = malloc(in * sizeof(float));
    if (!s->aug_scratch) return err_set(e, ERR_RUNTIME, "out of memory for augmentation");
    if (!augment_mix_on(a)) return ERR_OK;
    s->xp = malloc(L * in * sizeof(float));
    s->yp = malloc(L * sizeof(int32_t));
    s->pids = malloc(L * sizeof(int64_t));
    if (!s->xp || !s->yp || !s->pids)
        return err_set(e, ERR_RUNTIME, "out of memory for the mixing partners");
    return ERR_OK;
}

int stepper_init(Stepper *s, const Dist *d, const Config *c, Model *m, Optim *opt,
                 const Dataset *data, Err *e) {
    memset(s, 0, sizeof *s);
    *s = (Stepper){.d = d, .c = c, .m = m, .opt = opt, .data = data,
                   .max_local = stepper_max_local(d, c)};
    size_t in = shape_numel(m->in), L = (size_t)s->max_local;
    s->x = malloc(L * in * sizeof(float));
    s->y = malloc(L * sizeof(int32_t));
    s->ids = malloc(L * sizeof(int64_t));
    if (!s->x || !s->y || !s->ids) return err_set(e, ERR_RUNTIME, "out of memory for the batch");
    if (gradsync_init(&s->gs, d, m->grads, m->table.n_trainable, (size_t)c->bucket_kb * 1024,
                      (size_t)c->first_bucket_kb * 1024, e))
        return e->code;
    m->grad_ready = gradsync_ready;
    m->grad_ready_ctx = &s->gs;
    if (augment_init(s, c, m, e)) return e->code;
    const char *inject = getenv("REGDIST_INJECT_NAN_STEP");
    s->inject_nan_step = inject ? atoll(inject) : 0;
    if (bnsync_init(&s->bn, d, c->bn_group, e) ||
        bnsync_reserve(&s->bn, max_bn_channels(&m->table), e) ||
        bnsync_name_layers(&s->bn, &m->table, e))
        return e->code;
    return ERR_OK;
}

void stepper_free(Stepper *s) {
    gradsync_free(&s->gs);
    bnsync_free(&s->bn);
    free(s->x);
    free(s->y);
    free(s->ids);
    free(s->aug_scratch);
    free(s->xp);
    free(s->yp);
    free(s->pids);
    s->aug_scratch = s->xp = NULL;
    s->yp = NULL;
    s->pids = NULL;
    s->x = NULL;
    s->y = NULL;
    s->ids = NULL;
}

int64_t stepper_forward(Stepper *s, const Dataset *data, const int64_t *rows, int64_t n,
                        const StepCtx *sc) {
    StepCtx ctx = *sc;
    ctx.sample_ids = s->ids;
    int64_t at = 0;
    for (int j = 0; j < s->c->accum; j++) {
        int64_t lo, hi;
        stepper_slice(s->d, s->c, n, j, &lo, &hi);
        int b = (int)(hi - lo);
        memcpy(s->ids, rows + at, (size_t)b * sizeof *s->ids);
        at += b;
        dataset_gather(data, s->ids, b, s->x, s->y);
        model_forward(s->m, s->x, b, &ctx);
    }
    return at;
}

// The slice [lo, lo + b) of the global batch idx (n samples) into s->x, s->y, s->ids,
// augmented; with mix active, mixed with its partners (gathered and augmented here too).
static void gather_slice(Stepper *s, const int64_t *idx, int n, int64_t lo, int b,
                         const AugmentMix *mix) {
    const Config *c = s->c;
    memcpy(s->ids, idx + lo, (size_t)b * sizeof *idx);
    dataset_gather(s->data, s->ids, b, s->x, s->y);
    if (s->aug_scratch)  // each sample by its global index: no rank or slot enters
        augment_batch(s->x, s->aug_scratch, &c->augment, s->ids, c->seed, s->epoch,
                      AUGMENT_STREAM_TRAIN, b, s->aug_c, s->aug_h, s->aug_w);
    if (!mix->active) return;
    // the partners, augmented by their own draws as their ranks do
    for (int k = 0; k < b; k++) s->pids[k] = idx[augment_mix_partner(lo + k, n)];
    dataset_gather(s->data, s->pids, b, s->xp, s->yp);
    augment_batch(s->xp, s->aug_scratch, &c->augment, s->pids, c->seed, s->epoch,
                  AUGMENT_STREAM_TRAIN, b, s->aug_c, s->aug_h, s->aug_w);
    augment_mix_apply(s->x, s->xp, mix, b, s->aug_c, s->aug_h, s->aug_w);
}

double stepper_step(Stepper *s, const int64_t *idx, int n, int64_t *correct, int64_t *seen,
                    int *finite) {
    const Dist *d = s->d;
    const Config *c = s->c;
    Model *m = s->m;
    double loss = 0.0, t0 = now_seconds(), t1;
    model_zero_grad(m);
    AugmentMix mix = {.lam = 1.0f};  // one draw per global batch, counted by the step
    if (s->xp)
        augment_mix_draw(&mix, &c->augment, c->seed, (uint32_t)s->opt->step,
                         AUGMENT_STREAM_TRAIN, s->aug_h, s->aug_w);
    for (int j = 0; j < c->accum; j++) {
        int64_t lo, hi;
        stepper_slice(d, c, n, j, &lo, &hi);
        int b = (int)(hi - lo);
        *seen += b;
        gather_slice(s, idx, n, lo, b, &mix);
        StepCtx sc = {.train = 1, .dropout_on = c->dropout_on, .seed = c->seed,
                      .step = (uint32_t)s->opt->step, .stream = PHILOX_STREAM_TRAIN,
                      .sample_ids = s->ids,
                      .reduce_stats = s->bn.size > 1 ? bnsync_reduce : NULL,  // none: local BN
                      .reduce_ctx = &s->bn};
        gradsync_begin(&s->gs, j == c->accum - 1);
        s->gs.step = s->bn.step = (long long)s->opt->step + 1;  // for stall reports
        t1 = now_seconds();
        s->t_data += t1 - t0;
        const float *logits = model_forward(m, s->x, b, &sc);
        // each rank's share of the gradient of the mean loss over the global batch
        if (mix.active)  // soft targets: smoothed, then mixed
            loss += mix_xent_forward_backward(m->dlogits, correct, logits, s->y, s->yp, mix.lam,
                                              b, m->num_classes, c->label_smoothing,
                                              1.0f / (float)n);
        else
            loss += xent_forward_backward(m->dlogits, correct, logits, s->y, b, m->num_classes,
                                          c->label_smoothing, 1.0f / (float)n);
        if (s->inject_nan_step == s->calls + 1 && d->rank == 0 && b > 0)
            m->dlogits[0] = NAN, loss = NAN;  // as if the model overflowed on rank 0
        t0 = now_seconds();
        s->t_forward += t0 - t1;
        model_backward(m, s->x, m->dlogits, b, &sc);
        t1 = now_seconds();
        s->t_backward += t1 - t0;
        t0 = t1;
    }
    s->calls++;
    gradsync_wait(&s->gs);  // its own clock: gs.wait_seconds
    t0 = now_seconds();
    size_t n_grads = m->table.n_trainable;
    float clip = 1.0f;
    if (c->clip_norm > 0.0f) {
        // one pass for both: the norm is NaN or Inf exactly when a gradient (penalty added) is
        reg_l1_l2(m->grads, m->params, &m->table, c->l1, c->l2);
        double norm = grad_global_norm(m->grads, n_grads);
        *finite = isfinite(norm);
        if (!*finite) return loss;
        clip = grad_clip_scale(norm, c->clip_norm);  // applied by the optimizer as it reads
    } else {
        *finite = grads_finite(m->grads, n_grads);
        if (!*finite) return loss;
        reg_l1_l2(m->grads, m->params, &m->table, c->l1, c->l2);
    }
    float lr = schedule_lr(&c->sched, c->optim.lr, s->opt->step);
    optim_step(s->opt, m->params, m->grads, &m->table, lr, clip);
    s->t_optim += now_seconds() - t0;
    return loss;
}
