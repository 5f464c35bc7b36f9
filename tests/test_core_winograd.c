// test_core_winograd.c: the Winograd F(2x2, 3x3) convolution (core/winograd.c) against a
// direct convolution in double: forward, input gradient and weight gradient, on odd and even
// sizes (tiles hanging over the edge), one input channel, one and three samples, chunks that
// do and do not divide the batch; its AVX-512 transforms against the portable ones; the
// direct path for few input channels (core/direct3x3.c), bit for bit against its documented
// order of fused multiply-adds; and the conv2d layer on shapes that route through each.
// Tolerance: F(2,3) in float32 adds a few roundings per transform, so we demand agreement to
// 1e-5 of the reference's largest entry (observed errors stay under 1e-6 of it).
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/kernels.h"
#include "core/layer.h"
#include "core/philox.h"

#define RTOL 1e-5
#define RTOL4 1e-4

static float urand(uint32_t i, uint32_t salt) {
    philox_ctr r = philox4x32_10((philox_ctr){{i, salt, 0, 0}}, (philox_key){{3, 5}});
    return 2.0f * philox_unit(r.v[0]) - 1.0f;
}

static float *random_floats(size_t n, uint32_t salt) {
    float *x = malloc(n * sizeof(float) + 1);
    assert_non_null(x);
    for (size_t i = 0; i < n; i++) x[i] = urand((uint32_t)i, salt);
    return x;
}

// Direct 3x3 'same' convolution in double: y (B,OC,H,W) = conv(x (B,C,H,W), w (OC,C,3,3)) + b;
// dx (B,C,H,W) and dw (OC,C,3,3) are the gradients of sum(dy * y).
static void direct(double *y, double *dx, double *dw, const float *x, const float *w,
                   const float *b, const float *dy, int B, int C, int OC, int H, int W) {
    size_t HW = (size_t)H * W;
    memset(y, 0, (size_t)B * OC * HW * sizeof(double));
    memset(dx, 0, (size_t)B * C * HW * sizeof(double));
    memset(dw, 0, (size_t)OC * C * 9 * sizeof(double));
    for (int n = 0; n < B; n++)
        for (int o = 0; o < OC; o++)
            for (int i = 0; i < H; i++)
                for (int j = 0; j < W; j++) {
                    size_t yi = ((size_t)n * OC + o) * HW + (size_t)i * W + j;
                    double acc = b ? b[o] : 0.0;
                    for (int c = 0; c < C; c++)
                        for (int ky = 0; ky < 3; ky++)
                            for (int kx = 0; kx < 3; kx++) {
                                int iy = i - 1 + ky, ix = j - 1 + kx;
                                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                                size_t xi = ((size_t)n * C + c) * HW + (size_t)iy * W + ix;
                                size_t wi = (((size_t)o * C + c) * 3 + ky) * 3 + kx;
                                acc += (double)x[xi] * w[wi];
                                dx[xi] += (double)dy[yi] * w[wi];
                                dw[wi] += (double)dy[yi] * x[xi];
                            }
                    y[yi] = acc;
                }
}

// The largest |got - want| over the largest |want|.
static double rel_err(const float *got, const double *want, size_t n) {
    double scale = 1e-30, err = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(want[i]));
    for (size_t i = 0; i < n; i++) err = fmax(err, fabs(got[i] - want[i]));
    return err / scale;
}

static void check_close_tol(const char *what, const float *got, const double *want, size_t n,
                            int B, int C, int OC, int H, int W, double rtol) {
    double scale = 1e-30;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(want[i]));
    for (size_t i = 0; i < n; i++)
        if (fabs(got[i] - want[i]) > rtol * scale)
            fail_msg("%s[%zu] (B=%d C=%d OC=%d %dx%d): %.8g, want %.8g (scale %.3g)", what, i, B,
                     C, OC, H, W, (double)got[i], want[i], scale);
}

