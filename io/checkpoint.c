// checkpoint.c: atomic HDF5 checkpoints of the model, the optimizer and the run's progress
// (layout in checkpoint.h). Saving writes a temporary file next to the target and renames
// it over the target only once it is complete and on disk, so a crash or a full disk never
// leaves a half-written checkpoint where a good one was. Loading reads everything into
// temporaries and checks it all before touching the model, so a bad checkpoint changes nothing.
#include "checkpoint.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "h5util.h"
#include "preprocess_h5.h"

#define CKPT_NAME_MAX (PARAM_NAME_MAX + 32)  // a parameter name plus an optimizer suffix

// PyTorch stores a counter (BatchNorm's num_batches_tracked) as int64; regdist keeps it in a
// float slot. An optimizer moment has its parameter's p, and no trainable one is a counter.
static int is_counter(const ParamDesc *p) { return p->role == PARAM_COUNTER; }

// One tensor of optimizer state: torch.optim's moments per trainable parameter (SGD:
// momentum_buffer; Adam, AdamW: exp_avg and exp_avg_sq), named "<param>.<moment>".
typedef struct {
    char name[CKPT_NAME_MAX];
    const ParamDesc *p;
    float *buf;  // its slice of the moment buffer m or v (whole-model layout)
} OptimTensor;

// Lists the state tensors of an optimizer of kind whose moment buffers are m and v (either
// may be NULL: absent). *out is malloc'd; returns the count, or -1 when out of memory.
static int optim_tensors(const ParamTable *t, OptimKind kind, float *m, float *v,
                         OptimTensor **out) {
    const char *suffix[2] = {kind == OPTIM_SGD ? ".momentum_buffer" : ".exp_avg", ".exp_avg_sq"};
    float *moment[2] = {m, kind == OPTIM_SGD ? NULL : v};
    OptimTensor *list = malloc((size_t)(2 * t->n + 1) * sizeof *list);
    if (!list) return -1;
    int n = 0;
    for (int i = 0; i < t->n; i++)
        for (int k = 0; k < 2; k++) {
            if (t->p[i].kind != PARAM_TRAINABLE || !moment[k]) continue;
            snprintf(list[n].name, sizeof list[n].name, "%s%s", t->p[i].name, suffix[k]);
            list[n].p = &t->p[i];
            list[n++].buf = moment[k] + t->p[i].offset;
        }
    *out = list;
    return n;
}

// The run-progress attributes, so save and load walk the same list.
typedef struct {
    const char *name;
    int is_f64;
    size_t off;
} MetaField;
#define META_I64(f) {#f, 0, offsetof(CkptMeta, f)}
#define META_F64(f) {#f, 1, offsetof(CkptMeta, f)}
static const MetaField meta_fields[] = {
    META_I64(step),          META_I64(epoch),       META_I64(epoch_batch),
    META_F64(best_metric),   META_I64(best_epoch),  META_I64(bad_epochs),
    META_F64(epoch_loss_sum), META_I64(epoch_correct), META_I64(epoch_seen),
    META_F64(epoch_seconds), META_I64(skipped_steps),
};
#define N_META_FIELDS ((int)(sizeof meta_fields / sizeof meta_fields[0]))

// ---- saving ----

// Writes one tensor (shape from p) as float32, or int64 for a counter.
static int write_tensor(hid_t g, const char *name, const ParamDesc *p, const float *src) {
    hsize_t dims[PARAM_MAX_DIMS];
    for (int i = 0; i < p->ndim; i++) dims[i] = (hsize_t)p->shape[i];
    if (!is_counter(p))
        return h5u_write_dataset(g, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, p->ndim, dims, src);
    int64_t *tmp = malloc(p->numel * sizeof *tmp);
    if (!tmp) return H5U_FAIL;
    for (size_t i = 0; i < p->numel; i++) tmp[i] = (int64_t)llrint(src[i]);
    int rc = h5u_write_dataset(g, name, H5T_STD_I64LE, H5T_NATIVE_INT64, p->ndim, dims, tmp);
    free(tmp);
    return rc;
}

static int write_model(hid_t f, const Model *m) {
    hid_t g = h5u_group_create(f, "model");
    if (g < 0) return -1;
    int rc = 0;
    for (int i = 0; i < m->table.n && !rc; i++) {
        const ParamDesc *p = &m->table.p[i];
        const float *src = (p->kind == PARAM_TRAINABLE ? m->params : m->bufs) + p->offset;
        rc = write_tensor(g, p->name, p, src);
    }
    h5u_close(&g);
    return rc;
}

