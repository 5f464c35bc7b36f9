// layer.h: what a layer is. One file per layer kind (linear.c, activation.c, ...), each
// exporting a LayerKind, as Darknet does: its functions, its config keys, its FLOP count and
// its roles. The registry (layer.c) lists the kinds; nothing outside a kind's file asks what
// kind a layer is by name. Kernels inside follow llm.c: outputs first, then inputs, then
// sizes; backward accumulates (+=) into parameter gradients and overwrites (=) the input
// gradient.
#pragma once
#include <stddef.h>  // offsetof, for the key tables
#include <stdint.h>

#include "err.h"
#include "params.h"

#define LAYER_NAME_MAX 64
#define SHAPE_MAX_DIMS 3
#define LAYER_PARAMS_MAX 8
// LayerSpec.out of a layer whose width is the data's class count (out = "classes" in a
// config): model_build puts num_classes in its place, so one config fits any dataset.
#define LAYER_OUT_CLASSES (-1)

// Per-sample shape: (D) or (C,H,W); the batch dimension is always separate and first.
typedef struct {
    int ndim;
    int d[SHAPE_MAX_DIMS];
} Shape;

static inline size_t shape_numel(Shape s) {
    size_t n = 1;
    for (int i = 0; i < s.ndim; i++) n *= (size_t)s.d[i];
    return n;
}

// What the config says about one layer; launch/ fills it, core/ validates it.
typedef struct LayerSpec {
    char type[32];             // registry name: "linear", "gelu", ...
    char name[LAYER_NAME_MAX];  // state_dict prefix: "fc1"
    int out;                   // linear: out_features; conv2d: out_channels;
                               // LAYER_OUT_CLASSES = the data's class count
    int bias;                  // linear, conv2d: 1 = has bias (default)
    int kernel;                // conv2d, maxpool2d, avgpool2d: square kernel size
    int stride;                // conv2d (0 = 1), pooling (0 = kernel)
    int padding;               // conv2d, pooling: zero padding on every side
    float p;                   // dropout, dropout2d, dropblock: drop probability
    float eps;                 // layernorm, batchnorm: epsilon (default 1e-5)
    float momentum;            // batchnorm: running-statistics momentum (default 0.1)
    int ghost;                 // batchnorm: ghost batch size (bn.ghost; 0 = the whole batch)
    float dropconnect;         // linear: DropConnect probability on the weights (0 = off)
    int block_size;            // dropblock: side of the dropped square
    float drop_path;           // residual: probability of dropping the branch per sample
    struct LayerSpec *children;  // residual: the branch's layers, in order
    int nchildren;
} LayerSpec;

// Reduces per-channel partial statistics across a layer's normalization group, in place
// (see batchnorm.c for the layouts). The default, NULL, is a single process.
typedef enum { STATS_BN_FORWARD = 0, STATS_BN_BACKWARD = 1 } StatsKind;
typedef int (*StatsReduceFn)(void *ctx, int layer_id, StatsKind kind, double *stats, int nchan);

// Everything a forward or backward pass needs to know about the step it is part of.
typedef struct {
    int train;                   // 1 = training mode, 0 = eval mode
    int dropout_on;              // 0 disables every dropout-family layer (reg.dropout=off)
    int mc_dropout;              // 1: dropout-family layers draw masks in eval mode too
                                 // (Monte-Carlo prediction; BatchNorm stays in eval mode)
    uint32_t seed;               // run seed: Philox key word 0
    uint32_t step;               // optimizer step: Philox counter word 2
    uint32_t stream;             // PHILOX_STREAM_TRAIN or a Monte-Carlo pass
    const int64_t *sample_ids;   // (B) global sample index of each batch slot: counter word 1
    StatsReduceFn reduce_stats;  // BatchNorm statistics across ranks (NULL: this process only)
    void *reduce_ctx;
    int precise_bn;              // training-mode BatchNorm makes its running statistics the
                                 // plain average of every batch since num_batches_tracked was
                                 // 0, instead of moving them by its momentum (PreciseBN)
} StepCtx;

// Whether dropout-family layers (dropout, dropout2d, dropblock, DropConnect, DropPath) draw
// masks in this pass: in training, and in Monte-Carlo prediction, unless reg.dropout=off.
static inline int step_dropout_active(const StepCtx *c) {
    return (c->train || c->mc_dropout) && c->dropout_on;
}

typedef struct Layer Layer;

