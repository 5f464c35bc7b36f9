// study.c: `regdist study bn` and `regdist study reg`: sweeps of training runs, each point a
// complete `regdist train` run in DIR/points/<id>/, summarized as DIR/results.csv, an SVG
// figure and DIR/summary.md.
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
#include "io/svg.h"
#include "options.h"
#include "rundir.h"
#include "signals.h"
#include "study.h"
#include "summary.h"
#include "train.h"

#define MAX_POINTS 256
#define MAX_POINT_SETS 32
#define MAX_LIST 16

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
} Point;

typedef struct {
    const char *kind;   // "bn" or "reg"
    const char *config, *data, *out, *preset;
    int resume, overwrite;  // --resume: continue the sweep in out; --overwrite: start it afresh
    const char *extra[MAX_SETS];  // the user's --set, applied to every point
    int nextra;
    int seeds, epochs;  // -1 = the preset's
    int G[MAX_LIST], nG, Bs[MAX_LIST], nB;
    Config cfg;         // the base config, inspected to build the points
    Point *p;
    int n;
} Study;

static const char *usage =
    "usage: regdist study bn|reg --config C --data F --out DIR [options]\n"
    "\n"
    "  bn    test accuracy and train - test gap against the BatchNorm group size G\n"
    "  reg   the regularizer ablation: none, each regularizer the config has alone, all on\n"
    "\n"
    "regdist study bn --help and regdist study reg --help describe each sweep and its options.\n";

// The measured times are the README's, on the 2-core development machine while other jobs
// shared it: a rough guide, not a promise.
static const char *usage_bn =
    "usage: regdist study bn --config C --data F --out DIR [options]\n"
    "\n"
    "Test accuracy and train - test gap against the BatchNorm group size G (samples per\n"
    "statistic) at the config's global batch B. G is made the way the ranks allow: ghost\n"
    "batches within a rank, local BN per rank, groups of ranks, or SyncBN over all of them.\n"
    "Every run is evaluated with its running statistics and with PreciseBN (50 batches). As a\n"
    "control, B is swept at a fixed G (32, or the swept G nearest it) with the learning rate\n"
    "scaled linearly with B, once at fixed epochs and once at a fixed number of steps.\n"
    "\n"
    "  --preset quick|full   quick (default): 3 epochs, warmup 20 steps, 1,000 validation\n"
    "                        samples, 2 seeds: 18 runs (14 distinct), measured at 19 minutes\n"
    "                        with cnn6_mlp4 under mpirun -n 2 on 2 shared cores.\n"
    "                        full: the config's epochs, G = 2,4,...,B, B = 32,64,256,512,\n"
    "                        3 seeds: many times longer\n"
    "  --seeds N             seeds per point (quick 2, full 3)\n"
    "  --epochs E            epochs per run at the config's batch (quick 3, full: config's)\n"
    "  --groups 4,16,...     the G values (quick 4,16,128; full 2,4,...,B)\n"
    "  --batches 64,256      the control's B values besides the config's (quick 64,256;\n"
    "                        full 32,64,256,512)\n"
    "  --set key=value       applied to every run\n"
    "\n"
    "Writes DIR/results.csv (a row per run: accuracies, gaps and ECE as fractions, empty where\n"
    "a value is missing; rewritten after each run), DIR/figure.svg and DIR/summary.md (in\n"
    "percent, mean ± sd over seeds). The gap is eval-mode train accuracy minus test accuracy.\n"
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
    "augmentation (crop, flips, erasing, mixup).\n"
    "\n"
    "  --preset quick|full   quick (default): 3 epochs, warmup 20 steps, 1,000 validation\n"
    "                        samples, 2 seeds: 18 runs with cnn6_mlp4 before the 6\n"
    "                        augmentation rows were added, measured at 25 minutes under\n"
    "                        mpirun -n 2 on 2 shared cores (the rows add a third).\n"
    "                        full: the config's epochs, 3 seeds: many times longer\n"
    "  --seeds N             seeds per condition (quick 2, full 3)\n"
    "  --epochs E            epochs per run (quick 3, full: config's)\n"
    "  --set key=value       applied to every run\n"
    "\n"
    "Writes DIR/results.csv (a row per run: accuracies, gaps and ECE as fractions, empty where\n"
    "a value is missing; rewritten after each run), DIR/figure.svg and DIR/summary.md (in\n"
    "percent, mean ± sd over seeds). The gap is eval-mode train accuracy minus test accuracy.\n"
    "Each run keeps DIR/points/<id>/. A DIR that holds a study is refused unless --resume\n"
    "continues it (finished points kept, unfinished ones resumed) or --overwrite starts afresh.\n"
    "Under mpirun every point runs on all ranks.\n";

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

