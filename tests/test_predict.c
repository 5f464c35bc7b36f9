// test_predict.c: eval and predict with the checkpoint's preprocessing, end to end: a folder
// of PNGs imported with `regdist data images`, a tiny CNN trained 2 steps, then
//  - the checkpoint holds /preprocessing with the training mean/std;
//  - a data file whose mean/std differ gives one warning line and the same results (issue
//    10: the same model scored 72.8% or 82.8% depending on the file's attributes);
//  - an older checkpoint without /preprocessing: a notice, and it still works;
//  - data of another shape or class count: one line, exit 2;
//  - a split without labels: predict works (and copies paths), eval refuses;
//  - predict --images on the files gives the probabilities predict gives on the HDF5;
//  - bad --images inputs: exit 2, one line, no CSV left behind.
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
#include <vips/vips.h>

#include "io/checkpoint.h"
#include "iotest.h"
#include "testutil.h"

enum { PER_CLASS = 20, SIDE = 12 };

static const char *dir;
static char imgs[1024], data[1024], ckpt[1024], config[1024];

static const char *at(const char *file) { return test_path(dir, file); }

// A 12x12 gray PNG: class 0 bright on the left, class 1 bright on top, plus a pattern per i;
// 8 bits, or 16 with values no 8-bit file could hold.
static void write_png_depth(const char *path, int cls, int i, int bits) {
    uint16_t px[SIDE * SIDE];
    uint8_t px8[SIDE * SIDE];
    for (int r = 0; r < SIDE; r++)
        for (int c = 0; c < SIDE; c++) {
            int bright = cls == 0 ? c < SIDE / 2 : r < SIDE / 2;
            int v = (bright ? 150 : 40) + (r * 7 + c * 13 + i * 29) % 90;
            px8[r * SIDE + c] = (uint8_t)v;
            px[r * SIDE + c] = (uint16_t)(v * 256 + (r * 31 + c * 17 + i) % 256);
        }
    VipsImage *im = bits == 16 ? vips_image_new_from_memory(px, sizeof px, SIDE, SIDE, 1,
                                                             VIPS_FORMAT_USHORT)
                               : vips_image_new_from_memory(px8, sizeof px8, SIDE, SIDE, 1,
                                                             VIPS_FORMAT_UCHAR);
    assert_non_null(im);
    VipsImage *grey;
    assert_int_equal(vips_copy(im, &grey, "interpretation",
                               bits == 16 ? VIPS_INTERPRETATION_GREY16 : VIPS_INTERPRETATION_B_W,
                               NULL), 0);
    if (vips_pngsave(grey, path, "bitdepth", bits, NULL))
        fail_msg("saving %s: %s", path, vips_error_buffer());
    g_object_unref(grey);
    g_object_unref(im);
}

static void write_png(const char *path, int cls, int i) { write_png_depth(path, cls, i, 8); }

// Two class folders of PER_CLASS images each under folder.
static void write_folder(const char *folder, int bits) {
    static const char *classes[2] = {"ankle", "bag"};
    mkdir(folder, 0755);
    for (int k = 0; k < 2; k++) {
        char sub[1100];
        snprintf(sub, sizeof sub, "%s/%s", folder, classes[k]);
        mkdir(sub, 0755);
        for (int i = 0; i < PER_CLASS; i++) {
            char f[1200];
            snprintf(f, sizeof f, "%s/img%02d.png", sub, i);
            write_png_depth(f, k, i, bits);
        }
    }
}

// Imports folder into file and trains the tiny CNN 2 steps into run (last.h5).
static void import_and_train(const char *folder, const char *file, const char *run) {
    RunResult r;
    test_run_regdist(&r, (const char *[]){"data", "images", folder, "--out", file, "--val-frac",
                                          "0.2", "--test-frac", "0.2", "--seed", "1", NULL});
    if (r.status) fail_msg("data images: %s", r.err);
    test_run_regdist(&r, (const char *[]){"train", "--config", config, "--data", file, "--out",
                                          run, "--set", "train.max_steps=2", "--set",
                                          "layer.head.out=2", NULL});
    if (r.status) fail_msg("train: %s", r.err);
}

static void copy_file(const char *from, const char *to) {
    size_t len = 0;
    char *b = test_read_file(from, &len);
    assert_non_null(b);
    FILE *f = fopen(to, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, len, f), len);
    fclose(f);
    free(b);
}

