// layer.c: the layer registry, and what every kind shares: declaring a parameter, finding a
// key, naming the dropout-family regularizer a layer applies. A new kind is its own file
// plus its name in LAYER_KINDS below.
#include "layer.h"

#include <string.h>

#include "prof.h"

// Every kind, in the order of error messages and train --help: a new kind is one more name
// here (its file exports layer_<name>).
#define LAYER_KINDS(X)                                                                    \
    X(linear) X(relu) X(gelu) X(layernorm) X(dropout) X(flatten) X(conv2d) X(maxpool2d)   \
    X(avgpool2d) X(globalavgpool) X(dropout2d) X(dropblock) X(batchnorm) X(residual)

#define DECLARE(name) extern const LayerKind layer_##name;
LAYER_KINDS(DECLARE)
#define ENTRY(name) &layer_##name,
static const LayerKind *const registry[] = {LAYER_KINDS(ENTRY)};
#define NKINDS (int)(sizeof registry / sizeof registry[0])

int layer_kind_count(void) { return NKINDS; }

const LayerKind *layer_kind_at(int i) { return i >= 0 && i < NKINDS ? registry[i] : NULL; }

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

const LayerKeyDesc *layer_kind_key(const LayerKind *k, const char *key) {
    for (int i = 0; k && i < k->nkeys; i++)
        if (strcmp(k->keys[i].key, key) == 0) return &k->keys[i];
    return NULL;
}

const char *layer_spec_drop(const LayerSpec *spec, const char **key) {
    const LayerKind *k = layer_kind_find(spec->type);
    if (!k || !k->drop_name) return NULL;
    const LayerKeyDesc *d = layer_kind_key(k, k->drop_key);
    if (!(k->flags & LAYER_STOCHASTIC) &&
        !(d && d->type == LAYER_KEY_FLOAT && *(const float *)((const char *)spec + d->offset) > 0))
        return NULL;
    if (key) *key = k->drop_key;
    return k->drop_name;
}

int layer_add_param(Layer *l, ParamTable *t, const char *name, ParamRole role, int ndim,
                    const int64_t *shape, Err *e) {
    if (l->nparam >= LAYER_PARAMS_MAX)
        return err_set(e, ERR_RUNTIME, "layer %s declares too many parameters", l->spec.name);
    int idx = param_table_add(t, l->spec.name, name, role, ndim, shape, l->id);
    if (idx < 0)
        return err_set(e, ERR_RUNTIME, "out of memory declaring %s.%s", l->spec.name, name);
    if (l->nparam == 0) l->param0 = idx;
    l->poff[l->nparam++] = t->p[idx].offset;
    return ERR_OK;
}

// The bytes the pass counted for writing dst are not counted: a chunk in cache, which the
// layer taking it reads from there (the profile counts what reaches memory).
void sample_range_dinp(const SampleRange *r, float *dst, int b0, int n) {
    double t = prof_start();
    r->l->kind->dinp_range(r->l, dst, b0, n, r->dout, r->inp, r->params, r->c, r->B, &r->rm);
    prof_bytes(-(double)n * r->numel);
    prof_add(PROF_ELEMENTWISE, t);
}

void sample_range_out(const SampleRange *r, float *dst, int b0, int n) {
    double t = prof_start();
    r->l->kind->out_range(r->l, dst, b0, n, r->inp, r->params, r->c, r->B, &r->rm);
    prof_bytes(-(double)n * r->numel);
    prof_add(PROF_ELEMENTWISE, t);
}
