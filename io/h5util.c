// h5util.c: small HDF5 helpers shared by io/ (see h5util.h).
#include "h5util.h"
#include "h5version.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int h5u_err(Err *e, const char *file, const char *fmt, ...) {
    char msg[ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return err_set(e, ERR_INPUT, "%s: %s", file, msg);
}

void h5u_quiet(void) {
    static _Thread_local int done;  // thread-safe HDF5 keeps an error stack per thread
    if (!done) {
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
        done = 1;
    }
}

// Opens path with access properties fapl; see h5u_open.
static hid_t open_with(const char *path, unsigned flags, hid_t fapl, const char **why) {
    h5u_quiet();
    // Ask the OS first: its reason (no such file, permission) is the one a user can act on.
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        *why = strerror(errno);
        return H5I_INVALID_HID;
    }
    struct stat st;
    int is_dir = fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
    close(fd);
    if (is_dir) {
        *why = "is a directory";
        return H5I_INVALID_HID;
    }
    if (H5Fis_hdf5(path) <= 0) {
        *why = "not an HDF5 file";
        return H5I_INVALID_HID;
    }
    hid_t f = H5Fopen(path, flags, fapl);
    if (f < 0) *why = "damaged or truncated HDF5 file";
    return f;
}

hid_t h5u_open(const char *path, const char **why) {
    return open_with(path, H5F_ACC_RDONLY, H5P_DEFAULT, why);
}

// Access properties of a file held in memory and never written back by HDF5.
static hid_t memory_fapl(void) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl >= 0 && H5Pset_fapl_core(fapl, 1 << 20, 0) < 0) h5u_close(&fapl);
    return fapl;
}

hid_t h5u_create_memory(const char *name) {
    h5u_quiet();
    hid_t f = H5I_INVALID_HID, fapl = memory_fapl(), fcpl = H5Pcreate(H5P_FILE_CREATE);
    if (fapl >= 0 && fcpl >= 0 &&
        H5Pset_link_creation_order(fcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED) >= 0)
        f = H5Fcreate(name, H5F_ACC_TRUNC, fcpl, fapl);
    h5u_close(&fcpl);
    h5u_close(&fapl);
    return f;
}

hid_t h5u_open_memory(const char *path, const char **why) {
    hid_t fapl = memory_fapl();
    if (fapl < 0) {
        *why = "out of memory";
        return H5I_INVALID_HID;
    }
    hid_t f = open_with(path, H5F_ACC_RDWR, fapl, why);
    H5Pclose(fapl);
    return f;
}

// The complete bytes of file f into *buf (malloc'd), *len.
static int file_image(hid_t f, void **buf, size_t *len) {
    *buf = NULL;
    if (H5Fflush(f, H5F_SCOPE_GLOBAL) < 0) return H5U_FAIL;
    ssize_t n = H5Fget_file_image(f, NULL, 0);
    if (n <= 0 || !(*buf = malloc((size_t)n))) return H5U_FAIL;
    if (H5Fget_file_image(f, *buf, (size_t)n) != n) {
        free(*buf);
        *buf = NULL;
        return H5U_FAIL;
    }
    *len = (size_t)n;
    return H5U_OK;
}

// fsync of the directory holding path, so a rename in it is on disk; 0 or errno.
static int fsync_parent(const char *path) {
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return errno;
    int err = fsync(fd) && errno != EINVAL ? errno : 0;  // some file systems cannot
    close(fd);
    return err;
}

// The body of h5u_save_atomic: 0, errno, or -1 when HDF5 cannot produce the bytes.
static int save_atomic(hid_t f, const char *path) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof tmp)
        return ENAMETOOLONG;
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return EISDIR;
    void *buf;
    size_t len;
    if (file_image(f, &buf, &len)) return -1;
    int err = 0, fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) err = errno;
    for (size_t done = 0; fd >= 0 && done < len && !err;) {
        ssize_t k = write(fd, (const char *)buf + done, len - done);
        if (k >= 0)
            done += (size_t)k;
        else if (errno != EINTR)
            err = errno;
    }
    free(buf);
    if (fd >= 0) {
        if (!err && fsync(fd)) err = errno;
        if (close(fd) && !err) err = errno;
        if (!err && rename(tmp, path)) err = errno;
        if (err) unlink(tmp);
    }
    return err ? err : fsync_parent(path);
}

