// dropblock.c: DropBlock (Ghiasi, Lin, Le, NeurIPS 2018) on a (C,H,W) input: in training,
// contiguous bs x bs squares of each feature map are zeroed, and the survivors rescaled so
// that the expectation is preserved; identity in eval, with reg.dropout=off and for p = 0.
//
// Choices, where the paper leaves room:
// - bs = min(block_size, H, W), so the block always fits in the map.
// - Block anchors are sampled only where the whole block fits, the valid (H-bs+1) x (W-bs+1)
//   region (the paper's Algorithm 1), each with probability
//       gamma = p / bs^2 * (H*W) / ((H-bs+1) * (W-bs+1)),
//   independently per (sample, channel). The anchor is the square's top-left corner; within
//   the valid region that is the paper's "centre" shifted by bs/2, the same distribution.
//   The dropped region is the union of the squares, so overlaps make the dropped fraction a
//   little below p (about 1 - exp(-p) for small gamma), as in the paper. gamma <= p always,
//   since bs * (H-bs+1) >= H.
// - Scaling: y = x * mask * count(mask) / count_ones(mask), the counts over the sample's
//   whole C*H*W (the paper normalizes over the feature map); y = 0 if nothing survives.
// - Randomness: anchor k = (c*(H-bs+1) + i)*(W-bs+1) + j of a sample uses word k%4 of
//   Philox({seed, layer id}, {k/4, global sample index, step, stream}); the mask is a pure
//   function of the sample and the step, whatever rank or batch slot the sample lands in.
// - Saved for backward, per sample: the scale (float), then the mask (one byte per element).
#include <stdint.h>
#include <string.h>

#include "kernels.h"
#include "layer.h"
#include "philox.h"

// keep is (C,H,W): 1 = kept, 0 = inside a dropped square. bs must be in [1, min(H,W)].
// Returns the number of kept elements.
size_t dropblock_mask(uint8_t *keep, int C, int H, int W, int bs, float p, philox_key key,
                      uint32_t sample, uint32_t step, uint32_t stream) {
    size_t n = (size_t)C * H * W;
    memset(keep, 1, n);
    if (p <= 0.0f) return n;
    int VH = H - bs + 1, VW = W - bs + 1;
    double gamma = (double)p / ((double)bs * bs) * ((double)H * W) / ((double)VH * VW);
    // an anchor is a block when its word < gamma * 2^32 (gamma <= 1, so this fits in 64 bits)
    uint64_t threshold = (uint64_t)(gamma * 4294967296.0);
    philox_ctr r = {{0}};
    size_t k = 0;
    for (int c = 0; c < C; c++) {
        uint8_t *map = keep + (size_t)c * H * W;
        for (int i = 0; i < VH; i++)
            for (int j = 0; j < VW; j++, k++) {
                if (k % 4 == 0)
                    r = philox4x32_10((philox_ctr){{(uint32_t)(k / 4), sample, step, stream}}, key);
                if ((uint64_t)r.v[k % 4] >= threshold) continue;
                for (int di = 0; di < bs; di++) memset(map + (size_t)(i + di) * W + j, 0, (size_t)bs);
            }
    }
    size_t ones = 0;
    for (size_t e = 0; e < n; e++) ones += keep[e];
    return ones;
}

// out, inp are (N); keep is (N). out = inp * keep * scale.
void dropblock_apply(float *out, const float *inp, const uint8_t *keep, float scale, size_t N) {
    for (size_t i = 0; i < N; i++) out[i] = keep[i] ? inp[i] * scale : 0.0f;
}

static int active(const Layer *l, const StepCtx *c) {
    return step_dropout_active(c) && l->spec.p > 0.0f;
}

static int block_side(const Layer *l) {
    int bs = l->spec.block_size;
    if (bs > l->in.d[1]) bs = l->in.d[1];
    if (bs > l->in.d[2]) bs = l->in.d[2];
    return bs;
}

// One sample's saved record: the scale, then the mask, padded so the next scale is aligned.
static size_t record_bytes(Shape in) {
    return sizeof(float) + (shape_numel(in) + sizeof(float) - 1) / sizeof(float) * sizeof(float);
}

static int setup(Layer *l, Shape in, ParamTable *t, Err *e) {
    (void)t;
    if (in.ndim != 3)
        return err_set(e, ERR_INPUT,
                       "layer %s (dropblock) needs a (C,H,W) input but gets %d dimensions",
                       l->spec.name, in.ndim);
    if (!(l->spec.p >= 0.0f && l->spec.p <= 1.0f))
        return err_set(e, ERR_INPUT, "layer %s (dropblock): p must be in [0, 1], got %g",
                       l->spec.name, l->spec.p);
    if (l->spec.block_size < 1)
        return err_set(e, ERR_INPUT, "layer %s (dropblock) needs block_size >= 1, got %d",
                       l->spec.name, l->spec.block_size);
    l->out = in;
    l->save_bytes_per_sample = record_bytes(in);
    return ERR_OK;
}

static void forward(Layer *l, float *out, const float *inp, const float *params, float *bufs,
                    const StepCtx *c, int B) {
    (void)params, (void)bufs;
    size_t D = shape_numel(l->in), rec = record_bytes(l->in);
    if (!active(l, c)) {
        memcpy(out, inp, (size_t)B * D * sizeof(float));
        return;
    }
    philox_key key = {{c->seed, (uint32_t)l->id}};
    for (int b = 0; b < B; b++) {
        char *r = (char *)l->save + (size_t)b * rec;
        uint8_t *keep = (uint8_t *)r + sizeof(float);
        size_t ones = dropblock_mask(keep, l->in.d[0], l->in.d[1], l->in.d[2], block_side(l),
                                     l->spec.p, key, (uint32_t)c->sample_ids[b], c->step,
                                     c->stream);
        float scale = ones ? (float)((double)D / (double)ones) : 0.0f;
        memcpy(r, &scale, sizeof scale);
        dropblock_apply(out + (size_t)b * D, inp + (size_t)b * D, keep, scale, D);
    }
}

static void backward(Layer *l, float *dinp, float *dparams, const float *dout, const float *inp,
                     const float *out, const float *params, const StepCtx *c, int B) {
    (void)dparams, (void)inp, (void)out, (void)params;
    if (!dinp) return;
    size_t D = shape_numel(l->in), rec = record_bytes(l->in);
    if (!active(l, c)) {
        memcpy(dinp, dout, (size_t)B * D * sizeof(float));
        return;
    }
    // y = x * mask * scale with mask and scale independent of x: dx = dy * mask * scale
    for (int b = 0; b < B; b++) {
        const char *r = (const char *)l->save + (size_t)b * rec;
        float scale;
        memcpy(&scale, r, sizeof scale);
        dropblock_apply(dinp + (size_t)b * D, dout + (size_t)b * D,
                        (const uint8_t *)r + sizeof(float), scale, D);
    }
}

static const LayerKeyDesc keys[] = {
    LAYER_KEY_DESC_P,
    {"block_size", LAYER_KEY_INT, offsetof(LayerSpec, block_size), 1, 64, 0, NULL,
     "side of the dropped square"},
};

const LayerKind layer_dropblock = {.type = "dropblock", LAYER_KEYS(keys), .flags = LAYER_STOCHASTIC,
                                   .drop_name = "dropblock", .drop_key = "p", .setup = setup,
                                   .forward = forward, .backward = backward};
