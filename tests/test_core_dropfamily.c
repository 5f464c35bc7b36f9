// test_core_dropfamily.c: dropout2d, dropblock and DropConnect on linear.
// Gradients: central finite differences in training mode (the masks are a pure function of
// the step context, so every nudged forward sees the same mask), as test_core_layers.c does.
// Masks: keep rates within 5 standard deviations, expectation preserved, the structure each
// kind promises, and the Philox addressing: a sample's mask follows its global index and the
// step, not its batch slot; DropConnect's follows only the step (rank invariance).
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gradcheck.h"

#include "core/kernels.h"
#include "core/layer.h"
#include "core/philox.h"

static LayerSpec spec(const char *type, float p) {
    LayerSpec s = {.bias = 1, .p = p, .out = 5};
    snprintf(s.type, sizeof s.type, "%s", type);
    snprintf(s.name, sizeof s.name, "l");
    return s;
}

// d L / d input and d L / d every parameter against central differences, in training mode.
// The check is only worth something if the mask dropped some but not all of the output (or,
// for DropConnect, of the weights): asserted through the analytic gradients' zeros.
static void gradcheck(const LayerSpec *s, Shape in, int B) {
    Harness h;
    harness_init(&h, s, in, B);
    int64_t ids[64];
    for (int b = 0; b < B; b++) ids[b] = 1000 + 17 * b;
    StepCtx c = {.train = 1, .dropout_on = 1, .seed = 5, .step = 3, .sample_ids = ids};
    float *x = malloc(h.nin * sizeof(float)), *dx = malloc(h.nin * sizeof(float));
    for (size_t i = 0; i < h.nin; i++) x[i] = 1.5f * urand((uint32_t)i, 33);
    gradcheck_run(&h, x, dx, &c);
    // some dropped, some kept
    int is_linear = strcmp(s->type, "linear") == 0;
    const float *g = is_linear ? h.dparams : dx;
    size_t ng = is_linear ? (size_t)s->out * in.d[0] : h.nin, zeros = 0;
    for (size_t i = 0; i < ng; i++) zeros += g[i] == 0.0f;
    assert_true(zeros > 0 && zeros < ng);
    free(x), free(dx);
    harness_free(&h);
}

static void test_gradcheck_dropout2d(void **state) {
    (void)state;
    LayerSpec s = spec("dropout2d", 0.5f);
    gradcheck(&s, (Shape){3, {4, 3, 2}}, 3);
}

static void test_gradcheck_dropblock(void **state) {
    (void)state;
    LayerSpec s = spec("dropblock", 0.3f);
    s.block_size = 2;
    gradcheck(&s, (Shape){3, {2, 6, 5}}, 2);
    s.block_size = 3, s.p = 0.5f;
    gradcheck(&s, (Shape){3, {1, 7, 7}}, 3);
}

static void test_gradcheck_dropconnect(void **state) {
    (void)state;
    LayerSpec s = spec("linear", 0.0f);
    s.dropconnect = 0.4f;
    gradcheck(&s, (Shape){1, {7}}, 4);
    s.bias = 0;
    gradcheck(&s, (Shape){1, {6}}, 3);
}

// Backward borrows DropConnect's masked weight as scratch and must rebuild it: a second
// backward gives the same input gradient and exactly doubles the weight gradient.
static void test_dropconnect_backward_repeatable(void **state) {
    (void)state;
    LayerSpec s = spec("linear", 0.0f);
    s.out = 6, s.dropconnect = 0.5f;
    Harness h;
    harness_init(&h, &s, (Shape){1, {5}}, 3);
    int64_t ids[3] = {1, 2, 3};
    StepCtx c = {.train = 1, .dropout_on = 1, .seed = 2, .step = 9, .sample_ids = ids};
    float x[15], y[18], dy[18], dx1[15], dx2[15], once[36];
    for (int i = 0; i < 15; i++) x[i] = urand((uint32_t)i, 1);
    for (int i = 0; i < 18; i++) dy[i] = urand((uint32_t)i, 2);
    fwd(&h, y, x, &c);
    h.l.kind->backward(&h.l, dx1, h.dparams, dy, x, y, h.params, &c, 3);
    memcpy(once, h.dparams, sizeof once);
    h.l.kind->backward(&h.l, dx2, h.dparams, dy, x, y, h.params, &c, 3);
    assert_memory_equal(dx1, dx2, sizeof dx1);
    for (int i = 0; i < 36; i++) assert_float_equal(h.dparams[i], 2 * once[i], 1e-6);
    harness_free(&h);
}

