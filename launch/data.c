// data.c: `regdist data`: make datasets (fashion-mnist, synth, images) and summarise them
// (info). Each subcommand has its own options and help. Only rank 0 works; the others wait
// so that an mpirun of it is harmless.
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "io/idx.h"
#include "io/imagefolder.h"
#include "io/synth.h"
#include "options.h"
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
    "images.\n"
    "\n";

static const char *usage_synth =
    "usage: regdist data synth --out F [--train N] [--val N] [--test N] [--shape 1,28,28]\n"
    "                          [--classes K] [--noise X] [--seed S]\n"
    "\n"
    "A small synthetic classification set: class prototypes plus noise (default 1000 train,\n"
    "200 val, 200 test samples of shape 1,28,28 in 10 classes, noise 0.5).\n"
    "\n";

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

// A dataset subcommand: parses its own options (its table), prints its help (returns -1) or
// does its job on rank 0 (returns 0, or nonzero with e set).
typedef int (*SubcommandFn)(Dist *d, int argc, char **argv, Err *e);
static int run_fashion(Dist *d, int argc, char **argv, Err *e);
static int run_synth(Dist *d, int argc, char **argv, Err *e);
static int run_images(Dist *d, int argc, char **argv, Err *e);
static int run_info(Dist *d, int argc, char **argv, Err *e);

typedef struct {
    const char *name;
    SubcommandFn run;
} Subcommand;

