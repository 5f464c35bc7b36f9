// synth.h: small synthetic datasets for tests and quick experiments.
#pragma once
#include <stdint.h>

#include "core/err.h"
#include "core/layer.h"

typedef struct {
    Shape shape;         // per-sample shape, e.g. (1,28,28) or (32)
    int num_classes;
    int64_t n_train, n_val, n_test;
    uint32_t seed;
    float noise;         // 0..1: how hard the classes are to tell apart
} SynthSpec;

// Each class has a random prototype; a sample is its prototype plus noise, stored as uint8.
// Deterministic in the seed (Philox).
int synth_write(const char *out, const SynthSpec *s, Err *e);
