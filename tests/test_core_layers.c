// test_core_layers.c: every layer's backward against central finite differences
// (gradcheck.h says how and to what tolerance), plus the layers' own special cases.
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gradcheck.h"

#include "core/kernels.h"
#include "core/layer.h"
#include "core/model.h"
#include "core/philox.h"

// Checks d L / d input and d L / d every parameter for one layer configuration, at the
// input x0 ((B, in) values) or, if NULL, at random inputs kept 0.05 away from 0.
static void gradcheck_at(const LayerSpec *spec, Shape in, int B, int train, const float *x0) {
    Harness h;
    harness_init(&h, spec, in, B);
    int64_t ids[64];
    for (int b = 0; b < B; b++) ids[b] = 1000 + 17 * b;
    StepCtx c = {.train = train, .dropout_on = 1, .seed = 5, .step = 3, .sample_ids = ids};
    float *x = malloc(h.nin * sizeof(float)), *dx = malloc(h.nin * sizeof(float));
    // inputs kept 0.05 away from 0, so no +-h nudge crosses ReLU's kink
    for (size_t i = 0; i < h.nin; i++) {
        float u = 1.5f * urand((uint32_t)i, 33);
        x[i] = x0 ? x0[i] : u + (u >= 0 ? 0.05f : -0.05f);
    }
    gradcheck_run(&h, x, dx, &c);
    free(x), free(dx);
    harness_free(&h);
}

static void gradcheck(const LayerSpec *spec, Shape in, int B, int train) {
    gradcheck_at(spec, in, B, train, NULL);
}

static LayerSpec spec(const char *type) {
    LayerSpec s = {.bias = 1, .p = 0.5f, .eps = 1e-5f, .out = 5};
    snprintf(s.type, sizeof s.type, "%s", type);
    snprintf(s.name, sizeof s.name, "l");
    return s;
}

static void test_linear(void **state) {
    (void)state;
    LayerSpec s = spec("linear");
    gradcheck(&s, (Shape){1, {7}}, 4, 1);
    s.bias = 0;
    gradcheck(&s, (Shape){1, {7}}, 3, 1);
}

static void test_relu(void **state) {
    (void)state;
    LayerSpec s = spec("relu");
    gradcheck(&s, (Shape){1, {9}}, 3, 1);
}

static void test_gelu(void **state) {
    (void)state;
    LayerSpec s = spec("gelu");
    gradcheck(&s, (Shape){1, {9}}, 3, 1);
}

static void test_layernorm(void **state) {
    (void)state;
    LayerSpec s = spec("layernorm");
    gradcheck(&s, (Shape){1, {8}}, 3, 1);
}

// LayerNorm's forward (core/layernorm.c) takes rows in interleaved blocks: bit for bit what
// one row at a time gives (written out here, its multiply-adds fused as the kernel's are), for
// batches that fill blocks, leave a short last block and fit in one.
static void ln_forward_rows1(float *out, float *mean, float *rstd, const float *inp,
                             const float *weight, const float *bias, int B, int D, float eps) {
    for (int b = 0; b < B; b++) {
        const float *x = inp + (size_t)b * D;
        float *y = out + (size_t)b * D;
        float s = 0.0f;
        for (int i = 0; i < D; i++) s += x[i];
        float m = s / D;
        float v = 0.0f;
        for (int i = 0; i < D; i++) {
            float d = x[i] - m;
            v = fmaf(d, d, v);
        }
        float r = 1.0f / sqrtf(v / D + eps);
        for (int i = 0; i < D; i++) y[i] = fmaf((x[i] - m) * r, weight[i], bias[i]);
        mean[b] = m;
        rstd[b] = r;
    }
}