// ---- dropout2d ----

// Channel keep rate within 5 sigma of 1-p (overall and for every channel index, which checks
// that all four words of every Philox block are used); whole channels zeroed, kept ones
// scaled by exactly 1/(1-p); the mean of the output is the input's within 5 sigma.
static void test_dropout2d_statistics(void **state) {
    (void)state;
    const int C = 64, H = 2, W = 3, B = 2048, HW = H * W;
    const float p = 0.3f;
    LayerSpec s = spec("dropout2d", p);
    Harness h;
    harness_init(&h, &s, (Shape){3, {C, H, W}}, B);
    float *x = malloc(h.nin * sizeof(float)), *y = malloc(h.nout * sizeof(float));
    for (size_t i = 0; i < h.nin; i++) x[i] = 1.0f + 0.5f * urand((uint32_t)i, 3);  // > 0
    int64_t *ids = malloc(B * sizeof *ids);
    for (int b = 0; b < B; b++) ids[b] = 5 * b + 1;
    StepCtx c = {.train = 1, .dropout_on = 1, .seed = 11, .step = 2, .sample_ids = ids};
    fwd(&h, y, x, &c);
    double q = 1.0 - p, sx = 0, sy = 0, sx2 = 0;
    size_t kept = 0, *kept_c = calloc(C, sizeof *kept_c);
    for (int b = 0; b < B; b++)
        for (int ch = 0; ch < C; ch++) {
            size_t o = ((size_t)b * C + ch) * HW;
            int k = y[o] != 0.0f;
            double chsum = 0;
            for (int i = 0; i < HW; i++) {
                // the whole channel shares the decision; kept values are x/(1-p)
                if (k) assert_float_equal(y[o + i], x[o + i] / q, 1e-6 * x[o + i] / q);
                else assert_true(y[o + i] == 0.0f);
                chsum += x[o + i];
                sy += y[o + i];
            }
            sx += chsum, sx2 += chsum * chsum;
            kept += k, kept_c[ch] += k;
        }
    double n = (double)B * C;
    assert_true(fabs((double)kept - n * q) < 5 * sqrt(n * q * (1 - q)));
    for (int ch = 0; ch < C; ch++)
        assert_true(fabs((double)kept_c[ch] - B * q) < 5 * sqrt(B * q * (1 - q)));
    // sum y = sum_channels k s x_c with var(k s) = (1-q)/q per channel
    assert_true(fabs(sy / sx - 1.0) < 5 * sqrt((1 - q) / q * sx2) / sx);
    free(x), free(y), free(ids), free(kept_c);
    harness_free(&h);
}

// Per-channel keep pattern of each sample of an all-ones forward: (B, C) bytes.
static void channel_pattern(Harness *h, uint8_t *pat, const StepCtx *c) {
    int C = h->l.in.d[0], HW = h->l.in.d[1] * h->l.in.d[2];
    float *x = malloc(h->nin * sizeof(float)), *y = malloc(h->nout * sizeof(float));
    for (size_t i = 0; i < h->nin; i++) x[i] = 1.0f;
    fwd(h, y, x, c);
    for (size_t bc = 0; bc < (size_t)h->B * C; bc++) pat[bc] = y[bc * HW] != 0.0f;
    free(x), free(y);
}

