// pool.c: spatial pooling over (C,H,W): maxpool2d and avgpool2d as nn.MaxPool2d and
// nn.AvgPool2d (square kernel, stride default = kernel, zero padding, ceil_mode=False,
// avg with count_include_pad=True), and globalavgpool as AdaptiveAvgPool2d(1) + flatten.
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"
#include "layer.h"
#include "prof.h"

#ifdef __AVX512F__
#include <immintrin.h>
#endif

// out is (B,C,OH,OW), argmax is (B,C,OH,OW): the index ih*W+iw of each output's input
// (saved for backward), inp is (B,C,H,W). Padding acts as -inf; on ties the first maximum in
// row-major window order wins, and a NaN (the last one) wins, as PyTorch's CPU kernel does.
#ifndef __AVX512F__
// The common 2x2 stride-2 case without the general window's bounds checks; the same
// comparisons in the same order, so the same result and argmax (first max, NaN wins).
// out (N,H/2,W/2), argmax likewise, inp (N,H,W).
static void maxpool2x2_forward(float *out, int32_t *argmax, const float *inp, int N, int H,
                               int W) {
    int OH = H / 2, OW = W / 2;
    for (size_t n = 0; n < (size_t)N; n++) {
        const float *x = inp + n * H * W;
        float *y = out + n * OH * OW;
        int32_t *a = argmax + n * OH * OW;
        for (int oh = 0; oh < OH; oh++) {
            const float *r0 = x + 2 * oh * W, *r1 = r0 + W;
            for (int ow = 0; ow < OW; ow++) {
                int i = 2 * oh * W + 2 * ow;
                float v[4] = {r0[2 * ow], r0[2 * ow + 1], r1[2 * ow], r1[2 * ow + 1]};
                int32_t at[4] = {i, i + 1, i + W, i + W + 1};
                float best = -INFINITY;
                int32_t arg = i;
                for (int k = 0; k < 4; k++)
                    if (v[k] > best || isnan(v[k])) best = v[k], arg = at[k];
                y[oh * OW + ow] = best;
                a[oh * OW + ow] = arg;
            }
        }
    }
}

#endif

#ifdef __AVX512F__
// maxpool2x2_forward with 16 outputs of a row a vector: the same four comparisons in the same
// order per lane (greater, or NaN), so the same maxima and argmax bit for bit. It took the
// max-pool from 4.9% of a cnn6_mlp4 step (scalar: a branch per comparison) to about 1%.
static void maxpool2x2_forward_avx512(float *out, int32_t *argmax, const float *inp, int N,
                                      int H, int W) {
    int OH = H / 2, OW = W / 2;
    const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i io = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (size_t n = 0; n < (size_t)N; n++) {
        const float *x = inp + n * H * W;
        float *y = out + n * OH * OW;
        int32_t *a = argmax + n * OH * OW;
        for (int oh = 0; oh < OH; oh++) {
            const float *r0 = x + 2 * oh * W, *r1 = r0 + W;
            for (int ow = 0; ow < OW; ow += 16) {
                int k = OW - ow < 16 ? OW - ow : 16;
                __mmask16 m = (__mmask16)((1u << k) - 1);
                __mmask16 mlo = (__mmask16)((1u << (2 * k < 16 ? 2 * k : 16)) - 1);
                __mmask16 mhi = (__mmask16)((1u << (2 * k > 16 ? 2 * k - 16 : 0)) - 1);
                __m512 v[4];
                for (int r = 0; r < 2; r++) {
                    const float *p = (r ? r1 : r0) + 2 * ow;
                    __m512 lo = _mm512_maskz_loadu_ps(mlo, p), hi = _mm512_maskz_loadu_ps(mhi, p + 16);
                    v[2 * r] = _mm512_permutex2var_ps(lo, ie, hi);
                    v[2 * r + 1] = _mm512_permutex2var_ps(lo, io, hi);
                }
                // input index of each lane's window: 2*oh*W + 2*(ow + lane), then +1, +W, +W+1
                __m512i i0 = _mm512_add_epi32(_mm512_set1_epi32(2 * oh * W + 2 * ow),
                                              _mm512_add_epi32(lane, lane));
                __m512i at[4] = {i0, _mm512_add_epi32(i0, _mm512_set1_epi32(1)),
                                 _mm512_add_epi32(i0, _mm512_set1_epi32(W)),
                                 _mm512_add_epi32(i0, _mm512_set1_epi32(W + 1))};
                __m512 best = _mm512_set1_ps(-INFINITY);
                __m512i arg = i0;
                for (int j = 0; j < 4; j++) {
                    __mmask16 take = _mm512_cmp_ps_mask(v[j], best, _CMP_GT_OQ) |
                                     _mm512_cmp_ps_mask(v[j], v[j], _CMP_UNORD_Q);
                    best = _mm512_mask_blend_ps(take, best, v[j]);
                    arg = _mm512_mask_blend_epi32(take, arg, at[j]);
                }
                _mm512_mask_storeu_ps(y + oh * OW + ow, m, best);
                _mm512_mask_storeu_epi32(a + oh * OW + ow, m, arg);
            }
        }
    }
}
#endif

