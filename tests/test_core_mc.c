// test_core_mc.c: the Monte-Carlo dropout summary (core/mc.h) against cases worked by hand.
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/mc.h"

// Runs passes p[0..passes) of (B,K) softmaxes through the summary.
static void summarize(McBatch *o, const float *p, int passes, int B, int K) {
    assert_int_equal(mc_batch_alloc(o, B, K), 0);
    mc_begin(o->mean, o->std, B, K);
    for (int k = 0; k < passes; k++) mc_add(o->mean, o->std, p + (size_t)k * B * K, k, B, K);
    mc_finish(o->std, o->entropy, o->pred, o->mean, passes, B, K);
}

// Five identical passes: the mean is the pass, the spread exactly 0 (not a rounding residue,
// which a sum-of-squares formula would leave).
static void test_identical_passes_spread_zero(void **state) {
    (void)state;
    const float one[3] = {0.1f, 0.7f, 0.2f};
    float p[5 * 3];
    for (int k = 0; k < 5; k++) memcpy(p + 3 * k, one, sizeof one);
    McBatch o;
    summarize(&o, p, 5, 1, 3);
    for (int c = 0; c < 3; c++) {
        assert_true(o.mean[c] == one[c]);
        assert_true(o.std[c] == 0.0f);
    }
    assert_int_equal(o.pred[0], 1);
    mc_batch_free(&o);
}

// Two passes over two samples of two classes. Sample 0: (0.2, 0.8) and (0.6, 0.4): mean
// (0.4, 0.6), population sd |0.6 - 0.2| / 2 = 0.2 for both, argmax 1, entropy
// -(0.4 ln 0.4 + 0.6 ln 0.6) = 0.673012. Sample 1: (1, 0) twice: sd 0, entropy 0 (0 ln 0 = 0).
static void test_two_passes_by_hand(void **state) {
    (void)state;
    const float p[2 * 2 * 2] = {0.2f, 0.8f, 1.0f, 0.0f,   // pass 0: samples 0, 1
                                0.6f, 0.4f, 1.0f, 0.0f};  // pass 1
    McBatch o;
    summarize(&o, p, 2, 2, 2);
    assert_true(fabsf(o.mean[0] - 0.4f) < 1e-6f && fabsf(o.mean[1] - 0.6f) < 1e-6f);
    assert_true(fabsf(o.std[0] - 0.2f) < 1e-6f && fabsf(o.std[1] - 0.2f) < 1e-6f);
    assert_int_equal(o.pred[0], 1);
    assert_true(fabs(o.entropy[0] - 0.6730117) < 1e-6);
    assert_true(o.mean[2] == 1.0f && o.mean[3] == 0.0f);
    assert_true(o.std[2] == 0.0f && o.std[3] == 0.0f);
    assert_true(o.entropy[1] == 0.0f);
    assert_int_equal(o.pred[1], 0);
    mc_batch_free(&o);
}

// The entropy of a uniform prediction over K classes is ln K; among equal probabilities the
// first class is the argmax.
static void test_uniform_entropy_is_ln_k(void **state) {
    (void)state;
    enum { K = 10 };
    float p[K];
    for (int k = 0; k < K; k++) p[k] = 1.0f / K;
    McBatch o;
    summarize(&o, p, 1, 1, K);
    assert_true(fabs(o.entropy[0] - log(K)) < 1e-5);
    assert_int_equal(o.pred[0], 0);
    for (int k = 0; k < K; k++) assert_true(o.std[k] == 0.0f);
    mc_batch_free(&o);
}

// Softmax of equal logits is uniform; of logits far apart (1000 vs 0) it does not overflow.
static void test_softmax(void **state) {
    (void)state;
    const float z[2 * 3] = {5, 5, 5, 1000, 0, 0};
    float p[6];
    mc_softmax(p, z, 2, 3);
    for (int k = 0; k < 3; k++) assert_true(fabsf(p[k] - 1.0f / 3) < 1e-6f);
    assert_true(p[3] == 1.0f && p[4] == 0.0f && p[5] == 0.0f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identical_passes_spread_zero),
        cmocka_unit_test(test_two_passes_by_hand),
        cmocka_unit_test(test_uniform_entropy_is_ln_k),
        cmocka_unit_test(test_softmax),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
