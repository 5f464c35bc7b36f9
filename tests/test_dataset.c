// test_dataset.c: io/dataset: write -> load -> gather round trips (uint8, uint16, float32),
// limit, info, class names, unlabelled splits, paths, the preprocessing record every load
// carries, and every kind of bad input file refused with ERR_INPUT naming the file and the
// dataset.
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

#include "io/dataset.h"
#include "io/preprocess_h5.h"
#include "iotest.h"
#include "testutil.h"

static const char *dir;

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
    assert_u8_split(&d, 5, 3, (Shape){3, {2, 2, 3}});
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
        assert_int_equal(d.pixel, PIXEL_F32);
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
    assert_null(strstr(buf, "\n  val "));  // no val split line (the path may hold "val")
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

// A write that runs out of room (a file-size limit plays the full disk: writes past it fail
// with EFBIG once SIGXFSZ is ignored) reports the OS's reason and leaves the file as it was.
static void test_failed_write_keeps_file(void **state) {
    (void)state;
    const char *path = test_path(dir, "full.h5");
    write_u8_chw(path, 1);
    size_t len = 0, len2 = 0;
    char *before = test_read_file(path, &len);
    enum { N = 100, D = 1000 };
    uint8_t *x = calloc(N * D, 1);
    int32_t y[N] = {0};
    DiskFull full;
    disk_full_begin(&full, len + 4096);
    Err e = {0};
    int rc = dataset_write_split(path, "val", x, 1, y, N, (Shape){1, {D}}, &e);
    disk_full_end(&full);
    free(x);
    if (rc != ERR_RUNTIME || !strstr(e.msg, path) || !strstr(e.msg, "File too large"))
        fail_msg("expected ERR_RUNTIME naming the file and 'File too large', got %d: %s", rc, e.msg);
    assert_no_open_hdf5();
    char *after = test_read_file(path, &len2);
    assert_int_equal(len, len2);
    assert_memory_equal(before, after, len);
    free(before);
    free(after);
    assert_no_temp_files(dir);
    assert_int_equal(dataset_has_split(path, "val", &e), 0);
}

// ---- bad files, written with raw HDF5 calls ----

// One dataset of a hand-made file; type 0 leaves it out.
typedef struct {
    hid_t type;
    int rank;
    hsize_t dims[4];
    const void *data;
} Raw;

// A hand-made file: root attribute num_classes (left out when < 0), /train/x and /train/y,
// root attributes mean and std (left out when their count is 0).
typedef struct {
    int64_t num_classes;
    Raw x, y;
    int nmean, nstd;
    const float *mean, *std;
} RawFile;

