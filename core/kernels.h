// kernels.h: the plain layer kernels, callable directly (tests, and layers built from others).
// Conventions (llm.c): outputs first, then inputs, then sizes; backward accumulates into
// parameter gradients and overwrites the input gradient.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "philox.h"

void linear_forward(float *out, const float *inp, const float *weight, const float *bias, int B,
                    int C, int OC);
void linear_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, int B, int C, int OC);
void relu_forward(float *out, const float *inp, size_t N);
void relu_backward(float *dinp, const float *dout, const float *out, size_t N);
void gelu_forward(float *out, float *cdf, const float *inp, size_t N);
void gelu_backward(float *dinp, const float *dout, const float *inp, const float *cdf, size_t N);
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                       const float *bias, int B, int D, float eps);
void layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, const float *mean,
                        const float *rstd, int B, int D);
void dropout_mask(uint8_t *keep, size_t n, float p, philox_key key, uint32_t sample,
                  uint32_t step, uint32_t stream);
void dropout2d_forward(float *out, const float *inp, const uint8_t *keep, float scale, int B,
                       int C, int HW);
// ReLU then dropout (keep (N), one byte an element) or Dropout2d (keep (B,C), one byte a
// channel) in one sweep; keep NULL = no mask (eval, p = 0): plain ReLU. x is the ReLU's input.
// Bit-identical to relu_forward followed by the dropout's forward, and to the two backwards.
void relu_dropout_forward(float *out, const float *x, const uint8_t *keep, float scale,
                          size_t N);
void relu_dropout_backward(float *dx, const float *dout, const float *x, const uint8_t *keep,
                           float scale, size_t N);
void relu_dropout2d_forward(float *out, const float *x, const uint8_t *keep, float scale, int B,
                            int C, int HW);
void relu_dropout2d_backward(float *dx, const float *dout, const float *x, const uint8_t *keep,
                             float scale, int B, int C, int HW);
size_t dropblock_mask(uint8_t *keep, int C, int H, int W, int bs, float p, philox_key key,
                      uint32_t sample, uint32_t step, uint32_t stream);
void dropblock_apply(float *out, const float *inp, const uint8_t *keep, float scale, size_t N);
// DropConnect draws one weight mask per step with this in the sample word of the counter:
// no dataset has 2^32-1 samples, so it never collides with a per-sample mask.
enum { DROPCONNECT_SAMPLE = 0xFFFFFFFFu };
void dropconnect_weight(float *wm, uint8_t *keep, const float *weight, float p, philox_key key,
                        uint32_t step, uint32_t stream, size_t n);
void conv2d_im2col(float *col, const float *inp, int C, int H, int W, int K, int S, int P, int OH,
                   int OW);
void conv2d_col2im(float *dinp, const float *col, int C, int H, int W, int K, int S, int P, int OH,
                   int OW);
void conv2d_forward(float *out, float *col, const float *inp, const float *weight,
                    const float *bias, int B, int C, int H, int W, int OC, int K, int S, int P);
void conv2d_backward(float *dinp, float *dweight, float *dbias, float *col, const float *dout,
                     const float *inp, const float *weight, int B, int C, int H, int W, int OC,
                     int K, int S, int P);
// A 3x3, stride-1, padding-1 convolution computed directly (direct3x3.c), for few input
// channels: out (B,OC,H,W) = inp (B,C,H,W) convolved with weight (OC,C,3,3), plus bias (OC)
// unless NULL; each output the fused multiply-adds over (c, ky, kx) in order, as the im2col
// GEMM's. work is scratch of conv3x3_direct_work_floats(C, H, W) floats; portable = 1 takes the
// scalar loop even where AVX-512 is built (the same results), for tests.
size_t conv3x3_direct_work_floats(int C, int H, int W);
void conv3x3_direct_forward(float *out, float *work, const float *inp, const float *weight,
                            const float *bias, int B, int C, int H, int W, int OC, int portable);
// Winograd F(2x2, 3x3) for 3x3, stride-1, padding-1 convolutions (winograd.c). Transformed
// tensors are (16, channels, tiles), tiles = nb * ceil(H/2) * ceil(W/2) with row stride ld,
// their 16 planes (channels, ld) winograd_plane(channels, ld) floats apart.
// U is (16, OC, C) from weight (OC, C, 3, 3), or with rotate = 1 (16, C, OC) from the weights
// rotated by 180 degrees with the channels swapped: the filter whose convolution of dout
// is dinp.
void winograd_filter(float *U, const float *weight, int OC, int C, int rotate);
// The stride between the planes of a transformed tensor: channels * ld rounded up to an odd
// number of cache lines. A transform writes (or reads) all 16 or 36 planes at once; planes a
// multiple of 4 KiB apart (128 channels of 32 tiles) share one set of the 8-way L1 and evict
// each other, while an odd line stride spreads them over every set.
size_t winograd_plane(int channels, size_t ld);
void winograd_input(float *V, size_t ld, const float *inp, int nb, int C, int H, int W);
void winograd_output(float *out, const float *M, size_t ld, const float *bias, int nb, int OC,
                     int H, int W);
