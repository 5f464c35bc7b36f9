// test_core_batchnorm.c: the batchnorm layer (core/batchnorm.c).
// - Finite-difference gradchecks (train, (C,H,W) and (D); eval; ghost batches), with the
//   harness idea of test_core_layers.c: L = sum r_i y_i, central differences, h = 1e-2,
//   agreement to 2e-3 of the gradient's largest entry.
// - PyTorch (fixtures/torch_reference.h, case (j)): 3 train steps of BatchNorm2d/1d: the last
//   output and gradients, running statistics (unbiased running_var) and num_batches_tracked;
//   eval mode; ghost batches. Tolerances as test_core_torch.c: rtol 1e-5 and atol 1e-5 of
//   the array's largest entry (the statistics are reduced in a different order than torch's).
// - The seam with dist/: two layer instances on two shards of a batch, run in two threads
//   whose reducer meets in a mailbox and combines with bn_stats_combine, must reproduce the
//   single-instance full batch (outputs, input gradients, running statistics, and, summed as
//   the all-reduce would, the parameter gradients). Even, uneven and empty shards.
// - The reducer is called once per forward and once per backward in train mode, never in eval
//   mode or with ghost batches.
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/kernels.h"
#include "core/layer.h"
#include "core/model.h"
#include "core/philox.h"
#include "bnharness.h"
#include "checkclose.h"
#include "gradcheck.h"
#include "fixtures/torch_reference.h"

#define LEN(a) (sizeof(a) / sizeof((a)[0]))

// A central-difference gradcheck (gradcheck.h) of a batchnorm layer: parameters in
// [-1.5, 1.5), running statistics (read in eval mode) away from 0 and 1, input channels off
// zero mean.
static void gradcheck(const LayerSpec *spec, Shape in, int B, int train) {
    Harness h;
    harness_init(&h, spec, in, B);
    size_t n = h.nin, np = h.t.n_trainable;
    for (size_t i = 0; i < np; i++) h.params[i] = 1.5f * urand((uint32_t)i, 11);
    for (int c = 0; c < in.d[0]; c++) {
        h.bufs[h.l.poff[BN_RMEAN] + c] = 0.3f * urand((uint32_t)c, 12);
        h.bufs[h.l.poff[BN_RVAR] + c] = 0.5f + 0.4f * urand((uint32_t)c, 13);
    }
    StepCtx c = {.train = train};
    float *x = malloc(n * sizeof(float)), *dx = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = 1.5f * urand((uint32_t)i, 33) + 0.2f * (float)(i % 3);
    gradcheck_run(&h, x, dx, &c);
    free(x), free(dx);
    harness_free(&h);
}

static void test_gradcheck_train(void **state) {
    (void)state;
    LayerSpec s = bn_spec(0.1f, 0);
    gradcheck(&s, (Shape){3, {3, 2, 3}}, 4, 1);
    gradcheck(&s, (Shape){1, {5}}, 6, 1);
}

static void test_gradcheck_eval(void **state) {
    (void)state;
    LayerSpec s = bn_spec(0.1f, 0);
    gradcheck(&s, (Shape){3, {3, 2, 3}}, 3, 0);
    gradcheck(&s, (Shape){1, {5}}, 4, 0);
}

static void test_gradcheck_ghost(void **state) {
    (void)state;
    LayerSpec s = bn_spec(0.1f, 2);
    gradcheck(&s, (Shape){3, {2, 2, 3}}, 5, 1);  // chunks of 2, 2, 1
    s.ghost = 3;
    gradcheck(&s, (Shape){1, {4}}, 8, 1);  // chunks of 3, 3, 2
    s.ghost = 100;
    gradcheck(&s, (Shape){1, {4}}, 5, 1);  // one chunk: the whole batch
}

// ---- PyTorch ----

static void check_torch(const char *what, const float *got, const float *want, size_t n) {
    check_close(what, got, want, n, 1e-5, 1e-5 * max_abs(want, n));
}

