// test_checkpoint.c: io/checkpoint: bit-exact save/load of parameters, buffers, optimizer
// state and run metadata; model-order listing in HDF5; int64 num_batches_tracked; refusal
// of damaged or mismatched checkpoints without touching the model; atomic saves that leave
// an earlier checkpoint intact and no temporary files behind when they fail; the
// /preprocessing record (written from meta.prep, read by ckpt_read_meta, absent in older
// checkpoints, which still load).
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "io/checkpoint.h"
#include "iotest.h"
#include "testutil.h"

static const char *dir;

// flatten -> fc1 (16 -> hidden) -> ln (optional) -> head (hidden -> 3), input (1,4,4).
static void build(Model *m, int hidden, int with_ln, int extra_ln) {
    LayerSpec specs[5];
    int n = 0;
    memset(specs, 0, sizeof specs);
    specs[n++] = (LayerSpec){.type = "flatten", .name = "flat"};
    specs[n++] = (LayerSpec){.type = "linear", .name = "fc1", .out = hidden, .bias = 1};
    if (with_ln) specs[n++] = (LayerSpec){.type = "layernorm", .name = "ln", .eps = 1e-5f};
    if (extra_ln) specs[n++] = (LayerSpec){.type = "layernorm", .name = "ln2", .eps = 1e-5f};
    specs[n++] = (LayerSpec){.type = "linear", .name = "head", .out = 3, .bias = 1};
    Err e = {0};
    if (model_build(m, specs, n, (Shape){3, {1, 4, 4}}, 3, &e)) fail_msg("model_build: %s", e.msg);
}

// Distinct, non-trivial values everywhere, so a swapped or shifted slice would show.
static void fill(float *p, size_t n, float base) {
    for (size_t i = 0; i < n; i++) p[i] = base + sinf((float)i * 0.7f) * 0.25f + (float)i * 1e-4f;
}

static void fill_optim(Optim *o, OptimKind kind, size_t n) {
    OptimConfig cfg = {.kind = kind, .lr = 0.01f, .momentum = 0.9f, .beta1 = 0.9f,
                       .beta2 = 0.999f, .eps = 1e-8f};
    assert_int_equal(optim_init(o, &cfg, n), 0);
    fill(o->m, n, -0.5f);
    if (o->v) fill(o->v, n, 0.75f);
    o->step = 1234567;
}

static CkptMeta sample_meta(void) {
    return (CkptMeta){.step = 1234567, .epoch = 7, .epoch_batch = 42, .seed = 4000000000u,
                      .best_metric = 0.8875, .best_epoch = 5, .bad_epochs = 2,
                      .epoch_loss_sum = 123.456789, .epoch_correct = 3141, .epoch_seen = 4096,
                      .epoch_seconds = 12.5,
                      .config_text = "model = (\n  { type = \"linear\"; out = 8; }\n);\n# ü\n"};
}

static void assert_meta_equal(const CkptMeta *a, const CkptMeta *b) {
    assert_int_equal(a->step, b->step);
    assert_int_equal(a->epoch, b->epoch);
    assert_int_equal(a->epoch_batch, b->epoch_batch);
    assert_int_equal(a->seed, b->seed);
    assert_true(a->best_metric == b->best_metric);
    assert_int_equal(a->best_epoch, b->best_epoch);
    assert_int_equal(a->bad_epochs, b->bad_epochs);
    assert_true(a->epoch_loss_sum == b->epoch_loss_sum);
    assert_int_equal(a->epoch_correct, b->epoch_correct);
    assert_int_equal(a->epoch_seen, b->epoch_seen);
    assert_true(a->epoch_seconds == b->epoch_seconds);
    assert_string_equal(a->config_text, b->config_text);
}

