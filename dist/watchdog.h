// watchdog.h: the collective-stall watchdog. A rank that waits in a collective for a rank that
// has stopped (SIGSTOP, a hung file system, a deadlock, a dead node the MPI library has not
// noticed) would wait forever. Code about to block in a collective says so with watchdog_enter
// and watchdog_leave; a background thread checks every ~0.5 s and, once this rank has been
// inside one collective for longer than the timeout (dist.timeout), prints one line
//   regdist: rank R of W: stalled for T s <what> at step S; another rank has stopped or died
//   (dist.timeout = X s)
// to stderr and ends the process with _exit(1), which makes mpirun end the whole job.
// The thread never calls MPI (MPI is initialized MPI_THREAD_FUNNELED) nor stdio (write(2)).
//
// enter/leave are a handful of relaxed atomic stores and one clock_gettime: cheap enough for
// every BatchNorm reduction. Before watchdog_start (or with timeout 0) they only record.
// Collectives do not nest: an enter inside another replaces it, and the inner leave ends both.
#pragma once

#include "dist.h"

// Starts the thread for this rank; timeout_s <= 0 starts nothing. Once per process; a second
// call while running is ignored. Returns 0, or nonzero if the thread could not be created.
int watchdog_start(const Dist *d, double timeout_s);
// Stops and joins the thread (before MPI_Finalize). Safe when it never started.
void watchdog_stop(void);

// This rank is about to block in a collective: what says what it waits for ("waiting for the
// gradient all-reduce"), a string that outlives the wait (a literal); step is the optimizer
// step, or -1 when the caller does not know it (then the report names the last known step).
void watchdog_enter(const char *what, long long step);
// As watchdog_enter, with what a printf format holding one %d that n fills in when (and only
// when) a report is printed: ("reducing BatchNorm statistics of layer %d", 12, step).
void watchdog_enter_n(const char *what_fmt, int n, long long step);
// Likewise with one %s that str (which outlives the wait) fills in: ("... of layer %s", name).
void watchdog_enter_s(const char *what_fmt, const char *str, long long step);
// The collective returned.
void watchdog_leave(void);
