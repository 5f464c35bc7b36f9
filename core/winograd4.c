// winograd4.c: 3x3, stride-1, padding-1 ("same") convolution by Winograd's minimal filtering
// F(4x4, 3x3), beside winograd.c's F(2x2, 3x3). Each 4x4 output tile comes from a 6x6 input
// tile: Y = A^T [(G g G^T) . (B^T d B)] A, 36 products per 16 outputs (2.25 per output,
// against F(2x2)'s 4 and im2col's 9), so a chunk of samples becomes 36 GEMMs (OC x C) @
// (C x tiles). The interpolation points are 0, 1, -1, 1/2, -1/2 and infinity (Lavin & Gray
// 2016 take +-2; +-1/2 gives the mirrored matrices, whose B^T is integer): B^T's rows are
// scaled to integers and G takes the reciprocal factors, so the data transforms are exact
// small-integer sums and the inexact thirds and sixths sit in the filter transform, whose
// matrix is computed in double and rounded once. The weight gradient reads the identity backwards:
// dU = (A dY A^T) . (B^T d B) summed over tiles (36 GEMMs), dW = G^T dU G.
// Transformed tensors are (36, channels, tiles), planes winograd_plane(channels, ld) apart,
// tile t = sample * TH*TW + ty * TW + tx (but see by_lanes) with TH = ceil(H/4),
// TW = ceil(W/4); tiles hanging over an edge see zeros in and write nothing out. The portable
// transforms read and write through zero-padded copies of one channel of the chunk (every
// tile a fixed offset into it, no edge cases). With AVX-512, planes 4 to 7
// tiles wide (28x28) go by lines, two tile rows a vector, straight from the tensor
// (rows4_avx512, output4_rows_avx512); the others take 16 tiles of the chunk's flattened tile
// grid a vector, gathering their pixels from the padded copy.
#include <cblas.h>
#include <string.h>

#include "kernels.h"
#include "prof.h"

#ifdef __AVX512F__
#include <immintrin.h>
#endif

static size_t tiles4_of(int nb, int H, int W) {
    return (size_t)nb * ((H + 3) / 4) * ((W + 3) / 4);
}

// Padded copy of one channel of nb samples: (nb, 4*TH + 2, 4*TW + 2), the image at (1, 1).
static size_t pad_floats(int nb, int H, int W) {
    return (size_t)nb * (4 * ((H + 3) / 4) + 2) * (4 * ((W + 3) / 4) + 2);
}

size_t winograd4_work_floats(int C, int OC, int H, int W, int nb) {
    // as winograd_work_floats: the planes' rounding bounded, 32 floats each
    return (size_t)36 * ((C + OC) * tiles4_of(nb, H, W) + 64) + pad_floats(nb, H, W);
}

// G, scaled to match B^T (see the top): G = [1 0 0; 1/6 1/6 1/6; 1/6 -1/6 1/6;
// -4/3 -2/3 -1/3; -4/3 2/3 -1/3; 0 0 1/4].
static const double G4[6][3] = {{1, 0, 0},
                                {1.0 / 6, 1.0 / 6, 1.0 / 6},
                                {1.0 / 6, -1.0 / 6, 1.0 / 6},
                                {-4.0 / 3, -2.0 / 3, -1.0 / 3},
                                {-4.0 / 3, 2.0 / 3, -1.0 / 3},
                                {0, 0, 0.25}};

// gg (36, 9) = G (x) G, the filter transform as one matrix: u = gg g for a filter g of 9
// taps (row-major 3x3) and its 6x6 transform u, each entry rounded once from double; with
// rotate, for the filter rotated by 180 degrees (tap k is g[8 - k]).
static void filter_matrix(float gg[36][9], int rotate) {
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 6; j++)
            for (int a = 0; a < 3; a++)
                for (int b = 0; b < 3; b++)
                    gg[6 * i + j][rotate ? 8 - (3 * a + b) : 3 * a + b] = (float)(G4[i][a] * G4[j][b]);
}

// The filter transform is a (36 x 9) @ (9 x OC*C) product: one GEMM (per input channel when
// rotated, whose output order (c, o) strides the weights by C*9), instead of 36 scattered
// scalar sums per filter (those took 5% of a cnn6_mlp4 step). With AVX-512, the product's
// own kernel: blocks of 256 filters, their taps gathered once (tap-major), 16 filters a
// vector, each of the 36 entries the chain of fused multiply-adds over the 9 taps in order
// that OpenBLAS's kernels compute (so the same bits), stored straight into U; the GEMM first
// zeroed U (beta = 0) in a pass of its own, over a 2.4 MB U at 128 x 128 channels (0.23 ms a
// transform, 0.14 with this kernel).
void winograd4_filter(float *U, const float *weight, int OC, int C, int rotate) {
    float gg[36][9];
    filter_matrix(gg, rotate);
    int n = OC * C;
#ifdef __AVX512F__
    double t1 = prof_start();  // a product like the GEMMs: counted and timed as one
    enum { BLK = 256 };        // filters a block: each plane then gets 1 KiB in a row
    float g[9][BLK];           // the block's taps, tap-major
    for (int t0 = 0; t0 < n; t0 += BLK) {
        int nt = n - t0 < BLK ? n - t0 : BLK;
        for (int v = 0; v < nt; v += 16) {
            int src[16];  // the weight offset of U's filter t: (o, c) = (t / C, t % C), or
                          // rotated (t % OC, t / OC)
            for (int l = 0; l < 16; l++) {
                int t = t0 + v + l < n ? t0 + v + l : t0;
                src[l] = (rotate ? (t % OC) * C + t / OC : t) * 9;
            }
            __m512i at = _mm512_loadu_si512(src);
            for (int k = 0; k < 9; k++) {
                __m512i tap = _mm512_add_epi32(at, _mm512_set1_epi32(k));
                _mm512_storeu_ps(g[k] + v, _mm512_i32gather_ps(tap, weight, 4));
            }
        }
        for (int f = 0; f < 36; f++)
            for (int v = 0; v < nt; v += 16) {
                __m512 acc = _mm512_setzero_ps();
                for (int k = 0; k < 9; k++)
                    acc = _mm512_fmadd_ps(_mm512_set1_ps(gg[f][k]), _mm512_loadu_ps(g[k] + v), acc);
                __mmask16 m = nt - v >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (nt - v)) - 1);
                _mm512_mask_storeu_ps(U + (size_t)f * n + t0 + v, m, acc);
            }
    }
    prof_gemm_flops(36, n, 9);
    prof_add(PROF_GEMM, t1);
