// layernorm.c: nn.LayerNorm over each sample's whole feature vector, with weight and bias.
// Saves mean and rstd per sample for backward (llm.c's layout).
#include <math.h>

#include "init.h"
#include "kernels.h"
#include "layer.h"
#include "prof.h"

// Forward takes rows LN_ROWS at a time: each row's sums are one float chain in i order, as row
// by row, but the chains of LN_ROWS rows interleave, so the adder does not wait on its own
// latency (row by row, the two sums were most of the forward's time). Its multiply-adds are
// written as fmaf, so the bits are the order written here, not the compiler's choice of
// contractions (row by row, it fused the tail of a row and not the vectorized rest). This file
// is compiled with -ffp-contract=off (CMakeLists.txt), so every fused multiply-add in it is an
// fmaf written here and every other product is rounded before it is added.
enum { LN_ROWS = 8 };

// R (<= LN_ROWS) rows: out, mean, rstd from inp.
static inline void forward_rows(float *out, float *mean, float *rstd, const float *inp,
                                const float *weight, const float *bias, int R, int D, float eps) {
    float s[LN_ROWS] = {0}, v[LN_ROWS] = {0}, m[LN_ROWS];
    for (int i = 0; i < D; i++)
        for (int k = 0; k < R; k++) s[k] += inp[(size_t)k * D + i];
    for (int k = 0; k < R; k++) m[k] = s[k] / D;
    for (int i = 0; i < D; i++)
        for (int k = 0; k < R; k++) {
            float d = inp[(size_t)k * D + i] - m[k];
            v[k] = fmaf(d, d, v[k]);
        }
    for (int k = 0; k < R; k++) {
        const float *x = inp + (size_t)k * D;
        float *y = out + (size_t)k * D;
        float r = 1.0f / sqrtf(v[k] / D + eps);
        for (int i = 0; i < D; i++) y[i] = fmaf((x[i] - m[k]) * r, weight[i], bias[i]);
        mean[k] = m[k];
        rstd[k] = r;
    }
}

// out (B,D), mean (B), rstd (B) from inp (B,D); weight, bias (D). Biased variance, as PyTorch.
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                       const float *bias, int B, int D, float eps) {
    prof_bytes(2.0 * B * D);  // read x, write y (a block of rows stays in cache between passes)
    int b = 0;
    for (; b + LN_ROWS <= B; b += LN_ROWS)
        forward_rows(out + (size_t)b * D, mean + b, rstd + b, inp + (size_t)b * D, weight, bias,
                     LN_ROWS, D, eps);
    if (b < B)
        forward_rows(out + (size_t)b * D, mean + b, rstd + b, inp + (size_t)b * D, weight, bias,
                     B - b, D, eps);
}

// R (<= LN_ROWS) rows of backward: sum_g[k], sum_gn[k] = the sums of dy*w and dy*w*norm over
// row k, each one float chain in i order; dweight, dbias accumulate the rows in order. Taken
// LN_VEC columns at a time: the products of all R rows first (vectorized along the row), then
// each row's chains advance by LN_VEC adds; those 2R short independent chains sit side by side
// in the instruction stream, so the processor overlaps them instead of waiting on the adder's
// latency (row by row, two chains D long were most of the backward's time).
enum { LN_VEC = 16 };

// Columns i0 .. i0+W-1 of R rows (W <= LN_VEC): the chains advance by W, rows interleaved.
static inline __attribute__((always_inline)) void backward_cols(
    float *restrict sg, float *restrict sgn, float *restrict dweight, float *restrict dbias,
    const float *restrict dout, const float *restrict inp, const float *restrict weight,
    const float *mean, const float *rstd, int R, int D, int i0, int W) {
    float g[LN_ROWS][LN_VEC], gn[LN_ROWS][LN_VEC];
    for (int k = 0; k < R; k++) {
        const float *x = inp + (size_t)k * D + i0, *dy = dout + (size_t)k * D + i0;
        float m = mean[k], r = rstd[k];
        for (int j = 0; j < W; j++) {
            float n = (x[j] - m) * r;
            g[k][j] = dy[j] * weight[i0 + j];
            gn[k][j] = g[k][j] * n;
            dweight[i0 + j] = fmaf(dy[j], n, dweight[i0 + j]);
            dbias[i0 + j] += dy[j];
        }
    }
    for (int k = 0; k < R; k++)
        for (int j = 0; j < W; j++) {
            sg[k] += g[k][j];
            sgn[k] += gn[k][j];
        }
}