static void check_close(const char *what, const float *got, const double *want, size_t n,
                        int B, int C, int OC, int H, int W) {
    check_close_tol(what, got, want, n, B, C, OC, H, W, RTOL);
}

// One Winograd variant (core/kernels.h's table) and the tolerance it is held to.
typedef struct {
    const WinogradKernels *k;
    double rtol;
} Variant;

static const Variant F2 = {&winograd2_kernels, RTOL};
static const Variant F4 = {&winograd4_kernels, RTOL4};

// The kernels of a variant against the direct convolution, nb samples per chunk.
static void check_kernels_of(const Variant *v, int B, int C, int OC, int H, int W, int nb) {
    size_t nx = (size_t)B * C * H * W, ny = (size_t)B * OC * H * W, nw = (size_t)OC * C * 9;
    float *x = random_floats(nx, 1), *w = random_floats(nw, 2), *b = random_floats(OC, 3),
          *dy = random_floats(ny, 4);
    double *ry = malloc(ny * sizeof(double)), *rdx = malloc(nx * sizeof(double)),
           *rdw = malloc(nw * sizeof(double));
    direct(ry, rdx, rdw, x, w, b, dy, B, C, OC, H, W);

    int R = C > OC ? C : OC;
    float *U = malloc((size_t)v->k->freqs * R * R * sizeof(float)),
          *dU = malloc((size_t)v->k->freqs * OC * C * sizeof(float)),
          *work = malloc(v->k->work_floats(C, OC, H, W, nb) * sizeof(float));
    float *y = malloc(ny * sizeof(float)), *dx = malloc(nx * sizeof(float)),
          *dw = malloc(nw * sizeof(float));
    v->k->filter(U, w, OC, C, 0);
    v->k->forward(y, work, nb, U, x, b, B, C, H, W, OC);
    check_close_tol("forward", y, ry, ny, B, C, OC, H, W, v->rtol);

    // the input gradient is the forward convolution of dy by the rotated, swapped weights
    v->k->filter(U, w, OC, C, 1);
    for (size_t i = 0; i < nx; i++) dx[i] = 1e3f;  // overwritten
    v->k->forward(dx, work, nb, U, dy, NULL, B, OC, H, W, C);
    check_close_tol("dinp", dx, rdx, nx, B, C, OC, H, W, v->rtol);

    // the weight gradient accumulates: start from 1, take 1 off after
    for (size_t i = 0; i < nw; i++) dw[i] = 1.0f;
    v->k->dweight(dw, dU, work, nb, dy, x, B, C, H, W, OC);
    for (size_t i = 0; i < nw; i++) dw[i] -= 1.0f;
    check_close_tol("dweight", dw, rdw, nw, B, C, OC, H, W, v->rtol);

    free(x), free(w), free(b), free(dy), free(ry), free(rdx), free(rdw);
    free(U), free(dU), free(work), free(y), free(dx), free(dw);
}

static void check_kernels(int B, int C, int OC, int H, int W, int nb) {
    check_kernels_of(&F2, B, C, OC, H, W, nb);
    check_kernels_of(&F4, B, C, OC, H, W, nb);
}

static void test_kernels_match_direct(void **state) {
    (void)state;
    static const int shapes[][5] = {
        // B, C, OC, H, W
        {1, 1, 4, 7, 7},   {3, 1, 2, 7, 7},   {1, 4, 3, 14, 14}, {3, 5, 6, 14, 14},
        {1, 3, 2, 28, 28}, {3, 2, 3, 28, 28}, {3, 4, 2, 5, 3},   {1, 1, 1, 5, 3},
        {2, 3, 2, 1, 1},   {2, 2, 3, 2, 9},   {1, 2, 2, 40, 37},  // > 16 tiles in a row
        {2, 2, 3, 8, 8},   {3, 3, 2, 6, 10},  // F(4x4): tiles that do and do not fit exactly
        // F(4x4) two tiles wide in chunks of 8 and 16 samples: samples in lanes (with 12, a
        // last chunk of 4 in tile order); 5 rows: a second tile row half outside
        {16, 3, 5, 7, 7},  {12, 2, 3, 8, 8},  {16, 2, 3, 5, 6},
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int *d = shapes[s];
        for (int nb = 1; nb <= d[0]; nb++) check_kernels(d[0], d[1], d[2], d[3], d[4], nb);
    }
}

