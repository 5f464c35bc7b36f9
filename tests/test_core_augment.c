// test_core_augment.c: data augmentation (core/augment.c): each kernel on a hand-worked 1x4x4
// image, crop/flip exactly as torchvision, erasing and mixup/cutmix in distribution against
// torch (two-sample Kolmogorov-Smirnov), statistical tests of the Philox draws (rates within
// 5 sigma, uniform crop offsets, Beta moments and a one-sample KS against the exact CDF), the
// independence of a sample's result from its batch position, and the soft-target loss.
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/augment.h"
#include "core/loss.h"
#include "fixtures/augment_reference.h"

// KS critical value for significance 0.001 (c = sqrt(-ln(0.0005)/2) = 1.949): the tests use
// fixed seeds, so this is a fixed verdict, and a wrong distribution misses it by far.
#define KS_C 1.949

static void assert_floats_equal(const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i]) fail_msg("element %zu: %.9g != %.9g", i, a[i], b[i]);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// Two-sample KS statistic sup |F_a - F_b| (ties handled: both steps taken at a shared value).
static double ks2(double *a, size_t n, double *b, size_t m) {
    qsort(a, n, sizeof *a, cmp_double);
    qsort(b, m, sizeof *b, cmp_double);
    size_t i = 0, j = 0;
    double d = 0.0;
    while (i < n && j < m) {
        double v = a[i] < b[j] ? a[i] : b[j];
        while (i < n && a[i] == v) i++;
        while (j < m && b[j] == v) j++;
        double diff = fabs((double)i / n - (double)j / m);
        if (diff > d) d = diff;
    }
    return d;
}

static void assert_ks2(double *a, size_t n, double *b, size_t m, const char *what) {
    double d = ks2(a, n, b, m), crit = KS_C * sqrt((double)(n + m) / ((double)n * m));
    if (!(d < crit)) fail_msg("%s: KS D = %.4f >= %.4f", what, d, crit);
}

static void assert_rate(int64_t hits, int64_t n, double p, const char *what);

// ---------------------------------------------------------------- hand-worked kernels

// img[y][x] = 4y + x + 1 (1..16): zero and reflect padding by 1, offsets (0,0), (2,1), (1,2).
static void test_crop_hand(void **state) {
    (void)state;
    float img[16], out[16];
    for (int i = 0; i < 16; i++) img[i] = (float)(i + 1);
    augment_crop(out, img, 1, 4, 4, 1, AUGMENT_PAD_ZERO, 0, 0);  // shift down-right by one
    float z00[16] = {0, 0, 0, 0, 0, 1, 2, 3, 0, 5, 6, 7, 0, 9, 10, 11};
    assert_floats_equal(out, z00, 16);
    augment_crop(out, img, 1, 4, 4, 1, AUGMENT_PAD_ZERO, 2, 1);  // up by one
    float z21[16] = {5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 0, 0, 0, 0};
    assert_floats_equal(out, z21, 16);
    augment_crop(out, img, 1, 4, 4, 1, AUGMENT_PAD_ZERO, 1, 1);  // the centre: identity
    assert_floats_equal(out, img, 16);
    // reflect: padded row -1 is row 1, column 4 is column 2 (the edge is not repeated)
    augment_crop(out, img, 1, 4, 4, 1, AUGMENT_PAD_REFLECT, 0, 0);
    float r00[16] = {6, 5, 6, 7, 2, 1, 2, 3, 6, 5, 6, 7, 10, 9, 10, 11};
    assert_floats_equal(out, r00, 16);
    augment_crop(out, img, 1, 4, 4, 1, AUGMENT_PAD_REFLECT, 1, 2);  // left by one
    float r12[16] = {2, 3, 4, 3, 6, 7, 8, 7, 10, 11, 12, 11, 14, 15, 16, 15};
    assert_floats_equal(out, r12, 16);
    // padding larger than the image (zero mode): the corner offset sees only zeros
    augment_crop(out, img, 1, 4, 4, 5, AUGMENT_PAD_ZERO, 0, 0);
    for (int i = 0; i < 16; i++) assert_true(out[i] == 0.0f);
}

static void test_flip_hand(void **state) {
    (void)state;
    float x[16];
    for (int i = 0; i < 16; i++) x[i] = (float)(i + 1);
    augment_hflip(x, 1, 4, 4);
    float h[16] = {4, 3, 2, 1, 8, 7, 6, 5, 12, 11, 10, 9, 16, 15, 14, 13};
    assert_floats_equal(x, h, 16);
    for (int i = 0; i < 16; i++) x[i] = (float)(i + 1);
    augment_vflip(x, 1, 4, 4);
    float v[16] = {13, 14, 15, 16, 9, 10, 11, 12, 5, 6, 7, 8, 1, 2, 3, 4};
    assert_floats_equal(x, v, 16);
    // odd sizes keep the middle row/column
    float y[6] = {1, 2, 3, 4, 5, 6};
    augment_hflip(y, 1, 2, 3);
    float hy[6] = {3, 2, 1, 6, 5, 4};
    assert_floats_equal(y, hy, 6);
    float w[6] = {1, 2, 3, 4, 5, 6};
    augment_vflip(w, 1, 3, 2);
    float vw[6] = {5, 6, 3, 4, 1, 2};
    assert_floats_equal(w, vw, 6);
}

