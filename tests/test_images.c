// test_images.c: `regdist data images` end to end: image folders built here with libvips
// (gray, 16-bit, RGB, RGBA, palette, JPEG, TIFF) are imported by the regdist binary and the
// file read back with HDF5: pixels, bit depth, resize, channel conversion, split counts and
// determinism, split folders, classes, paths, mean/std, and every bad input (one line, exit 2,
// no output file, an existing output left untouched).
#include <dirent.h>
#include <errno.h>
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
#include <vips/vips.h>

#include "testutil.h"

static const char *root;  // scratch directory of this run

// ---- fixtures ----

// mkdir -p of path's folders (and of path itself when is_dir).
static void make_dirs(const char *path, int is_dir) {
    char buf[2048];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(buf, 0755);
            *p = '/';
        }
    if (is_dir) mkdir(buf, 0755);
}

// dir/rel in a static rotating buffer (dir may be an earlier result).
static const char *at(const char *dir, const char *rel) {
    static char bufs[8][2048];
    static int next;
    char joined[2048];
    snprintf(joined, sizeof joined, "%s/%s", dir, rel);
    char *b = bufs[next++ % 8];
    memcpy(b, joined, sizeof joined);
    return b;
}

enum { PNG, PNG16, PALETTE, JPEG, TIFF };

// Saves (H,W,bands) interleaved pixels px (uint8, or uint16 for PNG16) as path.
static void save_image(const char *path, const void *px, int w, int h, int bands, int kind) {
    make_dirs(path, 0);
    int u16 = kind == PNG16;
    size_t bytes = (size_t)w * h * bands * (u16 ? 2 : 1);
    VipsImage *m = vips_image_new_from_memory(px, bytes, w, h, bands,
                                              u16 ? VIPS_FORMAT_USHORT : VIPS_FORMAT_UCHAR);
    assert_non_null(m);
    VipsInterpretation in = bands <= 2 ? (u16 ? VIPS_INTERPRETATION_GREY16 : VIPS_INTERPRETATION_B_W)
                                       : (u16 ? VIPS_INTERPRETATION_RGB16 : VIPS_INTERPRETATION_sRGB);
    VipsImage *im;
    assert_int_equal(vips_copy(m, &im, "interpretation", in, NULL), 0);
    int rc = kind == PNG16     ? vips_pngsave(im, path, "bitdepth", 16, NULL)
             : kind == PALETTE ? vips_pngsave(im, path, "palette", TRUE, NULL)
             : kind == JPEG    ? vips_jpegsave(im, path, "Q", 90, NULL)
             : kind == TIFF    ? vips_tiffsave(im, path, NULL)
                               : vips_pngsave(im, path, NULL);
    if (rc) fail_msg("saving %s: %s", path, vips_error_buffer());
    g_object_unref(im);
    g_object_unref(m);
}

// A gray 8-bit PNG whose every pixel is v.
static void save_const(const char *path, int w, int h, int bands, uint8_t v) {
    uint8_t *px = malloc((size_t)w * h * bands);
    memset(px, v, (size_t)w * h * bands);
    save_image(path, px, w, h, bands, PNG);
    free(px);
}

// A gray 8-bit PNG of a pattern that depends on seed.
static void save_pattern(const char *path, int w, int h, int bands, int seed) {
    uint8_t *px = malloc((size_t)w * h * bands);
    for (int i = 0; i < w * h * bands; i++) px[i] = (uint8_t)(i * 7 + seed * 31);
    save_image(path, px, w, h, bands, PNG);
    free(px);
}

static void write_text(const char *path, const char *text) {
    make_dirs(path, 0);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

// A PNG cut to its first half: the header reads, the pixels do not.
static void save_truncated(const char *path, int bands) {
    save_pattern(path, 64, 64, bands, 5);
    size_t len;
    char *b = test_read_file(path, &len);
    assert_non_null(b);
    FILE *f = fopen(path, "wb");
    fwrite(b, 1, len / 2, f);
    fclose(f);
    free(b);
}

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

// No "<out>.tmp.<pid>" left beside out.
static void assert_no_tmp(const char *dir) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d)))
        if (strstr(de->d_name, ".tmp.")) fail_msg("temporary %s left behind", de->d_name);
    closedir(d);
}

static void import(RunResult *r, const char *dir, const char *out, const char *const *extra) {
    const char *args[64] = {"data", "images", dir, "--out", out};
    int n = 5;
    for (int i = 0; extra && extra[i]; i++) args[n++] = extra[i];
    args[n] = NULL;
    test_run_regdist(r, args);
}

// ---- reading the file back ----

static hid_t open_h5(const char *path) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) fail_msg("cannot open %s", path);
    return f;
}

// Rank and dims of a dataset; returns the element size of its stored type.
static size_t dims_of(hid_t f, const char *name, int *rank, hsize_t *dims) {
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    if (d < 0) fail_msg("no dataset %s", name);
    hid_t s = H5Dget_space(d), t = H5Dget_type(d);
    *rank = H5Sget_simple_extent_ndims(s);
    H5Sget_simple_extent_dims(s, dims, NULL);
    size_t size = H5Tget_size(t);
    H5Tclose(t);
    H5Sclose(s);
    H5Dclose(d);
    return size;
}

