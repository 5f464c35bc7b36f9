// svg.c: line and dot-chart figures as SVG. The figure is drawn into memory and then saved
// atomically, so a reader never sees half a figure and a failed write leaves nothing behind.
// Text sizes are estimated (0.6 em per character of sans-serif), which is what the layout
// needs to keep titles, tick labels and the legend apart without a font library.
#include "svg.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// Okabe-Ito, without its yellow, which is too faint on white.
static const char *const colours[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                      "#E69F00", "#56B4E9", "#000000"};
enum { NCOLOURS = 7, NMARKERS = 4, MAX_TICKS = 64 };

// Panel geometry (pixels): a cell is margins around a plot area; the figure title is on top.
enum { TOP = 44, MT = 34, MB = 54, MR = 24, LINE_ML = 72, LINE_PW = 300, PH = 200, DOT_PW = 260,
       DOT_ML = 12, LEGEND_ROW = 20, DODGE_PX = 3 };

static double text_w(const char *s, double font) {
    int n = 0;
    for (; s && *s; s++) n += ((unsigned char)*s & 0xC0) != 0x80;  // UTF-8 characters
    return 0.6 * font * n;
}

// The first n bytes of s, escaped for XML.
static void esc(FILE *f, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) switch (s[i]) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&apos;", f); break;
        default: fputc(s[i], f);
        }
}

// Text at (x, y); attr adds attributes. Where width > 0 and s is wider, the font shrinks, to
// 10 px at the least (smaller is hard to read), and what still does not fit is cut at "...".
static void text(FILE *f, double x, double y, double font, double width, const char *anchor,
                 const char *attr, const char *s) {
    if (!s || !*s) return;
    size_t len = strlen(s), keep = len;
    if (width > 0 && text_w(s, font) > width) {
        font = fmax(10, font * width / text_w(s, font));
        int fit = (int)(width / (0.6 * font)) - 1, chars = 0;  // one left for the ellipsis
        if (text_w(s, font) > width)  // cut before the UTF-8 character that does not fit
            for (keep = 0; keep < len; keep++)
                if (((unsigned char)s[keep] & 0xC0) != 0x80 && chars++ == fit) break;
    }
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"%.1f\" text-anchor=\"%s\"%s>", x, y, font,
            anchor, attr ? attr : "");
    esc(f, s, keep);
    fputs(keep < len ? "\u2026</text>\n" : "</text>\n", f);
}

// Marker k at (x, y): circle, square, triangle, diamond; colours come from the enclosing <g>.
static void marker(FILE *f, int k, double x, double y) {
    const double r = 4;
    if (k == 0) fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\"/>", x, y, r);
    else if (k == 1) fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"7\" height=\"7\"/>", x - 3.5, y - 3.5);
    else if (k == 2)
        fprintf(f, "<polygon points=\"%.1f,%.1f %.1f,%.1f %.1f,%.1f\"/>", x, y - 5, x + 4.5, y + 3.5,
                x - 4.5, y + 3.5);
    else
        fprintf(f, "<polygon points=\"%.1f,%.1f %.1f,%.1f %.1f,%.1f %.1f,%.1f\"/>", x, y - 5,
                x + 5, y, x, y + 5, x - 5, y);
}

// A figure being drawn: the document, in memory until it is saved whole, and the labels of
// its series in order of first appearance; a label's index is its style. Panels sit in rows;
// which labels each row draws decides its legend.
typedef struct {
    FILE *f;
    char *buf;
    size_t len;
    const char **name;
    unsigned char *has;  // (rows, cap): 1 where row r has a series of label k with a finite point
    int n, cap, rows;
    double legend_x;
    double *legend_y;  // (rows): the first entry of row r's legend; NAN where it has none
} Fig;

static int label_index(Fig *g, const char *s) {
    s = s ? s : "";
    for (int i = 0; i < g->n; i++)
        if (strcmp(g->name[i], s) == 0) return i;
    g->name[g->n] = s;
    return g->n++;
}

