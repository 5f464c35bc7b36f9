// test_study.c: `regdist study bn`, `study reg` and `study batch` end to end on a tiny CNN: the
// points are the runs the study says (checked in each run's saved config), results.csv,
// figure.svg and summary.md are written, a rerun trains nothing, a point whose run was cut
// short resumes and gives the same numbers, and bad arguments exit 2 with one line. What the
// files say: results.csv holds fractions, empty where a value is missing (null in a run's
// summary.json); summary.md's headers carry units; figures say how many seeds and draw error
// bars only from two (95% intervals); legends and plot labels are human, not point ids; the
// summaries' cells carry mean ± sd [95% CI] computed as by hand from results.csv, and their
// paired-difference tables name each comparison with its interval and verdict.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <math.h>

#include <cmocka.h>

#include "io/checkpoint.h"
#include "launch/config.h"
#include "runutil.h"
#include "testutil.h"

static char dir[1024], data[1100], data960[1100], config[1100];

static int setup(void **state) {
    (void)state;
    snprintf(dir, sizeof dir, "%s", test_tmpdir("study"));
    snprintf(data, sizeof data, "%s/t12.h5", dir);
    snprintf(config, sizeof config, "%s/tests/configs/tiny_cnn.cfg", test_source_dir());
    RunResult r;
    test_run_regdist(&r, (const char *[]){"data", "synth", "--out", data, "--shape", "1,12,12",
                                          "--train", "120", "--val", "30", "--test", "30", NULL});
    if (r.status) fail_msg("data synth: %s", r.err);
    // for study batch: 960 = 32 x the config's batch 30, Hoffer et al.'s ratio 4096 / 128
    snprintf(data960, sizeof data960, "%s/t12x960.h5", dir);
    test_run_regdist(&r, (const char *[]){"data", "synth", "--out", data960, "--shape", "1,12,12",
                                          "--train", "960", "--val", "30", "--test", "60", NULL});
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
    loaded_run_config(c, path);
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
    assert_non_null(strstr(md, "| test acc (%) |"));  // every header with its unit
    assert_non_null(strstr(md, "| train − test gap (points) |"));
    assert_non_null(strstr(md, "| PreciseBN test acc (%) |"));
    assert_non_null(strstr(md, "| 1 | 4 |"));  // one seed: values without ± (steps: 120 / 30)
    assert_null(strstr(md, "±"));
    assert_non_null(strstr(md, "1 seed."));
    snprintf(path, sizeof path, "%s/bn/figure.svg", dir);
    char *svg = test_read_file(path, &len);
    assert_non_null(svg);
    assert_non_null(strstr(svg, "PreciseBN"));
    // one seed: the title says so and there are no error bars (paths with fill="none")
    assert_non_null(strstr(svg, "BatchNorm group size study (1 seed)"));
    assert_null(strstr(svg, "<path fill=\"none\""));
    assert_null(strstr(svg, "mean"));
    // the G sweep's series and the control's are different: a legend for each row
    assert_int_equal(count(svg, "<g class=\"legend\">"), 2);
    assert_int_equal(count(svg, ">fixed steps</text>"), 1);
    assert_non_null(strstr(svg, "train − test gap (points)"));
    // results.csv: the human label of each point, fractions
    assert_non_null(strstr(csv, ",G5-B30-E1-s1,\"G = 5 (ghost batches of 5), B = 30, 1 epoch, "
                                "seed 1\","));
    assert_non_null(strstr(csv, "\"B = 60, G = 30 (ghost batches of 30), fixed steps, 2 epochs, "
                                "seed 1\""));

    // the same command again is refused: the directory holds a study
    char *metrics = read_point_file("bn", "G5-B30-E1-s1", "metrics.csv");
    study(&r, "bn", "bn", args);
    test_expect_bad_input(&r, "already holds a study");
    // a rerun with --resume trains nothing and changes nothing
    char resume_args[512];
    snprintf(resume_args, sizeof resume_args, "%s --resume", args);
    study(&r, "bn", "bn", resume_args);
    if (r.status) fail_msg("rerun: exit %d: %s", r.status, r.err);
    assert_int_equal(count(r.out, "trained in"), 0);
    assert_int_equal(count(r.out, "finished before"), 6);
    char *again = read_point_file("bn", "G5-B30-E1-s1", "metrics.csv");
    assert_string_equal(metrics, again);
    // its summary gives the command that makes the sweep, and says it was continued
    snprintf(path, sizeof path, "%s/bn/summary.md", dir);
    char *md_resumed = test_read_file(path, &len);
    char *cmd = strstr(md_resumed, "Command: `"), *cmd_end = cmd ? strchr(cmd + 10, '`') : NULL;
    assert_non_null(cmd_end);
    assert_non_null(strstr(cmd_end, "` (this summary: the same command continued with `--resume`)."));
    *cmd_end = '\0';
    assert_null(strstr(cmd, "--resume"));
    free(md_resumed);
    // a point killed before its summary resumes from its checkpoint, to the same results
    snprintf(path, sizeof path, "%s/bn/points/G5-B30-E1-s1/summary.json", dir);
    char *summary = test_read_file(path, &len);
    assert_int_equal(unlink(path), 0);
    study(&r, "bn", "bn", resume_args);
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
    // --overwrite starts afresh: every run trained again, none found finished
    char overwrite_args[512];
    snprintf(overwrite_args, sizeof overwrite_args, "%s --overwrite", args);
    study(&r, "bn", "bn", overwrite_args);
    if (r.status) fail_msg("overwrite: exit %d: %s", r.status, r.err);
    assert_int_equal(count(r.out, "trained in"), 4);
    assert_int_equal(count(r.out, "finished before"), 2);  // the shared points, as at the start
}