// maxpool2d_forward's 2x2 stride-2 case on N planes, without the byte count (fused passes
// call it on a plane in cache).
void maxpool2x2_forward_planes(float *out, int32_t *argmax, const float *inp, int N, int H,
                               int W) {
#ifdef __AVX512F__
    maxpool2x2_forward_avx512(out, argmax, inp, N, H, W);
#else
    maxpool2x2_forward(out, argmax, inp, N, H, W);
#endif
}

void maxpool2d_forward(float *out, int32_t *argmax, const float *inp, int B, int C, int H, int W,
                       int K, int S, int P) {
    int OH = (H + 2 * P - K) / S + 1, OW = (W + 2 * P - K) / S + 1;
    prof_bytes((double)B * C * (H * W + 2 * OH * OW));  // input; output and argmax
    if (K == 2 && S == 2 && P == 0) {
        maxpool2x2_forward_planes(out, argmax, inp, B * C, H, W);
        return;
    }
    for (size_t bc = 0; bc < (size_t)B * C; bc++) {
        const float *x = inp + bc * H * W;
        float *y = out + bc * OH * OW;
        int32_t *a = argmax + bc * OH * OW;
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++) {
                int h0 = oh * S - P, w0 = ow * S - P;
                int h1 = h0 + K < H ? h0 + K : H, w1 = w0 + K < W ? w0 + K : W;
                if (h0 < 0) h0 = 0;
                if (w0 < 0) w0 = 0;
                float best = -INFINITY;
                int32_t arg = h0 * W + w0;
                for (int ih = h0; ih < h1; ih++)
                    for (int iw = w0; iw < w1; iw++) {
                        float v = x[ih * W + iw];
                        if (v > best || isnan(v)) {
                            best = v;
                            arg = ih * W + iw;
                        }
                    }
                y[oh * OW + ow] = best;
                a[oh * OW + ow] = arg;
            }
    }
}

// dinp (B,C,H,W) gets each dout (B,C,OH,OW) at its argmax (overwritten).
void maxpool2d_backward(float *dinp, const float *dout, const int32_t *argmax, int B, int C, int H,
                        int W, int OH, int OW) {
    prof_bytes((double)B * C * (H * W + 2 * OH * OW));
    memset(dinp, 0, (size_t)B * C * H * W * sizeof(float));
    for (size_t bc = 0; bc < (size_t)B * C; bc++) {
        float *dx = dinp + bc * H * W;
        const float *dy = dout + bc * OH * OW;
        const int32_t *a = argmax + bc * OH * OW;
        for (int i = 0; i < OH * OW; i++) dx[a[i]] += dy[i];
    }
}

#ifndef __AVX512F__
// One plane of maxpool2x2_backward (below): dx (H,W) from dy and a (H/2,W/2); an odd
// height's last row is left to the caller.
static void maxpool2x2_backward_plane(float *dx, const float *dy, const int32_t *a, int H,
                                      int W) {
    int OH = H / 2, OW = W / 2;
    for (int oh = 0; oh < OH; oh++) {
        float *r0 = dx + 2 * oh * W, *r1 = r0 + W;
        for (int ow = 0; ow < OW; ow++) {
            int32_t i = 2 * oh * W + 2 * ow, at = a[oh * OW + ow];
            float g = 0.0f + dy[oh * OW + ow];
            r0[2 * ow] = at == i ? g : 0.0f;
            r0[2 * ow + 1] = at == i + 1 ? g : 0.0f;
            r1[2 * ow] = at == i + W ? g : 0.0f;
            r1[2 * ow + 1] = at == i + W + 1 ? g : 0.0f;
        }
        if (W % 2) r0[W - 1] = r1[W - 1] = 0.0f;
    }
}

