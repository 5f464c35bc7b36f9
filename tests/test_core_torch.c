// test_core_torch.c: core/ against PyTorch, number for number. The reference values in
// fixtures/torch_reference.h come from tests/torch/gen_fixtures.py (torch 1.13, float32);
// regenerate them with /usr/bin/python3 tests/torch/gen_fixtures.py.
//
// Each comparison passes when |got - want| <= rtol |want| + atol for every element, and prints
// its largest absolute and relative error. Tolerances, and why:
// - Single kernels (Linear, LayerNorm, GELU, cross-entropy): rtol 1e-6, about 8 float32 ulps.
//   Both sides round differently (sgemm blocking, erff vs torch's erf, float vs double sums),
//   so bit equality is not expected, but a wrong formula is off by far more. Where entries
//   come from sums that cancel (dot products, LayerNorm's dx, softmax - target), an element
//   can be small next to the rounding of its terms, so atol is 1e-6 of the array's largest
//   entry: 8 ulps of the scale the rounding happens at.
// - Optimizer trajectories (5 steps): rtol 1e-5, atol 1e-6. Rounding compounds over steps
//   and Adam divides by sqrt(v); a bias that is wrongly decayed (AdamW, lr wd = 1e-3 per step)
//   or decay applied the wrong way (coupled vs decoupled) moves values by ~1e-3 relative.
// - Clipping and the schedule: rtol 1e-6 (one scale factor; one formula).
// - Conv2d and pooling are single kernels (as above); maxpool's dx is exact (it only copies
//   and sums dy), so a tie sent to the wrong element fails outright.
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/kernels.h"
#include "core/loss.h"
#include "core/optim.h"
#include "core/params.h"
#include "core/regularize.h"
#include "core/schedule.h"
#include "checkclose.h"
#include "fixtures/torch_reference.h"

#define RTOL_OP 1e-6
#define ATOL_OP_OF_MAX 1e-6  // times the largest |want| of the array
#define RTOL_OPTIM 1e-5
#define ATOL_OPTIM 1e-6

#define LEN(a) (sizeof(a) / sizeof((a)[0]))

// Single-kernel comparison: rtol 1e-6 and atol 1e-6 of the array's scale.
static void check_op(const char *what, const float *got, const float *want, size_t n) {
    check_close(what, got, want, n, RTOL_OP, ATOL_OP_OF_MAX * max_abs(want, n));
}

static void check_scalar(const char *what, double got, double want, double rtol) {
    float g = (float)got, w = (float)want;
    check_close(what, &g, &w, 1, rtol, 0.0);
}

static void fill(float *v, size_t n, float x) {
    for (size_t i = 0; i < n; i++) v[i] = x;
}

static void scaled(float *out, const float *v, size_t n, float s) {
    for (size_t i = 0; i < n; i++) out[i] = s * v[i];
}

// (a) nn.Linear: forward; backward overwrites dinp and accumulates dweight, dbias.
static void test_linear(void **state) {
    (void)state;
    float y[LIN_B * LIN_OC], dx[LIN_B * LIN_C], dw[LIN_OC * LIN_C], db[LIN_OC];
    float w2[LEN(dw)], b2[LEN(db)], w3[LEN(dw)];
    linear_forward(y, lin_x, lin_w, lin_b, LIN_B, LIN_C, LIN_OC);
    check_op("linear y", y, lin_y, LEN(y));

    fill(dx, LEN(dx), 1e3f);  // garbage: dinp must be overwritten, not added to
    fill(dw, LEN(dw), 0.0f), fill(db, LEN(db), 0.0f);
    linear_backward(dx, dw, db, lin_dy, lin_x, lin_w, LIN_B, LIN_C, LIN_OC);
    check_op("linear dx", dx, lin_dx, LEN(dx));
    check_op("linear dW", dw, lin_dw, LEN(dw));
    check_op("linear db", db, lin_db, LEN(db));

    linear_backward(dx, dw, db, lin_dy, lin_x, lin_w, LIN_B, LIN_C, LIN_OC);
    scaled(w2, lin_dw, LEN(w2), 2.0f), scaled(b2, lin_db, LEN(b2), 2.0f);
    check_op("linear dx (2nd call)", dx, lin_dx, LEN(dx));
    check_op("linear dW (2x accum)", dw, w2, LEN(dw));
    check_op("linear db (2x accum)", db, b2, LEN(db));

    // NULL dinp and dbias are skipped; dweight still accumulates
    linear_backward(NULL, dw, NULL, lin_dy, lin_x, lin_w, LIN_B, LIN_C, LIN_OC);
    scaled(w3, lin_dw, LEN(w3), 3.0f);
    check_op("linear dW (3x, NULLs)", dw, w3, LEN(dw));
    check_op("linear db (untouched)", db, b2, LEN(db));
}

