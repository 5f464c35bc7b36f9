// test_idx.c: io/idx: reading hand-made IDX files, plain and gzipped, refusing malformed
// ones; and, where Debian's Fashion-MNIST is installed, the import with its seeded
// train/val carve (sizes, file order, normalization, determinism).
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
#include <zlib.h>

#include <cmocka.h>

#include "io/dataset.h"
#include "io/idx.h"
#include "iotest.h"
#include "testutil.h"

static const char *dir;

// An IDX file of magic, big-endian dims and nbytes of payload (value i*7+3), gzipped or plain.
static void write_idx(const char *path, uint32_t magic, const uint32_t *dims, int nd,
                      size_t nbytes, int gz) {
    uint8_t buf[4096];
    size_t n = 0;
    for (int i = 0; i < 4; i++) buf[n++] = (uint8_t)(magic >> (24 - 8 * i));
    for (int d = 0; d < nd; d++)
        for (int i = 0; i < 4; i++) buf[n++] = (uint8_t)(dims[d] >> (24 - 8 * i));
    for (size_t i = 0; i < nbytes; i++) buf[n++] = (uint8_t)(i * 7 + 3);
    if (gz) {
        gzFile g = gzopen(path, "wb");
        assert_non_null(g);
        assert_int_equal(gzwrite(g, buf, (unsigned)n), (int)n);
        assert_int_equal(gzclose(g), Z_OK);
    } else {
        FILE *f = fopen(path, "wb");
        assert_int_equal(fwrite(buf, 1, n, f), n);
        fclose(f);
    }
}

// Reads path, which must hold nd dimensions of sizes want; returns the data.
static uint8_t *read_ok(const char *path, int nd, const int64_t *want) {
    uint8_t *data = NULL;
    int got_nd = 0;
    int64_t got[3];
    Err e = {0};
    if (idx_read_u8(path, &data, &got_nd, got, &e)) fail_msg("%s", e.msg);
    assert_int_equal(got_nd, nd);
    for (int i = 0; i < nd; i++) assert_int_equal(got[i], want[i]);
    return data;
}

static void test_reads_plain_and_gzip(void **state) {
    (void)state;
    const uint32_t dims[3] = {2, 3, 4};
    for (int gz = 0; gz < 2; gz++) {
        const char *path = test_path(dir, gz ? "img.gz" : "img");
        write_idx(path, 0x00000803, dims, 3, 24, gz);
        uint8_t *data = read_ok(path, 3, (int64_t[]){2, 3, 4});
        for (int i = 0; i < 24; i++) assert_int_equal(data[i], (uint8_t)(i * 7 + 3));
        free(data);
    }
    // labels: one dimension
    const char *path = test_path(dir, "labels.gz");
    write_idx(path, 0x00000801, (uint32_t[]){5}, 1, 5, 1);
    uint8_t *data = read_ok(path, 1, (int64_t[]){5});
    assert_int_equal(data[4], (uint8_t)(4 * 7 + 3));
    free(data);
}

static void expect_refused(const char *path, const char *needle) {
    uint8_t *data = (uint8_t *)"sentinel";
    int nd = -1;
    int64_t got[3];
    Err e = {0};
    int rc = idx_read_u8(path, &data, &nd, got, &e);
    if (rc != ERR_INPUT) fail_msg("%s: expected ERR_INPUT, got %d (%s)", path, rc, e.msg);
    if (!strstr(e.msg, path) || !strstr(e.msg, needle))
        fail_msg("message '%s' lacks '%s' or '%s'", e.msg, path, needle);
    assert_null(data);
    assert_int_equal(nd, 0);
}

static void test_refuses_malformed(void **state) {
    (void)state;
    static const struct {
        const char *name;
        uint32_t magic, dims[3];
        int nd;          // dimensions actually written
        size_t payload;  // bytes actually written
        const char *needle;
    } cases[] = {
        {"type09", 0x00000903, {2, 3, 4}, 3, 24, "magic"},  // 0x09 is not unsigned bytes
        {"magic_hi", 0x01000803, {2, 3, 4}, 3, 24, "magic"},
        {"short", 0x00000803, {2, 3, 4}, 3, 20,
         "truncated: the header promises 24 bytes of data, the file has 20"},
        {"long", 0x00000803, {2, 3, 4}, 3, 25, "past the 24 bytes"},
        {"header", 0x00000803, {2, 3, 4}, 2, 0, "truncated IDX header"},  // 3 dims promised
        {"zero", 0x00000803, {2, 0, 4}, 3, 0, "dimension 1 is 0"},
        // each size allowed alone, their product overflows 64 bits (found by fuzz_idx)
        {"huge", 0x00000803, {0xffffffff, 0xffffffff, 2}, 3, 0, "dimension 1 is 4294967295"},
        // a 4 GB promise, 10 bytes there: refused as truncated, without allocating 4 GB
        {"promise", 0x00000801, {0xffffffff}, 1, 10,
         "the header promises 4294967295 bytes of data, the file has 10"},
    };
    for (int gz = 0; gz < 2; gz++)
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            char name[64];
            snprintf(name, sizeof name, "%s%s", cases[i].name, gz ? ".gz" : "");
            const char *path = test_path(dir, name);
            write_idx(path, cases[i].magic, cases[i].dims, cases[i].nd, cases[i].payload, gz);
            expect_refused(path, cases[i].needle);
        }
    // a gzip stream cut in half
    const char *path = test_path(dir, "cut.gz");
    gzFile g = gzopen(path, "wb");
    uint8_t buf[4 + 12 + 7840];
    memcpy(buf, "\x00\x00\x08\x03\x00\x00\x00\x0a\x00\x00\x00\x1c\x00\x00\x00\x1c", 16);
    for (size_t i = 16; i < sizeof buf; i++) buf[i] = (uint8_t)(i * 2654435761u >> 24);
    gzwrite(g, buf, sizeof buf);
    gzclose(g);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(truncate(path, st.st_size / 2), 0);
    expect_refused(path, "truncated");
    expect_refused(test_path(dir, "absent.gz"), "No such file or directory");
}

