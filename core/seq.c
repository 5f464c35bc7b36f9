// seq.c: layers in order (seq.h).
#include "seq.h"

#include "kernels.h"
#include "prof.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int seq_setup(Seq *s, const LayerSpec *specs, int n, Shape in, const char *prefix, int id_base,
              ParamTable *t, Shape *out, Err *e) {
    memset(s, 0, sizeof *s);
    s->layers = calloc((size_t)n, sizeof *s->layers);
    if (!s->layers) return err_set(e, ERR_RUNTIME, "out of memory");
    s->n = n;
    Shape cur = in;
    for (int i = 0; i < n; i++) {
        Layer *l = &s->layers[i];
        l->spec = specs[i];
        if (snprintf(l->spec.name, sizeof l->spec.name, "%s%s", prefix, specs[i].name) >=
            (int)sizeof l->spec.name)
            return err_set(e, ERR_INPUT, "layer name %s%s is too long", prefix, specs[i].name);
        l->id = id_base + i;
        l->kind = layer_kind_find(specs[i].type);
        if (!l->kind)
            return err_set(e, ERR_INPUT, "layer %s: unknown type '%s' (known: %s)", l->spec.name,
                           specs[i].type, layer_kind_names());
        for (int j = 0; j < i; j++)
            if (strcmp(s->layers[j].spec.name, l->spec.name) == 0)
                return err_set(e, ERR_INPUT, "two layers are named '%s'", l->spec.name);
        l->in = cur;
        l->param0 = t->n;
        if (l->kind->setup(l, cur, t, e)) return e->code;
        l->nparam = t->n - l->param0;  // including what nested layers declared
        cur = l->out;
    }
    s->first_param = n;
    for (int i = n - 1; i >= 0; i--)
        for (int j = 0; j < s->layers[i].nparam; j++)
            if (t->p[s->layers[i].param0 + j].kind == PARAM_TRAINABLE) s->first_param = i;
    *out = cur;
    return ERR_OK;
}

int seq_plan(Seq *s, int max_batch, Err *e) {
    s->acts = calloc((size_t)s->n, sizeof *s->acts);
    s->dacts = calloc((size_t)s->n, sizeof *s->dacts);
    if (!s->acts || !s->dacts) return err_set(e, ERR_RUNTIME, "out of memory");
    for (int i = 0; i < s->n; i++) {
        Layer *l = &s->layers[i];
        size_t n = (size_t)max_batch * shape_numel(l->out);
        s->acts[i] = malloc(n * sizeof(float));
        s->dacts[i] = malloc(n * sizeof(float));
        size_t save = (size_t)max_batch * l->save_bytes_per_sample + l->save_bytes_fixed;
        if (save) l->save = malloc(save);
        if (!s->acts[i] || !s->dacts[i] || (save && !l->save))
            return err_set(e, ERR_RUNTIME, "out of memory planning activations for batch %d",
                           max_batch);
        if (l->kind->plan && l->kind->plan(l, max_batch, e)) return e->code;
    }
    return ERR_OK;
}

void seq_free(Seq *s) {
    for (int i = 0; s->layers && i < s->n; i++) {
        Layer *l = &s->layers[i];
        if (s->acts) free(s->acts[i]);
        if (s->dacts) free(s->dacts[i]);
        free(l->save);
        if (l->kind && l->kind->release) l->kind->release(l);
    }
    free(s->acts);
    free(s->dacts);
    free(s->layers);
    memset(s, 0, sizeof *s);
}

void seq_init(const Seq *s, float *params, float *bufs, uint32_t seed) {
    for (int i = 0; i < s->n; i++) {
        const Layer *l = &s->layers[i];
        if (l->kind->init) l->kind->init(l, params, bufs, seed);
    }
}

static int is_relu(const Seq *s, int i) {
    return i < s->n && (s->layers[i].kind->flags & LAYER_RELU);
}
static int is_mask(const Seq *s, int i) { return i < s->n && s->layers[i].kind->relu_mask; }

static int is_max2x2(Seq *s, int i) {
    return i < s->n && s->layers[i].kind->max2x2_argmax &&
           s->layers[i].kind->max2x2_argmax(&s->layers[i]);
}

// How many layers from i on run as one fused pass (layer.h's fusion hooks): for a layer with
// forward_relu_mask (BatchNorm), it, a ReLU, a mask layer (dropout, Dropout2d) if one follows
// and a 2x2 stride-2 max-pool if one follows that (2 to 4); 2 for a ReLU and a mask layer;
// else 1. Fused, the activations take one sweep each way instead of one per layer, and the
// inner layers' output and gradient buffers are never written (nor, untouched, resident).
static int group_len(Seq *s, int i) {
    const LayerKind *k = s->layers[i].kind;
    if (k->forward_relu_mask && k->backward_relu_mask && is_relu(s, i + 1)) {
        int g = is_mask(s, i + 2) ? 3 : 2;
        return is_max2x2(s, i + g) ? g + 1 : g;
    }
    if (is_relu(s, i) && is_mask(s, i + 1)) return 2;
    return 1;
}