// (b) nn.LayerNorm with affine weight and bias, including a row with variance ~ eps.
static void test_layernorm(void **state) {
    (void)state;
    float y[LN_B * LN_D], mean[LN_B], rstd[LN_B], dx[LN_B * LN_D], dw[LN_D], db[LN_D];
    float w2[LN_D], b2[LN_D];
    layernorm_forward(y, mean, rstd, ln_x, ln_w, ln_b, LN_B, LN_D, LN_EPS);
    check_op("layernorm y", y, ln_y, LEN(y));

    fill(dx, LEN(dx), 1e3f);
    fill(dw, LEN(dw), 0.0f), fill(db, LEN(db), 0.0f);
    layernorm_backward(dx, dw, db, ln_dy, ln_x, ln_w, mean, rstd, LN_B, LN_D);
    // per row: row 2's dx is ~100x the others (rstd ~ 100), and is checked at its own scale
    for (int b = 0; b < LN_B; b++) {
        char what[32];
        snprintf(what, sizeof what, "layernorm dx row %d", b);
        check_op(what, dx + b * LN_D, ln_dx + b * LN_D, LN_D);
    }
    check_op("layernorm dweight", dw, ln_dw, LEN(dw));
    check_op("layernorm dbias", db, ln_db, LEN(db));

    layernorm_backward(dx, dw, db, ln_dy, ln_x, ln_w, mean, rstd, LN_B, LN_D);
    scaled(w2, ln_dw, LN_D, 2.0f), scaled(b2, ln_db, LN_D, 2.0f);
    check_op("layernorm dx (2nd call)", dx, ln_dx, LEN(dx));
    check_op("layernorm dweight (2x)", dw, w2, LEN(dw));
    check_op("layernorm dbias (2x)", db, b2, LEN(db));
}

// (c) nn.GELU(): the exact erf form, over [-6, 6]. Forward saves Phi(x) for backward.
static void test_gelu(void **state) {
    (void)state;
    float y[GELU_N], cdf[GELU_N], dx[GELU_N], ones[GELU_N];
    gelu_forward(y, cdf, gelu_x, GELU_N);
    check_op("gelu y", y, gelu_y, GELU_N);
    fill(dx, GELU_N, 1e3f);
    gelu_backward(dx, gelu_dy, gelu_x, cdf, GELU_N);
    check_op("gelu dx", dx, gelu_dx, GELU_N);
    fill(ones, GELU_N, 1.0f);
    gelu_backward(dx, ones, gelu_x, cdf, GELU_N);  // overwrites: no trace of the previous call
    check_op("gelu dx (dy = 1)", dx, gelu_dx_ones, GELU_N);
}

// (d) CrossEntropyLoss(label_smoothing=0.1, reduction='mean') with logits up to 100. Core
// returns the sum over samples and scales dlogits by grad_scale: 1/B gives torch's mean.
static void test_xent(void **state) {
    (void)state;
    float dl[XENT_B * XENT_K], probs[XENT_B * XENT_K];
    int64_t correct = 0;
    fill(dl, LEN(dl), 1e3f);
    double sum = xent_forward_backward(dl, &correct, xent_logits, xent_labels, XENT_B, XENT_K,
                                       XENT_SMOOTHING, 1.0f / XENT_B);
    check_scalar("xent loss (sum / B)", sum / XENT_B, XENT_LOSS, RTOL_OP);
    check_op("xent dlogits", dl, xent_dlogits, LEN(dl));
    assert_int_equal(correct, XENT_CORRECT);

    // the eval path computes the same loss
    correct = 0;
    sum = xent_forward(probs, &correct, xent_logits, xent_labels, XENT_B, XENT_K, XENT_SMOOTHING);
    check_scalar("xent_forward loss", sum / XENT_B, XENT_LOSS, RTOL_OP);
    assert_int_equal(correct, XENT_CORRECT);
}

