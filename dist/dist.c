// dist.c: MPI start-up, shutdown and job-wide failure (dist.h).
#define _GNU_SOURCE  // sched_getaffinity and the CPU_* macros
#include "dist.h"

#include <sched.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "watchdog.h"

int dist_init(Dist *d, int *argc, char ***argv) {
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) return 1;
    MPI_Comm_dup(MPI_COMM_WORLD, &d->comm);
    MPI_Comm_rank(d->comm, &d->rank);
    MPI_Comm_size(d->comm, &d->world);
    MPI_Comm local;
    MPI_Comm_split_type(d->comm, MPI_COMM_TYPE_SHARED, d->rank, MPI_INFO_NULL, &local);
    MPI_Comm_rank(local, &d->local_rank);
    MPI_Comm_size(local, &d->local_size);
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0) CPU_ZERO(&set);
    MPI_Allreduce(MPI_IN_PLACE, &set, (int)sizeof set, MPI_BYTE, MPI_BOR, local);
    d->local_cores = CPU_COUNT(&set);
    MPI_Comm_free(&local);
    return 0;
}

void dist_finalize(Dist *d) {
    if (d->comm != MPI_COMM_NULL) MPI_Comm_free(&d->comm);
    d->comm = MPI_COMM_NULL;
    MPI_Finalize();
}

int dist_first(const Dist *d, int k, Dist *sub) {
    MPI_Comm c;
    MPI_Comm_split(d->comm, d->rank < k ? 0 : MPI_UNDEFINED, d->rank, &c);
    if (c == MPI_COMM_NULL) return 0;
    *sub = *d;
    sub->comm = c;
    MPI_Comm_rank(c, &sub->rank);
    MPI_Comm_size(c, &sub->world);
    return 1;
}

void dist_sub_free(Dist *sub) {
    if (sub->comm != MPI_COMM_NULL) MPI_Comm_free(&sub->comm);
    sub->comm = MPI_COMM_NULL;
}

void dist_barrier(const Dist *d) {
    watchdog_enter("waiting at a barrier for every rank", -1);
    MPI_Barrier(d->comm);
    watchdog_leave();
}

_Noreturn void dist_fail(const Dist *d, int code, const char *msg) {
    if (d->world <= 1) {
        fprintf(stderr, "regdist: %s\n", msg);
        fflush(stderr);
        Dist copy = *d;
        dist_finalize(&copy);
        exit(code);
    }
    fprintf(stderr, "regdist: rank %d of %d: %s\n", d->rank, d->world, msg);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, code);
    exit(code);  // not reached
}

int dist_agree(const Dist *d, Err *e) {
    if (d->world <= 1) return e->code;
    int mine = e->code ? d->rank : d->world, first = d->world;
    watchdog_enter("agreeing with every rank on whether an error occurred", -1);
    MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, d->comm);
    if (first == d->world) {
        watchdog_leave();
        return 0;
    }
    Err got = *e;
    MPI_Bcast(&got.code, 1, MPI_INT, first, d->comm);
    MPI_Bcast(got.msg, ERR_MAX, MPI_CHAR, first, d->comm);
    watchdog_leave();
    e->code = got.code;
    snprintf(e->msg, sizeof e->msg, "rank %d: %.*s", first, (int)sizeof e->msg - 16, got.msg);
    return e->code;
}

_Noreturn void dist_exit_agreed(Dist *d, const Err *e) {
    if (d->rank == 0) {
        fprintf(stderr, "regdist: %s\n", e->msg);
        fflush(stderr);
    }
    dist_finalize(d);
    exit(e->code ? e->code : 1);
}

void dist_sum_f64(const Dist *d, double *v, int n) {
    if (d->world <= 1) return;
    watchdog_enter("summing metrics over the ranks", -1);
    MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_SUM, d->comm);
    watchdog_leave();
}

int dist_max_int(const Dist *d, int v) {
    if (d->world <= 1) return v;
    watchdog_enter("agreeing whether to stop", -1);
    MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT, MPI_MAX, d->comm);
    watchdog_leave();
    return v;
}

void dist_bcast_f32(const Dist *d, float *v, size_t n) {
    if (d->world <= 1) return;
    watchdog_enter("receiving rank 0's parameters or buffers (broadcast)", -1);
    for (size_t off = 0; off < n; off += (size_t)1 << 30) {  // MPI counts are ints
        size_t k = n - off < ((size_t)1 << 30) ? n - off : ((size_t)1 << 30);
        MPI_Bcast(v + off, (int)k, MPI_FLOAT, 0, d->comm);
    }
    watchdog_leave();
}

void dist_bcast_f64(const Dist *d, double *v, int n) {
    if (d->world <= 1) return;
    watchdog_enter("receiving rank 0's values (broadcast)", -1);
    MPI_Bcast(v, n, MPI_DOUBLE, 0, d->comm);
    watchdog_leave();
}

int dist_same_u64(const Dist *d, uint64_t v, int *first_diff) {
    if (d->world <= 1) return 1;
    uint64_t *all = malloc((size_t)d->world * sizeof *all);
    if (!all) dist_fail(d, 1, "out of memory comparing ranks");
    watchdog_enter("comparing a checksum (config or parameters) across the ranks", -1);
    MPI_Allgather(&v, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, d->comm);
    watchdog_leave();
    int same = 1;
    for (int r = 1; r < d->world && same; r++)
        if (all[r] != all[0]) {
            same = 0;
            if (first_diff) *first_diff = r;
        }
    free(all);
    return same;
}

void dist_library_version(char *buf, int len) {
    char v[MPI_MAX_LIBRARY_VERSION_STRING];
    int n = 0;
    if (len <= 0) return;
    if (MPI_Get_library_version(v, &n) != MPI_SUCCESS) n = 0;
    v[n < MPI_MAX_LIBRARY_VERSION_STRING ? n : MPI_MAX_LIBRARY_VERSION_STRING - 1] = 0;
    v[strcspn(v, "\r\n")] = 0;
    snprintf(buf, (size_t)len, "%s", v);
}
