// preprocess.h: what was done to a sample before the model sees it, kept as data. An importer
// writes it into the dataset file; training copies it, with the normalization and class names
// the run used, into every checkpoint; eval, predict and the PyTorch bridge read it back from
// the checkpoint, so a prediction never depends on a data file's attributes.
//
// The HDF5 form, a group /preprocessing (in a dataset file and in a checkpoint), attributes:
//   source         string  "images", "fashion-mnist", "synth", "unknown"
//   input_shape    int64   (C,H,W) or (D): one sample as the model takes it
//   channel_order  string  "L" (one gray channel), "RGB", or "none" (not an image)
//   bit_depth      int64   8 or 16: stored integer pixels (uint8, uint16); 32: float32 stored
//   pixel_max      float64 stored integers are divided by this (255, 65535; 1 for float32)
//   resize         string  "none", or the filter that resized every image ("lanczos3")
//   convert        string  "none", "gray" (colour made gray by luminance), "rgb" (gray
//                          replicated to three channels); alpha is always dropped
//   mean, std      float32 (C), only when normalized: x = (pixel / pixel_max - mean) / std
//   num_classes    int64   how many classes the labels (and a model's outputs) have; may be
//                          absent in files written before it was recorded
//   classes        strings (num_classes): class names in label order (absent if unnamed)
// The root attributes mean, std and classes of a dataset file stay where they were (dataset.h);
// this group adds what the root attributes could not say.
#pragma once
#include <stdint.h>

#include "core/err.h"
#include "core/layer.h"

#define PREP_MAX_CHANNELS 64

typedef struct {
    char source[32];
    Shape input;            // per-sample shape
    char channel_order[8];  // "L", "RGB", "none"
    int bit_depth;          // 8, 16 or 32
    char resize[16];        // "none" or a filter name
    char convert[8];        // "none", "gray", "rgb"
    int nchan;              // channels of mean/std; 0 = no normalization
    float mean[PREP_MAX_CHANNELS], std[PREP_MAX_CHANNELS];
    int num_classes;        // 0 = not recorded
    char **classes;         // (num_classes) malloc'd names, or NULL (prep_free)
} Preprocess;

// A record for data nothing is known about: source "unknown", no resize, no normalization.
void prep_init(Preprocess *p, Shape input, int bit_depth);
// Deep copy (dst is overwritten; prep_free it afterwards).
int prep_copy(Preprocess *dst, const Preprocess *src, Err *e);
void prep_free(Preprocess *p);
// pixel_max for a bit depth: 255, 65535, or 1 (float32).
double prep_pixel_max(int bit_depth);
// 1 when a and b normalize the same way (same channel count, mean and std to the bit).
int prep_same_norm(const Preprocess *a, const Preprocess *b);
// "mean 0.2860 std 0.3530" (per channel, slash-separated) into buf, or "none".
void prep_norm_str(char *buf, size_t len, const Preprocess *p);
