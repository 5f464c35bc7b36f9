// prefetch.h: a background thread that reads the training rows of the next steps from the
// HDF5 file while the current step computes. Used when a rank's training shard is larger
// than data.memory_mb: memory then holds PREFETCH_DEPTH steps' rows instead of the shard.
//
// Step s (first <= s < end) needs rows[off[s] .. off[s+1]) of the split, ascending. The
// thread loads step s into slot s % PREFETCH_DEPTH once the consumer has released the step
// that used the slot before, so it runs at most PREFETCH_DEPTH - 1 steps ahead.
#pragma once
#include <pthread.h>
#include <stdint.h>

#include "dataset.h"

#define PREFETCH_DEPTH 3  // one slot in use, two read ahead

typedef struct {
    // what to read (set by prefetch_start, read-only while the thread runs)
    char file[DATASET_PATH_MAX], split[16];
    int64_t limit;
    const int64_t *rows, *off;  // (off[end]) rows; (end + 1) step boundaries into rows
    int64_t first, end;
    // shared state, under mu
    Dataset slot[PREFETCH_DEPTH];
    int64_t loaded;    // steps [first, loaded) are in their slots
    int64_t released;  // steps [first, released) are done with
    int stop, failed;
    Err err;           // the thread's read error when failed
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int running;
    double wait_seconds;  // the consumer's time blocked on reads (0 when reading keeps up)
} Prefetch;

// Starts reading steps [first, end). rows and off must stay valid until prefetch_stop.
// ERR_RUNTIME if the thread cannot start.
int prefetch_start(Prefetch *p, const char *file, const char *split, int64_t limit,
                   const int64_t *rows, const int64_t *off, int64_t first, int64_t end, Err *e);
// The next step's rows: releases the step returned before, waits until the next is read, and
// returns the Dataset holding its rows (valid until the next call). NULL with e set (the
// reader's one-line error) if reading failed or every step was returned already.
const Dataset *prefetch_next(Prefetch *p, Err *e);
// Stops the thread (finishing the read in progress) and frees the slots. Safe to call twice.
void prefetch_stop(Prefetch *p);
