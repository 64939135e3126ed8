/*
 * fuzz_config.c: libFuzzer target for the options and config-file parser
 * (common/options.h), which reads `--config FILE` for every program.
 *
 * Input: byte 0 picks the mode.
 *   even: the rest is the config file (written to a memfd, read through
 *         /proc/self/fd/N as the program would read a file);
 *   odd:  the rest is split at NUL bytes: the first piece is the file, the
 *         others (up to 16) are command-line arguments after "--config FILE".
 * The option table looks like a real program's: flags, strings, bounded
 * uints, repeatable lists, the shared checks (name, HOST:PORT, URL,
 * NAME=KEYHASH), a custom check and a validate() callback.
 *
 * Checked on every input, besides no crash, leak or out-of-bounds access:
 *   - load returns 0 exactly when it reported no problem, and -1 otherwise;
 *   - every problem line is non-empty, one line (no control characters),
 *     bounded; at most 101 of them;
 *   - after a clean load every stored value passes its check: strings and
 *     list items through check(), uints within [min, max];
 *   - file-only mode, clean load: writing the stored values back as a config
 *     file and loading that gives the same values (the parser reads what it
 *     accepted the same way twice).
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "options.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

typedef struct fconf {
    char *relay, *name, *listen_one, *free_text, *mode;
    bool insecure, verbose;
    uint64_t listens, max_chunk, any_number;
    ptth_strlist servers, listen, notes;
} fconf;

/* A custom check like the programs write: one word of a fixed set. */
static int
check_mode(const char *value, char *err, size_t errlen)
{
    if (strcmp(value, "fast") == 0 || strcmp(value, "safe") == 0)
        return 0;
    snprintf(err, errlen, "bad mode '%s' (fast or safe)", value);
    return -1;
}

static const ptth_option foptions[] = {
    {"relay", PTTH_OPT_STRING, offsetof(fconf, relay), "URL", "relay URL", NULL, 0, 0, ptth_check_url},
    {"name", PTTH_OPT_STRING, offsetof(fconf, name), "NAME", "a name", NULL, 0, 0, ptth_check_name},
    {"addr", PTTH_OPT_STRING, offsetof(fconf, listen_one), "ADDR:PORT", "one address", "127.0.0.1:4000", 0, 0,
     ptth_check_host_port},
    {"text", PTTH_OPT_STRING, offsetof(fconf, free_text), "TEXT", "anything", NULL, 0, 0, NULL},
    {"mode", PTTH_OPT_STRING, offsetof(fconf, mode), "MODE", "fast or safe", "safe", 0, 0, check_mode},
    {"insecure", PTTH_OPT_FLAG, offsetof(fconf, insecure), NULL, "a flag", NULL, 0, 0, NULL},
    {"verbose", PTTH_OPT_FLAG, offsetof(fconf, verbose), NULL, "another flag", NULL, 0, 0, NULL},
    {"listens", PTTH_OPT_UINT, offsetof(fconf, listens), "N", "1 to 64", "4", 1, 64, NULL},
    {"max-chunk", PTTH_OPT_UINT, offsetof(fconf, max_chunk), "BYTES", "bounded", "262144", 1024, 16777216, NULL},
    {"number", PTTH_OPT_UINT, offsetof(fconf, any_number), "N", "unbounded", NULL, 0, 0, NULL},
    {"server", PTTH_OPT_LIST, offsetof(fconf, servers), "NAME=HASH", "repeatable", NULL, 0, 0, ptth_check_name_hash},
    {"listen", PTTH_OPT_LIST, offsetof(fconf, listen), "ADDR:PORT", "repeatable", "127.0.0.1:0", 0, 0, ptth_check_host_port},
    {"note", PTTH_OPT_LIST, offsetof(fconf, notes), "TEXT", "repeatable, unchecked", NULL, 0, 0, NULL},
};
#define N_OPTIONS (sizeof(foptions) / sizeof(foptions[0]))

/* A cross-option rule, so that validate() runs (it only runs on clean input). */
static void
validate(void *config, ptth_problems *problems)
{
    fconf *c = config;
    if (c->insecure && c->relay != NULL && strncmp(c->relay, "https://", 8) != 0)
        ptth_problems_add(problems, "--insecure needs an https:// --relay, not '%s'", c->relay);
}

