// bnsync.c: BatchNorm statistics reduced over a BN group (bnsync.h).
// Why gather instead of MPI_Allreduce: Chan's combine is not an MPI operation, and neither it nor
// a floating-point sum is associative, so a reduction tree the MPI library picks could give the
// ranks of a group different bits. Gathering every partial and folding them in rank order makes
// every rank do the same arithmetic on the same operands. The messages are tiny (3 C doubles per
// rank per BN layer), so the gather costs no more than an all-reduce would.
#include "bnsync.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/kernels.h"
#include "watchdog.h"

int bnsync_init(BnSync *s, const Dist *d, int group, Err *e) {
    memset(s, 0, sizeof *s);
    s->comm = MPI_COMM_NULL;
    s->group = group;
    s->world_rank = d->rank;
    s->rank = 0;
    s->size = 1;
    s->step = -1;
    if (group < 0)
        return err_set(e, ERR_INPUT,
                       "bn.group must be 0 (all ranks), 1 (local) or the ranks per group, got %d",
                       group);
    if (group == 1) return ERR_OK;  // local BN: no communicator, no communication
    int color = group == 0 ? 0 : d->rank / group;
    if (MPI_Comm_split(d->comm, color, d->rank, &s->comm) != MPI_SUCCESS) {
        s->comm = MPI_COMM_NULL;
        return err_set(e, ERR_RUNTIME, "rank %d: cannot create the BatchNorm group communicator",
                       d->rank);
    }
    // errors come back to bnsync_reduce, which names the failure before it ends the job
    MPI_Comm_set_errhandler(s->comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(s->comm, &s->rank);
    MPI_Comm_size(s->comm, &s->size);
    return ERR_OK;
}

static int grow(BnSync *s, int nchan) {
    if (nchan <= s->cap) return 0;
    double *g = realloc(s->gather, (size_t)s->size * 3 * (size_t)nchan * sizeof(double));
    if (!g) return 1;
    s->gather = g;
    double *a = realloc(s->acc, 3 * (size_t)nchan * sizeof(double));
    if (!a) return 1;
    s->acc = a;
    s->cap = nchan;
    return 0;
}

int bnsync_reserve(BnSync *s, int max_channels, Err *e) {
    if (s->size > 1 && grow(s, max_channels))
        return err_set(e, ERR_RUNTIME, "out of memory for BatchNorm statistics (%d channels)",
                       max_channels);
    return ERR_OK;
}

int bnsync_name_layers(BnSync *s, const ParamTable *t, Err *e) {
    int n = 0;
    for (int i = 0; i < t->n; i++) n += t->p[i].role == PARAM_RUNNING_MEAN;
    free(s->named_id), free(s->named);
    s->nnamed = 0;
    s->named_id = malloc((size_t)(n ? n : 1) * sizeof *s->named_id);
    s->named = malloc((size_t)(n ? n : 1) * sizeof *s->named);
    if (!s->named_id || !s->named)
        return err_set(e, ERR_RUNTIME, "out of memory for the BatchNorm layer names");
    for (int i = 0; i < t->n; i++) {
        if (t->p[i].role != PARAM_RUNNING_MEAN) continue;
        // the layer's name: the parameter's, "res1.bn.running_mean", less its last part
        const char *name = t->p[i].name, *dot = strrchr(name, '.');
        s->named_id[s->nnamed] = t->p[i].layer;
        snprintf(s->named[s->nnamed], sizeof s->named[0], "%.*s",
                 (int)(dot ? (size_t)(dot - name) : strlen(name)), name);
        s->nnamed++;
    }
    return ERR_OK;
}

// Says what this rank now waits for, for the stall watchdog: a few stores, no allocation.
static void watch(const BnSync *s, int layer_id, StatsKind kind) {
    int fwd = kind == STATS_BN_FORWARD;
    for (int i = 0; i < s->nnamed; i++)
        if (s->named_id[i] == layer_id) {
            watchdog_enter_s(fwd ? "reducing BatchNorm statistics of layer %s"
                                 : "reducing BatchNorm gradient sums of layer %s",
                             s->named[i], s->step);
            return;
        }
    watchdog_enter_n(fwd ? "reducing BatchNorm statistics of layer id %d"
                         : "reducing BatchNorm gradient sums of layer id %d",
                     layer_id, s->step);
}

_Noreturn static void reduce_failed(const BnSync *s, const char *why, int mpi_err) {
    char msg[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    if (mpi_err != MPI_SUCCESS) MPI_Error_string(mpi_err, msg, &len);
    fprintf(stderr, "regdist: rank %d: BatchNorm statistics reduction failed (%s%s%s)\n",
            s->world_rank, why, len ? ": " : "", msg);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, ERR_RUNTIME);
    exit(ERR_RUNTIME);  // not reached
}

int bnsync_reduce(void *ctx, int layer_id, StatsKind kind, double *stats, int nchan) {
    BnSync *s = ctx;
    if (s->size <= 1 || nchan <= 0) return 0;  // local BN or a group of one: nothing to combine
    if (grow(s, nchan)) reduce_failed(s, "out of memory", MPI_SUCCESS);
    int per = (kind == STATS_BN_FORWARD ? 3 : 2) * nchan;
    watch(s, layer_id, kind);
    int rc = MPI_Allgather(stats, per, MPI_DOUBLE, s->gather, per, MPI_DOUBLE, s->comm);
    watchdog_leave();
    if (rc != MPI_SUCCESS) reduce_failed(s, "MPI_Allgather", rc);
    double *acc = s->acc;
    memcpy(acc, s->gather, (size_t)per * sizeof(double));
    for (int r = 1; r < s->size; r++) {
        const double *p = s->gather + (size_t)r * per;
        if (kind == STATS_BN_FORWARD)
            bn_stats_combine(acc, p, nchan);
        else
            for (int i = 0; i < per; i++) acc[i] += p[i];
    }
    memcpy(stats, acc, (size_t)per * sizeof(double));
    return 0;
}

void bnsync_free(BnSync *s) {
    int finalized = 0;
    MPI_Finalized(&finalized);
    // size is 0 only in a zeroed BnSync, whose comm field is no communicator at all
    if (s->size > 0 && s->comm != MPI_COMM_NULL && !finalized) MPI_Comm_free(&s->comm);
    s->comm = MPI_COMM_NULL;
    s->size = 0;
    free(s->gather), free(s->acc);
    s->gather = s->acc = NULL;
    free(s->named_id), free(s->named);
    s->named_id = NULL;
    s->named = NULL;
    s->nnamed = 0;
    s->cap = 0;
}