// The mask of group [i, i+g): its mask layer's, or none (keep NULL, scale 1); and the argmax
// of the max-pool that ends it, if one does.
static ReluMask group_mask(Seq *s, int i, int g, const StepCtx *c, int B, int draw) {
    ReluMask rm = {NULL, 0, 1.0f, NULL};
    int last = i + g - 1;
    if (g > 2 && is_max2x2(s, last)) {
        Layer *p = &s->layers[last--];
        rm.argmax = p->kind->max2x2_argmax(p);
    }
    Layer *m = &s->layers[last];
    if (is_mask(s, last)) m->kind->relu_mask(m, c, B, draw, &rm);
    return rm;
}

// A ReLU and the mask of layer m in one sweep: out = mask(relu(x)); backward dx from dout.
static void relu_mask_forward(float *out, const float *x, const ReluMask *rm, const Layer *m,
                              int B) {
    size_t D = shape_numel(m->in);
    if (rm->per_channel)
        relu_dropout2d_forward(out, x, rm->keep, rm->scale, B, m->in.d[0], (int)(D / m->in.d[0]));
    else
        relu_dropout_forward(out, x, rm->keep, rm->scale, (size_t)B * D);
}
static void relu_mask_backward(float *dx, const float *dout, const float *x, const ReluMask *rm,
                               const Layer *m, int B) {
    size_t D = shape_numel(m->in);
    if (rm->per_channel)
        relu_dropout2d_backward(dx, dout, x, rm->keep, rm->scale, B, m->in.d[0],
                                (int)(D / m->in.d[0]));
    else
        relu_dropout_backward(dx, dout, x, rm->keep, rm->scale, (size_t)B * D);
}

// The seconds a layer call's own counters take (a conv2d's GEMMs, the gradient handed to it by
// samples, a BatchNorm's reduction across ranks), which prof_layer does not count again.
static double prof_inner(void) {
    double t = 0;
    for (int k = 0; k < PROF_KINDS; k++) t += prof.seconds[k];
    return t;
}

// The profile's share of one layer call that began at t0 with the counters at g0
// (prof_inner) and f0 (GEMM FLOPs): what the call did not report itself goes to its
// transforms if it timed GEMMs (conv2d: im2col, Winograd transforms, bias), to GEMM if it is a
// matrix-product kind that timed none (linear: flops_done FLOPs), and to elementwise work
// otherwise. A kind with a plan hook (a residual block) is not leaf: its branch's layers
// count themselves, and its own adds go uncounted.
static void prof_layer(const Layer *l, double t0, double g0, double f0, double flops_done) {
    if (!prof.on || l->kind->plan) return;
    double t = prof_clock() - t0;
    double inner = prof_inner() - g0;
    double rest = t - inner > 0 ? t - inner : 0;
    if (prof.gemm_flops > f0)
        prof.seconds[PROF_TRANSFORM] += rest;
    else if (l->kind->flops) {
        prof.seconds[PROF_GEMM] += rest;
        prof.gemm_flops += flops_done;
    } else
        prof.seconds[PROF_ELEMENTWISE] += rest;
}

// When layer i runs alone and can write its output planes' moments (LAYER_PLANE_MOMENTS), and
// the next layer wants them of its input (moments_wanted), points both at them for this pass.
static void link_moments(Seq *s, int i, int g, const StepCtx *c, int B) {
    Layer *l = &s->layers[i];
    if (g != 1 || !(l->kind->flags & LAYER_PLANE_MOMENTS) || i + 1 >= s->n) return;
    Layer *next = &s->layers[i + 1];
    if (next->kind->moments_wanted) l->out_moments = next->kind->moments_wanted(next, c, B);
    next->in_moments = l->out_moments;
}

// Whether the fused group [i, i+g) hands its output to the layer after it by samples (its
// out_range; LAYER_INP_BY_RANGE), in forward and again in backward, instead of writing it:
// where no max-pool ends the group, which would make its input four times its output.
static int hands_output(Seq *s, int i, int g) {
    const LayerKind *k = s->layers[i].kind;
    if (g == 1 || (k->flags & LAYER_RELU) || !k->out_range || is_max2x2(s, i + g - 1))
        return 0;
    return i + g < s->n && (s->layers[i + g].kind->flags & LAYER_INP_BY_RANGE) &&
           group_len(s, i + g) == 1;
}