// The value in column `name` of results.csv's row for point id, copied into out ("" when the
// cell is empty); fails the test when there is no such column or row.
static void csv_cell(const char *csv, const char *id, const char *name, char *out, size_t n) {
    int col = -1, c = 0;
    const char *p = csv;
    for (; *p && *p != '\n'; c++) {  // the header has no quotes
        size_t len = strcspn(p, ",\n");
        if (len == strlen(name) && !strncmp(p, name, len)) col = c;
        p += len + (p[len] == ',');
    }
    if (col < 0) fail_msg("results.csv has no column %s", name);
    char key[128];
    snprintf(key, sizeof key, ",%s,", id);
    const char *row = strstr(csv, key);
    if (!row) fail_msg("results.csv has no row for %s", id);
    while (row > csv && row[-1] != '\n') row--;
    for (c = 0; c < col; c++) {  // skip fields, quoted ones whole
        if (*row == '"') row = strchr(row + 1, '"') + 1;
        else row += strcspn(row, ",\n");
        row++;
    }
    size_t len = *row == '"' ? (size_t)(strchr(row + 1, '"') - row + 1) : strcspn(row, ",\n");
    snprintf(out, n, "%.*s", (int)len, row);
}

// The t quantile for one degree of freedom (two seeds), as launch/stats.c tables it.
#define T975_DF1 12.7062

// A table cell as the summary should print it for two seeds' values a and b (percent):
// mean ± sd [95% CI], worked by hand.
static void cell_of_two(double a, double b, char *out, size_t n) {
    double m = (a + b) / 2, sd = fabs(a - b) / sqrt(2), half = T975_DF1 * sd / sqrt(2);
    snprintf(out, n, " | %.2f ± %.2f [%.2f, %.2f]", m, sd, m - half, m + half);
}

static double csv_num(const char *csv, const char *id, const char *name) {
    char cell[256];
    csv_cell(csv, id, name, cell, sizeof cell);
    if (!*cell) fail_msg("%s of %s is empty", name, id);
    return atof(cell);
}

