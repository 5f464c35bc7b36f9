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
