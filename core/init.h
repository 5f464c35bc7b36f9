// init.h: PyTorch's default initializations, drawn from Philox so they are a pure function
// of (seed, layer id, parameter index).
#pragma once
#include <stddef.h>
#include <math.h>
#include <stdint.h>

// w[i] ~ U(-bound, bound), counter {i/4, param_index, 0, PHILOX_STREAM_INIT}, key {seed, layer_id}.
void init_uniform(float *w, size_t n, float bound, uint32_t seed, int layer_id, int param_index);
// kaiming_uniform_(a=sqrt(5)) as nn.Linear/nn.Conv2d use: bound = 1/sqrt(fan_in).
// Their default bias init uses the same bound.
static inline float init_fan_in_bound(size_t fan_in) {
    return fan_in ? 1.0f / sqrtf((float)fan_in) : 0.0f;
}
void init_constant(float *w, size_t n, float value);
