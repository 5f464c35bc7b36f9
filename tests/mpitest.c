// mpitest.c: cmocka under MPI (mpitest.h). Each test runs inside a wrapper: its setup records
// that the test started, the test body marks it finished if it returns, and its teardown (which
// cmocka runs even after a failed test) decides: a test that did not finish and was not failed by
// mpitest_assert_all failed on this rank alone, so the job must end. cmocka prints the failure's
// message only after the teardown, so the abort happens just after that: in the next test's
// setup, or after the last test. Nothing between them blocks, so no rank waits on this one.
#include "mpitest.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const struct CMUnitTest *orig;
    void *state;   // the test's own state, as its setup left it
    int finished;  // the body returned (did not longjmp out on a failure)
} Entry;

static int g_rank = 0, g_world = 1;
static int g_collective_failure;  // set by mpitest_assert_all when it fails the test everywhere

int mpitest_rank(void) { return g_rank; }
int mpitest_world(void) { return g_world; }

_Noreturn static void abort_job(const char *test, const char *what) {
    fprintf(stderr,
            "mpitest: rank %d of %d: test %s %s on this rank alone; aborting the job so no "
            "rank waits in a collective forever\n",
            g_rank, g_world, test, what);
    fflush(stderr);
    fflush(stdout);
    MPI_Abort(MPI_COMM_WORLD, 3);
    exit(3);  // not reached
}

static const char *g_failed_alone;  // the test that failed on this rank alone, to abort after

static int wrap_setup(void **state) {
    Entry *en = *state;
    if (g_failed_alone) abort_job(g_failed_alone, "failed");
    en->finished = 0;
    en->state = en->orig->initial_state;
    g_collective_failure = 0;
    if (en->orig->setup_func && en->orig->setup_func(&en->state) != 0)
        abort_job(en->orig->name, "failed in its setup");
    return 0;
}

static void wrap_test(void **state) {
    Entry *en = *state;
    en->orig->test_func(&en->state);
    en->finished = 1;
}

static int wrap_teardown(void **state) {
    Entry *en = *state;
    if (!en->finished && !g_collective_failure) g_failed_alone = en->orig->name;
    if (en->orig->teardown_func && en->orig->teardown_func(&en->state) != 0)
        abort_job(en->orig->name, "failed in its teardown");
    return 0;
}

void mpitest_assert_all_at(int ok, const char *what, const char *file, int line) {
    int mine = ok ? 1 : 0, all = 0;
    MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (all) return;
    int *oks = malloc((size_t)g_world * sizeof(int));
    if (!oks) abort_job("(current)", "ran out of memory in a collective assertion");
    MPI_Allgather(&mine, 1, MPI_INT, oks, 1, MPI_INT, MPI_COMM_WORLD);
    char ranks[512] = "";
    size_t len = 0;
    for (int r = 0; r < g_world && len + 16 < sizeof ranks; r++)
        if (!oks[r]) len += (size_t)snprintf(ranks + len, sizeof ranks - len, "%s%d",
                                             len ? ", " : "", r);
    free(oks);
    g_collective_failure = 1;
    print_error("%s: failed on rank(s) %s (of %d)\n", what, ranks, g_world);
    _fail(file, line);
}

int mpitest_run(const char *name, const struct CMUnitTest *tests, size_t n, int argc,
                char **argv) {
    if (MPI_Init(&argc, &argv) != MPI_SUCCESS) {
        fprintf(stderr, "mpitest %s: MPI_Init failed\n", name);
        return 1;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_world);
    const char *all = getenv("MPITEST_ALL_RANKS");
    if (g_rank > 0 && !(all && *all == '1') && !freopen("/dev/null", "w", stdout))
        fprintf(stderr, "mpitest: rank %d: cannot silence stdout\n", g_rank);

    Entry *en = calloc(n ? n : 1, sizeof *en);
    struct CMUnitTest *wrapped = calloc(n ? n : 1, sizeof *wrapped);
    if (!en || !wrapped) {
        fprintf(stderr, "mpitest: rank %d: out of memory\n", g_rank);
        MPI_Abort(MPI_COMM_WORLD, 3);
    }
    for (size_t i = 0; i < n; i++) {
        en[i].orig = &tests[i];
        wrapped[i] = (struct CMUnitTest){.name = tests[i].name,
                                         .test_func = wrap_test,
                                         .setup_func = wrap_setup,
                                         .teardown_func = wrap_teardown,
                                         .initial_state = &en[i]};
    }
    char group[256];
    snprintf(group, sizeof group, "%s (rank %d of %d)", name, g_rank, g_world);
    int failed = _cmocka_run_group_tests(group, wrapped, n, NULL, NULL);
    fflush(stdout);
    if (g_failed_alone) abort_job(g_failed_alone, "failed");

    // every rank got here in step (a lone failure would have aborted), so collectives are safe
    int *per_rank = calloc((size_t)g_world, sizeof(int));
    if (!per_rank) MPI_Abort(MPI_COMM_WORLD, 3);
    MPI_Allgather(&failed, 1, MPI_INT, per_rank, 1, MPI_INT, MPI_COMM_WORLD);
    int total = 0;
    for (int r = 0; r < g_world; r++) total += per_rank[r];
    if (g_rank == 0) {
        if (total == 0)
            printf("mpitest %s: %d rank(s): all %zu tests passed on every rank\n", name,
                    g_world, n);
        else {
            printf("mpitest %s: %d rank(s): FAILED; failed tests per rank:", name,
                    g_world);
            for (int r = 0; r < g_world; r++) printf(" %d", per_rank[r]);
            printf("\n");
        }
    }
    free(per_rank), free(wrapped), free(en);
    MPI_Finalize();
    return total == 0 ? 0 : (total < 100 ? total : 100);
}
