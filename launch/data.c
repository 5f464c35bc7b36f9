// data.c: `regdist data`: make datasets (fashion-mnist, synth, images) and summarise them
// (info). Each subcommand has its own options and help. Only rank 0 works; the others wait
// so that an mpirun of it is harmless.
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "io/idx.h"
#include "io/imagefolder.h"
#include "io/synth.h"
#include "progress.h"

static const char *usage =
    "usage: regdist data fashion-mnist --out F [--train-size N] [--val-size M] [--seed S]\n"
    "                                  [--source DIR]\n"
    "       regdist data synth --out F [--train N] [--val N] [--test N] [--shape 1,28,28]\n"
    "                          [--classes K] [--noise X] [--seed S]\n"
    "       regdist data images DIR --out F [--size H,W] [--channels 1|3] [--val-frac F]\n"
    "                           [--test-frac F] [--seed S] [--skip-bad] [--threads N]\n"
    "       regdist data info F\n"
    "\n"
    "fashion-mnist  converts Debian's dataset-fashion-mnist IDX files to regdist's HDF5 format\n"
    "synth          a small synthetic classification set (class prototypes plus noise)\n"
    "images         a folder of PNG/JPEG/TIFF files, one subfolder per class (torchvision's\n"
    "               ImageFolder layout); --val-frac and --test-frac default to 0.1\n"
    "info           splits, shapes, types, label counts of any regdist dataset\n"
    "\n"
    "regdist data <dataset> --help explains each one's options.\n";

static const char *usage_fashion =
    "usage: regdist data fashion-mnist --out F [--train-size N] [--val-size M] [--seed S]\n"
    "                                  [--source DIR]\n"
    "\n"
    "Converts Debian's dataset-fashion-mnist IDX files (or those in --source) to regdist's\n"
    "HDF5 format: --val-size samples (default 5000) carved from the 60000 training images by\n"
    "a seeded permutation, --train-size of the rest (default 0 = all), and the 10000 test\n"
    "images.\n";

static const char *usage_synth =
    "usage: regdist data synth --out F [--train N] [--val N] [--test N] [--shape 1,28,28]\n"
    "                          [--classes K] [--noise X] [--seed S]\n"
    "\n"
    "A small synthetic classification set: class prototypes plus noise (default 1000 train,\n"
    "200 val, 200 test samples of shape 1,28,28 in 10 classes, noise 0.5).\n";

static const char *usage_info =
    "usage: regdist data info F\n"
    "\n"
    "Prints the splits, shapes, types, class names, normalization and label counts of any\n"
    "regdist dataset file.\n";

static const char *usage_images =
    "usage: regdist data images DIR --out F [--size H,W] [--channels 1|3] [--val-frac F]\n"
    "                           [--test-frac F] [--seed S] [--skip-bad] [--threads N]\n"
    "\n"
    "Imports a folder of images laid out as torchvision's ImageFolder: DIR/<class>/.../<file>\n"
    "with .png .jpg .jpeg .tif .tiff files (any depth under the class folder). Classes are the\n"
    "first-level folders, sorted by name; other files (README, .DS_Store, Thumbs.db) and names\n"
    "starting with '.' are ignored and counted. If DIR holds train/ and val/ (or valid/)\n"
    "and/or test/, each such a folder, they are the splits; otherwise every class is split\n"
    "by a seeded permutation.\n"
    "\n"
    "  --out F          the HDF5 dataset to write (replaced only when the import succeeds)\n"
    "  --size H,W       resize every image to H x W (lanczos3); without it all images must\n"
    "                   have one size\n"
    "  --channels 1|3   convert to gray (1) or RGB (3); without it the files must agree\n"
    "  --val-frac F     fraction of each class for validation (default 0.1; 0 = none)\n"
    "  --test-frac F    fraction of each class for test (default 0.1; 0 = none)\n"
    "  --seed S         seed of the split permutation (default 0)\n"
    "  --skip-bad       skip and count unreadable images instead of stopping\n"
    "  --threads N      decoding threads (default: the cores this process may use)\n"
    "\n"
    "Alpha is dropped; 16-bit images are stored as uint16 (then all images are, 8-bit ones\n"
    "scaled by 257). Stores x (N,C,H,W), y, paths per split, the class names, the train\n"
    "split's per-channel mean/std and a /preprocessing record (docs/images.md).\n";

