// dataset.c: loading, gathering, writing and describing regdist's HDF5 dataset files
// (layout in dataset.h). The loader trusts nothing in the file: every object's existence,
// rank, type and size is checked before it is read, and every complaint names the file
// and the object, since the user has to find and fix it.
#include "dataset.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "h5util.h"
#include "preprocess_h5.h"

static int valid_split_name(const char *split) {
    return split && *split && strlen(split) < sizeof(((Dataset *)0)->split) && !strchr(split, '/');
}

// Reads attribute num_classes of the root into *k.
static int read_num_classes(hid_t f, const char *file, int *k, Err *e) {
    int64_t v;
    int rc = h5u_read_attr_i64(f, "num_classes", &v);
    if (rc == H5U_MISSING) return h5u_err(e, file, "root attribute num_classes is missing");
    if (rc == H5U_BADTYPE) return h5u_err(e, file, "root attribute num_classes is not one integer");
    if (rc != H5U_OK) return h5u_err(e, file, "cannot read root attribute num_classes");
    if (v < 2 || v > INT_MAX)
        return h5u_err(e, file, "root attribute num_classes is %lld, must be at least 2", (long long)v);
    *k = (int)v;
    return ERR_OK;
}

// Reads the optional mean/std attributes for nchan channels into d (identity when absent);
// *present says whether the file has them.
static int read_norm(hid_t f, Dataset *d, int *present, Err *e) {
    for (int c = 0; c < DATASET_MAX_CHANNELS; c++) d->mean[c] = 0.0f, d->std[c] = 1.0f;
    int nm = 0, ns = 0;
    int rm = h5u_read_attr_f32s(f, "mean", d->mean, DATASET_MAX_CHANNELS, &nm);
    int rs = h5u_read_attr_f32s(f, "std", d->std, DATASET_MAX_CHANNELS, &ns);
    *present = !(rm == H5U_MISSING && rs == H5U_MISSING);
    if (!*present) return ERR_OK;
    const char *names[2] = {"mean", "std"};
    int rcs[2] = {rm, rs}, counts[2] = {nm, ns};
    for (int i = 0; i < 2; i++) {
        if (rcs[i] == H5U_MISSING)
            return h5u_err(e, d->file, "root attribute %s is missing but %s is present", names[i],
                       names[1 - i]);
        if (rcs[i] == H5U_BADTYPE && counts[i] == 0)
            return h5u_err(e, d->file, "root attribute %s is not a list of numbers", names[i]);
        if (counts[i] != d->nchan)
            return h5u_err(e, d->file, "root attribute %s has %d values but /%s/x has %d channel%s",
                       names[i], counts[i], d->split, d->nchan, d->nchan == 1 ? "" : "s");
        if (rcs[i] != H5U_OK) return h5u_err(e, d->file, "cannot read root attribute %s", names[i]);
    }
    for (int c = 0; c < d->nchan; c++) {
        if (!isfinite(d->mean[c]))
            return h5u_err(e, d->file, "root attribute mean[%d] is %g", c, (double)d->mean[c]);
        if (!(d->std[c] > 0.0f) || !isfinite(d->std[c]))
            return h5u_err(e, d->file, "root attribute std[%d] is %g, must be positive", c,
                       (double)d->std[c]);
    }
    return ERR_OK;
}

static int pixel_bit_depth(PixelType t) { return t == PIXEL_U8 ? 8 : t == PIXEL_U16 ? 16 : 32; }

size_t dataset_pixel_bytes(const Dataset *d) {
    return d->pixel == PIXEL_U8 ? 1 : d->pixel == PIXEL_U16 ? 2 : 4;
}

// The class names: root attribute classes, or class_names in older files; *names NULL when
// the file has neither. A list of another length than num_classes is refused.
static int read_class_names(hid_t f, const char *file, int num_classes, char ***names, Err *e) {
    *names = NULL;
    const char *attr = h5u_attr_info(f, "classes", &(H5uInfo){0}) == H5U_OK ? "classes"
                       : h5u_attr_info(f, "class_names", &(H5uInfo){0}) == H5U_OK ? "class_names"
                                                                                  : NULL;
    if (!attr) return ERR_OK;
    int n = 0;
    if (h5u_read_attr_strs(f, attr, names, &n) != H5U_OK)
        return h5u_err(e, file, "root attribute %s is not a list of strings", attr);
    if (n != num_classes) {
        h5u_free_strs(*names, n);
        *names = NULL;
        return h5u_err(e, file, "root attribute %s has %d names but num_classes is %d", attr, n,
                       num_classes);
    }
    return ERR_OK;
}

