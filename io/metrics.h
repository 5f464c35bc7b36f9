// metrics.h: DIR/metrics.csv, one row per epoch. Accuracies are fractions; a missing value
// (no validation split) is an empty cell. docs/metrics.md says what each column is.
#pragma once
#include <stdint.h>
#include <stdio.h>

#include "core/err.h"

typedef struct {
    int64_t epoch, step;  // the epoch just finished (from 1); optimizer steps so far
    double lr;            // the learning rate of the epoch's last step
    // Averages over the epoch's training batches, counted while training: train mode (dropout
    // on, label smoothing in the loss) and moving weights. Not the model's accuracy on the
    // training set, so train_acc - val_acc is not the generalization gap (that needs the
    // eval-mode train accuracy, which summary.json has for the final model).
    double train_loss, train_acc;
    // The model at the epoch's end on the validation split, eval mode, plain cross-entropy;
    // NaN (an empty cell) when there is no val split.
    double val_loss, val_acc;
    double seconds, images_per_s;  // the epoch's training time and samples per second
} MetricsRow;

// Opens path for writing rows. Rows of epochs before first_epoch already in the file are kept
// (a resumed run continues the table), later ones dropped; first_epoch 0 starts afresh.
// The header is written when the file is new or empty. NULL with e set on failure.
FILE *metrics_open(const char *path, int64_t first_epoch, Err *e);
int metrics_write(FILE *f, const MetricsRow *r, Err *e);

// Reads a table as metrics_write writes it: the exact header, then rows of 9 fields, with
// val_loss and val_acc empty (read as NaN) when there is no validation split; numbers as printf
// writes them, nan and inf included. Empty lines are skipped. *rows is malloc'd (caller frees)
// and holds *n rows. ERR_INPUT "path: cannot read: <reason>" or "path:line: what is wrong".
int metrics_read(const char *path, MetricsRow **rows, int *n, Err *e);
