// metrics.c: the per-epoch metrics table, DIR/metrics.csv. A resumed run keeps the rows of
// the epochs it does not redo and drops the rest, so the table never holds an epoch twice.
#include "metrics.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char header[] =
    "epoch,step,lr,train_loss,train_acc,val_loss,val_acc,seconds,images_per_s\n";

// The rows of an existing file to keep: those whose epoch is below first_epoch, in order.
// Returns a malloc'd string ("" when there is nothing to keep), NULL when out of memory.
static char *kept_rows(const char *path, int64_t first_epoch) {
    char *kept = calloc(1, 1);
    size_t len = 0;
    FILE *f = first_epoch > 0 ? fopen(path, "r") : NULL;
    if (!f || !kept) {
        if (f) fclose(f);
        return kept;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while (kept && (n = getline(&line, &cap, f)) > 0) {
        char *end;
        errno = 0;
        long long epoch = strtoll(line, &end, 10);
        // The header and anything that does not start with an epoch number are not rows.
        if (end == line || *end != ',' || errno || epoch < 0 || epoch >= first_epoch) continue;
        char *grown = realloc(kept, len + (size_t)n + 2);
        if (!grown) {
            free(kept);
            kept = NULL;
            break;
        }
        kept = grown;
        memcpy(kept + len, line, (size_t)n);
        len += (size_t)n;
        if (kept[len - 1] != '\n') kept[len++] = '\n';
        kept[len] = 0;
    }
    free(line);
    fclose(f);
    return kept;
}

FILE *metrics_open(const char *path, int64_t first_epoch, Err *e) {
    char *kept = kept_rows(path, first_epoch);
    if (!kept) {
        err_set(e, ERR_RUNTIME, "%s: out of memory reading the old rows", path);
        return NULL;
    }
    FILE *f = fopen(path, "w");
    if (!f) {
        err_set(e, ERR_RUNTIME, "%s: cannot write: %s", path, strerror(errno));
        free(kept);
        return NULL;
    }
    int ok = fputs(header, f) >= 0 && fputs(kept, f) >= 0 && fflush(f) == 0;
    free(kept);
    if (!ok) {
        err_set(e, ERR_RUNTIME, "%s: cannot write: %s", path, strerror(errno));
        fclose(f);
        return NULL;
    }
    return f;
}

// A value, or an empty field when it is NaN (no validation split).
static void field(char *buf, size_t len, const char *fmt, double v) {
    if (isnan(v))
        buf[0] = 0;
    else
        snprintf(buf, len, fmt, v);
}

int metrics_write(FILE *f, const MetricsRow *r, Err *e) {
    char val_loss[64], val_acc[64];
    field(val_loss, sizeof val_loss, "%.6f", r->val_loss);
    field(val_acc, sizeof val_acc, "%.6f", r->val_acc);
    int n = fprintf(f, "%lld,%lld,%.6g,%.6f,%.6f,%s,%s,%.3f,%.1f\n", (long long)r->epoch,
                    (long long)r->step, r->lr, r->train_loss, r->train_acc, val_loss, val_acc,
                    r->seconds, r->images_per_s);
    if (n < 0 || fflush(f) != 0)
        return err_set(e, ERR_RUNTIME, "metrics.csv: cannot write a row: %s", strerror(errno));
    return ERR_OK;
}

static const char *const columns[] = {"epoch", "step", "lr", "train_loss", "train_acc",
                                      "val_loss", "val_acc", "seconds", "images_per_s"};
enum { NCOLUMNS = 9 };

// One line of the table into r (line is cut up in the process).
static int parse_row(char *line, MetricsRow *r, const char *path, int lineno, Err *e) {
    double v[NCOLUMNS];
    int k = 0;
    for (char *p = line;; p = strchr(p, 0) + 1, k++) {
        if (k == NCOLUMNS)
            return err_set(e, ERR_INPUT, "%s:%d: more than %d fields", path, lineno, NCOLUMNS);
        char *comma = strchr(p, ','), *end = p;
        if (comma) *comma = 0;
        v[k] = *p ? strtod(p, &end) : NAN;
        if (*p ? *end != 0 : k != 5 && k != 6)  // only the val columns may be empty
            return err_set(e, ERR_INPUT, "%s:%d: %s: '%s' is not a number", path, lineno,
                           columns[k], p);
        if (k < 2 && !(v[k] >= 0 && v[k] < 9e15 && v[k] == floor(v[k])))
            return err_set(e, ERR_INPUT, "%s:%d: %s: '%s' is not a whole number >= 0", path,
                           lineno, columns[k], p);
        if (!comma) break;
    }
    if (k != NCOLUMNS - 1)
        return err_set(e, ERR_INPUT, "%s:%d: expected %d fields, got %d", path, lineno, NCOLUMNS,
                       k + 1);
    *r = (MetricsRow){.epoch = (int64_t)v[0], .step = (int64_t)v[1], .lr = v[2],
                      .train_loss = v[3], .train_acc = v[4], .val_loss = v[5], .val_acc = v[6],
                      .seconds = v[7], .images_per_s = v[8]};
    return ERR_OK;
}

int metrics_read(const char *path, MetricsRow **rows, int *n, Err *e) {
    *rows = NULL, *n = 0;
    FILE *f = fopen(path, "r");
    if (!f) return err_set(e, ERR_INPUT, "%s: cannot read: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0, have = 0, hlen = sizeof header - 2;  // the header without its newline
    ssize_t len;
    int lineno = 0, rc = ERR_OK;
    while (!rc && (len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (lineno == 1) {
            if ((size_t)len != hlen || strncmp(line, header, hlen) != 0)
                rc = err_set(e, ERR_INPUT, "%s:1: not a metrics.csv header (expected '%.*s')",
                             path, (int)hlen, header);
            continue;
        }
        if (len == 0) continue;
        if ((size_t)*n == have) {
            have = have ? 2 * have : 64;
            MetricsRow *grown = realloc(*rows, have * sizeof **rows);
            if (!grown) {
                rc = err_set(e, ERR_RUNTIME, "%s: out of memory", path);
                break;
            }
            *rows = grown;
        }
        rc = parse_row(line, &(*rows)[*n], path, lineno, e);
        *n += !rc;
    }
    if (!rc && ferror(f)) rc = err_set(e, ERR_INPUT, "%s: cannot read: %s", path, strerror(errno));
    if (!rc && lineno == 0) rc = err_set(e, ERR_INPUT, "%s: empty file, no header", path);
    free(line);
    fclose(f);
    if (rc) free(*rows), *rows = NULL, *n = 0;
    return rc;
}
