// summary.c: DIR/summary.json. Written by a table walk in a fixed order with "key": value
// pairs on one line (greppable, and stable for scripts), read with cJSON (Debian
// libcjson-dev): the same table names every field both ways.
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "summary.h"

static const char *const split_names[N_SPLITS] = {"train", "val", "test"};

// The per-split metrics, in the order they are written: "<split>_<name>" (and
// "precise_<split>_<name>" with PreciseBN).
static const struct {
    const char *name;
    size_t off;  // into EvalResult
} metrics[] = {
    {"loss", offsetof(EvalResult, loss)},
    {"acc", offsetof(EvalResult, accuracy)},
    {"ece", offsetof(EvalResult, ece)},
    {"confidence", offsetof(EvalResult, confidence)},
};
#define N_METRICS (int)(sizeof metrics / sizeof metrics[0])

static double *metric(EvalResult *r, int k) { return (double *)((char *)r + metrics[k].off); }

static void put_number(FILE *f, const char *key, double v, const char *fmt) {
    fprintf(f, ", \"%s\": ", key);
    if (isfinite(v)) fprintf(f, fmt, v);
    else fputs("null", f);  // a value the run does not have is null, never -1
}

int summary_write(const char *path, const RunSummary *s, Err *e) {
    FILE *f = fopen(path, "w");
    if (!f) return err_set(e, ERR_RUNTIME, "cannot write %s: %s", path, strerror(errno));
    fprintf(f, "{\"steps\": %lld, \"epochs\": %lld", (long long)s->steps, (long long)s->epochs);
    char key[64];
    for (int p = 0; p <= (s->precise > 0); p++)
        for (int i = 0; i < N_SPLITS; i++)
            for (int k = 0; s->has[i] && k < N_METRICS; k++) {
                snprintf(key, sizeof key, "%s%s_%s", p ? "precise_" : "", split_names[i],
                         metrics[k].name);
                put_number(f, key, *metric((EvalResult *)(p ? &s->pr[i] : &s->r[i]), k), "%.6f");
            }
    fprintf(f, ", \"skipped_steps\": %lld, \"ended_by\": \"%s\"", (long long)s->skipped_steps,
            s->ended_by);
    put_number(f, "best_val_acc", s->best_val_acc, "%.6f");
    put_number(f, "seconds_per_epoch", s->seconds_per_epoch, "%.3f");
    fputs("}\n", f);
    if (fclose(f) != 0) return err_set(e, ERR_RUNTIME, "cannot write %s: %s", path, strerror(errno));
    return ERR_OK;
}

static double number(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *t = malloc(cap);
    for (size_t got; t && (got = fread(t + n, 1, cap - n - 1, f)) > 0;) {
        n += got;
        if (n + 1 == cap) {
            char *g = realloc(t, cap *= 2);
            if (!g) free(t);
            t = g;
        }
    }
    fclose(f);
    if (t) t[n] = 0;
    return t;
}

int summary_read(const char *path, RunSummary *s, Err *e) {
    memset(s, 0, sizeof *s);
    char *text = read_text(path);
    if (!text) return err_set(e, ERR_INPUT, "cannot read %s: %s", path, strerror(errno));
    cJSON *o = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return err_set(e, ERR_INPUT, "%s: not a JSON object", path);
    }
    s->steps = (int64_t)number(o, "steps");
    s->epochs = (int64_t)number(o, "epochs");
    char key[64];
    for (int p = 0; p < 2; p++)
        for (int i = 0; i < N_SPLITS; i++)
            for (int k = 0; k < N_METRICS; k++) {
                snprintf(key, sizeof key, "%s%s_%s", p ? "precise_" : "", split_names[i],
                         metrics[k].name);
                const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
                if (!p && v) s->has[i] = 1;
                if (p && v) s->precise = 1;  // the count is not recorded: present or not
                *metric(p ? &s->pr[i] : &s->r[i], k) = number(o, key);
            }
    s->skipped_steps = (int64_t)number(o, "skipped_steps");
    const cJSON *by = cJSON_GetObjectItemCaseSensitive(o, "ended_by");
    if (cJSON_IsString(by)) snprintf(s->ended_by, sizeof s->ended_by, "%s", by->valuestring);
    s->best_val_acc = number(o, "best_val_acc");
    s->seconds_per_epoch = number(o, "seconds_per_epoch");
    cJSON_Delete(o);
    return ERR_OK;
}
