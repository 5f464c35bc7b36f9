// gradcheck.h: one layer on its own, and its backward against central finite differences,
// for the core layer tests. Include after <cmocka.h>.
// The loss is L = sum_i r_i * y_i with a fixed random r, accumulated in double; each input
// and parameter is nudged by +-h and (L+ - L-)/2h compared with the analytic gradient.
// Kernels are float32, so with h = 1e-2 the difference quotient carries about 1e-5 of
// rounding noise: we demand agreement to 2e-3 relative to the gradient's largest entry.
#pragma once
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/kernels.h"
#include "core/layer.h"
#include "core/philox.h"

typedef struct {
    Layer l;
    ParamTable t;
    float *params, *bufs, *dparams;
    int B;
    size_t nin, nout;
} Harness;

// A fixed pseudo-random number in [-1, 1) for (i, salt).
static inline float urand(uint32_t i, uint32_t salt) {
    philox_ctr r = philox4x32_10((philox_ctr){{i, salt, 0, 0}}, (philox_key){{7, 9}});
    return 2.0f * philox_unit(r.v[0]) - 1.0f;
}

// A layer with its save area planned as model_plan does: B per-sample records, then the
// fixed scratch. Parameters random in [-1, 1) (not the init, so that e.g. LayerNorm's affine
// part is exercised).
static inline void harness_init(Harness *h, const LayerSpec *spec, Shape in, int B) {
    memset(h, 0, sizeof *h);
    h->l.spec = *spec;
    h->l.id = 3;
    h->l.kind = layer_kind_find(spec->type);
    assert_non_null(h->l.kind);
    h->l.in = in;
    Err e = {0};
    assert_int_equal(h->l.kind->setup(&h->l, in, &h->t, &e), ERR_OK);
    h->B = B;
    h->nin = shape_numel(in) * (size_t)B;
    h->nout = shape_numel(h->l.out) * (size_t)B;
    h->params = calloc(h->t.n_trainable + 1, sizeof(float));
    h->dparams = calloc(h->t.n_trainable + 1, sizeof(float));
    h->bufs = calloc(h->t.n_buffer + 1, sizeof(float));
    size_t save = h->l.save_bytes_per_sample * (size_t)B + h->l.save_bytes_fixed;
    h->l.save = save ? malloc(save) : NULL;
    for (size_t i = 0; i < h->t.n_trainable; i++) h->params[i] = urand((uint32_t)i, 11);
}

static inline void harness_free(Harness *h) {
    free(h->params), free(h->dparams), free(h->bufs), free(h->l.save);
    param_table_free(&h->t);
}

static inline void fwd(Harness *h, float *y, const float *x, const StepCtx *c) {
    h->l.kind->forward(&h->l, y, x, h->params, h->bufs, c, h->B);
}

static inline double loss_of(Harness *h, const float *x, float *y, const StepCtx *c) {
    fwd(h, y, x, c);
    double L = 0;
    for (size_t i = 0; i < h->nout; i++) L += (double)urand((uint32_t)i, 22) * y[i];
    return L;
}

// Fails unless every analytic entry is within 2e-3 of the numeric gradient's largest entry
// (NaN fails too).
static inline void check_fd(const char *what, const double *num, const float *ana, size_t n) {
    double scale = 1e-6;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(num[i]));
    for (size_t i = 0; i < n; i++)
        if (!(fabs(num[i] - ana[i]) <= 2e-3 * scale))
            fail_msg("%s[%zu]: numeric %.6g vs analytic %.6g (scale %.3g)", what, i, num[i],
                     (double)ana[i], scale);
}

// The analytic gradients at x ((B, in) values) into dx and h->dparams, each checked against
// central differences. Afterwards dx and h->dparams still hold the analytic gradients.
static inline void gradcheck_run(Harness *h, float *x, float *dx, const StepCtx *c) {
    float *y = malloc(h->nout * sizeof(float)), *dy = malloc(h->nout * sizeof(float));
    double *num = malloc((h->nin > h->t.n_trainable ? h->nin : h->t.n_trainable) * sizeof(double));
    for (size_t i = 0; i < h->nout; i++) dy[i] = urand((uint32_t)i, 22);
    fwd(h, y, x, c);
    h->l.kind->backward(&h->l, dx, h->dparams, dy, x, y, h->params, c, h->B);
    const float step = 1e-2f;
    for (size_t i = 0; i < h->nin; i++) {
        float keep = x[i];
        x[i] = keep + step;
        double lp = loss_of(h, x, y, c);
        x[i] = keep - step;
        double lm = loss_of(h, x, y, c);
        x[i] = keep;
        num[i] = (lp - lm) / (2.0 * step);
    }
    check_fd("dinp", num, dx, h->nin);
    for (size_t i = 0; i < h->t.n_trainable; i++) {
        float keep = h->params[i];
        h->params[i] = keep + step;
        double lp = loss_of(h, x, y, c);
        h->params[i] = keep - step;
        double lm = loss_of(h, x, y, c);
        h->params[i] = keep;
        num[i] = (lp - lm) / (2.0 * step);
    }
    check_fd("dparams", num, h->dparams, h->t.n_trainable);
    free(y), free(dy), free(num);
}