static void test_layernorm_rows_match_one_by_one(void **state) {
    (void)state;
    const int shapes[][2] = {{128, 256}, {13, 128}, {3, 5}, {8, 33}, {1, 7}};
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        int B = shapes[t][0], D = shapes[t][1];
        size_t n = (size_t)B * D;
        float *x = malloc(n * sizeof(float)), w[256], bias[256];
        float *y[2], *mean[2], *rstd[2];
        assert_non_null(x);
        for (size_t i = 0; i < n; i++) {
            philox_ctr r = philox4x32_10((philox_ctr){{(uint32_t)i, (uint32_t)t, 0, 0}},
                                         (philox_key){{3, 5}});
            x[i] = 3.0f * philox_unit(r.v[0]) - 1.0f;
        }
        for (int i = 0; i < D; i++) w[i] = 0.5f + (float)i / D, bias[i] = 0.1f * (float)(i % 7);
        for (int k = 0; k < 2; k++) {
            y[k] = malloc(n * sizeof(float));
            mean[k] = malloc((size_t)B * sizeof(float)), rstd[k] = malloc((size_t)B * sizeof(float));
            assert_non_null(y[k]), assert_non_null(mean[k]), assert_non_null(rstd[k]);
        }
        layernorm_forward(y[0], mean[0], rstd[0], x, w, bias, B, D, 1e-5f);
        ln_forward_rows1(y[1], mean[1], rstd[1], x, w, bias, B, D, 1e-5f);
        assert_memory_equal(y[0], y[1], n * sizeof(float));
        assert_memory_equal(mean[0], mean[1], (size_t)B * sizeof(float));
        assert_memory_equal(rstd[0], rstd[1], (size_t)B * sizeof(float));
        for (int k = 0; k < 2; k++) free(y[k]), free(mean[k]), free(rstd[k]);
        free(x);
    }
}

// LayerNorm's backward (core/layernorm.c) advances the sums of blocks of rows together: bit for
// bit what one row at a time gives, written out here with its products rounded before they are
// summed (kept in gn[] between two loops) and its fused multiply-adds as the kernel's.
static void ln_backward_rows1(float *dinp, float *dweight, float *dbias, const float *dout,
                              const float *inp, const float *weight, const float *mean,
                              const float *rstd, int B, int D) {
    float *g = malloc((size_t)D * sizeof(float)), *gn = malloc((size_t)D * sizeof(float));
    assert_non_null(g), assert_non_null(gn);
    for (int b = 0; b < B; b++) {
        const float *x = inp + (size_t)b * D, *dy = dout + (size_t)b * D;
        float m = mean[b], r = rstd[b], sum_g = 0.0f, sum_gn = 0.0f;
        for (int i = 0; i < D; i++) {
            float n = (x[i] - m) * r;
            g[i] = dy[i] * weight[i];
            gn[i] = g[i] * n;
            dweight[i] = fmaf(dy[i], n, dweight[i]);
            dbias[i] += dy[i];
        }
        for (int i = 0; i < D; i++) sum_g += g[i], sum_gn += gn[i];
        if (!dinp) continue;
        float mg = sum_g / D, mgn = sum_gn / D;
        for (int i = 0; i < D; i++) {
            float n = (x[i] - m) * r;
            dinp[(size_t)b * D + i] = fmaf(-n, mgn, fmaf(dy[i], weight[i], -mg)) * r;
        }
    }
    free(g), free(gn);
}

static void test_layernorm_backward_rows_match_one_by_one(void **state) {
    (void)state;
    const int shapes[][2] = {{128, 256}, {13, 37}, {8, 16}, {9, 128}, {1, 7}, {3, 5}};
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        int B = shapes[t][0], D = shapes[t][1];
        size_t n = (size_t)B * D;
        float *x = malloc(n * sizeof(float)), *dy = malloc(n * sizeof(float));
        float *y = malloc(n * sizeof(float)), mean[128], rstd[128], w[256], bias[256];
        assert_non_null(x), assert_non_null(dy), assert_non_null(y);
        for (size_t i = 0; i < n; i++) {
            philox_ctr r =
                philox4x32_10((philox_ctr){{(uint32_t)i, (uint32_t)t, 1, 0}}, (philox_key){{3, 5}});
            x[i] = 3.0f * philox_unit(r.v[0]) - 1.0f;
            dy[i] = philox_unit(r.v[1]) - 0.5f;
        }
        for (int i = 0; i < D; i++) w[i] = 0.5f + (float)i / D, bias[i] = 0.1f * (float)(i % 7);
        layernorm_forward(y, mean, rstd, x, w, bias, B, D, 1e-5f);
        for (int with_dinp = 0; with_dinp < 2; with_dinp++) {
            float *dx[2], *dw[2], *db[2];
            for (int k = 0; k < 2; k++) {
                dx[k] = with_dinp ? malloc(n * sizeof(float)) : NULL;
                dw[k] = malloc((size_t)D * sizeof(float)),
                db[k] = malloc((size_t)D * sizeof(float));
                assert_non_null(dw[k]), assert_non_null(db[k]);
                for (int i = 0; i < D; i++) dw[k][i] = 0.25f * (float)i, db[k][i] = -0.5f;
            }
            layernorm_backward(dx[0], dw[0], db[0], dy, x, w, mean, rstd, B, D);
            ln_backward_rows1(dx[1], dw[1], db[1], dy, x, w, mean, rstd, B, D);
            if (with_dinp) assert_memory_equal(dx[0], dx[1], n * sizeof(float));
            assert_memory_equal(dw[0], dw[1], (size_t)D * sizeof(float));
            assert_memory_equal(db[0], db[1], (size_t)D * sizeof(float));
            for (int k = 0; k < 2; k++) free(dx[k]), free(dw[k]), free(db[k]);
        }
        free(x), free(dy), free(y);
    }
}

