// predictions.h: the file `regdist predict` writes, one batch at a time so memory stays
// bounded however many samples there are. Readable with h5py:
//   /probs_mean (N,K) float32   mean softmax over the Monte-Carlo passes
//   /probs_std  (N,K) float32   their standard deviation over the passes (0 for K = 0 or 1)
//   /entropy    (N)   float32   predictive entropy of probs_mean, in nats
//   /pred       (N)   int64     argmax of probs_mean
//   /paths      (N)   strings   where each sample came from, when the split has paths
//   attributes: mc_samples, checkpoint, data, split
// Written to "<path>.tmp.<pid>" and renamed over path when complete.
//
// For image files (`predict --images`) a CSV, RFC 4180, one row per file:
//   path,class,probability[,mc_mean_probability,mc_std,entropy]
// class and probability from one deterministic pass; with Monte-Carlo passes also the mean
// and standard deviation of that class's probability over them and the predictive entropy
// of their mean. Written to "<path>.tmp.<pid>" and renamed over path when complete too.
#pragma once
#include <stdint.h>

#include "core/err.h"

typedef struct PredWriter PredWriter;

PredWriter *pred_open(const char *path, int64_t n, int k, int mc_samples, const char *checkpoint,
                      const char *data, const char *split, Err *e);
// Rows [start, start+n) of each dataset. mean, std are (n,K); entropy (n); pred (n).
int pred_write(PredWriter *w, int64_t start, int n, const float *mean, const float *std,
               const float *entropy, const int64_t *pred, Err *e);
// Copies /<split>/paths of dataset file data (which must have it) into the file as /paths.
int pred_copy_paths(PredWriter *w, const char *data, const char *split, Err *e);
// Closes and renames into place (commit = 1), or removes the temporary (commit = 0).
int pred_close(PredWriter *w, int commit, Err *e);

typedef struct PredCsv PredCsv;
// Creates the temporary and writes the header (the mc columns when mc_samples > 0).
PredCsv *pred_csv_open(const char *path, int mc_samples, Err *e);
// One row. mc is {mean probability, its standard deviation, entropy}, or NULL without passes.
int pred_csv_row(PredCsv *w, const char *path, const char *cls, float probability,
                 const float *mc, Err *e);
// As pred_close.
int pred_csv_close(PredCsv *w, int commit, Err *e);