static int write_optim(hid_t f, const Model *m, const Optim *o) {
    hid_t g = h5u_group_create(f, "optim");
    if (g < 0) return -1;
    int rc = h5u_write_attr_str(g, "name", optim_kind_name(o->cfg.kind)) ||
             h5u_write_attr_i64(g, "step", o->step);
    OptimTensor *ts = NULL;
    int n = rc ? 0 : optim_tensors(&m->table, o->cfg.kind, o->m, o->v, &ts);
    if (n < 0) rc = -1;
    for (int k = 0; k < n && !rc; k++) rc = write_tensor(g, ts[k].name, ts[k].p, ts[k].buf);
    free(ts);
    h5u_close(&g);
    return rc;
}

static int write_meta(hid_t f, const CkptMeta *meta) {
    CkptMeta none = {.best_metric = -1, .best_epoch = -1};
    if (!meta) meta = &none;
    int rc = h5u_write_attr_i64(f, "format_version", CKPT_FORMAT_VERSION) ||
             h5u_write_attr_i64(f, "seed", meta->seed) ||
             h5u_write_attr_str(f, "config", meta->config_text ? meta->config_text : "");
    for (int i = 0; i < N_META_FIELDS && !rc; i++) {
        const char *field = (const char *)meta + meta_fields[i].off;
        rc = meta_fields[i].is_f64 ? h5u_write_attr_f64(f, meta_fields[i].name, *(const double *)field)
                                   : h5u_write_attr_i64(f, meta_fields[i].name, *(const int64_t *)field);
    }
    return rc;
}

int ckpt_save(const char *path, const Model *m, const Optim *opt, const CkptMeta *meta, Err *e) {
    if (opt && opt->n != m->table.n_trainable)
        return err_set(e, ERR_RUNTIME, "%s: optimizer holds %zu floats but the model has %zu",
                       path, opt->n, m->table.n_trainable);
    hid_t f = h5u_create_memory(path);
    if (f < 0) return err_set(e, ERR_RUNTIME, "%s: cannot create an HDF5 file in memory", path);
    int rc = write_meta(f, meta) || write_model(f, m) || (opt && write_optim(f, m, opt)) ||
                     (meta && meta->prep && prep_h5_write(f, meta->prep))
                 ? err_set(e, ERR_RUNTIME, "%s: cannot write: HDF5 failed building the "
                           "checkpoint (out of memory?)", path)
                 : h5u_save_atomic(f, path, e);
    H5Fclose(f);
    return rc;
}

// ---- loading ----

// Everything a load reads before it changes the caller's model and optimizer.
typedef struct {
    float *params, *bufs, *m, *v;
    int64_t opt_step;
    CkptMeta meta;
} Staged;

static void staged_free(Staged *s) {
    free(s->params);
    free(s->bufs);
    free(s->m);
    free(s->v);
    ckpt_meta_free(&s->meta);
}

// Reads dataset group/name into dst (p->numel floats), checking shape, type and values.
static int read_tensor(hid_t g, const char *file, const char *group, const char *name,
                       const ParamDesc *p, float *dst, Err *e) {
    if (!h5u_exists(g, name)) return h5u_err(e, file, "/%s/%s is missing", group, name);
    H5uInfo info;
    hid_t ds = H5Dopen2(g, name, H5P_DEFAULT);
    int rc = ERR_INPUT;
    if (ds < 0 || h5u_dataset_info(ds, &info)) {
        h5u_err(e, file, "/%s/%s is not a readable dataset", group, name);
        goto done;
    }
    int same = info.rank == p->ndim;
    for (int i = 0; same && i < p->ndim; i++) same = info.dims[i] == (hsize_t)p->shape[i];
    if (!same) {
        char have[128], want[128];
        hsize_t wd[PARAM_MAX_DIMS];
        for (int i = 0; i < p->ndim; i++) wd[i] = (hsize_t)p->shape[i];
        h5u_dims_str(have, sizeof have, info.rank, info.dims);
        h5u_dims_str(want, sizeof want, p->ndim, wd);
        h5u_err(e, file, "/%s/%s has shape %s but the model expects %s", group, name, have, want);
        goto done;
    }
    char what[160];
    snprintf(what, sizeof what, "/%s/%s", group, name);
    if (h5u_require_stored(ds, &info, file, what, e)) goto done;
    int counter = is_counter(p);
    if (!(info.cls == H5T_FLOAT || (counter && info.cls == H5T_INTEGER))) {
        h5u_err(e, file, "/%s/%s has type %s; expected %s", group, name, h5u_type_name(&info),
            counter ? "int64" : "float32");
        goto done;
    }
    int read_ok;
    if (counter) {
        double *tmp = malloc(p->numel * sizeof *tmp);
        read_ok = tmp && H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, tmp) >= 0;
        for (size_t i = 0; read_ok && i < p->numel; i++) dst[i] = (float)tmp[i];
        free(tmp);
    } else {
        read_ok = H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst) >= 0;
    }
    if (!read_ok) {
        h5u_err(e, file, "cannot read /%s/%s (damaged file?)", group, name);
        goto done;
    }
    for (size_t i = 0; i < p->numel; i++)
        if (!isfinite(dst[i])) {
            h5u_err(e, file, "/%s/%s holds %g at element %zu", group, name, (double)dst[i], i);
            goto done;
        }
    rc = ERR_OK;