static void test_dropout_train_and_eval(void **state) {
    (void)state;
    LayerSpec s = spec("dropout");
    s.p = 0.3f;
    gradcheck(&s, (Shape){1, {16}}, 3, 1);
    gradcheck(&s, (Shape){1, {16}}, 3, 0);
}

static void test_flatten(void **state) {
    (void)state;
    LayerSpec s = spec("flatten");
    gradcheck(&s, (Shape){3, {2, 3, 2}}, 2, 1);
}

static void test_conv2d(void **state) {
    (void)state;
    LayerSpec s = spec("conv2d");
    s.out = 3, s.kernel = 3;
    gradcheck(&s, (Shape){3, {2, 5, 4}}, 2, 1);  // bias, stride 1, no padding, H != W
    s.bias = 0, s.stride = 2, s.padding = 1;
    gradcheck(&s, (Shape){3, {2, 6, 5}}, 2, 1);  // no bias, stride 2 (uneven), padding 1
    s.bias = 1, s.kernel = 2, s.stride = 1, s.padding = 1, s.out = 2;
    gradcheck(&s, (Shape){3, {3, 3, 5}}, 3, 1);  // even kernel, padding wider than needed
    s.kernel = 1, s.stride = 0, s.padding = 0;
    gradcheck(&s, (Shape){3, {4, 2, 3}}, 2, 1);  // 1x1 (stride 0 = default 1)
    s.kernel = 3, s.padding = 1, s.out = 5, s.bias = 0;
    gradcheck(&s, (Shape){3, {3, 5, 4}}, 3, 1);  // "same" 3x3, more outputs than inputs
    s.out = 2, s.bias = 1;
    gradcheck(&s, (Shape){3, {3, 4, 6}}, 2, 1);  // "same" 3x3, fewer outputs: rotated weights
    gradcheck(&s, (Shape){3, {3, 4, 6}}, 1, 1);  // the same, one sample per chunk
}

// Backward borrows the saved columns as scratch and must leave them as forward wrote them:
// a second backward gives the same input gradient and exactly doubles the weight gradient.
static void test_conv2d_backward_repeatable(void **state) {
    (void)state;
    LayerSpec s = spec("conv2d");
    s.out = 4, s.kernel = 3, s.stride = 2, s.padding = 1;
    Harness h;
    harness_init(&h, &s, (Shape){3, {3, 7, 6}}, 2);
    float x[2 * 3 * 7 * 6], dx1[2 * 3 * 7 * 6], dx2[2 * 3 * 7 * 6], y[2 * 4 * 4 * 3],
        dy[2 * 4 * 4 * 3];
    assert_int_equal(h.nout, sizeof y / sizeof y[0]);
    for (size_t i = 0; i < h.nin; i++) x[i] = urand((uint32_t)i, 1);
    for (size_t i = 0; i < h.nout; i++) dy[i] = urand((uint32_t)i, 2);
    StepCtx c = {.train = 1};
    h.l.kind->forward(&h.l, y, x, h.params, h.bufs, &c, 2);
    h.l.kind->backward(&h.l, dx1, h.dparams, dy, x, y, h.params, &c, 2);
    float once[256];
    assert_true(h.t.n_trainable <= 256);
    memcpy(once, h.dparams, h.t.n_trainable * sizeof(float));
    h.l.kind->backward(&h.l, dx2, h.dparams, dy, x, y, h.params, &c, 2);
    for (size_t i = 0; i < h.nin; i++) assert_float_equal(dx1[i], dx2[i], 0.0);
    for (size_t i = 0; i < h.t.n_trainable; i++)
        assert_float_equal(h.dparams[i], 2 * once[i], 1e-5 * (1 + fabs(once[i])));
    harness_free(&h);
}

