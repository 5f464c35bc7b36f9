// test_core_winograd.c: the Winograd F(2x2, 3x3) convolution (core/winograd.c) against a
// direct convolution in double: forward, input gradient and weight gradient, on odd and even
// sizes (tiles hanging over the edge), one input channel, one and three samples, chunks that
// do and do not divide the batch; its AVX-512 transforms against the portable ones; and the
// conv2d layer on shapes that route through it.
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

static void check_close(const char *what, const float *got, const double *want, size_t n,
                        int B, int C, int OC, int H, int W) {
    double scale = 1e-30;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(want[i]));
    for (size_t i = 0; i < n; i++)
        if (fabs(got[i] - want[i]) > RTOL * scale)
            fail_msg("%s[%zu] (B=%d C=%d OC=%d %dx%d): %.8g, want %.8g (scale %.3g)", what, i, B,
                     C, OC, H, W, (double)got[i], want[i], scale);
}

// The kernels of winograd.c against the direct convolution, nb samples per chunk.
static void check_kernels(int B, int C, int OC, int H, int W, int nb) {
    size_t nx = (size_t)B * C * H * W, ny = (size_t)B * OC * H * W, nw = (size_t)OC * C * 9;
    float *x = random_floats(nx, 1), *w = random_floats(nw, 2), *b = random_floats(OC, 3),
          *dy = random_floats(ny, 4);
    double *ry = malloc(ny * sizeof(double)), *rdx = malloc(nx * sizeof(double)),
           *rdw = malloc(nw * sizeof(double));
    direct(ry, rdx, rdw, x, w, b, dy, B, C, OC, H, W);

    int R = C > OC ? C : OC;
    float *U = malloc((size_t)16 * R * R * sizeof(float)),
          *dU = malloc((size_t)16 * OC * C * sizeof(float)),
          *work = malloc(winograd_work_floats(C, OC, H, W, nb) * sizeof(float));
    float *y = malloc(ny * sizeof(float)), *dx = malloc(nx * sizeof(float)),
          *dw = malloc(nw * sizeof(float));
    winograd_filter(U, w, OC, C, 0);
    conv2d_winograd_forward(y, work, nb, U, x, b, B, C, H, W, OC);
    check_close("forward", y, ry, ny, B, C, OC, H, W);

    // the input gradient is the forward convolution of dy by the rotated, swapped weights
    winograd_filter(U, w, OC, C, 1);
    for (size_t i = 0; i < nx; i++) dx[i] = 1e3f;  // overwritten
    conv2d_winograd_forward(dx, work, nb, U, dy, NULL, B, OC, H, W, C);
    check_close("dinp", dx, rdx, nx, B, C, OC, H, W);

    // the weight gradient accumulates: start from 1, take 1 off after
    for (size_t i = 0; i < nw; i++) dw[i] = 1.0f;
    conv2d_winograd_dweight(dw, dU, work, nb, dy, x, B, C, H, W, OC);
    for (size_t i = 0; i < nw; i++) dw[i] -= 1.0f;
    check_close("dweight", dw, rdw, nw, B, C, OC, H, W);

    free(x), free(w), free(b), free(dy), free(ry), free(rdx), free(rdw);
    free(U), free(dU), free(work), free(y), free(dx), free(dw);
}

static void test_kernels_match_direct(void **state) {
    (void)state;
    static const int shapes[][5] = {
        // B, C, OC, H, W
        {1, 1, 4, 7, 7},   {3, 1, 2, 7, 7},   {1, 4, 3, 14, 14}, {3, 5, 6, 14, 14},
        {1, 3, 2, 28, 28}, {3, 2, 3, 28, 28}, {3, 4, 2, 5, 3},   {1, 1, 1, 5, 3},
        {2, 3, 2, 1, 1},   {2, 2, 3, 2, 9},   {1, 2, 2, 40, 37},  // > 16 tiles in a row
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
        size_t ld = (size_t)B * ((H + 1) / 2) * ((W + 1) / 2), nt = 16 * (size_t)C * ld;
        size_t nx = (size_t)B * C * H * W;
        float *x = random_floats(nx, 5), *m = random_floats(nt, 6), *b = random_floats(C, 7);
        float *v1 = malloc(nt * sizeof(float)), *v2 = malloc(nt * sizeof(float));
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
    check_layer(2, 3, 4, 9, 9, 1);  // im2col route: 3 input channels
    check_layer(2, 4, 4, 6, 6, 1);  // im2col route: below 7x7
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kernels_match_direct),
        cmocka_unit_test(test_transforms_match_portable),
        cmocka_unit_test(test_layer_matches_direct),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
