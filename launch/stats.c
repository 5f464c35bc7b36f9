// stats.c: mean, sample sd and the Student-t 95% interval of a mean (see stats.h).
#include "stats.h"

#include <math.h>
#include <stdlib.h>

// t_{0.975}(df) for df = 1..30 (df = 0 unused), to 4 decimals.
static const double t975[31] = {
    NAN,    12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
    2.2010, 2.1788,  2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860, 2.0796,
    2.0739, 2.0687,  2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423};

double t_quantile_975(int df) {
    if (df < 1) return NAN;
    if (df <= 30) return t975[df];
    // beyond the table the quantile is close to linear in 1/df (error < 1e-4)
    static const double dfs[] = {30, 40, 60, 120, INFINITY}, ts[] = {2.0423, 2.0211, 2.0003,
                                                                     1.9799, 1.9600};
    int k = 0;
    while (k < 3 && df > dfs[k + 1]) k++;
    double a = 1 / dfs[k], b = 1 / dfs[k + 1], u = (a - 1.0 / df) / (a - b);
    return ts[k] + u * (ts[k + 1] - ts[k]);
}

MeanCI mean_ci(const double *x, int n) {
    MeanCI c = {0, NAN, NAN, NAN, NAN};
    double sum = 0, sq = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(x[i])) sum += x[i], c.n++;
    if (!c.n) return c;
    c.mean = sum / c.n;
    if (c.n < 2) return c;
    for (int i = 0; i < n; i++)
        if (isfinite(x[i])) sq += (x[i] - c.mean) * (x[i] - c.mean);
    c.sd = sqrt(sq / (c.n - 1));
    double half = t_quantile_975(c.n - 1) * c.sd / sqrt(c.n);
    c.lo = c.mean - half;
    c.hi = c.mean + half;
    return c;
}

int ci_excludes_zero(const MeanCI *c) {
    if (!isfinite(c->lo) || !isfinite(c->hi)) return -1;
    return c->lo > 0 || c->hi < 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double median_sort(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}
