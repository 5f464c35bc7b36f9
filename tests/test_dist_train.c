// test_dist_train.c: data-parallel training end to end, as a user runs it: mpiexec with 1, 2
// and 4 ranks (oversubscribed on small machines) on a small CNN that uses every mechanism
// with a cross-rank consequence: SyncBN (bn.group = 0), Dropout2d, DropBlock, dropout,
// DropConnect, DropPath. N ranks must reach the parameters one rank reaches.
//
// Tolerance: ranks sum gradient slices and BatchNorm partials in a different order than one
// rank sums them, so float32 results may differ in the last bits: after 20 AdamW steps we
// measured differences of at most 2.4e-7 on parameters of size ~1 (2 ulp). We allow 1e-5:
// 40x that, and still 100x below what any real divergence produces (one wrong dropout mask,
// a BN statistic over the wrong samples or a gradient averaged per rank moves parameters by
// 1e-3 or more in 20 steps at lr 1e-3).
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

#define TOL 1e-5

static const char *dir;
static char data[1024], config[1024], mpiexec[1024];

static int setup(void **state) {
    (void)state;
    dir = test_tmpdir("dist");
    snprintf(data, sizeof data, "%s", test_path(dir, "t12.h5"));
    snprintf(config, sizeof config, "%s/tests/configs/tiny_cnn.cfg", test_source_dir());
    const char *m = getenv("REGDIST_MPIEXEC");
    snprintf(mpiexec, sizeof mpiexec, "%s", m && *m ? m : "mpiexec");
    RunResult r;
    test_run_regdist(&r, (const char *[]){"data", "synth", "--out", data, "--shape", "1,12,12",
                                          "--train", "300", "--val", "60", "--test", "60", NULL});
    if (r.status) fail_msg("data synth: %s", r.err);
    return 0;
}

// mpiexec -n np regdist train --config tiny_cnn --data ... --out dir/name <extra>
static void train(RunResult *r, int np, const char *name, const char *extra) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "'%s' -n %d '%s' train --config '%s' --data '%s' --out '%s' %s",
             mpiexec, np, test_regdist_bin(), config, data, test_path(dir, name), extra);
    test_run_shell(r, cmd);
}

static void train_ok(int np, const char *name, const char *extra) {
    RunResult r;
    train(&r, np, name, extra);
    if (r.status) fail_msg("%d ranks, %s: exit %d\n%s", np, extra, r.status, r.err);
}

typedef LoadedRun Loaded;

// Loads run's last.h5 (a directory under dir).
static void load(Loaded *l, const char *run, Shape in) {
    char path[1100];
    snprintf(path, sizeof path, "%s/last.h5", test_path(dir, run));
    loaded_run_open(l, path, in);
}

static void unload(Loaded *l) { loaded_run_free(l); }

static double max_diff(const float *a, const float *b, size_t n) {
    double d = 0;
    for (size_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i]));
    return d;
}

// Parameters, optimizer moments (and, with buffers = 1, BN running statistics) agree.
static void assert_close(const char *a, const char *b, int buffers) {
    Loaded x, y;
    load(&x, a, (Shape){3, {1, 12, 12}});
    load(&y, b, (Shape){3, {1, 12, 12}});
    size_t n = x.m.table.n_trainable;
    assert_int_equal(x.meta.step, y.meta.step);
    double dp = max_diff(x.m.params, y.m.params, n), dm = max_diff(x.o.m, y.o.m, n);
    double db = buffers ? max_diff(x.m.bufs, y.m.bufs, x.m.table.n_buffer) : 0;
    if (dp > TOL || dm > TOL || db > TOL)
        fail_msg("%s vs %s: parameters differ by %g, moments by %g, BN statistics by %g", a, b,
                 dp, dm, db);
    // and the runs really trained: the parameters moved away from any trivial state
    assert_true(x.meta.step == 20);
    unload(&x);
    unload(&y);
}

// 1, 2 and 4 ranks; a global batch of 30 does not divide by 4 (slices of 7 and 8).
static void test_world_size_invariance(void **state) {
    (void)state;
    train_ok(1, "b30_np1", "");
    train_ok(2, "b30_np2", "");
    train_ok(4, "b30_np4", "");
    assert_close("b30_np1", "b30_np2", 1);
    assert_close("b30_np1", "b30_np4", 1);
}

// A batch of 32 leaves a short last batch of 12 (3 per rank on 4); the epochs still align.
static void test_short_last_batch(void **state) {
    (void)state;
    train_ok(1, "b32_np1", "--set train.batch=32");
    train_ok(4, "b32_np4", "--set train.batch=32");
    assert_close("b32_np1", "b32_np4", 1);
}

