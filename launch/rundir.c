// rundir.c: a run directory belongs to one run (rundir.h).
#include "rundir.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

// The files a run writes into its directory: a directory holding any of them holds a run.
static const char *const run_files[] = {"metrics.csv", "last.h5", "best.h5", "summary.json"};
#define N_RUN_FILES (int)(sizeof run_files / sizeof run_files[0])

int rundir_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

// Removes dir's run files and kept epoch checkpoints (epoch-NNNN.h5). ERR_RUNTIME on failure.
static int remove_run_files(const char *dir, Err *e) {
    char path[1100];
    for (int i = 0; i < N_RUN_FILES; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, run_files[i]);
        if (unlink(path) != 0 && errno != ENOENT)
            return err_set(e, ERR_RUNTIME, "--overwrite: cannot remove %s: %s", path, strerror(errno));
    }
    DIR *dp = opendir(dir);
    if (!dp) return ERR_OK;
    int rc = ERR_OK;
    for (struct dirent *de; !rc && (de = readdir(dp));) {
        unsigned n;
        char tail[8];
        if (sscanf(de->d_name, "epoch-%u.h%1s", &n, tail) != 2 || strcmp(tail, "5")) continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (unlink(path) != 0)
            rc = err_set(e, ERR_RUNTIME, "--overwrite: cannot remove %s: %s", path, strerror(errno));
    }
    closedir(dp);
    return rc;
}

int rundir_claim(const Dist *d, const char *dir, int resume, int overwrite, Err *e) {
    if (d->rank == 0 && !resume) {
        const char *held = NULL;
        char path[1100];
        for (int i = 0; !held && i < N_RUN_FILES; i++) {
            snprintf(path, sizeof path, "%s/%s", dir, run_files[i]);
            if (rundir_exists(path)) held = run_files[i];
        }
        if (held && !overwrite)
            err_set(e, ERR_INPUT, "--out %s already holds a run (%s): continue it with --resume "
                    "%s/last.h5, start afresh there with --overwrite, or choose another --out",
                    dir, held, dir);
        else if (held)
            remove_run_files(dir, e);
    }
    return dist_agree(d, e);
}

int rundir_make(const Dist *d, const char *dir, Err *e) {
    if (d->rank == 0) {
        char path[1024];
        snprintf(path, sizeof path, "%s", dir);
        for (char *p = path + 1; *p; p++) {
            if (*p != '/') continue;
            *p = 0;
            mkdir(path, 0755);
            *p = '/';
        }
        struct stat st;
        if (mkdir(path, 0755) != 0 && (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)))
            err_set(e, ERR_INPUT, "--out %s: cannot create the output directory: %s", dir,
                    strerror(errno));
    }
    return dist_agree(d, e);
}

void rundir_keep_epoch(const char *dir, int64_t epoch, int keep) {
    if (keep <= 0) return;
    char last[1100], path[1100];
    snprintf(last, sizeof last, "%s/last.h5", dir);
    snprintf(path, sizeof path, "%s/epoch-%04lld.h5", dir, (long long)epoch);
    unlink(path);  // a rerun's older file of the same epoch
    if (link(last, path) != 0)
        fprintf(stderr, "regdist: warning: cannot keep %s: %s\n", path, strerror(errno));
    for (int64_t k = epoch - keep; k >= 1; k--) {
        snprintf(path, sizeof path, "%s/epoch-%04lld.h5", dir, (long long)k);
        if (unlink(path) != 0) break;  // older ones were removed before
    }
}
