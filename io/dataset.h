// dataset.h: regdist's HDF5 dataset format, and loading one split of it.
//
// File layout (readable with h5py):
//   /            attribute num_classes (int), optional class_names (strings),
//                optional mean, std (float, one per channel: C for (N,C,H,W), 1 for (N,D))
//   /train /val /test   groups, any present, each with
//       x  (N,C,H,W) or (N,D), uint8 or float32
//       y  (N), integer labels in [0, num_classes)
// uint8 pixels become x/255, then (x-mean)/std when the attributes exist; float32 is used
// as stored, normalized by mean/std if present.
#pragma once
#include <stdint.h>
#include <stdio.h>

#include "../core/err.h"
#include "../core/layer.h"

#define DATASET_MAX_CHANNELS 64
#define DATASET_PATH_MAX 1024

typedef struct {
    char file[DATASET_PATH_MAX];
    char split[16];
    int64_t n;        // samples in the split (after the limit)
    int64_t nloaded;  // samples held in memory: all n, or the rows asked for
    int64_t *rows;    // (nloaded) ascending split rows held, or NULL when all n are held
    Shape shape;      // per-sample shape, (D) or (C,H,W)
    int num_classes;
    int is_u8;        // x stored as uint8 (x_u8) or float32 (x_f32)
    uint8_t *x_u8;    // (n, shape)
    float *x_f32;     // (n, shape)
    int32_t *y;       // (n)
    int nchan;        // channels that mean/std apply to
    float mean[DATASET_MAX_CHANNELS], std[DATASET_MAX_CHANNELS];  // identity if absent
} Dataset;

// Loads split ("train", "val", "test") of file, the first `limit` samples (0 = all), checking
// everything: existence, HDF5-ness, rank, type, matching N, label range, NaN/Inf, empty split.
// Every failure is ERR_INPUT with a one-line message naming the file and dataset.
int dataset_load(Dataset *d, const char *file, const char *split, int64_t limit, Err *e);
// The same checks, holding only the given rows (ascending, each below the split's size after
// the limit): a rank's shard. nrows = 0 reads only the description (n, shape, classes).
// Reading is one contiguous hyperslab per run of consecutive rows. Replaces what d held
// (d must be zeroed or hold an earlier load).
int dataset_load_rows(Dataset *d, const char *file, const char *split, int64_t limit,
                      const int64_t *rows, int64_t nrows, Err *e);
// 1 if the file has the split, 0 if not, ERR_INPUT-negative (-2) if the file is unusable.
int dataset_has_split(const char *file, const char *split, Err *e);
void dataset_free(Dataset *d);

// x (n, shape) gets the normalized float samples idx[0..n) (split rows, which d must hold),
// y (n) their labels.
void dataset_gather(const Dataset *d, const int64_t *idx, int n, float *x, int32_t *y);

// Writing, for importers and the synthetic generator. x is uint8 or float32 per is_u8.
typedef struct {
    int num_classes;
    int nchan;                    // 0 = no mean/std attributes
    const float *mean, *std;      // (nchan)
    const char *const *class_names;  // (num_classes) or NULL
} DatasetAttrs;
// Creates (replaces) file with the root attributes.
int dataset_create(const char *file, const DatasetAttrs *a, Err *e);
// Adds one split group to an existing file. Both write the whole file anew and rename it into
// place, so a failure (ERR_RUNTIME naming the OS's reason) leaves the previous file intact.
int dataset_write_split(const char *file, const char *split, const void *x, int is_u8,
                        const int32_t *y, int64_t n, Shape shape, Err *e);

// Prints a human summary of any regdist dataset file (splits, shapes, types, label counts).
int dataset_info(FILE *out, const char *file, Err *e);
