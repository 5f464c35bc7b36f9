// summary.h: DIR/summary.json, what a finished run says of its final model, for scripts and
// for the studies that read their points back. One table of fields (summary.c) both writes
// and reads it, so the writer and the reader cannot disagree on a name.
#pragma once
#include <stdint.h>

#include "cli.h"
#include "core/err.h"

enum { SPLIT_TRAIN, SPLIT_VAL, SPLIT_TEST, N_SPLITS };

typedef struct {
    int64_t steps, epochs;      // where the run ended
    int has[N_SPLITS];          // the data file had the split (train always)
    EvalResult r[N_SPLITS];     // the final model in eval mode on each split
    int precise;                // PreciseBN batches averaged (0: none), and its results
    EvalResult pr[N_SPLITS];
    int64_t skipped_steps;      // non-finite steps skipped (train.nonfinite = skip)
    char ended_by[32];          // "train.epochs", "train.max_steps" or "train.patience"
    double best_val_acc;        // NAN: no validation split
    double seconds_per_epoch;   // NAN: no whole epoch trained by the process
} RunSummary;

// Writes s to path as one line of JSON: "key": value pairs, fractions, null for what the
// run does not have. ERR_RUNTIME with e set when the file cannot be written.
int summary_write(const char *path, const RunSummary *s, Err *e);
// Reads path into s (absent keys and nulls as NAN / has = 0). ERR_INPUT when the file is
// missing or not a JSON object.
int summary_read(const char *path, RunSummary *s, Err *e);
