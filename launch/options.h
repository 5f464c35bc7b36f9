// options.h: a subcommand's options from one table: parsing (getopt_long underneath), the
// options part of its --help, "--X is required" and the one-line usage errors (exit 2).
#pragma once
#include <stdint.h>
#include <stdio.h>

#include "dist/dist.h"

typedef enum {
    OPT_FLAG,    // no value; *(int *)to = 1
    OPT_STRING,  // *(const char **)to = the value
    OPT_INT,     // *(int *)to = the value, an integer in [lo, hi]
    OPT_LIST,    // repeatable: the values in order into an OptList
} OptKind;

// The values of a repeatable option: v holds up to max of them.
typedef struct {
    const char **v;
    int n, max;
} OptList;

typedef struct {
    const char *name;  // "checkpoint" for --checkpoint; NULL ends a table
    OptKind kind;
    void *to;          // where the value goes (see OptKind)
    const char *arg;   // the value's name in help ("F"); NULL for a flag
    const char *help;  // its help: lines after the first ("\n") line up under the first
    int required;      // "--name is required" when absent
    int64_t lo, hi;    // OPT_INT's range
} Opt;

// Table entries, one line each: OPT_S("data", &data, "F", "an HDF5 dataset", 1).
#define OPT_F(name, to, help) {name, OPT_FLAG, to, NULL, help, 0, 0, 0}
#define OPT_S(name, to, arg, help, required) {name, OPT_STRING, to, arg, help, required, 0, 0}
#define OPT_I(name, to, arg, help, lo, hi) {name, OPT_INT, to, arg, help, 0, lo, hi}
#define OPT_L(name, to, arg, help) {name, OPT_LIST, to, arg, help, 0, 0, 0}
#define OPT_END {NULL, OPT_FLAG, NULL, NULL, NULL, 0, 0, 0}

// Parses argv[first..argc) by the table opts for subcommand cmd (as messages name it:
// "data synth"); argv[0] and, below first, the subcommand's own words are not read. -h and
// --help return -1 (the caller prints its help). Otherwise returns the index of the first
// argument that is not an option (getopt_long moves them to the end); more than max_args of
// them, an unknown or incomplete option, a bad value or a missing required option end the
// job with one line and exit 2.
int opts_parse(const Dist *d, const char *cmd, const Opt *opts, int max_args, int argc,
               char **argv, int first);

// Prints the options part of a help text: "  --name ARG   help", help lines aligned.
void opts_print_help(FILE *f, const Opt *opts);
