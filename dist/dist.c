// dist.c: MPI start-up, shutdown and job-wide failure (dist.h).
#include "dist.h"

#include <stdio.h>
#include <stdlib.h>

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
    MPI_Comm_free(&local);
    return 0;
}

void dist_finalize(Dist *d) {
    if (d->comm != MPI_COMM_NULL) MPI_Comm_free(&d->comm);
    d->comm = MPI_COMM_NULL;
    MPI_Finalize();
}

void dist_barrier(const Dist *d) { MPI_Barrier(d->comm); }

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
