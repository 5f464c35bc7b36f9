// preprocess.c: the preprocessing record (preprocess.h) and its /preprocessing group.
#include "preprocess.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h5util.h"
#include "preprocess_h5.h"

void prep_init(Preprocess *p, Shape input, int bit_depth) {
    memset(p, 0, sizeof *p);
    snprintf(p->source, sizeof p->source, "unknown");
    p->input = input;
    snprintf(p->channel_order, sizeof p->channel_order, "none");
    p->bit_depth = bit_depth;
    snprintf(p->resize, sizeof p->resize, "none");
    snprintf(p->convert, sizeof p->convert, "none");
}

int prep_copy(Preprocess *dst, const Preprocess *src, Err *e) {
    *dst = *src;
    dst->classes = NULL;
    if (!src->classes) return ERR_OK;
    dst->classes = calloc((size_t)src->num_classes, sizeof *dst->classes);
    if (!dst->classes) return err_set(e, ERR_RUNTIME, "out of memory");
    for (int k = 0; k < src->num_classes; k++)
        if (!(dst->classes[k] = strdup(src->classes[k]))) {
            prep_free(dst);
            return err_set(e, ERR_RUNTIME, "out of memory");
        }
    return ERR_OK;
}

void prep_free(Preprocess *p) {
    for (int k = 0; p->classes && k < p->num_classes; k++) free(p->classes[k]);
    free(p->classes);
    p->classes = NULL;
}

double prep_pixel_max(int bit_depth) {
    return bit_depth == 8 ? 255.0 : bit_depth == 16 ? 65535.0 : 1.0;
}

int prep_same_norm(const Preprocess *a, const Preprocess *b) {
    if (a->nchan != b->nchan) return 0;
    return memcmp(a->mean, b->mean, (size_t)a->nchan * sizeof(float)) == 0 &&
           memcmp(a->std, b->std, (size_t)a->nchan * sizeof(float)) == 0;
}

void prep_norm_str(char *buf, size_t len, const Preprocess *p) {
    if (!p->nchan) {
        snprintf(buf, len, "none");
        return;
    }
    size_t at = (size_t)snprintf(buf, len, "mean");
    for (int c = 0; c < p->nchan && at < len; c++)
        at += (size_t)snprintf(buf + at, len - at, "%s%.4f", c ? "/" : " ", (double)p->mean[c]);
    if (at < len) at += (size_t)snprintf(buf + at, len - at, " std");
    for (int c = 0; c < p->nchan && at < len; c++)
        at += (size_t)snprintf(buf + at, len - at, "%s%.4f", c ? "/" : " ", (double)p->std[c]);
}

