// test_core_prof.c: the step profile (core/prof.h) that `regdist bench` prints as a roofline:
// off, kernels count nothing; on, a Winograd convolution counts exactly the FLOPs of its
// GEMMs in the Winograd domain (36 or 16 products per tile, not the direct convolution's 9
// per output), an elementwise pass the bytes it reads and writes, and a Seq puts a ReLU +
// Dropout2d pair's time under elementwise work, a handed chunk's bytes and seconds once, and a
// BatchNorm's reduction across ranks under communication; the MLP's layers (GELU, LayerNorm,
// flatten, dropout) count their bytes; prof_reset zeroes the counters.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/kernels.h"
#include "core/prof.h"
#include "core/seq.h"

enum { B = 2, C = 4, OC = 3, H = 8, W = 8 };

static void run_conv(int four) {
    static float x[B * C * H * W], y[B * OC * H * W], w[OC * C * 9], U[36 * OC * C];
    static float work[1 << 16];
    for (size_t i = 0; i < sizeof x / sizeof x[0]; i++) x[i] = (float)(i % 7) - 3.0f;
    for (size_t i = 0; i < sizeof w / sizeof w[0]; i++) w[i] = (float)(i % 5) - 2.0f;
    if (four) {
        assert_true(winograd4_work_floats(C, OC, H, W, B) <= sizeof work / sizeof work[0]);
        winograd4_filter(U, w, OC, C, 0);
        conv2d_winograd4_forward(y, work, B, U, x, NULL, B, C, H, W, OC);
    } else {
        assert_true(winograd_work_floats(C, OC, H, W, B) <= sizeof work / sizeof work[0]);
        winograd_filter(U, w, OC, C, 0);
        conv2d_winograd_forward(y, work, B, U, x, NULL, B, C, H, W, OC);
    }
}

static void test_off_counts_nothing(void **state) {
    (void)state;
    prof_enable(0);
    run_conv(1);
    float a[10] = {1, -1}, b[10];
    relu_forward(b, a, 10);
    assert_true(prof.gemm_flops == 0 && prof.elementwise_bytes == 0);
    for (int k = 0; k < PROF_KINDS; k++) assert_true(prof.seconds[k] == 0);
}

static void test_winograd_flops(void **state) {
    (void)state;
    prof_enable(1);
    run_conv(1);
    // F(4x4): 8x8 is 2x2 tiles a sample; the filter transform is a (36 x 9) @ (9 x OC*C) GEMM
    double tiles4 = B * 2 * 2;
    assert_true(prof.gemm_flops == 2.0 * 36 * OC * C * tiles4 + 2.0 * 36 * 9 * OC * C);
    assert_true(prof.seconds[PROF_GEMM] > 0);
    prof_reset();
    assert_true(prof.on && prof.gemm_flops == 0 && prof.seconds[PROF_GEMM] == 0);
    run_conv(0);
    double tiles2 = B * 4 * 4;
    assert_true(prof.gemm_flops == 2.0 * 16 * OC * C * tiles2);
    prof_enable(0);
}

// A Seq of a layer of type t0 and a mask layer of type t1 (p 0.5) on input `in`, planned for
// batches of up to max_b.
static void pair_seq(Seq *s, ParamTable *t, const char *t0, const char *t1, Shape in, int max_b) {
    LayerSpec specs[2];
    memset(specs, 0, sizeof specs);
    snprintf(specs[0].type, sizeof specs[0].type, "%s", t0);
    snprintf(specs[0].name, sizeof specs[0].name, "a");
    snprintf(specs[1].type, sizeof specs[1].type, "%s", t1);
    snprintf(specs[1].name, sizeof specs[1].name, "d");
    specs[1].p = 0.5f;
    memset(t, 0, sizeof *t);
    Err e = {0};
    Shape out;
    assert_int_equal(seq_setup(s, specs, 2, in, "", 1, t, &out, &e), ERR_OK);
    assert_int_equal(seq_plan(s, max_b, &e), ERR_OK);
}

static void test_elementwise_bytes(void **state) {
    (void)state;
    enum { N = B * C * H * W };
    static float x[N], y[N], d[N];
    uint8_t keep[B * C];
    memset(keep, 1, sizeof keep);
    prof_enable(1);
    relu_dropout2d_forward(y, x, keep, 2.0f, B, C, H * W);
    assert_true(prof.elementwise_bytes == 4.0 * 2 * N);  // read x, write y
    relu_dropout2d_backward(d, y, x, keep, 2.0f, B, C, H * W);
    assert_true(prof.elementwise_bytes == 4.0 * 5 * N);  // + read dout and x, write dx
    prof_enable(0);
}

