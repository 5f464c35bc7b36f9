// params.h: the parameter table. Every trainable parameter lives in one contiguous float
// buffer (model.params), its gradient at the same offset in a second (model.grads), and
// optimizer moments in more of the same. Non-trainable state (BatchNorm running statistics)
// lives in a third buffer (model.bufs). The table names each slice as PyTorch's state_dict
// would, in model order, so checkpoints, the optimizer and the all-reduce are walks over it.
#pragma once
#include <stddef.h>
#include <stdint.h>

#define PARAM_NAME_MAX 96
#define PARAM_MAX_DIMS 4

typedef enum {
    PARAM_TRAINABLE = 0,  // slice of model.params / model.grads
    PARAM_BUFFER = 1      // slice of model.bufs (running statistics): saved, never optimized
} ParamKind;

// What a parameter is for. Code that treats parameters differently (weight decay and L1/L2,
// SyncBN, PreciseBN, the checkpoint's int64 counters) asks the role, never the name.
typedef enum {
    PARAM_WEIGHT = 0,    // a weight matrix or kernel: the only role weight decay, L1, L2 touch
    PARAM_BIAS,          // an additive bias
    PARAM_NORM_SCALE,    // a normalization's affine scale (PyTorch's weight of a norm layer)
    PARAM_NORM_SHIFT,    // its affine shift (the norm layer's bias)
    PARAM_RUNNING_MEAN,  // buffers from here on: running statistics, saved, never optimized
    PARAM_RUNNING_VAR,
    PARAM_COUNTER,       // an integer count (num_batches_tracked) in a float slot; int64 on disk
    PARAM_NROLES
} ParamRole;

// Roles up to PARAM_NORM_SHIFT are trained; the rest are buffers.
static inline ParamKind param_role_kind(ParamRole r) {
    return r < PARAM_RUNNING_MEAN ? PARAM_TRAINABLE : PARAM_BUFFER;
}

typedef struct {
    char name[PARAM_NAME_MAX];  // "fc1.weight"
    int ndim;
    int64_t shape[PARAM_MAX_DIMS];  // PyTorch's shape: Linear weight is (out, in)
    size_t offset;                  // into model.params (TRAINABLE) or model.bufs (BUFFER)
    size_t numel;
    ParamRole role;
    ParamKind kind;  // param_role_kind(role)
    int decay;       // weight decay, L1 and L2 apply: role PARAM_WEIGHT only
    int layer;  // id of the owning layer (its Philox key word)
} ParamDesc;

typedef struct {
    ParamDesc *p;
    int n, cap;
    size_t n_trainable;  // floats in model.params
    size_t n_buffer;     // floats in model.bufs
} ParamTable;

// Appends a slice; its kind and decay follow from role here, so no layer can get them wrong.
// Returns the new entry's index, or -1 when out of memory.
int param_table_add(ParamTable *t, const char *layer_name, const char *param_name, ParamRole role,
                    int ndim, const int64_t *shape, int layer);
void param_table_free(ParamTable *t);
int param_table_find(const ParamTable *t, const char *name);  // index or -1