// 10 micro-batches of 3 samples on 4 ranks: rank 0 gets none of each, yet joins every
// collective; gradients are all-reduced once per step.
static void test_accumulation_and_empty_slices(void **state) {
    (void)state;
    train_ok(1, "acc_np1", "--set train.accum=10");
    train_ok(4, "acc_np4", "--set train.accum=10");
    assert_close("acc_np1", "acc_np4", 1);
}

// Local BN on 2 ranks normalizes over each rank's 15 samples: the same as one rank with
// ghost batches of 15. Equal normalization groups, equal training (the running statistics
// differ by design: one is rank 0's, the other moves once per ghost batch). One SGD step, so
// that only summation order separates them (measured 1e-8): over 20 AdamW steps the
// different chunking of 30 and 15 samples grows into 1e-4 in some builds.
static void test_local_bn_equals_ghost_batches(void **state) {
    (void)state;
    const char *one = "--set train.max_steps=1 --set optim.name=sgd --set optim.lr=0.05 "
                      "--set optim.momentum=0.9 --set sched.warmup_steps=0";
    char extra[512];
    snprintf(extra, sizeof extra, "%s --set bn.group=1", one);
    train_ok(2, "local_np2", extra);
    snprintf(extra, sizeof extra, "%s --set bn.ghost=15", one);
    train_ok(1, "ghost_np1", extra);
    snprintf(extra, sizeof extra, "%s --set bn.group=0", one);
    train_ok(1, "sync_np1", extra);
    Loaded x, y, z;
    load(&x, "local_np2", (Shape){3, {1, 12, 12}});
    load(&y, "ghost_np1", (Shape){3, {1, 12, 12}});
    load(&z, "sync_np1", (Shape){3, {1, 12, 12}});
    size_t n = x.m.table.n_trainable;
    double same = max_diff(x.m.params, y.m.params, n), other = max_diff(x.m.params, z.m.params, n);
    if (same > 1e-6) fail_msg("local BN on 2 ranks vs ghost batches: parameters differ by %g", same);
    // and it is not SyncBN: the full-batch statistics give different parameters
    if (!(other > 100 * same && other > 1e-5))
        fail_msg("local BN and SyncBN should differ: %g (vs %g)", other, same);
    unload(&x);
    unload(&y);
    unload(&z);
}

// Bit-for-bit equality of two runs' parameters, moments and BN statistics.
static void assert_same(const char *a, const char *b) {
    Loaded x, y;
    load(&x, a, (Shape){3, {1, 12, 12}});
    load(&y, b, (Shape){3, {1, 12, 12}});
    size_t n = x.m.table.n_trainable;
    assert_int_equal(x.meta.step, y.meta.step);
    assert_memory_equal(x.m.params, y.m.params, n * sizeof(float));
    assert_memory_equal(x.o.m, y.o.m, n * sizeof(float));
    assert_memory_equal(x.o.v, y.o.v, n * sizeof(float));
    assert_memory_equal(x.m.bufs, y.m.bufs, x.m.table.n_buffer * sizeof(float));
    unload(&x);
    unload(&y);
}

// data.memory_mb = 0 streams every step's rows through the prefetch thread instead of
// holding the shard: the same bits as the held runs, on 1 and 2 ranks, and across a
// mid-epoch stop and resume of the streamed run.
static void test_streamed_equals_held(void **state) {
    (void)state;
    RunResult r;
    train(&r, 1, "stream_np1", "--set data.memory_mb=0");
    if (r.status) fail_msg("streamed, 1 rank: exit %d\n%s", r.status, r.err);
    if (!strstr(r.out, "streaming:")) fail_msg("data.memory_mb=0 did not stream:\n%s", r.out);
    assert_same("b30_np1", "stream_np1");
    train_ok(2, "stream_np2", "--set data.memory_mb=0 --set train.max_steps=13");
    char extra[1200];
    snprintf(extra, sizeof extra, "--set data.memory_mb=0 --resume '%s/last.h5'",
             test_path(dir, "stream_np2"));
    train_ok(2, "stream_np2", extra);
    assert_same("b30_np2", "stream_np2");
}

// A checkpoint written by 2 ranks mid-epoch resumes on 4 and ends where 1 rank does.
static void test_resume_on_other_world_size(void **state) {
    (void)state;
    train_ok(2, "resume", "--set train.max_steps=13");
    char extra[1200];
    snprintf(extra, sizeof extra, "--resume '%s/last.h5'", test_path(dir, "resume"));
    train_ok(4, "resume", extra);
    assert_close("b30_np1", "resume", 1);
}

