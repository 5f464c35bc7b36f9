// plot.c: `regdist plot`: the learning curves of one or more runs in one SVG figure: loss,
// accuracy and the learning rate over epochs, a colour per run.
// Plotting is cheap and needs no collective work, so rank 0 does it all and the rest return.
//
// No gap panel: the gap is eval-mode train accuracy minus held-out accuracy, and metrics.csv's
// train_acc is the running train-mode accuracy over the epoch (dropout on, weights moving), so
// train_acc - val_acc is not it (it runs negative early on). The accuracy panel shows both
// curves under their honest names instead.
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "io/metrics.h"
#include "io/svg.h"
#include "options.h"
#include "outpath.h"
#include "study.h"

static const char *usage =
    "usage: regdist plot --out FIG.svg [--title T] [--label L ...] [--overwrite] RUN [RUN ...]\n"
    "\n"
    "Draws the learning curves of each RUN (a run directory holding metrics.csv, as train --out\n"
    "makes, or a metrics.csv file) into the SVG figure FIG.svg, three panels over epochs: loss\n"
    "and accuracy (train solid: the running average over the epoch in train mode; validation\n"
    "dashed: eval mode at the epoch's end), and the learning rate. There is no gap panel: the\n"
    "train - val gap is eval-mode train accuracy minus validation accuracy, which metrics.csv\n"
    "does not hold per epoch (train's summary.json has it for the final model).\n"
    "A run is named by its --label (the first --label names the first RUN, and so on), else by\n"
    "its study label when it is a point of `regdist study` (\"BatchNorm only, 12 epochs, seed\n"
    "1\"), else by its directory; runs whose directories share a name get their parent's name\n"
    "in front. --out is required; an existing FIG.svg is refused unless --overwrite. T is the figure's title (default\n"
    "\"learning curves\"). Open FIG.svg in a browser.\n";

typedef struct {
    char name[256], parent[256], label[600];  // a file name is at most 255 bytes
    int given;  // label comes from --label or the run's study, not from its directory
    MetricsRow *rows;
    int n;
    double *col;  // (6, n): epoch, train loss, val loss, train acc %, val acc %, lr
} Run;

enum { EPOCH, TRAIN_LOSS, VAL_LOSS, TRAIN_ACC, VAL_ACC, LR, NCOL };

static double *column(const Run *r, int c) { return r->col + (size_t)c * r->n; }

// Reads RUN (a directory or a metrics.csv) and names it after the directory holding the file.
static int run_load(Run *r, const char *arg, Err *e) {
    char path[PATH_MAX + 16], real[PATH_MAX + 16];
    struct stat st;
    if (stat(arg, &st))
        return err_set(e, ERR_INPUT, "%s: no such run directory or metrics.csv", arg);
    snprintf(path, sizeof path, S_ISDIR(st.st_mode) ? "%s/metrics.csv" : "%s", arg);
    if (metrics_read(path, &r->rows, &r->n, e)) return e->code;
    if (r->n == 0) return err_set(e, ERR_INPUT, "%s: no epochs yet", path);
    if (!realpath(path, real)) snprintf(real, sizeof real, "%s", path);
    char *slash = strrchr(real, '/');
    *(slash ? slash : real) = 0;  // real is now the run directory
    if (*real && study_point_label(real, r->label, sizeof r->label)) r->given = 1;
    slash = strrchr(real, '/');
    snprintf(r->name, sizeof r->name, "%.255s", slash ? slash + 1 : *real ? real : ".");
    if (slash) *slash = 0;
    slash = strrchr(real, '/');
    snprintf(r->parent, sizeof r->parent, "%.255s", slash ? slash + 1 : real);
    r->col = malloc((size_t)NCOL * r->n * sizeof *r->col);
    if (!r->col) return err_set(e, ERR_RUNTIME, "out of memory");
    for (int i = 0; i < r->n; i++) {
        const MetricsRow *m = &r->rows[i];
        column(r, EPOCH)[i] = (double)m->epoch;
        column(r, TRAIN_LOSS)[i] = m->train_loss;
        column(r, VAL_LOSS)[i] = m->val_loss;
        column(r, TRAIN_ACC)[i] = 100 * m->train_acc;
        column(r, VAL_ACC)[i] = 100 * m->val_acc;
        column(r, LR)[i] = m->lr;
    }
    return ERR_OK;
}

// Legend labels, where no --label or study gave one: the directory's name, "parent/name" where
// names clash; then " (k)" where labels are still the same (the same run given twice).
static void run_labels(Run *runs, int n) {
    for (int i = 0; i < n; i++) {
        if (runs[i].given) continue;
        int clash = 0;
        for (int j = 0; j < n; j++)
            clash |= j != i && !runs[j].given && strcmp(runs[i].name, runs[j].name) == 0;
        if (clash)
            snprintf(runs[i].label, sizeof runs[i].label, "%s/%s", runs[i].parent, runs[i].name);
        else
            snprintf(runs[i].label, sizeof runs[i].label, "%s", runs[i].name);
    }
    for (int i = 0; i < n; i++) {
        int same = 1;
        for (int j = 0; j < i; j++) same += strcmp(runs[i].label, runs[j].label) == 0;
        size_t len = strlen(runs[i].label);
        if (same > 1) snprintf(runs[i].label + len, sizeof runs[i].label - len, " (%d)", same);
    }
}