static void test_erase_hand(void **state) {
    (void)state;
    float x[32];
    for (int i = 0; i < 32; i++) x[i] = (float)(i + 1);
    AugmentDraws d = {.erase = 1, .ey = 1, .ex = 2, .eh = 2, .ew = 1};
    philox_key key = {{7, AUGMENT_KEY_ERASE}};
    augment_erase(x, &d, AUGMENT_ERASE_ZERO, key, 0, 0, 0, 2, 4, 4);
    for (int c = 0; c < 2; c++)
        for (int i = 0; i < 16; i++) {
            int yy = i / 4, xx = i % 4;
            int in = xx == 2 && (yy == 1 || yy == 2);
            assert_true(x[c * 16 + i] == (in ? 0.0f : (float)(c * 16 + i + 1)));
        }
    // noise: the four box pixels get values, the same each time, different per sample/epoch
    float a[32], b[32], c2[32];
    for (int i = 0; i < 32; i++) a[i] = b[i] = c2[i] = 100.0f;
    augment_erase(a, &d, AUGMENT_ERASE_NOISE, key, 3, 5, 0, 2, 4, 4);
    augment_erase(b, &d, AUGMENT_ERASE_NOISE, key, 3, 5, 0, 2, 4, 4);
    augment_erase(c2, &d, AUGMENT_ERASE_NOISE, key, 3, 6, 0, 2, 4, 4);
    assert_floats_equal(a, b, 32);
    int changed = 0, differs = 0;
    for (int i = 0; i < 32; i++) {
        int yy = (i % 16) / 4, xx = i % 4;
        int in = xx == 2 && (yy == 1 || yy == 2);
        if (!in) assert_true(a[i] == 100.0f);
        if (in) {
            changed += a[i] != 100.0f && fabsf(a[i]) < 10.0f;
            differs += a[i] != c2[i];
        }
    }
    assert_int_equal(changed, 4);
    assert_int_equal(differs, 4);
    // no box drawn: nothing happens
    AugmentDraws none = {0};
    augment_erase(a, &none, AUGMENT_ERASE_ZERO, key, 0, 0, 0, 2, 4, 4);
    assert_floats_equal(a, b, 32);
}

// Noise erasing fills the box with N(0,1): mean, variance and the 4th moment within 5 sigma
// over a 3x64x64 box, and the rate beyond 2 sigma as the normal's 4.55%.
static void test_erase_noise_normal(void **state) {
    (void)state;
    enum { C = 3, H = 65, W = 65 };
    static float x[C * H * W];
    AugmentDraws d = {.erase = 1, .ey = 0, .ex = 1, .eh = 64, .ew = 64};
    philox_key key = {{31, AUGMENT_KEY_ERASE}};
    augment_erase(x, &d, AUGMENT_ERASE_NOISE, key, 2, 99, 0, C, H, W);
    double s1 = 0, s2 = 0, s4 = 0;
    int64_t n = 0, tail = 0;
    for (int c = 0; c < C; c++)
        for (int y = 0; y < 64; y++)
            for (int k = 1; k < 65; k++) {
                double v = x[(c * H + y) * W + k];
                s1 += v, s2 += v * v, s4 += v * v * v * v, n++;
                tail += fabs(v) > 2.0;
            }
    assert_true(fabs(s1 / n) < 5.0 / sqrt(n));          // var(z) = 1
    assert_true(fabs(s2 / n - 1.0) < 5.0 * sqrt(2.0 / n));  // var(z^2) = 2
    assert_true(fabs(s4 / n - 3.0) < 5.0 * sqrt(96.0 / n)); // var(z^4) = 105 - 9
    assert_rate(tail, n, 0.0455003, "noise beyond 2 sigma");
    // every pixel its own normal: float32 values collide by chance a few times in 12288, a
    // reused word repeats a quarter of them or more
    static double v[C * 64 * 64];
    int64_t m = 0;
    for (int c = 0; c < C; c++)
        for (int y = 0; y < 64; y++)
            for (int k = 1; k < 65; k++) v[m++] = x[(c * H + y) * W + k];
    qsort(v, m, sizeof v[0], cmp_double);
    int64_t repeats = 0;
    for (int64_t i = 1; i < m; i++) repeats += v[i] == v[i - 1];
    assert_true(repeats < m / 100);
}