typedef struct {
    Shape in;
    int B, ghost;
    float momentum;
    const float *w, *b, *x, *dy, *y, *dx, *dw, *db, *rmean, *rvar;
    int steps, nbt;
    const float *ex, *ey, *edx, *edw, *edb;  // eval mode, NULL for none
} TorchCase;

static void run_torch(const TorchCase *tc) {
    BnHarness h;
    LayerSpec s = bn_spec(tc->momentum, tc->ghost);
    bn_harness_init(&h, &s, tc->in, tc->B);
    size_t n = shape_numel(tc->in) * (size_t)tc->B;
    memcpy(bn_param(&h, BN_W), tc->w, (size_t)h.C * sizeof(float));
    memcpy(bn_param(&h, BN_B), tc->b, (size_t)h.C * sizeof(float));
    float *y = malloc(n * sizeof(float)), *dx = malloc(n * sizeof(float));
    StepCtx c = {.train = 1};
    for (int st = 0; st < tc->steps; st++) {
        memset(h.dparams, 0, h.t.n_trainable * sizeof(float));
        bn_fwd(&h, y, tc->x + (size_t)st * n, &c, tc->B);
        bn_bwd(&h, dx, tc->dy, tc->x + (size_t)st * n, y, &c, tc->B);
    }
    check_torch("y", y, tc->y, n);
    check_torch("dx", dx, tc->dx, n);
    check_torch("dweight", bn_grad(&h, BN_W), tc->dw, (size_t)h.C);
    check_torch("dbias", bn_grad(&h, BN_B), tc->db, (size_t)h.C);
    check_torch("running_mean", bn_buf(&h, BN_RMEAN), tc->rmean, (size_t)h.C);
    check_torch("running_var", bn_buf(&h, BN_RVAR), tc->rvar, (size_t)h.C);
    assert_int_equal((int)bn_buf(&h, BN_NBT)[0], tc->nbt);
    if (tc->ex) {
        c.train = 0;
        memset(h.dparams, 0, h.t.n_trainable * sizeof(float));
        bn_fwd(&h, y, tc->ex, &c, tc->B);
        bn_bwd(&h, dx, tc->dy, tc->ex, y, &c, tc->B);
        check_torch("eval y", y, tc->ey, n);
        check_torch("eval dx", dx, tc->edx, n);
        check_torch("eval dweight", bn_grad(&h, BN_W), tc->edw, (size_t)h.C);
        check_torch("eval dbias", bn_grad(&h, BN_B), tc->edb, (size_t)h.C);
        assert_int_equal((int)bn_buf(&h, BN_NBT)[0], tc->nbt);  // eval leaves the statistics alone
        check_torch("eval running_var", bn_buf(&h, BN_RVAR), tc->rvar, (size_t)h.C);
    }
    free(y), free(dx);
    bn_harness_free(&h);
}

static void test_torch_batchnorm2d(void **state) {
    (void)state;
    TorchCase tc = {(Shape){3, {3, 4, 5}}, 6, 0, 0.2f, bn2d_w, bn2d_b, bn2d_x, bn2d_dy,
                    bn2d_y, bn2d_dx, bn2d_dw, bn2d_db, bn2d_rmean, bn2d_rvar, BN_STEPS,
                    BN2D_NBT, bn2d_eval_x, bn2d_eval_y, bn2d_eval_dx, bn2d_eval_dw,
                    bn2d_eval_db};
    assert_int_equal(LEN(bn2d_x), BN_STEPS * 6 * 3 * 4 * 5);
    run_torch(&tc);
}