#else
    if (!rotate) {
        prof_sgemm(CblasNoTrans, CblasTrans, 36, n, 9, 1.0f, &gg[0][0], 9, weight,
                    9, 0.0f, U, n);
        return;
    }
    for (int c = 0; c < C; c++)  // U[f][c][o] = sum_k gg[f][k] weight[o][c][8 - k]
        prof_sgemm(CblasNoTrans, CblasTrans, 36, OC, 9, 1.0f, &gg[0][0], 9,
                    weight + (size_t)c * 9, C * 9, 0.0f, U + (size_t)c * OC, n);
#endif
}

// dweight (OC*C, 9) += dU^T gg: G^T dU G for every filter in one GEMM.
void winograd4_filter_grad(float *dweight, const float *dU, int OC, int C) {
    float gg[36][9];
    filter_matrix(gg, 0);
    int n = OC * C;
    prof_sgemm(CblasTrans, CblasNoTrans, n, 9, 36, 1.0f, dU, n, &gg[0][0], 9,
                1.0f, dweight, 9);
}

// The 1-D transforms, written once as macros so that the scalar and the vector code share
// them: ADD, SUB and MUL(x, k) are the element operations.
// B^T d: v0 = d0 - 5 d2 + 4 d4, v1 = -d1 - d2 + 4 (d3 + d4), v2 = d1 - d2 + 4 (d4 - d3),
// v3 = -d1 - 2 d2 + d3 + 2 d4, v4 = d1 - 2 d2 - d3 + 2 d4, v5 = d1 - 5 d3 + 4 d5.
#define BT6(v, d)                                                                          \
    do {                                                                                   \
        v[0] = ADD(SUB(d[0], MUL(d[2], 5.0f)), MUL(d[4], 4.0f));                           \
        v[1] = SUB(MUL(ADD(d[3], d[4]), 4.0f), ADD(d[1], d[2]));                           \
        v[2] = ADD(SUB(d[1], d[2]), MUL(SUB(d[4], d[3]), 4.0f));                           \
        v[3] = ADD(SUB(d[3], d[1]), MUL(SUB(d[4], d[2]), 2.0f));                           \
        v[4] = SUB(SUB(d[1], d[3]), MUL(SUB(d[2], d[4]), 2.0f));                           \
        v[5] = ADD(SUB(d[1], MUL(d[3], 5.0f)), MUL(d[5], 4.0f));                           \
    } while (0)
// A^T m: y0 = m0 + m1 + m2 + m3 + m4, y1 = m1 - m2 + (m3 - m4)/2,
// y2 = m1 + m2 + (m3 + m4)/4, y3 = m1 - m2 + (m3 - m4)/8 + m5.
#define AT6(y, m)                                                                          \
    do {                                                                                   \
        float_t_ p_ = ADD(m[1], m[2]), q_ = SUB(m[1], m[2]), r_ = ADD(m[3], m[4]),         \
                s_ = SUB(m[3], m[4]);                                                      \
        y[0] = ADD(ADD(m[0], p_), r_);                                                     \
        y[1] = ADD(q_, MUL(s_, 0.5f));                                                     \
        y[2] = ADD(p_, MUL(r_, 0.25f));                                                    \
        y[3] = ADD(ADD(q_, MUL(s_, 0.125f)), m[5]);                                        \
    } while (0)
// A dY (dY has 4 entries): D0 = y0, D1 = y0 + y1 + y2 + y3, D2 = y0 - y1 + y2 - y3,
// D3 = y0 + y1/2 + y2/4 + y3/8, D4 = y0 - y1/2 + y2/4 - y3/8, D5 = y3.
#define A6(v, y)                                                                           \
    do {                                                                                   \
        float_t_ e_ = ADD(y[0], y[2]), o_ = ADD(y[1], y[3]),                               \
                 e2_ = ADD(y[0], MUL(y[2], 0.25f)),                                        \
                 o2_ = ADD(MUL(y[1], 0.5f), MUL(y[3], 0.125f));                            \
        v[0] = y[0], v[1] = ADD(e_, o_), v[2] = SUB(e_, o_);                               \
        v[3] = ADD(e2_, o2_), v[4] = SUB(e2_, o2_), v[5] = y[3];                           \
    } while (0)

#define float_t_ float
#define ADD(a, b) ((a) + (b))
#define SUB(a, b) ((a) - (b))
#define MUL(a, k) ((a) * (k))

// dst[0 .. n) = src[0 .. n). The padded copies move lines of 28 floats or fewer, too short for
// a memcpy call to pay (the call was 3.5% of a cnn6_mlp4 step).
static inline void copy_line(float *dst, const float *src, int n) {
#ifdef __AVX512F__
    int i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, _mm512_loadu_ps(src + i));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(dst + i, m, _mm512_maskz_loadu_ps(m, src + i));
    }
#else
    memcpy(dst, src, (size_t)n * sizeof(float));
#endif
}

