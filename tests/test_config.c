// test_config.c: the experiment config: the shipped configs load (and fit any data: no pinned
// input shape, a head of out = "classes"), --set overrides any key (model.input included),
// derived settings (DropPath schedule, bn.ghost) reach the layers, the effective config
// round-trips through its text, --help lists every key, and every mistake is ERR_INPUT with
// file:line, or with the --set argument that made it.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/model.h"
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
    // none pins the input shape or the class count: both come from the data file
    const char *names[] = {"mlp.cfg", "cnn6_mlp4.cfg", "rescnn.cfg"};
    for (int i = 0; i < 3; i++) {
        load_ok(&c, shipped(names[i]), NULL, NULL, 0);
        assert_int_equal(c.input.ndim, 0);
        assert_int_equal(find(c.layers, c.nlayers, "head")->out, LAYER_OUT_CLASSES);
        config_free(&c);
    }
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
    load_bad(base, (const char *[]){"layer.fc.out=many"}, 1,
             "layer fc: out must be an integer or \"classes\"");
    load_bad(base, (const char *[]){"layer.fc.dropconnect=classes"}, 1,
             "the value must be a number, true or false");
    load_bad(base, (const char *[]){"layer.fc.out=2.5"}, 1, "layer fc: out must be an integer");
    load_bad(base, (const char *[]){"layer.f.p=0.1"}, 1, "layer f (flatten) has no key 'p'");
    Config c;
    Err e = {0};
    assert_int_equal(config_load(&c, "/nonexistent/x.cfg", NULL, NULL, 0, &e), ERR_INPUT);
    assert_non_null(strstr(e.msg, "/nonexistent/x.cfg"));
}

// The message of a config_load that must fail with ERR_INPUT.
static const char *load_err(const char *path, const char *text, const char *const *sets, int n) {
    static Err e;
    Config c;
    memset(&e, 0, sizeof e);
    assert_int_equal(config_load(&c, path, text, sets, n, &e), ERR_INPUT);
    return e.msg;
}

static void expect_msg(const char *got, const char *want) {
    if (strcmp(got, want) != 0) fail_msg("expected: %s\n     got: %s", want, got);
}

