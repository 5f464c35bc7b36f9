// augment.c: random crop with padding, flips, random erasing, mixup and cutmix (augment.h).
// The draws are separated from the pixel work: augment_sample_draws / augment_mix_draw turn
// Philox words into decisions, the kernels below apply given decisions, so each half is
// tested on its own (statistics on the draws, torchvision fixtures on the kernels).
#include "augment.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#define TWO_POW_M32 (1.0 / 4294967296.0)
#define AUG_PI 3.14159265358979323846

// Uniform double in [0, 1) from one word: p < 1 never fires at u = 1, p = 1 always fires.
static inline double unit32(uint32_t w) { return (double)w * TWO_POW_M32; }
// Uniform double in (0, 1): safe under log.
static inline double unit32_open(uint32_t w) { return ((double)w + 0.5) * TWO_POW_M32; }
// Uniform integer in [0, n) by multiply-high (bias below n / 2^32, n is a few pixels).
static inline int uniform_int(uint32_t w, int n) {
    return (int)(((uint64_t)w * (uint64_t)n) >> 32);
}

// Two standard normals from two words (Box-Muller; u1 in (0, 1] so the log is finite).
static inline void box_muller(double *z0, double *z1, uint32_t w0, uint32_t w1) {
    double u1 = ((double)w0 + 1.0) * TWO_POW_M32, u2 = unit32(w1);
    double rad = sqrt(-2.0 * log(u1));
    *z0 = rad * cos(2.0 * AUG_PI * u2);
    *z1 = rad * sin(2.0 * AUG_PI * u2);
}

static inline philox_ctr draw(philox_key key, uint32_t d, uint32_t sample, uint32_t when,
                              uint32_t stream) {
    return philox4x32_10((philox_ctr){{d, sample, when, stream}}, key);
}

AugmentConfig augment_defaults(void) {
    return (AugmentConfig){.crop_pad = 0,
                           .crop_mode = AUGMENT_PAD_ZERO,
                           .hflip = 0.0f,
                           .vflip = 0.0f,
                           .erase = 0.0f,
                           .erase_area = {0.02f, 0.33f},
                           .erase_aspect = {0.3f, 3.3f},
                           .erase_value = AUGMENT_ERASE_ZERO,
                           .mixup = 0.0f,
                           .cutmix = 0.0f,
                           .mix_prob = 1.0f,
                           .mix_switch = 0.5f};
}

int augment_per_sample_on(const AugmentConfig *cfg) {
    return cfg->crop_pad > 0 || cfg->hflip > 0.0f || cfg->vflip > 0.0f || cfg->erase > 0.0f;
}

int augment_mix_on(const AugmentConfig *cfg) {
    return (cfg->mixup > 0.0f || cfg->cutmix > 0.0f) && cfg->mix_prob > 0.0f;
}

static int prob_ok(float p) { return p >= 0.0f && p <= 1.0f; }  // false for NaN

