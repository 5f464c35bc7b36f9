// philox.h: Philox4x32-10 counter-based RNG (Salmon et al., SC'11; Random123).
// A random number is a pure function of (key, counter): no state is carried between
// steps, so a checkpoint needs only the seed and the step, and resume is exact.
//
// regdist's counter layout (see DESIGN.md, "Randomness"):
//   key     = { seed, layer id (or a purpose id for non-layer draws) }
//   counter = { element block, global sample index, step, stream }
// stream separates purposes that share a key: training dropout, initialization,
// shuffling, Monte-Carlo prediction passes.
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef struct { uint32_t v[4]; } philox_ctr;
typedef struct { uint32_t v[2]; } philox_key;

enum {
    PHILOX_STREAM_TRAIN = 0,       // dropout-family masks during training
    PHILOX_STREAM_INIT = 1,        // parameter initialization
    PHILOX_STREAM_SHUFFLE = 2,     // per-epoch permutation
    PHILOX_STREAM_MC_BASE = 0x100  // Monte-Carlo prediction pass k uses MC_BASE + k
};
enum { PHILOX_KEY_SHUFFLE = 0xFFFFFFFFu };  // key word 1 for the data permutation

// out = Philox4x32-10(key, ctr): four independent uniform 32-bit words.
philox_ctr philox4x32_10(philox_ctr ctr, philox_key key);

// Sixteen consecutive counters at once: out[w][j] = word w of philox4x32_10({c0 + j, c1, c2,
// c3}, key) for j = 0..15 (c0 + j wrapping as uint32), bit for bit (with AVX-512 the sixteen
// run in the lanes of a vector: dropout masks cost a tenth as much).
void philox4x32_10_x16(uint32_t out[4][16], philox_ctr ctr, philox_key key);

// out (n) = Bernoulli bytes from the stream of words: out[e] = 1 if word e % 4 of
// philox4x32_10({c0 + e / 4, c1, c2, c3}, key) >= threshold, else 0 (with AVX-512, 256 bytes
// at a time, compared and packed in registers).
void philox_bytes_ge(uint8_t *out, size_t n, uint32_t threshold, philox_ctr ctr, philox_key key);

// Uniform float in [0, 1) from the top 24 bits of a word.
static inline float philox_unit(uint32_t u) { return (float)(u >> 8) * (1.0f / 16777216.0f); }

// Uniform double in [0, 1) from two words (53 bits).
static inline double philox_unit53(uint32_t hi, uint32_t lo) {
    uint64_t x = ((uint64_t)hi << 21) ^ (uint64_t)(lo >> 11);
    return (double)(x & ((1ull << 53) - 1)) * (1.0 / 9007199254740992.0);
}
