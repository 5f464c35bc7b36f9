// regularize.h: coupled L1/L2 penalties and gradient clipping by global norm.
#pragma once
#include "params.h"

// grads += l2 * w + l1 * sign(w) on entries with decay set (weight matrices and kernels).
// (l2 is the gradient coefficient: the penalty is l2/2 * ||w||^2.)
void reg_l1_l2(float *grads, const float *params, const ParamTable *t, float l1, float l2);

// Penalty value l1 * sum|w| + l2/2 * sum w^2 over decayed entries (for reporting).
double reg_penalty(const float *params, const ParamTable *t, float l1, float l2);

// L2 norm of the whole gradient buffer, accumulated in double.
double grad_global_norm(const float *grads, size_t n);
// torch.nn.utils.clip_grad_norm_'s factor for a gradient of this norm: min(1, max_norm /
// (norm + 1e-6)) as a float (1 when nothing is clipped). Training hands it to optim_step,
// which applies it as it reads the gradients.
float grad_clip_scale(double norm, float max_norm);

// 1 if every one of the n gradients is finite (no NaN, no Inf), else 0.
int grads_finite(const float *grads, size_t n);