static int64_t rows_of(hid_t f, const char *name) {
    int rank;
    hsize_t dims[8];
    dims_of(f, name, &rank, dims);
    return (int64_t)dims[0];
}

// The whole dataset as mem_type (malloc'd).
static void *read_all(hid_t f, const char *name, hid_t mem_type, size_t elem) {
    int rank;
    hsize_t dims[8];
    dims_of(f, name, &rank, dims);
    size_t n = 1;
    for (int i = 0; i < rank; i++) n *= dims[i];
    void *buf = calloc(n ? n : 1, elem);
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    assert_true(H5Dread(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0);
    H5Dclose(d);
    return buf;
}

// Variable-length strings of a dataset, joined with '\n' (malloc'd).
static char *read_strings(hid_t f, const char *name) {
    int64_t n = rows_of(f, name);
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    char **s = calloc((size_t)n + 1, sizeof *s);
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    assert_true(H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, s) >= 0);
    size_t len = 1;
    for (int64_t i = 0; i < n; i++) len += strlen(s[i]) + 1;
    char *out = calloc(1, len);
    for (int64_t i = 0; i < n; i++) {
        strcat(out, s[i]);
        strcat(out, "\n");
        H5free_memory(s[i]);
    }
    free(s);
    H5Dclose(d);
    H5Tclose(t);
    return out;
}

// A string attribute (one or a list, joined with ',') of object obj ("/" or a group).
static void attr_strings(hid_t f, const char *obj, const char *name, char *out, size_t len) {
    hid_t o = H5Oopen(f, obj, H5P_DEFAULT);
    hid_t a = H5Aopen(o, name, H5P_DEFAULT);
    if (a < 0) fail_msg("no attribute %s on %s", name, obj);
    hid_t s = H5Aget_space(a);
    hssize_t n = H5Sget_simple_extent_npoints(s);
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    char **v = calloc((size_t)n, sizeof *v);
    assert_true(H5Aread(a, t, v) >= 0);
    out[0] = 0;
    for (hssize_t i = 0; i < n; i++) {
        snprintf(out + strlen(out), len - strlen(out), "%s%s", i ? "," : "", v[i]);
        H5free_memory(v[i]);
    }
    free(v);
    H5Tclose(t);
    H5Sclose(s);
    H5Aclose(a);
    H5Oclose(o);
}

static void attr_floats(hid_t f, const char *obj, const char *name, float *v) {
    hid_t o = H5Oopen(f, obj, H5P_DEFAULT);
    hid_t a = H5Aopen(o, name, H5P_DEFAULT);
    if (a < 0) fail_msg("no attribute %s on %s", name, obj);
    assert_true(H5Aread(a, H5T_NATIVE_FLOAT, v) >= 0);
    H5Aclose(a);
    H5Oclose(o);
}

static int64_t attr_i64(hid_t f, const char *obj, const char *name) {
    hid_t o = H5Oopen(f, obj, H5P_DEFAULT);
    hid_t a = H5Aopen(o, name, H5P_DEFAULT);
    int64_t v = -1;
    if (a < 0) fail_msg("no attribute %s on %s", name, obj);
    assert_true(H5Aread(a, H5T_NATIVE_INT64, &v) >= 0);
    H5Aclose(a);
    H5Oclose(o);
    return v;
}

// ---- pixels and formats ----

