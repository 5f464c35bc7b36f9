// test_metrics.c: io/metrics: the CSV's exact header and row format, empty val columns
// without a validation split, and resume keeping only the epochs before the restart.
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "io/metrics.h"
#include "testutil.h"

static const char *dir;

#define HEADER "epoch,step,lr,train_loss,train_acc,val_loss,val_acc,seconds,images_per_s\n"

static MetricsRow row(int64_t epoch, double val) {
    return (MetricsRow){.epoch = epoch, .step = 100 * (epoch + 1), .lr = 0.001,
                        .train_loss = 0.5 / (epoch + 1), .train_acc = 0.75, .val_loss = val,
                        .val_acc = isnan(val) ? val : 0.8125, .seconds = 2.25,
                        .images_per_s = 12345.6};
}

static int put(FILE *f, int64_t epoch, double val, Err *e) {
    MetricsRow r = row(epoch, val);
    return metrics_write(f, &r, e);
}

static void assert_file(const char *path, const char *want) {
    char *got = test_read_file(path, NULL);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static void write_rows(FILE *f, int from, int to) {
    Err e = {0};
    for (int ep = from; ep < to; ep++) assert_int_equal(put(f, ep, 0.4, &e), ERR_OK);
}

#define ROW0 "0,100,0.001,0.500000,0.750000,0.400000,0.812500,2.250,12345.6\n"
#define ROW1 "1,200,0.001,0.250000,0.750000,0.400000,0.812500,2.250,12345.6\n"
#define ROW2 "2,300,0.001,0.166667,0.750000,0.400000,0.812500,2.250,12345.6\n"

static void test_format(void **state) {
    (void)state;
    const char *path = test_path(dir, "m.csv");
    Err e = {0};
    FILE *f = metrics_open(path, 0, &e);
    assert_non_null(f);
    assert_file(path, HEADER);  // header on disk before any row
    write_rows(f, 0, 1);
    assert_file(path, HEADER ROW0);  // flushed after each row, no fclose needed
    assert_int_equal(put(f, 1, NAN, &e), ERR_OK);
    fclose(f);
    assert_file(path, HEADER ROW0 "1,200,0.001,0.250000,0.750000,,,2.250,12345.6\n");
}

static void test_resume_keeps_earlier_epochs(void **state) {
    (void)state;
    const char *path = test_path(dir, "r.csv");
    Err e = {0};
    FILE *f = metrics_open(path, 0, &e);
    write_rows(f, 0, 3);
    fclose(f);
    // resuming in epoch 2: rows 0 and 1 stay, 2 is redone
    f = metrics_open(path, 2, &e);
    assert_non_null(f);
    assert_file(path, HEADER ROW0 ROW1);
    write_rows(f, 2, 3);
    fclose(f);
    assert_file(path, HEADER ROW0 ROW1 ROW2);
    // resuming past the end keeps everything; starting afresh keeps nothing
    f = metrics_open(path, 9, &e);
    fclose(f);
    assert_file(path, HEADER ROW0 ROW1 ROW2);
    f = metrics_open(path, 0, &e);
    fclose(f);
    assert_file(path, HEADER);
    // resuming with no file yet, or an empty one, starts with the header
    const char *fresh = test_path(dir, "fresh.csv");
    f = metrics_open(fresh, 3, &e);
    assert_non_null(f);
    fclose(f);
    assert_file(fresh, HEADER);
    f = fopen(fresh, "w");
    fclose(f);
    f = metrics_open(fresh, 3, &e);
    fclose(f);
    assert_file(fresh, HEADER);
}

static void test_unwritable(void **state) {
    (void)state;
    Err e = {0};
    const char *path = test_path(dir, "no/such/dir/m.csv");
    assert_null(metrics_open(path, 0, &e));
    assert_int_equal(e.code, ERR_RUNTIME);
    assert_non_null(strstr(e.msg, path));
    assert_non_null(strstr(e.msg, "No such file or directory"));
    FILE *full = fopen("/dev/full", "w");
    if (full) {
        setvbuf(full, NULL, _IONBF, 0);
        assert_int_equal(put(full, 0, 0.4, &e), ERR_RUNTIME);
        assert_non_null(strstr(e.msg, "No space left on device"));
        fclose(full);
    }
}

int main(void) {
    dir = test_tmpdir("test_metrics");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_resume_keeps_earlier_epochs),
        cmocka_unit_test(test_unwritable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
