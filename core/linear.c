// linear.c: y = x W^T + b, as nn.Linear. weight (out, in), bias (out). OpenBLAS sgemm.
#include <cblas.h>
#include <string.h>

#include "init.h"
#include "kernels.h"
#include "layer.h"

// out is (B,OC), inp is (B,C), weight is (OC,C), bias is (OC) or NULL
void linear_forward(float *out, const float *inp, const float *weight, const float *bias, int B,
                    int C, int OC) {
    float beta = 0.0f;
    if (bias) {
        for (int b = 0; b < B; b++) memcpy(out + (size_t)b * OC, bias, (size_t)OC * sizeof(float));
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, OC, C, 1.0f, inp, C, weight, C, beta,
                out, OC);
}

// dinp (B,C) = dout W (overwritten; skipped if NULL); dweight (OC,C) += dout^T inp;
// dbias (OC) += column sums of dout (skipped if NULL). dout is (B,OC).
void linear_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, int B, int C, int OC) {
    if (dinp)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, C, OC, 1.0f, dout, OC, weight, C,
                    0.0f, dinp, C);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, B, 1.0f, dout, OC, inp, C, 1.0f,
                dweight, C);
    if (dbias)
        for (int b = 0; b < B; b++) {
            const float *d = dout + (size_t)b * OC;
            for (int o = 0; o < OC; o++) dbias[o] += d[o];
        }
}

static int setup(Layer *l, Shape in, ParamTable *t, Err *e) {
    if (in.ndim != 1)
        return err_set(e, ERR_INPUT,
                       "layer %s (linear) needs a flat input but gets %d dimensions; put a "
                       "flatten layer before it",
                       l->spec.name, in.ndim);
    if (l->spec.out <= 0)
        return err_set(e, ERR_INPUT, "layer %s (linear): out must be positive, got %d",
                       l->spec.name, l->spec.out);
    l->out = (Shape){1, {l->spec.out}};
    int64_t wshape[2] = {l->spec.out, in.d[0]}, bshape[1] = {l->spec.out};
    if (layer_add_param(l, t, "weight", PARAM_TRAINABLE, 2, wshape, e)) return e->code;
    if (l->spec.bias && layer_add_param(l, t, "bias", PARAM_TRAINABLE, 1, bshape, e)) return e->code;
    return ERR_OK;
}

static void init(const Layer *l, float *params, float *bufs, uint32_t seed) {
    (void)bufs;
    int C = l->in.d[0], OC = l->out.d[0];
    float bound = init_fan_in_bound((size_t)C);
    init_uniform(params + l->poff[0], (size_t)OC * C, bound, seed, l->id, 0);
    if (l->spec.bias) init_uniform(params + l->poff[1], (size_t)OC, bound, seed, l->id, 1);
}

static void forward(Layer *l, float *out, const float *inp, const float *params, float *bufs,
                    const StepCtx *c, int B) {
    (void)bufs;
    (void)c;
    linear_forward(out, inp, params + l->poff[0], l->spec.bias ? params + l->poff[1] : NULL, B,
                   l->in.d[0], l->out.d[0]);
}

static void backward(Layer *l, float *dinp, float *dparams, const float *dout, const float *inp,
                     const float *out, const float *params, const StepCtx *c, int B) {
    (void)out;
    (void)c;
    linear_backward(dinp, dparams + l->poff[0], l->spec.bias ? dparams + l->poff[1] : NULL, dout,
                    inp, params + l->poff[0], B, l->in.d[0], l->out.d[0]);
}

const LayerKind layer_linear = {.type = "linear", .setup = setup, .init = init, .forward = forward, .backward = backward};
