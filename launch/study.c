// study.c: `regdist study bn`, `regdist study reg` and `regdist study batch`: sweeps of
// training runs, each point a complete `regdist train` run in DIR/points/<id>/, summarized as
// DIR/results.csv, an SVG figure and DIR/summary.md. The summary gives each point's mean, sd
// and 95% t interval over seeds, and the paired differences (same seed) the study's question
// rests on, with the words "an effect" only where the interval excludes zero.
//
// A point is finished when its summary.json exists; a rerun (--resume) skips finished points and resumes
// an unfinished one from its last.h5, so a killed sweep continues where it stopped. Every rank
// runs every point (the sweep is a loop around the trainer); rank 0 decides what is finished
// and writes the results. Each point's own output goes to DIR/points/<id>/train.log.
//
// One meaning per word: the gap is eval-mode train accuracy minus test accuracy, called
// "train − test gap" wherever it is shown. Files hold fractions with empty cells for what is
// missing (results.csv); people read percentages, and every table header says its unit.
#define _GNU_SOURCE  // nftw
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "io/dataset.h"
#include "io/metrics.h"
#include "io/svg.h"
#include "options.h"
#include "rundir.h"
#include "signals.h"
#include "stats.h"
#include "study.h"
#include "summary.h"
#include "train.h"

#define MAX_POINTS 256
#define MAX_POINT_SETS 32
#define MAX_LIST 16
#define N_ROWS_MAX 32  // conditions of a reg or batch study's table

// The full presets' lengths (docs/studies.md gives the measured seconds per epoch and the
// totals behind them). bn: 16 epochs at B = 512 are what BatchNorm alone needed to fit the
// training set (99.76% train accuracy, G = 64, one calibration run); batch: 3 base epochs,
// so that the adapted schedule (x 32) fits about 3 hours.
#define BN_FULL_EPOCHS 16
#define BN_FULL_EPOCHS_S "16"
#define BATCH_FULL_EPOCHS 3
#define BATCH_FULL_EPOCHS_S "3"
#define BATCH_FULL_ADAPTED_S "96"

// A condition of a sweep: a line of the bn study, a row of the reg study. Points refer to
// their condition by pointer; only people read the words.
typedef struct {
    const char *name;    // stable: part of the run ids of the reg study (never rename)
    const char *label;   // legends, tables, results.csv's condition column
    const char *person;  // how a point's label says it ("AdamW weight decay only")
} Cond;

// One training run of a sweep.
typedef struct {
    char id[96];         // directory name, unique per distinct run
    char label[200];     // what people read in legends: "BatchNorm only, 12 epochs, seed 1"
    const Cond *cond;    // the line (bn) or category (reg) it belongs to
    double x;            // bn: G or B; reg: the category's index
    uint32_t seed;
    int G, B, epochs;    // what the run normalizes over, its global batch, its epochs
    char how[48];        // bn: how G is made ("ghost 16", "2 ranks"...)
    char sets[MAX_POINT_SETS][128];
    int nsets;
    // results, from summary.json (NaN until read, and where the run did not give them)
    double train_acc, val_acc, test_acc, test_loss, test_ece, steps, sec_epoch;
    double p_train_acc, p_test_acc;  // with PreciseBN
    double fit_epoch;  // the first epoch whose train-mode accuracy (metrics.csv) reached 99%
} Point;

typedef struct {
    const char *kind;   // "bn", "reg" or "batch"
    const char *config, *data, *out, *preset;
    int resume, overwrite;  // --resume: continue the sweep in out; --overwrite: start it afresh
    const char *extra[MAX_SETS];  // the user's --set, applied to every point
    int nextra;
    int seeds, epochs;  // -1 = the preset's
    int batch;          // bn: the G sweep's global batch (-1 = the preset's)
    int lines;          // bn: LINE_BN_ONLY | LINE_CONFIG, the G lines to run (0 = the preset's)
    int images;         // the training samples are images (C,H,W): augmentation applies
    int G[MAX_LIST], nG, Bs[MAX_LIST], nB;
    Config cfg;         // the base config, inspected to build the points
    char command[2048]; // the command line that ran it, for summary.md
    double t0;          // when this invocation started
    Point *p;
    int n;
} Study;

static const char *usage =
    "usage: regdist study bn|reg|batch --config C --data F --out DIR [options]\n"
    "\n"
    "  bn     test accuracy and train - test gap against the BatchNorm group size G\n"
    "  reg    the regularizer ablation: none, each regularizer the config has alone, all on\n"
    "  batch  Hoffer et al.'s large-batch experiment: batch 128, batch 4096 with full-batch\n"
    "         statistics, with ghost batches of 128, and with the schedule adapted\n"
    "\n"
    "regdist study bn --help (reg, batch) describes each sweep and its options.\n";

// The measured times are the README's, on the 2-core development machine while other jobs
// shared it: a rough guide, not a promise. docs/studies.md has the full presets' budgets.
static const char *usage_bn =
    "usage: regdist study bn --config C --data F --out DIR [options]\n"
    "\n"
    "Test accuracy and train - test gap against the BatchNorm group size G (samples per\n"
    "statistic) at a fixed global batch B: the same LR, schedule, epochs and data order at\n"
    "every G. G is made the way the ranks allow: ghost batches within a rank, local BN per\n"
    "rank, groups of ranks, or SyncBN over all of them. Every run is evaluated with its\n"
    "running statistics and with PreciseBN. The summary gives mean, sd and 95% interval per\n"
    "point and each G's paired difference (same seeds) to the smallest G.\n"
    "\n"
    "  --preset quick|full   quick (default): the config's B and regularizers, G = 4,16,128,\n"
    "                        3 epochs, warmup 20 steps, 2 seeds, and a control that sweeps B\n"
    "                        at a fixed G (32, or the swept G nearest it) with the LR scaled\n"
    "                        linearly, at fixed epochs and at fixed steps: 18 runs (14\n"
    "                        distinct), measured at 19 minutes with cnn6_mlp4 under mpirun -n 2\n"
    "                        on 2 shared cores.\n"
    "                        full: B = 512 (LR scaled linearly from the config's batch, warmup\n"
    "                        kept in samples), two lines: G = 8,16,...,512 with BatchNorm the\n"
    "                        only regularizer, and the smallest, middle and largest G with the\n"
    "                        config's regularizers on; " BN_FULL_EPOCHS_S " epochs, 5 seeds, no control:\n"
    "                        50 runs, measured at 2.0 hours with cnn6_mlp4 under mpirun -n 2\n"
    "                        on 2 cores, part of it shared (docs/studies.md)\n"
    "  --batch B             the G sweep's global batch (quick: the config's; full 512)\n"
    "  --seeds N             seeds per point (quick 2, full 5)\n"
    "  --epochs E            epochs per run at the sweep's batch (quick 3, full " BN_FULL_EPOCHS_S ")\n"
    "  --groups 4,16,...     the G values (quick 4,16,128; full 8,16,...,B)\n"
    "  --batches 64,256      the control's B values besides the sweep's (quick 64,256; full:\n"
    "                        none unless given)\n"
    "  --lines L             the G lines: bn-only (BatchNorm the only regularizer), config\n"
    "                        (the config's regularizers) or bn-only,config (quick: config;\n"
    "                        full: both)\n"
    "  --set key=value       applied to every run\n"
    "\n"
    "Both presets validate on 1,000 samples (the test set is whole). Writes DIR/results.csv (a\n"
    "row per run: accuracies, gaps and ECE as fractions, empty where a value is missing;\n"
    "rewritten after each run), DIR/figure.svg and DIR/summary.md (in percent: mean ± sd\n"
    "[95% CI], paired differences). The gap is eval-mode train accuracy minus test accuracy.\n"
    "Each run keeps DIR/points/<id>/. A DIR that holds a study is refused unless --resume\n"
    "continues it (finished points kept, unfinished ones resumed) or --overwrite starts afresh.\n"
    "Under mpirun every point runs on all ranks, and G comes from real BN groups across ranks\n"
    "where it can.\n";

static const char *usage_reg =
    "usage: regdist study reg --config C --data F --out DIR [options]\n"
    "\n"
    "The regularizer ablation. Starts from nothing (no BatchNorm, no dropout of any kind, no\n"
    "weight decay, no label smoothing), adds one regularizer at a time at the config's strength\n"
    "(AdamW weight decay; the same coefficient as coupled L2 in Adam; each dropout-family layer\n"
    "kind the config has; label smoothing; BatchNorm), then all but BatchNorm, then all on\n"
    "(the config as it is). On image data also each augmentation alone (random crop with\n"
    "reflect padding 4, flips 0.5, random erasing 0.25, mixup 0.2, cutmix 1.0) and all on +\n"
    "augmentation (crop, flips, erasing, mixup). The summary gives each row's paired\n"
    "difference (same seeds) to none, and all on's to BatchNorm only.\n"
    "\n"
    "  --preset quick|full   quick (default): 3 epochs, warmup 20 steps, 2 seeds: 18 runs with\n"
    "                        cnn6_mlp4 before the 6 augmentation rows were added, measured at\n"
    "                        25 minutes under mpirun -n 2 on 2 shared cores (the rows add a\n"
    "                        third).\n"
    "                        full: the config's epochs, 3 seeds (cnn6_mlp4: 45 runs of 30\n"
    "                        epochs, about 2.5 hours on 2 quiet cores, 9 on shared ones;\n"
    "                        docs/studies.md)\n"
    "  --seeds N             seeds per condition (quick 2, full 3)\n"
    "  --epochs E            epochs per run (quick 3, full: config's)\n"
    "  --set key=value       applied to every run\n"
    "\n"
    "Both presets validate on 1,000 samples (the test set is whole). Writes DIR/results.csv (a\n"
    "row per run: accuracies, gaps and ECE as fractions, empty where a value is missing;\n"
    "rewritten after each run), DIR/figure.svg and DIR/summary.md (in percent: mean ± sd\n"
    "[95% CI], paired differences). The gap is eval-mode train accuracy minus test accuracy.\n"
    "Each run keeps DIR/points/<id>/. A DIR that holds a study is refused unless --resume\n"
    "continues it (finished points kept, unfinished ones resumed) or --overwrite starts afresh.\n"
    "Under mpirun every point runs on all ranks.\n";

static const char *usage_batch =
    "usage: regdist study batch --config C --data F --out DIR [options]\n"
    "\n"
    "Hoffer, Hubara & Soudry 2017 (\"Train longer, generalize better\"): the large-batch loss\n"
    "and its recovery, made for launch/configs/mlp5x512_bn.cfg on all training images. At the\n"
    "config's batch b (128), then at each large batch B with the LR scaled by sqrt(B/b):\n"
    "  B, full-batch statistics          BatchNorm over the whole batch of B\n"
    "  B, ghost batches of G             BatchNorm over sub-batches of G (default b)\n"
    "  B, ghost of G, adapted schedule   as above, epochs x B/b: the same number of steps as b\n"
    "All at the same epochs E but the adapted one. The summary puts Hoffer et al.'s MNIST\n"
    "numbers (98.27 / 97.05 / 98.53) beside ours and gives each condition's paired difference\n"
    "(same seeds) to batch b.\n"
    "\n"
    "  --preset quick|full   quick (default): E = 1, 2 seeds, warmup as the config.\n"
    "                        full: E = " BATCH_FULL_EPOCHS_S ", 5 seeds: 20 runs (the adapted ones " BATCH_FULL_ADAPTED_S "\n"
    "                        epochs): about 2.6 hours under mpirun -n 2 on 2 shared cores\n"
    "                        (docs/studies.md), where the B = 4096 runs gain from 2 ranks\n"
    "  --seeds N             seeds per condition (quick 2, full 5)\n"
    "  --epochs E            epochs at every batch but the adapted schedule's (quick 1, full " BATCH_FULL_EPOCHS_S ")\n"
    "  --batches 4096        the large batches B (default 4096)\n"
    "  --groups 128          the ghost batch size G (default the config's batch)\n"
    "  --set key=value       applied to every run\n"
    "\n"
    "Both presets validate on 1,000 samples (the test set is whole). Writes DIR/results.csv,\n"
    "DIR/figure.svg and DIR/summary.md, keeps each run in DIR/points/<id>/, and resumes with\n"
    "--resume, as study bn does.\n";

