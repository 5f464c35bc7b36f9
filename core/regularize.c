// regularize.c: coupled L1/L2 penalties and global-norm gradient clipping (regularize.h).
#include "regularize.h"

#include <math.h>

void reg_l1_l2(float *grads, const float *params, const ParamTable *t, float l1, float l2) {
    if (l1 == 0.0f && l2 == 0.0f) return;
    for (int i = 0; i < t->n; i++) {
        const ParamDesc *d = &t->p[i];
        if (!d->decay) continue;
        const float *w = params + d->offset;
        float *g = grads + d->offset;
        for (size_t j = 0; j < d->numel; j++) {
            float s = w[j] > 0.0f ? 1.0f : (w[j] < 0.0f ? -1.0f : 0.0f);
            g[j] += l2 * w[j] + l1 * s;
        }
    }
}

double reg_penalty(const float *params, const ParamTable *t, float l1, float l2) {
    double a = 0.0, q = 0.0;
    for (int i = 0; i < t->n; i++) {
        const ParamDesc *d = &t->p[i];
        if (!d->decay) continue;
        const float *w = params + d->offset;
        for (size_t j = 0; j < d->numel; j++) {
            a += fabs((double)w[j]);
            q += (double)w[j] * w[j];
        }
    }
    return l1 * a + 0.5 * l2 * q;
}

// Thirty-two partial sums in double: the loop vectorizes into four independent chains of
// vector adds (with one, the adder's latency set the pace); the order is fixed, so the result
// is too.
double grad_global_norm(const float *grads, size_t n) {
    enum { K = 32 };
    double acc[K] = {0};
    size_t i = 0;
    for (; i + K <= n; i += K)
        for (int k = 0; k < K; k++) acc[k] += (double)grads[i + k] * grads[i + k];
    double s = 0.0;
    for (; i < n; i++) s += (double)grads[i] * grads[i];
    for (int k = 0; k < K; k++) s += acc[k];
    return sqrt(s);
}

float grad_clip_scale(double norm, float max_norm) {
    double coef = (double)max_norm / (norm + 1e-6);
    return coef < 1.0 ? (float)coef : 1.0f;
}

int grads_finite(const float *grads, size_t n) {
    // x * 0 is 0 for every finite x and NaN for Inf and NaN: one pass, in sixteen partial sums
    // so that it vectorizes (a single sum is a chain of adds at the adder's latency: 0.25 ms of
    // a cnn6_mlp4 step)
    float z[16] = {0}, s = 0.0f;
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 16; k++) z[k] += grads[i + k] * 0.0f;
    for (; i < n; i++) s += grads[i] * 0.0f;
    for (int k = 0; k < 16; k++) s += z[k];
    return s == 0.0f;
}