// augment_batch = the kernels applied in the order crop, hflip, vflip, erase with each sample's
// own draws; on a 1x4x4 image with known draws.
static void test_batch_composition(void **state) {
    (void)state;
    AugmentConfig cfg = augment_defaults();
    cfg.crop_pad = 1;
    cfg.crop_mode = AUGMENT_PAD_REFLECT;
    cfg.hflip = 0.5f;
    cfg.vflip = 0.5f;
    cfg.erase = 0.5f;
    int64_t ids[6] = {0, 1, 2, 3, 4, 5};
    float x[6 * 16], scratch[16];
    for (int b = 0; b < 6; b++)
        for (int i = 0; i < 16; i++) x[b * 16 + i] = (float)(100 * b + i);
    augment_batch(x, scratch, &cfg, ids, 42, 3, AUGMENT_STREAM_TRAIN, 6, 1, 4, 4);
    int seen_erase = 0, seen_h = 0, seen_v = 0;
    for (int b = 0; b < 6; b++) {
        AugmentDraws d;
        augment_sample_draws(&d, &cfg, 42, 3, ids[b], AUGMENT_STREAM_TRAIN, 4, 4);
        assert_true(d.dy >= 0 && d.dy <= 2 && d.dx >= 0 && d.dx <= 2);
        float img[16], ref[16];
        for (int i = 0; i < 16; i++) img[i] = (float)(100 * b + i);
        augment_crop(ref, img, 1, 4, 4, 1, AUGMENT_PAD_REFLECT, d.dy, d.dx);
        if (d.hflip) augment_hflip(ref, 1, 4, 4);
        if (d.vflip) augment_vflip(ref, 1, 4, 4);
        augment_erase(ref, &d, AUGMENT_ERASE_ZERO, (philox_key){{42, AUGMENT_KEY_ERASE}}, 3,
                      ids[b], 0, 1, 4, 4);
        assert_floats_equal(x + b * 16, ref, 16);
        seen_erase += d.erase, seen_h += d.hflip, seen_v += d.vflip;
    }
    (void)seen_erase, (void)seen_h, (void)seen_v;
    // all off: the batch is untouched
    AugmentConfig off = augment_defaults();
    float y[16], y0[16];
    for (int i = 0; i < 16; i++) y[i] = y0[i] = (float)i;
    augment_batch(y, scratch, &off, ids, 42, 3, 0, 1, 1, 4, 4);
    assert_floats_equal(y, y0, 16);
    assert_false(augment_per_sample_on(&off));
    assert_false(augment_mix_on(&off));
}

// ---------------------------------------------------------------- torchvision, exactly

static void test_crop_flip_torchvision(void **state) {
    (void)state;
    const int C = AUGREF_C, H = AUGREF_H, W = AUGREF_W, P = AUGREF_P, D = C * H * W;
    float out[AUGREF_C * AUGREF_H * AUGREF_W];
    for (int dy = 0; dy <= 2 * P; dy++)
        for (int dx = 0; dx <= 2 * P; dx++) {
            size_t o = (size_t)(dy * (2 * P + 1) + dx) * D;
            augment_crop(out, augref_img, C, H, W, P, AUGMENT_PAD_ZERO, dy, dx);
            assert_floats_equal(out, augref_crop_zero + o, D);
            augment_crop(out, augref_img, C, H, W, P, AUGMENT_PAD_REFLECT, dy, dx);
            assert_floats_equal(out, augref_crop_reflect + o, D);
        }
    memcpy(out, augref_img, sizeof out);
    augment_hflip(out, C, H, W);
    assert_floats_equal(out, augref_hflip, D);
    memcpy(out, augref_img, sizeof out);
    augment_vflip(out, C, H, W);
    assert_floats_equal(out, augref_vflip, D);
}

// ---------------------------------------------------------------- torch, in distribution

static void erase_vs_torchvision(float area_lo, float area_hi, float aspect_lo,
                                 float aspect_hi, const int32_t *ref_h, const int32_t *ref_w) {
    const int n = AUGREF_N, H = AUGREF_ERASE_H, W = AUGREF_ERASE_W;
    AugmentConfig cfg = augment_defaults();
    cfg.erase = 1.0f;
    cfg.erase_area[0] = area_lo, cfg.erase_area[1] = area_hi;
    cfg.erase_aspect[0] = aspect_lo, cfg.erase_aspect[1] = aspect_hi;
    double *mh = malloc(n * sizeof *mh), *mw = malloc(n * sizeof *mw);
    double *th = malloc(n * sizeof *th), *tw = malloc(n * sizeof *tw);
    double *ma = malloc(n * sizeof *ma), *ta = malloc(n * sizeof *ta);
    for (int i = 0; i < n; i++) {
        AugmentDraws d;
        augment_sample_draws(&d, &cfg, 11, 0, i, AUGMENT_STREAM_TRAIN, H, W);
        mh[i] = d.erase ? d.eh : 0;
        mw[i] = d.erase ? d.ew : 0;
        ma[i] = mh[i] * mw[i];
        th[i] = ref_h[i];
        tw[i] = ref_w[i];
        ta[i] = th[i] * tw[i];
    }
    assert_ks2(mh, n, th, n, "erase height vs torchvision");
    assert_ks2(mw, n, tw, n, "erase width vs torchvision");
    assert_ks2(ma, n, ta, n, "erase area vs torchvision");
    free(mh), free(mw), free(th), free(tw), free(ma), free(ta);
}

