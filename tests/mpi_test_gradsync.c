// mpi_test_gradsync.c: where the gradient all-reduce's buckets lie (dist/gradsync.c) and how a
// global batch is split over ranks and micro-batches (stepper_slice, launch/step.c), run with
// 1, 2 and 4 ranks.
// - bucket placement: every gradient element lies in exactly one bucket; the buckets cover the
//   flat buffer from its end (the last layers, whose gradients backward finishes first)
//   towards its start; the first is dist.first_bucket_kb, every other dist.bucket_kb but the
//   last, which holds what is left. The rule is by size only: bounds need not fall on layer
//   boundaries (a layer's slice may span buckets; a bucket starts once all of it is final);
// - reduction: with layers reporting from the last down (one never reporting, as a layer
//   without parameters), each bucket starts once it is wholly final and every element is
//   summed over the ranks exactly once; a micro-batch that only accumulates touches nothing;
// - stepper_slice: for n not divisible by the ranks, n smaller than the ranks and accum > 1,
//   the slices of the micro-batches, taken in order and each micro-batch's in rank order,
//   partition [0, n) exactly, none larger than stepper_max_local; and the slices the ranks
//   of this job compute for themselves, gathered, are that partition.
#include <mpi.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dist/gradsync.h"
#include "launch/step.h"
#include "mpitest.h"

static Dist world_dist(void) {
    return (Dist){.rank = mpitest_rank(), .world = mpitest_world(), .comm = MPI_COMM_WORLD};
}

// Bucket i covers [start[i], end(i)): end(0) = n, end(i) = start[i-1].
static size_t bucket_end(const GradSync *g, int i) { return i == 0 ? g->n : g->start[i - 1]; }

static void check_placement(size_t n, size_t bucket, size_t first) {
    Dist d = world_dist();
    GradSync g;
    Err e = {0};
    float *grads = calloc(n ? n : 1, sizeof *grads);
    int *hits = calloc(n ? n : 1, sizeof *hits);
    assert_non_null(grads);
    assert_non_null(hits);
    assert_int_equal(gradsync_init(&g, &d, grads, n, bucket * sizeof(float),
                                   first * sizeof(float), &e), ERR_OK);
    if (n == 0) assert_int_equal(g.nbuckets, 0);
    for (int i = 0; i < g.nbuckets; i++) {
        size_t lo = g.start[i], hi = bucket_end(&g, i);
        assert_true(lo < hi);  // from the end towards the start, none empty
        size_t want = i == 0 ? first : bucket;
        if (lo > 0) assert_int_equal(hi - lo, want);  // full size but the lowest
        else assert_true(hi - lo <= want);            // the lowest: what is left
        for (size_t k = lo; k < hi; k++) hits[k]++;
    }
    if (g.nbuckets) assert_int_equal(g.start[g.nbuckets - 1], 0);
    for (size_t k = 0; k < n; k++) assert_int_equal(hits[k], 1);
    gradsync_free(&g);
    free(grads);
    free(hits);
}

static void test_bucket_placement(void **state) {
    (void)state;
    const size_t ns[] = {0, 1, 5, 63, 64, 65, 1000, 1027};
    const size_t sizes[] = {1, 7, 64, 256};
    for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
        for (size_t b = 0; b < sizeof sizes / sizeof *sizes; b++)
            for (size_t f = 0; f < sizeof sizes / sizeof *sizes; f++)
                check_placement(ns[a], sizes[b], sizes[f]);
    // the stepper's sizes: dist.first_bucket_kb = 1 and dist.bucket_kb = 4 are 256 and 1024
    // floats; 3000 floats: [2744, 3000), [1720, 2744), [696, 1720), [0, 696)
    Dist d = world_dist();
    float grads[3000];
    GradSync g;
    Err e = {0};
    assert_int_equal(gradsync_init(&g, &d, grads, 3000, 4 * 1024, 1 * 1024, &e), ERR_OK);
    assert_int_equal(g.nbuckets, 4);
    const size_t want[] = {2744, 1720, 696, 0};
    for (int i = 0; i < 4; i++) assert_int_equal(g.start[i], want[i]);
    gradsync_free(&g);
    // a bucket must hold at least one float
    assert_int_equal(gradsync_init(&g, &d, grads, 3000, 2, 1024, &e), ERR_INPUT);
    assert_non_null(strstr(e.msg, "at least one float"));
    gradsync_free(&g);
    e = (Err){0};
    assert_int_equal(gradsync_init(&g, &d, grads, 3000, 1024, 0, &e), ERR_INPUT);
    gradsync_free(&g);
}

enum { N = 1000, LAYERS = 5 };
// layer l's parameters: [bounds[l], bounds[l+1]); layer 0 never reports (no parameters)
static const size_t bounds[LAYERS + 1] = {0, 100, 333, 600, 990, N};