static void run_ok(RunResult *r, const char *const *args) {
    test_run_regdist(r, args);
    test_expect_ok(r);
}

static int setup(void **state) {
    (void)state;
    if (VIPS_INIT("test_predict")) return -1;
    dir = test_tmpdir("predict");
    snprintf(imgs, sizeof imgs, "%s", at("imgs"));
    snprintf(data, sizeof data, "%s", at("img.h5"));
    snprintf(ckpt, sizeof ckpt, "%s", at("run/last.h5"));
    snprintf(config, sizeof config, "%s/tests/configs/tiny_cnn.cfg", test_source_dir());
    write_folder(imgs, 8);
    import_and_train(imgs, data, at("run"));
    return 0;
}

// The root attribute name of an HDF5 file, as floats.
static void read_f32_attr(const char *path, const char *obj, const char *name, float *v, int n) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t a = H5Aopen_by_name(f, obj, name, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(a >= 0);
    hid_t s = H5Aget_space(a);
    assert_int_equal(H5Sget_simple_extent_npoints(s), n);
    assert_true(H5Aread(a, H5T_NATIVE_FLOAT, v) >= 0);
    H5Sclose(s);
    H5Aclose(a);
    H5Fclose(f);
}

static void write_f32_attr(const char *path, const char *name, const float *v, hsize_t n) {
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    if (H5Aexists(f, name) > 0) assert_true(H5Adelete(f, name) >= 0);
    hid_t s = H5Screate_simple(1, &n, NULL);
    hid_t a = H5Acreate2(f, name, H5T_IEEE_F32LE, s, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(H5Awrite(a, H5T_NATIVE_FLOAT, v) >= 0);
    H5Aclose(a);
    H5Sclose(s);
    H5Fclose(f);
}

static void delete_link(const char *path, const char *name) {
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    assert_true(H5Ldelete(f, name, H5P_DEFAULT) >= 0);
    H5Fclose(f);
}

// A whole float dataset of a predictions file; *n gets its element count.
static float *read_floats(const char *path, const char *name, size_t *n) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    assert_true(d >= 0);
    hid_t s = H5Dget_space(d);
    *n = (size_t)H5Sget_simple_extent_npoints(s);
    float *v = malloc(*n * sizeof *v);
    assert_true(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
    H5Sclose(s);
    H5Dclose(d);
    H5Fclose(f);
    return v;
}

// A dataset of strings (paths), malloc'd array of malloc'd strings.
static char **read_strings(const char *path, const char *name, size_t *n) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    assert_true(d >= 0);
    hid_t s = H5Dget_space(d), t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    *n = (size_t)H5Sget_simple_extent_npoints(s);
    char **v = calloc(*n, sizeof *v);
    assert_true(H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
    for (size_t i = 0; i < *n; i++) {  // HDF5's allocations into ours
        char *own = strdup(v[i]);
        H5free_memory(v[i]);
        v[i] = own;
    }
    H5Tclose(t);
    H5Sclose(s);
    H5Dclose(d);
    H5Fclose(f);
    return v;
}

static void free_strings(char **v, size_t n) {
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
}

static void predict_h5(const char *checkpoint, const char *file, const char *out) {
    RunResult r;
    run_ok(&r, (const char *[]){"predict", "--checkpoint", checkpoint, "--data", file, "--out",
                                out, NULL});
}

// The checkpoint records the training split's mean/std, shape, classes.
static void test_checkpoint_has_preprocessing(void **state) {
    (void)state;
    float want[1], got[1];
    read_f32_attr(data, "/", "mean", want, 1);
    read_f32_attr(ckpt, "/preprocessing", "mean", got, 1);
    assert_true(want[0] == got[0]);
    read_f32_attr(data, "/", "std", want, 1);
    read_f32_attr(ckpt, "/preprocessing", "std", got, 1);
    assert_true(want[0] == got[0]);
    CkptMeta m = {0};
    Err e = {0};
    assert_int_equal(ckpt_read_meta(ckpt, &m, &e), ERR_OK);
    assert_int_equal(m.has_prep, 1);
    assert_string_equal(m.stored_prep.source, "images");
    assert_int_equal(m.stored_prep.num_classes, 2);
    assert_string_equal(m.stored_prep.classes[1], "bag");
    assert_int_equal(m.stored_prep.input.d[2], SIDE);
    ckpt_meta_free(&m);
}

// A file with other mean/std: one warning naming both, and results equal to the matching
// file's, bit for bit.
static void test_checkpoint_normalization_wins(void **state) {
    (void)state;
    const char *other = at("img_other_norm.h5");
    copy_file(data, other);
    const float mean = 0.1f, std = 0.9f;
    write_f32_attr(other, "mean", &mean, 1);
    write_f32_attr(other, "std", &std, 1);

    RunResult a, b;
    run_ok(&a, (const char *[]){"eval", "--checkpoint", ckpt, "--data", data, "--json", NULL});
    assert_string_equal(a.err, "");
    run_ok(&b, (const char *[]){"eval", "--checkpoint", ckpt, "--data", other, "--json", NULL});
    assert_non_null(strstr(a.out, "\"count\""));
    assert_string_equal(strstr(a.out, "\"count\""), strstr(b.out, "\"count\""));
    assert_non_null(strstr(b.err, "warning"));
    assert_non_null(strstr(b.err, "mean 0.1000 std 0.9000"));
    assert_non_null(strstr(b.err, "using the checkpoint's"));
    assert_int_equal(strchr(b.err, '\n') - b.err + 1, strlen(b.err));  // one line

    const char *pa = at("norm_a.h5"), *pb = at("norm_b.h5");
    predict_h5(ckpt, data, pa);
    predict_h5(ckpt, other, pb);
    size_t na, nb;
    float *va = read_floats(pa, "probs_mean", &na), *vb = read_floats(pb, "probs_mean", &nb);
    assert_int_equal(na, nb);
    assert_int_equal(na, 2 * 2 * PER_CLASS / 5);
    assert_memory_equal(va, vb, na * sizeof *va);
    free(va);
    free(vb);
}

// An older checkpoint (no /preprocessing): a notice, the data file's values, same results.
static void test_old_checkpoint(void **state) {
    (void)state;
    const char *old = at("old.h5");
    copy_file(ckpt, old);
    delete_link(old, "preprocessing");
    RunResult a, b;
    run_ok(&a, (const char *[]){"eval", "--checkpoint", ckpt, "--data", data, "--json", NULL});
    run_ok(&b, (const char *[]){"eval", "--checkpoint", old, "--data", data, "--json", NULL});
    assert_string_equal(strstr(a.out, "\"count\""), strstr(b.out, "\"count\""));
    assert_non_null(strstr(b.err, "predates stored normalization"));
    assert_int_equal(strchr(b.err, '\n') - b.err + 1, strlen(b.err));
    // it cannot say how to decode image files
    test_run_regdist(&b, (const char *[]){"predict", "--checkpoint", old, "--images", imgs,
                                          "--out", at("old.csv"), NULL});
    test_expect_bad_input(&b, "predates stored preprocessing");
}

// Data of another shape or class count than the checkpoint's: one line, exit 2.
static void test_data_must_fit(void **state) {
    (void)state;
    RunResult r;
    const char *small = at("small.h5"), *three = at("three.h5");
    run_ok(&r, (const char *[]){"data", "synth", "--out", small, "--shape", "1,8,8", "--classes",
                                "2", NULL});
    test_run_regdist(&r, (const char *[]){"eval", "--checkpoint", ckpt, "--data", small, NULL});
    test_expect_bad_input(&r, "samples are (1,8,8) but");
    assert_non_null(strstr(r.err, "was trained on (1,12,12)"));
    run_ok(&r, (const char *[]){"data", "synth", "--out", three, "--shape", "1,12,12",
                                "--classes", "3", NULL});
    test_run_regdist(&r, (const char *[]){"predict", "--checkpoint", ckpt, "--data", three,
                                          "--out", at("three_p.h5"), NULL});
    test_expect_bad_input(&r, "has 3 classes but");
}

// A split without y: predict writes probabilities and the split's paths; eval refuses.
static void test_unlabelled_split(void **state) {
    (void)state;
    const char *unl = at("unlabelled.h5"), *p = at("unl_p.h5"), *q = at("lab_p.h5");
    copy_file(data, unl);
    delete_link(unl, "test/y");
    RunResult r;
    run_ok(&r, (const char *[]){"predict", "--checkpoint", ckpt, "--data", unl, "--out", p, NULL});
    assert_non_null(strstr(r.out, "(unlabelled)"));
    assert_null(strstr(r.out, "acc"));
    predict_h5(ckpt, data, q);
    size_t na, nb;
    float *va = read_floats(p, "probs_mean", &na), *vb = read_floats(q, "probs_mean", &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(va, vb, na * sizeof *va);
    free(va);
    free(vb);
    char **want = read_strings(data, "test/paths", &na), **got = read_strings(p, "paths", &nb);
    assert_int_equal(na, nb);
    for (size_t i = 0; i < na; i++) assert_string_equal(want[i], got[i]);
    free_strings(want, na);
    free_strings(got, nb);

    test_run_regdist(&r, (const char *[]){"eval", "--checkpoint", ckpt, "--data", unl, NULL});
    test_expect_bad_input(&r, "/test/y is missing");
}

// The CSV's rows: fields split at commas (the paths here have none). Returns the row count.
static int csv_rows(char *csv, char *rows[][6], int max_rows) {
    int n = 0;
    char *line = strchr(csv, '\n') + 1;  // after the header
    while (*line && n < max_rows) {
        char *end = strchr(line, '\n');
        *end = 0;
        int k = 0;
        for (char *f = line; f && k < 6; k++) {
            rows[n][k] = f;
            char *c = strchr(f, ',');
            if (c) *c++ = 0;
            f = c;
        }
        n++;
        line = end + 1;
    }
    return n;
}

// predict --images on folder's files equals predict on file (folder imported), file by file.
static void compare_images_with_hdf5(const char *folder, const char *file, const char *checkpoint,
                                     const char *csv, const char *p) {
    RunResult r;
    run_ok(&r, (const char *[]){"predict", "--checkpoint", checkpoint, "--images", folder,
                                "--out", csv, NULL});
    assert_non_null(strstr(r.out, "40 images"));
    predict_h5(checkpoint, file, p);
    char *text = test_read_file(csv, NULL);
    assert_non_null(text);
    assert_int_equal(strncmp(text, "path,class,probability\n", 23), 0);
    static char *rows[64][6];
    int n = csv_rows(text, rows, 64);
    assert_int_equal(n, 2 * PER_CLASS);
    for (int i = 1; i < n; i++) assert_true(strcmp(rows[i - 1][0], rows[i][0]) < 0);  // sorted
    size_t np, nm;
    char **paths = read_strings(file, "test/paths", &np);
    float *mean = read_floats(p, "probs_mean", &nm);
    assert_int_equal(nm, 2 * np);
    for (size_t i = 0; i < np; i++) {
        char want[2048];
        snprintf(want, sizeof want, "%s/%s", folder, paths[i]);
        int row = -1;
        for (int k = 0; k < n; k++)
            if (strcmp(rows[k][0], want) == 0) row = k;
        if (row < 0) fail_msg("%s is not in the CSV", want);
        int cls = mean[2 * i + 1] > mean[2 * i] ? 1 : 0;
        assert_string_equal(rows[row][1], cls ? "bag" : "ankle");
        double prob = strtod(rows[row][2], NULL);
        if (!(prob > mean[2 * i + cls] - 1e-6 && prob < mean[2 * i + cls] + 1e-6))
            fail_msg("%s: CSV %s, HDF5 %.9g", want, rows[row][2], (double)mean[2 * i + cls]);
    }
    free_strings(paths, np);
    free(mean);
    free(text);
}

static void test_images_equal_hdf5(void **state) {
    (void)state;
    const char *csv = at("imgs.csv");
    compare_images_with_hdf5(imgs, data, ckpt, csv, at("imgs_p.h5"));

    // named files (in any order) come out sorted; --mc-samples adds its columns
    char f1[1100], f2[1100];
    snprintf(f1, sizeof f1, "%s/bag/img03.png", imgs);
    snprintf(f2, sizeof f2, "%s/ankle/img07.png", imgs);
    RunResult r;
    run_ok(&r, (const char *[]){"predict", "--checkpoint", ckpt, "--images", f1, f2,
                                "--mc-samples", "3", "--out", csv, "--overwrite", NULL});
    char *text = test_read_file(csv, NULL);
    assert_int_equal(strncmp(text, "path,class,probability,mc_mean_probability,mc_std,entropy\n",
                             58), 0);
    static char *rows[64][6];
    int n = csv_rows(text, rows, 64);
    assert_int_equal(n, 2);
    assert_string_equal(rows[0][0], f2);
    assert_string_equal(rows[1][0], f1);
    for (int i = 0; i < 2; i++) {
        double pm = strtod(rows[i][3], NULL), sd = strtod(rows[i][4], NULL),
               h = strtod(rows[i][5], NULL);
        assert_true(pm > 0 && pm <= 1 && sd >= 0 && h >= 0 && h <= 0.6932);
    }
    free(text);
    assert_no_temp_files(dir);
}

// The same with 16-bit PNGs: stored as uint16, decoded at 16 bits by predict.
static void test_images_16bit(void **state) {
    (void)state;
    const char *folder = at("imgs16"), *file = at("img16.h5");
    write_folder(folder, 16);
    import_and_train(folder, file, at("run16"));
    Dataset d = load_or_fail(file, "test");
    assert_int_equal(d.pixel, PIXEL_U16);
    int odd = 0;  // values an 8-bit file scaled by 257 could not give
    for (int64_t i = 0; i < d.n * SIDE * SIDE; i++) odd |= d.x_u16[i] % 257 != 0;
    assert_true(odd);
    dataset_free(&d);
    CkptMeta m = {0};
    Err e = {0};
    assert_int_equal(ckpt_read_meta(at("run16/last.h5"), &m, &e), ERR_OK);
    assert_int_equal(m.stored_prep.bit_depth, 16);
    ckpt_meta_free(&m);
    compare_images_with_hdf5(folder, file, at("run16/last.h5"), at("imgs16.csv"),
                             at("imgs16_p.h5"));
}

// A path with a comma and quotes is quoted as RFC 4180 says.
static void test_csv_quoting(void **state) {
    (void)state;
    const char *odd = at("odd");
    mkdir(odd, 0755);
    char f[1100];
    snprintf(f, sizeof f, "%s/a,\"b\".png", odd);
    write_png(f, 0, 1);
    const char *csv = at("odd.csv");
    RunResult r;
    run_ok(&r, (const char *[]){"predict", "--checkpoint", ckpt, "--images", odd, "--out", csv,
                                NULL});
    char *text = test_read_file(csv, NULL), want[1200];
    snprintf(want, sizeof want, "\n\"%s/a,\"\"b\"\".png\",", odd);
    if (!strstr(text, want)) fail_msg("expected %s in: %s", want, text);
    free(text);
}

// Bad --images inputs end with one line and exit 2, and leave no CSV.
static void test_images_bad_input(void **state) {
    (void)state;
    const char *csv = at("bad.csv");
    RunResult r;
    test_run_regdist(&r, (const char *[]){"predict", "--checkpoint", ckpt, "--images",
                                          at("nothere.png"), "--out", csv, NULL});
    test_expect_bad_input(&r, "nothere.png: No such file or directory");

    // truncated PNGs among good ones: the first in path order is named, whichever thread
    // decoded it
    const char *bad = at("badimgs");
    mkdir(bad, 0755);
    const char *names[4] = {"a.png", "b.png", "c.png", "d.png"};
    for (int i = 0; i < 4; i++) {
        char f[1100];
        snprintf(f, sizeof f, "%s/%s", bad, names[i]);
        write_png(f, 1, i);
        if (i == 0 || i == 3) continue;
        size_t len = 0;
        char *bytes = test_read_file(f, &len);
        FILE *fp = fopen(f, "wb");
        fwrite(bytes, 1, len / 2, fp);
        fclose(fp);
        free(bytes);
    }
    test_run_regdist(&r, (const char *[]){"predict", "--checkpoint", ckpt, "--images", bad,
                                          "--out", csv, NULL});
    test_expect_bad_input(&r, "b.png");
    assert_null(strstr(r.err, "c.png"));
    assert_int_equal(access(csv, F_OK), -1);
    assert_no_temp_files(dir);

    // a folder without images
    const char *empty = at("noimgs");
    mkdir(empty, 0755);
    char txt[1100];
    snprintf(txt, sizeof txt, "%s/README.txt", empty);
    FILE *t = fopen(txt, "w");
    fputs("not an image\n", t);
    fclose(t);
    test_run_regdist(&r, (const char *[]){"predict", "--checkpoint", ckpt, "--images", empty,
                                          "--out", csv, NULL});
    test_expect_bad_input(&r, "no image files");

    // one or the other; --split is for --data
    test_run_regdist(&r, (const char *[]){"predict", "--checkpoint", ckpt, "--images", imgs,
                                          "--data", data, "--out", csv, NULL});
    test_expect_bad_input(&r, "--data and --images exclude each other");
    test_run_regdist(&r, (const char *[]){"predict", "--checkpoint", ckpt, "--images", imgs,
                                          "--split", "val", "--out", csv, NULL});
    test_expect_bad_input(&r, "--split goes with --data");
    test_run_regdist(&r, (const char *[]){"predict", "--checkpoint", ckpt, "--out", csv, NULL});
    test_expect_bad_input(&r, "--data or --images is required");
    assert_int_equal(access(csv, F_OK), -1);
}

// --tta flip averages each image with its mirror: on images that are their own mirror it gives
// exactly the plain prediction; on the imported images (not symmetric) it differs; a flat
// model has nothing to mirror (exit 2).
static void test_tta_flip(void **state) {
    (void)state;
    Dataset d;
    Err e = {0};
    assert_int_equal(dataset_load(&d, data, "test", 0, &e), ERR_OK);
    assert_int_equal(d.pixel, PIXEL_U8);
    int C = d.shape.d[0], H = d.shape.d[1], W = d.shape.d[2];
    for (int64_t i = 0; i < d.n; i++)  // the right half becomes the left half's mirror
        for (int c = 0; c < C; c++)
            for (int h = 0; h < H; h++) {
                uint8_t *row = d.x_u8 + (((size_t)i * C + c) * H + h) * W;
                for (int w = W / 2; w < W; w++) row[w] = row[W - 1 - w];
            }
    const char *sym = at("sym.h5");
    DatasetAttrs a = {.num_classes = d.num_classes, .nchan = d.nchan, .mean = d.mean,
                      .std = d.std};
    assert_int_equal(dataset_create(sym, &a, &e), ERR_OK);
    assert_int_equal(dataset_write_split(sym, "test", d.x_u8, PIXEL_U8, d.y, d.n, d.shape, &e),
                     ERR_OK);
    size_t n0, n1;
    RunResult r;
    const char *plain = at("sym_plain.h5"), *flip = at("sym_flip.h5");
    run_ok(&r, (const char *[]){"predict", "--checkpoint", ckpt, "--data", sym, "--out", plain,
                                NULL});
    run_ok(&r, (const char *[]){"predict", "--checkpoint", ckpt, "--data", sym, "--out", flip,
                                "--tta", "flip", NULL});
    float *p0 = read_floats(plain, "probs_mean", &n0), *p1 = read_floats(flip, "probs_mean", &n1);
    assert_int_equal(n0, n1);
    assert_memory_equal(p0, p1, n0 * sizeof *p0);
    free(p0), free(p1);
    // the imported images are not symmetric: the mirror view changes the mean
    plain = at("tta_plain.h5"), flip = at("tta_flip.h5");
    run_ok(&r, (const char *[]){"predict", "--checkpoint", ckpt, "--data", data, "--out", plain,
                                NULL});
    run_ok(&r, (const char *[]){"predict", "--checkpoint", ckpt, "--data", data, "--out", flip,
                                "--tta", "flip", "--mc-samples", "2", NULL});
    p0 = read_floats(plain, "probs_mean", &n0), p1 = read_floats(flip, "probs_mean", &n1);
    double most = 0;
    for (size_t i = 0; i < n0; i++) most = fabs(p0[i] - p1[i]) > most ? fabs(p0[i] - p1[i]) : most;
    if (!(most > 1e-6)) fail_msg("--tta flip changed no probability (max diff %g)", most);
    free(p0), free(p1);
    test_run_regdist(&r, (const char *[]){"predict", "--checkpoint", ckpt, "--data", data,
                                          "--out", at("tta_bad.h5"), "--tta", "rotate", NULL});
    test_expect_bad_input(&r, "--tta must be flip or none");
    dataset_free(&d);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checkpoint_has_preprocessing),
        cmocka_unit_test(test_checkpoint_normalization_wins),
        cmocka_unit_test(test_old_checkpoint),
        cmocka_unit_test(test_data_must_fit),
        cmocka_unit_test(test_unlabelled_split),
        cmocka_unit_test(test_images_equal_hdf5),
        cmocka_unit_test(test_images_16bit),
        cmocka_unit_test(test_csv_quoting),
        cmocka_unit_test(test_images_bad_input),
        cmocka_unit_test(test_tta_flip),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