static void check_same(const char *what, const float *a, const float *b, size_t n) {
    double scale = 1e-30;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(b[i]));
    for (size_t i = 0; i < n; i++)
        if (fabs(a[i] - b[i]) > 1e-6 * scale)
            fail_msg("%s[%zu]: %.8g vs portable %.8g", what, i, (double)a[i], (double)b[i]);
}

// Each transform against its portable loop, over the whole transformed tensor.
static void test_transforms_match_portable(void **state) {
    (void)state;
    static const int shapes[][4] = {{2, 3, 7, 7}, {1, 2, 28, 28}, {2, 1, 5, 3}, {1, 2, 40, 35}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int B = shapes[s][0], C = shapes[s][1], H = shapes[s][2], W = shapes[s][3];
        size_t ld = (size_t)B * ((H + 1) / 2) * ((W + 1) / 2), nt = 16 * winograd_plane(C, ld);
        size_t nx = (size_t)B * C * H * W;
        float *x = random_floats(nx, 5), *m = random_floats(nt, 6), *b = random_floats(C, 7);
        float *v1 = calloc(nt, sizeof(float)), *v2 = calloc(nt, sizeof(float));  // gaps: 0
        float *y1 = malloc(nx * sizeof(float)), *y2 = malloc(nx * sizeof(float));
        winograd_input(v1, ld, x, B, C, H, W);
        winograd_input_generic(v2, ld, x, B, C, H, W);
        check_same("input transform", v1, v2, nt);
        winograd_dout(v1, ld, x, B, C, H, W);
        winograd_dout_generic(v2, ld, x, B, C, H, W);
        check_same("dout transform", v1, v2, nt);
        winograd_output(y1, m, ld, b, B, C, H, W);
        winograd_output_generic(y2, m, ld, b, B, C, H, W);
        check_same("output transform", y1, y2, nx);
        free(x), free(m), free(b), free(v1), free(v2), free(y1), free(y2);
    }
}

// Each F(4x4) transform against its portable loop, on widths of 1 to 10 tiles.
static void test_transforms4_match_portable(void **state) {
    (void)state;
    static const int shapes[][4] = {{2, 3, 7, 7},   {1, 2, 28, 28}, {3, 1, 5, 3},
                                    {1, 2, 40, 35}, {5, 2, 14, 14}, {2, 2, 9, 25},
                                    {1, 3, 16, 13}, {1, 1, 4, 32},  {8, 2, 7, 7},
                                    {16, 2, 6, 5}};  // 8 samples in lanes, permuted to tiles
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int B = shapes[s][0], C = shapes[s][1], H = shapes[s][2], W = shapes[s][3];
        size_t ld = (size_t)B * ((H + 3) / 4) * ((W + 3) / 4), nt = 36 * winograd_plane(C, ld);
        size_t nx = (size_t)B * C * H * W;
        float *x = random_floats(nx, 5), *m = random_floats(nt, 6), *b = random_floats(C, 7);
        float *v1 = calloc(nt, sizeof(float)), *v2 = calloc(nt, sizeof(float));  // gaps: 0
        float *y1 = malloc(nx * sizeof(float)), *y2 = malloc(nx * sizeof(float));
        float *pad = malloc(winograd4_work_floats(C, C, H, W, B) * sizeof(float));
        winograd4_input(v1, ld, pad, x, B, C, H, W, 0);
        winograd4_input(v2, ld, pad, x, B, C, H, W, 1);
        check_same("F4 input transform", v1, v2, nt);
        winograd4_dout(v1, ld, pad, x, B, C, H, W, 0);
        winograd4_dout(v2, ld, pad, x, B, C, H, W, 1);
        check_same("F4 dout transform", v1, v2, nt);
        winograd4_output(y1, m, ld, b, B, C, H, W, 0);
        winograd4_output(y2, m, ld, b, B, C, H, W, 1);
        check_same("F4 output transform", y1, y2, nx);
        free(x), free(m), free(b), free(v1), free(v2), free(y1), free(y2), free(pad);
    }
}

