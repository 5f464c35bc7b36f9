// schedule.c: learning rate per optimizer step (schedule.h).
#include "schedule.h"

#include <math.h>
#include <stddef.h>

const char *const sched_kind_names[] = {"constant", "step", "cosine", NULL};
_Static_assert(sizeof sched_kind_names / sizeof sched_kind_names[0] == SCHED_NKINDS + 1,
               "sched_kind_names needs one name per SchedKind");

float schedule_lr(const Schedule *s, float base_lr, int64_t step) {
    if (step < s->warmup_steps) return base_lr * (float)(step + 1) / (float)s->warmup_steps;
    int64_t t = step - s->warmup_steps;
    switch (s->kind) {
    case SCHED_CONSTANT:
        return base_lr;
    case SCHED_STEP:
        return base_lr * powf(s->gamma, (float)(s->step_size > 0 ? t / s->step_size : 0));
    case SCHED_COSINE: {
        int64_t span = s->total_steps - s->warmup_steps;
        if (span <= 0 || t >= span) return s->min_lr;
        double progress = (double)t / (double)span;
        return (float)(s->min_lr + (base_lr - s->min_lr) * 0.5 * (1.0 + cos(M_PI * progress)));
    }
    case SCHED_NKINDS: break;  // not a kind
    }
    return base_lr;
}
