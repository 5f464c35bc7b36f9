// shuffle.h: the per-epoch permutation of the training set, a pure function of (seed, epoch),
// so every rank computes the same one and a resumed run continues with the same order.
#pragma once
#include <stdint.h>

// perm (n) = a uniform random permutation of 0..n-1 (Fisher-Yates on Philox draws).
void shuffle_permutation(int64_t *perm, int64_t n, uint32_t seed, int64_t epoch);
