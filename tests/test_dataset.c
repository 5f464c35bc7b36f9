// test_dataset.c: io/dataset: write -> load -> gather round trips, limit, info, and every
// kind of bad input file refused with ERR_INPUT naming the file and the dataset.
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#if __has_include(<hdf5.h>)
#include <hdf5.h>
#else
#include <hdf5/serial/hdf5.h>
#endif

#include "io/dataset.h"
#include "testutil.h"

static const char *dir;

// No HDF5 object may stay open after any io/ call, failed or not.
static void assert_no_open_hdf5(void) {
    assert_int_equal(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL), 0);
}

// ---- writing good files through the API ----

static void write_u8_chw(const char *path, int with_norm) {
    // 5 samples of (2,2,3), two channels with their own mean/std
    enum { N = 5, PER = 12 };
    uint8_t x[N * PER];
    int32_t y[N] = {0, 2, 1, 2, 0};
    for (int i = 0; i < N * PER; i++) x[i] = (uint8_t)(i * 37 + 11);
    float mean[2] = {0.5f, 0.25f}, std[2] = {0.2f, 0.4f};
    const char *names[3] = {"cat", "dog", "emu"};
    DatasetAttrs a = {.num_classes = 3, .nchan = with_norm ? 2 : 0, .mean = mean, .std = std,
                      .class_names = names};
    Err e = {0};
    assert_int_equal(dataset_create(path, &a, &e), ERR_OK);
    assert_int_equal(dataset_write_split(path, "train", x, 1, y, N, (Shape){3, {2, 2, 3}}, &e),
                     ERR_OK);
    assert_no_open_hdf5();
}

static void test_roundtrip_u8_chw(void **state) {
    (void)state;
    const char *path = test_path(dir, "u8.h5");
    write_u8_chw(path, 1);
    Dataset d;
    Err e = {0};
    assert_int_equal(dataset_load(&d, path, "train", 0, &e), ERR_OK);
    assert_no_open_hdf5();
    assert_int_equal(d.n, 5);
    assert_int_equal(d.shape.ndim, 3);
    assert_int_equal(d.shape.d[0], 2);
    assert_int_equal(d.shape.d[1], 2);
    assert_int_equal(d.shape.d[2], 3);
    assert_int_equal(d.num_classes, 3);
    assert_int_equal(d.is_u8, 1);
    assert_int_equal(d.nchan, 2);
    assert_true(d.mean[1] == 0.25f && d.std[1] == 0.4f);
    assert_string_equal(d.split, "train");
    for (int i = 0; i < 60; i++) assert_int_equal(d.x_u8[i], (uint8_t)(i * 37 + 11));

    int64_t idx[3] = {4, 0, 2};
    float x[3 * 12];
    int32_t y[3];
    dataset_gather(&d, idx, 3, x, y);
    const float mean[2] = {0.5f, 0.25f}, std[2] = {0.2f, 0.4f};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 12; j++) {
            int c = j / 6;  // channel of element j of a (2,2,3) sample
            uint8_t v = (uint8_t)((idx[i] * 12 + j) * 37 + 11);
            float want = ((float)v / 255.0f - mean[c]) / std[c];
            assert_true(x[i * 12 + j] == want);
        }
    assert_int_equal(y[0], 0);
    assert_int_equal(y[1], 0);
    assert_int_equal(y[2], 1);
    dataset_free(&d);
}

static void test_roundtrip_u8_without_norm(void **state) {
    (void)state;
    const char *path = test_path(dir, "u8plain.h5");
    write_u8_chw(path, 0);
    Dataset d;
    Err e = {0};
    assert_int_equal(dataset_load(&d, path, "train", 0, &e), ERR_OK);
    int64_t idx[2] = {3, 1};
    float x[2 * 12];
    dataset_gather(&d, idx, 2, x, NULL);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 12; j++)
            assert_true(x[i * 12 + j] == (float)(uint8_t)((idx[i] * 12 + j) * 37 + 11) / 255.0f);
    dataset_free(&d);
}

