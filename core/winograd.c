// winograd.c: 3x3, stride-1, padding-1 ("same") convolution by Winograd's minimal filtering
// F(2x2, 3x3) (Lavin & Gray 2016). Each 2x2 output tile comes from a 4x4 input tile:
// Y = A^T [(G g G^T) . (B^T d B)] A, so a chunk of samples becomes 16 independent GEMMs,
// one per "frequency" f of the 4x4 transform, (OC x C) @ (C x tiles): 16 products per 4
// outputs instead of 36, 2.25x fewer multiplies than im2col. The weight gradient is the same
// identity read backwards: dU = (A dY A^T) . (B^T d B) summed over tiles (16 GEMMs over the
// tiles), then dW = G^T dU G. Transformed tensors are laid out (16, channels, tiles), tile
// t = sample * TH*TW + ty * TW + tx, TH = ceil(H/2), TW = ceil(W/2); tiles hanging over an
// odd edge see zeros in and write nothing out.
#include <cblas.h>
#include <string.h>

#include "kernels.h"
#include "prof.h"

#ifdef __AVX512F__
#include <immintrin.h>
#endif

// The tiles of a chunk of nb samples (one GEMM's width).
static size_t tiles_of(int nb, int H, int W) {
    return (size_t)nb * ((H + 1) / 2) * ((W + 1) / 2);
}

size_t winograd_plane(int C, size_t ld) {
    size_t lines = ((size_t)C * ld + 15) / 16;  // of 64 bytes
    return 16 * (lines | 1);
}

// Each plane's rounding is bounded (under 32 floats), so that nb samples' scratch never
// exceeds nb times one sample's: layers reserve it per sample.
size_t winograd_work_floats(int C, int OC, int H, int W, int nb) {
    return (size_t)16 * ((C + OC) * tiles_of(nb, H, W) + 64);
}

// One 3x3 filter g to its 4x4 transform u = G g G^T (row-major, stride us between entries),
// G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1].
static void filter_tile(float *u, size_t us, const float g[9]) {
    float t[4][3];  // G g
    for (int j = 0; j < 3; j++) {
        float a = g[j], b = g[3 + j], c = g[6 + j];
        t[0][j] = a, t[1][j] = 0.5f * (a + b + c), t[2][j] = 0.5f * (a - b + c), t[3][j] = c;
    }
    for (int i = 0; i < 4; i++) {
        float a = t[i][0], b = t[i][1], c = t[i][2];
        u[(4 * i + 0) * us] = a;
        u[(4 * i + 1) * us] = 0.5f * (a + b + c);
        u[(4 * i + 2) * us] = 0.5f * (a - b + c);
        u[(4 * i + 3) * us] = c;
    }
}

// Sixteen filters at a time, in U's order, through a small buffer, so that each of the 16
// planes gets 16 floats in one store: a filter's 16 values straight into U lie us floats
// apart, at 64 x 64 channels a multiple of 4 KiB, one L1 set for all 16. The same operations
// per filter (filter_tile), so the same bits.
void winograd_filter(float *U, const float *weight, int OC, int C, int rotate) {
    size_t us = (size_t)OC * C;
    for (size_t t0 = 0; t0 < us; t0 += 16) {
        int n = us - t0 < 16 ? (int)(us - t0) : 16;
        float u[16][16];  // u[frequency][filter]
        for (int k = 0; k < n; k++) {
            size_t t = t0 + k;  // U's filter t: (o, c) = (t / C, t % C), rotated (t % OC, t / OC)
            const float *w = weight + (rotate ? (t % OC) * C + t / OC : t) * 9;
            float g[9];
            for (int i = 0; i < 9; i++) g[i] = rotate ? w[8 - i] : w[i];
            filter_tile(&u[0][k], 16, g);
        }
        for (int f = 0; f < 16; f++) memcpy(U + f * us + t0, u[f], (size_t)n * sizeof(float));
    }
}