// The float32 error of F(2x2) and F(4x4) against the float64 direct convolution on every 3x3
// layer shape that takes a Winograd route in launch/configs/cnn6_mlp4.cfg and rescnn.cfg
// (conv1a/conv1, 1 -> 32, takes im2col), 2 samples, inputs uniform in [-1, 1) and in [0, 1)
// (what follows a ReLU). Relative to the reference's largest entry; the bounds are about 4x
// the largest values measured (docs/performance.md has the table).
static void measure(const Variant *v, int B, int C, int OC, int H, int W, int positive,
                    double err[3]) {
    size_t nx = (size_t)B * C * H * W, ny = (size_t)B * OC * H * W, nw = (size_t)OC * C * 9;
    float *x = random_floats(nx, 11), *w = random_floats(nw, 12), *dy = random_floats(ny, 13);
    if (positive)
        for (size_t i = 0; i < nx; i++) x[i] = 0.5f * (x[i] + 1.0f);
    double *ry = malloc(ny * sizeof(double)), *rdx = malloc(nx * sizeof(double)),
           *rdw = malloc(nw * sizeof(double));
    direct(ry, rdx, rdw, x, w, NULL, dy, B, C, OC, H, W);
    int R = C > OC ? C : OC;
    float *U = malloc((size_t)v->k->freqs * R * R * sizeof(float)),
          *dU = malloc((size_t)v->k->freqs * OC * C * sizeof(float)),
          *work = malloc(v->k->work_floats(C, OC, H, W, B) * sizeof(float));
    float *y = malloc(ny * sizeof(float)), *dx = malloc(nx * sizeof(float)),
          *dw = calloc(nw, sizeof(float));
    v->k->filter(U, w, OC, C, 0);
    v->k->forward(y, work, B, U, x, NULL, B, C, H, W, OC);
    err[0] = rel_err(y, ry, ny);
    v->k->filter(U, w, OC, C, 1);
    v->k->forward(dx, work, B, U, dy, NULL, B, OC, H, W, C);
    err[1] = rel_err(dx, rdx, nx);
    v->k->dweight(dw, dU, work, B, dy, x, B, C, H, W, OC);
    err[2] = rel_err(dw, rdw, nw);
    free(x), free(w), free(dy), free(ry), free(rdx), free(rdw);
    free(U), free(dU), free(work), free(y), free(dx), free(dw);
}

#define F2_BOUND 2e-6
#define F4_BOUND 2e-5

static void test_layer_shape_errors(void **state) {
    (void)state;
    static const int shapes[][3] = {
        // C, OC, H (= W)
        {32, 32, 28}, {32, 64, 14}, {64, 64, 14}, {64, 128, 7}, {128, 128, 7},
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int positive = 0; positive < 2; positive++) {
            int C = shapes[s][0], OC = shapes[s][1], H = shapes[s][2];
            double e2[3], e4[3];
            measure(&F2, 2, C, OC, H, H, positive, e2);
            measure(&F4, 2, C, OC, H, H, positive, e4);
            print_message("%3d -> %3d at %2dx%-2d x in %s: F(2x2) fwd %.2e dinp %.2e dw %.2e | "
                          "F(4x4) fwd %.2e dinp %.2e dw %.2e\n",
                          C, OC, H, H, positive ? "[0,1) " : "[-1,1)", e2[0], e2[1], e2[2], e4[0],
                          e4[1], e4[2]);
            for (int k = 0; k < 3; k++) {
                if (e2[k] > F2_BOUND) fail_msg("F(2x2) error %.3g over %.g", e2[k], F2_BOUND);
                if (e4[k] > F4_BOUND) fail_msg("F(4x4) error %.3g over %.g", e4[k], F4_BOUND);
            }
        }
}

