// test_stats.c: launch/stats.c against values worked by hand and Student t quantiles from
// tables (computed independently by integrating the t density to 0.975).
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "launch/stats.h"

static void test_t_quantiles(void **state) {
    (void)state;
    // df: 1, 2, 4, 9, 10, 19, 29, 30 from the table; 40, 60, 120 the anchors above it; 50,
    // 100 and 1000 interpolated (true 2.0086, 1.9840, 1.9623)
    const int df[] = {1, 2, 4, 9, 10, 19, 29, 30, 40, 50, 60, 100, 120, 1000};
    const double t[] = {12.7062, 4.3027, 2.7764, 2.2622, 2.2281, 2.0930, 2.0452,
                        2.0423,  2.0211, 2.0086, 2.0003, 1.9840, 1.9799, 1.9623};
    for (size_t i = 0; i < sizeof df / sizeof *df; i++)
        if (fabs(t_quantile_975(df[i]) - t[i]) > 2e-4)
            fail_msg("t(%d) = %.5f, want %.4f", df[i], t_quantile_975(df[i]), t[i]);
    assert_true(isnan(t_quantile_975(0)));
    assert_true(isnan(t_quantile_975(-3)));
    // decreasing towards the normal's 1.96
    for (int d = 1; d < 2000; d++) assert_true(t_quantile_975(d + 1) <= t_quantile_975(d));
    assert_true(t_quantile_975(1 << 30) > 1.9599 && t_quantile_975(1 << 30) < 1.9601);
}

// 1..5: mean 3, sd sqrt(2.5) = 1.58114, half-width 2.7764 * 1.58114 / sqrt(5) = 1.96324.
static void test_mean_ci_by_hand(void **state) {
    (void)state;
    double x[] = {1, 2, 3, 4, 5};
    MeanCI c = mean_ci(x, 5);
    assert_int_equal(c.n, 5);
    assert_true(fabs(c.mean - 3) < 1e-12);
    assert_true(fabs(c.sd - 1.5811388) < 1e-6);
    assert_true(fabs(c.lo - 1.0367574) < 1e-4);
    assert_true(fabs(c.hi - 4.9632426) < 1e-4);
    assert_int_equal(ci_excludes_zero(&c), 1);
    // two values 10, 12: sd sqrt(2), se 1, t(1) 12.7062: [-1.7062, 23.7062] includes zero
    double y[] = {10, 12};
    c = mean_ci(y, 2);
    assert_true(fabs(c.lo + 1.7062) < 1e-9 && fabs(c.hi - 23.7062) < 1e-9);
    assert_int_equal(ci_excludes_zero(&c), 0);
    // all negative, tight: excludes zero from below
    double z[] = {-1.0, -1.2, -0.8};  // mean -1, sd 0.2, half 4.3027 * 0.2 / sqrt(3) = 0.49683
    c = mean_ci(z, 3);
    assert_true(fabs(c.hi - (-1 + 0.4968329)) < 1e-6);
    assert_int_equal(ci_excludes_zero(&c), 1);
}

// Non-finite values are missing, not zeros; below two values there is no sd and no interval.
static void test_mean_ci_missing(void **state) {
    (void)state;
    double x[] = {NAN, 2, INFINITY, 4};
    MeanCI c = mean_ci(x, 4);
    assert_int_equal(c.n, 2);
    assert_true(fabs(c.mean - 3) < 1e-12);
    assert_true(fabs(c.sd - sqrt(2)) < 1e-12);
    double one[] = {NAN, 7};
    c = mean_ci(one, 2);
    assert_int_equal(c.n, 1);
    assert_true(c.mean == 7);
    assert_true(isnan(c.sd) && isnan(c.lo) && isnan(c.hi));
    assert_int_equal(ci_excludes_zero(&c), -1);
    c = mean_ci(one, 1);
    assert_int_equal(c.n, 0);
    assert_true(isnan(c.mean));
    // identical values: sd 0, a zero-width interval at the mean
    double same[] = {0.5, 0.5, 0.5};
    c = mean_ci(same, 3);
    assert_true(c.sd == 0 && c.lo == 0.5 && c.hi == 0.5);
}

// The median sorts its values in place: the middle one, or the mean of the middle two.
static void test_median(void **state) {
    (void)state;
    double odd[5] = {14, 12, 15, 14, 13}, even[4] = {3, 1, 4, 2}, one[1] = {7};
    assert_float_equal(median_sort(odd, 5), 14, 0);
    assert_float_equal(odd[0], 12, 0);
    assert_float_equal(odd[4], 15, 0);
    assert_float_equal(median_sort(even, 4), 2.5, 0);
    assert_float_equal(median_sort(one, 1), 7, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_t_quantiles),
        cmocka_unit_test(test_mean_ci_by_hand),
        cmocka_unit_test(test_mean_ci_missing),
        cmocka_unit_test(test_median),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
