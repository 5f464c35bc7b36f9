// test_core_fused.c: the fused elementwise passes against the unfused composition of the same
// kernels, bit-identical, forward and backward: ReLU + dropout and ReLU + Dropout2d in one
// sweep (core/dropout.c, core/dropout2d.c), with and without a mask, on values that include
// zeros, -0, negatives and a NaN; and Seqs that fuse (core/seq.c: ReLU + mask, BatchNorm +
// ReLU + Dropout2d or dropout, BatchNorm + ReLU, a convolution's output moments into the
// BatchNorm after it, a BatchNorm group's output and input gradient handed to the
// convolutions beside it by samples) against their layers run one by one, in training and
// eval, with ghost batches, with and without the first input gradient.
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/kernels.h"
#include "core/layer.h"
#include "core/philox.h"
#include "core/seq.h"

static float *values(size_t n, uint32_t salt) {
    float *x = malloc(n * sizeof(float));
    assert_non_null(x);
    for (size_t i = 0; i < n; i++) {
        philox_ctr r = philox4x32_10((philox_ctr){{(uint32_t)i, salt, 0, 0}}, (philox_key){{7, 9}});
        x[i] = 2.0f * philox_unit(r.v[0]) - 1.0f;
    }
    for (size_t i = 0; i < n; i += 11) x[i] = 0.0f;  // zeros and -0 in every channel
    for (size_t i = 5; i < n; i += 13) x[i] = -0.0f;
    x[2] = NAN;
    return x;
}

static void test_relu_dropout2d_kernels(void **state) {
    (void)state;
    enum { B = 3, C = 5, HW = 7, N = B * C * HW };
    float *x = values(N, 1), *dy = values(N, 2);
    dy[2] = 0.5f;
    float r[N], y1[N], y2[N], d1[N], d2[N], dd[N];
    uint8_t keep[B * C];
    dropout_mask(keep, B * C, 0.4f, (philox_key){{1, 2}}, 3, 4, 0);
    float scale = 1.0f / 0.6f;
    for (int masked = 0; masked < 2; masked++) {
        relu_forward(r, x, N);
        if (masked)
            dropout2d_forward(y1, r, keep, scale, B, C, HW);
        else
            memcpy(y1, r, sizeof r);
        relu_dropout2d_forward(y2, x, masked ? keep : NULL, scale, B, C, HW);
        assert_memory_equal(y1, y2, sizeof y1);
        if (masked)
            dropout2d_forward(dd, dy, keep, scale, B, C, HW);
        else
            memcpy(dd, dy, sizeof dd);
        relu_backward(d1, dd, r, N);
        for (int i = 0; i < N; i++) d2[i] = 1e3f;  // overwritten
        relu_dropout2d_backward(d2, dy, x, masked ? keep : NULL, scale, B, C, HW);
        assert_memory_equal(d1, d2, sizeof d1);
    }
    free(x), free(dy);
}

static void test_relu_dropout_kernels(void **state) {
    (void)state;
    enum { N = 301 };
    float *x = values(N, 3), *dy = values(N, 4);
    dy[2] = 0.5f;
    float r[N], y1[N], y2[N], d1[N], d2[N], dd[N];
    uint8_t keep[N];
    dropout_mask(keep, N, 0.3f, (philox_key){{1, 2}}, 3, 4, 0);
    float scale = 1.0f / 0.7f;
    for (int masked = 0; masked < 2; masked++) {
        relu_forward(r, x, N);
        for (int i = 0; i < N; i++) y1[i] = !masked ? r[i] : keep[i] ? r[i] * scale : 0.0f;
        relu_dropout_forward(y2, x, masked ? keep : NULL, scale, N);
        assert_memory_equal(y1, y2, sizeof y1);
        for (int i = 0; i < N; i++) dd[i] = !masked ? dy[i] : keep[i] ? dy[i] * scale : 0.0f;
        relu_backward(d1, dd, r, N);
        relu_dropout_backward(d2, dy, x, masked ? keep : NULL, scale, N);
        assert_memory_equal(d1, d2, sizeof d1);
    }
    free(x), free(dy);
}

static LayerSpec spec(const char *type, const char *name, float p) {
    LayerSpec s;
    memset(&s, 0, sizeof s);
    snprintf(s.type, sizeof s.type, "%s", type);
    snprintf(s.name, sizeof s.name, "%s", name);
    s.p = p;
    return s;
}

