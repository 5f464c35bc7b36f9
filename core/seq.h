// seq.h: a list of layers run in order: the model itself, and a residual block's branch.
// Activations are planned once for the largest batch; forward and backward allocate nothing.
#pragma once
#include "layer.h"

// Called after each layer's backward with the slice of the gradient buffer that is now
// final (offset, count in floats). Layers run in reverse, so slices arrive from the end of
// the buffer towards the start. dist/ launches bucket all-reduces from here.
typedef void (*GradReadyFn)(void *ctx, size_t offset, size_t count);

typedef struct {
    Layer *layers;
    int n;
    float **acts;   // acts[i] is layer i's output, (max_batch, out_i)
    float **dacts;  // dacts[i] is d loss / d acts[i]
    int first_param;  // the first layer with trainable parameters (n if none): backward runs
                      // no layer before it, and gives it no input gradient, unless asked for din
} Seq;

// Sets up specs[0..n) on input shape `in`: layer i gets Philox id id_base + i and parameter
// names "<prefix><name>.<param>". *out gets the shape of the last layer's output.
int seq_setup(Seq *s, const LayerSpec *specs, int n, Shape in, const char *prefix, int id_base,
              ParamTable *t, Shape *out, Err *e);
int seq_plan(Seq *s, int max_batch, Err *e);
void seq_free(Seq *s);  // the plan and the layers
void seq_init(const Seq *s, float *params, float *bufs, uint32_t seed);

// x is (B, in); returns the last layer's output, (B, out).
const float *seq_forward(Seq *s, const float *x, const float *params, float *bufs,
                         const StepCtx *c, int B);
// dout is d loss / d output (B, out); din (B, in) gets d loss / d x (skipped if NULL: then
// the layers before first_param are not run back, and it gets no input gradient);
// grads accumulates. ready (may be NULL) is told each layer's finished gradient slice.
void seq_backward(Seq *s, float *din, float *grads, const float *dout, const float *x,
                  const float *params, const StepCtx *c, int B, const ParamTable *t,
                  GradReadyFn ready, void *ready_ctx);

// FLOPs per sample of one training step's matrix products over the layers (their kinds'
// flops hooks); need_dinp: whether the first layer's input gradient is computed (not for the
// model's first layer). Without it, no layer up to first_param computes one.
double seq_flops(const Seq *s, int need_dinp);
