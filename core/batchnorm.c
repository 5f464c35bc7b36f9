// batchnorm.c: nn.BatchNorm2d over the channels of (C,H,W) inputs and nn.BatchNorm1d over the
// features of (D) inputs (a (D) input is C = D channels of one element each).
// Parameters as PyTorch's state_dict: weight, bias (C, trainable), running_mean, running_var
// (C, buffers) and num_batches_tracked (a scalar buffer, kept in a float slot).
//
// Train mode. Forward computes each channel's LOCAL partial statistics in double,
//   stats (3*C) = [count (C) | mean (C) | M2 (C)],  M2 = sum of squared deviations from mean,
// and hands them to c->reduce_stats (kind STATS_BN_FORWARD) exactly once; the reducer replaces
// them in place with the statistics of the layer's whole normalization group, combined with
// bn_stats_combine (Chan et al.'s pairwise update: exact for any split, empty shards included).
// It normalizes with the biased variance M2/n, eps inside the sqrt, and moves the running
// statistics with the group's unbiased variance M2/(n-1), as PyTorch does.
// Backward computes the local per-channel sums
//   sums (2*C) = [sum_dy (C) | sum_dy_xhat (C)],
// adds them to dbias and dweight as they are (the gradient all-reduce sums those across ranks
// later, so they must not be reduced here), then hands them to c->reduce_stats (kind
// STATS_BN_BACKWARD, summed) exactly once and uses the group totals for the input gradient
//   dinp = weight rstd (dy - sum_dy/n - xhat sum_dy_xhat/n).
// A rank with no samples still makes both calls (the reduction is collective) with count 0.
// The reducer has no error path into forward: one that fails must end the job itself.
//
// Ghost batches (spec.ghost > 0): each consecutive chunk of `ghost` samples of the local batch
// (the last may be shorter) is normalized with its own statistics and moves the running
// statistics in turn, so num_batches_tracked grows by the number of chunks. Ghost batches are
// local by definition: the reducer is NOT called.
//
// PreciseBN (StepCtx.precise_bn): the running statistics become the plain average over every
// batch (or ghost chunk) since num_batches_tracked was last 0, momentum 1/(k+1) at the
// (k+1)-th: the population statistics of Wu & Johnson (2021), with frozen weights.
//
// Eval mode uses the running statistics and never calls the reducer; its backward is the
// gradient of the affine map y = weight (x - running_mean) / sqrt(running_var + eps) + bias.
//
// Running statistics when the group saw too little: with n = 0 they are left alone, with n = 1
// only running_mean moves (the unbiased variance needs n >= 2; PyTorch refuses such batches).
//
// The save area holds, for each chunk, the mean, rstd and group count per channel in double,
// and backward's group sums (see save_chunk); backward recomputes xhat from inp. Per element
// it keeps one bit, and only in the fused pass (BatchNorm + ReLU + mask): where the output
// was positive (save_pos), all the fused backward needs of that output.
#include <math.h>
#include <string.h>
#ifdef __AVX__
#include <immintrin.h>
#endif

#include "init.h"
#include "kernels.h"
#include "prof.h"
#include "layer.h"

// The fused group's output sign as bits: pos (words(HW) 16-bit words a plane) has bit i % 16
// of word i / 16 set where out[i] > 0, i.e. where the ReLU passed and the mask kept. Backward
// needs nothing else of out, so it reads 1 bit an element instead of 32.
static inline int words(int HW) { return (HW + 15) / 16; }

// pos (words(n)) = the sign bits of y (n)
static void pack_positive(uint16_t *pos, const float *y, int n) {
    int i = 0;
#if defined(__AVX512F__)
    for (; i + 16 <= n; i += 16)
        pos[i / 16] = _mm512_cmp_ps_mask(_mm512_loadu_ps(y + i), _mm512_setzero_ps(), _CMP_GT_OQ);
#elif defined(__AVX2__)
    for (; i + 16 <= n; i += 16) {
        __m256 z = _mm256_setzero_ps();
        int lo = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(y + i), z, _CMP_GT_OQ));
        int hi = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(y + i + 8), z, _CMP_GT_OQ));
        pos[i / 16] = (uint16_t)(lo | hi << 8);
    }
#endif
    for (; i < n; i += 16) {
        unsigned m = 0;
        for (int k = 0; k < 16 && i + k < n; k++) m |= (unsigned)(y[i + k] > 0.0f) << k;
        pos[i / 16] = (uint16_t)m;
    }
}

// One element of the gradient at BatchNorm's output: dy itself, or (pos not NULL: the fused
// ReLU and mask after it) dy scaled where the output was positive, else 0, as their
// backwards apart give it.
static inline float grad_at(const float *dy, const uint16_t *pos, float scale, int i) {
    if (!pos) return dy[i];
    float v = dy[i] * scale;
    return pos[i / 16] >> (i % 16) & 1 ? v : 0.0f;
}

// The same for elements i .. i+3 (i % 4 == 0), as a vector. The product is formed whatever
// the bit says (same value), so the select is a bitwise and.
typedef float f4 __attribute__((vector_size(16)));
typedef int i4 __attribute__((vector_size(16)));

