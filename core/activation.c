// activation.c: ReLU and GELU (exact erf form, PyTorch's default), elementwise.
// GELU saves Phi(x) in forward so backward needs only exp, and its loops run on glibc's
// vector erff/expf (libmvec): math.h declares those only under -ffast-math, so we declare
// them here and build this file with -fopenmp-simd (and, like all of regdist, -fno-math-errno).
#include <math.h>

#pragma omp declare simd notinbranch
float erff(float);
#pragma omp declare simd notinbranch
float expf(float);

#include "kernels.h"
#include "prof.h"
#include "layer.h"

// out, inp are (N)
void relu_forward(float *out, const float *inp, size_t N) {
    prof_bytes(2.0 * N);
    for (size_t i = 0; i < N; i++) out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}
// dinp = dout where the output was positive. out is relu's output, (N).
void relu_backward(float *dinp, const float *dout, const float *out, size_t N) {
    prof_bytes(3.0 * N);
    for (size_t i = 0; i < N; i++) dinp[i] = out[i] > 0.0f ? dout[i] : 0.0f;
}

#define INV_SQRT2 0.70710678118654752440f
#define INV_SQRT_2PI 0.39894228040143267794f

// out = x Phi(x) with Phi(x) = 0.5 (1 + erf(x / sqrt 2)); cdf (N) keeps Phi(x) for backward.
void gelu_forward(float *out, float *cdf, const float *inp, size_t N) {
    prof_bytes(3.0 * N);  // read x, write out and cdf
#pragma omp simd
    for (size_t i = 0; i < N; i++) {
        float x = inp[i];
        float c = 0.5f * (1.0f + erff(x * INV_SQRT2));
        cdf[i] = c;
        out[i] = x * c;
    }
}
// dinp = dout * (Phi(x) + x phi(x)), (N)
void gelu_backward(float *dinp, const float *dout, const float *inp, const float *cdf, size_t N) {
    prof_bytes(4.0 * N);  // read dout, x and cdf, write dinp
#pragma omp simd
    for (size_t i = 0; i < N; i++) {
        float x = inp[i];
        float pdf = INV_SQRT_2PI * expf(-0.5f * x * x);
        dinp[i] = dout[i] * (cdf[i] + x * pdf);
    }
}

static int setup_same_shape(Layer *l, Shape in, ParamTable *t, Err *e) {
    (void)t;
    (void)e;
    l->out = in;
    return ERR_OK;
}

static int gelu_setup(Layer *l, Shape in, ParamTable *t, Err *e) {
    l->save_bytes_per_sample = shape_numel(in) * sizeof(float);  // Phi(x)
    return setup_same_shape(l, in, t, e);
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
    gelu_forward(out, l->save, inp, (size_t)B * shape_numel(l->in));
}
static void gelu_bwd(Layer *l, float *dinp, float *dparams, const float *dout, const float *inp,
                     const float *out, const float *params, const StepCtx *c, int B) {
    (void)dparams, (void)out, (void)params, (void)c;
    if (dinp) gelu_backward(dinp, dout, inp, l->save, (size_t)B * shape_numel(l->in));
}

const LayerKind layer_relu = {.type = "relu", .flags = LAYER_RELU, .setup = setup_same_shape, .forward = relu_fwd, .backward = relu_bwd};
const LayerKind layer_gelu = {.type = "gelu", .setup = gelu_setup, .forward = gelu_fwd, .backward = gelu_bwd};