typedef struct {
    const char *name;
    const char *const *help;
} Subcommand;

static const Subcommand subcommands[] = {
    {"fashion-mnist", &usage_fashion}, {"synth", &usage_synth}, {"images", &usage_images},
    {"info", &usage_info}};

static const char *help_of(const char *what) {
    for (size_t i = 0; i < sizeof subcommands / sizeof *subcommands; i++)
        if (strcmp(subcommands[i].name, what) == 0) return *subcommands[i].help;
    return NULL;
}

static Shape parse_shape(const Dist *d, const char *s) {
    Shape sh = {0, {0}};
    char buf[128];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *tok = strtok(buf, ",x"); tok; tok = strtok(NULL, ",x")) {
        if (sh.ndim == SHAPE_MAX_DIMS) cli_usage_fail(d, "data synth", "--shape has more than 3 sizes");
        sh.d[sh.ndim++] = (int)cli_parse_int(d, "data synth", "--shape", tok, 1, 1 << 16);
    }
    if (sh.ndim != 1 && sh.ndim != 3)
        cli_usage_fail(d, "data synth", "--shape must be D or C,H,W, got '%s'", s);
    return sh;
}

// --size H,W (or HxW; one number N means N,N).
static void parse_size(const Dist *d, const char *s, int *h, int *w) {
    char buf[64], *comma;
    if (snprintf(buf, sizeof buf, "%s", s) >= (int)sizeof buf || !*buf)
        cli_usage_fail(d, "data images", "--size must be H,W, got '%s'", s);
    if ((comma = strpbrk(buf, ",x"))) {
        *comma = 0;
        *h = (int)cli_parse_int(d, "data images", "--size height", buf, 1, 16384);
        *w = (int)cli_parse_int(d, "data images", "--size width", comma + 1, 1, 16384);
    } else {
        *h = *w = (int)cli_parse_int(d, "data images", "--size", buf, 1, 16384);
    }
}

static double parse_frac(const Dist *d, const char *opt, const char *v) {
    char *end;
    double x = strtod(v, &end);
    if (!*v || *end || !(x >= 0 && x < 1))
        cli_usage_fail(d, "data images", "%s must be a number in [0, 1), got '%s'", opt, v);
    return x;
}

// The import's progress bar, on stderr when it is a terminal (stdout keeps the summary).
typedef struct {
    double t0, last;
} ImportBar;

static void import_bar(void *ctx, int64_t done, int64_t total) {
    ImportBar *b = ctx;
    double now = now_seconds();
    if (now - b->last < 0.1 && done < total) return;
    b->last = now;
    int width = 24, fill = (int)(width * done / (total ? total : 1));
    char bar[32];
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
    bar[width] = 0;
    double rate = done / (now - b->t0 + 1e-9);
    int eta = rate > 0 ? (int)((total - done) / rate + 0.5) : 0;
    fprintf(stderr, "\rimporting [%s] %lld/%lld  %.0f img/s  ETA %d:%02d\033[K", bar,
            (long long)done, (long long)total, rate, eta / 60, eta % 60);
    fflush(stderr);
}

// "train 80 (cat 40, dog 40)": a split's images per class, the first 10 classes named.
static void print_split(const ImportSummary *s, int sp, const char *name) {
    int64_t total = 0;
    for (int k = 0; k < s->num_classes; k++) total += s->count[sp * s->num_classes + k];
    if (!total) return;
    printf("; %s %lld (", name, (long long)total);
    for (int k = 0; k < s->num_classes && k < 10; k++)
        printf("%s%s %lld", k ? ", " : "", s->classes[k],
               (long long)s->count[sp * s->num_classes + k]);
    if (s->num_classes > 10) printf(", %d more classes", s->num_classes - 10);
    printf(")");
}