static int parse_list(const char *s, int *out) {
    int n = 0;
    for (const char *p = s; *p && n < MAX_LIST;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > (1 << 20) || (*end && *end != ',')) return -1;
        out[n++] = (int)v;
        p = *end ? end + 1 : end;
    }
    return n;
}

// The bn study's G lines, for --lines.
enum { LINE_BN_ONLY = 1, LINE_CONFIG = 2 };

// "bn-only", "config" or both, comma-separated, as a LINE_ mask; 0 if anything else.
static int parse_lines(const char *s) {
    int mask = 0;
    for (const char *p = s; *p;) {
        size_t n = strcspn(p, ",");
        if (n == 7 && !strncmp(p, "bn-only", n)) mask |= LINE_BN_ONLY;
        else if (n == 6 && !strncmp(p, "config", n)) mask |= LINE_CONFIG;
        else return 0;
        p += n;
        if (*p && !*++p) return 0;  // a trailing comma
    }
    return mask;
}

static const char *kind_usage(const char *kind) {
    return !strcmp(kind, "bn") ? usage_bn : !strcmp(kind, "reg") ? usage_reg : usage_batch;
}

static void parse_args(const Dist *d, Study *s, int argc, char **argv) {
    if (argc < 2 || (strcmp(argv[1], "bn") && strcmp(argv[1], "reg") && strcmp(argv[1], "batch"))) {
        if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
            if (d->rank == 0) fputs(usage, stdout);
            dist_finalize((Dist *)d);
            exit(0);
        }
        cli_usage_fail(d, "study", "say which study: batch, bn or reg");
    }
    s->kind = argv[1];
    s->preset = "quick";
    s->seeds = s->epochs = s->batch = -1;
    const char *groups = NULL, *batches = NULL, *lines = NULL;
    OptList extra = {s->extra, 0, MAX_SETS - MAX_POINT_SETS - 2};
    // the help is the sweep's own usage, which says what each option means to it
    const Opt opts[] = {OPT_S("config", &s->config, "C", NULL, 1),
                        OPT_S("data", &s->data, "F", NULL, 1),
                        OPT_S("out", &s->out, "DIR", NULL, 1),
                        OPT_S("preset", &s->preset, "quick|full", NULL, 0),
                        OPT_I("seeds", &s->seeds, "N", NULL, 1, 100),
                        OPT_I("epochs", &s->epochs, "E", NULL, 1, 100000),
                        OPT_I("batch", &s->batch, "B", NULL, 1, 1 << 20),
                        OPT_S("groups", &groups, "4,16,...", NULL, 0),
                        OPT_S("batches", &batches, "64,256", NULL, 0),
                        OPT_S("lines", &lines, "bn-only,config", NULL, 0),
                        OPT_L("set", &extra, "key=value", NULL),
                        OPT_F("resume", &s->resume, NULL),
                        OPT_F("overwrite", &s->overwrite, NULL),
                        OPT_END};
    if (opts_parse(d, "study", opts, 0, argc, argv, 2) < 0) {
        if (d->rank == 0) fputs(kind_usage(s->kind), stdout);
        dist_finalize((Dist *)d);
        exit(0);
    }
    s->nextra = extra.n;
    if (groups && (s->nG = parse_list(groups, s->G)) < 1)
        cli_usage_fail(d, "study", "--groups takes positive integers: 4,16,64");
    if (batches && (s->nB = parse_list(batches, s->Bs)) < 0)
        cli_usage_fail(d, "study", "--batches takes positive integers: 64,256");
    if (lines && strcmp(s->kind, "bn"))
        cli_usage_fail(d, "study", "--lines is for study bn, not study %s", s->kind);
    if (lines && (s->lines = parse_lines(lines)) == 0)
        cli_usage_fail(d, "study", "--lines takes bn-only, config or both (bn-only,config), "
                       "not '%s'", lines);
    if (!strcmp(s->kind, "reg") && (s->nG || s->nB))
        cli_usage_fail(d, "study", "--groups and --batches are for study bn and study batch, "
                       "not study reg");
    if (strcmp(s->kind, "bn") && s->batch > 0)
        cli_usage_fail(d, "study", "--batch is for study bn (study %s starts from the config's "
                       "batch: --set train.batch=B)", s->kind);
    if (!strcmp(s->kind, "batch") && s->nG > 1)
        cli_usage_fail(d, "study", "study batch takes one ghost batch size: --groups 128");
    if (s->resume && s->overwrite)
        cli_usage_fail(d, "study", "--resume continues a sweep and --overwrite replaces it: "
                       "choose one");
    if (strcmp(s->preset, "quick") && strcmp(s->preset, "full"))
        cli_usage_fail(d, "study", "--preset must be quick or full, not '%s'", s->preset);
}

// ---- building the points ----

static Point *add_point(const Dist *d, Study *s, const Cond *cond, double x, uint32_t seed) {
    if (s->n >= MAX_POINTS) cli_usage_fail(d, "study", "more than %d runs; ask for fewer", MAX_POINTS);
    Point *p = &s->p[s->n++];
    memset(p, 0, sizeof *p);
    p->train_acc = p->val_acc = p->test_acc = p->test_loss = p->test_ece = NAN;
    p->steps = p->sec_epoch = p->p_train_acc = p->p_test_acc = p->fit_epoch = NAN;
    p->cond = cond;
    p->x = x;
    p->seed = seed;
    p->B = s->cfg.batch;
    return p;
}

static void point_set(Point *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void point_set(Point *p, const char *fmt, ...) {
    if (p->nsets >= MAX_POINT_SETS) return;  // the builders stay far below
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->sets[p->nsets++], sizeof p->sets[0], fmt, ap);
    va_end(ap);
}

// bn.group and bn.ghost for G samples per statistic at global batch B on W ranks (B divisible
// by W, local batch L = B/W): ghost batches for G < L, one rank for G = L, groups of G/L ranks
// above (0 = all). 0 if G cannot be made exactly.
static int bn_layout(int G, int B, int W, int *group, int *ghost, char *how, size_t hown) {
    if (B % W || G > B) return 0;
    int L = B / W;
    if (G <= L) {
        if (L % G) return 0;
        *group = 1;
        *ghost = G < L ? G : 0;
        if (G < L) snprintf(how, hown, "ghost batches of %d", G);
        else snprintf(how, hown, W > 1 ? "local BN per rank" : "whole batch");
        return 1;
    }
    if (G % L || W % (G / L)) return 0;
    *group = G / L == W ? 0 : G / L;
    *ghost = 0;
    snprintf(how, hown, "%d ranks per group", G / L);
    return 1;
}

static void base_sets(Point *p, int epochs) {
    point_set(p, "train.seed=%u", p->seed);
    point_set(p, "train.epochs=%d", epochs);
    p->epochs = epochs;
}

// train.batch = B with the LR scaled by lr_factor, the warmup kept in steps (keep_steps: the
// schedule in steps, Hoffer et al.'s regime adaptation) or in samples (a fixed number of
// epochs: warmup steps x the config's batch / B).
static void batch_sets(Point *p, const Config *c, int B, double lr_factor, int keep_steps) {
    double r = (double)B / c->batch;
    p->B = B;
    point_set(p, "train.batch=%d", B);
    point_set(p, "optim.lr=%.9g", c->optim.lr * lr_factor);
    point_set(p, "sched.warmup_steps=%lld",
              keep_steps ? (long long)c->sched.warmup_steps
                         : (long long)llround((double)c->sched.warmup_steps / r));
}

// The bn study's lines: G at the sweep's batch (the config as it is, and with BatchNorm the
// only regularizer), and the control's B sweeps. Indices are fixed: points refer to them.
static const Cond bn_conds[] = {
    {"g_sweep", "G sweep", "all regularizers on"},
    {"b_fixed_epochs", "B sweep, fixed epochs", "fixed epochs"},
    {"b_fixed_steps", "B sweep, fixed steps", "fixed steps"},
    {"g_sweep_bn_only", "G sweep, BatchNorm only", "BatchNorm only"},
};
#define G_SWEEP (&bn_conds[0])
#define G_BN_ONLY (&bn_conds[3])
#define IS_G_LINE(c) ((c) == G_SWEEP || (c) == G_BN_ONLY)

static void bn_only_sets(const Study *s, Point *p);  // the reg study's "+ BatchNorm" row

// The G and B lists the preset gives where the command line gave none. Quick: G = 4,16,128
// and the control at B = 64,256; full: G = 8,16,...,B0 (2,4,... below B0 = 64) and no control.
// The control's B always include B0, where its lines meet the G sweep.
static void bn_lists(Study *s, int full, int B0) {
    if (!s->nG) {
        static const int quick[] = {4, 16, 128};
        if (full)
            for (int g = B0 >= 64 ? 8 : 2; g <= B0 && s->nG < MAX_LIST; g *= 2) s->G[s->nG++] = g;
        else
            for (int i = 0; i < 3; i++) s->G[s->nG++] = quick[i];
    }
    if (!s->nB && !full) {
        static const int quick[] = {64, 256};
        for (int i = 0; i < 2; i++) s->Bs[s->nB++] = quick[i];
    }
    int with_b0 = 0;
    for (int i = 0; i < s->nB; i++) with_b0 |= s->Bs[i] == B0;
    if (s->nB && !with_b0 && s->nB < MAX_LIST) s->Bs[s->nB++] = B0;
}

// A point of G line `line` for G at batch B0 (none when G cannot be made). Every G of a line
// has the same LR, schedule, epochs and seeds, hence the same data order and masks.
static void add_g_point(const Dist *d, Study *s, const Cond *line, int G, int B0, int E,
                        uint32_t seed) {
    int group, ghost;
    char how[48];
    if (!bn_layout(G, B0, d->world, &group, &ghost, how, sizeof how)) {
        int says = line == G_BN_ONLY || strcmp(s->preset, "full");  // once per G
        if (d->rank == 0 && seed == 1 && says)
            printf("study bn: G = %d cannot be made at batch %d on %d rank%s; skipped\n", G,
                   B0, d->world, d->world > 1 ? "s" : "");
        return;
    }
    Point *p = add_point(d, s, line, G, seed);
    p->G = G;
    snprintf(p->how, sizeof p->how, "%s", how);
    base_sets(p, E);
    if (B0 != s->cfg.batch) batch_sets(p, &s->cfg, B0, (double)B0 / s->cfg.batch, 0);
    point_set(p, "bn.group=%d", group);
    point_set(p, "bn.ghost=%d", ghost);
    if (line == G_BN_ONLY) bn_only_sets(s, p);
}