// The full preset at --batch 60 (the config's is 30): the BatchNorm-only line at every G and
// the config's line at the smallest, middle and largest G, the LR scaled by 2, the warmup kept
// in samples, PreciseBN over the samples of 50 batches of 30; no B control. The summary's
// cells and paired differences are the ones worked by hand from results.csv.
static void test_bn_full_preset(void **state) {
    (void)state;
    RunResult r;
    study(&r, "bn", "bnfull", "--preset full --batch 60 --groups 5,15,30,60 --epochs 1 --seeds 2");
    if (r.status) fail_msg("exit %d: %s", r.status, r.err);
    assert_int_equal(count(r.out, "trained in"), (4 + 3) * 2);
    assert_int_equal(count(r.out, "finished before"), 0);
    Config c;
    point_config(&c, "bnfull", "bnonly-G5-B60-E1-s1");
    assert_int_equal(c.batch, 60);
    assert_int_equal(c.epochs, 1);
    assert_int_equal(c.bn_ghost, 5);
    assert_int_equal(c.bn_group, 1);
    assert_float_equal(c.optim.lr, 2e-3f, 1e-9);
    assert_int_equal(c.sched.warmup_steps, 3);  // 5 steps of 30 samples: 2.5 of 60, rounded
    assert_int_equal(c.precise_bn, 25);         // 25 x 60 = 50 x 30 samples
    assert_int_equal(c.dropout_on, 0);          // BatchNorm the only regularizer
    assert_float_equal(c.optim.weight_decay, 0, 0);
    assert_float_equal(c.label_smoothing, 0, 0);
    assert_non_null(find(c.layers, c.nlayers, "bn1"));
    config_free(&c);
    point_config(&c, "bnfull", "G60-B60-E1-s2");  // the config's regularizers, whole batch
    assert_int_equal(c.batch, 60);
    assert_int_equal(c.bn_ghost, 0);
    assert_int_equal(c.seed, 2);
    assert_int_equal(c.dropout_on, 1);
    assert_float_equal(c.optim.weight_decay, 0.01f, 1e-9);
    assert_float_equal(c.label_smoothing, 0.1f, 1e-7);
    assert_float_equal(c.optim.lr, 2e-3f, 1e-9);
    assert_int_equal(c.precise_bn, 25);
    config_free(&c);
    char path[2400];
    snprintf(path, sizeof path, "%s/bnfull/points/G30-B60-E1-s1/summary.json", dir);
    assert_int_equal(access(path, F_OK), 0);  // the middle of 5,15,30,60
    snprintf(path, sizeof path, "%s/bnfull/points/G15-B60-E1-s1", dir);
    assert_int_equal(access(path, F_OK), -1);

    size_t len;
    snprintf(path, sizeof path, "%s/bnfull/results.csv", dir);
    char *csv = test_read_file(path, &len);
    assert_non_null(csv);
    assert_int_equal(count(csv, "\n"), 1 + 14);
    assert_null(strstr(csv, "B sweep"));
    assert_non_null(strstr(csv, "\"BatchNorm only, G = 5 (ghost batches of 5), B = 60, 1 epoch, "
                                "seed 2\""));
    snprintf(path, sizeof path, "%s/bnfull/summary.md", dir);
    char *md = test_read_file(path, &len);
    assert_non_null(md);
    // G = 15's test accuracy: mean ± sd [95% CI] of its two seeds
    double a = 100 * csv_num(csv, "bnonly-G15-B60-E1-s1", "test_acc");
    double b = 100 * csv_num(csv, "bnonly-G15-B60-E1-s2", "test_acc");
    char want[256];
    cell_of_two(a, b, want, sizeof want);
    const char *row = strstr(md, "| G sweep, BatchNorm only | 15 | 60 | 1 |");
    assert_non_null(row);
    if (!strstr(row, want) || strstr(row, want) > strchr(row, '\n'))
        fail_msg("'%s' not in the G = 15 row: %.*s", want, (int)strcspn(row, "\n"), row);
    assert_non_null(strstr(md, "Cells: mean ± sd [95% confidence interval of the mean"));
    // G = 15 - G = 5, seed by seed: the mean difference, its interval and the verdict
    double d1 = a - 100 * csv_num(csv, "bnonly-G5-B60-E1-s1", "test_acc");
    double d2 = b - 100 * csv_num(csv, "bnonly-G5-B60-E1-s2", "test_acc");
    double m = (d1 + d2) / 2, half = T975_DF1 * fabs(d1 - d2) / 2;
    snprintf(want, sizeof want, "| G = 15 − G = 5 | test acc (points) | %+.2f | [%+.2f, %+.2f] "
             "| 2 | %s |", m, m - half, m + half,
             m - half > 0 || m + half < 0 ? "an effect" : "no effect at this power");
    if (!strstr(md, want)) fail_msg("'%s' not in summary.md:\n%s", want, md);
    assert_non_null(strstr(md, "**Paired differences, G sweep, BatchNorm only: each G against "
                               "G = 5**"));
    assert_non_null(strstr(md, "**Paired differences, G sweep: each G against G = 5**"));
    assert_non_null(strstr(md, "| G = 60 − G = 5 | PreciseBN test acc (points) | "));
    assert_non_null(strstr(md, "| regularizers on − BatchNorm only, G = 30 | test acc (points) | "));
    // every paired row has two seeds and a verdict: 3 metrics x (3 + 2 + 3 comparisons)
    assert_int_equal(count(md, "| 2 | an effect |") + count(md, "| 2 | no effect at this power |"),
                     3 * 8);
    assert_non_null(strstr(md, "Train accuracy reached 99% at "));
    // and when training fitted, per line, from the runs' metrics.csv
    assert_int_equal(count(md, "Train-mode accuracy (averaged over each epoch's batches as it "
                               "trained) "), 2);
    // the command that made it, and what it cost
    assert_non_null(strstr(md, "Command: `regdist study bn --config "));
    assert_non_null(strstr(md, " --preset full --batch 60 --groups 5,15,30,60 --epochs 1 --seeds 2`. "));
    assert_non_null(strstr(md, "Training time of its runs: "));
    snprintf(path, sizeof path, "%s/bnfull/figure.svg", dir);
    char *svg = test_read_file(path, &len);
    assert_non_null(svg);
    assert_non_null(strstr(svg, "BatchNorm group size study (mean and 95% CI over 2 seeds): "
                                "tiny_cnn.cfg, all training images, B = 60, 1 epoch per run"));
    assert_non_null(strstr(svg, ">BatchNorm only, PreciseBN</text>"));
    assert_non_null(strstr(svg, ">all regularizers on, running statistics</text>"));
    assert_non_null(strstr(svg, "test accuracy difference to G = 5, same seed"));
    assert_non_null(strstr(svg, "<path fill=\"none\""));  // error bars
    assert_non_null(strstr(svg, "<line class=\"zero\""));  // under the differences
    free(csv), free(md), free(svg);

    // --lines bn-only: the BatchNorm-only line alone, under the same ids
    study(&r, "bn", "bnonly", "--preset full --batch 60 --groups 30,60 --lines bn-only --epochs 1 "
          "--seeds 1");
    if (r.status) fail_msg("--lines bn-only: exit %d: %s", r.status, r.err);
    assert_int_equal(count(r.out, "trained in"), 2);
    point_config(&c, "bnonly", "bnonly-G30-B60-E1-s1");
    assert_int_equal(c.bn_ghost, 30);
    assert_int_equal(c.dropout_on, 0);
    config_free(&c);
    snprintf(path, sizeof path, "%s/bnonly/points/G60-B60-E1-s1", dir);
    assert_int_equal(access(path, F_OK), -1);
    snprintf(path, sizeof path, "%s/bnonly/summary.md", dir);
    md = test_read_file(path, &len);
    assert_non_null(md);
    assert_non_null(strstr(md, " --lines bn-only --epochs 1 --seeds 1`. "));
    assert_null(strstr(md, "**Paired differences, G sweep: each G"));
    free(md);
}

