// testutil.h: helpers shared by the cmocka tests: scratch files and running the regdist binary.
#pragma once
#include <stddef.h>

// A fresh scratch directory for this test program: $REGDIST_TEST_TMP/<name>.<pid>
// (or /tmp when unset). Returns a static path.
const char *test_tmpdir(const char *name);
// snprintf into a static rotating buffer: test_path(dir, "x.h5").
const char *test_path(const char *dir, const char *file);

// Path of the built regdist binary ($REGDIST_BIN) and of the source tree ($REGDIST_SOURCE_DIR).
const char *test_regdist_bin(void);
const char *test_source_dir(void);

typedef struct {
    int status;     // exit status, or 128+signal when killed by a signal
    char out[65536];  // stdout (truncated)
    char err[65536];  // stderr (truncated)
} RunResult;

// Runs `regdist args...` (argv NULL-terminated, without the program) and captures it.
// Fails the test (cmocka) if the process cannot be started.
void test_run_regdist(RunResult *r, const char *const *args);
// Same for a shell command line (sh -c).
void test_run_shell(RunResult *r, const char *cmdline);

// Reads a whole file into a malloc'd buffer (NUL-terminated); *len gets its size.
char *test_read_file(const char *path, size_t *len);

// Fails the test unless r exited 0 (showing its stderr).
void test_expect_ok(const RunResult *r);
// Fails the test unless r exited 2 with exactly one line "regdist: ..." on stderr that
// contains needle: how every bad input must end.
void test_expect_bad_input(const RunResult *r, const char *needle);

// In a forked child about to exec regdist or mpiexec: the environment the test helpers give
// their children (under the sanitizers, REGDIST_CHILD_ASAN_OPTIONS as ASAN_OPTIONS).
void test_child_env(void);
