// calibration.h: expected calibration error over equal-width confidence bins
// (Guo et al. 2017): sum over bins of |bin| / n * |accuracy(bin) - mean confidence(bin)|.
#pragma once
#include <stdint.h>

#define ECE_BINS 15

typedef struct {
    int64_t count[ECE_BINS];
    double conf_sum[ECE_BINS];
    int64_t correct[ECE_BINS];
} EceBins;

// probs (B,K) softmax outputs, y (B) labels.
void ece_accumulate(EceBins *bins, const float *probs, const int32_t *y, int B, int K);
double ece_value(const EceBins *bins);
// Mean confidence (the largest class probability) over everything accumulated.
double ece_mean_confidence(const EceBins *bins);
