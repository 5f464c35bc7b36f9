// model.h: a model is an ordered list of named layers over one flat parameter buffer.
// Build once from specs, plan activations once for the largest batch, then every
// forward/backward runs without allocating.
#pragma once
#include "layer.h"

// Called after each layer's backward with the slice of model.grads that is now final
// (offset, count in floats). Layers run in reverse, so slices arrive from the end of
// the buffer towards the start. dist/ launches bucket all-reduces from here.
typedef void (*GradReadyFn)(void *ctx, size_t offset, size_t count);

typedef struct {
    Layer *layers;
    int nlayers;
    Shape in;          // per-sample input shape
    int num_classes;   // per-sample output is (num_classes)
    ParamTable table;
    float *params;     // (table.n_trainable)
    float *grads;      // (table.n_trainable), same layout as params
    float *bufs;       // (table.n_buffer)
    int max_batch;     // what the activations are planned for
    float **acts;      // acts[i] is layer i's output, (max_batch, out_i)
    float **dacts;     // dacts[i] is d loss / d acts[i]
    GradReadyFn grad_ready;
    void *grad_ready_ctx;
} Model;

// Validates specs against the input shape and declares every parameter; allocates the
// parameter, gradient and buffer storage (zeroed). ERR_INPUT names the offending layer.
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

// A one-line summary per layer into buf ("fc1  linear  (784) -> (256)  200,960 params").
void model_describe(const Model *m, char *buf, size_t len);
