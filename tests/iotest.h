// iotest.h: helpers shared by the io/ tests: HDF5 for inspecting files, checks that no HDF5
// object stays open and no temporary file is left, loading a split or failing, and a full
// disk played by a file-size limit. Include after <cmocka.h>.
#pragma once
#include <dirent.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>

#if __has_include(<hdf5.h>)
#include <hdf5.h>
#else
#include <hdf5/serial/hdf5.h>  // Debian's serial HDF5, when CMake does not pass its include dir
#endif

#include "io/dataset.h"

// No HDF5 object may stay open after any io/ call, failed or not.
static inline void assert_no_open_hdf5(void) {
    assert_int_equal(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL), 0);
}

// An atomic write must not leave "*.tmp.*" files in dir, failed or not.
static inline void assert_no_temp_files(const char *dir) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    for (struct dirent *ent; (ent = readdir(d));)
        if (strstr(ent->d_name, ".tmp.")) fail_msg("temporary file left behind: %s", ent->d_name);
    closedir(d);
}

static inline Dataset load_or_fail(const char *path, const char *split) {
    Dataset d;
    Err e = {0};
    if (dataset_load(&d, path, split, 0, &e)) fail_msg("%s", e.msg);
    return d;
}

// d must hold n uint8 samples of the given shape, labelled with num_classes classes.
static inline void assert_u8_split(const Dataset *d, int64_t n, int num_classes, Shape shape) {
    assert_int_equal(d->n, n);
    assert_int_equal(d->num_classes, num_classes);
    assert_int_equal(d->pixel, PIXEL_U8);
    assert_int_equal(d->shape.ndim, shape.ndim);
    for (int i = 0; i < shape.ndim; i++) assert_int_equal(d->shape.d[i], shape.d[i]);
}

// Between disk_full_begin and disk_full_end, writes that would make a file longer than
// limit bytes fail with EFBIG ("File too large") instead of raising SIGXFSZ: a full disk
// that root cannot bypass.
typedef struct {
    struct rlimit old;
    void (*prev)(int);
} DiskFull;

static inline void disk_full_begin(DiskFull *d, size_t limit) {
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &d->old), 0);
    struct rlimit small = d->old;
    small.rlim_cur = (rlim_t)limit;
    d->prev = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
}

static inline void disk_full_end(DiskFull *d) {
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &d->old), 0);
    signal(SIGXFSZ, d->prev);
}
