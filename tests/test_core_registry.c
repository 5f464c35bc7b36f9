// test_core_registry.c: what the layer kinds declare about themselves (core/layer.h) and what
// code outside the kinds reads instead of names: the registry, each kind's config-key table,
// the dropout-family regularizer a layer applies, parameter roles (and the kind and weight
// decay that follow from them), the FLOP hooks, and the optimizer and schedule name tables.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/layer.h"
#include "core/model.h"
#include "core/optim.h"
#include "core/schedule.h"

static LayerSpec spec(const char *type, const char *name) {
    LayerSpec s = {.bias = 1, .p = 0.5f, .eps = 1e-5f, .momentum = 0.1f};
    snprintf(s.type, sizeof s.type, "%s", type);
    snprintf(s.name, sizeof s.name, "%s", name);
    return s;
}

// Every kind is found by its name, once, and its key table is sound: names unique within the
// kind, fields inside LayerSpec, ranges ordered, a default inside its range, and a key that
// several kinds take has one form (launch/config.c types --set values by the first kind's).
static void test_kinds_and_key_tables(void **state) {
    (void)state;
    int n = layer_kind_count();
    const char *known[] = {"linear",    "relu",          "gelu",      "layernorm", "dropout",
                           "flatten",   "conv2d",        "maxpool2d", "avgpool2d",
                           "globalavgpool", "dropout2d", "dropblock", "batchnorm", "residual"};
    for (int i = 0; i < 14; i++) assert_non_null(layer_kind_find(known[i]));
    assert_true(n >= 14);
    assert_null(layer_kind_at(n));
    assert_null(layer_kind_at(-1));
    assert_null(layer_kind_find("gelu2"));
    for (int i = 0; i < n; i++) {
        const LayerKind *k = layer_kind_at(i);
        assert_ptr_equal(layer_kind_find(k->type), k);
        assert_non_null(strstr(layer_kind_names(), k->type));
        assert_non_null(k->setup);
        assert_non_null(k->forward);
        assert_non_null(k->backward);
        for (int j = 0; j < k->nkeys; j++) {
            const LayerKeyDesc *d = &k->keys[j];
            assert_ptr_equal(layer_kind_key(k, d->key), d);  // unique within the kind
            assert_non_null(d->help);
            if (d->type == LAYER_KEY_LAYERS) continue;
            size_t width = d->type == LAYER_KEY_FLOAT ? sizeof(float) : sizeof(int);
            assert_true(d->offset + width <= offsetof(LayerSpec, children));
            assert_true(d->lo <= d->hi);
            if (d->dflt_text && d->dflt != 0) assert_true(d->dflt >= d->lo && d->dflt <= d->hi);
            for (int h = 0; h < i; h++) {
                const LayerKeyDesc *o = layer_kind_key(layer_kind_at(h), d->key);
                if (o) assert_int_equal(o->type, d->type), assert_int_equal(o->offset, d->offset);
            }
        }
        if (k->drop_name) {  // its probability is one of its float keys
            const LayerKeyDesc *d = layer_kind_key(k, k->drop_key);
            assert_non_null(d);
            assert_int_equal(d->type, LAYER_KEY_FLOAT);
        }
        assert_false(k->flags & LAYER_STOCHASTIC && !k->drop_name);
    }
    // what config.c and the studies rely on
    assert_int_equal(layer_kind_find("batchnorm")->flags, LAYER_NORMALIZES | LAYER_RUNNING_STATS);
    assert_int_equal(layer_kind_find("layernorm")->flags, LAYER_NORMALIZES);
    assert_non_null(layer_kind_key(layer_kind_find("conv2d"), "bias"));
    assert_null(layer_kind_key(layer_kind_find("batchnorm"), "bias"));
    assert_string_equal(layer_kind_key(layer_kind_find("conv2d"), "stride")->dflt_text, "1");
    assert_string_equal(layer_kind_key(layer_kind_find("maxpool2d"), "stride")->dflt_text,
                        "kernel");
    assert_null(layer_kind_key(layer_kind_find("maxpool2d"), "out"));
    assert_null(layer_kind_key(NULL, "out"));
}

