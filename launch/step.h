// step.h: one data-parallel optimizer step, shared by `regdist train` and `regdist bench`.
// A global batch is split into cfg.accum micro-batches and each micro-batch into contiguous
// per-rank slices; every rank runs the full model on its slice, scaling its loss gradient
// by 1/(global batch); the bucketed all-reduce that overlaps the last micro-batch's backward
// sums the slices' gradients into the gradient of the global mean loss; then every rank
// applies the same L1/L2, clipping and optimizer step. BatchNorm statistics are reduced over
// bn.group through the BnSync. Dropout masks depend on the global sample index, not the
// rank, so N ranks compute what one rank would, up to floating-point summation order.
#pragma once
#include <stdint.h>

#include "config.h"
#include "core/model.h"
#include "core/optim.h"
#include "dist/bnsync.h"
#include "dist/gradsync.h"
#include "io/dataset.h"

typedef struct {
    const Dist *d;
    const Config *c;
    Model *m;
    Optim *opt;
    const Dataset *data;  // the training split (the rows this rank's slices need)
    GradSync gs;
    BnSync bn;
    int max_local;        // the most samples one rank gets of one micro-batch
    float *x;             // (max_local, in)
    int32_t *y;           // (max_local)
    int64_t *ids;         // (max_local) global sample indices
    uint32_t epoch;       // the epoch the next step belongs to (the trainer sets it): the
                          // per-sample augmentation draws are counted by it
    int aug_c, aug_h, aug_w;  // the images' (C,H,W) when augment is on, else 0
    float *aug_scratch;   // (C*H*W) for augment_batch, planned once
    float *xp;            // (max_local, in) mixup/cutmix: the partners of the slice's rows
    int32_t *yp;          // (max_local) their labels
    int64_t *pids;        // (max_local) their global sample indices
    long long inject_nan_step;  // fault injection for tests: the $REGDIST_INJECT_NAN_STEP-th
    long long calls;            // call of stepper_step in this process gets a NaN (0 = never)
    // seconds spent, accumulated over steps (for regdist bench)
    double t_data, t_forward, t_backward, t_optim;
} Stepper;

// The most samples a rank gets of one micro-batch of cfg's global batch: what to plan the
// model for.
int stepper_max_local(const Dist *d, const Config *c);

// Rank d->rank's slice [*lo, *hi) of micro-batch j (of cfg.accum) of a global batch of n
// samples: the micro-batch is contiguous, the slices contiguous within it. The one place the
// split is defined; the trainer's per-epoch data shards follow it too.
void stepper_slice(const Dist *d, const Config *c, int64_t n, int j, int64_t *lo, int64_t *hi);

// This rank's rows of the first nbatches global batches of perm (a permutation of total
// samples), in step order: its slices of every micro-batch, into rows; batch b's begin at
// off[b], and off[nbatches] is the count returned. With partners (mixup/cutmix) each batch's
// rows also hold the partners of the rank's positions (global position n-1-i for i,
// augment_mix_partner), sorted within the batch and without repeats (a partner may be the
// rank's own row): rows then needs 2 * total. The one walk over the split the step makes;
// the trainer reads these rows for each epoch.
int64_t stepper_rank_rows(const Dist *d, const Config *c, const int64_t *perm, int64_t total,
                          int64_t nbatches, int partners, int64_t *rows, int64_t *off);
// Sorts rows[0..n) ascending: the order a dataset reads rows in.
void stepper_sort_rows(int64_t *rows, int64_t n);

// Sets up the gradient all-reduce and BatchNorm groups for m (already planned for
// stepper_max_local samples) and hooks them in, and the augmentation's scratch; ERR_INPUT
// (one line) when augment is on for input that is not an image (C,H,W) or out of range for
// its size. ERR_OK or an error with e set.
int stepper_init(Stepper *s, const Dist *d, const Config *c, Model *m, Optim *opt,
                 const Dataset *data, Err *e);
void stepper_free(Stepper *s);

// The forward pass alone over this rank's slices of one global batch of n samples, with
// sc's mode (its sample_ids are the slice's): rows lists the rank's rows of the batch in
// slice order (stepper_rank_rows without partners) and data holds them. For what needs the
// model's activations and no step (PreciseBN). Returns the rows consumed.
int64_t stepper_forward(Stepper *s, const Dataset *data, const int64_t *rows, int64_t n,
                        const StepCtx *sc);

// One optimizer step on the global batch idx (n samples, split rows). With augment on, each
// rank's slice is augmented after the gather, before the forward pass, every sample by draws
// from (seed, s->epoch, its global index): the same on any number of ranks. With mixup or
// cutmix, position i of the global batch is mixed with position n-1-i (augmented by its own
// draws, so no rank needs another's), by one λ per global batch from (seed, step); the loss
// takes the soft targets and accuracy counts the dominant label. s->data must hold the
// partners' rows too. Returns this rank's
// summed loss; *correct and *seen count its hits and samples. If the all-reduced gradient
// holds a NaN or Inf, nothing is updated and *finite is 0 (the same on every rank, since
// every rank holds the same gradient); else *finite is 1.
double stepper_step(Stepper *s, const int64_t *idx, int n, int64_t *correct, int64_t *seen,
                    int *finite);
