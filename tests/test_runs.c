// test_runs.c: no lost runs and no misleading numbers (issue 11, items 1, 3, 4 and 7): a run
// directory belongs to one run; a run stopped by train.max_steps gets its final report; a
// finished run resumed says so and changes nothing; the progress line's loss is right after a
// resume; settings that cannot work are an error or a warning.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"

static const char *dir;
static char data[1024], config[1024];

static int setup(void **state) {
    (void)state;
    dir = test_tmpdir("runs");
    snprintf(data, sizeof data, "%s", test_path(dir, "synth.h5"));
    snprintf(config, sizeof config, "%s/launch/configs/mlp.cfg", test_source_dir());
    RunResult r;
    test_run_regdist(&r, (const char *[]){"data", "synth", "--out", data, "--train", "600",
                                          "--val", "100", "--test", "100", "--seed", "3", NULL});
    if (r.status != 0) fail_msg("data synth failed: %s", r.err);
    return 0;
}

// 2 epochs of 600 samples at batch 64 = 10 steps each.
#define TRAIN_ARGS(out) "train", "--config", config, "--data", data, "--out", out, \
    "--set", "train.epochs=2", "--set", "train.batch=64", "--set", "sched.warmup_steps=5"

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

// Training twice into one directory: the second is refused with one line naming it, and the
// first run's files are untouched; --overwrite replaces the run whole (no old file survives);
// --resume continues it.
static void test_run_directory_belongs_to_one_run(void **state) {
    (void)state;
    const char *out = test_path(dir, "dup");
    char out_s[1024], metrics[1100], best[1100], summary[1100];
    snprintf(out_s, sizeof out_s, "%s", out);
    snprintf(metrics, sizeof metrics, "%s/metrics.csv", out_s);
    snprintf(best, sizeof best, "%s/best.h5", out_s);
    snprintf(summary, sizeof summary, "%s/summary.json", out_s);
    RunResult r;
    test_run_regdist(&r, (const char *[]){TRAIN_ARGS(out_s), NULL});
    test_expect_ok(&r);
    long csv_before = file_size(metrics);
    char *sum_before = test_read_file(summary, NULL);
    assert_non_null(sum_before);

    test_run_regdist(&r, (const char *[]){TRAIN_ARGS(out_s), "--set", "train.max_steps=3", NULL});
    test_expect_bad_input(&r, "already holds a run");
    assert_non_null(strstr(r.err, out_s));
    assert_non_null(strstr(r.err, "--overwrite"));
    assert_int_equal(file_size(metrics), csv_before);  // nothing was cut or mixed
    char *sum_after = test_read_file(summary, NULL);
    assert_string_equal(sum_before, sum_after);
    free(sum_after);
    free(sum_before);

    // --overwrite: a fresh run, stopped after 3 steps; best.h5 of the old run is gone
    test_run_regdist(&r, (const char *[]){TRAIN_ARGS(out_s), "--overwrite", "--set",
                                          "train.max_steps=3", NULL});
    test_expect_ok(&r);
    assert_false(exists(best));
    char *csv = test_read_file(metrics, NULL);
    assert_non_null(csv);
    assert_null(strchr(strchr(csv, '\n') + 1, '\n'));  // the header only: no epoch finished
    free(csv);
    char *sum = test_read_file(summary, NULL);
    assert_non_null(sum);
    assert_non_null(strstr(sum, "\"steps\": 3"));
    free(sum);

    // --resume continues it, in the same directory
    char last[1100];
    snprintf(last, sizeof last, "%s/last.h5", out_s);
    test_run_regdist(&r, (const char *[]){TRAIN_ARGS(out_s), "--resume", last, NULL});
    test_expect_ok(&r);
    sum = test_read_file(summary, NULL);
    assert_non_null(strstr(sum, "\"steps\": 20"));
    free(sum);

    // the two flags contradict each other
    test_run_regdist(&r, (const char *[]){TRAIN_ARGS(out_s), "--resume", last, "--overwrite",
                                          NULL});
    test_expect_bad_input(&r, "--overwrite");
}

