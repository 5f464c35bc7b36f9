// train.h: one training run as a function: what `regdist train` runs, and what a study runs
// for each of its points, in-process.
#pragma once
#include <stdio.h>

#include "core/err.h"
#include "dist/dist.h"
#include "summary.h"

typedef struct {
    const char *config, *data, *out;  // the experiment, the dataset, the run directory
    const char *resume;               // continue exactly from this checkpoint, or NULL
    const char *init;                 // start from this checkpoint's weights, or NULL
    const char *const *sets;          // "key=value" overrides, applied in order
    int nsets;
    int overwrite;                    // start afresh in an out that holds a run
    FILE *log;                        // where rank 0 reports (header, progress, epochs,
                                      // final report); NULL: stdout
} TrainArgs;

typedef struct {
    int reported;        // the run reached its end (now or before a --resume of it) and
                         // summary holds its final report
    int signal;          // the signal that stopped it mid-run (0: none): resume to go on
    RunSummary summary;
} TrainResult;

// Trains a->config on a->data into a->out: metrics.csv, last.h5, best.h5 and, at the end,
// summary.json (see docs/usage.md). Collective: every rank calls it with the same arguments.
// Returns ERR_OK, or the same error on every rank with e set for what stops a run before or
// while it trains and is the same everywhere: bad arguments, config, data or checkpoint
// (ERR_INPUT), a non-finite gradient with train.nonfinite = stop (ERR_RUNTIME). A failure
// one rank alone meets mid-run (a file it cannot write) still ends the job, as MPI cannot
// leave the other ranks waiting.
int train_run(const Dist *d, const TrainArgs *a, TrainResult *r, Err *e);
