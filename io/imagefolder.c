// imagefolder.c: an ImageFolder-style tree of image files into a regdist dataset
// (imagefolder.h). walk -> headers -> split -> decode in chunks -> write, each a function.
#include "imagefolder.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/shuffle.h"
#include "h5util.h"
#include "image.h"
#include "pool.h"
#include "preprocess.h"
#include "preprocess_h5.h"

// shuffle_permutation's epoch argument for class k's split permutation: far above any
// training epoch, so the import's draws never coincide with a run's shuffles of the same seed.
#define SPLIT_EPOCH_BASE ((int64_t)1 << 40)
#define MAX_DEPTH 256           // nested folders under a class (loops are caught before)
#define CHUNK_BYTES (64 << 20)  // decoded pixels held at once, at most (unless one is larger)
#define H5_CHUNK_BYTES (1 << 20)
#define NOT_RUN (-1)            // a decode slot the pool did not reach

static const char *split_names[IMPORT_SPLITS] = {"train", "val", "test"};

// One image file.
typedef struct {
    char *rel;       // path relative to DIR
    int label, split;
    int skip;        // unreadable and skipped (skip_bad)
    ImageInfo info;  // its header
} Entry;

typedef struct {
    const ImportSpec *s;
    char dir[4096];             // DIR without trailing slashes
    Entry *v;
    int64_t n, cap;
    char **classes;             // sorted class names (labels)
    int num_classes;
    int64_t ignored, skipped;
    char first_skipped[512];
    int split_folders;
    int threads;
} Import;

// ---- walking the tree ----

typedef struct { dev_t dev; ino_t ino; } DirId;

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *join(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 2);
    if (!s) return NULL;
    memcpy(s, a, la);
    s[la] = '/';
    memcpy(s + la + 1, b, lb + 1);
    return s;
}

// The names in directory path (without . and ..), sorted with strcmp: the same order on every
// machine and locale. *names is malloc'd (free each and it).
static int list_dir(const char *path, char ***names, int *n, Err *e) {
    *names = NULL;
    *n = 0;
    DIR *d = opendir(path);
    if (!d) return err_set(e, ERR_INPUT, "%s: cannot read folder: %s", path, strerror(errno));
    int cap = 0, rc = ERR_OK;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 64;
            char **bigger = realloc(*names, (size_t)cap * sizeof *bigger);
            if (!bigger) { rc = err_set(e, ERR_RUNTIME, "out of memory"); break; }
            *names = bigger;
        }
        if (!((*names)[*n] = strdup(de->d_name))) { rc = err_set(e, ERR_RUNTIME, "out of memory"); break; }
        (*n)++;
    }
    closedir(d);
    if (rc) {
        for (int i = 0; i < *n; i++) free((*names)[i]);
        free(*names);
        *names = NULL;
        *n = 0;
        return rc;
    }
    if (*n) qsort(*names, (size_t)*n, sizeof **names, cmp_str);
    return ERR_OK;
}

