// test_cli_surface.c: the command line's surface as a user meets it: usage on a bare call,
// the same help through `help CMD`, `CMD --help` and `CMD -h`, --version naming the libraries,
// progress lines that redraw on a terminal and stay plain in a file (also under mpiexec, whose
// ranks always get a pseudo-terminal), the run's ETA, and --out problems as bad input.
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pty.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "launch/progress.h"
#include "testutil.h"

static const char *dir;
static char data[1024], config[1024], mpiexec[1024];

static int setup(void **state) {
    (void)state;
    dir = test_tmpdir("cli_surface");
    snprintf(data, sizeof data, "%s", test_path(dir, "synth.h5"));
    snprintf(config, sizeof config, "%s/launch/configs/mlp.cfg", test_source_dir());
    const char *m = getenv("REGDIST_MPIEXEC");
    snprintf(mpiexec, sizeof mpiexec, "%s", m && *m ? m : "mpiexec");
    RunResult r;
    test_run_regdist(&r, (const char *[]){"data", "synth", "--out", data, "--train", "600",
                                          "--val", "100", "--test", "100", "--seed", "3",
                                          NULL});
    if (r.status != 0) fail_msg("data synth failed: %s", r.err);
    return 0;
}

// A bare call is a missing command: the usage on stderr, nothing on stdout, exit 2.
static void test_bare_call_prints_usage(void **state) {
    (void)state;
    RunResult r;
    test_run_regdist(&r, (const char *[]){NULL});
    assert_int_equal(r.status, 2);
    assert_string_equal(r.out, "");
    assert_non_null(strstr(r.err, "usage: regdist <command>"));
    assert_non_null(strstr(r.err, "  train "));
    assert_non_null(strstr(r.err, "--version"));
    // an unknown command stays one line
    test_run_regdist(&r, (const char *[]){"trian", NULL});
    test_expect_bad_input(&r, "unknown command 'trian'");
    test_run_regdist(&r, (const char *[]){"help", "trian", NULL});
    test_expect_bad_input(&r, "unknown command 'trian'");
}

// `regdist help CMD [SUB]`, `CMD [SUB] --help` and `CMD [SUB] -h` print the same text.
static void expect_same_help(const char *const *help, const char *const *dashdash,
                             const char *const *dash, const char *needle) {
    static RunResult a, b, c;
    test_run_regdist(&a, help);
    test_run_regdist(&b, dashdash);
    test_run_regdist(&c, dash);
    test_expect_ok(&a);
    test_expect_ok(&b);
    test_expect_ok(&c);
    assert_non_null(strstr(a.out, needle));
    assert_string_equal(a.out, b.out);
    assert_string_equal(a.out, c.out);
}

static void test_help_everywhere(void **state) {
    (void)state;
    expect_same_help((const char *[]){"help", "train", NULL},
                     (const char *[]){"train", "--help", NULL},
                     (const char *[]){"train", "-h", NULL}, "usage: regdist train");
    expect_same_help((const char *[]){"help", "plot", NULL},
                     (const char *[]){"plot", "--help", NULL},
                     (const char *[]){"plot", "--out", "x.svg", "-h", NULL}, "usage: regdist plot");
    expect_same_help((const char *[]){"help", "data", "synth", NULL},
                     (const char *[]){"data", "synth", "--help", NULL},
                     (const char *[]){"data", "synth", "-h", NULL}, "regdist data synth");
    const char *cmds[] = {"eval", "predict", "bench", "study"};
    for (int i = 0; i < 4; i++) {
        char needle[64];
        snprintf(needle, sizeof needle, "regdist %s", cmds[i]);
        expect_same_help((const char *[]){"help", cmds[i], NULL},
                         (const char *[]){cmds[i], "--help", NULL},
                         (const char *[]){cmds[i], "-h", NULL}, needle);
    }
    // the top level: help, --help, -h
    expect_same_help((const char *[]){"help", NULL}, (const char *[]){"--help", NULL},
                     (const char *[]){"-h", NULL}, "usage: regdist <command>");
    // "-h" right after an option that takes a value is that value, not a request for help:
    // here the title, so plot goes on to complain about the missing run
    RunResult r;
    test_run_regdist(&r, (const char *[]){"plot", "--out", "x.svg", "--title", "-h", NULL});
    test_expect_bad_input(&r, "give at least one run directory");
}

