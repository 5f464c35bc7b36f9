// imagefolder.h: `regdist data images`: a folder of image files (torchvision's ImageFolder
// layout) into a regdist HDF5 dataset (dataset.h) with its /preprocessing record.
//
// Layout: DIR/<class>/**/<file>.png|jpg|jpeg|tif|tiff; the class is the first-level folder,
// classes sorted by name (strcmp). If DIR holds train/ and val/ (or valid/) and/or test/,
// each is such a folder and they are the splits; otherwise every class's files are split
// by a seeded permutation (val_frac, test_frac). Names starting with '.' are ignored, so are
// files without an image extension (both counted).
//
// Two passes: the walk and every file's header are checked first (sizes, channels, bit depth)
// so that nothing is written for a folder that cannot be imported; then the pixels are
// decoded by a pool of threads a chunk at a time into chunked HDF5 datasets, so memory does
// not grow with the number of images. The file is written as "<out>.tmp.<pid>" and renamed
// over out only when complete; on any failure it is removed and out is left as it was.
#pragma once
#include <stdint.h>

#include "core/err.h"
#include "core/layer.h"

enum { IMPORT_TRAIN = 0, IMPORT_VAL = 1, IMPORT_TEST = 2, IMPORT_SPLITS = 3 };

typedef struct {
    const char *dir, *out;
    int height, width;   // --size: resize every image to this (lanczos3); 0 = keep, all equal
    int channels;        // --channels: 1 or 3 (converting files that differ); 0 = as the files
    double val_frac, test_frac;  // of each class, when DIR has no split folders
    uint32_t seed;               // of the split permutation
    int skip_bad;        // 1 = skip (and count) unreadable images instead of failing
    int threads;         // decoding threads; 0 = the cores this process may run on
    int chunk;           // images decoded per chunk; 0 = 256
    // Called on the importing thread after each chunk: images done (decoded or skipped) of
    // all. May be NULL.
    void (*progress)(void *ctx, int64_t done, int64_t total);
    void *progress_ctx;
} ImportSpec;

// What an import did, for the one-line summary.
typedef struct {
    int num_classes;
    char **classes;          // (num_classes) names in label order
    int64_t *count;          // (IMPORT_SPLITS, num_classes) images written per split and class
    int64_t ignored;         // files that are not images (no image extension, hidden names)
    int64_t skipped;         // unreadable images skipped (skip_bad)
    char first_skipped[512]; // the first skipped image and why, "" when none
    int split_folders;       // 1 when the splits came from train/ val/ test/ folders
    Shape shape;             // (C,H,W) of a stored sample
    int bit_depth;           // 8 or 16
    int threads;             // decoding threads used
} ImportSummary;

// Imports s->dir into s->out. Bad input (a corrupt image without skip_bad, an empty class
// folder, fewer than two classes, mixed sizes without a size, mixed gray and colour without
// channels, a symlink loop, a missing directory) is ERR_INPUT with one line naming the file;
// a failure to write is ERR_RUNTIME. sum is filled on success (import_summary_free it).
int image_folder_import(const ImportSpec *s, ImportSummary *sum, Err *e);
void import_summary_free(ImportSummary *sum);

// Removes the temporary file of an import in progress, if any. Async-signal-safe: for a
// handler of SIGINT/SIGTERM, which then ends the process.
void import_remove_partial(void);

