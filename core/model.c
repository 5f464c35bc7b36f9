// model.c: the layer registry, model construction and planning, forward and backward.
#include "model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const LayerKind layer_linear, layer_relu, layer_gelu, layer_layernorm, layer_dropout,
    layer_flatten, layer_conv2d, layer_maxpool2d, layer_avgpool2d, layer_globalavgpool;

static const LayerKind *const registry[] = {
    &layer_linear,    &layer_relu,      &layer_gelu,      &layer_layernorm,
    &layer_dropout,   &layer_flatten,   &layer_conv2d,    &layer_maxpool2d,
    &layer_avgpool2d, &layer_globalavgpool,
};
#define NKINDS (int)(sizeof registry / sizeof registry[0])

const LayerKind *layer_kind_find(const char *type) {
    for (int i = 0; i < NKINDS; i++)
        if (strcmp(registry[i]->type, type) == 0) return registry[i];
    return NULL;
}

const char *layer_kind_names(void) {
    static char names[512];
    if (!names[0])
        for (int i = 0; i < NKINDS; i++) {
            if (i) strncat(names, ", ", sizeof names - strlen(names) - 1);
            strncat(names, registry[i]->type, sizeof names - strlen(names) - 1);
        }
    return names;
}

int layer_add_param(Layer *l, ParamTable *t, const char *name, ParamKind kind, int ndim,
                    const int64_t *shape, Err *e) {
    if (l->nparam >= LAYER_PARAMS_MAX)
        return err_set(e, ERR_RUNTIME, "layer %s declares too many parameters", l->spec.name);
    int idx = param_table_add(t, l->spec.name, name, kind, ndim, shape, (int)(l->id - 1));
    if (idx < 0) return err_set(e, ERR_RUNTIME, "out of memory declaring %s.%s", l->spec.name, name);
    if (l->nparam == 0) l->param0 = idx;
    l->poff[l->nparam++] = t->p[idx].offset;
    return ERR_OK;
}

static void shape_str(char *buf, size_t len, Shape s) {
    int n = snprintf(buf, len, "(");
    for (int i = 0; i < s.ndim && n < (int)len; i++)
        n += snprintf(buf + n, len - (size_t)n, i ? ",%d" : "%d", s.d[i]);
    if (n < (int)len) snprintf(buf + n, len - (size_t)n, ")");
}

int model_build(Model *m, const LayerSpec *specs, int nspecs, Shape in, int num_classes, Err *e) {
    memset(m, 0, sizeof *m);
    if (nspecs <= 0) return err_set(e, ERR_INPUT, "the model has no layers");
    m->layers = calloc((size_t)nspecs, sizeof *m->layers);
    if (!m->layers) return err_set(e, ERR_RUNTIME, "out of memory");
    m->nlayers = nspecs;
    m->in = in;
    m->num_classes = num_classes;
    Shape cur = in;
    for (int i = 0; i < nspecs; i++) {
        Layer *l = &m->layers[i];
        l->spec = specs[i];
        l->id = i + 1;
        l->kind = layer_kind_find(specs[i].type);
        if (!l->kind)
            return err_set(e, ERR_INPUT, "layer %s: unknown type '%s' (known: %s)", specs[i].name,
                           specs[i].type, layer_kind_names());
        for (int j = 0; j < i; j++)
            if (strcmp(m->layers[j].spec.name, specs[i].name) == 0)
                return err_set(e, ERR_INPUT, "two layers are named '%s'", specs[i].name);
        l->in = cur;
        if (l->kind->setup(l, cur, &m->table, e)) return e->code;
        cur = l->out;
    }
    if (cur.ndim != 1 || cur.d[0] != num_classes) {
        char s[64];
        shape_str(s, sizeof s, cur);
        return err_set(e, ERR_INPUT,
                       "the model's last layer outputs %s per sample but the data has %d classes",
                       s, num_classes);
    }
    size_t np = m->table.n_trainable, nb = m->table.n_buffer;
    m->params = calloc(np ? np : 1, sizeof(float));
    m->grads = calloc(np ? np : 1, sizeof(float));
    m->bufs = calloc(nb ? nb : 1, sizeof(float));
    if (!m->params || !m->grads || !m->bufs) return err_set(e, ERR_RUNTIME, "out of memory");
    return ERR_OK;
}

static void free_plan(Model *m) {
    for (int i = 0; i < m->nlayers; i++) {
        Layer *l = &m->layers[i];
        if (m->acts) free(m->acts[i]);
        if (m->dacts) free(m->dacts[i]);
        free(l->save);
        l->save = NULL;
        if (l->kind && l->kind->release) l->kind->release(l);
    }
    free(m->acts);
    free(m->dacts);
    m->acts = m->dacts = NULL;
    m->max_batch = 0;
}

