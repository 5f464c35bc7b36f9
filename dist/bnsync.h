// bnsync.h: synchronized BatchNorm. The StatsReduceFn that core/batchnorm.c hands its partial
// statistics to (StepCtx.reduce_stats = bnsync_reduce, StepCtx.reduce_ctx = the BnSync), reducing
// them over the rank's BN group (bn.group):
//   group 1      local BN: every rank normalizes its own shard; no communication at all.
//   group k > 1  groups of k consecutive ranks of d->comm: ranks [g k, g k + k) for g = rank / k.
//                When world % k != 0 the last group is smaller (world % k ranks); when k >= world
//                there is one group of all ranks.
//   group 0      one group of all ranks.
// Every rank of a group gets bit-identical statistics: the partials are gathered and combined
// in rank order (see bnsync.c), so running statistics never drift apart inside a group.
#pragma once
#include <mpi.h>

#include "core/err.h"
#include "core/layer.h"
#include "dist/dist.h"

typedef struct {
    int group;         // bn.group as given: 0 all ranks, 1 local, k groups of k
    MPI_Comm comm;     // the group's communicator; MPI_COMM_NULL for group 1
    int rank, size;    // this rank's place in its group and the group's size (1 for group 1)
    int world_rank;    // in d->comm, for messages
    double *gather;    // scratch: size * 3 * cap doubles, the gathered partials
    double *acc;       // scratch: 3 * cap doubles, the combination in progress
    int cap;           // channels the scratch holds
    long long step;    // the optimizer step, for stall reports (the caller sets it; -1 unknown)
    int nnamed;        // BN layers whose names stall reports use (bnsync_name_layers)
    int *named_id;     // (nnamed) layer ids
    char (*named)[PARAM_NAME_MAX];  // (nnamed) "res1.bn"
} BnSync;

// Sets up s for d's ranks (collective over d->comm unless group == 1, and group must be the
// same on every rank). Returns ERR_OK, ERR_INPUT (group < 0) or ERR_RUNTIME, with e set.
int bnsync_init(BnSync *s, const Dist *d, int group, Err *e);

// Sizes the scratch for layers of up to max_channels channels, so that no reduction ever
// allocates. Optional: without it the scratch grows at the first reductions (the first training
// step sees every BN layer's channel count, so no later step allocates). Returns ERR_OK or
// ERR_RUNTIME (out of memory), with e set.
int bnsync_reserve(BnSync *s, int max_channels, Err *e);

// Optional: learns the names of the BatchNorm layers of t (the owners of running means), so
// that a stall report says "layer res1.bn" rather than its numeric id. ERR_RUNTIME when out of
// memory.
int bnsync_name_layers(BnSync *s, const ParamTable *t, Err *e);

// The StatsReduceFn (core/layer.h); ctx is a BnSync. In place, over the group:
//   STATS_BN_FORWARD   stats (3*nchan) = [count | mean | M2]: gathered from every rank of the
//                      group and folded in rank order with bn_stats_combine.
//   STATS_BN_BACKWARD  stats (2*nchan) = [sum_dy | sum_dy_xhat]: gathered and summed in rank
//                      order (not MPI_SUM, whose order the MPI library chooses).
// Collective over the group: every rank of it must call it, a rank with no samples included.
// Eval mode never calls it (core/batchnorm.c guarantees that). There is no error path: when
// MPI fails it prints "regdist: rank R: BatchNorm statistics reduction failed (...)" and ends
// the job with MPI_Abort. Returns 0.
int bnsync_reduce(void *ctx, int layer_id, StatsKind kind, double *stats, int nchan);

// Frees the communicator and the scratch (before MPI_Finalize). Safe on a zeroed BnSync.
void bnsync_free(BnSync *s);
