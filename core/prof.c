// prof.c: the step profile's counters (prof.h).
#include "prof.h"

#include <string.h>
#include <time.h>

Profile prof;

void prof_reset(void) {
    int on = prof.on;
    memset(&prof, 0, sizeof prof);
    prof.on = on;
}

void prof_enable(int on) {
    memset(&prof, 0, sizeof prof);
    prof.on = on;
}

double prof_clock(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
