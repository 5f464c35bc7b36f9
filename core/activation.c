// activation.c: ReLU and GELU (exact erf form, PyTorch's default), elementwise.
#include <math.h>

#include "kernels.h"
#include "layer.h"

// out, inp are (N)
void relu_forward(float *out, const float *inp, size_t N) {
    for (size_t i = 0; i < N; i++) out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}
// dinp = dout where the output was positive. out is relu's output, (N).
void relu_backward(float *dinp, const float *dout, const float *out, size_t N) {
    for (size_t i = 0; i < N; i++) dinp[i] = out[i] > 0.0f ? dout[i] : 0.0f;
}

#define INV_SQRT2 0.70710678118654752440f
#define INV_SQRT_2PI 0.39894228040143267794f

// out = 0.5 x (1 + erf(x / sqrt 2)), (N)
void gelu_forward(float *out, const float *inp, size_t N) {
    for (size_t i = 0; i < N; i++) {
        float x = inp[i];
        out[i] = 0.5f * x * (1.0f + erff(x * INV_SQRT2));
    }
}
// dinp = dout * (Phi(x) + x phi(x)), (N)
void gelu_backward(float *dinp, const float *dout, const float *inp, size_t N) {
    for (size_t i = 0; i < N; i++) {
        float x = inp[i];
        float cdf = 0.5f * (1.0f + erff(x * INV_SQRT2));
        float pdf = INV_SQRT_2PI * expf(-0.5f * x * x);
        dinp[i] = dout[i] * (cdf + x * pdf);
    }
}

static int setup_same_shape(Layer *l, Shape in, ParamTable *t, Err *e) {
    (void)t;
    (void)e;
    l->out = in;
    return ERR_OK;
}

static void relu_fwd(Layer *l, float *out, const float *inp, const float *params, float *bufs,
                     const StepCtx *c, int B) {
    (void)params, (void)bufs, (void)c;
    relu_forward(out, inp, (size_t)B * shape_numel(l->in));
}
static void relu_bwd(Layer *l, float *dinp, float *dparams, const float *dout, const float *inp,
                     const float *out, const float *params, const StepCtx *c, int B) {
    (void)dparams, (void)inp, (void)params, (void)c;
    if (dinp) relu_backward(dinp, dout, out, (size_t)B * shape_numel(l->in));
}
static void gelu_fwd(Layer *l, float *out, const float *inp, const float *params, float *bufs,
                     const StepCtx *c, int B) {
    (void)params, (void)bufs, (void)c;
    gelu_forward(out, inp, (size_t)B * shape_numel(l->in));
}
static void gelu_bwd(Layer *l, float *dinp, float *dparams, const float *dout, const float *inp,
                     const float *out, const float *params, const StepCtx *c, int B) {
    (void)dparams, (void)out, (void)params, (void)c;
    if (dinp) gelu_backward(dinp, dout, inp, (size_t)B * shape_numel(l->in));
}

const LayerKind layer_relu = {"relu", setup_same_shape, NULL, relu_fwd, relu_bwd};
const LayerKind layer_gelu = {"gelu", setup_same_shape, NULL, gelu_fwd, gelu_bwd};