// Gray 8-bit: pixels exact, CHW, samples ordered by (class, path), paths and labels.
static void test_gray8_pixels_order_paths(void **state) {
    (void)state;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", at(root, "gray8"));
    uint8_t px[3 * 4];
    // b before a on disk order does not matter: classes sorted by name
    for (int c = 0; c < 2; c++)
        for (int i = 0; i < 3; i++) {
            for (int k = 0; k < 12; k++) px[k] = (uint8_t)(100 * c + 10 * i + k);
            char rel[64];
            snprintf(rel, sizeof rel, "%s/%s%d.png", c ? "b" : "a", i == 2 ? "sub/" : "", i);
            save_image(at(dir, rel), px, 4, 3, 1, PNG);
        }
    char out[1024];
    snprintf(out, sizeof out, "%s", at(root, "gray8.h5"));
    RunResult r;
    import(&r, dir, out, (const char *[]){"--val-frac", "0", "--test-frac", "0", NULL});
    test_expect_ok(&r);
    assert_non_null(strstr(r.out, "train 6 (a 3, b 3)"));
    hid_t f = open_h5(out);
    int rank;
    hsize_t dims[8];
    assert_int_equal(dims_of(f, "train/x", &rank, dims), 1);
    assert_int_equal(rank, 4);
    assert_true(dims[0] == 6 && dims[1] == 1 && dims[2] == 3 && dims[3] == 4);
    assert_false(H5Lexists(f, "val", H5P_DEFAULT) > 0);  // a frac of 0: no such split
    uint8_t *x = read_all(f, "train/x", H5T_NATIVE_UINT8, 1);
    int64_t *y = read_all(f, "train/y", H5T_NATIVE_INT64, 8);
    char *paths = read_strings(f, "train/paths");
    // (class, path) order: a/0.png a/1.png a/sub/2.png b/...
    assert_string_equal(paths, "a/0.png\na/1.png\na/sub/2.png\nb/0.png\nb/1.png\nb/sub/2.png\n");
    for (int s = 0; s < 6; s++) {
        assert_int_equal(y[s], s / 3);
        for (int k = 0; k < 12; k++) assert_int_equal(x[s * 12 + k], 100 * (s / 3) + 10 * (s % 3) + k);
    }
    char buf[256];
    attr_strings(f, "/", "classes", buf, sizeof buf);
    assert_string_equal(buf, "a,b");
    attr_strings(f, "/", "class_names", buf, sizeof buf);
    assert_string_equal(buf, "a,b");
    assert_int_equal(attr_i64(f, "/", "num_classes"), 2);
    attr_strings(f, "/preprocessing", "source", buf, sizeof buf);
    assert_string_equal(buf, "images");
    attr_strings(f, "/preprocessing", "channel_order", buf, sizeof buf);
    assert_string_equal(buf, "L");
    attr_strings(f, "/preprocessing", "resize", buf, sizeof buf);
    assert_string_equal(buf, "none");
    attr_strings(f, "/preprocessing", "convert", buf, sizeof buf);
    assert_string_equal(buf, "none");
    attr_strings(f, "/preprocessing", "classes", buf, sizeof buf);
    assert_string_equal(buf, "a,b");
    assert_int_equal(attr_i64(f, "/preprocessing", "bit_depth"), 8);
    free(x);
    free(y);
    free(paths);
    H5Fclose(f);
}

// 16-bit gray keeps its range (40000 stays 40000); an 8-bit file beside it is stored x*257.
static void test_gray16_kept(void **state) {
    (void)state;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", at(root, "gray16"));
    uint16_t px16[4] = {0, 40000, 65535, 1234};
    uint8_t px8[4] = {0, 1, 128, 255};
    save_image(at(dir, "a/deep.png"), px16, 2, 2, 1, PNG16);
    save_image(at(dir, "b/shallow.png"), px8, 2, 2, 1, PNG);
    char out[1024];
    snprintf(out, sizeof out, "%s", at(root, "gray16.h5"));
    RunResult r;
    import(&r, dir, out, (const char *[]){"--val-frac", "0", "--test-frac", "0", NULL});
    test_expect_ok(&r);
    assert_non_null(strstr(r.out, "uint16"));
    hid_t f = open_h5(out);
    int rank;
    hsize_t dims[8];
    assert_int_equal(dims_of(f, "train/x", &rank, dims), 2);  // stored as uint16
    uint16_t *x = read_all(f, "train/x", H5T_NATIVE_UINT16, 2);
    for (int k = 0; k < 4; k++) assert_int_equal(x[k], px16[k]);
    for (int k = 0; k < 4; k++) assert_int_equal(x[4 + k], px8[k] * 257);
    assert_int_equal(attr_i64(f, "/preprocessing", "bit_depth"), 16);
    // mean of the train split in units of 65535
    float mean[1];
    attr_floats(f, "/", "mean", mean);
    double want = 0;
    for (int k = 0; k < 8; k++) want += x[k] / 65535.0 / 8;
    assert_float_equal(mean[0], want, 1e-6);
    free(x);
    H5Fclose(f);

    // 16-bit RGB beside 8-bit gray: --channels converts at 16 bits
    snprintf(dir, sizeof dir, "%s", at(root, "rgb16"));
    uint16_t rgb16[2 * 2 * 3];
    for (int k = 0; k < 12; k++) rgb16[k] = 40000;
    uint8_t gray8[4] = {100, 100, 100, 100};
    save_image(at(dir, "a/rgb16.png"), rgb16, 2, 2, 3, PNG16);
    save_image(at(dir, "b/gray8.png"), gray8, 2, 2, 1, PNG);
    const char *chans[2] = {"3", "1"};
    for (int t = 0; t < 2; t++) {
        import(&r, dir, out, (const char *[]){"--channels", chans[t], "--val-frac", "0",
                                              "--test-frac", "0", NULL});
        test_expect_ok(&r);
        f = open_h5(out);
        int C = t == 0 ? 3 : 1;
        x = read_all(f, "train/x", H5T_NATIVE_UINT16, 2);
        for (int k = 0; k < 4 * C; k++) {
            // a gray colour keeps its value through libvips's luminance, to rounding
            if (t == 0) assert_int_equal(x[k], 40000);
            else assert_true(abs((int)x[k] - 40000) <= 2);
            assert_int_equal(x[4 * C + k], 100 * 257);
        }
        free(x);
        H5Fclose(f);
    }
}