// The dropout family as the studies see it: the three dropout layers always, DropConnect and
// DropPath only when their probability is set; nothing else.
static void test_spec_drop(void **state) {
    (void)state;
    const char *key = NULL;
    LayerSpec s = spec("dropout", "d");
    assert_string_equal(layer_spec_drop(&s, &key), "dropout");
    assert_string_equal(key, "p");
    s = spec("dropout2d", "d");
    s.p = 0;  // a dropout layer is one whatever its p
    assert_string_equal(layer_spec_drop(&s, &key), "dropout2d");
    s = spec("dropblock", "d");
    assert_string_equal(layer_spec_drop(&s, NULL), "dropblock");
    s = spec("linear", "fc");
    assert_null(layer_spec_drop(&s, &key));
    s.dropconnect = 0.2f;
    assert_string_equal(layer_spec_drop(&s, &key), "dropconnect");
    assert_string_equal(key, "dropconnect");
    s = spec("residual", "res");
    assert_null(layer_spec_drop(&s, &key));
    s.drop_path = 0.1f;
    assert_string_equal(layer_spec_drop(&s, &key), "droppath");
    assert_string_equal(key, "drop_path");
    const char *none[] = {"batchnorm", "layernorm", "conv2d", "relu", "no-such-type"};
    for (int i = 0; i < 5; i++) {
        s = spec(none[i], "x");
        assert_null(layer_spec_drop(&s, &key));
    }
}

// Roles, and the trainable/buffer split and weight decay that follow from them: decay is
// the weight role's alone (a conv kernel and a linear matrix), never a bias or a norm's scale.
static void test_param_roles(void **state) {
    (void)state;
    LayerSpec specs[6] = {spec("conv2d", "c"),    spec("batchnorm", "bn"), spec("flatten", "f"),
                          spec("layernorm", "ln"), spec("linear", "fc"),   spec("dropout", "d")};
    specs[0].out = 2, specs[0].kernel = 3, specs[0].padding = 1;
    specs[4].out = 3;
    Model m;
    Err e = {0};
    assert_int_equal(model_build(&m, specs, 6, (Shape){3, {1, 4, 4}}, 3, &e), ERR_OK);
    const struct {
        const char *name;
        ParamRole role;
    } want[] = {{"c.weight", PARAM_WEIGHT},          {"c.bias", PARAM_BIAS},
                {"bn.weight", PARAM_NORM_SCALE},     {"bn.bias", PARAM_NORM_SHIFT},
                {"bn.running_mean", PARAM_RUNNING_MEAN}, {"bn.running_var", PARAM_RUNNING_VAR},
                {"bn.num_batches_tracked", PARAM_COUNTER}, {"ln.weight", PARAM_NORM_SCALE},
                {"ln.bias", PARAM_NORM_SHIFT},       {"fc.weight", PARAM_WEIGHT},
                {"fc.bias", PARAM_BIAS}};
    assert_int_equal(m.table.n, 11);
    for (int i = 0; i < 11; i++) {
        const ParamDesc *p = &m.table.p[i];
        assert_string_equal(p->name, want[i].name);
        assert_int_equal(p->role, want[i].role);
        int buffer = p->role == PARAM_RUNNING_MEAN || p->role == PARAM_RUNNING_VAR ||
                     p->role == PARAM_COUNTER;
        assert_int_equal(p->kind, buffer ? PARAM_BUFFER : PARAM_TRAINABLE);
        assert_int_equal(p->decay, p->role == PARAM_WEIGHT);
    }
    model_free(&m);
}

// FLOP hooks: 2 per multiply-accumulate for the forward pass, the weight gradient and (but for
// the model's first layer) the input gradient; a residual block counts its branch, whose
// first layer needs the input gradient when the block does; other kinds count nothing.
static void test_flops(void **state) {
    (void)state;
    LayerSpec branch[2] = {spec("conv2d", "conv"), spec("relu", "r")};
    branch[0].out = 2, branch[0].kernel = 3, branch[0].padding = 1;
    LayerSpec specs[5] = {spec("conv2d", "c"), spec("residual", "res"), spec("flatten", "f"),
                          spec("linear", "fc"), spec("dropout", "d")};
    specs[0].out = 2, specs[0].kernel = 3, specs[0].padding = 1;
    specs[1].children = branch, specs[1].nchildren = 2;
    specs[3].out = 3;
    Model m;
    Err e = {0};
    assert_int_equal(model_build(&m, specs, 5, (Shape){3, {1, 4, 4}}, 3, &e), ERR_OK);
    double conv1 = 2.0 * 16 * 1 * 9, conv2 = 2.0 * 16 * 2 * 9, fc = 32.0 * 3;  // MACs per sample
    assert_true(seq_flops(&m.seq, 0) == 4 * conv1 + 6 * conv2 + 6 * fc);
    assert_true(seq_flops(&m.seq, 1) == 6 * conv1 + 6 * conv2 + 6 * fc);
    // a block that needs no input gradient (the model's first) spares its branch's first layer
    assert_true(m.seq.layers[1].kind->flops(&m.seq.layers[1], 0) == 4 * conv2);
    assert_true(m.seq.layers[1].kind->flops(&m.seq.layers[1], 1) == 6 * conv2);
    assert_null(m.seq.layers[2].kind->flops);
    model_free(&m);
}