static inline f4 load4(const float *p) {
    f4 v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline f4 grad4(const float *dy, const uint16_t *pos, float scale, int i) {
    if (!pos) return load4(dy + i);
    int w = pos[i / 16] >> (i % 16);
    i4 keep = -((i4){w, w >> 1, w >> 2, w >> 3} & 1);  // all ones where the bit is set
    return (f4)((i4)(load4(dy + i) * scale) & keep);
}

// Eight floats and eight doubles: the sums below take a plane 8 elements at a time, element i
// + k into accumulator k (one 64-byte vector: a zmm register with AVX-512, two ymm halves
// without), so the order is the same whatever the width the machine runs it at. The helpers
// write through pointers: a function returning or taking such a vector by value changes the
// ABI where the machine lacks AVX-512 (GCC and clang warn).
typedef float f8 __attribute__((vector_size(32)));
typedef double d8 __attribute__((vector_size(64)));

static inline void load8(f8 *v, const float *p) { memcpy(v, p, sizeof *v); }

// r = (double) of eight floats: one vcvtps2pd (two with AVX; GCC splits the generic form).
static inline void widen8(d8 *r, const f8 *v) {
#if defined(__AVX512F__)
    __m512d w = _mm512_cvtps_pd(_mm256_loadu_ps((const float *)v));
    memcpy(r, &w, sizeof w);
#elif defined(__AVX__)
    __m256d lo = _mm256_cvtps_pd(_mm_loadu_ps((const float *)v));
    __m256d hi = _mm256_cvtps_pd(_mm_loadu_ps((const float *)v + 4));
    memcpy(r, &lo, sizeof lo);
    memcpy((char *)r + sizeof lo, &hi, sizeof hi);
#else
    *r = __builtin_convertvector(*v, d8);
#endif
}

// g = grad4 of elements i .. i+7 (i % 8 == 0): with AVX-512 a masked move by the 8 sign bits.
static inline void grad8(f8 *g, const float *dy, const uint16_t *pos, float scale, int i) {
#ifdef __AVX512F__
    if (!pos) {
        load8(g, dy + i);
        return;
    }
    __m256 v = _mm256_maskz_mov_ps((__mmask8)(pos[i / 16] >> (i % 16)),
                                   _mm256_mul_ps(_mm256_loadu_ps(dy + i), _mm256_set1_ps(scale)));
    memcpy(g, &v, sizeof v);
#else
    f4 lo = grad4(dy, pos, scale, i), hi = grad4(dy, pos, scale, i + 4);
    memcpy(g, &lo, sizeof lo);
    memcpy((char *)g + sizeof lo, &hi, sizeof hi);
#endif
}

// The plane sums' order, in double: element i + k of each block of 8 into accumulator k,
// folded as ((a0 + a4) + (a1 + a5)) + ((a2 + a6) + (a3 + a7)), then the last n % 8 elements
// one by one. A fixed order on every machine, with no serial dependence inside a block, and
// no -ffast-math needed.
static inline double fold8(const d8 *a) {
    return (((*a)[0] + (*a)[4]) + ((*a)[1] + (*a)[5])) + (((*a)[2] + (*a)[6]) + ((*a)[3] + (*a)[7]));
}

// sum[0] = sum g, sum[1] = sum g (x - m) over a plane of n, g = grad_at(dy, pos, scale): one
// sweep, the gradient rebuilt in registers, in fold8's order (written as vectors: GCC leaves
// the scalar form of this two-sum loop unvectorized). Inlined with pos NULL and not, a loop
// for each.
static inline __attribute__((always_inline)) void
plane_grad_sums(double sum[2], const float *dy, const uint16_t *pos, float scale,
                const float *x, float m, int n) {
    d8 a = {0}, q = {0}, g, w;
    f8 gf, xf;
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        grad8(&gf, dy, pos, scale, i);
        widen8(&g, &gf);
        load8(&xf, x + i);
        xf -= m;
        widen8(&w, &xf);
        a += g;
        q += g * w;
    }
    double s = fold8(&a), t = fold8(&q);
    for (; i < n; i++) {
        float gi = grad_at(dy, pos, scale, i);
        s += gi;
        t += (double)gi * (x[i] - m);
    }
    sum[0] = s, sum[1] = t;
}

// m[j] = the mean of plane x[j] (n floats) and q[j] its sum of squared deviations from m[j],
// for np <= 4 planes at once, each in fold8's order (so a plane's result does not depend on
// its company), the planes' accumulator chains interleaved: one plane's chains are serial, so
// alone it runs at the adder's latency, about a third of the speed memory allows. Inlined,
// so np = 4 unrolls.
static inline __attribute__((always_inline)) void
plane_moments(double *m, double *q, const float *const *x, int np, int n) {
    d8 a[4] = {{0}}, b[4] = {{0}}, d;
    f8 v;
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < np; j++) {
            load8(&v, x[j] + i);
            widen8(&d, &v);
            a[j] += d;
        }
    for (int j = 0; j < np; j++) {
        double s = fold8(&a[j]);
        for (int t = i; t < n; t++) s += x[j][t];
        m[j] = s / n;
    }
    for (i = 0; i + 8 <= n; i += 8)
        for (int j = 0; j < np; j++) {
            load8(&v, x[j] + i);
            widen8(&d, &v);
            d -= m[j];
            b[j] += d * d;
        }
    for (int j = 0; j < np; j++) {
        double s = fold8(&b[j]);
        for (int t = i; t < n; t++) s += (x[j][t] - m[j]) * (x[j][t] - m[j]);
        q[j] = s;
    }
}