static void write_f32_flat(const char *path, int with_norm, int n, int dim) {
    float *x = malloc((size_t)n * dim * sizeof *x);
    int32_t *y = malloc((size_t)n * sizeof *y);
    for (int i = 0; i < n * dim; i++) x[i] = sinf((float)i) * 3.0f;
    for (int i = 0; i < n; i++) y[i] = (i * 7) % 4;
    float mean = 0.125f, std = 1.5f;
    DatasetAttrs a = {.num_classes = 4, .nchan = with_norm, .mean = &mean, .std = &std};
    Err e = {0};
    assert_int_equal(dataset_create(path, &a, &e), ERR_OK);
    assert_int_equal(dataset_write_split(path, "val", x, 0, y, n, (Shape){1, {dim}}, &e), ERR_OK);
    free(x);
    free(y);
}

static void test_roundtrip_f32_flat(void **state) {
    (void)state;
    for (int with_norm = 0; with_norm < 2; with_norm++) {
        const char *path = test_path(dir, with_norm ? "f32n.h5" : "f32.h5");
        write_f32_flat(path, with_norm, 6, 5);
        Dataset d;
        Err e = {0};
        assert_int_equal(dataset_load(&d, path, "val", 0, &e), ERR_OK);
        assert_int_equal(d.is_u8, 0);
        assert_int_equal(d.shape.ndim, 1);
        assert_int_equal(d.shape.d[0], 5);
        assert_int_equal(d.nchan, 1);
        int64_t idx[4] = {5, 5, 0, 3};
        float x[4 * 5];
        int32_t y[4];
        dataset_gather(&d, idx, 4, x, y);
        for (int i = 0; i < 4; i++) {
            assert_int_equal(y[i], (idx[i] * 7) % 4);
            for (int j = 0; j < 5; j++) {
                float v = sinf((float)(idx[i] * 5 + j)) * 3.0f;
                float want = with_norm ? (v - 0.125f) / 1.5f : v;
                assert_true(x[i * 5 + j] == want);
            }
        }
        dataset_free(&d);
    }
    assert_no_open_hdf5();
}

static void test_limit_reads_first_rows(void **state) {
    (void)state;
    const char *path = test_path(dir, "limit.h5");
    write_f32_flat(path, 0, 10, 3);
    int64_t limits[3] = {4, 0, 100}, want_n[3] = {4, 10, 10};
    for (int k = 0; k < 3; k++) {
        Dataset d;
        Err e = {0};
        assert_int_equal(dataset_load(&d, path, "val", limits[k], &e), ERR_OK);
        assert_int_equal(d.n, want_n[k]);
        for (int i = 0; i < d.n * 3; i++) assert_true(d.x_f32[i] == sinf((float)i) * 3.0f);
        for (int i = 0; i < d.n; i++) assert_int_equal(d.y[i], (i * 7) % 4);
        dataset_free(&d);
    }
    assert_no_open_hdf5();
}

static void test_has_split(void **state) {
    (void)state;
    const char *path = test_path(dir, "has.h5");
    write_u8_chw(path, 1);
    Err e = {0};
    assert_int_equal(dataset_has_split(path, "train", &e), 1);
    assert_int_equal(dataset_has_split(path, "val", &e), 0);
    assert_int_equal(dataset_has_split(test_path(dir, "absent.h5"), "train", &e), -2);
    assert_int_equal(e.code, ERR_INPUT);
    assert_non_null(strstr(e.msg, "absent.h5"));
    assert_no_open_hdf5();
}

static void test_info(void **state) {
    (void)state;
    const char *path = test_path(dir, "info.h5");
    write_u8_chw(path, 1);
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    Err e = {0};
    assert_int_equal(dataset_info(out, path, &e), ERR_OK);
    fclose(out);
    assert_non_null(strstr(buf, "num_classes 3: cat, dog, emu"));
    assert_non_null(strstr(buf, "0.5000/0.2000 0.2500/0.4000"));
    assert_non_null(strstr(buf, "train x (5,2,2,3) uint8, y (5); per class: 2 1 2"));
    assert_null(strstr(buf, "val"));
    free(buf);
    assert_no_open_hdf5();
}

