// train.c: `regdist train`: the training loop, on one rank or many. Each epoch walks one
// permutation of the training set (a pure function of seed and epoch) in global batches;
// each global batch is one data-parallel optimizer step (step.h). Each rank reads only the
// rows its slices need. Rank 0 prints progress and writes metrics.csv, last.h5 (every epoch
// and at the end) and best.h5; every rank takes part in evaluation and in the collectives
// around checkpoints.
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "core/optim.h"
#include "core/shuffle.h"
#include "dist/watchdog.h"
#include "io/checkpoint.h"
#include "io/metrics.h"
#include "io/prefetch.h"
#include "options.h"
#include "signals.h"
#include "progress.h"
#include "step.h"

static const char *usage =
    "usage: regdist train --config C --data F --out DIR [--set key=value ...]\n"
    "                     [--resume CKPT | --init CKPT | --overwrite]\n"
    "\n"
    "Trains the model of config C on the train split of dataset F, evaluating on its val\n"
    "split each epoch. Writes DIR/metrics.csv, DIR/last.h5 (every epoch and when the run\n"
    "stops) and DIR/best.h5 (best validation accuracy).\n"
    "\n"
    "SIGTERM, SIGUSR1 and SIGINT (Ctrl-C) stop at the next step with DIR/last.h5 written and\n"
    "the command to resume printed; a second one exits at once.\n"
    "\n";

typedef struct {
    const Dist *d;
    Config cfg;
    Dataset train, val, test;
    int has_val, has_test;
    Model m;
    Optim opt;
    Stepper st;         // the optimizer step: slices, all-reduce, BN groups, batch buffers
    float *probs;       // (max_local, classes)
    int64_t *perm;      // (train.n)
    int64_t *shard;     // (train.n) this rank's training rows of the epoch: ascending, or
                        // ascending within each step when streamed
    int64_t *shard_off; // (steps_per_epoch + 1) where each step's rows begin in shard
    int stream;         // the shard exceeds data.memory_mb: read it step by step ahead
    Prefetch pf;        // the read-ahead thread while streaming an epoch
    CkptMeta meta;      // the position and history: what a checkpoint holds besides weights
    double loss_local;     // this rank's share of the epoch's loss sum and hits so far
    int64_t correct_local, seen_local;
    int64_t steps_per_epoch;
    double train_seconds;  // training time of the epochs run by this process
    int64_t saved_step;    // the step of the last good checkpoint (-1: none yet), and its path
    char saved_path[1100];
    char out[1024];
} Trainer;

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

// Bytes of one sample as stored (pixels and label), and of a rank's share of the split.
static double sample_bytes(const Dataset *ds) {
    return (double)shape_numel(ds->shape) * (double)dataset_pixel_bytes(ds) + 4.0;
}
static double shard_bytes(const Dist *d, const Dataset *ds) {
    return (double)((ds->n + d->world - 1) / d->world) * sample_bytes(ds);
}

// Describes split of file (its size, shape, classes). With one rank and hold_all it also
// loads every sample; otherwise ranks read the rows they need later.
static int load_split(const Dist *d, Dataset *ds, const char *file, const char *split,
                      int64_t limit, int required, int hold_all) {
    Err e = {0};
    int has = dataset_has_split(file, split, &e);
    if (has < 0) cli_fail(d, &e);
    if (!has) {
        if (required) {
            err_set(&e, ERR_INPUT, "%s: has no /%s group to train on", file, split);
            cli_fail(d, &e);
        }
        return 0;
    }
    if (d->world == 1 && hold_all) {
        if (dataset_load(ds, file, split, limit, &e)) cli_fail(d, &e);
        return 1;
    }
    int64_t none = 0;
    if (dataset_load_rows(ds, file, split, limit, &none, 0, &e)) cli_fail(d, &e);
    return 1;
}

// Holds rows [lo, hi) of ds's split: a rank's share of an evaluation (collective-free).
static void hold_range(const Dist *d, Dataset *ds, int64_t limit, int64_t lo, int64_t hi) {
    if (!ds->rows && ds->nloaded == ds->n && ds->n > 0) return;  // it holds everything already
    Err e = {0};
    int64_t n = hi - lo, *rows = malloc((size_t)(n ? n : 1) * sizeof *rows);
    if (!rows) {
        err_set(&e, ERR_RUNTIME, "out of memory");
        cli_fail(d, &e);
    }
    for (int64_t i = 0; i < n; i++) rows[i] = lo + i;
    char file[DATASET_PATH_MAX], split[16];
    snprintf(file, sizeof file, "%s", ds->file);
    snprintf(split, sizeof split, "%s", ds->split);
    if (dataset_load_rows(ds, file, split, limit, rows, n, &e)) cli_fail(d, &e);
    free(rows);
}

// Holds this rank's evaluation share of ds: the contiguous rows cli_evaluate gives it.
static void hold_eval_share(const Dist *d, Dataset *ds, int64_t limit) {
    hold_range(d, ds, limit, ds->n * d->rank / d->world, ds->n * (d->rank + 1) / d->world);
}

// Collective: every rank calls it; rank 0's BatchNorm statistics are shared first, then
// rank 0 writes.
static void share_buffers(Trainer *t);
static void save(const Dist *d, Trainer *t, const char *name) {
    share_buffers(t);
    if (strcmp(name, "last.h5") == 0) {
        t->saved_step = t->meta.step;
        snprintf(t->saved_path, sizeof t->saved_path, "%s/last.h5", t->out);
    }
    if (d->rank != 0) return;
    char path[1100];
    snprintf(path, sizeof path, "%s/%s", t->out, name);
    Err e = {0};
    t->meta.config_text = t->cfg.text;
    int rc = ckpt_save(path, &t->m, &t->opt, &t->meta, &e);
    t->meta.config_text = NULL;
    if (rc) cli_fail(d, &e);
}

