// test_svg.c: io/svg: nice tick numbers that cover the data, well-formed files with escaped
// text and no non-finite numbers, one drawn series per series with a finite point, log2 ticks
// at the data's x values, axes that fit the data (a dot chart's axis broken around a far outlier),
// a legend per distinct row of series, and errors for bad arguments and unwritable paths
// without leftovers.
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "io/svg.h"
#include "testutil.h"

static const char *dir;

#define NASTY "a <&> \"b\" 'c'"
#define NASTY_ESCAPED "a &lt;&amp;&gt; &quot;b&quot; &apos;c&apos;"

static int count(const char *s, const char *needle) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p++) n++;
    return n;
}

// Reads path and checks what every figure must be: an <svg> document, closed, no nan or inf.
static char *read_svg(const char *path) {
    char *s = test_read_file(path, NULL);
    assert_non_null(s);
    const char *start = s;
    if (strncmp(start, "<?xml", 5) == 0) start = strstr(start, "?>") + 3;
    assert_true(strncmp(start, "<svg", 4) == 0);
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == ' ')) n--;
    assert_true(n >= 6 && strncmp(s + n - 6, "</svg>", 6) == 0);
    for (char *p = s; *p; p++)
        if (strncasecmp(p, "nan", 3) == 0 || strncasecmp(p, "inf", 3) == 0)
            fail_msg("non-finite number in %s near: %.60s", path, p > s + 20 ? p - 20 : s);
    return s;
}

static void check_ticks(double lo, double hi, int max) {
    double t[64];
    int n = svg_nice_ticks(lo, hi, max, t);
    if (n < 2 || n > max) fail_msg("[%g, %g] max %d: %d ticks", lo, hi, max, n);
    double step = t[1] - t[0], tol = 1e-9 * step;
    if (t[0] > fmin(lo, hi) + tol || t[n - 1] < fmax(lo, hi) - tol)
        fail_msg("[%g, %g]: ticks [%g, %g] do not cover it", lo, hi, t[0], t[n - 1]);
    double mant = step / pow(10, floor(log10(step)));
    if (fabs(mant - 1) > 1e-6 && fabs(mant - 2) > 1e-6 && fabs(mant - 5) > 1e-6)
        fail_msg("[%g, %g]: step %g is not 1, 2 or 5 x 10^k", lo, hi, step);
    for (int i = 0; i < n; i++)
        if (fabs(t[i] / step - round(t[i] / step)) > 1e-6 || (i && fabs(t[i] - t[i - 1] - step) > tol * 1e3))
            fail_msg("[%g, %g]: tick %g is not a multiple of the step %g", lo, hi, t[i], step);
    // not wastefully coarse: the range spans more than a third of the ticks' span
    if (hi != lo && fabs(hi - lo) < (t[n - 1] - t[0]) / 3)
        fail_msg("[%g, %g]: ticks [%g, %g] are too wide", lo, hi, t[0], t[n - 1]);
}

static void test_nice_ticks(void **state) {
    (void)state;
    check_ticks(0, 1, 6);
    check_ticks(0.13, 0.87, 6);
    check_ticks(-3.2, 47, 7);
    check_ticks(1e-5, 3e-4, 6);
    check_ticks(81.2, 88.9, 6);
    check_ticks(-1e-3, -2e-4, 5);
    check_ticks(12345, 987654, 8);
    check_ticks(100, 0.5, 6);  // reversed
    check_ticks(3, 3, 6);      // one value: widened around it
    check_ticks(0, 0, 3);
    double t[8];
    assert_int_equal(svg_nice_ticks(0, 1, 5, t), 3);  // 0.2 would take 6 ticks, 0.25 is not nice
    assert_true(t[0] == 0 && t[1] == 0.5 && t[2] == 1);
    assert_int_equal(svg_nice_ticks(NAN, 1, 6, t), -1);
    assert_int_equal(svg_nice_ticks(0, INFINITY, 6, t), -1);
    assert_int_equal(svg_nice_ticks(0, 1, 2, t), -1);
}