// A Seq [relu, dropout2d, relu, dropout] (both pairs fuse) against the same layers run one at
// a time through their own forward and backward; training and eval, and the first layer's
// input gradient skipped (din NULL).
static void test_seq_fuses_like_layers(void **state) {
    (void)state;
    enum { B = 4, C = 3, H = 2, W = 5, D = C * H * W, N = B * D };
    LayerSpec specs[4] = {spec("relu", "r1", 0), spec("dropout2d", "d1", 0.5f),
                          spec("relu", "r2", 0), spec("dropout", "d2", 0.25f)};
    Seq s;
    ParamTable t;
    memset(&t, 0, sizeof t);
    Err e = {0};
    Shape out, in = {3, {C, H, W}};
    assert_int_equal(seq_setup(&s, specs, 4, in, "", 1, &t, &out, &e), ERR_OK);
    assert_int_equal(seq_plan(&s, B, &e), ERR_OK);
    // the reference: the same layers, set up alike, run one by one
    Seq r;
    ParamTable t2;
    memset(&t2, 0, sizeof t2);
    assert_int_equal(seq_setup(&r, specs, 4, in, "", 1, &t2, &out, &e), ERR_OK);
    assert_int_equal(seq_plan(&r, B, &e), ERR_OK);

    float *x = values(N, 5), *dy = values(N, 6);
    dy[2] = 0.5f;
    int64_t ids[B] = {11, 3, 7, 40};
    for (int train = 0; train < 2; train++) {
        StepCtx c = {.train = train, .dropout_on = 1, .seed = 9, .step = 2, .sample_ids = ids};
        const float *y = seq_forward(&s, x, NULL, NULL, &c, B);
        const float *in_k = x;
        float *acts[4];
        for (int k = 0; k < 4; k++) {
            acts[k] = malloc(N * sizeof(float));
            Layer *l = &r.layers[k];
            l->kind->forward(l, acts[k], in_k, NULL, NULL, &c, B);
            in_k = acts[k];
        }
        assert_memory_equal(y, acts[3], N * sizeof(float));
        float dx[N], dx_ref[N], g[N], g2[N];
        seq_backward(&s, dx, NULL, dy, x, NULL, &c, B, &t, NULL, NULL);
        const float *d = dy;
        float *bufs[2] = {g, g2};
        for (int k = 3; k >= 0; k--) {
            Layer *l = &r.layers[k];
            float *dprev = k > 0 ? bufs[k % 2] : dx_ref;
            l->kind->backward(l, dprev, NULL, d, k > 0 ? acts[k - 1] : x, acts[k], NULL, &c, B);
            d = dprev;
        }
        assert_memory_equal(dx, dx_ref, sizeof dx);
        seq_backward(&s, NULL, NULL, dy, x, NULL, &c, B, &t, NULL, NULL);  // no input gradient
        for (int k = 0; k < 4; k++) free(acts[k]);
    }
    free(x), free(dy);
    seq_free(&s), seq_free(&r);
    param_table_free(&t), param_table_free(&t2);
}

