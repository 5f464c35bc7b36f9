// conv3x3.c: the 3x3, stride-1, padding-1 convolution computed directly, for inputs with few
// channels (C < 4: a first layer on grey or RGB images), where Winograd does not pay and
// im2col's GEMM has a depth of only 9 C. Each output row is a sum of 9 C shifted input rows,
// so a sweep per output row loads the shifted rows once (masked at the edges: the padding is
// never stored) and multiplies them into 8 output channels at a time; the weight gradient
// sums each sample's products per lane and adds them up in double.
//
// out (B,OC,H,W), inp (B,C,H,W), weight (OC,C,3,3), bias (OC) or NULL, dout (B,OC,H,W).
// Per output, the sum runs over (c, ky, kx) in order with fused multiply-adds, then the bias
// is added: not the bits of the im2col GEMM (whose order is OpenBLAS's), the same values to
// float rounding (test_core_conv3x3 checks both kernels against a double reference).
// Being the layer's matrix products, their time and FLOPs count as GEMM in the profile
// (seq.c's prof_layer), with no bytes of elementwise work.
#include <string.h>

#include "kernels.h"

#ifdef __AVX512F__
#include <immintrin.h>

// The lanes of input row x0 + lane + dx (dx = -1, 0, 1 at m[0 .. 2]) that lie in the row
// (W wide) and under an output (x0 + lane < W): the padding is never read.
static inline void shift_masks(__mmask16 m[3], int W, int x0) {
    int n = W - x0 < 16 ? W - x0 : 16;
    unsigned all = n >= 16 ? 0xFFFFu : (1u << n) - 1;
    m[0] = (__mmask16)(x0 == 0 ? all & ~1u : all);                     // x = -1 is padding
    m[1] = (__mmask16)all;
    m[2] = (__mmask16)(x0 + n == W ? all & ~(1u << (n - 1)) : all);    // x = W is padding
}

// Lanes x0 .. x0+15 of input row `row` shifted by dx, masked by shift_masks' m.
static inline __m512 shifted(const float *row, int x0, int dx, const __mmask16 m[3]) {
    return _mm512_maskz_loadu_ps(m[dx + 1], row + x0 + dx);
}

#define C3_MAX 3  // channels the vector kernels hold in registers (conv3x3_applies)
#define OCB 8     // output channels a sweep computes at once

void conv3x3_forward(float *out, const float *inp, const float *weight, const float *bias,
                     int B, int C, int H, int W, int OC) {
    // the weights as wt[o / OCB][c*9 + k][o % OCB], zero past OC, so every block is whole
    int nb = (OC + OCB - 1) / OCB;
    float wt[nb][9 * C][OCB];
    memset(wt, 0, sizeof wt);
    for (int o = 0; o < OC; o++)
        for (int k = 0; k < 9 * C; k++) wt[o / OCB][k][o % OCB] = weight[(size_t)o * C * 9 + k];
    for (int b = 0; b < B; b++)
        for (int y = 0; y < H; y++)
            for (int x0 = 0; x0 < W; x0 += 16) {
                int nv = 0;
                __mmask16 ms[3];
                shift_masks(ms, W, x0);
                __m512 v[9 * C3_MAX];
                int k_of[9 * C3_MAX];  // the weight index c*9 + ky*3 + kx of each loaded row
                for (int c = 0; c < C; c++)
                    for (int ky = 0; ky < 3; ky++) {
                        int iy = y + ky - 1;
                        if (iy < 0 || iy >= H) continue;
                        const float *row = inp + (((size_t)b * C + c) * H + iy) * W;
                        for (int kx = 0; kx < 3; kx++) {
                            v[nv] = shifted(row, x0, kx - 1, ms);
                            k_of[nv++] = (c * 3 + ky) * 3 + kx;
                        }
                    }
                for (int ob = 0; ob < nb; ob++) {
                    __m512 acc[OCB];
                    for (int j = 0; j < OCB; j++) acc[j] = _mm512_setzero_ps();
                    for (int t = 0; t < nv; t++) {
                        const float *w = wt[ob][k_of[t]];
                        for (int j = 0; j < OCB; j++)
                            acc[j] = _mm512_fmadd_ps(_mm512_set1_ps(w[j]), v[t], acc[j]);
                    }
                    for (int j = 0; j < OCB && ob * OCB + j < OC; j++) {
                        int o = ob * OCB + j;
                        __m512 r = bias ? _mm512_add_ps(acc[j], _mm512_set1_ps(bias[o])) : acc[j];
                        _mm512_mask_storeu_ps(out + (((size_t)b * OC + o) * H + y) * W + x0, ms[1], r);
                    }
                }
            }
}

