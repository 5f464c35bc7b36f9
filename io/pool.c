// pool.c: a pool of threads over n items (pool.h).
#define _GNU_SOURCE  // sched_getaffinity, CPU_COUNT
#include "pool.h"

#include <pthread.h>
#include <sched.h>
#include <unistd.h>

static void *pool_worker(void *arg) {
    Pool *p = arg;
    for (;;) {
        int64_t i = atomic_fetch_add(&p->next, 1);
        if (i >= p->n || atomic_load(&p->stop)) break;
        p->fn(p->ctx, i);
    }
    return NULL;
}

void pool_run(Pool *p, int threads, int64_t n, void (*fn)(void *, int64_t), void *ctx) {
    p->n = n;
    atomic_store(&p->next, 0);
    atomic_store(&p->stop, 0);
    p->fn = fn;
    p->ctx = ctx;
    pthread_t tid[256];
    int started = 0;
    if (threads > 256) threads = 256;
    for (int t = 1; t < threads && t < n; t++)
        if (pthread_create(&tid[started], NULL, pool_worker, p) == 0) started++;
    pool_worker(p);  // with no thread started, the caller does all the work
    for (int t = 0; t < started; t++) pthread_join(tid[t], NULL);
}

int pool_default_threads(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}