static const char *colour(int k) { return colours[k % NCOLOURS]; }
static int marker_kind(int k) { return (k + k / NCOLOURS) % NMARKERS; }  // distinct pairs

// Opens the group of a series' marks: coloured, markers hollow when dashed.
static void series_begin(FILE *f, int k, int dashed) {
    fprintf(f, "<g class=\"series\" stroke=\"%s\" fill=\"%s\" stroke-width=\"1.5\">\n", colour(k),
            dashed ? "white" : colour(k));
}

// Whether row r's legend lists label k: a series of it was drawn there and it has a name.
static int in_legend(const Fig *g, int r, int k) { return g->has[(size_t)r * g->cap + k] && *g->name[k]; }

static int legend_size(const Fig *g, int r) {
    int n = 0;
    for (int k = 0; k < g->n; k++) n += in_legend(g, r, k);
    return n;
}

static int same_legend(const Fig *g, int r, int q) {
    for (int k = 0; k < g->n; k++)
        if (in_legend(g, r, k) != in_legend(g, q, k)) return 0;
    return 1;
}

// svg_nice_ticks with steps of at least min_step (1 for whole-number data such as epochs).
static int nice_ticks(double lo, double hi, int max_ticks, double min_step, double *ticks) {
    if (!isfinite(lo) || !isfinite(hi) || !isfinite(hi - lo) || max_ticks < 3) return -1;
    if (lo > hi) {
        double t = lo;
        lo = hi, hi = t;
    }
    if (hi - lo <= 1e-9 * fmax(fabs(lo), fabs(hi))) {  // one value: widen around it
        double pad = lo != 0 ? 0.1 * fabs(lo) : 1;
        lo -= pad, hi += pad;
    }
    static const double mant[] = {1, 2, 5};
    double base = pow(10, floor(log10((hi - lo) / (max_ticks - 1))));
    for (int i = 0; i < 30; i++) {
        double step = base * mant[i % 3] * pow(10, i / 3);
        // the tolerance keeps a bound that is a multiple of step from adding a tick
        double k0 = floor(lo / step + 1e-9), k1 = ceil(hi / step - 1e-9);
        if (step < min_step || k1 - k0 + 1 > max_ticks) continue;
        for (int j = 0; j <= k1 - k0; j++) ticks[j] = (k0 + j) * step;
        return (int)(k1 - k0 + 1);
    }
    return -1;
}

int svg_nice_ticks(double lo, double hi, int max_ticks, double *ticks) {
    return nice_ticks(lo, hi, max_ticks, 0, ticks);
}

// A linear or log2 axis from data range [lo, hi] (log2 units when log) onto pixels [p0, p1].
typedef struct {
    double lo, hi, p0, p1;
    int log;
} Scale;

static double to_px(const Scale *s, double v) {
    double t = s->log ? log2(v) : v;
    double p = s->p0 + (t - s->lo) / (s->hi - s->lo) * (s->p1 - s->p0);
    return isfinite(p) ? p : s->p0;
}

