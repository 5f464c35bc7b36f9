// fuzz_config.c: the config parser (config_load) on arbitrary text. Besides the sanitizers'
// checks: a config that loads must load again from the text it produces (c.text), since that
// text is what a checkpoint keeps and what eval and predict rebuild the model from.
#include <stdint.h>
#include <stdlib.h>

#include "fuzzutil.h"
#include "launch/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = fuzz_strndup(data, size);
    Config c;
    Err e = {0};
    if (config_load(&c, "fuzz.cfg", text, NULL, 0, &e) == ERR_OK) fuzz_config_round_trip(&c);
    free(text);
    return 0;
}
