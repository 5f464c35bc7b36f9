// test_faults.c: what regdist does when things go wrong during training, as a user meets it:
// - SIGTERM or SIGUSR1 at a random step: one checkpoint, exit 0, a message saying how to
//   resume; the resumed run ends bit-identical to an uninterrupted one (repeated at several
//   random steps, on 1 rank and on 2 under mpiexec, which forwards SIGUSR1);
// - a second signal: the process ends at once;
// - a NaN in the gradient: stop naming the step and the last good checkpoint, or skip the
//   step and count it (train.nonfinite = skip);
// - a full disk (a file-size limit) or a vanished output directory at checkpoint time: a
//   clear error, and the checkpoint already on disk stays intact and loadable.
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "io/checkpoint.h"
#include "launch/config.h"
#include "runutil.h"
#include "testutil.h"

static char dir[1024], data[1100], config[1100], mpiexec[1024];

// 4000 samples at batch 16: 250 steps an epoch, two epochs, about a second each.
#define COMMON "--set train.batch=16 --set train.epochs=2 --set sched.warmup_steps=10"

static int setup(void **state) {
    (void)state;
    snprintf(dir, sizeof dir, "%s", test_tmpdir("faults"));
    snprintf(data, sizeof data, "%s/t12.h5", dir);
    snprintf(config, sizeof config, "%s/tests/configs/tiny_cnn.cfg", test_source_dir());
    const char *m = getenv("REGDIST_MPIEXEC");
    snprintf(mpiexec, sizeof mpiexec, "%s", m && *m ? m : "mpiexec");
    RunResult r;
    test_run_regdist(&r, (const char *[]){"data", "synth", "--out", data, "--shape", "1,12,12",
                                          "--train", "4000", "--val", "60", "--test", "60",
                                          NULL});
    if (r.status) fail_msg("data synth: %s", r.err);
    return 0;
}

// "[mpiexec -n np] regdist train ... --out dir/name extra" as a shell command line.
static void train_cmd(char *cmd, size_t n, int np, const char *name, const char *extra) {
    char launcher[1200] = "";
    if (np > 0) snprintf(launcher, sizeof launcher, "'%s' -n %d ", mpiexec, np);
    snprintf(cmd, n, "%s'%s' train --config '%s' --data '%s' --out '%s/%s' " COMMON " %s",
             launcher, test_regdist_bin(), config, data, dir, name, extra);
}

static void train_sync(RunResult *r, int np, const char *name, const char *extra) {
    char cmd[8192];
    train_cmd(cmd, sizeof cmd, np, name, extra);
    test_run_shell(r, cmd);
}