// (e) The optimizers over a table {p.weight (3,4), p.bias (3)}: decay is automatic for the
// 2-D weight only, as torch with groups [{W}, {b, weight_decay 0}].
static void run_trajectory(const char *name, const OptimConfig *cfg, const float *want_W,
                           const float *want_b) {
    ParamTable t = {0};
    int64_t wshape[2] = {3, 4}, bshape[1] = {3};
    int iw = param_table_add(&t, "p", "weight", PARAM_WEIGHT, 2, wshape, 0);
    int ib = param_table_add(&t, "p", "bias", PARAM_BIAS, 1, bshape, 0);
    assert_true(iw >= 0 && ib >= 0);
    assert_int_equal(t.n_trainable, 15);
    assert_true(t.p[iw].decay);   // the premise: the weight matrix is decayed...
    assert_false(t.p[ib].decay);  // ...and the bias is not
    size_t ow = t.p[iw].offset, ob = t.p[ib].offset;

    float params[15], grads[15];
    memcpy(params + ow, opt_W0, sizeof opt_W0);
    memcpy(params + ob, opt_b0, sizeof opt_b0);
    Optim o;
    assert_int_equal(optim_init(&o, cfg, t.n_trainable), 0);
    for (int s = 0; s < OPT_STEPS; s++) {
        memcpy(grads + ow, opt_gW + 12 * s, 12 * sizeof(float));
        memcpy(grads + ob, opt_gb + 3 * s, 3 * sizeof(float));
        optim_step(&o, params, grads, &t, cfg->lr, 1.0f);
        char what[64];
        snprintf(what, sizeof what, "%s W step %d", name, s + 1);
        check_close(what, params + ow, want_W + 12 * s, 12, RTOL_OPTIM, ATOL_OPTIM);
        snprintf(what, sizeof what, "%s b step %d", name, s + 1);
        check_close(what, params + ob, want_b + 3 * s, 3, RTOL_OPTIM, ATOL_OPTIM);
    }
    assert_int_equal(o.step, OPT_STEPS);
    optim_free(&o);
    param_table_free(&t);
}

static void test_adamw(void **state) {
    (void)state;
    OptimConfig c = {.kind = OPTIM_ADAMW, .lr = 1e-2f, .weight_decay = 0.1f, .beta1 = 0.9f,
                     .beta2 = 0.999f, .eps = 1e-8f};
    run_trajectory("adamw", &c, adamw_W, adamw_b);
}

static void test_adam_coupled_decay(void **state) {
    (void)state;
    OptimConfig c = {.kind = OPTIM_ADAM, .lr = 1e-2f, .weight_decay = 0.1f, .beta1 = 0.9f,
                     .beta2 = 0.999f, .eps = 1e-8f};
    run_trajectory("adam", &c, adam_W, adam_b);
}

static void test_sgd_nesterov(void **state) {
    (void)state;
    OptimConfig c = {.kind = OPTIM_SGD, .lr = 0.1f, .weight_decay = 0.01f, .momentum = 0.9f,
                     .nesterov = 1};
    run_trajectory("sgd_nesterov", &c, sgd_nesterov_W, sgd_nesterov_b);
}

static void test_sgd_dampening(void **state) {
    (void)state;
    OptimConfig c = {.kind = OPTIM_SGD, .lr = 0.1f, .weight_decay = 0.01f, .momentum = 0.9f,
                     .dampening = 0.1f};
    run_trajectory("sgd_damp", &c, sgd_damp_W, sgd_damp_b);
}

// (f) clip_grad_norm_(max_norm=1), as training computes it: the global norm, then the factor
// grad_clip_scale gives it: a gradient of norm > 1 is scaled, one of norm < 1 is not.
static double clip(float *g, const float *in) {
    memcpy(g, in, CLIP_N * sizeof(float));
    double norm = grad_global_norm(g, CLIP_N);
    float c = grad_clip_scale(norm, 1.0f);
    for (int i = 0; i < CLIP_N; i++) g[i] *= c;
    return norm;
}

static void test_clip(void **state) {
    (void)state;
    float g[CLIP_N];
    double norm = clip(g, clip_big_in);
    check_scalar("clip big norm", norm, CLIP_BIG_NORM, RTOL_OP);
    check_close("clip big grads", g, clip_big_out, CLIP_N, RTOL_OP, 0.0);
    assert_true(grad_global_norm(g, CLIP_N) < 1.0);

    norm = clip(g, clip_small_in);
    check_scalar("clip small norm", norm, CLIP_SMALL_NORM, RTOL_OP);
    check_close("clip small grads", g, clip_small_out, CLIP_N, 0.0, 0.0);  // untouched
}

