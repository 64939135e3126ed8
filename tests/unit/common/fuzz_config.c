/*
 * Fuzz target for config files and command-line values (common/options.c):
 * the input is used as a config file (through a memfd) for a table with
 * every kind of option and the shared checks. Nothing may crash, leak or
 * read out of bounds, every problem line must be one bounded line, and a
 * clean parse must leave only values that pass their checks.
 * Built with -fsanitize=fuzzer when meson -Dfuzz=true (clang); otherwise
 * linked with fuzz_driver.c and run as a test over pseudo-random inputs.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "options.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct fconf {
    char *relay, *name, *listen_one;
    bool flag;
    uint64_t num;
    ptth_strlist servers, addrs;
} fconf;

static const ptth_option foptions[] = {
    {"relay", PTTH_OPT_STRING, offsetof(fconf, relay), "URL", "", NULL, 0, 0, ptth_check_url},
    {"name", PTTH_OPT_STRING, offsetof(fconf, name), "NAME", "", NULL, 0, 0, ptth_check_name},
    {"addr", PTTH_OPT_STRING, offsetof(fconf, listen_one), "A", "", "127.0.0.1:1", 0, 0, ptth_check_host_port},
    {"flag", PTTH_OPT_FLAG, offsetof(fconf, flag), NULL, "", NULL, 0, 0, NULL},
    {"num", PTTH_OPT_UINT, offsetof(fconf, num), "N", "", "5", 1, 1000, NULL},
    {"server", PTTH_OPT_LIST, offsetof(fconf, servers), "NAME=HASH", "", NULL, 0, 0, ptth_check_name_hash},
    {"listen", PTTH_OPT_LIST, offsetof(fconf, addrs), "ADDR", "", NULL, 0, 0, ptth_check_host_port},
};

static const ptth_program fprog = {"fuzz", "0", "", "", NULL, foptions, sizeof(foptions) / sizeof(foptions[0]), 0, NULL};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("fuzz.conf", 0);
    if (fd < 0)
        return 0;
    if (size > 0 && write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    char *argv[] = {"fuzz", "--config", path, NULL};
    fconf c;
    ptth_cli cli;
    ptth_problems problems = {NULL, 0};
    int rc = ptth_options_load(&fprog, &c, &cli, 3, argv, &problems, NULL);
    for (size_t i = 0; i < problems.count; i++) {
        size_t len = strlen(problems.lines[i]);
        if (len == 0 || len > 4 * 1024 || memchr(problems.lines[i], '\n', len) != NULL)
            abort();
    }
    if ((rc == 0) != (problems.count == 0) || problems.count > 101)
        abort();
    if (getenv("PTTH_FUZZ_VERBOSE") != NULL)
        fprintf(stderr, "rc=%d problems=%zu servers=%zu first=%s\n", rc, problems.count, c.servers.count,
                problems.count > 0 ? problems.lines[0] : "");
    if (rc == 0) {
        char err[256];
        if (c.relay != NULL && ptth_check_url(c.relay, err, sizeof(err)) != 0)
            abort();
        if (c.name != NULL && ptth_check_name(c.name, err, sizeof(err)) != 0)
            abort();
        if (c.listen_one == NULL || c.num < 1 || c.num > 1000)
            abort();
        for (size_t i = 0; i < c.servers.count; i++) {
            if (ptth_check_name_hash(c.servers.items[i], err, sizeof(err)) != 0)
                abort();
        }
    }
    ptth_problems_free(&problems);
    ptth_options_free(&fprog, &c);
    ptth_cli_free(&cli);
    close(fd);
    return 0;
}