// conv3x3_direct_forward, vector and portable, against the chain it documents: from 0, one
// fused multiply-add per (c, ky, kx) in that order (the im2col GEMM's depth order), then the
// bias; exactly, and close to the double reference.
static void check_direct(int B, int C, int OC, int H, int W, int bias) {
    size_t nx = (size_t)B * C * H * W, ny = (size_t)B * OC * H * W, nw = (size_t)OC * C * 9;
    float *x = random_floats(nx, 21), *w = random_floats(nw, 22), *b = random_floats(OC, 23);
    float *dy = random_floats(ny, 24), *want = malloc(ny * sizeof(float));
    float *pad = malloc(conv3x3_direct_work_floats(C, H, W) * sizeof(float));
    double *ry = malloc(ny * sizeof(double)), *rdx = malloc(nx * sizeof(double)),
           *rdw = malloc(nw * sizeof(double));
    for (int n = 0; n < B; n++)
        for (int o = 0; o < OC; o++)
            for (int i = 0; i < H; i++)
                for (int j = 0; j < W; j++) {
                    float acc = 0.0f;
                    for (int c = 0; c < C; c++)
                        for (int ky = 0; ky < 3; ky++)
                            for (int kx = 0; kx < 3; kx++) {
                                int iy = i - 1 + ky, ix = j - 1 + kx;
                                int in = iy >= 0 && iy < H && ix >= 0 && ix < W;
                                float xv = in ? x[(((size_t)n * C + c) * H + iy) * W + ix] : 0;
                                acc = fmaf(w[((size_t)o * C + c) * 9 + ky * 3 + kx], xv, acc);
                            }
                    want[(((size_t)n * OC + o) * H + i) * W + j] = bias ? acc + b[o] : acc;
                }
    direct(ry, rdx, rdw, x, w, bias ? b : NULL, dy, B, C, OC, H, W);
    for (int portable = 0; portable < 2; portable++) {
        float *y = malloc(ny * sizeof(float));
        conv3x3_direct_forward(y, pad, x, w, bias ? b : NULL, B, C, H, W, OC, portable);
        for (size_t i = 0; i < ny; i++)
            if (memcmp(&y[i], &want[i], sizeof(float)))
                fail_msg("direct forward%s[%zu] (B=%d C=%d OC=%d %dx%d): %.9g, want %.9g",
                         portable ? " (portable)" : "", i, B, C, OC, H, W, (double)y[i],
                         (double)want[i]);
        check_close("direct forward", y, ry, ny, B, C, OC, H, W);
        free(y);
    }
    free(x), free(w), free(b), free(dy), free(want), free(pad), free(ry), free(rdx), free(rdw);
}

static void test_direct_matches_its_order(void **state) {
    (void)state;
    check_direct(2, 1, 32, 28, 28, 0);  // cnn6_mlp4's conv1a: two vectors a row, one masked
    check_direct(3, 3, 5, 16, 16, 1);   // one full vector, an output block of 1
    check_direct(1, 2, 6, 9, 33, 1);    // three vectors a row, the last alone
    check_direct(2, 1, 4, 1, 1, 1);     // a single pixel: every tap but the centre is padding
}

