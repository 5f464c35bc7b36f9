// test_study.c: `regdist study bn` and `regdist study reg` end to end on a tiny CNN: the
// points are the runs the study says (checked in each run's saved config), results.csv,
// figure.svg and summary.md are written, a rerun trains nothing, a point whose run was cut
// short resumes and gives the same numbers, and bad arguments exit 2 with one line.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "io/checkpoint.h"
#include "launch/config.h"
#include "testutil.h"

static char dir[1024], data[1100], config[1100];

static int setup(void **state) {
    (void)state;
    snprintf(dir, sizeof dir, "%s", test_tmpdir("study"));
    snprintf(data, sizeof data, "%s/t12.h5", dir);
    snprintf(config, sizeof config, "%s/tests/configs/tiny_cnn.cfg", test_source_dir());
    RunResult r;
    test_run_regdist(&r, (const char *[]){"data", "synth", "--out", data, "--shape", "1,12,12",
                                          "--train", "120", "--val", "30", "--test", "30", NULL});
    if (r.status) fail_msg("data synth: %s", r.err);
    return 0;
}

static int count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

// The config a point's run saved in its checkpoint.
static void point_config(Config *c, const char *out, const char *id) {
    char path[2400];
    snprintf(path, sizeof path, "%s/%s/points/%s/last.h5", dir, out, id);
    CkptMeta m;
    Err e = {0};
    if (ckpt_read_meta(path, &m, &e)) fail_msg("%s", e.msg);
    if (config_load(c, path, m.config_text, NULL, 0, &e)) fail_msg("%s", e.msg);
    ckpt_meta_free(&m);
}

static const LayerSpec *find(const LayerSpec *s, int n, const char *name) {
    for (int i = 0; i < n; i++) {
        if (strcmp(s[i].name, name) == 0) return &s[i];
        const LayerSpec *c = find(s[i].children, s[i].nchildren, name);
        if (c) return c;
    }
    return NULL;
}

static void study(RunResult *r, const char *kind, const char *out, const char *extra) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' study %s --config '%s' --data '%s' --out '%s/%s' %s",
             test_regdist_bin(), kind, config, data, dir, out, extra);
    test_run_shell(r, cmd);
}

static char *read_point_file(const char *out, const char *id, const char *file) {
    char path[2400];
    snprintf(path, sizeof path, "%s/%s/points/%s/%s", dir, out, id, file);
    size_t len;
    char *t = test_read_file(path, &len);
    if (!t) fail_msg("%s is missing", path);
    return t;
}

static void test_bn_study(void **state) {
    (void)state;
    RunResult r;
    const char *args = "--epochs 1 --seeds 1 --groups 5,30 --batches 60 --set sched.warmup_steps=5";
    study(&r, "bn", "bn", args);
    if (r.status) fail_msg("exit %d: %s", r.status, r.err);
    // G 5 and 30 at B 30; the control at G 30: B 60 for 1 epoch (fixed epochs) and 2 (fixed
    // steps), and B 30, which is the G sweep's point and runs once
    assert_int_equal(count(r.out, "trained in"), 4);
    assert_int_equal(count(r.out, "finished before"), 2);
    Config c;
    point_config(&c, "bn", "G5-B30-E1-s1");
    assert_int_equal(c.bn_ghost, 5);
    assert_int_equal(c.bn_group, 1);
    assert_int_equal(c.precise_bn, 50);
    assert_int_equal(find(c.layers, c.nlayers, "bn2")->ghost, 5);
    config_free(&c);
    point_config(&c, "bn", "G30-B60-E1-s1");  // fixed epochs: LR x2, warmup 5 steps / 2
    assert_int_equal(c.batch, 60);
    assert_int_equal(c.bn_ghost, 30);
    assert_float_equal(c.optim.lr, 2e-3f, 1e-9);
    assert_int_equal(c.sched.warmup_steps, 3);
    config_free(&c);
    point_config(&c, "bn", "G30-B60-E2-s1");  // fixed steps: twice the epochs, same warmup
    assert_int_equal(c.epochs, 2);
    assert_int_equal(c.sched.warmup_steps, 5);
    config_free(&c);
    size_t len;
    char path[2400];
    snprintf(path, sizeof path, "%s/bn/results.csv", dir);
    char *csv = test_read_file(path, &len);
    assert_non_null(csv);
    assert_int_equal(count(csv, "\n"), 1 + 6);
    assert_non_null(strstr(csv, "\"ghost batches of 5\""));
    snprintf(path, sizeof path, "%s/bn/summary.md", dir);
    char *md = test_read_file(path, &len);
    assert_non_null(md);
    assert_non_null(strstr(md, "| G sweep | 5 | 30 | 1 |"));
    assert_non_null(strstr(md, "figure.svg"));
    snprintf(path, sizeof path, "%s/bn/figure.svg", dir);
    char *svg = test_read_file(path, &len);
    assert_non_null(svg);
    assert_non_null(strstr(svg, "PreciseBN"));

    // a rerun trains nothing and changes nothing
    char *metrics = read_point_file("bn", "G5-B30-E1-s1", "metrics.csv");
    study(&r, "bn", "bn", args);
    if (r.status) fail_msg("rerun: exit %d: %s", r.status, r.err);
    assert_int_equal(count(r.out, "trained in"), 0);
    assert_int_equal(count(r.out, "finished before"), 6);
    char *again = read_point_file("bn", "G5-B30-E1-s1", "metrics.csv");
    assert_string_equal(metrics, again);
    // a point killed before its summary resumes from its checkpoint, to the same results
    snprintf(path, sizeof path, "%s/bn/points/G5-B30-E1-s1/summary.json", dir);
    char *summary = test_read_file(path, &len);
    assert_int_equal(unlink(path), 0);
    study(&r, "bn", "bn", args);
    if (r.status) fail_msg("resume: exit %d: %s", r.status, r.err);
    assert_int_equal(count(r.out, "resumed in"), 1);
    assert_int_equal(count(r.out, "finished before"), 5);
    char *resumed = test_read_file(path, &len);
    assert_non_null(resumed);
    // the same accuracies (the timing field may differ)
    assert_memory_equal(summary, resumed, (size_t)(strstr(summary, "\"best_val_acc\"") - summary));
    snprintf(path, sizeof path, "%s/bn/results.csv", dir);
    char *csv2 = test_read_file(path, &len);
    assert_int_equal(count(csv2, "\n"), 1 + 6);
    free(csv), free(csv2), free(md), free(svg), free(metrics), free(again), free(summary),
        free(resumed);
}

