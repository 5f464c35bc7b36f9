// signals.c: stop requests from SIGTERM, SIGUSR1 and SIGINT (signals.h).
#include "signals.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t pending;

static void on_signal(int sig) {
    if (pending) {  // the second: the user (or the scheduler) means it
        static const char msg[] = "regdist: second signal, exiting without a checkpoint\n";
        ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
        (void)w;
        _exit(128 + sig);
    }
    pending = sig;
}

void signals_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;  // a signal must not make a write or a collective fail
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);  // Ctrl-C: the same clean stop, not a lost run
    // a file-size limit (a quota, ulimit -f) must fail the write with EFBIG, which the
    // checkpoint writer reports, instead of killing the process
    signal(SIGXFSZ, SIG_IGN);
}

int signals_pending(void) { return pending; }

const char *signal_name(int sig) {
    return sig == SIGTERM ? "SIGTERM" : sig == SIGUSR1 ? "SIGUSR1" : sig == SIGINT ? "SIGINT" : "signal";
}

