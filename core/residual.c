// residual.c: a residual block, out = x + drop_path(branch(x)), where the branch is a list
// of layers that must keep the shape. DropPath (stochastic depth, Huang et al. 2016) drops
// a sample's whole branch with probability p and scales kept branches by 1/(1-p); the
// draw is a pure function of Philox key {seed, block id} and counter
// {0, global sample index, step, stream}, like every other mask. Identity in eval mode and
// with reg.dropout=off. Branch layers are named "<block>.<layer>" and get Philox ids
// (block id << 8) + i, so their masks differ from every other layer's.
#include <stdlib.h>
#include <string.h>

#include "layer.h"
#include "philox.h"
#include "seq.h"

typedef struct {
    Seq branch;
    float *dbranch;  // (max_batch, out): d loss / d branch output
} Residual;

static int setup(Layer *l, Shape in, ParamTable *t, Err *e) {
    Residual *r = calloc(1, sizeof *r);
    if (!r) return err_set(e, ERR_RUNTIME, "out of memory");
    l->sub = r;
    if (l->spec.nchildren <= 0)
        return err_set(e, ERR_INPUT, "residual block %s has no layers", l->spec.name);
    char prefix[LAYER_NAME_MAX + 1];
    snprintf(prefix, sizeof prefix, "%s.", l->spec.name);
    Shape out;
    if (seq_setup(&r->branch, l->spec.children, l->spec.nchildren, in, prefix, l->id << 8, t,
                  &out, e))
        return e->code;
    int same = out.ndim == in.ndim;
    for (int i = 0; same && i < in.ndim; i++) same = out.d[i] == in.d[i];
    if (!same)
        return err_set(e, ERR_INPUT,
                       "residual block %s: its layers change the shape of their input; a "
                       "residual branch must keep it",
                       l->spec.name);
    l->out = in;
    l->save_bytes_per_sample = sizeof(float);  // the branch's scale: 0, 1/(1-p) or 1
    return ERR_OK;
}

static void init(const Layer *l, float *params, float *bufs, uint32_t seed) {
    const Residual *r = l->sub;
    seq_init(&r->branch, params, bufs, seed);
}

static int plan(Layer *l, int max_batch, Err *e) {
    Residual *r = l->sub;
    r->dbranch = malloc((size_t)max_batch * shape_numel(l->out) * sizeof(float));
    if (!r->dbranch) return err_set(e, ERR_RUNTIME, "out of memory");
    return seq_plan(&r->branch, max_batch, e);
}

static void release(Layer *l) {
    Residual *r = l->sub;
    if (!r) return;
    seq_free(&r->branch);
    free(r->dbranch);
    free(r);
    l->sub = NULL;
}

// scale (B): each sample's branch multiplier.
static void drop_path_scales(float *scale, const Layer *l, const StepCtx *c, int B) {
    float p = l->spec.drop_path;
    if (!(step_dropout_active(c) && p > 0.0f)) {
        for (int b = 0; b < B; b++) scale[b] = 1.0f;
        return;
    }
    uint32_t threshold = p >= 1.0f ? UINT32_MAX : (uint32_t)((double)p * 4294967296.0);
    float kept = p >= 1.0f ? 0.0f : 1.0f / (1.0f - p);
    philox_key key = {{c->seed, (uint32_t)l->id}};
    for (int b = 0; b < B; b++) {
        philox_ctr r = philox4x32_10(
            (philox_ctr){{0, (uint32_t)c->sample_ids[b], c->step, c->stream}}, key);
        scale[b] = r.v[0] >= threshold && p < 1.0f ? kept : 0.0f;
    }
}

static void forward(Layer *l, float *out, const float *inp, const float *params, float *bufs,
                    const StepCtx *c, int B) {
    Residual *r = l->sub;
    const float *y = seq_forward(&r->branch, inp, params, bufs, c, B);
    float *scale = l->save;
    drop_path_scales(scale, l, c, B);
    size_t D = shape_numel(l->in);
    for (int b = 0; b < B; b++) {
        const float *x = inp + (size_t)b * D, *yb = y + (size_t)b * D;
        float *o = out + (size_t)b * D, s = scale[b];
        for (size_t i = 0; i < D; i++) o[i] = x[i] + s * yb[i];
    }
}

static void backward(Layer *l, float *dinp, float *dparams, const float *dout, const float *inp,
                     const float *out, const float *params, const StepCtx *c, int B) {
    (void)out;
    Residual *r = l->sub;
    const float *scale = l->save;
    size_t D = shape_numel(l->in);
    for (int b = 0; b < B; b++)
        for (size_t i = 0; i < D; i++)
            r->dbranch[(size_t)b * D + i] = dout[(size_t)b * D + i] * scale[b];
    seq_backward(&r->branch, dinp, dparams, r->dbranch, inp, params, c, B, NULL, NULL, NULL);
    if (dinp)  // the identity path
        for (size_t i = 0; i < (size_t)B * D; i++) dinp[i] += dout[i];
}

// The branch's; its first layer needs an input gradient only if the block does.
static double flops(const Layer *l, int need_dinp) {
    return seq_flops(&((const Residual *)l->sub)->branch, need_dinp);
}

static const LayerKeyDesc keys[] = {
    {"drop_path", LAYER_KEY_FLOAT, offsetof(LayerSpec, drop_path), 0, 1, 0, "0",
     "probability of dropping the branch per sample (DropPath; see model.drop_path)"},
    {"layers", LAYER_KEY_LAYERS, 0, 0, 0, 0, NULL, "the branch's layers, a list like model.layers"},
};

const LayerKind layer_residual = {.type = "residual", LAYER_KEYS(keys), .drop_name = "droppath",
                                  .drop_key = "drop_path", .setup = setup, .init = init,
                                  .forward = forward, .backward = backward, .plan = plan,
                                  .release = release, .flops = flops};
