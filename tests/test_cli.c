// test_cli.c: the regdist command end to end, as a user runs it: training makes progress,
// a stopped run resumes to the same bits, and every bad input ends with exit code 2 and
// one line that says what is wrong.
#include <math.h>
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

#include <hdf5.h>

#include "io/checkpoint.h"
#include "launch/config.h"
#include "runutil.h"
#include "testutil.h"

static const char *dir;     // scratch directory of this run
static char data[1024];     // a small synthetic dataset
static char config[1024];   // the shipped MLP config

static int setup(void **state) {
    (void)state;
    dir = test_tmpdir("cli");
    snprintf(data, sizeof data, "%s", test_path(dir, "synth.h5"));
    snprintf(config, sizeof config, "%s/launch/configs/mlp.cfg", test_source_dir());
    RunResult r;
    test_run_regdist(&r, (const char *[]){"data", "synth", "--out", data, "--train", "600",
                                          "--val", "100", "--test", "100", "--seed", "3",
                                          NULL});
    if (r.status != 0) fail_msg("data synth failed: %s", r.err);
    return 0;
}


// Common training arguments: 3 epochs of 600 samples at batch 64 = 10 steps each.
#define TRAIN_ARGS(out) "train", "--config", config, "--data", data, "--out", out, \
    "--set", "train.epochs=3", "--set", "train.batch=64", "--set", "sched.warmup_steps=5", \
    "--set", "optim.lr=0.002"

static double csv_field(const char *csv, int row, int col) {
    const char *p = csv;
    for (int i = 0; i <= row; i++) p = strchr(p, '\n') + 1;  // skip header and rows
    for (int c = 0; c < col; c++) p = strchr(p, ',') + 1;
    return strtod(p, NULL);
}

static void test_train_loss_falls_and_writes_outputs(void **state) {
    (void)state;
    const char *out = test_path(dir, "run_basic");
    RunResult r;
    test_run_regdist(&r, (const char *[]){TRAIN_ARGS(out), NULL});
    test_expect_ok(&r);
    assert_non_null(strstr(r.out, "train-val gap"));
    assert_non_null(strstr(r.out, "test: loss"));
    char *csv = test_read_file(test_path(out, "metrics.csv"), NULL);
    assert_non_null(csv);
    assert_true(strncmp(csv, "epoch,step,lr,train_loss,train_acc,val_loss,val_acc,seconds,"
                             "images_per_s\n", 70) == 0);
    double first = csv_field(csv, 0, 3), last = csv_field(csv, 2, 3);
    assert_true(last < first);                 // train loss falls
    assert_true(csv_field(csv, 2, 6) > 0.5);   // val accuracy well above chance (0.1)
    assert_int_equal((int)csv_field(csv, 2, 1), 30);  // 3 epochs x 10 steps
    free(csv);
    struct stat st;
    assert_int_equal(stat(test_path(out, "last.h5"), &st), 0);
    assert_int_equal(stat(test_path(out, "best.h5"), &st), 0);

    // eval reads the checkpoint back and agrees with itself in JSON
    test_run_regdist(&r, (const char *[]){"eval", "--checkpoint", test_path(out, "last.h5"),
                                          "--data", data, "--json", NULL});
    test_expect_ok(&r);
    assert_non_null(strstr(r.out, "\"count\": 100"));
    double acc = strtod(strstr(r.out, "\"accuracy\": ") + 12, NULL);
    assert_true(acc > 0.5 && acc <= 1.0);
    assert_non_null(strstr(r.out, "\"ece\": "));
}

