// idx.c: reading IDX files (the MNIST format: big-endian magic 0x000008NN, NN dimensions of
// unsigned bytes) and converting Fashion-MNIST into a regdist dataset with a validation split
// carved from the training set by a seeded permutation.
#include "idx.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "core/philox.h"
#include "dataset.h"

#define IDX_MAX_BYTES ((int64_t)1 << 32)  // far above any IDX dataset regdist imports
#define IDX_SPLIT_KEY 0xFFFFFFFEu         // Philox key word 1 for the train/val carve

// Reads exactly len bytes; returns how many it got (short at end of file), -1 on a gzip error.
static int64_t gz_read_all(gzFile g, void *buf, int64_t len) {
    int64_t got = 0;
    while (got < len) {
        int64_t want = len - got > (1 << 30) ? (1 << 30) : len - got;
        int k = gzread(g, (char *)buf + got, (unsigned)want);
        if (k < 0) return -1;
        if (k == 0) break;
        got += k;
    }
    return got;
}

// Reads up to len bytes into *buf (malloc'd, caller frees), growing it as data arrives, so a
// header that promises gigabytes costs memory only for the bytes that are there. Returns how
// many it got, -1 on a gzip error, -2 out of memory (*buf is then NULL).
static int64_t gz_read_growing(gzFile g, uint8_t **buf, int64_t len) {
    int64_t cap = len < (1 << 20) ? len : (1 << 20), got = 0;
    *buf = malloc((size_t)cap);
    while (*buf) {
        int64_t k = gz_read_all(g, *buf + got, cap - got);
        if (k < 0) return -1;
        got += k;
        if (got < cap || cap == len) return got;
        cap = cap > len / 2 ? len : 2 * cap;
        uint8_t *bigger = realloc(*buf, (size_t)cap);
        if (!bigger) free(*buf);
        *buf = bigger;
    }
    return -2;
}

// The gzip layer's reason for a failed read.
static const char *gz_reason(gzFile g) {
    int code;
    const char *msg = gzerror(g, &code);
    return code == Z_ERRNO ? strerror(errno) : msg;
}

static int idx_read_open(gzFile g, const char *path, uint8_t **data, int *ndims, int64_t dims[3],
                         Err *e) {
    uint8_t head[4 + 4 * 3];
    int64_t got = gz_read_all(g, head, 4);
    if (got < 0) return err_set(e, ERR_INPUT, "%s: cannot read: %s", path, gz_reason(g));
    if (got < 4) return err_set(e, ERR_INPUT, "%s: too short for an IDX file", path);
    int nd = head[3];
    if (head[0] != 0 || head[1] != 0 || head[2] != 0x08 || nd < 1 || nd > 3)
        return err_set(e, ERR_INPUT,
                       "%s: bad IDX magic 0x%02x%02x%02x%02x; expected 0x00000801..0x00000803 "
                       "(unsigned bytes, 1 to 3 dimensions)",
                       path, head[0], head[1], head[2], head[3]);
    got = gz_read_all(g, head + 4, 4 * nd);
    if (got < 0) return err_set(e, ERR_INPUT, "%s: cannot read: %s", path, gz_reason(g));
    if (got < 4 * nd) return err_set(e, ERR_INPUT, "%s: truncated IDX header", path);
    int64_t total = 1;
    for (int i = 0; i < nd; i++) {
        const uint8_t *b = head + 4 + 4 * i;
        dims[i] = (int64_t)b[0] << 24 | (int64_t)b[1] << 16 | (int64_t)b[2] << 8 | b[3];
        // compared before multiplying: two sizes near 2^32 overflow an int64_t
        if (dims[i] < 1 || dims[i] > IDX_MAX_BYTES / total || (total *= dims[i]) > IDX_MAX_BYTES)
            return err_set(e, ERR_INPUT, "%s: dimension %d is %lld: empty or too large", path, i,
                           (long long)dims[i]);
    }
    // One byte more than the header promises: finding it means trailing garbage.
    uint8_t *buf = NULL;
    got = gz_read_growing(g, &buf, total + 1);
    if (got == -2) return err_set(e, ERR_RUNTIME, "%s: out of memory (%lld bytes)", path, (long long)total);
    int rc = ERR_OK;
    if (got < 0)
        rc = err_set(e, ERR_INPUT, "%s: cannot read: %s", path, gz_reason(g));
    else if (got < total)
        rc = err_set(e, ERR_INPUT, "%s: truncated: the header promises %lld bytes of data, the file has %lld",
                     path, (long long)total, (long long)got);
    else if (got > total)
        rc = err_set(e, ERR_INPUT, "%s: data continues past the %lld bytes the header promises",
                     path, (long long)total);
    if (rc) {
        free(buf);
        return rc;
    }
    *data = buf;
    *ndims = nd;
    return ERR_OK;
}