// Saves a model (with or without LayerNorm) and an optimizer of kind to path, loads both into
// fresh ones and compares every bit, and the metadata.
static void roundtrip(const char *path, OptimKind kind, int with_ln) {
    Model a, b;
    build(&a, 8, with_ln, 0);
    build(&b, 8, with_ln, 0);
    fill(a.params, a.table.n_trainable, 0.1f);
    Optim oa, ob;
    fill_optim(&oa, kind, a.table.n_trainable);
    OptimConfig cfg = oa.cfg;
    assert_int_equal(optim_init(&ob, &cfg, b.table.n_trainable), 0);
    CkptMeta meta = sample_meta(), got = {0}, only = {0};
    Err e = {0};
    assert_int_equal(ckpt_save(path, &a, &oa, &meta, &e), ERR_OK);
    assert_no_open_hdf5();
    assert_no_temp_files(dir);
    assert_int_equal(ckpt_load(path, &b, &ob, &got, &e), ERR_OK);
    assert_no_open_hdf5();
    assert_memory_equal(a.params, b.params, a.table.n_trainable * sizeof(float));
    assert_memory_equal(oa.m, ob.m, oa.n * sizeof(float));
    if (kind != OPTIM_SGD) assert_memory_equal(oa.v, ob.v, oa.n * sizeof(float));
    assert_int_equal(ob.step, 1234567);
    assert_meta_equal(&meta, &got);
    assert_int_equal(ckpt_read_meta(path, &only, &e), ERR_OK);
    assert_meta_equal(&meta, &only);
    ckpt_meta_free(&got);
    ckpt_meta_free(&only);
    assert_null(only.config_text);

    // without opt and meta, only the parameters are loaded
    Model c;
    build(&c, 8, with_ln, 0);
    assert_int_equal(ckpt_load(path, &c, NULL, NULL, &e), ERR_OK);
    assert_memory_equal(a.params, c.params, a.table.n_trainable * sizeof(float));
    model_free(&c);
    optim_free(&oa);
    optim_free(&ob);
    model_free(&a);
    model_free(&b);
}

static void test_roundtrip_adam_adamw(void **state) {
    (void)state;
    roundtrip(test_path(dir, "adamw.h5"), OPTIM_ADAMW, 1);
    roundtrip(test_path(dir, "adam.h5"), OPTIM_ADAM, 0);
}

static void test_roundtrip_sgd(void **state) {
    (void)state;
    const char *path = test_path(dir, "sgd.h5");
    roundtrip(path, OPTIM_SGD, 0);

    // HDF5 sees /optim/fc1.weight.momentum_buffer with the parameter's shape, and name "sgd"
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t d = H5Dopen2(f, "/optim/fc1.weight.momentum_buffer", H5P_DEFAULT);
    assert_true(d >= 0);
    hid_t s = H5Dget_space(d);
    hsize_t dims[2];
    assert_int_equal(H5Sget_simple_extent_dims(s, dims, NULL), 2);
    assert_int_equal(dims[0], 8);
    assert_int_equal(dims[1], 16);
    H5Sclose(s);
    H5Dclose(d);
    assert_int_equal(H5Lexists(f, "/optim/fc1.weight.exp_avg", H5P_DEFAULT), 0);
    hid_t g = H5Gopen2(f, "optim", H5P_DEFAULT);
    hid_t at = H5Aopen(g, "name", H5P_DEFAULT);
    hid_t t = H5Aget_type(at);
    char *name = NULL;
    assert_true(H5Aread(at, t, &name) >= 0);
    assert_string_equal(name, "sgd");
    H5free_memory(name);
    H5Tclose(t);
    H5Aclose(at);
    H5Gclose(g);
    H5Fclose(f);
    assert_no_open_hdf5();
}

// H5Literate callback: appends each name to a newline-separated list.
static herr_t collect(hid_t g, const char *name, const H5L_info_t *info, void *ctx) {
    (void)g;
    (void)info;
    strcat(ctx, name);
    strcat(ctx, "\n");
    return 0;
}

static void test_model_order_in_hdf5(void **state) {
    (void)state;
    const char *path = test_path(dir, "order.h5");
    Model a;
    build(&a, 8, 1, 0);
    Err e = {0};
    assert_int_equal(ckpt_save(path, &a, NULL, NULL, &e), ERR_OK);
    char want[1024] = "", got[1024] = "";
    for (int i = 0; i < a.table.n; i++) strcat(strcat(want, a.table.p[i].name), "\n");
    assert_string_equal(want, "fc1.weight\nfc1.bias\nln.weight\nln.bias\nhead.weight\nhead.bias\n");
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t g = H5Gopen2(f, "model", H5P_DEFAULT);
    assert_true(H5Literate(g, H5_INDEX_CRT_ORDER, H5_ITER_INC, NULL, collect, got) >= 0);
    assert_string_equal(got, want);
    H5Gclose(g);
    // the root lists its groups in creation order too
    got[0] = 0;
    assert_true(H5Literate(f, H5_INDEX_CRT_ORDER, H5_ITER_INC, NULL, collect, got) >= 0);
    assert_string_equal(got, "model\n");
    H5Fclose(f);
    assert_no_open_hdf5();
    model_free(&a);
}