// The MLP's elementwise layers count their bytes too (floats read and written; a row or a
// mask in cache not again): GELU 3N forward (x; out and Phi) and 4N backward, LayerNorm 2N
// and 3N (2N without dinp), and a flatten and a dropout layer run alone 2N each way.
static void test_mlp_layer_bytes(void **state) {
    (void)state;
    enum { R = 3, D = 40, N = R * D };
    static float x[N], y[N], cdf[N], d[N], dx[N], w[D], bias[D], dw[D], db[D], mean[R], rstd[R];
    for (int i = 0; i < N; i++) x[i] = (float)(i % 9) - 4.0f, d[i] = (float)(i % 5) - 2.0f;
    for (int i = 0; i < D; i++) w[i] = 1.0f, bias[i] = 0.0f;
    prof_enable(1);
    gelu_forward(y, cdf, x, N);
    assert_true(prof.elementwise_bytes == 4.0 * 3 * N);
    gelu_backward(dx, d, x, cdf, N);
    assert_true(prof.elementwise_bytes == 4.0 * 7 * N);
    prof_reset();
    layernorm_forward(y, mean, rstd, x, w, bias, R, D, 1e-5f);
    assert_true(prof.elementwise_bytes == 4.0 * 2 * N);
    layernorm_backward(dx, dw, db, d, x, w, mean, rstd, R, D);
    assert_true(prof.elementwise_bytes == 4.0 * 5 * N);
    layernorm_backward(NULL, dw, db, d, x, w, mean, rstd, R, D);
    assert_true(prof.elementwise_bytes == 4.0 * 7 * N);
    prof_enable(0);

    Seq s;
    ParamTable t;
    pair_seq(&s, &t, "flatten", "dropout", (Shape){3, {2, 4, 5}}, R);
    int64_t ids[R] = {1, 2, 3};
    StepCtx c = {.train = 1, .dropout_on = 1, .seed = 1, .sample_ids = ids};
    prof_enable(1);
    seq_forward(&s, x, NULL, NULL, &c, R);
    assert_true(prof.elementwise_bytes == 4.0 * 4 * N);
    seq_backward(&s, dx, NULL, d, x, NULL, &c, R, &t, NULL, NULL);
    assert_true(prof.elementwise_bytes == 4.0 * 8 * N);
    prof_enable(0);
    seq_free(&s);
    param_table_free(&t);
}

static void test_seq_pair_is_elementwise(void **state) {
    (void)state;
    Seq s;
    ParamTable t;
    pair_seq(&s, &t, "relu", "dropout2d", (Shape){3, {C, 64, 64}}, B);
    size_t n = (size_t)B * C * 64 * 64;
    float *x = calloc(n, sizeof(float)), *dx = malloc(n * sizeof(float));
    int64_t ids[B] = {0, 1};
    StepCtx c = {.train = 1, .dropout_on = 1, .seed = 1, .sample_ids = ids};
    prof_enable(1);
    const float *y = seq_forward(&s, x, NULL, NULL, &c, B);
    seq_backward(&s, dx, NULL, y, x, NULL, &c, B, &t, NULL, NULL);
    assert_true(prof.seconds[PROF_ELEMENTWISE] > 0);
    assert_true(prof.seconds[PROF_GEMM] == 0 && prof.seconds[PROF_TRANSFORM] == 0);
    assert_true(prof.elementwise_bytes == 4.0 * 5 * n);  // one sweep each way
    prof_enable(0);
    free(x), free(dx);
    seq_free(&s);
    param_table_free(&t);
}