// A mid-epoch checkpoint is only meaningful for the same data order and batch.
static void check_resume_compatible(const Dist *d, const Trainer *t, const char *ckpt,
                                    const char *ckpt_config) {
    if (t->meta.epoch_batch == 0) return;
    Config old;
    Err e = {0};
    if (config_load(&old, ckpt, ckpt_config, NULL, 0, &e)) cli_fail(d, &e);
    const char *what = old.batch != t->cfg.batch           ? "train.batch"
                       : old.seed != t->cfg.seed           ? "train.seed"
                       : old.shuffle != t->cfg.shuffle     ? "train.shuffle"
                       : old.train_size != t->cfg.train_size ? "data.train_size"
                                                             : NULL;
    config_free(&old);
    if (what) {
        err_set(&e, ERR_INPUT,
                "%s stopped in the middle of epoch %lld; resuming it needs the same %s as the "
                "run that wrote it",
                ckpt, (long long)t->meta.epoch + 1, what);
        cli_fail(d, &e);
    }
}

static void parse_args(const Dist *d, int argc, char **argv, const char **config, const char **data,
                       const char **out, const char **resume, const char **init,
                       int *overwrite, const char **sets, int *nsets) {
    OptList set = {sets, 0, MAX_SETS};
    const Opt opts[] = {
        OPT_S("config", config, "C", "the experiment (launch/configs/*.cfg)", 1),
        OPT_S("data", data, "F", "an HDF5 dataset (regdist data ... makes one)", 1),
        OPT_S("out", out, "DIR", "output directory (created if missing); one that holds a run is\n"
              "refused unless --resume continues it or --overwrite replaces it", 1),
        OPT_L("set", &set, "key=value", "override a config key; repeatable"),
        OPT_S("resume", resume, "CKPT",
              "continue a run exactly from a checkpoint (model, optimizer, position)", 0),
        OPT_S("init", init, "CKPT", "start from a checkpoint's weights only", 0),
        OPT_F("overwrite", overwrite,
              "start afresh in a DIR that holds a run: its files are removed first"),
        OPT_END};
    if (opts_parse(d, "train", opts, 0, argc, argv, 1) < 0) {
        if (d->rank == 0) {
            fputs(usage, stdout);
            opts_print_help(stdout, opts);
            fputs("\nConfig keys:\n", stdout);
            config_print_keys(stdout);
        }
        dist_finalize((Dist *)d);
        exit(0);
    }
    *nsets = set.n;
    if (*resume && *init) cli_usage_fail(d, "train", "--resume and --init exclude each other");
    if (*resume && *overwrite)
        cli_usage_fail(d, "train", "--resume continues a run and --overwrite replaces it: choose one");
}

// The files a run writes into its directory: a directory holding any of them holds a run.
static const char *const run_files[] = {"metrics.csv", "last.h5", "best.h5", "summary.json"};
#define N_RUN_FILES (int)(sizeof run_files / sizeof run_files[0])

// Removes dir's run files and kept epoch checkpoints (epoch-NNNN.h5). ERR_RUNTIME on failure.
static int remove_run_files(const char *dir, Err *e) {
    char path[1100];
    for (int i = 0; i < N_RUN_FILES; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, run_files[i]);
        if (unlink(path) != 0 && errno != ENOENT)
            return err_set(e, ERR_RUNTIME, "--overwrite: cannot remove %s: %s", path, strerror(errno));
    }
    DIR *dp = opendir(dir);
    if (!dp) return ERR_OK;
    int rc = ERR_OK;
    for (struct dirent *de; !rc && (de = readdir(dp));) {
        unsigned n;
        char tail[8];
        if (sscanf(de->d_name, "epoch-%u.h%1s", &n, tail) != 2 || strcmp(tail, "5")) continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (unlink(path) != 0)
            rc = err_set(e, ERR_RUNTIME, "--overwrite: cannot remove %s: %s", path, strerror(errno));
    }
    closedir(dp);
    return rc;
}

// A run directory belongs to one run: one that holds a run is refused unless the command
// continues it (--resume) or replaces it (--overwrite: the old files go first, so old and
// new are never mixed). Rank 0 looks, on its file system; every rank learns the outcome.
static void claim_out_dir(const Dist *d, const char *dir, const char *resume, int overwrite) {
    Err e = {0};
    if (d->rank == 0 && !resume) {
        const char *held = NULL;
        char path[1100];
        for (int i = 0; !held && i < N_RUN_FILES; i++) {
            snprintf(path, sizeof path, "%s/%s", dir, run_files[i]);
            if (access(path, F_OK) == 0) held = run_files[i];
        }
        if (held && !overwrite)
            err_set(&e, ERR_INPUT, "--out %s already holds a run (%s): continue it with --resume "
                    "%s/last.h5, start afresh there with --overwrite, or choose another --out",
                    dir, held, dir);
        else if (held)
            remove_run_files(dir, &e);
    }
    if (dist_agree(d, &e)) dist_exit_agreed((Dist *)d, &e);
}

static void make_out_dir(const Dist *d, const char *dir) {
    if (d->rank != 0) return;
    char path[1024];
    snprintf(path, sizeof path, "%s", dir);
    for (char *p = path + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        mkdir(path, 0755);
        *p = '/';
    }
    struct stat st;
    if (mkdir(path, 0755) != 0 && (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))) {
        Err e;
        err_set(&e, ERR_INPUT, "--out %s: cannot create the output directory: %s", dir,
                strerror(errno));
        cli_fail(d, &e);
    }
}