// RGB, RGBA (alpha dropped), palette PNG (loads as RGB), JPEG (as libvips decodes it), TIFF.
static void test_colour_formats(void **state) {
    (void)state;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", at(root, "colour"));
    enum { W = 8, H = 6 };
    uint8_t rgb[H * W * 3], rgba[H * W * 4];
    for (int i = 0; i < H * W; i++) {
        for (int c = 0; c < 3; c++) rgb[i * 3 + c] = rgba[i * 4 + c] = (uint8_t)(i * 5 + c * 70);
        rgba[i * 4 + 3] = (uint8_t)(i * 3);  // alpha varies, must not leak into the colours
    }
    uint8_t two[H * W * 3];  // two colours: a palette holds them exactly
    for (int i = 0; i < H * W; i++)
        for (int c = 0; c < 3; c++) two[i * 3 + c] = i % 2 ? (uint8_t)(200 - 50 * c) : (uint8_t)(10 + 20 * c);
    save_image(at(dir, "a/1rgb.png"), rgb, W, H, 3, PNG);
    save_image(at(dir, "a/2rgba.png"), rgba, W, H, 4, PNG);
    save_image(at(dir, "a/3pal.png"), two, W, H, 3, PALETTE);
    save_image(at(dir, "b/1photo.jpg"), rgb, W, H, 3, JPEG);
    save_image(at(dir, "b/2scan.tif"), rgb, W, H, 3, TIFF);
    char out[1024];
    snprintf(out, sizeof out, "%s", at(root, "colour.h5"));
    RunResult r;
    import(&r, dir, out, (const char *[]){"--val-frac", "0", "--test-frac", "0", NULL});
    test_expect_ok(&r);
    hid_t f = open_h5(out);
    uint8_t *x = read_all(f, "train/x", H5T_NATIVE_UINT8, 1);
    const int S = 3 * H * W;
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < H * W; i++) {
            assert_int_equal(x[0 * S + c * H * W + i], rgb[i * 3 + c]);   // RGB, CHW
            assert_int_equal(x[1 * S + c * H * W + i], rgb[i * 3 + c]);   // RGBA minus alpha
            assert_int_equal(x[2 * S + c * H * W + i], two[i * 3 + c]);   // palette
            assert_int_equal(x[4 * S + c * H * W + i], rgb[i * 3 + c]);   // TIFF
        }
    // the JPEG as libvips itself decodes it
    VipsImage *jpg = vips_image_new_from_file(at(dir, "b/1photo.jpg"), NULL);
    assert_non_null(jpg);
    size_t len;
    uint8_t *dec = vips_image_write_to_memory(jpg, &len);
    assert_int_equal(len, (size_t)S);
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < H * W; i++) assert_int_equal(x[3 * S + c * H * W + i], dec[i * 3 + c]);
    g_free(dec);
    g_object_unref(jpg);
    char buf[64];
    attr_strings(f, "/preprocessing", "channel_order", buf, sizeof buf);
    assert_string_equal(buf, "RGB");
    free(x);
    H5Fclose(f);
}

// --size: a constant image stays constant; a pattern equals vips_resize(lanczos3) directly.
static void test_resize(void **state) {
    (void)state;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", at(root, "resize"));
    save_const(at(dir, "a/const.png"), 16, 16, 1, 77);
    save_const(at(dir, "a/wide.png"), 40, 10, 1, 77);
    save_pattern(at(dir, "b/pattern.png"), 23, 17, 1, 3);
    char out[1024];
    snprintf(out, sizeof out, "%s", at(root, "resize.h5"));
    RunResult r;
    import(&r, dir, out, (const char *[]){"--size", "8,12", "--val-frac", "0", "--test-frac",
                                          "0", NULL});
    test_expect_ok(&r);
    assert_non_null(strstr(r.out, "(1,8,12)"));
    hid_t f = open_h5(out);
    uint8_t *x = read_all(f, "train/x", H5T_NATIVE_UINT8, 1);
    for (int i = 0; i < 2 * 96; i++) assert_int_equal(x[i], 77);
    VipsImage *in = vips_image_new_from_file(at(dir, "b/pattern.png"), NULL), *rs;
    assert_int_equal(vips_resize(in, &rs, 12.0 / 23, "vscale", 8.0 / 17, "kernel",
                                 VIPS_KERNEL_LANCZOS3, NULL), 0);
    size_t len;
    uint8_t *want = vips_image_write_to_memory(rs, &len);
    assert_int_equal(len, 96);
    assert_memory_equal(x + 2 * 96, want, 96);
    g_free(want);
    g_object_unref(rs);
    g_object_unref(in);
    char buf[64];
    attr_strings(f, "/preprocessing", "resize", buf, sizeof buf);
    assert_string_equal(buf, "lanczos3");
    free(x);
    H5Fclose(f);
}