static void test_torch_batchnorm1d(void **state) {
    (void)state;
    TorchCase tc = {(Shape){1, {4}}, 5, 0, 0.1f, bn1d_w, bn1d_b, bn1d_x, bn1d_dy, bn1d_y,
                    bn1d_dx, bn1d_dw, bn1d_db, bn1d_rmean, bn1d_rvar, BN_STEPS, BN1D_NBT,
                    bn1d_eval_x, bn1d_eval_y, bn1d_eval_dx, bn1d_eval_dw, bn1d_eval_db};
    assert_int_equal(LEN(bn1d_x), BN_STEPS * 5 * 4);
    run_torch(&tc);
}

static void test_torch_ghost(void **state) {
    (void)state;
    TorchCase tc = {(Shape){3, {2, 3, 3}}, 7, BNG_GHOST, 0.1f, bng_w, bng_b, bng_x, bng_dy,
                    bng_y, bng_dx, bng_dw, bng_db, bng_rmean, bng_rvar, 1, BNG_NBT,
                    NULL, NULL, NULL, NULL, NULL};
    assert_int_equal(BNG_NBT, 3);  // chunks of 3, 3, 1
    run_torch(&tc);
}

// ---- Chan's combine ----

static void test_stats_combine(void **state) {
    (void)state;
    enum { C = 2, HW = 3, B = 7 };
    float x[B * C * HW];
    for (size_t i = 0; i < LEN(x); i++) x[i] = 100.0f + 3.0f * urand((uint32_t)i, 44);
    double full[3 * C], a[3 * C], b[3 * C];
    batchnorm_stats(full, x, B, C, HW);
    // the direct two-pass statistics in double
    for (int c = 0; c < C; c++) {
        double s = 0, q = 0;
        for (int k = 0; k < B; k++)
            for (int i = 0; i < HW; i++) s += x[(k * C + c) * HW + i];
        double m = s / (B * HW);
        for (int k = 0; k < B; k++)
            for (int i = 0; i < HW; i++) q += pow(x[(k * C + c) * HW + i] - m, 2);
        assert_true(full[c] == B * HW);
        assert_true(fabs(full[C + c] - m) < 1e-12 * fabs(m));
        assert_true(fabs(full[2 * C + c] - q) < 1e-9 * q);
    }
    for (int split = 0; split <= B; split++) {
        batchnorm_stats(a, x, split, C, HW);
        batchnorm_stats(b, x + split * C * HW, B - split, C, HW);
        if (split == 0) {  // an empty side: count 0, and nothing that is not finite
            for (int i = 0; i < 3 * C; i++) assert_true(a[i] == 0.0);
        }
        double ab[3 * C], ba[3 * C];
        memcpy(ab, a, sizeof ab), memcpy(ba, b, sizeof ba);
        bn_stats_combine(ab, b, C);
        bn_stats_combine(ba, a, C);
        for (int i = 0; i < 3 * C; i++) {
            double tol = 1e-10 * fabs(full[i]) + 1e-12;
            if (!(fabs(ab[i] - full[i]) <= tol) || !(fabs(ba[i] - full[i]) <= tol))
                fail_msg("split %d, entry %d: %.17g / %.17g vs %.17g", split, i, ab[i], ba[i],
                         full[i]);
        }
    }
    // count 0 on a side with garbage mean/M2 (as an uninitialized peer might send)
    double z[3 * C] = {0, 0, 5.0, 7.0, 9.0, 11.0}, f[3 * C];
    memcpy(f, full, sizeof f);
    bn_stats_combine(f, z, C);
    assert_memory_equal(f, full, sizeof f);
    memcpy(f, z, sizeof f);
    bn_stats_combine(f, full, C);
    assert_memory_equal(f, full, sizeof f);
    double zz[3 * C] = {0}, e[3 * C] = {0};
    bn_stats_combine(e, zz, C);
    for (int i = 0; i < 3 * C; i++) assert_true(e[i] == 0.0);
}

// ---- the seam: two ranks as two threads ----

typedef struct {
    pthread_barrier_t bar;
    double *box[2];  // each rank's partial statistics, posted before the first barrier
    int calls[2][2];  // [rank][kind]
} Mailbox;

typedef struct {
    Mailbox *mb;
    int rank;
} RankCtx;