done:
    h5u_close(&ds);
    return rc;
}

// H5Literate callback: stops at the first /model entry the model's table lacks.
typedef struct {
    const ParamTable *t;
    char extra[CKPT_NAME_MAX];
} ExtraSearch;

static herr_t find_extra(hid_t g, const char *name, const H5L_info_t *info, void *ctx) {
    (void)g;
    (void)info;
    ExtraSearch *s = ctx;
    if (param_table_find(s->t, name) >= 0) return 0;
    snprintf(s->extra, sizeof s->extra, "%s", name);
    return 1;
}

static int load_model(hid_t f, const char *file, const Model *m, Staged *s, Err *e) {
    if (!h5u_is_group(f, "model")) return h5u_err(e, file, "/model is missing");
    hid_t g = H5Gopen2(f, "model", H5P_DEFAULT);
    if (g < 0) return h5u_err(e, file, "cannot open /model (damaged file?)");
    int rc = ERR_OK;
    ExtraSearch xs = {.t = &m->table};
    herr_t it = H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, find_extra, &xs);
    if (it < 0)
        rc = h5u_err(e, file, "cannot list /model (damaged file?)");
    else if (it > 0)
        rc = h5u_err(e, file, "/model/%s is not in the model (a different architecture?)", xs.extra);
    s->params = malloc((m->table.n_trainable + 1) * sizeof(float));
    s->bufs = malloc((m->table.n_buffer + 1) * sizeof(float));
    if (!rc && (!s->params || !s->bufs)) rc = err_set(e, ERR_RUNTIME, "%s: out of memory", file);
    for (int i = 0; i < m->table.n && !rc; i++) {
        const ParamDesc *p = &m->table.p[i];
        float *dst = (p->kind == PARAM_TRAINABLE ? s->params : s->bufs) + p->offset;
        rc = read_tensor(g, file, "model", p->name, p, dst, e);
    }
    H5Gclose(g);
    return rc;
}

static int load_optim(hid_t f, const char *file, const Model *m, const Optim *o, Staged *s,
                      Err *e) {
    if (o->n != m->table.n_trainable)
        return err_set(e, ERR_RUNTIME, "%s: optimizer holds %zu floats but the model has %zu", file,
                       o->n, m->table.n_trainable);
    if (!h5u_is_group(f, "optim"))
        return h5u_err(e, file, "/optim is missing: the checkpoint holds no optimizer state");
    hid_t g = H5Gopen2(f, "optim", H5P_DEFAULT);
    if (g < 0) return h5u_err(e, file, "cannot open /optim (damaged file?)");
    char *kind = NULL;
    int rc = ERR_OK;
    const char *want = optim_kind_name(o->cfg.kind);
    if (h5u_read_attr_str(g, "name", &kind))
        rc = h5u_err(e, file, "/optim attribute name is missing or not a string");
    else if (strcmp(kind, want) != 0)
        rc = h5u_err(e, file, "checkpoint holds %s state but the config asks for %s", kind, want);
    else if (h5u_read_attr_i64(g, "step", &s->opt_step))
        rc = h5u_err(e, file, "/optim attribute step is missing or not an integer");
    size_t floats = m->table.n_trainable + 1;
    if (!rc && o->m && !(s->m = malloc(floats * sizeof(float))))
        rc = err_set(e, ERR_RUNTIME, "%s: out of memory", file);
    if (!rc && o->v && o->cfg.kind != OPTIM_SGD && !(s->v = malloc(floats * sizeof(float))))
        rc = err_set(e, ERR_RUNTIME, "%s: out of memory", file);
    OptimTensor *ts = NULL;
    int n = rc ? 0 : optim_tensors(&m->table, o->cfg.kind, s->m, s->v, &ts);
    if (n < 0) rc = err_set(e, ERR_RUNTIME, "%s: out of memory", file);
    for (int k = 0; k < n && !rc; k++)
        rc = read_tensor(g, file, "optim", ts[k].name, ts[k].p, ts[k].buf, e);
    free(ts);
    free(kind);
    H5Gclose(g);
    return rc;
}