int augment_check(const AugmentConfig *cfg, int C, int H, int W, Err *e) {
    (void)C;
    if (cfg->crop_pad < 0)
        return err_set(e, ERR_INPUT, "augment.crop_pad must be >= 0, got %d", cfg->crop_pad);
    if (cfg->crop_mode != AUGMENT_PAD_ZERO && cfg->crop_mode != AUGMENT_PAD_REFLECT)
        return err_set(e, ERR_INPUT, "augment.crop_mode must be \"zero\" or \"reflect\"");
    if (cfg->crop_mode == AUGMENT_PAD_REFLECT && cfg->crop_pad > 0 &&
        (cfg->crop_pad >= H || cfg->crop_pad >= W))
        return err_set(e, ERR_INPUT,
                       "augment.crop_pad = %d with crop_mode = \"reflect\" must be below the "
                       "image's height and width (%dx%d)",
                       cfg->crop_pad, H, W);
    const struct { const char *key; float p; } probs[] = {
        {"hflip", cfg->hflip}, {"vflip", cfg->vflip}, {"erase", cfg->erase},
        {"mix_prob", cfg->mix_prob}, {"mix_switch", cfg->mix_switch}};
    for (size_t i = 0; i < sizeof probs / sizeof probs[0]; i++)
        if (!prob_ok(probs[i].p))
            return err_set(e, ERR_INPUT, "augment.%s must be a probability in [0, 1], got %g",
                           probs[i].key, probs[i].p);
    if (!(cfg->erase_area[0] > 0.0f && cfg->erase_area[0] <= cfg->erase_area[1] &&
          cfg->erase_area[1] <= 1.0f))
        return err_set(e, ERR_INPUT,
                       "augment.erase_area_min and _max must be 0 < min <= max <= 1, got (%g, %g)",
                       cfg->erase_area[0], cfg->erase_area[1]);
    if (!(cfg->erase_aspect[0] > 0.0f && cfg->erase_aspect[0] <= cfg->erase_aspect[1] &&
          isfinite(cfg->erase_aspect[1])))
        return err_set(e, ERR_INPUT,
                       "augment.erase_aspect_min and _max must be 0 < min <= max, got (%g, %g)",
                       cfg->erase_aspect[0], cfg->erase_aspect[1]);
    if (cfg->erase_value != AUGMENT_ERASE_ZERO && cfg->erase_value != AUGMENT_ERASE_NOISE)
        return err_set(e, ERR_INPUT, "augment.erase_value must be \"zero\" or \"noise\"");
    // Beta(α, α) for α below 1e-3 puts λ within 1e-300 of 0 or 1: no mixing worth the name
    if (!(cfg->mixup == 0.0f || (cfg->mixup >= 1e-3f && cfg->mixup <= 1e3f)))
        return err_set(e, ERR_INPUT,
                       "augment.mixup must be 0 (off) or an alpha in [0.001, 1000], got %g",
                       cfg->mixup);
    if (!(cfg->cutmix == 0.0f || (cfg->cutmix >= 1e-3f && cfg->cutmix <= 1e3f)))
        return err_set(e, ERR_INPUT,
                       "augment.cutmix must be 0 (off) or an alpha in [0.001, 1000], got %g",
                       cfg->cutmix);
    return ERR_OK;
}

// ---------------------------------------------------------------- per-sample draws

void augment_sample_draws(AugmentDraws *d, const AugmentConfig *cfg, uint32_t seed,
                          uint32_t epoch, int64_t id, uint32_t stream, int H, int W) {
    memset(d, 0, sizeof *d);
    uint32_t s = (uint32_t)id;
    if (cfg->crop_pad > 0) {
        philox_ctr r = draw((philox_key){{seed, AUGMENT_KEY_CROP}}, 0, s, epoch, stream);
        d->dy = uniform_int(r.v[0], 2 * cfg->crop_pad + 1);
        d->dx = uniform_int(r.v[1], 2 * cfg->crop_pad + 1);
    } else {
        d->dy = d->dx = 0;
    }
    if (cfg->hflip > 0.0f || cfg->vflip > 0.0f) {
        philox_ctr r = draw((philox_key){{seed, AUGMENT_KEY_FLIP}}, 0, s, epoch, stream);
        d->hflip = unit32(r.v[0]) < cfg->hflip;
        d->vflip = unit32(r.v[1]) < cfg->vflip;
    }
    if (cfg->erase > 0.0f) {
        philox_key key = {{seed, AUGMENT_KEY_ERASE}};
        philox_ctr r = draw(key, 0, s, epoch, stream);
        if (!(unit32(r.v[0]) < cfg->erase)) return;
        // torchvision RandomErasing.get_params: up to 10 boxes, the first that fits wins
        double area = (double)H * W;
        double alo = cfg->erase_area[0], ahi = cfg->erase_area[1];
        double llo = log(cfg->erase_aspect[0]), lhi = log(cfg->erase_aspect[1]);
        for (uint32_t t = 0; t < AUGMENT_ERASE_TRIES; t++) {
            r = draw(key, 1 + t, s, epoch, stream);
            double ea = area * (alo + (ahi - alo) * unit32(r.v[0]));
            double aspect = exp(llo + (lhi - llo) * unit32(r.v[1]));
            // Python's round() is round-half-even, as nearbyint in the default rounding mode
            int h = (int)nearbyint(sqrt(ea * aspect));
            int w = (int)nearbyint(sqrt(ea / aspect));
            if (!(h < H && w < W)) continue;
            d->erase = 1;
            d->eh = h;
            d->ew = w;
            d->ey = uniform_int(r.v[2], H - h + 1);
            d->ex = uniform_int(r.v[3], W - w + 1);
            return;
        }
    }
}