static void parse_args(const Dist *d, Study *s, int argc, char **argv) {
    if (argc < 2 || (strcmp(argv[1], "bn") && strcmp(argv[1], "reg"))) {
        if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
            if (d->rank == 0) fputs(usage, stdout);
            dist_finalize((Dist *)d);
            exit(0);
        }
        cli_usage_fail(d, "study", "say which study: bn or reg");
    }
    s->kind = argv[1];
    s->preset = "quick";
    s->seeds = s->epochs = -1;
    const char *groups = NULL, *batches = NULL;
    OptList extra = {s->extra, 0, MAX_SETS - MAX_POINT_SETS - 2};
    // the help is usage_bn's or usage_reg's, which say what each option means to that sweep
    const Opt opts[] = {OPT_S("config", &s->config, "C", NULL, 1),
                        OPT_S("data", &s->data, "F", NULL, 1),
                        OPT_S("out", &s->out, "DIR", NULL, 1),
                        OPT_S("preset", &s->preset, "quick|full", NULL, 0),
                        OPT_I("seeds", &s->seeds, "N", NULL, 1, 100),
                        OPT_I("epochs", &s->epochs, "E", NULL, 1, 100000),
                        OPT_S("groups", &groups, "4,16,...", NULL, 0),
                        OPT_S("batches", &batches, "64,256", NULL, 0),
                        OPT_L("set", &extra, "key=value", NULL),
                        OPT_F("resume", &s->resume, NULL),
                        OPT_F("overwrite", &s->overwrite, NULL),
                        OPT_END};
    if (opts_parse(d, "study", opts, 0, argc, argv, 2) < 0) {
        if (d->rank == 0) fputs(strcmp(s->kind, "bn") ? usage_reg : usage_bn, stdout);
        dist_finalize((Dist *)d);
        exit(0);
    }
    s->nextra = extra.n;
    if (groups && (s->nG = parse_list(groups, s->G)) < 1)
        cli_usage_fail(d, "study", "--groups takes positive integers: 4,16,64");
    if (batches && (s->nB = parse_list(batches, s->Bs)) < 0)
        cli_usage_fail(d, "study", "--batches takes positive integers: 64,256");
    if (!strcmp(s->kind, "reg") && (s->nG || s->nB))
        cli_usage_fail(d, "study", "--groups and --batches are for study bn, not study reg");
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
    p->steps = p->sec_epoch = p->p_train_acc = p->p_test_acc = NAN;
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

// The bn study's lines: G at the config's batch, and the control's B sweeps.
static const Cond bn_conds[] = {
    {"g_sweep", "G sweep", NULL},
    {"b_fixed_epochs", "B sweep, fixed epochs", "fixed epochs"},
    {"b_fixed_steps", "B sweep, fixed steps", "fixed steps"},
};
#define G_SWEEP (&bn_conds[0])

