// fuzzutil.c: scratch files and source-tree reads for the fuzz targets (fuzzutil.h).
#include "fuzzutil.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char input_path[4096];

const char *fuzz_tmpdir(void) {
    const char *t = getenv("TMPDIR");
    return t && *t ? t : "/tmp";
}

static void remove_input_file(void) {
    unlink(input_path);
}

const char *fuzz_input_file(const uint8_t *data, size_t size) {
    if (!input_path[0]) {
        snprintf(input_path, sizeof input_path, "%s/regdist-fuzz-%d.in", fuzz_tmpdir(),
                 (int)getpid());
        atexit(remove_input_file);
    }
    int fd = open(input_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) fuzz_fail("cannot create", input_path);
    for (size_t done = 0; done < size;) {
        ssize_t k = write(fd, data + done, size - done);
        if (k <= 0) fuzz_fail("cannot write", input_path);
        done += (size_t)k;
    }
    if (close(fd) != 0) fuzz_fail("cannot write", input_path);
    return input_path;
}

char *fuzz_read_source(const char *rel) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", REGDIST_SOURCE_DIR, rel);
    FILE *f = fopen(path, "rb");
    if (!f) fuzz_fail("cannot open", path);
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (int c; (c = fgetc(f)) != EOF;) {
        if (len + 1 >= cap && !(buf = realloc(buf, cap = cap ? 2 * cap : 4096)))
            fuzz_fail("out of memory reading", path);
        buf[len++] = (char)c;
    }
    fclose(f);
    if (!buf && !(buf = malloc(1))) fuzz_fail("out of memory reading", path);
    buf[len] = 0;
    return buf;
}

char *fuzz_strndup(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    if (!s) fuzz_fail("out of memory", "copying the input");
    memcpy(s, data, size);
    s[size] = 0;
    return s;
}

_Noreturn void fuzz_fail(const char *what, const char *msg) {
    fprintf(stderr, "fuzz: %s: %s\n", what, msg);
    abort();
}

void fuzz_config_round_trip(Config *c) {
    Config again;
    Err e = {0};
    if (config_load(&again, "the saved config", c->text, NULL, 0, &e) != ERR_OK)
        fuzz_fail("the saved config does not load", e.msg);
    config_free(&again);
    config_free(c);
}
