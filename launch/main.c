// main.c: the regdist executable: MPI start-up, subcommand dispatch, help and --version.
// Exit codes: 0 ok, 2 bad input (a one-line message says what), 1 runtime failure.
// A bare `regdist` is bad input too: it prints the usage on stderr and exits 2.
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "io/h5version.h"

// The build writes the commit into regdist_version.h (launch/version.cmake); a build without
// that step still compiles and says "unknown".
#if defined(__has_include)
#if __has_include("regdist_version.h")
#include "regdist_version.h"
#endif
#endif
#ifndef REGDIST_GIT_COMMIT
#define REGDIST_GIT_COMMIT "unknown"
#endif
#ifndef REGDIST_VERSION
#define REGDIST_VERSION "0.1.0"
#endif

static const char *usage =
    "usage: regdist <command> [options]\n"
    "\n"
    "commands:\n"
    "  train   train a model from a config on an HDF5 dataset\n"
    "  eval    evaluate a checkpoint: loss, accuracy, calibration error\n"
    "  predict probabilities, with Monte-Carlo-dropout uncertainty, for a dataset split or\n"
    "          image files (CSV)\n"
    "  data    make datasets: images (a folder of class folders), fashion-mnist, synth;\n"
    "          summarise one: info\n"
    "  bench   measure training-step throughput\n"
    "  study   sweeps with results, figure and summary: bn (BatchNorm group size), reg\n"
    "          (regularizer ablation), batch (Hoffer et al.'s large-batch experiment)\n"
    "  plot    draw runs' learning curves from their metrics.csv as an SVG figure\n"
    "\n"
    "regdist help <command>, regdist <command> --help or -h: that command's options.\n"
    "regdist --version: the version, git commit and the BLAS, MPI and HDF5 libraries.\n"
    "Runs as one process, or as many under mpirun: mpirun -n 8 regdist train ...\n";

typedef int (*Command)(Dist *d, int argc, char **argv);
static const struct {
    const char *name;
    Command run;
} commands[] = {{"train", cmd_train}, {"eval", cmd_eval},   {"data", cmd_data},
                {"bench", cmd_bench}, {"predict", cmd_predict}, {"plot", cmd_plot},
                {"study", cmd_study}};

static Command find_command(const char *name) {
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (strcmp(commands[i].name, name) == 0) return commands[i].run;
    return NULL;
}

static int is_help(const char *a) {
    return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0 || strcmp(a, "help") == 0;
}

static void print_version(void) {
    char mpi[512], hdf5[64];
    dist_library_version(mpi, sizeof mpi);
    h5u_library_version(hdf5, sizeof hdf5);
    printf("regdist %s (git %s)\n", REGDIST_VERSION, REGDIST_GIT_COMMIT);
    printf("BLAS: %s (%s kernels)\n", openblas_get_config(), blas_kernel_name());
    printf("MPI:  %s\n", mpi);
    printf("HDF5: %s\n", hdf5 + (strncmp(hdf5, "HDF5 ", 5) == 0 ? 5 : 0));
}

// The subcommands parse their options with getopt_long and know only --help; -h means the
// same wherever it stands as an option. It stands as a value (and is left alone) right after
// a long option written without "=", and after "--".
static void help_alias(int argc, char **argv) {
    static char help[] = "--help";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) return;
        const char *prev = argv[i - 1];
        int after_option = strncmp(prev, "--", 2) == 0 && !strchr(prev, '=') &&
                           strcmp(prev, "--help") != 0;
        if (strcmp(argv[i], "-h") == 0 && !after_option) argv[i] = help;
    }
}

int main(int argc, char **argv) {
    Dist d = {0};
    if (dist_init(&d, &argc, &argv) != 0) {
        fprintf(stderr, "regdist: MPI failed to start\n");
        return 1;
    }
    int rc = 0;
    const char *cmd = argc > 1 ? argv[1] : NULL;
    char **args = NULL;  // `help CMD ...` rewritten as `CMD ... --help`
    if (cmd && strcmp(cmd, "help") == 0 && argc > 2 && !is_help(argv[2])) {
        static char help[] = "--help";
        args = calloc((size_t)argc + 1, sizeof *args);
        if (!args) dist_fail(&d, 1, "out of memory");
        args[0] = argv[0];
        for (int i = 2; i < argc; i++) args[i - 1] = argv[i];
        args[argc - 1] = help;
        argv = args;
        cmd = argv[1];
    }
    Command run = cmd ? find_command(cmd) : NULL;
    if (run) {
        help_alias(argc - 1, argv + 1);
        rc = run(&d, argc - 1, argv + 1);
    } else if (!cmd) {
        if (d.rank == 0) fputs(usage, stderr);
        rc = 2;
    } else if (is_help(cmd)) {
        if (d.rank == 0) fputs(usage, stdout);
    } else if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        if (d.rank == 0) print_version();
    } else {
        char msg[256];
        snprintf(msg, sizeof msg, "unknown command '%.200s' (see regdist --help)", cmd);
        dist_fail(&d, 2, msg);
    }
    free(args);
    dist_finalize(&d);
    return rc;
}
