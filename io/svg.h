// svg.h: figures as standalone SVG files: line panels (curves over epochs, or over batch sizes
// on a log2 axis, with error bars) and dot-chart panels (one value per category and series).
// No dependencies: the files open in any browser. Files are written atomically.
//
// Style, the same in every figure: a series' colour (Okabe-Ito, colour-blind safe) and marker
// shape come from its label, so a label looks the same in every panel. Legends sit to the
// right of the panels, one per distinct set of series: a row of panels gets its own legend
// beside it unless it draws the same labels as the row above. Axes fit the data (with error
// bars), not a fixed range such as 0-100. Non-finite values are skipped; a series with no
// finite point is absent from its panel, and a label absent from a row is absent from its
// legend. The caller says in the title what error bars are (e.g. "mean ± sd over 3 seeds");
// with one seed it passes no error bars.
#pragma once
#include "core/err.h"

// A line series: n points (x[i], y[i]); err (may be NULL) gives a symmetric error bar
// (e.g. std over seeds) drawn at each point.
typedef struct {
    const char *label;
    int n;
    const double *x, *y, *err;
    int dashed;  // 1: a dashed line with hollow markers (e.g. the validation curve of a run
                 // whose train curve has the same label); the panel title should say so
} SvgSeries;

// One panel of a line figure: series overlaid, shared legend for the figure.
typedef struct {
    const char *title;   // panel title
    const char *xlabel;  // axis labels, e.g. "epoch", "accuracy (%)"
    const char *ylabel;
    int logx;            // 1: log2 x axis (for batch or group sizes 2,4,8,...), ticks at the data's x values
    const SvgSeries *series;
    int nseries;
    int zero_line;       // 1: a grey line at y = 0, in range (a panel of differences)
} SvgPanel;

// Writes a figure of npanels line panels in a grid of at most 3 columns (4 panels make 2x2),
// with the figure title on top and a legend per distinct row of series (class "legend"). ERR_OK, or ERR_INPUT for
// bad arguments (npanels < 1, NULL series...), ERR_RUNTIME with the OS reason if writing fails.
int svg_line_figure(const char *path, const char *title, const SvgPanel *panels, int npanels,
                    Err *e);

// A dot chart panel: categories down the y axis (e.g. "none", "+ weight decay", "all on"),
// one dot (with an error bar when err != NULL) per category and series, series offset
// slightly so they don't overlap. val and err are (nseries, ncat) row-major; NaN = no value.
typedef struct {
    const char *title;
    const char *xlabel;  // e.g. "test accuracy (%)"
    int ncat;
    const char *const *cats;
    int nseries;
    const char *const *series_labels;  // (nseries); legend entries (may be NULL when nseries == 1)
    const double *val, *err;
    int breakable;  // 1: the axis may break around a few far values (see svg_dot_figure). Only
                    // where those are failures beside the values that matter (a run at chance
                    // in an accuracy panel), not where they are the finding (a gap 3x the rest)
} SvgDotPanel;

// Writes npanels dot panels side by side sharing the category labels (drawn once, at the left;
// every panel must have the same ncat, and the first panel's cats are the ones shown). In a
// breakable panel, a few values far from the rest (at most a quarter of them, beyond the widest gap, when both sides
// with their error bars take less than a third of the whole range) get their own segment of
// the axis, with a break (class "axis-break") between it and the rest's: a run at chance does
// not squash the differences among runs at 68-85%, and every point stays at its value.
int svg_dot_figure(const char *path, const char *title, const SvgDotPanel *panels, int npanels,
                   Err *e);

// Nice axis ticks: step 1, 2 or 5 x 10^k, ticks[0] <= lo and ticks[n-1] >= hi, consecutive
// multiples of the step, at most max_ticks (>= 3) of them. A range of zero width is widened.
// Returns n, or -1 when lo or hi is not finite or max_ticks < 3. ticks holds max_ticks.
int svg_nice_ticks(double lo, double hi, int max_ticks, double *ticks);