void winograd_input_generic(float *V, size_t ld, const float *inp, int nb, int C, int H, int W) {
    int TH = (H + 1) / 2, TW = (W + 1) / 2, Wp = 2 * TW + 2;
    size_t fs = winograd_plane(C, ld);  // stride between frequencies
    float d[4][Wp], r[4][Wp];
    for (int b = 0; b < nb; b++)
        for (int c = 0; c < C; c++) {
            const float *x = inp + ((size_t)b * C + c) * H * W;
            for (int ty = 0; ty < TH; ty++) {
                // the tile row's 4 input lines, padded: column -1 at index 0
                for (int i = 0; i < 4; i++) {
                    int iy = 2 * ty - 1 + i;
                    memset(d[i], 0, (size_t)Wp * sizeof(float));
                    if (iy >= 0 && iy < H) memcpy(d[i] + 1, x + (size_t)iy * W, W * sizeof(float));
                }
                for (int k = 0; k < Wp; k++) {  // B^T d along the lines
                    float a = d[0][k], p = d[1][k], q = d[2][k], s = d[3][k];
                    r[0][k] = a - q, r[1][k] = p + q, r[2][k] = q - p, r[3][k] = p - s;
                }
                float *v = V + (size_t)c * ld + ((size_t)b * TH + ty) * TW;
                for (int i = 0; i < 4; i++) {  // then (.) B along the columns
                    float *v0 = v + (4 * i) * fs, *v1 = v0 + fs, *v2 = v1 + fs, *v3 = v2 + fs;
                    const float *ri = r[i];
                    for (int tx = 0; tx < TW; tx++) {
                        float a = ri[2 * tx], p = ri[2 * tx + 1], q = ri[2 * tx + 2],
                              s = ri[2 * tx + 3];
                        v0[tx] = a - q, v1[tx] = p + q, v2[tx] = q - p, v3[tx] = p - s;
                    }
                }
            }
        }
}

void winograd_output_generic(float *out, const float *M, size_t ld, const float *bias, int nb, int OC,
                     int H, int W) {
    int TH = (H + 1) / 2, TW = (W + 1) / 2;
    size_t fs = winograd_plane(OC, ld);
    float s[2][4][TW], y[2][2 * TW];
    for (int b = 0; b < nb; b++)
        for (int o = 0; o < OC; o++) {
            float bo = bias ? bias[o] : 0.0f;
            float *dst = out + ((size_t)b * OC + o) * H * W;
            for (int ty = 0; ty < TH; ty++) {
                const float *m = M + (size_t)o * ld + ((size_t)b * TH + ty) * TW;
                for (int k = 0; k < 4; k++) {  // A^T m along the lines
                    const float *m0 = m + k * fs, *m1 = m0 + 4 * fs, *m2 = m1 + 4 * fs,
                                *m3 = m2 + 4 * fs;
                    for (int tx = 0; tx < TW; tx++) {
                        s[0][k][tx] = m0[tx] + m1[tx] + m2[tx];
                        s[1][k][tx] = m1[tx] - m2[tx] - m3[tx];
                    }
                }
                for (int i = 0; i < 2; i++)  // then (.) A along the columns
                    for (int tx = 0; tx < TW; tx++) {
                        y[i][2 * tx] = s[i][0][tx] + s[i][1][tx] + s[i][2][tx] + bo;
                        y[i][2 * tx + 1] = s[i][1][tx] - s[i][2][tx] - s[i][3][tx] + bo;
                    }
                memcpy(dst + (size_t)(2 * ty) * W, y[0], W * sizeof(float));
                if (2 * ty + 1 < H) memcpy(dst + (size_t)(2 * ty + 1) * W, y[1], W * sizeof(float));
            }
        }
}

void winograd_dout_generic(float *D, size_t ld, const float *dout, int nb, int OC, int H, int W) {
    int TH = (H + 1) / 2, TW = (W + 1) / 2;
    size_t fs = winograd_plane(OC, ld);
    float y[2][2 * TW], r[4][2 * TW];
    for (int b = 0; b < nb; b++)
        for (int o = 0; o < OC; o++) {
            const float *g = dout + ((size_t)b * OC + o) * H * W;
            for (int ty = 0; ty < TH; ty++) {
                for (int i = 0; i < 2; i++) {
                    int iy = 2 * ty + i;
                    memset(y[i], 0, (size_t)2 * TW * sizeof(float));
                    if (iy < H) memcpy(y[i], g + (size_t)iy * W, W * sizeof(float));
                }
                for (int k = 0; k < 2 * TW; k++) {  // A dY along the lines
                    float a = y[0][k], p = y[1][k];
                    r[0][k] = a, r[1][k] = a + p, r[2][k] = a - p, r[3][k] = -p;
                }
                float *v = D + (size_t)o * ld + ((size_t)b * TH + ty) * TW;
                for (int i = 0; i < 4; i++) {  // then (.) A^T along the columns
                    float *v0 = v + (4 * i) * fs, *v1 = v0 + fs, *v2 = v1 + fs, *v3 = v2 + fs;
                    const float *ri = r[i];
                    for (int tx = 0; tx < TW; tx++) {
                        float a = ri[2 * tx], p = ri[2 * tx + 1];
                        v0[tx] = a, v1[tx] = a + p, v2[tx] = a - p, v3[tx] = -p;
                    }
                }
            }
        }
}

