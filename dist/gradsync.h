// gradsync.h: the bucketed gradient all-reduce, overlapped with backward (as PyTorch DDP).
// The flat gradient buffer is cut into buckets from its end towards its start, the order in
// which backward finishes them; the first bucket is small so communication starts early.
// model_backward reports each layer's finished slice through gradsync_ready (a GradReadyFn);
// a bucket's non-blocking MPI_Iallreduce (sum) starts as soon as all of it is final, and
// gradsync_wait finishes them all before clipping and the optimizer step. Every rank scales
// its loss gradient by 1/(global batch), so the sum is the gradient of the global mean loss.
#pragma once
#include <stddef.h>

#include "core/err.h"
#include "dist.h"

typedef struct {
    MPI_Comm comm;
    int world;
    float *grads;          // (n)
    size_t n;
    int nbuckets;
    size_t *start;         // bucket i covers [start[i], start[i-1]) (start[-1] = n)
    MPI_Request *req;
    int launched;          // buckets 0..launched-1 have been started
    size_t low;            // [low, n) of grads is final for this backward
    int enabled;           // 0 for micro-batches that only accumulate (no communication)
    double wait_seconds;   // time spent in gradsync_wait (not hidden behind backward)
    double comm_seconds;   // time from the first launch to the end of the wait
    double t_first;        // when the first bucket of this step was launched
    long long step;        // the optimizer step being reduced, for stall reports (the caller
                           // sets it; -1 = unknown)
} GradSync;

// bucket_bytes: size of every bucket but the first; first_bytes: the first (last layers).
int gradsync_init(GradSync *g, const Dist *d, float *grads, size_t n, size_t bucket_bytes,
                  size_t first_bytes, Err *e);
void gradsync_free(GradSync *g);

// Start of a backward whose gradients should be reduced (enabled = 1) or only accumulated.
void gradsync_begin(GradSync *g, int enabled);
// GradReadyFn: [off, off+count) of the gradient buffer is final.
void gradsync_ready(void *ctx, size_t off, size_t count);
// Starts whatever has not started and waits for every bucket.
void gradsync_wait(GradSync *g);