// A model with BatchNorm-like buffers, built straight from the parameter table.
static void build_bn(Model *m) {
    memset(m, 0, sizeof *m);
    int64_t four[1] = {4};
    assert_true(param_table_add(&m->table, "bn", "weight", PARAM_NORM_SCALE, 1, four, 0) >= 0);
    assert_true(param_table_add(&m->table, "bn", "bias", PARAM_NORM_SHIFT, 1, four, 0) >= 0);
    assert_true(param_table_add(&m->table, "bn", "running_mean", PARAM_RUNNING_MEAN, 1, four, 0) >= 0);
    assert_true(param_table_add(&m->table, "bn", "running_var", PARAM_RUNNING_VAR, 1, four, 0) >= 0);
    assert_true(param_table_add(&m->table, "bn", "num_batches_tracked", PARAM_COUNTER, 0, NULL, 0) >= 0);
    m->params = calloc(m->table.n_trainable, sizeof(float));
    m->bufs = calloc(m->table.n_buffer, sizeof(float));
}

static void test_buffers_and_int64_counter(void **state) {
    (void)state;
    const char *path = test_path(dir, "bn.h5");
    Model a, b;
    build_bn(&a);
    build_bn(&b);
    fill(a.params, a.table.n_trainable, 1.0f);
    fill(a.bufs, a.table.n_buffer - 1, 0.3f);
    a.bufs[a.table.n_buffer - 1] = 12345.0f;
    Err e = {0};
    assert_int_equal(ckpt_save(path, &a, NULL, NULL, &e), ERR_OK);
    assert_int_equal(ckpt_load(path, &b, NULL, NULL, &e), ERR_OK);
    assert_memory_equal(a.params, b.params, a.table.n_trainable * sizeof(float));
    assert_memory_equal(a.bufs, b.bufs, a.table.n_buffer * sizeof(float));

    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "/model/bn.num_batches_tracked", H5P_DEFAULT);
    hid_t t = H5Dget_type(d), s = H5Dget_space(d);
    assert_int_equal(H5Tget_class(t), H5T_INTEGER);
    assert_int_equal(H5Tget_size(t), 8);
    assert_int_equal(H5Tget_sign(t), H5T_SGN_2);
    assert_int_equal(H5Sget_simple_extent_ndims(s), 0);  // a scalar, as PyTorch's
    int64_t v = 0;
    assert_true(H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &v) >= 0);
    assert_int_equal(v, 12345);
    H5Sclose(s);
    H5Tclose(t);
    H5Dclose(d);
    d = H5Dopen2(f, "/model/bn.running_var", H5P_DEFAULT);
    t = H5Dget_type(d);
    assert_int_equal(H5Tget_class(t), H5T_FLOAT);
    assert_int_equal(H5Tget_size(t), 4);
    H5Tclose(t);
    H5Dclose(d);
    H5Fclose(f);
    assert_no_open_hdf5();
    model_free(&a);
    model_free(&b);
}

// ckpt_load must fail with ERR_INPUT naming path and needle, leaving m (and o) unchanged.
static void expect_load_refused(const char *path, Model *m, Optim *o, const char *needle) {
    float *before = malloc(m->table.n_trainable * sizeof(float));
    float *mom = o ? malloc(o->n * sizeof(float)) : NULL;
    memcpy(before, m->params, m->table.n_trainable * sizeof(float));
    if (o) memcpy(mom, o->m, o->n * sizeof(float));
    int64_t step = o ? o->step : 0;
    CkptMeta meta = {0};
    Err e = {0};
    int rc = ckpt_load(path, m, o, &meta, &e);
    if (rc != ERR_INPUT) fail_msg("%s: expected ERR_INPUT, got %d (%s)", path, rc, e.msg);
    if (!strstr(e.msg, path) || !strstr(e.msg, needle))
        fail_msg("message '%s' lacks '%s' or '%s'", e.msg, path, needle);
    assert_null(strchr(e.msg, '\n'));
    assert_null(meta.config_text);
    assert_memory_equal(before, m->params, m->table.n_trainable * sizeof(float));
    if (o) {
        assert_memory_equal(mom, o->m, o->n * sizeof(float));
        assert_int_equal(o->step, step);
    }
    free(before);
    free(mom);
    assert_no_open_hdf5();
}