static uint64_t fnv1a(const void *p, size_t n, uint64_t h) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}
#define FNV_OFFSET 14695981039346656037ull

// Every rank must run the same experiment: compares a hash of the effective config.
// Collective, so a mismatch is the same clear error on every rank, not a hang.
static void check_same_config(const Dist *d, const Config *c) {
    int diff = 0;
    if (dist_same_u64(d, fnv1a(c->text, strlen(c->text), FNV_OFFSET), &diff)) return;
    Err e;
    err_set(&e, ERR_INPUT,
            "rank %d was given a different config than rank 0 (compare their --config and "
            "--set); every rank must run the same experiment",
            diff);
    dist_exit_agreed((Dist *)d, &e);
}

// Parameters, buffers and optimizer state, hashed, to prove every rank holds the same.
static uint64_t state_hash(const Trainer *t) {
    const Model *m = &t->m;
    uint64_t h = fnv1a(m->params, m->table.n_trainable * sizeof(float), FNV_OFFSET);
    return fnv1a(m->bufs, m->table.n_buffer * sizeof(float), h);
}

static void check_same_state(const Trainer *t, const char *when) {
    int diff = 0;
    if (dist_same_u64(t->d, state_hash(t), &diff)) return;
    Err e;
    err_set(&e, ERR_RUNTIME, "the parameters of rank %d differ from rank 0's %s", diff, when);
    dist_exit_agreed((Dist *)t->d, &e);
}

// Rank 0's state is everyone's: initialization and checkpoints are deterministic, but this
// makes it so by construction, and the checksum proves it.
static void share_state(Trainer *t) {
    const Dist *d = t->d;
    if (d->world <= 1) return;
    dist_bcast_f32(d, t->m.params, t->m.table.n_trainable);
    dist_bcast_f32(d, t->m.bufs, t->m.table.n_buffer);
    dist_bcast_f32(d, t->opt.m, t->opt.n);
    if (t->opt.v) dist_bcast_f32(d, t->opt.v, t->opt.n);
    check_same_state(t, "after start-up");
}

// A size limit larger than the split cannot be what the user meant: an error, not a cap.
static void check_sizes(const Dist *d, const Config *c, const char *file, const Dataset *ds,
                        const char *split, int64_t limit, const char *key) {
    if (limit <= 0 || ds->n >= limit) return;
    Err e;
    err_set(&e, ERR_INPUT, "%s = %lld but /%s of %s has only %lld samples (0 = all of them)",
            key, (long long)limit, split, file, (long long)ds->n);
    (void)c;
    cli_fail(d, &e);
}