static void free_names(char **names, int n) {
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

// Counts a skipped image (skip_bad) and keeps the first reason for the summary.
static void note_skip(Import *im, const char *why) {
    if (!im->skipped++) snprintf(im->first_skipped, sizeof im->first_skipped, "%s", why);
}

// skip_bad: the error in e becomes a skipped file. Returns ERR_OK.
static int skip_instead(Import *im, Err *e) {
    note_skip(im, e->msg);
    e->code = ERR_OK;
    e->msg[0] = 0;
    return ERR_OK;
}

static int add_entry(Import *im, char *rel, int label, int split, Err *e) {
    if (im->n == im->cap) {
        int64_t cap = im->cap ? 2 * im->cap : 1024;
        Entry *bigger = realloc(im->v, (size_t)cap * sizeof *bigger);
        if (!bigger) {
            free(rel);
            return err_set(e, ERR_RUNTIME, "out of memory");
        }
        im->v = bigger;
        im->cap = cap;
    }
    im->v[im->n++] = (Entry){.rel = rel, .label = label, .split = split};
    return ERR_OK;
}

// A folder already on the path (stack[0..depth]) is reached again through a symlink: a loop,
// not a folder to walk into.
static int check_not_on_path(const DirId *stack, int depth, const struct stat *st,
                             const char *path, Err *e) {
    for (int k = 0; k <= depth; k++)
        if (stack[k].dev == st->st_dev && stack[k].ino == st->st_ino)
            return err_set(e, ERR_INPUT, "%s: symlink loop (it leads back to a folder above it)",
                           path);
    return ERR_OK;
}

// Collects the image files under rel (a folder, relative to DIR) for class label. stack holds
// the folders on the current path, so a symlink back to one of them is a loop, not recursion
// without end.
static int walk(Import *im, const char *rel, int label, int split, DirId *stack, int depth,
                Err *e) {
    char *path = join(im->dir, rel);
    char **names = NULL;
    int n = 0;
    int rc = path ? list_dir(path, &names, &n, e) : err_set(e, ERR_RUNTIME, "out of memory");
    for (int i = 0; !rc && i < n; i++) {
        if (names[i][0] == '.') {  // .DS_Store, ._x.png, .ipynb_checkpoints: never data
            im->ignored++;
            continue;
        }
        char *child_rel = join(rel, names[i]), *child = join(im->dir, child_rel ? child_rel : "");
        struct stat st;
        if (!child_rel || !child) {
            rc = err_set(e, ERR_RUNTIME, "out of memory");
        } else if (stat(child, &st) != 0) {  // a dangling link, or gone since listed
            if (image_is_image_name(names[i])) {
                rc = err_set(e, ERR_INPUT, "%s: cannot read: %s", child, strerror(errno));
                if (im->s->skip_bad) rc = skip_instead(im, e);
            } else {
                im->ignored++;
            }
        } else if (S_ISDIR(st.st_mode)) {
            rc = check_not_on_path(stack, depth, &st, child, e);
            if (!rc && depth + 1 >= MAX_DEPTH)
                rc = err_set(e, ERR_INPUT, "%s: folders nested more than %d deep", child, MAX_DEPTH);
            if (!rc) {
                stack[depth + 1] = (DirId){st.st_dev, st.st_ino};
                rc = walk(im, child_rel, label, split, stack, depth + 1, e);
            }
        } else if (!image_is_image_name(names[i])) {
            im->ignored++;
        } else if (!S_ISREG(st.st_mode)) {  // a FIFO or device would block or never end
            rc = err_set(e, ERR_INPUT, "%s: not a regular file", child);
            if (im->s->skip_bad) rc = skip_instead(im, e);
        } else {
            rc = add_entry(im, child_rel, label, split, e);
            child_rel = NULL;  // owned by the entry now
        }
        free(child_rel);
        free(child);
    }
    free_names(names, n);
    free(path);
    return rc;
}

// DIR/root, or DIR itself for root "" (malloc'd; NULL when out of memory).
static char *root_path(const Import *im, const char *root) {
    return *root ? join(im->dir, root) : strdup(im->dir);
}

// The class folders of root (relative to DIR; "" for DIR itself): sorted names of its
// non-hidden subfolders. Files beside them are ignored (and counted).
static int class_folders(Import *im, const char *root, char ***classes, int *nc, Err *e) {
    char *path = root_path(im, root);
    char **names = NULL;
    int n = 0, k = 0;
    int rc = path ? list_dir(path, &names, &n, e) : err_set(e, ERR_RUNTIME, "out of memory");
    for (int i = 0; !rc && i < n; i++) {
        struct stat st;
        char *p = join(path, names[i]);
        int is_dir = p && names[i][0] != '.' && stat(p, &st) == 0 && S_ISDIR(st.st_mode);
        free(p);
        if (is_dir) {
            names[k++] = names[i];
        } else {
            im->ignored++;
            free(names[i]);
        }
    }
    free(path);
    if (rc) {
        free_names(names, n);
        return rc;
    }
    *classes = names;
    *nc = k;
    return ERR_OK;
}

static int find_class(const Import *im, const char *name) {
    char *const *hit = bsearch(&name, im->classes, (size_t)im->num_classes, sizeof *im->classes,
                               cmp_str);
    return hit ? (int)(hit - im->classes) : -1;
}

// A train root without class folders: says where the images belong when some lie in it.
static int no_classes(const Import *im, const char *root, Err *e) {
    int64_t loose = 0;
    char **all = NULL;
    int na = 0;
    char *path = root_path(im, root);
    if (path && list_dir(path, &all, &na, e) == ERR_OK)
        for (int i = 0; i < na; i++) loose += image_is_image_name(all[i]);
    free_names(all, na);
    free(path);
    return err_set(e, ERR_INPUT, "%s%s%s: no images: expected class folders <class>/ holding "
                   ".png, .jpg, .jpeg, .tif or .tiff files%s", im->dir, *root ? "/" : "", root,
                   loose ? " (image files lying directly in it belong in class folders)" : "");
}

// stack[0..*depth]: the folders on the way to the class folder path (DIR, the split folder of
// root, the class folder), for walk to tell a symlink back to one of them.
static int path_stack(DirId *stack, int *depth, const Import *im, const char *root,
                      const char *path, Err *e) {
    char *split_path = root_path(im, root);
    const char *on_path[3] = {im->dir, *root ? split_path : NULL, path};
    int rc = split_path ? ERR_OK : err_set(e, ERR_RUNTIME, "out of memory");
    *depth = -1;
    for (int k = 0; k < 3 && !rc; k++) {
        struct stat st;
        if (!on_path[k]) continue;
        if (stat(on_path[k], &st) != 0) {
            rc = err_set(e, ERR_INPUT, "%s: %s", on_path[k], strerror(errno));
            break;
        }
        rc = check_not_on_path(stack, *depth, &st, on_path[k], e);
        stack[++*depth] = (DirId){st.st_dev, st.st_ino};
    }
    free(split_path);
    return rc;
}

// Walks class folder cls of root: a class of the train root, holding at least one image.
static int walk_class(Import *im, const char *root, const char *cls, int split, Err *e) {
    int label = find_class(im, cls);
    if (label < 0)
        return err_set(e, ERR_INPUT, "%s/%s/%s: class '%s' is not in %s/train", im->dir, root,
                       cls, cls, im->dir);
    char *rel = *root ? join(root, cls) : strdup(cls);
    char *path = rel ? join(im->dir, rel) : NULL;
    DirId stack[MAX_DEPTH];
    int depth = -1;
    int rc = path ? path_stack(stack, &depth, im, root, path, e)
                  : err_set(e, ERR_RUNTIME, "out of memory");
    if (!rc) {
        int64_t before = im->n, skipped = im->skipped;
        rc = walk(im, rel, label, split, stack, depth, e);
        if (!rc && im->n == before)
            rc = err_set(e, ERR_INPUT, "%s: empty class folder (no .png, .jpg, .jpeg, .tif "
                         "or .tiff files%s)", path, im->skipped > skipped ? " readable" : "");
    }
    free(rel);
    free(path);
    return rc;
}

// Walks one split root ("" in the seeded layout, "train", "val", ... with split folders).
// The train root (or the only one) defines the classes; the others must use those.
static int walk_root(Import *im, const char *root, int split, Err *e) {
    char **names = NULL;
    int nc = 0;
    int rc = class_folders(im, root, &names, &nc, e);
    if (rc) return rc;
    if (split == IMPORT_TRAIN) {  // its class folders become the labels
        im->classes = names;
        im->num_classes = nc;
        names = NULL;
        nc = 0;
        if (im->num_classes == 0) return no_classes(im, root, e);
    }
    const int ncls = split == IMPORT_TRAIN ? im->num_classes : nc;
    for (int c = 0; !rc && c < ncls; c++)
        rc = walk_class(im, root, split == IMPORT_TRAIN ? im->classes[c] : names[c], split, e);
    free_names(names, nc);
    return rc;
}

static int is_dir_at(const char *dir, const char *name) {
    char *p = join(dir, name);
    struct stat st;
    int is = p && stat(p, &st) == 0 && S_ISDIR(st.st_mode);
    free(p);
    return is;
}

// Pass 1a: every image file, with its class and (with split folders) its split.
static int walk_tree(Import *im, Err *e) {
    struct stat st;
    if (stat(im->dir, &st) != 0)
        return err_set(e, ERR_INPUT, "%s: %s", im->dir, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return err_set(e, ERR_INPUT, "%s: not a directory", im->dir);
    int has_val = is_dir_at(im->dir, "val"), has_valid = is_dir_at(im->dir, "valid");
    int has_test = is_dir_at(im->dir, "test");
    im->split_folders = is_dir_at(im->dir, "train") && (has_val || has_valid || has_test);
    if (!im->split_folders) return walk_root(im, "", IMPORT_TRAIN, e);
    if (has_val && has_valid)
        return err_set(e, ERR_INPUT, "%s: holds both val/ and valid/; which is the validation "
                       "split?", im->dir);
    int rc = walk_root(im, "train", IMPORT_TRAIN, e);
    if (!rc && (has_val || has_valid)) rc = walk_root(im, has_val ? "val" : "valid", IMPORT_VAL, e);
    if (!rc && has_test) rc = walk_root(im, "test", IMPORT_TEST, e);
    return rc;
}

// ---- pass 1b: headers ----

typedef struct {
    Import *im;
    Pool pool;
    Err *errs;   // (n) per entry: the reason it is unreadable
    int *bad;    // (n)
} HeaderJob;

static void header_task(void *ctx, int64_t i) {
    HeaderJob *j = ctx;
    Entry *en = &j->im->v[i];
    char *path = join(j->im->dir, en->rel);
    if (!path) {
        err_set(&j->errs[i], ERR_RUNTIME, "out of memory");
        j->bad[i] = 1;
    } else if (image_info(path, &en->info, &j->errs[i])) {
        j->bad[i] = 1;
    }
    free(path);
    if (j->bad[i] && (!j->im->s->skip_bad || j->errs[i].code != ERR_INPUT))
        pool_stop(&j->pool);
}

// Reads every header; unreadable files fail the import, or are skipped with skip_bad.
static int read_headers(Import *im, Err *e) {
    HeaderJob j = {.im = im};
    j.errs = calloc((size_t)im->n, sizeof *j.errs);
    j.bad = calloc((size_t)im->n, sizeof *j.bad);
    if (!j.errs || !j.bad) {
        free(j.errs);
        free(j.bad);
        return err_set(e, ERR_RUNTIME, "out of memory");
    }
    pool_run(&j.pool, im->threads, im->n, header_task, &j);
    int rc = ERR_OK;
    for (int64_t i = 0; i < im->n && !rc; i++) {
        if (!j.bad[i]) continue;
        if (im->s->skip_bad && j.errs[i].code == ERR_INPUT) {
            im->v[i].skip = 1;
            note_skip(im, j.errs[i].msg);
        } else {
            *e = j.errs[i];
            rc = e->code;
        }
    }
    free(j.errs);
    free(j.bad);
    return rc;
}

// ---- checks across files, and the splits ----

static const char *rel_of(const Import *im, int64_t i) { return im->v[i].rel; }

// Sizes, channels and bit depth agree (or the spec converts); fills prep.
static int check_headers(Import *im, ImagePrep *prep, int *conversions, Err *e) {
    const ImportSpec *s = im->s;
    int64_t first = -1, gray = -1, colour = -1;
    int depth = 8;
    for (int64_t i = 0; i < im->n; i++) {
        const Entry *en = &im->v[i];
        if (en->skip) continue;
        if (first < 0) first = i;
        if (!s->height && (en->info.width != im->v[first].info.width ||
                           en->info.height != im->v[first].info.height))
            return err_set(e, ERR_INPUT, "images differ in size: %s/%s is %dx%d, %s/%s is %dx%d "
                           "(HxW); use --size H,W to resize them all", im->dir, rel_of(im, first),
                           im->v[first].info.height, im->v[first].info.width, im->dir,
                           en->rel, en->info.height, en->info.width);
        if (en->info.channels == 1 && gray < 0) gray = i;
        if (en->info.channels == 3 && colour < 0) colour = i;
        if (en->info.bit_depth == 16) depth = 16;
    }
    if (first < 0)  // every file was skipped
        return err_set(e, ERR_INPUT, "%s: no readable images (%lld skipped; first: %s)", im->dir,
                       (long long)im->skipped, im->first_skipped);
    if (!s->channels && gray >= 0 && colour >= 0)
        return err_set(e, ERR_INPUT, "images mix gray and colour: %s/%s is gray, %s/%s is "
                       "colour; use --channels 1 or --channels 3 to convert them", im->dir,
                       rel_of(im, gray), im->dir, rel_of(im, colour));
    *prep = (ImagePrep){
        .channels = s->channels ? s->channels : im->v[first].info.channels,
        .convert = s->channels != 0,
        .height = s->height ? s->height : im->v[first].info.height,
        .width = s->width ? s->width : im->v[first].info.width,
        .resize = s->height != 0,
        .bit_depth = depth,
    };
    *conversions = prep->channels == 1 ? colour >= 0 : gray >= 0;
    return ERR_OK;
}

// Seeded stratified split: per class, its files (in path order) permuted by
// shuffle_permutation(seed, SPLIT_EPOCH_BASE + class); the first round(n*val_frac) go to
// val, the next round(n*test_frac) to test, the rest to train, which keeps at least one.
static int assign_splits(Import *im, Err *e) {
    if (im->split_folders) return ERR_OK;
    int64_t *idx = malloc((size_t)im->n * sizeof *idx), *perm = malloc((size_t)im->n * sizeof *perm);
    if (!idx || !perm) {
        free(idx);
        free(perm);
        return err_set(e, ERR_RUNTIME, "out of memory");
    }
    for (int64_t i = 0; i < im->n;) {  // entries are sorted by class
        int c = im->v[i].label;
        int64_t n = 0;
        for (; i < im->n && im->v[i].label == c; i++)
            if (!im->v[i].skip) idx[n++] = i;
        int64_t nval = (int64_t)llround((double)n * im->s->val_frac);
        int64_t ntest = (int64_t)llround((double)n * im->s->test_frac);
        while (nval + ntest >= n && ntest > 0) ntest--;
        while (nval + ntest >= n && nval > 0) nval--;
        shuffle_permutation(perm, n, im->s->seed, SPLIT_EPOCH_BASE + c);
        for (int64_t k = 0; k < n; k++)
            im->v[idx[perm[k]]].split = k < nval ? IMPORT_VAL : k < nval + ntest ? IMPORT_TEST
                                                                                  : IMPORT_TRAIN;
    }
    free(idx);
    free(perm);
    return ERR_OK;
}

// Order: split, class, path (strcmp).
static int cmp_entry(const void *pa, const void *pb) {
    const Entry *a = pa, *b = pb;
    if (a->split != b->split) return a->split - b->split;
    if (a->label != b->label) return a->label - b->label;
    return strcmp(a->rel, b->rel);
}

// ---- pass 2: decoding and writing ----

typedef struct {
    Import *im;
    const ImagePrep *prep;
    const int64_t *rows;   // (m) entry indices of this chunk
    uint8_t *px;           // (m, sample_bytes)
    size_t sample_bytes;
    Err *errs;             // (m)
    uint64_t *sums;        // (m, 2*C): per channel sum and sum of squares of stored integers
    Pool pool;
} DecodeJob;

static void decode_task(void *ctx, int64_t k) {
    DecodeJob *j = ctx;
    const Entry *en = &j->im->v[j->rows[k]];
    char *path = join(j->im->dir, en->rel);
    Err *e = &j->errs[k];
    e->code = ERR_OK;
    if (!path) {
        err_set(e, ERR_RUNTIME, "out of memory");
    } else if (image_load(path, j->prep, j->px + (size_t)k * j->sample_bytes, e) == ERR_OK) {
        int C = j->prep->channels;
        size_t hw = (size_t)j->prep->height * (size_t)j->prep->width;
        uint64_t *s = j->sums + (size_t)k * 2 * C;
        for (int c = 0; c < C; c++) {
            uint64_t sum = 0, sq = 0;
            if (j->prep->bit_depth == 16) {
                const uint16_t *x = (const uint16_t *)(j->px + (size_t)k * j->sample_bytes) + c * hw;
                for (size_t i = 0; i < hw; i++) sum += x[i], sq += (uint64_t)x[i] * x[i];
            } else {
                const uint8_t *x = j->px + (size_t)k * j->sample_bytes + c * hw;
                for (size_t i = 0; i < hw; i++) sum += x[i], sq += (uint32_t)x[i] * x[i];
            }
            s[2 * c] = sum;
            s[2 * c + 1] = sq;
        }
    }
    free(path);
    if (e->code && (!j->im->s->skip_bad || e->code != ERR_INPUT)) pool_stop(&j->pool);
}

// Creates an extendible chunked dataset (n, dims...) of file_type under g.
static hid_t create_rows(hid_t g, const char *name, hid_t file_type, int rank,
                         const hsize_t *dims, hsize_t chunk_rows) {
    hsize_t maxdims[1 + SHAPE_MAX_DIMS], chunk[1 + SHAPE_MAX_DIMS];
    for (int i = 0; i < rank; i++) maxdims[i] = chunk[i] = dims[i];
    maxdims[0] = H5S_UNLIMITED;
    chunk[0] = chunk_rows;
    hid_t space = H5Screate_simple(rank, dims, maxdims), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hid_t d = H5I_INVALID_HID;
    // no modification times: the same images give the same bytes
    if (space >= 0 && dcpl >= 0 && H5Pset_chunk(dcpl, rank, chunk) >= 0 &&
        H5Pset_obj_track_times(dcpl, 0) >= 0)
        d = H5Dcreate2(g, name, file_type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    h5u_close(&dcpl);
    h5u_close(&space);
    return d;
}

// Writes rows [at, at+m) of dataset d from buf (mem_type).
static int write_rows(hid_t d, hid_t mem_type, int rank, const hsize_t *dims, hsize_t at,
                      hsize_t m, const void *buf) {
    hsize_t start[1 + SHAPE_MAX_DIMS] = {at}, count[1 + SHAPE_MAX_DIMS];
    for (int i = 0; i < rank; i++) count[i] = dims[i];
    count[0] = m;
    hid_t fs = H5Dget_space(d), ms = H5Screate_simple(rank, count, NULL);
    int ok = fs >= 0 && ms >= 0 &&
             H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) >= 0 &&
             H5Dwrite(d, mem_type, ms, fs, H5P_DEFAULT, buf) >= 0;
    h5u_close(&ms);
    h5u_close(&fs);
    return ok ? 0 : -1;
}

static hid_t vlen_utf8(void) {
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t >= 0 && (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0))
        h5u_close(&t);
    return t;
}

typedef struct {
    hid_t file;
    const char *tmp;
    double sum[PREP_MAX_CHANNELS], sumsq[PREP_MAX_CHANNELS], pixels;  // train split
    int64_t done, total;  // images decoded or skipped, of all
    int64_t *count;       // (IMPORT_SPLITS, num_classes) written
} Writer;

// A split's datasets in group /<split>: x (n,C,H,W) pixels, y (n) labels, paths (n) strings,
// created for all n entries and filled from the front (written rows so far).
typedef struct {
    hid_t g, str, x, y, paths;
    hid_t px_type;    // the pixels' type in memory
    hsize_t dims[4];  // (n, C, H, W) as created
    hsize_t written;
} SplitSets;

// Creates s for n entries of prep's pixels (sample bytes each) under file; -1 on failure.
static int sets_create(SplitSets *s, hid_t file, const char *name, const ImagePrep *prep,
                       int64_t n, size_t sample) {
    *s = (SplitSets){.dims = {(hsize_t)n, (hsize_t)prep->channels, (hsize_t)prep->height,
                              (hsize_t)prep->width},
                     .px_type = prep->bit_depth == 16 ? H5T_NATIVE_UINT16 : H5T_NATIVE_UINT8};
    hsize_t h5rows = H5_CHUNK_BYTES / sample;
    h5rows = h5rows < 1 ? 1 : h5rows > 1024 ? 1024 : h5rows;
    if (h5rows > s->dims[0]) h5rows = s->dims[0];
    s->g = h5u_group_create(file, name);
    s->str = vlen_utf8();
    s->x = s->g < 0 ? -1 : create_rows(s->g, "x", prep->bit_depth == 16 ? H5T_STD_U16LE
                                                                       : H5T_STD_U8LE,
                                       4, s->dims, h5rows);
    s->y = s->g < 0 ? -1 : create_rows(s->g, "y", H5T_STD_I64LE, 1, s->dims, 4096);
    s->paths = s->g < 0 || s->str < 0 ? -1 : create_rows(s->g, "paths", s->str, 1, s->dims, 1024);
    return s->x < 0 || s->y < 0 || s->paths < 0 ? -1 : 0;
}

static void sets_close(SplitSets *s) {
    h5u_close(&s->paths);
    h5u_close(&s->y);
    h5u_close(&s->x);
    h5u_close(&s->str);
    h5u_close(&s->g);
}

// One chunk of a split: the decode job (its rows, pixels, errors, sums) for up to cap images,
// and the labels and paths of those kept, packed at the front like their pixels.
typedef struct {
    DecodeJob j;
    int64_t cap;
    int64_t *rows, *labels;  // (cap)
    const char **paths;      // (cap)
} Chunk;

// Images decoded at once: --chunk (256 by default), as many as CHUNK_BYTES hold if fewer,
// at least one per thread.
static int64_t chunk_images(const Import *im, size_t sample) {
    int64_t chunk = im->s->chunk > 0 ? im->s->chunk : 256;
    if ((size_t)chunk * sample > CHUNK_BYTES) chunk = (int64_t)(CHUNK_BYTES / sample);
    if (chunk < im->threads) chunk = im->threads;
    return chunk;
}

// -1 when out of memory (chunk_free frees what was allocated).
static int chunk_alloc(Chunk *c, Import *im, const ImagePrep *prep, size_t sample, int64_t cap) {
    c->cap = cap;
    c->j = (DecodeJob){.im = im, .prep = prep, .sample_bytes = sample};
    c->j.px = malloc((size_t)cap * sample);
    c->j.errs = calloc((size_t)cap, sizeof *c->j.errs);
    c->j.sums = calloc((size_t)cap * 2 * prep->channels, sizeof *c->j.sums);
    c->rows = malloc((size_t)cap * sizeof *c->rows);
    c->labels = malloc((size_t)cap * sizeof *c->labels);
    c->paths = malloc((size_t)cap * sizeof *c->paths);
    c->j.rows = c->rows;
    return c->j.px && c->j.errs && c->j.sums && c->rows && c->labels && c->paths ? 0 : -1;
}

static void chunk_free(Chunk *c) {
    free(c->j.px);
    free(c->j.errs);
    free(c->j.sums);
    free(c->rows);
    free(c->labels);
    free(c->paths);
}

// Decodes the chunk's first m rows on the pool. A failure that skip_bad does not cover ends
// the import (the pool stopped early: later slots may not have run): its error is returned.
static int decode_chunk(Import *im, Chunk *c, int64_t m, Err *e) {
    for (int64_t k = 0; k < m; k++) c->j.errs[k].code = NOT_RUN;
    pool_run(&c->j.pool, im->threads, m, decode_task, &c->j);
    for (int64_t k = 0; k < m; k++)
        if (c->j.errs[k].code > 0 && (!im->s->skip_bad || c->j.errs[k].code != ERR_INPUT)) {
            *e = c->j.errs[k];
            return e->code;
        }
    return ERR_OK;
}

// Keeps the decoded ones of the chunk's m images, in order, packed at the front (the rest are
// skipped), and counts them into w: per class, and the pixel sums of the train split.
// Returns how many it kept.
static int64_t keep_decoded(Import *im, Writer *w, Chunk *c, int sp, int64_t m) {
    const DecodeJob *j = &c->j;
    const int C = j->prep->channels;
    const size_t sample = j->sample_bytes;
    int64_t kept = 0;
    for (int64_t k = 0; k < m; k++) {
        const Entry *en = &im->v[c->rows[k]];
        if (j->errs[k].code) {
            note_skip(im, j->errs[k].msg);
            continue;
        }
        if (kept != k) memmove(j->px + kept * sample, j->px + k * sample, sample);
        c->labels[kept] = en->label;
        c->paths[kept] = en->rel;
        w->count[sp * im->num_classes + en->label]++;
        if (sp == IMPORT_TRAIN)
            for (int ch = 0; ch < C; ch++) {
                w->sum[ch] += (double)j->sums[(size_t)k * 2 * C + 2 * ch];
                w->sumsq[ch] += (double)j->sums[(size_t)k * 2 * C + 2 * ch + 1];
            }
        kept++;
    }
    if (sp == IMPORT_TRAIN) w->pixels += (double)kept * j->prep->height * j->prep->width;
    return kept;
}

// Appends the chunk's first kept images to s; -1 on failure.
static int sets_append(SplitSets *s, const Chunk *c, int64_t kept) {
    if (write_rows(s->x, s->px_type, 4, s->dims, s->written, (hsize_t)kept, c->j.px) ||
        write_rows(s->y, H5T_NATIVE_INT64, 1, s->dims, s->written, (hsize_t)kept, c->labels) ||
        write_rows(s->paths, s->str, 1, s->dims, s->written, (hsize_t)kept, c->paths))
        return -1;
    s->written += (hsize_t)kept;
    return 0;
}

// Rows skipped while decoding shrink the split to the rows written; -1 on failure.
static int sets_shrink(SplitSets *s) {
    if (s->written == s->dims[0]) return 0;
    hsize_t d[4] = {s->written, s->dims[1], s->dims[2], s->dims[3]};
    return H5Dset_extent(s->x, d) < 0 || H5Dset_extent(s->y, d) < 0 ||
                   H5Dset_extent(s->paths, d) < 0 ? -1 : 0;
}

// Decodes and writes split sp (rows [lo, hi) of the sorted entries) as group /<split>, a
// chunk of images at a time.
static int write_split(Import *im, Writer *w, const ImagePrep *prep, int sp, int64_t lo,
                       int64_t hi, Err *e) {
    const size_t sample = (size_t)prep->channels * prep->height * prep->width *
                          (prep->bit_depth == 16 ? 2 : 1);
    const int64_t cap = chunk_images(im, sample);
    SplitSets out;
    Chunk c = {0};
    int rc = ERR_OK;
    if (sets_create(&out, w->file, split_names[sp], prep, hi - lo, sample))
        rc = err_set(e, ERR_RUNTIME, "%s: cannot create /%s", w->tmp, split_names[sp]);
    else if (chunk_alloc(&c, im, prep, sample, cap))
        rc = err_set(e, ERR_RUNTIME, "out of memory for %lld decoded images", (long long)cap);
    for (int64_t at = lo; at < hi && !rc;) {
        int64_t m = 0;
        for (; at < hi && m < cap; at++)
            if (!im->v[at].skip) c.rows[m++] = at;
        rc = decode_chunk(im, &c, m, e);
        if (rc) break;
        int64_t kept = keep_decoded(im, w, &c, sp, m);
        if (kept && sets_append(&out, &c, kept))
            rc = err_set(e, ERR_RUNTIME, "%s: cannot write /%s (disk full?)", w->tmp,
                         split_names[sp]);
        w->done += m;
        if (im->s->progress) im->s->progress(im->s->progress_ctx, w->done, w->total);
    }
    if (!rc && sets_shrink(&out))
        rc = err_set(e, ERR_RUNTIME, "%s: cannot resize /%s", w->tmp, split_names[sp]);
    if (!rc && out.written == 0)
        rc = err_set(e, ERR_INPUT, "%s: no readable images for the %s split", im->dir,
                     split_names[sp]);
    chunk_free(&c);
    sets_close(&out);
    return rc;
}

// Root attributes (dataset.h) and /preprocessing (preprocess.h).
static int write_attrs(Import *im, Writer *w, const ImagePrep *prep, int conversions, Err *e) {
    int C = prep->channels;
    Preprocess pp;
    prep_init(&pp, (Shape){3, {C, prep->height, prep->width}}, prep->bit_depth);
    snprintf(pp.source, sizeof pp.source, "images");
    snprintf(pp.channel_order, sizeof pp.channel_order, C == 1 ? "L" : "RGB");
    snprintf(pp.resize, sizeof pp.resize, prep->resize ? "lanczos3" : "none");
    snprintf(pp.convert, sizeof pp.convert, !conversions ? "none" : C == 1 ? "gray" : "rgb");
    double max = prep_pixel_max(prep->bit_depth);
    pp.nchan = C;
    for (int c = 0; c < C; c++) {
        double n = w->pixels > 0 ? w->pixels : 1;
        double mean = w->sum[c] / n / max, var = w->sumsq[c] / n / (max * max) - mean * mean;
        pp.mean[c] = (float)mean;
        // a constant channel has no spread; 1 leaves it centred instead of dividing by 0
        pp.std[c] = var > 1e-12 ? (float)sqrt(var) : 1.0f;
    }
    pp.num_classes = im->num_classes;
    pp.classes = im->classes;  // borrowed: not prep_free'd
    const char *const *names = (const char *const *)im->classes;
    int bad = h5u_write_attr_i64(w->file, "num_classes", im->num_classes) ||
              h5u_write_attr_strs(w->file, "classes", names, im->num_classes) ||
              h5u_write_attr_strs(w->file, "class_names", names, im->num_classes) ||
              h5u_write_attr_f32s(w->file, "mean", pp.mean, C) ||
              h5u_write_attr_f32s(w->file, "std", pp.std, C) || prep_h5_write(w->file, &pp);
    if (bad) return err_set(e, ERR_RUNTIME, "%s: cannot write the root attributes", w->tmp);
    return ERR_OK;
}

// fsync of a file or folder by path; 0 or errno (EINVAL: a file system that cannot, ignored).
static int fsync_path(const char *path, int flags) {
    int fd = open(path, O_RDONLY | flags);
    if (fd < 0) return errno;
    int err = fsync(fd) && errno != EINVAL ? errno : 0;
    close(fd);
    return err;
}

// The folder out lives in ("." for a bare name) into dir.
static void parent_of(const char *out, char *dir, size_t len) {
    const char *slash = strrchr(out, '/');
    if (!slash) snprintf(dir, len, ".");
    else if (slash == out) snprintf(dir, len, "/");
    else snprintf(dir, len, "%.*s", (int)(slash - out), out);
}

// --out must name a file in an existing folder.
static int check_out(const char *out, Err *e) {
    char dir[4096];
    struct stat st;
    parent_of(out, dir, sizeof dir);
    if (!*out) return err_set(e, ERR_INPUT, "--out is empty");
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return err_set(e, ERR_INPUT, "--out %s: folder %s does not exist", out, dir);
    if (stat(out, &st) == 0 && S_ISDIR(st.st_mode))
        return err_set(e, ERR_INPUT, "--out %s: is a folder; name the file to write", out);
    return ERR_OK;
}

// The temporary file being written, for import_remove_partial ("" when none).
static char partial[4200];
static volatile sig_atomic_t partial_set;

void import_remove_partial(void) {
    if (partial_set) unlink(partial);  // async-signal-safe
}

// Pass 2 and the file: writes everything to tmp, then renames it over out.
static int write_file(Import *im, const ImagePrep *prep, int conversions, int64_t *count,
                      Err *e) {
    char *tmp = partial;
    snprintf(partial, sizeof partial, "%s.tmp.%d", im->s->out, (int)getpid());
    partial_set = 1;
    h5u_quiet();
    Writer w = {.tmp = tmp, .count = count};
    for (int64_t i = 0; i < im->n; i++) w.total += !im->v[i].skip;
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    if (fcpl >= 0 &&
        H5Pset_link_creation_order(fcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED) >= 0)
        w.file = H5Fcreate(tmp, H5F_ACC_TRUNC, fcpl, H5P_DEFAULT);
    else
        w.file = H5I_INVALID_HID;
    h5u_close(&fcpl);
    if (w.file < 0) {
        int err = errno;
        unlink(tmp);
        partial_set = 0;
        return err_set(e, ERR_RUNTIME, "%s: cannot create: %s", tmp, strerror(err));
    }
    int rc = ERR_OK;
    int64_t lo = 0;
    for (int sp = 0; sp < IMPORT_SPLITS && !rc; sp++) {
        int64_t hi = lo;
        while (hi < im->n && im->v[hi].split == sp) hi++;
        int64_t live = 0;
        for (int64_t i = lo; i < hi; i++) live += !im->v[i].skip;
        if (live) rc = write_split(im, &w, prep, sp, lo, hi, e);
        else if (sp == IMPORT_TRAIN)
            rc = err_set(e, ERR_INPUT, "%s: no images for the train split", im->dir);
        lo = hi;
    }
    if (!rc) rc = write_attrs(im, &w, prep, conversions, e);
    if (H5Fclose(w.file) < 0 && !rc)
        rc = err_set(e, ERR_RUNTIME, "%s: cannot write (disk full?)", tmp);
    int err = 0;
    if (!rc && (err = fsync_path(tmp, 0)))
        rc = err_set(e, ERR_RUNTIME, "%s: cannot write: %s", tmp, strerror(err));
    if (!rc && rename(tmp, im->s->out))
        rc = err_set(e, ERR_RUNTIME, "%s: cannot write: %s", im->s->out, strerror(errno));
    if (rc) unlink(tmp);
    partial_set = 0;
    if (rc) return rc;
    char dir[4096];
    parent_of(im->s->out, dir, sizeof dir);
    fsync_path(dir, O_DIRECTORY);
    return ERR_OK;
}

static void import_free(Import *im) {
    for (int64_t i = 0; i < im->n; i++) free(im->v[i].rel);
    free(im->v);
    free_names(im->classes, im->num_classes);
}

int image_folder_import(const ImportSpec *s, ImportSummary *sum, Err *e) {
    memset(sum, 0, sizeof *sum);
    Import im = {.s = s};
    size_t len = strlen(s->dir);
    while (len > 1 && s->dir[len - 1] == '/') len--;
    if (len >= sizeof im.dir) return err_set(e, ERR_INPUT, "%.64s...: path too long", s->dir);
    memcpy(im.dir, s->dir, len);
    im.threads = s->threads > 0 ? s->threads : pool_default_threads();
    int rc = check_out(s->out, e);
    if (!rc) rc = image_lib_init("regdist", e);
    if (!rc) rc = walk_tree(&im, e);
    if (!rc && im.num_classes < 2)
        rc = err_set(e, ERR_INPUT, "%s%s: only one class folder (%s); a classifier needs at "
                     "least two", im.dir, im.split_folders ? "/train" : "", im.classes[0]);
    ImagePrep prep;
    int conversions = 0;
    if (!rc) rc = read_headers(&im, e);
    if (!rc) rc = check_headers(&im, &prep, &conversions, e);
    if (!rc) rc = assign_splits(&im, e);
    int64_t *count = NULL;
    if (!rc) {
        qsort(im.v, (size_t)im.n, sizeof *im.v, cmp_entry);
        count = calloc((size_t)IMPORT_SPLITS * im.num_classes, sizeof *count);
        if (!count) rc = err_set(e, ERR_RUNTIME, "out of memory");
    }
    if (!rc) rc = write_file(&im, &prep, conversions, count, e);
    if (rc) {
        free(count);
        import_free(&im);
        return rc;
    }
    sum->num_classes = im.num_classes;
    sum->classes = im.classes;
    im.classes = NULL;
    im.num_classes = 0;
    sum->count = count;
    sum->ignored = im.ignored;
    sum->skipped = im.skipped;
    snprintf(sum->first_skipped, sizeof sum->first_skipped, "%s", im.first_skipped);
    sum->split_folders = im.split_folders;
    sum->shape = (Shape){3, {prep.channels, prep.height, prep.width}};
    sum->bit_depth = prep.bit_depth;
    sum->threads = im.threads;
    import_free(&im);
    return ERR_OK;
}

void import_summary_free(ImportSummary *sum) {
    free_names(sum->classes, sum->num_classes);
    free(sum->count);
    memset(sum, 0, sizeof *sum);
}
