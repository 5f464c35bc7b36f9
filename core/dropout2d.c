// dropout2d.c: channel dropout, as nn.Dropout2d. In training each (sample, channel) of a
// (C,H,W) input is kept with probability 1-p, the whole H x W map zeroed otherwise, and kept
// maps scaled by 1/(1-p); identity in eval, with reg.dropout=off and for p = 0.
// The channel mask is dropout_mask over the C channels: channel c uses word c%4 of
// Philox({seed, layer id}, {c/4, global sample index, step, stream}), so it is a pure function
// of the sample and the step, whatever rank or batch slot the sample lands in.
#include <stdint.h>
#include <string.h>

#include "kernels.h"
#include "prof.h"
#include "layer.h"
#include "philox.h"

// out, inp are (B,C,HW); keep is (B,C): 1 = channel kept. scale = 1/(1-p).
void dropout2d_forward(float *out, const float *inp, const uint8_t *keep, float scale, int B,
                       int C, int HW) {
    prof_bytes(2.0 * B * C * HW);
    for (size_t bc = 0; bc < (size_t)B * C; bc++) {
        const float *x = inp + bc * HW;
        float *y = out + bc * HW;
        if (keep[bc])
            for (int i = 0; i < HW; i++) y[i] = x[i] * scale;
        else
            memset(y, 0, (size_t)HW * sizeof(float));
    }
}

// out, x are (B,C,HW): Dropout2d of relu(x). keep (B,C) or NULL.
void relu_dropout2d_forward(float *out, const float *x, const uint8_t *keep, float scale, int B,
                            int C, int HW) {
    prof_bytes(2.0 * B * C * HW);
    for (size_t bc = 0; bc < (size_t)B * C; bc++) {
        const float *xi = x + bc * HW;
        float *y = out + bc * HW;
        if (!keep)
            for (int i = 0; i < HW; i++) y[i] = xi[i] > 0.0f ? xi[i] : 0.0f;
        else if (keep[bc])
            for (int i = 0; i < HW; i++) y[i] = (xi[i] > 0.0f ? xi[i] : 0.0f) * scale;
        else
            memset(y, 0, (size_t)HW * sizeof(float));
    }
}

// dx (B,C,HW) = dout scaled where the channel was kept and x > 0, else 0.
void relu_dropout2d_backward(float *dx, const float *dout, const float *x, const uint8_t *keep,
                             float scale, int B, int C, int HW) {
    prof_bytes(3.0 * B * C * HW);
    for (size_t bc = 0; bc < (size_t)B * C; bc++) {
        const float *xi = x + bc * HW, *dy = dout + bc * HW;
        float *d = dx + bc * HW;
        if (!keep)
            for (int i = 0; i < HW; i++) d[i] = xi[i] > 0.0f ? dy[i] : 0.0f;
        else if (keep[bc])
            for (int i = 0; i < HW; i++) d[i] = xi[i] > 0.0f ? dy[i] * scale : 0.0f;
        else
            memset(d, 0, (size_t)HW * sizeof(float));
    }
}

static int active(const Layer *l, const StepCtx *c) {
    return step_dropout_active(c) && l->spec.p > 0.0f;
}

static float keep_scale(float p) { return p < 1.0f ? 1.0f / (1.0f - p) : 0.0f; }

static int setup(Layer *l, Shape in, ParamTable *t, Err *e) {
    (void)t;
    if (in.ndim != 3)
        return err_set(e, ERR_INPUT,
                       "layer %s (dropout2d) needs a (C,H,W) input but gets %d dimensions",
                       l->spec.name, in.ndim);
    if (!(l->spec.p >= 0.0f && l->spec.p <= 1.0f))
        return err_set(e, ERR_INPUT, "layer %s (dropout2d): p must be in [0, 1], got %g",
                       l->spec.name, l->spec.p);
    l->out = in;
    l->save_bytes_per_sample = (size_t)in.d[0];  // the channel keep mask, one byte per channel
    return ERR_OK;
}

// The channel masks of the batch into the save area (forward's first step).
static const uint8_t *draw_masks(Layer *l, const StepCtx *c, int B) {
    int C = l->in.d[0];
    philox_key key = {{c->seed, (uint32_t)l->id}};
    uint8_t *keep = l->save;
    for (int b = 0; b < B; b++)
        dropout_mask(keep + (size_t)b * C, (size_t)C, l->spec.p, key, (uint32_t)c->sample_ids[b],
                     c->step, c->stream);
    return keep;
}

static void forward(Layer *l, float *out, const float *inp, const float *params, float *bufs,
                    const StepCtx *c, int B) {
    (void)params, (void)bufs;
    int C = l->in.d[0], HW = l->in.d[1] * l->in.d[2];
    if (!active(l, c)) {
        memcpy(out, inp, (size_t)B * C * HW * sizeof(float));
        return;
    }
    dropout2d_forward(out, inp, draw_masks(l, c, B), keep_scale(l->spec.p), B, C, HW);
}

static void backward(Layer *l, float *dinp, float *dparams, const float *dout, const float *inp,
                     const float *out, const float *params, const StepCtx *c, int B) {
    (void)dparams, (void)inp, (void)out, (void)params;
    if (!dinp) return;
    int C = l->in.d[0], HW = l->in.d[1] * l->in.d[2];
    if (!active(l, c)) {
        memcpy(dinp, dout, (size_t)B * C * HW * sizeof(float));
        return;
    }
    // y = x * keep * scale is linear in x: the gradient is the same map applied to dout
    dropout2d_forward(dinp, dout, l->save, keep_scale(l->spec.p), B, C, HW);
}

static void relu_mask(Layer *l, const StepCtx *c, int B, int draw, ReluMask *rm) {
    int on = active(l, c);
    rm->keep = !on ? NULL : draw ? draw_masks(l, c, B) : l->save;
    rm->per_channel = 1;
    rm->scale = on ? keep_scale(l->spec.p) : 1.0f;
}

static const LayerKeyDesc keys[] = {LAYER_KEY_DESC_P};

const LayerKind layer_dropout2d = {.type = "dropout2d", LAYER_KEYS(keys), .flags = LAYER_STOCHASTIC,
                                   .drop_name = "dropout2d", .drop_key = "p", .setup = setup,
                                   .forward = forward, .backward = backward,
                                   .relu_mask = relu_mask};