// The G and B lists the preset gives where the command line gave none; the control's B
// always include the config's batch, where its lines meet the G sweep.
static void bn_lists(Study *s, int full, int B0) {
    if (!s->nG) {
        static const int quick[] = {4, 16, 128};
        if (full)
            for (int g = 2; g <= B0 && s->nG < MAX_LIST; g *= 2) s->G[s->nG++] = g;
        else
            for (int i = 0; i < 3; i++) s->G[s->nG++] = quick[i];
    }
    if (!s->nB) {
        static const int quick[] = {64, 256}, fullb[] = {32, 64, 256, 512};
        for (int i = 0; i < (full ? 4 : 2); i++) s->Bs[s->nB++] = full ? fullb[i] : quick[i];
    }
    int with_b0 = 0;
    for (int i = 0; i < s->nB; i++) with_b0 |= s->Bs[i] == B0;
    if (!with_b0 && s->nB < MAX_LIST) s->Bs[s->nB++] = B0;
}

// The G sweep's point for G[i] at the config's batch B0 (none when G cannot be made).
static void add_g_point(const Dist *d, Study *s, int i, int B0, int E, uint32_t seed) {
    int group, ghost;
    char how[48];
    if (!bn_layout(s->G[i], B0, d->world, &group, &ghost, how, sizeof how)) {
        if (d->rank == 0 && seed == 1)
            printf("study bn: G = %d cannot be made at batch %d on %d rank%s; skipped\n", s->G[i],
                   B0, d->world, d->world > 1 ? "s" : "");
        return;
    }
    Point *p = add_point(d, s, G_SWEEP, s->G[i], seed);
    p->G = s->G[i];
    snprintf(p->how, sizeof p->how, "%s", how);
    base_sets(p, E);
    point_set(p, "bn.group=%d", group);
    point_set(p, "bn.ghost=%d", ghost);
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
    p->B = B;
    snprintf(p->how, sizeof p->how, "%s", how);
    base_sets(p, e);
    point_set(p, "train.batch=%d", B);
    point_set(p, "bn.group=%d", group);
    point_set(p, "bn.ghost=%d", ghost);
    point_set(p, "optim.lr=%.9g", c->optim.lr * r);
    point_set(p, "sched.warmup_steps=%lld",
              regime ? (long long)c->sched.warmup_steps
                     : (long long)llround((double)c->sched.warmup_steps / r));
}

