// trainer.h: the state of one training run and the parts of train_run (train.h), one job per
// file: train_run.c (set-up and the loop), train_data.c (what each rank reads and
// evaluates), train_state.c (what every rank must hold the same, checkpoints), train_report.c
// (what rank 0 says: header, messages, the final report), rundir.c (the run directory).
#pragma once
#include <stdint.h>
#include <stdio.h>

#include "cli.h"
#include "core/optim.h"
#include "io/checkpoint.h"
#include "io/metrics.h"
#include "io/prefetch.h"
#include "step.h"
#include "train.h"

typedef struct {
    const Dist *d;
    FILE *log;          // rank 0's report
    Config cfg;
    Dataset train, val, test;
    int has_val, has_test;
    Model m;
    Optim opt;
    Stepper st;         // the optimizer step: slices, all-reduce, BN groups, batch buffers
    int st_ready;       // st was set up (and must be freed)
    float *probs;       // (max_local, classes)
    int64_t *perm;      // (train.n)
    int64_t *shard;     // (train.n, twice that with mixup/cutmix partners) this rank's
                        // training rows of the epoch: ascending, or ascending within each
                        // step when streamed
    int64_t *shard_off; // (steps_per_epoch + 1) where each step's rows begin in shard
    int stream;         // the shard exceeds data.memory_mb: read it step by step ahead
    Prefetch pf;        // the read-ahead thread while streaming an epoch
    CkptMeta meta;      // the position and history: what a checkpoint holds besides weights
    double loss_local;     // this rank's share of the epoch's loss sum and hits so far
    int64_t correct_local, seen_local;
    int64_t steps_per_epoch;
    double train_seconds;  // training time of the epochs run by this process
    int64_t saved_step;    // the step of the last good checkpoint (-1: none yet), and its path
    char saved_path[1100];
    char out[1024];
} Trainer;

// train_data.c
double train_shard_bytes(const Dist *d, const Dataset *ds);
int train_load_split(const Dist *d, Dataset *ds, const char *file, const char *split,
                     int64_t limit, int required, int hold_all, int *has, Err *e);
int train_check_size(const char *file, const Dataset *ds, const char *split, int64_t limit,
                     const char *key, Err *e);
int train_hold_eval_share(const Dist *d, Dataset *ds, int64_t limit, Err *e);
void train_begin_epoch_data(Trainer *t);
void train_next_step_data(Trainer *t);
void train_evaluate_split(Trainer *t, const Dataset *ds, EvalResult *r);
void train_evaluate_all(Trainer *t, EvalResult r[N_SPLITS]);

// train_state.c
void train_save(Trainer *t, const char *name);
int train_check_resume_compatible(const Trainer *t, const char *ckpt, const char *ckpt_config,
                                  Err *e);
void train_check_same_config(const Dist *d, const Config *c);
void train_check_same_state(const Trainer *t, const char *when);
void train_share_state(Trainer *t);
void train_share_buffers(Trainer *t);
void train_sync_epoch_sums(Trainer *t);

// train_report.c
void train_warn_settings(const Trainer *t);
void train_print_header(const Trainer *t, const char *resume, int threads);
void train_print_epoch(const Trainer *t, const MetricsRow *row, int improved);
void train_stopped_message(const Trainer *t, int signal);
const char *train_finished_message(const Trainer *t, const char *resume);
void train_report_final(Trainer *t, const char *ended_by, RunSummary *s);
