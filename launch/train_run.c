// train_run.c: one training run (train.h), on one rank or many. Each epoch walks one
// permutation of the training set (a pure function of seed and epoch) in global batches;
// each global batch is one data-parallel optimizer step (step.h). Each rank reads only the
// rows its slices need (train_data.c). Rank 0 reports and writes metrics.csv, last.h5 (every
// epoch and at the end) and best.h5; every rank takes part in evaluation and in the
// collectives around checkpoints.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/shuffle.h"
#include "dist/watchdog.h"
#include "io/metrics.h"
#include "progress.h"
#include "rundir.h"
#include "signals.h"
#include "trainer.h"

// Loads the run's splits: the training split (held when one rank's share fits
// data.memory_mb, else streamed), val and test with this rank's evaluation share held.
// Local: no communication.
static int load_data(Trainer *t, const char *data, Err *e) {
    const Dist *d = t->d;
    const Config *c = &t->cfg;
    int has_train;
    if (train_load_split(d, &t->train, data, "train", c->train_size, 1, 0, &has_train, e) ||
        train_check_size(data, &t->train, "train", c->train_size, "data.train_size", e))
        return e->code;
    t->stream = train_shard_bytes(d, &t->train) > (double)c->memory_mb * 1048576.0;
    if (d->world == 1 && !t->stream &&
        train_load_split(d, &t->train, data, "train", c->train_size, 1, 1, &has_train, e))
        return e->code;
    if (train_load_split(d, &t->val, data, "val", c->val_size, 0, 1, &t->has_val, e) ||
        (t->has_val && train_check_size(data, &t->val, "val", c->val_size, "data.val_size", e)) ||
        train_load_split(d, &t->test, data, "test", 0, 0, 1, &t->has_test, e) ||
        (t->has_val && train_hold_eval_share(d, &t->val, c->val_size, e)) ||
        (t->has_test && train_hold_eval_share(d, &t->test, 0, e)))
        return e->code;
    if (c->patience > 0 && !t->has_val)
        return err_set(e, ERR_INPUT, "train.patience needs a /val split, and %s has none", data);
    return ERR_OK;
}

// The model for the data (val and test must fit it too), the optimizer and the batch
// buffers. Local.
static int build(Trainer *t, const char *data, Err *e) {
    const Dist *d = t->d;
    Config *c = &t->cfg;
    int max_local = stepper_max_local(d, c);
    if (cli_build_model(&t->m, c, &t->train, max_local, e)) return e->code;
    for (int s = 0; s < 2; s++) {
        const Dataset *ds = s == 0 ? &t->val : &t->test;
        if (!(s == 0 ? t->has_val : t->has_test)) continue;
        int same = ds->shape.ndim == t->train.shape.ndim && ds->num_classes == t->train.num_classes;
        for (int i = 0; same && i < ds->shape.ndim; i++) same = ds->shape.d[i] == t->train.shape.d[i];
        if (!same)
            return err_set(e, ERR_INPUT, "%s: /%s/x samples differ in shape from /train/x", data,
                           ds->split);
    }
    if (optim_init(&t->opt, &c->optim, t->m.table.n_trainable))
        return err_set(e, ERR_RUNTIME, "out of memory for the optimizer state");
    t->steps_per_epoch = (t->train.n + c->batch - 1) / c->batch;
    c->sched.total_steps = t->steps_per_epoch * c->epochs;
    t->probs = malloc((size_t)max_local * (size_t)t->m.num_classes * sizeof(float));
    t->perm = malloc((size_t)t->train.n * sizeof(int64_t));
    // mixup/cutmix: a rank also reads its positions' partners, up to as many again
    size_t shard_rows = (size_t)t->train.n * (augment_mix_on(&c->augment) ? 2 : 1);
    t->shard = malloc((shard_rows ? shard_rows : 1) * sizeof(int64_t));
    t->shard_off = malloc((size_t)(t->steps_per_epoch + 1) * sizeof(int64_t));
    if (!t->probs || !t->perm || !t->shard || !t->shard_off)
        return err_set(e, ERR_RUNTIME, "out of memory for the batch buffers");
    return ERR_OK;
}