int idx_read_u8(const char *path, uint8_t **data, int *ndims, int64_t dims[3], Err *e) {
    *data = NULL;
    *ndims = 0;
    errno = 0;
    gzFile g = gzopen(path, "rb");  // reads plain files too
    if (!g)
        return err_set(e, ERR_INPUT, "%s: cannot open: %s", path,
                       errno ? strerror(errno) : "out of memory");
    int rc = idx_read_open(g, path, data, ndims, dims, e);
    gzclose(g);
    return rc;
}

// Unbiased draw in [0, bound) for Fisher-Yates step i (Lemire's multiply-and-reject on the
// four words of one Philox block; a rejected block moves on to the next counter).
static uint32_t draw_below(uint32_t seed, uint32_t i, uint32_t bound) {
    philox_key k = {{seed, IDX_SPLIT_KEY}};
    uint32_t threshold = (uint32_t)(-bound) % bound;  // 2^32 mod bound
    for (uint32_t attempt = 0;; attempt++) {
        philox_ctr r = philox4x32_10((philox_ctr){{i, attempt, 0, PHILOX_STREAM_SHUFFLE}}, k);
        for (int w = 0; w < 4; w++) {
            uint64_t prod = (uint64_t)r.v[w] * bound;
            if ((uint32_t)prod >= threshold) return (uint32_t)(prod >> 32);
        }
    }
}

// Images (N,28,28) and their labels (N), checked against each other.
typedef struct {
    uint8_t *x, *y;
    int64_t n;
} IdxPair;

static int read_pair(const char *dir, const char *images, const char *labels, IdxPair *p, Err *e) {
    char path[2][4096];
    snprintf(path[0], sizeof path[0], "%s/%s", dir, images);
    snprintf(path[1], sizeof path[1], "%s/%s", dir, labels);
    int nd[2];
    int64_t dims[2][3];
    memset(p, 0, sizeof *p);
    int rc = idx_read_u8(path[0], &p->x, &nd[0], dims[0], e);
    if (!rc) rc = idx_read_u8(path[1], &p->y, &nd[1], dims[1], e);
    if (!rc && (nd[0] != 3 || dims[0][1] != 28 || dims[0][2] != 28))
        rc = err_set(e, ERR_INPUT, "%s: expected images of 28x28 (N,28,28)", path[0]);
    if (!rc && (nd[1] != 1 || dims[1][0] != dims[0][0]))
        rc = err_set(e, ERR_INPUT, "%s: expected %lld labels (N), one per image", path[1],
                     (long long)dims[0][0]);
    for (int64_t i = 0; !rc && i < dims[0][0]; i++)
        if (p->y[i] >= 10)
            rc = err_set(e, ERR_INPUT, "%s: label %lld is %d, outside [0, 10)", path[1],
                         (long long)i, p->y[i]);
    if (rc) {
        free(p->x);
        free(p->y);
        memset(p, 0, sizeof *p);
        return rc;
    }
    p->n = dims[0][0];
    return ERR_OK;
}

// Copies the samples whose which[i] == tag, in file order, and writes them as split.
static int write_subset(const char *out, const char *split, const IdxPair *src, const uint8_t *which,
                        uint8_t tag, int64_t n, Err *e) {
    const size_t per = 28 * 28;
    uint8_t *x = malloc((size_t)n * per);
    int32_t *y = malloc((size_t)n * sizeof *y);
    int rc;
    if (!x || !y) {
        rc = err_set(e, ERR_RUNTIME, "%s: out of memory", out);
    } else {
        int64_t k = 0;
        for (int64_t i = 0; i < src->n; i++) {
            if (which && which[i] != tag) continue;
            memcpy(x + (size_t)k * per, src->x + (size_t)i * per, per);
            y[k++] = src->y[i];
        }
        rc = dataset_write_split(out, split, x, 1, y, n, (Shape){3, {1, 28, 28}}, e);
    }
    free(x);
    free(y);
    return rc;
}

