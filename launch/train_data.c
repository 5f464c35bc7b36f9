// train_data.c: what each rank of a training run reads, and evaluation over the splits.
// Each rank reads only the rows its slices need (stepper_rank_rows, step.c): held for the
// epoch when its share fits data.memory_mb, else streamed a few steps ahead.
#include <stdlib.h>
#include <string.h>

#include "trainer.h"

// Bytes of one sample as stored (pixels and label), and of a rank's share of the split.
static double sample_bytes(const Dataset *ds) {
    return (double)shape_numel(ds->shape) * (double)dataset_pixel_bytes(ds) + 4.0;
}
double train_shard_bytes(const Dist *d, const Dataset *ds) {
    return (double)((ds->n + d->world - 1) / d->world) * sample_bytes(ds);
}

// Describes split of file (its size, shape, classes) and sets *has; a required split that
// is missing is ERR_INPUT. With one rank and hold_all it also loads every sample; otherwise
// ranks read the rows they need later.
int train_load_split(const Dist *d, Dataset *ds, const char *file, const char *split,
                     int64_t limit, int required, int hold_all, int *has, Err *e) {
    *has = dataset_has_split(file, split, e);
    if (*has < 0) return e->code;
    if (!*has)
        return required ? err_set(e, ERR_INPUT, "%s: has no /%s group to train on", file, split)
                        : ERR_OK;
    if (d->world == 1 && hold_all) return dataset_load(ds, file, split, limit, e);
    int64_t none = 0;
    return dataset_load_rows(ds, file, split, limit, &none, 0, e);
}

// A size limit larger than the split cannot be what the user meant: an error, not a cap.
int train_check_size(const char *file, const Dataset *ds, const char *split, int64_t limit,
                     const char *key, Err *e) {
    if (limit <= 0 || ds->n >= limit) return ERR_OK;
    return err_set(e, ERR_INPUT, "%s = %lld but /%s of %s has only %lld samples (0 = all of them)",
                   key, (long long)limit, split, file, (long long)ds->n);
}

// Holds rows [lo, hi) of ds's split: a rank's share of an evaluation (collective-free).
static int hold_range(Dataset *ds, int64_t limit, int64_t lo, int64_t hi, Err *e) {
    if (!ds->rows && ds->nloaded == ds->n && ds->n > 0) return ERR_OK;  // it holds everything
    int64_t n = hi - lo, *rows = malloc((size_t)(n ? n : 1) * sizeof *rows);
    if (!rows) return err_set(e, ERR_RUNTIME, "out of memory");
    for (int64_t i = 0; i < n; i++) rows[i] = lo + i;
    char file[DATASET_PATH_MAX], split[16];
    snprintf(file, sizeof file, "%s", ds->file);
    snprintf(split, sizeof split, "%s", ds->split);
    int rc = dataset_load_rows(ds, file, split, limit, rows, n, e);
    free(rows);
    return rc;
}

// Holds this rank's evaluation share of ds: the contiguous rows cli_evaluate gives it.
int train_hold_eval_share(const Dist *d, Dataset *ds, int64_t limit, Err *e) {
    return hold_range(ds, limit, ds->n * d->rank / d->world, ds->n * (d->rank + 1) / d->world, e);
}

// A rank's training rows of the epoch, the slices of every batch that are its own, step by
// step. Held: with several ranks each reads, at the start of an epoch, only those rows (about
// 1/world of the split, one hyperslab per run of consecutive rows); one rank holds the split
// from the start. Streamed: the prefetch thread reads each step's rows a few steps ahead,
// from the step the epoch resumes at.
void train_begin_epoch_data(Trainer *t) {
    const Dist *d = t->d;
    const Config *c = &t->cfg;
    if (d->world == 1 && !t->stream) return;
    int64_t k = stepper_rank_rows(d, c, t->perm, t->train.n, t->steps_per_epoch,
                                  augment_mix_on(&c->augment), t->shard, t->shard_off);
    if (t->stream)
        for (int64_t b = 0; b < t->steps_per_epoch; b++)
            stepper_sort_rows(t->shard + t->shard_off[b], t->shard_off[b + 1] - t->shard_off[b]);
    Err e = {0};
    if (t->stream) {
        if (prefetch_start(&t->pf, t->train.file, "train", c->train_size, t->shard, t->shard_off,
                           t->meta.epoch_batch, t->steps_per_epoch, &e))
            cli_fail(d, &e);
        return;
    }
    stepper_sort_rows(t->shard, k);
    char file[DATASET_PATH_MAX];
    snprintf(file, sizeof file, "%s", t->train.file);
    if (dataset_load_rows(&t->train, file, "train", c->train_size, t->shard, k, &e))
        cli_fail(d, &e);
}

// The next step's rows, when streamed (the stepper gathers from what this returns).
void train_next_step_data(Trainer *t) {
    if (!t->stream) return;
    Err e = {0};
    const Dataset *ds = prefetch_next(&t->pf, &e);
    if (!ds) cli_fail(t->d, &e);
    t->st.data = ds;
}

void train_evaluate_split(Trainer *t, const Dataset *ds, EvalResult *r) {
    cli_evaluate(t->d, &t->m, ds, t->st.x, t->st.y, t->st.ids, t->probs, r);
}

// The training split in eval mode when it is streamed: this rank's share, read in pieces of
// at most data.memory_mb (and at least one evaluation batch).
static void evaluate_train_streamed(Trainer *t, EvalResult *r) {
    const Dist *d = t->d;
    Dataset *ds = &t->train;
    int64_t piece = (int64_t)((double)t->cfg.memory_mb * 1048576.0 / sample_bytes(ds));
    if (piece < t->m.max_batch) piece = t->m.max_batch;
    int64_t lo = ds->n * d->rank / d->world, hi = ds->n * (d->rank + 1) / d->world;
    EvalSums sums;
    memset(&sums, 0, sizeof sums);
    Err e = {0};
    for (int64_t a = lo; a < hi; a += piece) {
        int64_t b = hi - a < piece ? hi : a + piece;
        if (hold_range(ds, t->cfg.train_size, a, b, &e)) cli_fail(d, &e);
        cli_eval_rows(&t->m, ds, a, b, t->st.x, t->st.y, t->st.ids, t->probs, &sums);
    }
    cli_eval_finish(d, &sums, ds->n, r);
}

// Eval mode on every split present: r[SPLIT_TRAIN], r[SPLIT_VAL], r[SPLIT_TEST] (collective).
void train_evaluate_all(Trainer *t, EvalResult r[N_SPLITS]) {
    if (t->stream) {
        evaluate_train_streamed(t, &r[SPLIT_TRAIN]);
    } else {
        Err e = {0};
        if (train_hold_eval_share(t->d, &t->train, t->cfg.train_size, &e)) cli_fail(t->d, &e);
        train_evaluate_split(t, &t->train, &r[SPLIT_TRAIN]);
    }
    if (t->has_val) train_evaluate_split(t, &t->val, &r[SPLIT_VAL]);
    if (t->has_test) train_evaluate_split(t, &t->test, &r[SPLIT_TEST]);
}
