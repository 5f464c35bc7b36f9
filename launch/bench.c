// bench.c: `regdist bench`: training-step throughput of a config, beside the machine's own
// single-precision GEMM rate, so the figure says how close to the hardware a step runs.
// A benchmark, not a test: it prints numbers; run it on a quiet machine.
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <sys/resource.h>

#include "cli.h"
#include "options.h"
#include "stats.h"
#include "step.h"
#include "core/optim.h"
#include "core/philox.h"
#include "core/prof.h"

static const char *usage =
    "usage: regdist bench --config C [--batch N] [--steps N] [--warmup N] [--threads N]\n"
    "                     [--set key=value ...] [--json] [--scaling]\n"
    "\n"
    "Times full data-parallel training steps of config C (the same step as train: slices,\n"
    "forward, loss, backward with the bucketed all-reduce, clipping, optimizer) on random\n"
    "inputs of model.input's shape (1x28x28 and 10 classes where the config takes them from\n"
    "the data), one process or many under mpirun. Prints the median\n"
    "images/s, the time split, how much communication backward hid, each rank's own work\n"
    "(the fastest and slowest: a step waits for the slowest), peak memory per rank,\n"
    "and the GEMM rate against the machine's own sgemm on the same threads; then a roofline\n"
    "of rank 0's step: the FLOPs its GEMMs execute (Winograd's real products) and their rate\n"
    "while they run, the bytes the elementwise passes move, the share of the step in GEMMs,\n"
    "transforms, elementwise passes and waiting on communication, and the step's distance\n"
    "from its GEMMs alone at the machine's sgemm rate.\n"
    "With --scaling, under mpirun -n W, it measures the first 1, 2, 4, ... and W ranks in turn\n"
    "(the rest idle) and prints each size's scaling efficiency against the 1-rank rate.\n";

// FLOPs of one training step's matrix products on a batch of B: each kind counts its own
// (linear, conv2d; residual blocks their branch's), the model's first layer without the
// input gradient nobody needs.
static double step_flops(const Model *m, int B) { return B * seq_flops(&m->seq, 0); }

// The machine's sgemm rate on n x n matrices, median of reps.
static double sgemm_gflops(int n, int reps) {
    float *a = malloc((size_t)n * n * sizeof(float)), *b = malloc((size_t)n * n * sizeof(float)),
          *c = malloc((size_t)n * n * sizeof(float));
    for (size_t i = 0; i < (size_t)n * n; i++) a[i] = b[i] = 0.001f * (float)(i % 1000);
    double *t = malloc((size_t)reps * sizeof(double));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
    for (int r = 0; r < reps; r++) {
        double t0 = now_seconds();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
        t[r] = now_seconds() - t0;
    }
    double g = 2.0 * n * n * (double)n / median_sort(t, reps) / 1e9;
    free(a), free(b), free(c), free(t);
    return g;
}

// What one measurement found (valid on rank 0 of d).
typedef struct {
    double med, ips, gf, peak, split[5], hidden, rss_max;
    double work_min, work_max;  // per step, the fastest and slowest rank's own work
    int fast_rank, slow_rank;   // (the mean step less its waits on the others)
    double mean;          // mean step (the profile's counters are means too)
    double direct_flops;  // per step, counted as direct convolution (the flops hooks)
    Profile prof;         // rank 0's counters over the timed steps, divided by their number
} BenchResult;

// One global batch of random inputs in [-1, 1) (Philox, from the seed) with labels b %
// classes, held by every rank and stepped over again and again; idx is 0..batch-1.
static void random_batch(const Dist *d, const Config *cfg, Shape in_shape, int classes,
                         Dataset *ds, int64_t **idx) {
    int batch = cfg->batch;
    size_t in = shape_numel(in_shape);
    *ds = (Dataset){.n = batch, .nloaded = batch, .shape = in_shape, .num_classes = classes,
                    .nchan = 1, .mean = {0}, .std = {1}};
    ds->x_f32 = malloc((size_t)batch * in * sizeof(float));
    ds->y = malloc((size_t)batch * sizeof(int32_t));
    *idx = malloc((size_t)batch * sizeof(int64_t));
    if (!ds->x_f32 || !ds->y || !*idx) {
        Err e;
        err_set(&e, ERR_RUNTIME, "out of memory");
        cli_fail(d, &e);
    }
    philox_key key = {{cfg->seed, 0xBE4C0000u}};
    for (size_t i = 0; i < (size_t)batch * in; i += 4) {
        philox_ctr r = philox4x32_10((philox_ctr){{(uint32_t)(i / 4), 0, 0, 0}}, key);
        for (size_t j = 0; j < 4 && i + j < (size_t)batch * in; j++)
            ds->x_f32[i + j] = 2.0f * philox_unit(r.v[j]) - 1.0f;
    }
    for (int b = 0; b < batch; b++) ds->y[b] = b % classes, (*idx)[b] = b;
}

