// watchdog.c: the collective-stall watchdog (watchdog.h).
// The state of "this rank is inside a collective" is written only by the thread that makes MPI
// calls (MPI_THREAD_FUNNELED: the main thread) and read by the watchdog thread. A sequence
// counter (a seqlock) lets the reader see one consistent snapshot without the writer ever
// taking a lock: the writer makes it odd while it changes the fields and even after; a reader
// that sees it odd, or changed across its reads, looks again at the next tick. A stalled rank
// changes nothing, so its snapshot is always consistent.
// A process that was itself frozen (SIGSTOP, a debugger, a suspended machine) sees its watchdog
// tick late on resuming: that time is not a wait for another rank, so the wait restarts then.
#include "watchdog.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static atomic_uint seq;                  // odd while the fields below are being written
static atomic_int inside;                // 1 between enter and leave
static _Atomic(const char *) what;       // what the rank waits for
static atomic_int what_n, what_has_n;    // the %d of what, if has_n is 1
static _Atomic(const char *) what_s;     // the %s of what, if has_n is 2
static atomic_llong step, last_step;     // the step given to enter; the last known one (-1)
static atomic_llong since_ns;            // CLOCK_MONOTONIC when enter was called

static struct {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int running, stop;
    int rank, world;
    double timeout_s;
    long long tick_ns;
    long long thawed_ns;  // when this process last resumed from being frozen
} wd = {.mu = PTHREAD_MUTEX_INITIALIZER};

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void write_begin(void) {
    unsigned s = atomic_load_explicit(&seq, memory_order_relaxed);
    atomic_store_explicit(&seq, s + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
}

static void write_end(void) {
    unsigned s = atomic_load_explicit(&seq, memory_order_relaxed);
    atomic_store_explicit(&seq, s + 1, memory_order_release);
}

static void enter(const char *w, int has_n, int n, const char *str, long long s) {
    long long t = now_ns();
    write_begin();
    atomic_store_explicit(&what, w, memory_order_relaxed);
    atomic_store_explicit(&what_has_n, has_n, memory_order_relaxed);
    atomic_store_explicit(&what_n, n, memory_order_relaxed);
    atomic_store_explicit(&what_s, str, memory_order_relaxed);
    atomic_store_explicit(&step, s, memory_order_relaxed);
    if (s >= 0) atomic_store_explicit(&last_step, s, memory_order_relaxed);
    atomic_store_explicit(&since_ns, t, memory_order_relaxed);
    atomic_store_explicit(&inside, 1, memory_order_relaxed);
    write_end();
}

void watchdog_enter(const char *w, long long s) { enter(w, 0, 0, NULL, s); }

void watchdog_enter_n(const char *what_fmt, int n, long long s) {
    enter(what_fmt, 1, n, NULL, s);
}

void watchdog_enter_s(const char *what_fmt, const char *str, long long s) {
    enter(what_fmt, 2, 0, str ? str : "?", s);
}

void watchdog_leave(void) {
    write_begin();
    atomic_store_explicit(&inside, 0, memory_order_relaxed);
    write_end();
}

// Prints the report and ends the process if this rank has waited too long in one collective.
static void check(void) {
    unsigned s1 = atomic_load_explicit(&seq, memory_order_acquire);
    if (s1 & 1) return;  // being written: the rank is moving, not stalled
    int in = atomic_load_explicit(&inside, memory_order_relaxed);
    const char *w = atomic_load_explicit(&what, memory_order_relaxed);
    int has_n = atomic_load_explicit(&what_has_n, memory_order_relaxed);
    int n = atomic_load_explicit(&what_n, memory_order_relaxed);
    const char *str = atomic_load_explicit(&what_s, memory_order_relaxed);
    long long st = atomic_load_explicit(&step, memory_order_relaxed);
    long long last = atomic_load_explicit(&last_step, memory_order_relaxed);
    long long t0 = atomic_load_explicit(&since_ns, memory_order_relaxed);
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load_explicit(&seq, memory_order_relaxed) != s1) return;
    if (!in || !w) return;
    if (t0 < wd.thawed_ns) t0 = wd.thawed_ns;
    double waited = (double)(now_ns() - t0) * 1e-9;
    if (waited <= wd.timeout_s) return;

    char desc[256], at[64], line[512];
    if (has_n == 1)
        snprintf(desc, sizeof desc, w, n);
    else if (has_n == 2)
        snprintf(desc, sizeof desc, w, str);
    else
        snprintf(desc, sizeof desc, "%s", w);
    if (st >= 0)
        snprintf(at, sizeof at, "at step %lld", st);
    else if (last >= 0)
        snprintf(at, sizeof at, "after step %lld", last);
    else
        snprintf(at, sizeof at, "at step ?");
    // on a terminal the progress line has no newline yet: start on a line of our own
    int len = snprintf(line, sizeof line,
                       "%sregdist: rank %d of %d: stalled for %.1f s %s %s; another rank has "
                       "stopped or died (dist.timeout = %g s)\n",
                       isatty(STDERR_FILENO) && isatty(STDOUT_FILENO) ? "\n" : "", wd.rank,
                       wd.world, waited, desc, at, wd.timeout_s);
    if (len < 0) len = 0;
    if ((size_t)len >= sizeof line) len = (int)sizeof line - 1;
    // write(2), not stdio: the main thread may hold stdout's or stderr's lock
    for (const char *p = line; len > 0;) {
        ssize_t k = write(STDERR_FILENO, p, (size_t)len);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        p += k;
        len -= (int)k;
    }
    _exit(1);  // no MPI from this thread; mpirun sees the exit and ends the other ranks
}