static void test_erase_vs_torchvision(void **state) {
    (void)state;
    erase_vs_torchvision(0.02f, 0.33f, 0.3f, 3.3f, augref_erase_h, augref_erase_w);
    erase_vs_torchvision(0.05f, 0.2f, 1.5f, 3.0f, augref_erase_tall_h, augref_erase_tall_w);
}

static void test_mix_vs_torch(void **state) {
    (void)state;
    const int n = AUGREF_N;
    double *m = malloc(n * sizeof *m), *t = malloc(n * sizeof *t);
    const struct { double a; const float *ref; const char *what; } cases[] = {
        {0.2, augref_beta_02, "Beta(0.2, 0.2) vs torch"},
        {1.0, augref_beta_10, "Beta(1, 1) vs torch"}};
    for (int c = 0; c < 2; c++) {
        for (int i = 0; i < n; i++) {
            m[i] = augment_beta(cases[c].a, (philox_key){{5, AUGMENT_KEY_MIX}},
                                AUGMENT_BATCH_SAMPLE, (uint32_t)i, 0);
            t[i] = cases[c].ref[i];
        }
        assert_ks2(m, n, t, n, cases[c].what);
    }
    // cutmix's corrected λ on 24x32 against timm's formulas
    AugmentConfig cfg = augment_defaults();
    cfg.cutmix = 1.0f;
    for (int i = 0; i < n; i++) {
        AugmentMix mx;
        augment_mix_draw(&mx, &cfg, 9, (uint32_t)i, 0, 24, 32);
        assert_true(mx.active && mx.cutmix);
        m[i] = mx.lam;
        t[i] = augref_cutmix_10[i];
    }
    assert_ks2(m, n, t, n, "cutmix lambda vs timm");
    free(m), free(t);
}

// ---------------------------------------------------------------- statistics of the draws

static void assert_rate(int64_t hits, int64_t n, double p, const char *what) {
    double sd = sqrt(n * p * (1 - p));
    if (!(fabs((double)hits - n * p) <= 5 * sd))
        fail_msg("%s: %lld of %lld, expected %.1f +- 5*%.1f", what, (long long)hits,
                 (long long)n, n * p, sd);
}

static void test_flip_rates(void **state) {
    (void)state;
    AugmentConfig cfg = augment_defaults();
    cfg.hflip = 0.5f;
    cfg.vflip = 0.2f;
    const int n = 200000;
    int64_t h = 0, v = 0, both = 0;
    for (int i = 0; i < n; i++) {
        AugmentDraws d;
        augment_sample_draws(&d, &cfg, 1, 7, i, 0, 8, 8);
        h += d.hflip, v += d.vflip, both += d.hflip && d.vflip;
    }
    assert_rate(h, n, 0.5, "hflip");
    assert_rate(v, n, 0.2, "vflip");
    assert_rate(both, n, 0.1, "hflip and vflip together (independent)");
    // probability 1 always, 0 never
    cfg.hflip = 1.0f;
    cfg.vflip = 0.0f;
    for (int i = 0; i < 1000; i++) {
        AugmentDraws d;
        augment_sample_draws(&d, &cfg, 1, 7, i, 0, 8, 8);
        assert_int_equal(d.hflip, 1);
        assert_int_equal(d.vflip, 0);
    }
}

// Offsets uniform over [0, 2p]^2: every one of the (2p+1)^2 cells within 5 sigma, and chi-square.
static void test_crop_offsets_uniform(void **state) {
    (void)state;
    AugmentConfig cfg = augment_defaults();
    cfg.crop_pad = 2;
    const int n = 250000, cells = 25;
    int64_t count[25] = {0};
    for (int i = 0; i < n; i++) {
        AugmentDraws d;
        augment_sample_draws(&d, &cfg, 3, 1, i, 0, 8, 8);
        assert_true(d.dy >= 0 && d.dy <= 4 && d.dx >= 0 && d.dx <= 4);
        count[d.dy * 5 + d.dx]++;
    }
    double chi2 = 0.0, e = (double)n / cells;
    for (int c = 0; c < cells; c++) {
        assert_rate(count[c], n, 1.0 / cells, "crop offset cell");
        chi2 += (count[c] - e) * (count[c] - e) / e;
    }
    // chi-square with 24 degrees of freedom: P(> 51.2) = 0.001
    if (!(chi2 < 51.2)) fail_msg("crop offsets: chi-square %.1f", chi2);
}

static double beta_cdf(double a, double x) {
    if (a == 1.0) return x;
    if (a == 2.0) return x * x * (3.0 - 2.0 * x);
    return 2.0 / 3.14159265358979323846 * asin(sqrt(x));  // a = 0.5: the arcsine law
}