// Nice ticks for [lo, hi] (no data: [0, 1]); s's range is the ticks' and a margin, so that
// points on the outer ticks do not sit on the frame. Returns the count.
static int linear_axis(Scale *s, double lo, double hi, int max_ticks, double min_step,
                       double *ticks) {
    if (lo > hi) lo = 0, hi = 1;
    int n = nice_ticks(lo, hi, max_ticks, min_step, ticks);
    if (n < 2) n = nice_ticks(0, 1, max_ticks, 0, ticks);  // range too wide for doubles
    double pad = 0.03 * (ticks[n - 1] - ticks[0]);
    s->lo = ticks[0] - pad, s->hi = ticks[n - 1] + pad, s->log = 0;
    return n;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// The smallest k such that labelling every k-th tick of a horizontal axis (log2 ticks at the
// data can crowd) leaves 6 px between labels.
static int label_stride(const Scale *s, const double *t, int n) {
    for (int k = 1;; k++) {
        double end = -1e9;
        int clear = 1;
        for (int i = 0; clear && i < n; i += k) {
            char lab[32];
            snprintf(lab, sizeof lab, "%.6g", t[i]);
            double p = to_px(s, t[i]), w = text_w(lab, 11);
            clear = p - w / 2 >= end + 6;
            end = p + w / 2;
        }
        if (clear || k >= n) return k;
    }
}

// Grid lines and tick labels of one axis (vertical lines for the x axis, from a0 to a1).
static void ticks_draw(FILE *f, const Scale *s, const double *t, int n, int vertical, double a0,
                       double a1) {
    int stride = vertical ? label_stride(s, t, n) : 1;
    for (int i = 0; i < n; i++) {
        char lab[32];
        snprintf(lab, sizeof lab, "%.6g", t[i]);
        double p = to_px(s, t[i]);
        if (vertical) {
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#dcdcdc\"/>\n", p, a0, p, a1);
            if (i % stride == 0) text(f, p, a1 + 16, 11, 0, "middle", NULL, lab);
        } else {
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#dcdcdc\"/>\n", a0, p, a1, p);
            text(f, a0 - 6, p + 4, 11, 0, "end", NULL, lab);
        }
    }
}

// Frame, panel title above and x label below the plot area (x, y, w, h).
static void frame(FILE *f, double x, double y, double w, double h, const char *title,
                  const char *xlabel) {
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#555\"/>\n", x, y, w, h);
    text(f, x + w / 2, y - 12, 13, w + 40, "middle", " font-weight=\"bold\"", title);
    text(f, x + w / 2, y + h + 40, 12, w, "middle", NULL, xlabel);
}

static int valid(const SvgPanel *p, const SvgSeries *s, int i) {
    return isfinite(s->x[i]) && isfinite(s->y[i]) && (!p->logx || s->x[i] > 0);
}

static int series_drawn(const SvgPanel *p, const SvgSeries *s) {
    for (int i = 0; i < s->n; i++)
        if (valid(p, s, i)) return 1;
    return 0;
}

// One line panel whose cell's top-left corner is (cx, cy).
static void line_panel(Fig *g, const SvgPanel *p, double cx, double cy) {
    FILE *f = g->f;
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY, xt[MAX_TICKS],
           yt[MAX_TICKS];
    int nx = 0, whole = 1;  // whole: every x a whole number (epochs): no ticks between them
    for (int j = 0; j < p->nseries; j++) {
        const SvgSeries *s = &p->series[j];
        for (int i = 0; i < s->n; i++) {
            if (!valid(p, s, i)) continue;
            double e = s->err && isfinite(s->err[i]) ? fabs(s->err[i]) : 0;
            xlo = fmin(xlo, s->x[i]), xhi = fmax(xhi, s->x[i]);
            whole &= s->x[i] == floor(s->x[i]);
            ylo = fmin(ylo, s->y[i] - e), yhi = fmax(yhi, s->y[i] + e);
            int seen = !p->logx;  // log2 ticks: the distinct x values
            for (int t = 0; t < nx; t++) seen |= xt[t] == s->x[i];
            if (!seen && nx < MAX_TICKS) xt[nx++] = s->x[i];
        }
    }
    double x0 = cx + LINE_ML, y0 = cy + MT;
    Scale xs = {.p0 = x0, .p1 = x0 + LINE_PW}, ys = {.p0 = y0 + PH, .p1 = y0};
    if (p->logx) {  // ticks at the distinct data x values, a quarter octave of room each side
        qsort(xt, (size_t)nx, sizeof *xt, cmp_double);
        xs.log = 1;
        xs.lo = nx ? log2(xlo) - 0.25 : 0, xs.hi = nx ? log2(xhi) + 0.25 : 1;
    } else {
        nx = linear_axis(&xs, xlo, xhi, 7, whole, xt);
    }
    int zero = p->zero_line && ylo <= yhi;  // (no valid point: no axis range, no line)
    if (zero) ylo = fmin(ylo, 0), yhi = fmax(yhi, 0);
    int ny = linear_axis(&ys, ylo, yhi, 6, 0, yt);
    ticks_draw(f, &xs, xt, nx, 1, y0, y0 + PH);
    ticks_draw(f, &ys, yt, ny, 0, x0, x0 + LINE_PW);
    frame(f, x0, y0, LINE_PW, PH, p->title, p->xlabel);
    if (p->ylabel && *p->ylabel) {
        fprintf(f, "<g transform=\"translate(%.1f,%.1f) rotate(-90)\">", cx + 16, y0 + PH / 2.0);
        text(f, 0, 0, 12, PH, "middle", NULL, p->ylabel);
        fputs("</g>\n", f);
    }
    if (zero)
        fprintf(f, "<line class=\"zero\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" "
                   "stroke=\"#555\" stroke-width=\"1\"/>\n",
                x0, x0 + LINE_PW, to_px(&ys, 0), to_px(&ys, 0));
    // with error bars, series sharing x values are dodged a few pixels apart, so that bars
    // of equal x do not hide each other
    int bars = 0, ndrawn = 0, slot = 0;
    for (int j = 0; j < p->nseries; j++)
        if (series_drawn(p, &p->series[j])) bars |= p->series[j].err != NULL, ndrawn++;
    for (int j = 0; j < p->nseries; j++) {
        const SvgSeries *s = &p->series[j];
        if (!series_drawn(p, s)) continue;
        double dx = bars ? DODGE_PX * (slot++ - (ndrawn - 1) / 2.0) : 0;
        int k = label_index(g, s->label), nvalid = 0;
        series_begin(f, k, s->dashed);
        fprintf(f, "<polyline fill=\"none\" stroke-width=\"2\"%s points=\"",
                s->dashed ? " stroke-dasharray=\"7 4\"" : "");
        for (int i = 0; i < s->n; i++)
            if (valid(p, s, i))
                fprintf(f, "%s%.1f,%.1f", nvalid++ ? " " : "", to_px(&xs, s->x[i]) + dx,
                        to_px(&ys, s->y[i]));
        fputs("\"/>\n", f);
        for (int i = 0; s->err && i < s->n; i++) {
            if (!valid(p, s, i) || !isfinite(s->err[i])) continue;
            double x = to_px(&xs, s->x[i]) + dx, a = to_px(&ys, s->y[i] - fabs(s->err[i])),
                   b = to_px(&ys, s->y[i] + fabs(s->err[i]));
            fprintf(f, "<path fill=\"none\" d=\"M%.1f %.1fV%.1fM%.1f %.1fH%.1fM%.1f %.1fH%.1f\"/>\n",
                    x, a, b, x - 4, a, x + 4, x - 4, b, x + 4);
        }
        // about a dozen markers a series: enough to tell series apart, not so many they blot
        for (int i = 0, seen = 0, every = (nvalid + 11) / 12; i < s->n; i++)
            if (valid(p, s, i) && seen++ % every == 0)
                marker(f, marker_kind(k), to_px(&xs, s->x[i]) + dx, to_px(&ys, s->y[i]));
        fputs("</g>\n", f);
    }
}

// Writes the SVG document held in buf to path atomically: "<path>.tmp.<pid>", then rename.
static int save(const char *path, const char *buf, size_t len, Err *e) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof tmp)
        return err_set(e, ERR_RUNTIME, "%s: cannot write: %s", path, strerror(ENAMETOOLONG));
    int err = 0;
    FILE *f = fopen(tmp, "w");
    if (!f) return err_set(e, ERR_RUNTIME, "%s: cannot write: %s", path, strerror(errno));
    if (fwrite(buf, 1, len, f) != len || fflush(f) || fsync(fileno(f))) err = errno;
    if (fclose(f) && !err) err = errno;
    if (!err && rename(tmp, path)) err = errno;
    if (err) {
        unlink(tmp);
        return err_set(e, ERR_RUNTIME, "%s: cannot write: %s", path, strerror(err));
    }
    return ERR_OK;
}