void winograd_dout(float *D, size_t ld, const float *dout, int nb, int OC, int H, int W);
void winograd_filter_grad(float *dweight, const float *dU, int OC, int C);
// The portable loops that the three transforms above replace with AVX-512 where the build has
// it; the same results, kept callable so that tests compare the two.
void winograd_input_generic(float *V, size_t ld, const float *inp, int nb, int C, int H, int W);
void winograd_output_generic(float *out, const float *M, size_t ld, const float *bias, int nb,
                             int OC, int H, int W);
void winograd_dout_generic(float *D, size_t ld, const float *dout, int nb, int OC, int H, int W);
// Scratch floats for a chunk of nb samples in either function below.
size_t winograd_work_floats(int C, int OC, int H, int W, int nb);
// out (B,OC,H,W) = the convolution of inp (B,C,H,W) by the filters U transforms, nb samples
// per chunk, plus bias (OC) unless NULL.
void conv2d_winograd_forward(float *out, float *work, int nb, const float *U, const float *inp,
                             const float *bias, int B, int C, int H, int W, int OC);
// dweight (OC,C,3,3) += the weight gradient of dout (B,OC,H,W) at inp (B,C,H,W); dU holds
// 16*OC*C floats of scratch.
void conv2d_winograd_dweight(float *dweight, float *dU, float *work, int nb, const float *dout,
                             const float *inp, int B, int C, int H, int W, int OC);
// One chunk of n <= nb samples of either function above (inp, dout, out at its first
// sample; work laid out for nb): the forward's output, or dU (16, OC, C) = beta dU + the
// chunk's transformed weight gradient (beta 0 on the first chunk; winograd_filter_grad then
// adds the sum to dweight). The same work as the whole call, chunk by chunk.
void winograd_forward_chunk(float *out, float *work, int nb, const float *U, const float *inp,
                            const float *bias, int n, int C, int H, int W, int OC);
void winograd_dweight_chunk(float *dU, float *work, int nb, const float *dout, const float *inp,
                            int n, int C, int H, int W, int OC, float beta);
// Winograd F(4x4, 3x3) (winograd4.c), the same contract with 36 frequencies: transformed
// tensors are (36, channels, tiles), tiles = nb * ceil(H/4) * ceil(W/4), planes
// winograd_plane(channels, ld) apart; U is (36, OC, C)
// or, rotated, (36, C, OC). pad is scratch of a zero-padded channel (inside the work area in
// the two convolutions below); portable = 1 takes the scalar loops even where AVX-512 is
// built, so that tests compare the two.
void winograd4_filter(float *U, const float *weight, int OC, int C, int rotate);
void winograd4_input(float *V, size_t ld, float *pad, const float *inp, int nb, int C, int H,
                     int W, int portable);
void winograd4_output(float *out, const float *M, size_t ld, const float *bias, int nb, int OC,
                      int H, int W, int portable);
void winograd4_dout(float *D, size_t ld, float *pad, const float *dout, int nb, int OC, int H,
                    int W, int portable);
void winograd4_filter_grad(float *dweight, const float *dU, int OC, int C);
size_t winograd4_work_floats(int C, int OC, int H, int W, int nb);
// As conv2d_winograd_forward / _dweight; dU holds 36*OC*C floats.
void conv2d_winograd4_forward(float *out, float *work, int nb, const float *U, const float *inp,
                              const float *bias, int B, int C, int H, int W, int OC);
void conv2d_winograd4_dweight(float *dweight, float *dU, float *work, int nb, const float *dout,
                              const float *inp, int B, int C, int H, int W, int OC);
void winograd4_forward_chunk(float *out, float *work, int nb, const float *U, const float *inp,
                             const float *bias, int n, int C, int H, int W, int OC);
void winograd4_dweight_chunk(float *dU, float *work, int nb, const float *dout, const float *inp,
                             int n, int C, int H, int W, int OC, float beta);
