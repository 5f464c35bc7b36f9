// predictions.c: the files `regdist predict` writes (predictions.h): HDF5 for a dataset's
// split, CSV for image files.
#include "predictions.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "h5util.h"

struct PredWriter {
    char path[1024], tmp[1100];
    hid_t file, mean, std, entropy, pred;
    int k;
};

static hid_t create(hid_t f, const char *name, hid_t type, int rank, hsize_t n, hsize_t k) {
    hsize_t dims[2] = {n, k};
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t d = space < 0 ? H5I_INVALID_HID
                        : H5Dcreate2(f, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    h5u_close(&space);
    return d;
}

PredWriter *pred_open(const char *path, int64_t n, int k, int mc_samples, const char *checkpoint,
                      const char *data, const char *split, Err *e) {
    h5u_quiet();
    PredWriter *w = calloc(1, sizeof *w);
    if (!w) {
        err_set(e, ERR_RUNTIME, "out of memory");
        return NULL;
    }
    w->k = k;
    snprintf(w->path, sizeof w->path, "%s", path);
    snprintf(w->tmp, sizeof w->tmp, "%s.tmp.%d", path, (int)getpid());
    errno = 0;
    w->file = H5Fcreate(w->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (w->file < 0) {
        err_set(e, ERR_RUNTIME, "%s: cannot create: %s", path,
                errno ? strerror(errno) : "HDF5 refused");
        free(w);
        return NULL;
    }
    w->mean = create(w->file, "probs_mean", H5T_IEEE_F32LE, 2, (hsize_t)n, (hsize_t)k);
    w->std = create(w->file, "probs_std", H5T_IEEE_F32LE, 2, (hsize_t)n, (hsize_t)k);
    w->entropy = create(w->file, "entropy", H5T_IEEE_F32LE, 1, (hsize_t)n, 0);
    w->pred = create(w->file, "pred", H5T_STD_I64LE, 1, (hsize_t)n, 0);
    if (w->mean < 0 || w->std < 0 || w->entropy < 0 || w->pred < 0 ||
        h5u_write_attr_i64(w->file, "mc_samples", mc_samples) ||
        h5u_write_attr_str(w->file, "checkpoint", checkpoint) ||
        h5u_write_attr_str(w->file, "data", data) || h5u_write_attr_str(w->file, "split", split)) {
        err_set(e, ERR_RUNTIME, "%s: cannot create the prediction datasets", path);
        pred_close(w, 0, NULL);
        return NULL;
    }
    return w;
}

static int write_rows(hid_t d, hid_t mem_type, int rank, int64_t start, int n, int k,
                      const void *buf) {
    hsize_t off[2] = {(hsize_t)start, 0}, cnt[2] = {(hsize_t)n, (hsize_t)k};
    hid_t fspace = H5Dget_space(d);
    hid_t mspace = H5Screate_simple(rank, cnt, NULL);
    int rc = fspace < 0 || mspace < 0 ||
             H5Sselect_hyperslab(fspace, H5S_SELECT_SET, off, NULL, cnt, NULL) < 0 ||
             H5Dwrite(d, mem_type, mspace, fspace, H5P_DEFAULT, buf) < 0;
    h5u_close(&mspace);
    h5u_close(&fspace);
    return rc;
}

int pred_write(PredWriter *w, int64_t start, int n, const float *mean, const float *std,
               const float *entropy, const int64_t *pred, Err *e) {
    if (n == 0) return ERR_OK;
    errno = 0;
    if (write_rows(w->mean, H5T_NATIVE_FLOAT, 2, start, n, w->k, mean) ||
        write_rows(w->std, H5T_NATIVE_FLOAT, 2, start, n, w->k, std) ||
        write_rows(w->entropy, H5T_NATIVE_FLOAT, 1, start, n, 0, entropy) ||
        write_rows(w->pred, H5T_NATIVE_INT64, 1, start, n, 0, pred))
        return err_set(e, ERR_RUNTIME, "%s: cannot write: %s", w->path,
                       errno ? strerror(errno) : "HDF5 write failed");
    return ERR_OK;
}

int pred_copy_paths(PredWriter *w, const char *data, const char *split, Err *e) {
    const char *why;
    hid_t f = h5u_open(data, &why);
    if (f < 0) return h5u_err(e, data, "cannot read /%s/paths: %s", split, why);
    char src[64];
    snprintf(src, sizeof src, "%s/paths", split);
    int rc = H5Ocopy(f, src, w->file, "paths", H5P_DEFAULT, H5P_DEFAULT) < 0
                 ? err_set(e, ERR_RUNTIME, "%s: cannot copy /%s/paths of %s", w->path, split, data)
                 : ERR_OK;
    H5Fclose(f);
    return rc;
}

// The end of every writer here: the finished temporary renamed over path, or removed when the
// write failed (commit 0). Returns rc, or the rename's failure.
static int commit_tmp(const char *tmp, const char *path, int commit, int rc, Err *e) {
    if (commit && rename(tmp, path) != 0) {
        rc = err_set(e, ERR_RUNTIME, "%s: cannot write: %s", path, strerror(errno));
        commit = 0;
    }
    if (!commit) unlink(tmp);
    return rc;
}

int pred_close(PredWriter *w, int commit, Err *e) {
    h5u_close(&w->mean);
    h5u_close(&w->std);
    h5u_close(&w->entropy);
    h5u_close(&w->pred);
    int rc = ERR_OK;
    errno = 0;
    if (w->file >= 0 && H5Fclose(w->file) < 0) {
        rc = err_set(e, ERR_RUNTIME, "%s: cannot write: %s", w->path,
                     errno ? strerror(errno) : "HDF5 close failed");
        commit = 0;
    }
    rc = commit_tmp(w->tmp, w->path, commit, rc, e);
    free(w);
    return rc;
}

struct PredCsv {
    char path[1024], tmp[1100];
    FILE *f;
    int mc;
};

PredCsv *pred_csv_open(const char *path, int mc_samples, Err *e) {
    PredCsv *w = calloc(1, sizeof *w);
    if (!w) {
        err_set(e, ERR_RUNTIME, "out of memory");
        return NULL;
    }
    w->mc = mc_samples > 0;
    snprintf(w->path, sizeof w->path, "%s", path);
    snprintf(w->tmp, sizeof w->tmp, "%s.tmp.%d", path, (int)getpid());
    if (!(w->f = fopen(w->tmp, "w"))) {
        err_set(e, ERR_RUNTIME, "%s: cannot create: %s", path, strerror(errno));
        free(w);
        return NULL;
    }
    fputs(w->mc ? "path,class,probability,mc_mean_probability,mc_std,entropy\n"
                : "path,class,probability\n",
          w->f);
    return w;
}

// A field as RFC 4180 has it: quoted (quotes doubled) when it holds a comma, quote or newline.
static void csv_field(FILE *f, const char *s) {
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

int pred_csv_row(PredCsv *w, const char *path, const char *cls, float probability,
                 const float *mc, Err *e) {
    csv_field(w->f, path);
    fputc(',', w->f);
    csv_field(w->f, cls);
    // %.9g: a float32 reads back bit for bit
    fprintf(w->f, ",%.9g", (double)probability);
    if (w->mc && mc) fprintf(w->f, ",%.9g,%.9g,%.9g", (double)mc[0], (double)mc[1], (double)mc[2]);
    if (fputc('\n', w->f) == EOF)
        return err_set(e, ERR_RUNTIME, "%s: cannot write: %s", w->path, strerror(errno));
    return ERR_OK;
}

int pred_csv_close(PredCsv *w, int commit, Err *e) {
    int rc = ERR_OK;
    errno = 0;
    if (fflush(w->f) != 0 || ferror(w->f) || fsync(fileno(w->f)) != 0) {
        if (commit)
            rc = err_set(e, ERR_RUNTIME, "%s: cannot write: %s", w->path,
                         errno ? strerror(errno) : "write failed");
        commit = 0;
    }
    if (fclose(w->f) != 0 && commit) {
        rc = err_set(e, ERR_RUNTIME, "%s: cannot write: %s", w->path, strerror(errno));
        commit = 0;
    }
    rc = commit_tmp(w->tmp, w->path, commit, rc, e);
    free(w);
    return rc;
}
