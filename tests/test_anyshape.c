// test_anyshape.c: one shipped config fits any dataset (GitHub issue 10): cnn6_mlp4.cfg,
// written for 1x28x28 Fashion-MNIST in 10 classes, trains unedited on 1x64x64 images in 2
// classes, its head taking the data's class count; its checkpoint evaluates on the same data;
// a pinned model.input that does not match is one clear line and exit 2; train --help lists
// the keys that make this possible.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <hdf5.h>

#include "testutil.h"

static const char *dir;    // scratch directory of this run
static char data[1024];    // synthetic 1x64x64 images in 2 classes
static char config[1024];  // launch/configs/cnn6_mlp4.cfg

static int setup(void **state) {
    (void)state;
    dir = test_tmpdir("anyshape");
    snprintf(data, sizeof data, "%s", test_path(dir, "s64.h5"));
    snprintf(config, sizeof config, "%s/launch/configs/cnn6_mlp4.cfg", test_source_dir());
    RunResult r;
    test_run_regdist(&r, (const char *[]){"data", "synth", "--out", data, "--shape", "1,64,64",
                                          "--classes", "2", "--train", "128", "--val", "32",
                                          "--test", "32", NULL});
    if (r.status != 0) fail_msg("data synth failed: %s", r.err);
    return 0;
}

// The dimensions of dataset name in the HDF5 file path; returns the rank.
static int h5_dims(const char *path, const char *name, hsize_t *dims) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    assert_true(d >= 0);
    hid_t s = H5Dget_space(d);
    int rank = H5Sget_simple_extent_dims(s, dims, NULL);
    H5Sclose(s);
    H5Dclose(d);
    H5Fclose(f);
    return rank;
}

static void test_cnn6_mlp4_trains_on_64x64_two_classes(void **state) {
    (void)state;
    const char *out = test_path(dir, "run");
    RunResult r;
    test_run_regdist(&r, (const char *[]){"train", "--config", config, "--data", data, "--out",
                                          out, "--set", "data.train_size=0", "--set",
                                          "train.max_steps=2", "--set", "train.threads=1", NULL});
    test_expect_ok(&r);
    // the head has the data's 2 classes, and fc1 the 128 x 8 x 8 features of 64x64 inputs
    char ckpt[1100];
    snprintf(ckpt, sizeof ckpt, "%s", test_path(out, "last.h5"));
    hsize_t dims[4];
    assert_int_equal(h5_dims(ckpt, "/model/head.weight", dims), 2);
    assert_int_equal(dims[0], 2);
    assert_int_equal(h5_dims(ckpt, "/model/fc1.weight", dims), 2);
    assert_int_equal(dims[1], 128 * 8 * 8);
    // the checkpoint's config (out = "classes", no input) rebuilds the model on the data
    test_run_regdist(&r, (const char *[]){"eval", "--checkpoint", ckpt, "--data", data, "--json",
                                          NULL});
    test_expect_ok(&r);
    if (!strstr(r.out, "\"count\": 32")) fail_msg("eval: %s", r.out);
}

static void test_pinned_input_must_match(void **state) {
    (void)state;
    RunResult r;
    test_run_regdist(&r, (const char *[]){"train", "--config", config, "--data", data, "--out",
                                          test_path(dir, "pinned"), "--set", "data.train_size=0",
                                          "--set", "model.input=1,28,28", NULL});
    test_expect_bad_input(&r, "model.input");
    test_run_regdist(&r, (const char *[]){"train", "--config", config, "--data", data, "--out",
                                          test_path(dir, "pinned"), "--set", "model.input=1,x",
                                          NULL});
    test_expect_bad_input(&r, "--set model.input=1,x: model.input must be sizes");
    test_run_regdist(&r, (const char *[]){"train", "--config", config, "--data", data, "--out",
                                          test_path(dir, "pinned"), "--set", "train.batch=0",
                                          NULL});
    test_expect_bad_input(&r, "--set train.batch=0: train.batch must be in [1, 1e+06], got 0");
}

static void test_train_help_lists_layer_keys(void **state) {
    (void)state;
    RunResult r;
    test_run_regdist(&r, (const char *[]){"train", "--help", NULL});
    test_expect_ok(&r);
    const char *want[] = {"\n  model.input ", "\n  layer.NAME.out ", "\n  layer.NAME.p ",
                          "\n  layer.NAME.block_size ", "(linear, conv2d)"};
    for (int i = 0; i < 5; i++)
        if (!strstr(r.out, want[i])) fail_msg("train --help lacks '%s'", want[i] + 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cnn6_mlp4_trains_on_64x64_two_classes),
        cmocka_unit_test(test_pinned_input_must_match),
        cmocka_unit_test(test_train_help_lists_layer_keys),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
