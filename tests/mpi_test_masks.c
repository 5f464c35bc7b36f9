// mpi_test_masks.c: per-rank dropout streams are disjoint. Every rank draws the dropout
// masks of its slices of several global batches, exactly as training does (counter = element
// block, global sample index, step, stream); the masks' hashes are gathered and no two, on
// any ranks, may be equal. A naive baseline that keys masks by batch slot instead of global
// sample index (what "same seed on every rank" amounts to) is run through the same check to
// show what this test catches: with 2 or more ranks it produces identical masks on different
// ranks.
#include <mpi.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/kernels.h"
#include "core/philox.h"
#include "mpitest.h"

enum { GLOBAL_BATCH = 37, STEPS = 5, FEATURES = 256 };

static uint64_t hash_mask(const uint8_t *keep, size_t n) {
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++) h = (h ^ keep[i]) * 1099511628211ull;
    return h;
}

// Hashes of the masks this rank draws (its contiguous slice of each step's global batch).
// naive = 1 keys them by slot in the local batch, the bug this test exists to catch.
static int draw(uint64_t *out, int naive) {
    int r = mpitest_rank(), w = mpitest_world(), n = 0;
    uint8_t keep[FEATURES];
    philox_key key = {{42, 7}};  // the same seed and layer on every rank, as in training
    for (uint32_t step = 0; step < STEPS; step++) {
        int lo = GLOBAL_BATCH * r / w, hi = GLOBAL_BATCH * (r + 1) / w;
        for (int i = lo; i < hi; i++) {
            // the samples of a step are a permutation; any distinct global ids will do
            uint32_t sample = naive ? (uint32_t)(i - lo) : (uint32_t)(step * 1000 + i);
            dropout_mask(keep, FEATURES, 0.5f, key, sample, step, PHILOX_STREAM_TRAIN);
            out[n++] = hash_mask(keep, FEATURES);
        }
    }
    return n;
}

// Gathers every rank's hashes; returns how many pairs from different ranks are equal and
// how many pairs (on any ranks) are equal.
static void count_duplicates(const uint64_t *mine, int n, int *cross_rank, int *any) {
    int w = mpitest_world();
    int *counts = malloc(sizeof(int) * (size_t)w), *displs = malloc(sizeof(int) * (size_t)w);
    MPI_Allgather(&n, 1, MPI_INT, counts, 1, MPI_INT, MPI_COMM_WORLD);
    int total = 0;
    for (int i = 0; i < w; i++) displs[i] = total, total += counts[i];
    uint64_t *all = malloc(sizeof(uint64_t) * (size_t)(total ? total : 1));
    int *owner = malloc(sizeof(int) * (size_t)(total ? total : 1));
    MPI_Allgatherv(mine, n, MPI_UINT64_T, all, counts, displs, MPI_UINT64_T, MPI_COMM_WORLD);
    for (int i = 0; i < w; i++)
        for (int k = 0; k < counts[i]; k++) owner[displs[i] + k] = i;
    *cross_rank = *any = 0;
    for (int a = 0; a < total; a++)
        for (int b = a + 1; b < total; b++)
            if (all[a] == all[b]) {
                (*any)++;
                if (owner[a] != owner[b]) (*cross_rank)++;
            }
    free(counts), free(displs), free(all), free(owner);
}

static void test_rank_streams_are_disjoint(void **state) {
    (void)state;
    uint64_t mine[GLOBAL_BATCH * STEPS];
    int n = draw(mine, 0);
    int cross, any;
    count_duplicates(mine, n, &cross, &any);
    mpitest_assert_all(any == 0, "no two dropout masks are equal, on any ranks");
}

static void test_naive_same_seed_baseline_is_caught(void **state) {
    (void)state;
    uint64_t mine[GLOBAL_BATCH * STEPS];
    int n = draw(mine, 1);
    int cross, any;
    count_duplicates(mine, n, &cross, &any);
    // one rank: slots are distinct within a step, so only steps could collide (they don't)
    if (mpitest_world() == 1)
        mpitest_assert_all(cross == 0, "one rank has no other rank to collide with");
    else
        mpitest_assert_all(cross > 0, "the slot-keyed baseline repeats masks across ranks");
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rank_streams_are_disjoint),
        cmocka_unit_test(test_naive_same_seed_baseline_is_caught),
    };
    return mpitest_run("masks", tests, sizeof tests / sizeof tests[0], argc, argv);
}