// Generic addressing checks for a per-sample mask, through the layer's output:
// follows the sample (not the slot), differs between samples, steps and MC streams;
// identity in eval, with dropout_on = 0, and for p = 0.
static void check_mask_addressing(LayerSpec s, Shape in) {
    const int B = 3;
    Harness h;
    harness_init(&h, &s, in, B);
    size_t D = shape_numel(in);
    float *x = malloc(h.nin * sizeof(float)), *a = malloc(h.nout * sizeof(float)),
          *b = malloc(h.nout * sizeof(float));
    for (size_t i = 0; i < D; i++) x[i] = x[D + i] = x[2 * D + i] = 1.0f + urand((uint32_t)i, 5) * 0.5f;
    int64_t ids_a[3] = {100, 200, 300}, ids_b[3] = {300, 100, 200};
    StepCtx ca = {.train = 1, .dropout_on = 1, .seed = 1, .step = 7, .sample_ids = ids_a};
    StepCtx cb = ca;
    cb.sample_ids = ids_b;
    fwd(&h, a, x, &ca);
    fwd(&h, b, x, &cb);
    assert_memory_equal(a + 0 * D, b + 1 * D, sizeof(float) * D);  // sample 100
    assert_memory_equal(a + 1 * D, b + 2 * D, sizeof(float) * D);  // sample 200
    assert_memory_equal(a + 2 * D, b + 0 * D, sizeof(float) * D);  // sample 300
    assert_memory_not_equal(a, a + D, sizeof(float) * D);          // 100 vs 200 (same input)
    StepCtx next = ca;
    next.step = 8;
    fwd(&h, b, x, &next);
    assert_memory_not_equal(a, b, sizeof(float) * D);  // new step, new mask
    StepCtx mc = ca;
    mc.stream = PHILOX_STREAM_MC_BASE + 1;
    fwd(&h, b, x, &mc);
    assert_memory_not_equal(a, b, sizeof(float) * D);  // MC pass, own stream
    StepCtx seed = ca;
    seed.seed = 2;
    fwd(&h, b, x, &seed);
    assert_memory_not_equal(a, b, sizeof(float) * D);  // another seed
    // identity: eval, reg.dropout=off, p = 0; backward passes dout through unchanged
    StepCtx ev = ca, off = ca;
    ev.train = 0, off.dropout_on = 0;
    const StepCtx *ids[2] = {&ev, &off};
    for (int k = 0; k < 2; k++) {
        fwd(&h, b, x, ids[k]);
        assert_memory_equal(x, b, sizeof(float) * h.nin);
        h.l.kind->backward(&h.l, a, NULL, x, x, b, NULL, ids[k], B);
        assert_memory_equal(x, a, sizeof(float) * h.nin);
    }
    h.l.spec.p = 0.0f;
    fwd(&h, b, x, &ca);
    assert_memory_equal(x, b, sizeof(float) * h.nin);
    free(x), free(a), free(b);
    harness_free(&h);
}

static void test_dropout2d_addressing(void **state) {
    (void)state;
    check_mask_addressing(spec("dropout2d", 0.5f), (Shape){3, {32, 2, 2}});
    // and through the channel pattern directly: samples and steps are independent draws
    LayerSpec s = spec("dropout2d", 0.5f);
    Harness h;
    harness_init(&h, &s, (Shape){3, {64, 1, 1}}, 2);
    int64_t ids[2] = {7, 8};
    StepCtx c = {.train = 1, .dropout_on = 1, .seed = 3, .step = 1, .sample_ids = ids};
    uint8_t p1[128], p2[128];
    channel_pattern(&h, p1, &c);
    c.step = 2;
    channel_pattern(&h, p2, &c);
    // two independent fair masks agree on about half the channels, not all
    int same_samples = 0, same_steps = 0;
    for (int i = 0; i < 64; i++) same_samples += p1[i] == p1[64 + i], same_steps += p1[i] == p2[i];
    assert_true(same_samples > 16 && same_samples < 48);
    assert_true(same_steps > 16 && same_steps < 48);
    harness_free(&h);
}

static void test_dropout2d_rejects_flat_input(void **state) {
    (void)state;
    LayerSpec s = spec("dropout2d", 0.5f);
    Layer l = {.spec = s, .kind = layer_kind_find("dropout2d")};
    ParamTable t = {0};
    Err e = {0};
    assert_int_equal(l.kind->setup(&l, (Shape){1, {8}}, &t, &e), ERR_INPUT);
    l.spec.p = 1.5f;
    assert_int_equal(l.kind->setup(&l, (Shape){3, {2, 2, 2}}, &t, &e), ERR_INPUT);
}

// ---- dropblock ----

