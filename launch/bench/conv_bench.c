// conv_bench.c: the Winograd convolutions of cnn6_mlp4, one at a time, for kernel work that
// a whole step's noise would hide. For each 3x3 layer shape that takes a Winograd route at
// batch 128, with the chunk conv2d.c picks for it, prints the best of N runs in thread CPU
// time (ms) of: the filter transform, forward, the input gradient (forward by the rotated
// filters) and the weight gradient, and a checksum of forward's output, so two builds can be
// compared side by side for speed and for bits:
//
//   cmake --build build --target conv_bench
//   for i in 1 2 3; do old/conv_bench; build/conv_bench; done      # OPENBLAS_NUM_THREADS=1
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/kernels.h"

enum { B = 128, RUNS = 30 };

typedef struct {
    int four;          // F(4x4), else F(2x2)
    int C, OC, H, nb;  // channels in, out, plane side, samples a chunk (conv2d.c's choice)
    const char *name;
} Shape;

static const Shape shapes[] = {
    {1, 32, 32, 28, 2, "conv1b"},  {1, 32, 64, 14, 5, "conv2a"},  {1, 64, 64, 14, 4, "conv2b"},
    {1, 64, 128, 7, 8, "conv3a"},  {1, 128, 128, 7, 8, "conv3b"},
};

static double cpu_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static float *filled(size_t n, unsigned seed) {
    float *x = malloc(n * sizeof(float));
    if (!x) {
        fprintf(stderr, "conv_bench: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)(seed >> 8) / (float)(1u << 24) * 2.0f - 1.0f;
    }
    return x;
}

#define BEST(ms, call)                                                                        \
    do {                                                                                      \
        ms = 1e30;                                                                            \
        for (int r_ = 0; r_ < RUNS; r_++) {                                                   \
            double t_ = cpu_seconds();                                                        \
            call;                                                                             \
            t_ = 1e3 * (cpu_seconds() - t_);                                                  \
            if (t_ < ms) ms = t_;                                                             \
        }                                                                                     \
    } while (0)

int main(void) {
    printf("layer   shape            filter  forward  dinput  dweight (ms, best of %d)  checksum\n",
           RUNS);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const Shape *p = &shapes[s];
        const WinogradKernels *v = p->four ? &winograd4_kernels : &winograd2_kernels;
        int C = p->C, OC = p->OC, H = p->H, R = C > OC ? C : OC, F = v->freqs;
        size_t nx = (size_t)B * C * H * H, ny = (size_t)B * OC * H * H;
        float *x = filled(nx, 1), *dy = filled(ny, 2), *w = filled((size_t)OC * C * 9, 3);
        float *y = filled(ny, 4), *dx = filled(nx, 5), *dw = filled((size_t)OC * C * 9, 6);
        float *U = filled((size_t)F * R * R, 7);
        float *work = filled(v->work_floats(R, R, H, H, p->nb), 8);
        double tf, tfw, tdx, tdw;
        BEST(tf, v->filter(U, w, OC, C, 0));
        BEST(tfw, v->forward(y, work, p->nb, U, x, NULL, B, C, H, H, OC));
        v->filter(U, w, OC, C, 1);
        BEST(tdx, v->forward(dx, work, p->nb, U, dy, NULL, B, OC, H, H, C));
        BEST(tdw, v->dweight(dw, U, work, p->nb, dy, x, B, C, H, H, OC));
        v->filter(U, w, OC, C, 0);  // forward once more for the checksum
        v->forward(y, work, p->nb, U, x, NULL, B, C, H, H, OC);
        double sum = 0;
        for (size_t i = 0; i < ny; i++) sum += y[i] * (double)(i % 7 + 1);
        printf("%-7s F(%dx%d) %3d->%-3d %2dx%-2d %6.3f %8.3f %7.3f %8.3f  %.9g\n", p->name,
               p->four ? 4 : 2, p->four ? 4 : 2, C, OC, H, H, tf, tfw, tdx, tdw, sum);
        free(x), free(dy), free(w), free(y), free(dx), free(dw), free(U), free(work);
    }
    return 0;
}
