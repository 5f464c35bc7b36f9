// direct3x3.c: a 3x3, stride-1, padding-1 ("same") convolution computed directly, for layers
// with few input channels: an image's 1 to 3, where Winograd does not apply (conv2d.c,
// winograd_applies) and im2col makes a GEMM of depth C*9 = 9 to 27. OpenBLAS runs such a
// product far below its rate (cnn6_mlp4's conv1a, 1 -> 32 at 28x28, (32 x 9) @ (9 x 784) a
// sample: 26 GFLOP/s on its AVX-512 kernels, 19 on its Haswell ones, against 160-200 and 80-90
// for the other layers' products), while the direct loop is nine fused multiply-adds an output
// per input channel, in registers.
//
// Each output is the chain acc = fma(w[o][c][ky][kx], x[c][y+ky-1][x+kx-1], acc) from acc = 0
// over (c, ky, kx) in that order, then + bias: the order of the im2col GEMM's depth (its row
// (c*3 + ky)*3 + kx), which OpenBLAS's kernels walk one fused multiply-add at a time, so this
// gives the im2col path's results bit for bit (OpenBLAS's AVX-512 kernels; its Haswell path
// zeroes the output first and can differ in the sign of a zero).
//
// The input goes through a zero-padded copy of one sample, (C, H+2, W+2), so that every tap is
// a fixed offset and the padding is read as the zeros im2col writes. With AVX-512, a vector is
// 16 outputs of one row (the last one masked), four output channels and two vectors at a time:
// eight independent chains, each tap one load of the padded row and four broadcast weights.
// The portable loop gives the same results and is what the tests hold the vector one to;
// builds without AVX-512 keep im2col, which was faster than it (conv2d.c, direct_applies).
#include <string.h>

#include "kernels.h"
#include "prof.h"

#ifdef __AVX512F__
#include <immintrin.h>
#endif

// The floats of pad_sample's copy, (C, H+2, W+2), and a vector more (the last row's masked
// tail).
static size_t pad_floats(int C, int H, int W) {
    return (size_t)C * (H + 2) * (W + 2) + 16;
}

// pad_sample's copy, then sample_generic's plane (H rows of W+2)
size_t conv3x3_direct_work_floats(int C, int H, int W) {
    return pad_floats(C, H, W) + (size_t)H * (W + 2);
}

// pad (C, H+2, W+2) = x (C, H, W) with a border of zeros.
static void pad_sample(float *pad, const float *x, int C, int H, int W) {
    int pw = W + 2;
    size_t ps = (size_t)(H + 2) * pw;
    memset(pad, 0, pad_floats(C, H, W) * sizeof(float));
    for (int c = 0; c < C; c++)
        for (int y = 0; y < H; y++)
            memcpy(pad + c * ps + (size_t)(y + 1) * pw + 1, x + ((size_t)c * H + y) * W,
                   (size_t)W * sizeof(float));
}

// out (OC, H, W) of one sample from its padded input, portable: an output plane at a time in
// plane (H rows of W+2, the last two columns of each row garbage), each tap one pass over it
// (long loops the compiler vectorizes, each output's chain in order), then its W columns
// copied out.
static void sample_generic(float *out, float *plane, const float *pad, const float *weight,
                           const float *bias, int C, int H, int W, int OC) {
    int pw = W + 2, n = H * pw - 2;  // the last row's garbage pair would read past the pad
    size_t ps = (size_t)(H + 2) * pw;
    for (int o = 0; o < OC; o++) {
        for (int i = 0; i < n; i++) plane[i] = 0.0f;
        for (int c = 0; c < C; c++)
            for (int ky = 0; ky < 3; ky++)
                for (int kx = 0; kx < 3; kx++) {
                    float w = weight[((size_t)o * C + c) * 9 + ky * 3 + kx];
                    const float *p = pad + c * ps + (size_t)ky * pw + kx;
                    for (int i = 0; i < n; i++) plane[i] = __builtin_fmaf(w, p[i], plane[i]);
                }
        for (int y = 0; y < H; y++) {
            float *r = out + ((size_t)o * H + y) * W;
            const float *q = plane + (size_t)y * pw;
            if (bias)
                for (int x = 0; x < W; x++) r[x] = q[x] + bias[o];
            else
                memcpy(r, q, (size_t)W * sizeof(float));
        }
    }
}

