// test_config.c: the experiment config: the shipped configs load, --set overrides any key,
// derived settings (DropPath schedule, bn.ghost) reach the layers, the effective config
// round-trips through its text, and every mistake is ERR_INPUT with file:line.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "launch/config.h"
#include "testutil.h"

static const char *shipped(const char *name) {
    static char path[1024];
    snprintf(path, sizeof path, "%s/launch/configs/%s", test_source_dir(), name);
    return path;
}

static void load_ok(Config *c, const char *path, const char *text, const char *const *sets,
                    int n) {
    Err e = {0};
    if (config_load(c, path, text, sets, n, &e)) fail_msg("%s", e.msg);
}

// ERR_INPUT whose message contains needle.
static void load_bad(const char *text, const char *const *sets, int n, const char *needle) {
    Config c;
    Err e = {0};
    assert_int_equal(config_load(&c, "t.cfg", text, sets, n, &e), ERR_INPUT);
    if (!strstr(e.msg, needle)) fail_msg("expected '%s' in: %s", needle, e.msg);
}

static const LayerSpec *find(const LayerSpec *s, int n, const char *name) {
    for (int i = 0; i < n; i++) {
        if (strcmp(s[i].name, name) == 0) return &s[i];
        const LayerSpec *c = find(s[i].children, s[i].nchildren, name);
        if (c) return c;
    }
    return NULL;
}

static void test_shipped_configs(void **state) {
    (void)state;
    Config c;
    load_ok(&c, shipped("mlp.cfg"), NULL, NULL, 0);
    assert_int_equal(c.optim.kind, OPTIM_ADAMW);
    assert_float_equal(c.optim.lr, 3e-4f, 1e-9);
    assert_float_equal(c.label_smoothing, 0.1f, 1e-9);
    assert_int_equal(c.sched.kind, SCHED_COSINE);
    assert_int_equal(c.batch, 128);
    assert_int_equal(c.nlayers, 14);
    config_free(&c);
    load_ok(&c, shipped("cnn6_mlp4.cfg"), NULL, NULL, 0);
    assert_int_equal(c.train_size, 8200);
    assert_float_equal(find(c.layers, c.nlayers, "drop1a")->p, 0.1f, 1e-9);
    assert_int_equal(find(c.layers, c.nlayers, "conv3b")->out, 128);
    assert_int_equal(find(c.layers, c.nlayers, "conv3b")->bias, 0);
    config_free(&c);
    // DropPath rises linearly over the residual blocks: 0, rate/2, rate
    load_ok(&c, shipped("rescnn.cfg"), NULL, NULL, 0);
    assert_float_equal(find(c.layers, c.nlayers, "res1")->drop_path, 0.0f, 1e-9);
    assert_float_equal(find(c.layers, c.nlayers, "res2")->drop_path, 0.05f, 1e-7);
    assert_float_equal(find(c.layers, c.nlayers, "res3")->drop_path, 0.1f, 1e-7);
    assert_int_equal(find(c.layers, c.nlayers, "res2")->nchildren, 5);
    assert_int_equal(find(c.layers, c.nlayers, "dropblock2")->block_size, 3);
    config_free(&c);
}

static void test_set_overrides_and_round_trip(void **state) {
    (void)state;
    const char *sets[] = {"train.epochs=3", "optim.name=sgd", "optim.momentum=0.9",
                          "reg.dropout=off", "bn.ghost=16", "train.shuffle=false",
                          "model.drop_path=0.2"};
    Config c, again;
    load_ok(&c, shipped("rescnn.cfg"), NULL, sets, 7);
    assert_int_equal(c.epochs, 3);
    assert_int_equal(c.optim.kind, OPTIM_SGD);
    assert_float_equal(c.optim.momentum, 0.9f, 1e-7);
    assert_int_equal(c.dropout_on, 0);
    assert_int_equal(c.shuffle, 0);
    assert_int_equal(find(c.layers, c.nlayers, "res1.bn1") ? 1 : 0, 0);  // names are local
    assert_int_equal(find(c.layers, c.nlayers, "bn1")->ghost, 16);  // nested ones too:
    const LayerSpec *res2 = find(c.layers, c.nlayers, "res2");
    assert_int_equal(res2->children[1].ghost, 16);
    assert_float_equal(find(c.layers, c.nlayers, "res3")->drop_path, 0.2f, 1e-7);
    // the effective text (what checkpoints carry) reloads to the same settings
    load_ok(&again, "ckpt", c.text, NULL, 0);
    assert_int_equal(again.epochs, 3);
    assert_int_equal(again.optim.kind, OPTIM_SGD);
    assert_int_equal(again.dropout_on, 0);
    assert_int_equal(again.nlayers, c.nlayers);
    assert_float_equal(find(again.layers, again.nlayers, "res3")->drop_path, 0.2f, 1e-7);
    config_free(&c);
    config_free(&again);
}