static const ptth_program fprog = {"fuzz_config", "0", "[OPTIONS]", "fuzz", NULL, foptions, N_OPTIONS, 2, validate};

static void
fail(const char *what)
{
    fprintf(stderr, "fuzz_config: invariant broken: %s\n", what);
    abort();
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* the parser logs nothing itself, but keep stderr quiet if it did */
    ptth_log_init("fuzz_config", PTTH_LOG_ERROR);
    return 0;
}

/* Writes len bytes to a new memfd; returns it, or -1. */
static int
memfd_with(const void *bytes, size_t len)
{
    int fd = memfd_create("fuzz.conf", MFD_CLOEXEC);
    if (fd < 0)
        return -1;
    const char *p = bytes;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            close(fd);
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return fd;
}

static int
load(const char *path, char **extra, int n_extra, fconf *c, ptth_cli *cli, ptth_problems *problems, bool *exit_early)
{
    char *argv[3 + 16 + 1];
    int argc = 0;
    argv[argc++] = "fuzz_config";
    argv[argc++] = "--config";
    argv[argc++] = (char *)path;
    for (int i = 0; i < n_extra; i++)
        argv[argc++] = extra[i];
    argv[argc] = NULL;
    return ptth_options_load(&fprog, c, cli, argc, argv, problems, exit_early);
}

static void
check_problems(int rc, const ptth_problems *p)
{
    if ((rc == 0) != (p->count == 0))
        fail("return value disagrees with the problem count");
    if (rc != 0 && rc != -1)
        fail("return value is neither 0 nor -1");
    if (p->count > 101)
        fail("more than 101 problem lines");
    for (size_t i = 0; i < p->count; i++) {
        const char *l = p->lines[i];
        size_t len = strlen(l);
        if (len == 0)
            fail("empty problem line");
        if (len > 4 * 1024)
            fail("problem line longer than 4 KiB");
        for (size_t j = 0; j < len; j++)
            if ((unsigned char)l[j] < 0x20 || l[j] == 0x7f)
                fail("control character in a problem line");
    }
}

static void
check_value(const ptth_option *o, const char *v)
{
    if (v == NULL || v[0] == '\0')
        fail("empty value stored");
    char err[1024];
    if (o->check != NULL && o->check(v, err, sizeof(err)) != 0)
        fail("a stored value fails its check");
}

/* Everything a clean load stored must have passed its check. */
static void
check_stored(const fconf *c)
{
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const ptth_option *o = &foptions[i];
        const void *f = (const char *)c + o->offset;
        switch (o->kind) {
        case PTTH_OPT_STRING:
            if (*(char *const *)f != NULL)
                check_value(o, *(char *const *)f);
            else if (o->default_value != NULL)
                fail("a string with a default is unset");
            break;
        case PTTH_OPT_UINT: {
            uint64_t v = *(const uint64_t *)f;
            if ((o->min != 0 || o->max != 0) && (v < o->min || v > o->max))
                fail("a stored number is out of its range");
            break;
        }
        case PTTH_OPT_LIST: {
            const ptth_strlist *l = f;
            if ((l->count == 0) != (l->items == NULL))
                fail("list count and items disagree");
            for (size_t k = 0; k < l->count; k++)
                check_value(o, l->items[k]);
            if (l->count == 0 && o->default_value != NULL)
                fail("a list with a default is empty");
            break;
        }
        case PTTH_OPT_FLAG:
            break;
        }
    }
}

/* Writes the stored values as a config file, one "name=value" line each.
 * Lines end in CRLF: the parser drops one CR before the LF, so a value that
 * itself ends in CR comes back whole. Returns a malloc'd buffer. */
static char *
serialize(const fconf *c, const ptth_cli *cli, size_t *lenp)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (f == NULL)
        abort();
    static const char *const levels[] = {"error", "warn", "info", "debug"};
    if ((unsigned)cli->log_level < 4)
        fprintf(f, "log-level=%s\r\n", levels[cli->log_level]);
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const ptth_option *o = &foptions[i];
        const void *v = (const char *)c + o->offset;
        switch (o->kind) {
        case PTTH_OPT_STRING:
            if (*(char *const *)v != NULL)
                fprintf(f, "%s=%s\r\n", o->name, *(char *const *)v);
            break;
        case PTTH_OPT_UINT:
            fprintf(f, "%s=%llu\r\n", o->name, (unsigned long long)*(const uint64_t *)v);
            break;
        case PTTH_OPT_FLAG:
            fprintf(f, "%s=%s\r\n", o->name, *(const bool *)v ? "yes" : "off");
            break;
        case PTTH_OPT_LIST: {
            const ptth_strlist *l = v;
            for (size_t k = 0; k < l->count; k++)
                fprintf(f, "%s=%s\r\n", o->name, l->items[k]);
            break;
        }
        }
    }
    if (fclose(f) != 0)
        abort();
    *lenp = len;
    return buf;
}