// What dist/ does: every rank posts its partials, then all combine them in rank order (so
// every rank gets bit-identical results), then wait until nobody reads the boxes any more.
static int mailbox_reduce(void *ctx, int layer_id, StatsKind kind, double *stats, int nchan) {
    RankCtx *r = ctx;
    Mailbox *mb = r->mb;
    (void)layer_id;
    mb->calls[r->rank][kind]++;
    int n = (kind == STATS_BN_FORWARD ? 3 : 2) * nchan;
    double local[64];
    assert_true(n <= 64);
    mb->box[r->rank] = stats;
    pthread_barrier_wait(&mb->bar);
    memcpy(local, mb->box[0], (size_t)n * sizeof(double));
    if (kind == STATS_BN_FORWARD)
        bn_stats_combine(local, mb->box[1], nchan);
    else
        for (int i = 0; i < n; i++) local[i] += mb->box[1][i];
    pthread_barrier_wait(&mb->bar);
    memcpy(stats, local, (size_t)n * sizeof(double));
    return 0;
}

typedef struct {
    BnHarness *h;
    RankCtx rc;
    const float *x, *dy;
    float *y, *dx;
    int B, steps;
} RankJob;

static void *rank_main(void *arg) {
    RankJob *j = arg;
    StepCtx c = {.train = 1, .reduce_stats = mailbox_reduce, .reduce_ctx = &j->rc};
    for (int s = 0; s < j->steps; s++) {
        bn_fwd(j->h, j->y, j->x, &c, j->B);
        bn_bwd(j->h, j->dx, j->dy, j->x, j->y, &c, j->B);
    }
    return NULL;
}

static void seam(Shape in, int B, int split) {
    const int steps = 2;
    LayerSpec s = bn_spec(0.1f, 0);
    size_t per = shape_numel(in), n = per * (size_t)B;
    float *x = malloc(n * sizeof(float)), *dy = malloc(n * sizeof(float));
    float *y = malloc(n * sizeof(float)), *dx = malloc(n * sizeof(float));
    float *y2 = malloc(n * sizeof(float)), *dx2 = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        x[i] = 2.0f * urand((uint32_t)i, 55) + 5.0f * (float)((i / per) % 2);
        dy[i] = urand((uint32_t)i, 66);
    }
    BnHarness full, part[2];
    bn_harness_init(&full, &s, in, B);
    for (int r = 0; r < 2; r++) bn_harness_init(&part[r], &s, in, B);
    for (int k = 0; k < 2; k++)
        for (int c = 0; c < full.C; c++) {
            float v = 1.0f + 0.5f * urand((uint32_t)c, 77 + k);
            bn_param(&full, k)[c] = bn_param(&part[0], k)[c] = bn_param(&part[1], k)[c] = v;
        }
    StepCtx c = {.train = 1};
    for (int st = 0; st < steps; st++) {
        bn_fwd(&full, y, x, &c, B);
        bn_bwd(&full, dx, dy, x, y, &c, B);
    }

    Mailbox mb = {0};
    pthread_barrier_init(&mb.bar, NULL, 2);
    RankJob jobs[2] = {
        {&part[0], {&mb, 0}, x, dy, y2, dx2, split, steps},
        {&part[1], {&mb, 1}, x + per * split, dy + per * split, y2 + per * split,
         dx2 + per * split, B - split, steps},
    };
    pthread_t th[2];
    for (int r = 0; r < 2; r++) assert_int_equal(pthread_create(&th[r], NULL, rank_main, &jobs[r]), 0);
    for (int r = 0; r < 2; r++) pthread_join(th[r], NULL);
    pthread_barrier_destroy(&mb.bar);
    for (int r = 0; r < 2; r++) {
        assert_int_equal(mb.calls[r][STATS_BN_FORWARD], steps);
        assert_int_equal(mb.calls[r][STATS_BN_BACKWARD], steps);
    }

    check_close("y (sharded)", y2, y, n, 1e-6, 1e-6);
    check_close("dx (sharded)", dx2, dx, n, 1e-6, 1e-6 * max_abs(dx, n));
    int C = full.C;
    for (int r = 0; r < 2; r++) {
        check_close("running_mean", bn_buf(&part[r], BN_RMEAN), bn_buf(&full, BN_RMEAN), (size_t)C, 1e-6, 1e-7);
        check_close("running_var", bn_buf(&part[r], BN_RVAR), bn_buf(&full, BN_RVAR), (size_t)C, 1e-6, 1e-7);
        assert_true(bn_buf(&part[r], BN_NBT)[0] == (float)steps);
    }
    // parameter gradients are local sums: the all-reduce adds the ranks' up to the full one
    float dsum[2 * 64];
    assert_true(2 * C <= 64);
    for (int i = 0; i < 2 * C; i++) dsum[i] = part[0].dparams[i] + part[1].dparams[i];
    check_close("dweight,dbias (summed)", dsum, full.dparams, (size_t)(2 * C), 1e-5,
                1e-6 * max_abs(full.dparams, (size_t)(2 * C)));
    for (int r = 0; r < 2; r++) bn_harness_free(&part[r]);
    bn_harness_free(&full);
    free(x), free(dy), free(y), free(dx), free(y2), free(dx2);
}

