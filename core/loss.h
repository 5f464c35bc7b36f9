// loss.h: softmax cross-entropy with label smoothing, numerically stable.
// Target distribution (PyTorch's definition): 1-eps+eps/K on the true class, eps/K elsewhere.
#pragma once
#include <stdint.h>

// logits and dlogits are (B, K), y is (B).
// Writes dlogits = (softmax - target) * grad_scale (grad_scale = 1/global batch for a mean).
// Returns the sum over the B samples of the per-sample loss; *correct += argmax hits.
double xent_forward_backward(float *dlogits, int64_t *correct, const float *logits,
                             const int32_t *y, int B, int K, float smoothing, float grad_scale);

// Eval: probs (B, K) = softmax(logits) (may be NULL); returns the summed loss.
double xent_forward(float *probs, int64_t *correct, const float *logits, const int32_t *y, int B,
                    int K, float smoothing);