#ifdef __AVX512F__
// The AVX-512 transforms take 16 tiles of a tile row at a time, one lane per tile: tile rows
// are short (14 tiles at 28x28, 4 at 7x7), too short for a compiler's vector loop, so
// masked loads and stores cover the ragged end, and permutes split even and odd columns.

static __mmask16 lanes(int n) { return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1); }

// even and odd elements of the 32 floats at p
static void deinterleave(__m512 *ev, __m512 *od, const float *p, __mmask16 mlo, __mmask16 mhi) {
    const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i io = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    __m512 lo = _mm512_maskz_loadu_ps(mlo, p), hi = _mm512_maskz_loadu_ps(mhi, p + 16);
    *ev = _mm512_permutex2var_ps(lo, ie, hi);
    *od = _mm512_permutex2var_ps(lo, io, hi);
}

// The lanes of a pair of tile rows (TW <= 8 tiles each) as permutex2var indices into two
// lines: lane t < TW takes column 2t of the first line, lane TW + t column 2t of the second.
static __m512i pair_lanes(int TW) {
    int idx[16];
    for (int l = 0; l < 16; l++) idx[l] = l < TW ? 2 * l : l < 2 * TW ? 16 + 2 * (l - TW) : 0;
    return _mm512_loadu_si512(idx);
}

// B^T d B of the 16 lanes' tiles, d[i][j] = line i, column offset j of each tile, to V's 16
// planes at v (plane stride fs), lanes m.
static void input_tiles_avx512(float *v, size_t fs, __mmask16 m, __m512 d[4][4]) {
    __m512 r[4][4];  // B^T d: r[i][j] over the lines i, for column offset j
    for (int j = 0; j < 4; j++) {
        r[0][j] = _mm512_sub_ps(d[0][j], d[2][j]);
        r[1][j] = _mm512_add_ps(d[1][j], d[2][j]);
        r[2][j] = _mm512_sub_ps(d[2][j], d[1][j]);
        r[3][j] = _mm512_sub_ps(d[1][j], d[3][j]);
    }
    for (int i = 0; i < 4; i++) {  // then (.) B along the columns
        float *vi = v + (size_t)(4 * i) * fs;
        _mm512_mask_storeu_ps(vi, m, _mm512_sub_ps(r[i][0], r[i][2]));
        _mm512_mask_storeu_ps(vi + fs, m, _mm512_add_ps(r[i][1], r[i][2]));
        _mm512_mask_storeu_ps(vi + 2 * fs, m, _mm512_sub_ps(r[i][2], r[i][1]));
        _mm512_mask_storeu_ps(vi + 3 * fs, m, _mm512_sub_ps(r[i][1], r[i][3]));
    }
}

// Input line iy of the plane x (H, W) into buf as columns -1 .. W - 1 (buf[0] stays the
// zero padding); a line outside the plane is zeros. Only buf[1 .. W] is written.
static void input_line(float *buf, const float *x, int iy, int H, int W) {
    if (iy < 0 || iy >= H) memset(buf + 1, 0, (size_t)W * sizeof(float));
    else memcpy(buf + 1, x + (size_t)iy * W, W * sizeof(float));
}