// The control's point for B at fixed G = Gc, LR scaled linearly with B; fixed epochs keep
// the warmup's length in samples, fixed steps (regime 1) keep the schedule in steps (Hoffer
// et al.). B0's point is the G sweep's at Gc: the same id, so it runs once.
static void add_b_point(const Dist *d, Study *s, int B, int regime, int Gc, int E, uint32_t seed) {
    const Config *c = &s->cfg;
    int group, ghost;
    char how[48];
    double r = (double)B / c->batch;
    int e = regime ? (int)lround(E * r) : E;
    if (e < 1 || !bn_layout(Gc, B, d->world, &group, &ghost, how, sizeof how)) {
        if (d->rank == 0 && seed == 1)
            printf("study bn: B = %d (G = %d, %s) cannot be made; skipped\n", B, Gc,
                   bn_conds[1 + regime].person);
        return;
    }
    Point *p = add_point(d, s, &bn_conds[1 + regime], B, seed);
    p->G = Gc;
    snprintf(p->how, sizeof p->how, "%s", how);
    base_sets(p, e);
    point_set(p, "train.batch=%d", B);
    point_set(p, "bn.group=%d", group);
    point_set(p, "bn.ghost=%d", ghost);
    point_set(p, "optim.lr=%.9g", c->optim.lr * r);
    point_set(p, "sched.warmup_steps=%lld",
              regime ? (long long)c->sched.warmup_steps
                     : (long long)llround((double)c->sched.warmup_steps / r));
    p->B = B;
}

// Quick: the config's line at every G, and the control. Full: at B0 = 512 the BatchNorm-only
// line at every G and the config's line at the smallest, middle and largest G (--lines keeps
// one of the two, or adds the BatchNorm-only line to the quick preset) (the budget's
// choice: the regularizers' line is the second question), seed-major so that a partial
// sweep is already paired. PreciseBN averages 50 batches of the config's batch (6,400
// samples for 128) at every B in the full preset; the quick one keeps 50 batches.
static void build_bn(const Dist *d, Study *s) {
    const Config *c = &s->cfg;
    int full = !strcmp(s->preset, "full");
    int B0 = s->batch > 0 ? s->batch : full ? 512 : c->batch;
    int E = s->epochs > 0 ? s->epochs : full ? BN_FULL_EPOCHS : 3;
    int seeds = s->seeds > 0 ? s->seeds : full ? 5 : 2;
    int lines = s->lines ? s->lines : full ? LINE_BN_ONLY | LINE_CONFIG : LINE_CONFIG;
    bn_lists(s, full, B0);
    // the control's G: 32 (Goyal et al.) when the sweep has it, else the G nearest it
    int Gc = s->G[0];
    for (int i = 0; i < s->nG; i++)
        if (abs(s->G[i] - 32) < abs(Gc - 32)) Gc = s->G[i];
    for (uint32_t seed = 1; seed <= (uint32_t)seeds; seed++) {
        for (int i = 0; (lines & LINE_BN_ONLY) && i < s->nG; i++)
            add_g_point(d, s, G_BN_ONLY, s->G[i], B0, E, seed);
        for (int i = 0; (lines & LINE_CONFIG) && i < s->nG; i++)
            if (!full || i == 0 || i == s->nG / 2 || i == s->nG - 1)
                add_g_point(d, s, G_SWEEP, s->G[i], B0, E, seed);
        for (int regime = 0; regime < 2; regime++)
            for (int i = 0; i < s->nB; i++) add_b_point(d, s, s->Bs[i], regime, Gc, E, seed);
    }
    for (int i = 0; i < s->n; i++) {
        Point *p = &s->p[i];
        int precise = full ? (50 * c->batch + p->B - 1) / p->B : 50;
        point_set(p, "eval.precise_bn=%d", precise > 0 ? precise : 1);
        snprintf(p->id, sizeof p->id, "%sG%d-B%d-E%d-s%u", p->cond == G_BN_ONLY ? "bnonly-" : "",
                 p->G, p->B, p->epochs, p->seed);
    }
}

// The dropout-family layers of a layer list, for switching all but one kind off.
typedef struct {
    char name[LAYER_NAME_MAX + 1];
    char kind[16];  // "dropout", "dropout2d", "dropblock", "dropconnect", "droppath"
    char key[16];   // its probability's key: "p", "dropconnect", "drop_path"
} RegLayer;

static int find_reg_layers(const LayerSpec *l, int n, RegLayer *out, int k) {
    for (int i = 0; i < n && k < 64; i++) {
        const char *key = NULL, *kind = layer_spec_drop(&l[i], &key);  // the layer kind says
        if (kind) {
            snprintf(out[k].name, sizeof out[k].name, "%s", l[i].name);
            snprintf(out[k].kind, sizeof out[k].kind, "%s", kind);
            snprintf(out[k].key, sizeof out[k].key, "%s", key);
            k++;
        }
        k = find_reg_layers(l[i].children, l[i].nchildren, out, k);
    }
    return k;
}

static int has_kind(const RegLayer *r, int n, const char *kind) {
    for (int i = 0; i < n; i++)
        if (!strcmp(r[i].kind, kind)) return 1;
    return 0;
}

// Whether a layer of a kind with flag (LAYER_RUNNING_STATS: batchnorm) is in the list.
static int has_flag(const LayerSpec *l, int n, unsigned flag) {
    for (int i = 0; i < n; i++)
        if ((layer_kind_find(l[i].type)->flags & flag) ||
            has_flag(l[i].children, l[i].nchildren, flag))
            return 1;
    return 0;
}

// Switches every dropout-family layer but those of kind keep off (keep NULL: all of them).
static void only_dropout_kind(Point *p, const RegLayer *r, int n, const char *keep) {
    if (!keep) {
        point_set(p, "reg.dropout=off");
        return;
    }
    for (int i = 0; i < n; i++) {
        if (!strcmp(r[i].kind, keep)) continue;
        point_set(p, "layer.%s.%s=0", r[i].name, r[i].key);
    }
}

// 1 when the training samples are images (C,H,W), which augmentation needs. Train reports a
// file it cannot read; here that only leaves the augmentation rows out.
static int data_is_images(const char *data) {
    Dataset ds;
    memset(&ds, 0, sizeof ds);
    Err e = {0};
    int images = dataset_load_rows(&ds, data, "train", 0, NULL, 0, &e) == ERR_OK &&
                 ds.shape.ndim == 3 && ds.shape.d[1] > 4 && ds.shape.d[2] > 4;
    dataset_free(&ds);
    return images;
}

// The augmentation rows' settings, each transform alone, as in docs/regularization.md's
// example; "all" turns on every one but cutmix.
static const char *const aug_sets_of[][2] = {
    {"augment.crop_pad=4", "augment.crop_mode=reflect"},
    {"augment.hflip=0.5", NULL},
    {"augment.erase=0.25", NULL},
    {"augment.mixup=0.2", NULL},
    {"augment.cutmix=1.0", NULL},
};
#define N_AUG (int)(sizeof aug_sets_of / sizeof aug_sets_of[0])
enum { AUG_OFF = -1, AUG_ALL = -2 };

// Turns augmentation on with transform i's settings (AUG_ALL: all but cutmix).
static void aug_sets(Point *p, int row) {
    point_set(p, "augment.enable=on");
    for (int i = 0; i < N_AUG; i++) {
        if (row >= 0 ? i != row : i == 4) continue;
        for (int k = 0; k < 2; k++)
            if (aug_sets_of[i][k]) point_set(p, "%s", aug_sets_of[i][k]);
    }
}

enum { OPT_NO_DECAY, OPT_ADAMW, OPT_ADAM_L2 };

// A condition of the reg study and what it changes. From nothing: no decay, no dropout of
// any kind, no label smoothing, no L1/L2, then what the row adds; otherwise the config as it
// is. BatchNorm is off unless the row keeps it; augmentation is off unless the row has some.
typedef struct {
    Cond c;
    int from_nothing;
    int opt;           // from nothing: OPT_*
    const char *drop;  // from nothing: the dropout-family layer kind kept (the config needs one)
    int smooth;        // from nothing: label smoothing at the config's value (else 0.1)
    int bn;            // keeps BatchNorm; a row that adds it needs a model with it
    int aug;           // AUG_OFF, a transform of aug_sets_of, or AUG_ALL (image data only)
} RegCond;

static const RegCond reg_conds[] = {
    {{"none", "none", "no regularization"}, 1, OPT_NO_DECAY, NULL, 0, 0, AUG_OFF},
    {{"weight_decay_adamw", "+ weight decay (AdamW)", "weight decay (AdamW) only"}, 1, OPT_ADAMW,
     NULL, 0, 0, AUG_OFF},
    {{"l2_adam_coupled", "+ L2 (Adam, coupled)", "L2 (Adam, coupled) only"}, 1, OPT_ADAM_L2, NULL,
     0, 0, AUG_OFF},
    {{"dropout", "+ dropout", "dropout only"}, 1, OPT_NO_DECAY, "dropout", 0, 0, AUG_OFF},
    {{"dropout2d", "+ Dropout2d", "Dropout2d only"}, 1, OPT_NO_DECAY, "dropout2d", 0, 0, AUG_OFF},
    {{"dropblock", "+ DropBlock", "DropBlock only"}, 1, OPT_NO_DECAY, "dropblock", 0, 0, AUG_OFF},
    {{"dropconnect", "+ DropConnect", "DropConnect only"}, 1, OPT_NO_DECAY, "dropconnect", 0, 0,
     AUG_OFF},
    {{"droppath", "+ DropPath", "DropPath only"}, 1, OPT_NO_DECAY, "droppath", 0, 0, AUG_OFF},
    {{"label_smoothing", "+ label smoothing", "label smoothing only"}, 1, OPT_NO_DECAY, NULL, 1, 0,
     AUG_OFF},
    {{"batchnorm", "+ BatchNorm", "BatchNorm only"}, 1, OPT_NO_DECAY, NULL, 0, 1, AUG_OFF},
    {{"all_but_batchnorm", "all but BatchNorm", "all but BatchNorm"}, 0, 0, NULL, 0, 0, AUG_OFF},
    {{"all_on", "all on", "all regularizers on"}, 0, 0, NULL, 0, 1, AUG_OFF},
    {{"random_crop", "+ random crop", "random crop only"}, 1, OPT_NO_DECAY, NULL, 0, 0, 0},
    {{"flips", "+ flips", "flips only"}, 1, OPT_NO_DECAY, NULL, 0, 0, 1},
    {{"random_erasing", "+ random erasing", "random erasing only"}, 1, OPT_NO_DECAY, NULL, 0, 0, 2},
    {{"mixup", "+ mixup", "mixup only"}, 1, OPT_NO_DECAY, NULL, 0, 0, 3},
    {{"cutmix", "+ cutmix", "cutmix only"}, 1, OPT_NO_DECAY, NULL, 0, 0, 4},
    {{"all_on_augmentation", "all on + augmentation", "all on + augmentation"}, 0, 0, NULL, 0, 1,
     AUG_ALL},
};
#define N_REG_CONDS (int)(sizeof reg_conds / sizeof reg_conds[0])