// Mean and (population) std of x/255 over the samples tagged tag: exact integer sums.
static void pixel_stats(const IdxPair *p, const uint8_t *which, uint8_t tag, float *mean,
                        float *std) {
    uint64_t s = 0, ss = 0, count = 0;
    for (int64_t i = 0; i < p->n; i++) {
        if (which[i] != tag) continue;
        const uint8_t *px = p->x + (size_t)i * 784;
        for (int j = 0; j < 784; j++) s += px[j], ss += (uint64_t)px[j] * px[j];
        count += 784;
    }
    double m = (double)s / (double)count / 255.0;
    double var = (double)ss / (double)count / (255.0 * 255.0) - m * m;
    *mean = (float)m;
    *std = (float)sqrt(var > 0 ? var : 0);
}

enum { TAG_NONE = 0, TAG_VAL = 1, TAG_TRAIN = 2 };

static const char *const fashion_names[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress",
                                              "Coat",        "Sandal",  "Shirt",    "Sneaker",
                                              "Bag",         "Ankle boot"};

int idx_import_fashion_mnist(const char *dir, const char *out, int64_t train_size,
                             int64_t val_size, uint32_t seed, Err *e) {
    if (train_size < 0 || val_size < 0)
        return err_set(e, ERR_INPUT, "train_size %lld and val_size %lld must not be negative",
                       (long long)train_size, (long long)val_size);
    IdxPair tr, te;
    int rc = read_pair(dir, "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", &tr, e);
    if (rc) return rc;
    rc = read_pair(dir, "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", &te, e);
    if (rc) {
        free(tr.x), free(tr.y);
        return rc;
    }
    uint32_t *perm = NULL;
    uint8_t *which = NULL;
    if (val_size + train_size > tr.n || val_size >= tr.n) {
        rc = err_set(e, ERR_INPUT, "%s: val_size %lld + train_size %lld exceed the %lld training images",
                     dir, (long long)val_size, (long long)train_size, (long long)tr.n);
        goto done;
    }
    if (train_size == 0) train_size = tr.n - val_size;
    perm = malloc((size_t)tr.n * sizeof *perm);
    which = calloc((size_t)tr.n, 1);
    if (!perm || !which) {
        rc = err_set(e, ERR_RUNTIME, "%s: out of memory", out);
        goto done;
    }
    // Fisher-Yates from the end; then the first val_size of the permutation are val, the
    // next train_size train. Tagging in index order keeps file order within each split.
    for (int64_t i = 0; i < tr.n; i++) perm[i] = (uint32_t)i;
    for (int64_t i = tr.n - 1; i > 0; i--) {
        uint32_t j = draw_below(seed, (uint32_t)i, (uint32_t)(i + 1));
        uint32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (int64_t k = 0; k < val_size + train_size; k++)
        which[perm[k]] = k < val_size ? TAG_VAL : TAG_TRAIN;

    float mean, std;
    pixel_stats(&tr, which, TAG_TRAIN, &mean, &std);
    DatasetAttrs a = {.num_classes = 10, .nchan = 1, .mean = &mean, .std = &std,
                      .class_names = fashion_names};
    rc = dataset_create(out, &a, e);
    if (!rc) rc = write_subset(out, "train", &tr, which, TAG_TRAIN, train_size, e);
    if (!rc && val_size > 0) rc = write_subset(out, "val", &tr, which, TAG_VAL, val_size, e);
    if (!rc) rc = write_subset(out, "test", &te, NULL, 0, te.n, e);
    if (rc) unlink(out);  // no half-written dataset left behind
done:
    free(perm);
    free(which);
    free(tr.x), free(tr.y), free(te.x), free(te.y);
    return rc;
}
