// optim.h: SGD (momentum, Nesterov), Adam (weight_decay is coupled L2, as torch.optim.Adam)
// and AdamW (decoupled decay, as torch.optim.AdamW), formulas exactly as torch.optim 1.13.
// Parameter groups are automatic: weight_decay applies only to table entries whose role is
// PARAM_WEIGHT (weight matrices and kernels; ParamDesc.decay), never to biases or norm scales.
#pragma once
#include <stdint.h>

#include "params.h"

typedef enum { OPTIM_SGD = 0, OPTIM_ADAM = 1, OPTIM_ADAMW = 2, OPTIM_NKINDS } OptimKind;
// optim.name's values, indexed by OptimKind, NULL-terminated (optim.c checks the length)
extern const char *const optim_kind_names[OPTIM_NKINDS + 1];

typedef struct {
    OptimKind kind;
    float lr;            // base learning rate; the schedule scales it per step
    float weight_decay;  // SGD/Adam: coupled (added to the gradient); AdamW: decoupled
    float momentum;      // SGD
    float dampening;     // SGD
    int nesterov;        // SGD
    float beta1, beta2;  // Adam, AdamW
    float eps;           // Adam, AdamW
} OptimConfig;

typedef struct {
    OptimConfig cfg;
    size_t n;       // floats, = table.n_trainable
    float *m;       // SGD momentum_buffer, or Adam exp_avg; same layout as params
    float *v;       // Adam exp_avg_sq (NULL for SGD)
    int64_t step;   // optimizer steps taken
} Optim;

const char *optim_kind_name(OptimKind k);  // "?" for no kind
int optim_init(Optim *o, const OptimConfig *cfg, size_t n);  // 0, or -1 out of memory
void optim_free(Optim *o);
// One step at learning rate lr over every trainable entry of t, with the gradients taken times
// grad_scale (gradient clipping's factor, 1 for none): the same bits as scaling them in place
// first. AdamW (and Adam where a group has no weight decay) applies it as it reads, saving the
// pass; the forms that add a decay or momentum term to the scaled gradient scale grads in place,
// as the compiler may fuse that product and sum into one rounding.
void optim_step(Optim *o, float *params, float *grads, const ParamTable *t, float lr,
                float grad_scale);
