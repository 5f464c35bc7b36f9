// mpi_test_bnsync.c: synchronized BatchNorm (dist/bnsync.c), run with 1, 2 and 4 ranks.
// A global batch of Bg samples is generated identically on every rank (Philox); each rank takes
// its contiguous slice (uneven splits and empty slices included) and runs two training steps of a
// batchnorm layer with reduce_stats = bnsync_reduce. The reference for a rank is the same layer
// with no reducer run on its BN group's rows together (every rank computes every group's), so:
// - bn.group 0: the whole batch; 1: the rank's own slice; 2, 3, 5: each group of consecutive
//   ranks' slices together (the last group smaller when world % k != 0; k > world: one group);
// - outputs and input gradients of the rank's rows match the reference's rows (rtol 1e-5);
//   running statistics match, and are bit-identical across the ranks of a group;
//   the parameter gradients summed over ranks (as the gradient all-reduce will) match the sum of
//   the groups' references;
// - the reducer itself, fed rank-specific partials, returns on every rank of a group exactly the
//   bits of folding the partials in rank order (forward with bn_stats_combine, backward summed);
// - it makes exactly one MPI call per forward and one per backward when the group has several
//   ranks, and none with bn.group 1 or in eval mode (MPI calls counted through the profiling
//   interface: this file defines the MPI_* collectives and forwards to PMPI_*);
// - no reduction allocates after the first step (or at all after bnsync_reserve);
// - bad bn.group values are refused.
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/kernels.h"
#include "core/layer.h"
#include "core/philox.h"
#include "bnharness.h"
#include "dist/bnsync.h"
#include "mpitest.h"

// ---- counting MPI calls through the profiling interface ----

static long g_mpi_calls;

int MPI_Allgather(const void *sb, int sc, MPI_Datatype st, void *rb, int rc, MPI_Datatype rt,
                  MPI_Comm comm) {
    g_mpi_calls++;
    return PMPI_Allgather(sb, sc, st, rb, rc, rt, comm);
}
int MPI_Allgatherv(const void *sb, int sc, MPI_Datatype st, void *rb, const int rcs[],
                   const int displs[], MPI_Datatype rt, MPI_Comm comm) {
    g_mpi_calls++;
    return PMPI_Allgatherv(sb, sc, st, rb, rcs, displs, rt, comm);
}
int MPI_Iallgather(const void *sb, int sc, MPI_Datatype st, void *rb, int rc, MPI_Datatype rt,
                   MPI_Comm comm, MPI_Request *req) {
    g_mpi_calls++;
    return PMPI_Iallgather(sb, sc, st, rb, rc, rt, comm, req);
}
int MPI_Allreduce(const void *sb, void *rb, int n, MPI_Datatype t, MPI_Op op, MPI_Comm comm) {
    g_mpi_calls++;
    return PMPI_Allreduce(sb, rb, n, t, op, comm);
}
int MPI_Iallreduce(const void *sb, void *rb, int n, MPI_Datatype t, MPI_Op op, MPI_Comm comm,
                   MPI_Request *req) {
    g_mpi_calls++;
    return PMPI_Iallreduce(sb, rb, n, t, op, comm, req);
}
int MPI_Reduce(const void *sb, void *rb, int n, MPI_Datatype t, MPI_Op op, int root,
               MPI_Comm comm) {
    g_mpi_calls++;
    return PMPI_Reduce(sb, rb, n, t, op, root, comm);
}
int MPI_Bcast(void *b, int n, MPI_Datatype t, int root, MPI_Comm comm) {
    g_mpi_calls++;
    return PMPI_Bcast(b, n, t, root, comm);
}
int MPI_Barrier(MPI_Comm comm) {
    g_mpi_calls++;
    return PMPI_Barrier(comm);
}
int MPI_Send(const void *b, int n, MPI_Datatype t, int dest, int tag, MPI_Comm comm) {
    g_mpi_calls++;
    return PMPI_Send(b, n, t, dest, tag, comm);
}
int MPI_Recv(void *b, int n, MPI_Datatype t, int src, int tag, MPI_Comm comm, MPI_Status *st) {
    g_mpi_calls++;
    return PMPI_Recv(b, n, t, src, tag, comm, st);
}
int MPI_Isend(const void *b, int n, MPI_Datatype t, int dest, int tag, MPI_Comm comm,
              MPI_Request *req) {
    g_mpi_calls++;
    return PMPI_Isend(b, n, t, dest, tag, comm, req);
}
int MPI_Irecv(void *b, int n, MPI_Datatype t, int src, int tag, MPI_Comm comm,
              MPI_Request *req) {
    g_mpi_calls++;
    return PMPI_Irecv(b, n, t, src, tag, comm, req);
}
int MPI_Sendrecv(const void *sb, int sc, MPI_Datatype st, int dest, int stag, void *rb, int rc,
                 MPI_Datatype rt, int src, int rtag, MPI_Comm comm, MPI_Status *status) {
    g_mpi_calls++;
    return PMPI_Sendrecv(sb, sc, st, dest, stag, rb, rc, rt, src, rtag, comm, status);
}