// d->prep: the file's /preprocessing group, or a record of what the file says; then the
// shape, bit depth, normalization and class names this loader uses replace what the group
// claims, so the record always describes the samples gather returns.
static int read_prep(hid_t f, Dataset *d, int has_norm, Err *e) {
    int rc = prep_h5_read(f, d->file, &d->prep, e);
    if (rc == H5U_MISSING)
        prep_init(&d->prep, d->shape, pixel_bit_depth(d->pixel));
    else if (rc)
        return ERR_INPUT;
    Preprocess *p = &d->prep;
    p->input = d->shape;
    p->bit_depth = pixel_bit_depth(d->pixel);
    p->nchan = has_norm ? d->nchan : 0;
    for (int c = 0; c < p->nchan; c++) p->mean[c] = d->mean[c], p->std[c] = d->std[c];
    char **names;
    if (read_class_names(f, d->file, d->num_classes, &names, e)) return ERR_INPUT;
    if (names) {
        prep_free(p);
        p->classes = names;
    } else if (p->classes && p->num_classes != d->num_classes) {
        return h5u_err(e, d->file, "/preprocessing attribute classes has %d names but "
                       "num_classes is %d", p->num_classes, d->num_classes);
    }
    p->num_classes = d->num_classes;
    return ERR_OK;
}

// Opens member name ("x" or "y") of the split group and describes it.
static hid_t open_member(hid_t g, const Dataset *d, const char *name, H5uInfo *info, Err *e) {
    if (!h5u_exists(g, name)) {
        h5u_err(e, d->file, "/%s/%s is missing", d->split, name);
        return H5I_INVALID_HID;
    }
    hid_t ds = H5Dopen2(g, name, H5P_DEFAULT);
    if (ds < 0 || h5u_dataset_info(ds, info) != H5U_OK) {
        h5u_err(e, d->file, "/%s/%s is not a readable dataset", d->split, name);
        h5u_close(&ds);
    }
    return ds;
}

// Checks x's rank and type and sets d's shape, pixel type and nchan.
static int check_x(Dataset *d, const H5uInfo *xi, Err *e) {
    char dims[128];
    h5u_dims_str(dims, sizeof dims, xi->rank, xi->dims);
    if (xi->rank != 2 && xi->rank != 4)
        return h5u_err(e, d->file, "/%s/x has shape %s; expected (N,D) or (N,C,H,W)", d->split, dims);
    int uint = xi->cls == H5T_INTEGER && xi->sign == H5T_SGN_NONE;
    if (uint && xi->size == 1)
        d->pixel = PIXEL_U8;
    else if (uint && xi->size == 2)
        d->pixel = PIXEL_U16;
    else if (xi->cls == H5T_FLOAT && xi->size == 4)
        d->pixel = PIXEL_F32;
    else
        return h5u_err(e, d->file, "/%s/x has type %s; expected uint8, uint16 or float32",
                       d->split, h5u_type_name(xi));
    d->shape.ndim = xi->rank - 1;
    size_t per = 1;
    for (int i = 1; i < xi->rank; i++) {
        if (xi->dims[i] < 1 || xi->dims[i] > INT_MAX || per > SIZE_MAX / 4 / xi->dims[i])
            return h5u_err(e, d->file, "/%s/x has shape %s, too large a sample", d->split, dims);
        d->shape.d[i - 1] = (int)xi->dims[i];
        per *= xi->dims[i];
    }
    d->nchan = xi->rank == 4 ? d->shape.d[0] : 1;
    if (d->nchan > DATASET_MAX_CHANNELS)
        return h5u_err(e, d->file, "/%s/x has %d channels; at most %d are supported", d->split,
                   d->nchan, DATASET_MAX_CHANNELS);
    return ERR_OK;
}

// Reads rows [first, first + n) of dataset ds (rank, dims as stored) into buf as mem_type.
static int read_rows(hid_t ds, hid_t mem_type, int rank, const hsize_t *dims, hsize_t first,
                     hsize_t n, void *buf) {
    hsize_t start[H5U_MAX_RANK] = {first}, count[H5U_MAX_RANK];
    for (int i = 0; i < rank; i++) count[i] = dims[i];
    count[0] = n;
    hid_t mspace = H5I_INVALID_HID, fspace = H5Dget_space(ds);
    int ok = fspace >= 0 &&
             H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL) >= 0 &&
             (mspace = H5Screate_simple(rank, count, NULL)) >= 0 &&
             H5Dread(ds, mem_type, mspace, fspace, H5P_DEFAULT, buf) >= 0;
    h5u_close(&mspace);
    h5u_close(&fspace);
    return ok ? 0 : -1;
}