// Runs warmup then `steps` timed steps into times[]; the stepper's clocks and the profile
// count the timed steps only. Returns rank 0's profile per step.
static Profile timed_steps(const Dist *d, Stepper *st, const int64_t *idx, int batch, int steps,
                           int warmup, double *times) {
    int64_t correct = 0, seen = 0;
    prof_enable(1);
    for (int s = -warmup; s < steps; s++) {
        if (s == 0) {
            st->t_data = st->t_forward = st->t_backward = st->t_optim = 0;
            st->gs.wait_seconds = st->gs.comm_seconds = 0;
            prof_reset();
        }
        dist_barrier(d);
        double t0 = now_seconds();
        int finite;
        stepper_step(st, idx, batch, &correct, &seen, &finite);
        if (s >= 0) times[s] = now_seconds() - t0;
    }
    Profile pr = prof;
    prof_enable(0);
    for (int k = 0; k < PROF_KINDS; k++) pr.seconds[k] /= steps;
    pr.gemm_flops /= steps, pr.elementwise_bytes /= steps;
    return pr;
}

// Each rank's own work per step: its mean step less what it waited on the others (the
// all-reduce's wait and SyncBN's reductions). The fastest and slowest (collective).
static void rank_work(const Dist *d, double work, BenchResult *res) {
    double *w = calloc((size_t)d->world, sizeof(double));
    if (!w) {
        res->work_min = res->work_max = NAN;
        return;
    }
    w[d->rank] = work;
    dist_sum_f64(d, w, d->world);
    res->fast_rank = res->slow_rank = 0;
    for (int r = 1; r < d->world; r++) {
        if (w[r] < w[res->fast_rank]) res->fast_rank = r;
        if (w[r] > w[res->slow_rank]) res->slow_rank = r;
    }
    res->work_min = w[res->fast_rank], res->work_max = w[res->slow_rank];
    free(w);
}

// The largest peak resident memory of any rank, MiB (collective).
static double max_rss_mib(const Dist *d) {
    double *rss = calloc((size_t)d->world, sizeof(double)), mx = 0;
    if (!rss) return NAN;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    rss[d->rank] = (double)ru.ru_maxrss / 1024.0;
    dist_sum_f64(d, rss, d->world);
    for (int r = 0; r < d->world; r++) mx = rss[r] > mx ? rss[r] : mx;
    free(rss);
    return mx;
}

// Times `steps` training steps (after `warmup`) of cfg on d's ranks. Collective over d.
static void bench_once(const Dist *d, const Config *cfg, int classes, int steps, int warmup,
                       BenchResult *res) {
    Err e = {0};
    int batch = cfg->batch;
    Model m;
    Optim opt;
    if (model_build(&m, cfg->layers, cfg->nlayers, cfg->input, classes, &e) ||
        model_plan(&m, stepper_max_local(d, cfg), &e))
        cli_fail(d, &e);
    model_init(&m, cfg->seed);
    double *times = malloc((size_t)steps * sizeof(double));
    if (optim_init(&opt, &cfg->optim, m.table.n_trainable) || !times) {
        err_set(&e, ERR_RUNTIME, "out of memory");
        cli_fail(d, &e);
    }
    Dataset ds;
    int64_t *idx;
    random_batch(d, cfg, m.in, classes, &ds, &idx);
    Stepper st;
    if (stepper_init(&st, d, cfg, &m, &opt, &ds, &e)) cli_fail(d, &e);
    Profile pr = timed_steps(d, &st, idx, batch, steps, warmup, times);
    double mean = 0;
    for (int s = 0; s < steps; s++) mean += times[s] / steps;
    double med = median_sort(times, steps);
    // per-step time split on rank 0, and each rank's peak memory
    double split[5] = {st.t_data / steps, st.t_forward / steps, st.t_backward / steps,
                       st.gs.wait_seconds / steps, st.t_optim / steps};
    double hidden = st.gs.comm_seconds > 0 ? 1.0 - st.gs.wait_seconds / st.gs.comm_seconds : 0;
    double peak = sgemm_gflops(1024, 10);  // every rank at once: they share the machine
    double rss_max = max_rss_mib(d);       // after it, as the step's buffers were
    *res = (BenchResult){.med = med, .ips = batch / med, .gf = step_flops(&m, batch) / med / 1e9,
                         .peak = peak, .hidden = hidden, .rss_max = rss_max, .mean = mean,
                         .direct_flops = step_flops(&m, batch), .prof = pr};
    memcpy(res->split, split, sizeof split);
    rank_work(d, mean - split[3] - pr.seconds[PROF_COMM], res);
    stepper_free(&st);
    free(ds.x_f32), free(ds.y), free(idx), free(times);
    optim_free(&opt);
    model_free(&m);
}