// λ ~ Beta(α, α): mean 1/2, variance 1/(4(2α+1)), each within 5 sigma of its estimator, and a
// one-sample KS against the exact CDF (α = 0.5, 1, 2), plus the moments for α = 0.2.
static void test_beta_distribution(void **state) {
    (void)state;
    const int n = 50000;
    double *s = malloc(n * sizeof *s);
    double as[] = {0.2, 0.5, 1.0, 2.0};
    for (int c = 0; c < 4; c++) {
        double a = as[c], sum = 0.0;
        for (int i = 0; i < n; i++) {
            s[i] = augment_beta(a, (philox_key){{77, AUGMENT_KEY_MIX}}, AUGMENT_BATCH_SAMPLE,
                                (uint32_t)i, 0);
            assert_true(s[i] >= 0.0 && s[i] <= 1.0);
            sum += s[i];
        }
        double mean = sum / n, var = 0.0;
        for (int i = 0; i < n; i++) var += (s[i] - mean) * (s[i] - mean);
        var /= n - 1;
        double v = 1.0 / (4.0 * (2.0 * a + 1.0));
        double mu4 = 3.0 / (16.0 * (2.0 * a + 1.0) * (2.0 * a + 3.0));
        if (!(fabs(mean - 0.5) < 5.0 * sqrt(v / n))) fail_msg("Beta(%g): mean %.5f", a, mean);
        if (!(fabs(var - v) < 5.0 * sqrt((mu4 - v * v) / n)))
            fail_msg("Beta(%g): variance %.5f, expected %.5f", a, var, v);
        if (a < 0.4) continue;
        qsort(s, n, sizeof *s, cmp_double);
        double d = 0.0;
        for (int i = 0; i < n; i++) {
            double f = beta_cdf(a, s[i]);
            d = fmax(d, fmax(fabs(f - (double)i / n), fabs(f - (double)(i + 1) / n)));
        }
        if (!(d < KS_C / sqrt((double)n))) fail_msg("Beta(%g): KS D = %.4f", a, d);
    }
    free(s);
}

// Every box fits, lies inside, and has an area fraction within the range up to the rounding
// of its sides; the erase rate is p when boxes always fit.
static void test_erase_draws(void **state) {
    (void)state;
    AugmentConfig cfg = augment_defaults();
    cfg.erase = 1.0f;
    const int H = 24, W = 32, n = 20000;
    double A = (double)H * W;
    for (int i = 0; i < n; i++) {
        AugmentDraws d;
        augment_sample_draws(&d, &cfg, 2, 0, i, 0, H, W);
        if (!d.erase) continue;
        assert_true(d.eh < H && d.ew < W);
        assert_true(d.ey >= 0 && d.ey + d.eh <= H && d.ex >= 0 && d.ex + d.ew <= W);
        double slack = 0.5 * (d.eh + d.ew + 1) + 0.25, area = (double)d.eh * d.ew;
        assert_true(area >= cfg.erase_area[0] * A - slack && area <= cfg.erase_area[1] * A + slack);
        // aspect within the range, up to the rounding of h and w
        double aspect = (double)d.eh / d.ew;
        double lo = (d.eh - 0.5) / (d.eh + 0.5) * (d.ew - 0.5) / (d.ew + 0.5);
        assert_true(aspect >= cfg.erase_aspect[0] * lo && aspect <= cfg.erase_aspect[1] / lo);
    }
    // hand-worked: area 0.125 * 256 = 32, aspect h/w = 2: h = round(sqrt(64)) = 8, w = 4
    AugmentConfig hand = augment_defaults();
    hand.erase = 1.0f;
    hand.erase_area[0] = hand.erase_area[1] = 0.125f;
    hand.erase_aspect[0] = hand.erase_aspect[1] = 2.0f;
    // and its corner uniform over the 9 x 13 places where it fits
    int64_t rows[9] = {0}, cols[13] = {0};
    const int nb = 60000;
    for (int i = 0; i < nb; i++) {
        AugmentDraws d;
        augment_sample_draws(&d, &hand, 2, 0, i, 0, 16, 16);
        assert_true(d.erase && d.eh == 8 && d.ew == 4);
        assert_true(d.ey >= 0 && d.ey <= 8 && d.ex >= 0 && d.ex <= 12);
        rows[d.ey]++, cols[d.ex]++;
    }
    for (int k = 0; k < 9; k++) assert_rate(rows[k], nb, 1.0 / 9, "erase top row");
    // independent: the corner (0, 0) is 1/117 of the boxes
    int64_t corner = 0;
    for (int i = 0; i < nb; i++) {
        AugmentDraws d;
        augment_sample_draws(&d, &hand, 2, 0, i, 0, 16, 16);
        corner += d.ey == 0 && d.ex == 0;
    }
    assert_rate(corner, nb, 1.0 / 117, "erase corner (0, 0)");
    for (int k = 0; k < 13; k++) assert_rate(cols[k], nb, 1.0 / 13, "erase left column");
    cfg.erase = 0.25f;
    cfg.erase_area[1] = 0.1f;
    cfg.erase_aspect[0] = 0.5f;
    cfg.erase_aspect[1] = 2.0f;  // the largest box, 14x7, always fits in 32x32
    int64_t hits = 0;
    for (int i = 0; i < 100000; i++) {
        AugmentDraws d;
        augment_sample_draws(&d, &cfg, 2, 0, i, 0, 32, 32);
        hits += d.erase;
    }
    assert_rate(hits, 100000, 0.25, "erase rate");
    // a box that can never fit (area fraction 1): no erase after 10 attempts
    cfg.erase = 1.0f;
    cfg.erase_area[0] = cfg.erase_area[1] = 1.0f;
    cfg.erase_aspect[0] = cfg.erase_aspect[1] = 1.0f;
    AugmentDraws d;
    augment_sample_draws(&d, &cfg, 2, 0, 0, 0, 8, 8);
    assert_int_equal(d.erase, 0);
}

