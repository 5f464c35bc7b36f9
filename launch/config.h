// config.h: the experiment config. One libconfig file holds the whole experiment; --set
// overrides any key. Every key is described once, with its type, default and range: in the
// schema table of config.c, or, for the keys of a layer, in its kind's table (LayerKind.keys);
// keys nobody reads and bad values are errors with file:line, or with the --set argument that
// gave the value.
#pragma once
#include <stdint.h>

#include "core/augment.h"
#include "core/err.h"
#include "core/layer.h"
#include "core/optim.h"
#include "core/schedule.h"

typedef struct {
    // data
    int64_t train_size;     // data.train_size: first N training samples (0 = all)
    int64_t val_size;       // data.val_size: first N validation samples (0 = all)
    int memory_mb;          // data.memory_mb: a rank's training shard beyond this is streamed
    // model
    Shape input;            // model.input, (0 dims = take the data's shape)
    LayerSpec *layers;      // model.layers, in order
    int nlayers;
    int batchnorm;          // model.batchnorm: on|off (off leaves the batchnorm layers out)
    // train
    int epochs;             // train.epochs
    int batch;              // train.batch: the global batch size
    int64_t max_steps;      // train.max_steps: stop after this many optimizer steps (-1 = none)
    uint32_t seed;          // train.seed
    int shuffle;            // train.shuffle
    int patience;           // train.patience: early stopping after N epochs without a better
                            // validation accuracy (0 = off)
    int threads;            // train.threads: OpenBLAS threads per rank (0 = auto)
    int keep;               // train.keep: epoch checkpoints kept besides last.h5 and best.h5
    int nonfinite_skip;     // train.nonfinite: 0 stop, 1 skip a step with a NaN/Inf gradient
    int accum;              // train.accum: micro-batches per optimizer step (communicate once)
    int bn_group;           // bn.group: ranks per BatchNorm statistic (0 all, 1 local, k)
    int bucket_kb;          // dist.bucket_kb: gradient all-reduce bucket size
    int first_bucket_kb;    // dist.first_bucket_kb: the first (last layers') bucket
    int check_every;        // dist.check_every: verify parameters agree every N steps (0 off)
    float timeout;          // dist.timeout: seconds one collective may wait (0 = forever)
    // optimizer and schedule
    OptimConfig optim;      // optim.*
    Schedule sched;         // sched.* (total_steps is set by the trainer)
    // regularization
    int dropout_on;         // reg.dropout: on|off
    float label_smoothing;  // reg.label_smoothing
    float l1, l2;           // reg.l1, reg.l2
    float clip_norm;        // reg.clip_norm (0 = off)
    int bn_ghost;           // bn.ghost: BatchNorm ghost batch size (0 = the whole batch)
    int precise_bn;         // eval.precise_bn: PreciseBN batches for the final evaluation
    float drop_path;        // model.drop_path: DropPath rate of the deepest residual block,
                            // rising linearly from 0 over the blocks (0 = per-block keys)
    // augmentation (augment.*): every transform off unless the section turns it on
    int augment_on;         // augment.enable (augment = "off" in a file, --set augment=off):
                            // off leaves every transform off whatever the other keys say
    AugmentConfig augment;  // augment.*; augment_defaults() (all off) when augment_on is 0

    char *text;             // the effective config (after --set), as libconfig text
    char source[1024];      // where it came from, for messages
} Config;

// Reads path (or, if text is not NULL, the config text itself, named by path in messages),
// applies the n overrides "key=value", validates everything. ERR_INPUT with file:line.
int config_load(Config *c, const char *path, const char *text, const char *const *sets, int nsets,
                Err *e);
void config_free(Config *c);

// One line per key with its default, meaning and range, then the keys of a layer as
// layer.NAME.KEY with the layer types that take them (for train --help).
void config_print_keys(FILE *out);