// Room for nlabels labels in rows of panels and the memory stream; ERR_RUNTIME if there is no
// memory.
static int fig_open(Fig *g, int nlabels, int rows, const char *path, Err *e) {
    *g = (Fig){.name = malloc(((size_t)nlabels + 1) * sizeof *g->name),
               .has = calloc((size_t)rows * ((size_t)nlabels + 1), 1),
               .legend_y = malloc((size_t)rows * sizeof *g->legend_y),
               .cap = nlabels + 1,
               .rows = rows};
    g->f = g->name && g->has && g->legend_y ? open_memstream(&g->buf, &g->len) : NULL;
    if (g->f) return ERR_OK;
    free(g->name), free(g->has), free(g->legend_y);
    return err_set(e, ERR_RUNTIME, "%s: out of memory drawing the figure", path);
}

// The document's opening, sized for panels of w x h (below the title) and the legends to the
// right of them: XML declaration, <svg>, white background, figure title. A legend serves one
// set of series: row r gets its own, level with its first panel (row_y0 + r * row_h), unless
// it draws the same labels as the row above, whose legend then serves both.
static void fig_begin(Fig *g, double w, double h, double row_y0, double row_h, const char *title) {
    double legend_w = 0, bottom = 0;
    for (int k = 0; k < g->n; k++)
        for (int r = 0; r < g->rows; r++)
            if (in_legend(g, r, k)) legend_w = fmax(legend_w, 52 + text_w(g->name[k], 12));
    for (int r = 0; r < g->rows; r++) {
        int n = legend_size(g, r);
        g->legend_y[r] = NAN;
        if (!n || (r > 0 && same_legend(g, r, r - 1))) continue;
        // below the legend above when that one is long
        g->legend_y[r] = fmax(row_y0 + r * row_h, bottom + LEGEND_ROW);
        bottom = g->legend_y[r] + LEGEND_ROW * (n - 1) + 14;
    }
    g->legend_x = w + 16;
    w += legend_w ? 16 + legend_w : 0;
    h = fmax(TOP + h, bottom);
    fprintf(g->f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" "
            "width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\">\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n", w, h, w, h);
    text(g->f, w / 2, 28, 16, w - 20, "middle", " font-weight=\"bold\"", title);
}