// A mask applied after a ReLU, as a fused pass takes it (see LayerKind.relu_mask): kept values
// are multiplied by scale, dropped ones are 0. With argmax not NULL, a 2x2 stride-2 max-pool
// follows in the same pass (LayerKind.max2x2_argmax): the pass's out and dout are the pool's,
// (B, C, H/2, W/2), and argmax, the pool's save area, takes forward's argmax for backward.
typedef struct {
    const uint8_t *keep;  // NULL: no mask (and scale 1)
    int per_channel;      // keep is (B, C), one byte a channel (Dropout2d); else (B, numel)
    float scale;
    int32_t *argmax;      // NULL: no pool in the pass
} ReluMask;

// One config key of a layer kind (an entry of model.layers): launch/config.c reads, checks,
// overrides (--set layer.NAME.KEY) and documents (train --help) every key from these tables.
// name and type, which every layer has, are not in them.
typedef enum {
    LAYER_KEY_INT,     // an int field
    LAYER_KEY_OUT,     // an int field, or the word "classes" (LAYER_OUT_CLASSES)
    LAYER_KEY_BOOL,    // an int field: true or false (or 0, 1)
    LAYER_KEY_FLOAT,   // a float field
    LAYER_KEY_LAYERS,  // a list of layers, read into children (a residual block's branch)
} LayerKeyType;

typedef struct {
    const char *key;        // "kernel"
    LayerKeyType type;
    size_t offset;          // of its LayerSpec field: offsetof(LayerSpec, kernel)
    double lo, hi;          // valid range (numbers)
    double dflt;            // stored when the key is absent
    const char *dflt_text;  // the default as --help shows it; NULL = the key is required
    const char *help;
} LayerKeyDesc;

// Keys that several kinds take with one meaning: their tables use these, so that the key is
// described once (train --help lists it once, with every kind that takes it).
#define LAYER_KEY_DESC_OUT                                                                    \
    {"out", LAYER_KEY_OUT, offsetof(LayerSpec, out), 1, 1 << 24, 0, NULL,                     \
     "output size (features or channels); \"classes\" = the data's class count"}
#define LAYER_KEY_DESC_KERNEL \
    {"kernel", LAYER_KEY_INT, offsetof(LayerSpec, kernel), 1, 64, 0, NULL, "square kernel size"}
// dflt_text: what stride 0, the default, means to the kind ("1", "kernel")
#define LAYER_KEY_DESC_STRIDE(dflt_text) \
    {"stride", LAYER_KEY_INT, offsetof(LayerSpec, stride), 1, 64, 0, dflt_text, \
     "step between windows"}
#define LAYER_KEY_DESC_PADDING \
    {"padding", LAYER_KEY_INT, offsetof(LayerSpec, padding), 0, 64, 0, "0", \
     "zero padding on every side"}
#define LAYER_KEY_DESC_BIAS \
    {"bias", LAYER_KEY_BOOL, offsetof(LayerSpec, bias), 0, 1, 1, "true", "add a learned bias"}
#define LAYER_KEY_DESC_P \
    {"p", LAYER_KEY_FLOAT, offsetof(LayerSpec, p), 0, 1, 0.5, "0.5", "drop probability"}
#define LAYER_KEY_DESC_EPS \
    {"eps", LAYER_KEY_FLOAT, offsetof(LayerSpec, eps), 1e-30, 1, 1e-5, "1e-05", \
     "added to the variance"}

// .keys = table, .nkeys = its length
#define LAYER_KEYS(table) .keys = (table), .nkeys = (int)(sizeof(table) / sizeof((table)[0]))

// What a kind of layer does, for code that treats some kinds alike without naming them.
enum {
    LAYER_NORMALIZES = 1 << 0,     // normalizes its input (layernorm, batchnorm)
    LAYER_RUNNING_STATS = 1 << 1,  // keeps running statistics of its batches, reduced over the
                                   // BN group (batchnorm): what model.batchnorm=off leaves out
    LAYER_STOCHASTIC = 1 << 2,     // always draws random masks in training (the dropout layers)
    LAYER_RELU = 1 << 3,           // is max(x, 0) elementwise, without parameters: seq.c fuses
                                   // it with a mask layer after it (relu_mask) and a layer
                                   // before it (forward_relu_mask)
    LAYER_PLANE_MOMENTS = 1 << 4,  // writes [mean, M2] of each (sample, channel) plane of
                                   // its output to l->out_moments when seq sets it
                                   // (batchnorm_plane_moments), while the planes are in cache
    LAYER_DOUT_BY_RANGE = 1 << 5,  // its backward can take its output gradient a few samples
                                   // at a time from l->dout_range (SampleRange) instead of dout
    LAYER_INP_BY_RANGE = 1 << 6,   // its forward and backward can take their input a few
                                   // samples at a time from l->inp_range instead of inp
};

