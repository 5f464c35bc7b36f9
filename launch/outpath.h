// outpath.h: checks an output file's path before any work is done, so that an --out the user
// must fix (a missing or unwritable directory, a directory given as the file) is bad input,
// exit code 2, with one line naming the option, the same in every subcommand. Failures while
// writing afterwards (a full disk) stay runtime failures.
#pragma once
#include "core/err.h"

// ERR_INPUT with "<opt> <path>: <why>" unless path's directory exists, is a directory this
// process may create files in, and path itself is not a directory, nor (unless overwrite) an
// existing file. Then ERR_OK.
int out_file_check(const char *opt, const char *path, int overwrite, Err *e);