// Draws the legends (with line samples if lines), ends the document and saves it; frees g.
static int fig_end(Fig *g, int lines, const char *path, Err *e) {
    double x = g->legend_x;
    for (int r = 0; r < g->rows; r++) {
        if (isnan(g->legend_y[r])) continue;
        fputs("<g class=\"legend\">\n", g->f);
        double y = g->legend_y[r];
        for (int k = 0; k < g->n; k++) {
            if (!in_legend(g, r, k)) continue;
            series_begin(g->f, k, 0);
            if (lines) fprintf(g->f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke-width=\"2\"/>", x, y, x + 28, y);
            marker(g->f, marker_kind(k), x + (lines ? 14 : 6), y);
            fputs("</g>\n", g->f);
            text(g->f, x + (lines ? 36 : 18), y + 4, 12, 0, "start", NULL, g->name[k]);
            y += LEGEND_ROW;
        }
        fputs("</g>\n", g->f);
    }
    fputs("</svg>\n", g->f);
    int rc = fclose(g->f) ? err_set(e, ERR_RUNTIME, "%s: out of memory drawing the figure", path)
                          : save(path, g->buf, g->len, e);
    free(g->buf), free(g->name), free(g->has), free(g->legend_y);
    return rc;
}

int svg_line_figure(const char *path, const char *title, const SvgPanel *panels, int npanels,
                    Err *e) {
    if (!path || !panels || npanels < 1)
        return err_set(e, ERR_INPUT, "%s: a figure needs at least one panel", path ? path : "svg");
    int total = 0;
    for (int p = 0; p < npanels; p++) {
        if (panels[p].nseries < 0 || (panels[p].nseries && !panels[p].series))
            return err_set(e, ERR_INPUT, "%s: panel %d has no series array", path, p + 1);
        for (int j = 0; j < panels[p].nseries; j++) {
            const SvgSeries *s = &panels[p].series[j];
            if (s->n < 0 || (s->n && (!s->x || !s->y)))
                return err_set(e, ERR_INPUT, "%s: panel %d series %d has no x or y", path, p + 1, j + 1);
        }
        total += panels[p].nseries;
    }
    int rows = (npanels + 2) / 3, cols = (npanels + rows - 1) / rows;
    Fig g;
    int rc = fig_open(&g, total, rows, path, e);
    if (rc) return rc;
    for (int p = 0; p < npanels; p++)  // styles and legends first: the layout needs their size
        for (int j = 0; j < panels[p].nseries; j++) {
            int k = label_index(&g, panels[p].series[j].label);
            g.has[(size_t)(p / cols) * g.cap + k] |= series_drawn(&panels[p], &panels[p].series[j]);
        }
    double cw = LINE_ML + LINE_PW + MR, ch = MT + PH + MB;
    fig_begin(&g, cols * cw, rows * ch, TOP + MT + 6, ch, title);
    for (int p = 0; p < npanels; p++)
        line_panel(&g, &panels[p], (p % cols) * cw, TOP + (p / cols) * ch);
    return fig_end(&g, 1, path, e);
}