// pad (nb, Hp, Wp) gets channel c of inp (nb, C, H, W) at (oy, ox); the rest must be zero
// already (only the interior is written).
static void pad_channel(float *pad, const float *inp, int nb, int C, int c, int H, int W, int Hp,
                        int Wp, int oy, int ox) {
    for (int b = 0; b < nb; b++) {
        const float *x = inp + ((size_t)b * C + c) * H * W;
        float *p = pad + (size_t)b * Hp * Wp + (size_t)oy * Wp + ox;
        for (int y = 0; y < H; y++) copy_line(p + (size_t)y * Wp, x + (size_t)y * W, W);
    }
}

#ifdef __AVX512F__
// Channel c of the nb samples of x (nb, C, H, W) into cache (T0 measured better than T1):
// the planes a channel loop reads next lie C*H*W apart, a stride the hardware prefetcher does
// not follow. Always inlined: as a function of its own, GCC finds it free of side effects and
// drops its calls.
static inline __attribute__((always_inline)) void prefetch_channel(const float *x, int nb,
                                                                   int C, int c, int HW) {
    for (int b = 0; c < C && b < nb; b++)
        for (int k = 0; k < HW; k += 16)
            _mm_prefetch((const char *)(x + ((size_t)b * C + c) * HW + k), _MM_HINT_T0);
}

// The same for planes about to be written (prefetchw: the lines arrive owned).
static inline __attribute__((always_inline)) void prefetchw_channel(float *x, int nb, int C,
                                                                    int c, int HW) {
    for (int b = 0; c < C && b < nb; b++)
        for (int k = 0; k < HW; k += 16) __builtin_prefetch(x + ((size_t)b * C + c) * HW + k, 1, 3);
}
#endif

// The offset of each tile's top-left pixel in the padded copy.
static void tile_offsets(int *off, int nb, int TH, int TW, int Hp, int Wp) {
    int t = 0;
    for (int b = 0; b < nb; b++)
        for (int ty = 0; ty < TH; ty++)
            for (int tx = 0; tx < TW; tx++) off[t++] = b * Hp * Wp + 4 * ty * Wp + 4 * tx;
}

// V (36, C, ld): the input tiles of inp (nb, C, H, W); pad holds pad_floats(nb, H, W).
static void input4_generic(float *V, size_t ld, float *pad, const float *inp, int nb, int C,
                           int H, int W) {
    int TH = (H + 3) / 4, TW = (W + 3) / 4, Hp = 4 * TH + 2, Wp = 4 * TW + 2;
    int nt = nb * TH * TW, off[nt];
    size_t fs = winograd_plane(C, ld);
    tile_offsets(off, nb, TH, TW, Hp, Wp);
    memset(pad, 0, pad_floats(nb, H, W) * sizeof(float));
    for (int c = 0; c < C; c++) {
        pad_channel(pad, inp, nb, C, c, H, W, Hp, Wp, 1, 1);
        float *v = V + (size_t)c * ld;
        for (int t = 0; t < nt; t++) {
            float r[6][6];  // B^T d, down the columns
            for (int j = 0; j < 6; j++) {
                float d[6], s[6];
                for (int i = 0; i < 6; i++) d[i] = pad[off[t] + i * Wp + j];
                BT6(s, d);
                for (int i = 0; i < 6; i++) r[i][j] = s[i];
            }
            for (int i = 0; i < 6; i++) {  // then (.) B along the rows
                float s[6];
                BT6(s, r[i]);
                for (int j = 0; j < 6; j++) v[(6 * i + j) * fs + t] = s[j];
            }
        }
    }
}

// D (36, OC, ld): A dY A^T of the output-gradient tiles of dout (nb, OC, H, W).
static void dout4_generic(float *D, size_t ld, float *pad, const float *dout, int nb, int OC,
                          int H, int W) {
    int TH = (H + 3) / 4, TW = (W + 3) / 4, Hp = 4 * TH, Wp = 4 * TW;
    int nt = nb * TH * TW, off[nt];
    size_t fs = winograd_plane(OC, ld);
    tile_offsets(off, nb, TH, TW, Hp, Wp);
    memset(pad, 0, (size_t)nb * Hp * Wp * sizeof(float));
    for (int o = 0; o < OC; o++) {
        pad_channel(pad, dout, nb, OC, o, H, W, Hp, Wp, 0, 0);
        float *v = D + (size_t)o * ld;
        for (int t = 0; t < nt; t++) {
            float r[6][4];  // A dY, down the columns
            for (int j = 0; j < 4; j++) {
                float y[4], s[6];
                for (int i = 0; i < 4; i++) y[i] = pad[off[t] + i * Wp + j];
                A6(s, y);
                for (int i = 0; i < 6; i++) r[i][j] = s[i];
            }
            for (int i = 0; i < 6; i++) {  // then (.) A^T along the rows
                float s[6];
                A6(s, r[i]);
                for (int j = 0; j < 6; j++) v[(6 * i + j) * fs + t] = s[j];
            }
        }
    }
}

// out (nb, OC, H, W) = A^T m A of the product tiles M (36, OC, ld), plus bias (OC) unless
// NULL.
static void output4_generic(float *out, const float *M, size_t ld, const float *bias, int nb,
                            int OC, int H, int W) {
    int TH = (H + 3) / 4, TW = (W + 3) / 4;
    size_t fs = winograd_plane(OC, ld);
    for (int o = 0; o < OC; o++) {
        float bo = bias ? bias[o] : 0.0f;
        const float *m = M + (size_t)o * ld;
        for (int b = 0, t = 0; b < nb; b++) {
            float *dst = out + ((size_t)b * OC + o) * H * W;
            for (int ty = 0; ty < TH; ty++)
                for (int tx = 0; tx < TW; tx++, t++) {
                    float r[4][6];  // A^T m, down the columns
                    for (int j = 0; j < 6; j++) {
                        float x[6], s[4];
                        for (int i = 0; i < 6; i++) x[i] = m[(6 * i + j) * fs + t];
                        AT6(s, x);
                        for (int i = 0; i < 4; i++) r[i][j] = s[i];
                    }
                    for (int i = 0; i < 4 && 4 * ty + i < H; i++) {  // then (.) A
                        float s[4];
                        AT6(s, r[i]);
                        float *q = dst + (size_t)(4 * ty + i) * W + 4 * tx;
                        for (int j = 0; j < 4 && 4 * tx + j < W; j++) q[j] = s[j] + bo;
                    }
                }
        }
    }
}