// Rank 0's step against the machine's limit: what its GEMMs execute and how fast, where the
// rest of the step goes, and how far the step is from its GEMMs alone at the sgemm rate.
static void print_roofline(const BenchResult *r, int world) {
    const Profile *p = &r->prof;
    double g = p->seconds[PROF_GEMM], tr = p->seconds[PROF_TRANSFORM],
           el = p->seconds[PROF_ELEMENTWISE], bn = p->seconds[PROF_COMM],
           wait = r->split[3] + bn, step = r->mean;
    double other = step - g - tr - el - wait;
    if (other < 0) other = 0;
    double ex = p->gemm_flops, rate = g > 0 ? ex / g / 1e9 : 0;
    printf("  roofline (rank 0, per step, means over the timed steps): GEMMs execute %.2f GFLOP (%.2f counted as direct "
           "convolution: %.2fx fewer) at %.1f GFLOP/s while they run = %.0f%% of sgemm\n",
           ex / 1e9, r->direct_flops / world / 1e9, ex > 0 ? r->direct_flops / world / ex : 0,
           rate, r->peak > 0 ? 100 * rate / r->peak : 0);
    printf("    elementwise passes move %.0f MiB (%.1f GB/s while they run)\n",
           p->elementwise_bytes / (1 << 20), el > 0 ? p->elementwise_bytes / el / 1e9 : 0);
    printf("    mean step %.1f ms: GEMM %.0f%% (%.1f ms), transforms %.0f%% (%.1f), elementwise %.0f%% "
           "(%.1f), communication wait %.0f%% (%.1f: all-reduce %.1f, SyncBN %.1f), other %.0f%% "
           "(%.1f)\n",
           1e3 * step, 100 * g / step, 1e3 * g, 100 * tr / step, 1e3 * tr, 100 * el / step, 1e3 * el,
           100 * wait / step, 1e3 * wait, 1e3 * r->split[3], 1e3 * bn, 100 * other / step,
           1e3 * other);
    if (r->peak > 0 && ex > 0)
        printf("    limit: the GEMMs alone at %.1f GFLOP/s take %.1f ms; the step takes %.1fx "
               "that\n",
               r->peak, 1e3 * ex / (r->peak * 1e9), step / (ex / (r->peak * 1e9)));
}

// The measurement as a readable block or one JSON line.
static void print_result(const char *config, int world, int batch, int threads, int bn_group,
                         int steps, const BenchResult *r, int json) {
    if (json)
        printf("{\"config\": \"%s\", \"ranks\": %d, \"batch\": %d, \"threads\": %d, "
               "\"bn_group\": %d, \"steps\": %d, \"median_step_ms\": %.4f, "
               "\"images_per_s\": %.1f, \"step_gflops\": %.2f, \"sgemm_gflops\": %.2f, "
               "\"fraction_of_sgemm\": %.4f, \"data_ms\": %.3f, \"forward_ms\": %.3f, "
               "\"backward_ms\": %.3f, \"allreduce_wait_ms\": %.3f, \"optimizer_ms\": %.3f, "
               "\"comm_hidden\": %.3f, \"peak_rss_mib\": %.1f, \"gemm_ms\": %.3f, "
               "\"transform_ms\": %.3f, \"elementwise_ms\": %.3f, \"executed_gflop\": %.4f, "
               "\"direct_gflop\": %.4f, \"elementwise_mb\": %.2f, \"syncbn_ms\": %.3f, "
               "\"work_ms_min\": %.3f, \"work_ms_max\": %.3f, \"fastest_rank\": %d, "
               "\"slowest_rank\": %d}\n",
               config, world, batch, threads, bn_group, steps, 1e3 * r->med, r->ips, r->gf,
               r->peak, r->gf / (r->peak * world), 1e3 * r->split[0], 1e3 * r->split[1], 1e3 * r->split[2],
               1e3 * r->split[3], 1e3 * r->split[4], r->hidden, r->rss_max,
               1e3 * r->prof.seconds[PROF_GEMM], 1e3 * r->prof.seconds[PROF_TRANSFORM],
               1e3 * r->prof.seconds[PROF_ELEMENTWISE], r->prof.gemm_flops / 1e9,
               r->direct_flops / 1e9, r->prof.elementwise_bytes / (1 << 20),
               1e3 * r->prof.seconds[PROF_COMM], 1e3 * r->work_min, 1e3 * r->work_max,
               r->fast_rank, r->slow_rank);
    else {
        printf("%s: %d rank%s x %d thread%s (OpenBLAS %s), global batch %d, %d steps\n",
               config, world, world > 1 ? "s" : "", threads, threads > 1 ? "s" : "",
               blas_kernel_name(), batch, steps);
        printf("  median step %.3f ms  ->  %.0f images/s\n", 1e3 * r->med, r->ips);
        printf("  step GEMM rate %.1f GFLOP/s = %.0f%% of %d x this machine's sgemm (%.1f "
               "GFLOP/s, 1024^3)\n",
               r->gf, 100 * r->gf / (r->peak * world), world, r->peak);
        printf("  per step (rank 0): data %.2f ms, forward %.2f, backward %.2f, waiting on "
               "all-reduce %.2f, optimizer %.2f\n",
               1e3 * r->split[0], 1e3 * r->split[1], 1e3 * r->split[2], 1e3 * r->split[3],
               1e3 * r->split[4]);
        if (world > 1) {
            printf("  communication hidden behind backward: %.0f%%  (bn.group %d)\n",
                   100 * r->hidden, bn_group);
            printf("  each rank's own work a step (its step less its waits on the others): "
                   "fastest rank %d %.2f ms, slowest rank %d %.2f ms (+%.1f%%): every step "
                   "waits for the slowest\n",
                   r->fast_rank, 1e3 * r->work_min, r->slow_rank, 1e3 * r->work_max,
                   100 * (r->work_max / r->work_min - 1));
        }
        printf("  peak memory per rank: %.0f MiB\n", r->rss_max);
        print_roofline(r, world);
    }
}