// --set model.input takes the forms a user types, stores an array in the effective text (so
// the checkpoint reloads the same shape), replaces a pinned one, and model.input=data unpins.
static void test_model_input_set(void **state) {
    (void)state;
    struct {
        const char *arg;
        int ndim, d[3];
    } good[] = {
        {"model.input=1,64,64", 3, {1, 64, 64}},
        {"model.input=[3, 32, 32]", 3, {3, 32, 32}},
        {"model.input=784", 1, {784}},
        {"model.input= [ 2 , 5 ] ", 2, {2, 5}},
    };
    for (int i = 0; i < 4; i++) {
        Config c, again;
        load_ok(&c, shipped("cnn6_mlp4.cfg"), NULL, &good[i].arg, 1);
        assert_int_equal(c.input.ndim, good[i].ndim);
        for (int j = 0; j < good[i].ndim; j++) assert_int_equal(c.input.d[j], good[i].d[j]);
        load_ok(&again, "ckpt", c.text, NULL, 0);
        assert_int_equal(again.input.ndim, good[i].ndim);
        for (int j = 0; j < good[i].ndim; j++) assert_int_equal(again.input.d[j], good[i].d[j]);
        config_free(&c);
        config_free(&again);
    }
    Config c;
    load_ok(&c, shipped("cnn6_mlp4.cfg"), NULL, (const char *[]){"model.input=1,64,64"}, 1);
    if (!strstr(c.text, "input = [ 1, 64, 64 ];")) fail_msg("no input array in:\n%s", c.text);
    config_free(&c);
    const char *pinned = "model: { input = [1, 28, 28];\n layers = (\n"
                         "  { name = \"f\"; type = \"flatten\"; },\n"
                         "  { name = \"fc\"; type = \"linear\"; out = 10; }\n); };\n";
    load_ok(&c, "t.cfg", pinned, (const char *[]){"model.input=1,64,64"}, 1);
    assert_int_equal(c.input.d[1], 64);
    config_free(&c);
    load_ok(&c, "t.cfg", pinned, (const char *[]){"model.input=data"}, 1);
    assert_int_equal(c.input.ndim, 0);
    config_free(&c);
    // bad values name the --set argument
    expect_msg(load_err("t.cfg", base, (const char *[]){"model.input=1,x,64"}, 1),
               "--set model.input=1,x,64: model.input must be sizes separated by commas, e.g. "
               "model.input=1,64,64 (or model.input=data)");
    load_bad(base, (const char *[]){"model.input="}, 1, "--set model.input=: model.input must be");
    load_bad(base, (const char *[]){"model.input=[1,64"}, 1, "sizes separated by commas");
    load_bad(base, (const char *[]){"model.input=1,64,64]"}, 1, "sizes separated by commas");
    expect_msg(load_err("t.cfg", base, (const char *[]){"model.input=1,0,64"}, 1),
               "--set model.input=1,0,64: model.input sizes must be in [1, 1.67772e+07], got 0");
    expect_msg(load_err("t.cfg", base, (const char *[]){"model.input=1,2,3,4"}, 1),
               "--set model.input=1,2,3,4: model.input must be [D] or [C, H, W]");
    load_bad(base, (const char *[]){"model.input=99999999999"}, 1, "got 99999999999");
    // and in the file, its line
    load_bad("model: { input = [1, 0];\n layers = ( { name = \"f\"; type = \"flatten\"; } ); };",
             NULL, 0, "t.cfg:1: model.input sizes must be in");
    load_bad("model: { input = 5;\n layers = ( { name = \"f\"; type = \"flatten\"; } ); };",
             NULL, 0, "t.cfg:1: model.input must be [D] or [C, H, W]");
    load_bad("model: { input = [1.5];\n layers = ( { name = \"f\"; type = \"flatten\"; } ); };",
             NULL, 0, "model.input sizes must be integers");
}