#undef float_t_
#undef ADD
#undef SUB
#undef MUL

#ifdef __AVX512F__
#define float_t_ __m512
#define ADD(a, b) _mm512_add_ps(a, b)
#define SUB(a, b) _mm512_sub_ps(a, b)
#define MUL(a, k) _mm512_mul_ps(a, _mm512_set1_ps(k))

// The AVX-512 input transform: 16 tiles of the chunk a vector, their 36 pixels gathered from
// the padded copy (lanes past the last tile read tile 0 and store nothing). Gathering from
// the small padded copy measured faster than masked gathers straight from the tensor (32 ->
// 32 at 28x28, batch 128: whole layer 27 ms against 37).
static void input4_avx512(float *V, size_t ld, float *pad, const float *inp, int nb, int C,
                          int H, int W) {
    int TH = (H + 3) / 4, TW = (W + 3) / 4, Hp = 4 * TH + 2, Wp = 4 * TW + 2;
    int nt = nb * TH * TW, nv = (nt + 15) / 16, off[16 * nv];
    size_t fs = winograd_plane(C, ld);
    tile_offsets(off, nb, TH, TW, Hp, Wp);
    for (int t = nt; t < 16 * nv; t++) off[t] = 0;
    memset(pad, 0, pad_floats(nb, H, W) * sizeof(float));
    for (int c = 0; c < C; c++) {
        pad_channel(pad, inp, nb, C, c, H, W, Hp, Wp, 1, 1);
        prefetch_channel(inp, nb, C, c + 1, H * W);
        float *v = V + (size_t)c * ld;
        for (int k = 0; k < nv; k++) {
            __mmask16 m = nt - 16 * k >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (nt - 16 * k)) - 1);
            __m512i base = _mm512_loadu_si512(off + 16 * k);
            __m512 r[6][6];
            for (int j = 0; j < 6; j++) {
                __m512 d[6], s[6];
                for (int i = 0; i < 6; i++)
                    d[i] = _mm512_i32gather_ps(_mm512_add_epi32(base, _mm512_set1_epi32(i * Wp + j)),
                                               pad, 4);
                BT6(s, d);
                for (int i = 0; i < 6; i++) r[i][j] = s[i];
            }
            for (int i = 0; i < 6; i++) {
                __m512 s[6];
                BT6(s, r[i]);
                for (int j = 0; j < 6; j++)
                    _mm512_mask_storeu_ps(v + (6 * i + j) * fs + 16 * k, m, s[j]);
            }
        }
    }
}

// Planes of 4 to 7 tiles a row (13 to 28 wide; 28x28 has 7) take the input and dout
// transforms by lines. Both are separable, so the column pass (B^T over a tile's six input
// lines, or A over its four dout lines) runs along whole lines of a tile row, from contiguous
// loads straight from the tensor (zeros outside it, no padded copy); the row pass then picks
// each tile's columns with permutes. For the input, neighbouring tiles share two columns, so
// the column pass does 30 columns where tile by tile it did 42. Two tile rows a vector: lanes
// 0 .. TW-1 from the first, TW .. 2TW-1 from the second, whose tiles follow in V (the next
// sample's first row after a sample's last); the next channel's planes are prefetched
// (a tile row's lines are not a stream the hardware follows). The same sums as the gathering
// kernels on the same values, so the same bits. dout selects A (4 lines a tile row, columns
// from 0) over B^T (6 lines, columns from -1); the two callers pass a constant.
static inline __attribute__((always_inline)) void rows4_avx512(float *V, size_t ld,
                                                               const float *x0, int nb, int C,
                                                               int H, int W, int dout) {
    int TH = (H + 3) / 4, TW = (W + 3) / 4, R = nb * TH;  // R tile rows in the chunk
    int n = dout ? 4 : 6, c0 = dout ? 0 : -1;  // lines a tile row, its first column
    size_t fs = winograd_plane(C, ld);
    __mmask16 mv[2];  // a line's columns c0 .. c0 + 31 as two vectors; lanes inside the plane
    for (int k = 0; k < 2; k++) {
        unsigned m = 0;
        for (int l = 0; l < 16; l++) m |= (unsigned)(16 * k + c0 + l >= 0 && 16 * k + c0 + l < W) << l;
        mv[k] = (__mmask16)m;
    }
    __mmask16 lo = (__mmask16)((1u << TW) - 1), both = (__mmask16)((1u << (2 * TW)) - 1);
    __mmask16 hi = both & (__mmask16)~lo;
    __m512i idx[6];  // lane l takes column 4 tx + j of its line (tx = l or l - TW)
    for (int j = 0; j < n; j++) {
        int id[16];
        for (int l = 0; l < 16; l++) id[l] = l < 2 * TW ? 4 * (l < TW ? l : l - TW) + j : 0;
        idx[j] = _mm512_loadu_si512(id);
    }
    float line[2][6][32];  // the column pass of each of the vector's two tile rows
    memset(line, 0, sizeof line);  // a last single row leaves the second one's lanes unused
    for (int c = 0; c < C; c++) {
        float *v = V + (size_t)c * ld;
        prefetch_channel(x0, nb, C, c + 1, H * W);
        for (int r = 0; r < R; r += 2) {
            int rows = r + 1 < R ? 2 : 1;
            for (int q = 0; q < rows; q++) {
                int b = (r + q) / TH, ty = (r + q) % TH;
                const float *x = x0 + ((size_t)b * C + c) * H * W;
                __m512 d[2][6], s[2][6];
                for (int i = 0; i < n; i++) {
                    int y = 4 * ty + (dout ? 0 : -1) + i, in = y >= 0 && y < H;
                    const float *xl = x + (in ? (ptrdiff_t)y * W : 0);  // masked lanes: unread
                    for (int k = 0; k < 2; k++)
                        d[k][i] = _mm512_maskz_loadu_ps(in ? mv[k] : 0, xl + 16 * k + c0);
                }
                for (int k = 0; k < 2; k++) {
                    if (dout) A6(s[k], d[k]);
                    else BT6(s[k], d[k]);
                    for (int i = 0; i < 6; i++) _mm512_storeu_ps(line[q][i] + 16 * k, s[k][i]);
                }
            }
            __mmask16 m = rows == 2 ? both : lo;
            float *vt = v + (size_t)r * TW;
            for (int i = 0; i < 6; i++) {
                __m512 a0 = _mm512_loadu_ps(line[0][i]), a1 = _mm512_loadu_ps(line[0][i] + 16);
                __m512 b0 = _mm512_loadu_ps(line[1][i]), b1 = _mm512_loadu_ps(line[1][i] + 16);
                __m512 e[6], o[6];
                for (int j = 0; j < n; j++)
                    e[j] = _mm512_mask_blend_ps(hi, _mm512_permutex2var_ps(a0, idx[j], a1),
                                                _mm512_permutex2var_ps(b0, idx[j], b1));
                if (dout) A6(o, e);
                else BT6(o, e);
                for (int j = 0; j < 6; j++) _mm512_mask_storeu_ps(vt + (6 * i + j) * fs, m, o[j]);
            }
        }
    }
}