#else
// maxpool2x2_backward_plane with 16 windows of a row a vector: each lane's gradient (0 + dy)
// goes to the one of its four positions its argmax names, zeros to the rest, and the even and
// odd columns are interleaved into the two rows: the same values bit for bit (the scalar
// plane was 5.7% of a cnn6_mlp4 step).
static void maxpool2x2_backward_plane(float *dx, const float *dy, const int32_t *a, int H,
                                      int W) {
    int OH = H / 2, OW = W / 2;
    const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    const __m512i lane2 = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512 zero = _mm512_setzero_ps();
    for (int oh = 0; oh < OH; oh++) {
        float *r[2] = {dx + 2 * oh * W, dx + (2 * oh + 1) * W};
        for (int ow = 0; ow < OW; ow += 16) {
            int k = OW - ow < 16 ? OW - ow : 16;
            __mmask16 m = (__mmask16)((1u << k) - 1);
            __mmask16 mlo = (__mmask16)((1u << (2 * k < 16 ? 2 * k : 16)) - 1);
            __mmask16 mhi = (__mmask16)((1u << (2 * k > 16 ? 2 * k - 16 : 0)) - 1);
            __m512 g = _mm512_add_ps(zero, _mm512_maskz_loadu_ps(m, dy + oh * OW + ow));
            __m512i at = _mm512_maskz_loadu_epi32(m, a + oh * OW + ow);
            __m512i i0 = _mm512_add_epi32(_mm512_set1_epi32(2 * oh * W + 2 * ow), lane2);
            for (int y = 0; y < 2; y++) {  // row 2*oh + y: even columns e, odd columns o
                __m512i iy = _mm512_add_epi32(i0, _mm512_set1_epi32(y * W));
                __m512 e = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(at, iy), g);
                __m512 o = _mm512_maskz_mov_ps(
                    _mm512_cmpeq_epi32_mask(at, _mm512_add_epi32(iy, _mm512_set1_epi32(1))), g);
                _mm512_mask_storeu_ps(r[y] + 2 * ow, mlo, _mm512_permutex2var_ps(e, lo, o));
                _mm512_mask_storeu_ps(r[y] + 2 * ow + 16, mhi, _mm512_permutex2var_ps(e, hi, o));
            }
        }
        if (W % 2) r[0][W - 1] = r[1][W - 1] = 0.0f;
    }
}
#endif

// maxpool2d_backward for 2x2 stride-2 windows (argmax from maxpool2d_forward with K = S = 2,
// P = 0): the windows tile the input, so each window's four gradients are written outright,
// 0 + dy at the argmax (as the accumulation into zeros gives it, -0 included) and 0 elsewhere,
// and only an odd width's last column and an odd height's last row are zeroed apart: no
// memset of the whole input gradient first (1.9% of a cnn6_mlp4 step).
void maxpool2x2_backward(float *dinp, const float *dout, const int32_t *argmax, int B, int C,
                         int H, int W) {
    prof_bytes((double)B * C * (H * W + 2 * (H / 2) * (W / 2)));
    maxpool2x2_backward_planes(dinp, dout, argmax, B * C, H, W);
}

// maxpool2x2_backward on N planes, without the byte count (fused passes call it on a plane
// in cache).
void maxpool2x2_backward_planes(float *dinp, const float *dout, const int32_t *argmax, int N,
                                int H, int W) {
    int OH = H / 2, OW = W / 2;
    for (size_t n = 0; n < (size_t)N; n++) {
        float *dx = dinp + n * H * W;
        maxpool2x2_backward_plane(dx, dout + n * OH * OW, argmax + n * OH * OW, H, W);
        if (H % 2) memset(dx + (size_t)(H - 1) * W, 0, (size_t)W * sizeof(float));
    }
}