int h5u_save_atomic(hid_t f, const char *path, Err *e) {
    int err = save_atomic(f, path);
    if (err < 0)
        return err_set(e, ERR_RUNTIME, "%s: cannot write: HDF5 cannot produce the file's bytes "
                       "(out of memory?)", path);
    if (err) return err_set(e, ERR_RUNTIME, "%s: cannot write: %s", path, strerror(err));
    return ERR_OK;
}

hid_t h5u_group_create(hid_t loc, const char *name) {
    hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE);
    if (gcpl < 0) return H5I_INVALID_HID;
    hid_t g = H5I_INVALID_HID;
    // no modification times: the same content gives the same bytes
    if (H5Pset_link_creation_order(gcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED) >= 0 &&
        H5Pset_obj_track_times(gcpl, 0) >= 0)
        g = H5Gcreate2(loc, name, H5P_DEFAULT, gcpl, H5P_DEFAULT);
    H5Pclose(gcpl);
    return g;
}

void h5u_close(hid_t *id) {
    if (*id < 0 || H5Iis_valid(*id) <= 0) {
        *id = H5I_INVALID_HID;
        return;
    }
    switch (H5Iget_type(*id)) {
    case H5I_FILE: H5Fclose(*id); break;
    case H5I_GROUP: H5Gclose(*id); break;
    case H5I_DATASET: H5Dclose(*id); break;
    case H5I_DATASPACE: H5Sclose(*id); break;
    case H5I_DATATYPE: H5Tclose(*id); break;
    case H5I_ATTR: H5Aclose(*id); break;
    case H5I_GENPROP_LST: H5Pclose(*id); break;
    default: break;
    }
    *id = H5I_INVALID_HID;
}

int h5u_exists(hid_t loc, const char *name) {
    if (!*name || strchr(name, '/')) return 0;
    return H5Lexists(loc, name, H5P_DEFAULT) > 0;
}

int h5u_is_group(hid_t loc, const char *name) {
    if (!h5u_exists(loc, name)) return 0;
    hid_t o = H5Oopen(loc, name, H5P_DEFAULT);
    if (o < 0) return 0;
    int is = H5Iget_type(o) == H5I_GROUP;
    H5Oclose(o);
    return is;
}

static int describe(hid_t space, hid_t type, H5uInfo *info) {
    memset(info, 0, sizeof *info);
    int rank = H5Sget_simple_extent_ndims(space);
    if (rank < 0 || rank > H5U_MAX_RANK) return H5U_FAIL;
    info->rank = rank;
    if (rank > 0 && H5Sget_simple_extent_dims(space, info->dims, NULL) < 0) return H5U_FAIL;
    info->cls = H5Tget_class(type);
    info->size = H5Tget_size(type);
    if (info->cls == H5T_NO_CLASS || info->size == 0) return H5U_FAIL;
    if (info->cls == H5T_INTEGER || info->cls == H5T_FLOAT) {
        // A damaged header can claim more significant bits than an element holds (65 of 64):
        // HDF5 then converts bits it never read, a different value on each read.
        size_t prec = H5Tget_precision(type);
        int off = H5Tget_offset(type);
        if (prec == 0 || off < 0 || prec + (size_t)off > 8 * info->size) return H5U_BADTYPE;
    }
    info->sign = info->cls == H5T_INTEGER ? H5Tget_sign(type) : H5T_SGN_ERROR;
    info->vlen_str = info->cls == H5T_STRING && H5Tis_variable_str(type) > 0;
    return H5U_OK;
}

int h5u_dataset_info(hid_t dset, H5uInfo *info) {
    hid_t space = H5Dget_space(dset), type = H5Dget_type(dset);
    int rc = space >= 0 && type >= 0 ? describe(space, type, info) : H5U_FAIL;
    h5u_close(&type);
    h5u_close(&space);
    return rc;
}

// a * b, or HSIZE_UNDEF when it overflows.
static hsize_t mul_sat(hsize_t a, hsize_t b) {
    return a && b > HSIZE_UNDEF / a ? HSIZE_UNDEF : a * b;
}

// Bytes of a contiguous or compact dataset that lie inside the file: its storage size,
// clipped at the end of the file (a damaged header can claim storage past it).
static hsize_t bytes_in_file(hid_t dset) {
    hsize_t have = H5Dget_storage_size(dset);
    haddr_t at = H5Dget_offset(dset);  // HADDR_UNDEF when compact or never written
    hid_t f = H5Iget_file_id(dset);
    hsize_t size = 0;
    if (at != HADDR_UNDEF && f >= 0 && H5Fget_filesize(f, &size) >= 0)
        have = at >= size ? 0 : have < size - at ? have : size - at;
    h5u_close(&f);
    return have;
}

