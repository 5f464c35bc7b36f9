// layernorm.c: nn.LayerNorm over each sample's whole feature vector, with weight and bias.
// Saves mean and rstd per sample for backward (llm.c's layout).
#include <math.h>

#include "init.h"
#include "kernels.h"
#include "layer.h"

// out (B,D), mean (B), rstd (B) from inp (B,D); weight, bias (D). Biased variance, as PyTorch.
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                       const float *bias, int B, int D, float eps) {
    for (int b = 0; b < B; b++) {
        const float *x = inp + (size_t)b * D;
        float *y = out + (size_t)b * D;
        float s = 0.0f;
        for (int i = 0; i < D; i++) s += x[i];
        float m = s / D;
        float v = 0.0f;
        for (int i = 0; i < D; i++) {
            float d = x[i] - m;
            v += d * d;
        }
        float r = 1.0f / sqrtf(v / D + eps);
        for (int i = 0; i < D; i++) y[i] = (x[i] - m) * r * weight[i] + bias[i];
        mean[b] = m;
        rstd[b] = r;
    }
}

// dinp (B,D) overwritten (if not NULL); dweight, dbias (D) accumulate.
void layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, const float *mean,
                        const float *rstd, int B, int D) {
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
