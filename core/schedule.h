// schedule.h: learning rate per optimizer step.
#pragma once
#include <stdint.h>

typedef enum { SCHED_CONSTANT = 0, SCHED_STEP = 1, SCHED_COSINE = 2, SCHED_NKINDS } SchedKind;
// sched.name's values, indexed by SchedKind, NULL-terminated (schedule.c checks the length)
extern const char *const sched_kind_names[SCHED_NKINDS + 1];

typedef struct {
    SchedKind kind;
    int64_t warmup_steps;  // linear warmup from lr/warmup to lr (all kinds)
    int64_t step_size;     // step: multiply by gamma every step_size steps
    float gamma;           // step
    float min_lr;          // cosine: the floor it decays to
    int64_t total_steps;   // cosine: the step at which it reaches min_lr
} Schedule;

// Learning rate for the (0-based) optimizer step `step`, given the base rate.
float schedule_lr(const Schedule *s, float base_lr, int64_t step);