const float *seq_forward(Seq *s, const float *x, const float *params, float *bufs,
                         const StepCtx *c, int B) {
    const float *in = x;
    SampleRange pulled;  // a group's output, handed to the layer after it
    int handed = 0;
    for (int i = 0; i < s->n;) {
        Layer *l = &s->layers[i];
        int g = group_len(s, i);
        float *out = s->acts[i + g - 1];
        link_moments(s, i, g, c, B);
        double t0 = prof_start(), g0 = prof_inner(), f0 = prof.gemm_flops;
        if (g == 1) {
            l->inp_range = handed ? &pulled : NULL;
            l->kind->forward(l, out, handed ? NULL : in, params, bufs, c, B);
            l->inp_range = NULL;
            handed = 0;
        } else {
            ReluMask rm = group_mask(s, i, g, c, B, 1);
            int hand = hands_output(s, i, g);
            if (l->kind->flags & LAYER_RELU)
                relu_mask_forward(out, in, &rm, &s->layers[i + 1], B);
            else
                l->kind->forward_relu_mask(l, hand ? NULL : out, in, params, bufs, c, B, &rm);
            if (hand) {
                size_t numel = shape_numel(s->layers[i + g - 1].out);
                pulled = (SampleRange){l, NULL, in, params, c, rm, B, numel}, handed = 1;
            }
        }
        // forward is a third of a training step's matrix-product FLOPs without dinp
        prof_layer(l, t0, g0, f0, l->kind->flops ? B * l->kind->flops(l, 0) / 2 : 0);
        l->out_moments = NULL;  // written; the next layer reads them, then drops its pointer
        l->in_moments = NULL;
        in = out;
        i += g;
    }
    return in;
}

double seq_flops(const Seq *s, int need_dinp) {
    double f = 0;
    for (int i = 0; i < s->n; i++) {
        const Layer *l = &s->layers[i];
        if (l->kind->flops) f += l->kind->flops(l, need_dinp || i > s->first_param);
    }
    return f;
}

// The slice of the gradient buffer that layer l owns: its trainable entries (its own and
// those of layers nested in it) are consecutive in the table.
static void grad_range(const ParamTable *t, const Layer *l, size_t *off, size_t *count) {
    *off = 0;
    *count = 0;
    int first = 1;
    for (int j = 0; j < l->nparam; j++) {
        const ParamDesc *p = &t->p[l->param0 + j];
        if (p->kind != PARAM_TRAINABLE) continue;
        if (first) *off = p->offset;
        first = 0;
        *count = p->offset + p->numel - *off;
    }
}

void seq_backward(Seq *s, float *din, float *grads, const float *dout, const float *x,
                  const float *params, const StepCtx *c, int B, const ParamTable *t,
                  GradReadyFn ready, void *ready_ctx) {
    int start[s->n];  // start[e]: the first layer of the fused group that ends at e
    for (int i = 0; i < s->n;) {
        int g = group_len(s, i);
        start[i + g - 1] = i;
        i += g;
    }
    SampleRange later;  // a fused group's input gradient, handed to the layer before it
    int handed = 0;
    // Without din, nothing before the first trainable layer needs a gradient: a flatten or an
    // input dropout there is not run back, and that layer computes no input gradient.
    int low = din ? 0 : s->first_param;
    for (int e = s->n - 1; e >= low;) {
        int i = start[e], g = e - i + 1;
        Layer *l = &s->layers[i];
        const float *d = e == s->n - 1 ? dout : s->dacts[e];
        const float *in = i > 0 ? s->acts[i - 1] : x;
        float *dprev = i == 0 ? din : i > low ? s->dacts[i - 1] : NULL;
        double t0 = prof_start(), g0 = prof_inner(), f0 = prof.gemm_flops;
        if (g == 1) {
            // its input by samples, if the group before it handed it so in forward
            int pull = i > 0 && hands_output(s, start[i - 1], i - start[i - 1]);
            SampleRange pulled;
            if (pull) {
                int i0 = start[i - 1];
                pulled = (SampleRange){&s->layers[i0], NULL, i0 > 0 ? s->acts[i0 - 1] : x,
                                       params, c, group_mask(s, i0, i - i0, c, B, 0), B,
                                       shape_numel(l->in)};
            }
            l->dout_range = handed ? &later : NULL;
            l->inp_range = pull ? &pulled : NULL;
            l->kind->backward(l, dprev, grads, handed ? NULL : d, pull ? NULL : in, s->acts[e],
                              params, c, B);
            l->dout_range = l->inp_range = NULL;
            handed = 0;
        } else {
            ReluMask rm = group_mask(s, i, g, c, B, 0);
            // the group's input gradient by samples, if the layer before it takes it so
            int hand = dprev && i > 0 && l->kind->dinp_range && start[i - 1] == i - 1 &&
                       (s->layers[i - 1].kind->flags & LAYER_DOUT_BY_RANGE);
            if (!(l->kind->flags & LAYER_RELU))
                l->kind->backward_relu_mask(l, hand ? NULL : dprev, grads, d, in, s->acts[e],
                                            params, c, B, &rm);
            else if (dprev)
                relu_mask_backward(dprev, d, in, &rm, &s->layers[i + 1], B);
            if (hand)
                later = (SampleRange){l, d, in, params, c, rm, B, shape_numel(l->in)}, handed = 1;
        }
        if (l->kind->flags & LAYER_RELU || g > 1 || !l->kind->flops)
            prof_layer(l, t0, g0, f0, 0);
        else {
            double f = l->kind->flops(l, dprev != NULL);
            prof_layer(l, t0, g0, f0, B * (f - l->kind->flops(l, 0) / 2));
        }
        for (int k = e; ready && k >= i; k--) {
            size_t off, count;
            grad_range(t, &s->layers[k], &off, &count);
            if (count) ready(ready_ctx, off, count);
        }
        e = i - 1;
    }
}
