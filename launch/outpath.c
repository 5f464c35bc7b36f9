// outpath.c: the output path check (outpath.h).
#include "outpath.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int out_file_check(const char *opt, const char *path, int overwrite, Err *e) {
    if (!path || !*path) return err_set(e, ERR_INPUT, "%s: give a file name", opt);
    char dir[PATH_MAX];
    if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir)
        return err_set(e, ERR_INPUT, "%s %.200s...: %s", opt, path, strerror(ENAMETOOLONG));
    char *slash = strrchr(dir, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == dir) dir[1] = 0;  // "/name": the root
    else *slash = 0;
    struct stat st;
    if (stat(dir, &st) != 0)
        return err_set(e, ERR_INPUT, "%s %s: no directory %s (%s); create it first", opt, path,
                       dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return err_set(e, ERR_INPUT, "%s %s: %s is not a directory", opt, path, dir);
    if (access(dir, W_OK | X_OK) != 0)
        return err_set(e, ERR_INPUT, "%s %s: cannot create files in %s (%s)", opt, path, dir,
                       strerror(errno));
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return err_set(e, ERR_INPUT, "%s %s is a directory; give a file name", opt, path);
    if (!overwrite && stat(path, &st) == 0)  // results are never replaced by accident
        return err_set(e, ERR_INPUT, "%s %s already exists; --overwrite replaces it", opt, path);
    return ERR_OK;
}
