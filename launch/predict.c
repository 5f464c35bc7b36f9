// predict.c: `regdist predict`: class probabilities with Monte-Carlo-dropout uncertainty
// (Gal & Ghahramani 2016), for a split of a dataset file (to HDF5) or for image files (to
// CSV). K stochastic forward passes with every dropout-family layer drawing masks (BatchNorm
// stays in eval mode, on its running statistics); pass k uses Philox stream
// PHILOX_STREAM_MC_BASE + k, so a prediction is reproducible. K = 0 is one deterministic
// eval-mode pass. Works batch by batch: memory does not grow with N. Both inputs reach the
// model the same way: stored pixels, then dataset_gather's normalization with the
// checkpoint's mean/std, then predict_batch.
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "core/augment.h"
#include "core/mc.h"
#include "core/philox.h"
#include "io/checkpoint.h"
#include "io/image.h"
#include "io/imagefolder.h"
#include "io/pool.h"
#include "io/predictions.h"
#include "options.h"
#include "progress.h"

static const char *usage =
    "usage: regdist predict --checkpoint F --data F [--split test] [--mc-samples K] --out P.h5\n"
    "       regdist predict --checkpoint F --images PATH... [--mc-samples K] --out P.csv\n"
    "                       [--tta flip] [--overwrite]\n"
    "\n"
    "An existing --out file is refused (exit 2) unless --overwrite says to replace it.\n"
    "Predicts every sample of a split, or every image file. With K > 0 (Monte-Carlo dropout)\n"
    "it runs K passes with dropout, Dropout2d, DropBlock, DropConnect and DropPath active and\n"
    "BatchNorm in eval mode; with K = 0 (the default) one deterministic pass. Samples are\n"
    "normalized with the mean/std stored in the checkpoint (what training used), whatever the\n"
    "data file says; a difference is reported on stderr.\n"
    "\n"
    "--data F: the split may lack labels (y). Writes to P.h5:\n"
    "  probs_mean (N,classes)  mean softmax over the passes\n"
    "  probs_std  (N,classes)  standard deviation over the passes (population, 0 for K <= 1)\n"
    "  entropy    (N)          predictive entropy of probs_mean, in nats\n"
    "  pred       (N)          argmax of probs_mean\n"
    "  paths      (N)          copied from the split, when it has them\n"
    "\n"
    "--images PATH...: image files (any name) and folders (searched recursively for .png .jpg\n"
    ".jpeg .tif .tiff; names starting with '.' skipped), predicted in path order (strcmp).\n"
    "Each file is decoded as the checkpoint's training images were imported: its channels,\n"
    "size, bit depth, and resizing (lanczos3) or channel conversion only if the import did\n"
    "them. A checkpoint trained on data that was not imported from images (fashion-mnist,\n"
    "synth) gets files converted to its input's channels at 8 bits, and resized (lanczos3)\n"
    "only when a file's size differs from its input; one trained on float32 samples cannot\n"
    "take images. Writes the CSV P.csv (RFC 4180):\n"
    "  path,class,probability                 class name (or index) and its probability,\n"
    "                                         from the deterministic pass\n"
    "  ,mc_mean_probability,mc_std,entropy    with K > 0: that class's mean probability over\n"
    "                                         the K passes, its standard deviation, and the\n"
    "                                         predictive entropy of the mean (nats)\n"
    "A file that cannot be decoded ends the command (exit 2) and leaves no CSV.\n";

// Mirrors every image of x (B,C,H,W) left to right, in place: the second test-time view.
static void mirror_batch(float *x, Shape in, int B) {
    size_t per = shape_numel(in);
    for (int b = 0; b < B; b++) augment_hflip(x + (size_t)b * per, in.d[0], in.d[1], in.d[2]);
}