static void test_writer_refuses_what_loader_would(void **state) {
    (void)state;
    const char *path = test_path(dir, "w.h5");
    Err e = {0};
    DatasetAttrs one = {.num_classes = 1};
    assert_int_equal(dataset_create(path, &one, &e), ERR_INPUT);
    float bad_std = 0.0f, mean = 0.0f;
    DatasetAttrs zero_std = {.num_classes = 2, .nchan = 1, .mean = &mean, .std = &bad_std};
    assert_int_equal(dataset_create(path, &zero_std, &e), ERR_INPUT);
    DatasetAttrs a = {.num_classes = 2};
    assert_int_equal(dataset_create(path, &a, &e), ERR_OK);
    uint8_t x[4] = {1, 2, 3, 4};
    int32_t y_bad[2] = {0, 2}, y[2] = {0, 1};
    assert_int_equal(dataset_write_split(path, "train", x, 1, y_bad, 2, (Shape){1, {2}}, &e),
                     ERR_INPUT);
    assert_non_null(strstr(e.msg, "/train/y[1] is 2"));
    assert_int_equal(dataset_write_split(path, "train", x, 1, y, 0, (Shape){1, {2}}, &e), ERR_INPUT);
    assert_int_equal(dataset_write_split(path, "train", x, 1, y, 2, (Shape){1, {2}}, &e), ERR_OK);
    assert_int_equal(dataset_write_split(path, "train", x, 1, y, 2, (Shape){1, {2}}, &e), ERR_INPUT);
    assert_non_null(strstr(e.msg, "already has /train"));
    assert_int_equal(dataset_write_split(test_path(dir, "nodir/w.h5"), "train", x, 1, y, 2,
                                         (Shape){1, {2}}, &e),
                     ERR_RUNTIME);
    assert_no_open_hdf5();
}

// ---- bad files, written with raw HDF5 calls ----

