// conv2d.c: 2-D convolution as nn.Conv2d (square kernel, stride, zero padding, groups = 1).
// weight (OC, C, K, K), bias (OC). Samples are lowered with im2col a chunk at a time into one
// (C*K*K, nb*OH*OW) column matrix, so each product is one wide sgemm: a single sample's
// OH*OW (49 at 7x7) is too narrow for the GEMM to run near its peak. Backward recomputes the
// chunk's columns from the input instead of saving every sample's columns in forward: a
// chunk rebuilt in cache costs less than a batch of columns written to and read back from
// memory (115 MB for a 32->32 layer at 28x28, batch 128), and the layer keeps only a fixed
// scratch of one chunk.
#include <cblas.h>
#include <string.h>

#include "init.h"
#include "kernels.h"
#include "prof.h"
#include "layer.h"

// Output positions ow in [lo, hi) whose input column ow*S - P + kx lies inside [0, W).
static void valid_range(int *lo, int *hi, int kx, int S, int P, int W, int OW) {
    int a = P - kx;  // need ow*S >= a
    int l = a <= 0 ? 0 : (a + S - 1) / S;
    int b = W + P - kx;  // need ow*S < b
    int h = b <= 0 ? 0 : (b + S - 1) / S;
    *lo = l < OW ? l : OW;
    *hi = h < OW ? h : OW;
    if (*hi < *lo) *hi = *lo;
}

// One im2col row of a stride-1 convolution whose output is as wide as its input (2P = K-1,
// the common "same" case): the row is the image x (H,W) shifted by (dy, dx), so it is one
// contiguous copy, after which the columns outside [lo, hi) (where the copy wrapped around
// a line) and the lines outside the image are zeroed.
static void im2col_row_same(float *row, const float *x, int H, int W, int OH, int dy, int dx,
                            int lo, int hi) {
    int ohlo = dy < 0 ? -dy : 0, ohhi = H - dy < OH ? H - dy : OH;
    if (ohhi < ohlo) ohhi = ohlo;
    long d0 = (long)ohlo * W, n = (long)(ohhi - ohlo) * W, s0 = (long)(ohlo + dy) * W + dx;
    if (s0 < 0) d0 -= s0, n += s0, s0 = 0;
    if (s0 + n > (long)H * W) n = (long)H * W - s0;
    if (n > 0) memcpy(row + d0, x + s0, (size_t)n * sizeof(float));
    memset(row, 0, (size_t)ohlo * W * sizeof(float));
    memset(row + (size_t)ohhi * W, 0, (size_t)(OH - ohhi) * W * sizeof(float));
    for (int oh = ohlo; oh < ohhi; oh++) {
        float *r = row + (size_t)oh * W;
        for (int ow = 0; ow < lo; ow++) r[ow] = 0.0f;
        for (int ow = hi; ow < W; ow++) r[ow] = 0.0f;
    }
}

// col (C*K*K rows, row stride ld) gets the input patches of inp (C,H,W) in its first OH*OW
// columns; zero where the padding is.
static void im2col_ld(float *col, size_t ld, const float *inp, int C, int H, int W, int K, int S,
                      int P, int OH, int OW) {
    for (int c = 0; c < C; c++)
        for (int ky = 0; ky < K; ky++)
            for (int kx = 0; kx < K; kx++) {
                float *row = col + ((size_t)(c * K + ky) * K + kx) * ld;
                int lo, hi;
                valid_range(&lo, &hi, kx, S, P, W, OW);
                if (S == 1 && OW == W) {
                    im2col_row_same(row, inp + (size_t)c * H * W, H, W, OH, ky - P, kx - P, lo,
                                    hi);
                    continue;
                }
                for (int oh = 0; oh < OH; oh++) {
                    float *r = row + (size_t)oh * OW;
                    int ih = oh * S - P + ky;
                    if (ih < 0 || ih >= H) {
                        memset(r, 0, (size_t)OW * sizeof(float));
                        continue;
                    }
                    const float *x = inp + ((size_t)c * H + ih) * W;
                    int off = kx - P;  // iw = ow*S + off
                    for (int ow = 0; ow < lo; ow++) r[ow] = 0.0f;
                    if (S == 1)
                        memcpy(r + lo, x + lo + off, (size_t)(hi - lo) * sizeof(float));
                    else
                        for (int ow = lo; ow < hi; ow++) r[ow] = x[ow * S + off];
                    for (int ow = hi; ow < OW; ow++) r[ow] = 0.0f;
                }
            }
}