// With block_size 1 a block is one element and gamma = p: the anchor draws alone, a keep
// rate within 5 sigma of 1-p over 1e6 elements.
static void test_dropblock_anchor_rate(void **state) {
    (void)state;
    const int C = 16, H = 250, W = 250;
    const size_t n = (size_t)C * H * W;
    uint8_t *keep = malloc(n);
    float ps[] = {0.1f, 0.5f, 0.9f};
    for (int i = 0; i < 3; i++) {
        size_t kept = dropblock_mask(keep, C, H, W, 1, ps[i], (philox_key){{1, 2}}, 3, 4, 0);
        size_t count = 0;
        for (size_t j = 0; j < n; j++) count += keep[j];
        assert_int_equal(kept, count);
        double q = 1.0 - ps[i];
        assert_true(fabs((double)kept - n * q) < 5 * sqrt(n * q * (1 - q)));
    }
    assert_int_equal(dropblock_mask(keep, C, H, W, 1, 1.0f, (philox_key){{1, 2}}, 3, 4, 0), 0);
    free(keep);
}

// Exact expected dropped fraction of one H x W map: cell (i,j) is covered by
// rows(i) * cols(j) anchors, each a block with probability gamma.
static double dropblock_expected_fraction(int H, int W, int bs, double p) {
    int VH = H - bs + 1, VW = W - bs + 1;
    double gamma = p / (bs * bs) * (H * W) / (double)(VH * VW), sum = 0;
    for (int i = 0; i < H; i++)
        for (int j = 0; j < W; j++) {
            int ri = 0, cj = 0;
            for (int a = 0; a < VH; a++) ri += a <= i && i < a + bs;
            for (int b = 0; b < VW; b++) cj += b <= j && j < b + bs;
            sum += 1.0 - pow(1.0 - gamma, ri * cj);
        }
    return sum / (H * W);
}

// Whether every zero of the (H,W) mask lies in a fully zero bs x bs square inside the map.
static int zeros_are_blocks(const uint8_t *m, int H, int W, int bs) {
    for (int i = 0; i < H; i++)
        for (int j = 0; j < W; j++) {
            if (m[i * W + j]) continue;
            int found = 0;
            for (int a = i - bs + 1; a <= i && !found; a++)
                for (int b = j - bs + 1; b <= j && !found; b++) {
                    if (a < 0 || b < 0 || a + bs > H || b + bs > W) continue;
                    int all = 1;
                    for (int di = 0; di < bs && all; di++)
                        for (int dj = 0; dj < bs && all; dj++) all = !m[(a + di) * W + b + dj];
                    found = all;
                }
            if (!found) return 0;
        }
    return 1;
}