// Labels in [0, num_classes) and finite pixels: what the file promised.
static int check_values(const Dataset *d, Err *e) {
    for (int64_t i = 0; d->y && i < d->nloaded; i++)
        if (d->y[i] < 0 || d->y[i] >= d->num_classes)
            return h5u_err(e, d->file, "/%s/y[%lld] is %d, outside [0, %d) (num_classes)", d->split,
                       (long long)(d->rows ? d->rows[i] : i), (int)d->y[i], d->num_classes);
    if (d->pixel == PIXEL_F32) {
        size_t per = shape_numel(d->shape), total = (size_t)d->nloaded * per;
        for (size_t j = 0; j < total; j++)
            if (!isfinite(d->x_f32[j]))
                return h5u_err(e, d->file, "/%s/x of sample %lld holds %g", d->split,
                               (long long)(d->rows ? d->rows[j / per] : (int64_t)(j / per)),
                               (double)d->x_f32[j]);
    }
    return ERR_OK;
}

// Reads the given ascending rows of dataset ds into buf (rows NULL: the first nrows), one
// hyperslab per run of consecutive rows (a union of thousands of hyperslabs is quadratic in
// HDF5 1.10).
static int read_row_runs(hid_t ds, hid_t mem_type, int rank, const hsize_t *dims,
                         const int64_t *rows, int64_t nrows, size_t row_bytes, void *buf) {
    if (!rows) return read_rows(ds, mem_type, rank, dims, 0, (hsize_t)nrows, buf);
    for (int64_t i = 0; i < nrows;) {
        int64_t j = i;
        while (j + 1 < nrows && rows[j + 1] == rows[j] + 1) j++;
        if (read_rows(ds, mem_type, rank, dims, (hsize_t)rows[i], (hsize_t)(j - i + 1),
                      (char *)buf + (size_t)i * row_bytes))
            return -1;
        i = j + 1;
    }
    return 0;
}

// Checks the optional /split/paths: one string per sample.
static int check_paths(hid_t g, Dataset *d, hsize_t n, Err *e) {
    if (!h5u_exists(g, "paths")) return ERR_OK;
    H5uInfo pi;
    hid_t ds = H5Dopen2(g, "paths", H5P_DEFAULT);
    int ok = ds >= 0 && h5u_dataset_info(ds, &pi) == H5U_OK;
    h5u_close(&ds);
    if (!ok) return h5u_err(e, d->file, "/%s/paths is not a readable dataset", d->split);
    if (pi.rank != 1 || pi.cls != H5T_STRING || pi.dims[0] != n) {
        char dims[128];
        h5u_dims_str(dims, sizeof dims, pi.rank, pi.dims);
        return h5u_err(e, d->file, "/%s/paths is %s %s; expected (%llu) strings, one per sample",
                       d->split, h5u_type_name(&pi), dims, (unsigned long long)n);
    }
    d->has_paths = 1;
    return ERR_OK;
}

// Checks /split/y against x: rank 1, integers, one per sample.
static int check_y(const Dataset *d, const H5uInfo *yi, const H5uInfo *xi, Err *e) {
    if (yi->rank != 1) {
        char dims[128];
        h5u_dims_str(dims, sizeof dims, yi->rank, yi->dims);
        return h5u_err(e, d->file, "/%s/y has shape %s; expected (N)", d->split, dims);
    }
    if (yi->cls != H5T_INTEGER)
        return h5u_err(e, d->file, "/%s/y has type %s; expected integer labels", d->split,
                       h5u_type_name(yi));
    if (yi->dims[0] != xi->dims[0])
        return h5u_err(e, d->file, "/%s/y has %llu samples but /%s/x has %llu", d->split,
                       (unsigned long long)yi->dims[0], d->split, (unsigned long long)xi->dims[0]);
    return ERR_OK;
}

// Checks that the file holds every element of /split/name (h5u_require_stored): a file whose writer
// never finished would otherwise train on fill values, and a damaged header that claims
// gigabytes would be allocated before HDF5 found the bytes missing.
static int check_stored(hid_t ds, const H5uInfo *info, const Dataset *d, const char *name,
                        Err *e) {
    char what[64];
    snprintf(what, sizeof what, "/%s/%s", d->split, name);
    return h5u_require_stored(ds, info, d->file, what, e);
}