// Hoffer et al.'s experiment at the tiny CNN's batch b = 30 and B = 960 (their 4096 / 128):
// the small batch, then at B the LR x sqrt(32) with full-batch statistics, with ghost batches
// of 30, and with ghost batches for 32 x the epochs (the warmup kept in steps). Their MNIST
// numbers stand beside ours.
static void test_batch_study(void **state) {
    (void)state;
    RunResult r;
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' study batch --config '%s' --data '%s' --out '%s/batch' "
             "--epochs 1 --seeds 2 --batches 960", test_regdist_bin(), config, data960, dir);
    test_run_shell(&r, cmd);
    if (r.status) fail_msg("exit %d: %s", r.status, r.err);
    assert_int_equal(count(r.out, "trained in"), 4 * 2);
    Config c;
    point_config(&c, "batch", "small-B30-G30-E1-s1");
    assert_int_equal(c.batch, 30);
    assert_int_equal(c.bn_ghost, 0);
    assert_float_equal(c.optim.lr, 1e-3f, 1e-9);
    assert_int_equal(c.sched.warmup_steps, 5);
    config_free(&c);
    point_config(&c, "batch", "large-B960-G960-E1-s1");
    assert_int_equal(c.batch, 960);
    assert_int_equal(c.bn_ghost, 0);
    assert_float_equal(c.optim.lr, 1e-3f * sqrtf(32), 1e-8);
    assert_int_equal(c.sched.warmup_steps, 0);  // 5 x 30 samples is under one step of 960
    assert_int_equal(c.epochs, 1);
    config_free(&c);
    point_config(&c, "batch", "ghost-B960-G30-E1-s2");
    assert_int_equal(c.bn_ghost, 30);
    assert_int_equal(c.seed, 2);
    assert_float_equal(c.optim.lr, 1e-3f * sqrtf(32), 1e-8);
    config_free(&c);
    point_config(&c, "batch", "adapted-B960-G30-E32-s1");
    assert_int_equal(c.epochs, 32);
    assert_int_equal(c.bn_ghost, 30);
    assert_int_equal(c.sched.warmup_steps, 5);
    config_free(&c);
    char path[2400];
    size_t len;
    snprintf(path, sizeof path, "%s/batch/summary.md", dir);
    char *md = test_read_file(path, &len);
    assert_non_null(md);
    assert_non_null(strstr(md, "| Hoffer et al., MNIST test acc (%) |"));
    assert_non_null(strstr(md, "| B = 30 | 30 | 30 (whole batch) | 0.001 | 1 | 32 |"));
    assert_non_null(strstr(md, " | 98.27 |\n"));
    assert_non_null(strstr(md, " | 97.05 (LR not scaled) |\n"));
    assert_non_null(strstr(md, " | 98.53 |\n"));
    assert_non_null(strstr(md, "| B = 960, ghost batches | 960 | 30 (ghost batches of 30) | "
                               "0.00566 | 1 | 1 |"));
    assert_non_null(strstr(md, "**Paired differences, each condition against B = 30**"));
    assert_non_null(strstr(md, "| B = 960, ghost batches, adapted schedule − B = 30 | test acc "
                               "(points) | "));
    assert_int_equal(count(md, "| 2 | an effect |") + count(md, "| 2 | no effect at this power |"),
                     3 * 3);
    snprintf(path, sizeof path, "%s/batch/results.csv", dir);
    char *csv = test_read_file(path, &len);
    assert_int_equal(count(csv, "\n"), 1 + 8);
    assert_non_null(strstr(csv, "\"B = 960, ghost batches, adapted schedule, G = 30 (ghost "
                                "batches of 30), 32 epochs, seed 1\""));
    snprintf(path, sizeof path, "%s/batch/figure.svg", dir);
    char *svg = test_read_file(path, &len);
    assert_non_null(strstr(svg, "Large-batch training and its recovery (mean and 95% CI over 2 "
                                "seeds)"));
    free(md), free(csv), free(svg);
}