// The range of the values (with error bars) on one side of a bound: below (side 0) or above
// (side 1) it; side -1: all of them.
static void dot_range(const SvgDotPanel *p, int side, double at, double *lo, double *hi) {
    *lo = INFINITY, *hi = -INFINITY;
    for (int i = 0; i < p->nseries * p->ncat; i++) {
        double x = p->val[i], e = p->err && isfinite(p->err[i]) ? fabs(p->err[i]) : 0;
        if (isfinite(x) && (side < 0 || (x > at) == side))
            *lo = fmin(*lo, x - e), *hi = fmax(*hi, x + e);
    }
}

// Where a dot panel's axis breaks, if it does. All values (with their error bars) on one
// axis, unless a few lie far from the rest, as a run that never left chance (10%) beside runs
// at 68-85%: one axis from 0 to 100 would squash the differences that matter into a sliver.
// Those few are the values beyond the widest gap between sorted values, at most a quarter of
// them; the axis breaks there when the two sides, error bars included, take less than a third
// of the whole range. Each side then has its own segment and every point is still drawn at
// its value. Returns 1 and the bound between the sides (in the gap) when it breaks, else 0.
static int dot_break(const SvgDotPanel *p, double *at) {
    int total = p->nseries * p->ncat, n = 0, brk = 0;
    double *v = malloc((size_t)total * sizeof *v);
    for (int i = 0; v && i < total; i++)
        if (isfinite(p->val[i])) v[n++] = p->val[i];
    if (v && n >= 4) {
        qsort(v, (size_t)n, sizeof *v, cmp_double);
        int k = 1;  // the widest gap is between v[k - 1] and v[k]
        for (int i = 2; i < n; i++)
            if (v[i] - v[i - 1] > v[k] - v[k - 1]) k = i;
        *at = (v[k] + v[k - 1]) / 2;
        double lo0, hi0, lo1, hi1;
        dot_range(p, 0, *at, &lo0, &hi0);
        dot_range(p, 1, *at, &lo1, &hi1);
        int few = k <= n - k ? k : n - k;
        brk = 4 * few <= n && (hi0 - lo0) + (hi1 - lo1) < (hi1 - lo0) / 3;
    }
    free(v);
    return brk;
}

