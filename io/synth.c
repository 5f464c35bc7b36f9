// synth.c: synthetic classification datasets. Each class has a random prototype (uniform
// pixels); a sample is (1-noise)*prototype + noise*uniform, so noise 0 gives the prototypes
// themselves and noise 1 pure noise. Every number is a Philox draw keyed by the seed,
// so the file is a function of the spec alone.
#include "synth.h"

#include <math.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/philox.h"
#include "dataset.h"

#define SYNTH_KEY 0xFFFFFFFDu     // Philox key word 1 for synthetic data
#define SYNTH_MAX_SAMPLE (1 << 24)  // floats per sample, a sanity bound
enum { SYNTH_PROTOTYPE = 0, SYNTH_NOISE = 1 };  // counter word 2: what is being drawn

// Fills out (n) with uniform [0,1) draws for row `row` of purpose `what`.
static void uniform_row(float *out, size_t n, uint32_t seed, uint32_t row, uint32_t what) {
    philox_key k = {{seed, SYNTH_KEY}};
    for (size_t j = 0; j < n; j += 4) {
        philox_ctr r = philox4x32_10((philox_ctr){{(uint32_t)(j / 4), row, what, 0}}, k);
        for (size_t w = 0; w < 4 && j + w < n; w++) out[j + w] = philox_unit(r.v[w]);
    }
}

static int check_spec(const char *out, const SynthSpec *s, Err *e) {
    if (s->shape.ndim != 1 && s->shape.ndim != 3)
        return err_set(e, ERR_INPUT, "%s: synthetic samples are (D) or (C,H,W), not %d-D", out,
                       s->shape.ndim);
    size_t per = 1;
    for (int i = 0; i < s->shape.ndim; i++) {
        if (s->shape.d[i] < 1 || s->shape.d[i] > SYNTH_MAX_SAMPLE)
            return err_set(e, ERR_INPUT, "%s: sample dimension %d is %d", out, i, s->shape.d[i]);
        per *= (size_t)s->shape.d[i];
    }
    if (per > SYNTH_MAX_SAMPLE)
        return err_set(e, ERR_INPUT, "%s: %zu values per sample is too many", out, per);
    if (s->num_classes < 2 || s->num_classes > 1 << 16)
        return err_set(e, ERR_INPUT, "%s: num_classes %d must be in [2, 65536]", out,
                       s->num_classes);
    if (s->n_train < 0 || s->n_val < 0 || s->n_test < 0 ||
        s->n_train + s->n_val + s->n_test == 0 || s->n_train + s->n_val + s->n_test > UINT32_MAX)
        return err_set(e, ERR_INPUT, "%s: sample counts %lld/%lld/%lld (train/val/test)", out,
                       (long long)s->n_train, (long long)s->n_val, (long long)s->n_test);
    if (!(s->noise >= 0.0f && s->noise <= 1.0f))
        return err_set(e, ERR_INPUT, "%s: noise %g must be in [0, 1]", out, (double)s->noise);
    return ERR_OK;
}

// Generates samples [first, first+n) of the global index (train, then val, then test).
static int write_split(const char *out, const char *split, const SynthSpec *s,
                       const float *proto, int64_t first, int64_t n, Err *e) {
    size_t per = shape_numel(s->shape);
    uint8_t *x = malloc((size_t)n * per);
    int32_t *y = malloc((size_t)n * sizeof *y);
    float *noise = malloc(per * sizeof *noise);
    int rc;
    if (!x || !y || !noise) {
        rc = err_set(e, ERR_RUNTIME, "%s: out of memory", out);
        goto done;
    }
    for (int64_t i = 0; i < n; i++) {
        uint32_t g = (uint32_t)(first + i);
        int k = (int)(g % (uint32_t)s->num_classes);  // balanced classes
        const float *p = proto + (size_t)k * per;
        uniform_row(noise, per, s->seed, g, SYNTH_NOISE);
        uint8_t *xi = x + (size_t)i * per;
        for (size_t j = 0; j < per; j++) {
            float v = (1.0f - s->noise) * p[j] + s->noise * noise[j];
            xi[j] = (uint8_t)lrintf(v * 255.0f);
        }
        y[i] = k;
    }
    rc = dataset_write_split(out, split, x, 1, y, n, s->shape, e);
done:
    free(noise);
    free(y);
    free(x);
    return rc;
}

int synth_write(const char *out, const SynthSpec *s, Err *e) {
    int rc = check_spec(out, s, e);
    if (rc) return rc;
    size_t per = shape_numel(s->shape);
    float *proto = malloc((size_t)s->num_classes * per * sizeof *proto);
    if (!proto) return err_set(e, ERR_RUNTIME, "%s: out of memory", out);
    for (int k = 0; k < s->num_classes; k++)
        uniform_row(proto + (size_t)k * per, per, s->seed, (uint32_t)k, SYNTH_PROTOTYPE);
    DatasetAttrs a = {.num_classes = s->num_classes};
    rc = dataset_create(out, &a, e);
    const char *names[3] = {"train", "val", "test"};
    int64_t counts[3] = {s->n_train, s->n_val, s->n_test}, first = 0;
    for (int i = 0; i < 3 && !rc; i++) {
        if (counts[i] > 0) rc = write_split(out, names[i], s, proto, first, counts[i], e);
        first += counts[i];
    }
    free(proto);
    if (rc) unlink(out);  // no half-written dataset left behind
    return rc;
}