// Narrow planes (a tile row of at most 8 tiles: 14x14 has 7) take two tile rows a vector,
// lanes 0 .. TW - 1 from the first and TW .. 2 TW - 1 from the second (whose tiles follow in
// V), so that 14 lanes of 16 work instead of 7; their lines are masked loads straight from
// the plane (columns -1 .. W - 1 at offset 0, zeros outside), where copies into line buffers
// took a memcpy call a line. Wider planes take 16 tiles of a tile row a vector, through line
// buffers zeroed once, each line then writing only its W columns.
static void winograd_input_avx512(float *V, size_t ld, const float *inp, int nb, int C, int H,
                                  int W) {
    int TH = (H + 1) / 2, TW = (W + 1) / 2, L = 2 * ((TW + 15) / 16) * 16 + 34;
    int pair = TW <= 8;
    size_t fs = winograd_plane(C, ld);
    float buf[4][L];  // wider planes' lines
    memset(buf, 0, sizeof buf);
    __m512i pidx = pair_lanes(TW);
    __mmask16 mj[4];  // lane l of a line at column offset j is column l + j - 1: inside?
    for (int j = 0; j < 4; j++) {
        unsigned m = 0;
        for (int l = 0; l < 16; l++) m |= (unsigned)(l + j - 1 >= 0 && l + j - 1 < W) << l;
        mj[j] = (__mmask16)m;
    }
    for (int b = 0; b < nb; b++)
        for (int c = 0; c < C; c++) {
            const float *x = inp + ((size_t)b * C + c) * H * W;
            for (int ty = 0; ty < TH; ty += pair ? 2 : 1) {
                int rows = pair && ty + 1 < TH ? 2 : 1;  // tile rows in this vector
                float *v = V + (size_t)c * ld + ((size_t)b * TH + ty) * TW;
                __m512 d[4][4];
                if (pair) {
                    for (int i = 0; i < 4; i++) {
                        int y0 = 2 * ty - 1 + i, y1 = y0 + 2;  // line i of each tile row
                        int in0 = y0 >= 0 && y0 < H, in1 = rows == 2 && y1 < H;
                        const float *l0 = x + (in0 ? (ptrdiff_t)y0 * W : 0) - 1;
                        const float *l1 = x + (in1 ? (ptrdiff_t)y1 * W : 0) - 1;
                        for (int j = 0; j < 4; j++)  // masked lanes: unread
                            d[i][j] = _mm512_permutex2var_ps(
                                _mm512_maskz_loadu_ps(in0 ? mj[j] : 0, l0 + j), pidx,
                                _mm512_maskz_loadu_ps(in1 ? mj[j] : 0, l1 + j));
                    }
                    input_tiles_avx512(v, fs, lanes(rows * TW), d);
                    continue;
                }
                for (int i = 0; i < 4; i++) input_line(buf[i], x, 2 * ty - 1 + i, H, W);
                for (int t0 = 0; t0 < TW; t0 += 16) {
                    for (int i = 0; i < 4; i++) {
                        deinterleave(&d[i][0], &d[i][1], buf[i] + 2 * t0, 0xFFFF, 0xFFFF);
                        deinterleave(&d[i][2], &d[i][3], buf[i] + 2 * t0 + 2, 0xFFFF, 0xFFFF);
                    }
                    input_tiles_avx512(v + t0, fs, lanes(TW - t0), d);
                }
            }
        }
}

// Narrow planes (at most 8 tiles a row) take two tile rows a vector here too: their products
// are adjacent in M, and the second tile row's outputs are interleaved from lanes TW ...
static void winograd_output_avx512(float *out, const float *M, size_t ld, const float *bias,
                                   int nb, int OC, int H, int W) {
    int TH = (H + 1) / 2, TW = (W + 1) / 2, pair = TW <= 8;
    size_t fs = winograd_plane(OC, ld);
    const __m512i il = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i ih = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30,
                                         15, 31);
    // a pair's second tile row: il shifted to lanes TW ...
    const __m512i i2 = _mm512_add_epi32(il, _mm512_set1_epi32(pair ? TW : 0));
    for (int b = 0; b < nb; b++)
        for (int o = 0; o < OC; o++) {
            __m512 bo = _mm512_set1_ps(bias ? bias[o] : 0.0f);
            float *dst = out + ((size_t)b * OC + o) * H * W;
            for (int ty = 0; ty < TH; ty += pair ? 2 : 1) {
                int rows = pair && ty + 1 < TH ? 2 : 1;
                const float *mrow = M + (size_t)o * ld + ((size_t)b * TH + ty) * TW;
                for (int t0 = 0; t0 < TW; t0 += 16) {
                    __mmask16 m = lanes(pair ? rows * TW : TW - t0);
                    __m512 s[2][4];
                    for (int k = 0; k < 4; k++) {  // A^T m along the lines
                        const float *p = mrow + t0 + k * fs;
                        __m512 m0 = _mm512_maskz_loadu_ps(m, p),
                               m1 = _mm512_maskz_loadu_ps(m, p + 4 * fs),
                               m2 = _mm512_maskz_loadu_ps(m, p + 8 * fs),
                               m3 = _mm512_maskz_loadu_ps(m, p + 12 * fs);
                        s[0][k] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
                        s[1][k] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
                    }
                    int n = W - 2 * t0;  // output columns left from 2*t0
                    __mmask16 mlo = lanes(n), mhi = lanes(n - 16 > 0 ? n - 16 : 0);
                    for (int i = 0; i < 2 && 2 * ty + i < H; i++) {  // then (.) A
                        __m512 y0 = _mm512_add_ps(_mm512_add_ps(s[i][0], s[i][1]),
                                                  _mm512_add_ps(s[i][2], bo));
                        __m512 y1 = _mm512_sub_ps(_mm512_sub_ps(s[i][1], s[i][2]),
                                                  _mm512_sub_ps(s[i][3], bo));
                        float *q = dst + (size_t)(2 * ty + i) * W + 2 * t0;
                        _mm512_mask_storeu_ps(q, mlo, _mm512_permutex2var_ps(y0, il, y1));
                        if (!pair) {
                            _mm512_mask_storeu_ps(q + 16, mhi, _mm512_permutex2var_ps(y0, ih, y1));
                        } else if (rows == 2 && 2 * ty + 2 + i < H) {
                            _mm512_mask_storeu_ps(q + 2 * W, mlo, _mm512_permutex2var_ps(y0, i2, y1));
                        }
                    }
                }
            }
        }
}

