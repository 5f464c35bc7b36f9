// prof.h: where a training step's time goes, for `regdist bench`'s roofline: seconds in GEMMs,
// in Winograd/im2col transforms and in elementwise passes, the FLOPs the GEMMs actually
// execute (Winograd's real products, not the direct convolution's count) and the bytes the
// elementwise passes move. Counters only: nothing here changes a result. Off (and free, one
// branch a call) unless prof_enable(1); one process-wide set, as a rank runs one step at a
// time on one thread (OpenBLAS's own threads are inside a timed GEMM).
#pragma once
#include <stdint.h>

// PROF_COMM: inside a layer, the statistics reduction across ranks (StepCtx.reduce_stats:
// SyncBN's communication, mostly waiting for the group's slowest rank).
typedef enum {
    PROF_GEMM = 0,
    PROF_TRANSFORM = 1,
    PROF_ELEMENTWISE = 2,
    PROF_COMM = 3,
    PROF_KINDS = 4
} ProfKind;

typedef struct {
    int on;
    double seconds[PROF_KINDS];
    double gemm_flops;        // 2 M N K over every sgemm timed as PROF_GEMM
    double elementwise_bytes; // bytes read and written by the elementwise passes
} Profile;

extern Profile prof;

void prof_enable(int on);  // and zero the counters
void prof_reset(void);
double prof_clock(void);   // seconds, monotonic
// Adds the time since t0 (a prof_clock()) to kind k and returns the clock now.
static inline double prof_add(ProfKind k, double t0) {
    if (!prof.on) return 0;
    double t = prof_clock();
    prof.seconds[k] += t - t0;
    return t;
}
static inline double prof_start(void) { return prof.on ? prof_clock() : 0; }
static inline void prof_gemm_flops(double m, double n, double k) {
    if (prof.on) prof.gemm_flops += 2.0 * m * n * k;
}
static inline void prof_bytes(double floats_moved) {
    if (prof.on) prof.elementwise_bytes += 4.0 * floats_moved;
}

#include <cblas.h>

// cblas_sgemm (row-major), timed as PROF_GEMM and counted, when the profile is on.
static inline void prof_sgemm(enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb, int M, int N,
                              int K, float alpha, const float *A, int lda, const float *B,
                              int ldb, float beta, float *C, int ldc) {
    double t = prof_start();
    cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    prof_gemm_flops(M, N, K);
    prof_add(PROF_GEMM, t);
}