// Starts the run in the background with its output in dir/name.log; returns the shell's pid
// once the run has printed its header (its signal handlers are installed by then).
static pid_t train_async(int np, const char *name, const char *extra) {
    char cmd[8192], log[1200], line[9500];
    train_cmd(cmd, sizeof cmd, np, name, extra);
    snprintf(log, sizeof log, "%s/%s.log", dir, name);
    unlink(log);
    // exec: the shell becomes mpiexec or regdist, so a signal to this pid reaches it
    snprintf(line, sizeof line, "exec %s > '%s' 2>&1", cmd, log);
    pid_t pid = fork();
    if (pid == 0) {
        test_child_env();
        execl("/bin/sh", "sh", "-c", line, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 600; i++) {
        size_t len;
        char *t = test_read_file(log, &len);
        int ready = t && strstr(t, "parallel:");
        free(t);
        if (ready) return pid;
        usleep(10000);
    }
    kill(pid, SIGKILL);
    fail_msg("%s: no header within 6 s", name);
    return -1;
}

// Waits up to 60 s; a hang fails the test. Returns the exit code, or 128 + signal.
static int wait_exit(pid_t pid) {
    int status = 0;
    for (int i = 0; i < 6000; i++) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    fail_msg("the run did not end within 60 s");
    return -1;
}

static char *run_log(const char *name) {
    char log[1200];
    size_t len;
    snprintf(log, sizeof log, "%s/%s.log", dir, name);
    char *t = test_read_file(log, &len);
    if (!t) fail_msg("%s has no log", name);
    return t;
}

typedef LoadedRun Loaded;

static void load(Loaded *l, const char *path) { loaded_run_open(l, path, (Shape){3, {1, 12, 12}}); }

static void unload(Loaded *l) { loaded_run_free(l); }

static const char *last_of(const char *name) {
    static char path[4][1200];
    static int k;
    k = (k + 1) % 4;
    snprintf(path[k], sizeof path[k], "%s/%s/last.h5", dir, name);
    return path[k];
}

// Parameters, optimizer state, BatchNorm buffers and position: the same bits.
static void assert_same_run(const char *a, const char *b) {
    Loaded x, y;
    load(&x, last_of(a));
    load(&y, last_of(b));
    size_t n = x.m.table.n_trainable;
    assert_int_equal(x.meta.step, y.meta.step);
    assert_int_equal(x.o.step, y.o.step);
    assert_memory_equal(x.m.params, y.m.params, n * sizeof(float));
    assert_memory_equal(x.o.m, y.o.m, n * sizeof(float));
    assert_memory_equal(x.o.v, y.o.v, n * sizeof(float));
    assert_memory_equal(x.m.bufs, y.m.bufs, x.m.table.n_buffer * sizeof(float));
    unload(&x);
    unload(&y);
}

// Whether run's last checkpoint is at the step where the uninterrupted run ref ended.
static int run_ended(const char *ref, const char *run) {
    if (access(last_of(run), F_OK) != 0) return 0;
    Loaded x, y;
    load(&x, last_of(ref));
    load(&y, last_of(run));
    int ended = x.meta.step == y.meta.step;
    unload(&x);
    unload(&y);
    return ended;
}

// Signals at random moments of a run, each followed by a resume, until `want` of them landed
// mid-run; the end must be the uninterrupted run's, bit for bit.
// The delays are uniform over the first half of the reference run's duration, halved after
// every signal that came too late, so the test fits fast and slow machines alike.
static void interrupt_and_resume(int np, int sig, const char *ref, const char *name, int want,
                                 double ref_seconds) {
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    srand(seed);
    int landed = 0, max_ms = (int)(500 * ref_seconds) + 1;
    for (int attempt = 0; attempt < 12 && landed < want; attempt++) {
        char run[64], extra[1400];
        snprintf(run, sizeof run, "%s_%d", name, attempt);
        pid_t pid = train_async(np, run, "");
        int delay_ms = rand() % max_ms;
        usleep((useconds_t)delay_ms * 1000);
        kill(pid, sig);
        int code = wait_exit(pid);
        char *log = run_log(run);
        if (code == 128 + sig && np > 1 && run_ended(ref, run)) {
            // the run had ended and written its last checkpoint; mpiexec, tearing down, has
            // dropped its signal forwarding and dies of the signal itself (Open MPI's, not
            // ours): the signal came too late, as below
            free(log);
            max_ms = max_ms / 2 + 1;
            continue;
        }
        if (code != 0) fail_msg("signal %d after %d ms (seed %u): exit %d\n%s", sig, delay_ms, seed, code, log);
        if (!strstr(log, "stopped at step")) {  // it had finished: try again sooner
            free(log);
            max_ms = max_ms / 2 + 1;
            continue;
        }
        const char *named = sig == SIGTERM ? "(SIGTERM)" : sig == SIGINT ? "(SIGINT)" : "(SIGUSR1)";
        if (!strstr(log, named) || !strstr(log, "--resume"))
            fail_msg("the stop message should name the signal and how to resume:\n%s", log);
        free(log);
        landed++;
        snprintf(extra, sizeof extra, "--resume '%s'", last_of(run));
        RunResult r;
        train_sync(&r, np, run, extra);
        if (r.status) fail_msg("resume after %d ms: exit %d\n%s", delay_ms, r.status, r.err);
        assert_same_run(ref, run);
    }
    if (landed < want)
        fail_msg("only %d of %d signals landed mid-run in 12 tries (seed %u)", landed, want, seed);
}

static double seconds_since(const struct timespec *t0) {
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0->tv_nsec);
}

static void test_sigterm_resumes_bit_identical(void **state) {
    (void)state;
    RunResult r;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    train_sync(&r, 0, "ref1", "");
    double took = seconds_since(&t0);
    if (r.status) fail_msg("reference run: exit %d\n%s", r.status, r.err);
    interrupt_and_resume(0, SIGTERM, "ref1", "term", 3, took);
    interrupt_and_resume(0, SIGUSR1, "ref1", "usr1", 1, took);
    interrupt_and_resume(0, SIGINT, "ref1", "int", 2, took);  // Ctrl-C: the same clean stop
}

// mpiexec forwards SIGUSR1 to both ranks; they agree on one step and write one checkpoint.
static void test_sigusr1_under_mpiexec(void **state) {
    (void)state;
    RunResult r;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    train_sync(&r, 2, "ref2", "");
    double took = seconds_since(&t0);
    if (r.status) fail_msg("reference run: exit %d\n%s", r.status, r.err);
    interrupt_and_resume(2, SIGUSR1, "ref2", "mpi", 2, took);
}

// Ctrl-C twice: the second ends the process at once, without a checkpoint.
static void test_second_ctrl_c_exits_at_once(void **state) {
    (void)state;
    pid_t pid = train_async(0, "twice_int", "");
    usleep(200000);
    kill(pid, SIGINT);
    usleep(50000);  // two of one signal sent at once may arrive as one
    kill(pid, SIGINT);
    int code = wait_exit(pid);
    char *log = run_log("twice_int");
    if (code != 128 + SIGINT || !strstr(log, "second signal"))
        fail_msg("exit %d, want %d with 'second signal':\n%s", code, 128 + SIGINT, log);
    free(log);
}

