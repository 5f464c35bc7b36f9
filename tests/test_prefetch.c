// test_prefetch.c: io/prefetch, the read-ahead thread of streamed training data: every step
// gets exactly its rows (gathering from the step's slot equals gathering from the whole
// split), a read error reaches the consumer at the step that needed the bad rows and not
// before, and stopping early never hangs.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "io/prefetch.h"
#include "testutil.h"

enum { N = 50, PER = 6, STEPS = 7 };
static char dir[1024], path[1100];

static int setup(void **state) {
    (void)state;
    snprintf(dir, sizeof dir, "%s", test_tmpdir("prefetch"));
    snprintf(path, sizeof path, "%s/d.h5", dir);
    uint8_t x[N * PER];
    int32_t y[N];
    for (int i = 0; i < N * PER; i++) x[i] = (uint8_t)(i * 29 + 3);
    for (int i = 0; i < N; i++) y[i] = i % 4;
    DatasetAttrs a = {.num_classes = 4};
    Err e = {0};
    if (dataset_create(path, &a, &e) ||
        dataset_write_split(path, "train", x, 1, y, N, (Shape){3, {1, 2, 3}}, &e))
        fail_msg("%s", e.msg);
    return 0;
}

// STEPS steps of 7 ascending rows each (the last one 4), spread over the split.
static void make_steps(int64_t *rows, int64_t *off) {
    int64_t k = 0;
    for (int s = 0; s < STEPS; s++) {
        off[s] = k;
        int n = s == STEPS - 1 ? 4 : 7;
        for (int i = 0; i < n; i++) rows[k++] = (s * 3 + i * 7) % N;
        // ascending within the step (rows are distinct: 7 coprime to 50 keeps them apart)
        for (int64_t i = off[s] + 1; i < k; i++)
            for (int64_t j = i; j > off[s] && rows[j - 1] > rows[j]; j--) {
                int64_t t = rows[j];
                rows[j] = rows[j - 1];
                rows[j - 1] = t;
            }
    }
    off[STEPS] = k;
}

static void assert_step_rows(const Dataset *whole, const Dataset *got, const int64_t *rows,
                             int n) {
    float a[7 * PER], b[7 * PER];
    int32_t ya[7], yb[7];
    assert_int_equal(got->nloaded, n);
    dataset_gather(whole, rows, n, a, ya);
    dataset_gather(got, rows, n, b, yb);
    assert_memory_equal(a, b, sizeof(float) * (size_t)n * PER);
    assert_memory_equal(ya, yb, sizeof(int32_t) * (size_t)n);
}

static void test_every_step_gets_its_rows(void **state) {
    (void)state;
    int64_t rows[64], off[STEPS + 1];
    make_steps(rows, off);
    Dataset whole = {0};
    Err e = {0};
    assert_int_equal(dataset_load(&whole, path, "train", 0, &e), ERR_OK);
    // from step 0, and resumed from step 3 (a mid-epoch checkpoint)
    for (int first = 0; first <= 3; first += 3) {
        Prefetch p;
        assert_int_equal(prefetch_start(&p, path, "train", 0, rows, off, first, STEPS, &e), ERR_OK);
        for (int s = first; s < STEPS; s++) {
            const Dataset *d = prefetch_next(&p, &e);
            if (!d) fail_msg("step %d: %s", s, e.msg);
            assert_step_rows(&whole, d, rows + off[s], (int)(off[s + 1] - off[s]));
        }
        // past the end: an error, not a hang
        assert_null(prefetch_next(&p, &e));
        prefetch_stop(&p);
        prefetch_stop(&p);  // twice is harmless
    }
    dataset_free(&whole);
}

// Step 4 asks for a row past the split's end (a caller's bug): steps 0..3 arrive intact,
// step 4 gets the loader's message naming the file.
static void test_read_error_reaches_the_step(void **state) {
    (void)state;
    int64_t rows[64], off[STEPS + 1];
    make_steps(rows, off);
    rows[off[5] - 1] = N + 10;  // the last row of step 4
    Prefetch p;
    Err e = {0};
    assert_int_equal(prefetch_start(&p, path, "train", 0, rows, off, 0, STEPS, &e), ERR_OK);
    for (int s = 0; s < 4; s++) assert_non_null(prefetch_next(&p, &e));
    assert_null(prefetch_next(&p, &e));
    assert_int_equal(e.code, ERR_RUNTIME);
    assert_non_null(strstr(e.msg, path));
    prefetch_stop(&p);
}

// The file is replaced by garbage after step 1 was handed out (as a failing disk or a user
// overwriting it would): the thread has read at most two steps ahead, so step 4 at the latest
// gets ERR_INPUT naming the file, and nothing crashes.
static void test_damaged_file_mid_epoch(void **state) {
    (void)state;
    int64_t rows[64], off[STEPS + 1];
    make_steps(rows, off);
    char copy[1100], junk[1100], cmd[2400];
    snprintf(copy, sizeof copy, "%s/copy.h5", dir);
    snprintf(junk, sizeof junk, "%s/junk", dir);
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", path, copy);
    assert_int_equal(system(cmd), 0);
    Prefetch p;
    Err e = {0};
    assert_int_equal(prefetch_start(&p, copy, "train", 0, rows, off, 0, STEPS, &e), ERR_OK);
    assert_non_null(prefetch_next(&p, &e));
    assert_non_null(prefetch_next(&p, &e));
    FILE *f = fopen(junk, "w");
    assert_non_null(f);
    fputs("not an HDF5 file\n", f);
    fclose(f);
    assert_int_equal(rename(junk, copy), 0);
    int s = 2;
    while (s < STEPS && prefetch_next(&p, &e)) s++;
    if (s > 4) fail_msg("steps read after the file was damaged: up to %d", s - 1);
    assert_int_equal(e.code, ERR_INPUT);
    assert_non_null(strstr(e.msg, copy));
    prefetch_stop(&p);
}

// Stopping after one step, and before any: the thread is joined, nothing leaks.
static void test_stop_early(void **state) {
    (void)state;
    int64_t rows[64], off[STEPS + 1];
    make_steps(rows, off);
    Err e = {0};
    for (int take = 0; take < 2; take++) {
        Prefetch p;
        assert_int_equal(prefetch_start(&p, path, "train", 0, rows, off, 0, STEPS, &e), ERR_OK);
        if (take) assert_non_null(prefetch_next(&p, &e));
        prefetch_stop(&p);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_step_gets_its_rows),
        cmocka_unit_test(test_read_error_reaches_the_step),
        cmocka_unit_test(test_damaged_file_mid_epoch),
        cmocka_unit_test(test_stop_early),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
