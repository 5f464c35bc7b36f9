// predict.c: `regdist predict`: class probabilities with Monte-Carlo-dropout uncertainty
// (Gal & Ghahramani 2016). K stochastic forward passes with every dropout-family layer
// drawing masks (BatchNorm stays in eval mode, on its running statistics); pass k uses
// Philox stream PHILOX_STREAM_MC_BASE + k, so a prediction is reproducible. K = 0 is one
// deterministic eval-mode pass. Works batch by batch: memory does not grow with N.
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/philox.h"
#include "io/checkpoint.h"
#include "io/predictions.h"
#include "progress.h"

static const char *usage =
    "usage: regdist predict --checkpoint F --data F [--split test] [--mc-samples K] --out P.h5\n"
    "\n"
    "Predicts every sample of a split. With K > 0 (Monte-Carlo dropout) it runs K passes\n"
    "with dropout, Dropout2d, DropBlock, DropConnect and DropPath active and BatchNorm in\n"
    "eval mode; with K = 0 (the default) one deterministic pass. Writes to P.h5:\n"
    "  probs_mean (N,classes)  mean softmax over the passes\n"
    "  probs_std  (N,classes)  standard deviation over the passes (population, 0 for K <= 1)\n"
    "  entropy    (N)          predictive entropy of probs_mean, in nats\n"
    "  pred       (N)          argmax of probs_mean\n";

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

    Err e = {0};
    Config cfg;
    Model m;
    Dataset ds;
    CkptMeta meta = {0};
    cli_load_checkpoint_model(d, ckpt, data, split, &cfg, &m, &ds, &meta);
    int K = m.num_classes, batch = m.max_batch, passes = mc > 0 ? mc : 1;
    size_t in = shape_numel(m.in);
    float *x = malloc((size_t)batch * in * sizeof(float));
    int32_t *y = malloc((size_t)batch * sizeof(int32_t));
    int64_t *ids = malloc((size_t)batch * sizeof(int64_t)), *pred = malloc((size_t)batch * 8);
    float *p = malloc((size_t)batch * K * sizeof(float)), *sum = malloc((size_t)batch * K * 4),
          *sq = malloc((size_t)batch * K * 4), *ent = malloc((size_t)batch * sizeof(float));
    if (!x || !y || !ids || !pred || !p || !sum || !sq || !ent) {
        err_set(&e, ERR_RUNTIME, "out of memory");
        cli_fail(d, &e);
    }
    PredWriter *w = NULL;
    if (d->rank == 0 && !(w = pred_open(out, ds.n, K, mc, ckpt, data, split, &e))) cli_fail(d, &e);
    Progress prog;
    int64_t nbatches = (ds.n + batch - 1) / batch;
    progress_begin(&prog, d->rank == 0, "predict", nbatches, 0);
    double t0 = now_seconds();
    for (int64_t start = 0, bi = 0; start < ds.n; start += batch, bi++) {
        int B = (int)(ds.n - start < batch ? ds.n - start : batch);
        for (int i = 0; i < B; i++) ids[i] = start + i;
        dataset_gather(&ds, ids, B, x, y);
        // Welford's running mean and M2: identical passes give a spread of exactly 0
        memset(sum, 0, (size_t)B * K * sizeof(float));
        memset(sq, 0, (size_t)B * K * sizeof(float));
        for (int k = 0; k < passes; k++) {
            StepCtx c = {.train = 0, .mc_dropout = mc > 0, .dropout_on = cfg.dropout_on,
                         .seed = cfg.seed, .step = (uint32_t)meta.step,
                         .stream = PHILOX_STREAM_MC_BASE + (uint32_t)k, .sample_ids = ids};
            softmax(p, model_forward(&m, x, B, &c), B, K);
            for (size_t i = 0; i < (size_t)B * K; i++) {
                float delta = p[i] - sum[i];
                sum[i] += delta / (float)(k + 1);
                sq[i] += delta * (p[i] - sum[i]);
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
            ent[b] = (float)h;
            pred[b] = best;
        }
        if (w && pred_write(w, start, B, sum, sq, ent, pred, &e)) {
            pred_close(w, 0, NULL);
            cli_fail(d, &e);
        }
        progress_update(&prog, bi + 1, NAN, (double)(start + B) * passes / (now_seconds() - t0));
    }
    progress_end(&prog);
    if (w && pred_close(w, 1, &e)) cli_fail(d, &e);
    if (d->rank == 0)
        printf("wrote %s: %lld samples, %d classes, %d Monte-Carlo pass%s\n", out,
               (long long)ds.n, K, mc, mc == 1 ? "" : "es");
    free(x), free(y), free(ids), free(pred), free(p), free(sum), free(sq), free(ent);
    model_free(&m);
    dataset_free(&ds);
    config_free(&cfg);
    ckpt_meta_free(&meta);
    return 0;
}