static void print_import_summary(const char *out, const ImportSummary *s) {
    int64_t total = 0;
    for (int i = 0; i < IMPORT_SPLITS * s->num_classes; i++) total += s->count[i];
    printf("wrote %s: %lld images (%d,%d,%d) %s, %d classes", out, (long long)total,
           s->shape.d[0], s->shape.d[1], s->shape.d[2], s->bit_depth == 16 ? "uint16" : "uint8",
           s->num_classes);
    static const char *names[IMPORT_SPLITS] = {"train", "val", "test"};
    for (int sp = 0; sp < IMPORT_SPLITS; sp++) print_split(s, sp, names[sp]);
    if (s->split_folders) printf("; splits from folders");
    printf("; ignored %lld non-image file%s", (long long)s->ignored, s->ignored == 1 ? "" : "s");
    if (s->skipped)
        printf("; skipped %lld unreadable image%s (first: %s)", (long long)s->skipped,
               s->skipped == 1 ? "" : "s", s->first_skipped);
    printf("\n");
}

// Ctrl-C or a kill during an import: remove its temporary file, then end as the signal would.
static void import_signal(int sig) {
    import_remove_partial();
    signal(sig, SIG_DFL);
    raise(sig);
}

static int run_images(Dist *d, int argc, char **argv, Err *e) {
    static const struct option opts[] = {
        {"out", required_argument, 0, 'o'},       {"size", required_argument, 0, 'z'},
        {"channels", required_argument, 0, 'c'},  {"val-frac", required_argument, 0, 'v'},
        {"test-frac", required_argument, 0, 't'}, {"seed", required_argument, 0, 's'},
        {"skip-bad", no_argument, 0, 'b'},        {"threads", required_argument, 0, 'j'},
        {"help", no_argument, 0, 'h'},            {0, 0, 0, 0}};
    const char *cmd = "data images";
    ImportSpec s = {.val_frac = 0.1, .test_frac = 0.1};
    int ch;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case 'o': s.out = optarg; break;
        case 'z': parse_size(d, optarg, &s.height, &s.width); break;
        case 'c': {
            s.channels = (int)cli_parse_int(d, cmd, "--channels", optarg, 1, 3);
            if (s.channels == 2) cli_usage_fail(d, cmd, "--channels must be 1 or 3, got '2'");
            break;
        }
        case 'v': s.val_frac = parse_frac(d, "--val-frac", optarg); break;
        case 't': s.test_frac = parse_frac(d, "--test-frac", optarg); break;
        case 's': s.seed = (uint32_t)cli_parse_int(d, cmd, "--seed", optarg, 0, 4294967295LL); break;
        case 'b': s.skip_bad = 1; break;
        case 'j': s.threads = (int)cli_parse_int(d, cmd, "--threads", optarg, 1, 256); break;
        case 'h':
            if (d->rank == 0) fputs(usage_images, stdout);
            return -1;
        default: cli_usage_fail(d, cmd, "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc) cli_usage_fail(d, cmd, "which folder? regdist data images DIR --out F");
    if (optind < argc - 1) cli_usage_fail(d, cmd, "unexpected argument '%s'", argv[optind + 1]);
    if (!s.out) cli_usage_fail(d, cmd, "--out is required");
    if (s.val_frac + s.test_frac >= 1)
        cli_usage_fail(d, cmd, "--val-frac and --test-frac add up to %g; they must leave some "
                       "images for training", s.val_frac + s.test_frac);
    s.dir = argv[optind];
    cli_check_out_file(d, "--out", s.out, 1);  // a path to fix is exit 2; a new import replaces
    if (d->rank != 0) return 0;
    ImportBar bar = {.t0 = now_seconds()};
    if (progress_is_terminal(STDERR_FILENO)) {  // under mpirun: mpirun's own stderr
        s.progress = import_bar;
        s.progress_ctx = &bar;
    }
    const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) signal(sigs[i], import_signal);
    ImportSummary sum;
    int rc = image_folder_import(&s, &sum, e);
    if (s.progress) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
    }
    if (rc) return rc;
    print_import_summary(s.out, &sum);
    import_summary_free(&sum);
    return 0;
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
        if (argc < 2) cli_usage_fail(d, "data", "which dataset? fashion-mnist, synth, images or info");
        if (d->rank == 0) fputs(usage, stdout);
        return 0;
    }
    const char *what = argv[1];
    const char *help = help_of(what);
    if (!help)
        cli_usage_fail(d, "data", "unknown dataset '%s' (fashion-mnist, synth, images or info)",
                       what);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "data %s", what);
    opterr = 0;
    optind = 2;
    Err e = {0};
    int rc = 0;
    if (strcmp(what, "images") == 0) {
        rc = run_images(d, argc, argv, &e);
        if (rc > 0) cli_fail(d, &e);
        dist_barrier(d);
        return 0;
    }
    // fashion-mnist, synth, info: each accepts only its own options
    static const char *allowed[] = {"fashion-mnist:otvsSh", "synth:o123pknsh", "info:h"};
    const char *mine = "";
    for (size_t i = 0; i < sizeof allowed / sizeof *allowed; i++)
        if (strncmp(allowed[i], what, strlen(what)) == 0 && allowed[i][strlen(what)] == ':')
            mine = allowed[i] + strlen(what) + 1;
    const char *out = NULL, *source = FASHION_MNIST_DIR;
    int64_t train_size = 0, val_size = 5000;
    SynthSpec sp = {.shape = {3, {1, 28, 28}}, .num_classes = 10, .n_train = 1000, .n_val = 200,
                    .n_test = 200, .seed = 0, .noise = 0.5f};
    uint32_t seed = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (ch == '?' || !strchr(mine, ch))
            cli_usage_fail(d, cmd, "unknown or incomplete option '%s'", argv[optind - 1]);
        switch (ch) {
        case 'o': out = optarg; break;
        case 't': train_size = cli_parse_int(d, cmd, "--train-size", optarg, 0, 1LL << 40); break;
        case 'v': val_size = cli_parse_int(d, cmd, "--val-size", optarg, 0, 1LL << 40); break;
        case 's': seed = (uint32_t)cli_parse_int(d, cmd, "--seed", optarg, 0, 4294967295LL); break;
        case 'S': source = optarg; break;
        case '1': sp.n_train = cli_parse_int(d, cmd, "--train", optarg, 0, 1LL << 32); break;
        case '2': sp.n_val = cli_parse_int(d, cmd, "--val", optarg, 0, 1LL << 32); break;
        case '3': sp.n_test = cli_parse_int(d, cmd, "--test", optarg, 0, 1LL << 32); break;
        case 'p': sp.shape = parse_shape(d, optarg); break;
        case 'k': sp.num_classes = (int)cli_parse_int(d, cmd, "--classes", optarg, 2, 100000); break;
        case 'n': {
            char *end;
            double v = strtod(optarg, &end);
            if (*end || !(v >= 0 && v <= 1)) cli_usage_fail(d, cmd, "--noise must be in [0, 1]");
            sp.noise = (float)v;
            break;
        }
        case 'h':
            if (d->rank == 0) fputs(help, stdout);
            return 0;
        }
    }
    if (strcmp(what, "info") == 0) {
        if (optind != argc - 1) cli_usage_fail(d, cmd, "info takes one file");
        if (d->rank == 0) rc = dataset_info(stdout, argv[optind], &e);
    } else {
        if (optind < argc) cli_usage_fail(d, cmd, "unexpected argument '%s'", argv[optind]);
        if (!out) cli_usage_fail(d, cmd, "--out is required");
        cli_check_out_file(d, "--out", out, 1);  // a path to fix is exit 2; a new file replaces
        if (d->rank == 0) {
            if (what[0] == 'f') {
                rc = idx_import_fashion_mnist(source, out, train_size, val_size, seed, &e);
            } else {
                sp.seed = seed;
                rc = synth_write(out, &sp, &e);
            }
            if (!rc) printf("wrote %s\n", out);
        }
    }
    if (rc) cli_fail(d, &e);
    dist_barrier(d);
    return 0;
}