#ifdef __AVX512F__
// Output channels o0 .. o0+no-1 (no <= 4), row y, the two vectors at columns x0 and x0 + 16
// (nv = 1 or 2; m0, m1 their masks).
static inline __attribute__((always_inline)) void
row_block(float *out, const float *pad, const float *weight, const float *bias, int C, int H,
          int W, int o0, int no, int y, int x0, int nv, __mmask16 m0, __mmask16 m1) {
    int pw = W + 2;
    size_t ps = (size_t)(H + 2) * pw;
    __m512 a[4][2];
    for (int j = 0; j < 4; j++) a[j][0] = a[j][1] = _mm512_setzero_ps();
    for (int c = 0; c < C; c++)
        for (int ky = 0; ky < 3; ky++)
            for (int kx = 0; kx < 3; kx++) {
                const float *p = pad + c * ps + (size_t)(y + ky) * pw + x0 + kx;
                __m512 v0 = _mm512_maskz_loadu_ps(m0, p);
                __m512 v1 = nv > 1 ? _mm512_maskz_loadu_ps(m1, p + 16) : v0;
                const float *w = weight + ((size_t)o0 * C + c) * 9 + ky * 3 + kx;
                for (int j = 0; j < no; j++) {
                    __m512 wj = _mm512_set1_ps(w[(size_t)j * C * 9]);
                    a[j][0] = _mm512_fmadd_ps(wj, v0, a[j][0]);
                    if (nv > 1) a[j][1] = _mm512_fmadd_ps(wj, v1, a[j][1]);
                }
            }
    for (int j = 0; j < no; j++) {
        float *r = out + ((size_t)(o0 + j) * H + y) * W + x0;
        __m512 b = _mm512_set1_ps(bias ? bias[o0 + j] : 0.0f);
        __m512 r0 = bias ? _mm512_add_ps(a[j][0], b) : a[j][0];
        _mm512_mask_storeu_ps(r, m0, r0);
        if (nv > 1) _mm512_mask_storeu_ps(r + 16, m1, bias ? _mm512_add_ps(a[j][1], b) : a[j][1]);
    }
}

static __mmask16 tail_mask(int n) {
    return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1);
}

static void sample_avx512(float *out, const float *pad, const float *weight, const float *bias,
                          int C, int H, int W, int OC) {
    for (int o0 = 0; o0 < OC; o0 += 4) {
        int no = OC - o0 < 4 ? OC - o0 : 4;
        for (int y = 0; y < H; y++)
            for (int x0 = 0; x0 < W; x0 += 32) {
                int nv = W - x0 > 16 ? 2 : 1;
                __mmask16 m0 = tail_mask(W - x0), m1 = nv > 1 ? tail_mask(W - x0 - 16) : 0;
                if (no == 4 && nv == 2)  // the common case, with its loops unrolled
                    row_block(out, pad, weight, bias, C, H, W, o0, 4, y, x0, 2, m0, m1);
                else
                    row_block(out, pad, weight, bias, C, H, W, o0, no, y, x0, nv, m0, m1);
            }
    }
}
#endif

void conv3x3_direct_forward(float *out, float *work, const float *inp, const float *weight,
                            const float *bias, int B, int C, int H, int W, int OC, int portable) {
    double t = prof_start();  // a product like the GEMMs: counted and timed as one
    for (int b = 0; b < B; b++) {
        float *y = out + (size_t)b * OC * H * W, *pad = work;
        pad_sample(pad, inp + (size_t)b * C * H * W, C, H, W);
#ifdef __AVX512F__
        if (!portable) {
            sample_avx512(y, pad, weight, bias, C, H, W, OC);
            continue;
        }
#endif
        sample_generic(y, pad + pad_floats(C, H, W), pad, weight, bias, C, H, W, OC);
    }
    (void)portable;
    prof_gemm_flops(OC, (double)B * H * W, 9.0 * C);
    prof_add(PROF_GEMM, t);
}