// dinp (C,H,W) = the sum of col (C*K*K rows, row stride ld, OH*OW columns) back onto the input
// positions (overwritten).
static void col2im_ld(float *dinp, const float *col, size_t ld, int C, int H, int W, int K, int S,
                      int P, int OH, int OW) {
    memset(dinp, 0, (size_t)C * H * W * sizeof(float));
    for (int c = 0; c < C; c++)
        for (int ky = 0; ky < K; ky++)
            for (int kx = 0; kx < K; kx++) {
                const float *row = col + ((size_t)(c * K + ky) * K + kx) * ld;
                int lo, hi;
                valid_range(&lo, &hi, kx, S, P, W, OW);
                int off = kx - P;
                for (int oh = 0; oh < OH; oh++) {
                    int ih = oh * S - P + ky;
                    if (ih < 0 || ih >= H) continue;
                    const float *r = row + (size_t)oh * OW;
                    float *x = dinp + ((size_t)c * H + ih) * W;
                    if (S == 1) {
                        float *xo = x + off;
                        for (int ow = lo; ow < hi; ow++) xo[ow] += r[ow];
                    } else
                        for (int ow = lo; ow < hi; ow++) x[ow * S + off] += r[ow];
                }
            }
}

// col (C*K*K, OH*OW) gets the input patches of inp (C,H,W); zero where the padding is.
void conv2d_im2col(float *col, const float *inp, int C, int H, int W, int K, int S, int P, int OH,
                   int OW) {
    im2col_ld(col, (size_t)OH * OW, inp, C, H, W, K, S, P, OH, OW);
}

// dinp (C,H,W) = the sum of col (C*K*K, OH*OW) back onto the input positions (overwritten).
void conv2d_col2im(float *dinp, const float *col, int C, int H, int W, int K, int S, int P, int OH,
                   int OW) {
    col2im_ld(dinp, col, (size_t)OH * OW, C, H, W, K, S, P, OH, OW);
}

// Columns per chunk: enough for a wide GEMM, few enough that the chunk's columns (C*K*K rows)
// stay in cache between im2col and the GEMM that reads them.
#define CHUNK_COL_FLOATS (1u << 18)

static int chunk_samples(int CKK, int N, int B) {
    long nb = (long)CHUNK_COL_FLOATS / ((long)CKK * N);
    if (nb < 1) nb = 1;
    return nb < B ? (int)nb : B;
}

// Forward's samples per chunk: one sample where its output alone is wide enough for the GEMM
// (N >= 512: 28x28 and up), whose product then lands in out directly, without the reorder
// copy a chunk needs (cnn6_mlp4's conv1a, 1 -> 32 at 28x28: forward about 1 ms a step less,
// 5 alternating pairs); else chunk_samples.
static int forward_chunk(int CKK, int N, int B) { return N >= 512 ? 1 : chunk_samples(CKK, N, B); }

// Floats of scratch a chunk of nb samples needs: its columns (C*K*K, nb*N) and, when nb > 1,
// its outputs in GEMM order (OC, nb*N).
static size_t work_floats(int CKK, int OC, int N, int nb) {
    return (size_t)CKK * nb * N + (nb > 1 ? (size_t)OC * nb * N : 0);
}

// out is (B,OC,OH,OW), inp is (B,C,H,W), weight is (OC,C,K,K), bias is (OC) or NULL; work
// holds work_floats(C*K*K, OC, OH*OW, nb) floats.
static void forward_chunked(float *out, float *work, int nb, const float *inp,
                            const float *weight, const float *bias, int B, int C, int H, int W,
                            int OC, int K, int S, int P) {
    int OH = (H + 2 * P - K) / S + 1, OW = (W + 2 * P - K) / S + 1;
    int CKK = C * K * K, N = OH * OW;
    for (int b0 = 0; b0 < B; b0 += nb) {
        int n = B - b0 < nb ? B - b0 : nb;
        size_t ld = (size_t)n * N;
        float *col = work, *y = nb > 1 ? work + (size_t)CKK * nb * N : out + (size_t)b0 * OC * N;
        for (int b = 0; b < n; b++)
            im2col_ld(col + (size_t)b * N, ld, inp + (size_t)(b0 + b) * C * H * W, C, H, W, K,
                      S, P, OH, OW);
        prof_sgemm(CblasNoTrans, CblasNoTrans, OC, (int)ld, CKK, 1.0f, weight,
                    CKK, col, (int)ld, 0.0f, y, (int)ld);
        // (OC, n, N) -> (n, OC, N), adding the bias on the way
        for (int b = 0; b < n; b++)
            for (int o = 0; o < OC; o++) {
                float *dst = out + ((size_t)(b0 + b) * OC + o) * N;
                const float *src = y + (size_t)o * ld + (size_t)b * N;
                float bo = bias ? bias[o] : 0.0f;
                if (nb > 1 && !bias)
                    memcpy(dst, src, (size_t)N * sizeof(float));
                else if (bias || nb > 1)
                    for (int i = 0; i < N; i++) dst[i] = src[i] + bo;
            }
    }
}

