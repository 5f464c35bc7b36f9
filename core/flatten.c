// flatten.c: (C,H,W) -> (C*H*W), as nn.Flatten. The data is already contiguous: a copy.
#include <string.h>

#include "layer.h"
#include "prof.h"

static int setup(Layer *l, Shape in, ParamTable *t, Err *e) {
    (void)t;
    (void)e;
    l->out = (Shape){1, {(int)shape_numel(in)}};
    return ERR_OK;
}

static void forward(Layer *l, float *out, const float *inp, const float *params, float *bufs,
                    const StepCtx *c, int B) {
    (void)params, (void)bufs, (void)c;
    prof_bytes(2.0 * B * shape_numel(l->in));
    memcpy(out, inp, (size_t)B * shape_numel(l->in) * sizeof(float));
}

static void backward(Layer *l, float *dinp, float *dparams, const float *dout, const float *inp,
                     const float *out, const float *params, const StepCtx *c, int B) {
    (void)dparams, (void)inp, (void)out, (void)params, (void)c;
    if (!dinp) return;
    prof_bytes(2.0 * B * shape_numel(l->in));
    memcpy(dinp, dout, (size_t)B * shape_numel(l->in) * sizeof(float));
}

const LayerKind layer_flatten = {.type = "flatten", .setup = setup, .forward = forward, .backward = backward};