// layer.NAME.KEY overrides one layer (nested ones too) and survives the text round trip;
// model.batchnorm=off removes every BatchNorm and gives the layer before it a bias.
static void test_layer_overrides_and_no_batchnorm(void **state) {
    (void)state;
    const char *sets[] = {"layer.drop4.p=0", "layer.fc1.out=100", "layer.conv1a.bias=true",
                          "model.batchnorm=off"};
    Config c, again;
    load_ok(&c, shipped("cnn6_mlp4.cfg"), NULL, sets, 4);
    assert_float_equal(find(c.layers, c.nlayers, "drop4")->p, 0.0f, 0);
    assert_float_equal(find(c.layers, c.nlayers, "drop5")->p, 0.3f, 1e-7);  // others untouched
    assert_int_equal(find(c.layers, c.nlayers, "fc1")->out, 100);
    assert_null(find(c.layers, c.nlayers, "bn1a"));
    assert_int_equal(c.nlayers, 38 - 6);  // 38 layers, 6 of them batchnorm
    assert_int_equal(find(c.layers, c.nlayers, "conv2b")->bias, 1);
    load_ok(&again, "ckpt", c.text, NULL, 0);
    assert_float_equal(find(again.layers, again.nlayers, "drop4")->p, 0.0f, 0);
    assert_int_equal(again.nlayers, c.nlayers);
    config_free(&c);
    config_free(&again);
    load_ok(&c, shipped("rescnn.cfg"), NULL, (const char *[]){"layer.dropblock2.p=0.25"}, 1);
    assert_float_equal(find(c.layers, c.nlayers, "dropblock2")->p, 0.25f, 1e-7);
    config_free(&c);
    load_ok(&c, shipped("rescnn.cfg"), NULL, (const char *[]){"model.batchnorm=off"}, 1);
    assert_int_equal(find(c.layers, c.nlayers, "res2")->nchildren, 3);  // its two bn went
    config_free(&c);
}

static const char *base = "model: { layers = (\n"
                          "  { name = \"f\"; type = \"flatten\"; },\n"
                          "  { name = \"fc\"; type = \"linear\"; out = 10; }\n"
                          "); };\n";

static void test_mistakes(void **state) {
    (void)state;
    char text[1024];
    load_bad("train: { epochs = 3 }\n batch", NULL, 0, "t.cfg:2");
    snprintf(text, sizeof text, "%strain: {\n  epoch = 3;\n};\n", base);
    load_bad(text, NULL, 0, "t.cfg:6: unknown key 'train.epoch' (did you mean train.epochs?)");
    snprintf(text, sizeof text, "%strain: { epochs = 2.5; };\n", base);
    load_bad(text, NULL, 0, "train.epochs must be an integer");
    snprintf(text, sizeof text, "%soptim: { lr = -1.0; };\n", base);
    load_bad(text, NULL, 0, "optim.lr must be in");
    load_bad(base, (const char *[]){"reg.clip_norm=abc"}, 1, "must be a number");
    load_bad(base, (const char *[]){"nope"}, 1, "expected key=value");
    load_bad(base, (const char *[]){"train.bacth=3"}, 1, "did you mean train.batch");
    load_bad("model: { layers = ( { name = \"c\"; type = \"conv2d\"; out = 4; } ); };", NULL, 0,
             "needs kernel");
    load_bad("model: { layers = ( { name = \"d\"; type = \"dropblock\"; p = 0.1; } ); };", NULL,
             0, "block_size");
    load_bad("model: { layers = ( { name = \"c\"; type = \"conv2d\"; out = 4; kernel = 3;\n"
             " dropconnect = 0.5; } ); };",
             NULL, 0, "t.cfg:2: layer c (conv2d) has no key 'dropconnect'");
    load_bad("model: { layers = ( { name = \"a.b\"; type = \"relu\"; } ); };", NULL, 0,
             "bad name");
    load_bad("model: { layers = ( { name = \"r\"; type = \"residual\"; } ); };", NULL, 0,
             "r.layers is missing");
    load_bad("model: { drop_path = 0.1; layers = ( { name = \"f\"; type = \"flatten\"; } ); };",
             NULL, 0, "needs residual blocks");
    load_bad("model: { drop_path = 0.1; layers = ( { name = \"r\"; type = \"residual\";\n"
             " drop_path = 0.2; layers = ( { name = \"a\"; type = \"relu\"; } ); } ); };",
             NULL, 0, "use one");
    load_bad("model: { layers = ( { name = \"x\"; type = \"conv9d\"; } ); };", NULL, 0,
             "unknown type 'conv9d'");
    load_bad(base, (const char *[]){"layer.fc9.out=3"}, 1, "no layer named 'fc9'");
    load_bad(base, (const char *[]){"layer.fc.type=relu"}, 1, "not a layer setting");
    load_bad(base, (const char *[]){"layer.fc=3"}, 1, "expected layer.NAME.KEY");
    load_bad(base, (const char *[]){"layer.fc.out=many"}, 1, "must be a number");
    load_bad(base, (const char *[]){"layer.fc.out=2.5"}, 1, "layer fc: out must be an integer");
    load_bad(base, (const char *[]){"layer.f.p=0.1"}, 1, "layer f (flatten) has no key 'p'");
    Config c;
    Err e = {0};
    assert_int_equal(config_load(&c, "/nonexistent/x.cfg", NULL, NULL, 0, &e), ERR_INPUT);
    assert_non_null(strstr(e.msg, "/nonexistent/x.cfg"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipped_configs),
        cmocka_unit_test(test_set_overrides_and_round_trip),
        cmocka_unit_test(test_layer_overrides_and_no_batchnorm),
        cmocka_unit_test(test_mistakes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