// Every regularizer of the tiny CNN alone, from nothing: the saved configs say so.
static void test_reg_study(void **state) {
    (void)state;
    RunResult r;
    study(&r, "reg", "reg", "--epochs 1 --seeds 1");
    if (r.status) fail_msg("exit %d: %s", r.status, r.err);
    // none, AdamW, Adam+L2, dropout, Dropout2d, DropBlock, DropConnect, DropPath, label
    // smoothing, BatchNorm, all but BatchNorm, all on
    assert_int_equal(count(r.out, "trained in"), 12);
    Config c;
    point_config(&c, "reg", "none-E1-s1");
    assert_int_equal(c.dropout_on, 0);
    assert_int_equal(c.batchnorm, 0);
    assert_null(find(c.layers, c.nlayers, "bn1"));
    assert_float_equal(c.optim.weight_decay, 0, 0);
    assert_float_equal(c.label_smoothing, 0, 0);
    config_free(&c);
    point_config(&c, "reg", "dropout2d-E1-s1");
    assert_int_equal(c.dropout_on, 1);
    assert_float_equal(find(c.layers, c.nlayers, "drop1")->p, 0.1f, 1e-7);
    assert_float_equal(find(c.layers, c.nlayers, "drop3")->p, 0, 0);
    assert_float_equal(find(c.layers, c.nlayers, "block")->p, 0, 0);
    assert_float_equal(find(c.layers, c.nlayers, "fc1")->dropconnect, 0, 0);
    assert_float_equal(find(c.layers, c.nlayers, "res1")->drop_path, 0, 0);
    assert_null(find(c.layers, c.nlayers, "bn1"));
    config_free(&c);
    point_config(&c, "reg", "l2_adam_coupled-E1-s1");
    assert_int_equal(c.optim.kind, OPTIM_ADAM);
    assert_float_equal(c.optim.weight_decay, 0.01f, 1e-9);
    config_free(&c);
    point_config(&c, "reg", "batchnorm-E1-s1");
    assert_int_equal(c.dropout_on, 0);
    assert_non_null(find(c.layers, c.nlayers, "bn1"));
    config_free(&c);
    point_config(&c, "reg", "all_on-E1-s1");
    assert_int_equal(c.dropout_on, 1);
    assert_float_equal(find(c.layers, c.nlayers, "res1")->drop_path, 0.2f, 1e-7);
    assert_float_equal(c.label_smoothing, 0.1f, 1e-7);
    config_free(&c);
    char path[2400];
    size_t len;
    snprintf(path, sizeof path, "%s/reg/summary.md", dir);
    char *md = test_read_file(path, &len);
    assert_non_null(md);
    assert_non_null(strstr(md, "| + DropBlock |"));
    free(md);
}

static void expect_usage(const char *kind, const char *extra, const char *needle) {
    RunResult r;
    study(&r, kind, "bad", extra);
    test_expect_bad_input(&r, needle);
}

static void test_bad_arguments(void **state) {
    (void)state;
    expect_usage("dropout", "", "bn or reg");
    expect_usage("bn", "--preset fast", "--preset must be quick or full");
    expect_usage("bn", "--groups 4,x", "--groups takes positive integers");
    expect_usage("bn", "--seeds 0", "--seeds");
    expect_usage("bn", "--frobnicate", "unknown or incomplete option");
    expect_usage("bn", "--groups 7 --batches 30", "no point of the sweep can be made");
    expect_usage("reg", "--set train.bacth=3", "did you mean train.batch");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bn_study),
        cmocka_unit_test(test_reg_study),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