// The import needs /usr/share/datasets/fashion-mnist (Debian's dataset-fashion-mnist).
static int have_fashion_mnist(void) {
    struct stat st;
    char p[512];
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte.gz", FASHION_MNIST_DIR);
    return stat(p, &st) == 0;
}

// Every sample of d must be a training image, in increasing file order, with its label.
static void assert_in_file_order(const Dataset *d, const uint8_t *images, const uint8_t *labels,
                                 int64_t n) {
    int64_t at = 0;
    for (int64_t i = 0; i < d->n; i++) {
        const uint8_t *x = d->x_u8 + i * 784;
        while (at < n && (labels[at] != d->y[i] || memcmp(images + at * 784, x, 784) != 0)) at++;
        if (at == n) fail_msg("%s sample %lld is not a later training image", d->split, (long long)i);
        at++;
    }
}

static void test_import_fashion_mnist(void **state) {
    (void)state;
    if (!have_fashion_mnist()) skip();
    const char *a = test_path(dir, "fm_a.h5"), *b = test_path(dir, "fm_b.h5"),
               *c = test_path(dir, "fm_c.h5");
    Err e = {0};
    assert_int_equal(idx_import_fashion_mnist(FASHION_MNIST_DIR, a, 1000, 500, 7, &e), ERR_OK);
    assert_int_equal(idx_import_fashion_mnist(FASHION_MNIST_DIR, b, 1000, 500, 7, &e), ERR_OK);
    assert_int_equal(idx_import_fashion_mnist(FASHION_MNIST_DIR, c, 1000, 500, 8, &e), ERR_OK);
    Dataset tr = load_or_fail(a, "train"), va = load_or_fail(a, "val"), te = load_or_fail(a, "test");
    const Shape image = {3, {1, 28, 28}};
    assert_u8_split(&tr, 1000, 10, image);
    assert_u8_split(&va, 500, 10, image);
    assert_u8_split(&te, 10000, 10, image);
    assert_int_equal(tr.nchan, 1);

    // mean/std are those of the train split's x/255
    double s = 0, ss = 0;
    for (int64_t i = 0; i < tr.n * 784; i++) {
        double v = tr.x_u8[i] / 255.0;
        s += v;
        ss += v * v;
    }
    double mean = s / (tr.n * 784.0), std = sqrt(ss / (tr.n * 784.0) - mean * mean);
    assert_float_equal(tr.mean[0], mean, 1e-6);
    assert_float_equal(tr.std[0], std, 1e-6);
    assert_true(mean > 0.2 && mean < 0.4);

    // train and val are training images in file order; test is t10k whole
    uint8_t *images, *labels;
    int nd;
    int64_t dims[3];
    char p[512];
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte.gz", FASHION_MNIST_DIR);
    assert_int_equal(idx_read_u8(p, &images, &nd, dims, &e), ERR_OK);
    snprintf(p, sizeof p, "%s/train-labels-idx1-ubyte.gz", FASHION_MNIST_DIR);
    assert_int_equal(idx_read_u8(p, &labels, &nd, dims, &e), ERR_OK);
    assert_in_file_order(&tr, images, labels, dims[0]);
    assert_in_file_order(&va, images, labels, dims[0]);
    free(images);
    free(labels);
    snprintf(p, sizeof p, "%s/t10k-labels-idx1-ubyte.gz", FASHION_MNIST_DIR);
    assert_int_equal(idx_read_u8(p, &labels, &nd, dims, &e), ERR_OK);
    for (int64_t i = 0; i < te.n; i++) assert_int_equal(te.y[i], labels[i]);
    free(labels);

    // same seed: identical splits; another seed: a different carve
    Dataset trb = load_or_fail(b, "train"), vab = load_or_fail(b, "val"), vac = load_or_fail(c, "val");
    assert_memory_equal(tr.y, trb.y, 1000 * sizeof(int32_t));
    assert_memory_equal(va.y, vab.y, 500 * sizeof(int32_t));
    assert_memory_equal(va.x_u8, vab.x_u8, 500 * 784);
    assert_memory_not_equal(va.x_u8, vac.x_u8, 500 * 784);

    char *info = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&info, &len);
    assert_int_equal(dataset_info(out, a, &e), ERR_OK);
    fclose(out);
    assert_non_null(strstr(info, "T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal, Shirt, "
                                 "Sneaker, Bag, Ankle boot"));
    free(info);
    Dataset *all[] = {&tr, &va, &te, &trb, &vab, &vac};
    for (int i = 0; i < 6; i++) dataset_free(all[i]);

    // sizes that do not fit, and all-remaining train
    assert_int_equal(idx_import_fashion_mnist(FASHION_MNIST_DIR, c, 59001, 1000, 7, &e), ERR_INPUT);
    assert_non_null(strstr(e.msg, "exceed"));
    assert_int_equal(idx_import_fashion_mnist(FASHION_MNIST_DIR, c, 0, 59000, 7, &e), ERR_OK);
    Dataset rest = load_or_fail(c, "train");
    assert_int_equal(rest.n, 1000);
    dataset_free(&rest);
}

int main(void) {
    dir = test_tmpdir("test_idx");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reads_plain_and_gzip),
        cmocka_unit_test(test_refuses_malformed),
        cmocka_unit_test(test_import_fashion_mnist),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