static void input4_rows_avx512(float *V, size_t ld, const float *inp, int nb, int C, int H,
                               int W) {
    rows4_avx512(V, ld, inp, nb, C, H, W, 0);
}

static void dout4_rows_avx512(float *D, size_t ld, const float *dout, int nb, int OC, int H,
                              int W) {
    rows4_avx512(D, ld, dout, nb, OC, H, W, 1);
}

static void dout4_avx512(float *D, size_t ld, float *pad, const float *dout, int nb, int OC,
                         int H, int W) {
    int TH = (H + 3) / 4, TW = (W + 3) / 4, Hp = 4 * TH, Wp = 4 * TW;
    int nt = nb * TH * TW, nv = (nt + 15) / 16, off[16 * nv];
    size_t fs = winograd_plane(OC, ld);
    tile_offsets(off, nb, TH, TW, Hp, Wp);
    for (int t = nt; t < 16 * nv; t++) off[t] = 0;
    memset(pad, 0, (size_t)nb * Hp * Wp * sizeof(float));
    for (int o = 0; o < OC; o++) {
        pad_channel(pad, dout, nb, OC, o, H, W, Hp, Wp, 0, 0);
        prefetch_channel(dout, nb, OC, o + 1, H * W);
        float *v = D + (size_t)o * ld;
        for (int k = 0; k < nv; k++) {
            __mmask16 m = nt - 16 * k >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (nt - 16 * k)) - 1);
            __m512i base = _mm512_loadu_si512(off + 16 * k);
            __m512 r[6][4];
            for (int j = 0; j < 4; j++) {
                __m512 y[4], s[6];
                for (int i = 0; i < 4; i++)
                    y[i] = _mm512_i32gather_ps(_mm512_add_epi32(base, _mm512_set1_epi32(i * Wp + j)),
                                               pad, 4);
                A6(s, y);
                for (int i = 0; i < 6; i++) r[i][j] = s[i];
            }
            for (int i = 0; i < 6; i++) {
                __m512 s[6];
                A6(s, r[i]);
                for (int j = 0; j < 6; j++)
                    _mm512_mask_storeu_ps(v + (6 * i + j) * fs + 16 * k, m, s[j]);
            }
        }
    }
}

