// test_core_maxpool.c: the 2x2 stride-2 max-pool (core/pool.c; AVX-512 where built) against a
// plain loop of PyTorch's rule (the first maximum in row-major window order; a NaN wins, the
// last one if several), values and argmax exactly, on widths that fill, split and underfill
// a vector (odd widths drop their last column and row), with ties, NaNs and -inf; and its
// backward, which writes every input gradient without a memset first, against the general
// scatter, to the bit (-0 gradients included).
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/kernels.h"
#include "core/philox.h"

static void reference(float *y, int32_t *a, const float *x, int N, int H, int W) {
    int OH = H / 2, OW = W / 2;
    for (int n = 0; n < N; n++)
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++) {
                float best = -INFINITY;
                int32_t arg = 2 * oh * W + 2 * ow;
                for (int dy = 0; dy < 2; dy++)
                    for (int dx = 0; dx < 2; dx++) {
                        int32_t i = (2 * oh + dy) * W + 2 * ow + dx;
                        float v = x[(size_t)n * H * W + i];
                        if (v > best || isnan(v)) best = v, arg = i;
                    }
                y[((size_t)n * OH + oh) * OW + ow] = best;
                a[((size_t)n * OH + oh) * OW + ow] = arg;
            }
}

static void test_maxpool2x2_matches_rule(void **state) {
    (void)state;
    static const int shapes[][3] = {{3, 28, 28}, {2, 14, 14}, {4, 7, 7}, {2, 5, 9},
                                    {1, 6, 70}, {2, 2, 2},  {1, 3, 33}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int N = shapes[s][0], H = shapes[s][1], W = shapes[s][2], OH = H / 2, OW = W / 2;
        size_t n = (size_t)N * H * W, m = (size_t)N * OH * OW;
        float *x = malloc(n * sizeof(float)), *y1 = malloc(m * sizeof(float)),
              *y2 = malloc(m * sizeof(float));
        int32_t *a1 = malloc(m * sizeof(int32_t)), *a2 = malloc(m * sizeof(int32_t));
        for (size_t i = 0; i < n; i++) {
            philox_ctr r = philox4x32_10((philox_ctr){{(uint32_t)i, (uint32_t)s, 0, 0}},
                                         (philox_key){{1, 1}});
            x[i] = (float)(r.v[0] % 5) - 2.0f;  // few values: many ties
            if (r.v[1] % 17 == 0) x[i] = NAN;
            if (r.v[1] % 19 == 0) x[i] = -INFINITY;
        }
        maxpool2d_forward(y1, a1, x, N, 1, H, W, 2, 2, 0);
        reference(y2, a2, x, N, H, W);
        assert_memory_equal(y1, y2, m * sizeof(float));
        assert_memory_equal(a1, a2, m * sizeof(int32_t));
        // backward: the 2x2 kernel writes what the general scatter into zeros gives
        float *dy = malloc(m * sizeof(float)), *d1 = malloc(n * sizeof(float)),
              *d2 = malloc(n * sizeof(float));
        for (size_t i = 0; i < m; i++) dy[i] = i % 7 == 3 ? -0.0f : (float)(i % 11) - 5.0f;
        for (size_t i = 0; i < n; i++) d1[i] = 1e3f;  // overwritten, every element
        maxpool2x2_backward(d1, dy, a1, N, 1, H, W);
        maxpool2d_backward(d2, dy, a1, N, 1, H, W, OH, OW);
        assert_memory_equal(d1, d2, n * sizeof(float));
        free(dy), free(d1), free(d2);
        free(x), free(y1), free(y2), free(a1), free(a2);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_maxpool2x2_matches_rule)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