// Two panels: three series on epochs (one all NaN, one with NaN gaps and a label needing
// escapes), and accuracy over batch sizes 8..1024 on a log2 axis with error bars.
static void test_line_figure(void **state) {
    (void)state;
    double ep[6] = {1, 2, 3, 4, 5, 6}, a[6] = {2.3, 1.5, 1.1, 0.9, 0.8, 0.75},
           b[6] = {NAN, 1.9, INFINITY, 1.2, NAN, 1.0}, none[6] = {NAN, NAN, NAN, NAN, NAN, NAN},
           sd[6] = {0.1, NAN, 0.05, 0.05, 0.02, 0.02};
    double bs[8] = {8, 16, 32, 64, 128, 256, 512, 1024}, acc[3][8], err[8];
    for (int i = 0; i < 8; i++) {
        for (int s = 0; s < 3; s++) acc[s][i] = 88 - 0.4 * i * i * (s + 1) / 3.0;
        err[i] = 0.3 + 0.1 * i;
    }
    acc[2][3] = NAN;
    SvgSeries curves[3] = {{"plain", 6, ep, a, sd, 0}, {NASTY, 6, ep, b, NULL, 1},
                           {"never drawn", 6, ep, none, NULL, 0}};
    SvgSeries sizes[3] = {{"plain", 8, bs, acc[0], err, 0}, {"+ dropout", 8, bs, acc[1], err, 0},
                          {"+ weight decay", 8, bs, acc[2], NULL, 0}};
    SvgPanel panels[2] = {{"loss " NASTY, "epoch", "loss", 0, curves, 3, 0},
                          {"test accuracy vs batch size", "global batch size", "accuracy (%)", 1,
                           sizes, 3, 0}};
    const char *path = test_path(dir, "line.svg");
    Err e = {0};
    assert_int_equal(svg_line_figure(path, "figure <title>", panels, 2, &e), ERR_OK);
    char *s = read_svg(path);
    assert_int_equal(count(s, "<polyline"), 5);  // "never drawn" is absent
    assert_null(strstr(s, "never drawn"));        // from the legend too
    assert_null(strstr(s, "<&>"));
    assert_int_equal(count(s, NASTY_ESCAPED), 2);  // the panel title and the legend entry
    assert_non_null(strstr(s, "figure &lt;title&gt;"));
    assert_non_null(strstr(s, "font-family=\"sans-serif\""));
    for (int i = 0; i < 8; i++) {  // log2 axis: a tick label at every batch size
        char lab[64];
        snprintf(lab, sizeof lab, "text-anchor=\"middle\">%g</text>", bs[i]);
        if (!strstr(s, lab)) fail_msg("no x tick label %g", bs[i]);
    }
    assert_null(strstr(s, "text-anchor=\"middle\">100</text>"));  // no decimal ticks there
    free(s);
}

// Nine categories, three series (one without any value), two panels.
static void test_dot_figure(void **state) {
    (void)state;
    const char *cats[9] = {"none", "+ dropout", "+ weight decay", "+ label smoothing",
                           "+ mixup", "+ stochastic depth", "+ BN ghost batch", NASTY, "all on"};
    const char *labels[3] = {"batch 256", "batch 4096 \"large\"", "batch 65536"};
    double val[2][27], err[2][27];
    for (int p = 0; p < 2; p++)
        for (int i = 0; i < 27; i++) {
            val[p][i] = i >= 18 ? NAN : 85 + (i % 9) * 0.5 - (i / 9) * 2 + p;
            err[p][i] = i % 4 ? 0.3 : NAN;
        }
    val[0][4] = INFINITY;
    SvgDotPanel panels[2] = {
        {"test accuracy", "accuracy (%)", 9, cats, 3, labels, val[0], err[0], 0},
        {"validation accuracy", "accuracy (%)", 9, cats, 3, labels, val[1], NULL, 0}};
    const char *path = test_path(dir, "dot.svg");
    Err e = {0};
    assert_int_equal(svg_dot_figure(path, "ablation", panels, 2, &e), ERR_OK);
    char *s = read_svg(path);
    assert_int_equal(count(s, "<g class=\"series\""), 2 * 2 + 2);  // 2 panels + legend rows
    assert_int_equal(count(s, NASTY_ESCAPED), 1);  // categories are drawn once
    assert_non_null(strstr(s, "batch 4096 &quot;large&quot;"));
    assert_null(strstr(s, "batch 65536"));
    free(s);
}

// The tick labels of the axes drawn in s: x ticks are anchored "middle", y ticks "end". Returns
// the smallest and largest of the kind asked for (NAN when there are none).
static void tick_range(const char *s, const char *anchor, double *lo, double *hi) {
    char pat[64];
    snprintf(pat, sizeof pat, "text-anchor=\"%s\">", anchor);
    *lo = NAN, *hi = NAN;
    for (const char *p = s; (p = strstr(p, pat)); p++) {
        char *end;
        double v = strtod(p + strlen(pat), &end);
        if (end == p + strlen(pat) || strncmp(end, "</text>", 7)) continue;  // not a number
        *lo = isnan(*lo) ? v : fmin(*lo, v), *hi = isnan(*hi) ? v : fmax(*hi, v);
    }
}