// Narrow planes take two tile rows a vector (lines 2ty, 2ty + 1 in lanes 0 .. TW - 1, lines
// 2ty + 2, 2ty + 3 in lanes TW ...), as the input transform does.
static void winograd_dout_avx512(float *D, size_t ld, const float *dout, int nb, int OC, int H,
                                 int W) {
    int TH = (H + 1) / 2, TW = (W + 1) / 2, pair = TW <= 8;
    size_t fs = winograd_plane(OC, ld);
    __m512 zero = _mm512_setzero_ps();
    const __m512i pe = pair_lanes(TW), po = _mm512_add_epi32(pe, _mm512_set1_epi32(1));
    for (int b = 0; b < nb; b++)
        for (int o = 0; o < OC; o++) {
            const float *g = dout + ((size_t)b * OC + o) * H * W;
            for (int ty = 0; ty < TH; ty += pair ? 2 : 1) {
                int rows = pair && ty + 1 < TH ? 2 : 1;
                float *v = D + (size_t)o * ld + ((size_t)b * TH + ty) * TW;
                for (int t0 = 0; t0 < TW; t0 += 16) {
                    __mmask16 m = lanes(pair ? rows * TW : TW - t0);
                    int n = W - 2 * t0;
                    __mmask16 mlo = lanes(n), mhi = lanes(n - 16 > 0 ? n - 16 : 0);
                    __m512 e[2], od[2];
                    for (int i = 0; i < 2; i++) {
                        int y = 2 * ty + i;
                        if (pair) {
                            __m512 l0 = y < H ? _mm512_maskz_loadu_ps(mlo, g + (size_t)y * W) : zero;
                            __m512 l1 = rows == 2 && y + 2 < H
                                            ? _mm512_maskz_loadu_ps(mlo, g + (size_t)(y + 2) * W)
                                            : zero;
                            e[i] = _mm512_permutex2var_ps(l0, pe, l1);
                            od[i] = _mm512_permutex2var_ps(l0, po, l1);
                        } else if (y < H) {
                            deinterleave(&e[i], &od[i], g + (size_t)y * W + 2 * t0, mlo, mhi);
                        } else {
                            e[i] = od[i] = zero;
                        }
                    }
                    __m512 r[4][2];  // A dY along the lines
                    for (int j = 0; j < 2; j++) {
                        __m512 a = j ? od[0] : e[0], p = j ? od[1] : e[1];
                        r[0][j] = a, r[1][j] = _mm512_add_ps(a, p), r[2][j] = _mm512_sub_ps(a, p);
                        r[3][j] = _mm512_sub_ps(zero, p);
                    }
                    for (int i = 0; i < 4; i++) {  // then (.) A^T along the columns
                        float *vi = v + (size_t)(4 * i) * fs + t0;
                        _mm512_mask_storeu_ps(vi, m, r[i][0]);
                        _mm512_mask_storeu_ps(vi + fs, m, _mm512_add_ps(r[i][0], r[i][1]));
                        _mm512_mask_storeu_ps(vi + 2 * fs, m, _mm512_sub_ps(r[i][0], r[i][1]));
                        _mm512_mask_storeu_ps(vi + 3 * fs, m, _mm512_sub_ps(zero, r[i][1]));
                    }
                }
            }
        }
}
// Narrow images (W <= 12: 6 tiles or fewer a row, 4 at 7x7) take 16 consecutive tiles of the
// image's flattened tile grid per vector instead, gathering the tiles' pixels and scattering
// their outputs, so that no lane idles and every store of a transformed tensor is one full
// vector. At 7x7 (128 channels, batch 128) that took the input transform from 7.5 ms to 2.4
// and the weight gradient from 20.2 to 11.5; at 14x14 the gathers lost 5-8%, at 28x28 half
// (input transform 4.2 -> 8.2 ms). Widths 9 to 12 are unmeasured.
typedef struct {
    __m512i base;    // per lane: the image offset of the tile's first (top-left) pixel
    __mmask16 m[4][4];  // per pixel (i, j) of the 4x4 input tile (or 2x2 output tile): inside
    __mmask16 lane;  // the lanes that are tiles
} TileBlock;

