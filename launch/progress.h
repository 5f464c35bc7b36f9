// progress.h: the progress line rank 0 shows during an epoch. On a terminal one line is
// redrawn in place (at most 10 times a second); otherwise (logs, CI, pipes) a plain line is
// printed at each quarter of the epoch. The ETA is for the whole run when the caller says
// where the epoch stands in it (progress_begin_run), else for the epoch.
#pragma once
#include <stdint.h>
#include <stdio.h>

typedef struct {
    int enabled, tty;
    FILE *out;              // where the line goes (stdout unless progress_output says)
    char label[64];
    int64_t total, start;   // steps in the epoch, the step it (re)started at
    int64_t run_step;       // steps of the run done when the epoch (re)started
    int64_t run_steps;      // steps in the whole run (total when the run is this epoch)
    double t0, last_draw;
    int quarters_shown;
} Progress;

void progress_begin(Progress *p, int enabled, const char *label, int64_t total, int64_t start);
// The same inside a longer run: run_step steps of the run_steps in the run were done when
// this epoch's step start began. Then the ETA counts the steps left in the run at this
// epoch's pace.
void progress_begin_run(Progress *p, int enabled, const char *label, int64_t total, int64_t start,
                        int64_t run_step, int64_t run_steps);
// Sends the line to out instead of stdout (after a begin): redrawn only if out is a terminal.
void progress_output(Progress *p, FILE *out);
// done: steps finished in this epoch; loss: running mean (NAN: none); ips: images/s.
void progress_update(Progress *p, int64_t done, double loss, double ips);
void progress_end(Progress *p);  // clears the redrawn line

// Whether lines written to fd end up on a terminal. A process started by Open MPI's mpirun
// always has a pseudo-terminal of mpirun's as stdout, whatever mpirun's own stdout is; there
// the answer is whether the launcher's output is a terminal (see progress.c).
int progress_is_terminal(int fd);
