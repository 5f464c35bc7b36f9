// mpitest.h: cmocka under MPI, as MP-Gadget does it. Every tests/mpi_test_*.c has
//   int main(int argc, char **argv) { ... return mpitest_run("name", tests, n, argc, argv); }
// and runs under mpiexec with 1, 2 and 4 ranks (tests/CMakeLists.txt).
//
// The rule that keeps a failing rank from leaving the others hanging in a collective:
// - anything whose outcome may differ between ranks is checked with mpitest_assert_all, which
//   every rank calls; when it fails on any rank it fails on every rank, so all ranks leave the
//   test together and meet again in the next one;
// - any other failure (a plain assert_*, fail_msg, a crash cmocka catches) ends the whole job
//   with MPI_Abort right after cmocka has printed it, with a message naming the rank and the
//   test, because the other ranks may already be waiting in a collective that rank will never
//   join. So plain assert_* is for what cannot differ between ranks (a setup that must work).
// The runner exits nonzero when any test failed on any rank.
#pragma once
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

// MPI_Init, the tests (each wrapped as above), MPI_Finalize. Only rank 0 prints cmocka's
// progress on stdout (set MPITEST_ALL_RANKS=1 for every rank's); failure messages go to stderr
// on every rank. Rank 0 ends with one summary line. Returns the exit status: 0 when every test
// passed on every rank, else nonzero.
int mpitest_run(const char *name, const struct CMUnitTest *tests, size_t n, int argc,
                char **argv);

// Collective assertion: every rank of MPI_COMM_WORLD passes its own ok; if any is 0, every rank
// fails the current test with "<what>: failed on rank(s) r1, r2, ..." (at the caller's line).
#define mpitest_assert_all(ok, what) mpitest_assert_all_at((ok), (what), __FILE__, __LINE__)
void mpitest_assert_all_at(int ok, const char *what, const char *file, int line);

// This process's rank and the number of ranks in MPI_COMM_WORLD.
int mpitest_rank(void);
int mpitest_world(void);