// *have of *need bytes (contiguous and compact layouts) or chunks (*chunks set) of the
// dataset are stored: H5U_OK when all, H5U_MISSING when not, H5U_FAIL when HDF5 cannot say.
static int stored(hid_t dset, const H5uInfo *info, hsize_t *have, hsize_t *need, int *chunks) {
    hid_t dcpl = H5Dget_create_plist(dset), space = H5I_INVALID_HID;
    if (dcpl < 0) return H5U_FAIL;
    H5D_layout_t layout = H5Pget_layout(dcpl);
    int rc = H5U_OK, ext = H5Pget_external_count(dcpl);
    *chunks = layout == H5D_CHUNKED;
    *have = *need = 0;
    if (layout == H5D_CHUNKED) {
        hsize_t cdims[H5U_MAX_RANK];
        *need = 1;
        if (H5Pget_chunk(dcpl, info->rank, cdims) != info->rank) rc = H5U_FAIL;
        for (int i = 0; !rc && i < info->rank; i++) {
            if (!cdims[i]) rc = H5U_FAIL;
            else *need = mul_sat(*need, info->dims[i] / cdims[i] + !!(info->dims[i] % cdims[i]));
        }
        if (!rc && ((space = H5Dget_space(dset)) < 0 || H5Dget_num_chunks(dset, space, have) < 0))
            rc = H5U_FAIL;
    } else if ((layout == H5D_CONTIGUOUS && ext == 0) || layout == H5D_COMPACT) {
        *need = info->size;
        for (int i = 0; i < info->rank; i++) *need = mul_sat(*need, info->dims[i]);
        *have = bytes_in_file(dset);
    } else if (layout != H5D_VIRTUAL && layout != H5D_CONTIGUOUS) {
        rc = H5U_FAIL;
    }
    h5u_close(&space);
    h5u_close(&dcpl);
    return rc ? rc : *have < *need ? H5U_MISSING : H5U_OK;
}

int h5u_require_stored(hid_t dset, const H5uInfo *info, const char *file, const char *what,
                       Err *e) {
    hsize_t have, need;
    int chunks, rc = stored(dset, info, &have, &need, &chunks);
    if (rc == H5U_FAIL)
        return h5u_err(e, file, "%s: cannot tell how much of it is stored (damaged file?)", what);
    if (rc == H5U_MISSING)
        return h5u_err(e, file, "%s is not all in the file: %llu of its %llu %s are stored (a "
                       "write that never finished, or a damaged file)", what,
                       (unsigned long long)have, (unsigned long long)need,
                       chunks ? "chunks" : "bytes");
    return ERR_OK;
}

static int attr_describe(hid_t attr, H5uInfo *info) {
    hid_t space = H5Aget_space(attr), type = H5Aget_type(attr);
    int rc = space >= 0 && type >= 0 ? describe(space, type, info) : H5U_FAIL;
    h5u_close(&type);
    h5u_close(&space);
    return rc;
}

// Opens attribute name of obj and describes it; negative H5U_* code if it cannot.
static hid_t attr_open(hid_t obj, const char *name, H5uInfo *info) {
    htri_t ex = H5Aexists(obj, name);
    if (ex < 0) return H5U_FAIL;
    if (ex == 0) return H5U_MISSING;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) return H5U_FAIL;
    int rc = attr_describe(a, info);
    if (rc != H5U_OK) {
        H5Aclose(a);
        return rc;
    }
    return a;
}

int h5u_attr_info(hid_t obj, const char *name, H5uInfo *info) {
    hid_t a = attr_open(obj, name, info);
    if (a < 0) return (int)a;
    H5Aclose(a);
    return H5U_OK;
}

static hsize_t info_numel(const H5uInfo *info) {
    hsize_t n = 1;
    for (int i = 0; i < info->rank; i++) n *= info->dims[i];
    return n;
}

