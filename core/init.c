// init.c: parameter initialization from Philox (see init.h).
#include "init.h"

#include "philox.h"

void init_uniform(float *w, size_t n, float bound, uint32_t seed, int layer_id, int param_index) {
    philox_key key = {{seed, (uint32_t)layer_id}};
    for (size_t i = 0; i < n; i += 4) {
        philox_ctr r = philox4x32_10(
            (philox_ctr){{(uint32_t)(i / 4), (uint32_t)param_index, 0, PHILOX_STREAM_INIT}}, key);
        for (size_t j = 0; j < 4 && i + j < n; j++)
            w[i + j] = (2.0f * philox_unit(r.v[j]) - 1.0f) * bound;
    }
}

void init_constant(float *w, size_t n, float value) {
    for (size_t i = 0; i < n; i++) w[i] = value;
}