static void test_conv2d_rejects_bad_shapes(void **state) {
    (void)state;
    Model m;
    Err e = {0};
    LayerSpec s = spec("conv2d");
    s.kernel = 3;
    snprintf(s.name, sizeof s.name, "c1");
    assert_int_equal(model_build(&m, &s, 1, (Shape){1, {16}}, 5, &e), ERR_INPUT);
    assert_non_null(strstr(e.msg, "c1"));
    assert_non_null(strstr(e.msg, "(C,H,W)"));
    model_free(&m);
    s.kernel = 5;  // 5x5 does not fit 3x4 without padding
    assert_int_equal(model_build(&m, &s, 1, (Shape){3, {1, 3, 4}}, 5, &e), ERR_INPUT);
    assert_non_null(strstr(e.msg, "no output"));
    model_free(&m);
}

// Inputs of the window layers: distinct values 0.05 apart (well beyond the 2h = 0.02 that the
// difference quotient moves them), so no max is tied or changes under a nudge.
static float *spread_inputs(size_t n) {
    float *x = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = 0.05f * (float)((i * 7919) % n) - 0.025f * (float)n;
    return x;
}

static void test_maxpool2d(void **state) {
    (void)state;
    LayerSpec s = spec("maxpool2d");
    s.kernel = 2;  // stride defaults to the kernel
    float *x = spread_inputs(2 * 2 * 4 * 5);
    gradcheck_at(&s, (Shape){3, {2, 4, 5}}, 2, 1, x);
    free(x);
    s.kernel = 3, s.stride = 2, s.padding = 1;
    x = spread_inputs(2 * 3 * 5 * 6);
    gradcheck_at(&s, (Shape){3, {3, 5, 6}}, 2, 1, x);
    free(x);
}

// Ties go to the first maximum in the window, as PyTorch: all the gradient lands there.
static void test_maxpool2d_ties(void **state) {
    (void)state;
    float x[4] = {1, 1, 1, 1}, y[1], dy[1] = {2}, dx[4];
    int32_t arg[1];
    maxpool2d_forward(y, arg, x, 1, 1, 2, 2, 2, 2, 0);
    assert_int_equal(arg[0], 0);
    maxpool2d_backward(dx, dy, arg, 1, 1, 2, 2, 1, 1);
    assert_float_equal(dx[0], 2, 0);
    assert_float_equal(dx[1] + dx[2] + dx[3], 0, 0);
}

static void test_avgpool2d(void **state) {
    (void)state;
    LayerSpec s = spec("avgpool2d");
    s.kernel = 2;
    gradcheck(&s, (Shape){3, {2, 4, 5}}, 2, 1);
    s.kernel = 3, s.stride = 2, s.padding = 1;
    gradcheck(&s, (Shape){3, {3, 5, 6}}, 2, 1);
}

static void test_globalavgpool(void **state) {
    (void)state;
    LayerSpec s = spec("globalavgpool");
    gradcheck(&s, (Shape){3, {3, 4, 5}}, 2, 1);
}

// Parameter gradients accumulate across backward calls (gradient accumulation relies on it).
static void test_backward_accumulates(void **state) {
    (void)state;
    LayerSpec s = spec("linear");
    Harness h;
    harness_init(&h, &s, (Shape){1, {4}}, 2);
    float x[8], y[10], dy[10], dx[8];
    for (int i = 0; i < 8; i++) x[i] = urand((uint32_t)i, 1);
    for (int i = 0; i < 10; i++) dy[i] = urand((uint32_t)i, 2);
    StepCtx c = {.train = 1};
    h.l.kind->forward(&h.l, y, x, h.params, h.bufs, &c, 2);
    h.l.kind->backward(&h.l, dx, h.dparams, dy, x, y, h.params, &c, 2);
    float once[32];
    memcpy(once, h.dparams, h.t.n_trainable * sizeof(float));
    h.l.kind->backward(&h.l, dx, h.dparams, dy, x, y, h.params, &c, 2);
    for (size_t i = 0; i < h.t.n_trainable; i++)
        assert_float_equal(h.dparams[i], 2 * once[i], 1e-6);
    harness_free(&h);
}

// A model-level check: the grad-ready callback sees every trainable slice exactly once,
// from the end of the buffer to the start.
static size_t seen_next;
static int seen_calls;
static void on_ready(void *ctx, size_t off, size_t count) {
    (void)ctx;
    assert_int_equal(off + count, seen_next);
    seen_next = off;
    seen_calls++;
}