// plane_moments of np <= 4 planes, the loops unrolled for the usual 4.
static void moments(double *m, double *q, const float *const *x, int np, int n) {
    if (np == 4)  // a constant count, so the inlined loops unroll
        plane_moments(m, q, x, 4, n);
    else
        plane_moments(m, q, x, np, n);
}

// Channel c of stats (3*C) takes in one plane of n values with mean pm and M2 pq (Chan's
// update), so a channel far from zero mean loses nothing to cancellation.
static inline void fold_plane(double *stats, int C, int c, double pm, double pq, int n) {
    double *count = stats, *mean = stats + C, *m2 = stats + 2 * C;
    double na = count[c], nn = na + n, delta = pm - mean[c];
    mean[c] += delta * n / nn;
    m2[c] += pq + delta * delta * na * n / nn;
    count[c] = nn;
}

// stats (3*C) = [count | mean | M2] of each channel of inp (B,C,HW), in double. Each (b,c)
// plane is reduced in two passes (it is in cache) and folded into its channel. Four
// channels' planes are reduced together (plane_moments); each channel still takes its planes
// in sample order.
void batchnorm_stats(double *stats, const float *inp, int B, int C, int HW) {
    prof_bytes((double)B * C * HW);  // the second pass over a plane reads it from cache
    for (int c = 0; c < 3 * C; c++) stats[c] = 0.0;
    for (int b = 0; b < B; b++)
        for (int c0 = 0; c0 < C; c0 += 4) {
            int nc = C - c0 < 4 ? C - c0 : 4;
            const float *x[4] = {NULL};
            double pm[4], pq[4];
            for (int j = 0; j < nc; j++) x[j] = inp + ((size_t)b * C + c0 + j) * HW;
            moments(pm, pq, x, nc, HW);
            for (int j = 0; j < nc; j++) fold_plane(stats, C, c0 + j, pm[j], pq[j], HW);
        }
}

// pm (N, 2) = [mean, M2] of each plane of inp (N, HW), as batchnorm_stats reduces a plane (a
// plane's result does not depend on the planes beside it). Not counted in the profile's
// bytes: a convolution calls it on its output while the output is in cache.
void batchnorm_plane_moments(double *pm, const float *inp, int N, int HW) {
    for (int p0 = 0; p0 < N; p0 += 4) {
        int np = N - p0 < 4 ? N - p0 : 4;
        const float *x[4] = {NULL};
        double m[4], q[4];
        for (int j = 0; j < np; j++) x[j] = inp + (size_t)(p0 + j) * HW;
        moments(m, q, x, np, HW);
        for (int j = 0; j < np; j++) pm[2 * (p0 + j)] = m[j], pm[2 * (p0 + j) + 1] = q[j];
    }
}

// stats (3*C) as batchnorm_stats gives them, from the planes' moments pm (B, C, 2)
// (batchnorm_plane_moments): the same values folded in the same order, so the same bits.
void batchnorm_stats_from_moments(double *stats, const double *pm, int B, int C, int HW) {
    for (int c = 0; c < 3 * C; c++) stats[c] = 0.0;
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            const double *p = pm + 2 * ((size_t)b * C + c);
            fold_plane(stats, C, c, p[0], p[1], HW);
        }
}

// dst (3*C) = the statistics of dst's samples and src's (3*C) together (Chan et al.).
// A side with count 0 contributes nothing, whatever its mean and M2 say.
void bn_stats_combine(double *dst, const double *src, int C) {
    for (int c = 0; c < C; c++) {
        double na = dst[c], nb = src[c];
        if (nb <= 0.0) continue;
        if (na <= 0.0) {
            dst[c] = nb, dst[C + c] = src[C + c], dst[2 * C + c] = src[2 * C + c];
            continue;
        }
        double n = na + nb, delta = src[C + c] - dst[C + c];
        dst[C + c] += delta * nb / n;
        dst[2 * C + c] += src[2 * C + c] + delta * delta * na * nb / n;
        dst[c] = n;
    }
}

// out (B,C,HW) = weight (inp - mean) rstd + bias; inp (B,C,HW); mean, rstd (C); weight, bias (C).
void batchnorm_forward(float *out, const float *inp, const double *mean, const double *rstd,
                       const float *weight, const float *bias, int B, int C, int HW) {
    prof_bytes(2.0 * B * C * HW);
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            size_t o = ((size_t)b * C + c) * HW;
            const float *x = inp + o;
            float *y = out + o;
            float m = (float)mean[c], a = (float)(weight[c] * rstd[c]), sh = bias[c];
            for (int i = 0; i < HW; i++) y[i] = (x[i] - m) * a + sh;
        }
}

