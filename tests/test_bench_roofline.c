// test_bench_roofline.c: `regdist bench`'s roofline (launch/bench.c, core/prof.h). On
// cnn6_mlp4 the GEMMs execute fewer FLOPs than the direct-convolution count (Winograd), and
// the step's time shows up in GEMMs, transforms and elementwise passes, which move bytes; on
// the MLP, which has no convolution, the executed FLOPs are exactly the counted ones; on two
// ranks, SyncBN's waits and each rank's own work. The text output has the roofline block.
// Numbers, not timings: any machine passes.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "testutil.h"

static double field(const char *json, const char *key) {
    char k[64];
    snprintf(k, sizeof k, "\"%s\": ", key);
    const char *p = strstr(json, k);
    if (!p) fail_msg("no %s in: %s", key, json);
    return strtod(p + strlen(k), NULL);
}

static void bench(RunResult *r, const char *cfg, const char *batch, int json) {
    char config[1024];
    snprintf(config, sizeof config, "%s/launch/configs/%s", test_source_dir(), cfg);
    test_run_regdist(r, (const char *[]){"bench", "--config", config, "--batch", batch,
                                         "--steps", "2", "--warmup", "1", "--threads", "1",
                                         json ? "--json" : NULL, NULL});
    test_expect_ok(r);
}

static void test_cnn_roofline(void **state) {
    (void)state;
    RunResult r;
    bench(&r, "cnn6_mlp4.cfg", "16", 1);
    double ex = field(r.out, "executed_gflop"), direct = field(r.out, "direct_gflop");
    if (!(ex > 0 && ex < 0.6 * direct))
        fail_msg("executed %g GFLOP against %g counted as direct convolution", ex, direct);
    assert_true(field(r.out, "gemm_ms") > 0);
    assert_true(field(r.out, "transform_ms") > 0);
    assert_true(field(r.out, "elementwise_ms") > 0);
    assert_true(field(r.out, "elementwise_mb") > 0);
    bench(&r, "cnn6_mlp4.cfg", "16", 0);
    if (!strstr(r.out, "roofline") || !strstr(r.out, "GEMM") || !strstr(r.out, "transforms") ||
        !strstr(r.out, "elementwise") || !strstr(r.out, "communication wait") ||
        !strstr(r.out, "limit: the GEMMs alone"))
        fail_msg("no roofline block in:\n%s", r.out);
}

static void test_mlp_executes_what_it_counts(void **state) {
    (void)state;
    RunResult r;
    bench(&r, "mlp.cfg", "256", 1);
    double ex = field(r.out, "executed_gflop"), direct = field(r.out, "direct_gflop");
    if (!(direct > 0 && ex > 0.99 * direct && ex < 1.01 * direct))
        fail_msg("MLP: executed %g GFLOP, counted %g", ex, direct);
    assert_true(field(r.out, "transform_ms") == 0);
    assert_true(field(r.out, "elementwise_mb") > 0);  // LayerNorm, GELU, dropout
}

