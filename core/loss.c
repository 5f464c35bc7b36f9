// loss.c: softmax cross-entropy with label smoothing (see loss.h). Log-sum-exp with the
// max subtracted, accumulated in double, so large logits neither overflow nor lose the loss.
#include "loss.h"

#include <math.h>
#include <stddef.h>

// One sample: probs (K) = softmax(z); returns its loss. z is (K).
static double sample_loss(float *probs, const float *z, int y, int K, float smoothing) {
    float mx = z[0];
    for (int k = 1; k < K; k++) mx = z[k] > mx ? z[k] : mx;
    double sum = 0.0, zsum = 0.0;
    for (int k = 0; k < K; k++) {
        double ex = exp((double)(z[k] - mx));
        if (probs) probs[k] = (float)ex;
        sum += ex;
        zsum += (double)(z[k] - mx);
    }
    if (probs) {
        float inv = (float)(1.0 / sum);
        for (int k = 0; k < K; k++) probs[k] *= inv;
    }
    double lse = log(sum);  // log-sum-exp of (z - mx)
    double eps = smoothing;
    return lse - (1.0 - eps) * (double)(z[y] - mx) - eps / K * zsum;
}

static int argmax(const float *z, int K) {
    int best = 0;
    for (int k = 1; k < K; k++)
        if (z[k] > z[best]) best = k;
    return best;
}

double xent_forward_backward(float *dlogits, int64_t *correct, const float *logits,
                             const int32_t *y, int B, int K, float smoothing, float grad_scale) {
    double total = 0.0;
    float off = smoothing / K, on = 1.0f - smoothing + smoothing / K;
    for (int b = 0; b < B; b++) {
        const float *z = logits + (size_t)b * K;
        float *dz = dlogits + (size_t)b * K;
        total += sample_loss(dz, z, y[b], K, smoothing);
        for (int k = 0; k < K; k++) dz[k] = (dz[k] - (k == y[b] ? on : off)) * grad_scale;
        if (correct) *correct += argmax(z, K) == y[b];
    }
    return total;
}

double xent_forward(float *probs, int64_t *correct, const float *logits, const int32_t *y, int B,
                    int K, float smoothing) {
    double total = 0.0;
    for (int b = 0; b < B; b++) {
        const float *z = logits + (size_t)b * K;
        total += sample_loss(probs ? probs + (size_t)b * K : NULL, z, y[b], K, smoothing);
        if (correct) *correct += argmax(z, K) == y[b];
    }
    return total;
}
