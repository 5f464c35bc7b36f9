// checkpoint.h: HDF5 checkpoints that h5py and PyTorch users can read.
//
//   /model/<layer>.<param>   float32, PyTorch's names and shapes, in model order
//                            (link creation order tracked, so h5py lists them in order)
//   /optim/<layer>.<param>.exp_avg, .exp_avg_sq (Adam, AdamW) or .momentum_buffer (SGD)
//   /optim attributes: name, step
//   / attributes: format_version, step, epoch, epoch_batch, seed, config, best_metric, ...
//   /preprocessing           how the training samples were made and normalized, their shape
//                            and class names (preprocess.h); eval and predict normalize with
//                            it. Checkpoints written before it existed lack it and still load.
// Written atomically: built in memory, written to a temporary file in the same directory,
// fsynced, renamed over the target, and the directory fsynced.
#pragma once
#include <stdint.h>

#include "core/err.h"
#include "core/model.h"
#include "core/optim.h"
#include "preprocess.h"

#define CKPT_FORMAT_VERSION 1

typedef struct {
    int64_t step;         // optimizer steps taken
    int64_t epoch;        // the epoch in progress (0-based)
    int64_t epoch_batch;  // batches of that epoch already done
    uint32_t seed;
    double best_metric;   // best validation accuracy so far (-1 if none)
    int64_t best_epoch;   // epoch it was reached in (-1 if none)
    int64_t bad_epochs;   // epochs since the best, for early stopping
    // partial-epoch accumulators, so a resumed epoch reports the same metrics
    double epoch_loss_sum;
    int64_t epoch_correct, epoch_seen;
    double epoch_seconds;
    int64_t skipped_steps;  // steps whose gradient was non-finite and skipped (train.nonfinite)
    char *config_text;    // the whole config as the run saw it (owned; ckpt_meta_free)
    // ckpt_save writes *prep as /preprocessing (NULL: no group): the training data's record,
    // with the normalization the run trained with.
    const Preprocess *prep;
    // ckpt_read_meta reads /preprocessing into stored_prep (owned; ckpt_meta_free) and sets
    // has_prep; 0 for a checkpoint that predates it. ckpt_load leaves them empty: resuming
    // takes the record from the data again.
    Preprocess stored_prep;
    int has_prep;
} CkptMeta;

// Writes model (params and buffers) and, if opt is not NULL, its state.
int ckpt_save(const char *path, const Model *m, const Optim *opt, const CkptMeta *meta, Err *e);
// Loads /model into m, checking every name and shape against m's table; if opt is not
// NULL also the optimizer state (kind must match); if meta is not NULL the attributes
// (meta is overwritten: a config_text it held is not freed). All or nothing: on any error
// m, opt and meta are left as they were. A damaged, mismatched or missing checkpoint is
// ERR_INPUT naming the file and the entry; a failed save is ERR_RUNTIME naming the path
// and the OS's reason, and leaves what was at path untouched.
int ckpt_load(const char *path, Model *m, Optim *opt, CkptMeta *meta, Err *e);
// Reads only the attributes (the config text, to rebuild the model for eval/predict).
int ckpt_read_meta(const char *path, CkptMeta *meta, Err *e);
void ckpt_meta_free(CkptMeta *meta);