// dbias (OC) += the sums of dout (B,OC,N).
static void bias_grad(float *dbias, const float *dout, int B, int OC, int N) {
    for (int b = 0; b < B; b++)
        for (int o = 0; o < OC; o++) {
            const float *d = dout + ((size_t)b * OC + o) * N;
            float s = 0.0f;
            for (int i = 0; i < N; i++) s += d[i];
            dbias[o] += s;
        }
}

// The output gradient of samples [b0, b0 + n), (n, OC, N): in dout, or, where the layer after
// hands it over by samples (src not NULL, dout NULL), written into buf (n OC N floats) now,
// while the chunk that uses it is about to run. dbias (OC), unless NULL, += its sums.
static const float *dout_chunk(float *dbias, const float *dout, const SampleRange *src,
                               float *buf, int b0, int n, int OC, int N) {
    const float *dy = dout ? dout + (size_t)b0 * OC * N : buf;
    if (!dout) sample_range_dinp(src, buf, b0, n);
    if (dbias) bias_grad(dbias, dy, n, OC, N);  // chunk by chunk: the same sums in order
    return dy;
}

// The input of samples [b0, b0 + n), (n, C, H, W), CHW = C H W: in inp, or, where the layer
// before hands it over by samples (src not NULL, inp NULL), written into buf now.
static const float *inp_chunk(const float *inp, const SampleRange *src, float *buf, int b0,
                              int n, size_t CHW) {
    if (inp) return inp + (size_t)b0 * CHW;
    sample_range_out(src, buf, b0, n);
    return buf;
}

// Scratch for the handed chunks (dout_chunk, inp_chunk) at the start of a work area: *dbuf
// and *xbuf (NULL where not handed), and the area after them.
static float *handed_bufs(float **dbuf, float **xbuf, float *work, const float *dout,
                          const float *inp, int nb, size_t OCN, size_t CHW) {
    *dbuf = dout ? NULL : work;
    work += dout ? 0 : nb * OCN;
    *xbuf = inp ? NULL : work;
    return work + (inp ? 0 : nb * CHW);
}

// dinp (B,C,H,W) = col2im(W^T dout) (overwritten; skipped if NULL); dweight (OC,C,K,K) +=
// dout col^T; dbias (OC) += sums of dout (skipped if NULL). dout is (B,OC,OH,OW), inp is
// (B,C,H,W), either NULL and handed over by dsrc, xsrc (dout_chunk, inp_chunk); work as
// forward_chunked's, after handed_bufs' scratch.
static void backward_chunked(float *dinp, float *dweight, float *dbias, float *work, int nb,
                             const float *dout, const SampleRange *dsrc, const float *inp,
                             const SampleRange *xsrc, const float *weight, int B, int C, int H,
                             int W, int OC, int K, int S, int P) {
    int OH = (H + 2 * P - K) / S + 1, OW = (W + 2 * P - K) / S + 1;
    int CKK = C * K * K, N = OH * OW;
    float *dbuf, *xbuf;
    work = handed_bufs(&dbuf, &xbuf, work, dout, inp, nb, (size_t)OC * N, (size_t)C * H * W);
    for (int b0 = 0; b0 < B; b0 += nb) {
        int n = B - b0 < nb ? B - b0 : nb;
        size_t ld = (size_t)n * N;
        float *col = work;
        const float *dy = dout_chunk(dbias, dout, dsrc, dbuf, b0, n, OC, N);
        const float *x = inp_chunk(inp, xsrc, xbuf, b0, n, (size_t)C * H * W);
        if (nb > 1) {  // (n, OC, N) -> (OC, n, N)
            float *g = work + (size_t)CKK * nb * N;
            for (int b = 0; b < n; b++)
                for (int o = 0; o < OC; o++)
                    memcpy(g + (size_t)o * ld + (size_t)b * N, dy + ((size_t)b * OC + o) * N,
                           (size_t)N * sizeof(float));
            dy = g;
        }
        for (int b = 0; b < n; b++)
            im2col_ld(col + (size_t)b * N, ld, x + (size_t)b * C * H * W, C, H, W, K, S, P, OH,
                      OW);
        prof_sgemm(CblasNoTrans, CblasTrans, OC, CKK, (int)ld, 1.0f, dy, (int)ld,
                    col, (int)ld, 1.0f, dweight, CKK);
        if (!dinp) continue;
        prof_sgemm(CblasTrans, CblasNoTrans, CKK, (int)ld, OC, 1.0f, weight, CKK,
                    dy, (int)ld, 0.0f, col, (int)ld);
        for (int b = 0; b < n; b++)
            col2im_ld(dinp + (size_t)(b0 + b) * C * H * W, col + (size_t)b * N, ld, C, H, W, K, S,
                      P, OH, OW);
    }
}

// Whether the input gradient is a forward convolution of dout: a stride-1 convolution whose
// padding keeps the size ("same"), where dinp = conv(dout, W rotated 180 degrees with in and
// out channels swapped), padded as forward is.
static int same_size(int K, int S, int P) { return S == 1 && 2 * P == K - 1; }

