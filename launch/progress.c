// progress.c: the progress line (progress.h).
#include "progress.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

void progress_begin(Progress *p, int enabled, const char *label, int64_t total, int64_t start) {
    memset(p, 0, sizeof *p);
    p->enabled = enabled;
    p->tty = enabled && isatty(STDOUT_FILENO);
    snprintf(p->label, sizeof p->label, "%s", label);
    p->total = total;
    p->start = start;
    p->t0 = now_seconds();
    p->quarters_shown = (int)(4 * start / (total ? total : 1));
}

static void format_eta(char *buf, size_t len, double s) {
    int t = (int)(s + 0.5);
    if (t >= 3600) snprintf(buf, len, "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, len, "%d:%02d", t / 60, t % 60);
}

void progress_update(Progress *p, int64_t done, double loss, double ips) {
    if (!p->enabled) return;
    double now = now_seconds();
    double rate = (double)(done - p->start) / (now - p->t0 + 1e-9);
    char eta[32];
    format_eta(eta, sizeof eta, rate > 0 ? (double)(p->total - done) / rate : 0);
    if (p->tty) {
        if (now - p->last_draw < 0.1 && done < p->total) return;
        p->last_draw = now;
        int width = 24, fill = (int)(width * done / (p->total ? p->total : 1));
        char bar[32];
        for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
        bar[width] = 0;
        printf("\r%s [%s] %lld/%lld", p->label, bar, (long long)done, (long long)p->total);
        if (!isnan(loss)) printf("  loss %.4f", loss);
        printf("  %.0f img/s  ETA %s\033[K", ips, eta);
        fflush(stdout);
        return;
    }
    int q = (int)(4 * done / (p->total ? p->total : 1));
    if (q > p->quarters_shown && q < 4) {
        p->quarters_shown = q;
        printf("%s  step %lld/%lld", p->label, (long long)done, (long long)p->total);
        if (!isnan(loss)) printf("  loss %.4f", loss);
        printf("  %.0f img/s  ETA %s\n", ips, eta);
        fflush(stdout);
    }
}

void progress_end(Progress *p) {
    if (p->tty) {
        printf("\r\033[K");
        fflush(stdout);
    }
}