// ---------------------------------------------------------------- determinism

// A sample's result depends on (seed, epoch, id), not on its batch slot: permute the batch.
static void test_batch_position_invariance(void **state) {
    (void)state;
    enum { B = 8, C = 3, H = 6, W = 7, D = C * H * W };
    AugmentConfig cfg = augment_defaults();
    cfg.crop_pad = 2;
    cfg.hflip = 0.5f;
    cfg.vflip = 0.5f;
    cfg.erase = 0.7f;
    cfg.erase_value = AUGMENT_ERASE_NOISE;
    static float x[B * D], y[B * D], z[B * D], scratch[D];
    int64_t ids[B], pids[B];
    int perm[B] = {5, 2, 7, 0, 3, 6, 1, 4};
    for (int b = 0; b < B; b++) ids[b] = 1000 + 37 * b;
    for (int b = 0; b < B; b++) pids[b] = ids[perm[b]];
    for (int b = 0; b < B; b++)
        for (int i = 0; i < D; i++) x[b * D + i] = (float)(ids[b] % 97) + 0.01f * i;
    for (int b = 0; b < B; b++) memcpy(y + b * D, x + perm[b] * D, D * sizeof(float));
    memcpy(z, x, sizeof x);
    augment_batch(x, scratch, &cfg, ids, 123, 4, 0, B, C, H, W);
    augment_batch(y, scratch, &cfg, pids, 123, 4, 0, B, C, H, W);
    for (int b = 0; b < B; b++) assert_floats_equal(y + b * D, x + perm[b] * D, D);
    // a batch of one at a time (another "world size") gives the same
    for (int b = 0; b < B; b++) {
        augment_batch(z + b * D, scratch, &cfg, ids + b, 123, 4, 0, 1, C, H, W);
        assert_floats_equal(z + b * D, x + b * D, D);
    }
    // another epoch changes something
    for (int b = 0; b < B; b++)
        for (int i = 0; i < D; i++) z[b * D + i] = (float)(ids[b] % 97) + 0.01f * i;
    augment_batch(z, scratch, &cfg, ids, 123, 5, 0, B, C, H, W);
    assert_true(memcmp(z, x, sizeof x) != 0);
}

// ---------------------------------------------------------------- batch mixing

static void test_mix_apply_hand(void **state) {
    (void)state;
    float x[32], xp[32];
    for (int i = 0; i < 32; i++) x[i] = (float)i, xp[i] = 100.0f + i;
    AugmentMix m = {.active = 1, .cutmix = 0, .lam = 0.25f};
    augment_mix_apply(x, xp, &m, 2, 1, 4, 4);
    for (int i = 0; i < 32; i++) assert_true(x[i] == 0.25f * i + 0.75f * (100.0f + i));
    for (int i = 0; i < 32; i++) x[i] = (float)i;
    AugmentMix c = {.active = 1, .cutmix = 1, .lam = 0.75f, .y0 = 1, .y1 = 3, .x0 = 0, .x1 = 2};
    augment_mix_apply(x, xp, &c, 2, 1, 4, 4);
    for (int i = 0; i < 32; i++) {
        int yy = (i % 16) / 4, xx = i % 4;
        int in = yy >= 1 && yy < 3 && xx < 2;
        assert_true(x[i] == (in ? 100.0f + i : (float)i));
    }
    AugmentMix off = {.active = 0, .lam = 1.0f};
    memcpy(xp, x, sizeof x);
    augment_mix_apply(x, xp + 0, &off, 2, 1, 4, 4);
    assert_floats_equal(x, xp, 32);
    assert_int_equal(augment_mix_partner(0, 10), 9);
    assert_int_equal(augment_mix_partner(9, 10), 0);
    assert_int_equal(augment_mix_partner(2, 5), 2);  // the middle of an odd batch: itself
}