// Accuracies of 68-85% (with their error bars) get an axis around them, not one from 0 to
// 100, in line panels (y) and dot panels (x), as fractions and as percentages.
static void test_axes_fit_the_data(void **state) {
    (void)state;
    for (int scale = 1; scale <= 100; scale *= 100) {
        double x[4] = {1, 2, 3, 4}, y[4] = {0.68, 0.74, 0.81, 0.85}, err[4] = {0.01, 0.01, 0.02, 0.01};
        for (int i = 0; i < 4; i++) y[i] *= scale, err[i] *= scale;
        SvgSeries s = {"acc", 4, x, y, err, 0};
        SvgPanel p = {"accuracy", "epoch", "accuracy", 0, &s, 1, 0};
        const char *path = test_path(dir, "fit.svg");
        Err e = {0};
        assert_int_equal(svg_line_figure(path, "t", &p, 1, &e), ERR_OK);
        char *svg = read_svg(path);
        double lo, hi;
        tick_range(svg, "end", &lo, &hi);
        if (!(lo > 0.5 * scale && lo <= 0.67 * scale && hi >= 0.86 * scale && hi <= 0.95 * scale))
            fail_msg("y axis %g..%g for data 0.67..0.86 (x %d)", lo, hi, scale);
        free(svg);
        const char *cats[4] = {"a", "b", "c", "d"};
        SvgDotPanel d = {"accuracy", "accuracy", 4, cats, 1, NULL, y, err, 1};
        assert_int_equal(svg_dot_figure(path, "t", &d, 1, &e), ERR_OK);
        svg = read_svg(path);
        tick_range(svg, "middle", &lo, &hi);
        if (!(lo > 0.5 * scale && lo <= 0.67 * scale && hi >= 0.86 * scale && hi <= 0.95 * scale))
            fail_msg("x axis %g..%g for data 0.67..0.86 (x %d)", lo, hi, scale);
        free(svg);
    }
}

// A panel of differences asks for a line at zero: drawn once, and the axis stretched to
// include 0 when every value is above it.
static void test_zero_line(void **state) {
    (void)state;
    double x[3] = {16, 32, 64}, y[3] = {0.3, 0.5, 0.4}, err[3] = {0.1, 0.1, 0.1};
    SvgSeries s = {"difference", 3, x, y, err, 0};
    SvgPanel p = {"difference to G = 8", "G", "points", 1, &s, 1, 1};
    const char *path = test_path(dir, "zero.svg");
    Err e = {0};
    assert_int_equal(svg_line_figure(path, "t", &p, 1, &e), ERR_OK);
    char *svg = read_svg(path);
    assert_int_equal(count(svg, "<line class=\"zero\""), 1);
    double lo, hi;
    tick_range(svg, "end", &lo, &hi);
    if (!(lo <= 0 && hi >= 0.6)) fail_msg("y axis %g..%g for data 0.2..0.6 and the zero line", lo, hi);
    free(svg);
    p.zero_line = 0;  // without it: no line, and the axis fits the data alone
    assert_int_equal(svg_line_figure(path, "t", &p, 1, &e), ERR_OK);
    svg = read_svg(path);
    assert_int_equal(count(svg, "class=\"zero\""), 0);
    tick_range(svg, "end", &lo, &hi);
    if (!(lo > 0)) fail_msg("y axis from %g for data from 0.2 without a zero line", lo);
    free(svg);
}

// Series with error bars at the same x are drawn a few pixels apart (their bars would hide
// each other); without error bars they share the x.
static void test_error_bars_dodged(void **state) {
    (void)state;
    double x[2] = {8, 64}, y1[2] = {89.5, 89.7}, y2[2] = {89.6, 89.8}, err[2] = {0.2, 0.2};
    for (int with_bars = 0; with_bars < 2; with_bars++) {
        SvgSeries s[2] = {{"running", 2, x, y1, with_bars ? err : NULL, 0},
                          {"PreciseBN", 2, x, y2, with_bars ? err : NULL, 0}};
        SvgPanel p = {"acc", "G", "%", 1, s, 2, 0};
        const char *path = test_path(dir, "dodge.svg");
        Err e = {0};
        assert_int_equal(svg_line_figure(path, "t", &p, 1, &e), ERR_OK);
        char *svg = read_svg(path);
        double px[2];
        const char *at = svg;
        for (int k = 0; k < 2; k++) {
            at = strstr(at, "points=\"");
            assert_non_null(at);
            at += strlen("points=\"");
            px[k] = atof(at);
        }
        if (with_bars ? !(fabs(px[1] - px[0]) >= 2) : px[1] != px[0])
            fail_msg("%s error bars: the series start at x = %g and %g px", with_bars ? "with" : "without",
                     px[0], px[1]);
        free(svg);
    }
}

