// fuzz_checkpoint.c: the checkpoint reader on arbitrary file bytes: ckpt_read_meta, then the
// config it holds through config_load (what eval and predict do with it), then ckpt_load into
// the fixed model of checkpoint_model.cfg with AdamW state, and once more with SGD state.
// ckpt_load is all or nothing: a failed load must leave the model's parameters untouched.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/model.h"
#include "core/optim.h"
#include "fuzzutil.h"
#include "io/checkpoint.h"
#include "launch/config.h"

static Model model;
static Optim adamw, sgd;
static float *saved;  // the parameters before a load

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    char *text = fuzz_read_source("tests/fuzz/checkpoint_model.cfg");
    Config c;
    Err e = {0};
    if (config_load(&c, "checkpoint_model.cfg", text, NULL, 0, &e) ||
        model_build(&model, c.layers, c.nlayers, c.input, 3, &e))
        fuzz_fail("checkpoint_model.cfg", e.msg);
    model_init(&model, 1);
    OptimConfig oc = c.optim;
    if (optim_init(&adamw, &oc, model.table.n_trainable)) fuzz_fail("optim_init", "adamw");
    oc.kind = OPTIM_SGD;
    oc.momentum = 0.9f;
    if (optim_init(&sgd, &oc, model.table.n_trainable)) fuzz_fail("optim_init", "sgd");
    saved = malloc(model.table.n_trainable * sizeof *saved);
    if (!saved) fuzz_fail("out of memory", "saved parameters");
    config_free(&c);
    free(text);
    return 0;
}

static void load(const char *path, Optim *o, CkptMeta *meta) {
    Err e = {0};
    memcpy(saved, model.params, model.table.n_trainable * sizeof *saved);
    if (ckpt_load(path, &model, o, meta, &e) == ERR_OK) {
        if (meta) ckpt_meta_free(meta);
    } else if (memcmp(saved, model.params, model.table.n_trainable * sizeof *saved) != 0) {
        fuzz_fail("a failed ckpt_load changed the model", e.msg);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_input_file(data, size);
    CkptMeta meta;
    Err e = {0};
    if (ckpt_read_meta(path, &meta, &e) == ERR_OK) {
        Config c;
        if (config_load(&c, path, meta.config_text, NULL, 0, &e) == ERR_OK) config_free(&c);
        ckpt_meta_free(&meta);
    }
    load(path, &adamw, &meta);
    load(path, &sgd, NULL);
    return 0;
}
