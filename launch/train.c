// train.c: `regdist train`: the command line of one training run (train_run, train.h).
#include <stdlib.h>

#include "cli.h"
#include "options.h"
#include "train.h"

static const char *usage =
    "usage: regdist train --config C --data F --out DIR [--set key=value ...]\n"
    "                     [--resume CKPT | --init CKPT | --overwrite]\n"
    "\n"
    "Trains the model of config C on the train split of dataset F, evaluating on its val\n"
    "split each epoch. Writes DIR/metrics.csv, DIR/last.h5 (every epoch and when the run\n"
    "stops) and DIR/best.h5 (best validation accuracy).\n"
    "\n"
    "SIGTERM, SIGUSR1 and SIGINT (Ctrl-C) stop at the next step with DIR/last.h5 written and\n"
    "the command to resume printed; a second one exits at once.\n"
    "\n";

static void parse_args(const Dist *d, int argc, char **argv, const char **config, const char **data,
                       const char **out, const char **resume, const char **init,
                       int *overwrite, const char **sets, int *nsets) {
    OptList set = {sets, 0, MAX_SETS};
    const Opt opts[] = {
        OPT_S("config", config, "C", "the experiment (launch/configs/*.cfg)", 1),
        OPT_S("data", data, "F", "an HDF5 dataset (regdist data ... makes one)", 1),
        OPT_S("out", out, "DIR", "output directory (created if missing); one that holds a run is\n"
              "refused unless --resume continues it or --overwrite replaces it", 1),
        OPT_L("set", &set, "key=value", "override a config key; repeatable"),
        OPT_S("resume", resume, "CKPT",
              "continue a run exactly from a checkpoint (model, optimizer, position)", 0),
        OPT_S("init", init, "CKPT", "start from a checkpoint's weights only", 0),
        OPT_F("overwrite", overwrite,
              "start afresh in a DIR that holds a run: its files are removed first"),
        OPT_END};
    if (opts_parse(d, "train", opts, 0, argc, argv, 1) < 0) {
        if (d->rank == 0) {
            fputs(usage, stdout);
            opts_print_help(stdout, opts);
            fputs("\nConfig keys:\n", stdout);
            config_print_keys(stdout);
        }
        dist_finalize((Dist *)d);
        exit(0);
    }
    *nsets = set.n;
    if (*resume && *init) cli_usage_fail(d, "train", "--resume and --init exclude each other");
    if (*resume && *overwrite)
        cli_usage_fail(d, "train", "--resume continues a run and --overwrite replaces it: choose one");
}

int cmd_train(Dist *d, int argc, char **argv) {
    const char *sets[MAX_SETS];
    TrainArgs a = {.sets = sets};
    parse_args(d, argc, argv, &a.config, &a.data, &a.out, &a.resume, &a.init, &a.overwrite, sets,
               &a.nsets);
    TrainResult r;
    Err e = {0};
    if (train_run(d, &a, &r, &e)) dist_exit_agreed(d, &e);
    return 0;
}
