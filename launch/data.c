// data.c: `regdist data`: make datasets (fashion-mnist, synth) and summarise them (info).
// Only rank 0 writes; the others wait so that an mpirun of it is harmless.
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "io/idx.h"
#include "io/synth.h"

static const char *usage =
    "usage: regdist data fashion-mnist --out F [--train-size N] [--val-size M] [--seed S]\n"
    "                                  [--source DIR]\n"
    "       regdist data synth --out F [--train N] [--val N] [--test N] [--shape 1,28,28]\n"
    "                          [--classes K] [--noise X] [--seed S]\n"
    "       regdist data info F\n"
    "\n"
    "fashion-mnist  converts Debian's dataset-fashion-mnist IDX files (or those in --source)\n"
    "               to regdist's HDF5 format: --val-size samples (default 5000) carved from\n"
    "               the 60000 training images by a seeded permutation, --train-size of the\n"
    "               rest (default 0 = all), and the 10000 test images.\n"
    "synth          a small synthetic classification set (class prototypes plus noise).\n"
    "info           splits, shapes, types, label counts of any regdist dataset.\n";

static Shape parse_shape(const Dist *d, const char *s) {
    Shape sh = {0, {0}};
    char buf[128];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *tok = strtok(buf, ",x"); tok; tok = strtok(NULL, ",x")) {
        if (sh.ndim == SHAPE_MAX_DIMS) cli_usage_fail(d, "data", "--shape has more than 3 sizes");
        sh.d[sh.ndim++] = (int)cli_parse_int(d, "data", "--shape", tok, 1, 1 << 16);
    }
    if (sh.ndim != 1 && sh.ndim != 3)
        cli_usage_fail(d, "data", "--shape must be D or C,H,W, got '%s'", s);
    return sh;
}

int cmd_data(Dist *d, int argc, char **argv) {
    static const struct option opts[] = {
        {"out", required_argument, 0, 'o'},     {"train-size", required_argument, 0, 't'},
        {"val-size", required_argument, 0, 'v'}, {"seed", required_argument, 0, 's'},
        {"source", required_argument, 0, 'S'},  {"train", required_argument, 0, '1'},
        {"val", required_argument, 0, '2'},     {"test", required_argument, 0, '3'},
        {"shape", required_argument, 0, 'p'},   {"classes", required_argument, 0, 'k'},
        {"noise", required_argument, 0, 'n'},   {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        if (argc < 2) cli_usage_fail(d, "data", "which dataset? fashion-mnist, synth or info");
        if (d->rank == 0) fputs(usage, stdout);
        return 0;
    }
    const char *what = argv[1];
    const char *out = NULL, *source = FASHION_MNIST_DIR;
    int64_t train_size = 0, val_size = 5000;
    SynthSpec sp = {.shape = {3, {1, 28, 28}}, .num_classes = 10, .n_train = 1000, .n_val = 200,
                    .n_test = 200, .seed = 0, .noise = 0.5f};
    uint32_t seed = 0;
    opterr = 0;
    optind = 2;
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'o': out = optarg; break;
        case 't': train_size = cli_parse_int(d, "data", "--train-size", optarg, 0, 1LL << 40); break;
        case 'v': val_size = cli_parse_int(d, "data", "--val-size", optarg, 0, 1LL << 40); break;
        case 's': seed = (uint32_t)cli_parse_int(d, "data", "--seed", optarg, 0, 4294967295LL); break;
        case 'S': source = optarg; break;
        case '1': sp.n_train = cli_parse_int(d, "data", "--train", optarg, 0, 1LL << 32); break;
        case '2': sp.n_val = cli_parse_int(d, "data", "--val", optarg, 0, 1LL << 32); break;
        case '3': sp.n_test = cli_parse_int(d, "data", "--test", optarg, 0, 1LL << 32); break;
        case 'p': sp.shape = parse_shape(d, optarg); break;
        case 'k': sp.num_classes = (int)cli_parse_int(d, "data", "--classes", optarg, 2, 100000); break;
        case 'n': {
            char *end;
            double v = strtod(optarg, &end);
            if (*end || !(v >= 0 && v <= 1)) cli_usage_fail(d, "data", "--noise must be in [0, 1]");
            sp.noise = (float)v;
            break;
        }
        case 'h':
            if (d->rank == 0) fputs(usage, stdout);
            return 0;
        default: cli_usage_fail(d, "data", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    Err e = {0};
    int rc = 0;
    if (strcmp(what, "info") == 0) {
        if (optind != argc - 1) cli_usage_fail(d, "data", "info takes one file");
        if (d->rank == 0) rc = dataset_info(stdout, argv[optind], &e);
    } else if (strcmp(what, "fashion-mnist") == 0 || strcmp(what, "synth") == 0) {
        if (optind < argc) cli_usage_fail(d, "data", "unexpected argument '%s'", argv[optind]);
        if (!out) cli_usage_fail(d, "data", "--out is required");
        if (d->rank == 0) {
            if (what[0] == 'f') {
                rc = idx_import_fashion_mnist(source, out, train_size, val_size, seed, &e);
            } else {
                sp.seed = seed;
                rc = synth_write(out, &sp, &e);
            }
            if (!rc) printf("wrote %s\n", out);
        }
    } else {
        cli_usage_fail(d, "data", "unknown dataset '%s' (fashion-mnist, synth or info)", what);
    }
    if (rc) cli_fail(d, &e);
    dist_barrier(d);
    return 0;
}
