// test_core_calibration.c: expected calibration error against values worked by hand.
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/calibration.h"

// Four samples, two classes. Confidences 0.9, 0.9 (bin 13: (13/15, 14/15]) with one right,
// 0.6, 0.6 (bin 9: (9/15, 10/15]) both right.
// ECE = 2/4 * |0.5 - 0.9| + 2/4 * |1.0 - 0.6| = 0.2 + 0.2 = 0.4; mean confidence 0.75.
static void test_ece_by_hand(void **state) {
    (void)state;
    float probs[8] = {0.9f, 0.1f, 0.1f, 0.9f, 0.6f, 0.4f, 0.4f, 0.6f};
    int32_t y[4] = {0, 0, 0, 1};
    EceBins b;
    memset(&b, 0, sizeof b);
    ece_accumulate(&b, probs, y, 4, 2);
    assert_true(b.count[13] == 2);
    assert_true(b.count[9] == 2);
    assert_true(fabs(ece_value(&b) - 0.4) < 1e-6);
    assert_true(fabs(ece_mean_confidence(&b) - 0.75) < 1e-6);
}

// A perfectly calibrated set has ECE 0; confidence 1.0 lands in the last bin.
static void test_ece_calibrated_and_edges(void **state) {
    (void)state;
    float probs[4] = {1.0f, 0.0f, 0.0f, 1.0f};
    int32_t y[2] = {0, 1};
    EceBins b;
    memset(&b, 0, sizeof b);
    ece_accumulate(&b, probs, y, 2, 2);
    assert_true(b.count[ECE_BINS - 1] == 2);
    assert_true(ece_value(&b) == 0.0);
    memset(&b, 0, sizeof b);
    assert_true(ece_value(&b) == 0.0);  // nothing accumulated
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ece_by_hand),
        cmocka_unit_test(test_ece_calibrated_and_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
