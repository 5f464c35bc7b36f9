// dropout.c: inverted dropout, as nn.Dropout: in training each element is zeroed with
// probability p and the kept ones scaled by 1/(1-p); identity in eval and with reg.dropout=off.
// The mask of a sample is a pure function of (seed, layer id, step, global sample index,
// stream): it cannot depend on which rank or batch slot the sample lands in.
#include <stdint.h>
#include <string.h>

#include "kernels.h"
#include "prof.h"
#include "layer.h"
#include "philox.h"

// keep (n) gets 1 for kept elements, 0 for dropped: element i uses word i%4 of
// Philox(key, {i/4, sample, step, stream}). An element is dropped when its word < p * 2^32.
void dropout_mask(uint8_t *keep, size_t n, float p, philox_key key, uint32_t sample,
                  uint32_t step, uint32_t stream) {
    if (p <= 0.0f) {
        memset(keep, 1, n);
        return;
    }
    if (p >= 1.0f) {
        memset(keep, 0, n);
        return;
    }
    uint32_t threshold = (uint32_t)((double)p * 4294967296.0);
    philox_bytes_ge(keep, n, threshold, (philox_ctr){{0, sample, step, stream}}, key);
}

// out, x are (N): dropout of relu(x); keep (N) or NULL.
void relu_dropout_forward(float *out, const float *x, const uint8_t *keep, float scale,
                          size_t N) {
    prof_bytes(2.0 * N);
    if (!keep)
        for (size_t i = 0; i < N; i++) out[i] = x[i] > 0.0f ? x[i] : 0.0f;
    else
        for (size_t i = 0; i < N; i++) out[i] = keep[i] ? (x[i] > 0.0f ? x[i] : 0.0f) * scale : 0.0f;
}

// dx (N) = dout scaled where kept and x > 0, else 0.
void relu_dropout_backward(float *dx, const float *dout, const float *x, const uint8_t *keep,
                           float scale, size_t N) {
    prof_bytes(3.0 * N);
    if (!keep)
        for (size_t i = 0; i < N; i++) dx[i] = x[i] > 0.0f ? dout[i] : 0.0f;
    else
        for (size_t i = 0; i < N; i++) dx[i] = keep[i] && x[i] > 0.0f ? dout[i] * scale : 0.0f;
}

static int active(const Layer *l, const StepCtx *c) {
    return step_dropout_active(c) && l->spec.p > 0.0f;
}

static int setup(Layer *l, Shape in, ParamTable *t, Err *e) {
    (void)t;
    if (!(l->spec.p >= 0.0f && l->spec.p <= 1.0f))
        return err_set(e, ERR_INPUT, "layer %s (dropout): p must be in [0, 1], got %g",
                       l->spec.name, l->spec.p);
    l->out = in;
    l->save_bytes_per_sample = shape_numel(in);  // the keep mask, one byte per element
    return ERR_OK;
}

static void forward(Layer *l, float *out, const float *inp, const float *params, float *bufs,
                    const StepCtx *c, int B) {
    (void)params, (void)bufs;
    size_t D = shape_numel(l->in);
    prof_bytes(2.0 * B * D);  // read x, write y (the mask's bytes not counted, as fused)
    if (!active(l, c)) {
        memcpy(out, inp, (size_t)B * D * sizeof(float));
        return;
    }
    float scale = l->spec.p < 1.0f ? 1.0f / (1.0f - l->spec.p) : 0.0f;
    philox_key key = {{c->seed, (uint32_t)l->id}};
    uint8_t *keep = l->save;
    for (int b = 0; b < B; b++) {
        uint8_t *k = keep + (size_t)b * D;
        dropout_mask(k, D, l->spec.p, key, (uint32_t)c->sample_ids[b], c->step, c->stream);
        const float *x = inp + (size_t)b * D;
        float *y = out + (size_t)b * D;
        for (size_t i = 0; i < D; i++) y[i] = k[i] ? x[i] * scale : 0.0f;
    }
}

static void backward(Layer *l, float *dinp, float *dparams, const float *dout, const float *inp,
                     const float *out, const float *params, const StepCtx *c, int B) {
    (void)dparams, (void)inp, (void)out, (void)params;
    if (!dinp) return;
    size_t N = (size_t)B * shape_numel(l->in);
    prof_bytes(2.0 * N);  // read dout, write dinp
    if (!active(l, c)) {
        memcpy(dinp, dout, N * sizeof(float));
        return;
    }
    float scale = l->spec.p < 1.0f ? 1.0f / (1.0f - l->spec.p) : 0.0f;
    const uint8_t *keep = l->save;
    for (size_t i = 0; i < N; i++) dinp[i] = keep[i] ? dout[i] * scale : 0.0f;
}

static float keep_scale(float p) { return p < 1.0f ? 1.0f / (1.0f - p) : 0.0f; }

// The batch's masks into the save area.
static const uint8_t *draw_masks(Layer *l, const StepCtx *c, int B) {
    size_t D = shape_numel(l->in);
    philox_key key = {{c->seed, (uint32_t)l->id}};
    uint8_t *keep = l->save;
    for (int b = 0; b < B; b++)
        dropout_mask(keep + (size_t)b * D, D, l->spec.p, key, (uint32_t)c->sample_ids[b],
                     c->step, c->stream);
    return keep;
}

static void relu_mask(Layer *l, const StepCtx *c, int B, int draw, ReluMask *rm) {
    int on = active(l, c);
    rm->keep = !on ? NULL : draw ? draw_masks(l, c, B) : l->save;
    rm->per_channel = 0;
    rm->scale = on ? keep_scale(l->spec.p) : 1.0f;
}

static const LayerKeyDesc keys[] = {LAYER_KEY_DESC_P};

const LayerKind layer_dropout = {.type = "dropout", LAYER_KEYS(keys), .flags = LAYER_STOCHASTIC,
                                 .drop_name = "dropout", .drop_key = "p", .setup = setup,
                                 .forward = forward, .backward = backward,
                                 .relu_mask = relu_mask};
