// conv2d.c: 2-D convolution as nn.Conv2d (square kernel, stride, zero padding, groups = 1).
// weight (OC, C, K, K), bias (OC). Each sample is lowered with im2col to a (C*K*K, OH*OW)
// column matrix, so forward is one sgemm per sample. The columns are kept in the layer's save
// area: backward reuses them for dweight, then borrows them as scratch for the input
// gradient's columns and rebuilds them from inp, so a second backward sees them intact.
#include <cblas.h>
#include <string.h>

#include "init.h"
#include "kernels.h"
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

// col (C*K*K, OH*OW) gets the input patches of inp (C,H,W); zero where the padding is.
void conv2d_im2col(float *col, const float *inp, int C, int H, int W, int K, int S, int P, int OH,
                   int OW) {
    for (int c = 0; c < C; c++)
        for (int ky = 0; ky < K; ky++)
            for (int kx = 0; kx < K; kx++) {
                float *row = col + ((size_t)(c * K + ky) * K + kx) * OH * OW;
                int lo, hi;
                valid_range(&lo, &hi, kx, S, P, W, OW);
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

// dinp (C,H,W) = the sum of col (C*K*K, OH*OW) back onto the input positions (overwritten).
void conv2d_col2im(float *dinp, const float *col, int C, int H, int W, int K, int S, int P, int OH,
                   int OW) {
    memset(dinp, 0, (size_t)C * H * W * sizeof(float));
    for (int c = 0; c < C; c++)
        for (int ky = 0; ky < K; ky++)
            for (int kx = 0; kx < K; kx++) {
                const float *row = col + ((size_t)(c * K + ky) * K + kx) * OH * OW;
                int lo, hi;
                valid_range(&lo, &hi, kx, S, P, W, OW);
                for (int oh = 0; oh < OH; oh++) {
                    int ih = oh * S - P + ky;
                    if (ih < 0 || ih >= H) continue;
                    const float *r = row + (size_t)oh * OW;
                    float *x = dinp + ((size_t)c * H + ih) * W;
                    int off = kx - P;
                    for (int ow = lo; ow < hi; ow++) x[ow * S + off] += r[ow];
                }
            }
}

// out is (B,OC,OH,OW), col is (B, C*K*K, OH*OW) (saved for backward), inp is (B,C,H,W),
// weight is (OC,C,K,K), bias is (OC) or NULL. OH = (H + 2P - K)/S + 1, likewise OW.
void conv2d_forward(float *out, float *col, const float *inp, const float *weight,
                    const float *bias, int B, int C, int H, int W, int OC, int K, int S, int P) {
    int OH = (H + 2 * P - K) / S + 1, OW = (W + 2 * P - K) / S + 1;
    int CKK = C * K * K, N = OH * OW;
    for (int b = 0; b < B; b++) {
        float *cb = col + (size_t)b * CKK * N, *ob = out + (size_t)b * OC * N;
        conv2d_im2col(cb, inp + (size_t)b * C * H * W, C, H, W, K, S, P, OH, OW);
        float beta = 0.0f;
        if (bias) {
            for (int o = 0; o < OC; o++)
                for (int i = 0; i < N; i++) ob[(size_t)o * N + i] = bias[o];
            beta = 1.0f;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, OC, N, CKK, 1.0f, weight, CKK, cb,
                    N, beta, ob, N);
    }
}

// dinp (B,C,H,W) = col2im(W^T dout) (overwritten; skipped if NULL); dweight (OC,C,K,K) +=
// dout col^T; dbias (OC) += sums of dout (skipped if NULL). dout is (B,OC,OH,OW), col is
// forward's (B, C*K*K, OH*OW): used as scratch and rebuilt from inp (B,C,H,W) before return.
void conv2d_backward(float *dinp, float *dweight, float *dbias, float *col, const float *dout,
                     const float *inp, const float *weight, int B, int C, int H, int W, int OC,
                     int K, int S, int P) {
    int OH = (H + 2 * P - K) / S + 1, OW = (W + 2 * P - K) / S + 1;
    int CKK = C * K * K, N = OH * OW;
    for (int b = 0; b < B; b++) {
        float *cb = col + (size_t)b * CKK * N;
        const float *db = dout + (size_t)b * OC * N;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, OC, CKK, N, 1.0f, db, N, cb, N, 1.0f,
                    dweight, CKK);
        if (dbias)
            for (int o = 0; o < OC; o++) {
                float s = 0.0f;
                for (int i = 0; i < N; i++) s += db[(size_t)o * N + i];
                dbias[o] += s;
            }
        if (!dinp) continue;
        const float *xb = inp + (size_t)b * C * H * W;
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, CKK, N, OC, 1.0f, weight, CKK, db, N,
                    0.0f, cb, N);
        conv2d_col2im(dinp + (size_t)b * C * H * W, cb, C, H, W, K, S, P, OH, OW);
        conv2d_im2col(cb, xb, C, H, W, K, S, P, OH, OW);
    }
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
    if (layer_add_param(l, t, "weight", PARAM_TRAINABLE, 4, wshape, e)) return e->code;
    if (s->bias && layer_add_param(l, t, "bias", PARAM_TRAINABLE, 1, bshape, e)) return e->code;
    l->save_bytes_per_sample = (size_t)in.d[0] * K * K * OH * OW * sizeof(float);
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

static void forward(Layer *l, float *out, const float *inp, const float *params, float *bufs,
                    const StepCtx *c, int B) {
    (void)bufs, (void)c;
    const LayerSpec *s = &l->spec;
    conv2d_forward(out, l->save, inp, params + l->poff[0], s->bias ? params + l->poff[1] : NULL,
                   B, l->in.d[0], l->in.d[1], l->in.d[2], l->out.d[0], s->kernel,
                   s->stride ? s->stride : 1, s->padding);
}

static void backward(Layer *l, float *dinp, float *dparams, const float *dout, const float *inp,
                     const float *out, const float *params, const StepCtx *c, int B) {
    (void)out, (void)c;
    const LayerSpec *s = &l->spec;
    conv2d_backward(dinp, dparams + l->poff[0], s->bias ? dparams + l->poff[1] : NULL, l->save,
                    dout, inp, params + l->poff[0], B, l->in.d[0], l->in.d[1], l->in.d[2],
                    l->out.d[0], s->kernel, s->stride ? s->stride : 1, s->padding);
}

const LayerKind layer_conv2d = {.type = "conv2d", .setup = setup, .init = init, .forward = forward, .backward = backward};
