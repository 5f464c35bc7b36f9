// fuzz_dataset.c: the HDF5 dataset loader on arbitrary file bytes: dataset_load of "train",
// dataset_load_rows of a few rows of it (the per-rank shard reader), dataset_gather over what
// was loaded (normalization), and dataset_info (every split, the root attributes).
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "fuzzutil.h"
#include "io/dataset.h"

static FILE *devnull;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    devnull = fopen("/dev/null", "w");
    if (!devnull) fuzz_fail("cannot open", "/dev/null");
    return 0;
}

// Gathers up to 4 of the held rows: every held byte must be readable and every label in range.
static void gather(const Dataset *d) {
    int64_t idx[4];
    int n = 0;
    for (int64_t i = 0; i < d->nloaded && n < 4; i += 1 + d->nloaded / 4)
        idx[n++] = d->rows ? d->rows[i] : i;
    float *x = malloc((size_t)n * shape_numel(d->shape) * sizeof *x + 1);
    int32_t y[4];
    if (!x) return;
    dataset_gather(d, idx, n, x, y);
    for (int i = 0; i < n; i++)
        if (y[i] < 0 || y[i] >= d->num_classes) fuzz_fail("dataset_gather", "label out of range");
    free(x);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_input_file(data, size);
    Dataset d = {0};
    Err e = {0};
    if (dataset_load(&d, path, "train", 0, &e) == ERR_OK) {
        gather(&d);
        const int64_t rows[3] = {0, 1, d.n - 1};  // two runs when n >= 4
        int64_t nrows = d.n >= 4 ? 3 : 1;
        if (dataset_load_rows(&d, path, "train", 0, rows, nrows, &e) != ERR_OK)
            fuzz_fail("dataset_load_rows fails where dataset_load did not", e.msg);
        gather(&d);
        dataset_free(&d);
    }
    dataset_info(devnull, path, &e);
    return 0;
}
