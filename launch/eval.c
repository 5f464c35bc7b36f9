// eval.c: `regdist eval`: loss, accuracy and expected calibration error of a checkpoint on a
// split. The model is rebuilt from the config text the checkpoint carries.
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "io/checkpoint.h"

static const char *usage =
    "usage: regdist eval --checkpoint F --data F [--split test] [--json]\n"
    "\n"
    "Evaluates a checkpoint on one split of a dataset: mean cross-entropy (no label\n"
    "smoothing), accuracy, expected calibration error (15 bins) and the sample count.\n"
    "Samples are normalized with the mean/std stored in the checkpoint (what training used),\n"
    "whatever the data file says; a difference is reported on stderr. The split needs labels\n"
    "(y); regdist predict works without them.\n"
    "\n"
    "  --checkpoint F   a checkpoint written by regdist train\n"
    "  --data F         an HDF5 dataset\n"
    "  --split S        train, val or test (default test)\n"
    "  --json           print one JSON object instead of text\n";

int cmd_eval(Dist *d, int argc, char **argv) {
    static const struct option opts[] = {
        {"checkpoint", required_argument, 0, 'c'}, {"data", required_argument, 0, 'd'},
        {"split", required_argument, 0, 's'},      {"json", no_argument, 0, 'j'},
        {"help", no_argument, 0, 'h'},             {0, 0, 0, 0}};
    const char *ckpt = NULL, *data = NULL, *split = "test";
    int json = 0, ch;
    opterr = 0;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case 'c': ckpt = optarg; break;
        case 'd': data = optarg; break;
        case 's': split = optarg; break;
        case 'j': json = 1; break;
        case 'h':
            if (d->rank == 0) fputs(usage, stdout);
            return 0;
        default: cli_usage_fail(d, "eval", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) cli_usage_fail(d, "eval", "unexpected argument '%s'", argv[optind]);
    if (!ckpt) cli_usage_fail(d, "eval", "--checkpoint is required");
    if (!data) cli_usage_fail(d, "eval", "--data is required");
    if (strcmp(split, "train") && strcmp(split, "val") && strcmp(split, "test"))
        cli_usage_fail(d, "eval", "--split must be train, val or test, got '%s'", split);

    Err e = {0};
    CkptMeta meta = {0};
    Config cfg;
    Model m;
    Dataset ds;
    cli_load_checkpoint_model(d, ckpt, data, split, 1, &cfg, &m, &ds, &meta);
    int batch = m.max_batch;
    size_t in = shape_numel(m.in);
    float *x = malloc((size_t)batch * in * sizeof(float));
    float *probs = malloc((size_t)batch * (size_t)m.num_classes * sizeof(float));
    int32_t *y = malloc((size_t)batch * sizeof(int32_t));
    int64_t *ids = malloc((size_t)batch * sizeof(int64_t));
    if (!x || !probs || !y || !ids) {
        err_set(&e, ERR_RUNTIME, "out of memory");
        cli_fail(d, &e);
    }
    EvalResult r;
    cli_evaluate(d, &m, &ds, x, y, ids, probs, &r);
    if (d->rank == 0) {
        if (json)
            printf("{\"checkpoint\": \"%s\", \"split\": \"%s\", \"count\": %lld, \"loss\": %.6f, "
                   "\"accuracy\": %.6f, \"ece\": %.6f, \"confidence\": %.6f}\n",
                   ckpt, split, (long long)r.count, r.loss, r.accuracy, r.ece, r.confidence);
        else
            printf("%s on %s/%s: loss %.4f  accuracy %.2f%%  ECE %.2f%%  mean confidence %.2f%%  "
                   "(%lld samples)\n",
                   ckpt, data, split, r.loss, 100 * r.accuracy, 100 * r.ece, 100 * r.confidence,
                   (long long)r.count);
    }
    free(x);
    free(probs);
    free(y);
    free(ids);
    model_free(&m);
    dataset_free(&ds);
    config_free(&cfg);
    ckpt_meta_free(&meta);
    return 0;
}
