// progress.h: the progress line rank 0 shows during an epoch. On a terminal one line is
// redrawn in place (at most 10 times a second); otherwise (logs, CI) a plain line is
// printed at each quarter of the epoch.
#pragma once
#include <stdint.h>

typedef struct {
    int enabled, tty;
    char label[64];
    int64_t total, start;   // steps in the epoch, the step it (re)started at
    double t0, last_draw;
    int quarters_shown;
} Progress;

void progress_begin(Progress *p, int enabled, const char *label, int64_t total, int64_t start);
// done: steps finished in this epoch; loss: running mean (NAN: none); ips: images/s.
void progress_update(Progress *p, int64_t done, double loss, double ips);
void progress_end(Progress *p);  // clears the redrawn line