// The offset of the first trainable parameter after model m's last max-pool (0 if none).
static size_t after_last_pool(const Model *m) {
    int last = -1;
    for (int i = 0; i < m->seq.n; i++)
        if (!strcmp(m->seq.layers[i].spec.type, "maxpool2d")) last = i;
    for (int i = last + 1; i < m->seq.n; i++)
        if (m->seq.layers[i].nparam > 0) return m->seq.layers[i].poff[0];
    return 0;
}

// ||(x - z) - (y - z)|| / ||x - z|| over trainable parameters [lo, hi): how much the step y
// took differs from the step x took, both from z. With y = NULL: ||x - z|| itself.
static double rel_step(const Model *x, const Model *y, const Model *z, size_t lo, size_t hi) {
    double s2 = 0, d2 = 0;
    for (size_t k = lo; k < hi; k++) {
        double s = (double)x->params[k] - z->params[k];
        double d = y ? (double)x->params[k] - y->params[k] : 0;
        s2 += s * s, d2 += d * d;
    }
    return y ? sqrt(d2 / s2) : sqrt(s2);
}

// The reference model itself, cnn6_mlp4 (SyncBN, Dropout2d, dropout), on 1, 2 and 4 ranks,
// with a global batch of 128 and one of 126 that does not divide by 4. One SGD step, so
// nothing but summation order can differ, and summation order alone changes the step
// (p_N - p_0 against the one-rank p_1 - p_0, p_0 from a run with optim.lr = 0) by ~1e-5
// relative L2. But a rounding-level difference can also flip a max-pool argmax where two
// inputs nearly tie: the forward values stay the same to rounding, and that one sample's
// gradient goes to the neighbouring pixel. Everything upstream of that pool then moves: one
// flip in pool3 changed the conv and BN steps by 0.6% (one of the ~10^5 gradient entries
// that reach conv3b, moved), in a build without FMA contraction (-O0 under the sanitizers)
// where 1 rank and 2 ranks round differently. So the step after the last max-pool, which no
// flip reaches, must agree within 1e-4 (measured ≤ 1e-5 with and without flips), and the
// whole step within 5%, a few flips. Every real divergence changes the forward, and so the
// head's step: a gradient averaged per rank changed it by 1.6%, a wrong mask or BN
// statistics over the wrong samples by far more.
// (Over many steps any
// data-parallel run drifts from the one-rank run as training amplifies rounding differences:
// we measured a relative L2 difference of 3e-9, 2e-5 and 6e-3 after 1, 20 and 60 AdamW steps
// of cnn6_mlp4 on Fashion-MNIST, with final accuracies within 0.1 point. Adam's first steps
// amplify most, because they normalize gradients whose true value is near zero.)
static void test_cnn6_mlp4_one_step(void **state) {
    (void)state;
    char data28[1100], cfg[1100], cmd[8192];
    snprintf(data28, sizeof data28, "%s", test_path(dir, "s28.h5"));
    snprintf(cfg, sizeof cfg, "%s/launch/configs/cnn6_mlp4.cfg", test_source_dir());
    RunResult r;
    test_run_regdist(&r, (const char *[]){"data", "synth", "--out", data28, "--train", "256",
                                          "--val", "20", "--test", "20", NULL});
    if (r.status) fail_msg("data synth: %s", r.err);
    // np = 0 is the run that gives p_0: one rank, optim.lr = 0
    const int nps[4] = {0, 1, 2, 4}, batches[2] = {128, 126};
    for (int bi = 0; bi < 2; bi++)
        for (int i = bi ? 1 : 0; i < 4; i++) {
            char name[64];
            snprintf(name, sizeof name, "c6_b%d_np%d", batches[bi], nps[i]);
            snprintf(cmd, sizeof cmd,
                     "'%s' -n %d '%s' train --config '%s' --data '%s' --out '%s' "
                     "--set train.max_steps=1 --set train.batch=%d --set data.train_size=0 "
                     "--set optim.name=sgd --set optim.lr=%s --set optim.momentum=0.9 "
                     "--set sched.warmup_steps=0 --set train.threads=1",
                     mpiexec, nps[i] ? nps[i] : 1, test_regdist_bin(), cfg, data28,
                     test_path(dir, name), batches[bi], nps[i] ? "0.05" : "0");
            test_run_shell(&r, cmd);
            if (r.status) fail_msg("%s: exit %d\n%s", name, r.status, r.err);
        }
    Loaded z;
    load(&z, "c6_b128_np0", (Shape){3, {1, 28, 28}});
    for (int bi = 0; bi < 2; bi++) {
        char a[64], b[64];
        snprintf(a, sizeof a, "c6_b%d_np1", batches[bi]);
        for (int i = 2; i < 4; i++) {
            snprintf(b, sizeof b, "c6_b%d_np%d", batches[bi], nps[i]);
            Loaded x, y;
            load(&x, a, (Shape){3, {1, 28, 28}});
            load(&y, b, (Shape){3, {1, 28, 28}});
            size_t n = x.m.table.n_trainable, tail = after_last_pool(&x.m);
            double rel = rel_step(&x.m, &y.m, &z.m, 0, n);
            double rel_tail = rel_step(&x.m, &y.m, &z.m, tail, n);
            double step = rel_step(&x.m, NULL, &z.m, 0, n);
            double db = max_diff(x.m.bufs, y.m.bufs, x.m.table.n_buffer);
            unload(&x);
            unload(&y);
            // the step is a real one: lr 0.05 moves the parameters by far more than rounding
            if (!(step > 1e-3) || !(rel_tail < 1e-4) || !(rel < 0.05) || !(db < 1e-4)) {
                unload(&z);
                fail_msg("%s vs %s: the steps differ by %.3g relative L2 after the last max-pool "
                         "(at most 1e-4), %.3g in all (at most 0.05; |step| %.3g); BN statistics "
                         "by up to %g", a, b, rel_tail, rel, step, db);
            }
            printf("%s vs %s: steps differ by %.2g relative L2 after the last max-pool (%zu of "
                   "%zu parameters), %.2g in all\n", a, b, rel_tail, n - tail, n, rel);
        }
    }
    unload(&z);
}