int prep_h5_write(hid_t loc, const Preprocess *p) {
    hid_t g = h5u_group_create(loc, "preprocessing");
    if (g < 0) return -1;
    int64_t shape[SHAPE_MAX_DIMS];
    for (int i = 0; i < p->input.ndim; i++) shape[i] = p->input.d[i];
    hsize_t n = (hsize_t)p->input.ndim;
    hid_t sp = H5Screate_simple(1, &n, NULL);
    hid_t a = sp < 0 ? -1 : H5Acreate2(g, "input_shape", H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    int rc = a < 0 || H5Awrite(a, H5T_NATIVE_INT64, shape) < 0;
    h5u_close(&a);
    h5u_close(&sp);
    rc = rc || h5u_write_attr_str(g, "source", p->source) ||
         h5u_write_attr_str(g, "channel_order", p->channel_order) ||
         h5u_write_attr_i64(g, "bit_depth", p->bit_depth) ||
         h5u_write_attr_f64(g, "pixel_max", prep_pixel_max(p->bit_depth)) ||
         h5u_write_attr_str(g, "resize", p->resize) ||
         h5u_write_attr_str(g, "convert", p->convert);
    if (!rc && p->nchan)
        rc = h5u_write_attr_f32s(g, "mean", p->mean, p->nchan) ||
             h5u_write_attr_f32s(g, "std", p->std, p->nchan);
    if (!rc && p->num_classes > 0) rc = h5u_write_attr_i64(g, "num_classes", p->num_classes);
    if (!rc && p->classes)
        rc = h5u_write_attr_strs(g, "classes", (const char *const *)p->classes, p->num_classes);
    h5u_close(&g);
    return rc ? -1 : 0;
}

// One string attribute into a fixed buffer; missing or mistyped is an error naming it.
static int read_str(hid_t g, const char *file, const char *name, char *buf, size_t len, Err *e) {
    char *s = NULL;
    if (h5u_read_attr_str(g, name, &s) != H5U_OK || strlen(s) >= len) {
        free(s);
        return h5u_err(e, file, "/preprocessing attribute %s is missing or not a short string", name);
    }
    snprintf(buf, len, "%s", s);
    free(s);
    return ERR_OK;
}

static int read_shape(hid_t g, const char *file, Shape *s, Err *e) {
    H5uInfo info;
    int64_t v[SHAPE_MAX_DIMS];
    if (h5u_attr_info(g, "input_shape", &info) != H5U_OK || info.cls != H5T_INTEGER ||
        info.rank != 1 || info.dims[0] < 1 || info.dims[0] > SHAPE_MAX_DIMS)
        return h5u_err(e, file, "/preprocessing attribute input_shape is missing or not 1 to 3 sizes");
    hid_t a = H5Aopen(g, "input_shape", H5P_DEFAULT);
    int bad = a < 0 || H5Aread(a, H5T_NATIVE_INT64, v) < 0;
    h5u_close(&a);
    s->ndim = (int)info.dims[0];
    for (int i = 0; !bad && i < s->ndim; i++) {
        bad = v[i] < 1 || v[i] > (1 << 24);
        s->d[i] = (int)v[i];
    }
    if (bad) return h5u_err(e, file, "/preprocessing attribute input_shape holds a bad size");
    return ERR_OK;
}

static int read_norm(hid_t g, const char *file, Preprocess *p, Err *e) {
    int nm = 0, ns = 0;
    int rm = h5u_read_attr_f32s(g, "mean", p->mean, PREP_MAX_CHANNELS, &nm);
    int rs = h5u_read_attr_f32s(g, "std", p->std, PREP_MAX_CHANNELS, &ns);
    if (rm == H5U_MISSING && rs == H5U_MISSING) return ERR_OK;
    if (rm != H5U_OK || rs != H5U_OK || nm != ns || nm < 1)
        return h5u_err(e, file, "/preprocessing attributes mean and std must be equal-length "
                       "lists of numbers");
    for (int c = 0; c < nm; c++)
        if (!(p->std[c] > 0.0f) || p->mean[c] != p->mean[c])
            return h5u_err(e, file, "/preprocessing std[%d] is %g, must be positive", c,
                           (double)p->std[c]);
    p->nchan = nm;
    return ERR_OK;
}

int prep_h5_read(hid_t loc, const char *file, Preprocess *p, Err *e) {
    memset(p, 0, sizeof *p);
    if (!h5u_is_group(loc, "preprocessing")) return H5U_MISSING;
    hid_t g = H5Gopen2(loc, "preprocessing", H5P_DEFAULT);
    if (g < 0) return h5u_err(e, file, "cannot open /preprocessing (damaged file?)");
    int64_t depth = 0;
    int rc = read_str(g, file, "source", p->source, sizeof p->source, e) ||
             read_str(g, file, "channel_order", p->channel_order, sizeof p->channel_order, e) ||
             read_str(g, file, "resize", p->resize, sizeof p->resize, e) ||
             read_str(g, file, "convert", p->convert, sizeof p->convert, e) ||
             read_shape(g, file, &p->input, e);
    if (!rc && (h5u_read_attr_i64(g, "bit_depth", &depth) != H5U_OK ||
                (depth != 8 && depth != 16 && depth != 32)))
        rc = h5u_err(e, file, "/preprocessing attribute bit_depth is missing or not 8, 16 or 32");
    p->bit_depth = (int)depth;
    if (!rc) rc = read_norm(g, file, p, e);
    if (!rc) {
        H5uInfo info;
        if (h5u_attr_info(g, "classes", &info) == H5U_OK) {
            if (h5u_read_attr_strs(g, "classes", &p->classes, &p->num_classes) != H5U_OK)
                rc = h5u_err(e, file, "/preprocessing attribute classes is not a list of strings");
        }
    }
    if (!rc && h5u_attr_info(g, "num_classes", &(H5uInfo){0}) == H5U_OK) {
        int64_t k = 0;
        if (h5u_read_attr_i64(g, "num_classes", &k) != H5U_OK || k < 2 || k > (1 << 24) ||
            (p->classes && k != p->num_classes))
            rc = h5u_err(e, file, "/preprocessing attribute num_classes is not an integer of at "
                         "least 2 matching its classes");
        else
            p->num_classes = (int)k;
    }
    h5u_close(&g);
    if (rc) {
        prep_free(p);
        return ERR_INPUT;
    }
    return H5U_OK;
}
