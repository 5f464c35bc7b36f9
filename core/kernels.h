// kernels.h: the plain layer kernels, callable directly (tests, and layers built from others).
// Conventions (llm.c): outputs first, then inputs, then sizes; backward accumulates into
// parameter gradients and overwrites the input gradient.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "philox.h"

void linear_forward(float *out, const float *inp, const float *weight, const float *bias, int B,
                    int C, int OC);
void linear_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, int B, int C, int OC);
void relu_forward(float *out, const float *inp, size_t N);
void relu_backward(float *dinp, const float *dout, const float *out, size_t N);
void gelu_forward(float *out, float *cdf, const float *inp, size_t N);
void gelu_backward(float *dinp, const float *dout, const float *inp, const float *cdf, size_t N);
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                       const float *bias, int B, int D, float eps);
void layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, const float *mean,
                        const float *rstd, int B, int D);
void dropout_mask(uint8_t *keep, size_t n, float p, philox_key key, uint32_t sample,
                  uint32_t step, uint32_t stream);