// Ranks given different configs: one clear error, exit 2, no hang.
// bench --scaling under 4 ranks measures the first 1, 2 and 4 ranks in turn: one JSON line
// each, with the rank count, a positive rate and, beyond one rank, the communication hidden.
static void test_bench_scaling(void **state) {
    (void)state;
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "'%s' -n 4 '%s' bench --config '%s' --steps 2 --warmup 0 --scaling --json",
             mpiexec, test_regdist_bin(), config);
    RunResult r;
    test_run_shell(&r, cmd);
    if (r.status) fail_msg("bench --scaling: exit %d\n%s", r.status, r.err);
    const char *line = r.out;
    int want[3] = {1, 2, 4};
    for (int i = 0; i < 3; i++) {
        char key[32];
        snprintf(key, sizeof key, "\"ranks\": %d,", want[i]);
        line = strstr(line, key);
        if (!line) fail_msg("no measurement of %d ranks in:\n%s", want[i], r.out);
        const char *ips = strstr(line, "\"images_per_s\": ");
        assert_non_null(ips);
        assert_true(strtod(ips + 16, NULL) > 0);
    }
    assert_null(strstr(line + 1, "\"ranks\":"));  // and nothing more
}

static void test_mismatched_config(void **state) {
    (void)state;
    char cmd[8192];
    char out[1100];
    snprintf(out, sizeof out, "%s", test_path(dir, "mismatch"));
    snprintf(cmd, sizeof cmd,
             "'%s' -n 1 '%s' train --config '%s' --data '%s' --out '%s' --set train.seed=1 : "
             "-n 1 '%s' train --config '%s' --data '%s' --out '%s' --set train.seed=2",
             mpiexec, test_regdist_bin(), config, data, out, test_regdist_bin(), config, data,
             out);
    RunResult r;
    test_run_shell(&r, cmd);
    assert_int_equal(r.status, 2);
    if (!strstr(r.err, "rank 1 was given a different config than rank 0"))
        fail_msg("expected the mismatch message, got: %s", r.err);
}

