// train_report.c: what rank 0 says about a run: the header, warnings about settings that
// cannot do what they say, the stop and finished messages, and the final report (with
// PreciseBN) that also becomes DIR/summary.json.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/shuffle.h"
#include "signals.h"
#include "trainer.h"

// Settings that run but cannot do what they say: one warning line each, at start-up.
void train_warn_settings(const Trainer *t) {
    if (t->d->rank != 0) return;
    const Config *c = &t->cfg;
    int64_t run = c->sched.total_steps;  // train.max_steps may only pause the run: not counted
    if (c->sched.warmup_steps > 0 && c->sched.warmup_steps >= run)
        fprintf(stderr, "regdist: warning: sched.warmup_steps = %lld but the run has %lld steps: "
                "the learning rate never reaches optim.lr\n",
                (long long)c->sched.warmup_steps, (long long)run);
    if (c->batch > t->train.n)
        fprintf(stderr, "regdist: warning: train.batch = %d is larger than the %lld training "
                "samples: every step is the whole set\n", c->batch, (long long)t->train.n);
    if (c->patience > 0 && c->patience >= c->epochs)
        fprintf(stderr, "regdist: warning: train.patience = %d but train.epochs = %d: early "
                "stopping can never trigger\n", c->patience, c->epochs);
}

void train_print_header(const Trainer *t, const char *resume, int threads) {
    const Dist *d = t->d;
    if (d->rank != 0) return;
    const Config *c = &t->cfg;
    fprintf(t->log, "regdist train: %s on %s\n", c->source, t->train.file);
    fprintf(t->log, "  data: %lld train, %lld val, %lld test samples, %d classes\n",
           (long long)t->train.n, (long long)(t->has_val ? t->val.n : 0),
           (long long)(t->has_test ? t->test.n : 0), t->train.num_classes);
    if (t->stream)
        fprintf(t->log, "  streaming: a rank's %.0f MiB of training data exceed data.memory_mb = %d; a "
               "thread reads %d steps ahead\n",
               train_shard_bytes(d, &t->train) / 1048576.0, c->memory_mb, PREFETCH_DEPTH - 1);
    fprintf(t->log, "  model: %d layers, %zu parameters; %s lr %g, weight decay %g; %d epochs of %lld "
           "steps, batch %d\n",
           t->m.seq.n, t->m.table.n_trainable, optim_kind_name(c->optim.kind), c->optim.lr,
           c->optim.weight_decay, c->epochs, (long long)t->steps_per_epoch, c->batch);
    fprintf(t->log, "  parallel: %d rank%s x %d OpenBLAS thread%s (%s kernels)\n", d->world,
           d->world > 1 ? "s" : "", threads, threads > 1 ? "s" : "", blas_kernel_name());
    if (resume)
        fprintf(t->log, "  resuming %s at step %lld (epoch %lld, batch %lld)\n", resume,
               (long long)t->meta.step, (long long)t->meta.epoch + 1,
               (long long)t->meta.epoch_batch);
    fflush(t->log);
}

// After a stop mid-run (train.max_steps or a signal) and its checkpoint.
void train_stopped_message(const Trainer *t, int signal) {
    if (t->d->rank != 0) return;
    if (signal)
        fprintf(t->log, "stopped at step %lld (%s) in epoch %lld; %s/last.h5 holds it: resume with the "
               "same command and --resume %s/last.h5\n", (long long)t->meta.step,
               signal_name(signal), (long long)t->meta.epoch + 1, t->out, t->out);
    else
        fprintf(t->log, "stopped at step %lld (train.max_steps) in epoch %lld; %s/last.h5 holds it: train "
               "further with --resume %s/last.h5 and a larger train.max_steps\n",
               (long long)t->meta.step, (long long)t->meta.epoch + 1, t->out, t->out);
    fflush(t->log);
}