// Training clips by handing clip_grad_norm_'s factor to the optimizer (launch/step.c):
// bit for bit what scaling the gradients in place and stepping with factor 1 gives, for
// each optimizer (Adam's coupled decay and SGD's momentum are where a fused multiply-add
// would round differently), over several steps; and the factor is 1 for a norm under
// max_norm.
static void test_optim_takes_clip_factor(void **state) {
    (void)state;
    assert_true(grad_clip_scale(CLIP_SMALL_NORM, 1.0f) == 1.0f);
    assert_true(grad_clip_scale(CLIP_BIG_NORM, 1.0f) == (float)(1.0 / (CLIP_BIG_NORM + 1e-6)));
    OptimConfig cfgs[3] = {
        {.kind = OPTIM_ADAMW, .lr = 1e-2f, .weight_decay = 0.1f, .beta1 = 0.9f, .beta2 = 0.999f,
         .eps = 1e-8f},
        {.kind = OPTIM_ADAM, .lr = 1e-2f, .weight_decay = 0.1f, .beta1 = 0.9f, .beta2 = 0.999f,
         .eps = 1e-8f},
        {.kind = OPTIM_SGD, .lr = 0.1f, .weight_decay = 0.01f, .momentum = 0.9f, .nesterov = 1}};
    ParamTable t = {0};
    int64_t wshape[2] = {3, 4}, bshape[1] = {3};
    assert_true(param_table_add(&t, "p", "weight", PARAM_WEIGHT, 2, wshape, 0) >= 0);
    assert_true(param_table_add(&t, "p", "bias", PARAM_BIAS, 1, bshape, 0) >= 0);
    for (int k = 0; k < 3; k++) {
        float pa[15], pb[15], ga[15], gb[15];
        memcpy(pa, opt_W0, sizeof opt_W0), memcpy(pa + 12, opt_b0, sizeof opt_b0);
        memcpy(pb, pa, sizeof pa);
        Optim a, b;
        assert_int_equal(optim_init(&a, &cfgs[k], 15), 0);
        assert_int_equal(optim_init(&b, &cfgs[k], 15), 0);
        for (int s = 0; s < OPT_STEPS; s++) {
            memcpy(ga, opt_gW + 12 * s, 12 * sizeof(float));
            memcpy(ga + 12, opt_gb + 3 * s, 3 * sizeof(float));
            memcpy(gb, ga, sizeof ga);
            float c = 0.3f + 0.1f * (float)s;
            for (int i = 0; i < 15; i++) gb[i] *= c;
            optim_step(&a, pa, ga, &t, cfgs[k].lr, c);
            optim_step(&b, pb, gb, &t, cfgs[k].lr, 1.0f);
            if (memcmp(pa, pb, sizeof pa)) fail_msg("params: kind %d step %d", k, s);
            if (memcmp(a.m, b.m, 15 * sizeof(float))) fail_msg("m: kind %d step %d", k, s);
        }
        optim_free(&a), optim_free(&b);
    }
    param_table_free(&t);
}

// grads_finite: 1 for finite gradients (the largest floats and -0 included), 0 for one NaN,
// +Inf or -Inf anywhere: in the vector body's every lane and in the tail.
static void test_grads_finite(void **state) {
    (void)state;
    enum { N = 45 };  // two blocks of 16 and a tail of 13
    float g[N];
    for (int i = 0; i < N; i++) g[i] = i % 3 ? 3.4e38f : -0.0f;
    assert_int_equal(grads_finite(g, N), 1);
    assert_int_equal(grads_finite(g, 0), 1);
    const float bad[3] = {NAN, INFINITY, -INFINITY};
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < N; i++) {
            float keep = g[i];
            g[i] = bad[k];
            if (grads_finite(g, N))
                fail_msg("grads_finite missed %g at %d of %d", (double)bad[k], i, N);
            g[i] = keep;
        }
}

// (g) cosine with linear warmup, steps 0..total. Past total the rate stays at min_lr: that
// clamp is regdist's contract (schedule.h), not torch's (CosineAnnealingLR would rise again).
static void test_cosine_schedule(void **state) {
    (void)state;
    Schedule s = {.kind = SCHED_COSINE, .warmup_steps = SCHED_WARMUP, .min_lr = SCHED_MIN_LR,
                  .total_steps = SCHED_TOTAL};
    float lr[SCHED_TOTAL + 1];
    for (int i = 0; i <= SCHED_TOTAL; i++) lr[i] = schedule_lr(&s, SCHED_LR, i);
    check_close("cosine lr", lr, sched_lr, LEN(lr), RTOL_OP, 0.0);
    for (int i = SCHED_TOTAL; i < SCHED_TOTAL + 5; i++)
        assert_float_equal(schedule_lr(&s, SCHED_LR, i), SCHED_MIN_LR, 1e-9);
}

