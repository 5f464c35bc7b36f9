// test_watchdog.c: the collective-stall watchdog (dist/watchdog.h) without MPI: each case runs
// in a forked child (the watchdog ends its process) whose stderr the parent reads. A wait past
// the timeout ends the process with exit 1 and exactly one line naming rank, wait and step;
// waits that each stay under the timeout, time outside any collective, and timeout 0 never do.
// The end-to-end case (a SIGSTOPped rank under mpiexec) is in test_dist_train.c.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "dist/watchdog.h"

typedef struct {
    int status;  // exit code, or 128 + signal
    double seconds;
    char err[4096];
} Child;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// Runs body(arg) in a child as rank 1 of 2 and collects its exit and stderr.
static void run_child(Child *c, void (*body)(const Dist *)) {
    int fd[2];
    assert_int_equal(pipe(fd), 0);
    double t0 = now();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fd[0]);
        dup2(fd[1], STDERR_FILENO);
        Dist d = {.rank = 1, .world = 2};
        body(&d);
        _exit(0);
    }
    close(fd[1]);
    size_t len = 0;
    ssize_t k;
    while ((k = read(fd[0], c->err + len, sizeof c->err - 1 - len)) > 0) len += (size_t)k;
    c->err[len] = 0;
    close(fd[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    c->seconds = now() - t0;
    c->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void stall_in_bn(const Dist *d) {
    assert_int_equal(watchdog_start(d, 0.2), 0);
    watchdog_enter_n("reducing BatchNorm statistics of layer %d", 12, 57);
    sleep(10);  // the watchdog must end this long before
}

static void test_stall_is_reported_once_and_ends_the_process(void **state) {
    (void)state;
    Child c;
    run_child(&c, stall_in_bn);
    assert_int_equal(c.status, 1);
    if (c.seconds > 5) fail_msg("the watchdog took %.1f s for a 0.2 s timeout", c.seconds);
    const char *head = "regdist: rank 1 of 2: stalled for ";
    const char *tail = " s reducing BatchNorm statistics of layer 12 at step 57; another rank "
                       "has stopped or died (dist.timeout = 0.2 s)\n";
    size_t n = strlen(c.err), nt = strlen(tail);
    if (strncmp(c.err, head, strlen(head)) != 0 || n < nt || strcmp(c.err + n - nt, tail) != 0)
        fail_msg("unexpected report: '%s'", c.err);
    assert_ptr_equal(strchr(c.err, '\n'), c.err + n - 1);  // one line
    double waited = atof(c.err + strlen(head));
    assert_true(waited >= 0.2 && waited < 5);
}

static void stall_after_a_step(const Dist *d) {
    assert_int_equal(watchdog_start(d, 0.2), 0);
    watchdog_enter("waiting for the gradient all-reduce", 41);
    watchdog_leave();
    watchdog_enter("summing metrics over the ranks", -1);
    sleep(10);
}

// A collective that does not know the step names the last one that was known.
static void test_unknown_step_names_the_last_known(void **state) {
    (void)state;
    Child c;
    run_child(&c, stall_after_a_step);
    assert_int_equal(c.status, 1);
    if (!strstr(c.err, " s summing metrics over the ranks after step 41; "))
        fail_msg("unexpected report: '%s'", c.err);
}

static void short_waits_and_idle_time(const Dist *d) {
    assert_int_equal(watchdog_start(d, 1.0), 0);
    double t0 = now();
    for (long long i = 0; now() - t0 < 2.5; i++) {  // 2.5 s in collectives, each 20 ms
        watchdog_enter("waiting for the gradient all-reduce", i);
        usleep(20000);
        watchdog_leave();
    }
    usleep(2000000);  // outside any collective: computing, writing a checkpoint
    watchdog_stop();
    watchdog_stop();  // harmless twice
}

static void test_no_report_without_a_stall(void **state) {
    (void)state;
    Child c;
    run_child(&c, short_waits_and_idle_time);
    if (c.status != 0 || c.err[0]) fail_msg("exit %d: '%s'", c.status, c.err);
}

static void stopped_inside(const Dist *d) {
    assert_int_equal(watchdog_start(d, 1.0), 0);
    double t0 = now();
    watchdog_enter("waiting for the gradient all-reduce", 3);
    while (now() - t0 < 3.0) usleep(10000);  // the parent stops us from 0.3 s to 2.5 s
    watchdog_leave();
    watchdog_stop();
}

// A rank that was itself frozen (SIGSTOP, a debugger) does not blame the others on resuming:
// 2.2 s stopped inside a collective, then 0.5 s more, with a 1 s timeout, is no report.
static void test_own_freeze_is_not_a_stall(void **state) {
    (void)state;
    int fd[2];
    assert_int_equal(pipe(fd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fd[0]);
        dup2(fd[1], STDERR_FILENO);
        stopped_inside(&(Dist){.rank = 1, .world = 2});
        _exit(0);
    }
    close(fd[1]);
    usleep(300000);
    kill(pid, SIGSTOP);
    usleep(2200000);
    kill(pid, SIGCONT);
    char err[4096];
    size_t len = 0;
    ssize_t k;
    while ((k = read(fd[0], err + len, sizeof err - 1 - len)) > 0) len += (size_t)k;
    err[len] = 0;
    close(fd[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || len)
        fail_msg("status 0x%x: '%s'", st, err);
}

static void timeout_zero(const Dist *d) {
    assert_int_equal(watchdog_start(d, 0), 0);
    watchdog_enter("waiting for the gradient all-reduce", 1);
    usleep(500000);
    watchdog_leave();
    watchdog_stop();
}

static void test_timeout_zero_never_reports(void **state) {
    (void)state;
    Child c;
    run_child(&c, timeout_zero);
    if (c.status != 0 || c.err[0]) fail_msg("exit %d: '%s'", c.status, c.err);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stall_is_reported_once_and_ends_the_process),
        cmocka_unit_test(test_unknown_step_names_the_last_known),
        cmocka_unit_test(test_no_report_without_a_stall),
        cmocka_unit_test(test_own_freeze_is_not_a_stall),
        cmocka_unit_test(test_timeout_zero_never_reports),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