// out is (B,C,OH,OW), inp is (B,C,H,W). The divisor is always K*K (count_include_pad=True;
// with ceil_mode=False no window reaches past the padding).
void avgpool2d_forward(float *out, const float *inp, int B, int C, int H, int W, int K, int S,
                       int P) {
    int OH = (H + 2 * P - K) / S + 1, OW = (W + 2 * P - K) / S + 1;
    float inv = 1.0f / (float)(K * K);
    for (size_t bc = 0; bc < (size_t)B * C; bc++) {
        const float *x = inp + bc * H * W;
        float *y = out + bc * OH * OW;
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++) {
                int h0 = oh * S - P, w0 = ow * S - P;
                int h1 = h0 + K < H ? h0 + K : H, w1 = w0 + K < W ? w0 + K : W;
                if (h0 < 0) h0 = 0;
                if (w0 < 0) w0 = 0;
                float s = 0.0f;
                for (int ih = h0; ih < h1; ih++)
                    for (int iw = w0; iw < w1; iw++) s += x[ih * W + iw];
                y[oh * OW + ow] = s * inv;
            }
    }
}

// dinp (B,C,H,W) = each dout (B,C,OH,OW) / (K*K) spread over its window (overwritten).
void avgpool2d_backward(float *dinp, const float *dout, int B, int C, int H, int W, int K, int S,
                        int P) {
    int OH = (H + 2 * P - K) / S + 1, OW = (W + 2 * P - K) / S + 1;
    float inv = 1.0f / (float)(K * K);
    memset(dinp, 0, (size_t)B * C * H * W * sizeof(float));
    for (size_t bc = 0; bc < (size_t)B * C; bc++) {
        float *dx = dinp + bc * H * W;
        const float *dy = dout + bc * OH * OW;
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++) {
                int h0 = oh * S - P, w0 = ow * S - P;
                int h1 = h0 + K < H ? h0 + K : H, w1 = w0 + K < W ? w0 + K : W;
                if (h0 < 0) h0 = 0;
                if (w0 < 0) w0 = 0;
                float g = dy[oh * OW + ow] * inv;
                for (int ih = h0; ih < h1; ih++)
                    for (int iw = w0; iw < w1; iw++) dx[ih * W + iw] += g;
            }
    }
}

// out is (B,C), inp is (B,C,HW): the mean over each channel's HW positions.
void globalavgpool_forward(float *out, const float *inp, int B, int C, int HW) {
    for (size_t bc = 0; bc < (size_t)B * C; bc++) {
        const float *x = inp + bc * HW;
        float s = 0.0f;
        for (int i = 0; i < HW; i++) s += x[i];
        out[bc] = s / (float)HW;
    }
}

// dinp (B,C,HW) = dout (B,C) / HW at every position (overwritten).
void globalavgpool_backward(float *dinp, const float *dout, int B, int C, int HW) {
    for (size_t bc = 0; bc < (size_t)B * C; bc++) {
        float g = dout[bc] / (float)HW;
        for (int i = 0; i < HW; i++) dinp[bc * HW + i] = g;
    }
}

static int stride_of(const Layer *l) { return l->spec.stride ? l->spec.stride : l->spec.kernel; }

static int setup_window(Layer *l, Shape in, ParamTable *t, Err *e) {
    (void)t;
    const LayerSpec *s = &l->spec;
    const char *type = l->kind->type;
    if (in.ndim != 3)
        return err_set(e, ERR_INPUT,
                       "layer %s (%s) needs a (C,H,W) input but gets %d dimension%s", s->name,
                       type, in.ndim, in.ndim == 1 ? "" : "s");
    int K = s->kernel, S = stride_of(l), P = s->padding;
    if (K <= 0 || S <= 0 || P < 0)
        return err_set(e, ERR_INPUT,
                       "layer %s (%s): needs kernel >= 1, stride >= 1, padding >= 0 (got %d, %d, "
                       "%d)",
                       s->name, type, K, S, P);
    if (2 * P > K)  // PyTorch's rule: a window must not be all padding
        return err_set(e, ERR_INPUT,
                       "layer %s (%s): padding %d must be at most half the kernel %d", s->name,
                       type, P, K);
    int H = in.d[1], W = in.d[2];
    if (H + 2 * P < K || W + 2 * P < K)
        return err_set(e, ERR_INPUT,
                       "layer %s (%s): kernel %d does not fit the padded %dx%d input (padding "
                       "%d): no output",
                       s->name, type, K, H, W, P);
    l->out = (Shape){3, {in.d[0], (H + 2 * P - K) / S + 1, (W + 2 * P - K) / S + 1}};
    return ERR_OK;
}

