// model.c: a model: a sequence of layers over flat parameter buffers (model.h).
#include "model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void shape_str(char *buf, size_t len, Shape s) {
    int n = snprintf(buf, len, "(");
    for (int i = 0; i < s.ndim && n < (int)len; i++)
        n += snprintf(buf + n, len - (size_t)n, i ? ",%d" : "%d", s.d[i]);
    if (n < (int)len) snprintf(buf + n, len - (size_t)n, ")");
}

static void specs_free(LayerSpec *specs, int n) {
    for (int i = 0; specs && i < n; i++) specs_free(specs[i].children, specs[i].nchildren);
    free(specs);
}

// A deep copy of specs (n > 0) with out = "classes" replaced by num_classes; *used counts
// the layers that said "classes". NULL when out of memory.
static LayerSpec *specs_resolve(const LayerSpec *specs, int n, int num_classes, int *used) {
    LayerSpec *copy = calloc((size_t)n, sizeof *copy);
    if (!copy) return NULL;
    for (int i = 0; i < n; i++) {
        copy[i] = specs[i];
        copy[i].children = NULL;
        if (copy[i].out == LAYER_OUT_CLASSES) copy[i].out = num_classes, (*used)++;
        if (specs[i].nchildren > 0) {
            copy[i].children = specs_resolve(specs[i].children, specs[i].nchildren, num_classes,
                                             used);
            if (!copy[i].children) {
                copy[i].nchildren = 0;
                specs_free(copy, i + 1);
                return NULL;
            }
        }
    }
    return copy;
}

int model_build(Model *m, const LayerSpec *specs, int nspecs, Shape in, int num_classes, Err *e) {
    memset(m, 0, sizeof *m);
    if (nspecs <= 0) return err_set(e, ERR_INPUT, "the model has no layers");
    m->in = in;
    m->num_classes = num_classes;
    int classes_used = 0;
    m->specs = specs_resolve(specs, nspecs, num_classes, &classes_used);
    if (!m->specs) return err_set(e, ERR_RUNTIME, "out of memory");
    m->nspecs = nspecs;
    if (classes_used && num_classes < 1)
        return err_set(e, ERR_INPUT,
                       "out = \"classes\" needs the data's class count, and it is %d", num_classes);
    Shape out;
    if (seq_setup(&m->seq, m->specs, nspecs, in, "", 1, &m->table, &out, e)) return e->code;
    if (out.ndim != 1 || out.d[0] != num_classes) {
        char s[64];
        shape_str(s, sizeof s, out);
        return err_set(e, ERR_INPUT,
                       "the model's last layer outputs %s per sample but the data has %d classes%s",
                       s, num_classes,
                       classes_used ? ""
                                    : " (out = \"classes\" on the last layer takes the data's)");
    }
    size_t np = m->table.n_trainable, nb = m->table.n_buffer;
    m->params = calloc(np ? np : 1, sizeof(float));
    m->grads = calloc(np ? np : 1, sizeof(float));
    m->bufs = calloc(nb ? nb : 1, sizeof(float));
    if (!m->params || !m->grads || !m->bufs) return err_set(e, ERR_RUNTIME, "out of memory");
    return ERR_OK;
}

int model_plan(Model *m, int max_batch, Err *e) {
    if (max_batch <= 0) return err_set(e, ERR_INPUT, "batch size must be positive");
    if (m->max_batch) return err_set(e, ERR_RUNTIME, "the model is already planned");
    m->dlogits = malloc((size_t)max_batch * (size_t)m->num_classes * sizeof(float));
    if (!m->dlogits) return err_set(e, ERR_RUNTIME, "out of memory");
    if (seq_plan(&m->seq, max_batch, e)) return e->code;
    m->max_batch = max_batch;
    return ERR_OK;
}

void model_free(Model *m) {
    seq_free(&m->seq);
    specs_free(m->specs, m->nspecs);
    free(m->dlogits);
    free(m->params);
    free(m->grads);
    free(m->bufs);
    param_table_free(&m->table);
    memset(m, 0, sizeof *m);
}

void model_init(Model *m, uint32_t seed) { seq_init(&m->seq, m->params, m->bufs, seed); }

const float *model_forward(Model *m, const float *x, int B, const StepCtx *c) {
    return seq_forward(&m->seq, x, m->params, m->bufs, c, B);
}

void model_backward(Model *m, const float *x, const float *dlogits, int B, const StepCtx *c) {
    seq_backward(&m->seq, NULL, m->grads, dlogits, x, m->params, c, B, &m->table, m->grad_ready,
                 m->grad_ready_ctx);
}

void model_zero_grad(Model *m) { memset(m->grads, 0, m->table.n_trainable * sizeof(float)); }
