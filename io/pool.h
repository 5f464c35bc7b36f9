// pool.h: a pool of threads over n independent items, for decoding image files (the importer,
// predict --images). The caller's thread is one of the workers; items are taken in order by
// an atomic counter, and a task may end the run early.
#pragma once
#include <stdatomic.h>
#include <stdint.h>

typedef struct {
    int64_t n;
    atomic_llong next;
    atomic_int stop;  // set by a task (pool_stop) to end the run early
    void (*fn)(void *ctx, int64_t i);
    void *ctx;
} Pool;

// Runs fn(ctx, i) for i in [0, n) on up to `threads` threads. After a pool_stop, items not yet
// taken are never run.
void pool_run(Pool *p, int threads, int64_t n, void (*fn)(void *, int64_t), void *ctx);
static inline void pool_stop(Pool *p) { atomic_store(&p->stop, 1); }

// The CPUs this process may run on (its affinity mask), at least 1.
int pool_default_threads(void);