static void test_mix_draws(void **state) {
    (void)state;
    AugmentConfig cfg = augment_defaults();
    cfg.mixup = 0.4f;
    cfg.cutmix = 1.0f;
    cfg.mix_prob = 0.6f;
    const int n = 40000, H = 10, W = 12;
    int64_t active = 0, cut = 0;
    for (int s = 0; s < n; s++) {
        AugmentMix m, m2;
        augment_mix_draw(&m, &cfg, 8, (uint32_t)s, 0, H, W);
        augment_mix_draw(&m2, &cfg, 8, (uint32_t)s, 0, H, W);
        assert_memory_equal(&m, &m2, sizeof m);  // a pure function of (seed, step)
        if (!m.active) {
            assert_true(m.lam == 1.0f);
            continue;
        }
        active++;
        assert_true(m.lam >= 0.0f && m.lam <= 1.0f);
        if (m.cutmix) {
            cut++;
            assert_true(0 <= m.y0 && m.y0 <= m.y1 && m.y1 <= H);
            assert_true(0 <= m.x0 && m.x0 <= m.x1 && m.x1 <= W);
            double lam = 1.0 - (double)(m.y1 - m.y0) * (m.x1 - m.x0) / (H * W);
            assert_true(m.lam == (float)lam);  // corrected to the box's true area
        }
    }
    assert_rate(active, n, 0.6, "mix_prob");
    assert_rate(cut, active, 0.5, "cutmix share (mix_switch)");
    // only one kind on: always that kind
    cfg.mixup = 0.0f;
    cfg.mix_prob = 1.0f;
    for (int s = 0; s < 100; s++) {
        AugmentMix m;
        augment_mix_draw(&m, &cfg, 8, (uint32_t)s, 0, H, W);
        assert_true(m.active && m.cutmix);
    }
    cfg.mixup = 0.3f;
    cfg.cutmix = 0.0f;
    for (int s = 0; s < 100; s++) {
        AugmentMix m;
        augment_mix_draw(&m, &cfg, 8, (uint32_t)s, 0, H, W);
        assert_true(m.active && !m.cutmix);
    }
    cfg.mix_prob = 0.0f;
    AugmentMix m;
    augment_mix_draw(&m, &cfg, 8, 1, 0, H, W);
    assert_false(m.active);
}

// ---------------------------------------------------------------- soft targets and loss

static void test_mix_targets_hand(void **state) {
    (void)state;
    int32_t ya[2] = {0, 2}, yb[2] = {2, 2};
    float t[8];
    augment_mix_targets(t, ya, yb, 0.7f, 0.2f, 2, 4);
    // smooth: 0.85 on the label, 0.05 elsewhere; row 0 = 0.7*s(0) + 0.3*s(2)
    float e[8] = {0.7f * 0.85f + 0.3f * 0.05f, 0.05f, 0.7f * 0.05f + 0.3f * 0.85f, 0.05f,
                  0.05f, 0.05f, 0.85f, 0.05f};
    for (int i = 0; i < 8; i++) assert_true(fabsf(t[i] - e[i]) < 1e-6f);
    for (int b = 0; b < 2; b++) {
        float s = 0.0f;
        for (int k = 0; k < 4; k++) s += t[b * 4 + k];
        assert_true(fabsf(s - 1.0f) < 1e-6f);
    }
}

static void test_mix_loss(void **state) {
    (void)state;
    enum { B = 5, K = 6 };
    float logits[B * K], d1[B * K], d2[B * K], t[B * K];
    int32_t ya[B] = {0, 1, 5, 3, 3}, yb[B] = {4, 1, 0, 2, 5};
    for (int i = 0; i < B * K; i++) logits[i] = (float)sin(1.3 * i) * 3.0f;
    // λ = 1: the plain smoothed loss on y_a
    int64_t c1 = 0, c2 = 0;
    double l1 = xent_forward_backward(d1, &c1, logits, ya, B, K, 0.1f, 0.5f);
    double l2 = mix_xent_forward_backward(d2, &c2, logits, ya, yb, 1.0f, B, K, 0.1f, 0.5f);
    assert_true(fabs(l1 - l2) < 1e-9 * fabs(l1));
    for (int i = 0; i < B * K; i++) assert_true(fabsf(d1[i] - d2[i]) < 1e-7f);
    assert_int_equal(c1, c2);
    // general λ: loss = sum_b -sum_k t log softmax, gradient = softmax - t
    float lam = 0.35f;
    double loss = mix_xent_forward_backward(d2, NULL, logits, ya, yb, lam, B, K, 0.1f, 1.0f);
    augment_mix_targets(t, ya, yb, lam, 0.1f, B, K);
    double ref = 0.0;
    for (int b = 0; b < B; b++) {
        double mx = -1e30, s = 0.0;
        for (int k = 0; k < K; k++) mx = fmax(mx, logits[b * K + k]);
        for (int k = 0; k < K; k++) s += exp(logits[b * K + k] - mx);
        for (int k = 0; k < K; k++) {
            double lp = logits[b * K + k] - mx - log(s);
            ref -= t[b * K + k] * lp;
            assert_true(fabs(d2[b * K + k] - (exp(lp) - t[b * K + k])) < 1e-6);
        }
    }
    assert_true(fabs(loss - ref) < 1e-6 * fabs(ref));
    // the gradient is the derivative of the loss (central differences)
    for (int i = 0; i < B * K; i += 7) {
        float save = logits[i], h = 1e-2f;
        logits[i] = save + h;
        double lp = mix_xent_forward_backward(t, NULL, logits, ya, yb, lam, B, K, 0.1f, 1.0f);
        logits[i] = save - h;
        double lm = mix_xent_forward_backward(t, NULL, logits, ya, yb, lam, B, K, 0.1f, 1.0f);
        logits[i] = save;
        assert_true(fabs((lp - lm) / (2 * h) - d2[i]) < 1e-3);
    }
    // accuracy against the dominant label: argmax of row b is forced to k = b
    float z[B * K];
    for (int i = 0; i < B * K; i++) z[i] = (i % K == i / K) ? 5.0f : 0.0f;
    int32_t a[B] = {0, 2, 2, 4, 0}, bb[B] = {1, 1, 3, 3, 4};  // a hits rows 0, 2; b rows 1, 3, 4
    int64_t hits = 0;
    mix_xent_forward_backward(d2, &hits, z, a, bb, 0.5f, B, K, 0.0f, 1.0f);  // λ >= 0.5: y_a
    assert_int_equal(hits, 2);
    hits = 0;
    mix_xent_forward_backward(d2, &hits, z, a, bb, 0.4f, B, K, 0.0f, 1.0f);  // else y_b
    assert_int_equal(hits, 3);
}

