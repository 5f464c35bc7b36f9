// shuffle.c: per-epoch permutation (shuffle.h). Each Philox block gives two 64-bit draws;
// j = floor(u * (i + 1) / 2^64) has a bias below n / 2^64, far under anything measurable.
#include "shuffle.h"

#include "philox.h"

void shuffle_permutation(int64_t *perm, int64_t n, uint32_t seed, int64_t epoch) {
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    philox_key key = {{seed, PHILOX_KEY_SHUFFLE}};
    philox_ctr r = {{0}};
    for (int64_t i = n - 1, draw = 0; i > 0; i--, draw++) {
        if (draw % 2 == 0)
            r = philox4x32_10((philox_ctr){{(uint32_t)(draw / 2), (uint32_t)epoch,
                                            (uint32_t)(epoch >> 32), PHILOX_STREAM_SHUFFLE}},
                              key);
        uint64_t u = draw % 2 == 0 ? ((uint64_t)r.v[0] << 32 | r.v[1])
                                   : ((uint64_t)r.v[2] << 32 | r.v[3]);
        int64_t j = (int64_t)(((unsigned __int128)u * (uint64_t)(i + 1)) >> 64);
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}