// Settings that run but cannot do what they say: one warning line each, at start-up.
static void warn_settings(const Dist *d, const Trainer *t) {
    if (d->rank != 0) return;
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

static void setup(const Dist *d, Trainer *t, int argc, char **argv, const char **resume_out) {
    t->d = d;
    const char *config = NULL, *data = NULL, *out = NULL, *resume = NULL, *init = NULL;
    const char *sets[MAX_SETS];
    int nsets = 0, overwrite = 0;
    parse_args(d, argc, argv, &config, &data, &out, &resume, &init, &overwrite, sets, &nsets);
    *resume_out = resume;
    Err e = {0};
    if (config_load(&t->cfg, config, NULL, sets, nsets, &e)) cli_fail(d, &e);
    snprintf(t->out, sizeof t->out, "%s", out);
    Config *c = &t->cfg;
    // from here on, a rank left waiting in a collective by a stopped one ends the job
    if (d->world > 1 && watchdog_start(d, c->timeout)) {
        err_set(&e, ERR_RUNTIME, "cannot start the collective-stall watchdog thread");
        cli_fail(d, &e);
    }
    check_same_config(d, c);

    load_split(d, &t->train, data, "train", c->train_size, 1, 0);
    check_sizes(d, c, data, &t->train, "train", c->train_size, "data.train_size");
    // a rank holds its training shard when it fits data.memory_mb, else streams it
    t->stream = shard_bytes(d, &t->train) > (double)c->memory_mb * 1048576.0;
    if (d->world == 1 && !t->stream) load_split(d, &t->train, data, "train", c->train_size, 1, 1);
    t->has_val = load_split(d, &t->val, data, "val", c->val_size, 0, 1);
    if (t->has_val) check_sizes(d, c, data, &t->val, "val", c->val_size, "data.val_size");
    t->has_test = load_split(d, &t->test, data, "test", 0, 0, 1);
    if (t->has_val) hold_eval_share(d, &t->val, c->val_size);
    if (t->has_test) hold_eval_share(d, &t->test, 0);
    if (c->patience > 0 && !t->has_val) {
        err_set(&e, ERR_INPUT, "train.patience needs a /val split, and %s has none", data);
        cli_fail(d, &e);
    }
    int max_local = stepper_max_local(d, c);
    if (cli_build_model(&t->m, c, &t->train, max_local, &e)) cli_fail(d, &e);
    for (int s = 0; s < 2; s++) {  // val and test must fit the model too
        const Dataset *ds = s == 0 ? &t->val : &t->test;
        if (!(s == 0 ? t->has_val : t->has_test)) continue;
        int same = ds->shape.ndim == t->train.shape.ndim && ds->num_classes == t->train.num_classes;
        for (int i = 0; same && i < ds->shape.ndim; i++) same = ds->shape.d[i] == t->train.shape.d[i];
        if (!same) {
            err_set(&e, ERR_INPUT, "%s: /%s/x samples differ in shape from /train/x", data,
                    ds->split);
            cli_fail(d, &e);
        }
    }
    if (optim_init(&t->opt, &c->optim, t->m.table.n_trainable)) {
        err_set(&e, ERR_RUNTIME, "out of memory for the optimizer state");
        cli_fail(d, &e);
    }
    t->steps_per_epoch = (t->train.n + c->batch - 1) / c->batch;
    c->sched.total_steps = t->steps_per_epoch * c->epochs;

    t->probs = malloc((size_t)max_local * (size_t)t->m.num_classes * sizeof(float));
    t->perm = malloc((size_t)t->train.n * sizeof(int64_t));
    // mixup/cutmix: a rank also reads its positions' partners (rank_rows), up to as many again
    size_t shard_rows = (size_t)t->train.n * (augment_mix_on(&c->augment) ? 2 : 1);
    t->shard = malloc(shard_rows * sizeof(int64_t));
    t->shard_off = malloc((size_t)(t->steps_per_epoch + 1) * sizeof(int64_t));
    if (!t->probs || !t->perm || !t->shard || !t->shard_off) {
        err_set(&e, ERR_RUNTIME, "out of memory for the batch buffers");
        cli_fail(d, &e);
    }

    t->meta = (CkptMeta){.seed = c->seed, .best_metric = -1, .best_epoch = -1};
    if (resume) {
        CkptMeta m = {0};
        if (ckpt_load(resume, &t->m, &t->opt, &m, &e)) cli_fail(d, &e);
        t->meta = m;
        check_resume_compatible(d, t, resume, m.config_text);
        free(m.config_text);
        t->meta.config_text = NULL;
        t->meta.seed = c->seed;
        t->saved_step = t->meta.step;
        snprintf(t->saved_path, sizeof t->saved_path, "%s", resume);
    } else {
        model_init(&t->m, c->seed);
        if (init && ckpt_load(init, &t->m, NULL, NULL, &e)) cli_fail(d, &e);
    }
    t->meta.prep = &t->train.prep;  // every checkpoint records how the training data was made
    share_state(t);
    // a resumed epoch's sums so far are global: rank 0 carries them, the others start at 0
    t->loss_local = d->rank == 0 ? t->meta.epoch_loss_sum : 0.0;
    t->correct_local = d->rank == 0 ? t->meta.epoch_correct : 0;
    t->seen_local = d->rank == 0 ? t->meta.epoch_seen : 0;  // the progress line's mean
    if (stepper_init(&t->st, d, c, &t->m, &t->opt, &t->train, &e)) cli_fail(d, &e);
    claim_out_dir(d, out, resume, overwrite);
    make_out_dir(d, out);
}

// BatchNorm running statistics are rank 0's everywhere before anything uses them (with
// bn.group != 0 each rank's moved with its own group), as DDP's broadcast_buffers does.
static void share_buffers(Trainer *t) { dist_bcast_f32(t->d, t->m.bufs, t->m.table.n_buffer); }

// The epoch's loss and hits over every rank, into meta (collective).
static void sync_epoch_sums(Trainer *t) {
    double v[2] = {t->loss_local, (double)t->correct_local};
    dist_sum_f64(t->d, v, 2);
    t->meta.epoch_loss_sum = v[0];
    t->meta.epoch_correct = (int64_t)v[1];
}

// Sorts rows[0..n) and drops repeats; returns how many remain.
static int64_t sort_unique(int64_t *rows, int64_t n) {
    qsort(rows, (size_t)n, sizeof *rows, cmp_i64);
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++)
        if (k == 0 || rows[i] != rows[k - 1]) rows[k++] = rows[i];
    return k;
}

// This rank's rows (its slices of every micro-batch) of the first nbatches global batches
// of t->perm, in step order, into t->shard; batch b's start at t->shard_off[b], and
// t->shard_off[nbatches] is the count returned. The one walk over the split the step makes.
// With partners (mixup/cutmix), each batch's rows also hold the partners of the rank's
// positions (global position n-1-i for i, augment_mix_partner), sorted within the batch and
// without repeats (a partner may be the rank's own row): t->shard then needs 2 * train.n.
static int64_t rank_rows(Trainer *t, int64_t nbatches, int partners) {
    const Config *c = &t->cfg;
    int64_t k = 0;
    for (int64_t b = 0; b < nbatches; b++) {
        t->shard_off[b] = k;
        int64_t start = b * c->batch, n = t->train.n - start < c->batch ? t->train.n - start : c->batch;
        for (int j = 0; j < c->accum; j++) {
            int64_t lo, hi;
            stepper_slice(t->d, c, n, j, &lo, &hi);
            for (int64_t i = lo; i < hi; i++) t->shard[k++] = t->perm[start + i];
            for (int64_t i = lo; partners && i < hi; i++)
                t->shard[k++] = t->perm[start + augment_mix_partner(i, n)];
        }
        int64_t at = t->shard_off[b];
        if (partners) k = at + sort_unique(t->shard + at, k - at);
    }
    t->shard_off[nbatches] = k;
    return k;
}

