// augment.h: data augmentation as pure math on a batch of float images (B,C,H,W), applied
// after the gather and before the forward pass: random crop with padding, horizontal and
// vertical flips, random erasing (per sample), mixup and cutmix (per global batch), and the
// soft-target loss that mixing needs. See docs/augmentation.md for the exact definitions.
//
// Every random choice is a pure function of Philox(key, counter) (philox.h):
//   per sample: key {seed, AUGMENT_KEY_*},  counter {draw, global sample index, epoch, stream}
//   per batch:  key {seed, AUGMENT_KEY_MIX}, counter {draw, AUGMENT_BATCH_SAMPLE, step, stream}
// never a generator with state, never the rank or the batch slot: the same run on 1, 2, 4 or
// 8 ranks draws the same crops, flips, boxes and λ, and resume is exact.
// Nothing here allocates: the per-sample transforms take a scratch buffer of C*H*W floats.
#pragma once
#include <stdint.h>

#include "err.h"
#include "philox.h"

// Philox key word 1 of each transform: far above any layer id (layers count from 0) and
// below PHILOX_KEY_SHUFFLE, so no augmentation draw shares a key with a mask or the shuffle.
enum {
    AUGMENT_KEY_CROP = 0xFFFFFF01u,
    AUGMENT_KEY_FLIP = 0xFFFFFF02u,
    AUGMENT_KEY_ERASE = 0xFFFFFF03u,
    AUGMENT_KEY_MIX = 0xFFFFFF04u,
};
// Counter word 3. Training draws use AUGMENT_STREAM_TRAIN; test-time augmentation pass k may
// use AUGMENT_STREAM_TTA_BASE + k (same layout, disjoint counters).
enum { AUGMENT_STREAM_TRAIN = 0, AUGMENT_STREAM_TTA_BASE = 0x200 };
// Counter word 1 of the per-batch (mix) draws: no dataset has 2^32-1 samples.
enum { AUGMENT_BATCH_SAMPLE = 0xFFFFFFFFu };
// Counter word 0 (the draw) of erasing: draw 0 decides, draws 1..10 are the attempts,
// draws from ERASE_NOISE_DRAW on are the noise of the erased pixels (4 per draw).
enum { AUGMENT_ERASE_TRIES = 10, AUGMENT_ERASE_NOISE_DRAW = 16 };
// Draw 0 of the mix decides apply/switch/centre; the two Gamma variates of λ ~ Beta(α, α)
// start at these draws (one rejection-sampling attempt per draw), so X's rejections never
// shift Y's counters.
enum { AUGMENT_GAMMA_X_DRAW = 1, AUGMENT_GAMMA_Y_DRAW = 0x10000, AUGMENT_GAMMA_MAX_TRIES = 0x8000 };

enum { AUGMENT_PAD_ZERO = 0, AUGMENT_PAD_REFLECT = 1 };      // F.pad 'constant' / 'reflect'
enum { AUGMENT_ERASE_ZERO = 0, AUGMENT_ERASE_NOISE = 1 };    // value=0 / value='random'

typedef struct {
    int crop_pad;          // padding p of RandomCrop(H, padding=p); 0 = no crop
    int crop_mode;         // AUGMENT_PAD_ZERO or AUGMENT_PAD_REFLECT
    float hflip, vflip;    // probability of each flip
    float erase;           // probability of random erasing
    float erase_area[2];   // erased area fraction ~ U(lo, hi)             (0.02, 0.33)
    float erase_aspect[2]; // aspect h/w log-uniform in (lo, hi)           (0.3, 3.3)
    int erase_value;       // AUGMENT_ERASE_ZERO or AUGMENT_ERASE_NOISE
    float mixup, cutmix;   // Beta(α, α) parameters; 0 = off
    float mix_prob;        // probability that a global batch is mixed
    float mix_switch;      // with both on: probability of cutmix rather than mixup (timm 0.5)
} AugmentConfig;

// The defaults: everything off, the ranges as torchvision/timm have them.
AugmentConfig augment_defaults(void);
// 1 if some per-sample transform is on; 1 if batch mixing is on.
int augment_per_sample_on(const AugmentConfig *cfg);
int augment_mix_on(const AugmentConfig *cfg);
// ERR_INPUT naming the key when a value is out of range for images (C,H,W).
int augment_check(const AugmentConfig *cfg, int C, int H, int W, Err *e);