// p = 0.1, 16x16 maps, block 3, 8 channels x 256 samples = 2048 maps through the layer:
// - dropped fraction: the paper's gamma makes the expected number of (block, covered cell)
//   pairs exactly p*H*W, but overlapping squares cover a cell once, so the expected fraction
//   is a little below p (0.0952 here). We demand (a) the exact expectation
//   (dropblock_expected_fraction) within 5 standard errors, the standard error estimated from
//   the 2048 independent per-map fractions, and (b) |fraction - p| < 0.1 p: the overlap bias
//   (5%) plus room for the noise (standard error about 0.002).
// - structure: every zero of the output lies in a fully zero 3x3 square inside its map.
// - scaling: kept values are x * C*H*W / (kept count), the count over the whole sample.
// - expectation: mean(y) / mean(x) within 1% (the rescaling makes sum(mask * scale) exactly
//   C*H*W per sample; only x's variation over the dropped blocks moves the ratio, and
//   x in [0.5, 1.5) over 2048 maps keeps that well under 1%).
static void test_dropblock_statistics(void **state) {
    (void)state;
    const int C = 8, H = 16, W = 16, bs = 3, B = 256, HW = H * W;
    const float p = 0.1f;
    LayerSpec s = spec("dropblock", p);
    s.block_size = bs;
    Harness h;
    harness_init(&h, &s, (Shape){3, {C, H, W}}, B);
    float *x = malloc(h.nin * sizeof(float)), *y = malloc(h.nout * sizeof(float));
    for (size_t i = 0; i < h.nin; i++) x[i] = 1.0f + 0.5f * urand((uint32_t)i, 3);
    int64_t *ids = malloc(B * sizeof *ids);
    for (int b = 0; b < B; b++) ids[b] = 3 * b + 2;
    StepCtx c = {.train = 1, .dropout_on = 1, .seed = 4, .step = 5, .sample_ids = ids};
    fwd(&h, y, x, &c);
    uint8_t *m = malloc(HW);
    double sum_f = 0, sum_f2 = 0, sx = 0, sy = 0;
    const int D = C * HW;
    for (int b = 0; b < B; b++) {
        const float *xs = x + (size_t)b * D, *ys = y + (size_t)b * D;
        size_t kept = 0;
        for (int i = 0; i < D; i++) kept += ys[i] != 0.0f;
        assert_true(kept > 0);
        float scale = (float)((double)D / kept);
        for (int i = 0; i < D; i++) {
            if (ys[i] != 0.0f) assert_float_equal(ys[i], xs[i] * scale, 1e-5 * xs[i] * scale);
            sx += xs[i], sy += ys[i];
        }
        for (int ch = 0; ch < C; ch++) {
            size_t dropped = 0;
            for (int i = 0; i < HW; i++) {
                m[i] = ys[ch * HW + i] != 0.0f;
                dropped += !m[i];
            }
            assert_true(zeros_are_blocks(m, H, W, bs));
            double f = (double)dropped / HW;
            sum_f += f, sum_f2 += f * f;
        }
    }
    double nm = (double)B * C, mean = sum_f / nm;
    double se = sqrt((sum_f2 / nm - mean * mean) / (nm - 1));
    double expect = dropblock_expected_fraction(H, W, bs, p);
    assert_true(fabs(mean - expect) < 5 * se);
    assert_true(fabs(mean - p) < 0.1 * p);
    assert_true(fabs(sy / sx - 1.0) < 0.01);
    free(x), free(y), free(ids), free(m);
    harness_free(&h);
}

static void test_dropblock_addressing(void **state) {
    (void)state;
    LayerSpec s = spec("dropblock", 0.3f);
    s.block_size = 3;
    check_mask_addressing(s, (Shape){3, {4, 9, 8}});
}

// block_size larger than the map is clipped to it: the one valid anchor drops the whole map
// with probability gamma = p. Nothing kept gives 0, not NaN. Bad specs are refused.
static void test_dropblock_edges(void **state) {
    (void)state;
    const int C = 64, B = 4;
    LayerSpec s = spec("dropblock", 0.5f);
    s.block_size = 9;
    Harness h;
    harness_init(&h, &s, (Shape){3, {C, 3, 4}}, B);
    int64_t ids[4] = {1, 2, 3, 4};
    StepCtx c = {.train = 1, .dropout_on = 1, .seed = 8, .step = 1, .sample_ids = ids};
    float x[4 * 64 * 12], y[4 * 64 * 12];
    for (int i = 0; i < 4 * 64 * 12; i++) x[i] = 1.0f;
    fwd(&h, y, x, &c);
    // with bs clipped to 3 on 3x4 there are 2 anchors per map; every map is then all
    // dropped, all kept, or dropped in 3 of its 4 columns (zeros_are_blocks covers it)
    uint8_t m[12];
    int whole = 0;
    for (int bc = 0; bc < B * C; bc++) {
        int zeros = 0;
        for (int i = 0; i < 12; i++) m[i] = y[bc * 12 + i] != 0.0f, zeros += !m[i];
        assert_true(zeros_are_blocks(m, 3, 4, 3));
        assert_true(zeros == 0 || zeros == 9 || zeros == 12);
        whole += zeros == 12;
    }
    assert_true(whole > 0);
    harness_free(&h);

    // p = 1 with block 1: gamma = 1, nothing survives, output 0
    s.p = 1.0f, s.block_size = 1;
    harness_init(&h, &s, (Shape){3, {2, 3, 3}}, 1);
    float x1[18], y1[18], d1[18];
    for (int i = 0; i < 18; i++) x1[i] = 2.0f;
    fwd(&h, y1, x1, &c);
    h.l.kind->backward(&h.l, d1, NULL, x1, x1, y1, NULL, &c, 1);
    for (int i = 0; i < 18; i++) assert_true(y1[i] == 0.0f && d1[i] == 0.0f);
    harness_free(&h);

    Layer l = {.spec = spec("dropblock", 0.2f), .kind = layer_kind_find("dropblock")};
    ParamTable t = {0};
    Err e = {0};
    assert_int_equal(l.kind->setup(&l, (Shape){3, {2, 4, 4}}, &t, &e), ERR_INPUT);  // no block
    l.spec.block_size = 2;
    assert_int_equal(l.kind->setup(&l, (Shape){1, {16}}, &t, &e), ERR_INPUT);  // flat input
    assert_int_equal(l.kind->setup(&l, (Shape){3, {2, 4, 4}}, &t, &e), ERR_OK);
}