// The Seq of specs run fused (seq_forward, seq_backward) and its layers run one at a time
// through their own forward and backward, from the same parameters: the same output, input
// gradient, parameter gradients and running statistics, to the bit.
// unwritten >= 0: that layer's output buffer in the fused Seq must stay untouched (its pass
// fused it away); grad_unwritten >= 0: likewise its output gradient's (handed over by samples).
static void check_seq_against_layers_grad(const LayerSpec *specs, int n, Shape in, int B,
                                          int unwritten, int grad_unwritten) {
    Seq s, r;
    ParamTable t, t2;
    memset(&t, 0, sizeof t), memset(&t2, 0, sizeof t2);
    Err e = {0};
    Shape out;
    if (seq_setup(&s, specs, n, in, "", 1, &t, &out, &e)) fail_msg("%s", e.msg);
    assert_int_equal(seq_plan(&s, B, &e), ERR_OK);
    assert_int_equal(seq_setup(&r, specs, n, in, "", 1, &t2, &out, &e), ERR_OK);
    assert_int_equal(seq_plan(&r, B, &e), ERR_OK);
    size_t np = t.n_trainable + 1, nbuf = t.n_buffer + 1, D = shape_numel(in), N = B * D;
    size_t No = B * shape_numel(out);
    float *params = values(np, 7), *bufs = calloc(nbuf, 4), *bufs2 = calloc(nbuf, 4);
    float *g1 = calloc(np, 4), *g2 = calloc(np, 4);
    seq_init(&s, params, bufs, 3);
    for (size_t i = 0; i < np; i++) params[i] = 1.0f + 0.5f * params[i];  // BN weights ~1
    memcpy(bufs2, bufs, nbuf * 4);
    float *x = values(N, 5), *dy = values(No, 6), *dx = malloc(N * 4), *dx_ref = malloc(N * 4);
    x[2] = 0.25f, dy[2] = 0.5f;  // no NaN: BatchNorm would spread it over its channel
    int64_t ids[64];
    for (int b = 0; b < B; b++) ids[b] = 3 * b + 1;
    float **acts = calloc((size_t)n, sizeof *acts), **dacts = calloc((size_t)n, sizeof *dacts);
    for (int k = 0; k < n; k++) {
        acts[k] = malloc((size_t)B * shape_numel(r.layers[k].out) * 4);
        dacts[k] = malloc((size_t)B * shape_numel(r.layers[k].out) * 4);
    }
    size_t nu = unwritten >= 0 ? B * shape_numel(s.layers[unwritten].out) * 4 : 0;
    if (nu) memset(s.acts[unwritten], 0x7f, nu);
    size_t ng = grad_unwritten >= 0 ? B * shape_numel(s.layers[grad_unwritten].out) * 4 : 0;
    if (ng) memset(s.dacts[grad_unwritten], 0x7f, ng);
    for (int train = 1; train >= 0; train--)
        for (int first = 0; first < 2; first++) {
            StepCtx c = {.train = train, .dropout_on = 1, .seed = 9, .step = 2, .sample_ids = ids};
            const float *y = seq_forward(&s, x, params, bufs, &c, B);
            for (size_t k = 0; k < nu; k++) assert_int_equal(((uint8_t *)s.acts[unwritten])[k], 0x7f);
            const float *in_k = x;
            for (int k = 0; k < n; k++) {
                Layer *l = &r.layers[k];
                l->kind->forward(l, acts[k], in_k, params, bufs2, &c, B);
                in_k = acts[k];
            }
            assert_memory_equal(y, acts[n - 1], No * 4);
            assert_memory_equal(bufs, bufs2, nbuf * 4);  // running statistics
            seq_backward(&s, first ? NULL : dx, g1, dy, x, params, &c, B, &t, NULL, NULL);
            const float *d = dy;
            for (int k = n - 1; k >= 0; k--) {
                Layer *l = &r.layers[k];
                float *dprev = k > 0 ? dacts[k - 1] : first ? NULL : dx_ref;
                l->kind->backward(l, dprev, g2, d, k > 0 ? acts[k - 1] : x, acts[k], params, &c,
                                  B);
                d = dprev;
            }
            if (!first) assert_memory_equal(dx, dx_ref, N * 4);
            assert_memory_equal(g1, g2, np * 4);
            for (size_t k = 0; k < ng; k++)
                assert_int_equal(((uint8_t *)s.dacts[grad_unwritten])[k], 0x7f);
        }
    for (int k = 0; k < n; k++) free(acts[k]), free(dacts[k]);
    free(acts), free(dacts);
    free(params), free(bufs), free(bufs2), free(g1), free(g2), free(x), free(dy), free(dx),
        free(dx_ref);
    seq_free(&s), seq_free(&r);
    param_table_free(&t), param_table_free(&t2);
}

static void check_seq_against_layers(const LayerSpec *specs, int n, Shape in, int B,
                                     int unwritten) {
    check_seq_against_layers_grad(specs, n, in, B, unwritten, -1);
}

static void test_batchnorm_groups(void **state) {
    (void)state;
    LayerSpec bn = spec("batchnorm", "", 0);
    bn.eps = 1e-5f, bn.momentum = 0.1f;
    LayerSpec specs[8] = {bn, spec("relu", "", 0), spec("dropout2d", "", 0.3f), bn,
                          spec("relu", "", 0), spec("dropout", "", 0.4f), bn, spec("relu", "", 0)};
    const char *names[8] = {"bn1", "r1", "d1", "bn2", "r2", "d2", "bn3", "r3"};
    for (int k = 0; k < 8; k++) snprintf(specs[k].name, sizeof specs[k].name, "%s", names[k]);
    // planes of 35, 24 and 49: whole 16-element words of sign bits and a partial one, the
    // blocks of 16 and of 8 of the plane sums, and the element-by-element tails
    check_seq_against_layers(specs, 8, (Shape){3, {3, 5, 7}}, 6, 1);
    check_seq_against_layers(specs, 8, (Shape){3, {2, 4, 6}}, 5, 1);
    check_seq_against_layers(specs, 8, (Shape){3, {2, 7, 7}}, 4, 1);
    for (int k = 0; k < 8; k += 3) specs[k].ghost = 4;  // ghost batches of 4, 2
    check_seq_against_layers(specs, 8, (Shape){3, {3, 5, 7}}, 6, 1);
    specs[2] = spec("dropout", "d1", 0.3f);  // BatchNorm1d: no channel dropout on (D)
    check_seq_against_layers(specs, 8, (Shape){1, {12}}, 6, 1);
}