static void test_seam_even(void **state) {
    (void)state;
    seam((Shape){3, {3, 4, 5}}, 8, 4);
    seam((Shape){1, {6}}, 8, 4);
}

static void test_seam_uneven(void **state) {
    (void)state;
    seam((Shape){3, {3, 4, 5}}, 8, 5);
    seam((Shape){1, {6}}, 8, 3);
}

static void test_seam_empty_shard(void **state) {
    (void)state;
    seam((Shape){3, {3, 4, 5}}, 8, 0);
    seam((Shape){1, {6}}, 8, 8);
}

// ---- how often the reducer is called ----

typedef struct {
    int calls[2];
    int last_layer, last_nchan;
} Counter;

static int count_reduce(void *ctx, int layer_id, StatsKind kind, double *stats, int nchan) {
    Counter *k = ctx;
    (void)stats;
    k->calls[kind]++;
    k->last_layer = layer_id;
    k->last_nchan = nchan;
    return 0;
}

static void count_calls(int ghost, int train, int want) {
    BnHarness h;
    LayerSpec s = bn_spec(0.1f, ghost);
    Shape in = {3, {3, 2, 2}};
    int B = 5;
    bn_harness_init(&h, &s, in, B);
    size_t n = shape_numel(in) * (size_t)B;
    float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float));
    float *dx = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = urand((uint32_t)i, 88);
    Counter k = {{0, 0}, 0, 0};
    StepCtx c = {.train = train, .reduce_stats = count_reduce, .reduce_ctx = &k};
    bn_fwd(&h, y, x, &c, B);
    assert_int_equal(k.calls[STATS_BN_FORWARD], want);
    assert_int_equal(k.calls[STATS_BN_BACKWARD], 0);
    bn_bwd(&h, dx, y, x, y, &c, B);
    assert_int_equal(k.calls[STATS_BN_FORWARD], want);
    assert_int_equal(k.calls[STATS_BN_BACKWARD], want);
    bn_bwd(&h, NULL, y, x, y, &c, B);  // no input gradient (a first layer): still collective
    assert_int_equal(k.calls[STATS_BN_BACKWARD], 2 * want);
    if (want) assert_int_equal(k.last_layer, h.l.id), assert_int_equal(k.last_nchan, 3);
    free(x), free(y), free(dx);
    bn_harness_free(&h);
}

static void test_reducer_calls(void **state) {
    (void)state;
    count_calls(0, 1, 1);  // train: once per forward, once per backward
    count_calls(0, 0, 0);  // eval: never
    count_calls(2, 1, 0);  // ghost batches are local: never
}

