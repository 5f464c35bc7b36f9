// calibration.c: expected calibration error (calibration.h).
#include "calibration.h"

#include <math.h>
#include <stddef.h>

void ece_accumulate(EceBins *bins, const float *probs, const int32_t *y, int B, int K) {
    for (int b = 0; b < B; b++) {
        const float *p = probs + (size_t)b * K;
        int best = 0;
        for (int k = 1; k < K; k++)
            if (p[k] > p[best]) best = k;
        double conf = p[best];
        int bin = (int)(conf * ECE_BINS);  // bins (i/15, (i+1)/15]; conf = 1 goes in the last
        if (bin >= ECE_BINS) bin = ECE_BINS - 1;
        if (bin > 0 && conf <= (double)bin / ECE_BINS) bin--;
        bins->count[bin]++;
        bins->conf_sum[bin] += conf;
        bins->correct[bin] += best == y[b];
    }
}

double ece_value(const EceBins *bins) {
    double n = 0;
    for (int i = 0; i < ECE_BINS; i++) n += bins->count[i];
    if (n == 0) return 0.0;
    double ece = 0.0;
    for (int i = 0; i < ECE_BINS; i++) {
        if (!bins->count[i]) continue;
        double acc = bins->correct[i] / bins->count[i];
        double conf = bins->conf_sum[i] / bins->count[i];
        ece += bins->count[i] / n * fabs(acc - conf);
    }
    return ece;
}

double ece_mean_confidence(const EceBins *bins) {
    double n = 0, sum = 0.0;
    for (int i = 0; i < ECE_BINS; i++) {
        n += bins->count[i];
        sum += bins->conf_sum[i];
    }
    return n ? sum / n : 0.0;
}