void conv3x3_dweight(float *dweight, const float *dout, const float *inp, int B, int C, int H,
                     int W, int OC) {
    float zrow[W + 2];  // the padding rows above and below: read as zeros, from zrow + 1
    memset(zrow, 0, sizeof zrow);
    double sum[OC][C][9];  // per weight, the samples' sums in sample order
    memset(sum, 0, sizeof sum);
    for (int b = 0; b < B; b++)  // a sample's dout planes in memory order: one stream
        for (int o = 0; o < OC; o++)
            for (int c = 0; c < C; c++) {
                __m512 acc[9];
                for (int k = 0; k < 9; k++) acc[k] = _mm512_setzero_ps();
                const float *x = inp + ((size_t)b * C + c) * H * W;
                const float *g = dout + ((size_t)b * OC + o) * H * W;
                for (int y = 0; y < H; y++) {
                    const float *r[3];
                    for (int ky = 0; ky < 3; ky++) {
                        int iy = y + ky - 1;
                        r[ky] = iy >= 0 && iy < H ? x + (size_t)iy * W : zrow + 1;
                    }
                    for (int x0 = 0; x0 < W; x0 += 16) {
                        __mmask16 ms[3];
                        shift_masks(ms, W, x0);
                        __m512 d = _mm512_maskz_loadu_ps(ms[1], g + (size_t)y * W + x0);
                        _mm_prefetch((const char *)(g + (size_t)(H + y) * W + x0), _MM_HINT_T0);
                        for (int ky = 0; ky < 3; ky++)
                            for (int kx = 0; kx < 3; kx++)
                                acc[ky * 3 + kx] = _mm512_fmadd_ps(
                                    d, shifted(r[ky], x0, kx - 1, ms), acc[ky * 3 + kx]);
                    }
                }
                for (int k = 0; k < 9; k++) sum[o][c][k] += _mm512_reduce_add_ps(acc[k]);
            }
    for (int o = 0; o < OC; o++)
        for (int c = 0; c < C; c++)
            for (int k = 0; k < 9; k++) dweight[((size_t)o * C + c) * 9 + k] += (float)sum[o][c][k];
}

#else

// The same sums, one output at a time: the portable build's (and the sanitizers') path.
void conv3x3_forward(float *out, const float *inp, const float *weight, const float *bias,
                     int B, int C, int H, int W, int OC) {
    for (int b = 0; b < B; b++)
        for (int o = 0; o < OC; o++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    float s = 0.0f;
                    for (int c = 0; c < C; c++)
                        for (int ky = 0; ky < 3; ky++) {
                            int iy = y + ky - 1;
                            if (iy < 0 || iy >= H) continue;
                            const float *row = inp + (((size_t)b * C + c) * H + iy) * W;
                            const float *w = weight + ((size_t)o * C + c) * 9 + ky * 3;
                            for (int kx = 0; kx < 3; kx++) {
                                int ix = x + kx - 1;
                                if (ix >= 0 && ix < W) s += w[kx] * row[ix];
                            }
                        }
                    out[(((size_t)b * OC + o) * H + y) * W + x] = bias ? s + bias[o] : s;
                }
}

void conv3x3_dweight(float *dweight, const float *dout, const float *inp, int B, int C, int H,
                     int W, int OC) {
    double sum[OC][C][9];
    memset(sum, 0, sizeof sum);
    for (int b = 0; b < B; b++)
        for (int o = 0; o < OC; o++)
            for (int c = 0; c < C; c++) {
                float acc[9] = {0};
                const float *x = inp + ((size_t)b * C + c) * H * W;
                const float *g = dout + ((size_t)b * OC + o) * H * W;
                for (int y = 0; y < H; y++)
                    for (int ky = 0; ky < 3; ky++) {
                        int iy = y + ky - 1;
                        if (iy < 0 || iy >= H) continue;
                        for (int kx = 0; kx < 3; kx++)
                            for (int xx = 0; xx < W; xx++) {
                                int ix = xx + kx - 1;
                                if (ix >= 0 && ix < W)
                                    acc[ky * 3 + kx] += g[(size_t)y * W + xx] * x[(size_t)iy * W + ix];
                            }
                    }
                for (int k = 0; k < 9; k++) sum[o][c][k] += acc[k];
            }
    for (int o = 0; o < OC; o++)
        for (int c = 0; c < C; c++)
            for (int k = 0; k < 9; k++) dweight[((size_t)o * C + c) * 9 + k] += (float)sum[o][c][k];
}

#endif