// Whether backward takes that route: dout's columns (OC*K*K rows) must be no more than the
// col2im's (C*K*K). With more outputs than inputs the scatter measured faster (32 -> 64
// channels at 14x14, batch 128: 13.3 ms against 14.3). Without dinp the route differs only
// in its chunk (sized for max(C,OC)*K*K rows), which measured faster for a 1-channel input
// (1 -> 32 at 28x28: 1.1 ms against 3.1).
static int rotated_backward(int K, int S, int P, int C, int OC, int need_dinp) {
    return same_size(K, S, P) && (!need_dinp || C >= OC);
}

// wr (C, OC, K, K) gets weight (OC, C, K, K) rotated by 180 degrees in (ky, kx).
static void rotate_weight(float *wr, const float *weight, int C, int OC, int K) {
    int KK = K * K;
    for (int o = 0; o < OC; o++)
        for (int c = 0; c < C; c++) {
            const float *w = weight + ((size_t)o * C + c) * KK;
            float *r = wr + ((size_t)c * OC + o) * KK;
            for (int i = 0; i < KK; i++) r[KK - 1 - i] = w[i];
        }
}

// Whether a layer takes a Winograd route (winograd.c, winograd4.c): 3x3, stride 1, padding 1,
// at 7x7 and up, where it measured faster than im2col (thread CPU time, batch 128, one core
// with AVX-512; see the commit messages for the numbers), but not for fewer than 4 input
// channels, whose products have a depth of 1 to 3 (1 -> 32 at 28x28, F(2x2): forward 2.4 ->
// 3.1 ms, weight gradient 1.6 -> 4.2).
static int winograd_applies(int K, int S, int P, int C, int H, int W) {
    return K == 3 && S == 1 && P == 1 && C >= 4 && H >= 7 && W >= 7;
}

// Whether a layer's forward is computed directly (direct3x3.c): 3x3, stride 1, padding 1, and
// too few input channels for Winograd, whose im2col GEMM would have a depth of 9 to 27.
// cnn6_mlp4's conv1a (1 -> 32 at 28x28, batch 128): im2col and GEMM 2.2-2.4 ms, the direct
// AVX-512 loop 1.2-1.5, bound by writing its 12.8 MB output. Without AVX-512 the portable loop
// took 3.3 ms, so such builds keep im2col.
static int direct_applies(int K, int S, int P, int C) {
#ifdef __AVX512F__
    return K == 3 && S == 1 && P == 1 && C < 4;
#else
    (void)K, (void)S, (void)P, (void)C;
    return 0;
#endif
}

// Which Winograd tile a Winograd layer takes: 4 (F(4x4, 3x3), 36 products per 4x4 tile)
// where its GEMMs multiply at most 0.75 times as much as F(2x2)'s (16 per 2x2 tile), tiles
// hanging over the edges counted, else 2. cnn6_mlp4's and rescnn's 28x28 and 7x7 layers take
// F(4x4) (0.56), and so do their 14x14 ones, which F(4x4) pads to 16x16 (0.73). Measured per
// layer, forward + both gradients, batch 128, one core, F(4x4) against F(2x2): 32 -> 32 at
// 28x28 25.4 ms against 32.2, 64 -> 128 at 7x7 12.3 / 18.4, 128 -> 128 at 7x7 21.5 / 34.0
// (loaded machine); 32 -> 64 at 14x14 9.6 / 12.1, 64 -> 64 at 14x14 15.6 / 22.8
// (launch/bench/conv_bench, quiet).
// F(4x4)'s float32 error is about 15x F(2x2)'s (5e-6 of the largest output against 3e-7;
// test_core_winograd prints it per layer shape, docs/performance.md). The 14x14 layers were
// kept on F(2x2) for a while for it, but one AdamW step of cnn6_mlp4 on 1 and on 2 ranks
// leaves as many parameters more than 1e-6 apart either way (9 of 624,746 with F(2x2) there,
// 10 with F(4x4)), the world-size tests pass at their tolerances, and the 30-epoch curves
// match (docs/performance.md).
static int winograd_tile(int H, int W) {
    long p4 = 36L * ((H + 3) / 4) * ((W + 3) / 4), p2 = 16L * ((H + 1) / 2) * ((W + 1) / 2);
    return 4 * p4 <= 3 * p2 ? 4 : 2;
}

// Samples per Winograd chunk: about WINO_CHUNK_TILES tiles (at least one sample), the width
// of its 16 GEMMs, few enough that the chunk's transformed tensors stay in cache. All six
// convolutions of cnn6_mlp4 (fwd + bwd, thread CPU ms, 5 alternating rounds): 128 tiles 127-138
// (median 131), 256 tiles 134-141 (median 137), 512 tiles 145-151 (2 rounds).
#define WINO_CHUNK_TILES 128
static int wino_chunk(int H, int W, int B) {
    long per = (long)((H + 1) / 2) * ((W + 1) / 2), nb = WINO_CHUNK_TILES / per;
    if (nb < 1) nb = 1;
    return nb < B ? (int)nb : B;
}