const char *h5u_type_name(const H5uInfo *info) {
    static const char *ints[2][4] = {{"uint8", "uint16", "uint32", "uint64"},
                                     {"int8", "int16", "int32", "int64"}};
    switch (info->cls) {
    case H5T_INTEGER: {
        int k = info->size == 1 ? 0 : info->size == 2 ? 1 : info->size == 4 ? 2 : 3;
        return ints[info->sign != H5T_SGN_NONE][k];
    }
    case H5T_FLOAT:
        return info->size == 2 ? "float16" : info->size == 4 ? "float32"
             : info->size == 8 ? "float64" : "float";
    case H5T_STRING: return "string";
    case H5T_COMPOUND: return "compound";
    case H5T_ENUM: return "enum";
    case H5T_ARRAY: return "array";
    case H5T_VLEN: return "vlen";
    default: return "unsupported type";
    }
}

void h5u_dims_str(char *buf, size_t len, int rank, const hsize_t *dims) {
    size_t k = (size_t)snprintf(buf, len, "(");
    for (int i = 0; i < rank && k < len; i++)
        k += (size_t)snprintf(buf + k, len - k, i ? ",%llu" : "%llu", (unsigned long long)dims[i]);
    if (k < len) snprintf(buf + k, len - k, ")");
}

int h5u_write_dataset(hid_t loc, const char *name, hid_t file_type, hid_t mem_type, int rank,
                      const hsize_t *dims, const void *buf) {
    int rc = H5U_FAIL;
    hid_t d = H5I_INVALID_HID, dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hid_t space = rank == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(rank, dims, NULL);
    // no modification times: the same content gives the same bytes
    if (space < 0 || dcpl < 0 || H5Pset_obj_track_times(dcpl, 0) < 0) goto done;
    d = H5Dcreate2(loc, name, file_type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (d < 0) goto done;
    if (H5Dwrite(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) goto done;
    rc = H5U_OK;
done:
    h5u_close(&d);
    h5u_close(&dcpl);
    h5u_close(&space);
    return rc;
}

int h5u_read_dataset(hid_t loc, const char *name, hid_t mem_type, void *buf) {
    hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
    if (d < 0) return H5U_FAIL;
    int rc = H5Dread(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0 ? H5U_FAIL : H5U_OK;
    H5Dclose(d);
    return rc;
}

// Writes (replacing) attribute name: n elements, or a scalar when n is 0.
static int write_attr(hid_t obj, const char *name, hid_t file_type, hid_t mem_type, int n,
                      const void *buf) {
    int rc = H5U_FAIL;
    hid_t a = H5I_INVALID_HID;
    hsize_t dim = (hsize_t)n;
    hid_t space = n == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &dim, NULL);
    if (space < 0) goto done;
    if (H5Aexists(obj, name) > 0 && H5Adelete(obj, name) < 0) goto done;
    a = H5Acreate2(obj, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0) goto done;
    if (H5Awrite(a, mem_type, buf) < 0) goto done;
    rc = H5U_OK;
done:
    h5u_close(&a);
    h5u_close(&space);
    return rc;
}

int h5u_write_attr_i64(hid_t obj, const char *name, int64_t v) {
    return write_attr(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, 0, &v);
}

int h5u_write_attr_f64(hid_t obj, const char *name, double v) {
    return write_attr(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 0, &v);
}

int h5u_write_attr_f32s(hid_t obj, const char *name, const float *v, int n) {
    if (n < 1) return H5U_BADTYPE;
    return write_attr(obj, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, n, v);
}

// Variable-length UTF-8 strings: what h5py writes for str and reads back as str.
static hid_t vlen_str_type(void) {
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0) return t;
    if (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
        H5Tclose(t);
        return H5I_INVALID_HID;
    }
    return t;
}

static int write_attr_strings(hid_t obj, const char *name, const char *const *s, int n) {
    hid_t t = vlen_str_type();
    if (t < 0) return H5U_FAIL;
    int rc = write_attr(obj, name, t, t, n, s);
    H5Tclose(t);
    return rc;
}

int h5u_write_attr_str(hid_t obj, const char *name, const char *s) {
    const char *one[1] = {s ? s : ""};
    return write_attr_strings(obj, name, one, 0);
}

int h5u_write_attr_strs(hid_t obj, const char *name, const char *const *s, int n) {
    if (n < 1) return H5U_BADTYPE;
    return write_attr_strings(obj, name, s, n);
}

// Reads a one-element numeric attribute of an allowed class into mem_type.
static int read_attr_scalar(hid_t obj, const char *name, int allow_float, hid_t mem_type,
                            void *v) {
    H5uInfo info;
    hid_t a = attr_open(obj, name, &info);
    if (a < 0) return (int)a;
    int ok_class = info.cls == H5T_INTEGER || (allow_float && info.cls == H5T_FLOAT);
    int rc = H5U_BADTYPE;
    if (ok_class && info_numel(&info) == 1 && info.rank <= 1)
        rc = H5Aread(a, mem_type, v) < 0 ? H5U_FAIL : H5U_OK;
    H5Aclose(a);
    return rc;
}

int h5u_read_attr_i64(hid_t obj, const char *name, int64_t *v) {
    return read_attr_scalar(obj, name, 0, H5T_NATIVE_INT64, v);
}

int h5u_read_attr_f64(hid_t obj, const char *name, double *v) {
    return read_attr_scalar(obj, name, 1, H5T_NATIVE_DOUBLE, v);
}

int h5u_read_attr_f32s(hid_t obj, const char *name, float *v, int cap, int *n) {
    H5uInfo info;
    *n = 0;
    hid_t a = attr_open(obj, name, &info);
    if (a < 0) return (int)a;
    int rc = H5U_BADTYPE;
    hsize_t k = info_numel(&info);
    if ((info.cls == H5T_INTEGER || info.cls == H5T_FLOAT) && info.rank <= 1 && k <= 1u << 20) {
        *n = (int)k;
        if (k <= (hsize_t)cap) rc = H5Aread(a, H5T_NATIVE_FLOAT, v) < 0 ? H5U_FAIL : H5U_OK;
    }
    H5Aclose(a);
    return rc;
}

// Reads n strings (vlen or fixed-size) of attribute a into malloc'd copies.
static int read_strings(hid_t a, const H5uInfo *info, char **out, int n) {
    int rc = H5U_FAIL;
    hid_t mt = H5I_INVALID_HID;
    if (info->vlen_str) {
        char **tmp = calloc((size_t)n, sizeof *tmp);
        mt = vlen_str_type();
        if (tmp && mt >= 0 && H5Aread(a, mt, tmp) >= 0) {
            rc = H5U_OK;
            for (int i = 0; i < n; i++) {
                out[i] = strdup(tmp[i] ? tmp[i] : "");
                if (!out[i]) rc = H5U_FAIL;
                H5free_memory(tmp[i]);
            }
        }
        free(tmp);
    } else {
        size_t w = info->size + 1;
        char *buf = calloc((size_t)n, w);
        mt = H5Tcopy(H5T_C_S1);
        if (buf && mt >= 0 && H5Tset_size(mt, w) >= 0 && H5Tset_strpad(mt, H5T_STR_NULLTERM) >= 0 &&
            H5Aread(a, mt, buf) >= 0) {
            rc = H5U_OK;
            for (int i = 0; i < n; i++)
                if (!(out[i] = strdup(buf + (size_t)i * w))) rc = H5U_FAIL;
        }
        free(buf);
    }
    h5u_close(&mt);
    return rc;
}

int h5u_read_attr_strs(hid_t obj, const char *name, char ***s, int *n) {
    H5uInfo info;
    *s = NULL;
    *n = 0;
    hid_t a = attr_open(obj, name, &info);
    if (a < 0) return (int)a;
    int rc = H5U_BADTYPE;
    hsize_t k = info_numel(&info);
    if (info.cls == H5T_STRING && info.rank <= 1 && k >= 1 && k <= 1u << 20) {
        char **out = calloc((size_t)k, sizeof *out);
        rc = out ? read_strings(a, &info, out, (int)k) : H5U_FAIL;
        if (rc == H5U_OK) {
            *s = out;
            *n = (int)k;
        } else {
            h5u_free_strs(out, (int)k);
        }
    }
    H5Aclose(a);
    return rc;
}

int h5u_read_attr_str(hid_t obj, const char *name, char **s) {
    char **all;
    int n;
    *s = NULL;
    int rc = h5u_read_attr_strs(obj, name, &all, &n);
    if (rc != H5U_OK) return rc;
    if (n != 1) {
        h5u_free_strs(all, n);
        return H5U_BADTYPE;
    }
    *s = all[0];
    free(all);
    return H5U_OK;
}

void h5u_free_strs(char **s, int n) {
    if (!s) return;
    for (int i = 0; i < n; i++) free(s[i]);
    free(s);
}

void h5u_library_version(char *buf, size_t len) {
    unsigned major = 0, minor = 0, release = 0;
    if (H5get_libversion(&major, &minor, &release) < 0) snprintf(buf, len, "HDF5 (unknown)");
    else snprintf(buf, len, "HDF5 %u.%u.%u", major, minor, release);
}
