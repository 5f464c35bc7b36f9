// eval.c: `regdist eval`: loss, accuracy and expected calibration error of a checkpoint on a
// split. The model is rebuilt from the config text the checkpoint carries.
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "io/checkpoint.h"
#include "options.h"

static const char *usage =
    "usage: regdist eval --checkpoint F --data F [--split test] [--json]\n"
    "\n"
    "Evaluates a checkpoint on one split of a dataset: mean cross-entropy (no label\n"
    "smoothing), accuracy, expected calibration error (15 bins) and the sample count.\n"
    "Samples are normalized with the mean/std stored in the checkpoint (what training used),\n"
    "whatever the data file says; a difference is reported on stderr. The split needs labels\n"
    "(y); regdist predict works without them.\n"
    "\n";

int cmd_eval(Dist *d, int argc, char **argv) {
    const char *ckpt = NULL, *data = NULL, *split = "test";
    int json = 0;
    const Opt opts[] = {
        OPT_S("checkpoint", &ckpt, "F", "a checkpoint written by regdist train", 1),
        OPT_S("data", &data, "F", "an HDF5 dataset", 1),
        OPT_S("split", &split, "S", "train, val or test (default test)", 0),
        OPT_F("json", &json, "print one JSON object instead of text"),
        OPT_END};
    if (opts_parse(d, "eval", opts, 0, argc, argv, 1) < 0) {
        if (d->rank == 0) fputs(usage, stdout), opts_print_help(stdout, opts);
        return 0;
    }
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