static void test_refuses_mismatched_models(void **state) {
    (void)state;
    const char *path = test_path(dir, "base.h5");
    Model a, wide, more, less;
    build(&a, 8, 1, 0);
    fill(a.params, a.table.n_trainable, 0.0f);
    Err e = {0};
    assert_int_equal(ckpt_save(path, &a, NULL, NULL, &e), ERR_OK);

    build(&wide, 16, 1, 0);
    fill(wide.params, wide.table.n_trainable, 5.0f);
    expect_load_refused(path, &wide, NULL,
                        "/model/fc1.weight has shape (8,16) but the model expects (16,16)");
    build(&more, 8, 1, 1);
    fill(more.params, more.table.n_trainable, 5.0f);
    expect_load_refused(path, &more, NULL, "/model/ln2.weight is missing");
    build(&less, 8, 0, 0);
    fill(less.params, less.table.n_trainable, 5.0f);
    expect_load_refused(path, &less, NULL, "/model/ln.bias is not in the model");
    model_free(&a);
    model_free(&wide);
    model_free(&more);
    model_free(&less);
}

static void test_refuses_damaged_files(void **state) {
    (void)state;
    Model a;
    build(&a, 8, 1, 0);
    fill(a.params, a.table.n_trainable, 0.0f);
    Err e = {0};
    expect_load_refused(test_path(dir, "none.h5"), &a, NULL, "No such file or directory");

    const char *path = test_path(dir, "text.h5");
    FILE *t = fopen(path, "w");
    fputs("not a checkpoint\n", t);
    fclose(t);
    expect_load_refused(path, &a, NULL, "not an HDF5 file");

    path = test_path(dir, "trunc.h5");
    assert_int_equal(ckpt_save(path, &a, NULL, NULL, &e), ERR_OK);
    size_t len = 0;
    free(test_read_file(path, &len));
    assert_int_equal(truncate(path, (off_t)len / 2), 0);
    expect_load_refused(path, &a, NULL, "truncated");

    // NaN in a saved parameter
    path = test_path(dir, "nan.h5");
    Model n;
    build(&n, 8, 1, 0);
    fill(n.params, n.table.n_trainable, 0.0f);
    n.params[n.table.p[2].offset + 3] = NAN;  // ln.weight[3]
    assert_int_equal(ckpt_save(path, &n, NULL, NULL, &e), ERR_OK);
    expect_load_refused(path, &a, NULL, "/model/ln.weight holds nan at element 3");

    // a parameter created but never written (HDF5 would read zeros)
    path = test_path(dir, "unwritten.h5");
    assert_int_equal(ckpt_save(path, &a, NULL, NULL, &e), ERR_OK);
    hid_t uf = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(H5Ldelete(uf, "/model/ln.weight", H5P_DEFAULT) >= 0);
    hsize_t un = (hsize_t)a.table.p[2].numel;
    hid_t us = H5Screate_simple(1, &un, NULL);
    hid_t ud = H5Dcreate2(uf, "/model/ln.weight", H5T_NATIVE_FLOAT, us, H5P_DEFAULT, H5P_DEFAULT,
                          H5P_DEFAULT);
    assert_true(ud >= 0);
    H5Dclose(ud), H5Sclose(us), H5Fclose(uf);
    expect_load_refused(path, &a, NULL, "/model/ln.weight is not all in the file: 0 of its");

    // a wrong format_version
    path = test_path(dir, "v2.h5");
    assert_int_equal(ckpt_save(path, &a, NULL, NULL, &e), ERR_OK);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t at = H5Aopen(f, "format_version", H5P_DEFAULT);
    int64_t v2 = 2;
    assert_true(H5Awrite(at, H5T_NATIVE_INT64, &v2) >= 0);
    H5Aclose(at);
    H5Fclose(f);
    expect_load_refused(path, &a, NULL, "format_version is 2");
    CkptMeta meta;
    assert_int_equal(ckpt_read_meta(path, &meta, &e), ERR_INPUT);
    assert_null(meta.config_text);
    model_free(&n);
    model_free(&a);
}