// Opens and checks the split's members: x, and y when labelled (need_y, or present), the
// optional paths, and the file's normalization and preprocessing, which describe d.
static int open_split(hid_t *x, H5uInfo *xi, hid_t *y, H5uInfo *yi, Dataset *d, hid_t f,
                      hid_t g, int need_y, Err *e) {
    int has_norm = 0;
    if ((*x = open_member(g, d, "x", xi, e)) < 0 || check_x(d, xi, e) ||
        check_stored(*x, xi, d, "x", e))
        return ERR_INPUT;
    d->labelled = need_y || h5u_exists(g, "y");
    if (d->labelled && ((*y = open_member(g, d, "y", yi, e)) < 0 || check_y(d, yi, xi, e) ||
                        check_stored(*y, yi, d, "y", e)))
        return ERR_INPUT;
    if (xi->dims[0] == 0)
        return h5u_err(e, d->file, "/%s is empty: /%s/x has 0 samples", d->split, d->split);
    if (check_paths(g, d, xi->dims[0], e) || read_norm(f, d, &has_norm, e) ||
        read_prep(f, d, has_norm, e))
        return ERR_INPUT;
    return ERR_OK;
}

// rows, when given, must ascend within [0, d->n).
static int check_rows(const Dataset *d, const int64_t *rows, int64_t nrows, Err *e) {
    for (int64_t i = 0; i < nrows; i++)
        if (rows[i] < 0 || rows[i] >= d->n || (i && rows[i] <= rows[i - 1]))
            return err_set(e, ERR_RUNTIME, "%s: /%s: rows to load must ascend within [0, %lld)",
                           d->file, d->split, (long long)d->n);
    return ERR_OK;
}

// Loads the samples d holds, from x and (when labelled) y: rows (nrows of them, kept in
// d->rows), or with rows NULL the first d->n.
static int read_held(Dataset *d, hid_t x, const H5uInfo *xi, hid_t y, const H5uInfo *yi,
                     const int64_t *rows, int64_t nrows, Err *e) {
    size_t row_bytes = shape_numel(d->shape) * dataset_pixel_bytes(d);
    hsize_t held = rows ? (hsize_t)nrows : (hsize_t)d->n;
    d->nloaded = (int64_t)held;
    void *xb = malloc(held * row_bytes);
    if (d->pixel == PIXEL_U8) d->x_u8 = xb;
    else if (d->pixel == PIXEL_U16) d->x_u16 = xb;
    else d->x_f32 = xb;
    if (d->labelled) d->y = malloc(held * sizeof *d->y);
    if (rows && (d->rows = malloc(held * sizeof *d->rows)))
        memcpy(d->rows, rows, held * sizeof *d->rows);
    if (!xb || (d->labelled && !d->y) || (rows && !d->rows))
        return err_set(e, ERR_RUNTIME, "%s: out of memory loading /%s (%llu samples)", d->file,
                       d->split, (unsigned long long)held);
    hid_t xt = d->pixel == PIXEL_U8    ? H5T_NATIVE_UCHAR
               : d->pixel == PIXEL_U16 ? H5T_NATIVE_USHORT
                                       : H5T_NATIVE_FLOAT;
    if (read_row_runs(x, xt, xi->rank, xi->dims, rows, (int64_t)held, row_bytes, xb))
        return h5u_err(e, d->file, "cannot read /%s/x (damaged file?)", d->split);
    if (d->labelled &&
        read_row_runs(y, H5T_NATIVE_INT32, 1, yi->dims, rows, (int64_t)held, sizeof(int32_t), d->y))
        return h5u_err(e, d->file, "cannot read /%s/y (damaged file?)", d->split);
    return ERR_OK;
}

// The part of dataset_load that runs with the file and the split group open. need_y = 0
// lets the split lack y.
static int load_split(Dataset *d, hid_t f, hid_t g, int64_t limit, const int64_t *rows,
                      int64_t nrows, int need_y, Err *e) {
    H5uInfo xi, yi;
    hid_t x = H5I_INVALID_HID, y = H5I_INVALID_HID;
    int rc = open_split(&x, &xi, &y, &yi, d, f, g, need_y, e);
    if (!rc) {
        hsize_t n = xi.dims[0];
        if (limit > 0 && (hsize_t)limit < n) n = (hsize_t)limit;
        if (n > SIZE_MAX / 4 / shape_numel(d->shape))
            rc = h5u_err(e, d->file, "/%s/x is too large to load", d->split);
        else
            d->n = (int64_t)n;
    }
    if (!rc && rows) rc = check_rows(d, rows, nrows, e);
    if (!rc && (!rows || nrows > 0)) {  // rows but none of them: the description only
        rc = read_held(d, x, &xi, y, &yi, rows, nrows, e);
        if (!rc) rc = check_values(d, e);
    }
    h5u_close(&y);
    h5u_close(&x);
    return rc;
}