static const Subcommand *find_subcommand(const char *what) {
    static const Subcommand subcommands[] = {{"fashion-mnist", run_fashion},
                                             {"synth", run_synth},
                                             {"images", run_images},
                                             {"info", run_info}};
    for (size_t i = 0; i < sizeof subcommands / sizeof *subcommands; i++)
        if (strcmp(subcommands[i].name, what) == 0) return &subcommands[i];
    return NULL;
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

// An optional integer option: its default when absent (the table keeps 64-bit values as
// strings: OPT_INT holds an int).
static int64_t int_opt(const Dist *d, const char *cmd, const char *flag, const char *v,
                       int64_t lo, int64_t hi, int64_t dflt) {
    return v ? cli_parse_int(d, cmd, flag, v, lo, hi) : dflt;
}

static int run_images(Dist *d, int argc, char **argv, Err *e) {
    const char *cmd = "data images", *size = NULL, *val = NULL, *test = NULL, *seed = NULL;
    ImportSpec s = {.val_frac = 0.1, .test_frac = 0.1};
    // help NULL: usage_images lists these options itself, in the layout its docs and tests pin
    const Opt opts[] = {OPT_S("out", &s.out, "F", NULL, 0),
                        OPT_S("size", &size, "H,W", NULL, 0),
                        OPT_I("channels", &s.channels, "1|3", NULL, 1, 3),
                        OPT_S("val-frac", &val, "F", NULL, 0),
                        OPT_S("test-frac", &test, "F", NULL, 0),
                        OPT_S("seed", &seed, "S", NULL, 0),
                        OPT_F("skip-bad", &s.skip_bad, NULL),
                        OPT_I("threads", &s.threads, "N", NULL, 1, 256),
                        OPT_END};
    int first = opts_parse(d, cmd, opts, 1, argc, argv, 2);
    if (first < 0) {
        if (d->rank == 0) fputs(usage_images, stdout);
        return -1;
    }
    if (first >= argc) cli_usage_fail(d, cmd, "which folder? regdist data images DIR --out F");
    if (!s.out) cli_usage_fail(d, cmd, "--out is required");  // after "which folder?"
    if (size) parse_size(d, size, &s.height, &s.width);
    if (s.channels == 2) cli_usage_fail(d, cmd, "--channels must be 1 or 3, got '2'");
    if (val) s.val_frac = parse_frac(d, "--val-frac", val);
    if (test) s.test_frac = parse_frac(d, "--test-frac", test);
    s.seed = (uint32_t)int_opt(d, cmd, "--seed", seed, 0, 4294967295LL, 0);
    if (s.val_frac + s.test_frac >= 1)
        cli_usage_fail(d, cmd, "--val-frac and --test-frac add up to %g; they must leave some "
                       "images for training", s.val_frac + s.test_frac);
    s.dir = argv[first];
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

// --out is checked before rank 0 writes: a path to fix is exit 2; a new file replaces.
static void check_out(const Dist *d, const char *cmd, const char *out) {
    if (!out) cli_usage_fail(d, cmd, "--out is required");
    cli_check_out_file(d, "--out", out, 1);
}

static int run_fashion(Dist *d, int argc, char **argv, Err *e) {
    const char *cmd = "data fashion-mnist", *out = NULL, *source = FASHION_MNIST_DIR;
    const char *train = NULL, *val = NULL, *seed = NULL;
    const Opt opts[] = {
        OPT_S("out", &out, "F", "the HDF5 dataset to write", 0),
        OPT_S("train-size", &train, "N", "training samples kept (default 0 = all)", 0),
        OPT_S("val-size", &val, "M", "validation samples carved out (default 5000)", 0),
        OPT_S("seed", &seed, "S", "seed of the carving permutation (default 0)", 0),
        OPT_S("source", &source, "DIR", "the IDX files (default " FASHION_MNIST_DIR ")", 0),
        OPT_END};
    int first = opts_parse(d, cmd, opts, 0, argc, argv, 2);
    if (first < 0) {
        if (d->rank == 0) fputs(usage_fashion, stdout), opts_print_help(stdout, opts);
        return -1;
    }
    int64_t train_size = int_opt(d, cmd, "--train-size", train, 0, 1LL << 40, 0);
    int64_t val_size = int_opt(d, cmd, "--val-size", val, 0, 1LL << 40, 5000);
    uint32_t s = (uint32_t)int_opt(d, cmd, "--seed", seed, 0, 4294967295LL, 0);
    check_out(d, cmd, out);
    if (d->rank != 0) return 0;
    int rc = idx_import_fashion_mnist(source, out, train_size, val_size, s, e);
    if (!rc) printf("wrote %s\n", out);
    return rc;
}

static int run_synth(Dist *d, int argc, char **argv, Err *e) {
    const char *cmd = "data synth", *out = NULL, *train = NULL, *val = NULL, *test = NULL;
    const char *shape = NULL, *noise = NULL, *seed = NULL;
    SynthSpec sp = {.shape = {3, {1, 28, 28}}, .num_classes = 10, .noise = 0.5f};
    const Opt opts[] = {
        OPT_S("out", &out, "F", "the HDF5 dataset to write", 0),
        OPT_S("train", &train, "N", "training samples (default 1000)", 0),
        OPT_S("val", &val, "N", "validation samples (default 200)", 0),
        OPT_S("test", &test, "N", "test samples (default 200)", 0),
        OPT_S("shape", &shape, "C,H,W", "a sample's shape, D or C,H,W (default 1,28,28)", 0),
        OPT_I("classes", &sp.num_classes, "K", "classes (default 10)", 2, 100000),
        OPT_S("noise", &noise, "X", "noise in [0, 1] around the prototypes (default 0.5)", 0),
        OPT_S("seed", &seed, "S", "seed (default 0)", 0),
        OPT_END};
    int first = opts_parse(d, cmd, opts, 0, argc, argv, 2);
    if (first < 0) {
        if (d->rank == 0) fputs(usage_synth, stdout), opts_print_help(stdout, opts);
        return -1;
    }
    sp.n_train = int_opt(d, cmd, "--train", train, 0, 1LL << 32, 1000);
    sp.n_val = int_opt(d, cmd, "--val", val, 0, 1LL << 32, 200);
    sp.n_test = int_opt(d, cmd, "--test", test, 0, 1LL << 32, 200);
    if (shape) sp.shape = parse_shape(d, shape);
    if (noise) {
        char *end;
        double v = strtod(noise, &end);
        if (*end || !(v >= 0 && v <= 1)) cli_usage_fail(d, cmd, "--noise must be in [0, 1]");
        sp.noise = (float)v;
    }
    sp.seed = (uint32_t)int_opt(d, cmd, "--seed", seed, 0, 4294967295LL, 0);
    check_out(d, cmd, out);
    if (d->rank != 0) return 0;
    int rc = synth_write(out, &sp, e);
    if (!rc) printf("wrote %s\n", out);
    return rc;
}

static int run_info(Dist *d, int argc, char **argv, Err *e) {
    const Opt opts[] = {OPT_END};
    int first = opts_parse(d, "data info", opts, argc, argc, argv, 2);  // counted below
    if (first < 0) {
        if (d->rank == 0) fputs(usage_info, stdout);
        return -1;
    }
    if (first != argc - 1) cli_usage_fail(d, "data info", "info takes one file");
    return d->rank == 0 ? dataset_info(stdout, argv[first], e) : 0;
}

int cmd_data(Dist *d, int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        if (argc < 2) cli_usage_fail(d, "data", "which dataset? fashion-mnist, synth, images or info");
        if (d->rank == 0) fputs(usage, stdout);
        return 0;
    }
    const Subcommand *sub = find_subcommand(argv[1]);
    if (!sub)
        cli_usage_fail(d, "data", "unknown dataset '%s' (fashion-mnist, synth, images or info)",
                       argv[1]);
    Err e = {0};
    int rc = sub->run(d, argc, argv, &e);
    if (rc < 0) return 0;  // --help, printed
    if (rc) cli_fail(d, &e);
    dist_barrier(d);
    return 0;
}