// Mixed sizes need --size; mixed gray and colour need --channels, which converts.
static void test_mixed_sizes_and_channels(void **state) {
    (void)state;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", at(root, "mixsize"));
    save_const(at(dir, "a/small.png"), 8, 8, 1, 1);
    save_const(at(dir, "b/big.png"), 9, 8, 1, 1);
    char out[1024];
    snprintf(out, sizeof out, "%s", at(root, "mixsize.h5"));
    RunResult r;
    import(&r, dir, out, NULL);
    test_expect_bad_input(&r, "--size");
    assert_non_null(strstr(r.err, "a/small.png is 8x8"));
    assert_non_null(strstr(r.err, "b/big.png is 8x9"));
    assert_false(exists(out));

    snprintf(dir, sizeof dir, "%s", at(root, "mixchan"));
    save_const(at(dir, "a/gray.png"), 4, 4, 1, 90);
    save_const(at(dir, "b/colour.png"), 4, 4, 3, 90);
    snprintf(out, sizeof out, "%s", at(root, "mixchan.h5"));
    import(&r, dir, out, NULL);
    test_expect_bad_input(&r, "--channels");
    assert_non_null(strstr(r.err, "a/gray.png is gray"));
    assert_non_null(strstr(r.err, "b/colour.png is colour"));
    assert_false(exists(out));
    char buf[64];
    const char *chans[2] = {"3", "1"};
    for (int t = 0; t < 2; t++) {
        import(&r, dir, out, (const char *[]){"--channels", chans[t], "--val-frac", "0",
                                              "--test-frac", "0", NULL});
        test_expect_ok(&r);
        hid_t f = open_h5(out);
        int rank;
        hsize_t dims[8];
        dims_of(f, "train/x", &rank, dims);
        assert_int_equal(dims[1], t == 0 ? 3 : 1);
        uint8_t *x = read_all(f, "train/x", H5T_NATIVE_UINT8, 1);
        for (hsize_t i = 0; i < 2 * dims[1] * 16; i++) assert_int_equal(x[i], 90);  // gray stays gray
        free(x);
        attr_strings(f, "/preprocessing", "convert", buf, sizeof buf);
        assert_string_equal(buf, t == 0 ? "rgb" : "gray");
        attr_strings(f, "/preprocessing", "channel_order", buf, sizeof buf);
        assert_string_equal(buf, t == 0 ? "RGB" : "L");
        H5Fclose(f);
    }
}

// ---- splits ----

static void make_split_fixture(const char *dir) {
    // class a: 200 images, class b: 100 (more than one 256-image chunk in all)
    for (int i = 0; i < 300; i++) {
        char rel[64];
        snprintf(rel, sizeof rel, "%s/img%03d.png", i < 200 ? "a" : "b", i);
        save_pattern(at(dir, rel), 4, 4, 1, i);
    }
}

// Per split: its x bytes, y and paths, for comparing two imports.
static char *split_digest(const char *file, const char *split, int64_t *n) {
    hid_t f = open_h5(file);
    char name[64];
    snprintf(name, sizeof name, "%s/x", split);
    *n = rows_of(f, name);
    uint8_t *x = read_all(f, name, H5T_NATIVE_UINT8, 1);
    snprintf(name, sizeof name, "%s/y", split);
    int64_t *y = read_all(f, name, H5T_NATIVE_INT64, 8);
    snprintf(name, sizeof name, "%s/paths", split);
    char *p = read_strings(f, name);
    size_t len = strlen(p) + (size_t)*n * (16 + 8) * 4 + 1;
    char *out = calloc(1, len);
    strcat(out, p);
    for (int64_t i = 0; i < *n * 16; i++) snprintf(out + strlen(out), len - strlen(out), "%02x", x[i]);
    for (int64_t i = 0; i < *n; i++) snprintf(out + strlen(out), len - strlen(out), "%d", (int)y[i]);
    free(x);
    free(y);
    free(p);
    H5Fclose(f);
    return out;
}

// Stratified counts per class (round(n*frac)); same seed -> same data, another seed -> not;
// every file in exactly one split.
static void test_seeded_split(void **state) {
    (void)state;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", at(root, "split"));
    make_split_fixture(dir);
    char out1[1024], out2[1024], out3[1024];
    snprintf(out1, sizeof out1, "%s", at(root, "split1.h5"));
    snprintf(out2, sizeof out2, "%s", at(root, "split2.h5"));
    snprintf(out3, sizeof out3, "%s", at(root, "split3.h5"));
    RunResult r;
    const char *const args7[] = {"--val-frac", "0.2", "--test-frac", "0.15", "--seed", "7",
                                 "--threads", "2", NULL};
    import(&r, dir, out1, args7);
    test_expect_ok(&r);
    assert_non_null(strstr(r.out, "train 195 (a 130, b 65)"));
    assert_non_null(strstr(r.out, "val 60 (a 40, b 20)"));
    assert_non_null(strstr(r.out, "test 45 (a 30, b 15)"));
    import(&r, dir, out2, args7);
    test_expect_ok(&r);
    import(&r, dir, out3, (const char *[]){"--val-frac", "0.2", "--test-frac", "0.15", "--seed",
                                           "8", NULL});
    test_expect_ok(&r);
    const char *splits[3] = {"train", "val", "test"};
    char *all = calloc(1, 300 * 32);
    for (int s = 0; s < 3; s++) {
        int64_t n1, n2, n3;
        char *d1 = split_digest(out1, splits[s], &n1), *d2 = split_digest(out2, splits[s], &n2);
        char *d3 = split_digest(out3, splits[s], &n3);
        assert_int_equal(n1, n2);
        assert_string_equal(d1, d2);
        assert_int_equal(n1, n3);  // the counts do not depend on the seed, the members do
        assert_string_not_equal(d1, d3);
        // paths within a split are sorted, so class and path order hold
        char *p = d1, *prev = NULL;
        for (int64_t i = 0; i < n1; i++) {
            char *nl = strchr(p, '\n');
            *nl = 0;
            if (prev) assert_true(strcmp(prev, p) < 0);
            strcat(all, p);
            strcat(all, "|");
            prev = p;
            p = nl + 1;
        }
        free(d1);
        free(d2);
        free(d3);
    }
    for (int i = 0; i < 300; i++) {  // each file exactly once
        char name[64];
        snprintf(name, sizeof name, "%s/img%03d.png|", i < 200 ? "a" : "b", i);
        char *hit = strstr(all, name);
        assert_non_null(hit);
        assert_null(strstr(hit + 1, name));
    }
    free(all);
}

