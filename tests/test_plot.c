// test_plot.c: reading metrics.csv back (io/metrics) and `regdist plot` end to end: a figure
// naming every run, labels told apart when run directories share a name or given by --label,
// no panel calling running train-mode accuracy a gap, and every bad input ending with exit
// code 2 and one line that says what is wrong.
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "io/metrics.h"
#include "testutil.h"

static const char *dir;

#define HEADER "epoch,step,lr,train_loss,train_acc,val_loss,val_acc,seconds,images_per_s\n"

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

// A run directory dir/name holding metrics.csv with the given text; returns its path.
static const char *make_run(const char *name, const char *csv) {
    static char runs[8][1024];
    static int next;
    char *run = runs[next++ % 8];
    snprintf(run, sizeof runs[0], "%s/%s", dir, name);
    char cmd[1100];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", run);
    assert_int_equal(system(cmd), 0);
    write_file(test_path(run, "metrics.csv"), csv);
    return run;
}

// The floating-point fields of a row, in file order.
static void fields(const MetricsRow *m, double *v) {
    double f[7] = {m->lr, m->train_loss, m->train_acc, m->val_loss, m->val_acc, m->seconds,
                   m->images_per_s};
    memcpy(v, f, sizeof f);
}

static void test_read_round_trip(void **state) {
    (void)state;
    const char *path = test_path(dir, "rt.csv");
    Err e = {0};
    FILE *f = metrics_open(path, 0, &e);
    assert_non_null(f);
    MetricsRow w[3] = {{1, 10, 1e-3, 2.25, 0.5, 1.5, 0.625, 1.5, 1000},
                       {2, 20, 3.6e-05, 1.125, 0.75, NAN, NAN, 1.25, 2000},  // no val split
                       {3, 30, 0, NAN, 0.875, 0.5, 0.75, 1, 3000}};           // diverged loss
    for (int i = 0; i < 3; i++) assert_int_equal(metrics_write(f, &w[i], &e), ERR_OK);
    fclose(f);
    MetricsRow *r;
    int n;
    assert_int_equal(metrics_read(path, &r, &n, &e), ERR_OK);
    assert_int_equal(n, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(r[i].epoch, w[i].epoch);
        assert_int_equal(r[i].step, w[i].step);
        double a[7], b[7];
        fields(&w[i], a), fields(&r[i], b);
        for (int k = 0; k < 7; k++)
            if (isnan(a[k]) ? !isnan(b[k]) : fabs(a[k] - b[k]) > 1e-6 * fabs(a[k]))
                fail_msg("row %d field %d: wrote %g, read %g", i, k, a[k], b[k]);
    }
    free(r);
    write_file(path, HEADER);  // no rows yet: fine
    assert_int_equal(metrics_read(path, &r, &n, &e), ERR_OK);
    assert_int_equal(n, 0);
    free(r);
}

// metrics_read fails on text with ERR_INPUT and a message containing want.
static void expect_malformed(const char *text, const char *want) {
    const char *path = test_path(dir, "bad.csv");
    write_file(path, text);
    MetricsRow *r = (MetricsRow *)1;
    int n = 7;
    Err e = {0};
    assert_int_equal(metrics_read(path, &r, &n, &e), ERR_INPUT);
    if (!strstr(e.msg, want)) fail_msg("expected '%s' in: %s", want, e.msg);
    assert_null(r);
    assert_int_equal(n, 0);
}

static void test_read_malformed(void **state) {
    (void)state;
    expect_malformed("", "empty file");
    expect_malformed("epoch,step\n1,2\n", "bad.csv:1: not a metrics.csv header");
    expect_malformed(HEADER "1,10,0.1,2,0.5,1,0.5,1,100\n2,20,0.1,2,0.5,1,0.5\n",
                     "bad.csv:3: expected 9 fields, got 7");
    expect_malformed(HEADER "1,10,0.1,2,0.5,1,0.5,1,100,7\n", "bad.csv:2: more than 9 fields");
    expect_malformed(HEADER "1,10,0.1,abc,0.5,1,0.5,1,100\n", "bad.csv:2: train_loss: 'abc'");
    expect_malformed(HEADER "1,10,,2,0.5,1,0.5,1,100\n", "bad.csv:2: lr: '' is not a number");
    expect_malformed(HEADER "1.5,10,0.1,2,0.5,1,0.5,1,100\n", "bad.csv:2: epoch: '1.5'");
    expect_malformed(HEADER "\n1,-3,0.1,2,0.5,1,0.5,1,100\n", "bad.csv:3: step: '-3'");
    Err e = {0};
    MetricsRow *r;
    int n;
    assert_int_equal(metrics_read(test_path(dir, "absent.csv"), &r, &n, &e), ERR_INPUT);
    assert_non_null(strstr(e.msg, "absent.csv: cannot read: No such file or directory"));
}

#define CSV_A HEADER "1,10,0.001,2.1,0.4,1.9,0.45,1.0,500.0\n2,20,0.002,1.5,0.6,1.4,0.62,1.0,500.0\n"
#define CSV_B HEADER "1,10,0.001,2.0,0.45,,,1.0,500.0\n2,20,0.0005,1.2,0.7,,,1.0,500.0\n"


