// checkclose.h: compare an array with a reference, element by element, for the core tests.
#pragma once
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

// The largest |v[i]|: the scale an absolute tolerance is taken relative to.
static inline double max_abs(const float *v, size_t n) {
    double m = 0.0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)v[i]));
    return m;
}

// Fails (naming the worst element) unless |got - want| <= rtol |want| + atol everywhere; NaN
// fails too. Prints the largest absolute and relative error either way.
static inline void check_close(const char *what, const float *got, const float *want, size_t n,
                               double rtol, double atol) {
    double worst_abs = 0.0, worst_rel = 0.0, worst_excess = 0.0;
    size_t bad = n;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        double tol = rtol * fabs((double)want[i]) + atol;
        if (!(d <= tol)) {
            double excess = isnan(d) ? INFINITY : d - tol;
            if (bad == n || excess > worst_excess) bad = i, worst_excess = excess;
        }
        if (isnan(d)) continue;
        worst_abs = fmax(worst_abs, d);
        if (want[i] != 0.0f) worst_rel = fmax(worst_rel, d / fabs((double)want[i]));
    }
    print_message("%-24s n=%-3zu max abs err %.3g  max rel err %.3g  (rtol %.0e, atol %.3g)\n",
                  what, n, worst_abs, worst_rel, rtol, atol);
    if (bad != n)
        fail_msg("%s[%zu]: got %.9g, want %.9g (|diff| %.3g > %.3g)", what, bad,
                 (double)got[bad], (double)want[bad], fabs((double)got[bad] - (double)want[bad]),
                 rtol * fabs((double)want[bad]) + atol);
}