// Under mpiexec -n 2, SyncBN's reductions count as communication (syncbn_ms), and each rank's
// own work (its step less its waits) is reported, fastest and slowest; local BN (bn.group=1)
// has no reduction to wait on, and one rank is its own fastest and slowest.
static void test_ranks_work_and_syncbn(void **state) {
    (void)state;
    const char *m = getenv("REGDIST_MPIEXEC");
    char cmd[4096], config[1024];
    snprintf(config, sizeof config, "%s/launch/configs/cnn6_mlp4.cfg", test_source_dir());
    RunResult r;
    for (int local = 0; local < 2; local++) {
        snprintf(cmd, sizeof cmd,
                 "%s -n 2 %s bench --config %s --batch 16 --steps 3 --warmup 1 --threads 1 "
                 "--json --set bn.group=%d",
                 m && *m ? m : "mpiexec", test_regdist_bin(), config, local);
        test_run_shell(&r, cmd);
        test_expect_ok(&r);
        double bn = field(r.out, "syncbn_ms"), lo = field(r.out, "work_ms_min"),
               hi = field(r.out, "work_ms_max");
        int fast = (int)field(r.out, "fastest_rank"), slow = (int)field(r.out, "slowest_rank");
        if (local ? bn != 0 : !(bn > 0)) fail_msg("bn.group=%d: syncbn_ms %g", local, bn);
        if (!(lo > 0 && lo <= hi) || fast < 0 || fast > 1 || slow < 0 || slow > 1 ||
            (lo < hi && fast == slow))
            fail_msg("work %g (rank %d) .. %g (rank %d)", lo, fast, hi, slow);
    }
    snprintf(cmd, sizeof cmd,
             "%s -n 2 %s bench --config %s --batch 16 --steps 2 --warmup 1 --threads 1",
             m && *m ? m : "mpiexec", test_regdist_bin(), config);
    test_run_shell(&r, cmd);
    test_expect_ok(&r);
    if (!strstr(r.out, "each rank's own work") || !strstr(r.out, "slowest rank") ||
        !strstr(r.out, "SyncBN"))
        fail_msg("no per-rank work or SyncBN wait in:\n%s", r.out);
    bench(&r, "cnn6_mlp4.cfg", "16", 1);
    assert_true(field(r.out, "syncbn_ms") == 0);
    assert_true(field(r.out, "work_ms_min") == field(r.out, "work_ms_max"));
}

// launch/bench/ceiling.sh (the host's ceiling for two ranks, docs/performance.md) on the MLP,
// one short round: every column is a step time, and the four ratios it prints follow from
// them; an odd global batch, which two ranks cannot halve, is one line and exit 2.
static void test_ceiling_script(void **state) {
    (void)state;
    const char *m = getenv("REGDIST_MPIEXEC");
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "STEPS=3 BATCH=%%s MPIEXEC='%s' bash %s/launch/bench/ceiling.sh 1 %s "
             "%s/launch/configs/mlp.cfg",
             m && *m ? m : "mpiexec", test_source_dir(), test_regdist_bin(), test_source_dir());
    char line[4200];
    RunResult r;
    snprintf(line, sizeof line, cmd, "64");
    test_run_shell(&r, line);
    test_expect_ok(&r);
    const char *row = strstr(r.out, "\n1 ");
    double t[5];
    if (!row || sscanf(row, " 1 %lf %lf %lf %lf %lf", &t[0], &t[1], &t[2], &t[3], &t[4]) != 5)
        fail_msg("no round of five step times in:\n%s", r.out);
    for (int i = 0; i < 5; i++)
        if (!(t[i] > 0)) fail_msg("step time %d is %g in:\n%s", i, t[i], r.out);
    double one = t[0] < t[1] ? t[0] : t[1], pair = t[2] > t[3] ? t[2] : t[3];
    const char *want[] = {"core 1 / core 0", "2 ranks / 1 rank (faster core)",
                          "ceiling for 2 ranks / 1 rank", "2 ranks / that ceiling"};
    double expect[] = {t[1] / t[0], one / t[4], one / pair, pair / t[4]};
    for (int i = 0; i < 4; i++) {
        const char *p = strstr(r.out, want[i]);
        if (!p) fail_msg("no '%s' in:\n%s", want[i], r.out);
        p += strlen(want[i]);
        double v = strtod(p + strcspn(p, "0123456789"), NULL);
        if (!(v > 0.99 * expect[i] - 0.006 && v < 1.01 * expect[i] + 0.006))
            fail_msg("'%s' prints %g, its steps give %g:\n%s", want[i], v, expect[i], r.out);
    }
    snprintf(line, sizeof line, cmd, "7");
    test_run_shell(&r, line);
    if (r.status != 2 || !strstr(r.err, "ceiling: the global batch is 7") ||
        strchr(r.err, '\n') != r.err + strlen(r.err) - 1)
        fail_msg("odd batch: exit %d, stderr: %s", r.status, r.err);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cnn_roofline),
        cmocka_unit_test(test_mlp_executes_what_it_counts),
        cmocka_unit_test(test_ranks_work_and_syncbn),
        cmocka_unit_test(test_ceiling_script),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
