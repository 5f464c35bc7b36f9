// stats.h: the statistics a study's summary states: the mean of a metric over seeds, its
// sample standard deviation and the 95% confidence interval of the mean (Student t), used
// both for a condition's values and for the paired differences of two conditions seed by
// seed (same seed: same initialization, data order and masks).
#pragma once

// The 0.975 quantile of Student's t with df degrees of freedom: the two-sided 95% interval's
// multiplier. A table (4 decimals) up to 30, then linear in 1/df between 30, 40, 60, 120 and
// the normal's 1.9600; NaN for df < 1.
double t_quantile_975(int df);

typedef struct {
    int n;           // finite values used
    double mean;     // NaN with none
    double sd;       // sample standard deviation (n - 1), NaN below 2 values
    double lo, hi;   // mean ± t(n-1) sd / sqrt(n), NaN below 2 values
} MeanCI;

// The mean, sd and 95% interval of the finite values among x[0..n) (NaN and Inf skipped).
MeanCI mean_ci(const double *x, int n);

// The median of v[0..n) (n >= 1), which it sorts in place.
double median_sort(double *v, int n);

// What an interval says of a difference: 1 when it excludes zero (an effect), 0 when it
// includes zero (none at this power), -1 when there is no interval (fewer than 2 values).
int ci_excludes_zero(const MeanCI *c);
