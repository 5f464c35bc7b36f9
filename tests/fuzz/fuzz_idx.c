// fuzz_idx.c: the IDX importer. The whole input is read as one IDX file (idx_read_u8: plain
// or gzip). Then it is taken apart as a pair of files for idx_import_fashion_mnist:
//   bytes 0-1  L, big-endian: length of the labels file
//   byte 2     val_size, byte 3 train_size
//   L bytes    the labels file, then the rest: the images file
// written as both the train and the t10k files of a scratch directory. An import that
// succeeds must give a dataset that dataset_load reads back with the sizes asked for.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzzutil.h"
#include "io/dataset.h"
#include "io/idx.h"

static char dir[4096];
static const char *const names[4] = {"train-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
                                     "train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz"};

static void remove_dir(void) {
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    snprintf(dir, sizeof dir, "%s/regdist-fuzz-idx-XXXXXX", fuzz_tmpdir());
    if (!mkdtemp(dir)) fuzz_fail("mkdtemp", dir);
    atexit(remove_dir);
    return 0;
}

static const char *in_dir(const char *name) {
    static char path[4][4200];
    static int k;
    k = (k + 1) % 4;
    snprintf(path[k], sizeof path[k], "%s/%s", dir, name);
    return path[k];
}

static void write_file(const char *name, const uint8_t *data, size_t size) {
    FILE *f = fopen(in_dir(name), "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0) fuzz_fail("cannot write", name);
}

static void import_pair(const uint8_t *data, size_t size) {
    if (size < 4) return;
    size_t nlabels = (size_t)data[0] << 8 | data[1];
    if (nlabels > size - 4) return;
    int64_t val_size = data[2], train_size = data[3];
    const uint8_t *labels = data + 4, *images = labels + nlabels;
    size_t nimages = size - 4 - nlabels;
    for (int i = 0; i < 4; i++)
        write_file(names[i], i < 2 ? labels : images, i < 2 ? nlabels : nimages);
    const char *out = in_dir("out.h5");
    Err e = {0};
    if (idx_import_fashion_mnist(dir, out, train_size, val_size, 7, &e) == ERR_OK) {
        Dataset d = {0};
        uint8_t *x;
        int nd;
        int64_t dims[3];
        if (idx_read_u8(in_dir(names[2]), &x, &nd, dims, &e)) fuzz_fail("imported images", e.msg);
        free(x);
        int64_t n = dims[0];
        if (dataset_load(&d, out, "train", 0, &e)) fuzz_fail("the import does not load", e.msg);
        if (d.n != (train_size ? train_size : n - val_size))
            fuzz_fail("the import", "has a train split of the wrong size");
        if (dataset_load_rows(&d, out, "test", 0, NULL, 0, &e) || d.n != n)
            fuzz_fail("the import", "has a test split of the wrong size");
        dataset_free(&d);
        unlink(out);
    }
    for (int i = 0; i < 4; i++) unlink(in_dir(names[i]));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *x = NULL;
    int ndims = 0;
    int64_t dims[3];
    Err e = {0};
    if (idx_read_u8(fuzz_input_file(data, size), &x, &ndims, dims, &e) == ERR_OK) {
        int64_t total = 1;
        for (int i = 0; i < ndims; i++) total *= dims[i];
        volatile uint8_t sum = 0;  // touch every byte: ASan checks the buffer is that large
        for (int64_t i = 0; i < total; i++) sum += x[i];
        (void)sum;
        free(x);
    }
    import_pair(data, size);
    return 0;
}