// out = mask(relu(weight (inp - mean) rstd + bias)): batchnorm_forward, relu_forward and a
// dropout's mask (keep per element, or per channel if per_channel; NULL = none) in one sweep,
// with the same roundings as the three apart; pos (B,C,words(H W)) = the sign bits of that
// output (pack_positive), which the fused backward reads instead of it. inp (B,C,H,W).
// argmax NULL: out is (B,C,H,W). Else a 2x2 stride-2 max-pool follows in the same sweep, each
// plane pooled while in L1 (maxpool2x2_forward_planes): out is (B,C,H/2,W/2) and argmax
// (B,C,H/2,W/2) the pool's, and the unpooled output is never written to memory.
void batchnorm_forward_relu_mask(float *out, int32_t *argmax, uint16_t *pos, const float *inp,
                                 const double *mean, const double *rstd, const float *weight,
                                 const float *bias, const uint8_t *keep, int per_channel,
                                 float scale, int B, int C, int H, int W) {
    int HW = H * W, OHW = (H / 2) * (W / 2);
    float plane[argmax ? HW : 1];
    prof_bytes((argmax ? 1.0 + 2.0 * OHW / HW : 2.0) * B * C * HW + B * C * words(HW) / 2.0);
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            size_t bc = (size_t)b * C + c, o = bc * HW;
            const float *x = inp + o;
            float *y = argmax ? plane : out + o;
            uint16_t *p = pos + bc * words(HW);
            float m = (float)mean[c], a = (float)(weight[c] * rstd[c]), sh = bias[c];
            if (keep && per_channel && !keep[bc]) {
                memset(y, 0, (size_t)HW * sizeof(float));
                memset(p, 0, (size_t)words(HW) * sizeof *p);
            } else {
                const uint8_t *k = keep && !per_channel ? keep + o : NULL;
                float s = keep ? scale : 1.0f;
                for (int i = 0; i < HW; i++) {
                    float v = (x[i] - m) * a + sh;
                    v = v > 0.0f ? v : 0.0f;
                    y[i] = k && !k[i] ? 0.0f : keep ? v * s : v;
                }
                pack_positive(p, y, HW);  // the plane is in L1
            }
            if (argmax) maxpool2x2_forward_planes(out + bc * OHW, argmax + bc * OHW, y, 1, H, W);
        }
}

// Where a backward pass's dout comes from: (B,C,HW) itself, or, with argmax not NULL, the
// gradient (B,C,H/2,W/2) of the 2x2 max-pool that ended the fused pass, spread over each
// plane (H,W) in cache (maxpool2x2_backward_planes) as the pool's own backward would.
typedef struct {
    const float *dout;
    const int32_t *argmax;
    int H, W;
} Dout;

// dout's plane bc (H W floats): in place, or rebuilt into scratch
static const float *dout_plane(const Dout *d, size_t bc, float *scratch) {
    int HW = d->H * d->W;
    if (!d->argmax) return d->dout + bc * HW;
    size_t q = bc * (d->H / 2) * (d->W / 2);
    maxpool2x2_backward_planes(scratch, d->dout + q, d->argmax + q, 1, d->H, d->W);
    return scratch;
}

// The floats a pass moves per element of dout as dout_plane reads it
static double dout_floats(const Dout *d) {
    return d->argmax ? 2.0 * (d->H / 2) * (d->W / 2) / (d->H * d->W) : 1.0;
}

// sums (2*C) = [sum dout | sum dout xhat] per channel, xhat = (inp - mean) rstd, in double.
// dout as d says, inp (B,C,HW); mean, rstd (C).
// With pos (B,C,words(HW)) not NULL, dout is the gradient of batchnorm_forward_relu_mask's
// out, pos its sign bits, and the gradient at the BatchNorm output is rebuilt element by
// element (grad_at).
static void backward_sums(double *sums, const Dout *d, const uint16_t *pos, float scale,
                          const float *inp, const double *mean, const double *rstd, int B,
                          int C) {
    double *sdy = sums, *sdyx = sums + C;
    int HW = d->H * d->W;
    float scratch[d->argmax ? HW : 1];
    prof_bytes((1.0 + dout_floats(d)) * B * C * HW + (pos ? B * C * words(HW) / 2.0 : 0));
    for (int c = 0; c < C; c++) sdy[c] = sdyx[c] = 0.0;
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            size_t bc = (size_t)b * C + c, o = bc * HW;
            const float *dy = dout_plane(d, bc, scratch);
            float m = (float)mean[c];
            double p[2];
            if (pos)
                plane_grad_sums(p, dy, pos + bc * words(HW), scale, inp + o, m, HW);
            else
                plane_grad_sums(p, dy, NULL, 1.0f, inp + o, m, HW);
            sdy[c] += p[0];
            sdyx[c] += p[1] * rstd[c];
        }
}

void batchnorm_backward_sums(double *sums, const float *dout, const float *inp,
                             const double *mean, const double *rstd, int B, int C, int HW) {
    Dout d = {dout, NULL, HW, 1};
    backward_sums(sums, &d, NULL, 1.0f, inp, mean, rstd, B, C);
}