// A rank's training rows of the epoch, the slices of every batch that are its own, step by
// step. Held: with several ranks each reads, at the start of an epoch, only those rows (about
// 1/world of the split, one hyperslab per run of consecutive rows); one rank holds the split
// from the start. Streamed: the prefetch thread reads each step's rows a few steps ahead,
// from the step the epoch resumes at.
static void begin_epoch_data(Trainer *t) {
    const Dist *d = t->d;
    const Config *c = &t->cfg;
    if (d->world == 1 && !t->stream) return;
    int64_t k = rank_rows(t, t->steps_per_epoch, augment_mix_on(&c->augment));
    if (t->stream)
        for (int64_t b = 0; b < t->steps_per_epoch; b++)
            qsort(t->shard + t->shard_off[b], (size_t)(t->shard_off[b + 1] - t->shard_off[b]),
                  sizeof *t->shard, cmp_i64);
    Err e = {0};
    if (t->stream) {
        if (prefetch_start(&t->pf, t->train.file, "train", c->train_size, t->shard, t->shard_off,
                           t->meta.epoch_batch, t->steps_per_epoch, &e))
            cli_fail(d, &e);
        return;
    }
    qsort(t->shard, (size_t)k, sizeof *t->shard, cmp_i64);
    char file[DATASET_PATH_MAX];
    snprintf(file, sizeof file, "%s", t->train.file);
    if (dataset_load_rows(&t->train, file, "train", c->train_size, t->shard, k, &e))
        cli_fail(d, &e);
}

// The next step's rows, when streamed (the stepper gathers from what this returns).
static void next_step_data(Trainer *t) {
    if (!t->stream) return;
    Err e = {0};
    const Dataset *ds = prefetch_next(&t->pf, &e);
    if (!ds) cli_fail(t->d, &e);
    t->st.data = ds;
}

static void evaluate_split(Trainer *t, const Dataset *ds, EvalResult *r) {
    cli_evaluate(t->d, &t->m, ds, t->st.x, t->st.y, t->st.ids, t->probs, r);
}

// A step whose all-reduced gradient held a NaN or Inf (nothing was updated): skipped and
// counted with train.nonfinite = skip, else the end of the run, on every rank at once.
static void nonfinite_step(Trainer *t) {
    if (t->cfg.nonfinite_skip) {
        t->meta.skipped_steps++;
        return;
    }
    Err e;
    if (t->saved_step >= 0)
        err_set(&e, ERR_RUNTIME, "the gradient of step %lld is not finite (NaN or Inf); stopped "
                "without applying it. The last good checkpoint is %s (step %lld); "
                "resume from it with a lower optim.lr or reg.clip_norm, or set "
                "train.nonfinite=skip", (long long)t->meta.step + 1, t->saved_path,
                (long long)t->saved_step);
    else
        err_set(&e, ERR_RUNTIME, "the gradient of step %lld is not finite (NaN or Inf); stopped "
                "without applying it, before any checkpoint was written. Lower optim.lr, set "
                "reg.clip_norm, or set train.nonfinite=skip", (long long)t->meta.step + 1);
    dist_exit_agreed((Dist *)t->d, &e);
}

// train.keep = K: DIR/epoch-NNNN.h5 for the last K finished epochs. Each is a hard link to
// the last.h5 just written (a new file at every atomic save, so the link keeps this epoch's),
// and the oldest beyond K are removed. Rank 0 only; a failure is reported, never fatal to
// the run, since last.h5 is safe.
static void keep_epoch_checkpoint(const Trainer *t) {
    int k = t->cfg.keep;
    if (k <= 0 || t->d->rank != 0) return;
    char last[1100], path[1100];
    snprintf(last, sizeof last, "%s/last.h5", t->out);
    snprintf(path, sizeof path, "%s/epoch-%04lld.h5", t->out, (long long)t->meta.epoch);
    unlink(path);  // a rerun's older file of the same epoch
    if (link(last, path) != 0)
        fprintf(stderr, "regdist: warning: cannot keep %s: %s\n", path, strerror(errno));
    for (int64_t e = t->meta.epoch - k; e >= 1; e--) {
        snprintf(path, sizeof path, "%s/epoch-%04lld.h5", t->out, (long long)e);
        if (unlink(path) != 0) break;  // older ones were removed before
    }
}

// After a stop mid-run (train.max_steps or a signal) and its checkpoint.
static void stopped_message(const Trainer *t, int signal) {
    if (t->d->rank != 0) return;
    if (signal)
        printf("stopped at step %lld (%s) in epoch %lld; %s/last.h5 holds it: resume with the "
               "same command and --resume %s/last.h5\n", (long long)t->meta.step,
               signal_name(signal), (long long)t->meta.epoch + 1, t->out, t->out);
    else
        printf("stopped at step %lld (train.max_steps) in epoch %lld; %s/last.h5 holds it: train "
               "further with --resume %s/last.h5 and a larger train.max_steps\n",
               (long long)t->meta.step, (long long)t->meta.epoch + 1, t->out, t->out);
    fflush(stdout);
}

// A resumed run with nothing left to do (all its epochs, its train.max_steps, or early
// stopping reached): says so, and how to train further, instead of silently redoing the end.
// Returns what ended it, or NULL when there is more to train.
static const char *finished_message(const Trainer *t, const char *resume) {
    const Config *c = &t->cfg;
    const char *why = t->meta.epoch >= c->epochs                            ? "train.epochs"
                      : c->max_steps >= 0 && t->meta.step >= c->max_steps   ? "train.max_steps"
                      : c->patience > 0 && t->meta.bad_epochs >= c->patience ? "train.patience"
                                                                             : NULL;
    if (!why) return NULL;
    if (t->d->rank == 0) {
        printf("%s is a finished run (step %lld, %lld of %d epochs, ended by %s): nothing to "
               "train. To train further, resume it with a larger %s (--set %s=N)%s\n",
               resume, (long long)t->meta.step, (long long)t->meta.epoch, c->epochs, why,
               strcmp(why, "train.patience") ? why : "train.patience or train.epochs",
               strcmp(why, "train.patience") ? why : "train.patience",
               strcmp(why, "train.epochs") ? "" : "; the schedule then stretches to the new length");
        fflush(stdout);
    }
    return why;
}