// ---- data and the ranks' layout ----

static float urand(uint32_t i, uint32_t salt) {
    philox_ctr r = philox4x32_10((philox_ctr){{i, salt, 0, 0}}, (philox_key){{5, 17}});
    return 2.0f * philox_unit(r.v[0]) - 1.0f;
}

// The global batch of step st: channels far from zero mean and of different spreads.
static void global_batch(float *x, float *dy, Shape in, int Bg, int st) {
    size_t per = shape_numel(in);
    int C = in.d[0];
    size_t HW = per / (size_t)C;
    for (size_t i = 0; i < per * (size_t)Bg; i++) {
        int c = (int)((i / HW) % (size_t)C);
        x[i] = 3.0f + 0.7f * (float)c + (1.0f + 0.3f * (float)c) * urand((uint32_t)i, 100 + st);
        dy[i] = urand((uint32_t)i, 200 + st) + 0.1f * (float)c;
    }
}

// Rank r's contiguous slice of Bg samples over `world` ranks: the first Bg % world get one more.
static void slice_of(int Bg, int world, int r, int *lo, int *n) {
    int base = Bg / world, rem = Bg % world;
    *n = base + (r < rem);
    *lo = r * base + (r < rem ? r : rem);
}

// The ranks [*r0, *r1) of rank r's BN group, written out here independently of bnsync.c.
static void group_of(int group, int world, int r, int *r0, int *r1) {
    if (group == 0) {
        *r0 = 0, *r1 = world;
    } else {
        *r0 = r / group * group;
        *r1 = *r0 + group < world ? *r0 + group : world;
    }
}

// The rows [*lo, *lo + *n) of the ranks [r0, r1) together (their slices are consecutive).
static void group_rows(int Bg, int world, int r0, int r1, int *lo, int *n) {
    int l, m;
    slice_of(Bg, world, r0, lo, &m);
    *n = 0;
    for (int q = r0; q < r1; q++) slice_of(Bg, world, q, &l, &m), *n += m;
}

static Dist world_dist(void) {
    Dist d = {0};
    d.comm = MPI_COMM_WORLD;
    d.rank = mpitest_rank();
    d.world = mpitest_world();
    d.local_rank = d.rank, d.local_size = d.world;
    return d;
}

// ---- a single batchnorm layer (bnharness.h) ----

// bn.momentum 0.1, no ghost batches; weight and bias away from 1 and 0.
static void harness_init(BnHarness *h, Shape in, int max_batch) {
    LayerSpec s = bn_spec(0.1f, 0);
    bn_harness_init(h, &s, in, max_batch);
    for (int c = 0; c < h->C; c++) {
        bn_param(h, BN_W)[c] = 1.0f + 0.5f * urand((uint32_t)c, 11);
        bn_param(h, BN_B)[c] = 0.3f * urand((uint32_t)c, 12);
    }
}

// What one run leaves: the last step's outputs, input and parameter gradients, and the running
// statistics and num_batches_tracked.
typedef struct {
    float *y, *dx;
    float dparams[64];  // [dweight (C) | dbias (C)]
    float rstats[64];   // [running_mean (C) | running_var (C)]
    float nbt;
} Result;

enum { STEPS = 2 };