// The starting point: a checkpoint to continue exactly (--resume), or fresh weights (from
// --init's checkpoint when given). Local.
static int start_state(Trainer *t, const TrainArgs *a, Err *e) {
    const Config *c = &t->cfg;
    t->meta = (CkptMeta){.seed = c->seed, .best_metric = -1, .best_epoch = -1};
    if (a->resume) {
        CkptMeta m = {0};
        if (ckpt_load(a->resume, &t->m, &t->opt, &m, e)) return e->code;
        t->meta = m;
        int rc = train_check_resume_compatible(t, a->resume, m.config_text, e);
        free(m.config_text);
        t->meta.config_text = NULL;
        if (rc) return rc;
        t->meta.seed = c->seed;
        t->saved_step = t->meta.step;
        snprintf(t->saved_path, sizeof t->saved_path, "%s", a->resume);
    } else {
        model_init(&t->m, c->seed);
        if (a->init && ckpt_load(a->init, &t->m, NULL, NULL, e)) return e->code;
    }
    t->meta.prep = &t->train.prep;  // every checkpoint records how the training data was made
    return ERR_OK;
}

// Everything before the first step. What each rank finds alone (config, data, model,
// checkpoint) is agreed on once, so a problem is the same one-line error on every rank;
// then the collective part: the same state everywhere, the step's groups, the directory.
static int setup(Trainer *t, const TrainArgs *a, Err *e) {
    const Dist *d = t->d;
    if (config_load(&t->cfg, a->config, NULL, a->sets, a->nsets, e)) return dist_agree(d, e);
    snprintf(t->out, sizeof t->out, "%s", a->out);
    // from here on, a rank left waiting in a collective by a stopped one ends the job
    if (d->world > 1 && watchdog_start(d, t->cfg.timeout))
        err_set(e, ERR_RUNTIME, "cannot start the collective-stall watchdog thread");
    if (dist_agree(d, e)) return e->code;
    train_check_same_config(d, &t->cfg);
    if (!load_data(t, a->data, e) && !build(t, a->data, e)) start_state(t, a, e);
    if (dist_agree(d, e)) return e->code;
    train_share_state(t);
    // a resumed epoch's sums so far are global: rank 0 carries them, the others start at 0
    t->loss_local = d->rank == 0 ? t->meta.epoch_loss_sum : 0.0;
    t->correct_local = d->rank == 0 ? t->meta.epoch_correct : 0;
    t->seen_local = d->rank == 0 ? t->meta.epoch_seen : 0;  // the progress line's mean
    t->st_ready = !stepper_init(&t->st, d, &t->cfg, &t->m, &t->opt, &t->train, e);
    if (dist_agree(d, e)) return e->code;
    if (rundir_claim(d, a->out, a->resume != NULL, a->overwrite, e)) return e->code;
    return rundir_make(d, a->out, e);
}

static void free_trainer(Trainer *t) {
    watchdog_stop();
    if (t->st_ready) stepper_free(&t->st);
    free(t->probs);
    free(t->perm);
    free(t->shard);
    free(t->shard_off);
    optim_free(&t->opt);
    model_free(&t->m);
    dataset_free(&t->train);
    dataset_free(&t->val);
    dataset_free(&t->test);
    config_free(&t->cfg);
}

// One optimizer step (step.c), then, every dist.check_every steps, proof that every rank
// still holds the same parameters.
static double train_step(Trainer *t, const int64_t *idx, int n, int *finite) {
    double loss = stepper_step(&t->st, idx, n, &t->correct_local, &t->seen_local, finite);
    if (!*finite) return loss;
    int every = t->cfg.check_every;
    if (every > 0 && t->opt.step % every == 0) {
        char when[64];
        snprintf(when, sizeof when, "after step %lld", (long long)t->opt.step);
        train_check_same_state(t, when);
    }
    return loss;
}

// A step whose all-reduced gradient held a NaN or Inf (nothing was updated): skipped and
// counted with train.nonfinite = skip, else the end of the run (ERR_RUNTIME), on every rank
// at once: every rank holds the same gradient.
static int nonfinite_step(Trainer *t, Err *e) {
    if (t->cfg.nonfinite_skip) {
        t->meta.skipped_steps++;
        return ERR_OK;
    }
    if (t->saved_step >= 0)
        return err_set(e, ERR_RUNTIME, "the gradient of step %lld is not finite (NaN or Inf); "
                       "stopped without applying it. The last good checkpoint is %s (step %lld); "
                       "resume from it with a lower optim.lr or reg.clip_norm, or set "
                       "train.nonfinite=skip", (long long)t->meta.step + 1, t->saved_path,
                       (long long)t->saved_step);
    return err_set(e, ERR_RUNTIME, "the gradient of step %lld is not finite (NaN or Inf); "
                   "stopped without applying it, before any checkpoint was written. Lower "
                   "optim.lr, set reg.clip_norm, or set train.nonfinite=skip",
                   (long long)t->meta.step + 1);
}

