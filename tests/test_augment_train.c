// test_augment_train.c: augmentation in training end to end (issue 13), running the binary
// as a user does, under mpiexec for several ranks (as test_dist_train.c):
// - off means off: no augment section, --set augment=off, augment = "off" in the file, and
//   every augment key set but switched off all give byte-identical /model tensors;
// - augmentation on (crop, flips, erasing with noise, mixup and cutmix) gives the same
//   parameters on 1, 2 and 4 ranks with a global batch of 30 (4 does not divide it), also
//   streamed and with train.accum = 2, and parameters that differ from an unaugmented run;
// - a run stopped mid-epoch and resumed ends bit-exact where an uninterrupted one does;
// - bad input: flat data, out-of-range keys, a bad switch: one line, exit 2, no run directory.
//
// Tolerance across world sizes as test_dist_train.c (1e-5, measured 1.2e-7 here): ranks sum
// gradient slices in another order. An augmentation that depended on the rank or the batch
// slot (or a partner taken within the rank's slice) moves parameters by 1e-3 or more.
#include <hdf5.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "testutil.h"

#define TOL 1e-5

static const char *dir;
static char data[1024], flat[1024], config[1024], augcfg[1024], mpiexec[1024];

// Every augment key, on; the tests switch it off or use it as it is.
static const char *const AUG_ALL =
    "augment: { crop_pad = 2; crop_mode = \"reflect\"; hflip = 0.5; vflip = 0.2; erase = 0.5;\n"
    "  erase_area_min = 0.05; erase_area_max = 0.3; erase_aspect_min = 0.5;\n"
    "  erase_aspect_max = 2.0; erase_value = \"noise\"; mixup = 0.4; cutmix = 1.0;\n"
    "  mix_prob = 0.8; mix_switch = 0.5; };\n";

// dst = the text of tiny_cnn.cfg followed by tail.
static void write_config(const char *dst, const char *tail) {
    size_t len;
    char *base = test_read_file(config, &len);
    FILE *f = fopen(dst, "w");
    assert_non_null(f);
    fprintf(f, "%s\n%s", base, tail);
    fclose(f);
    free(base);
}

static int setup(void **state) {
    (void)state;
    dir = test_tmpdir("augtrain");
    snprintf(data, sizeof data, "%s", test_path(dir, "t12.h5"));
    snprintf(flat, sizeof flat, "%s", test_path(dir, "flat.h5"));
    snprintf(config, sizeof config, "%s/tests/configs/tiny_cnn.cfg", test_source_dir());
    snprintf(augcfg, sizeof augcfg, "%s", test_path(dir, "aug.cfg"));
    write_config(augcfg, AUG_ALL);
    const char *m = getenv("REGDIST_MPIEXEC");
    snprintf(mpiexec, sizeof mpiexec, "%s", m && *m ? m : "mpiexec");
    RunResult r;
    test_run_regdist(&r, (const char *[]){"data", "synth", "--out", data, "--shape", "1,12,12",
                                          "--train", "300", "--val", "60", "--test", "60", NULL});
    if (r.status) fail_msg("data synth: %s", r.err);
    test_run_regdist(&r, (const char *[]){"data", "synth", "--out", flat, "--shape", "20",
                                          "--train", "50", "--val", "10", "--test", "10", NULL});
    if (r.status) fail_msg("data synth (flat): %s", r.err);
    return 0;
}

// mpiexec -n np regdist train --config cfg --data ... --out dir/name <extra>
static void train(RunResult *r, int np, const char *cfg, const char *name, const char *extra) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' -n %d '%s' train --config '%s' --data '%s' --out '%s' %s",
             mpiexec, np, test_regdist_bin(), cfg, data, test_path(dir, name), extra);
    test_run_shell(r, cmd);
}

static void train_ok(int np, const char *cfg, const char *name, const char *extra) {
    RunResult r;
    train(&r, np, cfg, name, extra);
    if (r.status) fail_msg("%d ranks, %s %s: exit %d\n%s", np, name, extra, r.status, r.err);
}