// ---------------------------------------------------------------- per-sample kernels

// Index of padded coordinate q (in [0, n + 2 pad)) in a line of n; -1 for zero padding's outside.
static inline int pad_index(int q, int n, int mode) {
    if (q >= 0 && q < n) return q;
    if (mode == AUGMENT_PAD_ZERO) return -1;
    return q < 0 ? -q : 2 * (n - 1) - q;  // 'reflect': the edge pixel is not repeated
}

void augment_crop(float *out, const float *inp, int C, int H, int W, int pad, int mode, int dy,
                  int dx) {
    // out[c][y][x] = padded[c][y + dy][x + dx] = inp[c][y + dy - pad][x + dx - pad]
    int oy = dy - pad, ox = dx - pad;
    // columns whose source lies inside the row: x in [xa, xb)
    int xa = ox < 0 ? -ox : 0, xb = ox > 0 ? W - ox : W;
    if (xa > W) xa = W;
    if (xb < xa) xb = xa;
    for (int c = 0; c < C; c++) {
        for (int y = 0; y < H; y++) {
            float *o = out + ((size_t)c * H + y) * W;
            int sy = pad_index(y + oy, H, mode);
            if (sy < 0) {
                memset(o, 0, (size_t)W * sizeof(float));
                continue;
            }
            const float *src = inp + ((size_t)c * H + sy) * W;
            for (int x = 0; x < xa; x++) {
                int sx = pad_index(x + ox, W, mode);
                o[x] = sx < 0 ? 0.0f : src[sx];
            }
            memcpy(o + xa, src + xa + ox, (size_t)(xb - xa) * sizeof(float));
            for (int x = xb; x < W; x++) {
                int sx = pad_index(x + ox, W, mode);
                o[x] = sx < 0 ? 0.0f : src[sx];
            }
        }
    }
}

void augment_hflip(float *x, int C, int H, int W) {
    for (size_t r = 0; r < (size_t)C * H; r++) {
        float *row = x + r * W;
        for (int i = 0, j = W - 1; i < j; i++, j--) {
            float t = row[i];
            row[i] = row[j];
            row[j] = t;
        }
    }
}

void augment_vflip(float *x, int C, int H, int W) {
    for (int c = 0; c < C; c++) {
        float *plane = x + (size_t)c * H * W;
        for (int i = 0, j = H - 1; i < j; i++, j--) {
            float *a = plane + (size_t)i * W, *b = plane + (size_t)j * W;
            for (int k = 0; k < W; k++) {  // contiguous: vectorizes
                float t = a[k];
                a[k] = b[k];
                b[k] = t;
            }
        }
    }
}

void augment_erase(float *x, const AugmentDraws *d, int value, philox_key key, uint32_t epoch,
                   int64_t id, uint32_t stream, int C, int H, int W) {
    if (!d->erase) return;
    if (value == AUGMENT_ERASE_ZERO) {
        for (int c = 0; c < C; c++)
            for (int y = d->ey; y < d->ey + d->eh; y++)
                memset(x + ((size_t)c * H + y) * W + d->ex, 0, (size_t)d->ew * sizeof(float));
        return;
    }
    // noise: box pixel e (c, h, w order) is normal e%4 of draw ERASE_NOISE_DRAW + e/4
    double z[4] = {0, 0, 0, 0};
    uint32_t e = 0;
    for (int c = 0; c < C; c++)
        for (int y = d->ey; y < d->ey + d->eh; y++) {
            float *row = x + ((size_t)c * H + y) * W + d->ex;
            for (int k = 0; k < d->ew; k++, e++) {
                if (e % 4 == 0) {
                    philox_ctr r = draw(key, AUGMENT_ERASE_NOISE_DRAW + e / 4, (uint32_t)id,
                                        epoch, stream);
                    box_muller(&z[0], &z[1], r.v[0], r.v[1]);
                    box_muller(&z[2], &z[3], r.v[2], r.v[3]);
                }
                row[k] = (float)z[e % 4];
            }
        }
}