static float value(int rank, size_t k) { return (float)((rank + 1) * (int)(k % 7 + 1)); }

static void test_reduce_once_in_order(void **state) {
    (void)state;
    Dist d = world_dist();
    int W = d.world, ok = 1, order_ok = 1;
    static float grads[N];
    for (size_t k = 0; k < N; k++) grads[k] = value(d.rank, k);
    GradSync g;
    Err e = {0};
    assert_int_equal(gradsync_init(&g, &d, grads, N, 64 * sizeof(float), 16 * sizeof(float),
                                   &e), ERR_OK);
    gradsync_begin(&g, 1);
    for (int l = LAYERS - 1; l >= 1; l--) {  // backward: the last layer first
        gradsync_ready(&g, bounds[l], bounds[l + 1] - bounds[l]);
        int started = 0;  // the buckets wholly in [bounds[l], N)
        while (started < g.nbuckets && g.start[started] >= bounds[l]) started++;
        if (g.launched != (W > 1 ? started : 0)) order_ok = 0;
    }
    gradsync_wait(&g);
    float sum = (float)(W * (W + 1) / 2);  // (rank + 1) summed over the ranks
    for (size_t k = 0; k < N; k++)
        if (grads[k] != sum * (float)(k % 7 + 1)) ok = 0;
    mpitest_assert_all(order_ok, "a bucket starts as soon as it is wholly final");
    mpitest_assert_all(ok, "every element summed over the ranks exactly once");
    // a micro-batch that only accumulates: no communication, nothing changed
    for (size_t k = 0; k < N; k++) grads[k] = value(d.rank, k);
    gradsync_begin(&g, 0);
    for (int l = LAYERS - 1; l >= 0; l--) gradsync_ready(&g, bounds[l], bounds[l + 1] - bounds[l]);
    gradsync_wait(&g);
    ok = g.launched == 0;
    for (size_t k = 0; k < N; k++)
        if (grads[k] != value(d.rank, k)) ok = 0;
    mpitest_assert_all(ok, "accumulating micro-batch left untouched");
    gradsync_free(&g);
}

// The slices of every micro-batch j and rank r (in that order) of n samples over W ranks
// must run 0..n without a gap or an overlap.
static void check_slices(int64_t n, int W, int accum) {
    Config c = {0};
    c.accum = accum;
    c.batch = (int)n;
    int64_t next = 0;
    for (int j = 0; j < accum; j++)
        for (int r = 0; r < W; r++) {
            Dist d = {.rank = r, .world = W};
            int64_t lo, hi;
            stepper_slice(&d, &c, n, j, &lo, &hi);
            assert_int_equal(lo, next);
            assert_true(hi >= lo);
            assert_true(hi - lo <= stepper_max_local(&d, &c));
            next = hi;
        }
    assert_int_equal(next, n);
}

static void test_slices_partition(void **state) {
    (void)state;
    const int64_t ns[] = {0, 1, 2, 3, 5, 7, 10, 31, 64, 100, 257};
    const int worlds[] = {1, 2, 3, 4, 5, 8, 16};
    for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
        for (size_t w = 0; w < sizeof worlds / sizeof *worlds; w++)
            for (int accum = 1; accum <= 4; accum++) check_slices(ns[a], worlds[w], accum);
    // n = 3 over 4 ranks: one rank gets nothing
    Config c = {0};
    c.accum = 1;
    int64_t lo, hi;
    stepper_slice(&(Dist){.rank = 0, .world = 4}, &c, 3, 0, &lo, &hi);
    assert_int_equal(hi - lo, 0);
}

// What this job's ranks compute for themselves, gathered in rank order, is the partition.
static void test_slices_of_this_job(void **state) {
    (void)state;
    Dist d = world_dist();
    int W = d.world, ok = 1;
    Config c = {0};
    c.accum = 3;
    const int64_t n = 37;  // divisible by neither 2, 3 nor 4
    int64_t *all = malloc((size_t)W * 2 * sizeof *all);
    assert_non_null(all);
    int64_t next = 0;
    for (int j = 0; j < c.accum; j++) {
        int64_t mine[2];
        stepper_slice(&d, &c, n, j, &mine[0], &mine[1]);
        MPI_Allgather(mine, 2, MPI_INT64_T, all, 2, MPI_INT64_T, MPI_COMM_WORLD);
        for (int r = 0; r < W; r++) {
            if (all[2 * r] != next || all[2 * r + 1] < next) ok = 0;
            next = all[2 * r + 1];
        }
    }
    free(all);
    mpitest_assert_all(ok && next == n, "the ranks' slices partition the batch in order");
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket_placement),
        cmocka_unit_test(test_reduce_once_in_order),
        cmocka_unit_test(test_slices_partition),
        cmocka_unit_test(test_slices_of_this_job),
    };
    return mpitest_run("mpi_test_gradsync", tests, sizeof tests / sizeof *tests, argc, argv);
}