// Comparing the /model tensors of two checkpoints (the datasets only: attributes hold
// wall-clock seconds).
typedef struct {
    hid_t other;      // the second file
    double max_diff;  // over every element, as doubles
    int bytes_differ; // some dataset's stored bytes differ
    int count;        // datasets compared
    int missing;      // datasets of the first file the second lacks or shapes differently
} Cmp;

// H5Literate callback over /model (flat: one dataset per parameter or buffer).
static herr_t cmp_one(hid_t g, const char *name, const H5L_info_t *info, void *op) {
    (void)info;
    Cmp *c = op;
    hid_t a = H5Dopen2(g, name, H5P_DEFAULT);
    if (a < 0) return -1;
    hid_t b = H5Lexists(c->other, name, H5P_DEFAULT) > 0 ? H5Dopen2(c->other, name, H5P_DEFAULT)
                                                         : H5I_INVALID_HID;
    if (b < 0) {
        c->missing++;
        H5Dclose(a);
        return 0;
    }
    hid_t sa = H5Dget_space(a), sb = H5Dget_space(b);
    hssize_t n = H5Sget_simple_extent_npoints(sa);
    if (n != H5Sget_simple_extent_npoints(sb)) {
        c->missing++;
    } else if (n > 0) {
        hid_t ta = H5Dget_type(a), tb = H5Dget_type(b);
        size_t sz = H5Tget_size(ta);
        char *ra = malloc((size_t)n * sz), *rb = malloc((size_t)n * sz);
        double *da = malloc((size_t)n * sizeof *da), *db = malloc((size_t)n * sizeof *db);
        assert_true(ra && rb && da && db);
        assert_true(H5Dread(a, ta, H5S_ALL, H5S_ALL, H5P_DEFAULT, ra) >= 0);
        assert_true(H5Dread(b, ta, H5S_ALL, H5S_ALL, H5P_DEFAULT, rb) >= 0);
        assert_true(H5Dread(a, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, da) >= 0);
        assert_true(H5Dread(b, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, db) >= 0);
        c->bytes_differ |= H5Tequal(ta, tb) <= 0 || memcmp(ra, rb, (size_t)n * sz) != 0;
        for (hssize_t i = 0; i < n; i++) c->max_diff = fmax(c->max_diff, fabs(da[i] - db[i]));
        free(ra), free(rb), free(da), free(db);
        H5Tclose(ta), H5Tclose(tb);
    }
    c->count++;
    H5Sclose(sa), H5Sclose(sb), H5Dclose(a), H5Dclose(b);
    return 0;
}

