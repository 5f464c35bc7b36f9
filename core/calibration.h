// calibration.h: expected calibration error over equal-width confidence bins
// (Guo et al. 2017): sum over bins of |bin| / n * |accuracy(bin) - mean confidence(bin)|.
#pragma once
#include <stdint.h>

#define ECE_BINS 15

// All sums are doubles (counts exact to 2^53), so partial bins from several ranks add up as
// one flat array of doubles.
typedef struct {
    double count[ECE_BINS];
    double conf_sum[ECE_BINS];
    double correct[ECE_BINS];
} EceBins;
#define ECE_BINS_DOUBLES (3 * ECE_BINS)

// probs (B,K) softmax outputs, y (B) labels.
void ece_accumulate(EceBins *bins, const float *probs, const int32_t *y, int B, int K);
double ece_value(const EceBins *bins);
// Mean confidence (the largest class probability) over everything accumulated.
double ece_mean_confidence(const EceBins *bins);
