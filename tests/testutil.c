// testutil.c: see testutil.h.
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

const char *test_tmpdir(const char *name) {
    static char dir[1024];
    const char *base = getenv("REGDIST_TEST_TMP");
    if (!base || !*base) base = "/tmp";
    mkdir(base, 0755);
    snprintf(dir, sizeof dir, "%s/%s.%d", base, name, (int)getpid());
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fail_msg("cannot clear %s", dir);
    if (mkdir(dir, 0755) != 0) fail_msg("cannot create %s: %s", dir, strerror(errno));
    return dir;
}

const char *test_path(const char *dir, const char *file) {
    static char bufs[8][1024];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, sizeof bufs[0], "%s/%s", dir, file);
    return b;
}

const char *test_regdist_bin(void) {
    const char *b = getenv("REGDIST_BIN");
    if (!b) fail_msg("REGDIST_BIN is not set (run the tests through ctest)");
    return b;
}

const char *test_source_dir(void) {
    const char *s = getenv("REGDIST_SOURCE_DIR");
    if (!s) fail_msg("REGDIST_SOURCE_DIR is not set (run the tests through ctest)");
    return s;
}

// Reads both pipes until EOF without letting either fill up.
static void drain(int fo, int fe, RunResult *r) {
    size_t no = 0, ne = 0;
    struct pollfd p[2] = {{fo, POLLIN, 0}, {fe, POLLIN, 0}};
    int open_fds = 2;
    char scratch[4096];
    while (open_fds > 0) {
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        for (int i = 0; i < 2; i++) {
            if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            char *dst = i == 0 ? r->out + no : r->err + ne;
            size_t room = (i == 0 ? sizeof r->out - 1 - no : sizeof r->err - 1 - ne);
            ssize_t k = read(p[i].fd, room ? dst : scratch, room ? room : sizeof scratch);
            if (k <= 0) {
                close(p[i].fd);
                p[i].fd = -1;
                open_fds--;
                continue;
            }
            if (room) {
                if (i == 0) no += (size_t)k; else ne += (size_t)k;
            }
        }
    }
    r->out[no] = 0;
    r->err[ne] = 0;
}

static void run_argv(RunResult *r, const char *path, char *const *argv) {
    memset(r, 0, sizeof *r);
    int po[2], pe[2];
    if (pipe(po) || pipe(pe)) fail_msg("pipe: %s", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) fail_msg("fork: %s", strerror(errno));
    if (pid == 0) {
        dup2(po[1], 1);
        dup2(pe[1], 2);
        close(po[0]); close(po[1]); close(pe[0]); close(pe[1]);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) dup2(devnull, 0);
        test_child_env();
        execv(path, argv);
        fprintf(stderr, "exec %s: %s\n", path, strerror(errno));
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    drain(po[0], pe[0], r);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

void test_run_regdist(RunResult *r, const char *const *args) {
    const char *argv[128];
    int n = 0;
    argv[n++] = test_regdist_bin();
    for (int i = 0; args[i] && n < 127; i++) argv[n++] = args[i];
    argv[n] = NULL;
    run_argv(r, argv[0], (char *const *)argv);
}

void test_run_shell(RunResult *r, const char *cmdline) {
    char *const argv[] = {"/bin/sh", "-c", (char *)cmdline, NULL};
    run_argv(r, "/bin/sh", argv);
}

char *test_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) b[n] = 0;
    if (len) *len = (size_t)n;
    return b;
}

void test_expect_ok(const RunResult *r) {
    if (r->status != 0) fail_msg("exit %d, stderr: %s", r->status, r->err);
}

void test_expect_bad_input(const RunResult *r, const char *needle) {
    if (r->status != 2) fail_msg("expected exit 2, got %d; stderr: %s", r->status, r->err);
    size_t n = strlen(r->err);
    if (n == 0 || r->err[n - 1] != '\n' || strchr(r->err, '\n') != r->err + n - 1)
        fail_msg("expected one line on stderr, got: %s", r->err);
    if (strncmp(r->err, "regdist: ", 9) != 0) fail_msg("message lacks 'regdist: ': %s", r->err);
    if (!strstr(r->err, needle)) fail_msg("expected '%s' in: %s", needle, r->err);
}

void test_child_env(void) {
    // Sanitizer builds: MPI_Init's allocations live in dlopen'd Open MPI components that
    // LeakSanitizer cannot symbolize or suppress, so the regdist children may get their own
    // ASAN_OPTIONS (leak checking off; every other check stays on).
    const char *child = getenv("REGDIST_CHILD_ASAN_OPTIONS");
    if (child) setenv("ASAN_OPTIONS", child, 1);
}