// (h) nn.Conv2d(3, 4, 3, stride=2, padding=1): forward; backward overwrites dinp, accumulates
// dweight and dbias, and leaves the saved columns as forward wrote them.
static void test_conv2d(void **state) {
    (void)state;
    enum { NCOL = CONV_B * CONV_C * CONV_K * CONV_K * CONV_OH * CONV_OW };
    static float col[NCOL], col_fwd[NCOL];
    float y[LEN(conv_y)], dx[LEN(conv_dx)], dw[LEN(conv_dw)], db[LEN(conv_db)];
    float w2[LEN(dw)], b2[LEN(db)];
    conv2d_forward(y, col, conv_x, conv_w, conv_b, CONV_B, CONV_C, CONV_H, CONV_W, CONV_OC,
                   CONV_K, CONV_S, CONV_P);
    check_op("conv2d y", y, conv_y, LEN(y));
    memcpy(col_fwd, col, sizeof col);

    fill(dx, LEN(dx), 1e3f);
    fill(dw, LEN(dw), 0.0f), fill(db, LEN(db), 0.0f);
    conv2d_backward(dx, dw, db, col, conv_dy, conv_x, conv_w, CONV_B, CONV_C, CONV_H, CONV_W,
                    CONV_OC, CONV_K, CONV_S, CONV_P);
    check_op("conv2d dx", dx, conv_dx, LEN(dx));
    check_op("conv2d dW", dw, conv_dw, LEN(dw));
    check_op("conv2d db", db, conv_db, LEN(db));
    assert_memory_equal(col, col_fwd, sizeof col);

    conv2d_backward(NULL, dw, db, col, conv_dy, conv_x, conv_w, CONV_B, CONV_C, CONV_H, CONV_W,
                    CONV_OC, CONV_K, CONV_S, CONV_P);
    scaled(w2, conv_dw, LEN(w2), 2.0f), scaled(b2, conv_db, LEN(b2), 2.0f);
    check_op("conv2d dW (2x, no dx)", dw, w2, LEN(dw));
    check_op("conv2d db (2x, no dx)", db, b2, LEN(db));

    // without bias the output is y - b
    float yb[LEN(conv_y)];
    conv2d_forward(y, col, conv_x, conv_w, NULL, CONV_B, CONV_C, CONV_H, CONV_W, CONV_OC, CONV_K,
                   CONV_S, CONV_P);
    for (size_t i = 0; i < LEN(yb); i++)
        yb[i] = conv_y[i] - conv_b[(i / (CONV_OH * CONV_OW)) % CONV_OC];
    check_close("conv2d y (no bias)", y, yb, LEN(y), 1e-5, 1e-6 * max_abs(conv_y, LEN(conv_y)));
}

// (i) nn.MaxPool2d / nn.AvgPool2d(3, stride=2, padding=1), with a tie in one max window.
static void test_pool(void **state) {
    (void)state;
    float y[LEN(maxpool_y)], dx[LEN(pool_x)];
    int32_t arg[LEN(maxpool_y)];
    maxpool2d_forward(y, arg, pool_x, POOL_B, POOL_C, POOL_H, POOL_W, POOL_K, POOL_S, POOL_P);
    check_op("maxpool y", y, maxpool_y, LEN(y));
    fill(dx, LEN(dx), 1e3f);
    maxpool2d_backward(dx, pool_dy, arg, POOL_B, POOL_C, POOL_H, POOL_W, POOL_OH, POOL_OW);
    check_close("maxpool dx", dx, maxpool_dx, LEN(dx), 0.0, 0.0);  // copies and sums of dy

    avgpool2d_forward(y, pool_x, POOL_B, POOL_C, POOL_H, POOL_W, POOL_K, POOL_S, POOL_P);
    check_op("avgpool y", y, avgpool_y, LEN(y));
    fill(dx, LEN(dx), 1e3f);
    avgpool2d_backward(dx, pool_dy, POOL_B, POOL_C, POOL_H, POOL_W, POOL_K, POOL_S, POOL_P);
    check_op("avgpool dx", dx, avgpool_dx, LEN(dx));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_layernorm),
        cmocka_unit_test(test_gelu),
        cmocka_unit_test(test_xent),
        cmocka_unit_test(test_adamw),
        cmocka_unit_test(test_adam_coupled_decay),
        cmocka_unit_test(test_sgd_nesterov),
        cmocka_unit_test(test_sgd_dampening),
        cmocka_unit_test(test_clip),
        cmocka_unit_test(test_optim_takes_clip_factor),
        cmocka_unit_test(test_grads_finite),
        cmocka_unit_test(test_cosine_schedule),
        cmocka_unit_test(test_conv2d),
        cmocka_unit_test(test_pool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
