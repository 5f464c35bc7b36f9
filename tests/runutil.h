// runutil.h: what tests of whole runs share: a run's checkpoint loaded back into a model and
// optimizer built from the config text it carries. Links io/ and launch/ (not for test_core_*).
#pragma once
#include "core/model.h"
#include "core/optim.h"
#include "io/checkpoint.h"
#include "launch/config.h"

typedef struct {
    Model m;
    Optim o;
    CkptMeta meta;
} LoadedRun;

// Loads checkpoint path into l: its metadata, a model for samples of shape `in` and 10
// classes, its optimizer state. Fails the test on any error.
void loaded_run_open(LoadedRun *l, const char *path, Shape in);
void loaded_run_free(LoadedRun *l);

// The config a checkpoint carries, into c (config_free it). Fails the test on any error.
void loaded_run_config(Config *c, const char *path);