int cmd_bench(Dist *d, int argc, char **argv) {
    const char *config = NULL, *sets[MAX_SETS];
    int batch = 0, steps = 50, warmup = 5, threads = 0, json = 0, scaling = 0;
    OptList set = {sets, 0, MAX_SETS};
    const Opt opts[] = {
        OPT_S("config", &config, "C", "the experiment (launch/configs/*.cfg)", 1),
        OPT_I("batch", &batch, "N", "global batch (default: the config's)", 1, 1 << 20),
        OPT_I("steps", &steps, "N", "timed steps (default 50)", 1, 1 << 20),
        OPT_I("warmup", &warmup, "N", "untimed steps first (default 5)", 0, 1 << 20),
        OPT_I("threads", &threads, "N", "OpenBLAS threads per rank (default: the config's)", 1,
              1024),
        OPT_L("set", &set, "key=value", "override a config key; repeatable"),
        OPT_F("json", &json, "print one JSON object instead of text"),
        OPT_F("scaling", &scaling, "measure 1, 2, 4, ... and W ranks in turn"),
        OPT_END};
    if (opts_parse(d, "bench", opts, 0, argc, argv, 1) < 0) {
        if (d->rank == 0) fputs(usage, stdout), fputs("\n", stdout), opts_print_help(stdout, opts);
        return 0;
    }
    int nsets = set.n;
    Err e = {0};
    Config cfg;
    if (config_load(&cfg, config, NULL, sets, nsets, &e)) cli_fail(d, &e);
    // no data here: a config that takes its shape and classes from the data (the shipped ones)
    // is timed on Fashion-MNIST's, unless --set model.input=... says otherwise
    if (!cfg.input.ndim) cfg.input = (Shape){3, {1, 28, 28}};
    if (batch) cfg.batch = batch;
    batch = cfg.batch;
    threads = cli_set_threads(d, threads ? threads : cfg.threads);
    // the class count is the width of the last layer that has one, its out (Fashion-MNIST's
    // 10 for "classes")
    int classes = 0;
    for (int i = 0; i < cfg.nlayers; i++)
        if (layer_kind_key(layer_kind_find(cfg.layers[i].type), "out")) classes = cfg.layers[i].out;
    if (classes == LAYER_OUT_CLASSES) classes = 10;
    // world sizes: this one, or 1, 2, 4, ... and this one with --scaling (the first k ranks)
    int sizes[32], ns = 0;
    for (int k = 1; scaling && k < d->world; k *= 2) sizes[ns++] = k;
    sizes[ns++] = d->world;
    double base = 0;
    for (int i = 0; i < ns; i++) {
        Dist sub;
        BenchResult r;
        if (dist_first(d, sizes[i], &sub)) {
            bench_once(&sub, &cfg, classes, steps, warmup, &r);
            if (sub.rank == 0) {
                print_result(config, sub.world, batch, threads, cfg.bn_group, steps, &r, json);
                if (sizes[i] == 1) base = r.ips;
                if (scaling && !json && sizes[i] > 1)
                    printf("  scaling efficiency against %d x the 1-rank rate: %.0f%%\n",
                           sizes[i], 100 * r.ips / (sizes[i] * base));
                fflush(stdout);
            }
            dist_sub_free(&sub);
        }
        dist_barrier(d);  // the other ranks wait, idle, so the machine is the subset's
    }
    config_free(&cfg);
    return 0;
}