static void test_version(void **state) {
    (void)state;
    RunResult r, v;
    test_run_regdist(&r, (const char *[]){"--version", NULL});
    test_expect_ok(&r);
    assert_true(strncmp(r.out, "regdist ", 8) == 0);
    assert_non_null(strstr(r.out, "(git "));
    assert_non_null(strstr(r.out, "OpenBLAS"));
    assert_non_null(strstr(r.out, " kernels)"));
    assert_non_null(strstr(r.out, "MPI:  Open MPI v"));
    assert_non_null(strstr(r.out, "HDF5: 1."));
    test_run_regdist(&v, (const char *[]){"version", NULL});
    test_expect_ok(&v);
    assert_string_equal(r.out, v.out);
}

// No carriage return, no erase-line sequence: a log gets plain lines, and some of them.
static void expect_plain_log(const char *log) {
    assert_non_null(log);
    if (strchr(log, '\r') || strstr(log, "\033[K"))
        fail_msg("redraws in a file:\n%s", log);
    assert_non_null(strstr(log, "epoch 1/2  step 5/10"));  // the quarter-epoch lines
    assert_non_null(strstr(log, "ETA "));
}

static void train_to_file(int np, const char *name) {
    char cmd[8192];
    const char *log = test_path(dir, name);
    snprintf(cmd, sizeof cmd,
             "%s%s%s'%s' train --config '%s' --data '%s' --out '%s.run' --set train.epochs=2 "
             "--set train.batch=64 > '%s'",
             np ? "'" : "", np ? mpiexec : "", np ? "' -n 2 " : "", test_regdist_bin(), config,
             data, test_path(dir, name), log);
    RunResult r;
    test_run_shell(&r, cmd);
    test_expect_ok(&r);
    char *text = test_read_file(log, NULL);
    expect_plain_log(text);
    free(text);
}

static void test_log_file_gets_plain_lines(void **state) {
    (void)state;
    train_to_file(0, "single.log");
}

static void test_log_file_gets_plain_lines_under_mpiexec(void **state) {
    (void)state;
    train_to_file(2, "mpi.log");
}

// Runs argv on a pseudo-terminal (as a user at a terminal would) and returns what it printed.
static char *run_on_terminal(char *const *argv, int *status) {
    int master;
    fflush(NULL);
    pid_t pid = forkpty(&master, NULL, NULL, NULL);
    if (pid < 0) fail_msg("forkpty: %s", strerror(errno));
    if (pid == 0) {
        test_child_env();
        execvp(argv[0], argv);
        _exit(127);
    }
    size_t cap = 1 << 16, n = 0;
    char *out = malloc(cap + 1);
    for (;;) {
        if (n == cap) out = realloc(out, (cap *= 2) + 1);
        ssize_t k = read(master, out + n, cap - n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;  // EIO once every process on the terminal has closed it
        n += (size_t)k;
    }
    out[n] = 0;
    close(master);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return out;
}

// On a terminal the line is redrawn in place, with one process and under mpiexec alike.
static void test_terminal_gets_redraws(void **state) {
    (void)state;
    for (int np = 0; np <= 2; np += 2) {
        char out[1100];
        snprintf(out, sizeof out, "%s", test_path(dir, np ? "tty_mpi.run" : "tty_single.run"));
        char *train[] = {(char *)test_regdist_bin(), "train", "--config", config, "--data", data,
                         "--out", out, "--set", "train.epochs=2", "--set", "train.batch=64",
                         NULL};
        char *mpi[] = {mpiexec, "-n", "2", (char *)test_regdist_bin(), "train", "--config",
                       config, "--data", data, "--out", out, "--set", "train.epochs=2",
                       "--set", "train.batch=64", NULL};
        int status;
        char *text = run_on_terminal(np ? mpi : train, &status);
        if (status != 0) fail_msg("exit %d:\n%s", status, text);
        if (!strstr(text, "\033[K")) fail_msg("no redraw on a terminal (np %d):\n%s", np, text);
        assert_non_null(strstr(text, "\repoch 1/2 ["));
        free(text);
    }
}

// Runs the progress line into a file; returns what it wrote.
static char *progress_to_file(const char *name, int64_t run_step, int64_t run_steps) {
    const char *path = test_path(dir, name);
    fflush(stdout);
    int saved = dup(STDOUT_FILENO), fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, STDOUT_FILENO);
    close(fd);
    assert_false(progress_is_terminal(STDOUT_FILENO));
    Progress p;
    if (run_steps < 0) progress_begin(&p, 1, "epoch 3/10", 8, 0);
    else progress_begin_run(&p, 1, "epoch 3/10", 8, 0, run_step, run_steps);
    for (int64_t s = 1; s <= 8; s++) progress_update(&p, s, 1.5, 100);
    progress_end(&p);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    return test_read_file(path, NULL);
}