// Every regularizer of the tiny CNN alone, from nothing: the saved configs say so.
static void test_reg_study(void **state) {
    (void)state;
    RunResult r;
    study(&r, "reg", "reg", "--epochs 1 --seeds 1");
    if (r.status) fail_msg("exit %d: %s", r.status, r.err);
    // none, AdamW, Adam+L2, dropout, Dropout2d, DropBlock, DropConnect, DropPath, label
    // smoothing, BatchNorm, all but BatchNorm, all on; random crop, flips, random erasing,
    // mixup, cutmix, all on + augmentation
    assert_int_equal(count(r.out, "trained in"), 18);
    Config c;
    point_config(&c, "reg", "random_crop-E1-s1");  // one augmentation, from nothing
    assert_int_equal(c.augment_on, 1);
    assert_int_equal(c.augment.crop_pad, 4);
    assert_float_equal(c.augment.hflip, 0, 0);
    assert_float_equal(c.augment.mixup, 0, 0);
    assert_int_equal(c.dropout_on, 0);
    assert_int_equal(c.batchnorm, 0);
    config_free(&c);
    point_config(&c, "reg", "all_on_augmentation-E1-s1");  // the config, and augmentation
    assert_int_equal(c.augment_on, 1);
    assert_int_equal(c.dropout_on, 1);
    assert_float_equal(c.augment.mixup, 0.2f, 1e-7);
    assert_float_equal(c.augment.erase, 0.25f, 1e-7);
    assert_float_equal(c.augment.cutmix, 0, 0);
    config_free(&c);
    point_config(&c, "reg", "none-E1-s1");
    assert_int_equal(c.augment_on, 0);
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
    assert_non_null(strstr(md, "| test acc (%) | train − test gap (points) | test ECE (%) |"));
    assert_non_null(strstr(md, "test loss (cross-entropy)"));
    // the paired differences to none, and all on against BatchNorm only; one seed: no interval
    assert_non_null(strstr(md, "**Paired differences, each condition against none**"));
    assert_non_null(strstr(md, "| + BatchNorm − none | test acc (points) | "));
    assert_non_null(strstr(md, "| all on − none | test ECE (points) | "));
    assert_non_null(strstr(md, "| all on − + BatchNorm | test acc (points) | "));
    assert_non_null(strstr(md, "| 1 | one seed: no interval |"));
    assert_null(strstr(md, "| an effect |"));
    snprintf(path, sizeof path, "%s/reg/results.csv", dir);
    char *csv = test_read_file(path, &len);
    assert_non_null(csv);
    assert_non_null(strstr(csv, ",train_test_gap,"));
    assert_non_null(strstr(csv, "\"BatchNorm only, 1 epoch, seed 1\""));
    assert_non_null(strstr(csv, "\"no regularization, 1 epoch, seed 1\""));
    assert_null(strstr(csv, "nan"));
    assert_null(strstr(csv, ",-1"));
    char cell[256];
    csv_cell(csv, "batchnorm-E1-s1", "test_acc", cell, sizeof cell);  // a fraction
    double acc = atof(cell);
    if (!*cell || acc < 0 || acc > 1) fail_msg("test_acc '%s' is not a fraction", cell);
    csv_cell(csv, "batchnorm-E1-s1", "test_ece", cell, sizeof cell);
    double ece = atof(cell);
    if (!*cell || ece < 0 || ece > 1) fail_msg("test_ece '%s' is not a fraction", cell);
    csv_cell(csv, "batchnorm-E1-s1", "precise_test_acc", cell, sizeof cell);  // no PreciseBN
    assert_string_equal(cell, "");
    csv_cell(csv, "batchnorm-E1-s1", "label", cell, sizeof cell);
    assert_string_equal(cell, "\"BatchNorm only, 1 epoch, seed 1\"");
    free(csv);
    free(md);

    // a value a run's summary.json gives as null is missing: an empty cell and "–" in the table
    char *js = read_point_file("reg", "batchnorm-E1-s1", "summary.json");
    char *at = strstr(js, "\"test_ece\": ");
    assert_non_null(at);
    at += strlen("\"test_ece\": ");
    size_t num = strcspn(at, ",}");
    char edited[8192];
    snprintf(edited, sizeof edited, "%.*snull%s", (int)(at - js), js, at + num);
    snprintf(path, sizeof path, "%s/reg/points/batchnorm-E1-s1/summary.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(edited, f);
    fclose(f);
    study(&r, "reg", "reg", "--epochs 1 --seeds 1 --resume");
    if (r.status) fail_msg("rerun: exit %d: %s", r.status, r.err);
    assert_int_equal(count(r.out, "trained in"), 0);
    snprintf(path, sizeof path, "%s/reg/results.csv", dir);
    csv = test_read_file(path, &len);
    csv_cell(csv, "batchnorm-E1-s1", "test_ece", cell, sizeof cell);
    assert_string_equal(cell, "");
    csv_cell(csv, "batchnorm-E1-s1", "test_acc", cell, sizeof cell);
    assert_true(*cell);
    snprintf(path, sizeof path, "%s/reg/summary.md", dir);
    md = test_read_file(path, &len);
    const char *bn_row = strstr(md, "| + BatchNorm |");
    assert_non_null(bn_row);
    assert_int_equal(count(bn_row, "| –") >= 1, 1);
    assert_true(strstr(bn_row, "| –") < strchr(bn_row, '\n'));
    free(csv), free(md), free(js);

    // one seed: no error bars, the title says 1 seed
    snprintf(path, sizeof path, "%s/reg/figure.svg", dir);
    char *svg = test_read_file(path, &len);
    assert_non_null(strstr(svg, "Regularizer ablation (1 seed)"));
    assert_null(strstr(svg, "<path fill=\"none\""));
    free(svg);

    // `regdist plot` names a study's point by its label, not its directory
    char run[2400], fig[2400];
    snprintf(run, sizeof run, "%s/reg/points/batchnorm-E1-s1", dir);
    snprintf(fig, sizeof fig, "%s/reg/curves.svg", dir);
    test_run_regdist(&r, (const char *[]){"plot", "--out", fig, run, NULL});
    test_expect_ok(&r);
    svg = test_read_file(fig, &len);
    assert_non_null(strstr(svg, ">BatchNorm only, 1 epoch, seed 1</text>"));
    assert_null(strstr(svg, "batchnorm-E1-s1"));
    free(svg);
}

// Each sweep's help describes it, and says what the quick preset measured.
static void test_help(void **state) {
    (void)state;
    RunResult bn, reg, all;
    test_run_regdist(&bn, (const char *[]){"study", "bn", "--help", NULL});
    test_expect_ok(&bn);
    test_run_regdist(&reg, (const char *[]){"study", "reg", "--help", NULL});
    test_expect_ok(&reg);
    test_run_regdist(&all, (const char *[]){"study", "--help", NULL});
    test_expect_ok(&all);
    assert_string_not_equal(bn.out, reg.out);
    assert_non_null(strstr(bn.out, "usage: regdist study bn"));
    assert_non_null(strstr(bn.out, "--groups"));
    assert_non_null(strstr(bn.out, "19 minutes"));
    assert_non_null(strstr(reg.out, "usage: regdist study reg"));
    assert_null(strstr(reg.out, "--groups"));
    assert_non_null(strstr(reg.out, "25 minutes"));
    assert_non_null(strstr(all.out, "bn|reg"));
    RunResult batch;
    test_run_regdist(&batch, (const char *[]){"study", "batch", "--help", NULL});
    test_expect_ok(&batch);
    assert_non_null(strstr(batch.out, "usage: regdist study batch"));
    assert_non_null(strstr(batch.out, "Hoffer"));
    assert_non_null(strstr(batch.out, "sqrt(B/b)"));
    assert_non_null(strstr(all.out, "batch"));
    assert_null(strstr(bn.out, "about 10 minutes"));
}

// A point whose run fails (here every run: a NaN injected into its first step, with
// train.nonfinite = stop) is reported in one line and in its train.log, and the sweep goes on
// to the next point and writes its results with the failed points' cells empty. Resumed
// without the fault, the failed points train.
static void test_failed_point_continues(void **state) {
    (void)state;
    RunResult r;
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "REGDIST_INJECT_NAN_STEP=1 '%s' study bn --config '%s' --data '%s' --out '%s/fail' "
             "--epochs 1 --seeds 1 --groups 5,30 --batches 60 --set sched.warmup_steps=5",
             test_regdist_bin(), config, data, dir);
    test_run_shell(&r, cmd);
    if (r.status) fail_msg("a failing point ended the sweep: exit %d\n%s%s", r.status, r.out, r.err);
    int runs = count(r.out, " seed 1  ");  // one line per point
    assert_true(runs >= 3);
    assert_int_equal(count(r.out, "failed: "), runs);  // each point reported, none skipped
    assert_non_null(strstr(r.out, "is not finite"));
    assert_non_null(strstr(r.out, "results: "));
    char *log = read_point_file("fail", "G5-B30-E1-s1", "train.log");
    assert_non_null(strstr(log, "is not finite"));
    free(log);
    char path[2400];
    snprintf(path, sizeof path, "%s/fail/points/G5-B30-E1-s1/summary.json", dir);
    assert_int_equal(access(path, F_OK), -1);
    snprintf(path, sizeof path, "%s/fail/summary.md", dir);
    assert_int_equal(access(path, F_OK), 0);

    study(&r, "bn", "fail", "--epochs 1 --seeds 1 --groups 5,30 --batches 60 "
          "--set sched.warmup_steps=5 --resume");
    if (r.status) fail_msg("resume: exit %d: %s", r.status, r.err);
    assert_int_equal(count(r.out, "failed: "), 0);
    assert_true(count(r.out, "trained in") > 0);  // a point two lines share trains once
    assert_int_equal(count(r.out, "trained in") + count(r.out, "finished before"), runs);
    snprintf(path, sizeof path, "%s/fail/points/G5-B30-E1-s1/summary.json", dir);
    assert_int_equal(access(path, F_OK), 0);
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
    expect_usage("reg", "--groups 4,16", "--groups and --batches are for study bn");
    expect_usage("bn", "--lines both", "--lines takes bn-only, config or both");
    expect_usage("bn", "--lines config,", "--lines takes bn-only, config or both");
    expect_usage("reg", "--lines config", "--lines is for study bn");
    expect_usage("reg", "--batch 64", "--batch is for study bn");
    expect_usage("batch", "--batch 64", "--batch is for study bn");
    expect_usage("batch", "--groups 4,8", "study batch takes one ghost batch size");
    expect_usage("batch", "--batches 16", "a large batch must exceed the config's batch 30");
    expect_usage("batch", "--groups 60 --batches 120", "the ghost batch must not exceed");
    expect_usage("frobnicate", "", "say which study: batch, bn or reg");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bn_study),
        cmocka_unit_test(test_reg_study),
        cmocka_unit_test(test_bn_full_preset),
        cmocka_unit_test(test_batch_study),
        cmocka_unit_test(test_failed_point_continues),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_help),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