// One optimizer step (step.c), then, every dist.check_every steps, proof that every rank
// still holds the same parameters.
static double train_step(Trainer *t, const int64_t *idx, int n, int64_t *correct,
                         int64_t *seen, int *finite) {
    double loss = stepper_step(&t->st, idx, n, correct, seen, finite);
    if (!*finite) return loss;
    int every = t->cfg.check_every;
    if (every > 0 && t->opt.step % every == 0) {
        char when[64];
        snprintf(when, sizeof when, "after step %lld", (long long)t->opt.step);
        check_same_state(t, when);
    }
    return loss;
}

static void print_header(const Dist *d, const Trainer *t, const char *resume, int threads) {
    if (d->rank != 0) return;
    const Config *c = &t->cfg;
    printf("regdist train: %s on %s\n", c->source, t->train.file);
    printf("  data: %lld train, %lld val, %lld test samples, %d classes\n",
           (long long)t->train.n, (long long)(t->has_val ? t->val.n : 0),
           (long long)(t->has_test ? t->test.n : 0), t->train.num_classes);
    if (t->stream)
        printf("  streaming: a rank's %.0f MiB of training data exceed data.memory_mb = %d; a "
               "thread reads %d steps ahead\n",
               shard_bytes(d, &t->train) / 1048576.0, c->memory_mb, PREFETCH_DEPTH - 1);
    printf("  model: %d layers, %zu parameters; %s lr %g, weight decay %g; %d epochs of %lld "
           "steps, batch %d\n",
           t->m.seq.n, t->m.table.n_trainable, optim_kind_name(c->optim.kind), c->optim.lr,
           c->optim.weight_decay, c->epochs, (long long)t->steps_per_epoch, c->batch);
    printf("  parallel: %d rank%s x %d OpenBLAS thread%s (%s kernels)\n", d->world,
           d->world > 1 ? "s" : "", threads, threads > 1 ? "s" : "", blas_kernel_name());
    if (resume)
        printf("  resuming %s at step %lld (epoch %lld, batch %lld)\n", resume,
               (long long)t->meta.step, (long long)t->meta.epoch + 1,
               (long long)t->meta.epoch_batch);
    fflush(stdout);
}

static void free_trainer(Trainer *t) {
    watchdog_stop();
    stepper_free(&t->st);
    free(t->probs);
    free(t->perm);
    free(t->shard);
    free(t->shard_off);
    optim_free(&t->opt);
    model_free(&t->m);
    dataset_free(&t->train);
    if (t->has_val) dataset_free(&t->val);
    if (t->has_test) dataset_free(&t->test);
    config_free(&t->cfg);
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
    for (int64_t a = lo; a < hi; a += piece) {
        int64_t b = hi - a < piece ? hi : a + piece;
        hold_range(d, ds, t->cfg.train_size, a, b);
        cli_eval_rows(&t->m, ds, a, b, t->st.x, t->st.y, t->st.ids, t->probs, &sums);
    }
    cli_eval_finish(d, &sums, ds->n, r);
}

// Eval mode on every split present: r[0] train, r[1] val, r[2] test (collective).
static void evaluate_all(Trainer *t, EvalResult r[3]) {
    if (t->stream) {
        evaluate_train_streamed(t, &r[0]);
    } else {
        hold_eval_share(t->d, &t->train, t->cfg.train_size);
        evaluate_split(t, &t->train, &r[0]);
    }
    if (t->has_val) evaluate_split(t, &t->val, &r[1]);
    if (t->has_test) evaluate_split(t, &t->test, &r[2]);
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
    int64_t k = rank_rows(t, K, 0);  // consumed in order below: no partner rows
    Dataset rows = {0};
    Err e = {0};
    int64_t *sorted = malloc((size_t)(k ? k : 1) * sizeof *sorted);  // the rows to read
    if (!sorted) {
        err_set(&e, ERR_RUNTIME, "out of memory");
        cli_fail(d, &e);
    }
    memcpy(sorted, t->shard, (size_t)k * sizeof *sorted);
    qsort(sorted, (size_t)k, sizeof *sorted, cmp_i64);
    if (dataset_load_rows(&rows, t->train.file, "train", c->train_size, sorted, k, &e))
        cli_fail(d, &e);
    free(sorted);
    StepCtx sc = {.train = 1, .dropout_on = 0, .sample_ids = t->st.ids, .precise_bn = 1,
                  .reduce_stats = bnsync_reduce, .reduce_ctx = &t->st.bn};
    int64_t at = 0;
    for (int64_t b = 0; b < K; b++) {
        int64_t start = b * c->batch, n = t->train.n - start < c->batch ? t->train.n - start : c->batch;
        for (int j = 0; j < c->accum; j++) {
            int64_t lo, hi;
            stepper_slice(d, c, n, j, &lo, &hi);
            int nb = (int)(hi - lo);
            memcpy(t->st.ids, t->shard + at, (size_t)nb * sizeof *t->st.ids);
            at += nb;
            dataset_gather(&rows, t->st.ids, nb, t->st.x, t->st.y);
            model_forward(&t->m, t->st.x, nb, &sc);
        }
    }
    dataset_free(&rows);
    // every rank's (group's) average, averaged
    size_t nb = t->m.table.n_buffer;
    double *v = malloc(nb * sizeof *v);
    if (!v) {
        err_set(&e, ERR_RUNTIME, "out of memory");
        cli_fail(d, &e);
    }
    for (size_t i = 0; i < nb; i++) v[i] = t->m.bufs[i];
    dist_sum_f64(d, v, (int)nb);
    for (size_t i = 0; i < nb; i++) t->m.bufs[i] = (float)(v[i] / d->world);
    free(v);
    return (int)K;
}