// A conv2d -> BatchNorm + ReLU -> conv2d Seq in training, where the group hands its output
// to the second convolution and its input gradient to the first by samples (seq.c): the
// bytes that reach memory are counted, not the chunks written into cache for the
// convolutions (N floats of activation, p of sign bits): the forward's apply (read N, the
// chunk's N in cache, p bits) once in forward and again in backward, BatchNorm's sums (read
// N of input and N of gradient, p) and its input gradient (read 2N, p; its N in cache). And
// the time split has no second count of the handed passes: GEMM, transforms and elementwise
// work add up to no more than the wall time.
static void test_seq_handed_chunks(void **state) {
    (void)state;
    LayerSpec specs[4];
    memset(specs, 0, sizeof specs);
    const char *types[4] = {"conv2d", "batchnorm", "relu", "conv2d"};
    const char *names[4] = {"c1", "bn", "r", "c2"};
    for (int k = 0; k < 4; k++) {
        snprintf(specs[k].type, sizeof specs[k].type, "%s", types[k]);
        snprintf(specs[k].name, sizeof specs[k].name, "%s", names[k]);
        specs[k].kernel = 3, specs[k].padding = 1, specs[k].out = k ? 3 : C;
    }
    specs[1].eps = 1e-5f, specs[1].momentum = 0.1f;
    Seq s;
    ParamTable t;
    memset(&t, 0, sizeof t);
    Err e = {0};
    Shape out;
    assert_int_equal(seq_setup(&s, specs, 4, (Shape){3, {C, 16, 16}}, "", 1, &t, &out, &e),
                     ERR_OK);
    assert_int_equal(seq_plan(&s, B, &e), ERR_OK);
    size_t n = (size_t)B * C * 16 * 16, no = (size_t)B * shape_numel(out);
    float *x = calloc(n, sizeof(float)), *dy = calloc(no, sizeof(float));
    float *params = calloc(t.n_trainable + 1, sizeof(float));
    float *grads = calloc(t.n_trainable + 1, sizeof(float)), *bufs = calloc(t.n_buffer + 1, 4);
    for (size_t i = 0; i < n; i++) x[i] = (float)(i % 7) - 3.0f;
    for (size_t i = 0; i < no; i++) dy[i] = (float)(i % 5) - 2.0f;
    seq_init(&s, params, bufs, 1);
    StepCtx c = {.train = 1, .dropout_on = 1, .seed = 1};
    prof_enable(1);
    double t0 = prof_clock();
    seq_forward(&s, x, params, bufs, &c, B);
    seq_backward(&s, NULL, grads, dy, x, params, &c, B, &t, NULL, NULL);
    double wall = prof_clock() - t0;
    double p = B * C * (256 / 16) / 2.0;  // the sign bits: a 16-bit word per 16 elements
    assert_true(prof.elementwise_bytes == 4.0 * (6.0 * n + 4.0 * p));
    double sum = 0;
    for (int k = 0; k < PROF_KINDS; k++) {
        assert_true(k == PROF_COMM ? prof.seconds[k] == 0 : prof.seconds[k] > 0);  // no reducer
        sum += prof.seconds[k];
    }
    assert_true(sum <= wall);
    prof_enable(0);
    free(x), free(dy), free(params), free(grads), free(bufs);
    seq_free(&s);
    param_table_free(&t);
}

// A reducer that takes REDUCE_MS milliseconds a call, as a rank waiting for a slower one does.
enum { REDUCE_MS = 40 };
static int reduce_calls;
static int slow_reducer(void *ctx, int layer_id, StatsKind kind, double *stats, int nchan) {
    (void)ctx, (void)layer_id, (void)kind, (void)stats, (void)nchan;
    double t0 = prof_clock();
    while (prof_clock() - t0 < REDUCE_MS / 1000.0) {
    }
    reduce_calls++;
    return 0;
}

// A training BatchNorm's reduction across ranks (StepCtx.reduce_stats, SyncBN) counts as
// communication, once per call, and not also as the layer's elementwise work.
static void test_reduction_is_communication(void **state) {
    (void)state;
    LayerSpec spec;
    memset(&spec, 0, sizeof spec);
    snprintf(spec.type, sizeof spec.type, "batchnorm");
    snprintf(spec.name, sizeof spec.name, "bn");
    spec.eps = 1e-5f, spec.momentum = 0.1f;
    Seq s;
    ParamTable t;
    memset(&t, 0, sizeof t);
    Err e = {0};
    Shape out;
    assert_int_equal(seq_setup(&s, &spec, 1, (Shape){3, {C, H, W}}, "", 1, &t, &out, &e),
                     ERR_OK);
    assert_int_equal(seq_plan(&s, B, &e), ERR_OK);
    size_t n = (size_t)B * C * H * W;
    float *x = calloc(n, sizeof(float)), *dy = calloc(n, sizeof(float)), *dx = calloc(n, 4);
    float *params = calloc(t.n_trainable, sizeof(float)), *grads = calloc(t.n_trainable, 4);
    float *bufs = calloc(t.n_buffer, sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = (float)(i % 7) - 3.0f, dy[i] = (float)(i % 5) - 2.0f;
    seq_init(&s, params, bufs, 1);
    StepCtx c = {.train = 1, .seed = 1, .reduce_stats = slow_reducer};
    prof_enable(1);
    reduce_calls = 0;
    seq_forward(&s, x, params, bufs, &c, B);
    seq_backward(&s, dx, grads, dy, x, params, &c, B, &t, NULL, NULL);
    assert_int_equal(reduce_calls, 2);
    assert_true(prof.seconds[PROF_COMM] >= 2 * REDUCE_MS / 1000.0);
    assert_true(prof.seconds[PROF_ELEMENTWISE] > 0);
    assert_true(prof.seconds[PROF_ELEMENTWISE] < REDUCE_MS / 1000.0);  // the wait is not in it
    prof_enable(0);
    free(x), free(dy), free(dx), free(params), free(grads), free(bufs);
    seq_free(&s);
    param_table_free(&t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_off_counts_nothing),
        cmocka_unit_test(test_winograd_flops),
        cmocka_unit_test(test_elementwise_bytes),
        cmocka_unit_test(test_mlp_layer_bytes),
        cmocka_unit_test(test_seq_pair_is_elementwise),
        cmocka_unit_test(test_seq_handed_chunks),
        cmocka_unit_test(test_reduction_is_communication),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