static int check_version(hid_t f, const char *file, Err *e) {
    int64_t v;
    int rc = h5u_read_attr_i64(f, "format_version", &v);
    if (rc == H5U_MISSING)
        return h5u_err(e, file, "root attribute format_version is missing: not a regdist checkpoint");
    if (rc) return h5u_err(e, file, "root attribute format_version is not an integer");
    if (v != CKPT_FORMAT_VERSION)
        return h5u_err(e, file, "format_version is %lld but this regdist reads version %d",
                   (long long)v, CKPT_FORMAT_VERSION);
    return ERR_OK;
}

// Reads the root attributes into meta (meta->config_text malloc'd); not /preprocessing.
static int read_meta(hid_t f, const char *file, CkptMeta *meta, Err *e) {
    memset(meta, 0, sizeof *meta);
    for (int i = 0; i < N_META_FIELDS; i++) {
        char *field = (char *)meta + meta_fields[i].off;
        int rc = meta_fields[i].is_f64 ? h5u_read_attr_f64(f, meta_fields[i].name, (double *)field)
                                       : h5u_read_attr_i64(f, meta_fields[i].name, (int64_t *)field);
        if (rc)
            return h5u_err(e, file, "root attribute %s is %s", meta_fields[i].name,
                       rc == H5U_MISSING ? "missing" : "not a number");
    }
    int64_t seed;
    if (h5u_read_attr_i64(f, "seed", &seed) || seed < 0 || seed > (int64_t)UINT32_MAX)
        return h5u_err(e, file, "root attribute seed is missing or not a 32-bit unsigned integer");
    meta->seed = (uint32_t)seed;
    if (h5u_read_attr_str(f, "config", &meta->config_text))
        return h5u_err(e, file, "root attribute config is missing or not a string");
    return ERR_OK;
}

int ckpt_load(const char *path, Model *m, Optim *opt, CkptMeta *meta, Err *e) {
    const char *why;
    hid_t f = h5u_open(path, &why);
    if (f < 0) return h5u_err(e, path, "cannot load checkpoint: %s", why);
    Staged s = {0};
    int rc = check_version(f, path, e);
    if (!rc) rc = load_model(f, path, m, &s, e);
    if (!rc && opt) rc = load_optim(f, path, m, opt, &s, e);
    if (!rc && meta) rc = read_meta(f, path, &s.meta, e);
    H5Fclose(f);
    if (!rc) {
        memcpy(m->params, s.params, m->table.n_trainable * sizeof(float));
        memcpy(m->bufs, s.bufs, m->table.n_buffer * sizeof(float));
        if (opt) {
            if (s.m) memcpy(opt->m, s.m, opt->n * sizeof(float));
            if (s.v) memcpy(opt->v, s.v, opt->n * sizeof(float));
            opt->step = s.opt_step;
        }
        if (meta) {
            *meta = s.meta;  // the caller owns config_text now
            s.meta.config_text = NULL;
        }
    }
    staged_free(&s);
    return rc;
}

int ckpt_read_meta(const char *path, CkptMeta *meta, Err *e) {
    const char *why;
    memset(meta, 0, sizeof *meta);
    hid_t f = h5u_open(path, &why);
    if (f < 0) return h5u_err(e, path, "cannot read checkpoint: %s", why);
    int rc = check_version(f, path, e);
    if (!rc) rc = read_meta(f, path, meta, e);
    if (!rc) {
        int has = prep_h5_read(f, path, &meta->stored_prep, e);
        meta->has_prep = has == H5U_OK;
        if (has != H5U_OK && has != H5U_MISSING) rc = ERR_INPUT;
    }
    H5Fclose(f);
    if (rc) ckpt_meta_free(meta);
    return rc;
}

void ckpt_meta_free(CkptMeta *meta) {
    free(meta->config_text);
    meta->config_text = NULL;
    prep_free(&meta->stored_prep);
    meta->has_prep = 0;
}