// The finished model in eval mode on every split, the train-validation gap, and the same
// numbers in DIR/summary.json for scripts; with eval.precise_bn, the same again with
// PreciseBN statistics (the checkpoints keep the running statistics training left).
// Collective (every rank evaluates its share); rank 0 prints and writes.
static void report_final(Trainer *t, const char *ended_by) {
    EvalResult r[2][3];
    const char *names[3] = {"train", "val", "test"};
    int has[3] = {1, t->has_val, t->has_test};
    share_buffers(t);
    evaluate_all(t, r[0]);
    int precise = 0;
    size_t nbuf = t->m.table.n_buffer;
    float *kept = malloc((nbuf ? nbuf : 1) * sizeof *kept);
    if (!kept) {
        Err e;
        err_set(&e, ERR_RUNTIME, "out of memory");
        cli_fail(t->d, &e);
    }
    memcpy(kept, t->m.bufs, nbuf * sizeof *kept);
    if (t->cfg.precise_bn > 0 && (precise = precise_bn(t))) evaluate_all(t, r[1]);
    memcpy(t->m.bufs, kept, nbuf * sizeof *kept);
    free(kept);
    if (t->d->rank != 0) return;
    for (int p = 0; p <= (precise > 0); p++) {
        printf(p ? "with PreciseBN (%d batches):" : "final model (eval mode):", precise);
        for (int i = 0; i < 3; i++)
            if (has[i]) printf("  %s acc %.2f%%", names[i], 100 * r[p][i].accuracy);
        if (has[1])
            printf("  train-val gap %.2f points", 100 * (r[p][0].accuracy - r[p][1].accuracy));
        printf("\n");
    }
    if (has[2])
        printf("test: loss %.4f  acc %.2f%%  ECE %.2f%%  mean confidence %.2f%%  (%lld samples)\n",
               r[0][2].loss, 100 * r[0][2].accuracy, 100 * r[0][2].ece, 100 * r[0][2].confidence,
               (long long)r[0][2].count);
    char path[1100];
    snprintf(path, sizeof path, "%s/summary.json", t->out);
    FILE *f = fopen(path, "w");
    if (!f) return;  // the metrics and checkpoints are what matter; this is a convenience
    fprintf(f, "{\"steps\": %lld, \"epochs\": %lld", (long long)t->meta.step,
            (long long)t->meta.epoch);
    for (int p = 0; p <= (precise > 0); p++)
        for (int i = 0; i < 3; i++)
            if (has[i])
                fprintf(f, ", \"%s%s_loss\": %.6f, \"%s%s_acc\": %.6f, \"%s%s_ece\": %.6f, "
                        "\"%s%s_confidence\": %.6f",
                        p ? "precise_" : "", names[i], r[p][i].loss, p ? "precise_" : "", names[i],
                        r[p][i].accuracy, p ? "precise_" : "", names[i], r[p][i].ece,
                        p ? "precise_" : "", names[i], r[p][i].confidence);
    fprintf(f, ", \"skipped_steps\": %lld, \"ended_by\": \"%s\"", (long long)t->meta.skipped_steps,
            ended_by);
    if (t->meta.best_metric >= 0)  // fractions; a value there is none of is null, never -1
        fprintf(f, ", \"best_val_acc\": %.6f", t->meta.best_metric);
    else
        fprintf(f, ", \"best_val_acc\": null");
    if (t->meta.epoch > 0)
        fprintf(f, ", \"seconds_per_epoch\": %.3f}\n", t->train_seconds / (double)t->meta.epoch);
    else
        fprintf(f, ", \"seconds_per_epoch\": null}\n");
    fclose(f);
}

