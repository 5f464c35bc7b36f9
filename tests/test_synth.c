// test_synth.c: io/synth: the synthetic datasets have the asked-for splits, shapes and
// balanced labels, are a pure function of the seed, and are learnable by a linear rule.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "io/dataset.h"
#include "io/synth.h"
#include "iotest.h"
#include "testutil.h"

static const char *dir;

static void test_splits_shapes_labels(void **state) {
    (void)state;
    const char *path = test_path(dir, "s.h5");
    SynthSpec s = {.shape = {3, {2, 3, 4}}, .num_classes = 4, .n_train = 40, .n_val = 0,
                   .n_test = 12, .seed = 3, .noise = 0.5f};
    Err e = {0};
    assert_int_equal(synth_write(path, &s, &e), ERR_OK);
    assert_int_equal(dataset_has_split(path, "val", &e), 0);  // 0 samples: not written
    Dataset tr = load_or_fail(path, "train"), te = load_or_fail(path, "test");
    assert_u8_split(&tr, 40, 4, s.shape);
    assert_u8_split(&te, 12, 4, s.shape);
    int count[4] = {0};
    for (int i = 0; i < 40; i++) count[tr.y[i]]++;
    for (int k = 0; k < 4; k++) assert_int_equal(count[k], 10);
    // no mean/std attributes: pixels are x/255
    assert_true(tr.mean[0] == 0.0f && tr.std[0] == 1.0f);
    // pixels are spread over the range, not constant
    int lo = 255, hi = 0;
    for (int i = 0; i < 40 * 24; i++) {
        if (tr.x_u8[i] < lo) lo = tr.x_u8[i];
        if (tr.x_u8[i] > hi) hi = tr.x_u8[i];
    }
    assert_true(lo < 40 && hi > 215);
    dataset_free(&tr);
    dataset_free(&te);
}

static void test_deterministic_in_seed(void **state) {
    (void)state;
    SynthSpec s = {.shape = {1, {32}}, .num_classes = 3, .n_train = 30, .n_val = 9,
                   .n_test = 9, .seed = 11, .noise = 0.3f};
    const char *a = test_path(dir, "a.h5"), *b = test_path(dir, "b.h5"), *c = test_path(dir, "c.h5");
    Err e = {0};
    assert_int_equal(synth_write(a, &s, &e), ERR_OK);
    assert_int_equal(synth_write(b, &s, &e), ERR_OK);
    s.seed = 12;
    assert_int_equal(synth_write(c, &s, &e), ERR_OK);
    Dataset da = load_or_fail(a, "val"), db = load_or_fail(b, "val"), dc = load_or_fail(c, "val");
    assert_memory_equal(da.x_u8, db.x_u8, 9 * 32);
    assert_memory_equal(da.y, db.y, 9 * sizeof(int32_t));
    assert_memory_not_equal(da.x_u8, dc.x_u8, 9 * 32);
    // and the files themselves are byte-identical: no timestamps are stored
    size_t la, lb;
    char *fa = test_read_file(a, &la), *fb = test_read_file(b, &lb);
    assert_int_equal(la, lb);
    assert_memory_equal(fa, fb, la);
    free(fa);
    free(fb);
    dataset_free(&da);
    dataset_free(&db);
    dataset_free(&dc);
}

// Nearest class mean (a linear rule) fit on train must do far better than chance on test.
static double nearest_mean_accuracy(float noise) {
    const char *path = test_path(dir, "learn.h5");
    enum { K = 10, D = 64 };
    SynthSpec s = {.shape = {1, {D}}, .num_classes = K, .n_train = 500, .n_val = 0,
                   .n_test = 500, .seed = 5, .noise = noise};
    Err e = {0};
    assert_int_equal(synth_write(path, &s, &e), ERR_OK);
    Dataset tr = load_or_fail(path, "train"), te = load_or_fail(path, "test");
    double mean[K][D] = {{0}};
    int count[K] = {0};
    for (int i = 0; i < tr.n; i++) {
        count[tr.y[i]]++;
        for (int j = 0; j < D; j++) mean[tr.y[i]][j] += tr.x_u8[i * D + j];
    }
    int correct = 0;
    for (int i = 0; i < te.n; i++) {
        int best = 0;
        double best_d = 1e300;
        for (int k = 0; k < K; k++) {
            double dist = 0;
            for (int j = 0; j < D; j++) {
                double diff = te.x_u8[i * D + j] - mean[k][j] / count[k];
                dist += diff * diff;
            }
            if (dist < best_d) best_d = dist, best = k;
        }
        correct += best == te.y[i];
    }
    dataset_free(&tr);
    dataset_free(&te);
    return (double)correct / 500;
}

static void test_learnable(void **state) {
    (void)state;
    assert_true(nearest_mean_accuracy(0.5f) > 0.9);
    double pure_noise = nearest_mean_accuracy(1.0f);
    assert_true(pure_noise < 0.25);  // chance is 0.1: noise 1 leaves nothing to learn
}

static void test_refuses_bad_specs(void **state) {
    (void)state;
    const char *path = test_path(dir, "bad.h5");
    Err e = {0};
    SynthSpec ok = {.shape = {1, {8}}, .num_classes = 2, .n_train = 4, .seed = 1, .noise = 0.5f};
    SynthSpec s = ok;
    s.shape.ndim = 2;
    assert_int_equal(synth_write(path, &s, &e), ERR_INPUT);
    s = ok;
    s.num_classes = 1;
    assert_int_equal(synth_write(path, &s, &e), ERR_INPUT);
    s = ok;
    s.n_train = 0;
    assert_int_equal(synth_write(path, &s, &e), ERR_INPUT);
    s = ok;
    s.noise = 1.5f;
    assert_int_equal(synth_write(path, &s, &e), ERR_INPUT);
    assert_non_null(strstr(e.msg, "noise"));
    assert_int_equal(synth_write(test_path(dir, "no/dir/x.h5"), &ok, &e), ERR_RUNTIME);
    assert_non_null(strstr(e.msg, "No such file or directory"));
}

int main(void) {
    dir = test_tmpdir("test_synth");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_splits_shapes_labels),
        cmocka_unit_test(test_deterministic_in_seed),
        cmocka_unit_test(test_learnable),
        cmocka_unit_test(test_refuses_bad_specs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