static void test_plot_two_runs(void **state) {
    (void)state;
    const char *a = make_run("run_alpha", CSV_A), *b = make_run("run_beta", CSV_B);
    const char *fig = test_path(dir, "fig.svg");
    RunResult r;
    // one run given as its directory, the other as its metrics.csv
    test_run_regdist(&r, (const char *[]){"plot", "--out", fig, "--title", "A & B", a,
                                          test_path(b, "metrics.csv"), NULL});
    test_expect_ok(&r);
    char *s = test_read_file(fig, NULL);
    assert_non_null(s);
    assert_true(strncmp(s, "<?xml", 5) == 0 && strstr(s, "</svg>"));
    assert_non_null(strstr(s, ">run_alpha</text>"));
    assert_non_null(strstr(s, ">run_beta</text>"));
    assert_non_null(strstr(s, "A &amp; B"));
    // loss and accuracy: train and val of alpha, train of beta; lr: both. No gap panel:
    // metrics.csv's train_acc is train-mode and running, so train_acc - val_acc is no gap
    int lines = 0;
    for (const char *p = s; (p = strstr(p, "<polyline")); p++) lines++;
    assert_int_equal(lines, 3 + 3 + 2);
    assert_null(strstr(s, "gap"));
    assert_non_null(strstr(s, "accuracy: running train (solid), val (dashed)"));
    // the axis fits the accuracies (40-62%), it does not run from 0 to 100
    assert_null(strstr(s, "text-anchor=\"end\">100</text>"));
    free(s);
}

static void test_plot_same_names(void **state) {
    (void)state;
    const char *x = make_run("x/run", CSV_A), *y = make_run("y/run", CSV_B);
    const char *fig = test_path(dir, "same.svg");
    RunResult r;
    test_run_regdist(&r, (const char *[]){"plot", "--out", fig, x, y, x, NULL});
    test_expect_ok(&r);
    char *s = test_read_file(fig, NULL);
    assert_non_null(strstr(s, ">x/run</text>"));
    assert_non_null(strstr(s, ">y/run</text>"));
    assert_non_null(strstr(s, ">x/run (2)</text>"));
    free(s);
}

// --label names the runs in order; runs after the last label keep their directory's name.
static void test_plot_labels(void **state) {
    (void)state;
    const char *a = make_run("lab_a", CSV_A), *b = make_run("lab_b", CSV_B);
    const char *fig = test_path(dir, "labels.svg");
    RunResult r;
    test_run_regdist(&r, (const char *[]){"plot", "--label", "BatchNorm only, 12 epochs, seed 1",
                                          "--out", fig, a, b, NULL});
    test_expect_ok(&r);
    char *s = test_read_file(fig, NULL);
    assert_non_null(strstr(s, ">BatchNorm only, 12 epochs, seed 1</text>"));
    assert_null(strstr(s, ">lab_a</text>"));
    assert_non_null(strstr(s, ">lab_b</text>"));
    free(s);
    test_run_regdist(&r, (const char *[]){"plot", "--out", fig, "--label", "x", "--label", "y",
                                          "--label", "z", a, b, NULL});
    test_expect_bad_input(&r, "3 --label options for 2 runs");
    test_run_regdist(&r, (const char *[]){"plot", "--out", fig, "--label", "", a, NULL});
    test_expect_bad_input(&r, "--label needs a name");
}

static void test_plot_bad_input(void **state) {
    (void)state;
    const char *fig = test_path(dir, "bad.svg");
    const char *good = make_run("good", CSV_A);
    RunResult r;
    const char *missing = test_path(dir, "no_such_run");
    test_run_regdist(&r, (const char *[]){"plot", "--out", fig, good, missing, NULL});
    test_expect_bad_input(&r, "no_such_run: no such run directory");
    const char *broken = make_run("broken", HEADER "1,10,0.001,2.1,0.4,1.9,0.45,1.0,500.0\n"
                                                   "2,20,0.002,oops,0.6,1.4,0.62,1.0,500.0\n");
    test_run_regdist(&r, (const char *[]){"plot", "--out", fig, broken, NULL});
    test_expect_bad_input(&r, "broken/metrics.csv:3: train_loss: 'oops' is not a number");
    const char *empty = make_run("empty", HEADER);
    test_run_regdist(&r, (const char *[]){"plot", "--out", fig, empty, NULL});
    test_expect_bad_input(&r, "no epochs yet");
    test_run_regdist(&r, (const char *[]){"plot", NULL});
    test_expect_bad_input(&r, "--out FIG.svg is required");
    test_run_regdist(&r, (const char *[]){"plot", "--out", fig, NULL});
    test_expect_bad_input(&r, "give at least one run directory");
    test_run_regdist(&r, (const char *[]){"plot", "--out", fig, "--colour", "red", good, NULL});
    test_expect_bad_input(&r, "unknown or incomplete option '--colour'");
    test_run_regdist(&r, (const char *[]){"plot", good, "--out", NULL});
    test_expect_bad_input(&r, "unknown or incomplete option '--out'");
    assert_null(test_read_file(fig, NULL));  // nothing written by any of them
    // an --out in a directory that does not exist is the user's to fix: exit 2, one line
    test_run_regdist(&r, (const char *[]){"plot", "--out", test_path(dir, "no/dir/f.svg"), good,
                                          NULL});
    test_expect_bad_input(&r, "no/dir/f.svg: no directory");
}

static void test_plot_help(void **state) {
    (void)state;
    RunResult r;
    test_run_regdist(&r, (const char *[]){"plot", "--help", NULL});
    test_expect_ok(&r);
    assert_non_null(strstr(r.out, "usage: regdist plot --out FIG.svg"));
    test_run_regdist(&r, (const char *[]){"--help", NULL});
    assert_non_null(strstr(r.out, "  plot "));
}

int main(void) {
    dir = test_tmpdir("test_plot");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_round_trip), cmocka_unit_test(test_read_malformed),
        cmocka_unit_test(test_plot_two_runs),   cmocka_unit_test(test_plot_same_names),
        cmocka_unit_test(test_plot_bad_input),  cmocka_unit_test(test_plot_help),
        cmocka_unit_test(test_plot_labels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
