// idx.h: importing the IDX files of MNIST-style datasets (Debian's dataset-fashion-mnist).
#pragma once
#include <stdint.h>

#include "core/err.h"

#define FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

// Reads an IDX file (gzip-compressed or plain) of unsigned bytes. dims gets up to 3 sizes.
// *data is malloc'd (caller frees). ERR_INPUT names the file on any malformation.
int idx_read_u8(const char *path, uint8_t **data, int *ndims, int64_t dims[3], Err *e);

// Converts dir's train/t10k IDX files to a regdist dataset at out: val_size samples carved
// from the training set by a permutation drawn from seed, train_size of the rest (0 = all),
// the 10k test set as test. Samples keep file order within each split. Writes uint8 (N,1,28,28)
// with the 10 class names and mean/std attributes computed on the train split.
int idx_import_fashion_mnist(const char *dir, const char *out, int64_t train_size,
                             int64_t val_size, uint32_t seed, Err *e);