// SIGTERM then SIGUSR1 at once: the second ends the process without waiting for the step.
// Two different signals pending together are delivered lowest number first (SIGUSR1, then
// SIGTERM), so on a busy machine either can be the second: the exit status names that one.
static void test_second_signal_exits_at_once(void **state) {
    (void)state;
    pid_t pid = train_async(0, "twice", "");
    usleep(200000);
    kill(pid, SIGTERM);
    kill(pid, SIGUSR1);
    int code = wait_exit(pid);
    char *log = run_log("twice");
    if ((code != 128 + SIGUSR1 && code != 128 + SIGTERM) || !strstr(log, "second signal"))
        fail_msg("exit %d, want %d or %d with 'second signal':\n%s", code, 128 + SIGUSR1,
                 128 + SIGTERM, log);
    free(log);
}

// A NaN injected into rank 0's loss gradient at step 300 (epoch 2): the run stops there,
// names the step and the checkpoint of epoch 1 (step 250), which loads; with
// train.nonfinite=skip it finishes, having skipped exactly that step, with finite weights.
static void test_nonfinite_gradient(void **state) {
    (void)state;
    RunResult r;
    char cmd[8192];
    train_cmd(cmd, sizeof cmd, 0, "nan_stop2", "");
    char env[8300];
    snprintf(env, sizeof env, "REGDIST_INJECT_NAN_STEP=300 %s", cmd);
    test_run_shell(&r, env);
    assert_int_equal(r.status, 1);
    if (!strstr(r.err, "gradient of step 300 is not finite") ||
        !strstr(r.err, "nan_stop2/last.h5 (step 250)"))
        fail_msg("want the step and the last checkpoint named:\n%s", r.err);
    assert_int_equal(strchr(r.err, '\n') - r.err + 1, (long)strlen(r.err));  // one line
    Loaded x;
    load(&x, last_of("nan_stop2"));
    assert_int_equal(x.meta.step, 250);
    unload(&x);
    // before any checkpoint (a run directory of its own: one directory holds one run)
    train_cmd(cmd, sizeof cmd, 0, "nan_stop7", "");
    snprintf(env, sizeof env, "REGDIST_INJECT_NAN_STEP=7 %s", cmd);
    test_run_shell(&r, env);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "before any checkpoint was written"));
    // without clipping, a separate pass finds it (with clipping, the norm does)
    train_cmd(cmd, sizeof cmd, 0, "nan_stop7c", "--set reg.clip_norm=0");
    snprintf(env, sizeof env, "REGDIST_INJECT_NAN_STEP=7 %s", cmd);
    test_run_shell(&r, env);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "gradient of step 7 is not finite"));
    // skip: under 2 ranks, so the NaN of rank 0 reaches rank 1 through the all-reduce
    train_cmd(cmd, sizeof cmd, 2, "nan_skip", "--set train.nonfinite=skip");
    snprintf(env, sizeof env, "REGDIST_INJECT_NAN_STEP=300 %s", cmd);
    test_run_shell(&r, env);
    if (r.status) fail_msg("skip: exit %d\n%s", r.status, r.err);
    assert_non_null(strstr(r.out, "(1 non-finite step skipped)"));
    char path[1300];
    size_t len;
    snprintf(path, sizeof path, "%s/nan_skip/summary.json", dir);
    char *summary = test_read_file(path, &len);
    assert_non_null(summary);
    assert_non_null(strstr(summary, "\"skipped_steps\": 1,"));
    free(summary);
    load(&x, last_of("nan_skip"));
    assert_int_equal(x.meta.skipped_steps, 1);
    assert_int_equal(x.o.step, 499);  // 500 batches, one not applied
    for (size_t i = 0; i < x.m.table.n_trainable; i++) assert_true(isfinite(x.m.params[i]));
    unload(&x);
}

