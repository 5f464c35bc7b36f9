// bnharness.h: one batchnorm layer with its own parameters, gradients and buffers, for the
// BatchNorm tests in core/ (test_core_batchnorm.c) and dist/ (mpi_test_bnsync.c).
#pragma once
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/layer.h"

typedef struct {
    Layer l;
    ParamTable t;
    float *params, *bufs, *dparams;
    int C, HW;  // channels; positions per channel (H*W, or 1 for (D) input)
} BnHarness;

// The layer's parameter entries, in table order.
enum { BN_W = 0, BN_B = 1, BN_RMEAN = 2, BN_RVAR = 3, BN_NBT = 4 };

static inline LayerSpec bn_spec(float momentum, int ghost) {
    LayerSpec s = {.eps = 1e-5f, .momentum = momentum, .ghost = ghost};
    snprintf(s.type, sizeof s.type, "batchnorm");
    snprintf(s.name, sizeof s.name, "bn");
    return s;
}

// The layer for input `in`, its save area planned for max_batch samples as model_plan does,
// its parameters and buffers at their init (weight 1, bias 0, running var 1).
static inline void bn_harness_init(BnHarness *h, const LayerSpec *spec, Shape in,
                                   int max_batch) {
    memset(h, 0, sizeof *h);
    h->l.spec = *spec;
    h->l.id = 4;
    h->l.kind = layer_kind_find("batchnorm");
    assert_non_null(h->l.kind);
    h->l.in = in;
    Err e = {0};
    assert_int_equal(h->l.kind->setup(&h->l, in, &h->t, &e), ERR_OK);
    h->C = in.d[0];
    h->HW = in.ndim == 3 ? in.d[1] * in.d[2] : 1;
    h->params = calloc(h->t.n_trainable, sizeof(float));
    h->dparams = calloc(h->t.n_trainable, sizeof(float));
    h->bufs = calloc(h->t.n_buffer, sizeof(float));
    h->l.save = malloc(h->l.save_bytes_per_sample * (size_t)max_batch + h->l.save_bytes_fixed);
    assert_true(h->params && h->dparams && h->bufs && h->l.save);
    h->l.kind->init(&h->l, h->params, h->bufs, 1);
}

static inline void bn_harness_free(BnHarness *h) {
    free(h->params), free(h->dparams), free(h->bufs), free(h->l.save);
    param_table_free(&h->t);
}

// Entry k (BN_W...) of the parameters, their gradients, the buffers.
static inline float *bn_param(BnHarness *h, int k) { return h->params + h->l.poff[k]; }
static inline float *bn_grad(BnHarness *h, int k) { return h->dparams + h->l.poff[k]; }
static inline float *bn_buf(BnHarness *h, int k) { return h->bufs + h->l.poff[k]; }

static inline void bn_fwd(BnHarness *h, float *y, const float *x, const StepCtx *c, int B) {
    h->l.kind->forward(&h->l, y, x, h->params, h->bufs, c, B);
}
static inline void bn_bwd(BnHarness *h, float *dx, const float *dy, const float *x,
                          const float *y, const StepCtx *c, int B) {
    h->l.kind->backward(&h->l, dx, h->dparams, dy, x, y, h->params, c, B);
}
