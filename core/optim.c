// optim.c: SGD, Adam and AdamW with torch.optim 1.13's formulas (single-tensor path):
// scalars are computed in double as Python does, then applied to float32 tensors.
#include "optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *const optim_kind_names[] = {"sgd", "adam", "adamw", NULL};
_Static_assert(sizeof optim_kind_names / sizeof optim_kind_names[0] == OPTIM_NKINDS + 1,
               "optim_kind_names needs one name per OptimKind");

const char *optim_kind_name(OptimKind k) {
    return k >= 0 && k < OPTIM_NKINDS ? optim_kind_names[k] : "?";
}

int optim_init(Optim *o, const OptimConfig *cfg, size_t n) {
    memset(o, 0, sizeof *o);
    o->cfg = *cfg;
    o->n = n;
    o->m = calloc(n ? n : 1, sizeof(float));
    if (cfg->kind != OPTIM_SGD) o->v = calloc(n ? n : 1, sizeof(float));
    if (!o->m || (cfg->kind != OPTIM_SGD && !o->v)) {
        optim_free(o);
        return -1;
    }
    return 0;
}

void optim_free(Optim *o) {
    free(o->m);
    free(o->v);
    memset(o, 0, sizeof *o);
}

// torch.optim.SGD: d = g + wd p; buf = d (first step) or momentum buf + (1-dampening) d;
// d = d + momentum buf (Nesterov) or buf; p -= lr d.
static void sgd_update(float *p, float *buf, const float *g, size_t n, const OptimConfig *c,
                       float wd, float lr, int first) {
    float mom = c->momentum, damp = 1.0f - c->dampening;
    for (size_t i = 0; i < n; i++) {
        float d = g[i];
        if (wd != 0.0f) d = d + wd * p[i];
        if (mom != 0.0f) {
            buf[i] = first ? d : buf[i] * mom + damp * d;
            d = c->nesterov ? d + mom * buf[i] : buf[i];
        }
        p[i] = p[i] - lr * d;
    }
}

// torch.optim.Adam / AdamW. decoupled: p *= 1 - lr wd; coupled: g += wd p. Written without
// branches so it vectorizes: multiplying by 1 and adding 0 * p are exact for finite p.
// g is taken times gs (exact when 1); with coupled decay the caller scales g itself (gs 1).
static void adam_update(float *restrict p, float *restrict m, float *restrict v,
                        const float *restrict g, float gs, size_t n, const OptimConfig *c,
                        float wd, float lr, int64_t step, int decoupled) {
    double bc1 = 1.0 - pow((double)c->beta1, (double)step);
    double bc2 = 1.0 - pow((double)c->beta2, (double)step);
    float step_size = (float)((double)lr / bc1);
    float bc2_sqrt = (float)sqrt(bc2);
    float decay = decoupled ? (float)(1.0 - (double)lr * (double)wd) : 1.0f;
    float coupled_wd = decoupled ? 0.0f : wd;
    float b1 = c->beta1, b2 = c->beta2, one_b1 = (float)(1.0 - (double)c->beta1),
          one_b2 = (float)(1.0 - (double)c->beta2), eps = c->eps;
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] * gs + coupled_wd * p[i];
        float mi = m[i] * b1 + one_b1 * gi;
        float vi = v[i] * b2 + one_b2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        p[i] = p[i] * decay - step_size * mi / denom;
    }
}

void optim_step(Optim *o, float *params, float *grads, const ParamTable *t, float lr,
                float grad_scale) {
    o->step++;
    const OptimConfig *c = &o->cfg;
    for (int i = 0; i < t->n; i++) {
        const ParamDesc *d = &t->p[i];
        if (d->kind != PARAM_TRAINABLE) continue;
        float wd = d->decay ? c->weight_decay : 0.0f;
        float *p = params + d->offset, *g = grads + d->offset, gs = grad_scale;
        int as_read = c->kind != OPTIM_SGD && (c->kind == OPTIM_ADAMW || wd == 0.0f);
        if (!as_read && gs != 1.0f) {
            for (size_t j = 0; j < d->numel; j++) g[j] *= gs;
            gs = 1.0f;
        }
        switch (c->kind) {
        case OPTIM_SGD:
            sgd_update(p, o->m + d->offset, g, d->numel, c, wd, lr, o->step == 1);
            break;
        case OPTIM_ADAM:
        case OPTIM_ADAMW:
            adam_update(p, o->m + d->offset, o->v + d->offset, g, gs, d->numel, c, wd, lr,
                        o->step, c->kind == OPTIM_ADAMW);
            break;
        case OPTIM_NKINDS: break;  // not a kind
        }
    }
}
