// test_core_residual.c: residual blocks and DropPath: gradients against finite differences
// through a whole model (so the identity path is checked through the layer before the
// block), parameter names, the drop rate, identity in eval, and a branch that changes shape.
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/model.h"
#include "core/philox.h"

static LayerSpec spec(const char *type, const char *name, int out) {
    LayerSpec s = {.bias = 1, .out = out, .eps = 1e-5f};
    snprintf(s.type, sizeof s.type, "%s", type);
    snprintf(s.name, sizeof s.name, "%s", name);
    return s;
}

static float urand(uint32_t i, uint32_t salt) {
    philox_ctr r = philox4x32_10((philox_ctr){{i, salt, 0, 0}}, (philox_key){{3, 5}});
    return 2.0f * philox_unit(r.v[0]) - 1.0f;
}

// in -> fc0 -> block1 { fc1, gelu, fc2 } -> head
static LayerSpec branch[3];
static void build(Model *m, float drop_path, int B) {
    branch[0] = spec("linear", "fc1", 5);
    branch[1] = spec("gelu", "act", 0);
    branch[2] = spec("linear", "fc2", 5);
    LayerSpec specs[3] = {spec("linear", "fc0", 5), spec("residual", "block1", 0),
                          spec("linear", "head", 3)};
    specs[1].children = branch;
    specs[1].nchildren = 3;
    specs[1].drop_path = drop_path;
    Err e = {0};
    if (model_build(m, specs, 3, (Shape){1, {6}}, 3, &e)) fail_msg("%s", e.msg);
    if (model_plan(m, B, &e)) fail_msg("%s", e.msg);
    model_init(m, 7);
}

static double loss(Model *m, const float *x, int B, const StepCtx *c) {
    const float *y = model_forward(m, x, B, c);
    double L = 0;
    for (int i = 0; i < B * 3; i++) L += (double)urand((uint32_t)i, 9) * y[i];
    return L;
}

static void test_names_and_layout(void **state) {
    (void)state;
    Model m;
    build(&m, 0.0f, 2);
    const char *names[] = {"fc0.weight", "fc0.bias",   "block1.fc1.weight", "block1.fc1.bias",
                           "block1.fc2.weight", "block1.fc2.bias", "head.weight", "head.bias"};
    assert_int_equal(m.table.n, 8);
    for (int i = 0; i < 8; i++) assert_string_equal(m.table.p[i].name, names[i]);
    model_free(&m);
}

static void test_gradients_with_drop_path(void **state) {
    (void)state;
    const int B = 8;
    Model m;
    build(&m, 0.5f, B);
    int64_t ids[8];
    for (int b = 0; b < B; b++) ids[b] = 40 + b;
    StepCtx c = {.train = 1, .dropout_on = 1, .seed = 1, .step = 2, .sample_ids = ids};
    float x[8 * 6], dl[8 * 3];
    for (int i = 0; i < B * 6; i++) x[i] = urand((uint32_t)i, 4);
    for (int i = 0; i < B * 3; i++) dl[i] = urand((uint32_t)i, 9);
    model_forward(&m, x, B, &c);
    // some samples keep their branch, some drop it
    const float *scale = m.seq.layers[1].save;
    int kept = 0, dropped = 0;
    for (int b = 0; b < B; b++) {
        if (scale[b] == 0.0f) dropped++;
        else if (fabsf(scale[b] - 2.0f) < 1e-6f) kept++;
        else fail_msg("scale %g is neither 0 nor 1/(1-p)", (double)scale[b]);
    }
    assert_true(kept > 0 && dropped > 0);
    model_zero_grad(&m);
    model_backward(&m, x, dl, B, &c);
    const float h = 1e-2f;
    double scale_max = 1e-6;
    double *num = malloc(m.table.n_trainable * sizeof(double));
    for (size_t i = 0; i < m.table.n_trainable; i++) {
        float keep = m.params[i];
        m.params[i] = keep + h;
        double lp = loss(&m, x, B, &c);
        m.params[i] = keep - h;
        double lm = loss(&m, x, B, &c);
        m.params[i] = keep;
        num[i] = (lp - lm) / (2 * h);
        scale_max = fmax(scale_max, fabs(num[i]));
    }
    for (size_t i = 0; i < m.table.n_trainable; i++)
        if (fabs(num[i] - m.grads[i]) > 2e-3 * scale_max)
            fail_msg("param %zu: numeric %g analytic %g", i, num[i], (double)m.grads[i]);
    free(num);
    model_free(&m);
}

// Eval mode and reg.dropout=off keep every branch: out = x + branch(x).
static void test_identity_when_off(void **state) {
    (void)state;
    Model a, b;
    build(&a, 0.9f, 4);
    build(&b, 0.0f, 4);
    int64_t ids[4] = {1, 2, 3, 4};
    float x[24];
    for (int i = 0; i < 24; i++) x[i] = urand((uint32_t)i, 1);
    StepCtx ev = {.train = 0, .dropout_on = 1, .seed = 1, .sample_ids = ids};
    StepCtx off = {.train = 1, .dropout_on = 0, .seed = 1, .sample_ids = ids};
    float ya[12], yb[12];
    memcpy(ya, model_forward(&a, x, 4, &ev), sizeof ya);
    memcpy(yb, model_forward(&b, x, 4, &ev), sizeof yb);
    assert_memory_equal(ya, yb, sizeof ya);
    memcpy(ya, model_forward(&a, x, 4, &off), sizeof ya);
    assert_memory_equal(ya, yb, sizeof ya);
    model_free(&a), model_free(&b);
}

// The branch is dropped for a fraction p of samples (within 5 sigma over 4000 samples),
// and the draw depends on the sample, not on its slot.
static void test_drop_rate(void **state) {
    (void)state;
    const int B = 4000;
    Model m;
    build(&m, 0.3f, B);
    int64_t *ids = malloc(B * sizeof *ids);
    float *x = calloc((size_t)B * 6, sizeof(float));
    for (int b = 0; b < B; b++) ids[b] = b;
    StepCtx c = {.train = 1, .dropout_on = 1, .seed = 5, .step = 1, .sample_ids = ids};
    model_forward(&m, x, B, &c);
    const float *scale = m.seq.layers[1].save;
    int dropped = 0;
    for (int b = 0; b < B; b++) dropped += scale[b] == 0.0f;
    assert_true(fabs(dropped - 0.3 * B) < 5 * sqrt(B * 0.3 * 0.7));
    float first = scale[0];
    ids[0] = 17, ids[17] = 0;  // swap two samples' slots
    model_forward(&m, x, B, &c);
    assert_true(scale[17] == first);
    free(ids), free(x);
    model_free(&m);
}

static void test_shape_changing_branch_is_refused(void **state) {
    (void)state;
    LayerSpec inner = spec("linear", "fc", 4);
    LayerSpec specs[2] = {spec("residual", "block", 0), spec("linear", "head", 3)};
    specs[0].children = &inner;
    specs[0].nchildren = 1;
    Model m;
    Err e = {0};
    assert_int_equal(model_build(&m, specs, 2, (Shape){1, {6}}, 3, &e), ERR_INPUT);
    assert_non_null(strstr(e.msg, "block"));
    model_free(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_and_layout),
        cmocka_unit_test(test_gradients_with_drop_path),
        cmocka_unit_test(test_identity_when_off),
        cmocka_unit_test(test_drop_rate),
        cmocka_unit_test(test_shape_changing_branch_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