// BatchNorm + ReLU (+ mask) + a 2x2 stride-2 max-pool in one pass: the unpooled output is
// never written, and everything matches the layers one by one (odd sizes: the pool drops the
// last row or column; a plane of 1 x 1 after two pools). A 3x3 max-pool is not fused.
static void test_batchnorm_pool_groups(void **state) {
    (void)state;
    LayerSpec bn = spec("batchnorm", "", 0), pool = spec("maxpool2d", "", 0);
    bn.eps = 1e-5f, bn.momentum = 0.1f;
    pool.kernel = 2;
    LayerSpec specs[9] = {bn, spec("relu", "", 0), spec("dropout2d", "", 0.3f), pool, bn,
                          spec("relu", "", 0), pool, bn, spec("relu", "", 0)};
    const char *names[9] = {"bn1", "r1", "d1", "p1", "bn2", "r2", "p2", "bn3", "r3"};
    for (int k = 0; k < 9; k++) snprintf(specs[k].name, sizeof specs[k].name, "%s", names[k]);
    check_seq_against_layers(specs, 9, (Shape){3, {3, 7, 6}}, 5, 2);  // d1's output unwritten
    check_seq_against_layers(specs, 9, (Shape){3, {2, 8, 9}}, 4, 5);  // r2's likewise
    for (int k = 0; k < 9; k += 4) specs[k].ghost = 3;
    check_seq_against_layers(specs, 9, (Shape){3, {3, 7, 6}}, 5, 2);
    specs[3].kernel = 3;  // not 2x2: BatchNorm + ReLU + Dropout2d fused, the pool apart
    check_seq_against_layers(specs, 9, (Shape){3, {3, 7, 6}}, 5, 1);
}

// A convolution followed by BatchNorm in training hands it its output planes' moments,
// gathered chunk by chunk (seq_forward's link_moments): the same statistics, output and
// running statistics as BatchNorm reading the whole output, on each forward path, with a
// short last chunk: F(2x2) at 10x10 (5 samples a chunk), F(4x4) at 14x14 (4) and 7x7 (8), the
// direct path (28x28, 1 channel, one sample a chunk), im2col (5x5 kernel, several); and ghost
// batches that cut chunks.
static void test_conv_batchnorm_moments(void **state) {
    (void)state;
    LayerSpec conv = spec("conv2d", "c1", 0), bn = spec("batchnorm", "bn1", 0);
    bn.eps = 1e-5f, bn.momentum = 0.1f;
    conv.kernel = 3, conv.padding = 1, conv.bias = 1;
    LayerSpec specs[3] = {conv, bn, spec("relu", "r1", 0)};
    specs[0].out = 6;
    check_seq_against_layers(specs, 3, (Shape){3, {4, 10, 10}}, 7, -1);  // F(2x2)
    specs[0].out = 64;
    check_seq_against_layers(specs, 3, (Shape){3, {64, 14, 14}}, 5, -1);  // F(4x4)
    specs[0].out = 128;
    check_seq_against_layers(specs, 3, (Shape){3, {128, 7, 7}}, 10, -1);  // F(4x4)
    specs[0].out = 4;
    check_seq_against_layers(specs, 3, (Shape){3, {1, 28, 28}}, 3, -1);  // direct, 1 a chunk
    specs[0].kernel = 5, specs[0].padding = 2;
    check_seq_against_layers(specs, 3, (Shape){3, {4, 9, 9}}, 3, -1);  // im2col, 3 a chunk
    specs[0].kernel = 3, specs[0].padding = 1, specs[0].out = 6, specs[1].ghost = 3;
    check_seq_against_layers(specs, 3, (Shape){3, {4, 14, 14}}, 5, -1);
    // BatchNorm + ReLU + max-pool fused after the convolution
    LayerSpec pooled[4] = {specs[0], specs[1], specs[2], spec("maxpool2d", "p1", 0)};
    pooled[1].ghost = 0, pooled[3].kernel = 2;
    check_seq_against_layers(pooled, 4, (Shape){3, {4, 14, 14}}, 5, 2);
}