// Samples per F(4x4) chunk: as many tiles as keep its transformed tensors (36 (C + OC)
// floats a tile) within about 1 MiB, this CPU's L2, and at least 16 (one vector of tiles).
// Measured (whole layer, batch 128): 128 -> 128 at 7x7 best at 32 tiles (1 MiB: 28), 64 ->
// 128 at 64 (37), 32 -> 32 at 28x28 at 128 (113); 256 tiles was slower everywhere.
// Where a sample's tiles divide 16 (7x7: 4), the chunk is rounded to whole vectors of 16
// tiles: the transforms' last vector runs full, and OpenBLAS's small-matrix GEMM is much
// faster at a multiple of 16 columns (128 x 128 by 128 x N, hot caches: N = 28 took 7.2 us,
// N = 32 5.1 us).
static int wino4_chunk(int C, int OC, int H, int W, int B) {
    long tiles = (1L << 20) / (36L * (C + OC) * (long)sizeof(float));
    if (tiles < 16) tiles = 16;
    long per = (long)((H + 3) / 4) * ((W + 3) / 4), nb = (tiles + per / 2) / per;
    if (per < 16 && 16 % per == 0) {
        long q = 16 / per;  // samples a vector of tiles
        nb = (nb + q / 2) / q * q;
        if (nb < q) nb = q;
    }
    if (nb < 1) nb = 1;
    return nb < B ? (int)nb : B;
}

// Floats of scratch a chunk of nb samples needs in the same-size backward: columns of the
// larger of inp and dout (max(C,OC)*K*K, nb*N) and, when nb > 1, dout or dinp in GEMM order.
static size_t same_work_floats(int C, int OC, int KK, int N, int nb) {
    int R = C > OC ? C : OC;
    return (size_t)R * KK * nb * N + (nb > 1 ? (size_t)R * nb * N : 0);
}

// backward_chunked for a same-size convolution: dinp is the GEMM of the rotated weights wr
// (C, OC, K, K) with dout's columns, written once (beta = 0), with no col2im scatter.
static void backward_same(float *dinp, float *dweight, float *dbias, float *work, int nb,
                          const float *wr, const float *dout, const SampleRange *dsrc,
                          const float *inp, const SampleRange *xsrc, int B, int C, int H, int W,
                          int OC, int K, int P) {
    int CKK = C * K * K, OKK = OC * K * K, N = H * W, R = C > OC ? C : OC;
    float *dbuf, *xbuf;
    work = handed_bufs(&dbuf, &xbuf, work, dout, inp, nb, (size_t)OC * N, (size_t)C * N);
    for (int b0 = 0; b0 < B; b0 += nb) {
        int n = B - b0 < nb ? B - b0 : nb;
        size_t ld = (size_t)n * N;
        float *col = work, *g = work + (size_t)R * K * K * nb * N;
        const float *dn = dout_chunk(dbias, dout, dsrc, dbuf, b0, n, OC, N), *dy = dn;
        const float *x = inp_chunk(inp, xsrc, xbuf, b0, n, (size_t)C * N);
        if (nb > 1) {  // (n, OC, N) -> (OC, n, N)
            for (int b = 0; b < n; b++)
                for (int o = 0; o < OC; o++)
                    memcpy(g + (size_t)o * ld + (size_t)b * N, dn + ((size_t)b * OC + o) * N,
                           (size_t)N * sizeof(float));
            dy = g;
        }
        for (int b = 0; b < n; b++)
            im2col_ld(col + (size_t)b * N, ld, x + (size_t)b * C * N, C, H, W, K, 1, P, H, W);
        prof_sgemm(CblasNoTrans, CblasTrans, OC, CKK, (int)ld, 1.0f, dy, (int)ld,
                    col, (int)ld, 1.0f, dweight, CKK);
        if (!dinp) continue;
        for (int b = 0; b < n; b++)
            im2col_ld(col + (size_t)b * N, ld, dn + (size_t)b * OC * N, OC, H, W, K, 1, P, H, W);
        float *dx = nb > 1 ? g : dinp + (size_t)b0 * C * N;
        prof_sgemm(CblasNoTrans, CblasNoTrans, C, (int)ld, OKK, 1.0f, wr, OKK,
                    col, (int)ld, 0.0f, dx, (int)ld);
        if (nb > 1)  // (C, n, N) -> (n, C, N)
            for (int b = 0; b < n; b++)
                for (int c = 0; c < C; c++)
                    memcpy(dinp + ((size_t)(b0 + b) * C + c) * N,
                           g + (size_t)c * ld + (size_t)b * N, (size_t)N * sizeof(float));
    }
}

