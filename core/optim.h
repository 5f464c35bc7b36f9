// optim.h: SGD (momentum, Nesterov), Adam (weight_decay is coupled L2, as torch.optim.Adam)
// and AdamW (decoupled decay, as torch.optim.AdamW), formulas exactly as torch.optim 1.13.
// Parameter groups are automatic: weight_decay applies only to table entries with
// decay set (weight matrices and kernels), never to biases, norm scales or any 1-D tensor.
#pragma once
#include <stdint.h>

#include "params.h"

typedef enum { OPTIM_SGD = 0, OPTIM_ADAM = 1, OPTIM_ADAMW = 2 } OptimKind;

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

const char *optim_kind_name(OptimKind k);
int optim_init(Optim *o, const OptimConfig *cfg, size_t n);  // 0, or -1 out of memory
void optim_free(Optim *o);
// One step at learning rate lr over every trainable entry of t.
void optim_step(Optim *o, float *params, const float *grads, const ParamTable *t, float lr);