// Whether the config and data can make row q: its dropout kind, BatchNorm for the rows about
// it, images for augmentation.
static int reg_row_applies(const RegCond *q, const RegLayer *r, int nr, int bn, int images) {
    if (q->drop && !has_kind(r, nr, q->drop)) return 0;
    if (!bn && (q->bn || !strcmp(q->c.name, "all_but_batchnorm"))) return 0;
    return q->aug == AUG_OFF || images;
}

// The settings of row q on point p (after its seed and epochs).
static void reg_row_sets(Point *p, const RegCond *q, const RegLayer *r, int nr, int bn, int images,
                         double wd, double ls) {
    if (q->aug == AUG_OFF && images) point_set(p, "augment.enable=off");
    else if (q->aug != AUG_OFF) aug_sets(p, q->aug);
    if (q->from_nothing) {
        if (q->drop) point_set(p, "reg.dropout=on");
        only_dropout_kind(p, r, nr, q->drop);
        point_set(p, "optim.name=%s", q->opt == OPT_ADAM_L2 ? "adam" : "adamw");
        point_set(p, "optim.weight_decay=%g", q->opt == OPT_NO_DECAY ? 0.0 : wd);
        point_set(p, "reg.label_smoothing=%g", q->smooth ? ls : 0.0);
        point_set(p, "reg.l1=0");
        point_set(p, "reg.l2=0");
    }
    if (bn && !q->bn) point_set(p, "model.batchnorm=off");
}

// The coefficients a row that adds weight decay or label smoothing uses: the config's, or
// 0.01 and 0.1 where the config has none.
static double reg_wd(const Config *c) { return c->optim.weight_decay > 0 ? c->optim.weight_decay : 0.01; }
static double reg_ls(const Config *c) { return c->label_smoothing > 0 ? c->label_smoothing : 0.1; }

static const RegCond *reg_cond_named(const char *name) {
    for (int i = 0; i < N_REG_CONDS; i++)
        if (!strcmp(reg_conds[i].c.name, name)) return &reg_conds[i];
    return NULL;
}

// BatchNorm the only regularizer: the reg study's "+ BatchNorm" row, on a point of the bn
// study (whose config has BatchNorm).
static void bn_only_sets(const Study *s, Point *p) {
    const Config *c = &s->cfg;
    RegLayer r[64];
    int nr = find_reg_layers(c->layers, c->nlayers, r, 0);
    reg_row_sets(p, reg_cond_named("batchnorm"), r, nr, 1, s->images, reg_wd(c), reg_ls(c));
}

static void build_reg(const Dist *d, Study *s) {
    const Config *c = &s->cfg;
    int full = !strcmp(s->preset, "full");
    int E = s->epochs > 0 ? s->epochs : full ? c->epochs : 3;
    int seeds = s->seeds > 0 ? s->seeds : full ? 3 : 2;
    RegLayer r[64];
    int nr = find_reg_layers(c->layers, c->nlayers, r, 0);
    int bn = has_flag(c->layers, c->nlayers, LAYER_RUNNING_STATS);
    int images = s->images;  // augmentation rows need images
    double wd = reg_wd(c), ls = reg_ls(c);
    for (uint32_t seed = 1; seed <= (uint32_t)seeds; seed++)
        for (int ci = 0, x = 0; ci < N_REG_CONDS; ci++) {
            const RegCond *q = &reg_conds[ci];
            if (!reg_row_applies(q, r, nr, bn, images)) continue;
            Point *p = add_point(d, s, &q->c, x++, seed);
            base_sets(p, E);
            reg_row_sets(p, q, r, nr, bn, images, wd, ls);
            snprintf(p->id, sizeof p->id, "%s-E%d-s%u", q->c.name, p->epochs, p->seed);
        }
}

// ---- the batch study (Hoffer, Hubara & Soudry 2017) ----

// Its conditions, at the config's batch b and at each large batch B (the point's x is B).
static const Cond batch_conds[] = {
    {"small", "small batch", "small batch"},
    {"large", "large batch, full-batch statistics", "full-batch statistics"},
    {"ghost", "large batch, ghost batches", "ghost batches"},
    {"adapted", "large batch, ghost batches, adapted schedule", "ghost batches, adapted schedule"},
};

// A point of condition cond: batch B normalized over G, LR x lr_factor, E epochs (the
// adapted schedule keeps the warmup in steps; the rest keep it in samples).
static void add_batch_point(const Dist *d, Study *s, const Cond *cond, int B, int G, int E,
                            double lr_factor, uint32_t seed) {
    int group, ghost;
    char how[48];
    if (!bn_layout(G, B, d->world, &group, &ghost, how, sizeof how)) {
        if (d->rank == 0 && seed == 1)
            printf("study batch: %s at B = %d (G = %d) cannot be made on %d rank%s; skipped\n",
                   cond->person, B, G, d->world, d->world > 1 ? "s" : "");
        return;
    }
    Point *p = add_point(d, s, cond, B, seed);
    p->G = G;
    snprintf(p->how, sizeof p->how, "%s", how);
    base_sets(p, E);
    batch_sets(p, &s->cfg, B, lr_factor, cond == &batch_conds[3]);
    point_set(p, "bn.group=%d", group);
    point_set(p, "bn.ghost=%d", ghost);
}

// Per seed: b with statistics over the whole batch; then for each large B, the LR scaled by
// sqrt(B/b) (Hoffer et al.'s rule, which keeps the gradient noise's covariance): full-batch
// statistics, ghost batches of G, and ghost batches of G with E x B/b epochs (the same steps
// as b). Seed-major, so a partial sweep is already paired.
static void build_batch(const Dist *d, Study *s) {
    const Config *c = &s->cfg;
    int full = !strcmp(s->preset, "full");
    int b = c->batch, E = s->epochs > 0 ? s->epochs : full ? BATCH_FULL_EPOCHS : 1;
    int seeds = s->seeds > 0 ? s->seeds : full ? 5 : 2;
    int G = s->nG ? s->G[0] : b;
    if (!s->nB) s->Bs[s->nB++] = 4096;
    for (int i = 0; i < s->nB; i++)
        if (s->Bs[i] <= b)
            cli_usage_fail(d, "study", "--batches %d: a large batch must exceed the config's "
                           "batch %d", s->Bs[i], b);
    if (G > b)
        cli_usage_fail(d, "study", "--groups %d: the ghost batch must not exceed the config's "
                       "batch %d", G, b);
    for (uint32_t seed = 1; seed <= (uint32_t)seeds; seed++) {
        add_batch_point(d, s, &batch_conds[0], b, b, E, 1, seed);
        for (int i = 0; i < s->nB; i++) {
            int B = s->Bs[i];
            double f = sqrt((double)B / b);
            add_batch_point(d, s, &batch_conds[1], B, B, E, f, seed);
            add_batch_point(d, s, &batch_conds[2], B, G, E, f, seed);
            add_batch_point(d, s, &batch_conds[3], B, G, (int)lround((double)E * B / b), f, seed);
        }
    }
    for (int i = 0; i < s->n; i++) {
        Point *p = &s->p[i];
        snprintf(p->id, sizeof p->id, "%s-B%d-G%d-E%d-s%u", p->cond->name, p->B, p->G, p->epochs,
                 p->seed);
    }
}

// The human label of each point, from what the run is (its condition, G, B, epochs, seed),
// not its directory name: "BatchNorm only, 12 epochs, seed 1", "G = 4 (ghost batches of 4),
// B = 128, 3 epochs, seed 1".
static void label_points(Study *s) {
    for (int i = 0; i < s->n; i++) {
        Point *p = &s->p[i];
        char what[128], runs[64];
        snprintf(runs, sizeof runs, "%d epoch%s, seed %u", p->epochs, p->epochs == 1 ? "" : "s",
                 p->seed);
        if (p->cond == G_SWEEP)
            snprintf(what, sizeof what, "G = %d (%s), B = %d", p->G, p->how, p->B);
        else if (p->cond == G_BN_ONLY)
            snprintf(what, sizeof what, "BatchNorm only, G = %d (%s), B = %d", p->G, p->how, p->B);
        else if (p->cond == &batch_conds[0])
            snprintf(what, sizeof what, "B = %d (%s)", p->B, p->how);
        else if (p->cond > batch_conds && p->cond < batch_conds + 4)
            snprintf(what, sizeof what, "B = %d, %s, G = %d (%s)", p->B, p->cond->person, p->G,
                     p->how);
        else if (p->cond >= bn_conds && p->cond < bn_conds + 3)
            snprintf(what, sizeof what, "B = %d, G = %d (%s), %s", p->B, p->G, p->how,
                     p->cond->person);
        else
            snprintf(what, sizeof what, "%s", p->cond->person);
        snprintf(p->label, sizeof p->label, "%s, %s", what, runs);
    }
}

// ---- running the points ----

// A point's results from its summary.json (NaN for what it does not hold).
static void read_summary(Point *p, const char *dir) {
    char path[1400];
    snprintf(path, sizeof path, "%s/summary.json", dir);
    RunSummary r;
    Err e = {0};
    if (summary_read(path, &r, &e)) return;  // not finished: its values stay missing
    p->train_acc = r.r[SPLIT_TRAIN].accuracy;
    p->val_acc = r.has[SPLIT_VAL] ? r.r[SPLIT_VAL].accuracy : NAN;
    p->test_acc = r.has[SPLIT_TEST] ? r.r[SPLIT_TEST].accuracy : NAN;
    p->test_loss = r.has[SPLIT_TEST] ? r.r[SPLIT_TEST].loss : NAN;
    p->test_ece = r.has[SPLIT_TEST] ? r.r[SPLIT_TEST].ece : NAN;
    p->steps = (double)r.steps;
    p->sec_epoch = r.seconds_per_epoch;
    p->p_train_acc = r.precise ? r.pr[SPLIT_TRAIN].accuracy : NAN;
    p->p_test_acc = r.precise && r.has[SPLIT_TEST] ? r.pr[SPLIT_TEST].accuracy : NAN;
    // when training fitted: the first epoch at 99% train-mode accuracy, if any
    snprintf(path, sizeof path, "%s/metrics.csv", dir);
    MetricsRow *rows = NULL;
    int n = 0;
    if (metrics_read(path, &rows, &n, &e) == ERR_OK)
        for (int i = 0; i < n && isnan(p->fit_epoch); i++)
            if (rows[i].train_acc >= 0.99) p->fit_epoch = (double)rows[i].epoch;
    free(rows);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path) != 0 && errno != ENOENT;
}