// The output transform of planes 4 to 7 tiles wide, two tile rows a vector as in
// rows4_avx512: A^T m A in lanes, then each output line of a tile row is woven from its
// tiles' four columns with permutes (two to pair columns 0,1 and 2,3 of each tile, one per 16
// columns to interleave the pairs) and stored whole, where the buffered kernel below writes
// element by element. The same sums, so the same bits.
static void output4_rows_avx512(float *out, const float *M, size_t ld, const float *bias,
                                int nb, int OC, int H, int W) {
    int TH = (H + 3) / 4, TW = (W + 3) / 4, R = nb * TH;
    size_t fs = winograd_plane(OC, ld);
    __mmask16 lo = (__mmask16)((1u << TW) - 1), both = (__mmask16)((1u << (2 * TW)) - 1);
    __mmask16 mw[2];  // a line's columns 0 .. 15 and 16 .. 31: those inside the plane
    for (int h = 0; h < 2; h++)
        mw[h] = (__mmask16)(W - 16 * h >= 16 ? 0xFFFF : W > 16 * h ? (1u << (W - 16 * h)) - 1 : 0);
    __m512i pair[2], weave[2];
    {
        int id[16];
        for (int q = 0; q < 2; q++) {  // lane 2k + e: tile k of tile row q, from a (e = 0) or b
            for (int l = 0; l < 16; l++) id[l] = (q * TW + l / 2 < 16 ? q * TW + l / 2 : 0) + 16 * (l & 1);
            pair[q] = _mm512_loadu_si512(id);
        }
        for (int h = 0; h < 2; h++) {  // lane 4m + f: column f of tile 4h + m
            for (int l = 0; l < 16; l++) {
                int k = 4 * h + l / 4, f = l % 4;
                id[l] = 2 * k + (f & 1) + (f < 2 ? 0 : 16);
            }
            weave[h] = _mm512_loadu_si512(id);
        }
    }
    for (int o = 0; o < OC; o++) {
        __m512 bo = _mm512_set1_ps(bias ? bias[o] : 0.0f);
        const float *mo = M + (size_t)o * ld;
        prefetchw_channel(out, nb, OC, o + 1, H * W);
        for (int r = 0; r < R; r += 2) {
            int rows = r + 1 < R ? 2 : 1;
            __mmask16 m = rows == 2 ? both : lo;
            const float *mt = mo + (size_t)r * TW;
            __m512 c4[4][6], y[4][4];
            for (int j = 0; j < 6; j++) {
                __m512 x[6], s[4];
                for (int i = 0; i < 6; i++) x[i] = _mm512_maskz_loadu_ps(m, mt + (6 * i + j) * fs);
                AT6(s, x);
                for (int i = 0; i < 4; i++) c4[i][j] = s[i];
            }
            for (int i = 0; i < 4; i++) {
                __m512 s[4];
                AT6(s, c4[i]);
                for (int j = 0; j < 4; j++) y[i][j] = _mm512_add_ps(s[j], bo);
            }
            for (int q = 0; q < rows; q++) {
                int b = (r + q) / TH, ty = (r + q) % TH;
                float *dst = out + ((size_t)b * OC + o) * H * W + (size_t)(4 * ty) * W;
                for (int i = 0; i < 4 && 4 * ty + i < H; i++) {
                    __m512 p01 = _mm512_permutex2var_ps(y[i][0], pair[q], y[i][1]);
                    __m512 p23 = _mm512_permutex2var_ps(y[i][2], pair[q], y[i][3]);
                    for (int h = 0; h < 2; h++)
                        if (mw[h])
                            _mm512_mask_storeu_ps(dst + (size_t)i * W + 16 * h, mw[h],
                                                  _mm512_permutex2var_ps(p01, weave[h], p23));
                }
            }
        }
    }
}

// The output transform: 16 tiles a vector; the 16 outputs of each tile go through a small
// lane-major buffer to the image (scattered stores measured no better on this CPU class and
// need an edge mask per pixel).
static void output4_avx512(float *out, const float *M, size_t ld, const float *bias, int nb,
                           int OC, int H, int W) {
    int TH = (H + 3) / 4, TW = (W + 3) / 4, TT = TH * TW, nt = nb * TT;
    size_t fs = winograd_plane(OC, ld);
    float buf[16][16];  // buf[4i + j][lane]
    for (int o = 0; o < OC; o++) {
        __m512 bo = _mm512_set1_ps(bias ? bias[o] : 0.0f);
        const float *mo = M + (size_t)o * ld;
        prefetchw_channel(out, nb, OC, o + 1, H * W);
        for (int t0 = 0; t0 < nt; t0 += 16) {
            __mmask16 m = nt - t0 >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (nt - t0)) - 1);
            __m512 r[4][6];
            for (int j = 0; j < 6; j++) {
                __m512 x[6], s[4];
                for (int i = 0; i < 6; i++) x[i] = _mm512_maskz_loadu_ps(m, mo + (6 * i + j) * fs + t0);
                AT6(s, x);
                for (int i = 0; i < 4; i++) r[i][j] = s[i];
            }
            for (int i = 0; i < 4; i++) {
                __m512 s[4];
                AT6(s, r[i]);
                for (int j = 0; j < 4; j++) _mm512_storeu_ps(buf[4 * i + j], _mm512_add_ps(s[j], bo));
            }
            int n = nt - t0 < 16 ? nt - t0 : 16;
            for (int l = 0; l < n; l++) {
                int t = t0 + l, b = t / TT, ty = (t % TT) / TW, tx = t % TW;
                int ni = H - 4 * ty < 4 ? H - 4 * ty : 4, nj = W - 4 * tx < 4 ? W - 4 * tx : 4;
                float *q = out + ((size_t)b * OC + o) * H * W + (size_t)(4 * ty) * W + 4 * tx;
                for (int i = 0; i < ni; i++)
                    for (int j = 0; j < nj; j++) q[(size_t)i * W + j] = buf[4 * i + j][l];
            }
        }
    }
}

// Planes two tiles wide (5 to 8; cnn6_mlp4's 7x7), in chunks of whole groups of 8 samples,
// take forward's transforms with samples in lanes: a vector holds one tile row (its two tiles)
// of 8 samples, so within V and M the chunk's tiles run (group, tile, sample) instead of
// (sample, tile). Forward's products sum over channels, not tiles, so each output is the same
// sum (OpenBLAS's Cooperlake kernels round it to the same bits; its Haswell kernels round a
// column by its position, so there the bits move); the weight gradient, which sums over
// tiles, keeps the tile order. The input's pixels are gathered once per 8 samples into a
// padded copy with samples innermost, from which each tile pixel is a contiguous load (the
// tile-order kernel gathers a tile's 36 pixels from its padded copy: 2.25 gathered floats a
// pixel, against 1 here).
static int by_lanes(int W, int nb) { return (W + 3) / 4 == 2 && nb % 8 == 0; }

// A vector of two 8-sample halves: p[0 .. 8) in lanes 0-7, p[32 .. 40) (4 columns on) in 8-15.
static inline __m512 load_halves(const float *p) {
    __m256d lo = _mm256_castps_pd(_mm256_loadu_ps(p));
    __m256d hi = _mm256_castps_pd(_mm256_loadu_ps(p + 32));
    return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castpd256_pd512(lo), hi, 1));
}