// The samples per chunk that a work area of `have` floats allows (at least 1, where nb = 1
// needs only the columns).
static int chunk_fitting(size_t have, int CKK, int OC, int N, int B) {
    int nb = chunk_samples(CKK, N, B);
    while (nb > 1 && work_floats(CKK, OC, N, nb) > have) nb--;
    return nb;
}

// out is (B,OC,OH,OW), col is (B, C*K*K, OH*OW): every sample's columns on return (the layer
// itself saves none), inp is (B,C,H,W), weight is (OC,C,K,K), bias is (OC) or NULL.
// OH = (H + 2P - K)/S + 1, likewise OW.
void conv2d_forward(float *out, float *col, const float *inp, const float *weight,
                    const float *bias, int B, int C, int H, int W, int OC, int K, int S, int P) {
    int OH = (H + 2 * P - K) / S + 1, OW = (W + 2 * P - K) / S + 1;
    int CKK = C * K * K, N = OH * OW;
    int nb = chunk_fitting((size_t)B * CKK * N, CKK, OC, N, B);
    forward_chunked(out, col, nb, inp, weight, bias, B, C, H, W, OC, K, S, P);
    for (int b = 0; b < B; b++)
        conv2d_im2col(col + (size_t)b * CKK * N, inp + (size_t)b * C * H * W, C, H, W, K, S, P,
                      OH, OW);
}

// dinp (B,C,H,W) = col2im(W^T dout) (overwritten; skipped if NULL); dweight (OC,C,K,K) +=
// dout col^T; dbias (OC) += sums of dout (skipped if NULL). dout is (B,OC,OH,OW), col is
// forward's (B, C*K*K, OH*OW): used as scratch and rebuilt from inp (B,C,H,W) before return.
void conv2d_backward(float *dinp, float *dweight, float *dbias, float *col, const float *dout,
                     const float *inp, const float *weight, int B, int C, int H, int W, int OC,
                     int K, int S, int P) {
    int OH = (H + 2 * P - K) / S + 1, OW = (W + 2 * P - K) / S + 1;
    int CKK = C * K * K, N = OH * OW;
    size_t have = (size_t)B * CKK * N, nwr = (size_t)C * OC * K * K;
    int R = C > OC ? C : OC, nb = chunk_samples(R * K * K, N, B);
    while (nb > 1 && nwr + same_work_floats(C, OC, K * K, N, nb) > have) nb--;
    if (rotated_backward(K, S, P, C, OC, dinp != NULL) &&
        nwr + same_work_floats(C, OC, K * K, N, nb) <= have) {
        rotate_weight(col, weight, C, OC, K);
        backward_same(dinp, dweight, dbias, col + nwr, nb, col, dout, NULL, inp, NULL, B, C, H,
                      W, OC, K, P);
    } else {
        nb = chunk_fitting(have, CKK, OC, N, B);
        backward_chunked(dinp, dweight, dbias, col, nb, dout, NULL, inp, NULL, weight, B, C, H,
                         W, OC, K, S, P);
    }
    for (int b = 0; b < B; b++)
        conv2d_im2col(col + (size_t)b * CKK * N, inp + (size_t)b * C * H * W, C, H, W, K, S, P,
                      OH, OW);
}