// out = "classes" becomes the data's class count when the model is built (residual branches
// too), while the config and its text keep "classes", so a checkpoint rebuilds on any data.
static void test_out_classes(void **state) {
    (void)state;
    Config c, again;
    Err e = {0};
    Model m;
    load_ok(&c, shipped("mlp.cfg"), NULL, NULL, 0);
    const int classes[2] = {2, 10};
    for (int k = 0; k < 2; k++) {
        if (model_build(&m, c.layers, c.nlayers, (Shape){3, {1, 28, 28}}, classes[k], &e))
            fail_msg("%s", e.msg);
        int h = param_table_find(&m.table, "head.weight");
        assert_true(h >= 0);
        assert_int_equal(m.table.p[h].shape[0], classes[k]);
        assert_int_equal(m.table.p[h].shape[1], 128);
        assert_int_equal(m.table.p[param_table_find(&m.table, "head.bias")].shape[0], classes[k]);
        model_free(&m);
        assert_int_equal(find(c.layers, c.nlayers, "head")->out, LAYER_OUT_CLASSES);
    }
    if (!strstr(c.text, "out = \"classes\";")) fail_msg("no out = \"classes\" in:\n%s", c.text);
    load_ok(&again, "ckpt", c.text, NULL, 0);
    assert_int_equal(find(again.layers, again.nlayers, "head")->out, LAYER_OUT_CLASSES);
    config_free(&again);
    config_free(&c);
    // --set layer.NAME.out=classes, on a head that had a number
    load_ok(&c, "t.cfg", base, (const char *[]){"layer.fc.out=classes"}, 1);
    assert_int_equal(find(c.layers, c.nlayers, "fc")->out, LAYER_OUT_CLASSES);
    load_ok(&again, "ckpt", c.text, NULL, 0);
    assert_int_equal(find(again.layers, again.nlayers, "fc")->out, LAYER_OUT_CLASSES);
    if (model_build(&m, again.layers, again.nlayers, (Shape){1, {7}}, 3, &e)) fail_msg("%s", e.msg);
    assert_int_equal(m.num_classes, 3);
    model_free(&m);
    config_free(&again);
    config_free(&c);
    // a pinned head on data with another class count says how to fit it
    load_ok(&c, "t.cfg", base, NULL, 0);
    assert_int_equal(model_build(&m, c.layers, c.nlayers, (Shape){1, {7}}, 2, &e), ERR_INPUT);
    model_free(&m);
    if (!strstr(e.msg, "the data has 2 classes") || !strstr(e.msg, "out = \"classes\""))
        fail_msg("%s", e.msg);
    config_free(&c);
    // conv2d takes it too, inside a residual branch as well
    load_ok(&c, "t.cfg",
            "model: { layers = (\n"
            "  { name = \"r\"; type = \"residual\"; layers = (\n"
            "      { name = \"c\"; type = \"conv2d\"; out = \"classes\"; kernel = 1; } ); },\n"
            "  { name = \"h\"; type = \"conv2d\"; out = \"classes\"; kernel = 3; },\n"
            "  { name = \"g\"; type = \"globalavgpool\"; }\n); };\n",
            NULL, 0);
    if (model_build(&m, c.layers, c.nlayers, (Shape){3, {3, 6, 6}}, 3, &e)) fail_msg("%s", e.msg);
    assert_int_equal(m.table.p[param_table_find(&m.table, "r.c.weight")].shape[0], 3);
    assert_int_equal(m.table.p[param_table_find(&m.table, "h.weight")].shape[0], 3);
    model_plan(&m, 2, &e);
    model_init(&m, 1);
    float x[2 * 3 * 6 * 6] = {0};
    StepCtx ctx = {.train = 0};
    const float *logits = model_forward(&m, x, 2, &ctx);
    for (int i = 0; i < 6; i++) assert_true(logits[i] == logits[i]);  // not NaN
    model_free(&m);
    assert_int_equal(model_build(&m, c.layers, c.nlayers, (Shape){3, {3, 6, 6}}, 0, &e), ERR_INPUT);
    model_free(&m);
    if (!strstr(e.msg, "needs the data's class count")) fail_msg("%s", e.msg);
    config_free(&c);
    // the one word out takes
    load_bad("model: { layers = (\n  { name = \"f\"; type = \"flatten\"; },\n"
             "  { name = \"fc\"; type = \"linear\"; out = \"many\"; }\n); };",
             NULL, 0, "t.cfg:3: layer fc: out must be an integer or \"classes\"");
    load_bad("model: { layers = (\n"
             "  { name = \"p\"; type = \"maxpool2d\"; kernel = \"classes\"; }\n); };",
             NULL, 0, "t.cfg:2: layer p: kernel must be an integer");
}

// The line of config_print_keys' text that lists key (it starts "  key ").
static const char *help_line(const char *help, const char *key, char *line, size_t cap) {
    char start[80];
    snprintf(start, sizeof start, "\n  %s ", key);
    const char *p = strstr(help, start);
    if (!p) {
        fail_msg("--help does not list %s", key);
        return "";
    }
    p++;
    size_t n = strcspn(p, "\n");
    if (n >= cap) n = cap - 1;
    memcpy(line, p, n);
    line[n] = 0;
    return line;
}

static void expect_in(const char *line, const char *needle) {
    if (!strstr(line, needle)) fail_msg("expected '%s' in: %s", needle, line);
}