// A file with root attribute num_classes (unless < 0) and a /train group; returns the group,
// *file gets the file.
static hid_t raw_begin(const char *path, int64_t num_classes, hid_t *file) {
    *file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(*file >= 0);
    if (num_classes >= 0) {
        hid_t s = H5Screate(H5S_SCALAR);
        hid_t a = H5Acreate2(*file, "num_classes", H5T_STD_I64LE, s, H5P_DEFAULT, H5P_DEFAULT);
        assert_true(H5Awrite(a, H5T_NATIVE_INT64, &num_classes) >= 0);
        H5Aclose(a);
        H5Sclose(s);
    }
    hid_t g = H5Gcreate2(*file, "train", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(g >= 0);
    return g;
}

static void raw_dataset(hid_t loc, const char *name, hid_t type, int rank, const hsize_t *dims,
                        const void *data) {
    hid_t s = H5Screate_simple(rank, dims, NULL);
    hid_t d = H5Dcreate2(loc, name, type, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(d >= 0);
    if (data) assert_true(H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
    H5Dclose(d);
    H5Sclose(s);
}

static void raw_attr_floats(hid_t loc, const char *name, const float *v, hsize_t n) {
    hid_t s = H5Screate_simple(1, &n, NULL);
    hid_t a = H5Acreate2(loc, name, H5T_NATIVE_FLOAT, s, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(H5Awrite(a, H5T_NATIVE_FLOAT, v) >= 0);
    H5Aclose(a);
    H5Sclose(s);
}

static void raw_end(hid_t g, hid_t f) {
    H5Gclose(g);
    H5Fclose(f);
    assert_no_open_hdf5();
}

// A well-formed (4,3) uint8 x and (4) int32 y in group g.
static const uint8_t good_x[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
static const int32_t good_y[4] = {0, 1, 1, 0};
static void raw_good_x(hid_t g) { raw_dataset(g, "x", H5T_NATIVE_UCHAR, 2, (hsize_t[]){4, 3}, good_x); }
static void raw_good_y(hid_t g) { raw_dataset(g, "y", H5T_NATIVE_INT32, 1, (hsize_t[]){4}, good_y); }

// dataset_load of split must fail with ERR_INPUT, one line naming the file and each needle.
static void expect_refused(const char *path, const char *split, const char *needle1,
                           const char *needle2) {
    Dataset d;
    Err e = {0};
    int rc = dataset_load(&d, path, split, 0, &e);
    if (rc != ERR_INPUT) fail_msg("%s: expected ERR_INPUT, got %d (%s)", path, rc, e.msg);
    assert_int_equal(e.code, ERR_INPUT);
    if (!strstr(e.msg, path) || !strstr(e.msg, needle1) || (needle2 && !strstr(e.msg, needle2)))
        fail_msg("message '%s' lacks '%s' / '%s' / '%s'", e.msg, path, needle1,
                 needle2 ? needle2 : "");
    assert_null(strchr(e.msg, '\n'));
    assert_null(d.x_u8);
    assert_null(d.x_f32);
    assert_null(d.y);
    assert_no_open_hdf5();
}

static void test_bad_files(void **state) {
    (void)state;
    const char *path = test_path(dir, "missing.h5");
    expect_refused(path, "train", "/train", "No such file or directory");

    path = test_path(dir, "text.h5");
    FILE *t = fopen(path, "w");
    fputs("epoch,loss\n0,1.5\n", t);
    fclose(t);
    expect_refused(path, "train", "/train", "not an HDF5 file");

    expect_refused(dir, "train", "/train", "directory");

    path = test_path(dir, "truncated.h5");
    write_f32_flat(path, 1, 200, 50);
    size_t len = 0;
    free(test_read_file(path, &len));
    assert_int_equal(truncate(path, (off_t)len / 2), 0);
    expect_refused(path, "val", "/val", "truncated");
}

static void test_bad_structure(void **state) {
    (void)state;
    hid_t f, g;
    const char *path = test_path(dir, "nosplit.h5");
    write_u8_chw(path, 1);
    expect_refused(path, "val", "/val", NULL);
    expect_refused(path, "test", "has no /test group", NULL);

    path = test_path(dir, "nox.h5");
    g = raw_begin(path, 2, &f);
    raw_good_y(g);
    raw_end(g, f);
    expect_refused(path, "train", "/train/x is missing", NULL);

    path = test_path(dir, "noy.h5");
    g = raw_begin(path, 2, &f);
    raw_good_x(g);
    raw_end(g, f);
    expect_refused(path, "train", "/train/y is missing", NULL);

    path = test_path(dir, "nmismatch.h5");
    g = raw_begin(path, 2, &f);
    raw_good_x(g);
    raw_dataset(g, "y", H5T_NATIVE_INT32, 1, (hsize_t[]){3}, good_y);
    raw_end(g, f);
    expect_refused(path, "train", "/train/y has 3 samples but /train/x has 4", NULL);

    path = test_path(dir, "empty.h5");
    g = raw_begin(path, 2, &f);
    raw_dataset(g, "x", H5T_NATIVE_UCHAR, 2, (hsize_t[]){0, 3}, NULL);
    raw_dataset(g, "y", H5T_NATIVE_INT32, 1, (hsize_t[]){0}, NULL);
    raw_end(g, f);
    expect_refused(path, "train", "/train is empty", NULL);
}

static void test_bad_labels_and_classes(void **state) {
    (void)state;
    hid_t f, g;
    const char *path = test_path(dir, "label_high.h5");
    g = raw_begin(path, 2, &f);
    raw_good_x(g);
    raw_dataset(g, "y", H5T_NATIVE_INT32, 1, (hsize_t[]){4}, (int32_t[]){0, 1, 2, 0});
    raw_end(g, f);
    expect_refused(path, "train", "/train/y[2] is 2", "[0, 2)");

    path = test_path(dir, "label_neg.h5");
    g = raw_begin(path, 2, &f);
    raw_good_x(g);
    raw_dataset(g, "y", H5T_NATIVE_INT64, 1, (hsize_t[]){4}, (int64_t[]){0, 1, 1, -1});
    raw_end(g, f);
    expect_refused(path, "train", "/train/y[3] is -1", NULL);

    path = test_path(dir, "no_classes.h5");
    g = raw_begin(path, -1, &f);
    raw_good_x(g);
    raw_good_y(g);
    raw_end(g, f);
    expect_refused(path, "train", "num_classes is missing", NULL);

    path = test_path(dir, "one_class.h5");
    g = raw_begin(path, 1, &f);
    raw_good_x(g);
    raw_dataset(g, "y", H5T_NATIVE_INT32, 1, (hsize_t[]){4}, (int32_t[]){0, 0, 0, 0});
    raw_end(g, f);
    expect_refused(path, "train", "num_classes is 1", NULL);

    path = test_path(dir, "y_float.h5");
    g = raw_begin(path, 2, &f);
    raw_good_x(g);
    raw_dataset(g, "y", H5T_NATIVE_FLOAT, 1, (hsize_t[]){4}, (float[]){0, 1, 1, 0});
    raw_end(g, f);
    expect_refused(path, "train", "/train/y has type float32", NULL);
}

static void test_bad_x(void **state) {
    (void)state;
    hid_t f, g;
    const char *path = test_path(dir, "x_rank3.h5");
    g = raw_begin(path, 2, &f);
    raw_dataset(g, "x", H5T_NATIVE_UCHAR, 3, (hsize_t[]){4, 1, 3}, good_x);
    raw_good_y(g);
    raw_end(g, f);
    expect_refused(path, "train", "/train/x has shape (4,1,3)", NULL);

    path = test_path(dir, "x_int16.h5");
    g = raw_begin(path, 2, &f);
    raw_dataset(g, "x", H5T_NATIVE_INT16, 2, (hsize_t[]){4, 3}, (int16_t[12]){0});
    raw_good_y(g);
    raw_end(g, f);
    expect_refused(path, "train", "/train/x has type int16", NULL);

    path = test_path(dir, "x_f64.h5");
    g = raw_begin(path, 2, &f);
    raw_dataset(g, "x", H5T_NATIVE_DOUBLE, 2, (hsize_t[]){4, 3}, (double[12]){0});
    raw_good_y(g);
    raw_end(g, f);
    expect_refused(path, "train", "/train/x has type float64", NULL);

    float xs[12] = {0};
    const float specials[2] = {NAN, -INFINITY};
    const char *names[2] = {"nan", "-inf"};
    for (int k = 0; k < 2; k++) {
        xs[7] = specials[k];
        path = test_path(dir, k ? "x_inf.h5" : "x_nan.h5");
        g = raw_begin(path, 2, &f);
        raw_dataset(g, "x", H5T_NATIVE_FLOAT, 2, (hsize_t[]){4, 3}, xs);
        raw_good_y(g);
        raw_end(g, f);
        expect_refused(path, "train", "/train/x of sample 2 holds", names[k]);
    }
}

// A good (4,3) file plus the given mean/std root attributes (n = 0: leave it out).
static void write_with_norm(const char *path, const float *mean, int nmean, const float *std,
                            int nstd) {
    hid_t f;
    hid_t g = raw_begin(path, 2, &f);
    raw_good_x(g);
    raw_good_y(g);
    if (nmean) raw_attr_floats(f, "mean", mean, (hsize_t)nmean);
    if (nstd) raw_attr_floats(f, "std", std, (hsize_t)nstd);
    raw_end(g, f);
}

static void test_bad_norm(void **state) {
    (void)state;
    const float two[2] = {0.5f, 0.5f}, zero[1] = {0.0f}, neg[1] = {-1.0f}, ok[1] = {0.5f};
    const char *path = test_path(dir, "mean_len.h5");
    write_with_norm(path, two, 2, ok, 1);
    expect_refused(path, "train", "mean has 2 values but /train/x has 1 channel", NULL);
    path = test_path(dir, "std_len.h5");
    write_with_norm(path, ok, 1, two, 2);
    expect_refused(path, "train", "std has 2 values", NULL);
    path = test_path(dir, "std_zero.h5");
    write_with_norm(path, ok, 1, zero, 1);
    expect_refused(path, "train", "std[0] is 0", NULL);
    path = test_path(dir, "std_neg.h5");
    write_with_norm(path, ok, 1, neg, 1);
    expect_refused(path, "train", "std[0] is -1", NULL);
    path = test_path(dir, "std_only.h5");
    write_with_norm(path, ok, 0, ok, 1);
    expect_refused(path, "train", "mean is missing", NULL);

    // and the good case of the same helper loads, normalized
    path = test_path(dir, "norm_ok.h5");
    write_with_norm(path, ok, 1, ok, 1);
    Dataset d;
    Err e = {0};
    assert_int_equal(dataset_load(&d, path, "train", 0, &e), ERR_OK);
    float x[3];
    dataset_gather(&d, (int64_t[]){1}, 1, x, NULL);
    assert_true(x[0] == ((float)4 / 255.0f - 0.5f) / 0.5f);
    dataset_free(&d);
}

int main(void) {
    dir = test_tmpdir("test_dataset");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_u8_chw),
        cmocka_unit_test(test_roundtrip_u8_without_norm),
        cmocka_unit_test(test_roundtrip_f32_flat),
        cmocka_unit_test(test_limit_reads_first_rows),
        cmocka_unit_test(test_has_split),
        cmocka_unit_test(test_info),
        cmocka_unit_test(test_writer_refuses_what_loader_would),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_bad_structure),
        cmocka_unit_test(test_bad_labels_and_classes),
        cmocka_unit_test(test_bad_x),
        cmocka_unit_test(test_bad_norm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