static int setup(Layer *l, Shape in, ParamTable *t, Err *e) {
    const LayerSpec *s = &l->spec;
    if (in.ndim != 3)
        return err_set(e, ERR_INPUT,
                       "layer %s (conv2d) needs a (C,H,W) input but gets %d dimension%s; set "
                       "model.input = [C, H, W]",
                       s->name, in.ndim, in.ndim == 1 ? "" : "s");
    if (s->out <= 0)
        return err_set(e, ERR_INPUT, "layer %s (conv2d): out must be positive, got %d", s->name,
                       s->out);
    int K = s->kernel, S = s->stride ? s->stride : 1, P = s->padding;
    if (K <= 0 || S <= 0 || P < 0)
        return err_set(e, ERR_INPUT,
                       "layer %s (conv2d): needs kernel >= 1, stride >= 1, padding >= 0 (got %d, "
                       "%d, %d)",
                       s->name, K, S, P);
    int H = in.d[1], W = in.d[2];
    if (H + 2 * P < K || W + 2 * P < K)
        return err_set(e, ERR_INPUT,
                       "layer %s (conv2d): kernel %d does not fit the padded %dx%d input (padding "
                       "%d): no output",
                       s->name, K, H, W, P);
    int OH = (H + 2 * P - K) / S + 1, OW = (W + 2 * P - K) / S + 1;
    l->out = (Shape){3, {s->out, OH, OW}};
    int64_t wshape[4] = {s->out, in.d[0], K, K}, bshape[1] = {s->out};
    if (layer_add_param(l, t, "weight", PARAM_WEIGHT, 4, wshape, e)) return e->code;
    if (s->bias && layer_add_param(l, t, "bias", PARAM_BIAS, 1, bshape, e)) return e->code;
    // Scratch for one chunk, reserved per sample so that any batch B finds room for its
    // chunk (at most B samples of columns and outputs) in B samples' worth: harnesses size
    // the save area by the batch. Only the first chunk's pages are ever written.
    // A same-size convolution's backward also takes dout's columns (OC*K*K rows) and keeps
    // the rotated weights (C*OC*K*K floats) at the start of the save area.
    int C = in.d[0], R = same_size(K, S, P) ? (C > s->out ? C : s->out) : 0;
    l->save_bytes_per_sample = (size_t)(C * K * K + s->out) * OH * OW * sizeof(float);
    if (R) {
        l->save_bytes_per_sample = (size_t)(R * K * K + R) * OH * OW * sizeof(float);
        l->save_bytes_fixed = (size_t)C * s->out * K * K * sizeof(float);
    }
    // Winograd: the chunk's transformed tensors per sample; fixed, the transformed filters
    // (16 or 36 * OC*C floats, forward's, then backward's transformed weight gradient) and
    // the rotated ones (backward, which takes a chunk's weight and input gradients in turn).
    if (winograd_applies(K, S, P, C, H, W)) {
        int four = winograd_tile(H, W) == 4;
        size_t per = (four ? winograd4_work_floats(C, s->out, H, W, 1)
                           : winograd_work_floats(C, s->out, H, W, 1)) * sizeof(float);
        if (per > l->save_bytes_per_sample) l->save_bytes_per_sample = per;
        l->save_bytes_fixed = 2 * (size_t)(four ? 36 : 16) * C * s->out * sizeof(float);
    }
    // The direct path's forward works in the fixed area (backward's, free in forward).
    if (direct_applies(K, S, P, C)) {
        size_t dw = conv3x3_direct_work_floats(C, H, W) * sizeof(float);
        if (dw > l->save_bytes_fixed) l->save_bytes_fixed = dw;
    }
    // and, where the gradient or the input is handed over by samples (handed_bufs), a chunk's
    l->save_bytes_per_sample += ((size_t)s->out * OH * OW + (size_t)C * H * W) * sizeof(float);
    return ERR_OK;
}

static void init(const Layer *l, float *params, float *bufs, uint32_t seed) {
    (void)bufs;
    int K = l->spec.kernel, OC = l->out.d[0];
    size_t fan_in = (size_t)l->in.d[0] * K * K;
    float bound = init_fan_in_bound(fan_in);
    init_uniform(params + l->poff[0], (size_t)OC * fan_in, bound, seed, l->id, 0);
    if (l->spec.bias) init_uniform(params + l->poff[1], (size_t)OC, bound, seed, l->id, 1);
}

// The forward paths, each of which takes the batch nb samples at a time.
typedef enum { FWD_IM2COL, FWD_WINOGRAD2, FWD_WINOGRAD4, FWD_DIRECT } FwdPath;

// With l->out_moments set (seq_forward: a BatchNorm in training follows), or the input
// handed over by samples (inp NULL, l->inp_range), the path runs one of its chunks at a
// time, each a call of its own with the same chunk size (the same work, so the same bits):
// the chunk's output planes give their moments while they are still in cache (BatchNorm then
// never reads the whole output back for its statistics), and its input is written just
// before it is transformed.
static void forward(Layer *l, float *out, const float *inp, const float *params, float *bufs,
                    const StepCtx *c, int B) {
    (void)bufs, (void)c;
    const LayerSpec *s = &l->spec;
    int K = s->kernel, CKK = l->in.d[0] * K * K, N = l->out.d[1] * l->out.d[2];
    int C = l->in.d[0], H = l->in.d[1], W = l->in.d[2], OC = l->out.d[0];
    int S = s->stride ? s->stride : 1;
    float *work = (float *)l->save + l->save_bytes_fixed / sizeof(float), *U = l->save;
    const float *weight = params + l->poff[0], *bias = s->bias ? params + l->poff[1] : NULL;
    FwdPath path = FWD_IM2COL;
    int nb = forward_chunk(CKK, N, B);
    if (winograd_applies(K, S, s->padding, C, H, W)) {
        path = winograd_tile(H, W) == 4 ? FWD_WINOGRAD4 : FWD_WINOGRAD2;
        if (path == FWD_WINOGRAD4) {
            winograd4_filter(U, weight, OC, C, 0);
            nb = wino4_chunk(C, OC, H, W, B);
        } else {
            winograd_filter(U, weight, OC, C, 0);
            nb = wino_chunk(H, W, B);
        }
    } else if (direct_applies(K, S, s->padding, C))
        path = FWD_DIRECT;
    int step = l->out_moments || !inp ? nb : B;
    float *xbuf = work;  // the input's chunk, where the layer before hands it over by samples
    if (!inp) work += (size_t)nb * C * H * W;
    for (int b0 = 0; b0 < B; b0 += step) {
        int n = B - b0 < step ? B - b0 : step;
        const float *x = inp_chunk(inp, l->inp_range, xbuf, b0, n, (size_t)C * H * W);
        float *y = out + (size_t)b0 * OC * N;
        if (path == FWD_WINOGRAD4)
            conv2d_winograd4_forward(y, work, nb, U, x, bias, n, C, H, W, OC);
        else if (path == FWD_WINOGRAD2)
            conv2d_winograd_forward(y, work, nb, U, x, bias, n, C, H, W, OC);
        else if (path == FWD_DIRECT)
            conv3x3_direct_forward(y, U, x, weight, bias, n, C, H, W, OC, 0);
        else
            forward_chunked(y, work, nb, x, weight, bias, n, C, H, W, OC, K, S, s->padding);
        if (l->out_moments)
            batchnorm_plane_moments(l->out_moments + 2 * (size_t)b0 * OC, y, n * OC, N);
    }
}