// train --help lists every key with its default and range, model.input and the layer keys
// (as layer.NAME.KEY, with the types that take them) included; every key it lists outside
// the layers can be given with --set, its default as the value.
static void test_help_lists_every_key(void **state) {
    (void)state;
    char *help = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&help, &len);
    assert_non_null(f);
    fputc('\n', f);
    config_print_keys(f);
    fclose(f);
    char line[1024];
    help_line(help, "model.input", line, sizeof line);
    expect_in(line, "data");
    expect_in(line, "[1, 16777216]");
    help_line(help, "train.batch", line, sizeof line);
    expect_in(line, " 128 ");
    expect_in(line, "in [1, 1000000]");
    help_line(help, "layer.NAME.out", line, sizeof line);
    expect_in(line, "required");
    expect_in(line, "an integer in [1, 16777216] or \"classes\"");
    expect_in(line, "(linear, conv2d)");
    help_line(help, "layer.NAME.p", line, sizeof line);
    expect_in(line, " 0.5 ");
    expect_in(line, "in [0, 1] (dropout, dropout2d, dropblock)");
    help_line(help, "layer.NAME.eps", line, sizeof line);
    expect_in(line, "1e-05");
    expect_in(line, "(layernorm, batchnorm)");
    help_line(help, "layer.NAME.type", line, sizeof line);
    expect_in(line, "conv2d");
    expect_in(line, "(every type)");
    const char *layer_keys[] = {"name", "type", "out", "kernel", "stride", "padding", "bias",
                                "p", "dropconnect", "block_size", "eps", "momentum",
                                "drop_path", "layers"};
    for (int i = 0; i < 14; i++) {
        char key[64];
        snprintf(key, sizeof key, "layer.NAME.%s", layer_keys[i]);
        help_line(help, key, line, sizeof line);
    }
    // every other listed key takes --set key=<its default>
    int n = 0;
    for (const char *p = strstr(help, "\n  "); p; p = strstr(p + 1, "\n  ")) {
        char key[64], dflt[64], arg[160];
        if (sscanf(p, " %63s %63s", key, dflt) != 2 || !strncmp(key, "layer.", 6)) continue;
        snprintf(arg, sizeof arg, "%s=%s", key, dflt);
        Config c;
        const char *set = arg;
        Err e = {0};
        if (config_load(&c, "t.cfg", base, &set, 1, &e)) fail_msg("--set %s: %s", arg, e.msg);
        config_free(&c);
        n++;
    }
    assert_true(n >= 40);
    free(help);
}

// An error in a value --set gave names the --set argument, not the file; one in the file
// keeps file:line.
static void test_set_errors_name_the_argument(void **state) {
    (void)state;
    expect_msg(load_err(shipped("mlp.cfg"), NULL, (const char *[]){"train.batch=0"}, 1),
               "--set train.batch=0: train.batch must be in [1, 1e+06], got 0");
    expect_msg(load_err("t.cfg", base, (const char *[]){"train.epochs=3", "train.batch=0"}, 2),
               "--set train.batch=0: train.batch must be in [1, 1e+06], got 0");
    expect_msg(load_err("t.cfg", base, (const char *[]){"layer.fc.out=0"}, 1),
               "--set layer.fc.out=0: layer fc: out must be in [1, 1.67772e+07], got 0");
    expect_msg(load_err("t.cfg", base, (const char *[]){"layer.fc.bias=2"}, 1),
               "--set layer.fc.bias=2: layer fc: bias must be in [0, 1], got 2");
    expect_msg(load_err("t.cfg", base, (const char *[]){"model.drop_path=0.1"}, 1),
               "--set model.drop_path=0.1: model.drop_path needs residual blocks, and the model "
               "has none");
    char text[1024];
    snprintf(text, sizeof text, "%strain: {\n  batch = 64;\n};\n", base);
    expect_msg(load_err("t.cfg", text, (const char *[]){"train.batch=0"}, 1),
               "--set train.batch=0: train.batch must be in [1, 1e+06], got 0");
    snprintf(text, sizeof text, "%strain: {\n  batch = 0;\n};\n", base);
    expect_msg(load_err("t.cfg", text, (const char *[]){"train.epochs=3"}, 1),
               "t.cfg:6: train.batch must be in [1, 1e+06], got 0");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipped_configs),
        cmocka_unit_test(test_set_overrides_and_round_trip),
        cmocka_unit_test(test_layer_overrides_and_no_batchnorm),
        cmocka_unit_test(test_mistakes),
        cmocka_unit_test(test_model_input_set),
        cmocka_unit_test(test_out_classes),
        cmocka_unit_test(test_help_lists_every_key),
        cmocka_unit_test(test_set_errors_name_the_argument),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