// A batch that is empty everywhere (B = 0, no reducer): no NaN in the running statistics.
static void test_empty_batch(void **state) {
    (void)state;
    BnHarness h;
    LayerSpec s = bn_spec(0.1f, 0);
    bn_harness_init(&h, &s, (Shape){1, {3}}, 1);
    float x[1], y[1], dx[1];
    StepCtx c = {.train = 1};
    bn_fwd(&h, y, x, &c, 0);
    bn_bwd(&h, dx, y, x, y, &c, 0);
    for (int i = 0; i < 3; i++) {
        assert_true(bn_buf(&h, BN_RMEAN)[i] == 0.0f);
        assert_true(bn_buf(&h, BN_RVAR)[i] == 1.0f);
        assert_true(bn_grad(&h, BN_W)[i] == 0.0f && bn_grad(&h, BN_B)[i] == 0.0f);
    }
    bn_harness_free(&h);
}

// PreciseBN: after K batches from num_batches_tracked = 0, the running statistics are the
// plain average of the K batch means and unbiased variances, whatever they held before and
// whatever the momentum; with ghost batches every chunk counts as one batch.
static void precise(int ghost) {
    enum { K = 5, Bt = 6, C = 3, HW = 4 };
    BnHarness h;
    LayerSpec s = bn_spec(0.1f, ghost);
    bn_harness_init(&h, &s, (Shape){3, {C, 2, 2}}, Bt);
    for (int c = 0; c < C; c++) bn_buf(&h, BN_RMEAN)[c] = 100.0f, bn_buf(&h, BN_RVAR)[c] = 50.0f;
    bn_buf(&h, BN_NBT)[0] = 0.0f;
    int g = ghost ? ghost : Bt, chunks = 0;
    double want_m[C] = {0}, want_v[C] = {0};
    float x[Bt * C * HW], y[Bt * C * HW];
    StepCtx ctx = {.train = 1, .precise_bn = 1};
    for (int k = 0; k < K; k++) {
        for (int i = 0; i < Bt * C * HW; i++) x[i] = 3.0f * urand((uint32_t)(k * 1000 + i), 31) + (float)k;
        for (int b0 = 0; b0 < Bt; b0 += g, chunks++)
            for (int c = 0; c < C; c++) {  // the chunk's mean and unbiased variance, in double
                double sum = 0, sq = 0;
                int n = (Bt - b0 < g ? Bt - b0 : g) * HW;
                for (int b = b0; b < b0 + n / HW; b++)
                    for (int j = 0; j < HW; j++) sum += x[(b * C + c) * HW + j];
                double m = sum / n;
                for (int b = b0; b < b0 + n / HW; b++)
                    for (int j = 0; j < HW; j++) sq += pow(x[(b * C + c) * HW + j] - m, 2);
                want_m[c] += m;
                want_v[c] += sq / (n - 1);
            }
        bn_fwd(&h, y, x, &ctx, Bt);
    }
    assert_true(bn_buf(&h, BN_NBT)[0] == (float)chunks);
    for (int c = 0; c < C; c++) {
        if (fabs(bn_buf(&h, BN_RMEAN)[c] - want_m[c] / chunks) > 1e-5 ||
            fabs(bn_buf(&h, BN_RVAR)[c] - want_v[c] / chunks) > 1e-5)
            fail_msg("ghost %d, channel %d: running %g %g, want %g %g", ghost, c,
                     bn_buf(&h, BN_RMEAN)[c], bn_buf(&h, BN_RVAR)[c], want_m[c] / chunks, want_v[c] / chunks);
    }
    bn_harness_free(&h);
}

static void test_precise_bn(void **state) {
    (void)state;
    precise(0);
    precise(4);  // chunks of 4 and 2
}

// ---- in a model: the parameter table, the defaults, the planned save area ----