// dataset_load_rows, with labels optional when need_y is 0.
static int load_rows(Dataset *d, const char *file, const char *split, int64_t limit,
                     const int64_t *rows, int64_t nrows, int need_y, Err *e) {
    dataset_free(d);
    memset(d, 0, sizeof *d);
    if (strlen(file) >= sizeof d->file) return h5u_err(e, file, "path too long");
    if (!valid_split_name(split)) return h5u_err(e, file, "'%s' is not a split name", split);
    if (limit < 0) return h5u_err(e, file, "limit %lld is negative", (long long)limit);
    snprintf(d->file, sizeof d->file, "%s", file);
    snprintf(d->split, sizeof d->split, "%s", split);
    const char *why;
    hid_t f = h5u_open(file, &why), g = H5I_INVALID_HID;
    if (f < 0) return h5u_err(e, file, "cannot load /%s: %s", split, why);
    int rc = read_num_classes(f, file, &d->num_classes, e);
    if (rc) goto done;
    if (!h5u_is_group(f, split)) {
        rc = h5u_err(e, file, "has no /%s group", split);
        goto done;
    }
    if ((g = H5Gopen2(f, split, H5P_DEFAULT)) < 0) {
        rc = h5u_err(e, file, "cannot open /%s (damaged file?)", split);
        goto done;
    }
    rc = load_split(d, f, g, limit, rows, nrows, need_y, e);
done:
    h5u_close(&g);
    h5u_close(&f);
    if (rc) dataset_free(d);
    return rc;
}

int dataset_load(Dataset *d, const char *file, const char *split, int64_t limit, Err *e) {
    memset(d, 0, sizeof *d);
    return load_rows(d, file, split, limit, NULL, 0, 1, e);
}

int dataset_load_x(Dataset *d, const char *file, const char *split, Err *e) {
    memset(d, 0, sizeof *d);
    return load_rows(d, file, split, 0, NULL, 0, 0, e);
}

int dataset_load_rows(Dataset *d, const char *file, const char *split, int64_t limit,
                      const int64_t *rows, int64_t nrows, Err *e) {
    return load_rows(d, file, split, limit, rows, nrows, 1, e);
}

int dataset_has_split(const char *file, const char *split, Err *e) {
    const char *why;
    hid_t f = h5u_open(file, &why);
    if (f < 0) {
        h5u_err(e, file, "cannot look for /%s: %s", split, why);
        return -ERR_INPUT;
    }
    int has = valid_split_name(split) && h5u_is_group(f, split);
    H5Fclose(f);
    return has;
}

void dataset_free(Dataset *d) {
    free(d->x_u8);
    free(d->x_u16);
    free(d->x_f32);
    free(d->y);
    free(d->rows);
    prep_free(&d->prep);
    d->x_u8 = NULL;
    d->x_u16 = NULL;
    d->x_f32 = NULL;
    d->y = NULL;
    d->rows = NULL;
    d->n = d->nloaded = 0;
}

// Where split row r is held: r itself when everything is, else its place in d->rows.
static int64_t held_at(const Dataset *d, int64_t r) {
    if (!d->rows) return r;
    int64_t lo = 0, hi = d->nloaded - 1;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (d->rows[mid] < r) lo = mid + 1;
        else hi = mid;
    }
    return lo;  // the caller asked for a row d holds (the trainer loads exactly those)
}