typedef struct {
    const char *type;
    const LayerKeyDesc *keys;  // its config keys, in the order they are read (LAYER_KEYS)
    int nkeys;
    unsigned flags;            // LAYER_NORMALIZES | LAYER_RUNNING_STATS | LAYER_STOCHASTIC
    // The dropout-family regularizer the kind applies, as studies name it ("dropout",
    // "dropconnect", "droppath"; NULL: none), and the key of its probability. A kind flagged
    // LAYER_STOCHASTIC always applies it; another only when that key is > 0 (layer_spec_drop).
    const char *drop_name;
    const char *drop_key;
    // Checks the spec against the input shape, sets l->out, declares parameters in t and
    // the bytes per sample it saves for backward. Returns ERR_OK or ERR_INPUT with e set.
    int (*setup)(Layer *l, Shape in, ParamTable *t, Err *e);
    // PyTorch's default initialization, a pure function of (seed, layer id).
    void (*init)(const Layer *l, float *params, float *bufs, uint32_t seed);
    // out is (B, out), inp is (B, in)
    void (*forward)(Layer *l, float *out, const float *inp, const float *params, float *bufs,
                    const StepCtx *c, int B);
    // dinp may be NULL (first layer: no input gradient needed). dparams accumulates.
    void (*backward)(Layer *l, float *dinp, float *dparams, const float *dout, const float *inp,
                     const float *out, const float *params, const StepCtx *c, int B);
    // Optional, fusion (seq.c): a mask layer without parameters (dropout, Dropout2d) that
    // follows a LAYER_RELU describes its mask instead of running: draws it when draw = 1
    // (forward), else hands back forward's; rm->keep = NULL when it is off (eval, p = 0).
    void (*relu_mask)(Layer *l, const StepCtx *c, int B, int draw, ReluMask *rm);
    // Optional, fusion: forward and backward of this layer followed by a ReLU and a mask
    // (rm; keep NULL = no mask) in the same sweeps: out = mask(relu(this(inp))), and dout,
    // out are that output's gradient and value (seq.c then never writes this layer's own
    // output or the ReLU's). Bit-identical to the layers run one by one.
    void (*forward_relu_mask)(Layer *l, float *out, const float *inp, const float *params,
                              float *bufs, const StepCtx *c, int B, const ReluMask *rm);
    void (*backward_relu_mask)(Layer *l, float *dinp, float *dparams, const float *dout,
                               const float *inp, const float *out, const float *params,
                               const StepCtx *c, int B, const ReluMask *rm);
    // Optional, fusion: a max-pool whose windows are 2x2, stride 2, unpadded returns its
    // argmax save area, NULL otherwise; it may then end a forward_relu_mask pass (ReluMask's
    // argmax), which runs it on each plane while the plane is in cache.
    int32_t *(*max2x2_argmax)(Layer *l);
    // Optional, fusion: a layer whose statistics are per-plane moments of its input
    // (BatchNorm in training) returns where it wants them for a forward of B samples, (B, C,
    // 2) doubles, or NULL when it has no use for them this pass (eval mode). seq_forward then
    // has the layer before it, if that kind is LAYER_PLANE_MOMENTS, write them (Layer's
    // out_moments, in_moments).
    double *(*moments_wanted)(Layer *l, const StepCtx *c, int B);
    // Optional, fusion: after a backward_relu_mask call made with dinp NULL, writes dinp (n,
    // the layer's input numel) = the input gradient of samples [b0, b0 + n), which that call
    // would have written there. The other arguments are that call's. seq_backward then hands
    // the gradient to a LAYER_DOUT_BY_RANGE layer before it by samples (SampleRange).
    void (*dinp_range)(Layer *l, float *dinp, int b0, int n, const float *dout,
                       const float *inp, const float *params, const StepCtx *c, int B,
                       const ReluMask *rm);
    // Optional, fusion: likewise out (n, the pass's output numel) = the output of samples
    // [b0, b0 + n) after a forward_relu_mask call made with out NULL, for as long as that
    // forward's statistics and masks stand (through the step's backward): seq_forward and
    // seq_backward then hand the output to a LAYER_INP_BY_RANGE layer after it by samples.
    void (*out_range)(Layer *l, float *out, int b0, int n, const float *inp,
                      const float *params, const StepCtx *c, int B, const ReluMask *rm);
    // Optional: layers that own more than their save area (a residual block's branch) plan
    // and release it here; model_plan and model_free call them.
    int (*plan)(Layer *l, int max_batch, Err *e);
    void (*release)(Layer *l);
    // Optional: FLOPs per sample of one training step's matrix products (forward, weight
    // gradient and, if need_dinp, input gradient), for regdist bench. NULL: none worth counting.
    double (*flops)(const Layer *l, int need_dinp);
} LayerKind;

