// err.h: the error convention of core/, dist/ and io/.
// core/ and io/ never exit or print on their own (io/ writes only to files and streams it is
// handed): they fill an Err and return its code; launch/ decides what to print and which exit
// status to use.
// dist/ does the same wherever a caller can still act (set-up, agreement on an error), with
// one exception: a failure inside a collective of a training step (the gradient all-reduce,
// the BatchNorm reduction, a stalled collective the watchdog catches) cannot be returned,
// since the other ranks would wait in that collective for ever. There dist/ prints one line
// naming the rank ("regdist: rank R: ...") and ends the whole job (MPI_Abort; the watchdog
// _exit), exit status 1. dist_fail and dist_exit_agreed are the job-ending helpers launch/
// calls once it has decided to stop.
#pragma once
#include <stdarg.h>
#include <stdio.h>

enum { ERR_OK = 0, ERR_RUNTIME = 1, ERR_INPUT = 2 };  // also the process exit codes

#define ERR_MAX 512
typedef struct {
    int code;           // ERR_OK, ERR_RUNTIME or ERR_INPUT
    char msg[ERR_MAX];  // one line, no trailing newline
} Err;

// Sets e (if not NULL) and returns code, so callers can `return err_set(e, ERR_INPUT, ...)`.
static inline int err_set(Err *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline int err_set(Err *e, int code, const char *fmt, ...) {
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
        e->code = code;
    }
    return code;
}