// Either variant's entry points as one table, for code that runs F(2x2) and F(4x4) alike
// (tests, launch/bench/conv_bench.c); freqs: the transformed planes, 16 or 36.
typedef struct {
    int freqs;
    void (*filter)(float *U, const float *weight, int OC, int C, int rotate);
    size_t (*work_floats)(int C, int OC, int H, int W, int nb);
    void (*forward)(float *out, float *work, int nb, const float *U, const float *inp,
                    const float *bias, int B, int C, int H, int W, int OC);
    void (*dweight)(float *dweight, float *dU, float *work, int nb, const float *dout,
                    const float *inp, int B, int C, int H, int W, int OC);
    void (*filter_grad)(float *dweight, const float *dU, int OC, int C);
    void (*forward_chunk)(float *out, float *work, int nb, const float *U, const float *inp,
                          const float *bias, int n, int C, int H, int W, int OC);
    void (*dweight_chunk)(float *dU, float *work, int nb, const float *dout, const float *inp,
                          int n, int C, int H, int W, int OC, float beta);
} WinogradKernels;
extern const WinogradKernels winograd2_kernels, winograd4_kernels;
// The whole batch nb samples a chunk by k's chunk kernels: what conv2d_winograd_forward /
// _dweight and their F(4x4) twins run.
void winograd_batch_forward(const WinogradKernels *k, float *out, float *work, int nb,
                            const float *U, const float *inp, const float *bias, int B, int C,
                            int H, int W, int OC);
void winograd_batch_dweight(const WinogradKernels *k, float *dweight, float *dU, float *work,
                            int nb, const float *dout, const float *inp, int B, int C, int H,
                            int W, int OC);
void maxpool2d_forward(float *out, int32_t *argmax, const float *inp, int B, int C, int H, int W,
                       int K, int S, int P);
void maxpool2d_backward(float *dinp, const float *dout, const int32_t *argmax, int B, int C, int H,
                        int W, int OH, int OW);
void maxpool2x2_backward(float *dinp, const float *dout, const int32_t *argmax, int B, int C,
                         int H, int W);
// The 2x2 stride-2 kernels on N planes of (H,W), out and dout (N,H/2,W/2), not counted in
// the profile's bytes: for fused passes that pool a plane still in cache.
void maxpool2x2_forward_planes(float *out, int32_t *argmax, const float *inp, int N, int H,
                               int W);
void maxpool2x2_backward_planes(float *dinp, const float *dout, const int32_t *argmax, int N,
                                int H, int W);
void avgpool2d_forward(float *out, const float *inp, int B, int C, int H, int W, int K, int S,
                       int P);
void avgpool2d_backward(float *dinp, const float *dout, int B, int C, int H, int W, int K, int S,
                        int P);
void globalavgpool_forward(float *out, const float *inp, int B, int C, int HW);
void globalavgpool_backward(float *dinp, const float *dout, int B, int C, int HW);
void batchnorm_stats(double *stats, const float *inp, int B, int C, int HW);
// The same statistics in two steps, the first where the input is still in cache (a
// convolution's output, chunk by chunk): pm (N, 2) = [mean, M2] of each of N planes (HW), then
// stats (3*C) from the moments pm (B, C, 2) of inp's planes, bit for bit batchnorm_stats(inp).
void batchnorm_plane_moments(double *pm, const float *inp, int N, int HW);
void batchnorm_stats_from_moments(double *stats, const double *pm, int B, int C, int HW);
void bn_stats_combine(double *dst, const double *src, int C);
void batchnorm_forward(float *out, const float *inp, const double *mean, const double *rstd,
                       const float *weight, const float *bias, int B, int C, int HW);
// pos (B, C, (H W + 15) / 16): the output's sign bits, bit i % 16 of word i / 16 of each
// plane; argmax not NULL: a 2x2 stride-2 max-pool follows, out and argmax (B, C, H/2, W/2)
void batchnorm_forward_relu_mask(float *out, int32_t *argmax, uint16_t *pos, const float *inp,
                                 const double *mean, const double *rstd, const float *weight,
                                 const float *bias, const uint8_t *keep, int per_channel,
                                 float scale, int B, int C, int H, int W);
void batchnorm_backward_sums(double *sums, const float *dout, const float *inp,
                             const double *mean, const double *rstd, int B, int C, int HW);
void batchnorm_backward_input(float *dinp, const float *dout, const float *inp,
                              const double *mean, const double *rstd, const double *sums,
                              const double *count, const float *weight, int B, int C, int HW);
void batchnorm_backward_affine(float *dinp, const float *dout, const double *rstd,
                               const float *weight, int B, int C, int HW);