static void test_refuses_wrong_optimizer_state(void **state) {
    (void)state;
    const char *path = test_path(dir, "opt.h5"), *plain = test_path(dir, "noopt.h5");
    Model a, b;
    build(&a, 8, 1, 0);
    build(&b, 8, 1, 0);
    fill(a.params, a.table.n_trainable, 0.0f);
    fill(b.params, b.table.n_trainable, 9.0f);
    Optim adamw, sgd, adam;
    fill_optim(&adamw, OPTIM_ADAMW, a.table.n_trainable);
    fill_optim(&sgd, OPTIM_SGD, b.table.n_trainable);
    fill_optim(&adam, OPTIM_ADAM, b.table.n_trainable);
    fill(sgd.m, sgd.n, 3.0f);
    sgd.step = 99;
    Err e = {0};
    assert_int_equal(ckpt_save(path, &a, &adamw, NULL, &e), ERR_OK);
    expect_load_refused(path, &b, &sgd, "checkpoint holds adamw state but the config asks for sgd");
    expect_load_refused(path, &b, &adam, "checkpoint holds adamw state but the config asks for adam");

    assert_int_equal(ckpt_save(plain, &a, NULL, NULL, &e), ERR_OK);
    expect_load_refused(plain, &b, &sgd, "/optim is missing");

    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(H5Ldelete(f, "/optim/head.bias.exp_avg_sq", H5P_DEFAULT) >= 0);
    H5Fclose(f);
    optim_free(&adam);
    fill_optim(&adam, OPTIM_ADAMW, b.table.n_trainable);  // the right kind now
    expect_load_refused(path, &b, &adam, "/optim/head.bias.exp_avg_sq is missing");
    optim_free(&adamw);
    optim_free(&sgd);
    optim_free(&adam);
    model_free(&a);
    model_free(&b);
}

// Saving a to path must fail with ERR_RUNTIME naming path and the OS's reason, and leave
// no temporary file.
static void expect_save_failed(const char *path, const Model *a, const char *reason) {
    Err e = {0};
    int rc = ckpt_save(path, a, NULL, NULL, &e);
    if (rc != ERR_RUNTIME) fail_msg("%s: expected ERR_RUNTIME, got %d (%s)", path, rc, e.msg);
    if (!strstr(e.msg, path) || !strstr(e.msg, reason))
        fail_msg("message '%s' lacks '%s' or '%s'", e.msg, path, reason);
    assert_no_temp_files(dir);
}

static void test_failed_saves(void **state) {
    (void)state;
    Model a, big, b;
    build(&a, 8, 1, 0);
    build(&big, 512, 1, 0);
    build(&b, 8, 1, 0);
    fill(a.params, a.table.n_trainable, 0.5f);
    fill(big.params, big.table.n_trainable, -0.5f);
    expect_save_failed(test_path(dir, "no/such/dir/c.h5"), &a, "No such file or directory");
    expect_save_failed(dir, &a, "Is a directory");

    // A good checkpoint, then a save that runs out of room half way.
    const char *path = test_path(dir, "last.h5");
    Err e = {0};
    CkptMeta meta = sample_meta();
    assert_int_equal(ckpt_save(path, &a, NULL, &meta, &e), ERR_OK);
    size_t len = 0;
    char *before = test_read_file(path, &len);
    assert_true(len < 16384);
    DiskFull full;
    disk_full_begin(&full, 16384);  // big's parameters need ~40 KB
    int rc = ckpt_save(path, &big, NULL, &meta, &e);
    disk_full_end(&full);
    if (rc != ERR_RUNTIME) fail_msg("expected ERR_RUNTIME, got %d (%s)", rc, e.msg);
    if (!strstr(e.msg, path) || !strstr(e.msg, "File too large"))
        fail_msg("message '%s' lacks the path or 'File too large'", e.msg);
    assert_no_temp_files(dir);
    assert_no_open_hdf5();
    size_t len2 = 0;
    char *after = test_read_file(path, &len2);
    assert_int_equal(len, len2);
    assert_memory_equal(before, after, len);
    free(before);
    free(after);
    CkptMeta got = {0};
    assert_int_equal(ckpt_load(path, &b, NULL, &got, &e), ERR_OK);
    assert_memory_equal(a.params, b.params, a.table.n_trainable * sizeof(float));
    assert_int_equal(got.step, meta.step);
    ckpt_meta_free(&got);
    model_free(&a);
    model_free(&big);
    model_free(&b);
}