// blk[k] for the tiles 16k .. 16k+15 of an H x W image; off = -1 for input tiles (pixel
// (i, j) at 2ty-1+i, 2tx-1+j), 0 for output tiles; n = 4 or 2 pixels a side.
static void tile_blocks(TileBlock *blk, int H, int W, int off, int n) {
    int TH = (H + 1) / 2, TW = (W + 1) / 2, TT = TH * TW;
    for (int k = 0; 16 * k < TT; k++) {
        int base[16];
        memset(&blk[k], 0, sizeof blk[k]);
        for (int l = 0; l < 16; l++) {
            int t = 16 * k + l, ty = t / TW, tx = t % TW;
            base[l] = 0;
            if (t >= TT) continue;
            blk[k].lane |= (__mmask16)(1u << l);
            base[l] = (2 * ty + off) * W + 2 * tx + off;
            for (int i = 0; i < n; i++)
                for (int j = 0; j < n; j++) {
                    int y = 2 * ty + off + i, x = 2 * tx + off + j;
                    if (y >= 0 && y < H && x >= 0 && x < W) blk[k].m[i][j] |= (__mmask16)(1u << l);
                }
        }
        blk[k].base = _mm512_loadu_si512(base);
    }
}

static void winograd_input_flat(float *V, size_t ld, const float *inp, int nb, int C, int H,
                                int W) {
    int TT = ((H + 1) / 2) * ((W + 1) / 2), nblk = (TT + 15) / 16;
    size_t fs = winograd_plane(C, ld);
    TileBlock blk[nblk];
    tile_blocks(blk, H, W, -1, 4);
    __m512 zero = _mm512_setzero_ps();
    for (int b = 0; b < nb; b++)
        for (int c = 0; c < C; c++) {
            const float *x = inp + ((size_t)b * C + c) * H * W;
            for (int k = 0; k < nblk; k++) {
                const TileBlock *tb = &blk[k];
                __m512 d[4][4], r[4][4];
                for (int i = 0; i < 4; i++)
                    for (int j = 0; j < 4; j++)
                        d[i][j] = _mm512_mask_i32gather_ps(
                            zero, tb->m[i][j],
                            _mm512_add_epi32(tb->base, _mm512_set1_epi32(i * W + j)), x, 4);
                for (int j = 0; j < 4; j++) {  // B^T d along the lines
                    r[0][j] = _mm512_sub_ps(d[0][j], d[2][j]);
                    r[1][j] = _mm512_add_ps(d[1][j], d[2][j]);
                    r[2][j] = _mm512_sub_ps(d[2][j], d[1][j]);
                    r[3][j] = _mm512_sub_ps(d[1][j], d[3][j]);
                }
                float *v = V + (size_t)c * ld + (size_t)b * TT + 16 * k;
                for (int i = 0; i < 4; i++) {  // then (.) B along the columns
                    float *vi = v + (size_t)(4 * i) * fs;
                    _mm512_mask_storeu_ps(vi, tb->lane, _mm512_sub_ps(r[i][0], r[i][2]));
                    _mm512_mask_storeu_ps(vi + fs, tb->lane, _mm512_add_ps(r[i][1], r[i][2]));
                    _mm512_mask_storeu_ps(vi + 2 * fs, tb->lane, _mm512_sub_ps(r[i][2], r[i][1]));
                    _mm512_mask_storeu_ps(vi + 3 * fs, tb->lane, _mm512_sub_ps(r[i][1], r[i][3]));
                }
            }
        }
}

static void winograd_output_flat(float *out, const float *M, size_t ld, const float *bias,
                                 int nb, int OC, int H, int W) {
    int TT = ((H + 1) / 2) * ((W + 1) / 2), nblk = (TT + 15) / 16;
    size_t fs = winograd_plane(OC, ld);
    TileBlock blk[nblk];
    tile_blocks(blk, H, W, 0, 2);
    for (int b = 0; b < nb; b++)
        for (int o = 0; o < OC; o++) {
            __m512 bo = _mm512_set1_ps(bias ? bias[o] : 0.0f);
            float *dst = out + ((size_t)b * OC + o) * H * W;
            for (int k = 0; k < nblk; k++) {
                const TileBlock *tb = &blk[k];
                const float *p = M + (size_t)o * ld + (size_t)b * TT + 16 * k;
                __m512 s[2][4];
                for (int j = 0; j < 4; j++) {  // A^T m along the lines
                    __m512 m0 = _mm512_maskz_loadu_ps(tb->lane, p + j * fs),
                           m1 = _mm512_maskz_loadu_ps(tb->lane, p + (4 + j) * fs),
                           m2 = _mm512_maskz_loadu_ps(tb->lane, p + (8 + j) * fs),
                           m3 = _mm512_maskz_loadu_ps(tb->lane, p + (12 + j) * fs);
                    s[0][j] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
                    s[1][j] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
                }
                for (int i = 0; i < 2; i++) {  // then (.) A
                    __m512 y0 = _mm512_add_ps(_mm512_add_ps(s[i][0], s[i][1]),
                                              _mm512_add_ps(s[i][2], bo));
                    __m512 y1 = _mm512_sub_ps(_mm512_sub_ps(s[i][1], s[i][2]),
                                              _mm512_sub_ps(s[i][3], bo));
                    __m512i at = _mm512_add_epi32(tb->base, _mm512_set1_epi32(i * W));
                    _mm512_mask_i32scatter_ps(dst, tb->m[i][0], at, y0, 4);
                    _mm512_mask_i32scatter_ps(dst, tb->m[i][1],
                                              _mm512_add_epi32(at, _mm512_set1_epi32(1)), y1, 4);
                }
            }
        }
}

