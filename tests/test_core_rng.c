// test_core_rng.c: Philox4x32-10 known answers, the dropout masks built on it, and the
// per-epoch permutation.
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
#include "core/shuffle.h"

// Random123's kat_vectors for philox4x32 with 10 rounds.
static void test_philox_known_answers(void **state) {
    (void)state;
    struct { philox_ctr c; philox_key k; uint32_t out[4]; } kat[] = {
        {{{0, 0, 0, 0}}, {{0, 0}}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
        {{{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}}, {{0xffffffff, 0xffffffff}},
         {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
        {{{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}}, {{0xa4093822, 0x299f31d0}},
         {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
    };
    for (int i = 0; i < 3; i++) {
        philox_ctr r = philox4x32_10(kat[i].c, kat[i].k);
        for (int j = 0; j < 4; j++) assert_int_equal(r.v[j], kat[i].out[j]);
    }
}

// philox4x32_10_x16 against sixteen scalar calls, bit for bit, with the first counter word
// wrapping past 2^32 in the middle of a vector and on the known-answer keys; and dropout_mask,
// built on it, against the scalar definition (element i: word i % 4 of counter i / 4) for
// lengths around its 64-element blocks and 256-element groups.
static void test_philox_x16_matches_scalar(void **state) {
    (void)state;
    const philox_ctr cs[3] = {{{0, 0, 0, 0}}, {{0xfffffff8u, 7, 9, 0x100}},
                              {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}}};
    const philox_key ks[3] = {{{0, 0}}, {{0xffffffff, 0xffffffff}}, {{0xa4093822, 0x299f31d0}}};
    for (int i = 0; i < 3; i++) {
        uint32_t w[4][16];
        philox4x32_10_x16(w, cs[i], ks[i]);
        for (uint32_t j = 0; j < 16; j++) {
            philox_ctr r = philox4x32_10(
                (philox_ctr){{cs[i].v[0] + j, cs[i].v[1], cs[i].v[2], cs[i].v[3]}}, ks[i]);
            for (int k = 0; k < 4; k++) assert_int_equal(w[k][j], r.v[k]);
        }
    }
    const size_t lens[] = {1, 3, 63, 64, 65, 130, 255, 256, 257, 320, 511, 1000};
    philox_key key = {{5, 6}};
    uint32_t threshold = (uint32_t)(0.3 * 4294967296.0);
    for (int t = 0; t < 12; t++) {
        uint8_t keep[1000];
        dropout_mask(keep, lens[t], 0.3f, key, 11, 12, 13);
        for (size_t e = 0; e < lens[t]; e++) {
            philox_ctr r = philox4x32_10((philox_ctr){{(uint32_t)(e / 4), 11, 12, 13}}, key);
            assert_int_equal(keep[e], r.v[e % 4] >= threshold);
        }
    }
    // philox_bytes_ge from a first counter word that wraps past 2^32 inside a 256-byte group,
    // on every known-answer counter and key; nothing past n written
    for (int i = 0; i < 3; i++) {
        uint8_t out[1000 + 1];
        philox_ctr c = {{0xffffffe0u, cs[i].v[1], cs[i].v[2], cs[i].v[3]}};
        for (int t = 0; t < 12; t++) {
            out[lens[t]] = 0xAB;
            philox_bytes_ge(out, lens[t], 0x9e3779b9u, c, ks[i]);
            assert_int_equal(out[lens[t]], 0xAB);
            for (size_t e = 0; e < lens[t]; e++) {
                philox_ctr r = philox4x32_10(
                    (philox_ctr){{c.v[0] + (uint32_t)(e / 4), c.v[1], c.v[2], c.v[3]}}, ks[i]);
                assert_int_equal(out[e], r.v[e % 4] >= 0x9e3779b9u);
            }
        }
    }
}

// Keep rate within 5 standard deviations of 1-p over 1e6 draws.
static void test_dropout_keep_rate(void **state) {
    (void)state;
    const size_t n = 1000000;
    uint8_t *keep = malloc(n);
    float ps[] = {0.1f, 0.3f, 0.5f, 0.9f};
    for (int i = 0; i < 4; i++) {
        dropout_mask(keep, n, ps[i], (philox_key){{1, 2}}, 3, 4, 0);
        size_t kept = 0;
        for (size_t j = 0; j < n; j++) kept += keep[j];
        double q = 1.0 - ps[i], sd = sqrt(n * q * (1 - q));
        assert_true(fabs((double)kept - n * q) < 5 * sd);
    }
    dropout_mask(keep, 100, 0.0f, (philox_key){{1, 2}}, 3, 4, 0);
    for (int j = 0; j < 100; j++) assert_int_equal(keep[j], 1);
    dropout_mask(keep, 100, 1.0f, (philox_key){{1, 2}}, 3, 4, 0);
    for (int j = 0; j < 100; j++) assert_int_equal(keep[j], 0);
    free(keep);
}

static Layer dropout_layer(float p, int D, int B) {
    Layer l = {0};
    l.kind = layer_kind_find("dropout");
    snprintf(l.spec.name, sizeof l.spec.name, "drop");
    l.spec.p = p;
    l.id = 4;
    l.in = (Shape){1, {D}};
    ParamTable t = {0};
    Err e = {0};
    assert_int_equal(l.kind->setup(&l, (Shape){1, {D}}, &t, &e), ERR_OK);
    l.save = malloc(l.save_bytes_per_sample * (size_t)B);
    return l;
}

// Inverted dropout: kept values are x/(1-p), so E[y] = x; eval and reg.dropout=off are identity.
static void test_dropout_scaling_and_identity(void **state) {
    (void)state;
    const int D = 4096, B = 4;
    Layer l = dropout_layer(0.25f, D, B);
    float *x = malloc(sizeof(float) * D * B), *y = malloc(sizeof(float) * D * B);
    for (int i = 0; i < D * B; i++) x[i] = 1.0f + (float)(i % 7);
    int64_t ids[4] = {10, 11, 12, 13};
    StepCtx c = {.train = 1, .dropout_on = 1, .seed = 9, .step = 1, .sample_ids = ids};
    l.kind->forward(&l, y, x, NULL, NULL, &c, B);
    double sx = 0, sy = 0;
    for (int i = 0; i < D * B; i++) {
        assert_true(y[i] == 0.0f || fabsf(y[i] - x[i] / 0.75f) < 1e-6f * x[i]);
        sx += x[i];
        sy += y[i];
    }
    assert_true(fabs(sy / sx - 1.0) < 0.02);  // expectation preserved (to 2% on 16k draws)
    StepCtx ev = c;
    ev.train = 0;
    l.kind->forward(&l, y, x, NULL, NULL, &ev, B);
    assert_memory_equal(x, y, sizeof(float) * D * B);
    StepCtx off = c;
    off.dropout_on = 0;
    l.kind->forward(&l, y, x, NULL, NULL, &off, B);
    assert_memory_equal(x, y, sizeof(float) * D * B);
    free(x), free(y), free(l.save);
}

// A sample's mask depends on its global index, not on its slot in the batch; it changes
// with the step; different samples get different masks.
static void test_dropout_mask_follows_the_sample(void **state) {
    (void)state;
    const int D = 256, B = 3;
    Layer l = dropout_layer(0.5f, D, B);
    float *x = malloc(sizeof(float) * D * B), *a = malloc(sizeof(float) * D * B),
          *b = malloc(sizeof(float) * D * B);
    for (int i = 0; i < D * B; i++) x[i] = 1.0f;
    int64_t ids_a[3] = {100, 200, 300}, ids_b[3] = {300, 100, 200};
    StepCtx ca = {.train = 1, .dropout_on = 1, .seed = 1, .step = 7, .sample_ids = ids_a};
    StepCtx cb = ca;
    cb.sample_ids = ids_b;
    l.kind->forward(&l, a, x, NULL, NULL, &ca, B);
    l.kind->forward(&l, b, x, NULL, NULL, &cb, B);
    assert_memory_equal(a + 0 * D, b + 1 * D, sizeof(float) * D);  // sample 100
    assert_memory_equal(a + 1 * D, b + 2 * D, sizeof(float) * D);  // sample 200
    assert_memory_equal(a + 2 * D, b + 0 * D, sizeof(float) * D);  // sample 300
    assert_memory_not_equal(a, a + D, sizeof(float) * D);          // 100 vs 200
    StepCtx next = ca;
    next.step = 8;
    l.kind->forward(&l, b, x, NULL, NULL, &next, B);
    assert_memory_not_equal(a, b, sizeof(float) * D);  // new step, new mask
    StepCtx mc = ca;
    mc.stream = PHILOX_STREAM_MC_BASE + 1;
    l.kind->forward(&l, b, x, NULL, NULL, &mc, B);
    assert_memory_not_equal(a, b, sizeof(float) * D);  // MC pass, own stream
    free(x), free(a), free(b), free(l.save);
}

static void test_shuffle_is_a_seeded_permutation(void **state) {
    (void)state;
    const int64_t n = 10007;
    int64_t *p = malloc(n * sizeof *p), *q = malloc(n * sizeof *q);
    uint8_t *seen = calloc((size_t)n, 1);
    shuffle_permutation(p, n, 3, 0);
    for (int64_t i = 0; i < n; i++) {
        assert_true(p[i] >= 0 && p[i] < n);
        assert_false(seen[p[i]]);
        seen[p[i]] = 1;
    }
    shuffle_permutation(q, n, 3, 0);
    assert_memory_equal(p, q, n * sizeof *p);
    shuffle_permutation(q, n, 3, 1);
    assert_memory_not_equal(p, q, n * sizeof *p);
    shuffle_permutation(q, n, 4, 0);
    assert_memory_not_equal(p, q, n * sizeof *p);
    // roughly uniform: the first slot's value over many epochs has mean n/2
    double mean = 0;
    for (int e = 0; e < 400; e++) {
        shuffle_permutation(q, n, 3, e);
        mean += (double)q[0] / 400;
    }
    assert_true(fabs(mean - (n - 1) / 2.0) < 5 * n / sqrt(12.0 * 400));
    free(p), free(q), free(seen);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_philox_known_answers),
        cmocka_unit_test(test_philox_x16_matches_scalar),
        cmocka_unit_test(test_dropout_keep_rate),
        cmocka_unit_test(test_dropout_scaling_and_identity),
        cmocka_unit_test(test_dropout_mask_follows_the_sample),
        cmocka_unit_test(test_shuffle_is_a_seeded_permutation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