// ---- DropConnect ----

// The masked weight as the layer sees it: with an identity batch (B = C, inp = I) and no
// bias, out[b][o] = Wm[o][b]. Returns it transposed back to (OC, C).
static void masked_weight(Harness *h, float *wm, const int64_t *ids, const StepCtx *c0) {
    int C = h->l.in.d[0], OC = h->l.out.d[0];
    assert_int_equal(h->B, C);
    float *eye = calloc((size_t)C * C, sizeof(float)), *y = malloc((size_t)C * OC * sizeof(float));
    for (int i = 0; i < C; i++) eye[i * C + i] = 1.0f;
    StepCtx c = *c0;
    c.sample_ids = ids;
    fwd(h, y, eye, &c);
    for (int b = 0; b < C; b++)
        for (int o = 0; o < OC; o++) wm[o * C + b] = y[b * OC + o];
    free(eye), free(y);
}

// Keep rate within 5 sigma, kept weights exactly W/(1-p), mean preserved within 5 sigma;
// the same mask for two disjoint batches of sample ids (every rank draws it), a new one at
// the next step; plain W in eval, with dropout_on = 0, and for dropconnect = 0.
static void test_dropconnect_mask(void **state) {
    (void)state;
    const int C = 256, OC = 256;
    const float p = 0.3f;
    LayerSpec s = spec("linear", 0.0f);
    s.out = OC, s.bias = 0, s.dropconnect = p;
    Harness h;
    harness_init(&h, &s, (Shape){1, {C}}, C);
    const size_t n = (size_t)OC * C;
    for (size_t i = 0; i < n; i++) h.params[i] = 1.0f + 0.5f * urand((uint32_t)i, 4);
    int64_t *ids0 = malloc(C * sizeof *ids0), *ids1 = malloc(C * sizeof *ids1);
    for (int b = 0; b < C; b++) ids0[b] = b, ids1[b] = 100000 + 3 * b;  // rank 0, rank 1
    StepCtx c = {.train = 1, .dropout_on = 1, .seed = 6, .step = 10};
    float *w0 = malloc(n * sizeof(float)), *w1 = malloc(n * sizeof(float));
    masked_weight(&h, w0, ids0, &c);
    double q = 1.0 - p, sw = 0, swm = 0;
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        float w = h.params[i];
        if (w0[i] != 0.0f) {
            assert_float_equal(w0[i], w / q, 1e-6 * w / q);
            kept++;
        }
        sw += w, swm += w0[i];
    }
    assert_true(fabs((double)kept - n * q) < 5 * sqrt(n * q * (1 - q)));
    // sum Wm = sum k s w with var(k s) = (1-q)/q; w in [0.5, 1.5) so sum w^2 <= 2.25 n
    assert_true(fabs(swm / sw - 1.0) < 5 * sqrt((1 - q) / q * 2.25 * n) / sw);
    masked_weight(&h, w1, ids1, &c);
    assert_memory_equal(w0, w1, n * sizeof(float));  // rank invariance
    StepCtx next = c;
    next.step = 11;
    masked_weight(&h, w1, ids0, &next);
    assert_memory_not_equal(w0, w1, n * sizeof(float));
    size_t same = 0;
    for (size_t i = 0; i < n; i++) same += (w0[i] == 0.0f) == (w1[i] == 0.0f);
    // independent draws agree with probability q^2 + p^2 = 0.58
    double a = q * q + (double)p * p;
    assert_true(fabs((double)same - n * a) < 5 * sqrt(n * a * (1 - a)));
    StepCtx ev = c, off = c;
    ev.train = 0, off.dropout_on = 0;
    masked_weight(&h, w1, ids0, &ev);
    assert_memory_equal(h.params, w1, n * sizeof(float));
    masked_weight(&h, w1, ids0, &off);
    assert_memory_equal(h.params, w1, n * sizeof(float));
    h.l.spec.dropconnect = 0.0f;
    masked_weight(&h, w1, ids0, &c);
    assert_memory_equal(h.params, w1, n * sizeof(float));
    free(ids0), free(ids1), free(w0), free(w1);
    harness_free(&h);
}