// A run that train.max_steps ends mid-epoch writes summary.json and prints its final report;
// resuming it with the same limit says it is finished and how to go on, and changes nothing.
static void test_max_steps_run_reports_and_resume_says_finished(void **state) {
    (void)state;
    char out[1024], last[1100], summary[1100];
    snprintf(out, sizeof out, "%s", test_path(dir, "maxsteps"));
    snprintf(last, sizeof last, "%s/last.h5", out);
    snprintf(summary, sizeof summary, "%s/summary.json", out);
    RunResult r;
    test_run_regdist(&r, (const char *[]){TRAIN_ARGS(out), "--set", "train.max_steps=4", NULL});
    test_expect_ok(&r);
    assert_non_null(strstr(r.out, "final model (eval mode)"));
    assert_non_null(strstr(r.out, "test: loss"));
    char *sum = test_read_file(summary, NULL);
    assert_non_null(sum);
    assert_non_null(strstr(sum, "\"ended_by\": \"train.max_steps\""));
    free(sum);
    char *ck = test_read_file(last, NULL);
    long size = file_size(last);

    test_run_regdist(&r, (const char *[]){TRAIN_ARGS(out), "--set", "train.max_steps=4",
                                          "--resume", last, NULL});
    test_expect_ok(&r);
    assert_non_null(strstr(r.out, "is a finished run"));
    assert_non_null(strstr(r.out, "train.max_steps"));
    char *ck2 = test_read_file(last, NULL);
    assert_int_equal(file_size(last), size);
    assert_memory_equal(ck, ck2, (size_t)size);  // not rewritten
    free(ck);
    free(ck2);

    // a run that reached its epochs, resumed: finished, and the hint names train.epochs
    snprintf(out, sizeof out, "%s", test_path(dir, "done"));
    snprintf(last, sizeof last, "%s/last.h5", out);
    test_run_regdist(&r, (const char *[]){TRAIN_ARGS(out), NULL});
    test_expect_ok(&r);
    test_run_regdist(&r, (const char *[]){TRAIN_ARGS(out), "--resume", last, NULL});
    test_expect_ok(&r);
    assert_non_null(strstr(r.out, "is a finished run"));
    assert_non_null(strstr(r.out, "train.epochs"));
}

// The last progress line of an epoch resumed mid-way shows the epoch's running loss, the
// same number as the epoch line (which is computed from the synchronized sums), not the
// restored sum divided by the steps since the resume.
static void test_progress_loss_after_resume(void **state) {
    (void)state;
    char out[1024], last[1100];
    snprintf(out, sizeof out, "%s", test_path(dir, "progress"));
    snprintf(last, sizeof last, "%s/last.h5", out);
    RunResult r;
    test_run_regdist(&r, (const char *[]){TRAIN_ARGS(out), "--set", "train.max_steps=7", NULL});
    test_expect_ok(&r);
    test_run_regdist(&r, (const char *[]){TRAIN_ARGS(out), "--resume", last, NULL});
    test_expect_ok(&r);
    // not a terminal: plain progress lines "... loss X ..." then "epoch 1/2  step 10 ... train
    // loss Y"; the last progress line of epoch 1 covers all 10 steps, so X == Y to print
    const char *ep = strstr(r.out, "epoch 1/2  step 10");
    assert_non_null(ep);
    double epoch_loss = strtod(strstr(ep, "train loss ") + 11, NULL);
    const char *p = r.out, *last_prog = NULL;
    for (const char *q; (q = strstr(p, " loss ")) && q < ep; p = q + 1) last_prog = q;
    assert_non_null(last_prog);
    double prog_loss = strtod(last_prog + 6, NULL);
    if (!(prog_loss > 0.5 * epoch_loss && prog_loss < 1.5 * epoch_loss))
        fail_msg("progress loss %g vs the epoch's %g:\n%s", prog_loss, epoch_loss, r.out);
}

