// mc.h: the summary of Monte-Carlo dropout passes (Gal & Ghahramani 2016): per sample and
// class, the mean and population standard deviation of the softmax over the passes (Welford's
// running mean and M2, so identical passes give a spread of exactly 0), then the predictive
// entropy of the mean (nats) and its argmax. Used by `regdist predict`.
#pragma once
#include <stdint.h>

// What a summary gives for each of up to `batch` samples.
typedef struct {
    float *p;          // (batch, K) scratch: one pass's softmax
    float *mean, *std; // (batch, K) over the passes
    float *entropy;    // (batch) of mean, nats
    int64_t *pred;     // (batch) argmax of mean
} McBatch;

// Allocates o's buffers for `batch` samples of K classes; -1 when out of memory (o is then
// safe to free).
int mc_batch_alloc(McBatch *o, int batch, int K);
void mc_batch_free(McBatch *o);

// softmax of logits (B,K) into p (B,K), max-shifted
void mc_softmax(float *p, const float *logits, int B, int K);

// Starts a summary: mean (B,K) and m2 (B,K) set to 0.
void mc_begin(float *mean, float *m2, int B, int K);

// Adds pass number `pass` (0, 1, ...): p (B,K) is that pass's softmax. Updates mean (B,K) and
// m2 (B,K), the sum of squared deviations from the running mean.
void mc_add(float *mean, float *m2, const float *p, int pass, int B, int K);

// Ends a summary of `passes` passes: sd (B,K) holds m2 on entry and the population standard
// deviation on return (it may be m2's buffer); entropy (B) of mean (B,K) in nats; pred (B) the
// argmax of mean (the first of equals).
void mc_finish(float *sd, float *entropy, int64_t *pred, const float *mean, int passes, int B,
               int K);