static void build_bn(const Dist *d, Study *s) {
    const Config *c = &s->cfg;
    int full = !strcmp(s->preset, "full");
    int B0 = c->batch, E = s->epochs > 0 ? s->epochs : full ? c->epochs : 3;
    int seeds = s->seeds > 0 ? s->seeds : full ? 3 : 2;
    bn_lists(s, full, B0);
    // the control's G: 32 (Goyal et al.) when the sweep has it, else the G nearest it
    int Gc = s->G[0];
    for (int i = 0; i < s->nG; i++)
        if (abs(s->G[i] - 32) < abs(Gc - 32)) Gc = s->G[i];
    for (uint32_t seed = 1; seed <= (uint32_t)seeds; seed++) {
        for (int i = 0; i < s->nG; i++) add_g_point(d, s, i, B0, E, seed);
        for (int regime = 0; regime < 2; regime++)
            for (int i = 0; i < s->nB; i++) add_b_point(d, s, s->Bs[i], regime, Gc, E, seed);
    }
    for (int i = 0; i < s->n; i++) {
        Point *p = &s->p[i];
        point_set(p, "eval.precise_bn=%d", 50);
        snprintf(p->id, sizeof p->id, "G%d-B%d-E%d-s%u", p->G, p->B, p->epochs, p->seed);
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

static void build_reg(const Dist *d, Study *s) {
    const Config *c = &s->cfg;
    int full = !strcmp(s->preset, "full");
    int E = s->epochs > 0 ? s->epochs : full ? c->epochs : 3;
    int seeds = s->seeds > 0 ? s->seeds : full ? 3 : 2;
    RegLayer r[64];
    int nr = find_reg_layers(c->layers, c->nlayers, r, 0);
    int bn = has_flag(c->layers, c->nlayers, LAYER_RUNNING_STATS);
    int images = data_is_images(s->data);  // augmentation rows need images
    double wd = c->optim.weight_decay > 0 ? c->optim.weight_decay : 0.01;
    double ls = c->label_smoothing > 0 ? c->label_smoothing : 0.1;
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
    if (rundir_make(d, dir, &e) == 0 && d->rank == 0) log = open_point_log(dir, resume, &e);
    if (dist_agree(d, &e)) cli_fail(d, &e);  // the study's own directory: nothing can go on
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

// Mean and sample standard deviation of a metric over the points of (cond, x), the sd NaN
// (no error bar) below two values; the count of values. Accuracies, gaps and ECE in percent,
// for people: the files hold fractions.
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

static int stat_of(const Study *s, const Cond *cond, double x, Metric f, double *mean, double *sd) {
    double sum = 0, sq = 0;
    int n = 0;
    for (int i = 0; i < s->n; i++)
        if (s->p[i].cond == cond && s->p[i].x == x && isfinite(f(&s->p[i]))) {
            sum += f(&s->p[i]);
            n++;
        }
    *mean = n ? sum / n : NAN;
    for (int i = 0; i < s->n; i++)
        if (s->p[i].cond == cond && s->p[i].x == x && isfinite(f(&s->p[i])))
            sq += pow(f(&s->p[i]) - *mean, 2);
    *sd = n > 1 ? sqrt(sq / (n - 1)) : NAN;
    return n;
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

// The fewest and most runs behind a (condition, x) of the sweep that has any result.
static void seeds_range(const Study *s, int *lo, int *hi) {
    *lo = 0, *hi = 0;
    for (int i = 0; i < s->n; i++) {
        double m, sd;
        int n = stat_of(s, s->p[i].cond, s->p[i].x, m_test, &m, &sd);
        if (n && (!*lo || n < *lo)) *lo = n;
        if (n > *hi) *hi = n;
    }
}

// What a figure's points and error bars are: "1 seed" (no error bars), "mean ± sd over 3
// seeds", "mean ± sd over 1–3 seeds per point".
static void seeds_phrase(const Study *s, char *buf, size_t n) {
    int lo, hi;
    seeds_range(s, &lo, &hi);
    if (hi <= 1) snprintf(buf, n, "1 seed");
    else if (lo == hi) snprintf(buf, n, "mean ± sd over %d seeds", hi);
    else snprintf(buf, n, "mean ± sd over %d–%d seeds per point", lo, hi);
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

// A line series of metric f against x for one condition, with sd error bars from two seeds up.
typedef struct {
    double x[2 * MAX_LIST], y[2 * MAX_LIST], err[2 * MAX_LIST];
} SeriesData;

static SvgSeries series_of(const Study *s, const Cond *cond, const char *label, Metric f,
                           SeriesData *sd) {
    int n = xs_of(s, cond, sd->x);
    for (int k = 0; k < n; k++) stat_of(s, cond, sd->x[k], f, &sd->y[k], &sd->err[k]);
    return (SvgSeries){.label = label, .n = n, .x = sd->x, .y = sd->y, .err = sd->err};
}

static void fail_svg(const Dist *d, int rc, const Err *e) {
    if (rc) cli_fail(d, e);
}

static void bn_figures(const Dist *d, const Study *s, FILE *md) {
    SeriesData a[4], b[4];
    const Cond *fe = &bn_conds[1], *fs = &bn_conds[2];
    SvgSeries g_acc[2] = {series_of(s, G_SWEEP, "running statistics", m_test, &a[0]),
                          series_of(s, G_SWEEP, "PreciseBN", m_ptest, &a[1])};
    SvgSeries g_gap[2] = {series_of(s, G_SWEEP, "running statistics", m_gap, &a[2]),
                          series_of(s, G_SWEEP, "PreciseBN", m_pgap, &a[3])};
    SvgSeries b_acc[2] = {series_of(s, fe, fe->person, m_test, &b[0]),
                          series_of(s, fs, fs->person, m_test, &b[1])};
    SvgSeries b_gap[2] = {series_of(s, fe, fe->person, m_gap, &b[2]),
                          series_of(s, fs, fs->person, m_gap, &b[3])};
    char t1[128], t2[128], t3[128], t4[128], title[160], seeds[64];
    int B0 = s->cfg.batch, Gc = 0;
    for (int i = 0; i < s->n; i++)
        if (s->p[i].cond == fe || s->p[i].cond == fs) Gc = s->p[i].G;
    snprintf(t1, sizeof t1, "test accuracy at B = %d", B0);
    snprintf(t2, sizeof t2, "train − test gap at B = %d", B0);
    snprintf(t3, sizeof t3, "control: test accuracy at G = %d, LR ∝ B", Gc);
    snprintf(t4, sizeof t4, "control: train − test gap at G = %d", Gc);
    SvgPanel panels[4] = {
        {t1, "samples per BN statistic, G", "test accuracy (%)", 1, g_acc, 2},
        {t2, "samples per BN statistic, G", "train − test gap (points)", 1, g_gap, 2},
        {t3, "global batch B", "test accuracy (%)", 1, b_acc, 2},
        {t4, "global batch B", "train − test gap (points)", 1, b_gap, 2}};
    int np = b_acc[0].n + b_acc[1].n > 0 ? 4 : 2;
    seeds_phrase(s, seeds, sizeof seeds);
    snprintf(title, sizeof title, "BatchNorm group size study (%s)", seeds);
    char path[1200];
    snprintf(path, sizeof path, "%s/figure.svg", s->out);
    Err e = {0};
    fail_svg(d, svg_line_figure(path, title, panels, np, &e), &e);
    fprintf(md, "![BatchNorm study](figure.svg)\n\n");
}

static void reg_figures(const Dist *d, const Study *s, FILE *md, const Cond *const *cats, int nc) {
    double val[3][N_REG_CONDS], err[3][N_REG_CONDS];
    Metric f[3] = {m_test, m_gap, m_ece};
    for (int k = 0; k < 3; k++)
        for (int c = 0; c < nc; c++) stat_of(s, cats[c], c, f[k], &val[k][c], &err[k][c]);
    const char *names[N_REG_CONDS];
    for (int c = 0; c < nc; c++) names[c] = cats[c]->label;
    SvgDotPanel panels[3] = {
        // a run that failed (Adam + coupled L2 at chance) must not squash the accuracies of
        // the rest; a gap or ECE far from the rest is a finding, shown to scale
        {"test accuracy", "test accuracy (%)", nc, names, 1, NULL, val[0], err[0], 1},
        {"train − test gap", "train − test gap (points)", nc, names, 1, NULL, val[1], err[1], 0},
        {"calibration", "test ECE (%)", nc, names, 1, NULL, val[2], err[2], 0}};
    char path[1200], title[160], seeds[64];
    seeds_phrase(s, seeds, sizeof seeds);
    snprintf(title, sizeof title, "Regularizer ablation (%s)", seeds);
    snprintf(path, sizeof path, "%s/figure.svg", s->out);
    Err e = {0};
    fail_svg(d, svg_dot_figure(path, title, panels, 3, &e), &e);
    fprintf(md, "![Regularizer ablation](figure.svg)\n\n");
}

// A table cell: the mean ± sd over seeds, the value with one seed (or where the sd says
// nothing: a count of steps), "–" with none.
static void md_cell(FILE *md, const Study *s, const Cond *cond, double x, Metric f, int digits) {
    double m, sd;
    int n = stat_of(s, cond, x, f, &m, &sd);
    if (!n) fprintf(md, " | –");
    else if (n == 1 || f == m_steps) fprintf(md, " | %.*f", digits, m);
    else fprintf(md, " | %.*f ± %.*f", digits, m, digits, sd);
}

// The bn study's summary: the figure, a table row per (line, x), and what the G sweep shows.
static void bn_summary(const Dist *d, const Study *s, FILE *md) {
    bn_figures(d, s, md);
    const Cond *conds[3] = {&bn_conds[0], &bn_conds[1], &bn_conds[2]};
    fprintf(md, "| condition | G | B | epochs | steps | train acc (%%) | test acc (%%) | "
                "train − test gap (points) | PreciseBN test acc (%%) | PreciseBN train − "
                "test gap (points) |\n|---|---|---|---|---|---|---|---|---|---|\n");
    for (int c = 0; c < 3; c++) {
        double xs[2 * MAX_LIST];
        int n = xs_of(s, conds[c], xs);
        for (int k = 0; k < n; k++) {
            const Point *p = NULL;
            for (int i = 0; i < s->n && !p; i++)
                if (s->p[i].cond == conds[c] && s->p[i].x == xs[k]) p = &s->p[i];
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
    // what the G sweep shows, in words, from the numbers above
    double xs[2 * MAX_LIST], m, sd;
    int n = xs_of(s, G_SWEEP, xs), best = 0, worst = 0;
    double acc[2 * MAX_LIST], gap[2 * MAX_LIST];
    for (int k = 0; k < n; k++) {
        stat_of(s, G_SWEEP, xs[k], m_test, &acc[k], &sd);
        stat_of(s, G_SWEEP, xs[k], m_gap, &gap[k], &m);
        if (acc[k] > acc[best]) best = k;
        if (acc[k] < acc[worst]) worst = k;
    }
    if (n >= 2)
        fprintf(md, "\nAt B = %d, test accuracy is highest at G = %.0f (%.2f%%) and lowest at "
                    "G = %.0f (%.2f%%). The train − test gap is %.2f points at G = %.0f and "
                    "%.2f at G = %.0f.\n",
                s->cfg.batch, xs[best], acc[best], xs[worst], acc[worst], gap[0], xs[0],
                gap[n - 1], xs[n - 1]);
}

// The reg study's summary: the figure and a table row per condition.
static void reg_summary(const Dist *d, const Study *s, FILE *md) {
    const Cond *cats[N_REG_CONDS];  // the conditions in the order of their x
    int nc = 0;
    for (int i = 0; i < s->n && nc < N_REG_CONDS; i++) {
        int seen = 0;
        for (int c = 0; c < nc; c++) seen |= cats[c] == s->p[i].cond;
        if (!seen) cats[nc++] = s->p[i].cond;
    }
    reg_figures(d, s, md, cats, nc);
    fprintf(md, "| condition | train acc (%%) | test acc (%%) | train − test gap (points) | "
                "test ECE (%%) | test loss (cross-entropy) | seconds per epoch |\n"
                "|---|---|---|---|---|---|---|\n");
    for (int c = 0; c < nc; c++) {
        fprintf(md, "| %s", cats[c]->label);
        md_cell(md, s, cats[c], c, m_train, 2);
        md_cell(md, s, cats[c], c, m_test, 2);
        md_cell(md, s, cats[c], c, m_gap, 2);
        md_cell(md, s, cats[c], c, m_ece, 2);
        md_cell(md, s, cats[c], c, m_loss, 3);
        md_cell(md, s, cats[c], c, m_sec, 1);
        fprintf(md, " |\n");
    }
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
    else reg_summary(d, s, md);
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

int cmd_study(Dist *d, int argc, char **argv) {
    Study s;
    memset(&s, 0, sizeof s);
    parse_args(d, &s, argc, argv);
    Err e = {0};
    if (!strcmp(s.preset, "quick")) {
        // a short schedule and a small validation set; the user's --set still win
        memmove(s.extra + 2, s.extra, (size_t)s.nextra * sizeof *s.extra);
        s.extra[0] = "sched.warmup_steps=20";
        s.extra[1] = quick_val_size(s.data);
        s.nextra += 2;
    }
    if (config_load(&s.cfg, s.config, NULL, s.extra, s.nextra, &e)) cli_fail(d, &e);
    s.p = calloc(MAX_POINTS, sizeof *s.p);
    if (!s.p) {
        err_set(&e, ERR_RUNTIME, "out of memory");
        cli_fail(d, &e);
    }
    if (!strcmp(s.kind, "bn")) build_bn(d, &s);
    else build_reg(d, &s);
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
