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
// contractions (row by row, it fused the tail of a row and not the vectorized rest). Backward
// stays row by row: its loops vectorize along the row, and interleaving rows measured slower.
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

// dinp (B,D) overwritten (if not NULL); dweight, dbias (D) accumulate.
void layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, const float *mean,
                        const float *rstd, int B, int D) {
    prof_bytes((dinp ? 3.0 : 2.0) * B * D);  // read x and dout, write dinp (a row in cache)
    for (int b = 0; b < B; b++) {
        const float *x = inp + (size_t)b * D, *dy = dout + (size_t)b * D;
        float m = mean[b], r = rstd[b];
        float sum_g = 0.0f, sum_gn = 0.0f;  // mean of dy*w and of dy*w*norm
        for (int i = 0; i < D; i++) {
            float n = (x[i] - m) * r;
            float g = dy[i] * weight[i];
            sum_g += g;
            sum_gn += g * n;
            dweight[i] += dy[i] * n;
            dbias[i] += dy[i];
        }
        if (!dinp) continue;
        float mg = sum_g / D, mgn = sum_gn / D;
        float *dx = dinp + (size_t)b * D;
        for (int i = 0; i < D; i++) {
            float n = (x[i] - m) * r;
            dx[i] = (dy[i] * weight[i] - mg - n * mgn) * r;
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