// dx (n) = k1 (g - k2 - (x - m) k3) over a plane, g = grad_at(dy, pos, scale): four at a
// time as vectors (the same operations in the same order per element), the rest one by one.
static inline __attribute__((always_inline)) void
plane_input_grad(float *dx, const float *dy, const uint16_t *pos, float scale, const float *x,
                 float m, float k1, float k2, float k3, int n) {
    int i = 0;
#ifdef __AVX512F__
    typedef float f16 __attribute__((vector_size(64)));
    for (; i + 16 <= n; i += 16) {  // the same expression on 16 lanes; the bits by a mask
        f16 d, xv;
        memcpy(&d, dy + i, sizeof d), memcpy(&xv, x + i, sizeof xv);
        f16 g = pos ? (f16)_mm512_maskz_mov_ps(pos[i / 16], (__m512)(d * scale)) : d;
        f16 v = k1 * (g - k2 - (xv - m) * k3);
        memcpy(dx + i, &v, sizeof v);
    }
#endif
    for (; i + 4 <= n; i += 4) {
        f4 v = k1 * (grad4(dy, pos, scale, i) - k2 - (load4(x + i) - m) * k3);
        memcpy(dx + i, &v, sizeof v);
    }
    for (; i < n; i++) dx[i] = k1 * (grad_at(dy, pos, scale, i) - k2 - (x[i] - m) * k3);
}

// dinp (B,C,HW) overwritten: the input gradient of training-mode normalization, from the
// group's sums (2*C, as batchnorm_backward_sums) and count (C). dout as d says, inp (B,C,HW);
// mean, rstd, weight (C); pos as backward_sums.
static void backward_input(float *dinp, const Dout *d, const uint16_t *pos, float scale,
                           const float *inp, const double *mean, const double *rstd,
                           const double *sums, const double *count, const float *weight, int B,
                           int C) {
    int HW = d->H * d->W;
    float scratch[d->argmax ? HW : 1];
    prof_bytes((2.0 + dout_floats(d)) * B * C * HW + (pos ? B * C * words(HW) / 2.0 : 0));
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            size_t bc = (size_t)b * C + c, o = bc * HW;
            const float *dy = dout_plane(d, bc, scratch);
            double n = count[c] > 0.0 ? count[c] : 1.0;
            float m = (float)mean[c], k1 = (float)(weight[c] * rstd[c]);
            float k2 = (float)(sums[c] / n), k3 = (float)(sums[C + c] / n * rstd[c]);
            if (pos)
                plane_input_grad(dinp + o, dy, pos + bc * words(HW), scale, inp + o, m, k1, k2,
                                 k3, HW);
            else
                plane_input_grad(dinp + o, dy, NULL, 1.0f, inp + o, m, k1, k2, k3, HW);
        }
}

void batchnorm_backward_input(float *dinp, const float *dout, const float *inp,
                              const double *mean, const double *rstd, const double *sums,
                              const double *count, const float *weight, int B, int C, int HW) {
    Dout d = {dout, NULL, HW, 1};
    backward_input(dinp, &d, NULL, 1.0f, inp, mean, rstd, sums, count, weight, B, C);
}

// dinp (B,C,HW) overwritten = dout weight rstd: eval mode, where mean and rstd are constants.
static void backward_affine(float *dinp, const Dout *d, const uint16_t *pos, float scale,
                            const double *rstd, const float *weight, int B, int C) {
    int HW = d->H * d->W;
    float scratch[d->argmax ? HW : 1];
    prof_bytes((1.0 + dout_floats(d)) * B * C * HW + (pos ? B * C * words(HW) / 2.0 : 0));
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            size_t bc = (size_t)b * C + c, o = bc * HW;
            const float *dy = dout_plane(d, bc, scratch);
            const uint16_t *p = pos ? pos + bc * words(HW) : NULL;
            float k = (float)(weight[c] * rstd[c]);
            for (int i = 0; i < HW; i++) dinp[o + i] = grad_at(dy, p, scale, i) * k;
        }
}

void batchnorm_backward_affine(float *dinp, const float *dout, const double *rstd,
                               const float *weight, int B, int C, int HW) {
    Dout d = {dout, NULL, HW, 1};
    backward_affine(dinp, &d, NULL, 1.0f, rstd, weight, B, C);
}

// running_mean, running_var (C) move towards the group statistics stats (3*C); see the top.
static void update_running(float *rmean, float *rvar, const double *stats, int C,
                           float momentum) {
    for (int c = 0; c < C; c++) {
        double n = stats[c];
        if (n >= 1.0) rmean[c] = (float)((1.0 - momentum) * rmean[c] + momentum * stats[C + c]);
        if (n >= 2.0)
            rvar[c] = (float)((1.0 - momentum) * rvar[c] + momentum * stats[2 * C + c] / (n - 1.0));
    }
}

// The group's statistics through c->reduce_stats, timed as communication (PROF_COMM).
static void reduce(const StepCtx *c, int id, StatsKind kind, double *stats, int C) {
    double t = prof_start();
    c->reduce_stats(c->reduce_ctx, id, kind, stats, C);
    prof_add(PROF_COMM, t);
}

static void channels(const Layer *l, int *C, int *HW) {
    *C = l->in.d[0];
    *HW = l->in.ndim == 3 ? l->in.d[1] * l->in.d[2] : 1;
}

