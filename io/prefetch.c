// prefetch.c: the read-ahead thread of streamed training data (prefetch.h).
// HDF5 is built thread-safe on Debian (one global lock), so the trainer's other HDF5 calls
// could run beside it; the trainer still stops it before evaluating or checkpointing, so a
// checkpoint never waits on a read.
#include "prefetch.h"

#include <hdf5.h>
#include <string.h>
#include <time.h>

static double seconds_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *prefetch_main(void *arg) {
    Prefetch *p = arg;
    for (int64_t s = p->first; s < p->end; s++) {
        pthread_mutex_lock(&p->mu);
        while (!p->stop && s - p->released >= PREFETCH_DEPTH) pthread_cond_wait(&p->cv, &p->mu);
        int stop = p->stop;
        pthread_mutex_unlock(&p->mu);
        if (stop) break;
        // the slot is free: the consumer released the step that held it
        Dataset *d = &p->slot[s % PREFETCH_DEPTH];
        Err e = {0};
        int rc = dataset_load_rows(d, p->file, p->split, p->limit, p->rows + p->off[s],
                                   p->off[s + 1] - p->off[s], &e);
        pthread_mutex_lock(&p->mu);
        if (rc) {
            p->failed = 1;
            p->err = e;
        } else {
            p->loaded = s + 1;
        }
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
        if (rc) break;
    }
    // A failed HDF5 call leaves its messages on this thread's error stack, which HDF5 frees
    // only at the thread's next call: clear it, or the thread's exit leaks them.
    H5Eclear2(H5E_DEFAULT);
    return NULL;
}

int prefetch_start(Prefetch *p, const char *file, const char *split, int64_t limit,
                   const int64_t *rows, const int64_t *off, int64_t first, int64_t end, Err *e) {
    memset(p, 0, sizeof *p);
    snprintf(p->file, sizeof p->file, "%s", file);
    snprintf(p->split, sizeof p->split, "%s", split);
    p->limit = limit;
    p->rows = rows;
    p->off = off;
    p->first = p->loaded = first;
    p->end = end;
    p->released = first - 1;  // nothing returned yet: the first call releases nothing
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (pthread_create(&p->thread, NULL, prefetch_main, p) != 0) {
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->cv);
        return err_set(e, ERR_RUNTIME, "cannot start the data prefetch thread");
    }
    p->running = 1;
    return ERR_OK;
}

const Dataset *prefetch_next(Prefetch *p, Err *e) {
    pthread_mutex_lock(&p->mu);
    int64_t s = ++p->released;  // the step before is done with; s is the one wanted now
    pthread_cond_broadcast(&p->cv);
    if (s >= p->end) {
        pthread_mutex_unlock(&p->mu);
        err_set(e, ERR_RUNTIME, "prefetch: every step was read already");
        return NULL;
    }
    double t0 = -1;
    while (!p->failed && p->loaded <= s) {
        if (t0 < 0) t0 = seconds_now();
        pthread_cond_wait(&p->cv, &p->mu);
    }
    if (t0 >= 0) p->wait_seconds += seconds_now() - t0;
    int ready = p->loaded > s;  // a failure reading a later step surfaces when it is wanted
    if (!ready) *e = p->err;
    pthread_mutex_unlock(&p->mu);
    return ready ? &p->slot[s % PREFETCH_DEPTH] : NULL;
}

void prefetch_stop(Prefetch *p) {
    if (!p->running) return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->thread, NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    for (int i = 0; i < PREFETCH_DEPTH; i++) dataset_free(&p->slot[i]);
    p->running = 0;
}