static int setup_max(Layer *l, Shape in, ParamTable *t, Err *e) {
    if (setup_window(l, in, t, e)) return e->code;
    l->save_bytes_per_sample = shape_numel(l->out) * sizeof(int32_t);
    return ERR_OK;
}

static void forward_max(Layer *l, float *out, const float *inp, const float *params, float *bufs,
                        const StepCtx *c, int B) {
    (void)params, (void)bufs, (void)c;
    maxpool2d_forward(out, l->save, inp, B, l->in.d[0], l->in.d[1], l->in.d[2], l->spec.kernel,
                      stride_of(l), l->spec.padding);
}

static void backward_max(Layer *l, float *dinp, float *dparams, const float *dout,
                         const float *inp, const float *out, const float *params,
                         const StepCtx *c, int B) {
    (void)dparams, (void)inp, (void)out, (void)params, (void)c;
    if (!dinp) return;
    if (l->spec.kernel == 2 && stride_of(l) == 2 && l->spec.padding == 0)
        maxpool2x2_backward(dinp, dout, l->save, B, l->in.d[0], l->in.d[1], l->in.d[2]);
    else
        maxpool2d_backward(dinp, dout, l->save, B, l->in.d[0], l->in.d[1], l->in.d[2],
                           l->out.d[1], l->out.d[2]);
}

// Fusion (seq.c): a 2x2 stride-2 unpadded max-pool can end a BatchNorm + ReLU (+ mask) pass,
// which then writes this layer's output and argmax (the save area) and reads its gradient.
static int32_t *max2x2_argmax(Layer *l) {
    int fits = l->spec.kernel == 2 && stride_of(l) == 2 && l->spec.padding == 0;
    return fits ? l->save : NULL;
}

static void forward_avg(Layer *l, float *out, const float *inp, const float *params, float *bufs,
                        const StepCtx *c, int B) {
    (void)params, (void)bufs, (void)c;
    avgpool2d_forward(out, inp, B, l->in.d[0], l->in.d[1], l->in.d[2], l->spec.kernel,
                      stride_of(l), l->spec.padding);
}

static void backward_avg(Layer *l, float *dinp, float *dparams, const float *dout,
                         const float *inp, const float *out, const float *params,
                         const StepCtx *c, int B) {
    (void)dparams, (void)inp, (void)out, (void)params, (void)c;
    if (dinp)
        avgpool2d_backward(dinp, dout, B, l->in.d[0], l->in.d[1], l->in.d[2], l->spec.kernel,
                           stride_of(l), l->spec.padding);
}

static int setup_global(Layer *l, Shape in, ParamTable *t, Err *e) {
    (void)t;
    if (in.ndim != 3)
        return err_set(e, ERR_INPUT,
                       "layer %s (globalavgpool) needs a (C,H,W) input but gets %d dimension%s",
                       l->spec.name, in.ndim, in.ndim == 1 ? "" : "s");
    l->out = (Shape){1, {in.d[0]}};
    return ERR_OK;
}

static void forward_global(Layer *l, float *out, const float *inp, const float *params,
                           float *bufs, const StepCtx *c, int B) {
    (void)params, (void)bufs, (void)c;
    globalavgpool_forward(out, inp, B, l->in.d[0], l->in.d[1] * l->in.d[2]);
}

static void backward_global(Layer *l, float *dinp, float *dparams, const float *dout,
                            const float *inp, const float *out, const float *params,
                            const StepCtx *c, int B) {
    (void)dparams, (void)inp, (void)out, (void)params, (void)c;
    if (dinp) globalavgpool_backward(dinp, dout, B, l->in.d[0], l->in.d[1] * l->in.d[2]);
}

static const LayerKeyDesc window_keys[] = {
    LAYER_KEY_DESC_KERNEL,
    LAYER_KEY_DESC_STRIDE("kernel"),
    LAYER_KEY_DESC_PADDING,
};

const LayerKind layer_maxpool2d = {.type = "maxpool2d", LAYER_KEYS(window_keys), .setup = setup_max,
                                   .forward = forward_max, .backward = backward_max,
                                   .max2x2_argmax = max2x2_argmax};
const LayerKind layer_avgpool2d = {.type = "avgpool2d", LAYER_KEYS(window_keys),
                                   .setup = setup_window, .forward = forward_avg,
                                   .backward = backward_avg};
const LayerKind layer_globalavgpool = {.type = "globalavgpool", .setup = setup_global, .forward = forward_global, .backward = backward_global};