static int setup(Layer *l, Shape in, ParamTable *t, Err *e) {
    const LayerSpec *s = &l->spec;
    if (in.ndim != 1 && in.ndim != 3)
        return err_set(e, ERR_INPUT,
                       "layer %s (batchnorm) normalizes (C,H,W) or (D) inputs but gets %d "
                       "dimensions",
                       s->name, in.ndim);
    if (!(s->eps > 0.0f))
        return err_set(e, ERR_INPUT, "layer %s (batchnorm): eps must be positive", s->name);
    if (!(s->momentum >= 0.0f && s->momentum <= 1.0f))
        return err_set(e, ERR_INPUT, "layer %s (batchnorm): momentum must be in [0, 1], got %g",
                       s->name, (double)s->momentum);
    if (s->ghost < 0)
        return err_set(e, ERR_INPUT, "layer %s (batchnorm): ghost batch size must be >= 0",
                       s->name);
    l->out = in;
    int64_t shape[1] = {in.d[0]};
    if (layer_add_param(l, t, "weight", PARAM_NORM_SCALE, 1, shape, e)) return e->code;
    if (layer_add_param(l, t, "bias", PARAM_NORM_SHIFT, 1, shape, e)) return e->code;
    if (layer_add_param(l, t, "running_mean", PARAM_RUNNING_MEAN, 1, shape, e)) return e->code;
    if (layer_add_param(l, t, "running_var", PARAM_RUNNING_VAR, 1, shape, e)) return e->code;
    if (layer_add_param(l, t, "num_batches_tracked", PARAM_COUNTER, 0, NULL, e)) return e->code;
    // see save_chunk: chunk 0 is fixed, ghost chunks per sample
    l->save_bytes_fixed = 5 * (size_t)in.d[0] * sizeof(double);
    l->save_bytes_per_sample = s->ghost > 0 ? 5 * (size_t)in.d[0] * sizeof(double) : 0;
    // the planes' moments (see save_moments), and the fused output's sign bits (save_pos),
    // in whole doubles a sample
    if (in.ndim == 3) l->save_bytes_per_sample += 2 * (size_t)in.d[0] * sizeof(double);
    int HW = in.ndim == 3 ? in.d[1] * in.d[2] : 1;
    size_t pos_bytes = (size_t)in.d[0] * words(HW) * sizeof(uint16_t);
    l->save_bytes_per_sample += (pos_bytes + 7) / 8 * 8;
    return ERR_OK;
}

static void init(const Layer *l, float *params, float *bufs, uint32_t seed) {
    (void)seed;
    size_t C = (size_t)l->in.d[0];
    init_constant(params + l->poff[0], C, 1.0f);
    init_constant(params + l->poff[1], C, 0.0f);
    init_constant(bufs + l->poff[2], C, 0.0f);
    init_constant(bufs + l->poff[3], C, 1.0f);
    bufs[l->poff[4]] = 0.0f;
}

// The save area (save_bytes_fixed + max_batch * save_bytes_per_sample bytes, laid out as this
// file likes): one slot of 5*C doubles per chunk, forward's [mean | rstd | count] and then
// backward's sums [sum_dy | sum_dy_xhat], kept until the input gradient is written (which
// dinp_range may do later). Chunk 0 always exists (an empty shard still reduces); a ghost batch
// has at most one chunk per sample. After the slots a batch of B can use:
static double *save_chunk(const Layer *l, int k) {
    return (double *)l->save + 5 * (size_t)l->in.d[0] * k;
}
// Then, for a (C,H,W) input, the moments (B, C, 2) of its planes that a training forward
// takes from the layer before it (moments_wanted), and last the sign bits.
static double *save_moments(const Layer *l, int B) {
    return save_chunk(l, l->spec.ghost > 0 ? B : 1);
}
static uint16_t *save_pos(const Layer *l, int B) {
    return (uint16_t *)(save_moments(l, B) + (l->in.ndim == 3 ? 2 * (size_t)l->in.d[0] * B : 0));
}

static double *moments_wanted(Layer *l, const StepCtx *c, int B) {
    return c->train && l->in.ndim == 3 ? save_moments(l, B) : NULL;
}

// Chunks of the local batch normalized separately: 1 (the whole batch) unless ghost batching.
static int nchunks(const Layer *l, const StepCtx *c, int B) {
    int g = l->spec.ghost;
    if (!c->train || g <= 0) return 1;
    return (B + g - 1) / g;
}

// Planes of the layer's input: (C, H, W), or C planes of 1 x 1 for a (D) input.
static void planes(const Layer *l, int *C, int *H, int *W) {
    *C = l->in.d[0];
    *H = l->in.ndim == 3 ? l->in.d[1] : 1;
    *W = l->in.ndim == 3 ? l->in.d[2] : 1;
}

// The output of samples [b0, b0 + nb) into out (from sample b0 on): plain, or through the
// ReLU, mask and pool of rm (NULL: plain), its sign bits into pos (B, C, words(HW)).
static void apply(const Layer *l, float *out, uint16_t *pos, const float *inp,
                  const double *mean, const double *rstd, const float *w, const float *bias,
                  const ReluMask *rm, int b0, int nb) {
    int C, H, W;
    planes(l, &C, &H, &W);
    size_t off = (size_t)b0 * C * H * W;
    if (!rm) {
        batchnorm_forward(out, inp + off, mean, rstd, w, bias, nb, C, H * W);
        return;
    }
    const uint8_t *keep = !rm->keep ? NULL : rm->keep + (rm->per_channel ? (size_t)b0 * C : off);
    size_t pooled = (size_t)b0 * C * (H / 2) * (W / 2);
    batchnorm_forward_relu_mask(out, rm->argmax ? rm->argmax + pooled : NULL,
                                pos + (size_t)b0 * C * words(H * W), inp + off, mean, rstd, w,
                                bias, keep, rm->per_channel, rm->scale, nb, C, H, W);
}