// A study directory belongs to one sweep: one that holds a sweep (results.csv or points/) is
// refused unless --resume continues it (finished points are kept, unfinished ones resume) or
// --overwrite starts afresh (its results and every point's run removed first). Rank 0 only.
static int claim_study_dir(const Study *s, Err *e) {
    char csv[1200], pts[1200];
    snprintf(csv, sizeof csv, "%s/results.csv", s->out);
    snprintf(pts, sizeof pts, "%s/points", s->out);
    int held = rundir_exists(csv) || rundir_exists(pts);
    if (!held || s->resume) return ERR_OK;
    if (!s->overwrite)
        return err_set(e, ERR_INPUT, "--out %s already holds a study: continue it with --resume "
                       "(finished runs are kept), start afresh with --overwrite, or choose another "
                       "--out", s->out);
    static const char *const files[] = {"results.csv", "summary.md", "figure.svg"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(csv, sizeof csv, "%s/%s", s->out, files[i]);
        if (remove(csv) != 0 && errno != ENOENT)
            return err_set(e, ERR_RUNTIME, "--overwrite: cannot remove %s: %s", csv, strerror(errno));
    }
    if (rundir_exists(pts) && nftw(pts, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return err_set(e, ERR_RUNTIME, "--overwrite: cannot remove %s: %s", pts, strerror(errno));
    return ERR_OK;
}

// The point's own report goes to DIR/points/<id>/train.log (appended to when it resumes).
// Rank 0 only; NULL with e set when the log cannot be written.
static FILE *open_point_log(const char *dir, int resume, Err *e) {
    char log[1400];
    snprintf(log, sizeof log, "%s/train.log", dir);
    FILE *f = fopen(log, resume ? "a" : "w");
    if (!f) err_set(e, ERR_INPUT, "cannot write %s: %s", log, strerror(errno));
    return f;
}

// Trains point i in dir (fresh, or resumed from its last.h5). 0 when the run ended or was
// stopped by a signal; a failure (the same on every rank) is reported in one line and in
// the point's train.log, and the sweep goes on. Collective.
static void train_point(const Dist *d, const Study *s, const Point *p, const char *dir,
                        int resume) {
    char ckpt[1400];
    snprintf(ckpt, sizeof ckpt, "%s/last.h5", dir);
    const char *sets[MAX_SETS];
    int n = 0;
    for (int k = 0; k < s->nextra; k++) sets[n++] = s->extra[k];
    for (int k = 0; k < p->nsets; k++) sets[n++] = p->sets[k];
    Err e = {0};
    FILE *log = NULL;
    // the study's own directory: when it cannot be written, no point can go on
    if (rundir_make(d, dir, &e) == 0) {  // agreed already; the log is rank 0's alone
        if (d->rank == 0) log = open_point_log(dir, resume, &e);
        dist_agree(d, &e);
    }
    if (e.code) dist_exit_agreed((Dist *)d, &e);
    TrainArgs a = {.config = s->config, .data = s->data, .out = dir, .sets = sets, .nsets = n,
                   .resume = resume ? ckpt : NULL, .overwrite = !resume, .log = log};
    TrainResult r;
    double t0 = now_seconds();
    int rc = train_run(d, &a, &r, &e);
    if (log) {
        if (rc) fprintf(log, "regdist: %s\n", e.msg);
        fclose(log);
    }
    if (dist_max_int(d, signals_pending())) {  // preempted: the point has its checkpoint
        if (d->rank == 0)
            printf("stopped by a signal; run the same command with --resume to continue\n");
        dist_finalize((Dist *)d);
        exit(0);
    }
    if (d->rank != 0) return;
    if (rc) printf("failed: %s\n", e.msg);
    else printf("%s in %.0f s: ", resume ? "resumed" : "trained", now_seconds() - t0);
}

// Runs point i (or finds it finished). Collective: rank 0 decides, everyone trains.
static void run_point(const Dist *d, Study *s, int i) {
    Point *p = &s->p[i];
    char dir[1200], path[1400], ckpt[1400];
    snprintf(dir, sizeof dir, "%s/points/%s", s->out, p->id);
    snprintf(path, sizeof path, "%s/summary.json", dir);
    snprintf(ckpt, sizeof ckpt, "%s/last.h5", dir);
    double state = 0;  // 0 fresh, 1 resume, 2 finished
    if (d->rank == 0) state = rundir_exists(path) ? 2 : rundir_exists(ckpt) ? 1 : 0;
    dist_bcast_f64(d, &state, 1);
    if (d->rank == 0) {
        printf("[%d/%d] %-24s %-14s seed %u  ", i + 1, s->n, p->cond->label, p->id, p->seed);
        fflush(stdout);
    }
    if (state < 2) train_point(d, s, p, dir, state == 1);
    else if (d->rank == 0) printf("finished before: ");
    if (d->rank != 0) return;
    if (rundir_exists(path)) {
        read_summary(p, dir);
        printf("test acc %.2f%%  train-test gap %.2f points\n", 100 * p->test_acc,
               100 * (p->train_acc - p->test_acc));
    }
    fflush(stdout);
}

// ---- results ----

// The metrics, per point. Accuracies, gaps and ECE in percent, for people: the files hold
// fractions. NaN where the run did not give the value.
typedef double (*Metric)(const Point *);
static double m_test(const Point *p) { return 100 * p->test_acc; }
static double m_gap(const Point *p) { return 100 * (p->train_acc - p->test_acc); }
static double m_ptest(const Point *p) { return 100 * p->p_test_acc; }
static double m_pgap(const Point *p) { return 100 * (p->p_train_acc - p->p_test_acc); }
static double m_train(const Point *p) { return 100 * p->train_acc; }
static double m_ece(const Point *p) { return 100 * p->test_ece; }
static double m_loss(const Point *p) { return p->test_loss; }
static double m_sec(const Point *p) { return p->sec_epoch; }
static double m_steps(const Point *p) { return p->steps; }

static int at(const Point *p, const Cond *cond, double x) { return p->cond == cond && p->x == x; }

// Metric f over the seeds of (cond, x): mean, sd and 95% t interval of the mean.
static MeanCI stat_of(const Study *s, const Cond *cond, double x, Metric f) {
    double v[MAX_POINTS];
    int n = 0;
    for (int i = 0; i < s->n; i++)
        if (at(&s->p[i], cond, x)) v[n++] = f(&s->p[i]);
    return mean_ci(v, n);
}

// The paired difference f(a) - f(b), seed by seed, over the seeds both have a value for: the
// same seed is the same initialization, data order and masks, so the seed-to-seed spread
// both share cancels.
static MeanCI paired_of(const Study *s, const Cond *ca, double xa, const Cond *cb, double xb,
                        Metric f) {
    double v[MAX_POINTS];
    int n = 0;
    for (int i = 0; i < s->n; i++) {
        if (!at(&s->p[i], ca, xa)) continue;
        for (int j = 0; j < s->n; j++)
            if (at(&s->p[j], cb, xb) && s->p[j].seed == s->p[i].seed)
                v[n++] = f(&s->p[i]) - f(&s->p[j]);
    }
    return mean_ci(v, n);
}

// The distinct x of a condition, ascending (at most MAX_LIST * 2).
static int xs_of(const Study *s, const Cond *cond, double *xs) {
    int n = 0;
    for (int i = 0; i < s->n; i++) {
        if (s->p[i].cond != cond) continue;
        int seen = 0;
        for (int k = 0; k < n; k++) seen |= xs[k] == s->p[i].x;
        if (seen || n >= 2 * MAX_LIST) continue;
        int k = n++;
        while (k > 0 && xs[k - 1] > s->p[i].x) xs[k] = xs[k - 1], k--;
        xs[k] = s->p[i].x;
    }
    return n;
}

// The first point of (cond, x), for what every seed of it shares (G, B, epochs, how).
static const Point *point_at(const Study *s, const Cond *cond, double x) {
    for (int i = 0; i < s->n; i++)
        if (at(&s->p[i], cond, x)) return &s->p[i];
    return NULL;
}

// The fewest and most runs behind a (condition, x) of the sweep that has any result.
static void seeds_range(const Study *s, int *lo, int *hi) {
    *lo = 0, *hi = 0;
    for (int i = 0; i < s->n; i++) {
        int n = stat_of(s, s->p[i].cond, s->p[i].x, m_test).n;
        if (n && (!*lo || n < *lo)) *lo = n;
        if (n > *hi) *hi = n;
    }
}

// What a figure's points and error bars are: "1 seed" (no error bars), "mean and 95% CI
// over 5 seeds", "mean and 95% CI over 1–3 seeds per point".
static void seeds_phrase(const Study *s, char *buf, size_t n) {
    int lo, hi;
    seeds_range(s, &lo, &hi);
    if (hi <= 1) snprintf(buf, n, "1 seed");
    else if (lo == hi) snprintf(buf, n, "mean and 95%% CI over %d seeds", hi);
    else snprintf(buf, n, "mean and 95%% CI over %d–%d seeds per point", lo, hi);
}

// A CSV field: a number, or empty when it is missing.
static void csv_num(FILE *f, const char *fmt, double v) {
    fputc(',', f);
    if (isfinite(v)) fprintf(f, fmt, v);
}

// A CSV text field, quoted, quotes doubled.
static void csv_text(FILE *f, const char *v, int first) {
    if (!first) fputc(',', f);
    fputc('"', f);
    for (; *v; v++) fputs(*v == '"' ? "\"\"" : (char[2]){*v, 0}, f);
    fputc('"', f);
}

// DIR/results.csv, a row per run, written whole (temporary file, then rename) before the first
// run and after each one, so that it always says what is done. Accuracies, gaps and ECE are
// fractions; a value a run has not given (yet) is an empty cell.
static void write_csv(const Dist *d, const Study *s) {
    char path[1200], tmp[1300];
    snprintf(path, sizeof path, "%s/results.csv", s->out);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    Err e;
    if (!f) {
        err_set(&e, ERR_RUNTIME, "cannot write %s: %s", tmp, strerror(errno));
        cli_fail(d, &e);
    }
    fprintf(f, "study,condition,id,label,seed,G,B,how,epochs,steps,train_acc,val_acc,test_acc,"
               "train_test_gap,test_loss,test_ece,precise_train_acc,precise_test_acc,"
               "precise_train_test_gap,seconds_per_epoch\n");
    for (int i = 0; i < s->n; i++) {
        const Point *p = &s->p[i];
        fprintf(f, "%s", s->kind);
        csv_text(f, p->cond->label, 0);
        fprintf(f, ",%s", p->id);
        csv_text(f, p->label, 0);
        fprintf(f, ",%u,%d,%d", p->seed, p->G, p->B);
        csv_text(f, p->how, 0);
        fprintf(f, ",%d", p->epochs);
        csv_num(f, "%.0f", p->steps);
        csv_num(f, "%.6f", p->train_acc);
        csv_num(f, "%.6f", p->val_acc);
        csv_num(f, "%.6f", p->test_acc);
        csv_num(f, "%.6f", p->train_acc - p->test_acc);
        csv_num(f, "%.6f", p->test_loss);
        csv_num(f, "%.6f", p->test_ece);
        csv_num(f, "%.6f", p->p_train_acc);
        csv_num(f, "%.6f", p->p_test_acc);
        csv_num(f, "%.6f", p->p_train_acc - p->p_test_acc);
        csv_num(f, "%.3f", p->sec_epoch);
        fputc('\n', f);
    }
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        err_set(&e, ERR_RUNTIME, "cannot write %s: %s", path, strerror(errno));
        cli_fail(d, &e);
    }
}

// The next field of a results.csv line at *at (quoted or not) into out; 0 at the line's end.
static int csv_field(const char **at, char *out, size_t n) {
    const char *p = *at;
    size_t k = 0;
    if (!*p || *p == '\n' || *p == '\r') return 0;
    int quoted = *p == '"';
    for (p += quoted; *p; p++) {
        if (quoted && *p == '"') {
            if (p[1] != '"') {  // the closing quote
                quoted = 0;
                continue;
            }
            p++;  // a doubled quote is one
        } else if (!quoted && (*p == ',' || *p == '\n' || *p == '\r')) {
            break;
        }
        if (k + 1 < n) out[k++] = *p;
    }
    out[k] = 0;
    *at = *p == ',' ? p + 1 : p;
    return 1;
}

int study_point_label(const char *run_dir, char *label, size_t n) {
    char dir[PATH_MAX], path[PATH_MAX + 32];
    if (!realpath(run_dir, dir)) return 0;
    char *id = strrchr(dir, '/');
    if (!id || id == dir) return 0;
    *id++ = 0;  // dir is now DIR/points
    char *points = strrchr(dir, '/');
    if (!points || strcmp(points + 1, "points")) return 0;
    *points = 0;
    snprintf(path, sizeof path, "%s/results.csv", dir);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char *line = NULL, field[512];
    size_t cap = 0;
    int id_col = -1, label_col = -1, found = 0;
    for (int row = 0; !found && getline(&line, &cap, f) > 0; row++) {
        const char *at = line;
        char this_id[512] = "", this_label[512] = "";
        for (int c = 0; csv_field(&at, field, sizeof field); c++) {
            if (row == 0 && !strcmp(field, "id")) id_col = c;
            if (row == 0 && !strcmp(field, "label")) label_col = c;
            if (c == id_col) snprintf(this_id, sizeof this_id, "%s", field);
            if (c == label_col) snprintf(this_label, sizeof this_label, "%s", field);
        }
        if (row == 0 && (id_col < 0 || label_col < 0)) break;  // an older table: no labels
        if (row > 0 && *this_label && !strcmp(this_id, id)) {
            snprintf(label, n, "%s", this_label);
            found = 1;
        }
    }
    free(line);
    fclose(f);
    return found;
}

// A line series of metric f against x for one condition: the mean over seeds, with error
// bars that are the 95% interval of the mean (none below two seeds).
typedef struct {
    double x[2 * MAX_LIST], y[2 * MAX_LIST], err[2 * MAX_LIST];
    char label[96];
} SeriesData;

static SvgSeries series_of(const Study *s, const Cond *cond, const char *label, Metric f,
                           SeriesData *sd) {
    int n = xs_of(s, cond, sd->x);
    for (int k = 0; k < n; k++) {
        MeanCI c = stat_of(s, cond, sd->x[k], f);
        sd->y[k] = c.mean;
        sd->err[k] = c.hi - c.mean;
    }
    snprintf(sd->label, sizeof sd->label, "%s", label);
    return (SvgSeries){.label = sd->label, .n = n, .x = sd->x, .y = sd->y, .err = sd->err};
}

// The paired difference of f to the condition's smallest x, for x above it.
static SvgSeries diff_series_of(const Study *s, const Cond *cond, const char *label, Metric f,
                                SeriesData *sd) {
    double xs[2 * MAX_LIST];
    int n = xs_of(s, cond, xs), k = 0;
    for (int i = 1; i < n; i++, k++) {
        MeanCI c = paired_of(s, cond, xs[i], cond, xs[0], f);
        sd->x[k] = xs[i];
        sd->y[k] = c.mean;
        sd->err[k] = c.hi - c.mean;
    }
    snprintf(sd->label, sizeof sd->label, "%s", label);
    return (SvgSeries){.label = sd->label, .n = k, .x = sd->x, .y = sd->y, .err = sd->err};
}

static void fail_svg(const Dist *d, int rc, const Err *e) {
    if (rc) cli_fail(d, e);
}

// The config's file name, for titles.
static const char *config_name(const Study *s) {
    const char *slash = strrchr(s->config, '/');
    return slash ? slash + 1 : s->config;
}

// "8,200 training images" (data.train_size), or "all training images": for figure titles.
static void data_phrase(const Study *s, char *buf, size_t n) {
    long long k = (long long)s->cfg.train_size;
    if (k <= 0) snprintf(buf, n, "all training images");
    else if (k < 1000) snprintf(buf, n, "%lld training images", k);
    else if (k < 1000000) snprintf(buf, n, "%lld,%03lld training images", k / 1000, k % 1000);
    else snprintf(buf, n, "%lld training images", k);
}

// The G lines a bn study has, BatchNorm only first; their count.
static int g_lines(const Study *s, const Cond **lines) {
    int n = 0;
    const Cond *all[2] = {G_BN_ONLY, G_SWEEP};
    for (int k = 0; k < 2; k++) {
        double xs[2 * MAX_LIST];
        if (xs_of(s, all[k], xs)) lines[n++] = all[k];
    }
    return n;
}

// A legend entry: "PreciseBN" with one line, "BatchNorm only, PreciseBN" with two.
static void line_label(char *buf, size_t n, const Cond *line, int nlines, const char *what) {
    if (nlines > 1) snprintf(buf, n, "%s, %s", line->person, what);
    else snprintf(buf, n, "%s", what);
}

// The bn study's figure: test accuracy, train - test gap and the paired difference to the
// smallest G against G, for each G line with running statistics and PreciseBN; below, the
// control's B sweeps when the study has them.
static void bn_figures(const Dist *d, const Study *s, FILE *md) {
    const Cond *lines[2];
    int nl = g_lines(s, lines);
    SeriesData a[4], g[4], df[2], b[4];
    SvgSeries g_acc[4], g_gap[4], g_diff[2];
    char lab[96];
    for (int k = 0; k < nl; k++) {
        line_label(lab, sizeof lab, lines[k], nl, "running statistics");
        g_acc[2 * k] = series_of(s, lines[k], lab, m_test, &a[2 * k]);
        g_gap[2 * k] = series_of(s, lines[k], lab, m_gap, &g[2 * k]);
        g_diff[k] = diff_series_of(s, lines[k], lab, m_test, &df[k]);
        line_label(lab, sizeof lab, lines[k], nl, "PreciseBN");
        g_acc[2 * k + 1] = series_of(s, lines[k], lab, m_ptest, &a[2 * k + 1]);
        g_gap[2 * k + 1] = series_of(s, lines[k], lab, m_pgap, &g[2 * k + 1]);
    }
    const Cond *fe = &bn_conds[1], *fs = &bn_conds[2];
    SvgSeries b_acc[2] = {series_of(s, fe, fe->person, m_test, &b[0]),
                          series_of(s, fs, fs->person, m_test, &b[1])};
    SvgSeries b_gap[2] = {series_of(s, fe, fe->person, m_gap, &b[2]),
                          series_of(s, fs, fs->person, m_gap, &b[3])};
    char t1[128], t2[128], t3[128], t4[128], t5[128], title[300], seeds[64];
    const Point *p0 = NULL;
    int Gc = 0;
    for (int i = 0; i < s->n; i++) {
        if (IS_G_LINE(s->p[i].cond) && (!p0 || s->p[i].G < p0->G)) p0 = &s->p[i];
        if (s->p[i].cond == fe || s->p[i].cond == fs) Gc = s->p[i].G;
    }
    int B0 = p0 ? p0->B : s->cfg.batch, E0 = p0 ? p0->epochs : 0, G0 = p0 ? p0->G : 0;
    snprintf(t1, sizeof t1, "test accuracy at B = %d", B0);
    snprintf(t2, sizeof t2, "train − test gap at B = %d", B0);
    snprintf(t3, sizeof t3, "test accuracy difference to G = %d, same seed", G0);
    snprintf(t4, sizeof t4, "control: test accuracy at G = %d, LR ∝ B", Gc);
    snprintf(t5, sizeof t5, "control: train − test gap at G = %d", Gc);
    SvgPanel panels[5] = {
        {t1, "samples per BN statistic, G", "test accuracy (%)", 1, g_acc, 2 * nl, 0},
        {t2, "samples per BN statistic, G", "train − test gap (points)", 1, g_gap, 2 * nl, 0},
        {t3, "samples per BN statistic, G", "Δ test accuracy (points)", 1, g_diff, nl, 1},
        {t4, "global batch B", "test accuracy (%)", 1, b_acc, 2, 0},
        {t5, "global batch B", "train − test gap (points)", 1, b_gap, 2, 0}};
    int control = b_acc[0].n + b_acc[1].n > 0;
    const SvgPanel *pp = nl ? panels : panels + 3;  // no G line: the control alone
    int np = nl ? (control ? 5 : 3) : 2;
    seeds_phrase(s, seeds, sizeof seeds);
    char data[64];
    data_phrase(s, data, sizeof data);
    snprintf(title, sizeof title, "BatchNorm group size study (%s): %s, %s, B = %d, %d epoch%s "
             "per run", seeds, config_name(s), data, B0, E0, E0 == 1 ? "" : "s");
    char path[1200];
    snprintf(path, sizeof path, "%s/figure.svg", s->out);
    Err e = {0};
    fail_svg(d, svg_line_figure(path, title, pp, np, &e), &e);
    fprintf(md, "![BatchNorm study](figure.svg)\n\n");
}

// A row of a dot chart or table: a condition at one x.
typedef struct {
    const Cond *cond;
    double x;
    char name[96];
} Row;

// A dot figure of the rows: test accuracy, the train - test gap and calibration.
static void dot_figures(const Dist *d, const Study *s, FILE *md, const char *what,
                        const Row *rows, int nr) {
    double val[3][2 * N_ROWS_MAX], err[3][2 * N_ROWS_MAX];
    Metric f[3] = {m_test, m_gap, m_ece};
    for (int k = 0; k < 3; k++)
        for (int c = 0; c < nr; c++) {
            MeanCI m = stat_of(s, rows[c].cond, rows[c].x, f[k]);
            val[k][c] = m.mean;
            err[k][c] = m.hi - m.mean;
        }
    const char *names[2 * N_ROWS_MAX];
    for (int c = 0; c < nr; c++) names[c] = rows[c].name;
    SvgDotPanel panels[3] = {
        // a run that failed (Adam + coupled L2 at chance) must not squash the accuracies of
        // the rest; a gap or ECE far from the rest is a finding, shown to scale
        {"test accuracy", "test accuracy (%)", nr, names, 1, NULL, val[0], err[0], 1},
        {"train − test gap", "train − test gap (points)", nr, names, 1, NULL, val[1], err[1], 0},
        {"calibration", "test ECE (%)", nr, names, 1, NULL, val[2], err[2], 0}};
    char path[1200], title[300], seeds[64];
    seeds_phrase(s, seeds, sizeof seeds);
    int E = s->n ? s->p[0].epochs : 0;
    char data[64];
    data_phrase(s, data, sizeof data);
    snprintf(title, sizeof title, "%s (%s): %s, %s, %d epoch%s per run%s", what, seeds,
             config_name(s), data, E, E == 1 ? "" : "s",
             strcmp(s->kind, "batch") ? "" : " but the adapted schedule");
    snprintf(path, sizeof path, "%s/figure.svg", s->out);
    Err e = {0};
    fail_svg(d, svg_dot_figure(path, title, panels, 3, &e), &e);
    fprintf(md, "![%s](figure.svg)\n\n", what);
}

// A table cell: mean ± sd [95% CI] over seeds; the value with one seed (or where the spread
// says nothing: a count of steps); "–" with none.
static void md_cell(FILE *md, const Study *s, const Cond *cond, double x, Metric f, int digits) {
    MeanCI c = stat_of(s, cond, x, f);
    if (!c.n) fprintf(md, " | –");
    else if (c.n == 1 || f == m_steps) fprintf(md, " | %.*f", digits, c.mean);
    else
        fprintf(md, " | %.*f ± %.*f [%.*f, %.*f]", digits, c.mean, digits, c.sd, digits, c.lo,
                digits, c.hi);
}

// What a table's cells are, where some have more than one seed.
static void cells_note(const Study *s, FILE *md) {
    int lo, hi;
    seeds_range(s, &lo, &hi);
    if (hi > 1)
        fprintf(md, "\nCells: mean ± sd [95%% confidence interval of the mean, Student t] over "
                    "seeds; one value where there is one seed.\n");
}

// The paired differences' table: a comparison and metric per row, the mean difference (first
// minus second), its 95% t interval and what it says.
static void md_paired_head(FILE *md, const char *what) {
    fprintf(md, "\n**Paired differences, %s** (same seed: same initialization, data order and "
                "masks; first minus second; \"an effect\" only where the 95%% interval excludes "
                "zero):\n\n| comparison | metric | difference | 95%% CI | seeds | verdict |\n"
                "|---|---|---|---|---|---|\n", what);
}

static void md_paired_row(FILE *md, const char *cmp, const char *metric, MeanCI c, int digits) {
    fprintf(md, "| %s | %s | ", cmp, metric);
    if (!c.n) fprintf(md, "– | – | 0 | no pairs |\n");
    else if (c.n < 2) fprintf(md, "%+.*f | – | 1 | one seed: no interval |\n", digits, c.mean);
    else
        fprintf(md, "%+.*f | [%+.*f, %+.*f] | %d | %s |\n", digits, c.mean, digits, c.lo,
                digits, c.hi, c.n, ci_excludes_zero(&c) ? "an effect" : "no effect at this power");
}

typedef struct {
    const char *name;  // with its unit: "test acc (points)"
    Metric f;
    int digits;
} MetricName;

// Rows of the paired table for (ca, xa) minus (cb, xb), one per metric that has a value.
static void md_paired(FILE *md, const Study *s, const char *cmp, const Cond *ca, double xa,
                      const Cond *cb, double xb, const MetricName *m, int nm) {
    for (int k = 0; k < nm; k++) {
        MeanCI c = paired_of(s, ca, xa, cb, xb, m[k].f);
        if (c.n || k == 0) md_paired_row(md, cmp, m[k].name, c, m[k].digits);
    }
}

// The bn study's summary: the figure, a table row per (line, x), the paired differences of
// each G to the smallest G of its line (and of the lines to each other), and what they show.
// The bn study's table: a row per (line, x), mean ± sd [95% interval] over seeds.
static void bn_table(const Study *s, FILE *md) {
    const Cond *conds[4] = {&bn_conds[3], &bn_conds[0], &bn_conds[1], &bn_conds[2]};
    fprintf(md, "| condition | G | B | epochs | steps | train acc (%%) | test acc (%%) | "
                "train − test gap (points) | PreciseBN test acc (%%) | PreciseBN train − "
                "test gap (points) |\n|---|---|---|---|---|---|---|---|---|---|\n");
    for (int c = 0; c < 4; c++) {
        double xs[2 * MAX_LIST];
        int n = xs_of(s, conds[c], xs);
        for (int k = 0; k < n; k++) {
            const Point *p = point_at(s, conds[c], xs[k]);
            fprintf(md, "| %s | %d | %d | %d", conds[c]->label, p->G, p->B, p->epochs);
            md_cell(md, s, conds[c], xs[k], m_steps, 0);
            md_cell(md, s, conds[c], xs[k], m_train, 2);
            md_cell(md, s, conds[c], xs[k], m_test, 2);
            md_cell(md, s, conds[c], xs[k], m_gap, 2);
            md_cell(md, s, conds[c], xs[k], m_ptest, 2);
            md_cell(md, s, conds[c], xs[k], m_pgap, 2);
            fprintf(md, " |\n");
        }
    }
}

// Each G line's G against its smallest, seed by seed; with both lines, the regularizers'
// effect at each G both have.
static void bn_paired(const Study *s, FILE *md) {
    static const MetricName ms[] = {{"test acc (points)", m_test, 2},
                                    {"PreciseBN test acc (points)", m_ptest, 2},
                                    {"train − test gap (points)", m_gap, 2}};
    const Cond *lines[2];
    int nl = g_lines(s, lines);
    for (int l = 0; l < nl; l++) {
        double xs[2 * MAX_LIST];
        int n = xs_of(s, lines[l], xs);
        if (n < 2) continue;
        char what[160], cmp[160];
        snprintf(what, sizeof what, "%s: each G against G = %.0f", lines[l]->label, xs[0]);
        md_paired_head(md, what);
        for (int k = 1; k < n; k++) {
            snprintf(cmp, sizeof cmp, "G = %.0f − G = %.0f", xs[k], xs[0]);
            md_paired(md, s, cmp, lines[l], xs[k], lines[l], xs[0], ms, 3);
        }
    }
    if (nl == 2) {  // the regularizers' effect at each G both lines have
        double xs[2 * MAX_LIST];
        int n = xs_of(s, G_SWEEP, xs), any = 0;
        for (int k = 0; k < n; k++) {
            if (!point_at(s, G_BN_ONLY, xs[k])) continue;
            if (!any++) md_paired_head(md, "the config's regularizers on against BatchNorm only");
            char cmp[160];
            snprintf(cmp, sizeof cmp, "regularizers on − BatchNorm only, G = %.0f", xs[k]);
            md_paired(md, s, cmp, G_SWEEP, xs[k], G_BN_ONLY, xs[k], ms, 3);
        }
    }
}

// When a line's runs fitted the training set: the first epoch whose train-mode accuracy
// (averaged over the epoch's batches as it trained, metrics.csv) reached 99%, over its runs.
static void fit_words(const Study *s, const Cond *line, FILE *md) {
    double e[MAX_POINTS];
    int n = 0, runs = 0;
    for (int i = 0; i < s->n; i++) {
        const Point *p = &s->p[i];
        if (p->cond != line || isnan(p->train_acc)) continue;
        runs++;
        if (isfinite(p->fit_epoch)) e[n++] = p->fit_epoch;
    }
    if (!runs) return;
    if (!n) {
        fprintf(md, "Train-mode accuracy (averaged over each epoch's batches as it trained) "
                    "reached 99%% in none of its %d runs.\n", runs);
        return;
    }
    double med = median_sort(e, n);  // e sorted: e[0] and e[n - 1] are the range
    fprintf(md, "Train-mode accuracy (averaged over each epoch's batches as it trained) first "
                "reached 99%% in %d of its %d runs, in epoch %.0f to %.0f (median %.1f).\n",
            n, runs, e[0], e[n - 1], med);
}

// What each G line shows, in words, from the numbers of the tables.
static void bn_words(const Study *s, FILE *md) {
    const Cond *lines[2];
    int nl = g_lines(s, lines);
    for (int l = 0; l < nl; l++) {
        double xs[2 * MAX_LIST], acc[2 * MAX_LIST], gap[2 * MAX_LIST], train[2 * MAX_LIST];
        int n = xs_of(s, lines[l], xs), best = 0, worst = 0;
        for (int k = 0; k < n; k++) {
            acc[k] = stat_of(s, lines[l], xs[k], m_test).mean;
            gap[k] = stat_of(s, lines[l], xs[k], m_gap).mean;
            train[k] = stat_of(s, lines[l], xs[k], m_train).mean;
            if (acc[k] > acc[best]) best = k;
            if (acc[k] < acc[worst]) worst = k;
        }
        if (n < 2) continue;
        const Point *p = point_at(s, lines[l], xs[0]);
        int fit = 0, effects = 0;
        for (int k = 0; k < n; k++) fit += train[k] >= 99;
        for (int k = 1; k < n; k++) {
            MeanCI c = paired_of(s, lines[l], xs[k], lines[l], xs[0], m_test);
            effects += ci_excludes_zero(&c) == 1;
        }
        fprintf(md, "\n%s: at B = %d, test accuracy is highest at G = %.0f (%.2f%%) and "
                    "lowest at G = %.0f (%.2f%%). The train − test gap is %.2f points at G = "
                    "%.0f and %.2f at G = %.0f. Train accuracy reached 99%% at %d of %d G values "
                    "in %d epoch%s. Against G = %.0f, seed by seed, %d of the %d other G values "
                    "show an effect on test accuracy (95%% interval excluding zero); %s.\n",
                lines[l]->label, p->B, xs[best], acc[best], xs[worst], acc[worst], gap[0], xs[0],
                gap[n - 1], xs[n - 1], fit, n, p->epochs, p->epochs == 1 ? "" : "s", xs[0],
                effects, n - 1, effects == n - 1 ? "all do" : "the rest show no effect at this power");
        fit_words(s, lines[l], md);
    }
}

static void bn_summary(const Dist *d, const Study *s, FILE *md) {
    bn_figures(d, s, md);
    bn_table(s, md);
    cells_note(s, md);
    bn_paired(s, md);
    bn_words(s, md);
}

// The rows of a reg or batch study: each (condition, x) in the order the points have them.
static int rows_of(const Study *s, Row *rows, int max) {
    int n = 0;
    for (int i = 0; i < s->n && n < max; i++) {
        int seen = 0;
        for (int c = 0; c < n; c++) seen |= at(&s->p[i], rows[c].cond, rows[c].x);
        if (seen) continue;
        rows[n].cond = s->p[i].cond;
        rows[n].x = s->p[i].x;
        snprintf(rows[n].name, sizeof rows[n].name, "%s", s->p[i].cond->label);
        n++;
    }
    return n;
}

// The reg study's summary: the figure, a table row per condition, and each condition's
// paired difference to none (and all on's to BatchNorm only: the regularized model against
// the unregularized one of the README's first table).
static void reg_summary(const Dist *d, const Study *s, FILE *md) {
    Row rows[2 * N_ROWS_MAX];
    int nr = rows_of(s, rows, 2 * N_ROWS_MAX);
    dot_figures(d, s, md, "Regularizer ablation", rows, nr);
    fprintf(md, "| condition | train acc (%%) | test acc (%%) | train − test gap (points) | "
                "test ECE (%%) | test loss (cross-entropy) | seconds per epoch |\n"
                "|---|---|---|---|---|---|---|\n");
    for (int c = 0; c < nr; c++) {
        fprintf(md, "| %s", rows[c].name);
        md_cell(md, s, rows[c].cond, rows[c].x, m_train, 2);
        md_cell(md, s, rows[c].cond, rows[c].x, m_test, 2);
        md_cell(md, s, rows[c].cond, rows[c].x, m_gap, 2);
        md_cell(md, s, rows[c].cond, rows[c].x, m_ece, 2);
        md_cell(md, s, rows[c].cond, rows[c].x, m_loss, 3);
        md_cell(md, s, rows[c].cond, rows[c].x, m_sec, 1);
        fprintf(md, " |\n");
    }
    cells_note(s, md);
    static const MetricName ms[] = {{"test acc (points)", m_test, 2},
                                    {"test loss (cross-entropy)", m_loss, 3},
                                    {"test ECE (points)", m_ece, 2},
                                    {"train − test gap (points)", m_gap, 2}};
    const Row *none = NULL, *all = NULL, *bn = NULL;
    for (int c = 0; c < nr; c++) {
        if (!strcmp(rows[c].cond->name, "none")) none = &rows[c];
        if (!strcmp(rows[c].cond->name, "all_on")) all = &rows[c];
        if (!strcmp(rows[c].cond->name, "batchnorm")) bn = &rows[c];
    }
    if (none) {
        md_paired_head(md, "each condition against none");
        for (int c = 0; c < nr; c++) {
            if (&rows[c] == none) continue;
            char cmp[160];
            snprintf(cmp, sizeof cmp, "%s − none", rows[c].name);
            md_paired(md, s, cmp, rows[c].cond, rows[c].x, none->cond, none->x, ms, 4);
        }
    }
    if (all && bn) {
        md_paired_head(md, "regularized against unregularized (all on against BatchNorm only)");
        md_paired(md, s, "all on − + BatchNorm", all->cond, all->x, bn->cond, bn->x, ms, 4);
    }
}

// The batch study's summary: the figure, a row per condition with Hoffer et al.'s MNIST
// number beside ours, and each condition's paired difference to the small batch.
static void batch_summary(const Dist *d, const Study *s, FILE *md) {
    Row rows[2 * N_ROWS_MAX];
    int nr = rows_of(s, rows, 2 * N_ROWS_MAX);
    for (int c = 0; c < nr; c++) {
        const Point *p = point_at(s, rows[c].cond, rows[c].x);
        if (rows[c].cond != &batch_conds[0])
            snprintf(rows[c].name, sizeof rows[c].name, "B = %d, %s", p->B, rows[c].cond->person);
        else
            snprintf(rows[c].name, sizeof rows[c].name, "B = %d", p->B);
    }
    dot_figures(d, s, md, "Large-batch training and its recovery", rows, nr);
    int ratio32 = 0;  // a large batch of 32 b, as Hoffer et al.'s 4096 is of 128
    for (int i = 0; i < s->n; i++) ratio32 |= s->p[i].B == 32 * s->cfg.batch;
    fprintf(md, "| condition | B | G | LR | epochs | steps | train acc (%%) | test acc (%%) | "
                "train − test gap (points) | test ECE (%%) | Hoffer et al., MNIST test acc "
                "(%%) |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (int c = 0; c < nr; c++) {
        const Point *p = point_at(s, rows[c].cond, rows[c].x);
        double lr = s->cfg.optim.lr * (p->B == s->cfg.batch ? 1 : sqrt((double)p->B / s->cfg.batch));
        fprintf(md, "| %s | %d | %d (%s) | %.3g | %d", rows[c].name, p->B, p->G, p->how, lr,
                p->epochs);
        md_cell(md, s, rows[c].cond, rows[c].x, m_steps, 0);
        md_cell(md, s, rows[c].cond, rows[c].x, m_train, 2);
        md_cell(md, s, rows[c].cond, rows[c].x, m_test, 2);
        md_cell(md, s, rows[c].cond, rows[c].x, m_gap, 2);
        md_cell(md, s, rows[c].cond, rows[c].x, m_ece, 2);
        // theirs are for B = 32 b (4096 and 128) with ghost batches of b: the same ratios
        const char *h = rows[c].cond->name, *theirs = NULL;
        if (!strcmp(h, "small") && ratio32) theirs = "98.27";
        else if (p->B == 32 * s->cfg.batch && !strcmp(h, "large")) theirs = "97.05 (LR not scaled)";
        else if (p->B == 32 * s->cfg.batch && p->G == s->cfg.batch && !strcmp(h, "adapted"))
            theirs = "98.53";
        if (theirs) fprintf(md, " | %s |\n", theirs);
        else fprintf(md, " | – |\n");
    }
    cells_note(s, md);
    fprintf(md, "\nHoffer, Hubara & Soudry 2017, "
                "\"Train longer, generalize better\", Table 1, network F1 on MNIST (5 × 512 "
                "with BatchNorm): batch 128 (98.27), batch 4096 (97.05, without LR scaling), and "
                "4096 with LR × √(B/128), ghost batches of 128 and the regime adapted, epochs × "
                "B/128 (98.53); shown beside our rows of the same batch ratios. Ours is "
                "Fashion-MNIST, a harder set: compare the differences, not the levels.\n");
    static const MetricName ms[] = {{"test acc (points)", m_test, 2},
                                    {"train acc (points)", m_train, 2},
                                    {"train − test gap (points)", m_gap, 2}};
    const Row *small = NULL;
    for (int c = 0; c < nr && !small; c++)
        if (rows[c].cond == &batch_conds[0]) small = &rows[c];
    if (!small) return;
    char what[160];
    snprintf(what, sizeof what, "each condition against %s", small->name);
    md_paired_head(md, what);
    for (int c = 0; c < nr; c++) {
        if (&rows[c] == small) continue;
        char cmp[200];
        snprintf(cmp, sizeof cmp, "%s − %s", rows[c].name, small->name);
        md_paired(md, s, cmp, rows[c].cond, rows[c].x, small->cond, small->x, ms, 3);
    }
}

// "2.4 h", "35 min" or "12 s".
static void duration_text(double sec, char *buf, size_t n) {
    if (sec >= 3600) snprintf(buf, n, "%.1f h", sec / 3600);
    else if (sec >= 60) snprintf(buf, n, "%.0f min", sec / 60);
    else snprintf(buf, n, "%.0f s", sec);
}

static void write_summary(const Dist *d, Study *s) {
    char path[1200], seeds[64];
    snprintf(path, sizeof path, "%s/summary.md", s->out);
    FILE *md = fopen(path, "w");
    if (!md) {
        Err e;
        err_set(&e, ERR_RUNTIME, "cannot write %s: %s", path, strerror(errno));
        cli_fail(d, &e);
    }
    seeds_phrase(s, seeds, sizeof seeds);
    fprintf(md, "# regdist study %s\n\n%s on %s, preset %s, %d rank%s; %s. Accuracies and ECE "
                "in %%, gaps in points: the train − test gap is eval-mode train accuracy minus "
                "test accuracy. Fractions, run by run: results.csv.\n\n",
            s->kind, s->cfg.source, s->data, s->preset, d->world, d->world > 1 ? "s" : "", seeds);
    if (!strcmp(s->kind, "bn")) bn_summary(d, s, md);
    else if (!strcmp(s->kind, "reg")) reg_summary(d, s, md);
    else batch_summary(d, s, md);
    // what it cost: the runs' training time (seconds per epoch x epochs, over every
    // invocation of a resumed sweep) and this invocation's wall time
    double train_s = 0;
    for (int i = 0; i < s->n; i++)
        if (isfinite(s->p[i].sec_epoch)) train_s += s->p[i].sec_epoch * s->p[i].epochs;
    char train_t[32], wall_t[32];
    duration_text(train_s, train_t, sizeof train_t);
    duration_text(now_seconds() - s->t0, wall_t, sizeof wall_t);
    fprintf(md, "\nCommand: `%s`%s. Training time of its runs: %s (seconds per epoch × "
                "epochs, summed over every invocation of a resumed sweep); this invocation: %s of "
                "wall time.\n", s->command,
            s->resume ? " (this summary: the same command continued with `--resume`)" : "",
            train_t, wall_t);
    fprintf(md, "\nEvery run: `%s/points/<id>/` (metrics.csv, train.log, checkpoints). "
                "All numbers, as fractions: results.csv.\n", s->out);
    fclose(md);
}

// The quick preset validates on 1,000 samples, or on all of a smaller validation split: a
// limit beyond the split is an error to train. A file that cannot be read is train's to report.
static const char *quick_val_size(const char *data) {
    Dataset ds;
    memset(&ds, 0, sizeof ds);
    Err e = {0};
    int64_t n = 0;
    if (dataset_has_split(data, "val", &e) == 1 &&
        dataset_load_rows(&ds, data, "val", 0, NULL, 0, &e) == ERR_OK)
        n = ds.n;
    dataset_free(&ds);
    return n > 1000 ? "data.val_size=1000" : "data.val_size=0";
}

// The command that makes the sweep, as a person retypes it: "mpirun -n 2 regdist study bn
// ...", arguments with spaces or quotes in single quotes, without --resume and --overwrite
// (which say how this invocation treated the directory, not what the sweep is).
static void command_of(char *buf, size_t n, int world, int argc, char **argv) {
    size_t k = 0;
    if (world > 1) k += (size_t)snprintf(buf, n, "mpirun -n %d ", world);
    k += (size_t)snprintf(buf + (k < n ? k : n), k < n ? n - k : 0, "regdist");
    for (int i = 0; i < argc && k < n; i++) {
        if (!strcmp(argv[i], "--resume") || !strcmp(argv[i], "--overwrite")) continue;
        int plain = argv[i][strcspn(argv[i], " \t'\"$*?;&|<>()")] == 0 && *argv[i];
        k += (size_t)snprintf(buf + k, n - k, plain ? " %s" : " '%s'", argv[i]);
    }
}

int cmd_study(Dist *d, int argc, char **argv) {
    Study s;
    memset(&s, 0, sizeof s);
    s.t0 = now_seconds();
    parse_args(d, &s, argc, argv);
    command_of(s.command, sizeof s.command, d->world, argc, argv);
    Err e = {0};
    // a small validation set (curves and best.h5 only: the test set stays whole) and, quick,
    // a short warmup; the user's --set still win
    int quick = !strcmp(s.preset, "quick"), k = quick && strcmp(s.kind, "batch") ? 2 : 1;
    memmove(s.extra + k, s.extra, (size_t)s.nextra * sizeof *s.extra);
    s.extra[0] = quick_val_size(s.data);
    if (k == 2) s.extra[1] = "sched.warmup_steps=20";
    s.nextra += k;
    if (config_load(&s.cfg, s.config, NULL, s.extra, s.nextra, &e)) cli_fail(d, &e);
    s.p = calloc(MAX_POINTS, sizeof *s.p);
    if (!s.p) {
        err_set(&e, ERR_RUNTIME, "out of memory");
        cli_fail(d, &e);
    }
    s.images = data_is_images(s.data);
    if (!strcmp(s.kind, "bn")) build_bn(d, &s);
    else if (!strcmp(s.kind, "reg")) build_reg(d, &s);
    else build_batch(d, &s);
    if (s.n == 0) cli_usage_fail(d, "study", "no point of the sweep can be made on %d ranks", d->world);
    label_points(&s);
    Err claim = {0};
    if (d->rank == 0) claim_study_dir(&s, &claim);
    if (dist_agree(d, &claim)) dist_exit_agreed(d, &claim);
    char pts[1200];
    snprintf(pts, sizeof pts, "%s/points", s.out);
    if (rundir_make(d, pts, &claim)) dist_exit_agreed(d, &claim);
    if (d->rank == 0) {
        printf("regdist study %s: %d runs of %s, preset %s, %d rank%s -> %s\n", s.kind, s.n,
               s.config, s.preset, d->world, d->world > 1 ? "s" : "", s.out);
        fflush(stdout);
        write_csv(d, &s);  // every run it will make, none done yet
    }
    for (int i = 0; i < s.n; i++) {
        run_point(d, &s, i);
        if (d->rank == 0) write_csv(d, &s);
    }
    if (d->rank == 0) {
        write_summary(d, &s);
        printf("results: %s/results.csv, %s/figure.svg, %s/summary.md\n", s.out, s.out, s.out);
    }
    free(s.p);
    config_free(&s.cfg);
    return 0;
}