int cmd_train(Dist *d, int argc, char **argv) {
    Trainer t;
    memset(&t, 0, sizeof t);
    t.saved_step = -1;
    const char *resume = NULL;
    setup(d, &t, argc, argv, &resume);
    Config *c = &t.cfg;
    int threads = cli_set_threads(d, c->threads);
    signals_install();  // before the header: once it is printed, a signal stops cleanly
    print_header(d, &t, resume, threads);
    warn_settings(d, &t);  // after every check that could end the run: an error stays one line
    Err e = {0};

    const char *finished = resume ? finished_message(&t, resume) : NULL;
    if (finished) {  // its report again (a run killed while writing it gets it now); no training
        report_final(&t, finished);
        free_trainer(&t);
        return 0;
    }
    char path[1100];
    snprintf(path, sizeof path, "%s/metrics.csv", t.out);
    FILE *metrics = NULL;  // rows are numbered from 1; a resumed run keeps those before its own
    if (d->rank == 0 && !(metrics = metrics_open(path, resume ? t.meta.epoch + 1 : 0, &e)))
        cli_fail(d, &e);

    int stop = c->max_steps >= 0 && t.meta.step >= c->max_steps, signal = 0;
    const char *ended_by = stop ? "train.max_steps" : "train.epochs";
    if (stop) save(d, &t, "last.h5");
    while (!stop && t.meta.epoch < c->epochs) {
        int64_t epoch = t.meta.epoch;
        if (c->shuffle) shuffle_permutation(t.perm, t.train.n, c->seed, epoch);
        else for (int64_t i = 0; i < t.train.n; i++) t.perm[i] = i;
        begin_epoch_data(&t);
        char label[64];
        snprintf(label, sizeof label, "epoch %lld/%d", (long long)epoch + 1, c->epochs);
        Progress p;
        int64_t run_steps = (int64_t)c->epochs * t.steps_per_epoch;  // the ETA's horizon
        if (c->max_steps >= 0 && c->max_steps < run_steps) run_steps = c->max_steps;
        progress_begin_run(&p, d->rank == 0, label, t.steps_per_epoch, t.meta.epoch_batch,
                           t.meta.step, run_steps);
        double t0 = now_seconds() - t.meta.epoch_seconds;
        while (t.meta.epoch_batch < t.steps_per_epoch) {
            int64_t start = t.meta.epoch_batch * c->batch;
            int n = (int)(t.train.n - start < c->batch ? t.train.n - start : c->batch);
            next_step_data(&t);
            t.st.epoch = (uint32_t)epoch;  // the augmentation's per-sample draws count epochs
            int finite;
            double loss = train_step(&t, t.perm + start, n, &t.correct_local, &t.seen_local,
                                     &finite);
            if (!finite) nonfinite_step(&t);  // every rank holds the same gradient: all agree
            else t.loss_local += loss;
            t.meta.epoch_seen += n;
            t.meta.epoch_batch++;
            t.meta.step++;
            t.meta.epoch_seconds = now_seconds() - t0;
            progress_update(&p, t.meta.epoch_batch,
                            t.seen_local ? t.loss_local / (double)t.seen_local : NAN,
                            (double)t.meta.epoch_seen / t.meta.epoch_seconds);
            if (c->max_steps >= 0 && t.meta.step >= c->max_steps) {
                stop = 1;
                ended_by = "train.max_steps";
                if (t.meta.epoch_batch < t.steps_per_epoch) break;
            }
            if ((signal = dist_max_int(d, signals_pending()))) {  // preemption: every rank
                stop = 1;
                if (t.meta.epoch_batch < t.steps_per_epoch) break;
            }
        }
        progress_end(&p);
        prefetch_stop(&t.pf);  // before any other reading or writing of files
        if (t.meta.epoch_batch < t.steps_per_epoch) {  // stopped mid-epoch
            sync_epoch_sums(&t);
            save(d, &t, "last.h5");
            stopped_message(&t, signal);
            break;
        }
        t.train_seconds += t.meta.epoch_seconds;
        // end of epoch: validate, record, checkpoint
        sync_epoch_sums(&t);
        share_buffers(&t);
        MetricsRow row = {.epoch = epoch + 1, .step = t.meta.step,
                          .lr = schedule_lr(&c->sched, c->optim.lr, t.meta.step - 1),
                          .train_loss = t.meta.epoch_loss_sum / (double)t.meta.epoch_seen,
                          .train_acc = (double)t.meta.epoch_correct / (double)t.meta.epoch_seen,
                          .val_loss = NAN, .val_acc = NAN, .seconds = t.meta.epoch_seconds,
                          .images_per_s = (double)t.meta.epoch_seen / t.meta.epoch_seconds};
        int improved = 0;
        if (t.has_val) {
            EvalResult v;
            evaluate_split(&t, &t.val, &v);
            row.val_loss = v.loss;
            row.val_acc = v.accuracy;
            improved = v.accuracy > t.meta.best_metric;
            if (improved) {
                t.meta.best_metric = v.accuracy;
                t.meta.best_epoch = epoch;
                t.meta.bad_epochs = 0;
            } else {
                t.meta.bad_epochs++;
            }
        }
        if (d->rank == 0) {
            if (metrics_write(metrics, &row, &e)) cli_fail(d, &e);
            printf("epoch %lld/%d  step %lld  lr %.3g  train loss %.4f acc %.2f%%", (long long)epoch + 1,
                   c->epochs, (long long)row.step, row.lr, row.train_loss, 100 * row.train_acc);
            if (t.has_val)
                printf("  val loss %.4f acc %.2f%%%s", row.val_loss, 100 * row.val_acc,
                       improved ? " *" : "");
            printf("  %.0f img/s  %.1f s", row.images_per_s, row.seconds);
            if (t.meta.skipped_steps)
                printf("  (%lld non-finite step%s skipped)", (long long)t.meta.skipped_steps,
                       t.meta.skipped_steps > 1 ? "s" : "");
            printf("\n");
            fflush(stdout);
        }
        t.meta.epoch++;
        t.meta.epoch_batch = 0;
        t.meta.epoch_loss_sum = 0;
        t.meta.epoch_correct = t.meta.epoch_seen = 0;
        t.meta.epoch_seconds = 0;
        t.loss_local = 0;
        t.correct_local = t.seen_local = 0;
        if (improved) save(d, &t, "best.h5");
        save(d, &t, "last.h5");
        keep_epoch_checkpoint(&t);
        if (signal) {  // the signal came with the epoch's last step
            stopped_message(&t, signal);
            break;
        }
        if (c->patience > 0 && t.meta.bad_epochs >= c->patience) {
            if (d->rank == 0)
                printf("early stopping: no better validation accuracy for %d epochs\n",
                       c->patience);
            ended_by = "train.patience";
            break;
        }
    }
    if (d->rank == 0 && t.meta.best_epoch >= 0)
        printf("best val acc %.2f%% at epoch %lld (%s/best.h5)\n", 100 * t.meta.best_metric,
               (long long)t.meta.best_epoch + 1, t.out);
    // a signal from here to the exit changes nothing: the run is saved (the handlers stay).
    // Every run that ends gets its report; a preempted one gets it when resumed to its end.
    if (!signal) report_final(&t, ended_by);
    if (metrics) fclose(metrics);
    free_trainer(&t);
    return 0;
}