// How an epoch's steps ended.
typedef enum { EPOCH_DONE, EPOCH_STOP, EPOCH_FAILED } EpochEnd;

// The steps of the current epoch from where it stands, with the progress line. Stops early
// at train.max_steps or a signal (every rank at the same step); *signal says which.
static EpochEnd run_steps(Trainer *t, int *signal, int *max_steps, Err *e) {
    const Dist *d = t->d;
    const Config *c = &t->cfg;
    int64_t epoch = t->meta.epoch;
    char label[64];
    snprintf(label, sizeof label, "epoch %lld/%d", (long long)epoch + 1, c->epochs);
    Progress p;
    int64_t run_steps = (int64_t)c->epochs * t->steps_per_epoch;  // the ETA's horizon
    if (c->max_steps >= 0 && c->max_steps < run_steps) run_steps = c->max_steps;
    progress_begin_run(&p, d->rank == 0, label, t->steps_per_epoch, t->meta.epoch_batch,
                       t->meta.step, run_steps);
    progress_output(&p, t->log);
    double t0 = now_seconds() - t->meta.epoch_seconds;
    EpochEnd end = EPOCH_DONE;
    while (end == EPOCH_DONE && t->meta.epoch_batch < t->steps_per_epoch) {
        int64_t start = t->meta.epoch_batch * c->batch;
        int n = (int)(t->train.n - start < c->batch ? t->train.n - start : c->batch);
        train_next_step_data(t);
        t->st.epoch = (uint32_t)epoch;  // the augmentation's per-sample draws count epochs
        int finite;
        double loss = train_step(t, t->perm + start, n, &finite);
        if (!finite && nonfinite_step(t, e)) {
            end = EPOCH_FAILED;
            break;
        }
        if (finite) t->loss_local += loss;
        t->meta.epoch_seen += n;
        t->meta.epoch_batch++;
        t->meta.step++;
        t->meta.epoch_seconds = now_seconds() - t0;
        progress_update(&p, t->meta.epoch_batch,
                        t->seen_local ? t->loss_local / (double)t->seen_local : NAN,
                        (double)t->meta.epoch_seen / t->meta.epoch_seconds);
        if (c->max_steps >= 0 && t->meta.step >= c->max_steps) *max_steps = 1, end = EPOCH_STOP;
        if ((*signal = dist_max_int(d, signals_pending()))) end = EPOCH_STOP;  // every rank
    }
    progress_end(&p);
    prefetch_stop(&t->pf);  // before any other reading or writing of files
    return end;
}

// The end of an epoch: validate, record a metrics row and the epoch line, checkpoint.
// Returns 1 when the validation accuracy improved.
static int end_epoch(Trainer *t, FILE *metrics) {
    const Dist *d = t->d;
    const Config *c = &t->cfg;
    int64_t epoch = t->meta.epoch;
    t->train_seconds += t->meta.epoch_seconds;
    train_sync_epoch_sums(t);
    train_share_buffers(t);
    MetricsRow row = {.epoch = epoch + 1, .step = t->meta.step,
                      .lr = schedule_lr(&c->sched, c->optim.lr, t->meta.step - 1),
                      .train_loss = t->meta.epoch_loss_sum / (double)t->meta.epoch_seen,
                      .train_acc = (double)t->meta.epoch_correct / (double)t->meta.epoch_seen,
                      .val_loss = NAN, .val_acc = NAN, .seconds = t->meta.epoch_seconds,
                      .images_per_s = (double)t->meta.epoch_seen / t->meta.epoch_seconds};
    int improved = 0;
    if (t->has_val) {
        EvalResult v;
        train_evaluate_split(t, &t->val, &v);
        row.val_loss = v.loss;
        row.val_acc = v.accuracy;
        improved = v.accuracy > t->meta.best_metric;
        if (improved) {
            t->meta.best_metric = v.accuracy;
            t->meta.best_epoch = epoch;
            t->meta.bad_epochs = 0;
        } else {
            t->meta.bad_epochs++;
        }
    }
    if (d->rank == 0) {
        Err e = {0};
        if (metrics_write(metrics, &row, &e)) cli_fail(d, &e);
        train_print_epoch(t, &row, improved);
    }
    t->meta.epoch++;
    t->meta.epoch_batch = 0;
    t->meta.epoch_loss_sum = 0;
    t->meta.epoch_correct = t->meta.epoch_seen = 0;
    t->meta.epoch_seconds = 0;
    t->loss_local = 0;
    t->correct_local = t->seen_local = 0;
    if (improved) train_save(t, "best.h5");
    train_save(t, "last.h5");
    if (d->rank == 0) rundir_keep_epoch(t->out, t->meta.epoch, c->keep);
    return improved;
}