// A fused BatchNorm group hands the convolution before it its input gradient, and the one
// after it its output (where no max-pool ends it), by samples (SampleRange): computed for
// each chunk the convolution works on (the output once in forward and again in backward),
// never written whole (the convolution's output gradient buffer and the group's output
// buffer stay untouched), and to the bit what the layers one by one give. For a first
// convolution (no input gradient) and a second one (with), on each backward path: F(2x2) at
// 10x10 (5 samples a chunk), F(4x4) at 14x14, at 7x7 (8 a chunk, a short last one) and at
// 28x28 (the line transforms, 2 a chunk), im2col (a 5x5 kernel, 3 samples a chunk, and a
// bias, whose gradient is then summed chunk by chunk), and ghost batches of 3 that cut the
// convolution's chunks of 5 and 2; in training and in eval mode (check_seq_against_layers
// runs both).
static void test_conv_takes_ranges(void **state) {
    (void)state;
    LayerSpec conv = spec("conv2d", "c1", 0), bn = spec("batchnorm", "bn1", 0);
    LayerSpec pool = spec("maxpool2d", "p1", 0);
    bn.eps = 1e-5f, bn.momentum = 0.1f;
    conv.kernel = 3, conv.padding = 1, conv.bias = 0, conv.out = 8;
    pool.kernel = 2;
    // c1, bn1 + r1 + d1 + p1 (pooled: hands only its input gradient), c2, bn2 + r2
    LayerSpec specs[8] = {conv, bn, spec("relu", "r1", 0), spec("dropout2d", "d1", 0.3f),
                          pool, conv, bn, spec("relu", "r2", 0)};
    snprintf(specs[5].name, sizeof specs[5].name, "c2");
    snprintf(specs[6].name, sizeof specs[6].name, "bn2");
    // c1, bn1 + r1 + d1 (hands its output to c2 too), c2, bn2 + r2
    LayerSpec flat[7] = {specs[0], specs[1], specs[2], specs[3], specs[5], specs[6], specs[7]};
    check_seq_against_layers_grad(specs, 8, (Shape){3, {4, 14, 14}}, 9, 3, 0);
    check_seq_against_layers_grad(flat, 7, (Shape){3, {4, 14, 14}}, 9, 3, 0);
    check_seq_against_layers_grad(flat, 7, (Shape){3, {4, 14, 14}}, 9, 3, 4);
    check_seq_against_layers_grad(flat, 7, (Shape){3, {4, 10, 10}}, 9, 3, 4);  // F(2x2)
    specs[0].out = specs[5].out = 128;  // 14x14, then F(4x4) at 7x7, 8 a chunk
    check_seq_against_layers_grad(specs, 8, (Shape){3, {4, 14, 14}}, 10, 3, 5);
    flat[0].out = flat[4].out = 128;
    check_seq_against_layers_grad(flat, 7, (Shape){3, {128, 7, 7}}, 10, 3, 4);
    specs[0].out = specs[5].out = 32;  // F(4x4) at 28x28, then 14x14
    check_seq_against_layers_grad(specs, 8, (Shape){3, {32, 28, 28}}, 3, 3, 5);
    flat[0].out = flat[4].out = 32;
    check_seq_against_layers_grad(flat, 7, (Shape){3, {32, 28, 28}}, 3, 3, 4);
    // im2col (5x5 kernels) with a bias
    specs[0].kernel = specs[5].kernel = flat[0].kernel = flat[4].kernel = 5;
    specs[0].padding = specs[5].padding = flat[0].padding = flat[4].padding = 2;
    specs[0].bias = specs[5].bias = flat[0].bias = flat[4].bias = 1;
    specs[0].out = specs[5].out = flat[0].out = flat[4].out = 4;
    check_seq_against_layers_grad(specs, 8, (Shape){3, {4, 9, 9}}, 5, 3, 5);
    check_seq_against_layers_grad(flat, 7, (Shape){3, {4, 9, 9}}, 5, 3, 4);
    specs[0].kernel = specs[5].kernel = flat[0].kernel = flat[4].kernel = 3;  // ghost batches
    specs[0].padding = specs[5].padding = flat[0].padding = flat[4].padding = 1;
    specs[0].out = specs[5].out = flat[0].out = flat[4].out = 6;
    specs[1].ghost = specs[6].ghost = flat[1].ghost = flat[5].ghost = 3;
    check_seq_against_layers_grad(specs, 8, (Shape){3, {4, 14, 14}}, 5, 3, 0);
    check_seq_against_layers_grad(flat, 7, (Shape){3, {4, 14, 14}}, 5, 3, 4);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_relu_dropout2d_kernels),
        cmocka_unit_test(test_relu_dropout_kernels),
        cmocka_unit_test(test_seq_fuses_like_layers),
        cmocka_unit_test(test_batchnorm_groups),
        cmocka_unit_test(test_batchnorm_pool_groups),
        cmocka_unit_test(test_conv_batchnorm_moments),
        cmocka_unit_test(test_conv_takes_ranges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