// meta.prep is saved as /preprocessing and ckpt_read_meta gives it back; a checkpoint
// without the group (an older one: the group deleted) still loads, with has_prep 0.
static void test_preprocessing_record(void **state) {
    (void)state;
    const char *path = test_path(dir, "prep.h5");
    Model a, b;
    build(&a, 8, 0, 0);
    build(&b, 8, 0, 0);
    fill(a.params, a.table.n_trainable, 0.3f);
    Preprocess p;
    prep_init(&p, (Shape){3, {1, 4, 4}}, 16);
    snprintf(p.source, sizeof p.source, "images");
    snprintf(p.channel_order, sizeof p.channel_order, "L");
    snprintf(p.resize, sizeof p.resize, "lanczos3");
    p.nchan = 1, p.mean[0] = 0.2860f, p.std[0] = 0.3530f;
    char *names[3] = {"cat", "dog, big", "emu"};
    p.classes = names;
    p.num_classes = 3;
    CkptMeta meta = sample_meta(), got = {0};
    meta.prep = &p;
    Err e = {0};
    assert_int_equal(ckpt_save(path, &a, NULL, &meta, &e), ERR_OK);
    assert_int_equal(ckpt_read_meta(path, &got, &e), ERR_OK);
    assert_meta_equal(&meta, &got);
    assert_int_equal(got.has_prep, 1);
    const Preprocess *q = &got.stored_prep;
    assert_string_equal(q->source, "images");
    assert_string_equal(q->channel_order, "L");
    assert_string_equal(q->resize, "lanczos3");
    assert_string_equal(q->convert, "none");
    assert_int_equal(q->bit_depth, 16);
    assert_int_equal(q->input.ndim, 3);
    assert_int_equal(q->input.d[1], 4);
    assert_true(prep_same_norm(q, &p));
    assert_int_equal(q->num_classes, 3);
    assert_string_equal(q->classes[1], "dog, big");
    ckpt_meta_free(&got);
    assert_null(got.stored_prep.classes);
    assert_int_equal(got.has_prep, 0);
    // ckpt_load (resuming) does not read it: the data supplies it again
    assert_int_equal(ckpt_load(path, &b, NULL, &got, &e), ERR_OK);
    assert_int_equal(got.has_prep, 0);
    assert_memory_equal(a.params, b.params, a.table.n_trainable * sizeof(float));
    ckpt_meta_free(&got);

    // an older checkpoint: no group; it loads, and says it has no record
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    assert_true(H5Ldelete(f, "preprocessing", H5P_DEFAULT) >= 0);
    H5Fclose(f);
    assert_int_equal(ckpt_read_meta(path, &got, &e), ERR_OK);
    assert_int_equal(got.has_prep, 0);
    assert_meta_equal(&meta, &got);
    ckpt_meta_free(&got);
    fill(b.params, b.table.n_trainable, 0.0f);
    assert_int_equal(ckpt_load(path, &b, NULL, NULL, &e), ERR_OK);
    assert_memory_equal(a.params, b.params, a.table.n_trainable * sizeof(float));

    // a damaged record is bad input naming it
    f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t g = H5Gcreate2(f, "preprocessing", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Gclose(g);
    H5Fclose(f);
    assert_int_equal(ckpt_read_meta(path, &got, &e), ERR_INPUT);
    assert_non_null(strstr(e.msg, path));
    assert_non_null(strstr(e.msg, "/preprocessing attribute"));
    assert_null(got.config_text);
    model_free(&a);
    model_free(&b);
    assert_no_open_hdf5();
}

int main(void) {
    dir = test_tmpdir("test_checkpoint");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_adam_adamw),
        cmocka_unit_test(test_roundtrip_sgd),
        cmocka_unit_test(test_model_order_in_hdf5),
        cmocka_unit_test(test_buffers_and_int64_counter),
        cmocka_unit_test(test_refuses_mismatched_models),
        cmocka_unit_test(test_refuses_damaged_files),
        cmocka_unit_test(test_refuses_wrong_optimizer_state),
        cmocka_unit_test(test_failed_saves),
        cmocka_unit_test(test_preprocessing_record),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