// The epochs, from where the run stands to its end, a step limit, early stopping or a
// signal. Returns what ended the run (NULL: a signal, reported in *signal).
static const char *run_epochs(Trainer *t, FILE *metrics, int *signal, Err *e) {
    const Config *c = &t->cfg;
    if (c->max_steps >= 0 && t->meta.step >= c->max_steps) {
        train_save(t, "last.h5");
        return "train.max_steps";
    }
    while (t->meta.epoch < c->epochs) {
        if (c->shuffle) shuffle_permutation(t->perm, t->train.n, c->seed, t->meta.epoch);
        else for (int64_t i = 0; i < t->train.n; i++) t->perm[i] = i;
        train_begin_epoch_data(t);
        int max_steps = 0;
        EpochEnd end = run_steps(t, signal, &max_steps, e);
        if (end == EPOCH_FAILED) return NULL;
        if (t->meta.epoch_batch < t->steps_per_epoch) {  // stopped mid-epoch
            train_sync_epoch_sums(t);
            train_save(t, "last.h5");
            train_stopped_message(t, *signal);
            return *signal ? NULL : "train.max_steps";
        }
        end_epoch(t, metrics);
        if (*signal) {  // the signal came with the epoch's last step
            train_stopped_message(t, *signal);
            return NULL;
        }
        if (c->patience > 0 && t->meta.bad_epochs >= c->patience) {
            if (t->d->rank == 0)
                fprintf(t->log, "early stopping: no better validation accuracy for %d epochs\n",
                        c->patience);
            return "train.patience";
        }
        if (max_steps) return "train.max_steps";
    }
    return "train.epochs";
}

int train_run(const Dist *d, const TrainArgs *a, TrainResult *r, Err *e) {
    memset(r, 0, sizeof *r);
    Trainer t;
    memset(&t, 0, sizeof t);
    t.d = d;
    t.log = a->log ? a->log : stdout;
    t.saved_step = -1;
    if (setup(&t, a, e)) {
        free_trainer(&t);
        return e->code;
    }
    int threads = cli_set_threads(d, t.cfg.threads);
    signals_install();  // before the header: once it is printed, a signal stops cleanly
    train_print_header(&t, a->resume, threads);
    train_warn_settings(&t);  // after every check that could end the run: errors stay one line
    const char *finished = a->resume ? train_finished_message(&t, a->resume) : NULL;
    if (finished) {  // its report again (a run killed while writing it gets it now); no training
        train_report_final(&t, finished, &r->summary);
        r->reported = 1;
        free_trainer(&t);
        return ERR_OK;
    }
    char path[1100];
    snprintf(path, sizeof path, "%s/metrics.csv", t.out);
    FILE *metrics = NULL;  // rows are numbered from 1; a resumed run keeps those before its own
    if (d->rank == 0 && !(metrics = metrics_open(path, a->resume ? t.meta.epoch + 1 : 0, e)))
        cli_fail(d, e);
    const char *ended_by = run_epochs(&t, metrics, &r->signal, e);
    if (d->rank == 0 && t.meta.best_epoch >= 0 && !e->code)
        fprintf(t.log, "best val acc %.2f%% at epoch %lld (%s/best.h5)\n",
                100 * t.meta.best_metric, (long long)t.meta.best_epoch + 1, t.out);
    // a signal from here to the exit changes nothing: the run is saved (the handlers stay).
    // Every run that ends gets its report; a preempted one gets it when resumed to its end.
    if (ended_by) {
        train_report_final(&t, ended_by, &r->summary);
        r->reported = 1;
    }
    if (metrics) fclose(metrics);
    free_trainer(&t);
    return e->code;
}
