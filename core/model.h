// model.h: a model is an ordered list of named layers over one flat parameter buffer.
// Build once from specs, plan activations once for the largest batch, then every
// forward/backward runs without allocating.
#pragma once
#include "seq.h"

typedef struct {
    LayerSpec *specs;  // (nspecs) the model's own copy of the specs, out = "classes" resolved;
    int nspecs;        // the layers (and residual branches) point into it
    Seq seq;           // the layers, in order, with their planned activations
    Shape in;          // per-sample input shape
    int num_classes;   // per-sample output is (num_classes)
    ParamTable table;
    float *params;     // (table.n_trainable)
    float *grads;      // (table.n_trainable), same layout as params
    float *bufs;       // (table.n_buffer)
    int max_batch;     // what the activations are planned for
    float *dlogits;    // (max_batch, num_classes): where the loss writes its gradient
    GradReadyFn grad_ready;
    void *grad_ready_ctx;
} Model;

// Validates specs against the input shape and declares every parameter; allocates the
// parameter, gradient and buffer storage (zeroed). ERR_INPUT names the offending layer.
// A spec whose out is LAYER_OUT_CLASSES (residual branches included) gets num_classes.
int model_build(Model *m, const LayerSpec *specs, int nspecs, Shape in, int num_classes, Err *e);
// Allocates activations and saved values for batches of up to max_batch samples.
int model_plan(Model *m, int max_batch, Err *e);
void model_free(Model *m);

// PyTorch's default initialization from the seed.
void model_init(Model *m, uint32_t seed);

// x is (B, in). Returns the logits, (B, num_classes), valid until the next forward.
const float *model_forward(Model *m, const float *x, int B, const StepCtx *c);
// Accumulates into m->grads the gradient of the loss whose logit gradient is dlogits (B, K).
// Must follow the forward of the same batch.
void model_backward(Model *m, const float *x, const float *dlogits, int B, const StepCtx *c);
void model_zero_grad(Model *m);
