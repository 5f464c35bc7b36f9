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

typedef struct {
    char name[PARAM_NAME_MAX];  // "fc1.weight"
    int ndim;
    int64_t shape[PARAM_MAX_DIMS];  // PyTorch's shape: Linear weight is (out, in)
    size_t offset;                  // into model.params (TRAINABLE) or model.bufs (BUFFER)
    size_t numel;
    ParamKind kind;
    int decay;  // weight decay, L1 and L2 apply: weight matrices and kernels only, never 1-D
    int layer;  // id of the owning layer (its Philox key word)
} ParamDesc;

typedef struct {
    ParamDesc *p;
    int n, cap;
    size_t n_trainable;  // floats in model.params
    size_t n_buffer;     // floats in model.bufs
} ParamTable;

// Appends a slice; decay is decided here (ndim >= 2) so no layer can get it wrong.
// Returns the new entry's index, or -1 when out of memory.
int param_table_add(ParamTable *t, const char *layer_name, const char *param_name, ParamKind kind,
                    int ndim, const int64_t *shape, int layer);
void param_table_free(ParamTable *t);
int param_table_find(const ParamTable *t, const char *name);  // index or -1
