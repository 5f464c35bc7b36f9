// image.c: image files into regdist's pixels with libvips (image.h). Every libvips call of
// regdist lives here. libvips runs one worker per pipeline (vips_concurrency_set(1)): callers
// decode many files at once on their own threads, one file per thread, which scales better
// for small images than libvips's tiles and keeps a file's pixels independent of the machine.
#include "image.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <vips/vips.h>

static pthread_mutex_t err_lock = PTHREAD_MUTEX_INITIALIZER;

// libvips reports through one process-wide error buffer. Takes its last line (the most
// specific reason) and clears it, under a lock, so concurrent decoders do not interleave.
static int vips_fail(Err *e, int code, const char *path, const char *what) {
    char reason[256] = "";
    pthread_mutex_lock(&err_lock);
    const char *buf = vips_error_buffer();
    size_t n = strlen(buf);
    while (n && buf[n - 1] == '\n') n--;
    size_t start = n;
    while (start && buf[start - 1] != '\n') start--;
    snprintf(reason, sizeof reason, "%.*s", (int)(n - start), buf + start);
    vips_error_clear();
    pthread_mutex_unlock(&err_lock);
    for (char *c = reason; *c; c++)  // one line, whatever the library said
        if (*c == '\n' || *c == '\r' || *c == '\t') *c = ' ';
    if (*reason) return err_set(e, code, "%s: %s (%s)", path, what, reason);
    return err_set(e, code, "%s: %s", path, what);
}

// libvips's warnings (and those of libpng, libjpeg, libtiff it relays) would go to stderr;
// regdist reports problems through Err only, and a truncated file is an error anyway
// (fail_on below).
static void quiet_log(const gchar *domain, GLogLevelFlags level, const gchar *msg, gpointer data) {
    (void)domain, (void)level, (void)msg, (void)data;
}

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_rc;
static const char *init_argv0;

static void lib_init(void) {
    init_rc = VIPS_INIT(init_argv0 ? init_argv0 : "regdist");
    if (init_rc) return;
    vips_concurrency_set(1);
    // No operation cache: every file is opened once, and a cache of open images would hold
    // file descriptors and pixels of thousands of files for nothing.
    vips_cache_set_max(0);
    g_log_set_handler("VIPS", G_LOG_LEVEL_WARNING | G_LOG_LEVEL_MESSAGE | G_LOG_LEVEL_INFO |
                      G_LOG_LEVEL_DEBUG, quiet_log, NULL);
}

int image_lib_init(const char *argv0, Err *e) {
    init_argv0 = argv0;
    pthread_once(&init_once, lib_init);
    if (init_rc) return vips_fail(e, ERR_RUNTIME, "libvips", "cannot start");
    return ERR_OK;
}

void image_lib_shutdown(void) {
    if (!init_rc) vips_shutdown();
}

int image_is_image_name(const char *path) {
    static const char *exts[] = {".png", ".jpg", ".jpeg", ".tif", ".tiff"};
    size_t n = strlen(path);
    for (size_t i = 0; i < sizeof exts / sizeof *exts; i++) {
        size_t k = strlen(exts[i]);
        if (n > k && strcasecmp(path + n - k, exts[i]) == 0) return 1;
    }
    return 0;
}

enum { KIND_PNG, KIND_JPEG, KIND_TIFF, KIND_OTHER, KIND_UNREADABLE };

// The format from the file's first bytes (its name may say otherwise).
static int sniff(const char *path) {
    unsigned char b[8] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return KIND_UNREADABLE;
    size_t n = fread(b, 1, sizeof b, f);
    fclose(f);
    if (n >= 8 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8)) return KIND_PNG;
    if (n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return KIND_JPEG;
    if (n >= 4 && (!memcmp(b, "II*\0", 4) || !memcmp(b, "MM\0*", 4) ||  // classic TIFF
                   !memcmp(b, "II+\0", 4) || !memcmp(b, "MM\0+", 4)))   // BigTIFF
        return KIND_TIFF;
    return KIND_OTHER;
}

// Opens path for one sequential read (nothing decoded yet) with the PNG, JPEG or TIFF loader
// its first bytes call for: asking libvips to find a loader would try each of its loaders on
// the file in turn (a dozen opens per file) and could hand a stray file to ImageMagick.
// fail_on = error: a truncated or corrupt file fails when its pixels are read, instead of
// decoding to grey.
static int open_image(const char *path, VipsImage **im, Err *e) {
    *im = NULL;
    int kind = sniff(path);
    if (kind == KIND_UNREADABLE)
        return err_set(e, ERR_INPUT, "%s: cannot read: %s", path, strerror(errno));
    if (kind == KIND_OTHER)
        return err_set(e, ERR_INPUT, "%s: not a readable image (not PNG, JPEG or TIFF data)", path);
    int rc = kind == KIND_PNG ? vips_pngload(path, im, "access", VIPS_ACCESS_SEQUENTIAL, "fail_on",
                                      VIPS_FAIL_ON_ERROR, NULL)
           : kind == KIND_JPEG ? vips_jpegload(path, im, "access", VIPS_ACCESS_SEQUENTIAL, "fail_on",
                                       VIPS_FAIL_ON_ERROR, NULL)
                       : vips_tiffload(path, im, "access", VIPS_ACCESS_SEQUENTIAL, "fail_on",
                                       VIPS_FAIL_ON_ERROR, NULL);
    if (rc) {
        *im = NULL;
        return vips_fail(e, ERR_INPUT, path, "not a readable image");
    }
    return ERR_OK;
}

