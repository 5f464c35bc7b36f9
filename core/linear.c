// linear.c: y = x W^T + b, as nn.Linear. weight (out, in), bias (out). OpenBLAS sgemm.
//
// DropConnect (Wan et al., ICML 2013; spec.dropconnect = p > 0): in training the layer uses
// Wm = W * mask / (1-p), mask a Bernoulli(1-p) draw per weight; the bias is never masked.
// The mask is drawn once per optimizer step and shared by every sample of the global batch:
// element i uses word i%4 of Philox({seed, layer id}, {i/4, DROPCONNECT_SAMPLE, step, stream}).
// Why per step rather than per sample as in the paper: a mask per sample needs B masked
// weight matrices and B GEMVs instead of one GEMM, B times the memory and far slower; a mask
// per step keeps the single GEMM, and since it depends on no sample index it is identical on
// every rank, so a data-parallel run computes exactly the gradient the 1-rank run does.
// Wm (OC*C floats) and the mask (OC*C bytes) live in the layer's fixed save area; backward
// borrows Wm as scratch for dout^T inp and rebuilds it before returning.
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

// wm, keep, weight are (n): keep = the step's DropConnect mask, wm = weight * keep / (1-p).
void dropconnect_weight(float *wm, uint8_t *keep, const float *weight, float p, philox_key key,
                        uint32_t step, uint32_t stream, size_t n) {
    dropout_mask(keep, n, p, key, DROPCONNECT_SAMPLE, step, stream);
    float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    for (size_t i = 0; i < n; i++) wm[i] = keep[i] ? weight[i] * scale : 0.0f;
}

// As linear_backward with the masked weight: dinp (B,C) = dout Wm (overwritten; skipped if
// NULL); dweight (OC,C) += (dout^T inp) * keep / (1-p); dbias (OC) += column sums of dout.
// wm (OC,C) holds Wm on entry and on return; it is scratch for dout^T inp in between.
static void dropconnect_backward(float *dinp, float *dweight, float *dbias, float *wm,
                                 const float *dout, const float *inp, const float *weight,
                                 const uint8_t *keep, float p, int B, int C, int OC) {
    size_t n = (size_t)OC * C;
    float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    if (dinp)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, C, OC, 1.0f, dout, OC, wm, C,
                    0.0f, dinp, C);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, B, 1.0f, dout, OC, inp, C, 0.0f,
                wm, C);
    for (size_t i = 0; i < n; i++) {
        if (keep[i]) dweight[i] += wm[i] * scale;
        wm[i] = keep[i] ? weight[i] * scale : 0.0f;
    }
    if (dbias)
        for (int b = 0; b < B; b++) {
            const float *d = dout + (size_t)b * OC;
            for (int o = 0; o < OC; o++) dbias[o] += d[o];
        }
}

static int dropconnect_active(const Layer *l, const StepCtx *c) {
    return c && step_dropout_active(c) && l->spec.dropconnect > 0.0f;
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
    if (layer_add_param(l, t, "weight", PARAM_WEIGHT, 2, wshape, e)) return e->code;
    if (l->spec.bias && layer_add_param(l, t, "bias", PARAM_BIAS, 1, bshape, e)) return e->code;
    if (!(l->spec.dropconnect >= 0.0f && l->spec.dropconnect <= 1.0f))
        return err_set(e, ERR_INPUT, "layer %s (linear): dropconnect must be in [0, 1], got %g",
                       l->spec.name, l->spec.dropconnect);
    // DropConnect: the step's masked weight (floats), then its mask (bytes)
    if (l->spec.dropconnect > 0.0f)
        l->save_bytes_fixed = (size_t)l->spec.out * in.d[0] * (sizeof(float) + 1);
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
    const float *weight = params + l->poff[0];
    int C = l->in.d[0], OC = l->out.d[0];
    if (dropconnect_active(l, c)) {
        // linear saves nothing per sample, so the fixed area starts at l->save
        size_t n = (size_t)OC * C;
        float *wm = l->save;
        dropconnect_weight(wm, (uint8_t *)(wm + n), weight, l->spec.dropconnect,
                           (philox_key){{c->seed, (uint32_t)l->id}}, c->step, c->stream, n);
        weight = wm;
    }
    linear_forward(out, inp, weight, l->spec.bias ? params + l->poff[1] : NULL, B, C, OC);
}

static void backward(Layer *l, float *dinp, float *dparams, const float *dout, const float *inp,
                     const float *out, const float *params, const StepCtx *c, int B) {
    (void)out;
    float *dbias = l->spec.bias ? dparams + l->poff[1] : NULL;
    int C = l->in.d[0], OC = l->out.d[0];
    if (dropconnect_active(l, c)) {
        float *wm = l->save;
        dropconnect_backward(dinp, dparams + l->poff[0], dbias, wm, dout, inp, params + l->poff[0],
                             (const uint8_t *)(wm + (size_t)OC * C), l->spec.dropconnect, B, C,
                             OC);
        return;
    }
    linear_backward(dinp, dparams + l->poff[0], dbias, dout, inp, params + l->poff[0], B, C, OC);
}

// C*OC multiply-accumulates per sample, whether DropConnect masks the weight or not.
static double flops(const Layer *l, int need_dinp) {
    return layer_matmul_flops((double)l->in.d[0] * l->out.d[0], need_dinp);
}

static const LayerKeyDesc keys[] = {
    LAYER_KEY_DESC_OUT,
    LAYER_KEY_DESC_BIAS,
    {"dropconnect", LAYER_KEY_FLOAT, offsetof(LayerSpec, dropconnect), 0, 1, 0, "0",
     "DropConnect probability on the weights (0 = off)"},
};

const LayerKind layer_linear = {.type = "linear", LAYER_KEYS(keys), .drop_name = "dropconnect",
                                .drop_key = "dropconnect", .setup = setup, .init = init,
                                .forward = forward, .backward = backward, .flops = flops};
