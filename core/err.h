// err.h: the error convention of core/, dist/ and io/.
// Library code never prints or exits: it fills an Err and returns its code.
// launch/ decides what to print and which exit status to use.
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