// What an opened image is, or ERR_INPUT when regdist cannot store it.
static int describe(const char *path, VipsImage *im, ImageInfo *info, Err *e) {
    int alpha = vips_image_hasalpha(im) ? 1 : 0;
    int cmyk = vips_image_get_interpretation(im) == VIPS_INTERPRETATION_CMYK;
    int colour = vips_image_get_bands(im) - alpha;
    info->width = vips_image_get_width(im);
    info->height = vips_image_get_height(im);
    info->channels = cmyk ? 3 : colour;
    VipsBandFormat f = vips_image_get_format(im);
    info->bit_depth = f == VIPS_FORMAT_UCHAR ? 8 : f == VIPS_FORMAT_USHORT ? 16 : 0;
    if (!info->bit_depth)
        return err_set(e, ERR_INPUT, "%s: %s samples; regdist stores 8- or 16-bit unsigned "
                       "integer images", path, vips_enum_nick(VIPS_TYPE_BAND_FORMAT, f));
    if (!cmyk && colour != 1 && colour != 3)
        return err_set(e, ERR_INPUT, "%s: %d colour bands; regdist reads gray or RGB (with "
                       "or without alpha)", path, colour);
    return ERR_OK;
}

int image_info(const char *path, ImageInfo *info, Err *e) {
    memset(info, 0, sizeof *info);
    VipsImage *im = NULL;
    int rc = open_image(path, &im, e);
    if (!rc) rc = describe(path, im, info, e);
    if (im) g_object_unref(im);
    return rc;
}

// Replaces *im by next (the result of one libvips step), or fails naming the step.
// next is read only after the step ran (argument order is unspecified in C).
static int step(VipsImage **im, VipsImage **next, int ok, const char *path, const char *what,
                Err *e) {
    if (ok != 0) return vips_fail(e, ERR_INPUT, path, what);
    g_object_unref(*im);
    *im = *next;
    *next = NULL;
    return ERR_OK;
}

// The interpretation libvips's colourspace conversion needs for a gray or RGB image.
static VipsInterpretation space_of(int channels, int bit_depth) {
    if (channels == 1) return bit_depth == 16 ? VIPS_INTERPRETATION_GREY16 : VIPS_INTERPRETATION_B_W;
    return bit_depth == 16 ? VIPS_INTERPRETATION_RGB16 : VIPS_INTERPRETATION_sRGB;
}

// Row y of out (C,H,W) from px, that row as (W,C) interleaved, uint8 or uint16 in,
// p->bit_depth out. 8 to 16 bits is x*257 (exact: 255 -> 65535); 16 to 8 bits rounds
// x*255/65535.
static void store_chw_row(void *out, const void *px, int y, int in16, const ImagePrep *p) {
    const int C = p->channels, W = p->width;
    const size_t hw = (size_t)p->height * W, at = (size_t)y * W;
    for (int c = 0; c < C; c++)
        for (int x = 0; x < W; x++) {
            uint32_t v = in16 ? ((const uint16_t *)px)[x * C + c] : ((const uint8_t *)px)[x * C + c];
            if (p->bit_depth == 16)
                ((uint16_t *)out)[c * hw + at + x] = (uint16_t)(in16 ? v : v * 257);
            else
                ((uint8_t *)out)[c * hw + at + x] = (uint8_t)(in16 ? (v * 255 + 32767) / 65535 : v);
        }
}

// Drops alpha (the last band) and turns CMYK into RGB: what is left are the colour bands
// describe() counted.
static int drop_extra_bands(VipsImage **im, const char *path, Err *e) {
    VipsImage *next = NULL;
    int rc = ERR_OK;
    if (vips_image_hasalpha(*im))
        rc = step(im, &next, vips_extract_band(*im, &next, 0, "n", vips_image_get_bands(*im) - 1,
                                               NULL), path, "cannot drop alpha", e);
    if (!rc && vips_image_get_interpretation(*im) == VIPS_INTERPRETATION_CMYK)
        rc = step(im, &next, vips_colourspace(*im, &next, VIPS_INTERPRETATION_sRGB, NULL), path,
                  "cannot convert CMYK to RGB", e);
    return rc;
}