// The chunk of sample b (its statistics and sums in save_chunk): b / ghost with ghost batches
// in training, else 0; *end = the end of that chunk's part of [b, stop).
static int chunk_of(const Layer *l, const StepCtx *c, int B, int b, int stop, int *end) {
    int g = c->train && l->spec.ghost > 0 ? l->spec.ghost : B, k = b / g;
    *end = (k + 1) * g < stop ? (k + 1) * g : stop;
    return k;
}

// The floats of output a sample has: (C, H, W), or (C, H/2, W/2) after rm's pool.
static size_t out_numel(const Layer *l, const ReluMask *rm) {
    int C, H, W;
    planes(l, &C, &H, &W);
    return rm && rm->argmax ? (size_t)C * (H / 2) * (W / 2) : (size_t)C * H * W;
}

// out (n, out_numel) = the output of samples [b0, b0 + n), each with its chunk's statistics
// (save_chunk), after a forward call made with out NULL; the sign bits as forward writes them.
static void output_range(Layer *l, float *out, int b0, int n, const float *inp,
                         const float *params, const StepCtx *c, int B, const ReluMask *rm) {
    int C = l->in.d[0];
    const float *w = params + l->poff[0], *bias = params + l->poff[1];
    for (int b = b0, end; b < b0 + n; b = end) {
        const double *mean = save_chunk(l, chunk_of(l, c, B, b, b0 + n, &end));
        apply(l, out + (size_t)(b - b0) * out_numel(l, rm), save_pos(l, B), inp, mean, mean + C,
              w, bias, rm, b, end - b);
    }
}

static void forward_rm(Layer *l, float *out, const float *inp, const float *params, float *bufs,
                       const StepCtx *c, int B, const ReluMask *rm) {
    int C, HW;
    channels(l, &C, &HW);
    const float *w = params + l->poff[0], *bias = params + l->poff[1];
    float *rmean = bufs + l->poff[2], *rvar = bufs + l->poff[3];
    if (!c->train) {
        double *mean = save_chunk(l, 0), *rstd = mean + C;
        for (int ch = 0; ch < C; ch++) {
            mean[ch] = rmean[ch];
            rstd[ch] = 1.0 / sqrt((double)rvar[ch] + l->spec.eps);
        }
        if (out) apply(l, out, save_pos(l, B), inp, mean, rstd, w, bias, rm, 0, B);
        return;
    }
    int g = l->spec.ghost > 0 ? l->spec.ghost : B, K = nchunks(l, c, B);
    for (int k = 0; k < K; k++) {
        int b0 = k * g, nb = B - b0 < g ? B - b0 : g;
        size_t off = (size_t)b0 * C * HW;
        double *stats = save_chunk(l, k);  // [count | mean | M2], then [mean | rstd | count]
        if (l->in_moments)  // the convolution before gathered them (seq_forward)
            batchnorm_stats_from_moments(stats, l->in_moments + 2 * (size_t)b0 * C, nb, C, HW);
        else
            batchnorm_stats(stats, inp + off, nb, C, HW);
        if (l->spec.ghost <= 0 && c->reduce_stats) reduce(c, l->id, STATS_BN_FORWARD, stats, C);
        // PreciseBN: momentum 1/(k+1) at the (k+1)-th batch keeps the plain average of all
        float momentum = c->precise_bn ? 1.0f / (bufs[l->poff[4]] + (float)k + 1.0f) : l->spec.momentum;
        update_running(rmean, rvar, stats, C, momentum);
        for (int ch = 0; ch < C; ch++) {
            double n = stats[ch], m = stats[C + ch], m2 = stats[2 * C + ch];
            double var = n > 0.0 ? m2 / n : 0.0;
            stats[ch] = m;
            stats[C + ch] = 1.0 / sqrt(var + l->spec.eps);
            stats[2 * C + ch] = n;
        }
        if (out)  // else written later by samples (out_range)
            apply(l, out + (size_t)b0 * out_numel(l, rm), save_pos(l, B), inp, stats, stats + C,
                  w, bias, rm, b0, nb);
    }
    bufs[l->poff[4]] += (float)K;
}

static void forward(Layer *l, float *out, const float *inp, const float *params, float *bufs,
                    const StepCtx *c, int B) {
    forward_rm(l, out, inp, params, bufs, c, B, NULL);
}

static void forward_relu_mask(Layer *l, float *out, const float *inp, const float *params,
                              float *bufs, const StepCtx *c, int B, const ReluMask *rm) {
    forward_rm(l, out, inp, params, bufs, c, B, rm);
}