static void backward_sums(float *sum_g, float *sum_gn, float *dweight, float *dbias,
                          const float *dout, const float *inp, const float *weight,
                          const float *mean, const float *rstd, int R, int D) {
    float sg[LN_ROWS] = {0}, sgn[LN_ROWS] = {0};
    int i0 = 0;
    for (; i0 + LN_VEC <= D; i0 += LN_VEC)
        backward_cols(sg, sgn, dweight, dbias, dout, inp, weight, mean, rstd, R, D, i0, LN_VEC);
    if (i0 < D)
        backward_cols(sg, sgn, dweight, dbias, dout, inp, weight, mean, rstd, R, D, i0, D - i0);
    for (int k = 0; k < R; k++) {
        sum_g[k] = sg[k];
        sum_gn[k] = sgn[k];
    }
}

// dinp (B,D) overwritten (if not NULL); dweight, dbias (D) accumulate.
void layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, const float *mean, const float *rstd,
                        int B, int D) {
    prof_bytes((dinp ? 3.0 : 2.0) * B * D);  // read x and dout, write dinp (rows in cache)
    for (int b0 = 0; b0 < B; b0 += LN_ROWS) {
        int R = B - b0 < LN_ROWS ? B - b0 : LN_ROWS;
        float sum_g[LN_ROWS], sum_gn[LN_ROWS];
        backward_sums(sum_g, sum_gn, dweight, dbias, dout + (size_t)b0 * D, inp + (size_t)b0 * D,
                      weight, mean + b0, rstd + b0, R, D);
        if (!dinp) continue;
        for (int k = 0; k < R; k++) {
            int b = b0 + k;
            const float *x = inp + (size_t)b * D, *dy = dout + (size_t)b * D;
            float m = mean[b], r = rstd[b], mg = sum_g[k] / D, mgn = sum_gn[k] / D;
            float *dx = dinp + (size_t)b * D;
            for (int i = 0; i < D; i++) {
                float n = (x[i] - m) * r;
                dx[i] = fmaf(-n, mgn, fmaf(dy[i], weight[i], -mg)) * r;
            }
        }
    }
}

static int setup(Layer *l, Shape in, ParamTable *t, Err *e) {
    if (in.ndim != 1)
        return err_set(e, ERR_INPUT,
                       "layer %s (layernorm) normalizes flat features; put a flatten layer "
                       "before it",
                       l->spec.name);
    if (!(l->spec.eps > 0.0f))
        return err_set(e, ERR_INPUT, "layer %s (layernorm): eps must be positive", l->spec.name);
    l->out = in;
    int64_t shape[1] = {in.d[0]};
    if (layer_add_param(l, t, "weight", PARAM_NORM_SCALE, 1, shape, e)) return e->code;
    if (layer_add_param(l, t, "bias", PARAM_NORM_SHIFT, 1, shape, e)) return e->code;
    l->save_bytes_per_sample = 2 * sizeof(float);
    return ERR_OK;
}

static void init(const Layer *l, float *params, float *bufs, uint32_t seed) {
    (void)bufs, (void)seed;
    init_constant(params + l->poff[0], (size_t)l->in.d[0], 1.0f);
    init_constant(params + l->poff[1], (size_t)l->in.d[0], 0.0f);
}

// save holds mean (max_batch) then rstd: split at the planned batch.
static void forward(Layer *l, float *out, const float *inp, const float *params, float *bufs,
                    const StepCtx *c, int B) {
    (void)bufs, (void)c;
    float *mean = l->save, *rstd = mean + B;
    layernorm_forward(out, mean, rstd, inp, params + l->poff[0], params + l->poff[1], B, l->in.d[0],
                      l->spec.eps);
}

static void backward(Layer *l, float *dinp, float *dparams, const float *dout, const float *inp,
                     const float *out, const float *params, const StepCtx *c, int B) {
    (void)out, (void)c;
    const float *mean = l->save, *rstd = mean + B;
    layernorm_backward(dinp, dparams + l->poff[0], dparams + l->poff[1], dout, inp,
                       params + l->poff[0], mean, rstd, B, l->in.d[0]);
}

static const LayerKeyDesc keys[] = {LAYER_KEY_DESC_EPS};

const LayerKind layer_layernorm = {.type = "layernorm", LAYER_KEYS(keys), .flags = LAYER_NORMALIZES,
                                   .setup = setup, .init = init, .forward = forward,
                                   .backward = backward};