// The conv2d layer on shapes that take the Winograd route (3x3, stride 1, padding 1, at least
// 7x7) and ones that do not, through setup's save area: forward, backward with and
// without the input gradient, the weight gradient accumulating.
static void check_layer(int B, int C, int OC, int H, int W, int bias) {
    LayerSpec s;
    memset(&s, 0, sizeof s);
    snprintf(s.type, sizeof s.type, "conv2d");
    snprintf(s.name, sizeof s.name, "c");
    s.out = OC, s.kernel = 3, s.padding = 1, s.bias = bias;
    Layer l;
    memset(&l, 0, sizeof l);
    l.spec = s, l.id = 1, l.kind = layer_kind_find("conv2d");
    assert_non_null(l.kind);
    ParamTable t;
    memset(&t, 0, sizeof t);
    Err e = {0};
    l.in = (Shape){3, {C, H, W}};
    assert_int_equal(l.kind->setup(&l, l.in, &t, &e), ERR_OK);
    l.save = malloc(l.save_bytes_per_sample * (size_t)B + l.save_bytes_fixed);
    size_t nx = (size_t)B * C * H * W, ny = (size_t)B * OC * H * W, nw = (size_t)OC * C * 9;
    float *params = random_floats(t.n_trainable, 8), *dparams = calloc(t.n_trainable, 4);
    float *x = random_floats(nx, 9), *dy = random_floats(ny, 10);
    float *y = malloc(ny * sizeof(float)), *dx = malloc(nx * sizeof(float));
    double *ry = malloc(ny * sizeof(double)), *rdx = malloc(nx * sizeof(double)),
           *rdw = malloc(nw * sizeof(double));
    direct(ry, rdx, rdw, x, params + l.poff[0], bias ? params + l.poff[1] : NULL, dy, B, C, OC,
           H, W);
    StepCtx c = {.train = 1};
    l.kind->forward(&l, y, x, params, NULL, &c, B);
    check_close("layer forward", y, ry, ny, B, C, OC, H, W);
    l.kind->backward(&l, dx, dparams, dy, x, y, params, &c, B);
    check_close("layer dinp", dx, rdx, nx, B, C, OC, H, W);
    check_close("layer dweight", dparams + l.poff[0], rdw, nw, B, C, OC, H, W);
    l.kind->backward(&l, NULL, dparams, dy, x, y, params, &c, B);
    for (size_t i = 0; i < nw; i++) rdw[i] *= 2;
    check_close("layer dweight (2x, no dinp)", dparams + l.poff[0], rdw, nw, B, C, OC, H, W);
    if (bias)
        for (int o = 0; o < OC; o++) {
            double sb = 0;
            for (int n = 0; n < B; n++)
                for (int i = 0; i < H * W; i++) sb += dy[((size_t)n * OC + o) * H * W + i];
            assert_float_equal(dparams[l.poff[1] + o], 2 * sb, 1e-4 * (1 + fabs(sb)));
        }
    free(l.save), free(params), free(dparams), free(x), free(dy), free(y), free(dx);
    free(ry), free(rdx), free(rdw);
    param_table_free(&t);
}

static void test_layer_matches_direct(void **state) {
    (void)state;
    check_layer(3, 4, 6, 14, 14, 1);
    check_layer(1, 8, 4, 28, 28, 0);
    check_layer(2, 5, 3, 11, 13, 1);
    check_layer(3, 6, 6, 7, 7, 0);
    check_layer(2, 4, 5, 9, 10, 1);  // F(2x2): F(4x4) would multiply 0.81 times as much
    check_layer(2, 3, 4, 9, 9, 1);  // direct forward: 3 input channels
    check_layer(3, 1, 32, 28, 28, 0);  // direct forward: cnn6_mlp4's conv1a
    check_layer(2, 1, 3, 1, 1, 1);  // direct forward: its padded sample outgrows the columns
    check_layer(2, 4, 4, 6, 6, 1);  // im2col route: below 7x7
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kernels_match_direct),
        cmocka_unit_test(test_transforms_match_portable),
        cmocka_unit_test(test_transforms4_match_portable),
        cmocka_unit_test(test_direct_matches_its_order),
        cmocka_unit_test(test_layer_shape_errors),
        cmocka_unit_test(test_layer_matches_direct),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