static bool
same_str(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static void
compare(const fconf *a, const ptth_cli *acli, const fconf *b, const ptth_cli *bcli)
{
    if (acli->log_level != bcli->log_level)
        fail("round trip changed the log level");
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const ptth_option *o = &foptions[i];
        const void *fa = (const char *)a + o->offset, *fb = (const char *)b + o->offset;
        bool same = true;
        switch (o->kind) {
        case PTTH_OPT_STRING:
            same = same_str(*(char *const *)fa, *(char *const *)fb);
            break;
        case PTTH_OPT_UINT:
            same = *(const uint64_t *)fa == *(const uint64_t *)fb;
            break;
        case PTTH_OPT_FLAG:
            same = *(const bool *)fa == *(const bool *)fb;
            break;
        case PTTH_OPT_LIST: {
            const ptth_strlist *la = fa, *lb = fb;
            same = la->count == lb->count;
            for (size_t k = 0; same && k < la->count; k++)
                same = strcmp(la->items[k], lb->items[k]) == 0;
            break;
        }
        }
        if (!same) {
            fprintf(stderr, "fuzz_config: option '%s' differs after a round trip\n", o->name);
            fail("round trip through a written config file changed a value");
        }
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    bool with_argv = data[0] & 1;
    const uint8_t *body = data + 1;
    size_t body_len = size - 1;

    /* split off the command-line arguments (odd mode) */
    size_t file_len = body_len;
    char *args_buf = NULL;
    char *extra[16];
    int n_extra = 0;
    if (with_argv) {
        const uint8_t *nul = memchr(body, '\0', body_len);
        if (nul != NULL) {
            file_len = (size_t)(nul - body);
            size_t rest = body_len - file_len - 1;
            args_buf = malloc(rest + 1);
            if (args_buf == NULL)
                return 0;
            memcpy(args_buf, nul + 1, rest);
            args_buf[rest] = '\0';
            char *p = args_buf, *end = args_buf + rest;
            while (n_extra < 16 && p <= end) {
                extra[n_extra++] = p;
                p += strlen(p) + 1;
            }
        }
    }

    int fd = memfd_with(body, file_len);
    if (fd < 0) {
        free(args_buf);
        return 0;
    }
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);

    fconf c;
    ptth_cli cli;
    ptth_problems problems = {NULL, 0};
    memset(&c, 0x5A, sizeof(c)); /* load must not trust what was there */
    bool exit_early = false;
    int rc = load(path, extra, n_extra, &c, &cli, &problems, &exit_early);
    close(fd);
    check_problems(rc, &problems);
    /* --help or --version (odd mode) stop before the file and the defaults */
    if (rc == 0 && !exit_early) {
        check_stored(&c);
        if (!with_argv) {
            size_t len;
            char *text = serialize(&c, &cli, &len);
            int fd2 = memfd_with(text, len);
            free(text);
            if (fd2 < 0)
                abort();
            snprintf(path, sizeof(path), "/proc/self/fd/%d", fd2);
            fconf c2;
            ptth_cli cli2;
            ptth_problems problems2 = {NULL, 0};
            bool exit2 = false;
            int rc2 = load(path, NULL, 0, &c2, &cli2, &problems2, &exit2);
            close(fd2);
            if (rc2 != 0) {
                fprintf(stderr, "fuzz_config: reloading the written file: %s\n", problems2.lines[0]);
                fail("a file written from accepted values is refused");
            }
            compare(&c, &cli, &c2, &cli2);
            ptth_problems_free(&problems2);
            ptth_options_free(&fprog, &c2);
            ptth_cli_free(&cli2);
        }
    }
    ptth_problems_free(&problems);
    ptth_options_free(&fprog, &c);
    ptth_cli_free(&cli);
    free(args_buf);
    return 0;
}
