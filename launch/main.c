// main.c: the regdist executable: MPI start-up and subcommand dispatch.
// Exit codes: 0 ok, 2 bad input (a one-line message says what), 1 runtime failure.
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char *usage =
    "usage: regdist <command> [options]   (regdist <command> --help for its options)\n"
    "\n"
    "commands:\n"
    "  train   train a model from a config on an HDF5 dataset\n"
    "  eval    evaluate a checkpoint: loss, accuracy, calibration error\n"
    "  predict probabilities with Monte-Carlo-dropout uncertainty\n"
    "  data    make datasets: fashion-mnist, synth; summarise one: info\n"
    "  bench   measure training-step throughput\n"
    "  study   sweeps with results, figure and summary: bn (BatchNorm group size), reg\n"
    "          (regularizer ablation)\n"
    "  plot    draw runs' learning curves from their metrics.csv as an SVG figure\n"
    "\n"
    "Runs as one process, or as many under mpirun: mpirun -n 8 regdist train ...\n";

int main(int argc, char **argv) {
    Dist d = {0};
    if (dist_init(&d, &argc, &argv) != 0) {
        fprintf(stderr, "regdist: MPI failed to start\n");
        return 1;
    }
    int rc;
    const char *cmd = argc > 1 ? argv[1] : "";
    if (strcmp(cmd, "train") == 0) rc = cmd_train(&d, argc - 1, argv + 1);
    else if (strcmp(cmd, "eval") == 0) rc = cmd_eval(&d, argc - 1, argv + 1);
    else if (strcmp(cmd, "data") == 0) rc = cmd_data(&d, argc - 1, argv + 1);
    else if (strcmp(cmd, "bench") == 0) rc = cmd_bench(&d, argc - 1, argv + 1);
    else if (strcmp(cmd, "predict") == 0) rc = cmd_predict(&d, argc - 1, argv + 1);
    else if (strcmp(cmd, "plot") == 0) rc = cmd_plot(&d, argc - 1, argv + 1);
    else if (strcmp(cmd, "study") == 0) rc = cmd_study(&d, argc - 1, argv + 1);
    else if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        if (d.rank == 0) fputs(usage, stdout);
        rc = 0;
    } else {
        char msg[256];
        snprintf(msg, sizeof msg, "unknown command '%s' (see regdist --help)", cmd);
        dist_fail(&d, 2, msg);
    }
    dist_finalize(&d);
    return rc;
}