static void *run(void *arg) {
    (void)arg;
    pthread_mutex_lock(&wd.mu);
    long long prev = now_ns();
    while (!wd.stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        long long t = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec + wd.tick_ns;
        ts.tv_sec = (time_t)(t / 1000000000LL);
        ts.tv_nsec = (long)(t % 1000000000LL);
        while (!wd.stop && pthread_cond_timedwait(&wd.cv, &wd.mu, &ts) != ETIMEDOUT) {
        }
        if (wd.stop) break;
        pthread_mutex_unlock(&wd.mu);
        long long woke = now_ns();
        if (woke - prev > wd.tick_ns + 1000000000LL) wd.thawed_ns = woke;  // over 1 s late
        prev = woke;
        check();
        pthread_mutex_lock(&wd.mu);
    }
    pthread_mutex_unlock(&wd.mu);
    return NULL;
}

int watchdog_start(const Dist *d, double timeout_s) {
    if (!(timeout_s > 0) || wd.running) return 0;
    wd.rank = d->rank;
    wd.world = d->world;
    wd.timeout_s = timeout_s;
    // every 0.5 s; more often for timeouts under 2 s, so the report is never late by much
    double tick = timeout_s / 4 < 0.5 ? timeout_s / 4 : 0.5;
    wd.tick_ns = tick < 1e-3 ? 1000000LL : (long long)(tick * 1e9);
    wd.stop = 0;
    wd.thawed_ns = 0;
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca)) return 1;
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&wd.cv, &ca);
    pthread_condattr_destroy(&ca);
    if (rc) return 1;
    if (pthread_create(&wd.thread, NULL, run, NULL)) {
        pthread_cond_destroy(&wd.cv);
        return 1;
    }
    wd.running = 1;
    return 0;
}

void watchdog_stop(void) {
    if (!wd.running) return;
    pthread_mutex_lock(&wd.mu);
    wd.stop = 1;
    pthread_cond_signal(&wd.cv);
    pthread_mutex_unlock(&wd.mu);
    pthread_join(wd.thread, NULL);
    pthread_cond_destroy(&wd.cv);
    wd.running = 0;
}