// One run at chance (10%) among runs at 67-85% does not squash them where the panel allows
// it (not by default): the axis breaks, with a
// segment around 10 and one around 67-85 (ticks every 10 or finer, none in between). Without
// such an outlier, or when error bars bridge the gap, there is one axis.
static void test_dot_axis_break(void **state) {
    (void)state;
    const char *cats[9] = {"none", "wd", "l2", "do", "d2", "ls", "bn", "nobn", "all"};
    double v[9] = {71.3, 71.4, 10.0, 68.8, 70.3, 72.5, 84.8, 67.1, 75.1}, err[9];
    for (int i = 0; i < 9; i++) err[i] = 0.5;
    SvgDotPanel d = {"test accuracy", "test accuracy (%)", 9, cats, 1, NULL, v, err, 0};
    const char *path = test_path(dir, "break.svg");
    Err e = {0};
    assert_int_equal(svg_dot_figure(path, "t", &d, 1, &e), ERR_OK);  // not breakable: 0..100
    char *s = read_svg(path);
    assert_int_equal(count(s, "class=\"axis-break\""), 0);
    assert_non_null(strstr(s, "text-anchor=\"middle\">40</text>"));
    free(s);
    d.breakable = 1;
    assert_int_equal(svg_dot_figure(path, "t", &d, 1, &e), ERR_OK);
    s = read_svg(path);
    assert_int_equal(count(s, "class=\"axis-break\""), 1);
    assert_non_null(strstr(s, "text-anchor=\"middle\">10</text>"));
    assert_non_null(strstr(s, "text-anchor=\"middle\">70</text>"));
    assert_non_null(strstr(s, "text-anchor=\"middle\">80</text>"));
    assert_null(strstr(s, "text-anchor=\"middle\">40</text>"));
    free(s);
    v[2] = 60;  // near enough to the rest: one axis
    assert_int_equal(svg_dot_figure(path, "t", &d, 1, &e), ERR_OK);
    s = read_svg(path);
    double lo, hi;
    tick_range(s, "middle", &lo, &hi);
    if (!(lo <= 59.5 && lo >= 50)) fail_msg("axis %g..%g should reach 59.5", lo, hi);
    assert_int_equal(count(s, "class=\"axis-break\""), 0);
    free(s);
    // two runs that learned (18, 20) among ten at chance, with error bars reaching down to the
    // rest: a break would give the same values two places, so there is none
    double w[12] = {9.8, 10.2, 10, 10.5, 11.3, 10, 10.7, 10.8, 11.3, 19.3, 10, 17.5},
           we[12] = {0.2, 0.2, 0, 0.7, 0.9, 0, 1.4, 1.2, 0.9, 9, 0, 5};
    const char *c12[12] = {"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"};
    SvgDotPanel d12 = {"test accuracy", "test accuracy (%)", 12, c12, 1, NULL, w, we, 1};
    assert_int_equal(svg_dot_figure(path, "t", &d12, 1, &e), ERR_OK);
    s = read_svg(path);
    assert_int_equal(count(s, "class=\"axis-break\""), 0);
    free(s);
}

// A legend per distinct set of series: two rows of panels with different series get two
// legends, each listing its own row's labels once; rows with the same series share one.
static void test_legend_per_row(void **state) {
    (void)state;
    double x[3] = {4, 16, 128}, y[3] = {75.2, 74.9, 75.1}, err[3] = {0.1, 0.5, 0.2};
    SvgSeries top[2] = {{"running statistics", 3, x, y, err, 0}, {"PreciseBN", 3, x, y, NULL, 0}},
              bottom[2] = {{"fixed epochs", 3, x, y, err, 0}, {"fixed steps", 3, x, y, NULL, 0}};
    SvgPanel p[4] = {{"a", "G", "acc", 1, top, 2, 0}, {"b", "G", "gap", 1, top, 2, 0},
                     {"c", "B", "acc", 1, bottom, 2, 0}, {"d", "B", "gap", 1, bottom, 2, 0}};
    const char *path = test_path(dir, "legends.svg");
    Err e = {0};
    assert_int_equal(svg_line_figure(path, "t", p, 4, &e), ERR_OK);
    char *s = read_svg(path);
    assert_int_equal(count(s, "<g class=\"legend\">"), 2);
    const char *names[4] = {"running statistics", "PreciseBN", "fixed epochs", "fixed steps"};
    for (int i = 0; i < 4; i++) {
        char t[64];
        snprintf(t, sizeof t, ">%s</text>", names[i]);
        assert_int_equal(count(s, t), 1);
    }
    // the bottom row's legend starts lower than the top row's: beside its own panels
    const char *second = strstr(strstr(s, "<g class=\"legend\">") + 1, "<g class=\"legend\">");
    assert_true(strstr(second, ">fixed epochs</text>") && !strstr(second, ">PreciseBN</text>"));
    free(s);
    p[2].series = p[3].series = top;  // the same series in both rows: one legend
    assert_int_equal(svg_line_figure(path, "t", p, 4, &e), ERR_OK);
    s = read_svg(path);
    assert_int_equal(count(s, "<g class=\"legend\">"), 1);
    assert_int_equal(count(s, ">PreciseBN</text>"), 1);
    free(s);
}

