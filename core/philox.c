// philox.c: Philox4x32-10 exactly as Random123 defines it (10 rounds, bumped key).
#include "philox.h"

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

void philox4x32_10_x16(uint32_t out[4][16], philox_ctr c, philox_key k) {
    const __m512i m0 = _mm512_set1_epi32((int)PHILOX_M0), m1 = _mm512_set1_epi32((int)PHILOX_M1);
    __m512i x0 = _mm512_add_epi32(_mm512_set1_epi32((int)c.v[0]),
                                  _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13,
                                                    14, 15));
    __m512i x1 = _mm512_set1_epi32((int)c.v[1]), x2 = _mm512_set1_epi32((int)c.v[2]);
    __m512i x3 = _mm512_set1_epi32((int)c.v[3]);
    uint32_t k0 = k.v[0], k1 = k.v[1];
    for (int r = 0; r < 10; r++) {
        __m512i hi0, lo0, hi1, lo1;
        mulhilo16(m0, x0, &hi0, &lo0);
        mulhilo16(m1, x2, &hi1, &lo1);
        x0 = _mm512_xor_si512(_mm512_xor_si512(hi1, x1), _mm512_set1_epi32((int)k0));
        x1 = lo1;
        x2 = _mm512_xor_si512(_mm512_xor_si512(hi0, x3), _mm512_set1_epi32((int)k1));
        x3 = lo0;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    _mm512_storeu_si512(out[0], x0);
    _mm512_storeu_si512(out[1], x1);
    _mm512_storeu_si512(out[2], x2);
    _mm512_storeu_si512(out[3], x3);
}
#else
void philox4x32_10_x16(uint32_t out[4][16], philox_ctr c, philox_key k) {
    for (uint32_t j = 0; j < 16; j++) {
        philox_ctr r = philox4x32_10((philox_ctr){{c.v[0] + j, c.v[1], c.v[2], c.v[3]}}, k);
        for (int w = 0; w < 4; w++) out[w][j] = r.v[w];
    }
}
#endif