// train/ val/ test/ folders are the splits; valid/ is val; a class train lacks is an error.
static void test_split_folders(void **state) {
    (void)state;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", at(root, "folders"));
    save_const(at(dir, "train/cat/1.png"), 4, 4, 1, 10);
    save_const(at(dir, "train/cat/2.png"), 4, 4, 1, 10);
    save_const(at(dir, "train/dog/1.png"), 4, 4, 1, 250);
    save_const(at(dir, "valid/dog/1.png"), 4, 4, 1, 250);
    save_const(at(dir, "test/cat/9.png"), 4, 4, 1, 10);
    char out[1024];
    snprintf(out, sizeof out, "%s", at(root, "folders.h5"));
    RunResult r;
    import(&r, dir, out, NULL);
    test_expect_ok(&r);
    assert_non_null(strstr(r.out, "train 3 (cat 2, dog 1); val 1 (cat 0, dog 1); test 1 (cat 1, dog 0)"));
    assert_non_null(strstr(r.out, "splits from folders"));
    hid_t f = open_h5(out);
    char *p = read_strings(f, "val/paths");
    assert_string_equal(p, "valid/dog/1.png\n");
    free(p);
    p = read_strings(f, "train/paths");
    assert_string_equal(p, "train/cat/1.png\ntrain/cat/2.png\ntrain/dog/1.png\n");
    free(p);
    int64_t *y = read_all(f, "test/y", H5T_NATIVE_INT64, 8);
    assert_int_equal(y[0], 0);
    free(y);
    // mean/std of the train split only: (10,10,250)/255
    float mean[1], std[1];
    attr_floats(f, "/", "mean", mean);
    attr_floats(f, "/", "std", std);
    double m = (10 + 10 + 250) / 3.0 / 255, v = ((10 / 255.0 - m) * (10 / 255.0 - m) * 2 +
                                               (250 / 255.0 - m) * (250 / 255.0 - m)) / 3;
    assert_float_equal(mean[0], m, 1e-6);
    assert_float_equal(std[0], sqrt(v), 1e-6);
    attr_floats(f, "/preprocessing", "mean", mean);
    assert_float_equal(mean[0], m, 1e-6);
    H5Fclose(f);

    save_const(at(dir, "test/bird/1.png"), 4, 4, 1, 10);
    import(&r, dir, out, NULL);
    test_expect_bad_input(&r, "class 'bird' is not in");
    save_const(at(dir, "val/dog/1.png"), 4, 4, 1, 10);
    import(&r, dir, out, NULL);
    test_expect_bad_input(&r, "both val/ and valid/");
}

// mean/std are of pixel/pixel_max over the train split, per channel, from the stored pixels.
static void test_mean_std_per_channel(void **state) {
    (void)state;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", at(root, "meanstd"));
    for (int i = 0; i < 6; i++) {
        char rel[32];
        snprintf(rel, sizeof rel, "%c/%d.png", 'a' + i % 2, i);
        save_pattern(at(dir, rel), 5, 3, 3, i);
    }
    char out[1024];
    snprintf(out, sizeof out, "%s", at(root, "meanstd.h5"));
    RunResult r;
    import(&r, dir, out, (const char *[]){"--val-frac", "0.34", "--test-frac", "0", NULL});
    test_expect_ok(&r);
    hid_t f = open_h5(out);
    int64_t n = rows_of(f, "train/x");
    assert_int_equal(n, 4);
    uint8_t *x = read_all(f, "train/x", H5T_NATIVE_UINT8, 1);
    float mean[3], std[3];
    attr_floats(f, "/", "mean", mean);
    attr_floats(f, "/", "std", std);
    for (int c = 0; c < 3; c++) {
        double s = 0, sq = 0;
        for (int i = 0; i < n; i++)
            for (int k = 0; k < 15; k++) {
                double v = x[i * 45 + c * 15 + k] / 255.0;
                s += v;
                sq += v * v;
            }
        double m = s / (n * 15);
        assert_float_equal(mean[c], m, 1e-6);
        assert_float_equal(std[c], sqrt(sq / (n * 15) - m * m), 1e-6);
    }
    free(x);
    H5Fclose(f);
}

