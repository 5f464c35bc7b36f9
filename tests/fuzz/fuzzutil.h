// fuzzutil.h: what the fuzz targets share: the input as a file that io/ can open by path,
// and the source tree's files that targets read once at start-up.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "launch/config.h"

// Where scratch files go: $TMPDIR, or /tmp.
const char *fuzz_tmpdir(void);

// Replaces the contents of this process's scratch file, <tmpdir>/regdist-fuzz-<pid>.in
// (removed at a normal exit; parallel fuzzers never share one), with data and returns its
// path. Not a memfd: HDF5 resolves /proc/self/fd/N to its target's real path, which a memfd
// lacks. Aborts if the file cannot be written: that is no finding.
const char *fuzz_input_file(const uint8_t *data, size_t size);

// The whole of <source dir>/rel as a NUL-terminated string (malloc'd); aborts if missing.
char *fuzz_read_source(const char *rel);

// data as a NUL-terminated string (malloc'd): text parsers stop at the first NUL anyway.
char *fuzz_strndup(const uint8_t *data, size_t size);

// Prints "fuzz: <what>: <msg>" and aborts: an invariant the code under test broke.
_Noreturn void fuzz_fail(const char *what, const char *msg);

// A config that loaded must load again from the text it produces (c->text): that text is what
// a checkpoint keeps and what eval and predict rebuild the model from. Frees c.
void fuzz_config_round_trip(Config *c);
