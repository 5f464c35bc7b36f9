// options.c: subcommand options from a table (options.h).
#include "options.h"

#include <getopt.h>
#include <string.h>

#include "cli.h"

#define MAX_OPTS 40

// A value given past its list's room.
static void list_push(const Dist *d, const char *cmd, const Opt *o, const char *v) {
    OptList *l = o->to;
    if (l->n >= l->max) cli_usage_fail(d, cmd, "too many --%s options", o->name);
    l->v[l->n++] = v;
}

int opts_parse(const Dist *d, const char *cmd, const Opt *opts, int max_args, int argc,
               char **argv, int first) {
    struct option lo[MAX_OPTS + 2];
    int n = 0, ch;
    for (; opts[n].name; n++) {
        if (n == MAX_OPTS) cli_usage_fail(d, cmd, "more than %d options in its table", MAX_OPTS);
        lo[n] = (struct option){opts[n].name, opts[n].kind == OPT_FLAG ? no_argument
                                                                         : required_argument,
                                0, 256 + n};
    }
    lo[n] = (struct option){"help", no_argument, 0, 'h'};
    lo[n + 1] = (struct option){0, 0, 0, 0};
    char seen[MAX_OPTS] = {0};
    opterr = 0;
    optind = first;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        if (ch == 'h') return -1;
        if (ch < 256 || ch >= 256 + n)
            cli_usage_fail(d, cmd, "unknown or incomplete option '%s'", argv[optind - 1]);
        const Opt *o = &opts[ch - 256];
        seen[ch - 256] = 1;
        char flag[64];
        switch (o->kind) {
        case OPT_FLAG: *(int *)o->to = 1; break;
        case OPT_STRING: *(const char **)o->to = optarg; break;
        case OPT_INT:
            snprintf(flag, sizeof flag, "--%s", o->name);
            *(int *)o->to = (int)cli_parse_int(d, cmd, flag, optarg, o->lo, o->hi);
            break;
        case OPT_LIST: list_push(d, cmd, o, optarg); break;
        }
    }
    if (argc - optind > max_args)
        cli_usage_fail(d, cmd, "unexpected argument '%s'", argv[optind + max_args]);
    for (int i = 0; i < n; i++)
        if (opts[i].required && !seen[i]) cli_usage_fail(d, cmd, "--%s is required", opts[i].name);
    return optind;
}

void opts_print_help(FILE *f, const Opt *opts) {
    int width = 0;
    for (const Opt *o = opts; o->name; o++) {
        int w = 2 + (int)strlen(o->name) + (o->arg ? 1 + (int)strlen(o->arg) : 0);
        if (w > width) width = w;
    }
    for (const Opt *o = opts; o->name; o++) {
        if (!o->help) continue;  // not shown
        char head[128];
        snprintf(head, sizeof head, "--%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
        fprintf(f, "  %-*s", width + 3, head);
        for (const char *p = o->help;;) {  // continuation lines under the first
            const char *nl = strchr(p, '\n');
            if (!nl) {
                fprintf(f, "%s\n", p);
                break;
            }
            fprintf(f, "%.*s\n%*s", (int)(nl - p), p, width + 5, "");
            p = nl + 1;
        }
    }
}