// Layers before the first trainable one (an input dropout, a flatten) need no gradient: the
// model's backward leaves their output gradients unwritten and the first linear computes no
// input gradient (its FLOPs say so too), while every parameter gradient is what the whole
// chain run back to the input gives.
static void test_backward_stops_at_first_param(void **state) {
    (void)state;
    enum { B = 3, D = 2 * 2 * 3, H = 5 };
    LayerSpec specs[5] = {spec("dropout", "drop"), spec("flatten", "f"), spec("linear", "fc1"),
                          spec("relu", "r"), spec("linear", "fc2")};
    specs[0].p = 0.25f, specs[2].out = H, specs[4].out = 4;
    Model m;
    Err e = {0};
    assert_int_equal(model_build(&m, specs, 5, (Shape){3, {2, 2, 3}}, 4, &e), ERR_OK);
    assert_int_equal(model_plan(&m, B, &e), ERR_OK);
    model_init(&m, 5);
    assert_int_equal(m.seq.first_param, 2);
    assert_true(seq_flops(&m.seq, 0) == 4.0 * D * H + 6.0 * H * 4);
    float x[B * D], dlogits[B * 4], din[B * D];
    for (int i = 0; i < B * D; i++) x[i] = (float)((i * 7) % 11) / 5.0f - 1.0f;
    for (int i = 0; i < B * 4; i++) dlogits[i] = (float)((i * 5) % 7) / 3.0f - 1.0f;
    int64_t ids[B] = {4, 9, 2};
    StepCtx c = {.train = 1, .dropout_on = 1, .seed = 3, .step = 1, .sample_ids = ids};
    size_t n = m.table.n_trainable;
    float g_all[n];
    model_forward(&m, x, B, &c);
    model_zero_grad(&m);
    seq_backward(&m.seq, din, m.grads, dlogits, x, m.params, &c, B, &m.table, NULL, NULL);
    memcpy(g_all, m.grads, sizeof g_all);
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < B * D; i++) m.seq.dacts[k][i] = 1e30f;
    model_zero_grad(&m);
    model_backward(&m, x, dlogits, B, &c);
    assert_memory_equal(m.grads, g_all, sizeof g_all);
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < B * D; i++) assert_true(m.seq.dacts[k][i] == 1e30f);
    model_free(&m);
}

// The enum-to-name tables: one name per value, in order, NULL after the last.
static void test_kind_names(void **state) {
    (void)state;
    assert_string_equal(optim_kind_name(OPTIM_SGD), "sgd");
    assert_string_equal(optim_kind_name(OPTIM_ADAM), "adam");
    assert_string_equal(optim_kind_name(OPTIM_ADAMW), "adamw");
    assert_string_equal(optim_kind_name(OPTIM_NKINDS), "?");
    assert_null(optim_kind_names[OPTIM_NKINDS]);
    assert_string_equal(sched_kind_names[SCHED_CONSTANT], "constant");
    assert_string_equal(sched_kind_names[SCHED_STEP], "step");
    assert_string_equal(sched_kind_names[SCHED_COSINE], "cosine");
    assert_null(sched_kind_names[SCHED_NKINDS]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kinds_and_key_tables), cmocka_unit_test(test_spec_drop),
        cmocka_unit_test(test_param_roles),          cmocka_unit_test(test_flops),
        cmocka_unit_test(test_backward_stops_at_first_param), cmocka_unit_test(test_kind_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
