// fuzz_config_set.c: --set overrides (config_load's sets) over the shipped cnn6_mlp4 config:
// every line of the input is one "key=value" (an empty line too, as `--set ''` would be).
// Like fuzz_config, a config that loads must load again from the text it produces.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzzutil.h"
#include "launch/cli.h"
#include "launch/config.h"

static char *base;  // launch/configs/cnn6_mlp4.cfg

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    base = fuzz_read_source("launch/configs/cnn6_mlp4.cfg");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *lines = fuzz_strndup(data, size);
    const char *sets[MAX_SETS];  // as many as regdist train accepts
    int n = 0;
    for (char *p = lines; n < MAX_SETS;) {
        sets[n++] = p;
        char *nl = strchr(p, '\n');
        if (!nl || !nl[1]) {  // a final newline ends the last line, it starts no other
            if (nl) *nl = 0;
            break;
        }
        *nl = 0;
        p = nl + 1;
    }
    Config c;
    Err e = {0};
    if (config_load(&c, "cnn6_mlp4.cfg", base, sets, n, &e) == ERR_OK) fuzz_config_round_trip(&c);
    free(lines);
    return 0;
}
