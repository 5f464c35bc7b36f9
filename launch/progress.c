// progress.c: the progress line (progress.h).
#include "progress.h"

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "cli.h"

// The parent of process pid from /proc/pid/stat ("pid (comm) state ppid ..."; comm may hold
// spaces and parentheses, so read after the last ')'), or 0.
static pid_t parent_of(pid_t pid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *close = strrchr(buf, ')');
    int ppid = 0;
    if (!close || sscanf(close + 1, " %*c %d", &ppid) != 1) return 0;
    return (pid_t)ppid;
}

// Under Open MPI 4 every rank's stdout is a pseudo-terminal that mpirun (or orted) reads and
// forwards to its own stdout, so isatty says yes even when mpirun writes to a log. The
// launcher's output decides instead: walk up from the parent to the first process whose fd is
// not this same terminal (mpirun itself, past any shell wrapper in between) and ask about
// that. When that cannot be found out (no /proc, another user's launcher), say no: a log
// must never fill with redraws, and plain lines still read well on a terminal.
int progress_is_terminal(int fd) {
    if (!isatty(fd)) return 0;
    // mpirun sets OMPI_COMM_WORLD_SIZE; a singleton (plain `regdist train`) has none, though
    // its MPI_Init sets PMIX_RANK
    if (!getenv("OMPI_COMM_WORLD_SIZE")) return 1;
    struct stat mine;
    if (fstat(fd, &mine) != 0) return 0;
    pid_t pid = getppid();
    for (int depth = 0; depth < 16 && pid > 1; depth++) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/fd/%d", (int)pid, fd);
        struct stat st;
        if (stat(path, &st) != 0) return 0;
        if (!S_ISCHR(st.st_mode)) return 0;  // a file, a pipe, a socket
        if (st.st_rdev != mine.st_rdev) {     // the launcher's own output: a terminal or not
            int other = open(path, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
            if (other < 0) return 0;
            int tty = isatty(other);
            close(other);
            return tty;
        }
        pid = parent_of(pid);  // a wrapper sharing this terminal: ask its parent
    }
    return 0;
}

static void begin(Progress *p, int enabled, FILE *out, const char *label, int64_t total,
                  int64_t start, int64_t run_step, int64_t run_steps) {
    memset(p, 0, sizeof *p);
    p->enabled = enabled;
    p->out = out;
    p->tty = enabled && progress_is_terminal(fileno(out));
    snprintf(p->label, sizeof p->label, "%s", label);
    p->total = total;
    p->start = start;
    p->run_step = run_step;
    p->run_steps = run_steps;
    p->t0 = now_seconds();
    p->quarters_shown = (int)(4 * start / (total ? total : 1));
}

void progress_begin(Progress *p, int enabled, const char *label, int64_t total, int64_t start) {
    begin(p, enabled, stdout, label, total, start, start, total);
}

void progress_begin_run(Progress *p, int enabled, const char *label, int64_t total, int64_t start,
                        int64_t run_step, int64_t run_steps) {
    begin(p, enabled, stdout, label, total, start, run_step, run_steps);
}

void progress_output(Progress *p, FILE *out) {
    p->out = out;
    p->tty = p->enabled && progress_is_terminal(fileno(out));
}

static void format_eta(char *buf, size_t len, double s) {
    int t = (int)(s + 0.5);
    if (t >= 3600) snprintf(buf, len, "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, len, "%d:%02d", t / 60, t % 60);
}

// The steps left at this epoch's pace so far: "ETA h:mm:ss (epoch m:ss)" while the run goes
// on after this epoch, else "ETA m:ss" (the run ends within it: at its end or, stopped by a
// step limit, before).
static void eta_text(const Progress *p, int64_t done, double now, char *buf, size_t len) {
    double rate = (double)(done - p->start) / (now - p->t0 + 1e-9);
    int64_t run_done = p->run_step + (done - p->start);
    int64_t epoch_left = p->total - done, run_left = p->run_steps - run_done;
    char epoch[32], run[32];
    format_eta(run, sizeof run, rate > 0 && run_left > 0 ? (double)run_left / rate : 0);
    if (run_left <= epoch_left) {
        snprintf(buf, len, "ETA %s", run);
        return;
    }
    format_eta(epoch, sizeof epoch, rate > 0 ? (double)epoch_left / rate : 0);
    snprintf(buf, len, "ETA %s (epoch %s)", run, epoch);
}

void progress_update(Progress *p, int64_t done, double loss, double ips) {
    if (!p->enabled) return;
    double now = now_seconds();
    char eta[80];
    if (p->tty) {
        if (now - p->last_draw < 0.1 && done < p->total) return;
        p->last_draw = now;
        eta_text(p, done, now, eta, sizeof eta);
        int width = 20, fill = (int)(width * done / (p->total ? p->total : 1));
        char bar[32];
        for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
        bar[width] = 0;
        fprintf(p->out, "\r%s [%s] %lld/%lld", p->label, bar, (long long)done, (long long)p->total);
        if (!isnan(loss)) fprintf(p->out, "  loss %.4f", loss);
        fprintf(p->out, "  %.0f img/s  %s\033[K", ips, eta);
        fflush(p->out);
        return;
    }
    int q = (int)(4 * done / (p->total ? p->total : 1));
    if (q > p->quarters_shown && q < 4) {
        p->quarters_shown = q;
        eta_text(p, done, now, eta, sizeof eta);
        fprintf(p->out, "%s  step %lld/%lld", p->label, (long long)done, (long long)p->total);
        if (!isnan(loss)) fprintf(p->out, "  loss %.4f", loss);
        fprintf(p->out, "  %.0f img/s  %s\n", ips, eta);
        fflush(p->out);
    }
}

void progress_end(Progress *p) {
    if (p->tty) {
        fprintf(p->out, "\r\033[K");
        fflush(p->out);
    }
}