// Where dout and the sign bits of samples [b0, ...) start: dout is the gradient of out, this
// layer's output (rm NULL) or that of the ReLU, mask and pool after it (rm: the mask's scale,
// the pool's argmax; the output's sign bits forward saved).
static Dout dout_at(const Layer *l, const float *dout, const ReluMask *rm, int b0) {
    int C, H, W;
    planes(l, &C, &H, &W);
    if (rm && rm->argmax) {
        size_t pooled = (size_t)b0 * C * (H / 2) * (W / 2);
        return (Dout){dout + pooled, rm->argmax + pooled, H, W};
    }
    return (Dout){dout + (size_t)b0 * C * H * W, NULL, H * W, 1};
}
static const uint16_t *pos_at(const Layer *l, const ReluMask *rm, int B, int b0) {
    int C, H, W;
    planes(l, &C, &H, &W);
    return rm ? save_pos(l, B) + (size_t)b0 * C * words(H * W) : NULL;
}

// dinp (n, C, H, W) = the input gradient of samples [b0, b0 + n), each with its chunk's
// statistics and sums (save_chunk), which backward_rm has gathered and reduced.
static void input_grad(Layer *l, float *dinp, int b0, int n, const float *dout,
                       const float *inp, const float *params, const StepCtx *c, int B,
                       const ReluMask *rm) {
    int C, H, W;
    planes(l, &C, &H, &W);
    size_t HW = (size_t)H * W;
    const float *w = params + l->poff[0];
    float scale = rm ? rm->scale : 1.0f;
    for (int b = b0, end; b < b0 + n; b = end) {
        const double *mean = save_chunk(l, chunk_of(l, c, B, b, b0 + n, &end));
        const double *rstd = mean + C, *count = mean + 2 * C;
        Dout d = dout_at(l, dout, rm, b);
        const uint16_t *p = pos_at(l, rm, B, b);
        float *dx = dinp + (size_t)(b - b0) * C * HW;
        if (c->train)
            backward_input(dx, &d, p, scale, inp + (size_t)b * C * HW, mean, rstd, mean + 3 * C,
                           count, w, end - b, C);
        else
            backward_affine(dx, &d, p, scale, rstd, w, end - b, C);
    }
}

// Backward of this layer (rm NULL) or of it and the ReLU, mask and pool after it (rm). With
// dinp NULL the input gradient is not written (a first layer), or written later by samples
// (dinp_range).
static void backward_rm(Layer *l, float *dinp, float *dparams, const float *dout,
                        const float *inp, const ReluMask *rm, const float *params,
                        const StepCtx *c, int B) {
    int C, H, W;
    planes(l, &C, &H, &W);
    size_t HW = (size_t)H * W;
    float *dw = dparams + l->poff[0], *db = dparams + l->poff[1];
    float scale = rm ? rm->scale : 1.0f;
    int g = c->train && l->spec.ghost > 0 ? l->spec.ghost : B, K = nchunks(l, c, B);
    for (int k = 0; k < K; k++) {
        int b0 = k * g, nb = B - b0 < g ? B - b0 : g;
        double *mean = save_chunk(l, k), *rstd = mean + C, *sums = mean + 3 * C;
        Dout d = dout_at(l, dout, rm, b0);
        backward_sums(sums, &d, pos_at(l, rm, B, b0), scale, inp + (size_t)b0 * C * HW, mean,
                      rstd, nb, C);
        for (int ch = 0; ch < C; ch++) {
            db[ch] += (float)sums[ch];
            dw[ch] += (float)sums[C + ch];
        }
        // even without dinp (a first layer), so every rank makes the same collective calls
        if (c->train && l->spec.ghost <= 0 && c->reduce_stats)
            reduce(c, l->id, STATS_BN_BACKWARD, sums, C);
        if (dinp)
            input_grad(l, dinp + (size_t)b0 * C * HW, b0, nb, dout, inp, params, c, B, rm);
    }
}

static void backward(Layer *l, float *dinp, float *dparams, const float *dout, const float *inp,
                     const float *out, const float *params, const StepCtx *c, int B) {
    (void)out;
    backward_rm(l, dinp, dparams, dout, inp, NULL, params, c, B);
}

// out (the fused output) is not read: its sign bits, saved by forward_relu_mask, say all
// backward needs of it.
static void backward_relu_mask(Layer *l, float *dinp, float *dparams, const float *dout,
                               const float *inp, const float *out, const float *params,
                               const StepCtx *c, int B, const ReluMask *rm) {
    (void)out;
    backward_rm(l, dinp, dparams, dout, inp, rm, params, c, B);
}

static const LayerKeyDesc keys[] = {
    LAYER_KEY_DESC_EPS,
    {"momentum", LAYER_KEY_FLOAT, offsetof(LayerSpec, momentum), 0, 1, 0.1, "0.1",
     "running-statistics momentum (PyTorch's convention)"},
};

const LayerKind layer_batchnorm = {.type = "batchnorm", LAYER_KEYS(keys),
                                   .flags = LAYER_NORMALIZES | LAYER_RUNNING_STATS,
                                   .setup = setup, .init = init, .forward = forward,
                                   .backward = backward, .forward_relu_mask = forward_relu_mask,
                                   .backward_relu_mask = backward_relu_mask,
                                   .moments_wanted = moments_wanted, .dinp_range = input_grad,
                                   .out_range = output_range};