// The /model tensors of run a's and run b's last.h5 (run directories under dir).
static Cmp compare_runs(const char *a, const char *b) {
    char pa[1100], pb[1100];
    snprintf(pa, sizeof pa, "%s/last.h5", test_path(dir, a));
    snprintf(pb, sizeof pb, "%s/last.h5", test_path(dir, b));
    hid_t fa = H5Fopen(pa, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t fb = H5Fopen(pb, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (fa < 0 || fb < 0) fail_msg("cannot open %s or %s", pa, pb);
    hid_t ga = H5Gopen2(fa, "model", H5P_DEFAULT), gb = H5Gopen2(fb, "model", H5P_DEFAULT);
    if (ga < 0 || gb < 0) fail_msg("no /model in %s or %s", pa, pb);
    Cmp c = {.other = gb};
    assert_true(H5Literate(ga, H5_INDEX_NAME, H5_ITER_INC, NULL, cmp_one, &c) >= 0);
    H5Gclose(ga), H5Gclose(gb), H5Fclose(fa), H5Fclose(fb);
    if (c.count == 0 || c.missing) fail_msg("%s vs %s: %d tensors, %d missing", a, b, c.count,
                                            c.missing);
    return c;
}

static void assert_identical(const char *a, const char *b) {
    Cmp c = compare_runs(a, b);
    if (c.bytes_differ) fail_msg("%s and %s differ (max %g)", a, b, c.max_diff);
}

static void assert_close(const char *a, const char *b) {
    Cmp c = compare_runs(a, b);
    if (!(c.max_diff <= TOL))
        fail_msg("%s vs %s: max difference %g > %g", a, b, c.max_diff, TOL);
}

#define STEPS "--set train.max_steps=6"

// Off means off: the four ways of having no augmentation train the same bytes.
static void test_off_means_off(void **state) {
    (void)state;
    char offcfg[1024], strcfg[1024];
    snprintf(offcfg, sizeof offcfg, "%s", test_path(dir, "aug_off.cfg"));
    snprintf(strcfg, sizeof strcfg, "%s", test_path(dir, "str_off.cfg"));
    char tail[2048];
    snprintf(tail, sizeof tail, "%.*s enable = \"off\"; };\n", (int)(strlen(AUG_ALL) - 4),
             AUG_ALL);  // the section with every key, then enable = "off" inside it
    write_config(offcfg, tail);
    write_config(strcfg, "augment = \"off\";\n");
    train_ok(1, config, "none", STEPS);
    train_ok(1, config, "set_off", STEPS " --set augment=off");
    train_ok(1, augcfg, "all_set_off", STEPS " --set augment=off");
    train_ok(1, offcfg, "all_enable_off", STEPS);
    train_ok(1, strcfg, "string_off", STEPS);
    assert_identical("none", "set_off");
    assert_identical("none", "all_set_off");
    assert_identical("none", "all_enable_off");
    assert_identical("none", "string_off");
}

// Augmentation on changes the result; the same run on 1, 2 and 4 ranks (30 samples a batch:
// 4 ranks get 7 or 8), streamed on 2, and with accum = 2 on 3, ends at the same parameters.
static void test_world_size_invariance(void **state) {
    (void)state;
    train_ok(1, config, "plain_np1", STEPS);
    train_ok(1, augcfg, "aug_np1", STEPS);
    Cmp c = compare_runs("plain_np1", "aug_np1");
    if (!(c.max_diff > 1e-3))
        fail_msg("augmentation on moved the parameters by only %g: a no-op?", c.max_diff);
    train_ok(2, augcfg, "aug_np2", STEPS);
    train_ok(4, augcfg, "aug_np4", STEPS);
    train_ok(2, augcfg, "aug_np2_stream", STEPS " --set data.memory_mb=0");
    assert_close("aug_np1", "aug_np2");
    assert_close("aug_np1", "aug_np4");
    assert_close("aug_np1", "aug_np2_stream");
    train_ok(1, augcfg, "aug_accum_np1", STEPS " --set train.accum=2");
    train_ok(3, augcfg, "aug_accum_np3", STEPS " --set train.accum=2");
    assert_close("aug_accum_np1", "aug_accum_np3");
}

// Mixing alone (no per-sample transform) is on too, and changes the result: each kind on
// its own is a separate path through the step.
static void test_each_transform_changes(void **state) {
    (void)state;
    const char *one[] = {"--set augment.crop_pad=2", "--set augment.hflip=0.5",
                         "--set augment.erase=0.5", "--set augment.mixup=0.4",
                         "--set augment.cutmix=1.0"};
    train_ok(1, config, "plain_each", STEPS);
    for (size_t i = 0; i < sizeof one / sizeof one[0]; i++) {
        char name[32], extra[256];
        snprintf(name, sizeof name, "one_%zu", i);
        snprintf(extra, sizeof extra, STEPS " %s", one[i]);
        train_ok(1, config, name, extra);
        Cmp c = compare_runs("plain_each", name);
        if (!(c.max_diff > 1e-4))
            fail_msg("%s moved the parameters by only %g", one[i], c.max_diff);
    }
    // mixup alone on 2 ranks: the partners come from the other rank's slice
    train_ok(2, config, "one_mix_np2", STEPS " --set augment.mixup=0.4");
    assert_close("one_3", "one_mix_np2");
}

// A run stopped mid-epoch (step 13 of 2 x 10) and resumed ends bit-exact where an
// uninterrupted run does: every draw is a function of (seed, epoch or step, sample).
static void test_resume_bit_exact(void **state) {
    (void)state;
    train_ok(2, augcfg, "whole", "");
    train_ok(2, augcfg, "resumed", "--set train.max_steps=13");
    char extra[2048];
    snprintf(extra, sizeof extra, "--resume '%s/last.h5'", test_path(dir, "resumed"));
    train_ok(2, augcfg, "resumed", extra);
    assert_identical("whole", "resumed");
    // and streamed, where the prefetch thread reads the partners' rows from the resumed step
    train_ok(1, augcfg, "whole_stream", "--set data.memory_mb=0");
    train_ok(1, augcfg, "resumed_stream", "--set data.memory_mb=0 --set train.max_steps=13");
    snprintf(extra, sizeof extra, "--set data.memory_mb=0 --resume '%s/last.h5'",
             test_path(dir, "resumed_stream"));
    train_ok(1, augcfg, "resumed_stream", extra);
    assert_identical("whole_stream", "resumed_stream");
}

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

// One clear line, exit 2, and no run directory.
static void bad(const char *cfg, const char *on, const char *name, const char *extra,
                const char *needle) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' train --config '%s' --data '%s' --out '%s' %s",
             test_regdist_bin(), cfg, on, test_path(dir, name), extra);
    RunResult r;
    test_run_shell(&r, cmd);
    test_expect_bad_input(&r, needle);
    if (exists(test_path(dir, name))) fail_msg("%s: a run directory was made", name);
}

