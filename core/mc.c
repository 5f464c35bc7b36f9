// mc.c: Monte-Carlo dropout summary (mc.h).
#include "mc.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

int mc_batch_alloc(McBatch *o, int batch, int K) {
    size_t bk = (size_t)batch * (size_t)K;
    o->p = malloc(bk * sizeof(float));
    o->mean = malloc(bk * sizeof(float));
    o->std = malloc(bk * sizeof(float));
    o->entropy = malloc((size_t)batch * sizeof(float));
    o->pred = malloc((size_t)batch * sizeof(int64_t));
    return o->p && o->mean && o->std && o->entropy && o->pred ? 0 : -1;
}

void mc_batch_free(McBatch *o) {
    free(o->p), free(o->mean), free(o->std), free(o->entropy), free(o->pred);
    *o = (McBatch){0};
}

void mc_softmax(float *p, const float *logits, int B, int K) {
    for (int b = 0; b < B; b++) {
        const float *z = logits + (size_t)b * K;
        float *o = p + (size_t)b * K, mx = z[0];
        for (int k = 1; k < K; k++) mx = z[k] > mx ? z[k] : mx;
        double sum = 0;
        for (int k = 0; k < K; k++) sum += (o[k] = expf(z[k] - mx));
        for (int k = 0; k < K; k++) o[k] = (float)(o[k] / sum);
    }
}

void mc_begin(float *mean, float *m2, int B, int K) {
    memset(mean, 0, (size_t)B * K * sizeof(float));
    memset(m2, 0, (size_t)B * K * sizeof(float));
}

void mc_add(float *mean, float *m2, const float *p, int pass, int B, int K) {
    for (size_t i = 0; i < (size_t)B * K; i++) {
        float delta = p[i] - mean[i];
        mean[i] += delta / (float)(pass + 1);
        m2[i] += delta * (p[i] - mean[i]);
    }
}

void mc_finish(float *sd, float *entropy, int64_t *pred, const float *mean, int passes, int B,
               int K) {
    for (int b = 0; b < B; b++) {
        const float *mb = mean + (size_t)b * K;
        float *sb = sd + (size_t)b * K;
        double h = 0;
        int best = 0;
        for (int k = 0; k < K; k++) {
            float var = sb[k] / passes;
            sb[k] = var > 0 ? sqrtf(var) : 0.0f;  // rounding can leave -0 or a tiny negative
            if (mb[k] > 0) h -= mb[k] * log(mb[k]);
            if (mb[k] > mb[best]) best = k;
        }
        entropy[b] = (float)h;
        pred[b] = best;
    }
}