void dataset_gather(const Dataset *d, const int64_t *idx, int n, float *x, int32_t *y) {
    const size_t per = shape_numel(d->shape);
    const int nchan = d->nchan > 0 ? d->nchan : 1;
    const size_t plane = per / (size_t)nchan;  // elements of one channel of one sample
    if (d->pixel == PIXEL_U8) {
        // 256 possible pixel values per channel: a table makes the step a lookup, and the
        // values are exactly torchvision's (x/255 - mean)/std in float32.
        float lut[nchan][256];
        for (int c = 0; c < nchan; c++)
            for (int v = 0; v < 256; v++) lut[c][v] = ((float)v / 255.0f - d->mean[c]) / d->std[c];
        for (int i = 0; i < n; i++) {
            const uint8_t *src = d->x_u8 + (size_t)held_at(d, idx[i]) * per;
            float *dst = x + (size_t)i * per;
            for (int c = 0; c < nchan; c++) {
                const float *t = lut[c];
                const uint8_t *s = src + (size_t)c * plane;
                float *o = dst + (size_t)c * plane;
                for (size_t j = 0; j < plane; j++) o[j] = t[s[j]];
            }
        }
    } else if (d->pixel == PIXEL_U16) {
        // the same float32 arithmetic as the uint8 table, computed (a table would be 256 KB
        // per channel)
        for (int i = 0; i < n; i++) {
            const uint16_t *src = d->x_u16 + (size_t)held_at(d, idx[i]) * per;
            float *dst = x + (size_t)i * per;
            for (int c = 0; c < nchan; c++) {
                const float m = d->mean[c], s = d->std[c];
                const uint16_t *in = src + (size_t)c * plane;
                float *o = dst + (size_t)c * plane;
                for (size_t j = 0; j < plane; j++) o[j] = ((float)in[j] / 65535.0f - m) / s;
            }
        }
    } else {
        int identity = 1;
        for (int c = 0; c < nchan; c++) identity &= d->mean[c] == 0.0f && d->std[c] == 1.0f;
        for (int i = 0; i < n; i++) {
            const float *src = d->x_f32 + (size_t)held_at(d, idx[i]) * per;
            float *dst = x + (size_t)i * per;
            if (identity) {
                memcpy(dst, src, per * sizeof *dst);
                continue;
            }
            for (int c = 0; c < nchan; c++) {
                const float m = d->mean[c], s = d->std[c];
                const float *in = src + (size_t)c * plane;
                float *o = dst + (size_t)c * plane;
                for (size_t j = 0; j < plane; j++) o[j] = (in[j] - m) / s;
            }
        }
    }
    if (y)
        for (int i = 0; i < n; i++) y[i] = d->y ? d->y[held_at(d, idx[i])] : -1;
}

int dataset_use_norm(Dataset *d, const Preprocess *p, Err *e) {
    if (p->nchan && p->nchan != d->nchan)
        return err_set(e, ERR_INPUT, "%s: /%s/x has %d channel%s but the normalization has %d",
                       d->file, d->split, d->nchan, d->nchan == 1 ? "" : "s", p->nchan);
    for (int c = 0; c < DATASET_MAX_CHANNELS; c++) {
        d->mean[c] = c < p->nchan ? p->mean[c] : 0.0f;
        d->std[c] = c < p->nchan ? p->std[c] : 1.0f;
        if (c < PREP_MAX_CHANNELS) d->prep.mean[c] = d->mean[c], d->prep.std[c] = d->std[c];
    }
    d->prep.nchan = p->nchan;
    return ERR_OK;
}

// ERR_RUNTIME "file: cannot write <what>" for failures of the writer's own output.
static int write_failed(Err *e, const char *file, const char *what) {
    return err_set(e, ERR_RUNTIME, "%s: cannot write %s", file, what);
}

int dataset_create(const char *file, const DatasetAttrs *a, Err *e) {
    if (a->num_classes < 2)
        return h5u_err(e, file, "num_classes is %d, must be at least 2", a->num_classes);
    if (a->nchan < 0 || a->nchan > DATASET_MAX_CHANNELS)
        return h5u_err(e, file, "%d channels for mean/std; at most %d", a->nchan,
                   DATASET_MAX_CHANNELS);
    for (int c = 0; c < a->nchan; c++)
        if (!isfinite(a->mean[c]) || !(a->std[c] > 0.0f) || !isfinite(a->std[c]))
            return h5u_err(e, file, "mean[%d] = %g, std[%d] = %g: std must be positive", c,
                       (double)a->mean[c], c, (double)a->std[c]);
    hid_t f = h5u_create_memory(file);
    if (f < 0) return err_set(e, ERR_RUNTIME, "%s: cannot create an HDF5 file in memory", file);
    int rc = ERR_OK;
    if (h5u_write_attr_i64(f, "num_classes", a->num_classes))
        rc = write_failed(e, file, "attribute num_classes");
    else if (a->class_names &&
             (h5u_write_attr_strs(f, "classes", a->class_names, a->num_classes) ||
              h5u_write_attr_strs(f, "class_names", a->class_names, a->num_classes)))
        rc = write_failed(e, file, "attribute classes");
    else if (a->nchan && (h5u_write_attr_f32s(f, "mean", a->mean, a->nchan) ||
                          h5u_write_attr_f32s(f, "std", a->std, a->nchan)))
        rc = write_failed(e, file, "attributes mean/std");
    else
        rc = h5u_save_atomic(f, file, e);
    H5Fclose(f);
    return rc;
}