// A resumed run with nothing left to do (all its epochs, its train.max_steps, or early
// stopping reached): says so, and how to train further, instead of silently redoing the end.
// Returns what ended it, or NULL when there is more to train.
const char *train_finished_message(const Trainer *t, const char *resume) {
    const Config *c = &t->cfg;
    const char *why = t->meta.epoch >= c->epochs                            ? "train.epochs"
                      : c->max_steps >= 0 && t->meta.step >= c->max_steps   ? "train.max_steps"
                      : c->patience > 0 && t->meta.bad_epochs >= c->patience ? "train.patience"
                                                                             : NULL;
    if (!why) return NULL;
    if (t->d->rank == 0) {
        fprintf(t->log, "%s is a finished run (step %lld, %lld of %d epochs, ended by %s): nothing to "
               "train. To train further, resume it with a larger %s (--set %s=N)%s\n",
               resume, (long long)t->meta.step, (long long)t->meta.epoch, c->epochs, why,
               strcmp(why, "train.patience") ? why : "train.patience or train.epochs",
               strcmp(why, "train.patience") ? why : "train.patience",
               strcmp(why, "train.epochs") ? "" : "; the schedule then stretches to the new length");
        fflush(t->log);
    }
    return why;
}

// PreciseBN (Wu & Johnson 2021): the BatchNorm running statistics replaced by the plain
// average of the batch statistics over the first eval.precise_bn global batches of a fresh
// shuffle, weights frozen, dropout off (as at evaluation), each BatchNorm normalizing over
// its training group (bn.group, bn.ghost); then averaged over ranks, so every group counts.
// Returns the batches averaged, 0 when the model has no BatchNorm. Collective.
static int precise_bn(Trainer *t) {
    const Dist *d = t->d;
    const Config *c = &t->cfg;
    const ParamTable *tab = &t->m.table;
    int has_bn = 0;
    for (int i = 0; i < tab->n; i++) {
        if (tab->p[i].role == PARAM_COUNTER) {  // BatchNorm's num_batches_tracked
            t->m.bufs[tab->p[i].offset] = 0.0f;  // the average starts afresh
            has_bn = 1;
        }
    }
    if (!has_bn) return 0;
    int64_t K = c->precise_bn < t->steps_per_epoch ? c->precise_bn : t->steps_per_epoch;
    shuffle_permutation(t->perm, t->train.n, c->seed ^ 0x9e3779b9u, c->epochs);
    int64_t k = stepper_rank_rows(d, c, t->perm, t->train.n, K, 0, t->shard, t->shard_off);
    Dataset rows = {0};
    Err e = {0};
    int64_t *sorted = malloc((size_t)(k ? k : 1) * sizeof *sorted);  // the rows to read
    size_t nb = t->m.table.n_buffer;
    double *v = malloc((nb ? nb : 1) * sizeof *v);
    if (!sorted || !v) {
        err_set(&e, ERR_RUNTIME, "out of memory");
        cli_fail(d, &e);
    }
    memcpy(sorted, t->shard, (size_t)k * sizeof *sorted);
    stepper_sort_rows(sorted, k);
    if (dataset_load_rows(&rows, t->train.file, "train", c->train_size, sorted, k, &e))
        cli_fail(d, &e);
    free(sorted);
    StepCtx sc = {.train = 1, .dropout_on = 0, .precise_bn = 1, .reduce_stats = bnsync_reduce,
                  .reduce_ctx = &t->st.bn};
    for (int64_t b = 0, at = 0; b < K; b++) {
        int64_t n = t->train.n - b * c->batch < c->batch ? t->train.n - b * c->batch : c->batch;
        at += stepper_forward(&t->st, &rows, t->shard + at, n, &sc);
    }
    dataset_free(&rows);
    // every rank's (group's) average, averaged
    for (size_t i = 0; i < nb; i++) v[i] = t->m.bufs[i];
    dist_sum_f64(d, v, (int)nb);
    for (size_t i = 0; i < nb; i++) t->m.bufs[i] = (float)(v[i] / d->world);
    free(v);
    return (int)K;
}