// A checkpoint that cannot be written: a file-size limit smaller than the checkpoint (a full
// disk as the process sees it), and an output directory deleted while the run goes on.
// MPI start-up itself writes shared-memory files of a few MiB, so the model is widened to a
// 35 MB checkpoint and the limit is half of that.
#define WIDE "--set layer.fc1.out=20000 --set data.train_size=800"
static void test_checkpoint_write_failures(void **state) {
    (void)state;
    RunResult r;
    train_sync(&r, 0, "disk", WIDE " --set train.epochs=1");
    if (r.status) fail_msg("first run: exit %d\n%s", r.status, r.err);
    size_t len;
    char *before = test_read_file(last_of("disk"), &len);
    assert_non_null(before);
    size_t ckpt_bytes = len;
    // resume for a second epoch with files limited to half a checkpoint (ulimit -f is KiB)
    char cmd[8192], shell[8400], extra[1400];
    snprintf(extra, sizeof extra, WIDE " --resume '%s'", last_of("disk"));
    train_cmd(cmd, sizeof cmd, 0, "disk", extra);
    snprintf(shell, sizeof shell, "ulimit -f %zu; %s", ckpt_bytes / 2048, cmd);
    test_run_shell(&r, shell);
    assert_int_equal(r.status, 1);
    if (!strstr(r.err, "disk/best.h5") && !strstr(r.err, "disk/last.h5"))
        fail_msg("want the checkpoint path named:\n%s", r.err);
    if (!strstr(r.err, "File too large")) fail_msg("want the OS's reason:\n%s", r.err);
    char *after = test_read_file(last_of("disk"), &len);
    assert_int_equal(len, ckpt_bytes);
    assert_memory_equal(before, after, len);  // the old checkpoint, untouched
    Loaded x;
    load(&x, last_of("disk"));
    assert_int_equal(x.meta.step, 50);
    unload(&x);
    free(before);
    free(after);
    // the output directory vanishes before the first checkpoint
    pid_t pid = train_async(0, "vanish", "");
    char rm[1300];
    snprintf(rm, sizeof rm, "rm -rf '%s/vanish'", dir);
    assert_int_equal(system(rm), 0);
    int code = wait_exit(pid);
    char *log = run_log("vanish");
    if (code != 1 || !strstr(log, "vanish/") || !strstr(log, "No such file or directory"))
        fail_msg("exit %d, want 1 naming the path and the reason:\n%s", code, log);
    free(log);
}

// A real full disk and a read-only one: small tmpfs mounts (root only; skipped where mounting
// is not allowed). With room for two and a half checkpoints, epoch 1 writes best.h5 and
// last.h5; epoch 2's best.h5 then finds no room: exit 1 naming the path and "No space left
// on device", and epoch 1's checkpoints load.
static int mount_tmpfs(const char *at, const char *opts) {
    char cmd[2600];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && mount -t tmpfs -o %s tmpfs '%s' 2>/dev/null", at,
             opts, at);
    return system(cmd) == 0;
}

static void umount_dir(const char *at) {
    char cmd[1300];
    snprintf(cmd, sizeof cmd, "umount '%s'", at);
    if (system(cmd) != 0) fprintf(stderr, "cannot unmount %s\n", at);
}

static void test_full_and_read_only_disks(void **state) {
    (void)state;
    RunResult r;
    train_sync(&r, 0, "size_probe", "--set train.max_steps=0");
    if (r.status) fail_msg("probe: exit %d\n%s", r.status, r.err);
    size_t ckpt_bytes;
    char *probe = test_read_file(last_of("size_probe"), &ckpt_bytes);
    assert_non_null(probe);
    free(probe);
    char mnt[1100], opts[64];
    snprintf(mnt, sizeof mnt, "%s/full", dir);
    snprintf(opts, sizeof opts, "size=%zuk", ckpt_bytes * 5 / 2 / 1024 + 8);
    if (!mount_tmpfs(mnt, opts)) skip();
    train_sync(&r, 0, "full/run", "");
    int ok = r.status == 1 && strstr(r.err, "full/run/") && strstr(r.err, "No space left on device");
    Loaded x = {0}, y = {0};
    if (ok) {  // epoch 1's checkpoints, before the mount goes away with them
        load(&x, last_of("full/run"));
        char best[1300];
        snprintf(best, sizeof best, "%s/full/run/best.h5", dir);
        load(&y, best);
    }
    umount_dir(mnt);
    if (!ok) fail_msg("full disk: exit %d, want 1 naming the path and the reason:\n%s", r.status, r.err);
    assert_int_equal(x.meta.step, 250);
    assert_int_equal(y.meta.step, 250);
    unload(&x);
    unload(&y);
    // read-only: the output directory exists but nothing can be written in it
    snprintf(opts, sizeof opts, "size=64k,ro");
    if (!mount_tmpfs(mnt, opts)) skip();
    train_sync(&r, 0, "full", "");
    umount_dir(mnt);
    if (r.status == 0 || !strstr(r.err, "full") || !strstr(r.err, "Read-only file system"))
        fail_msg("read-only disk: exit %d, want a failure naming the path and the reason:\n%s",
                 r.status, r.err);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigterm_resumes_bit_identical),
        cmocka_unit_test(test_sigusr1_under_mpiexec),
        cmocka_unit_test(test_second_signal_exits_at_once),
        cmocka_unit_test(test_second_ctrl_c_exits_at_once),
        cmocka_unit_test(test_nonfinite_gradient),
        cmocka_unit_test(test_checkpoint_write_failures),
        cmocka_unit_test(test_full_and_read_only_disks),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