// ---------------------------------------------------------------- configuration

static void test_check(void **state) {
    (void)state;
    Err e = {0};
    AugmentConfig cfg = augment_defaults();
    assert_int_equal(augment_check(&cfg, 3, 32, 32, &e), ERR_OK);
    assert_true(cfg.erase_area[0] == 0.02f && cfg.erase_area[1] == 0.33f);
    assert_true(cfg.erase_aspect[0] == 0.3f && cfg.erase_aspect[1] == 3.3f);
    cfg.crop_pad = -1;
    assert_int_equal(augment_check(&cfg, 3, 32, 32, &e), ERR_INPUT);
    assert_non_null(strstr(e.msg, "augment.crop_pad"));
    cfg = augment_defaults();
    cfg.crop_pad = 4;
    cfg.crop_mode = AUGMENT_PAD_REFLECT;
    assert_int_equal(augment_check(&cfg, 1, 4, 8, &e), ERR_INPUT);
    assert_non_null(strstr(e.msg, "reflect"));
    assert_int_equal(augment_check(&cfg, 1, 5, 8, &e), ERR_OK);
    cfg = augment_defaults();
    cfg.hflip = 1.5f;
    assert_int_equal(augment_check(&cfg, 1, 5, 8, &e), ERR_INPUT);
    assert_non_null(strstr(e.msg, "augment.hflip"));
    cfg = augment_defaults();
    cfg.mix_prob = NAN;
    assert_int_equal(augment_check(&cfg, 1, 5, 8, &e), ERR_INPUT);
    assert_non_null(strstr(e.msg, "augment.mix_prob"));
    cfg = augment_defaults();
    cfg.erase_area[0] = 0.5f;
    cfg.erase_area[1] = 0.4f;
    assert_int_equal(augment_check(&cfg, 1, 5, 8, &e), ERR_INPUT);
    assert_non_null(strstr(e.msg, "augment.erase_area"));
    cfg = augment_defaults();
    cfg.erase_aspect[0] = 0.0f;
    assert_int_equal(augment_check(&cfg, 1, 5, 8, &e), ERR_INPUT);
    assert_non_null(strstr(e.msg, "augment.erase_aspect"));
    cfg = augment_defaults();
    cfg.mixup = -0.2f;
    assert_int_equal(augment_check(&cfg, 1, 5, 8, &e), ERR_INPUT);
    assert_non_null(strstr(e.msg, "augment.mixup"));
    cfg = augment_defaults();
    cfg.cutmix = 1e-5f;
    assert_int_equal(augment_check(&cfg, 1, 5, 8, &e), ERR_INPUT);
    assert_non_null(strstr(e.msg, "augment.cutmix"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crop_hand),
        cmocka_unit_test(test_flip_hand),
        cmocka_unit_test(test_erase_hand),
        cmocka_unit_test(test_erase_noise_normal),
        cmocka_unit_test(test_batch_composition),
        cmocka_unit_test(test_crop_flip_torchvision),
        cmocka_unit_test(test_erase_vs_torchvision),
        cmocka_unit_test(test_mix_vs_torch),
        cmocka_unit_test(test_flip_rates),
        cmocka_unit_test(test_crop_offsets_uniform),
        cmocka_unit_test(test_beta_distribution),
        cmocka_unit_test(test_erase_draws),
        cmocka_unit_test(test_batch_position_invariance),
        cmocka_unit_test(test_mix_apply_hand),
        cmocka_unit_test(test_mix_draws),
        cmocka_unit_test(test_mix_targets_hand),
        cmocka_unit_test(test_mix_loss),
        cmocka_unit_test(test_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