void augment_batch(float *x, float *scratch, const AugmentConfig *cfg, const int64_t *ids,
                   uint32_t seed, uint32_t epoch, uint32_t stream, int B, int C, int H, int W) {
    if (!augment_per_sample_on(cfg)) return;
    size_t D = (size_t)C * H * W;
    philox_key ekey = {{seed, AUGMENT_KEY_ERASE}};
    for (int b = 0; b < B; b++) {
        float *xb = x + (size_t)b * D;
        AugmentDraws d;
        augment_sample_draws(&d, cfg, seed, epoch, ids[b], stream, H, W);
        if (cfg->crop_pad > 0) {
            memcpy(scratch, xb, D * sizeof(float));
            augment_crop(xb, scratch, C, H, W, cfg->crop_pad, cfg->crop_mode, d.dy, d.dx);
        }
        if (d.hflip) augment_hflip(xb, C, H, W);
        if (d.vflip) augment_vflip(xb, C, H, W);
        augment_erase(xb, &d, cfg->erase_value, ekey, epoch, ids[b], stream, C, H, W);
    }
}

// ---------------------------------------------------------------- Beta and the batch mix

// log of a Gamma(a, 1) variate, Marsaglia & Tsang (2000): one attempt per draw starting at d0.
// For a < 1, Gamma(a) = Gamma(a + 1) * U^(1/a), U from the accepted draw's fourth word; kept
// in logs so that U^(1/a) cannot underflow for small a.
static double log_gamma_variate(double a, philox_key key, uint32_t d0, uint32_t sample,
                                uint32_t step, uint32_t stream) {
    double b = a < 1.0 ? a + 1.0 : a;
    double dd = b - 1.0 / 3.0, cc = 1.0 / sqrt(9.0 * dd);
    for (uint32_t t = 0; t < AUGMENT_GAMMA_MAX_TRIES; t++) {
        philox_ctr r = draw(key, d0 + t, sample, step, stream);
        double z, unused;
        box_muller(&z, &unused, r.v[0], r.v[1]);
        double v = 1.0 + cc * z;
        if (v <= 0.0) continue;
        v = v * v * v;
        double lu = log(unit32_open(r.v[2]));
        if (lu < 0.5 * z * z + dd - dd * v + dd * log(v)) {
            double lg = log(dd) + log(v);
            if (a < 1.0) lg += log(unit32_open(r.v[3])) / a;
            return lg;
        }
    }
    return log(dd);  // not reached in practice: acceptance is above 95% per attempt
}

double augment_beta(double a, philox_key key, uint32_t sample, uint32_t step, uint32_t stream) {
    double lx = log_gamma_variate(a, key, AUGMENT_GAMMA_X_DRAW, sample, step, stream);
    double ly = log_gamma_variate(a, key, AUGMENT_GAMMA_Y_DRAW, sample, step, stream);
    return 1.0 / (1.0 + exp(ly - lx));  // X / (X + Y)
}

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