// ---- skipped and ignored files ----

static void test_ignored_and_skipped(void **state) {
    (void)state;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", at(root, "skips"));
    save_const(at(dir, "a/1.png"), 4, 4, 1, 1);
    save_const(at(dir, "a/2.png"), 4, 4, 1, 1);
    save_const(at(dir, "b/1.png"), 4, 4, 1, 1);
    save_const(at(dir, "b/2.png"), 4, 4, 1, 1);
    write_text(at(dir, "README"), "about\n");
    write_text(at(dir, "a/.DS_Store"), "x");
    write_text(at(dir, "b/Thumbs.db"), "x");
    write_text(at(dir, "b/notes.txt"), "x");
    char out[1024];
    snprintf(out, sizeof out, "%s", at(root, "skips.h5"));
    RunResult r;
    import(&r, dir, out, (const char *[]){"--val-frac", "0", "--test-frac", "0", NULL});
    test_expect_ok(&r);
    assert_non_null(strstr(r.out, "ignored 4 non-image files"));
    assert_null(strstr(r.out, "skipped"));

    // a corrupt file (header unreadable) and a truncated one (pixels unreadable)
    write_text(at(dir, "a/3.png"), "not a png at all");
    save_truncated(at(dir, "b/3.png"), 1);
    // --size makes the truncated file's size no concern; 4x4 everywhere else
    import(&r, dir, out, (const char *[]){"--skip-bad", "--size", "4,4", "--val-frac", "0",
                                          "--test-frac", "0", NULL});
    test_expect_ok(&r);
    assert_non_null(strstr(r.out, "skipped 2 unreadable images"));
    assert_non_null(strstr(r.out, "a/3.png"));
    assert_non_null(strstr(r.out, "train 4 (a 2, b 2)"));
    hid_t f = open_h5(out);
    assert_int_equal(rows_of(f, "train/x"), 4);
    assert_int_equal(rows_of(f, "train/paths"), 4);
    H5Fclose(f);
}

// ---- bad input: one line, exit 2, no output, an existing output untouched ----

static void expect_refused(const char *dir, const char *out, const char *const *extra,
                           const char *needle) {
    RunResult r;
    import(&r, dir, out, extra);
    test_expect_bad_input(&r, needle);
    size_t len;
    char *kept = test_read_file(out, &len);
    if (!kept || strcmp(kept, "precious\n")) fail_msg("%s was changed or removed", out);
    free(kept);
    assert_no_tmp(root);
}

static void test_bad_inputs(void **state) {
    (void)state;
    char out[1024];
    snprintf(out, sizeof out, "%s", at(root, "keep.h5"));
    write_text(out, "precious\n");
    char good[1024];
    snprintf(good, sizeof good, "%s", at(root, "good"));
    save_const(at(good, "a/1.png"), 4, 4, 1, 1);
    save_const(at(good, "b/1.png"), 4, 4, 1, 1);
    char dir[1024];

    // a truncated image: decoding fails in the second pass, after the file was started
    snprintf(dir, sizeof dir, "%s", at(root, "trunc"));
    save_truncated(at(dir, "a/cut.png"), 3);
    save_pattern(at(dir, "b/ok.png"), 64, 64, 3, 1);
    expect_refused(dir, out, NULL, "a/cut.png");
    // a corrupt image
    snprintf(dir, sizeof dir, "%s", at(root, "corrupt"));
    save_const(at(dir, "a/1.png"), 4, 4, 1, 1);
    write_text(at(dir, "b/bad.jpg"), "garbage garbage garbage");
    expect_refused(dir, out, NULL, "b/bad.jpg");
    // an empty class folder
    snprintf(dir, sizeof dir, "%s", at(root, "emptyclass"));
    save_const(at(dir, "a/1.png"), 4, 4, 1, 1);
    save_const(at(dir, "b/1.png"), 4, 4, 1, 1);
    make_dirs(at(dir, "c"), 1);
    write_text(at(dir, "c/readme.txt"), "nothing here");
    expect_refused(dir, out, NULL, "empty class folder");
    // a single class
    snprintf(dir, sizeof dir, "%s", at(root, "oneclass"));
    save_const(at(dir, "only/1.png"), 4, 4, 1, 1);
    expect_refused(dir, out, NULL, "only one class folder (only)");
    // no images at all
    snprintf(dir, sizeof dir, "%s", at(root, "noimages"));
    make_dirs(dir, 1);
    expect_refused(dir, out, NULL, "no images");
    save_const(at(dir, "loose.png"), 4, 4, 1, 1);
    expect_refused(dir, out, NULL, "belong in class folders");
    // DIR missing, DIR a file
    expect_refused(at(root, "missing"), out, NULL, "No such file or directory");
    expect_refused(at(good, "a/1.png"), out, NULL, "not a directory");
    // a symlink loop
    snprintf(dir, sizeof dir, "%s", at(root, "loop"));
    save_const(at(dir, "a/1.png"), 4, 4, 1, 1);
    save_const(at(dir, "b/1.png"), 4, 4, 1, 1);
    assert_int_equal(symlink("..", at(dir, "b/up")), 0);
    expect_refused(dir, out, NULL, "symlink loop");
    // --out in a missing folder
    RunResult r;
    import(&r, good, at(root, "nowhere/x.h5"), NULL);
    test_expect_bad_input(&r, "no directory");
    assert_false(exists(at(root, "nowhere")));
    // bad option values
    expect_refused(good, out, (const char *[]){"--size", "0,4", NULL}, "--size");
    expect_refused(good, out, (const char *[]){"--size", "4,x", NULL}, "--size");
    expect_refused(good, out, (const char *[]){"--channels", "2", NULL}, "--channels");
    expect_refused(good, out, (const char *[]){"--val-frac", "1.5", NULL}, "--val-frac");
    expect_refused(good, out, (const char *[]){"--test-frac", "-0.1", NULL}, "--test-frac");
    expect_refused(good, out, (const char *[]){"--val-frac", "0.5", "--test-frac", "0.5", NULL},
                   "add up to");
    expect_refused(good, out, (const char *[]){"--threads", "0", NULL}, "--threads");
    expect_refused(good, out, (const char *[]){"--seed", "-1", NULL}, "--seed");
    expect_refused(good, out, (const char *[]){"--shape", "1,2,2", NULL}, "unknown");
    test_run_regdist(&r, (const char *[]){"data", "images", "--out", out, NULL});
    test_expect_bad_input(&r, "which folder");
    test_run_regdist(&r, (const char *[]){"data", "images", good, NULL});
    test_expect_bad_input(&r, "--out is required");
    // and the good folder does import over the kept file
    import(&r, good, out, (const char *[]){"--val-frac", "0", "--test-frac", "0", NULL});
    test_expect_ok(&r);
    assert_no_tmp(root);
}

