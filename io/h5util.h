// h5util.h: small HDF5 helpers shared by io/: opening a file with a reason when it cannot be
// opened, closing any id, attributes of the few kinds regdist writes, and describing a
// dataset's rank, dimensions and type so readers can check them before reading.
// Readers return H5U_OK or a negative H5U_* code; callers turn that into an Err naming
// the file and the object, because only they know which object the user asked for.
#pragma once
#include <hdf5.h>
#include <stdint.h>

#include "core/err.h"

enum { H5U_OK = 0, H5U_MISSING = -1, H5U_BADTYPE = -2, H5U_FAIL = -3 };

#define H5U_MAX_RANK 8

// ERR_INPUT "file: <message>": how io/ reports what is wrong with a file it was given.
int h5u_err(Err *e, const char *file, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

// Turns off HDF5's automatic error printing: io/ reports errors through Err, never stderr.
void h5u_quiet(void);

// Opens an existing file read-only. On failure returns H5I_INVALID_HID and *why says why in
// a few words ("No such file or directory", "not an HDF5 file", "damaged or truncated HDF5
// file").
hid_t h5u_open(const char *path, const char **why);

// Files are written in memory (HDF5's core driver) and saved with h5u_save_atomic, which
// writes the bytes with plain POSIX calls: every OS error (disk full, quota, permission) is
// ours to report, a failed write cannot leave HDF5 holding a half-closed file (HDF5 1.10
// then crashes at exit), and the file at path is replaced whole or not at all.
// A new, empty file whose groups list their links in creation order, as h5py shows them.
hid_t h5u_create_memory(const char *name);
// An existing file, read into memory to be changed; *why as for h5u_open.
hid_t h5u_open_memory(const char *path, const char **why);
// Writes f's bytes to "<path>.tmp.<pid>", fsyncs, renames it over path and fsyncs the
// directory. ERR_OK, or ERR_RUNTIME "path: cannot write: <the OS's reason>" with the
// temporary removed.
int h5u_save_atomic(hid_t f, const char *path, Err *e);

// Creates a group that lists its links in creation order.
hid_t h5u_group_create(hid_t loc, const char *name);
// Closes any HDF5 id by its type and sets it to H5I_INVALID_HID; ignores invalid ids.
void h5u_close(hid_t *id);
// 1 if loc has a link called name (a plain name, no '/'), 0 if not.
int h5u_exists(hid_t loc, const char *name);
// 1 if loc has a group called name, 0 if not (or it is something else).
int h5u_is_group(hid_t loc, const char *name);

// Rank, dimensions and stored type of a dataset or attribute.
typedef struct {
    int rank;
    hsize_t dims[H5U_MAX_RANK];
    H5T_class_t cls;
    size_t size;    // bytes per element
    H5T_sign_t sign;
    int vlen_str;   // a variable-length string
} H5uInfo;
int h5u_dataset_info(hid_t dset, H5uInfo *info);
int h5u_attr_info(hid_t obj, const char *name, H5uInfo *info);  // H5U_MISSING if absent
// Whether the file holds every element of a dataset (described by info): contiguous and
// compact storage covering its bytes within the file, a chunked one with every chunk written.
// Virtual and external datasets are taken as whole. ERR_OK, or ERR_INPUT "file: <what> is not
// all in the file: 2 of its 4 chunks are stored (...)" (a write that never finished, a
// truncated file, a header that claims more than the file holds: HDF5 would read fill values,
// or fail); what names the dataset ("/train/x").
int h5u_require_stored(hid_t dset, const H5uInfo *info, const char *file, const char *what,
                       Err *e);
// "uint8", "float32", "int64", "string", ... for error messages (static).
const char *h5u_type_name(const H5uInfo *info);
// "(128,784)" into buf.
void h5u_dims_str(char *buf, size_t len, int rank, const hsize_t *dims);

// Writes a dataset; rank 0 is a scalar. file_type is what is stored, mem_type what buf holds.
int h5u_write_dataset(hid_t loc, const char *name, hid_t file_type, hid_t mem_type, int rank,
                      const hsize_t *dims, const void *buf);
// Reads a whole dataset, converting to mem_type.
int h5u_read_dataset(hid_t loc, const char *name, hid_t mem_type, void *buf);

// Attributes: scalar integers and doubles, a float vector, one string, a string vector.
int h5u_write_attr_i64(hid_t obj, const char *name, int64_t v);
int h5u_write_attr_f64(hid_t obj, const char *name, double v);
int h5u_write_attr_f32s(hid_t obj, const char *name, const float *v, int n);
int h5u_write_attr_str(hid_t obj, const char *name, const char *s);
int h5u_write_attr_strs(hid_t obj, const char *name, const char *const *s, int n);
// Readers check the stored class (integer, float, string) and rank before reading.
int h5u_read_attr_i64(hid_t obj, const char *name, int64_t *v);
int h5u_read_attr_f64(hid_t obj, const char *name, double *v);
// Up to cap floats; *n gets how many the attribute holds (more than cap is H5U_BADTYPE).
int h5u_read_attr_f32s(hid_t obj, const char *name, float *v, int cap, int *n);
// *s is malloc'd (caller frees).
int h5u_read_attr_str(hid_t obj, const char *name, char **s);
// *s is a malloc'd array of *n malloc'd strings (h5u_free_strs).
int h5u_read_attr_strs(hid_t obj, const char *name, char ***s, int *n);
void h5u_free_strs(char **s, int n);