// Runs STEPS training steps of a fresh layer on rows [lo, lo + n) of each step's global batch,
// with reducer fn (NULL: this process only). Fills r (y, dx of n rows, allocated here).
static void run_rows(Result *r, Shape in, int Bg, int lo, int n, StatsReduceFn fn, void *ctx) {
    size_t per = shape_numel(in), N = per * (size_t)Bg;
    float *x = malloc((N + 1) * sizeof(float)), *dy = malloc((N + 1) * sizeof(float));
    r->y = malloc((per * (size_t)n + 1) * sizeof(float));
    r->dx = malloc((per * (size_t)n + 1) * sizeof(float));
    assert_true(x && dy && r->y && r->dx);
    BnHarness h;
    harness_init(&h, in, n);
    assert_true(2 * h.C <= 64);
    StepCtx c = {.train = 1, .reduce_stats = fn, .reduce_ctx = ctx};
    for (int st = 0; st < STEPS; st++) {
        global_batch(x, dy, in, Bg, st);
        const float *xs = x + per * (size_t)lo, *dys = dy + per * (size_t)lo;
        memset(h.dparams, 0, h.t.n_trainable * sizeof(float));
        h.l.kind->forward(&h.l, r->y, xs, h.params, h.bufs, &c, n);
        h.l.kind->backward(&h.l, r->dx, h.dparams, dys, xs, r->y, h.params, &c, n);
    }
    memcpy(r->dparams, h.dparams + h.l.poff[BN_W], (size_t)h.C * sizeof(float));
    memcpy(r->dparams + h.C, h.dparams + h.l.poff[BN_B], (size_t)h.C * sizeof(float));
    memcpy(r->rstats, bn_buf(&h, BN_RMEAN), (size_t)h.C * sizeof(float));
    memcpy(r->rstats + h.C, bn_buf(&h, BN_RVAR), (size_t)h.C * sizeof(float));
    r->nbt = bn_buf(&h, BN_NBT)[0];
    bn_harness_free(&h);
    free(x), free(dy);
}

static void result_free(Result *r) { free(r->y), free(r->dx); }

// 1 if got matches want within rtol and atol relative to want's largest entry; else prints the
// first mismatch (with the rank) to stderr and returns 0.
static int close_to(const char *what, const char *label, const float *got, const float *want,
                    size_t n, double rtol, double atol_rel) {
    double scale = 0.0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs((double)want[i]));
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        if (!(d <= rtol * fabs((double)want[i]) + atol_rel * scale)) {
            fprintf(stderr, "rank %d: %s: %s[%zu]: got %.9g, want %.9g\n", mpitest_rank(), label,
                    what, i, (double)got[i], (double)want[i]);
            return 0;
        }
    }
    return 1;
}

// ---- one case: a shape, a global batch size and a bn.group ----

