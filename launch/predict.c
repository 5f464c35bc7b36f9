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
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "core/philox.h"
#include "io/checkpoint.h"
#include "io/image.h"
#include "io/predictions.h"
#include "progress.h"

static const char *usage =
    "usage: regdist predict --checkpoint F --data F [--split test] [--mc-samples K] --out P.h5\n"
    "       regdist predict --checkpoint F --images PATH... [--mc-samples K] --out P.csv\n"
    "\n"
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

// softmax of logits (B,K) into p (B,K)
static void softmax(float *p, const float *logits, int B, int K) {
    for (int b = 0; b < B; b++) {
        const float *z = logits + (size_t)b * K;
        float *o = p + (size_t)b * K, mx = z[0];
        for (int k = 1; k < K; k++) mx = z[k] > mx ? z[k] : mx;
        double sum = 0;
        for (int k = 0; k < K; k++) sum += (o[k] = expf(z[k] - mx));
        for (int k = 0; k < K; k++) o[k] = (float)(o[k] / sum);
    }
}

// What predict_batch gives for each of up to `batch` samples.
typedef struct {
    float *p;          // (batch, K) scratch: one pass's softmax
    float *mean, *std; // (batch, K) over the passes
    float *entropy;    // (batch) of mean, nats
    int64_t *pred;     // (batch) argmax of mean
} PredBatch;

static int pred_batch_alloc(PredBatch *o, int batch, int K) {
    size_t bk = (size_t)batch * (size_t)K;
    o->p = malloc(bk * sizeof(float));
    o->mean = malloc(bk * sizeof(float));
    o->std = malloc(bk * sizeof(float));
    o->entropy = malloc((size_t)batch * sizeof(float));
    o->pred = malloc((size_t)batch * sizeof(int64_t));
    return o->p && o->mean && o->std && o->entropy && o->pred ? 0 : -1;
}

static void pred_batch_free(PredBatch *o) {
    free(o->p), free(o->mean), free(o->std), free(o->entropy), free(o->pred);
}

// The B samples x (B, in), global indices ids (B), through mc Monte-Carlo passes (mc = 0: one
// deterministic eval-mode pass) into o.
static void predict_batch(PredBatch *o, Model *m, const Config *cfg, const CkptMeta *meta,
                          int mc, float *x, int64_t *ids, int B) {
    int K = m->num_classes, passes = mc > 0 ? mc : 1;
    float *sum = o->mean, *sq = o->std;
    // Welford's running mean and M2: identical passes give a spread of exactly 0
    memset(sum, 0, (size_t)B * K * sizeof(float));
    memset(sq, 0, (size_t)B * K * sizeof(float));
    for (int k = 0; k < passes; k++) {
        StepCtx c = {.train = 0, .mc_dropout = mc > 0, .dropout_on = cfg->dropout_on,
                     .seed = cfg->seed, .step = (uint32_t)meta->step,
                     .stream = PHILOX_STREAM_MC_BASE + (uint32_t)k, .sample_ids = ids};
        softmax(o->p, model_forward(m, x, B, &c), B, K);
        for (size_t i = 0; i < (size_t)B * K; i++) {
            float delta = o->p[i] - sum[i];
            sum[i] += delta / (float)(k + 1);
            sq[i] += delta * (o->p[i] - sum[i]);
        }
    }
    for (int b = 0; b < B; b++) {
        double h = 0;
        int best = 0;
        for (int k = 0; k < K; k++) {
            size_t i = (size_t)b * K + k;
            float mean = sum[i], var = sq[i] / passes;
            sq[i] = var > 0 ? sqrtf(var) : 0.0f;
            if (mean > 0) h -= mean * log(mean);
            if (mean > sum[(size_t)b * K + best]) best = k;
        }
        o->entropy[b] = (float)h;
        o->pred[b] = best;
    }
}

static void out_of_memory(const Dist *d) {
    Err e = {0};
    err_set(&e, ERR_RUNTIME, "out of memory");
    cli_fail(d, &e);
}

// ---- a split of a dataset file, to HDF5 ----

static void predict_data(const Dist *d, const char *ckpt, const char *data, const char *split,
                         int mc, const char *out) {
    Err e = {0};
    Config cfg;
    Model m;
    Dataset ds;
    CkptMeta meta = {0};
    cli_load_checkpoint_model(d, ckpt, data, split, 0, &cfg, &m, &ds, &meta);
    int K = m.num_classes, batch = m.max_batch, passes = mc > 0 ? mc : 1;
    size_t in = shape_numel(m.in);
    float *x = malloc((size_t)batch * in * sizeof(float));
    int64_t *ids = malloc((size_t)batch * sizeof(int64_t));
    PredBatch o;
    if (!x || !ids || pred_batch_alloc(&o, batch, K)) out_of_memory(d);
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
        predict_batch(&o, &m, &cfg, &meta, mc, x, ids, B);
        if (w && pred_write(w, start, B, o.mean, o.std, o.entropy, o.pred, &e)) {
            pred_close(w, 0, NULL);
            cli_fail(d, &e);
        }
        progress_update(&prog, bi + 1, NAN, (double)(start + B) * passes / (now_seconds() - t0));
    }
    progress_end(&prog);
    if (w && pred_close(w, 1, &e)) cli_fail(d, &e);
    if (d->rank == 0)
        printf("wrote %s: %lld samples%s, %d classes, %d Monte-Carlo pass%s\n", out,
               (long long)ds.n, ds.labelled ? "" : " (unlabelled)", K, mc, mc == 1 ? "" : "es");
    free(x), free(ids);
    pred_batch_free(&o);
    model_free(&m);
    dataset_free(&ds);
    config_free(&cfg);
    ckpt_meta_free(&meta);
}

int cmd_predict(Dist *d, int argc, char **argv) {
    static const struct option opts[] = {
        {"checkpoint", required_argument, 0, 'c'}, {"data", required_argument, 0, 'd'},
        {"split", required_argument, 0, 's'},      {"mc-samples", required_argument, 0, 'k'},
        {"out", required_argument, 0, 'o'},        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *ckpt = NULL, *data = NULL, *split = "test", *out = NULL;
    int mc = 0, ch;
    opterr = 0;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'c': ckpt = optarg; break;
        case 'd': data = optarg; break;
        case 's': split = optarg; break;
        case 'k': mc = (int)cli_parse_int(d, "predict", "--mc-samples", optarg, 0, 100000); break;
        case 'o': out = optarg; break;
        case 'h':
            if (d->rank == 0) fputs(usage, stdout);
            return 0;
        default:
            cli_usage_fail(d, "predict", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) cli_usage_fail(d, "predict", "unexpected argument '%s'", argv[optind]);
    if (!ckpt) cli_usage_fail(d, "predict", "--checkpoint is required");
    if (!data) cli_usage_fail(d, "predict", "--data is required");
    if (!out) cli_usage_fail(d, "predict", "--out is required");
    if (strcmp(split, "train") && strcmp(split, "val") && strcmp(split, "test"))
        cli_usage_fail(d, "predict", "--split must be train, val or test, got '%s'", split);
    predict_data(d, ckpt, data, split, mc, out);
    return 0;
}