// A 2-rank background job: training long enough to be interrupted, its output in
// dir/<name>.log. Returns mpiexec's pid once the job has written its first checkpoint, and
// rank 1's pid in *rank1 (found by the job's marker and OMPI_COMM_WORLD_RANK).
static pid_t start_job(const char *name, const char *extra, pid_t *rank1) {
    char cmd[8192], marker[64], last[1100];
    snprintf(marker, sizeof marker, "%s-%d", name, (int)getpid());
    snprintf(cmd, sizeof cmd,
             "REGDIST_TEST_MARKER=%s '%s' -n 2 '%s' train --config '%s' --data '%s' --out '%s' "
             "--set train.epochs=400 %s > '%s/%s.log' 2>&1",
             marker, mpiexec, test_regdist_bin(), config, data, test_path(dir, name), extra, dir,
             name);
    pid_t job = fork();
    if (job == 0) {
        test_child_env();
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    snprintf(last, sizeof last, "%s/last.h5", test_path(dir, name));
    for (int i = 0; i < 300 && access(last, F_OK) != 0; i++) usleep(100000);
    assert_int_equal(access(last, F_OK), 0);
    char find[512];
    snprintf(find, sizeof find,
             "for p in $(pgrep -f '%s train'); do "
             "  tr '\\0' '\\n' < /proc/$p/environ 2>/dev/null | grep -q '^OMPI_COMM_WORLD_RANK=1$' "
             "  && tr '\\0' '\\n' < /proc/$p/environ | grep -q 'REGDIST_TEST_MARKER=%s' && echo $p; "
             "done",
             test_regdist_bin(), marker);
    RunResult r;
    test_run_shell(&r, find);
    *rank1 = (pid_t)atoi(r.out);
    assert_true(*rank1 > 0);
    return job;
}

// Waits up to 30 s for the job (a hang must fail the test, not hit the ctest timeout).
// Returns the seconds it took, or -1 (and kills it) if it did not end.
static double wait_job(pid_t job, int *status) {
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int ended = 0;
    for (int i = 0; i < 300 && !(ended = waitpid(job, status, WNOHANG) == job); i++)
        usleep(100000);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (!ended) {
        kill(job, SIGKILL);
        waitpid(job, status, 0);
        return -1;
    }
    return (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
}

// A rank killed with SIGKILL mid-run: the job ends within seconds, the checkpoint on disk
// is intact and resumes.
static void test_rank_death(void **state) {
    (void)state;
    pid_t victim, job = start_job("death", "", &victim);
    kill(victim, SIGKILL);
    int status = 0;
    double secs = wait_job(job, &status);
    if (secs < 0 || secs > 20) fail_msg("the job took %.1f s to end after a rank died", secs);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) != 0);
    char *log = test_read_file(test_path(dir, "death.log"), NULL);
    assert_non_null(log);
    if (!strstr(log, "rank 1") && !strstr(log, "signal 9"))
        fail_msg("the job's output does not say which rank died:\n%s", log);
    free(log);
    // the last checkpoint is intact and resumes
    char resume[1200];
    snprintf(resume, sizeof resume, "--resume '%s/last.h5' --set train.epochs=3",
             test_path(dir, "death"));
    RunResult rr;
    train(&rr, 1, "death", resume);
    if (rr.status) fail_msg("resume after the death: %s", rr.err);
}

// A rank that stops (SIGSTOP) without dying: the MPI library sees nothing wrong, so only the
// watchdog (dist.timeout) can end the job; rank 0, left waiting in a collective, says so.
static void test_stalled_rank_is_reported(void **state) {
    (void)state;
    pid_t victim, job = start_job("stall", "--set dist.timeout=3", &victim);
    kill(victim, SIGSTOP);
    int status = 0;
    double secs = wait_job(job, &status);
    kill(victim, SIGKILL);  // cleanup: mpirun normally has ended it already
    char *log = test_read_file(test_path(dir, "stall.log"), NULL);
    assert_non_null(log);
    if (secs < 0 || secs > 20)
        fail_msg("the job took %.1f s to end after rank 1 stopped:\n%s", secs, log);
    if (!WIFEXITED(status) || WEXITSTATUS(status) == 0)
        fail_msg("the job did not fail (status 0x%x):\n%s", status, log);
    if (!strstr(log, "rank 0 of 2: stalled for") || !strstr(log, "(dist.timeout = 3 s)"))
        fail_msg("the job's output does not report rank 0's stall:\n%s", log);
    free(log);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_world_size_invariance),
        cmocka_unit_test(test_short_last_batch),
        cmocka_unit_test(test_accumulation_and_empty_slices),
        cmocka_unit_test(test_local_bn_equals_ghost_batches),
        cmocka_unit_test(test_resume_on_other_world_size),
        cmocka_unit_test(test_streamed_equals_held),
        cmocka_unit_test(test_cnn6_mlp4_one_step),
        cmocka_unit_test(test_bench_scaling),
        cmocka_unit_test(test_mismatched_config),
        cmocka_unit_test(test_rank_death),
        cmocka_unit_test(test_stalled_rank_is_reported),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