// data.train_size beyond the split is an error; settings that run but cannot do what they
// say are one warning line each.
static void test_impossible_settings(void **state) {
    (void)state;
    char out[1024];
    snprintf(out, sizeof out, "%s", test_path(dir, "bad_size"));
    RunResult r;
    test_run_regdist(&r, (const char *[]){TRAIN_ARGS(out), "--set", "data.train_size=99999",
                                          NULL});
    test_expect_bad_input(&r, "data.train_size = 99999");
    assert_non_null(strstr(r.err, "600"));
    test_run_regdist(&r, (const char *[]){TRAIN_ARGS(out), "--set", "data.val_size=5000", NULL});
    test_expect_bad_input(&r, "data.val_size = 5000");

    snprintf(out, sizeof out, "%s", test_path(dir, "warnings"));
    test_run_regdist(&r, (const char *[]){TRAIN_ARGS(out), "--set", "sched.warmup_steps=100",
                                          "--set", "train.patience=5", "--set",
                                          "train.max_steps=2", NULL});
    test_expect_ok(&r);
    assert_non_null(strstr(r.err, "warning: sched.warmup_steps = 100 but the run has 20 steps"));
    assert_non_null(strstr(r.err, "warning: train.patience = 5 but train.epochs = 2"));
    snprintf(out, sizeof out, "%s", test_path(dir, "warnings2"));
    test_run_regdist(&r, (const char *[]){TRAIN_ARGS(out), "--set", "train.batch=1000", "--set",
                                          "train.max_steps=1", NULL});
    test_expect_ok(&r);
    assert_non_null(strstr(r.err, "warning: train.batch = 1000 is larger than the 600"));
    // a sensible run warns about nothing
    snprintf(out, sizeof out, "%s", test_path(dir, "quiet"));
    test_run_regdist(&r, (const char *[]){TRAIN_ARGS(out), "--set", "train.max_steps=1", NULL});
    test_expect_ok(&r);
    assert_null(strstr(r.err, "warning"));
}

// predict --out and plot --out never replace a file by accident: exit 2 naming it, the file
// untouched; --overwrite replaces it. A data command's --out in a missing directory is exit 2.
static void test_out_files_not_replaced(void **state) {
    (void)state;
    char out[1024], last[1100], pred[1100], fig[1100];
    snprintf(out, sizeof out, "%s", test_path(dir, "outfiles"));
    snprintf(last, sizeof last, "%s/last.h5", out);
    snprintf(pred, sizeof pred, "%s/p.h5", out);
    snprintf(fig, sizeof fig, "%s/fig.svg", out);
    RunResult r;
    test_run_regdist(&r, (const char *[]){TRAIN_ARGS(out), "--set", "train.max_steps=10", NULL});
    test_expect_ok(&r);  // one epoch: plot has a row to draw
    FILE *f = fopen(pred, "w");
    fputs("mine", f);
    fclose(f);
    const char *predict[] = {"predict", "--checkpoint", last, "--data", data, "--out", pred, NULL,
                             NULL};
    test_run_regdist(&r, predict);
    test_expect_bad_input(&r, "already exists");
    assert_non_null(strstr(r.err, "--overwrite"));
    char *kept = test_read_file(pred, NULL);
    assert_string_equal(kept, "mine");
    free(kept);
    predict[7] = "--overwrite";
    test_run_regdist(&r, predict);
    test_expect_ok(&r);
    assert_true(file_size(pred) > 100);

    f = fopen(fig, "w");
    fputs("mine", f);
    fclose(f);
    const char *plot[] = {"plot", "--out", fig, out, NULL, NULL};
    test_run_regdist(&r, plot);
    test_expect_bad_input(&r, "already exists");
    kept = test_read_file(fig, NULL);
    assert_string_equal(kept, "mine");
    free(kept);
    plot[4] = "--overwrite";
    test_run_regdist(&r, plot);
    test_expect_ok(&r);
    assert_true(file_size(fig) > 100);

    char missing[1100];
    snprintf(missing, sizeof missing, "%s/no/such/dir/x.h5", out);
    test_run_regdist(&r, (const char *[]){"data", "synth", "--out", missing, NULL});
    test_expect_bad_input(&r, "no directory");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_directory_belongs_to_one_run),
        cmocka_unit_test(test_max_steps_run_reports_and_resume_says_finished),
        cmocka_unit_test(test_progress_loss_after_resume),
        cmocka_unit_test(test_impossible_settings),
        cmocka_unit_test(test_out_files_not_replaced),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