// The 36 frequencies of two tile rows of 8 samples (buf[f][16 ty + 8 tx + s]) to V in
// the tile order (plane stride fs): four samples' 4 tiles a vector, lane p of vector h being
// sample 4h + p/4, tile row (p%4)/2, column p%2. The same values, in the order the weight
// gradient sums them.
static void store_tile_order(float *v, size_t fs, float buf[36][32]) {
    __m512i to[2];
    for (int h = 0; h < 2; h++) {
        int id[16];
        for (int p = 0; p < 16; p++) id[p] = (p % 4) / 2 * 16 + p % 2 * 8 + 4 * h + p / 4;
        to[h] = _mm512_loadu_si512(id);
    }
    for (int f = 0; f < 36; f++) {
        __m512 a = _mm512_loadu_ps(buf[f]), b = _mm512_loadu_ps(buf[f] + 16);
        for (int h = 0; h < 2; h++)
            _mm512_storeu_ps(v + f * fs + 16 * h, _mm512_permutex2var_ps(a, to[h], b));
    }
}

// Channel c of 8 samples x (8, C, H, W) into the padded copy T (rows, 10, 8) at (1, 1),
// samples innermost: one gather a pixel; T's border is left as it is (zero).
static void gather_samples(float *T, const float *x, int C, int c, int H, int W) {
    __m256i sample = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                        _mm256_set1_epi32(C * H * W));
    const float *xc = x + (size_t)c * H * W;
    for (int y = 0; y < H; y++)
        for (int i = 0; i < W; i++)
            _mm256_storeu_ps(T + ((y + 1) * 10 + i + 1) * 8,
                             _mm256_i32gather_ps(xc + y * W + i, sample, 4));
}

// V (36, C, ld) in lane order: the input tiles of inp (nb, C, H, W); T holds (4 TH + 2) * 10 * 8
// floats: the padded copy (rows 4 TH + 2, columns 10, 8 samples), the image at (1, 1).
// With tiles (planes of two tile rows only: 5 to 8 high), V comes out in the tile order
// instead: the two tile rows' vectors (8 samples each) are permuted into four samples' 4
// tiles a vector, the same values in the order the weight gradient sums them.
static void input4_lanes_avx512(float *V, size_t ld, float *T, const float *inp, int nb, int C,
                                int H, int W, int tiles) {
    int TH = (H + 3) / 4, TT = 2 * TH, HW = H * W;
    size_t fs = winograd_plane(C, ld);
    float buf[36][32];  // with tiles: frequency f of tile row ty in buf[f][16 ty ..]
    memset(T, 0, (size_t)(4 * TH + 2) * 10 * 8 * sizeof(float));
    for (int g = 0; g < nb / 8; g++)
        for (int c = 0; c < C; c++) {
            gather_samples(T, inp + (size_t)8 * g * C * HW, C, c, H, W);
            prefetch_channel(inp + (size_t)8 * g * C * HW, 8, C, c + 1, HW);
            float *v = V + (size_t)c * ld + (size_t)g * 8 * TT;
            for (int ty = 0; ty < TH; ty++) {
                __m512 r[6][6];
                for (int j = 0; j < 6; j++) {
                    __m512 d[6], s[6];
                    for (int i = 0; i < 6; i++) d[i] = load_halves(T + ((4 * ty + i) * 10 + j) * 8);
                    BT6(s, d);
                    for (int i = 0; i < 6; i++) r[i][j] = s[i];
                }
                for (int i = 0; i < 6; i++) {
                    __m512 s[6];
                    BT6(s, r[i]);
                    for (int j = 0; j < 6; j++) {
                        if (tiles) _mm512_storeu_ps(buf[6 * i + j] + 16 * ty, s[j]);
                        else _mm512_storeu_ps(v + (6 * i + j) * fs + 16 * ty, s[j]);
                    }
                }
            }
            if (tiles) store_tile_order(v, fs, buf);
        }
}

// out (nb, OC, H, W) = A^T m A of the product tiles M (36, OC, ld) in lane order, plus bias
// unless NULL; T holds 4 TH * 8 * 8 floats: one channel's outputs of 8 samples, samples
// innermost, which are then gathered into the samples' planes a line of 16 pixels at a time.
static void output4_lanes_avx512(float *out, const float *M, size_t ld, const float *bias,
                                 int nb, int OC, int H, int W, float *T) {
    int TH = (H + 3) / 4, TT = 2 * TH, HW = H * W, nv = (HW + 15) / 16;
    size_t fs = winograd_plane(OC, ld);
    __m512i at[nv];  // lane l of at[k]: where pixel 16 k + l of a plane sits in T
    for (int k = 0; k < nv; k++) {
        int id[16];
        for (int l = 0; l < 16; l++) {
            int p = 16 * k + l < HW ? 16 * k + l : 0;
            id[l] = (p / W * 8 + p % W) * 8;
        }
        at[k] = _mm512_loadu_si512(id);
    }
    __mmask16 tail = (__mmask16)((1u << (HW - 16 * (nv - 1))) - 1);
    for (int g = 0; g < nb / 8; g++)
        for (int o = 0; o < OC; o++) {
            __m512 bo = _mm512_set1_ps(bias ? bias[o] : 0.0f);
            const float *mo = M + (size_t)o * ld + (size_t)g * 8 * TT;
            prefetchw_channel(out + (size_t)8 * g * OC * HW, 8, OC, o + 1, HW);
            for (int ty = 0; ty < TH; ty++) {
                __m512 r[4][6];
                for (int j = 0; j < 6; j++) {
                    __m512 x[6], s[4];
                    for (int i = 0; i < 6; i++)
                        x[i] = _mm512_loadu_ps(mo + (6 * i + j) * fs + 16 * ty);
                    AT6(s, x);
                    for (int i = 0; i < 4; i++) r[i][j] = s[i];
                }
                for (int i = 0; i < 4; i++) {
                    __m512 s[4];
                    AT6(s, r[i]);
                    for (int j = 0; j < 4; j++) {
                        __m512 y = _mm512_add_ps(s[j], bo);
                        float *t = T + ((4 * ty + i) * 8 + j) * 8;
                        __m256d hi = _mm512_extractf64x4_pd(_mm512_castps_pd(y), 1);
                        _mm256_storeu_ps(t, _mm512_castps512_ps256(y));
                        _mm256_storeu_ps(t + 32, _mm256_castpd_ps(hi));
                    }
                }
            }
            for (int s = 0; s < 8; s++) {
                float *dst = out + ((size_t)(8 * g + s) * OC + o) * HW;
                for (int k = 0; k < nv; k++)
                    _mm512_mask_storeu_ps(dst + 16 * k, k + 1 < nv ? (__mmask16)0xFFFF : tail,
                                          _mm512_i32gather_ps(at[k], T + s, 4));
            }
        }
}