// Rank 0 prints the final model's accuracies (and PreciseBN's) and the test line.
static void print_final(const Trainer *t, const RunSummary *s) {
    static const char *const names[N_SPLITS] = {"train", "val", "test"};
    for (int p = 0; p <= (s->precise > 0); p++) {
        const EvalResult *r = p ? s->pr : s->r;
        if (p) fprintf(t->log, "with PreciseBN (%d batches):", s->precise);
        else fprintf(t->log, "final model (eval mode):");
        for (int i = 0; i < N_SPLITS; i++)
            if (s->has[i]) fprintf(t->log, "  %s acc %.2f%%", names[i], 100 * r[i].accuracy);
        if (s->has[SPLIT_VAL])
            fprintf(t->log, "  train-val gap %.2f points",
                    100 * (r[SPLIT_TRAIN].accuracy - r[SPLIT_VAL].accuracy));
        fprintf(t->log, "\n");
    }
    const EvalResult *te = &s->r[SPLIT_TEST];
    if (s->has[SPLIT_TEST])
        fprintf(t->log, "test: loss %.4f  acc %.2f%%  ECE %.2f%%  mean confidence %.2f%%  "
                "(%lld samples)\n", te->loss, 100 * te->accuracy, 100 * te->ece,
                100 * te->confidence, (long long)te->count);
    fflush(t->log);
}

// The finished model in eval mode on every split, the train-validation gap, and the same
// numbers in DIR/summary.json for scripts; with eval.precise_bn, the same again with
// PreciseBN statistics (the checkpoints keep the running statistics training left).
// Collective (every rank evaluates its share); rank 0 prints and writes. s is filled on
// every rank.
void train_report_final(Trainer *t, const char *ended_by, RunSummary *s) {
    memset(s, 0, sizeof *s);
    s->has[SPLIT_TRAIN] = 1, s->has[SPLIT_VAL] = t->has_val, s->has[SPLIT_TEST] = t->has_test;
    train_share_buffers(t);
    train_evaluate_all(t, s->r);
    size_t nbuf = t->m.table.n_buffer;
    float *kept = malloc((nbuf ? nbuf : 1) * sizeof *kept);
    Err e = {0};
    if (!kept) {
        err_set(&e, ERR_RUNTIME, "out of memory");
        cli_fail(t->d, &e);
    }
    memcpy(kept, t->m.bufs, nbuf * sizeof *kept);
    if (t->cfg.precise_bn > 0 && (s->precise = precise_bn(t))) train_evaluate_all(t, s->pr);
    memcpy(t->m.bufs, kept, nbuf * sizeof *kept);
    free(kept);
    s->steps = t->meta.step;
    s->epochs = t->meta.epoch;
    s->skipped_steps = t->meta.skipped_steps;
    snprintf(s->ended_by, sizeof s->ended_by, "%s", ended_by);
    s->best_val_acc = t->meta.best_metric >= 0 ? t->meta.best_metric : NAN;
    s->seconds_per_epoch = t->meta.epoch > 0 ? t->train_seconds / (double)t->meta.epoch : NAN;
    if (t->d->rank != 0) return;
    print_final(t, s);
    char path[1100];
    snprintf(path, sizeof path, "%s/summary.json", t->out);
    // the metrics and checkpoints are what matter; this file is a convenience
    if (summary_write(path, s, &e)) fprintf(stderr, "regdist: warning: %s\n", e.msg);
}

// The epoch's line: its loss and accuracy in train mode, validation (* when it improved),
// speed and time, and the non-finite steps skipped so far.
void train_print_epoch(const Trainer *t, const MetricsRow *row, int improved) {
    const Config *c = &t->cfg;
    fprintf(t->log, "epoch %lld/%d  step %lld  lr %.3g  train loss %.4f acc %.2f%%",
            (long long)row->epoch, c->epochs, (long long)row->step, row->lr, row->train_loss,
            100 * row->train_acc);
    if (t->has_val)
        fprintf(t->log, "  val loss %.4f acc %.2f%%%s", row->val_loss, 100 * row->val_acc,
                improved ? " *" : "");
    fprintf(t->log, "  %.0f img/s  %.1f s", row->images_per_s, row->seconds);
    if (t->meta.skipped_steps)
        fprintf(t->log, "  (%lld non-finite step%s skipped)", (long long)t->meta.skipped_steps,
                t->meta.skipped_steps > 1 ? "s" : "");
    fprintf(t->log, "\n");
    fflush(t->log);
}