// A dot panel's x scales, plot area from x0, and their ticks t (nt of them). Returns 1 when the
// axis breaks at *at (dot_break): xs[0] then spans the values below, xs[1] those above.
static int dot_axes(Scale xs[2], double t[2][MAX_TICKS], int nt[2], double *at,
                    const SvgDotPanel *p, double x0) {
    double lo, hi;
    xs[0] = xs[1] = (Scale){.p0 = x0, .p1 = x0 + DOT_PW};
    nt[0] = nt[1] = 0;
    *at = 0;
    if (!p->breakable || !dot_break(p, at)) {
        dot_range(p, -1, 0, &lo, &hi);
        nt[0] = linear_axis(&xs[0], lo, hi, 6, 0, t[0]);
        return 0;
    }
    // each side its own ticks, and pixels for its span, within limits
    enum { BREAK_W = 16 };
    double span[2], r[2][2];
    for (int side = 0; side < 2; side++) {
        dot_range(p, side, *at, &r[side][0], &r[side][1]);
        linear_axis(&xs[side], r[side][0], r[side][1], 5, 0, t[side]);
        span[side] = xs[side].hi - xs[side].lo;
    }
    double share = fmin(0.6, fmax(0.25, span[0] / (span[0] + span[1])));
    xs[0].p1 = x0 + share * (DOT_PW - BREAK_W);
    xs[1].p0 = xs[0].p1 + BREAK_W;
    for (int side = 0; side < 2; side++) {  // a tick per 45 pixels or so
        int most = (int)fmax(3, fmin(6, (xs[side].p1 - xs[side].p0) / 45));
        nt[side] = linear_axis(&xs[side], r[side][0], r[side][1], most, 0, t[side]);
    }
    if (xs[0].hi >= xs[1].lo) {  // the segments' nice ranges meet: one axis after all
        xs[0] = (Scale){.p0 = x0, .p1 = x0 + DOT_PW};
        nt[0] = linear_axis(&xs[0], r[0][0], r[1][1], 6, 0, t[0]);
        return 0;
    }
    return 1;
}

// Where the axis breaks between x = a and x = b: a white gap through the frame (top y0,
// height h), with the usual double slashes on its edges.
static void axis_break_draw(FILE *f, double a, double b, double y0, double h) {
    fprintf(f, "<g class=\"axis-break\"><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
            "fill=\"white\"/>", a, y0 - 1, b - a, h + 2);
    for (int e = 0; e < 2; e++)
        for (int side = 0; side < 2; side++) {
            double x = side ? b : a, y = e ? y0 + h : y0;
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#555\"/>",
                    x - 3, y + 5, x + 3, y - 5);
        }
    fputs("</g>\n", f);
}

// Every series' dots (and error bars), side by side within each category's row; a value above
// at is on xs[1] when the axis breaks (brk).
static void dot_series(Fig *g, const SvgDotPanel *p, const Scale xs[2], int brk, double at,
                       double y0, double rowh) {
    FILE *f = g->f;
    double gap = fmin(9, (rowh - 8) / p->nseries);
    for (int s = 0; s < p->nseries; s++) {
        int k = label_index(g, p->series_labels ? p->series_labels[s] : NULL), any = 0;
        for (int c = 0; c < p->ncat; c++) {
            const double v = p->val[s * p->ncat + c], e = p->err ? p->err[s * p->ncat + c] : NAN;
            if (!isfinite(v)) continue;
            if (!any++) series_begin(f, k, 0);
            const Scale *sc = &xs[brk && v > at];
            double y = y0 + rowh * (c + 0.5) + (s - (p->nseries - 1) / 2.0) * gap, x = to_px(sc, v);
            if (isfinite(e))
                fprintf(f, "<path fill=\"none\" d=\"M%.1f %.1fH%.1fM%.1f %.1fV%.1fM%.1f %.1fV%.1f\"/>",
                        to_px(sc, v - fabs(e)), y, to_px(sc, v + fabs(e)), to_px(sc, v - fabs(e)),
                        y - 3, y + 3, to_px(sc, v + fabs(e)), y - 3, y + 3);
            marker(f, marker_kind(k), x, y);
        }
        if (any) fputs("\n</g>\n", f);
    }
}