static void test_grad_ready_order(void **state) {
    (void)state;
    LayerSpec specs[4] = {spec("linear"), spec("gelu"), spec("layernorm"), spec("linear")};
    snprintf(specs[1].name, sizeof specs[1].name, "g");
    snprintf(specs[2].name, sizeof specs[2].name, "n");
    snprintf(specs[3].name, sizeof specs[3].name, "o");
    specs[3].out = 3;
    Model m;
    Err e = {0};
    assert_int_equal(model_build(&m, specs, 4, (Shape){1, {6}}, 3, &e), ERR_OK);
    assert_int_equal(model_plan(&m, 2, &e), ERR_OK);
    model_init(&m, 1);
    m.grad_ready = on_ready;
    float x[12] = {0}, dl[6] = {1, 0, 0, 0, 1, 0};
    StepCtx c = {.train = 1};
    model_forward(&m, x, 2, &c);
    seen_next = m.table.n_trainable;
    seen_calls = 0;
    model_backward(&m, x, dl, 2, &c);
    assert_int_equal(seen_next, 0);
    assert_int_equal(seen_calls, 3);  // linear, layernorm, linear; gelu has no parameters
    model_free(&m);
}

static void test_model_rejects_bad_specs(void **state) {
    (void)state;
    Model m;
    Err e = {0};
    LayerSpec lin = spec("linear");
    // a linear layer on an image needs a flatten first
    assert_int_equal(model_build(&m, &lin, 1, (Shape){3, {1, 4, 4}}, 5, &e), ERR_INPUT);
    assert_non_null(strstr(e.msg, "flatten"));
    model_free(&m);
    // output width must match the classes
    assert_int_equal(model_build(&m, &lin, 1, (Shape){1, {4}}, 7, &e), ERR_INPUT);
    assert_non_null(strstr(e.msg, "7 classes"));
    model_free(&m);
    LayerSpec bad = spec("conv9d");
    assert_int_equal(model_build(&m, &bad, 1, (Shape){1, {4}}, 5, &e), ERR_INPUT);
    assert_non_null(strstr(e.msg, "conv9d"));
    model_free(&m);
}

// PyTorch's names and shapes, and weight decay only on matrices.
static void test_param_table_names(void **state) {
    (void)state;
    LayerSpec specs[2] = {spec("linear"), spec("layernorm")};
    snprintf(specs[0].name, sizeof specs[0].name, "fc1");
    snprintf(specs[1].name, sizeof specs[1].name, "ln1");
    Model m;
    Err e = {0};
    assert_int_equal(model_build(&m, specs, 2, (Shape){1, {784}}, 5, &e), ERR_OK);
    assert_int_equal(m.table.n, 4);
    assert_string_equal(m.table.p[0].name, "fc1.weight");
    assert_int_equal(m.table.p[0].shape[0], 5);
    assert_int_equal(m.table.p[0].shape[1], 784);
    assert_true(m.table.p[0].decay);
    assert_string_equal(m.table.p[1].name, "fc1.bias");
    assert_false(m.table.p[1].decay);
    assert_string_equal(m.table.p[2].name, "ln1.weight");
    assert_false(m.table.p[2].decay);
    assert_false(m.table.p[3].decay);
    assert_int_equal(m.table.n_trainable, 5 * 784 + 5 + 5 + 5);
    // PyTorch's default init: weights in +-1/sqrt(fan_in), LayerNorm weight 1, bias 0
    model_init(&m, 42);
    float bound = 1.0f / sqrtf(784.0f), mx = 0;
    for (size_t i = 0; i < 5 * 784; i++) mx = fmaxf(mx, fabsf(m.params[i]));
    assert_true(mx <= bound && mx > 0.9f * bound);
    assert_float_equal(m.params[m.table.p[2].offset], 1.0f, 0);
    assert_float_equal(m.params[m.table.p[3].offset], 0.0f, 0);
    model_free(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_relu),
        cmocka_unit_test(test_gelu),
        cmocka_unit_test(test_layernorm),
        cmocka_unit_test(test_layernorm_rows_match_one_by_one),
        cmocka_unit_test(test_layernorm_backward_rows_match_one_by_one),
        cmocka_unit_test(test_dropout_train_and_eval),
        cmocka_unit_test(test_flatten),
        cmocka_unit_test(test_conv2d),
        cmocka_unit_test(test_conv2d_backward_repeatable),
        cmocka_unit_test(test_conv2d_rejects_bad_shapes),
        cmocka_unit_test(test_maxpool2d),
        cmocka_unit_test(test_maxpool2d_ties),
        cmocka_unit_test(test_avgpool2d),
        cmocka_unit_test(test_globalavgpool),
        cmocka_unit_test(test_backward_accumulates),
        cmocka_unit_test(test_grad_ready_order),
        cmocka_unit_test(test_model_rejects_bad_specs),
        cmocka_unit_test(test_param_table_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