static void test_model_table_and_plan(void **state) {
    (void)state;
    LayerSpec s = bn_spec(0.1f, 2);
    Model m;
    Err e = {0};
    assert_int_equal(model_build(&m, &s, 1, (Shape){1, {4}}, 4, &e), ERR_OK);
    const char *names[] = {"bn.weight", "bn.bias", "bn.running_mean", "bn.running_var",
                           "bn.num_batches_tracked"};
    assert_int_equal(m.table.n, 5);
    for (int i = 0; i < 5; i++) {
        assert_string_equal(m.table.p[i].name, names[i]);
        assert_int_equal(m.table.p[i].kind, i < 2 ? PARAM_TRAINABLE : PARAM_BUFFER);
        assert_int_equal(m.table.p[i].decay, 0);
    }
    assert_int_equal(m.table.p[4].ndim, 0);  // a scalar, as torch's state_dict has it
    assert_int_equal(m.table.p[4].numel, 1);
    assert_int_equal(m.table.p[1].ndim, 1);
    assert_int_equal(m.table.p[1].shape[0], 4);
    assert_int_equal(m.table.n_trainable, 8);
    assert_int_equal(m.table.n_buffer, 9);
    assert_int_equal(model_plan(&m, 5, &e), ERR_OK);
    model_init(&m, 3);
    for (int i = 0; i < 4; i++) {
        assert_true(m.params[i] == 1.0f && m.params[4 + i] == 0.0f);
        assert_true(m.bufs[i] == 0.0f && m.bufs[4 + i] == 1.0f);
    }
    assert_true(m.bufs[8] == 0.0f);
    float x[5 * 4], dl[5 * 4];
    for (int i = 0; i < 20; i++) x[i] = urand((uint32_t)i, 99), dl[i] = urand((uint32_t)i, 98);
    StepCtx c = {.train = 1};
    const float *y = model_forward(&m, x, 5, &c);  // ghost 2: chunks 2, 2, 1 in the save area
    for (int i = 0; i < 20; i++) assert_true(isfinite(y[i]));
    model_backward(&m, x, dl, 5, &c);
    assert_true(m.bufs[8] == 3.0f);
    for (int i = 0; i < 8; i++) assert_true(isfinite(m.grads[i]));
    model_free(&m);
}

static void test_setup_errors(void **state) {
    (void)state;
    Layer l;
    ParamTable t = {0};
    Err e = {0};
    LayerSpec bad[3] = {bn_spec(0.1f, 0), bn_spec(1.5f, 0), bn_spec(0.1f, -1)};
    bad[0].eps = 0.0f;
    for (int i = 0; i < 3; i++) {
        memset(&l, 0, sizeof l);
        l.spec = bad[i];
        l.kind = layer_kind_find("batchnorm");
        assert_int_equal(l.kind->setup(&l, (Shape){1, {4}}, &t, &e), ERR_INPUT);
    }
    memset(&l, 0, sizeof l);
    l.spec = bn_spec(0.1f, 0);
    l.kind = layer_kind_find("batchnorm");
    assert_int_equal(l.kind->setup(&l, (Shape){2, {4, 3}}, &t, &e), ERR_INPUT);
    param_table_free(&t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradcheck_train),
        cmocka_unit_test(test_precise_bn),
        cmocka_unit_test(test_gradcheck_eval),
        cmocka_unit_test(test_gradcheck_ghost),
        cmocka_unit_test(test_torch_batchnorm2d),
        cmocka_unit_test(test_torch_batchnorm1d),
        cmocka_unit_test(test_torch_ghost),
        cmocka_unit_test(test_stats_combine),
        cmocka_unit_test(test_seam_even),
        cmocka_unit_test(test_seam_uneven),
        cmocka_unit_test(test_seam_empty_shard),
        cmocka_unit_test(test_reducer_calls),
        cmocka_unit_test(test_empty_batch),
        cmocka_unit_test(test_model_table_and_plan),
        cmocka_unit_test(test_setup_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