static void winograd_dout_flat(float *D, size_t ld, const float *dout, int nb, int OC, int H,
                               int W) {
    int TT = ((H + 1) / 2) * ((W + 1) / 2), nblk = (TT + 15) / 16;
    size_t fs = winograd_plane(OC, ld);
    TileBlock blk[nblk];
    tile_blocks(blk, H, W, 0, 2);
    __m512 zero = _mm512_setzero_ps();
    for (int b = 0; b < nb; b++)
        for (int o = 0; o < OC; o++) {
            const float *g = dout + ((size_t)b * OC + o) * H * W;
            for (int k = 0; k < nblk; k++) {
                const TileBlock *tb = &blk[k];
                __m512 y[2][2];
                for (int i = 0; i < 2; i++)
                    for (int j = 0; j < 2; j++)
                        y[i][j] = _mm512_mask_i32gather_ps(
                            zero, tb->m[i][j],
                            _mm512_add_epi32(tb->base, _mm512_set1_epi32(i * W + j)), g, 4);
                __m512 r[4][2];  // A dY along the lines
                for (int j = 0; j < 2; j++) {
                    r[0][j] = y[0][j], r[1][j] = _mm512_add_ps(y[0][j], y[1][j]);
                    r[2][j] = _mm512_sub_ps(y[0][j], y[1][j]), r[3][j] = _mm512_sub_ps(zero, y[1][j]);
                }
                float *v = D + (size_t)o * ld + (size_t)b * TT + 16 * k;
                for (int i = 0; i < 4; i++) {  // then (.) A^T along the columns
                    float *vi = v + (size_t)(4 * i) * fs;
                    _mm512_mask_storeu_ps(vi, tb->lane, r[i][0]);
                    _mm512_mask_storeu_ps(vi + fs, tb->lane, _mm512_add_ps(r[i][0], r[i][1]));
                    _mm512_mask_storeu_ps(vi + 2 * fs, tb->lane, _mm512_sub_ps(r[i][0], r[i][1]));
                    _mm512_mask_storeu_ps(vi + 3 * fs, tb->lane, _mm512_sub_ps(zero, r[i][1]));
                }
            }
        }
}
#endif

void winograd_input(float *V, size_t ld, const float *inp, int nb, int C, int H, int W) {
#ifdef __AVX512F__
    if (W <= 12)
        winograd_input_flat(V, ld, inp, nb, C, H, W);
    else
        winograd_input_avx512(V, ld, inp, nb, C, H, W);
#else
    winograd_input_generic(V, ld, inp, nb, C, H, W);
#endif
}

void winograd_output(float *out, const float *M, size_t ld, const float *bias, int nb, int OC,
                     int H, int W) {
#ifdef __AVX512F__
    if (W <= 12)
        winograd_output_flat(out, M, ld, bias, nb, OC, H, W);
    else
        winograd_output_avx512(out, M, ld, bias, nb, OC, H, W);
#else
    winograd_output_generic(out, M, ld, bias, nb, OC, H, W);
#endif
}

void winograd_dout(float *D, size_t ld, const float *dout, int nb, int OC, int H, int W) {
#ifdef __AVX512F__
    if (W <= 12)
        winograd_dout_flat(D, ld, dout, nb, OC, H, W);
    else
        winograd_dout_avx512(D, ld, dout, nb, OC, H, W);
#else
    winograd_dout_generic(D, ld, dout, nb, OC, H, W);
#endif
}