// ---------------------------------------------------------------- per sample
// The random choices for one sample: pure function of (seed, epoch, id, stream).
typedef struct {
    int dy, dx;           // crop offsets in the padded image, each in [0, 2p]
    int hflip, vflip;     // 0/1
    int erase;            // 0/1: a box was drawn and fits
    int ey, ex, eh, ew;   // erased box: rows [ey, ey+eh), columns [ex, ex+ew)
} AugmentDraws;

void augment_sample_draws(AugmentDraws *d, const AugmentConfig *cfg, uint32_t seed,
                          uint32_t epoch, int64_t id, uint32_t stream, int H, int W);

// out (C,H,W) = the H x W window at (dy, dx) of inp (C,H,W) padded by pad on every side
// (torchvision F.pad(inp, pad, mode) then F.crop(dy, dx, H, W)). out must not alias inp.
void augment_crop(float *out, const float *inp, int C, int H, int W, int pad, int mode, int dy,
                  int dx);
// x (C,H,W) mirrored left-right / top-bottom, in place.
void augment_hflip(float *x, int C, int H, int W);
void augment_vflip(float *x, int C, int H, int W);
// x (C,H,W): the box set to 0, or (noise) to N(0,1) per pixel, pixel e (c,h,w order in the box)
// using Box-Muller on the words of draw ERASE_NOISE_DRAW + e/4.
void augment_erase(float *x, const AugmentDraws *d, int value, philox_key key, uint32_t epoch,
                   int64_t id, uint32_t stream, int C, int H, int W);

// x (B,C,H,W) in place: crop, flips, erasing of each sample b by its own draws from
// (seed, epoch, ids[b], stream). scratch is (C*H*W) floats. ids is (B).
void augment_batch(float *x, float *scratch, const AugmentConfig *cfg, const int64_t *ids,
                   uint32_t seed, uint32_t epoch, uint32_t stream, int B, int C, int H, int W);

// ---------------------------------------------------------------- per global batch
// One draw per global batch (timm's mode 'batch'): pure function of (seed, step, stream).
typedef struct {
    int active;          // 0: this batch is not mixed (λ = 1)
    int cutmix;          // 1: the partner's box is pasted; 0: mixup blend
    float lam;           // weight of the sample's own label (cutmix: corrected to the box)
    int y0, y1, x0, x1;  // cutmix box: rows [y0, y1), columns [x0, x1)
} AugmentMix;

void augment_mix_draw(AugmentMix *m, const AugmentConfig *cfg, uint32_t seed, uint32_t step,
                      uint32_t stream, int H, int W);
// λ ~ Beta(a, a) (a > 0) from key and counters {draw, sample, step, stream}: Gamma variates by
// Marsaglia-Tsang (with the U^(1/a) boost for a < 1) in log space, λ = X/(X+Y).
double augment_beta(double a, philox_key key, uint32_t sample, uint32_t step, uint32_t stream);

// The partner rule: position i of a global batch of n mixes with position n-1-i (the batch
// reversed, as timm's x.flip(0)). It depends on neither the world size nor the rank.
static inline int64_t augment_mix_partner(int64_t pos, int64_t n) { return n - 1 - pos; }

// x (B,C,H,W) in place: mixup x = λ x + (1-λ) xp, or cutmix x[box] = xp[box]. xp (B,C,H,W)
// holds in row b the (per-sample augmented) partner of row b and must not overlap x.
void augment_mix_apply(float *x, const float *xp, const AugmentMix *m, int B, int C, int H,
                       int W);

// target (B,K) = λ·smooth(y_a) + (1-λ)·smooth(y_b), smooth(y) = 1-ε+ε/K on y, ε/K elsewhere
// (timm's mixup_target: smooth first, then mix). y_a, y_b are (B).
void augment_mix_targets(float *target, const int32_t *y_a, const int32_t *y_b, float lam,
                         float smoothing, int B, int K);
// Soft-target cross-entropy over the mixed targets without materializing them: logits and
// dlogits (B,K); dlogits = (softmax - target) * grad_scale. Returns the summed loss (equal to
// λ·CE(y_a) + (1-λ)·CE(y_b), both smoothed). *correct += argmax hits of the dominant label
// (y_a if λ >= 0.5 else y_b). With λ = 1 it is xent_forward_backward on y_a.
double mix_xent_forward_backward(float *dlogits, int64_t *correct, const float *logits,
                                 const int32_t *y_a, const int32_t *y_b, float lam, int B, int K,
                                 float smoothing, float grad_scale);