#undef float_t_
#undef ADD
#undef SUB
#undef MUL
#endif

#ifdef __AVX512F__
// Whether planes W wide take the line kernels (rows4_avx512, output4_rows_avx512): 4 to 7
// tiles a row, so that a tile row's columns fit two vectors and two tile rows one.
static int by_lines(int W) {
    int TW = (W + 3) / 4;
    return TW >= 4 && TW <= 7;
}
#endif

void winograd4_input(float *V, size_t ld, float *pad, const float *inp, int nb, int C, int H,
                     int W, int portable) {
#ifdef __AVX512F__
    if (!portable) {
        if (by_lines(W)) input4_rows_avx512(V, ld, inp, nb, C, H, W);
        else if (by_lanes(W, nb) && (H + 3) / 4 == 2)  // two tile rows: permuted to tiles
            input4_lanes_avx512(V, ld, pad, inp, nb, C, H, W, 1);
        else input4_avx512(V, ld, pad, inp, nb, C, H, W);
        return;
    }
#endif
    (void)portable;
    input4_generic(V, ld, pad, inp, nb, C, H, W);
}

void winograd4_dout(float *D, size_t ld, float *pad, const float *dout, int nb, int OC, int H,
                    int W, int portable) {
#ifdef __AVX512F__
    if (!portable) {
        if (by_lines(W)) dout4_rows_avx512(D, ld, dout, nb, OC, H, W);
        else dout4_avx512(D, ld, pad, dout, nb, OC, H, W);
        return;
    }
#endif
    (void)portable;
    dout4_generic(D, ld, pad, dout, nb, OC, H, W);
}

void winograd4_output(float *out, const float *M, size_t ld, const float *bias, int nb, int OC,
                      int H, int W, int portable) {
#ifdef __AVX512F__
    if (!portable) {
        if (by_lines(W)) output4_rows_avx512(out, M, ld, bias, nb, OC, H, W);
        else output4_avx512(out, M, ld, bias, nb, OC, H, W);
        return;
    }
#endif
    (void)portable;
    output4_generic(out, M, ld, bias, nb, OC, H, W);
}

void winograd4_forward_chunk(float *out, float *work, int nb, const float *U, const float *inp,
                             const float *bias, int n, int C, int H, int W, int OC) {
    size_t ld = tiles4_of(n, H, W), ldmax = tiles4_of(nb, H, W);
    size_t fv = winograd_plane(C, ld), fm = winograd_plane(OC, ld);
    float *V = work, *M = work + 36 * winograd_plane(C, ldmax);
    float *pad = M + 36 * winograd_plane(OC, ldmax);
#ifdef __AVX512F__
    int lanes = by_lanes(W, n);
    if (lanes) input4_lanes_avx512(V, ld, pad, inp, n, C, H, W, 0);
    else
#endif
        winograd4_input(V, ld, pad, inp, n, C, H, W, 0);
    for (int f = 0; f < 36; f++)
        prof_sgemm(CblasNoTrans, CblasNoTrans, OC, (int)ld, C, 1.0f, U + (size_t)f * OC * C, C,
                   V + f * fv, (int)ld, 0.0f, M + f * fm, (int)ld);
#ifdef __AVX512F__
    if (lanes) output4_lanes_avx512(out, M, ld, bias, n, OC, H, W, pad);
    else
#endif
        winograd4_output(out, M, ld, bias, n, OC, H, W, 0);
}

void conv2d_winograd4_forward(float *out, float *work, int nb, const float *U, const float *inp,
                              const float *bias, int B, int C, int H, int W, int OC) {
    winograd_batch_forward(&winograd4_kernels, out, work, nb, U, inp, bias, B, C, H, W, OC);
}

void winograd4_dweight_chunk(float *dU, float *work, int nb, const float *dout, const float *inp,
                             int n, int C, int H, int W, int OC, float beta) {
    size_t ld = tiles4_of(n, H, W), ldmax = tiles4_of(nb, H, W);
    size_t fv = winograd_plane(C, ld), fd = winograd_plane(OC, ld);
    float *V = work, *D = work + 36 * winograd_plane(C, ldmax);
    float *pad = D + 36 * winograd_plane(OC, ldmax);
    winograd4_input(V, ld, pad, inp, n, C, H, W, 0);
    winograd4_dout(D, ld, pad, dout, n, OC, H, W, 0);
    for (int f = 0; f < 36; f++)
        prof_sgemm(CblasNoTrans, CblasTrans, OC, C, (int)ld, 1.0f, D + f * fd, (int)ld,
                   V + f * fv, (int)ld, beta, dU + (size_t)f * OC * C, C);
}

void conv2d_winograd4_dweight(float *dweight, float *dU, float *work, int nb, const float *dout,
                              const float *inp, int B, int C, int H, int W, int OC) {
    winograd_batch_dweight(&winograd4_kernels, dweight, dU, work, nb, dout, inp, B, C, H, W, OC);
}

const WinogradKernels winograd4_kernels = {36, winograd4_filter, winograd4_work_floats,
                                           conv2d_winograd4_forward, conv2d_winograd4_dweight,
                                           winograd4_filter_grad, winograd4_forward_chunk,
                                           winograd4_dweight_chunk};