// The B samples x (B, in), global indices ids (B), through mc Monte-Carlo passes (mc = 0: one
// deterministic eval-mode pass) of each of `views` test-time views (1: as is; 2: also mirrored,
// --tta flip) into o: mean, sd and entropy over every pass of every view. x is as it came.
static void predict_batch(McBatch *o, Model *m, const Config *cfg, const CkptMeta *meta,
                          int mc, int views, float *x, int64_t *ids, int B) {
    int K = m->num_classes, passes = mc > 0 ? mc : 1;
    mc_begin(o->mean, o->std, B, K);
    for (int v = 0; v < views; v++) {
        if (v == 1) mirror_batch(x, m->in, B);
        for (int k = 0; k < passes; k++) {
            StepCtx c = {.train = 0, .mc_dropout = mc > 0, .dropout_on = cfg->dropout_on,
                         .seed = cfg->seed, .step = (uint32_t)meta->step,
                         .stream = PHILOX_STREAM_MC_BASE + (uint32_t)k, .sample_ids = ids};
            mc_softmax(o->p, model_forward(m, x, B, &c), B, K);
            mc_add(o->mean, o->std, o->p, v * passes + k, B, K);
        }
    }
    if (views == 2) mirror_batch(x, m->in, B);  // back as it came
    mc_finish(o->std, o->entropy, o->pred, o->mean, views * passes, B, K);
}

// --tta flip mirrors images: a model of flat (D) samples has none to mirror.
static void check_views(const Dist *d, const Model *m, int views) {
    if (views == 2 && m->in.ndim != 3) {
        Err e;
        err_set(&e, ERR_INPUT, "--tta flip needs image input (C,H,W); this model takes (%d)",
                m->in.d[0]);
        cli_fail(d, &e);
    }
}

static void out_of_memory(const Dist *d) {
    Err e = {0};
    err_set(&e, ERR_RUNTIME, "out of memory");
    cli_fail(d, &e);
}

// ---- a split of a dataset file, to HDF5 ----

static void predict_data(const Dist *d, const char *ckpt, const char *data, const char *split,
                         int mc, int views, const char *out) {
    Err e = {0};
    Config cfg;
    Model m;
    Dataset ds;
    CkptMeta meta = {0};
    cli_load_checkpoint_model(d, ckpt, data, split, 0, &cfg, &m, &ds, &meta);
    check_views(d, &m, views);
    int K = m.num_classes, batch = m.max_batch, passes = mc > 0 ? mc : 1;
    size_t in = shape_numel(m.in);
    float *x = malloc((size_t)batch * in * sizeof(float));
    int64_t *ids = malloc((size_t)batch * sizeof(int64_t));
    McBatch o;
    if (!x || !ids || mc_batch_alloc(&o, batch, K)) out_of_memory(d);
    PredWriter *w = NULL;
    if (d->rank == 0 && !(w = pred_open(out, ds.n, K, mc, ckpt, data, split, &e))) cli_fail(d, &e);
    if (w && ds.has_paths && pred_copy_paths(w, data, split, &e)) {
        pred_close(w, 0, NULL);
        cli_fail(d, &e);
    }
    Progress prog;
    int64_t nbatches = (ds.n + batch - 1) / batch;
    progress_begin(&prog, d->rank == 0, "predict", nbatches, 0);
    double t0 = now_seconds();
    for (int64_t start = 0, bi = 0; start < ds.n; start += batch, bi++) {
        int B = (int)(ds.n - start < batch ? ds.n - start : batch);
        for (int i = 0; i < B; i++) ids[i] = start + i;
        dataset_gather(&ds, ids, B, x, NULL);
        predict_batch(&o, &m, &cfg, &meta, mc, views, x, ids, B);
        if (w && pred_write(w, start, B, o.mean, o.std, o.entropy, o.pred, &e)) {
            pred_close(w, 0, NULL);
            cli_fail(d, &e);
        }
        progress_update(&prog, bi + 1, NAN, (double)(start + B) * passes / (now_seconds() - t0));
    }
    progress_end(&prog);
    if (w && pred_close(w, 1, &e)) cli_fail(d, &e);
    if (d->rank == 0)
        printf("wrote %s: %lld samples%s, %d classes, %d Monte-Carlo pass%s%s\n", out,
               (long long)ds.n, ds.labelled ? "" : " (unlabelled)", K, mc, mc == 1 ? "" : "es",
               views == 2 ? ", each image and its mirror (--tta flip)" : "");
    free(x), free(ids);
    mc_batch_free(&o);
    model_free(&m);
    dataset_free(&ds);
    config_free(&cfg);
    ckpt_meta_free(&meta);
}

