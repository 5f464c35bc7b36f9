// philox.c: Philox4x32-10 exactly as Random123 defines it (10 rounds, bumped key).
#include "philox.h"

#include <string.h>

#ifdef __AVX512F__
#include <immintrin.h>
#endif

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

static inline void mulhilo(uint32_t a, uint32_t b, uint32_t *hi, uint32_t *lo) {
    uint64_t p = (uint64_t)a * b;
    *hi = (uint32_t)(p >> 32);
    *lo = (uint32_t)p;
}

philox_ctr philox4x32_10(philox_ctr c, philox_key k) {
    uint32_t x0 = c.v[0], x1 = c.v[1], x2 = c.v[2], x3 = c.v[3];
    uint32_t k0 = k.v[0], k1 = k.v[1];
    for (int r = 0; r < 10; r++) {
        uint32_t hi0, lo0, hi1, lo1;
        mulhilo(PHILOX_M0, x0, &hi0, &lo0);
        mulhilo(PHILOX_M1, x2, &hi1, &lo1);
        uint32_t y0 = hi1 ^ x1 ^ k0, y1 = lo1, y2 = hi0 ^ x3 ^ k1, y3 = lo0;
        x0 = y0; x1 = y1; x2 = y2; x3 = y3;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    return (philox_ctr){{x0, x1, x2, x3}};
}

#ifdef __AVX512F__
// hi, lo = the 64-bit products a * x of each 32-bit lane, a the same in every lane: even
// lanes from one widening multiply, odd lanes (shifted down) from another.
static inline void mulhilo16(__m512i a, __m512i x, __m512i *hi, __m512i *lo) {
    __m512i pe = _mm512_mul_epu32(a, x);
    __m512i po = _mm512_mul_epu32(a, _mm512_srli_epi64(x, 32));
    *hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(pe, 32), po);
    *lo = _mm512_mask_blend_epi32(0xAAAA, pe, _mm512_slli_epi64(po, 32));
}

// K independent sets of sixteen counters through the ten rounds together: x[w][s] is word w
// of set s, set s starting at counter word 0 = c.v[0] + 16 s. One set's rounds are a chain of
// multiplies at the multiplier's latency; K of them interleaved keep it busy.
static inline void rounds16(int K, __m512i x[4][4], philox_ctr c, philox_key k) {
    const __m512i m0 = _mm512_set1_epi32((int)PHILOX_M0), m1 = _mm512_set1_epi32((int)PHILOX_M1);
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (int s = 0; s < K; s++) {
        x[0][s] = _mm512_add_epi32(_mm512_set1_epi32((int)(c.v[0] + 16u * (uint32_t)s)), lane);
        x[1][s] = _mm512_set1_epi32((int)c.v[1]);
        x[2][s] = _mm512_set1_epi32((int)c.v[2]);
        x[3][s] = _mm512_set1_epi32((int)c.v[3]);
    }
    uint32_t k0 = k.v[0], k1 = k.v[1];
    for (int r = 0; r < 10; r++) {
        const __m512i kk0 = _mm512_set1_epi32((int)k0), kk1 = _mm512_set1_epi32((int)k1);
        for (int s = 0; s < K; s++) {
            __m512i hi0, lo0, hi1, lo1;
            mulhilo16(m0, x[0][s], &hi0, &lo0);
            mulhilo16(m1, x[2][s], &hi1, &lo1);
            x[0][s] = _mm512_xor_si512(_mm512_xor_si512(hi1, x[1][s]), kk0);
            x[1][s] = lo1;
            x[2][s] = _mm512_xor_si512(_mm512_xor_si512(hi0, x[3][s]), kk1);
            x[3][s] = lo0;
        }
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
}

void philox4x32_10_x16(uint32_t out[4][16], philox_ctr c, philox_key k) {
    __m512i x[4][4];
    rounds16(1, x, c, k);
    for (int w = 0; w < 4; w++) _mm512_storeu_si512(out[w], x[w][0]);
}

// Set s's 64 bytes: lane j's 32 bits hold bytes 4j..4j+3, word w's comparison in byte w
// (little-endian), which is element 4j + w's place in the stream.
static inline __m512i bytes_ge(__m512i x[4][4], int s, __m512i t) {
    __m512i v = _mm512_maskz_mov_epi32(_mm512_cmpge_epu32_mask(x[0][s], t), _mm512_set1_epi32(1));
    v = _mm512_or_si512(
        v, _mm512_maskz_mov_epi32(_mm512_cmpge_epu32_mask(x[1][s], t), _mm512_set1_epi32(1 << 8)));
    v = _mm512_or_si512(
        v, _mm512_maskz_mov_epi32(_mm512_cmpge_epu32_mask(x[2][s], t), _mm512_set1_epi32(1 << 16)));
    return _mm512_or_si512(
        v, _mm512_maskz_mov_epi32(_mm512_cmpge_epu32_mask(x[3][s], t), _mm512_set1_epi32(1 << 24)));
}

void philox_bytes_ge(uint8_t *out, size_t n, uint32_t threshold, philox_ctr c, philox_key k) {
    const __m512i t = _mm512_set1_epi32((int)threshold);
    __m512i x[4][4];
    size_t e = 0;
    for (; e + 256 <= n; e += 256) {  // four sets of sixteen counters at once
        rounds16(4, x, (philox_ctr){{c.v[0] + (uint32_t)(e / 4), c.v[1], c.v[2], c.v[3]}}, k);
        for (int s = 0; s < 4; s++) _mm512_storeu_si512(out + e + 64 * s, bytes_ge(x, s, t));
    }
    for (; e < n; e += 64) {
        rounds16(1, x, (philox_ctr){{c.v[0] + (uint32_t)(e / 4), c.v[1], c.v[2], c.v[3]}}, k);
        if (n - e >= 64) {
            _mm512_storeu_si512(out + e, bytes_ge(x, 0, t));
        } else {
            uint8_t last[64];
            _mm512_storeu_si512(last, bytes_ge(x, 0, t));
            memcpy(out + e, last, n - e);
        }
    }
}
#else
void philox4x32_10_x16(uint32_t out[4][16], philox_ctr c, philox_key k) {
    for (uint32_t j = 0; j < 16; j++) {
        philox_ctr r = philox4x32_10((philox_ctr){{c.v[0] + j, c.v[1], c.v[2], c.v[3]}}, k);
        for (int w = 0; w < 4; w++) out[w][j] = r.v[w];
    }
}

void philox_bytes_ge(uint8_t *out, size_t n, uint32_t threshold, philox_ctr c, philox_key k) {
    for (size_t e = 0; e < n; e += 64) {
        uint32_t w[4][16];
        philox4x32_10_x16(w, (philox_ctr){{c.v[0] + (uint32_t)(e / 4), c.v[1], c.v[2], c.v[3]}}, k);
        size_t m = n - e < 64 ? n - e : 64;
        for (size_t i = 0; i < m; i++) out[e + i] = w[i % 4][i / 4] >= threshold;
    }
}
#endif
