// image.h: image files into regdist's pixels, with libvips. Every call into the image library
// lives in io/image.c. The importer (`regdist data images`) and `regdist predict --images`
// both go through image_load with the same ImagePrep, so a file gives the same stored pixels
// either way, bit for bit.
#pragma once
#include <stdint.h>

#include "core/err.h"

// What to make of a file. From `data images` options, or from a checkpoint's Preprocess.
typedef struct {
    int channels;      // 1 (gray) or 3 (RGB)
    int convert;       // 1 = convert a file with other channels (gray <-> RGB); 0 = refuse it
    int height, width; // the size every output has
    int resize;        // 1 = resize to height x width (lanczos3); 0 = the file must have that size
    int bit_depth;     // 8 (out is uint8) or 16 (out is uint16; 8-bit files are scaled by 257)
} ImagePrep;

// What a file's header says, without decoding its pixels.
typedef struct {
    int width, height;
    int channels;   // colour channels, alpha not counted: 1 (gray) or 3 (colour, palette too)
    int bit_depth;  // 8 or 16 (per channel, as decoded)
} ImageInfo;

// Once per process before the first call (thread-safe afterwards); argv0 for libvips.
int image_lib_init(const char *argv0, Err *e);
void image_lib_shutdown(void);

// 1 if the name ends in an image extension regdist reads (.png .jpg .jpeg .tif .tiff, any case).
int image_is_image_name(const char *path);

// Reads the header. ERR_INPUT "path: not a readable image (<libvips's reason>)".
int image_info(const char *path, ImageInfo *info, Err *e);

// Decodes path, drops alpha, converts channels (when p->convert), resizes (when p->resize,
// lanczos3), rounds to p->bit_depth. out is (channels, height, width), uint8 or uint16.
// A corrupt or truncated file, or one that does not fit p, is ERR_INPUT naming the file.
int image_load(const char *path, const ImagePrep *p, void *out, Err *e);