// ---- image files, to CSV ----

typedef struct {
    char **v;
    size_t n, cap;
} PathList;

static int path_push(PathList *l, const char *path, Err *e) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        char **v = realloc(l->v, cap * sizeof *v);
        if (!v) return err_set(e, ERR_RUNTIME, "out of memory listing images");
        l->v = v, l->cap = cap;
    }
    if (!(l->v[l->n] = strdup(path))) return err_set(e, ERR_RUNTIME, "out of memory listing images");
    l->n++;
    return ERR_OK;
}

static void path_list_free(PathList *l) {
    for (size_t i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
}

// The folders being walked, to notice a symlink that leads back into one of them.
typedef struct {
    dev_t dev[64];
    ino_t ino[64];
    int n;
} WalkStack;

// Adds path's image files to l: path itself when it is a file named on the command line
// (top), image-named files found under a folder (recursively, following symlinks; names
// starting with '.' skipped).
static int walk(PathList *l, const char *path, int top, WalkStack *st, Err *e) {
    struct stat sb;
    if (stat(path, &sb) != 0) {
        if (top || errno != ENOENT) return err_set(e, ERR_INPUT, "%s: %s", path, strerror(errno));
        return ERR_OK;  // a dangling symlink inside a folder is not an image
    }
    if (S_ISREG(sb.st_mode)) return top || image_is_image_name(path) ? path_push(l, path, e) : ERR_OK;
    if (!S_ISDIR(sb.st_mode))
        return top ? err_set(e, ERR_INPUT, "%s: not an image file or a folder", path) : ERR_OK;
    for (int i = 0; i < st->n; i++)
        if (st->dev[i] == sb.st_dev && st->ino[i] == sb.st_ino)
            return err_set(e, ERR_INPUT, "%s: a symlink loop (leads back into a folder above it)",
                           path);
    if (st->n == (int)(sizeof st->dev / sizeof st->dev[0]))
        return err_set(e, ERR_INPUT, "%s: folders nested deeper than %d", path, st->n);
    DIR *dir = opendir(path);
    if (!dir) return err_set(e, ERR_INPUT, "%s: %s", path, strerror(errno));
    st->dev[st->n] = sb.st_dev, st->ino[st->n] = sb.st_ino, st->n++;
    int rc = ERR_OK;
    size_t len = strlen(path);
    int slash = len > 0 && path[len - 1] == '/';
    for (struct dirent *ent; !rc && (ent = readdir(dir));) {
        if (ent->d_name[0] == '.') continue;  // ".", "..", hidden files and folders
        char *child = malloc(len + strlen(ent->d_name) + 2);
        if (!child) {
            rc = err_set(e, ERR_RUNTIME, "out of memory listing images");
            break;
        }
        sprintf(child, slash ? "%s%s" : "%s/%s", path, ent->d_name);
        rc = walk(l, child, 0, st, e);
        free(child);
    }
    closedir(dir);
    st->n--;
    return rc;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

// Every image file the PATHs name, sorted by path (strcmp). A PATH that is missing, or a
// folder without images, is bad input.
static int list_images(PathList *l, char **paths, int npaths, Err *e) {
    memset(l, 0, sizeof *l);
    for (int i = 0; i < npaths; i++) {
        WalkStack st = {.n = 0};
        size_t before = l->n;
        int rc = walk(l, paths[i], 1, &st, e);
        if (!rc && l->n == before)
            rc = err_set(e, ERR_INPUT, "%s: no image files (.png .jpg .jpeg .tif .tiff) in it",
                         paths[i]);
        if (rc) {
            path_list_free(l);
            return rc;
        }
    }
    qsort(l->v, l->n, sizeof *l->v, cmp_str);
    return ERR_OK;
}

// How to decode a file for a model trained on data made as p says (see the help text).
static int image_prep_for(ImagePrep *ip, const Preprocess *p, const char *ckpt, Err *e) {
    const Shape s = p->input;
    if (s.ndim != 3 || (s.d[0] != 1 && s.d[0] != 3))
        return err_set(e, ERR_INPUT, "%s takes samples of %d dimension%s (%d first), not images "
                       "of 1 or 3 channels", ckpt, s.ndim, s.ndim == 1 ? "" : "s", s.d[0]);
    if (p->bit_depth != 8 && p->bit_depth != 16)
        return err_set(e, ERR_INPUT, "%s was trained on float32 samples: their pixel scale is "
                       "unknown, so image files cannot be fed to it", ckpt);
    int imported = strcmp(p->source, "images") == 0;
    *ip = (ImagePrep){.channels = s.d[0], .height = s.d[1], .width = s.d[2],
                      .bit_depth = p->bit_depth,
                      .convert = imported ? strcmp(p->convert, "none") != 0 : 1,
                      .resize = imported ? strcmp(p->resize, "none") != 0 : 1};
    return ERR_OK;
}

// A batch of files decoded on the pool (io/pool.h), one file per task (libvips runs one
// worker per image: see io/image.c).
typedef struct {
    char *const *files;  // (n)
    const ImagePrep *ip;
    char *pixels;        // (n, per) stored pixels
    size_t per;          // bytes of one decoded file
    Err *errs;           // (n) each file's outcome
} DecodeJob;

static void decode_task(void *ctx, int64_t i) {
    DecodeJob *j = ctx;
    j->errs[i].code = ERR_OK;
    image_load(j->files[i], j->ip, j->pixels + (size_t)i * j->per, &j->errs[i]);
}

// Decodes files[0..n) into pixels with up to `threads` threads; errs is scratch of n. The
// error reported is the first failing file's in path order, however the threads ran.
static int decode_batch(char *const *files, int n, const ImagePrep *ip, void *pixels, size_t per,
                        Err *errs, int threads, Err *e) {
    DecodeJob j = {.files = files, .ip = ip, .pixels = pixels, .per = per, .errs = errs};
    Pool pool;
    pool_run(&pool, threads, n, decode_task, &j);
    for (int i = 0; i < n; i++)
        if (errs[i].code) {
            *e = errs[i];
            return e->code;
        }
    return ERR_OK;
}

// The class name of label k, or its number when the checkpoint has no names.
static const char *class_name(const Preprocess *p, int64_t k, char *buf, size_t len) {
    if (p->classes && k >= 0 && k < p->num_classes) return p->classes[k];
    snprintf(buf, len, "%lld", (long long)k);
    return buf;
}

// Ends the job over a bad file (or anything else), leaving no CSV behind.
_Noreturn static void fail_images(const Dist *d, PredCsv *w, const Err *e) {
    if (w) pred_csv_close(w, 0, NULL);
    cli_fail(d, e);
}

// A batch of image files on their way to the model: decoded as ip says into stored pixels,
// which dataset_gather normalizes as a dataset's would be.
typedef struct {
    const ImagePrep *ip;
    int threads;     // decoding threads
    Dataset px;      // the batch's stored pixels, (batch, C,H,W)
    void *pixels;    // px's pixel buffer
    size_t per;      // bytes of one decoded file
    float *x;        // (batch, C,H,W) normalized
    int64_t *ids;    // (batch)
    Err *errs;       // (batch) each file's decoding outcome
} FileBatch;

// fb for up to batch files of the checkpoint's input (p, its preprocessing; ckpt its name).
static int file_batch_alloc(FileBatch *fb, const Preprocess *p, const ImagePrep *ip, int batch,
                            const char *ckpt, Err *e) {
    *fb = (FileBatch){.ip = ip, .threads = pool_default_threads(),
                      .px = {.shape = p->input, .pixel = ip->bit_depth == 16 ? PIXEL_U16 : PIXEL_U8,
                             .nchan = p->input.d[0], .labelled = 0}};
    snprintf(fb->px.file, sizeof fb->px.file, "%s", ckpt);
    snprintf(fb->px.split, sizeof fb->px.split, "images");
    if (dataset_use_norm(&fb->px, p, e)) return e->code;
    size_t in = shape_numel(p->input);
    fb->per = in * dataset_pixel_bytes(&fb->px);
    fb->pixels = malloc((size_t)batch * fb->per);
    fb->px.x_u8 = fb->px.pixel == PIXEL_U8 ? fb->pixels : NULL;
    fb->px.x_u16 = fb->px.pixel == PIXEL_U16 ? fb->pixels : NULL;
    fb->x = malloc((size_t)batch * in * sizeof(float));
    fb->ids = malloc((size_t)batch * sizeof(int64_t));
    fb->errs = malloc((size_t)batch * sizeof *fb->errs);
    if (!fb->pixels || !fb->x || !fb->ids || !fb->errs)
        return err_set(e, ERR_RUNTIME, "out of memory");
    return ERR_OK;
}

static void file_batch_free(FileBatch *fb) {
    free(fb->pixels), free(fb->x), free(fb->ids), free(fb->errs);
}

// Decodes files[0..B) into fb->x, normalized; fb->ids are then their indices in the list (from
// start), which key their dropout masks.
static int load_files(FileBatch *fb, char *const *files, int64_t start, int B, Err *e) {
    if (decode_batch(files, B, fb->ip, fb->pixels, fb->per, fb->errs, fb->threads, e))
        return e->code;
    for (int i = 0; i < B; i++) fb->ids[i] = i;  // rows of px
    fb->px.n = fb->px.nloaded = B;
    dataset_gather(&fb->px, fb->ids, B, fb->x, NULL);
    for (int i = 0; i < B; i++) fb->ids[i] = start + i;
    return ERR_OK;
}

// A CSV row for each of files[0..B): the deterministic pass's class and probability (det), and
// with mc > 0 that class's Monte-Carlo mean and sd and the entropy (mcb).
static int csv_rows(PredCsv *w, char *const *files, int B, const McBatch *det,
                    const McBatch *mcb, int mc, int K, const Preprocess *p, Err *e) {
    for (int b = 0; b < B; b++) {
        char num[32];
        int64_t k = det->pred[b];
        size_t at = (size_t)b * K + (size_t)k;
        float extra[3] = {mc > 0 ? mcb->mean[at] : 0, mc > 0 ? mcb->std[at] : 0,
                          mc > 0 ? mcb->entropy[b] : 0};
        if (pred_csv_row(w, files[b], class_name(p, k, num, sizeof num), det->mean[at],
                         mc > 0 ? extra : NULL, e))
            return e->code;
    }
    return ERR_OK;
}

// Rank 0's work: the files are few enough that one process decodes and predicts them.
static void predict_images(const Dist *d, const char *ckpt, char **paths, int npaths, int mc,
                           int views, const char *out) {
    Err e = {0};
    Config cfg;
    Model m;
    CkptMeta meta = {0};
    cli_load_checkpoint_alone(d, ckpt, &cfg, &m, &meta);
    check_views(d, &m, views);
    const Preprocess *p = &meta.stored_prep;
    ImagePrep ip;
    PathList files;
    FileBatch fb;
    if (image_prep_for(&ip, p, ckpt, &e) || image_lib_init("regdist", &e) ||
        list_images(&files, paths, npaths, &e) ||
        file_batch_alloc(&fb, p, &ip, m.max_batch, ckpt, &e))
        cli_fail(d, &e);
    int K = m.num_classes, batch = m.max_batch;
    McBatch det, mcb = {0};
    if (mc_batch_alloc(&det, batch, K) || (mc > 0 && mc_batch_alloc(&mcb, batch, K)))
        out_of_memory(d);
    PredCsv *w = pred_csv_open(out, mc, &e);
    if (!w) cli_fail(d, &e);
    int64_t n = (int64_t)files.n;
    Progress prog;
    progress_begin(&prog, 1, "predict", (n + batch - 1) / batch, 0);
    double t0 = now_seconds();
    for (int64_t start = 0, bi = 0; start < n; start += batch, bi++) {
        int B = (int)(n - start < batch ? n - start : batch);
        if (load_files(&fb, files.v + start, start, B, &e)) fail_images(d, w, &e);
        predict_batch(&det, &m, &cfg, &meta, 0, views, fb.x, fb.ids, B);
        if (mc > 0) predict_batch(&mcb, &m, &cfg, &meta, mc, views, fb.x, fb.ids, B);
        if (csv_rows(w, files.v + start, B, &det, &mcb, mc, K, p, &e)) fail_images(d, w, &e);
        progress_update(&prog, bi + 1, NAN,
                        (double)(start + B) * (1 + mc) / (now_seconds() - t0));
    }
    progress_end(&prog);
    if (pred_csv_close(w, 1, &e)) cli_fail(d, &e);
    printf("wrote %s: %lld image%s, %d classes, %d Monte-Carlo pass%s%s\n", out, (long long)n,
           n == 1 ? "" : "s", K, mc, mc == 1 ? "" : "es",
           views == 2 ? ", each image and its mirror (--tta flip)" : "");
    file_batch_free(&fb);
    mc_batch_free(&det);
    if (mc > 0) mc_batch_free(&mcb);
    path_list_free(&files);
    image_lib_shutdown();
    model_free(&m);
    config_free(&cfg);
    ckpt_meta_free(&meta);
}

int cmd_predict(Dist *d, int argc, char **argv) {
    const char *ckpt = NULL, *data = NULL, *split = NULL, *out = NULL, *tta = NULL;
    int mc = 0, overwrite = 0;
    // --images PATH... : the PATH after each --images, and every other non-option argument
    OptList images = {calloc((size_t)argc + 1, sizeof(char *)), 0, argc};
    if (!images.v) out_of_memory(d);
    const Opt opts[] = {
        OPT_S("checkpoint", &ckpt, "F", "a checkpoint written by regdist train", 1),
        OPT_S("data", &data, "F", "an HDF5 dataset", 0),
        OPT_S("split", &split, "S", "train, val or test (default test); with --data", 0),
        OPT_L("images", &images, "PATH...", "image files and folders"),
        OPT_I("mc-samples", &mc, "K", "Monte-Carlo passes (default 0: one deterministic pass)",
              0, 100000),
        OPT_S("tta", &tta, "flip", "test-time augmentation: average over each image and its "
              "mirror (with --mc-samples K: K passes of each)", 0),
        OPT_S("out", &out, "P", "P.h5 for --data, P.csv for --images", 0),
        OPT_F("overwrite", &overwrite, "replace an existing --out file"),
        OPT_END};
    int at = opts_parse(d, "predict", opts, argc, argc, argv, 1);
    if (at < 0) {
        if (d->rank == 0) fputs(usage, stdout), fputs("\n", stdout), opts_print_help(stdout, opts);
        free(images.v);
        return 0;
    }
    if (at < argc && !images.n)
        cli_usage_fail(d, "predict", "unexpected argument '%s'", argv[at]);
    while (at < argc) images.v[images.n++] = argv[at++];
    char **paths = (char **)images.v;
    int nimages = images.n;
    if (data && nimages)
        cli_usage_fail(d, "predict", "--data and --images exclude each other: predict a dataset "
                       "file or image files, one or the other");
    if (!data && !nimages) cli_usage_fail(d, "predict", "--data or --images is required");
    if (!out) cli_usage_fail(d, "predict", "--out is required");
    if (nimages && split) cli_usage_fail(d, "predict", "--split goes with --data, not --images");
    if (tta && strcmp(tta, "flip") && strcmp(tta, "none"))
        cli_usage_fail(d, "predict", "--tta must be flip or none, got '%s'", tta);
    int views = tta && !strcmp(tta, "flip") ? 2 : 1;
    if (!split) split = "test";
    if (strcmp(split, "train") && strcmp(split, "val") && strcmp(split, "test"))
        cli_usage_fail(d, "predict", "--split must be train, val or test, got '%s'", split);
    cli_check_out_file(d, "--out", out, overwrite);  // before any work: exit 2, nothing lost
    if (data)
        predict_data(d, ckpt, data, split, mc, views, out);
    else if (d->rank == 0)
        predict_images(d, ckpt, paths, nimages, mc, views, out);
    free(images.v);
    return 0;
}
