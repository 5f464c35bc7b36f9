// dist.h: the MPI context. Every MPI call in regdist lives in dist/. A plain `regdist train`
// is a 1-rank MPI run (singleton init), so the same binary runs locally and under mpirun.
#pragma once
#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

typedef struct {
    int rank, world;            // in MPI_COMM_WORLD
    int local_rank, local_size; // among the ranks on this host
    int local_cores;            // cores the ranks on this host may run on, together (the union
                                // of their affinity masks: a cpuset, a scheduler's allocation)
    MPI_Comm comm;              // the training communicator (a dup of MPI_COMM_WORLD)
} Dist;

// MPI_Init and the context. Returns 0, or nonzero if MPI could not start.
int dist_init(Dist *d, int *argc, char ***argv);
void dist_finalize(Dist *d);

// The first k ranks of d as a context of their own (collective over d): returns 1 and sets
// *sub on ranks below k, 0 on the others. The host-local fields stay d's. Free with
// dist_sub_free.
int dist_first(const Dist *d, int k, Dist *sub);
void dist_sub_free(Dist *sub);

// Waits for every rank.
void dist_barrier(const Dist *d);

// Collective: every rank passes its own outcome (e->code 0 = fine). If any rank failed, every
// rank returns the same nonzero code and e holds the message of the lowest failing rank,
// prefixed "rank R: " when there are several ranks. No rank is left waiting.
int dist_agree(const Dist *d, Err *e);
// Ends the job after dist_agree found an error: rank 0 prints it, every rank exits cleanly.
_Noreturn void dist_exit_agreed(Dist *d, const Err *e);

void dist_sum_f64(const Dist *d, double *v, int n);        // in place, over all ranks
int dist_max_int(const Dist *d, int v);                    // the largest v any rank passed
void dist_bcast_f32(const Dist *d, float *v, size_t n);    // from rank 0
void dist_bcast_f64(const Dist *d, double *v, int n);      // from rank 0
// 1 if every rank passed the same value, else 0 (and *first_diff = a rank that differs).
int dist_same_u64(const Dist *d, uint64_t v, int *first_diff);

// Ends the whole job after an error that every rank or only this rank hit: prints
// "regdist: <msg>" (with the rank when world > 1) and exits with code. With one rank it
// finalizes MPI and exits cleanly; with more it calls MPI_Abort so no rank is left hanging.
_Noreturn void dist_fail(const Dist *d, int code, const char *msg);

// The MPI library's own version line ("Open MPI v4.1.4, package: ...") into buf (len bytes,
// NUL-terminated, cut at the first newline). Safe before MPI_Init.
void dist_library_version(char *buf, int len);