static void check_case(Shape in, int Bg, int group) {
    int rank = mpitest_rank(), world = mpitest_world(), C = in.d[0];
    size_t per = shape_numel(in);
    char label[160];
    snprintf(label, sizeof label, "shape (%d%s), Bg %d, bn.group %d, %d ranks", C,
             in.ndim == 3 ? ",H,W" : "", Bg, group, world);

    int lo, n, r0, r1, glo, gn;
    slice_of(Bg, world, rank, &lo, &n);
    group_of(group, world, rank, &r0, &r1);
    group_rows(Bg, world, r0, r1, &glo, &gn);

    Dist d = world_dist();
    BnSync s;
    Err e = {0};
    int ok = bnsync_init(&s, &d, group, &e) == ERR_OK;
    if (!ok) fprintf(stderr, "rank %d: %s: bnsync_init: %s\n", rank, label, e.msg);
    mpitest_assert_all(ok, "bnsync_init");
    ok = s.size == (group == 1 ? 1 : r1 - r0) && s.rank == (group == 1 ? 0 : rank - r0);
    if (!ok)
        fprintf(stderr, "rank %d: %s: group rank %d of %d, want %d of %d\n", rank, label, s.rank,
                s.size, rank - r0, r1 - r0);
    mpitest_assert_all(ok, "group membership");

    Result got, ref;
    run_rows(&got, in, Bg, lo, n, bnsync_reduce, &s);
    run_rows(&ref, in, Bg, glo, gn, NULL, NULL);  // the group's rows on one process
    const float *ry = ref.y + per * (size_t)(lo - glo), *rdx = ref.dx + per * (size_t)(lo - glo);
    size_t m = per * (size_t)n;
    ok = close_to("y", label, got.y, ry, m, 1e-5, 1e-6) &&
         close_to("dx", label, got.dx, rdx, m, 1e-5, 1e-6) &&
         close_to("running_mean,running_var", label, got.rstats, ref.rstats, (size_t)(2 * C),
                  1e-6, 1e-7);
    if (ok && got.nbt != (float)STEPS) {
        fprintf(stderr, "rank %d: %s: num_batches_tracked %g\n", rank, label, (double)got.nbt);
        ok = 0;
    }
    char what[256];
    snprintf(what, sizeof what, "%s: outputs, input gradients, running statistics", label);
    mpitest_assert_all(ok, what);

    // running statistics bit-identical across the ranks of the group
    float *all = malloc((size_t)world * 2 * (size_t)C * sizeof(float));
    assert_non_null(all);
    MPI_Allgather(got.rstats, 2 * C, MPI_FLOAT, all, 2 * C, MPI_FLOAT, MPI_COMM_WORLD);
    ok = 1;
    for (int q = r0; q < r1; q++)
        if (memcmp(all + (size_t)q * 2 * C, got.rstats, 2 * (size_t)C * sizeof(float)) != 0) {
            fprintf(stderr, "rank %d: %s: running statistics differ in their bits from rank %d\n",
                    rank, label, q);
            ok = 0;
        }
    snprintf(what, sizeof what, "%s: running statistics bit-identical in the group", label);
    mpitest_assert_all(ok, what);
    free(all);

    // parameter gradients: the ranks' local sums, summed over all ranks, are the sum over the
    // groups of each group's full gradient
    double mine[64], sum[64], want[64] = {0};
    for (int i = 0; i < 2 * C; i++) mine[i] = got.dparams[i];
    MPI_Allreduce(mine, sum, 2 * C, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    for (int q = 0; q < world;) {
        int q0, q1, l0, cnt;
        group_of(group, world, q, &q0, &q1);
        group_rows(Bg, world, q0, q1, &l0, &cnt);
        Result gr;
        run_rows(&gr, in, Bg, l0, cnt, NULL, NULL);
        for (int i = 0; i < 2 * C; i++) want[i] += gr.dparams[i];
        result_free(&gr);
        q = q1;
    }
    float fsum[64], fwant[64];
    for (int i = 0; i < 2 * C; i++) fsum[i] = (float)sum[i], fwant[i] = (float)want[i];
    ok = close_to("dweight,dbias summed over ranks", label, fsum, fwant, (size_t)(2 * C), 1e-5,
                  1e-6);
    snprintf(what, sizeof what, "%s: parameter gradients summed over ranks", label);
    mpitest_assert_all(ok, what);

    result_free(&got), result_free(&ref);
    bnsync_free(&s);
}

static const Shape SHAPES[] = {{3, {3, 4, 5}}, {1, {6}}};
// 10: uneven on 4 ranks (3,3,2,2); 8: even; 3: rank 3 of 4 empty; 2: a pair of 4 with nothing;
// 1: one sample in all, so the running variance must not move
static const int BATCHES[] = {10, 8, 3, 2, 1};

static void check_group(int group) {
    for (size_t i = 0; i < sizeof SHAPES / sizeof SHAPES[0]; i++)
        for (size_t j = 0; j < sizeof BATCHES / sizeof BATCHES[0]; j++)
            check_case(SHAPES[i], BATCHES[j], group);
}

static void test_group_all(void **state) {
    (void)state;
    check_group(0);
}

static void test_group_local(void **state) {
    (void)state;
    check_group(1);
}

static void test_group_pairs(void **state) {
    (void)state;
    check_group(2);
}

static void test_group_uneven_and_oversized(void **state) {
    (void)state;
    check_group(3);  // 4 ranks: {0,1,2} and {3}
    check_group(5);  // more than the ranks: one group of all
}

// ---- the reducer on its own: rank order, bit for bit ----

// Rank q's partials for `kind` over C channels: 3 + 5q + c samples in channel c, means of a
// different magnitude on each rank (so that folding in another order changes the bits), except
// on rank 2: no samples, and junk mean and M2 that must be ignored.
static void partials(double *p, int q, StatsKind kind, int C) {
    if (kind == STATS_BN_FORWARD)
        for (int c = 0; c < C; c++) {
            uint32_t i = (uint32_t)(q * 64 + c);
            p[c] = q == 2 ? 0.0 : 3.0 + 5.0 * q + c;
            p[C + c] = q == 2 ? 1e300 : 3.7 * (q + 1) * (q + 1) * (q + 1) + urand(i, 301);
            p[2 * C + c] = q == 2 ? -7.0 : 1.0 + fabs(urand(i, 302)) * (q + 1);
        }
    else
        for (int i = 0; i < 2 * C; i++)
            p[i] = urand((uint32_t)(q * 64 + i), 303) * (q + 1) * (q + 1) * 1.37;
}

static void test_reduce_rank_order(void **state) {
    (void)state;
    int rank = mpitest_rank(), world = mpitest_world();
    const int groups[] = {0, 1, 2, 3};
    for (size_t gi = 0; gi < sizeof groups / sizeof groups[0]; gi++) {
        int group = groups[gi], r0, r1;
        group_of(group, world, rank, &r0, &r1);
        Dist d = world_dist();
        BnSync s;
        Err e = {0};
        mpitest_assert_all(bnsync_init(&s, &d, group, &e) == ERR_OK, "bnsync_init");
        for (int kind = STATS_BN_FORWARD; kind <= STATS_BN_BACKWARD; kind++) {
            enum { C = 16 };
            double stats[3 * C], want[3 * C], p[3 * C];
            int per = (kind == STATS_BN_FORWARD ? 3 : 2) * C;
            partials(stats, rank, (StatsKind)kind, C);
            partials(want, r0, (StatsKind)kind, C);
            for (int q = r0 + 1; q < r1; q++) {
                partials(p, q, (StatsKind)kind, C);
                if (kind == STATS_BN_FORWARD)
                    bn_stats_combine(want, p, C);
                else
                    for (int i = 0; i < per; i++) want[i] += p[i];
            }
            bnsync_reduce(&s, 7, (StatsKind)kind, stats, C);
            int ok = memcmp(stats, want, (size_t)per * sizeof(double)) == 0;
            if (!ok)
                fprintf(stderr, "rank %d: bn.group %d, kind %d: not the rank-order fold\n", rank,
                        group, kind);
            char what[96];
            snprintf(what, sizeof what, "bn.group %d, kind %d: rank-order fold, bit for bit",
                     group, kind);
            mpitest_assert_all(ok, what);
        }
        bnsync_free(&s);
    }
}

// ---- how many MPI calls, and when ----

static void test_mpi_calls(void **state) {
    (void)state;
    int rank = mpitest_rank(), world = mpitest_world();
    Shape in = {3, {4, 3, 3}};
    int Bg = 7, lo, n;
    slice_of(Bg, world, rank, &lo, &n);
    size_t per = shape_numel(in), N = per * (size_t)Bg;
    float *x = malloc(N * sizeof(float)), *dy = malloc(N * sizeof(float));
    float *y = malloc(N * sizeof(float)), *dx = malloc(N * sizeof(float));
    float *y2 = malloc(N * sizeof(float)), *dx2 = malloc(N * sizeof(float));
    assert_true(x && dy && y && dx && y2 && dx2);
    global_batch(x, dy, in, Bg, 0);
    const float *xs = x + per * (size_t)lo, *dys = dy + per * (size_t)lo;
    const int groups[] = {0, 1, 2};
    for (size_t gi = 0; gi < sizeof groups / sizeof groups[0]; gi++) {
        int group = groups[gi], r0, r1;
        group_of(group, world, rank, &r0, &r1);
        long want_train = group != 1 && r1 - r0 > 1 ? 2 : 0;  // one per forward, one per backward
        Dist d = world_dist();
        BnSync s;
        Err e = {0};
        mpitest_assert_all(bnsync_init(&s, &d, group, &e) == ERR_OK, "bnsync_init");
        BnHarness h, ev;
        harness_init(&h, in, n);
        StepCtx c = {.train = 1, .reduce_stats = bnsync_reduce, .reduce_ctx = &s};
        long calls[3];
        for (int st = 0; st < 3; st++) {
            long before = g_mpi_calls;
            h.l.kind->forward(&h.l, y, xs, h.params, h.bufs, &c, n);
            h.l.kind->backward(&h.l, dx, h.dparams, dys, xs, y, h.params, &c, n);
            calls[st] = g_mpi_calls - before;
        }
        // eval mode, with the reducer still installed: no MPI at all, and the same result as a
        // layer with the same running statistics and no reducer
        harness_init(&ev, in, n);
        memcpy(ev.bufs, h.bufs, h.t.n_buffer * sizeof(float));
        c.train = 0;
        StepCtx c0 = {.train = 0};
        long before = g_mpi_calls;
        h.l.kind->forward(&h.l, y, xs, h.params, h.bufs, &c, n);
        h.l.kind->backward(&h.l, dx, h.dparams, dys, xs, y, h.params, &c, n);
        long eval_calls = g_mpi_calls - before;
        ev.l.kind->forward(&ev.l, y2, xs, ev.params, ev.bufs, &c0, n);
        ev.l.kind->backward(&ev.l, dx2, ev.dparams, dys, xs, y2, ev.params, &c0, n);
        int ok = eval_calls == 0;
        for (int st = 0; st < 3; st++) ok = ok && calls[st] == want_train;
        if (!ok)
            fprintf(stderr, "rank %d: bn.group %d: MPI calls per train step %ld %ld %ld (want %ld), "
                    "in eval %ld (want 0)\n", rank, group, calls[0], calls[1], calls[2],
                    want_train, eval_calls);
        char what[96];
        snprintf(what, sizeof what, "bn.group %d: MPI calls in train and eval mode", group);
        mpitest_assert_all(ok, what);
        ok = memcmp(y, y2, per * (size_t)n * sizeof(float)) == 0 &&
             memcmp(dx, dx2, per * (size_t)n * sizeof(float)) == 0;
        snprintf(what, sizeof what, "bn.group %d: eval mode is local BN with running statistics",
                 group);
        mpitest_assert_all(ok, what);
        bn_harness_free(&h), bn_harness_free(&ev);
        bnsync_free(&s);
    }
    free(x), free(dy), free(y), free(dx), free(y2), free(dx2);
}

// ---- no allocation after the first step ----

static void test_scratch_stable(void **state) {
    (void)state;
    int rank = mpitest_rank(), world = mpitest_world();
    Dist d = world_dist();
    for (int reserve = 0; reserve <= 1; reserve++) {
        BnSync s;
        Err e = {0};
        mpitest_assert_all(bnsync_init(&s, &d, 0, &e) == ERR_OK, "bnsync_init");
        if (reserve) mpitest_assert_all(bnsync_reserve(&s, 16, &e) == ERR_OK, "bnsync_reserve");
        double *g0 = s.gather, *a0 = s.acc;
        int ok = 1;
        double stats[3 * 16];
        const int chans[] = {4, 16, 8, 16, 4};  // the layers of a step, then the same again
        for (int st = 0; st < 3; st++)
            for (size_t k = 0; k < sizeof chans / sizeof chans[0]; k++) {
                for (int kind = 0; kind < 2; kind++) {
                    for (int i = 0; i < 3 * chans[k]; i++) stats[i] = i < chans[k] ? rank + 1 : 0.5;
                    bnsync_reduce(&s, (int)k + 1, (StatsKind)kind, stats, chans[k]);
                }
                if (st == 0 && !reserve) g0 = s.gather, a0 = s.acc;  // the first step may grow
                if ((st > 0 || reserve) && (s.gather != g0 || s.acc != a0)) ok = 0;
            }
        // a group of one rank never needs scratch; otherwise it holds the largest layer
        if (world == 1) ok = ok && s.gather == NULL && s.cap == 0;
        else ok = ok && s.cap == 16;
        char what[80];
        snprintf(what, sizeof what, "scratch unchanged after the first step (reserve %d)", reserve);
        mpitest_assert_all(ok, what);
        bnsync_free(&s);
    }
}

// ---- bad values ----

static void test_bad_group(void **state) {
    (void)state;
    Dist d = world_dist();
    BnSync s;
    Err e = {0};
    int ok = bnsync_init(&s, &d, -1, &e) == ERR_INPUT && strstr(e.msg, "bn.group") != NULL &&
             s.comm == MPI_COMM_NULL;
    bnsync_free(&s);
    BnSync z;
    memset(&z, 0, sizeof z);
    bnsync_free(&z);  // a zeroed one: no communicator to free
    mpitest_assert_all(ok, "bn.group -1 is refused with a message naming bn.group");
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_group_all),
        cmocka_unit_test(test_group_local),
        cmocka_unit_test(test_group_pairs),
        cmocka_unit_test(test_group_uneven_and_oversized),
        cmocka_unit_test(test_reduce_rank_order),
        cmocka_unit_test(test_mpi_calls),
        cmocka_unit_test(test_scratch_stable),
        cmocka_unit_test(test_bad_group),
    };
    return mpitest_run("bnsync", tests, sizeof tests / sizeof tests[0], argc, argv);
}
