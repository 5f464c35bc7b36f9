// test_bench_roofline.c: `regdist bench`'s roofline (launch/bench.c, core/prof.h). On
// cnn6_mlp4 the GEMMs execute fewer FLOPs than the direct-convolution count (Winograd), and
// the step's time shows up in GEMMs, transforms and elementwise passes, which move bytes; on
// the MLP, which has no convolution, the executed FLOPs are exactly the counted ones. The
// text output has the roofline block. Numbers, not timings: any machine passes.
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
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cnn_roofline),
        cmocka_unit_test(test_mlp_executes_what_it_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
