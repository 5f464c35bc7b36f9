// rundir.h: a run directory belongs to one run. What train and study need to claim one,
// create it, and keep per-epoch checkpoints in it.
#pragma once
#include "core/err.h"
#include "dist/dist.h"

// A directory holding any of a run's files (metrics.csv, last.h5, best.h5, summary.json)
// holds a run: refused (ERR_INPUT, one line naming it) unless the command continues it
// (resume) or replaces it (overwrite: the old files, epoch-*.h5 included, are removed first,
// so old and new are never mixed). Rank 0 looks; every rank returns the same outcome.
// Collective.
int rundir_claim(const Dist *d, const char *dir, int resume, int overwrite, Err *e);
// Creates dir and its parents (rank 0); ERR_INPUT on every rank when it cannot. Collective.
int rundir_make(const Dist *d, const char *dir, Err *e);
// dir/epoch-NNNN.h5 for epoch, a hard link to dir/last.h5 (a new file at every atomic save,
// so the link keeps this epoch's), and the oldest beyond keep removed. A failure is a
// warning, never fatal: last.h5 is safe.
void rundir_keep_epoch(const char *dir, int64_t epoch, int keep);
int rundir_exists(const char *path);  // 1 if path names anything
