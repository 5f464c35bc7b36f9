// predictions.h: the file `regdist predict` writes, one batch at a time so memory stays
// bounded however many samples there are. Readable with h5py:
//   /probs_mean (N,K) float32   mean softmax over the Monte-Carlo passes
//   /probs_std  (N,K) float32   their standard deviation over the passes (0 for K = 0 or 1)
//   /entropy    (N)   float32   predictive entropy of probs_mean, in nats
//   /pred       (N)   int64     argmax of probs_mean
//   attributes: mc_samples, checkpoint, data, split
// Written to "<path>.tmp.<pid>" and renamed over path when complete.
#pragma once
#include <stdint.h>

#include "../core/err.h"

typedef struct PredWriter PredWriter;

PredWriter *pred_open(const char *path, int64_t n, int k, int mc_samples, const char *checkpoint,
                      const char *data, const char *split, Err *e);
// Rows [start, start+n) of each dataset. mean, std are (n,K); entropy (n); pred (n).
int pred_write(PredWriter *w, int64_t start, int n, const float *mean, const float *std,
               const float *entropy, const int64_t *pred, Err *e);
// Closes and renames into place (commit = 1), or removes the temporary (commit = 0).
int pred_close(PredWriter *w, int commit, Err *e);
