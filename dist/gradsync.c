// gradsync.c: bucketed, overlapped gradient all-reduce (gradsync.h).
#include "gradsync.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "watchdog.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int gradsync_init(GradSync *g, const Dist *d, float *grads, size_t n, size_t bucket_bytes,
                  size_t first_bytes, Err *e) {
    *g = (GradSync){.comm = d->comm, .world = d->world, .grads = grads, .n = n, .step = -1};
    size_t bucket = bucket_bytes / sizeof(float), first = first_bytes / sizeof(float);
    if (bucket == 0 || first == 0)
        return err_set(e, ERR_INPUT, "gradient bucket sizes must be at least one float");
    // count, then place the buckets from the end of the buffer
    int nb = 0;
    for (size_t end = n, size = first; end > 0; nb++) {
        end = end > size ? end - size : 0;
        size = bucket;
    }
    g->nbuckets = nb;
    g->start = calloc((size_t)(nb ? nb : 1), sizeof *g->start);
    g->req = calloc((size_t)(nb ? nb : 1), sizeof *g->req);
    if (!g->start || !g->req) return err_set(e, ERR_RUNTIME, "out of memory");
    size_t end = n, size = first;
    for (int i = 0; i < nb; i++) {
        end = end > size ? end - size : 0;
        g->start[i] = end;
        g->req[i] = MPI_REQUEST_NULL;
        size = bucket;
    }
    return ERR_OK;
}

void gradsync_free(GradSync *g) {
    free(g->start);
    free(g->req);
    g->start = NULL;
    g->req = NULL;
}

void gradsync_begin(GradSync *g, int enabled) {
    g->enabled = enabled && g->world > 1;
    g->launched = 0;
    g->low = g->n;
}

static void fail(const GradSync *g, const char *what) {
    int rank = 0;
    MPI_Comm_rank(g->comm, &rank);
    fprintf(stderr, "regdist: rank %d: gradient all-reduce failed in %s\n", rank, what);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
}

// Starts every bucket that lies wholly in [low, n).
static void launch_ready(GradSync *g) {
    while (g->launched < g->nbuckets && g->start[g->launched] >= g->low) {
        int i = g->launched;
        size_t end = i == 0 ? g->n : g->start[i - 1];
        if (g->launched == 0) g->t_first = now();
        if (MPI_Iallreduce(MPI_IN_PLACE, g->grads + g->start[i], (int)(end - g->start[i]),
                           MPI_FLOAT, MPI_SUM, g->comm, &g->req[i]) != MPI_SUCCESS)
            fail(g, "MPI_Iallreduce");
        g->launched++;
    }
}

void gradsync_ready(void *ctx, size_t off, size_t count) {
    GradSync *g = ctx;
    if (!g->enabled) return;
    if (off < g->low) g->low = off;  // slices arrive from the end of the buffer downwards
    (void)count;
    launch_ready(g);
    // Open MPI progresses non-blocking collectives only inside MPI calls: nudge them.
    if (g->launched) {
        int done;
        MPI_Testall(g->launched, g->req, &done, MPI_STATUSES_IGNORE);
    }
}

void gradsync_wait(GradSync *g) {
    if (!g->enabled) return;
    double t0 = now();
    g->low = 0;  // whatever is left (layers without parameters never report) is final now
    watchdog_enter("waiting for the gradient all-reduce", g->step);
    launch_ready(g);
    if (MPI_Waitall(g->nbuckets, g->req, MPI_STATUSES_IGNORE) != MPI_SUCCESS)
        fail(g, "MPI_Waitall");
    watchdog_leave();
    double t1 = now();
    g->wait_seconds += t1 - t0;
    g->comm_seconds += t1 - g->t_first;
}