int model_plan(Model *m, int max_batch, Err *e) {
    free_plan(m);
    if (max_batch <= 0) return err_set(e, ERR_INPUT, "batch size must be positive");
    m->acts = calloc((size_t)m->nlayers, sizeof *m->acts);
    m->dacts = calloc((size_t)m->nlayers, sizeof *m->dacts);
    if (!m->acts || !m->dacts) return err_set(e, ERR_RUNTIME, "out of memory");
    for (int i = 0; i < m->nlayers; i++) {
        Layer *l = &m->layers[i];
        size_t n = (size_t)max_batch * shape_numel(l->out);
        m->acts[i] = malloc(n * sizeof(float));
        m->dacts[i] = malloc(n * sizeof(float));
        size_t save = (size_t)max_batch * l->save_bytes_per_sample + l->save_bytes_fixed;
        if (save) l->save = malloc(save);
        if (!m->acts[i] || !m->dacts[i] || (save && !l->save))
            return err_set(e, ERR_RUNTIME, "out of memory planning activations for batch %d",
                           max_batch);
        if (l->kind->plan && l->kind->plan(l, max_batch, e)) return e->code;
    }
    m->max_batch = max_batch;
    return ERR_OK;
}

void model_free(Model *m) {
    if (m->layers) free_plan(m);
    free(m->layers);
    free(m->params);
    free(m->grads);
    free(m->bufs);
    param_table_free(&m->table);
    memset(m, 0, sizeof *m);
}

void model_init(Model *m, uint32_t seed) {
    for (int i = 0; i < m->nlayers; i++) {
        const Layer *l = &m->layers[i];
        if (l->kind->init) l->kind->init(l, m->params, m->bufs, seed);
    }
}

const float *model_forward(Model *m, const float *x, int B, const StepCtx *c) {
    const float *in = x;
    for (int i = 0; i < m->nlayers; i++) {
        Layer *l = &m->layers[i];
        l->kind->forward(l, m->acts[i], in, m->params, m->bufs, c, B);
        in = m->acts[i];
    }
    return in;
}

// The slice of model.grads that layer l owns: its trainable entries are consecutive.
static void layer_grad_range(const Model *m, const Layer *l, size_t *off, size_t *count) {
    *off = 0;
    *count = 0;
    int first = 1;
    for (int j = 0; j < l->nparam; j++) {
        const ParamDesc *p = &m->table.p[l->param0 + j];
        if (p->kind != PARAM_TRAINABLE) continue;
        if (first) *off = p->offset;
        first = 0;
        *count = p->offset + p->numel - *off;
    }
}

void model_backward(Model *m, const float *x, const float *dlogits, int B, const StepCtx *c) {
    for (int i = m->nlayers - 1; i >= 0; i--) {
        Layer *l = &m->layers[i];
        const float *dout = i == m->nlayers - 1 ? dlogits : m->dacts[i];
        const float *in = i > 0 ? m->acts[i - 1] : x;
        float *din = i > 0 ? m->dacts[i - 1] : NULL;
        l->kind->backward(l, din, m->grads, dout, in, m->acts[i], m->params, c, B);
        if (m->grad_ready) {
            size_t off, count;
            layer_grad_range(m, l, &off, &count);
            if (count) m->grad_ready(m->grad_ready_ctx, off, count);
        }
    }
}

void model_zero_grad(Model *m) { memset(m->grads, 0, m->table.n_trainable * sizeof(float)); }

void model_describe(const Model *m, char *buf, size_t len) {
    size_t n = 0;
    char a[64], b[64];
    shape_str(a, sizeof a, m->in);
    n += (size_t)snprintf(buf + n, len - n, "%-12s %-10s %-14s %s\n", "layer", "type", "output",
                          "params");
    n += (size_t)snprintf(buf + n < buf + len ? buf + n : buf, n < len ? len - n : 0,
                          "%-12s %-10s %-14s\n", "input", "", a);
    for (int i = 0; i < m->nlayers && n < len; i++) {
        const Layer *l = &m->layers[i];
        size_t count = 0;
        for (int j = 0; j < l->nparam; j++) count += m->table.p[l->param0 + j].numel;
        shape_str(b, sizeof b, l->out);
        n += (size_t)snprintf(buf + n, len - n, "%-12s %-10s %-14s %zu\n", l->spec.name,
                              l->kind->type, b, count);
    }
    if (n < len)
        snprintf(buf + n, len - n, "total %zu trainable parameters", m->table.n_trainable);
}