static void assert_same_state(const char *a, const char *b) {
    LoadedRun x, y;
    loaded_run_open(&x, a, (Shape){3, {1, 28, 28}});
    loaded_run_open(&y, b, (Shape){3, {1, 28, 28}});
    size_t n = x.m.table.n_trainable;
    assert_int_equal(n, y.m.table.n_trainable);
    assert_memory_equal(x.m.params, y.m.params, n * sizeof(float));
    assert_memory_equal(x.o.m, y.o.m, n * sizeof(float));
    assert_memory_equal(x.o.v, y.o.v, n * sizeof(float));
    assert_int_equal(x.o.step, y.o.step);
    assert_int_equal(x.meta.step, y.meta.step);
    assert_int_equal(x.meta.epoch, y.meta.epoch);
    assert_true(x.meta.best_metric == y.meta.best_metric);
    loaded_run_free(&x), loaded_run_free(&y);
}

// Stop mid-epoch (step 13 of 30, inside epoch 2), resume, finish: bit-identical parameters
// and optimizer state to the uninterrupted run, and the same metrics rows.
static void test_resume_is_bit_exact(void **state) {
    (void)state;
    const char *full = test_path(dir, "run_full"), *part = test_path(dir, "run_part");
    RunResult r;
    test_run_regdist(&r, (const char *[]){TRAIN_ARGS(full), NULL});
    test_expect_ok(&r);
    test_run_regdist(&r, (const char *[]){TRAIN_ARGS(part), "--set", "train.max_steps=13", NULL});
    test_expect_ok(&r);
    assert_non_null(strstr(r.out, "--resume"));
    char ckpt[1100];
    snprintf(ckpt, sizeof ckpt, "%s", test_path(part, "last.h5"));
    CkptMeta mid = {0};
    Err e = {0};
    assert_int_equal(ckpt_read_meta(ckpt, &mid, &e), ERR_OK);
    assert_int_equal(mid.step, 13);
    assert_int_equal(mid.epoch, 1);
    assert_int_equal(mid.epoch_batch, 3);
    ckpt_meta_free(&mid);
    // a second stop and resume inside the same run: two resumes must compose too
    // a mid-epoch checkpoint only continues with the same batch: anything else is refused
    test_run_regdist(&r, (const char *[]){TRAIN_ARGS(part), "--set", "train.batch=32",
                                          "--resume", ckpt, NULL});
    test_expect_bad_input(&r, "train.batch");
    test_run_regdist(&r, (const char *[]){TRAIN_ARGS(part), "--set", "train.max_steps=17",
                                          "--resume", ckpt, NULL});
    test_expect_ok(&r);
    test_run_regdist(&r, (const char *[]){TRAIN_ARGS(part), "--resume", ckpt, NULL});
    test_expect_ok(&r);
    assert_same_state(test_path(full, "last.h5"), test_path(part, "last.h5"));
    assert_same_state(test_path(full, "best.h5"), test_path(part, "best.h5"));
    // the metrics table is the same apart from timings
    char *a = test_read_file(test_path(full, "metrics.csv"), NULL);
    char *b = test_read_file(test_path(part, "metrics.csv"), NULL);
    for (int row = 0; row < 3; row++)
        for (int col = 0; col < 7; col++)
            assert_true(csv_field(a, row, col) == csv_field(b, row, col));
    free(a), free(b);
}

// max_steps=0 writes the initial state; --init starts from its weights.
static void test_max_steps_zero_and_init(void **state) {
    (void)state;
    const char *out = test_path(dir, "run_zero");
    RunResult r;
    test_run_regdist(&r, (const char *[]){TRAIN_ARGS(out), "--set", "train.max_steps=0", NULL});
    test_expect_ok(&r);
    CkptMeta m = {0};
    Err e = {0};
    assert_int_equal(ckpt_read_meta(test_path(out, "last.h5"), &m, &e), ERR_OK);
    assert_int_equal(m.step, 0);
    ckpt_meta_free(&m);
    // --init with another seed starts from the saved weights, not from the seed's
    const char *b = test_path(dir, "run_init");
    char init[1100];
    snprintf(init, sizeof init, "%s", test_path(out, "last.h5"));
    test_run_regdist(&r, (const char *[]){TRAIN_ARGS(b), "--set", "train.max_steps=0", "--set",
                                          "train.seed=77", "--init", init, NULL});
    test_expect_ok(&r);
    assert_same_state(init, test_path(b, "last.h5"));
    // --init refuses a checkpoint of another model
    const char *wide = test_path(dir, "run_wide");
    char cfg[1100];
    snprintf(cfg, sizeof cfg, "%s", test_path(dir, "wide.cfg"));
    char *text = test_read_file(config, NULL);
    char *p = strstr(text, "out = 256");
    p[6] = '3';  // fc1 becomes 356 wide
    FILE *f = fopen(cfg, "w");
    fputs(text, f);
    fclose(f);
    free(text);
    test_run_regdist(&r, (const char *[]){"train", "--config", cfg, "--data", data, "--out", wide,
                                          "--init", init, NULL});
    test_expect_bad_input(&r, "fc1.weight");
}