static void test_bad_arguments(void **state) {
    (void)state;
    Err e = {0};
    const char *path = test_path(dir, "bad.svg");
    SvgPanel p = {"t", "x", "y", 0, NULL, 1, 0};
    assert_int_equal(svg_line_figure(path, "t", &p, 0, &e), ERR_INPUT);
    assert_non_null(strstr(e.msg, "at least one panel"));
    assert_int_equal(svg_line_figure(path, "t", NULL, 1, &e), ERR_INPUT);
    assert_int_equal(svg_line_figure(path, "t", &p, 1, &e), ERR_INPUT);  // nseries 1, no array
    SvgSeries s = {"s", 3, NULL, NULL, NULL, 0};
    p.series = &s;
    assert_int_equal(svg_line_figure(path, "t", &p, 1, &e), ERR_INPUT);
    const char *cats[2] = {"a", "b"};
    double v[4] = {1, 2, 3, 4};
    SvgDotPanel d[2] = {{"t", "x", 2, cats, 2, NULL, v, NULL, 0}, {"t", "x", 1, cats, 1, NULL, v, NULL, 0}};
    assert_int_equal(svg_dot_figure(path, "t", d, 1, &e), ERR_INPUT);  // 2 series, no labels
    d[0].nseries = 1;
    assert_int_equal(svg_dot_figure(path, "t", d, 2, &e), ERR_INPUT);  // ncat differs
    assert_int_equal(svg_dot_figure(path, "t", d, 0, &e), ERR_INPUT);
    assert_null(test_read_file(path, NULL));  // nothing written
}

static int temp_files_in(const char *d) {
    DIR *dp = opendir(d);
    assert_non_null(dp);
    int n = 0;
    for (struct dirent *de; (de = readdir(dp));) n += strstr(de->d_name, ".tmp.") != NULL;
    closedir(dp);
    return n;
}

static void test_unwritable(void **state) {
    (void)state;
    double x[2] = {1, 2};
    SvgSeries s = {"s", 2, x, x, NULL, 0};
    SvgPanel p = {"t", "x", "y", 0, &s, 1, 0};
    Err e = {0};
    const char *path = test_path(dir, "no/such/dir/f.svg");
    assert_int_equal(svg_line_figure(path, "t", &p, 1, &e), ERR_RUNTIME);
    assert_non_null(strstr(e.msg, path));
    assert_non_null(strstr(e.msg, "No such file or directory"));
    // a directory in the way: the temporary is written, the rename fails, it is removed
    const char *sub = test_path(dir, "sub");
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", sub);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(svg_line_figure(sub, "t", &p, 1, &e), ERR_RUNTIME);
    assert_non_null(strstr(e.msg, sub));
    assert_int_equal(temp_files_in(dir), 0);
    // an existing figure is replaced whole
    const char *ok = test_path(dir, "replaced.svg");
    FILE *f = fopen(ok, "w");
    fputs("old", f);
    fclose(f);
    assert_int_equal(svg_line_figure(ok, "new", &p, 1, &e), ERR_OK);
    free(read_svg(ok));
    assert_int_equal(temp_files_in(dir), 0);
}

int main(void) {
    dir = test_tmpdir("test_svg");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nice_ticks),    cmocka_unit_test(test_line_figure),
        cmocka_unit_test(test_dot_figure),    cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_unwritable),   cmocka_unit_test(test_axes_fit_the_data),
        cmocka_unit_test(test_zero_line),
        cmocka_unit_test(test_error_bars_dodged),
        cmocka_unit_test(test_dot_axis_break), cmocka_unit_test(test_legend_per_row),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