// The ETA covers the whole run when the run goes on after the epoch.
static void test_progress_eta_covers_the_run(void **state) {
    (void)state;
    char *run = progress_to_file("run.txt", 16, 80);
    assert_non_null(run);
    assert_non_null(strstr(run, "epoch 3/10  step 2/8  loss 1.5000  100 img/s  ETA "));
    assert_non_null(strstr(run, " (epoch "));  // the run's ETA first, the epoch's after it
    assert_null(strchr(run, '\r'));
    // three lines: a quarter, a half and three quarters through the epoch
    int lines = 0;
    for (const char *c = run; *c; c++) lines += *c == '\n';
    assert_int_equal(lines, 3);
    free(run);
    // the epoch is the whole run, or the last epoch of it: one ETA
    char *alone = progress_to_file("alone.txt", 0, -1);
    assert_non_null(strstr(alone, "ETA "));
    assert_null(strstr(alone, "(epoch "));
    free(alone);
    char *last = progress_to_file("last.txt", 72, 80);
    assert_null(strstr(last, "(epoch "));
    free(last);
    // a step limit ends the run inside the epoch: the ETA is the run's, nothing left after it
    char *cut = progress_to_file("cut.txt", 0, 4);
    assert_null(strstr(cut, "(epoch "));
    assert_non_null(strstr(cut, "step 6/8  loss 1.5000  100 img/s  ETA 0:00\n"));
    free(cut);
}

// An --out the user must fix is bad input (exit 2), before any work; nothing is written.
static void test_plot_out_problems_are_bad_input(void **state) {
    (void)state;
    char run[1100];
    snprintf(run, sizeof run, "%s", test_path(dir, "plotrun"));
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "mkdir -p '%s' && printf 'epoch,step,lr,train_loss,train_acc,val_loss,val_acc,"
             "seconds,images_per_s\\n1,10,0.001,2.1,0.4,1.9,0.45,1.0,500.0\\n' > '%s/metrics.csv'",
             run, run);
    RunResult r;
    test_run_shell(&r, cmd);
    test_expect_ok(&r);
    test_run_regdist(&r, (const char *[]){"plot", "--out", test_path(dir, "no/dir/f.svg"), run,
                                          NULL});
    test_expect_bad_input(&r, "no/dir/f.svg: no directory");
    test_run_regdist(&r, (const char *[]){"plot", "--out", test_path(run, "metrics.csv/f.svg"),
                                          run, NULL});
    test_expect_bad_input(&r, "is not a directory");
    test_run_regdist(&r, (const char *[]){"plot", "--out", run, run, NULL});
    test_expect_bad_input(&r, "is a directory; give a file name");
    test_run_regdist(&r, (const char *[]){"plot", "--out", test_path(dir, "ok.svg"), run, NULL});
    test_expect_ok(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bare_call_prints_usage),
        cmocka_unit_test(test_help_everywhere),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_log_file_gets_plain_lines),
        cmocka_unit_test(test_log_file_gets_plain_lines_under_mpiexec),
        cmocka_unit_test(test_terminal_gets_redraws),
        cmocka_unit_test(test_progress_eta_covers_the_run),
        cmocka_unit_test(test_plot_out_problems_are_bad_input),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