// Series of column c for every run; with val >= 0 also that column, dashed, after each.
static SvgSeries *series(const Run *runs, int n, int c, int val, int *count) {
    SvgSeries *s = calloc((size_t)n * 2, sizeof *s);
    *count = 0;
    for (int i = 0; s && i < n; i++) {
        const Run *r = &runs[i];
        s[(*count)++] = (SvgSeries){r->label, r->n, column(r, EPOCH), column(r, c), NULL, 0};
        if (val >= 0)
            s[(*count)++] = (SvgSeries){r->label, r->n, column(r, EPOCH), column(r, val), NULL, 1};
    }
    return s;
}

// plot's command line.
typedef struct {
    const char *out, *title;
    int overwrite;
    OptList labels;  // --label, in order
} PlotArgs;

// Parses plot's options into a and checks them (a usage error ends the job). Returns the index
// in argv of the first RUN, or -1 after --help (printed).
static int plot_args(const Dist *d, PlotArgs *a, int argc, char **argv) {
    *a = (PlotArgs){.title = "learning curves",
                    .labels = {calloc((size_t)argc, sizeof(char *)), 0, argc}};
    if (!a->labels.v) {
        Err e;
        err_set(&e, ERR_RUNTIME, "out of memory");
        cli_fail(d, &e);
    }
    const Opt opts[] = {OPT_S("out", &a->out, "FIG.svg", "the figure to write", 0),
                        OPT_S("title", &a->title, "T",
                              "its title (default \"learning curves\")", 0),
                        OPT_L("label", &a->labels, "L", "the next RUN's name; repeatable"),
                        OPT_F("overwrite", &a->overwrite, "replace an existing FIG.svg"),
                        OPT_END};
    int at = opts_parse(d, "plot", opts, argc, argc, argv, 1);
    if (at < 0) {
        if (d->rank == 0) fputs(usage, stdout), fputs("\n", stdout), opts_print_help(stdout, opts);
        return -1;
    }
    const char **label = a->labels.v;
    int nlabels = a->labels.n;
    for (int i = 0; i < nlabels; i++)
        if (!*label[i]) cli_usage_fail(d, "plot", "--label needs a name: --label 'BatchNorm only'");
    if (!a->out) cli_usage_fail(d, "plot", "--out FIG.svg is required");
    if (at == argc) cli_usage_fail(d, "plot", "give at least one run directory");
    if (nlabels > argc - at)
        cli_usage_fail(d, "plot", "%d --label options for %d run%s: one label per run, in order",
                       nlabels, argc - at, argc - at == 1 ? "" : "s");
    return at;
}

static void runs_free(Run *runs, int n) {
    for (int i = 0; runs && i < n; i++) free(runs[i].rows), free(runs[i].col);
    free(runs);
}

// Reads the n runs named in arg, the first nlabels named by label (--label, in order), the
// rest by run_labels. NULL on failure (e says why).
static Run *runs_load(char **arg, int n, const char **label, int nlabels, Err *e) {
    Run *runs = calloc((size_t)n, sizeof *runs);
    if (!runs) {
        err_set(e, ERR_RUNTIME, "out of memory");
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        if (run_load(&runs[i], arg[i], e)) {
            runs_free(runs, n);
            return NULL;
        }
        if (i < nlabels) {
            snprintf(runs[i].label, sizeof runs[i].label, "%s", label[i]);
            runs[i].given = 1;
        }
    }
    run_labels(runs, n);
    return runs;
}

// The figure's three panels over epochs: loss and accuracy (train solid, val dashed) and the
// learning rate; s[k] is panel k's series array (free each).
static int panels_make(SvgPanel p[3], SvgSeries *s[3], const Run *runs, int n, Err *e) {
    // train: metrics.csv's running average over the epoch in train mode; val: eval mode
    p[0] = (SvgPanel){"loss: running train (solid), val (dashed)", "epoch", "cross-entropy", 0,
                      NULL, 0, 0};
    p[1] = (SvgPanel){"accuracy: running train (solid), val (dashed)", "epoch", "accuracy (%)", 0,
                      NULL, 0, 0};
    p[2] = (SvgPanel){"learning rate", "epoch", "learning rate", 0, NULL, 0, 0};
    s[0] = series(runs, n, TRAIN_LOSS, VAL_LOSS, &p[0].nseries);
    s[1] = series(runs, n, TRAIN_ACC, VAL_ACC, &p[1].nseries);
    s[2] = series(runs, n, LR, -1, &p[2].nseries);
    if (!s[0] || !s[1] || !s[2]) {
        for (int k = 0; k < 3; k++) free(s[k]), s[k] = NULL;
        return err_set(e, ERR_RUNTIME, "out of memory");
    }
    for (int k = 0; k < 3; k++) p[k].series = s[k];
    return ERR_OK;
}

int cmd_plot(Dist *d, int argc, char **argv) {
    PlotArgs a;
    int at = plot_args(d, &a, argc, argv);
    if (at < 0 || d->rank != 0) {
        free(a.labels.v);
        return 0;
    }
    int n = argc - at;
    Err e = {0};
    if (out_file_check("--out", a.out, a.overwrite, &e)) cli_fail(d, &e);  // before reading any run
    Run *runs = runs_load(argv + at, n, a.labels.v, a.labels.n, &e);
    if (!runs) cli_fail(d, &e);
    SvgPanel p[3];
    SvgSeries *s[3];
    if (panels_make(p, s, runs, n, &e) || svg_line_figure(a.out, a.title, p, 3, &e))
        cli_fail(d, &e);
    printf("plot: wrote %s (%d run%s)\n", a.out, n, n == 1 ? "" : "s");
    for (int k = 0; k < 3; k++) free(s[k]);
    runs_free(runs, n);
    free(a.labels.v);
    return 0;
}