void winograd_filter_grad(float *dweight, const float *dU, int OC, int C) {
    size_t us = (size_t)OC * C;
    for (int o = 0; o < OC; o++)
        for (int c = 0; c < C; c++) {
            const float *u = dU + (size_t)o * C + c;
            float t[3][4];  // G^T dU, G^T = [1 .5 .5 0; 0 .5 -.5 0; 0 .5 .5 1]
            for (int j = 0; j < 4; j++) {
                float a = u[j * us], b = u[(4 + j) * us], p = u[(8 + j) * us],
                      q = u[(12 + j) * us];
                t[0][j] = a + 0.5f * (b + p), t[1][j] = 0.5f * (b - p), t[2][j] = 0.5f * (b + p) + q;
            }
            float *w = dweight + ((size_t)o * C + c) * 9;
            for (int i = 0; i < 3; i++) {  // then (.) G
                float a = t[i][0], b = t[i][1], p = t[i][2], q = t[i][3];
                w[3 * i] += a + 0.5f * (b + p);
                w[3 * i + 1] += 0.5f * (b - p);
                w[3 * i + 2] += 0.5f * (b + p) + q;
            }
        }
}

void winograd_forward_chunk(float *out, float *work, int nb, const float *U, const float *inp,
                            const float *bias, int n, int C, int H, int W, int OC) {
    (void)nb;  // F(2x2)'s layout follows the chunk itself
    size_t ld = tiles_of(n, H, W);
    size_t fv = winograd_plane(C, ld), fm = winograd_plane(OC, ld);
    float *V = work, *M = work + 16 * fv;
    winograd_input(V, ld, inp, n, C, H, W);
    for (int f = 0; f < 16; f++)
        prof_sgemm(CblasNoTrans, CblasNoTrans, OC, (int)ld, C, 1.0f, U + (size_t)f * OC * C, C,
                   V + f * fv, (int)ld, 0.0f, M + f * fm, (int)ld);
    winograd_output(out, M, ld, bias, n, OC, H, W);
}

void winograd_batch_forward(const WinogradKernels *k, float *out, float *work, int nb,
                            const float *U, const float *inp, const float *bias, int B, int C,
                            int H, int W, int OC) {
    for (int b0 = 0; b0 < B; b0 += nb)
        k->forward_chunk(out + (size_t)b0 * OC * H * W, work, nb, U, inp + (size_t)b0 * C * H * W,
                         bias, B - b0 < nb ? B - b0 : nb, C, H, W, OC);
}

void conv2d_winograd_forward(float *out, float *work, int nb, const float *U, const float *inp,
                             const float *bias, int B, int C, int H, int W, int OC) {
    winograd_batch_forward(&winograd2_kernels, out, work, nb, U, inp, bias, B, C, H, W, OC);
}

void winograd_dweight_chunk(float *dU, float *work, int nb, const float *dout, const float *inp,
                            int n, int C, int H, int W, int OC, float beta) {
    (void)nb;
    size_t ld = tiles_of(n, H, W);
    size_t fv = winograd_plane(C, ld), fd = winograd_plane(OC, ld);
    float *V = work, *D = work + 16 * fv;
    winograd_input(V, ld, inp, n, C, H, W);
    winograd_dout(D, ld, dout, n, OC, H, W);
    for (int f = 0; f < 16; f++)
        prof_sgemm(CblasNoTrans, CblasTrans, OC, C, (int)ld, 1.0f, D + f * fd, (int)ld,
                   V + f * fv, (int)ld, beta, dU + (size_t)f * OC * C, C);
}

void winograd_batch_dweight(const WinogradKernels *k, float *dweight, float *dU, float *work,
                            int nb, const float *dout, const float *inp, int B, int C, int H,
                            int W, int OC) {
    if (B <= 0) return;
    for (int b0 = 0; b0 < B; b0 += nb)
        k->dweight_chunk(dU, work, nb, dout + (size_t)b0 * OC * H * W,
                         inp + (size_t)b0 * C * H * W, B - b0 < nb ? B - b0 : nb, C, H, W, OC,
                         b0 ? 1.0f : 0.0f);
    k->filter_grad(dweight, dU, OC, C);
}

void conv2d_winograd_dweight(float *dweight, float *dU, float *work, int nb, const float *dout,
                             const float *inp, int B, int C, int H, int W, int OC) {
    winograd_batch_dweight(&winograd2_kernels, dweight, dU, work, nb, dout, inp, B, C, H, W, OC);
}

const WinogradKernels winograd2_kernels = {16, winograd_filter, winograd_work_floats,
                                           conv2d_winograd_forward, conv2d_winograd_dweight,
                                           winograd_filter_grad, winograd_forward_chunk,
                                           winograd_dweight_chunk};