// Gray to colour or colour to gray, where the file's channels differ from p's and p converts.
static int match_channels(VipsImage **im, int channels, const ImagePrep *p, const char *path,
                          Err *e) {
    if (channels == p->channels) return ERR_OK;
    if (!p->convert)
        return err_set(e, ERR_INPUT, "%s: is %s, expected %s", path,
                       channels == 1 ? "gray" : "colour", p->channels == 1 ? "gray" : "colour");
    // Say what the bands are (a loader may leave a gray image "multiband"), then convert:
    // colour to gray is libvips's luminance, gray to colour copies the band three times.
    VipsImage *next = NULL;
    int depth = vips_image_get_format(*im) == VIPS_FORMAT_USHORT ? 16 : 8;
    int rc = step(im, &next, vips_copy(*im, &next, "interpretation", space_of(channels, depth),
                                       NULL), path, "cannot read bands", e);
    if (!rc)
        rc = step(im, &next, vips_colourspace(*im, &next, space_of(p->channels, depth), NULL),
                  path, "cannot convert channels", e);
    return rc;
}

// To p's height and width (Lanczos 3), where they differ and p resizes.
static int match_size(VipsImage **im, const ImagePrep *p, const char *path, Err *e) {
    int w = vips_image_get_width(*im), h = vips_image_get_height(*im);
    if (w == p->width && h == p->height) return ERR_OK;
    if (!p->resize)
        return err_set(e, ERR_INPUT, "%s: is %dx%d (HxW), expected %dx%d", path, h, w, p->height,
                       p->width);
    VipsImage *next = NULL;
    int rc = step(im, &next, vips_resize(*im, &next, (double)p->width / w, "vscale",
                                         (double)p->height / h, "kernel", VIPS_KERNEL_LANCZOS3,
                                         NULL), path, "cannot resize", e);
    // libvips rounds the output size; should it ever be one pixel off, centre it exactly
    if (!rc && (vips_image_get_width(*im) != p->width || vips_image_get_height(*im) != p->height))
        rc = step(im, &next, vips_gravity(*im, &next, VIPS_COMPASS_DIRECTION_CENTRE, p->width,
                                          p->height, "extend", VIPS_EXTEND_COPY, NULL),
                  path, "cannot resize", e);
    return rc;
}

// Rounds back to integers of the file's bit_depth where a conversion left floats; *format is
// the pixels' format afterwards.
static int to_integers(VipsImage **im, int bit_depth, VipsBandFormat *format, const char *path,
                       Err *e) {
    *format = vips_image_get_format(*im);
    if (*format == VIPS_FORMAT_UCHAR || *format == VIPS_FORMAT_USHORT) return ERR_OK;
    VipsBandFormat to = bit_depth == 16 ? VIPS_FORMAT_USHORT : VIPS_FORMAT_UCHAR;
    VipsImage *next = NULL;
    int rc = step(im, &next, vips_round(*im, &next, VIPS_OPERATION_ROUND_RINT, NULL), path,
                  "cannot round", e);
    if (!rc) rc = step(im, &next, vips_cast(*im, &next, to, NULL), path, "cannot round", e);
    if (!rc) *format = to;
    return rc;
}

// Decodes im (p's size, uint16 pixels if in16 else uint8) into out (C,H,W) on this thread: a
// region computed here runs the pipeline in the caller, where vips_image_write_to_memory
// would start a libvips thread pool for every image.
static int decode_into(void *out, VipsImage *im, int in16, const ImagePrep *p, const char *path,
                       Err *e) {
    int rc = ERR_OK;
    VipsRegion *reg = vips_region_new(im);
    VipsRect all = {0, 0, p->width, p->height};
    if (!reg || vips_region_prepare(reg, &all)) {
        rc = vips_fail(e, ERR_INPUT, path, "corrupt or truncated image");
    } else {
        for (int y = 0; y < p->height; y++)
            store_chw_row(out, VIPS_REGION_ADDR(reg, 0, y), y, in16, p);
    }
    if (reg) g_object_unref(reg);
    return rc;
}

int image_load(const char *path, const ImagePrep *p, void *out, Err *e) {
    VipsImage *im = NULL;
    ImageInfo info;
    VipsBandFormat f = VIPS_FORMAT_UCHAR;
    int rc = open_image(path, &im, e);
    if (!rc) rc = describe(path, im, &info, e);
    if (!rc) rc = drop_extra_bands(&im, path, e);
    if (!rc) rc = match_channels(&im, info.channels, p, path, e);
    if (!rc) rc = match_size(&im, p, path, e);
    if (!rc) rc = to_integers(&im, info.bit_depth, &f, path, e);
    if (!rc && vips_image_get_bands(im) != p->channels)
        rc = err_set(e, ERR_INPUT, "%s: has %d bands after conversion, expected %d", path,
                     vips_image_get_bands(im), p->channels);
    if (!rc) rc = decode_into(out, im, f == VIPS_FORMAT_USHORT, p, path, e);
    if (im) g_object_unref(im);
    return rc;
}
