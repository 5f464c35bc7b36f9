// study.h: what other commands need to know about a study's results: the human label of a run
// directory that is one of its points.
#pragma once
#include <stddef.h>

// When run_dir is DIR/points/<id> of a study whose DIR/results.csv has a row for <id> with a
// label ("BatchNorm only, 12 epochs, seed 1"), copies that label into label (n bytes) and
// returns 1; otherwise 0 (not a study point, or a table from before labels).
int study_point_label(const char *run_dir, char *label, size_t n);
