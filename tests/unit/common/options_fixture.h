/*
 * The fixture of the Check suites of common/options (test_options.c,
 * test_options_file.c): a test program, tprog, whose option table sets the
 * fields of a tconf (one option of each kind, with and without a default,
 * a range and a check) and whose validate requires --name (and complains
 * besides when validate_complains is set).
 *
 * options_fixture_setup() makes an empty directory, tmpdir, for the test's
 * config files (write_conf) and resets validate's switches;
 * options_fixture_teardown() removes the directory. A test runs the parser
 * with LOAD (ptth_options_load into a loaded: the config, the built-ins, the
 * problems, the return code) or with PARSE (ptth_options_parse into a
 * parsed, stdout and stderr captured), and frees the result with unload()
 * or unparse().
 */
#ifndef PTTH_TEST_OPTIONS_FIXTURE_H
#define PTTH_TEST_OPTIONS_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <check.h>

#include "options.h"

typedef struct tconf {
    char *relay;
    char *name;
    bool insecure;
    uint64_t listens;
    uint64_t big;
    ptth_strlist port_map;
    ptth_strlist listen;
    char *mode;
    int untouched; /* not in the table: the parser must leave it alone */
} tconf;

extern ptth_program tprog;
extern int validate_calls;      /* how often tprog's validate ran */
extern bool validate_complains; /* validate adds "validate says no" */
extern char tmpdir[64];         /* this test's directory for config files */

void options_fixture_setup(void);
void options_fixture_teardown(void);

/* Writes content to tmpdir/name; the path stays valid for the next three
 * calls. */
const char *write_conf(const char *name, const char *content);

/* Result of one ptth_options_load. */
typedef struct loaded {
    tconf c;
    ptth_cli cli;
    ptth_problems problems;
    int rc;
    bool exit_early;
} loaded;

/* ptth_options_load of tprog into a zeroed l (its tconf's untouched 77). */
void load_argv(loaded *l, int argc, char **argv);

#define LOAD(l, ...)                                                                                                               \
    do {                                                                                                                           \
        char *argv_[] = {"ptth_test", __VA_ARGS__};                                                                                \
        load_argv(l, (int)(sizeof(argv_) / sizeof(argv_[0])), argv_);                                                              \
    } while (0)

void unload(loaded *l);

/* Whether l has a problem line equal to text. */
bool has_problem(const loaded *l, const char *text);
/* The problem lines of l, each in brackets, for a failure message. */
void dump_problems(const loaded *l, char *out, size_t outlen);

#define ASSERT_PROBLEM(l, text)                                                                                                    \
    do {                                                                                                                           \
        char dump_[4096];                                                                                                          \
        dump_problems(l, dump_, sizeof(dump_));                                                                                    \
        ck_assert_msg(has_problem(l, text), "missing problem '%s'; got %s", text, dump_);                                          \
    } while (0)

#define ASSERT_CLEAN(l)                                                                                                            \
    do {                                                                                                                           \
        char dump_[4096];                                                                                                          \
        dump_problems(l, dump_, sizeof(dump_));                                                                                    \
        ck_assert_msg((l)->rc == 0 && (l)->problems.count == 0, "problems: %s", dump_);                                            \
    } while (0)

/* Result of one ptth_options_parse, with what it printed. */
typedef struct parsed {
    ptth_parse_result result;
    char out[16384];
    char err[16384];
    tconf c;
    ptth_cli cli;
} parsed;

/* Runs ptth_options_parse of tprog with stdout and stderr captured. */
void parse_argv(parsed *p, int argc, char **argv);

#define PARSE(p, ...)                                                                                                              \
    do {                                                                                                                           \
        char *argv_[] = {"ptth_test", __VA_ARGS__};                                                                                \
        parse_argv(p, (int)(sizeof(argv_) / sizeof(argv_[0])), argv_);                                                             \
    } while (0)

void unparse(parsed *p);

/* Reads all of f (from its start) into buf as a string, and closes f. */
void read_back(FILE *f, char *buf, size_t len);

#endif