void augment_mix_draw(AugmentMix *m, const AugmentConfig *cfg, uint32_t seed, uint32_t step,
                      uint32_t stream, int H, int W) {
    memset(m, 0, sizeof *m);
    m->lam = 1.0f;
    if (!augment_mix_on(cfg)) return;
    philox_key key = {{seed, AUGMENT_KEY_MIX}};
    philox_ctr r = draw(key, 0, AUGMENT_BATCH_SAMPLE, step, stream);
    if (!(unit32(r.v[0]) < cfg->mix_prob)) return;
    int cut;
    if (cfg->mixup > 0.0f && cfg->cutmix > 0.0f)
        cut = unit32(r.v[1]) < cfg->mix_switch;
    else
        cut = cfg->cutmix > 0.0f;
    double lam = augment_beta(cut ? cfg->cutmix : cfg->mixup, key, AUGMENT_BATCH_SAMPLE, step,
                              stream);
    if (lam == 1.0) return;  // timm: a batch with λ = 1 is left alone
    m->active = 1;
    m->cutmix = cut;
    if (cut) {
        // timm rand_bbox: cut ratio sqrt(1-λ), centre uniform, half-sizes floored, clipped;
        // then λ = 1 - box area / image area (correct_lam)
        double ratio = sqrt(1.0 - lam);
        int ch = (int)(H * ratio), cw = (int)(W * ratio);
        int cy = uniform_int(r.v[2], H), cx = uniform_int(r.v[3], W);
        m->y0 = clampi(cy - ch / 2, 0, H);
        m->y1 = clampi(cy + ch / 2, 0, H);
        m->x0 = clampi(cx - cw / 2, 0, W);
        m->x1 = clampi(cx + cw / 2, 0, W);
        lam = 1.0 - (double)(m->y1 - m->y0) * (m->x1 - m->x0) / ((double)H * W);
    }
    m->lam = (float)lam;
}

void augment_mix_apply(float *x, const float *xp, const AugmentMix *m, int B, int C, int H,
                       int W) {
    if (!m->active) return;
    size_t D = (size_t)C * H * W;
    if (!m->cutmix) {
        float l = m->lam, l1 = (float)(1.0 - (double)m->lam);
        size_t N = (size_t)B * D;
        for (size_t i = 0; i < N; i++) x[i] = l * x[i] + l1 * xp[i];
        return;
    }
    size_t n = (size_t)(m->x1 - m->x0);
    if (n == 0) return;
    for (size_t p = 0; p < (size_t)B * C; p++)
        for (int y = m->y0; y < m->y1; y++) {
            size_t o = p * H * W + (size_t)y * W + m->x0;
            memcpy(x + o, xp + o, n * sizeof(float));
        }
    (void)D;
}

// ---------------------------------------------------------------- soft targets

void augment_mix_targets(float *target, const int32_t *y_a, const int32_t *y_b, float lam,
                         float smoothing, int B, int K) {
    float off = smoothing / K, on = 1.0f - smoothing + off;
    for (int b = 0; b < B; b++) {
        float *t = target + (size_t)b * K;
        for (int k = 0; k < K; k++)
            t[k] = lam * (k == y_a[b] ? on : off) + (1.0f - lam) * (k == y_b[b] ? on : off);
    }
}

double mix_xent_forward_backward(float *dlogits, int64_t *correct, const float *logits,
                                 const int32_t *y_a, const int32_t *y_b, float lam, int B, int K,
                                 float smoothing, float grad_scale) {
    double total = 0.0, eps = smoothing, l = lam;
    float off = smoothing / K, spread = 1.0f - smoothing;
    for (int b = 0; b < B; b++) {
        const float *z = logits + (size_t)b * K;
        float *dz = dlogits + (size_t)b * K;
        int ya = y_a[b], yb = y_b[b];
        float mx = z[0];
        int best = 0;
        for (int k = 1; k < K; k++) {
            if (z[k] > mx) mx = z[k];
            if (z[k] > z[best]) best = k;
        }
        double sum = 0.0, zsum = 0.0;
        for (int k = 0; k < K; k++) {
            double ex = exp((double)(z[k] - mx));
            dz[k] = (float)ex;
            sum += ex;
            zsum += (double)(z[k] - mx);
        }
        double lse = log(sum);
        // the loss is linear in the target: λ·CE(smooth(y_a)) + (1-λ)·CE(smooth(y_b))
        total += lse - eps / K * zsum -
                 (1.0 - eps) * (l * (double)(z[ya] - mx) + (1.0 - l) * (double)(z[yb] - mx));
        float inv = (float)(1.0 / sum);
        for (int k = 0; k < K; k++) {
            float t = off + spread * ((k == ya ? lam : 0.0f) + (k == yb ? 1.0f - lam : 0.0f));
            dz[k] = (dz[k] * inv - t) * grad_scale;
        }
        if (correct) *correct += best == (lam >= 0.5f ? ya : yb);
    }
    return total;
}
