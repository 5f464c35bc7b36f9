// runutil.c: tests' helpers for whole runs (runutil.h).
#include "runutil.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

void loaded_run_open(LoadedRun *l, const char *path, Shape in) {
    Err e = {0};
    memset(l, 0, sizeof *l);
    if (ckpt_read_meta(path, &l->meta, &e)) fail_msg("%s: %s", path, e.msg);
    Config c;
    if (config_load(&c, path, l->meta.config_text, NULL, 0, &e)) fail_msg("%s", e.msg);
    if (model_build(&l->m, c.layers, c.nlayers, in, 10, &e)) fail_msg("%s", e.msg);
    assert_int_equal(optim_init(&l->o, &c.optim, l->m.table.n_trainable), 0);
    if (ckpt_load(path, &l->m, &l->o, NULL, &e)) fail_msg("%s: %s", path, e.msg);
    config_free(&c);
}

void loaded_run_free(LoadedRun *l) {
    model_free(&l->m);
    optim_free(&l->o);
    ckpt_meta_free(&l->meta);
}

void loaded_run_config(Config *c, const char *path) {
    CkptMeta m = {0};
    Err e = {0};
    if (ckpt_read_meta(path, &m, &e)) fail_msg("%s: %s", path, e.msg);
    if (config_load(c, path, m.config_text, NULL, 0, &e)) fail_msg("%s", e.msg);
    ckpt_meta_free(&m);
}
