// params.c: the parameter table (see params.h).
#include "params.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int param_table_add(ParamTable *t, const char *layer_name, const char *param_name, ParamRole role,
                    int ndim, const int64_t *shape, int layer) {
    if (t->n == t->cap) {
        int cap = t->cap ? 2 * t->cap : 16;
        ParamDesc *p = realloc(t->p, (size_t)cap * sizeof *p);
        if (!p) return -1;
        t->p = p;
        t->cap = cap;
    }
    ParamDesc *d = &t->p[t->n];
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "%s.%s", layer_name, param_name);
    d->ndim = ndim;
    d->numel = 1;
    for (int i = 0; i < ndim; i++) {
        d->shape[i] = shape[i];
        d->numel *= (size_t)shape[i];
    }
    d->role = role;
    d->kind = param_role_kind(role);
    d->decay = role == PARAM_WEIGHT;
    d->layer = layer;
    if (d->kind == PARAM_TRAINABLE) {
        d->offset = t->n_trainable;
        t->n_trainable += d->numel;
    } else {
        d->offset = t->n_buffer;
        t->n_buffer += d->numel;
    }
    return t->n++;
}

void param_table_free(ParamTable *t) {
    free(t->p);
    memset(t, 0, sizeof *t);
}

int param_table_find(const ParamTable *t, const char *name) {
    for (int i = 0; i < t->n; i++)
        if (strcmp(t->p[i].name, name) == 0) return i;
    return -1;
}
