// train_state.c: what every rank of a run must hold the same (config, parameters, buffers,
// optimizer state), and the checkpoints that hold it.
#include <stdlib.h>
#include <string.h>

#include "trainer.h"

// Collective: every rank calls it; rank 0's BatchNorm statistics are shared first, then
// rank 0 writes. last.h5 becomes the last good checkpoint a non-finite step points to.
void train_save(Trainer *t, const char *name) {
    const Dist *d = t->d;
    train_share_buffers(t);
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
int train_check_resume_compatible(const Trainer *t, const char *ckpt, const char *ckpt_config,
                                  Err *e) {
    if (t->meta.epoch_batch == 0) return ERR_OK;
    Config old;
    if (config_load(&old, ckpt, ckpt_config, NULL, 0, e)) return e->code;
    const char *what = old.batch != t->cfg.batch           ? "train.batch"
                       : old.seed != t->cfg.seed           ? "train.seed"
                       : old.shuffle != t->cfg.shuffle     ? "train.shuffle"
                       : old.train_size != t->cfg.train_size ? "data.train_size"
                                                             : NULL;
    config_free(&old);
    if (!what) return ERR_OK;
    return err_set(e, ERR_INPUT,
                   "%s stopped in the middle of epoch %lld; resuming it needs the same %s as the "
                   "run that wrote it",
                   ckpt, (long long)t->meta.epoch + 1, what);
}

static uint64_t fnv1a(const void *p, size_t n, uint64_t h) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}
#define FNV_OFFSET 14695981039346656037ull

// Every rank must run the same experiment: compares a hash of the effective config.
// Collective, so a mismatch is the same clear error on every rank, not a hang.
void train_check_same_config(const Dist *d, const Config *c) {
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

void train_check_same_state(const Trainer *t, const char *when) {
    int diff = 0;
    if (dist_same_u64(t->d, state_hash(t), &diff)) return;
    Err e;
    err_set(&e, ERR_RUNTIME, "the parameters of rank %d differ from rank 0's %s", diff, when);
    dist_exit_agreed((Dist *)t->d, &e);
}

// Rank 0's state is everyone's: initialization and checkpoints are deterministic, but this
// makes it so by construction, and the checksum proves it.
void train_share_state(Trainer *t) {
    const Dist *d = t->d;
    if (d->world <= 1) return;
    dist_bcast_f32(d, t->m.params, t->m.table.n_trainable);
    dist_bcast_f32(d, t->m.bufs, t->m.table.n_buffer);
    dist_bcast_f32(d, t->opt.m, t->opt.n);
    if (t->opt.v) dist_bcast_f32(d, t->opt.v, t->opt.n);
    train_check_same_state(t, "after start-up");
}

// BatchNorm running statistics are rank 0's everywhere before anything uses them (with
// bn.group != 0 each rank's moved with its own group), as DDP's broadcast_buffers does.
void train_share_buffers(Trainer *t) { dist_bcast_f32(t->d, t->m.bufs, t->m.table.n_buffer); }

// The epoch's loss and hits over every rank, into meta (collective).
void train_sync_epoch_sums(Trainer *t) {
    double v[2] = {t->loss_local, (double)t->correct_local};
    dist_sum_f64(t->d, v, 2);
    t->meta.epoch_loss_sum = v[0];
    t->meta.epoch_correct = (int64_t)v[1];
}