// One dot panel whose plot area starts at x0 (its rows are at y0 + rowh * (c + 0.5)).
static void dot_panel(Fig *g, const SvgDotPanel *p, double x0, double y0, double rowh) {
    FILE *f = g->f;
    double at, t[2][MAX_TICKS], h = rowh * p->ncat;
    Scale xs[2];
    int nt[2], brk = dot_axes(xs, t, nt, &at, p, x0);
    for (int c = 0; c < p->ncat; c += 2)  // a band on every other row guides the eye across
        fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%d\" height=\"%.1f\" fill=\"#f4f4f4\"/>\n",
                x0, y0 + rowh * c, DOT_PW, rowh);
    for (int side = 0; side <= brk; side++)
        ticks_draw(f, &xs[side], t[side], nt[side], 1, y0, y0 + h);
    frame(f, x0, y0, DOT_PW, h, p->title, p->xlabel);
    if (brk) axis_break_draw(f, xs[0].p1, xs[1].p0, y0, h);
    dot_series(g, p, xs, brk, at, y0, rowh);
}

int svg_dot_figure(const char *path, const char *title, const SvgDotPanel *panels, int npanels,
                   Err *e) {
    if (!path || !panels || npanels < 1)
        return err_set(e, ERR_INPUT, "%s: a figure needs at least one panel", path ? path : "svg");
    int total = 0;
    for (int p = 0; p < npanels; p++) {
        const SvgDotPanel *d = &panels[p];
        if (d->ncat < 1 || !d->cats || d->nseries < 1 || !d->val ||
            (d->nseries > 1 && !d->series_labels) || d->ncat != panels[0].ncat)
            return err_set(e, ERR_INPUT, "%s: dot panel %d needs categories (as many as panel 1's), "
                           "series, values and series labels", path, p + 1);
        total += d->nseries;
    }
    Fig g;
    int rc = fig_open(&g, total, 1, path, e);  // the panels are one row
    if (rc) return rc;
    for (int p = 0; p < npanels; p++)
        for (int s = 0; s < panels[p].nseries; s++) {
            const SvgDotPanel *d = &panels[p];
            int k = label_index(&g, d->series_labels ? d->series_labels[s] : NULL);
            for (int c = 0; c < d->ncat; c++) g.has[k] |= isfinite(d->val[s * d->ncat + c]);
        }
    int ncat = panels[0].ncat, nser = 0;
    double cat_w = 0;
    for (int c = 0; c < ncat; c++) cat_w = fmax(cat_w, text_w(panels[0].cats[c], 12));
    for (int p = 0; p < npanels; p++) nser = panels[p].nseries > nser ? panels[p].nseries : nser;
    double rowh = fmax(24, 10 + 9 * nser), cw = DOT_ML + DOT_PW + MR, left = 16 + cat_w;
    fig_begin(&g, left + npanels * cw, MT + rowh * ncat + MB, TOP + MT + 6, 0, title);
    for (int c = 0; c < ncat; c++)
        text(g.f, left + DOT_ML - 8, TOP + MT + rowh * (c + 0.5) + 4, 12, 0, "end", NULL, panels[0].cats[c]);
    for (int p = 0; p < npanels; p++)
        dot_panel(&g, &panels[p], left + p * cw + DOT_ML, TOP + MT, rowh);
    return fig_end(&g, 0, path, e);
}