// What dataset_write_split refuses to write, because dataset_load would refuse to read it.
static int check_split_data(const char *file, const char *split, const void *x, PixelType pixel,
                            const int32_t *y, int64_t n, Shape shape, int num_classes, Err *e) {
    if (!valid_split_name(split)) return h5u_err(e, file, "'%s' is not a split name", split);
    if (n <= 0) return h5u_err(e, file, "/%s would be empty (%lld samples)", split, (long long)n);
    if (shape.ndim != 1 && shape.ndim != 3)
        return h5u_err(e, file, "/%s/x: a sample must be (D) or (C,H,W), not %d-D", split, shape.ndim);
    for (int i = 0; i < shape.ndim; i++)
        if (shape.d[i] < 1) return h5u_err(e, file, "/%s/x: sample dimension %d is %d", split, i,
                                       shape.d[i]);
    for (int64_t i = 0; i < n; i++)
        if (y[i] < 0 || y[i] >= num_classes)
            return h5u_err(e, file, "/%s/y[%lld] is %d, outside [0, %d)", split, (long long)i,
                       (int)y[i], num_classes);
    if (pixel != PIXEL_U8 && pixel != PIXEL_U16 && pixel != PIXEL_F32)
        return h5u_err(e, file, "/%s/x: pixel type %d is not uint8, uint16 or float32", split,
                       (int)pixel);
    if (pixel == PIXEL_F32) {
        size_t total = (size_t)n * shape_numel(shape);
        for (size_t j = 0; j < total; j++)
            if (!isfinite(((const float *)x)[j]))
                return h5u_err(e, file, "/%s/x holds %g", split, (double)((const float *)x)[j]);
    }
    return ERR_OK;
}

int dataset_write_split(const char *file, const char *split, const void *x, PixelType pixel,
                        const int32_t *y, int64_t n, Shape shape, Err *e) {
    const char *why;
    hid_t f = h5u_open_memory(file, &why), g = H5I_INVALID_HID;
    if (f < 0) return err_set(e, ERR_RUNTIME, "%s: cannot open for writing: %s", file, why);
    int k = 0;
    int rc = read_num_classes(f, file, &k, e);
    if (!rc) rc = check_split_data(file, split, x, pixel, y, n, shape, k, e);
    if (rc) goto done;
    if (h5u_exists(f, split)) {
        rc = h5u_err(e, file, "already has /%s", split);
        goto done;
    }
    if ((g = h5u_group_create(f, split)) < 0) {
        rc = write_failed(e, file, split);
        goto done;
    }
    hsize_t dims[1 + SHAPE_MAX_DIMS] = {(hsize_t)n};
    for (int i = 0; i < shape.ndim; i++) dims[1 + i] = (hsize_t)shape.d[i];
    // Labels are stored as int64, the type PyTorch's cross-entropy wants.
    hid_t file_type = pixel == PIXEL_U8    ? H5T_STD_U8LE
                      : pixel == PIXEL_U16 ? H5T_STD_U16LE
                                           : H5T_IEEE_F32LE;
    hid_t mem_type = pixel == PIXEL_U8    ? H5T_NATIVE_UCHAR
                     : pixel == PIXEL_U16 ? H5T_NATIVE_USHORT
                                          : H5T_NATIVE_FLOAT;
    if (h5u_write_dataset(g, "x", file_type, mem_type, 1 + shape.ndim, dims, x))
        rc = err_set(e, ERR_RUNTIME, "%s: cannot write /%s/x", file, split);
    else if (h5u_write_dataset(g, "y", H5T_STD_I64LE, H5T_NATIVE_INT32, 1, dims, y))
        rc = err_set(e, ERR_RUNTIME, "%s: cannot write /%s/y", file, split);
    h5u_close(&g);
    if (!rc) rc = h5u_save_atomic(f, file, e);
done:
    h5u_close(&g);
    H5Fclose(f);
    return rc;
}

static const char *pixel_name(PixelType t) {
    return t == PIXEL_U8 ? "uint8" : t == PIXEL_U16 ? "uint16" : "float32";
}