// Every sample of a batch sees the same mask: identical inputs give identical outputs.
// And data parallelism is exact: the gradient of a batch of 8 equals the sum of the
// gradients of its two halves computed as two ranks would (own sample ids, same step).
static void test_dropconnect_shared_and_rank_invariant(void **state) {
    (void)state;
    const int C = 12, OC = 9, B = 8, H2 = B / 2;
    LayerSpec s = spec("linear", 0.0f);
    s.out = OC, s.dropconnect = 0.5f;
    Harness full, half;
    harness_init(&full, &s, (Shape){1, {C}}, B);
    harness_init(&half, &s, (Shape){1, {C}}, H2);
    int64_t ids[8] = {40, 41, 42, 43, 44, 45, 46, 47};
    StepCtx c = {.train = 1, .dropout_on = 1, .seed = 12, .step = 4, .sample_ids = ids};
    float x[8 * 12], y[8 * 9], dy[8 * 9], dx[8 * 12], yh[4 * 9], dxh[4 * 12];
    for (int b = 0; b < B; b++)
        for (int i = 0; i < C; i++) x[b * C + i] = urand((uint32_t)i, 7);  // same input per row
    fwd(&full, y, x, &c);
    for (int b = 1; b < B; b++) assert_memory_equal(y, y + b * OC, OC * sizeof(float));
    for (int i = 0; i < B * C; i++) x[i] = urand((uint32_t)i, 8);
    for (int i = 0; i < B * OC; i++) dy[i] = urand((uint32_t)i, 9);
    fwd(&full, y, x, &c);
    full.l.kind->backward(&full.l, dx, full.dparams, dy, x, y, full.params, &c, B);
    for (int r = 0; r < 2; r++) {
        StepCtx cr = c;
        cr.sample_ids = ids + r * H2;
        fwd(&half, yh, x + r * H2 * C, &cr);
        half.l.kind->backward(&half.l, dxh, half.dparams, dy + r * H2 * OC, x + r * H2 * C, yh,
                              half.params, &cr, H2);
        for (int i = 0; i < H2 * OC; i++) assert_float_equal(yh[i], y[r * H2 * OC + i], 1e-5);
        for (int i = 0; i < H2 * C; i++) assert_float_equal(dxh[i], dx[r * H2 * C + i], 1e-5);
    }
    for (size_t i = 0; i < full.t.n_trainable; i++)
        assert_float_equal(half.dparams[i], full.dparams[i], 1e-5);
    harness_free(&full);
    harness_free(&half);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradcheck_dropout2d),
        cmocka_unit_test(test_gradcheck_dropblock),
        cmocka_unit_test(test_gradcheck_dropconnect),
        cmocka_unit_test(test_dropconnect_backward_repeatable),
        cmocka_unit_test(test_dropout2d_statistics),
        cmocka_unit_test(test_dropout2d_addressing),
        cmocka_unit_test(test_dropout2d_rejects_flat_input),
        cmocka_unit_test(test_dropblock_anchor_rate),
        cmocka_unit_test(test_dropblock_statistics),
        cmocka_unit_test(test_dropblock_addressing),
        cmocka_unit_test(test_dropblock_edges),
        cmocka_unit_test(test_dropconnect_mask),
        cmocka_unit_test(test_dropconnect_shared_and_rank_invariant),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