// A symlink to a folder elsewhere is followed (not a loop).
static void test_symlinked_folder_followed(void **state) {
    (void)state;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", at(root, "links"));
    save_const(at(root, "elsewhere/x.png"), 4, 4, 1, 3);
    save_const(at(dir, "a/1.png"), 4, 4, 1, 3);
    make_dirs(at(dir, "b"), 1);
    assert_int_equal(symlink(at(root, "elsewhere"), at(dir, "b/linked")), 0);
    char out[1024];
    snprintf(out, sizeof out, "%s", at(root, "links.h5"));
    RunResult r;
    import(&r, dir, out, (const char *[]){"--val-frac", "0", "--test-frac", "0", NULL});
    test_expect_ok(&r);
    hid_t f = open_h5(out);
    char *p = read_strings(f, "train/paths");
    assert_string_equal(p, "a/1.png\nb/linked/x.png\n");
    free(p);
    H5Fclose(f);
}

static void test_help(void **state) {
    (void)state;
    RunResult r;
    const char *const whats[] = {"images", "synth", "fashion-mnist", "info"};
    for (int i = 0; i < 4; i++) {
        test_run_regdist(&r, (const char *[]){"data", whats[i], "--help", NULL});
        test_expect_ok(&r);
        char want[64];
        snprintf(want, sizeof want, "usage: regdist data %s", whats[i]);
        assert_non_null(strstr(r.out, want));
    }
    test_run_regdist(&r, (const char *[]){"data", "images", "--help", NULL});
    assert_non_null(strstr(r.out, "--val-frac F     fraction of each class for validation "
                                  "(default 0.1"));
    assert_non_null(strstr(r.out, "(default 0.1; 0 = none)"));
    assert_null(strstr(r.out, "--noise"));  // its own options only
    test_run_regdist(&r, (const char *[]){"data", "--help", NULL});
    test_expect_ok(&r);
    assert_non_null(strstr(r.out, "regdist data images DIR --out F"));
    // one subcommand's option is not another's
    test_run_regdist(&r, (const char *[]){"data", "synth", "--out", at(root, "s.h5"),
                                          "--skip-bad", NULL});
    test_expect_bad_input(&r, "--skip-bad");
}

static int setup(void **state) {
    (void)state;
    if (VIPS_INIT("test_images")) return -1;
    root = test_tmpdir("images");
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gray8_pixels_order_paths),
        cmocka_unit_test(test_gray16_kept),
        cmocka_unit_test(test_colour_formats),
        cmocka_unit_test(test_resize),
        cmocka_unit_test(test_mixed_sizes_and_channels),
        cmocka_unit_test(test_seeded_split),
        cmocka_unit_test(test_split_folders),
        cmocka_unit_test(test_mean_std_per_channel),
        cmocka_unit_test(test_ignored_and_skipped),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_symlinked_folder_followed),
        cmocka_unit_test(test_help),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