static void test_bad_input(void **state) {
    (void)state;
    char mlp[1024], badcfg[1024];
    snprintf(mlp, sizeof mlp, "%s/launch/configs/mlp.cfg", test_source_dir());
    bad(mlp, flat, "bad_flat", "--set augment.hflip=0.5",
        "augment needs image input (C, H, W), and this model's input is flat (20 values)");
    bad(mlp, flat, "bad_flat_mix", "--set augment.mixup=0.2", "augment needs image input");
    bad(config, data, "bad_reflect", "--set augment.crop_pad=12 --set augment.crop_mode=reflect",
        "augment.crop_pad = 12 with crop_mode = \"reflect\" must be below the image's height and "
        "width (12x12)");
    bad(config, data, "bad_alpha", "--set augment.mixup=0.0001", "augment.mixup");
    bad(config, data, "bad_area",
        "--set augment.erase=0.5 --set augment.erase_area_min=0.5 "
        "--set augment.erase_area_max=0.1",
        "augment.erase_area_min and _max must be 0 < min <= max <= 1");
    bad(config, data, "bad_prob", "--set augment.hflip=1.5",
        "--set augment.hflip=1.5: augment.hflip must be in [0, 1], got 1.5");
    bad(config, data, "bad_mode", "--set augment.crop_mode=edge",
        "--set augment.crop_mode=edge: augment.crop_mode must be one of zero|reflect");
    bad(config, data, "bad_switch", "--set augment=maybe",
        "--set augment=maybe: augment.enable must be one of off|on");
    bad(config, data, "bad_key", "--set augment.hflp=0.5", "unknown key 'augment.hflp'");
    snprintf(badcfg, sizeof badcfg, "%s", test_path(dir, "bad_switch.cfg"));
    write_config(badcfg, "augment = 3;\n");
    bad(badcfg, data, "bad_file_switch", "", "augment must be a group { ... } or \"off\"");
}

// train --help lists every augment key with its default.
static void test_help_lists_keys(void **state) {
    (void)state;
    RunResult r;
    test_run_regdist(&r, (const char *[]){"train", "--help", NULL});
    test_expect_ok(&r);
    const char *keys[] = {"augment.enable", "augment.crop_pad", "augment.crop_mode",
                          "augment.hflip", "augment.vflip", "augment.erase",
                          "augment.erase_area_min", "augment.erase_area_max",
                          "augment.erase_aspect_min", "augment.erase_aspect_max",
                          "augment.erase_value", "augment.mixup", "augment.cutmix",
                          "augment.mix_prob", "augment.mix_switch"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (!strstr(r.out, keys[i]) && !strstr(r.err, keys[i]))
            fail_msg("train --help does not list %s", keys[i]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_off_means_off),
        cmocka_unit_test(test_world_size_invariance),
        cmocka_unit_test(test_each_transform_changes),
        cmocka_unit_test(test_resume_bit_exact),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_help_lists_keys),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
