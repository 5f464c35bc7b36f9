// dataset.h: regdist's HDF5 dataset format, and loading one split of it.
//
// File layout (readable with h5py):
//   /            attribute num_classes (int), optional classes (strings, names in label order;
//                older files call it class_names), optional mean, std (float, one per
//                channel: C for (N,C,H,W), 1 for (N,D)), optional group /preprocessing
//                (preprocess.h: how the samples were made)
//   /train /val /test   groups, any present, each with
//       x      (N,C,H,W) or (N,D), uint8, uint16 or float32
//       y      (N), integer labels in [0, num_classes); predict reads splits without it
//       paths  (N) strings, optional: where each sample came from (the image importer)
// uint8 pixels become x/255, uint16 x/65535, then (x-mean)/std when the attributes exist;
// float32 is used as stored, normalized by mean/std if present.
#pragma once
#include <stdint.h>
#include <stdio.h>

#include "core/err.h"
#include "core/layer.h"
#include "preprocess.h"

#define DATASET_MAX_CHANNELS 64
#define DATASET_PATH_MAX 1024

// How x is stored. F32 is 0 so a zeroed Dataset that a caller fills by hand holds floats.
typedef enum { PIXEL_F32 = 0, PIXEL_U8 = 1, PIXEL_U16 = 2 } PixelType;

typedef struct {
    char file[DATASET_PATH_MAX];
    char split[16];
    int64_t n;        // samples in the split (after the limit)
    int64_t nloaded;  // samples held in memory: all n, or the rows asked for
    int64_t *rows;    // (nloaded) ascending split rows held, or NULL when all n are held
    Shape shape;      // per-sample shape, (D) or (C,H,W)
    int num_classes;
    PixelType pixel;  // which of x_u8, x_u16, x_f32 holds the samples
    uint8_t *x_u8;    // (n, shape)
    uint16_t *x_u16;  // (n, shape)
    float *x_f32;     // (n, shape)
    int32_t *y;       // (n), or NULL when the split has no labels (dataset_load_x)
    int labelled;     // the split has y
    int has_paths;    // the split has a paths dataset of n strings
    int nchan;        // channels that mean/std apply to
    float mean[DATASET_MAX_CHANNELS], std[DATASET_MAX_CHANNELS];  // identity if absent
    // What was done to the samples: the file's /preprocessing group, or what its attributes
    // say (source "unknown"). Its input, bit_depth, mean/std and classes are always what this
    // loader uses: shape, pixel type, the normalization gather applies, the root's names.
    Preprocess prep;
} Dataset;

// Bytes of one stored pixel: 1, 2 or 4.
size_t dataset_pixel_bytes(const Dataset *d);

// Loads split ("train", "val", "test") of file, the first `limit` samples (0 = all), checking
// everything: existence, HDF5-ness, rank, type, matching N, label range, NaN/Inf, empty split.
// Every failure is ERR_INPUT with a one-line message naming the file and dataset.
int dataset_load(Dataset *d, const char *file, const char *split, int64_t limit, Err *e);
// dataset_load for predict: /split/y may be absent (then d->y is NULL and d->labelled 0);
// when present it is checked as dataset_load does.
int dataset_load_x(Dataset *d, const char *file, const char *split, Err *e);
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
// y (n) their labels (-1 when the split has none).
void dataset_gather(const Dataset *d, const int64_t *idx, int n, float *x, int32_t *y);

// Makes gather normalize with p's mean/std (p->nchan 0: none) instead of the file's, as eval
// and predict do with a checkpoint's; d->prep follows. ERR_INPUT when p has another number
// of channels than d's samples.
int dataset_use_norm(Dataset *d, const Preprocess *p, Err *e);

// Writing, for importers and the synthetic generator. x is uint8, uint16 or float32 per pixel.
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
int dataset_write_split(const char *file, const char *split, const void *x, PixelType pixel,
                        const int32_t *y, int64_t n, Shape shape, Err *e);

// Prints a human summary of any regdist dataset file (classes, normalization, the
// preprocessing record, splits with shapes, types, label counts and paths).
int dataset_info(FILE *out, const char *file, Err *e);