struct Layer {
    const LayerKind *kind;
    LayerSpec spec;
    int id;          // 1-based position in the model: Philox key word 1
    Shape in, out;   // per-sample shapes
    int param0;      // first entry of this layer in the parameter table
    int nparam;      // number of table entries (trainable and buffers)
    size_t poff[LAYER_PARAMS_MAX];  // offset of each entry in params or bufs
    size_t save_bytes_per_sample;  // saved for backward, planned once
    size_t save_bytes_fixed;       // scratch independent of the batch (DropConnect's weights)
    void *save;      // max_batch * save_bytes_per_sample bytes, then save_bytes_fixed more,
                     // owned by the model
    void *sub;       // kind-specific state the kind's plan/release own (residual: its branch)
    // Set by seq_forward for one forward call, else NULL (LayerKind.moments_wanted): where
    // this layer writes its output planes' moments, and where it finds its input planes'.
    double *out_moments;
    const double *in_moments;
    // Set by seq_backward for one backward call, else NULL: where a LAYER_DOUT_BY_RANGE layer
    // takes its output gradient (its backward's dout is then NULL).
    const struct SampleRange *dout_range;
    // Set by seq_forward and seq_backward for one call, else NULL: where a LAYER_INP_BY_RANGE
    // layer takes its input (inp is then NULL).
    const struct SampleRange *inp_range;
};

// A fused group's output or input gradient handed over by samples (seq.c): the group computes
// it (its first layer's out_range, dinp_range) for the samples the layer after or before it
// works on next, which then are still in cache, instead of writing it whole to memory for
// that layer to read back. The group's forward or backward ran first with out or dinp NULL.
typedef struct SampleRange {
    Layer *l;  // the group's first layer; the rest: the arguments of its forward or backward
    const float *dout, *inp, *params;  // dout NULL for an output
    const StepCtx *c;
    ReluMask rm;
    int B;
    size_t numel;  // floats a sample of what it hands over
} SampleRange;

// dst (n, the group's input numel) = the input gradient of samples [b0, b0 + n), and dst (n,
// the group's output numel) = the output of samples [b0, b0 + n); timed as elementwise passes.
void sample_range_dinp(const SampleRange *r, float *dst, int b0, int n);
void sample_range_out(const SampleRange *r, float *dst, int b0, int n);

// The registry (layer.c): every layer kind regdist knows, in a fixed order.
int layer_kind_count(void);
const LayerKind *layer_kind_at(int i);  // 0 <= i < layer_kind_count()
const LayerKind *layer_kind_find(const char *type);  // by spec.type; NULL if unknown
const char *layer_kind_names(void);  // "linear, relu, ..." for error messages
const LayerKeyDesc *layer_kind_key(const LayerKind *k, const char *key);  // NULL: k has none
// The dropout-family regularizer spec applies (its kind's drop_name) with, in *key (if not
// NULL), the key of its probability; NULL when it applies none.
const char *layer_spec_drop(const LayerSpec *spec, const char **key);

// Declares the layer's next parameter (setup calls this); records its offset in l->poff.
// role says what it is for (params.h) and so whether it is trained or a buffer.
int layer_add_param(Layer *l, ParamTable *t, const char *name, ParamRole role, int ndim,
                    const int64_t *shape, Err *e);

// 2 FLOPs per multiply-accumulate: forward, weight gradient, and the input gradient if
// need_dinp: a matrix-product layer's flops hook, given its MACs per sample.
static inline double layer_matmul_flops(double macs, int need_dinp) {
    return (need_dinp ? 6.0 : 4.0) * macs;
}