// One line per split: shapes, types, how many samples each class has, and paths.
static void info_split(FILE *out, const Dataset *d) {
    char shape[128];
    hsize_t dims[1 + SHAPE_MAX_DIMS] = {(hsize_t)d->n};
    for (int i = 0; i < d->shape.ndim; i++) dims[1 + i] = (hsize_t)d->shape.d[i];
    h5u_dims_str(shape, sizeof shape, 1 + d->shape.ndim, dims);
    fprintf(out, "  %-5s x %s %s, ", d->split, shape, pixel_name(d->pixel));
    if (d->y) {
        fprintf(out, "y (%lld); per class:", (long long)d->n);
        int64_t *count = calloc((size_t)d->num_classes, sizeof *count);
        if (count) {
            for (int64_t i = 0; i < d->n; i++) count[d->y[i]]++;
            for (int k = 0; k < d->num_classes; k++) fprintf(out, " %lld", (long long)count[k]);
        }
        free(count);
    } else {
        fprintf(out, "no y (unlabelled)");
    }
    if (d->has_paths) fprintf(out, "; paths (%lld)", (long long)d->n);
    fprintf(out, "\n");
}

// The file's /preprocessing group as one line, or that it has none.
static int info_prep(FILE *out, hid_t f, const char *file, Err *e) {
    Preprocess p;
    int rc = prep_h5_read(f, file, &p, e);
    if (rc == H5U_MISSING) {
        fprintf(out, "  no /preprocessing group (made before regdist recorded it)\n");
        return ERR_OK;
    }
    if (rc) return ERR_INPUT;
    char shape[64] = "", norm[4 * 16 * PREP_MAX_CHANNELS];
    for (int i = 0; i < p.input.ndim; i++)
        snprintf(shape + strlen(shape), sizeof shape - strlen(shape), i ? ",%d" : "%d",
                 p.input.d[i]);
    prep_norm_str(norm, sizeof norm, &p);
    fprintf(out, "  preprocessing: source %s, input (%s), channels %s, %d-bit, resize %s, "
            "convert %s, normalization %s\n", p.source, shape, p.channel_order, p.bit_depth,
            p.resize, p.convert, norm);
    prep_free(&p);
    return ERR_OK;
}

// The root attributes: num_classes, class names, normalization and preprocessing.
static int info_root(FILE *out, const char *file, Err *e) {
    const char *why;
    hid_t f = h5u_open(file, &why);
    if (f < 0) return h5u_err(e, file, "cannot read: %s", why);
    int k = 0;
    char **names = NULL;
    int rc = read_num_classes(f, file, &k, e);
    if (!rc) rc = read_class_names(f, file, k, &names, e);
    if (!rc) {
        fprintf(out, "%s\n  num_classes %d", file, k);
        for (int i = 0; names && i < k; i++) fprintf(out, "%s%s", i ? ", " : ": ", names[i]);
        float mean[DATASET_MAX_CHANNELS], std[DATASET_MAX_CHANNELS];
        int nm = 0, ns = 0;
        if (h5u_read_attr_f32s(f, "mean", mean, DATASET_MAX_CHANNELS, &nm) == H5U_OK &&
            h5u_read_attr_f32s(f, "std", std, DATASET_MAX_CHANNELS, &ns) == H5U_OK && nm == ns) {
            fprintf(out, "\n  mean/std per channel:");
            for (int c = 0; c < nm; c++) fprintf(out, " %.4f/%.4f", mean[c], std[c]);
        } else {
            fprintf(out, "\n  no mean/std: pixels are used as x/255 (uint8), x/65535 (uint16) "
                    "or as stored");
        }
        fprintf(out, "\n");
        rc = info_prep(out, f, file, e);
    }
    h5u_free_strs(names, k);
    H5Fclose(f);
    return rc;
}

int dataset_info(FILE *out, const char *file, Err *e) {
    int rc = info_root(out, file, e);
    if (rc) return rc;
    static const char *splits[] = {"train", "val", "test"};
    int found = 0;
    for (int s = 0; s < 3; s++) {
        int has = dataset_has_split(file, splits[s], e);
        if (has < 0) return ERR_INPUT;
        if (!has) continue;
        Dataset d;
        if ((rc = dataset_load_x(&d, file, splits[s], e))) return rc;
        info_split(out, &d);
        dataset_free(&d);
        found++;
    }
    if (!found) return h5u_err(e, file, "has no /train, /val or /test group");
    return ERR_OK;
}