// Reads a float or int64 dataset of a prediction file.
static void read_pred(const char *file, const char *name, hid_t type, void *buf) {
    hid_t f = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    assert_true(d >= 0);
    assert_true(H5Dread(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0);
    H5Dclose(d);
    H5Fclose(f);
}

// predict: K = 0 agrees with eval; MC passes spread when dropout is on and not at all
// when reg.dropout=off; probabilities sum to 1.
static void test_predict(void **state) {
    (void)state;
    const char *on = test_path(dir, "run_pred_on"), *off = test_path(dir, "run_pred_off");
    RunResult r;
    test_run_regdist(&r, (const char *[]){TRAIN_ARGS(on), "--set", "train.epochs=1", NULL});
    test_expect_ok(&r);
    test_run_regdist(&r, (const char *[]){TRAIN_ARGS(off), "--set", "train.epochs=1", "--set",
                                          "reg.dropout=off", NULL});
    test_expect_ok(&r);
    char ckpt_on[1100], ckpt_off[1100], p0[1100], p5[1100], poff[1100];
    snprintf(ckpt_on, sizeof ckpt_on, "%s", test_path(on, "last.h5"));
    snprintf(ckpt_off, sizeof ckpt_off, "%s", test_path(off, "last.h5"));
    snprintf(p0, sizeof p0, "%s", test_path(dir, "p0.h5"));
    snprintf(p5, sizeof p5, "%s", test_path(dir, "p5.h5"));
    snprintf(poff, sizeof poff, "%s", test_path(dir, "poff.h5"));
    test_run_regdist(&r, (const char *[]){"predict", "--checkpoint", ckpt_on, "--data", data,
                                          "--out", p0, NULL});
    test_expect_ok(&r);
    test_run_regdist(&r, (const char *[]){"predict", "--checkpoint", ckpt_on, "--data", data,
                                          "--mc-samples", "5", "--out", p5, NULL});
    test_expect_ok(&r);
    test_run_regdist(&r, (const char *[]){"predict", "--checkpoint", ckpt_off, "--data", data,
                                          "--mc-samples", "5", "--out", poff, NULL});
    test_expect_ok(&r);
    test_run_regdist(&r, (const char *[]){"eval", "--checkpoint", ckpt_on, "--data", data,
                                          "--json", NULL});
    test_expect_ok(&r);
    double eval_acc = strtod(strstr(r.out, "\"accuracy\": ") + 12, NULL);
    // the test split of the synthetic file: 100 samples, 10 classes
    int64_t pred[100];
    float mean[1000], std[1000];
    int32_t y[100];
    hid_t f = H5Fopen(data, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t dy = H5Dopen2(f, "/test/y", H5P_DEFAULT);
    assert_true(H5Dread(dy, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, y) >= 0);
    H5Dclose(dy);
    H5Fclose(f);
    read_pred(p0, "pred", H5T_NATIVE_INT64, pred);
    int correct = 0;
    for (int i = 0; i < 100; i++) correct += pred[i] == y[i];
    assert_true(fabs(correct / 100.0 - eval_acc) < 1e-9);
    read_pred(p0, "probs_std", H5T_NATIVE_FLOAT, std);
    for (int i = 0; i < 1000; i++) assert_true(std[i] == 0.0f);
    read_pred(p5, "probs_mean", H5T_NATIVE_FLOAT, mean);
    read_pred(p5, "probs_std", H5T_NATIVE_FLOAT, std);
    double spread = 0;
    for (int i = 0; i < 1000; i++) spread += std[i];
    assert_true(spread > 0.1);  // dropout 0.3 in three layers moves the probabilities
    for (int n = 0; n < 100; n++) {
        double s = 0;
        for (int k = 0; k < 10; k++) s += mean[n * 10 + k];
        assert_true(fabs(s - 1.0) < 1e-4);
    }
    read_pred(poff, "probs_std", H5T_NATIVE_FLOAT, std);
    for (int i = 0; i < 1000; i++) assert_true(std[i] == 0.0f);  // exactly zero
    test_run_regdist(&r, (const char *[]){"predict", "--checkpoint", ckpt_on, "--data", data,
                                          NULL});
    test_expect_bad_input(&r, "--out is required");
    test_run_regdist(&r, (const char *[]){"predict", "--checkpoint", ckpt_on, "--data", data,
                                          "--mc-samples", "-2", "--out", p0, NULL});
    test_expect_bad_input(&r, "--mc-samples");
}

// Early stopping: with lr 0 the validation accuracy never improves after epoch 1, so
// patience 1 ends the run after epoch 2 of 5.
// train.keep = 2 keeps the checkpoints of the last two epochs beside last.h5: the third
// epoch's is last.h5 itself, the first epoch's is gone.
static void test_keep_last_epochs(void **state) {
    (void)state;
    const char *out = test_path(dir, "keep");
    RunResult r;
    test_run_regdist(&r, (const char *[]){TRAIN_ARGS(out), "--set", "train.keep=2", NULL});
    test_expect_ok(&r);
    char path[1200];
    snprintf(path, sizeof path, "%s/epoch-0001.h5", out);
    assert_int_equal(access(path, F_OK), -1);
    size_t la, lb;
    snprintf(path, sizeof path, "%s/epoch-0003.h5", out);
    char *a = test_read_file(path, &la), *b = test_read_file(test_path(out, "last.h5"), &lb);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(la, lb);
    assert_memory_equal(a, b, la);
    free(a), free(b);
    snprintf(path, sizeof path, "%s/epoch-0002.h5", out);
    CkptMeta m;
    Err e = {0};
    if (ckpt_read_meta(path, &m, &e)) fail_msg("%s", e.msg);
    assert_int_equal(m.epoch, 2);
    assert_int_equal(m.step, 20);
    ckpt_meta_free(&m);
}

static void test_early_stopping(void **state) {
    (void)state;
    const char *out = test_path(dir, "run_patience");
    RunResult r;
    test_run_regdist(&r, (const char *[]){TRAIN_ARGS(out), "--set", "train.epochs=5", "--set",
                                          "train.patience=1", "--set", "optim.lr=0", NULL});
    test_expect_ok(&r);
    assert_non_null(strstr(r.out, "early stopping"));
    char *csv = test_read_file(test_path(out, "metrics.csv"), NULL);
    int rows = 0;
    for (char *p = csv; (p = strchr(p, '\n')); p++) rows++;
    assert_int_equal(rows, 1 + 2);  // header and two epochs
    free(csv);
}

static void test_bad_command_lines(void **state) {
    (void)state;
    const char *out = test_path(dir, "run_bad");
    RunResult r;
    test_run_regdist(&r, (const char *[]){"frobnicate", NULL});
    test_expect_bad_input(&r, "unknown command");
    test_run_regdist(&r, (const char *[]){"train", "--config", config, "--data", data, NULL});
    test_expect_bad_input(&r, "--out is required");
    test_run_regdist(&r, (const char *[]){"train", "--bogus", NULL});
    test_expect_bad_input(&r, "--bogus");
    test_run_regdist(&r, (const char *[]){TRAIN_ARGS(out), "--set", "train.epoch=3", NULL});
    test_expect_bad_input(&r, "did you mean train.epochs");
    test_run_regdist(&r, (const char *[]){TRAIN_ARGS(out), "--set", "train.epochs=three", NULL});
    test_expect_bad_input(&r, "integer");
    test_run_regdist(&r, (const char *[]){TRAIN_ARGS(out), "--set", "optim.name=rmsprop", NULL});
    test_expect_bad_input(&r, "sgd|adam|adamw");
    test_run_regdist(&r, (const char *[]){TRAIN_ARGS(out), "--set", "reg.dropout=maybe", NULL});
    test_expect_bad_input(&r, "off|on");
    test_run_regdist(&r, (const char *[]){TRAIN_ARGS(out), "--set", "train.batch=0", NULL});
    test_expect_bad_input(&r, "train.batch");
    test_run_regdist(&r, (const char *[]){TRAIN_ARGS(out), "--set", "train.patience=2",
                                          "--resume", test_path(dir, "nothing.h5"), NULL});
    test_expect_bad_input(&r, "nothing.h5");
    test_run_regdist(&r, (const char *[]){"eval", "--checkpoint", "x.h5", NULL});
    test_expect_bad_input(&r, "--data is required");
    test_run_regdist(&r, (const char *[]){"data", "synth", "--out", test_path(dir, "s.h5"),
                                          "--shape", "1,0,2", NULL});
    test_expect_bad_input(&r, "--shape");
    test_run_regdist(&r, (const char *[]){"bench", "--config", config, "--steps", "-1", NULL});
    test_expect_bad_input(&r, "--steps");
    // --help works everywhere and exits 0
    const char *cmds[] = {"train", "eval", "data", "bench", "predict"};
    for (int i = 0; i < 5; i++) {
        test_run_regdist(&r, (const char *[]){cmds[i], "--help", NULL});
        test_expect_ok(&r);
        assert_non_null(strstr(r.out, "usage: regdist"));
    }
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_bad_files(void **state) {
    (void)state;
    const char *out = test_path(dir, "run_badfile");
    RunResult r;
    // data: missing, not HDF5, truncated
    char bad[1100];
    snprintf(bad, sizeof bad, "%s", test_path(dir, "missing.h5"));
    test_run_regdist(&r, (const char *[]){"train", "--config", config, "--data", bad, "--out", out,
                                          NULL});
    test_expect_bad_input(&r, "missing.h5");
    snprintf(bad, sizeof bad, "%s", test_path(dir, "text.h5"));
    write_text(bad, "this is not an HDF5 file\n");
    test_run_regdist(&r, (const char *[]){"train", "--config", config, "--data", bad, "--out", out,
                                          NULL});
    test_expect_bad_input(&r, "text.h5");
    test_run_regdist(&r, (const char *[]){"data", "info", bad, NULL});
    test_expect_bad_input(&r, "text.h5");
    snprintf(bad, sizeof bad, "%s", test_path(dir, "trunc.h5"));
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "head -c 300000 '%s' > '%s'", data, bad);
    RunResult sh;
    test_run_shell(&sh, cmd);
    test_run_regdist(&r, (const char *[]){"train", "--config", config, "--data", bad, "--out", out,
                                          NULL});
    test_expect_bad_input(&r, "trunc.h5");
    // data whose samples the model cannot take (model.input pinned to 1x28x28 by --set)
    snprintf(bad, sizeof bad, "%s", test_path(dir, "small.h5"));
    test_run_regdist(&r, (const char *[]){"data", "synth", "--out", bad, "--shape", "1,8,8",
                                          "--train", "20", NULL});
    test_expect_ok(&r);
    test_run_regdist(&r, (const char *[]){"train", "--config", config, "--data", bad, "--out", out,
                                          "--set", "model.input=1,28,28", NULL});
    test_expect_bad_input(&r, "model.input");
    // config: missing, syntax error with its line, unknown key with its line, bad layer key
    char cfg[1100];
    snprintf(cfg, sizeof cfg, "%s", test_path(dir, "bad.cfg"));
    test_run_regdist(&r, (const char *[]){"train", "--config", cfg, "--data", data, "--out", out,
                                          NULL});
    test_expect_bad_input(&r, "bad.cfg");
    write_text(cfg, "train: {\n  epochs = 3\n  batch = ;\n};\n");
    test_run_regdist(&r, (const char *[]){"train", "--config", cfg, "--data", data, "--out", out,
                                          NULL});
    test_expect_bad_input(&r, "bad.cfg:3");
    write_text(cfg, "train: {\n  epochs = 3;\n  bacth = 5;\n};\n");
    test_run_regdist(&r, (const char *[]){"train", "--config", cfg, "--data", data, "--out", out,
                                          NULL});
    test_expect_bad_input(&r, "bad.cfg:3: unknown key 'train.bacth'");
    write_text(cfg, "model: {\n layers = (\n  { name = \"a\"; type = \"flatten\"; },\n"
                    "  { name = \"fc\"; type = \"linear\"; out = 10; p = 0.5; }\n );\n};\n");
    test_run_regdist(&r, (const char *[]){"train", "--config", cfg, "--data", data, "--out", out,
                                          NULL});
    test_expect_bad_input(&r, "layer fc (linear) has no key 'p'");
    // conv and pooling keys: range, required kernel, and keys a type does not take
    write_text(cfg, "model: {\n layers = (\n  { name = \"c\"; type = \"conv2d\"; out = 4; "
                    "kernel = 0; }\n );\n};\n");
    test_run_regdist(&r, (const char *[]){"train", "--config", cfg, "--data", data, "--out", out,
                                          NULL});
    test_expect_bad_input(&r, "layer c: kernel must be in [1, 64], got 0");
    write_text(cfg, "model: {\n layers = (\n  { name = \"c\"; type = \"conv2d\"; out = 4; }"
                    "\n );\n};\n");
    test_run_regdist(&r, (const char *[]){"train", "--config", cfg, "--data", data, "--out", out,
                                          NULL});
    test_expect_bad_input(&r, "layer c (conv2d) needs kernel");
    write_text(cfg, "model: {\n layers = (\n  { name = \"mp\"; type = \"maxpool2d\"; "
                    "kernel = 2; out = 3; }\n );\n};\n");
    test_run_regdist(&r, (const char *[]){"train", "--config", cfg, "--data", data, "--out", out,
                                          NULL});
    test_expect_bad_input(&r, "layer mp (maxpool2d) has no key 'out'");
    // checkpoint: not HDF5, for eval and resume
    snprintf(bad, sizeof bad, "%s", test_path(dir, "text.h5"));
    test_run_regdist(&r, (const char *[]){"eval", "--checkpoint", bad, "--data", data, NULL});
    test_expect_bad_input(&r, "text.h5");
    test_run_regdist(&r, (const char *[]){TRAIN_ARGS(out), "--resume", bad, NULL});
    test_expect_bad_input(&r, "text.h5");
    // an output directory that cannot be made (a file is in the way)
    char blocked[1200];
    snprintf(blocked, sizeof blocked, "%s/sub", bad);
    test_run_regdist(&r, (const char *[]){TRAIN_ARGS(blocked), NULL});
    test_expect_bad_input(&r, "output directory");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_train_loss_falls_and_writes_outputs),
        cmocka_unit_test(test_resume_is_bit_exact),
        cmocka_unit_test(test_max_steps_zero_and_init),
        cmocka_unit_test(test_early_stopping),
        cmocka_unit_test(test_keep_last_epochs),
        cmocka_unit_test(test_predict),
        cmocka_unit_test(test_bad_command_lines),
        cmocka_unit_test(test_bad_files),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