static void backward(Layer *l, float *dinp, float *dparams, const float *dout, const float *inp,
                     const float *out, const float *params, const StepCtx *c, int B) {
    (void)out, (void)c;
    const LayerSpec *s = &l->spec;
    int K = s->kernel, C = l->in.d[0], OC = l->out.d[0], CKK = C * K * K;
    int N = l->out.d[1] * l->out.d[2], S = s->stride ? s->stride : 1;
    float *dw = dparams + l->poff[0], *db = s->bias ? dparams + l->poff[1] : NULL;
    const float *w = params + l->poff[0];
    int H = l->in.d[1], W = l->in.d[2];
    const SampleRange *dsrc = l->dout_range, *xsrc = l->inp_range;
    if (winograd_applies(K, S, s->padding, C, H, W)) {
        // a chunk at a time: its output gradient, its share of the weight gradient, its input
        // gradient, while the chunk is in cache (the same work and sums as a pass each)
        int four = winograd_tile(H, W) == 4;
        const WinogradKernels *k = four ? &winograd4_kernels : &winograd2_kernels;
        int nb = four ? wino4_chunk(C, OC, H, W, B) : wino_chunk(H, W, B);  // either way round
        float *dU = l->save, *U = dU + (size_t)k->freqs * OC * C, *dbuf, *xbuf;
        float *work = handed_bufs(&dbuf, &xbuf, U + (size_t)k->freqs * OC * C, dout, inp, nb,
                                  (size_t)OC * N, (size_t)C * N);
        if (dinp) k->filter(U, w, OC, C, 1);
        for (int b0 = 0; b0 < B; b0 += nb) {
            int n = B - b0 < nb ? B - b0 : nb;
            const float *dy = dout_chunk(db, dout, dsrc, dbuf, b0, n, OC, N);
            const float *x = inp_chunk(inp, xsrc, xbuf, b0, n, (size_t)C * N);
            k->dweight_chunk(dU, work, nb, dy, x, n, C, H, W, OC, b0 ? 1.0f : 0.0f);
            if (dinp)
                k->forward_chunk(dinp + (size_t)b0 * C * N, work, nb, U, dy, NULL, n, OC, H, W,
                                 C);
        }
        if (B > 0) k->filter_grad(dw, dU, OC, C);
        return;
    }
    if (rotated_backward(K, S, s->padding, C, OC, dinp != NULL)) {
        float *wr = l->save;  // the fixed area: rotated weights, then the chunk's scratch
        if (dinp) rotate_weight(wr, w, C, OC, K);
        backward_same(dinp, dw, db, wr + (size_t)C * OC * K * K,
                      chunk_samples((C > OC ? C : OC) * K * K, N, B), wr, dout, dsrc, inp, xsrc,
                      B, C, H, W, OC, K, s->padding);
        return;
    }
    backward_chunked(dinp, dw, db, l->save, chunk_samples(CKK, N, B), dout, dsrc, inp, xsrc, w,
                     B, C, H, W, OC, K, S, s->padding);
}

// OC*OH*OW outputs per sample, C*K*K multiply-accumulates each.
static double flops(const Layer *l, int need_dinp) {
    int K = l->spec.kernel;
    return layer_matmul_flops((double)shape_numel(l->out) * l->in.d[0] * K * K, need_dinp);
}

static const LayerKeyDesc keys[] = {
    LAYER_KEY_DESC_OUT,
    LAYER_KEY_DESC_KERNEL,
    LAYER_KEY_DESC_STRIDE("1"),
    LAYER_KEY_DESC_PADDING,
    LAYER_KEY_DESC_BIAS,
};

const LayerKind layer_conv2d = {.type = "conv2d", LAYER_KEYS(keys),
                                .flags = LAYER_PLANE_MOMENTS | LAYER_DOUT_BY_RANGE |
                                         LAYER_INP_BY_RANGE,
                                .setup = setup, .init = init,
                                .forward = forward, .backward = backward, .flops = flops};