static const uint8_t good_x[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
static const int32_t good_y[4] = {0, 1, 1, 0};

// A well-formed file: 2 classes, x (4,3) uint8, y (4) int32; cases change one thing.
static RawFile good(void) {
    return (RawFile){.num_classes = 2, .x = {H5T_NATIVE_UCHAR, 2, {4, 3}, good_x},
                     .y = {H5T_NATIVE_INT32, 1, {4}, good_y}};
}

static void raw_dataset(hid_t loc, const char *name, Raw r) {
    if (!r.type) return;
    hid_t s = H5Screate_simple(r.rank, r.dims, NULL);
    hid_t d = H5Dcreate2(loc, name, r.type, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(d >= 0);
    if (r.data) assert_true(H5Dwrite(d, r.type, H5S_ALL, H5S_ALL, H5P_DEFAULT, r.data) >= 0);
    H5Dclose(d);
    H5Sclose(s);
}

static void raw_attr(hid_t loc, const char *name, hid_t type, hsize_t n, const void *v) {
    hid_t s = n ? H5Screate_simple(1, &n, NULL) : H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(loc, name, type, s, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(H5Awrite(a, type, v) >= 0);
    H5Aclose(a);
    H5Sclose(s);
}

// Writes r as dir/name; returns the path.
static const char *raw_file(const char *name, RawFile r) {
    const char *path = test_path(dir, name);
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(f >= 0);
    if (r.num_classes >= 0) raw_attr(f, "num_classes", H5T_NATIVE_INT64, 0, &r.num_classes);
    if (r.nmean) raw_attr(f, "mean", H5T_NATIVE_FLOAT, (hsize_t)r.nmean, r.mean);
    if (r.nstd) raw_attr(f, "std", H5T_NATIVE_FLOAT, (hsize_t)r.nstd, r.std);
    hid_t g = H5Gcreate2(f, "train", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(g >= 0);
    raw_dataset(g, "x", r.x);
    raw_dataset(g, "y", r.y);
    H5Gclose(g);
    H5Fclose(f);
    assert_no_open_hdf5();
    return path;
}

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
    assert_null(d.x_u16);
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
    const char *path = test_path(dir, "nosplit.h5");
    write_u8_chw(path, 1);
    expect_refused(path, "val", "/val", NULL);
    expect_refused(path, "test", "has no /test group", NULL);

    RawFile r = good();
    r.x.type = 0;
    expect_refused(raw_file("nox.h5", r), "train", "/train/x is missing", NULL);
    r = good();
    r.y.type = 0;
    expect_refused(raw_file("noy.h5", r), "train", "/train/y is missing", NULL);
    r = good();
    r.y.dims[0] = 3;
    expect_refused(raw_file("nmismatch.h5", r), "train",
                   "/train/y has 3 samples but /train/x has 4", NULL);
    r = good();
    r.x.dims[0] = r.y.dims[0] = 0;
    r.x.data = r.y.data = NULL;
    expect_refused(raw_file("empty.h5", r), "train", "/train is empty", NULL);
}

static void test_bad_labels_and_classes(void **state) {
    (void)state;
    RawFile r = good();
    r.y.data = (int32_t[]){0, 1, 2, 0};
    expect_refused(raw_file("label_high.h5", r), "train", "/train/y[2] is 2", "[0, 2)");
    r = good();
    r.y.type = H5T_NATIVE_INT64;
    r.y.data = (int64_t[]){0, 1, 1, -1};
    expect_refused(raw_file("label_neg.h5", r), "train", "/train/y[3] is -1", NULL);
    r = good();
    r.num_classes = -1;
    expect_refused(raw_file("no_classes.h5", r), "train", "num_classes is missing", NULL);
    r = good();
    r.num_classes = 1;
    r.y.data = (int32_t[]){0, 0, 0, 0};
    expect_refused(raw_file("one_class.h5", r), "train", "num_classes is 1", NULL);
    r = good();
    r.y.type = H5T_NATIVE_FLOAT;
    r.y.data = (float[]){0, 1, 1, 0};
    expect_refused(raw_file("y_float.h5", r), "train", "/train/y has type float32", NULL);
    // num_classes stored as a 64-bit integer whose type claims 65 significant bits (a file the
    // fuzzer made): HDF5 read it as 257 once and INT64_MIN the next time. Patched in the bytes
    // of its datatype message: fixed-point, signed, 8 bytes, bit offset 0, precision 64.
    const char *path = raw_file("num_classes_65bits.h5", good());
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    unsigned char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf, f);
    const unsigned char i64[12] = {0x10, 0x08, 0, 0, 8, 0, 0, 0, 0, 0, 64, 0};
    int patched = 0;
    for (size_t i = 0; i + sizeof i64 <= n; i++)
        if (!memcmp(buf + i, i64, sizeof i64)) buf[i + 10] = 65, patched++;
    assert_true(patched >= 1);
    rewind(f);
    assert_int_equal(fwrite(buf, 1, n, f), n);
    fclose(f);
    expect_refused(path, "train", "num_classes is not one integer", NULL);
}

static void test_bad_x(void **state) {
    (void)state;
    RawFile r = good();
    r.x.rank = 3;
    r.x.dims[1] = 1, r.x.dims[2] = 3;
    expect_refused(raw_file("x_rank3.h5", r), "train", "/train/x has shape (4,1,3)", NULL);
    r = good();
    r.x.type = H5T_NATIVE_INT16;
    r.x.data = (int16_t[12]){0};
    expect_refused(raw_file("x_int16.h5", r), "train", "/train/x has type int16", NULL);
    r = good();
    r.x.type = H5T_NATIVE_DOUBLE;
    r.x.data = (double[12]){0};
    expect_refused(raw_file("x_f64.h5", r), "train", "/train/x has type float64", NULL);

    // created but never written: HDF5 would read zeros for it
    r = good();
    r.x.data = NULL;
    expect_refused(raw_file("x_unwritten.h5", r), "train",
                   "/train/x is not all in the file: 0 of its 12 bytes are stored", NULL);
    r = good();
    r.y.data = NULL;
    expect_refused(raw_file("y_unwritten.h5", r), "train",
                   "/train/y is not all in the file: 0 of its 16 bytes", NULL);
    // chunked, compressed, a writer that stopped after 2 of 4 samples; then all 4 load
    r = good();
    r.x.type = 0;
    const char *path = raw_file("x_half.h5", r);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT), g = H5Gopen2(f, "train", H5P_DEFAULT);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE), s = H5Screate_simple(2, r.x.dims, NULL);
    assert_true(H5Pset_chunk(dcpl, 2, (hsize_t[]){1, 3}) >= 0 && H5Pset_deflate(dcpl, 4) >= 0);
    hid_t x = H5Dcreate2(g, "x", H5T_NATIVE_UCHAR, s, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    assert_true(H5Sselect_hyperslab(s, H5S_SELECT_SET, (hsize_t[]){0, 0}, NULL,
                                    (hsize_t[]){2, 3}, NULL) >= 0);
    hid_t m = H5Screate_simple(2, (hsize_t[]){2, 3}, NULL);
    assert_true(H5Dwrite(x, H5T_NATIVE_UCHAR, m, s, H5P_DEFAULT, good_x) >= 0);
    H5Dclose(x), H5Sclose(m), H5Sclose(s), H5Pclose(dcpl), H5Gclose(g), H5Fclose(f);
    expect_refused(path, "train", "/train/x is not all in the file: 2 of its 4 chunks", NULL);
    f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    x = H5Dopen2(f, "train/x", H5P_DEFAULT);
    assert_true(H5Dwrite(x, H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, good_x) >= 0);
    H5Dclose(x), H5Fclose(f);
    Dataset d;
    Err e = {0};
    assert_int_equal(dataset_load(&d, path, "train", 0, &e), ERR_OK);
    assert_memory_equal(d.x_u8, good_x, 12);
    dataset_free(&d);
    assert_no_open_hdf5();

    float xs[12] = {0};
    const float specials[2] = {NAN, -INFINITY};
    const char *names[2] = {"nan", "-inf"};
    for (int k = 0; k < 2; k++) {
        xs[7] = specials[k];
        r = good();
        r.x.type = H5T_NATIVE_FLOAT;
        r.x.data = xs;
        expect_refused(raw_file(k ? "x_inf.h5" : "x_nan.h5", r), "train",
                       "/train/x of sample 2 holds", names[k]);
    }
}

static void test_bad_norm(void **state) {
    (void)state;
    const float two[2] = {0.5f, 0.5f}, zero[1] = {0.0f}, neg[1] = {-1.0f}, ok[1] = {0.5f};
    const struct {
        const char *name;
        int nmean, nstd;
        const float *mean, *std;
        const char *needle;
    } cases[] = {
        {"mean_len.h5", 2, 1, two, ok, "mean has 2 values but /train/x has 1 channel"},
        {"std_len.h5", 1, 2, ok, two, "std has 2 values"},
        {"std_zero.h5", 1, 1, ok, zero, "std[0] is 0"},
        {"std_neg.h5", 1, 1, ok, neg, "std[0] is -1"},
        {"std_only.h5", 0, 1, ok, ok, "mean is missing"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        RawFile r = good();
        r.nmean = cases[i].nmean, r.nstd = cases[i].nstd;
        r.mean = cases[i].mean, r.std = cases[i].std;
        expect_refused(raw_file(cases[i].name, r), "train", cases[i].needle, NULL);
    }

    // and the same kind of file with good attributes loads, normalized
    RawFile r = good();
    r.nmean = r.nstd = 1;
    r.mean = r.std = ok;
    Dataset d = load_or_fail(raw_file("norm_ok.h5", r), "train");
    float x[3];
    dataset_gather(&d, (int64_t[]){1}, 1, x, NULL);
    assert_true(x[0] == ((float)4 / 255.0f - 0.5f) / 0.5f);
    dataset_free(&d);
}

// ---- uint16, class names, unlabelled splits, paths, the preprocessing record ----

// uint16 pixels load as stored and gather as (x/65535 - mean)/std in float32.
static void test_roundtrip_u16(void **state) {
    (void)state;
    const char *path = test_path(dir, "u16.h5");
    enum { N = 3, PER = 8 };  // (2,2,2)
    uint16_t x[N * PER];
    for (int i = 0; i < N * PER; i++) x[i] = (uint16_t)(i * 2749 + 40000);
    x[5] = 65535, x[6] = 0;
    int32_t y[N] = {1, 0, 1};
    float mean[2] = {0.5f, 0.25f}, std[2] = {0.2f, 0.4f};
    DatasetAttrs a = {.num_classes = 2, .nchan = 2, .mean = mean, .std = std};
    Err e = {0};
    assert_int_equal(dataset_create(path, &a, &e), ERR_OK);
    assert_int_equal(
        dataset_write_split(path, "test", x, PIXEL_U16, y, N, (Shape){3, {2, 2, 2}}, &e), ERR_OK);
    Dataset d = load_or_fail(path, "test");
    assert_int_equal(d.pixel, PIXEL_U16);
    assert_int_equal(dataset_pixel_bytes(&d), 2);
    assert_null(d.x_u8);
    assert_memory_equal(d.x_u16, x, sizeof x);
    assert_int_equal(d.prep.bit_depth, 16);
    float got[N * PER];
    int64_t idx[N] = {2, 0, 1};
    int32_t gy[N];
    dataset_gather(&d, idx, N, got, gy);
    for (int i = 0; i < N; i++) {
        assert_int_equal(gy[i], y[idx[i]]);
        for (int j = 0; j < PER; j++) {
            int c = j / 4;
            float want = ((float)x[idx[i] * PER + j] / 65535.0f - mean[c]) / std[c];
            assert_true(got[i * PER + j] == want);
        }
    }
    dataset_free(&d);
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    assert_int_equal(dataset_info(out, path, &e), ERR_OK);
    fclose(out);
    assert_non_null(strstr(buf, "test  x (3,2,2,2) uint16, y (3); per class: 1 2"));
    free(buf);
    assert_no_open_hdf5();
}

// Strings (variable-length UTF-8) as an attribute of loc, or as a dataset when is_dataset.
static void raw_strings(hid_t loc, const char *name, int is_dataset, const char **s, hsize_t n) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    hid_t sp = H5Screate_simple(1, &n, NULL);
    hid_t o = is_dataset ? H5Dcreate2(loc, name, t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)
                         : H5Acreate2(loc, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(o >= 0);
    assert_true((is_dataset ? H5Dwrite(o, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, s) : H5Awrite(o, t, s))
                >= 0);
    is_dataset ? H5Dclose(o) : H5Aclose(o);
    H5Sclose(sp);
    H5Tclose(t);
}

static hid_t reopen(const char *path) {
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    return f;
}

static char *info_text(const char *path) {
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    Err e = {0};
    if (dataset_info(out, path, &e)) fail_msg("%s", e.msg);
    fclose(out);
    return buf;
}

// Root attribute classes names the classes; older files' class_names still do; a list of
// the wrong length is refused.
static void test_class_names(void **state) {
    (void)state;
    const char *path = test_path(dir, "names_api.h5");
    write_u8_chw(path, 1);  // dataset_create writes classes and class_names
    Dataset d = load_or_fail(path, "train");
    assert_int_equal(d.prep.num_classes, 3);
    assert_non_null(d.prep.classes);
    assert_string_equal(d.prep.classes[2], "emu");
    dataset_free(&d);
    assert_null(d.prep.classes);

    const char *two[2] = {"ant", "bee"}, *three[3] = {"a", "b", "c"};
    const char *attrs[2] = {"classes", "class_names"};
    for (int k = 0; k < 2; k++) {
        path = raw_file(k ? "names_old.h5" : "names_new.h5", good());
        hid_t f = reopen(path);
        raw_strings(f, attrs[k], 0, two, 2);
        H5Fclose(f);
        d = load_or_fail(path, "train");
        assert_int_equal(d.prep.num_classes, 2);
        assert_string_equal(d.prep.classes[0], "ant");
        assert_string_equal(d.prep.classes[1], "bee");
        dataset_free(&d);
        char *info = info_text(path);
        assert_non_null(strstr(info, "num_classes 2: ant, bee"));
        free(info);
    }
    // classes wins over class_names
    path = raw_file("names_both.h5", good());
    hid_t f = reopen(path);
    raw_strings(f, "class_names", 0, (const char *[]){"old", "older"}, 2);
    raw_strings(f, "classes", 0, two, 2);
    H5Fclose(f);
    d = load_or_fail(path, "train");
    assert_string_equal(d.prep.classes[0], "ant");
    dataset_free(&d);

    path = raw_file("names_three.h5", good());
    f = reopen(path);
    raw_strings(f, "classes", 0, three, 3);
    H5Fclose(f);
    expect_refused(path, "train", "root attribute classes has 3 names but num_classes is 2", NULL);
}

// A split without y: dataset_load (the trainer, eval) refuses it with the usual message;
// dataset_load_x (predict) loads it with no labels, and gather gives -1.
static void test_unlabelled_split(void **state) {
    (void)state;
    RawFile r = good();
    r.y.type = 0;
    const char *path = raw_file("unlabelled.h5", r);
    expect_refused(path, "train", "/train/y is missing", NULL);
    Dataset d;
    Err e = {0};
    assert_int_equal(dataset_load_x(&d, path, "train", &e), ERR_OK);
    assert_int_equal(d.n, 4);
    assert_int_equal(d.labelled, 0);
    assert_null(d.y);
    float x[2 * 3];
    int32_t y[2] = {7, 7};
    dataset_gather(&d, (int64_t[]){3, 0}, 2, x, y);
    assert_int_equal(y[0], -1);
    assert_int_equal(y[1], -1);
    assert_true(x[0] == 10.0f / 255.0f && x[5] == 3.0f / 255.0f);
    dataset_free(&d);
    char *info = info_text(path);
    assert_non_null(strstr(info, "train x (4,3) uint8, no y (unlabelled)"));
    free(info);

    // labels that are present are still checked
    r = good();
    r.y.data = (int32_t[]){0, 1, 2, 0};
    path = raw_file("unlabelled_bad.h5", r);
    assert_int_equal(dataset_load_x(&d, path, "train", &e), ERR_INPUT);
    assert_non_null(strstr(e.msg, "/train/y[2] is 2"));
    assert_no_open_hdf5();
}

// /split/paths: one string per sample, shown by info; any other shape or type is refused.
static void test_paths(void **state) {
    (void)state;
    const char *paths[4] = {"cat/a.png", "dog/b, c.png", "dog/\"q\".png", "cat/d.png"};
    const char *path = raw_file("paths.h5", good());
    hid_t f = reopen(path);
    hid_t g = H5Gopen2(f, "train", H5P_DEFAULT);
    raw_strings(g, "paths", 1, paths, 4);
    H5Gclose(g);
    H5Fclose(f);
    Dataset d = load_or_fail(path, "train");
    assert_int_equal(d.has_paths, 1);
    dataset_free(&d);
    char *info = info_text(path);
    assert_non_null(strstr(info, "per class: 2 2; paths (4)"));
    free(info);

    path = raw_file("paths_short.h5", good());
    f = reopen(path);
    g = H5Gopen2(f, "train", H5P_DEFAULT);
    raw_strings(g, "paths", 1, paths, 3);
    H5Gclose(g);
    H5Fclose(f);
    expect_refused(path, "train", "/train/paths is string (3)", "expected (4) strings");

    RawFile r = good();
    path = raw_file("paths_int.h5", r);
    f = reopen(path);
    g = H5Gopen2(f, "train", H5P_DEFAULT);
    raw_dataset(g, "paths", (Raw){H5T_NATIVE_INT32, 1, {4}, good_y});
    H5Gclose(g);
    H5Fclose(f);
    expect_refused(path, "train", "/train/paths is int32 (4)", NULL);
}

// Every load carries a Preprocess: the file's group when it has one, else what the file
// says; either way its shape, bit depth, normalization and names are what gather uses.
static void test_preprocessing_record(void **state) {
    (void)state;
    const char *path = test_path(dir, "prep_none.h5");
    write_u8_chw(path, 1);
    Dataset d = load_or_fail(path, "train");
    assert_string_equal(d.prep.source, "unknown");
    assert_string_equal(d.prep.resize, "none");
    assert_int_equal(d.prep.bit_depth, 8);
    assert_int_equal(d.prep.input.ndim, 3);
    assert_int_equal(d.prep.input.d[2], 3);
    assert_int_equal(d.prep.nchan, 2);
    assert_true(d.prep.mean[1] == 0.25f && d.prep.std[1] == 0.4f);
    dataset_free(&d);
    char *info = info_text(path);
    assert_non_null(strstr(info, "no /preprocessing group"));
    free(info);

    path = test_path(dir, "prep_plain.h5");
    write_u8_chw(path, 0);
    d = load_or_fail(path, "train");
    assert_int_equal(d.prep.nchan, 0);  // no mean/std: gather does not normalize
    dataset_free(&d);

    // a group written by an importer: its image fields are kept, the rest follows the data
    path = test_path(dir, "prep_group.h5");
    write_u8_chw(path, 1);
    Preprocess p;
    prep_init(&p, (Shape){3, {9, 9, 9}}, 16);
    snprintf(p.source, sizeof p.source, "images");
    snprintf(p.channel_order, sizeof p.channel_order, "RGB");
    snprintf(p.resize, sizeof p.resize, "lanczos3");
    snprintf(p.convert, sizeof p.convert, "rgb");
    p.nchan = 1, p.mean[0] = 0.9f, p.std[0] = 0.1f;
    hid_t f = reopen(path);
    assert_int_equal(prep_h5_write(f, &p), 0);
    H5Fclose(f);
    d = load_or_fail(path, "train");
    assert_string_equal(d.prep.source, "images");
    assert_string_equal(d.prep.channel_order, "RGB");
    assert_string_equal(d.prep.resize, "lanczos3");
    assert_string_equal(d.prep.convert, "rgb");
    assert_int_equal(d.prep.bit_depth, 8);
    assert_int_equal(d.prep.input.d[0], 2);
    assert_int_equal(d.prep.nchan, 2);
    assert_true(d.prep.mean[0] == 0.5f && d.prep.std[0] == 0.2f);
    assert_int_equal(d.prep.num_classes, 3);
    assert_string_equal(d.prep.classes[0], "cat");

    // dataset_use_norm: gather normalizes with the values given, the record follows
    Preprocess other = d.prep;
    other.classes = NULL;
    other.mean[0] = 0.125f, other.std[0] = 0.5f, other.mean[1] = 0.0f, other.std[1] = 2.0f;
    Err e = {0};
    assert_int_equal(dataset_use_norm(&d, &other, &e), ERR_OK);
    assert_true(prep_same_norm(&d.prep, &other));
    float x[12];
    dataset_gather(&d, (int64_t[]){1}, 1, x, NULL);
    assert_true(x[0] == ((float)d.x_u8[12] / 255.0f - 0.125f) / 0.5f);
    assert_true(x[11] == ((float)d.x_u8[23] / 255.0f - 0.0f) / 2.0f);
    other.nchan = 0;  // none at all
    assert_int_equal(dataset_use_norm(&d, &other, &e), ERR_OK);
    dataset_gather(&d, (int64_t[]){1}, 1, x, NULL);
    assert_true(x[0] == (float)d.x_u8[12] / 255.0f);
    other.nchan = 3;
    assert_int_equal(dataset_use_norm(&d, &other, &e), ERR_INPUT);
    assert_non_null(strstr(e.msg, "has 2 channels but the normalization has 3"));
    dataset_free(&d);
    info = info_text(path);
    assert_non_null(strstr(info, "preprocessing: source images, input (9,9,9), channels RGB, "
                                 "16-bit, resize lanczos3, convert rgb, normalization mean 0.9000 "
                                 "std 0.1000"));
    free(info);

    // a damaged group is bad input
    path = test_path(dir, "prep_bad.h5");
    write_u8_chw(path, 1);
    f = reopen(path);
    hid_t g = H5Gcreate2(f, "preprocessing", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Gclose(g);
    H5Fclose(f);
    expect_refused(path, "train", "/preprocessing attribute", NULL);
    assert_no_open_hdf5();
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
        cmocka_unit_test(test_failed_write_keeps_file),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_bad_structure),
        cmocka_unit_test(test_bad_labels_and_classes),
        cmocka_unit_test(test_bad_x),
        cmocka_unit_test(test_bad_norm),
        cmocka_unit_test(test_roundtrip_u16),
        cmocka_unit_test(test_class_names),
        cmocka_unit_test(test_unlabelled_split),
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_preprocessing_record),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
