// dist.h: the MPI context. Every MPI call in regdist lives in dist/. A plain `regdist train`
// is a 1-rank MPI run (singleton init), so the same binary runs locally and under mpirun.
#pragma once
#include <mpi.h>

typedef struct {
    int rank, world;            // in MPI_COMM_WORLD
    int local_rank, local_size; // among the ranks on this host
    MPI_Comm comm;              // the training communicator (a dup of MPI_COMM_WORLD)
} Dist;

// MPI_Init and the context. Returns 0, or nonzero if MPI could not start.
int dist_init(Dist *d, int *argc, char ***argv);
void dist_finalize(Dist *d);

// Waits for every rank.
void dist_barrier(const Dist *d);

// Ends the whole job after an error that every rank or only this rank hit: prints
// "regdist: <msg>" (with the rank when world > 1) and exits with code. With one rank it
// finalizes MPI and exits cleanly; with more it calls MPI_Abort so no rank is left hanging.
_Noreturn void dist_fail(const Dist *d, int code, const char *msg);
