/*
 * options.h: one parser for the command line and `--config` files of every
 * ptth program (SPEC §2). Each program describes its options in a table; this
 * module does the rest:
 *
 *   - `--name value` and `--name=value` on the command line; `name = value`
 *     lines in the config file (`#` starts a comment, blank lines ignored).
 *   - Built in for every program: --help, --version, --config FILE,
 *     --check-config, --log-level error|warn|info|debug.
 *   - The file is applied first, then the command line. A single-valued option
 *     given on the command line replaces the file's value; repeatable (LIST)
 *     options accumulate, file items first. Giving a single-valued option twice
 *     in the same source is an error.
 *   - Every problem is collected (not just the first): unknown names, missing or
 *     bad values, out-of-range numbers, duplicates, failures of an option's
 *     check() and of the program's validate(). Problems in the file name it and
 *     the line: "relay.conf:12: unknown option 'fo'"; command-line problems name
 *     the option: "--listen: bad address 'x': ...".
 *
 * Ownership: strings and lists stored into the config struct are heap copies
 * owned by it; ptth_options_free() releases them.
 */
#ifndef PTTH_OPTIONS_H
#define PTTH_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "log.h"

typedef enum ptth_opt_kind {
    PTTH_OPT_FLAG,   /* bool field; in files: true|false|yes|no|on|off|1|0 */
    PTTH_OPT_STRING, /* char * field */
    PTTH_OPT_UINT,   /* uint64_t field, decimal, within [min, max] */
    PTTH_OPT_LIST,   /* ptth_strlist field, repeatable */
} ptth_opt_kind;

typedef struct ptth_strlist {
    char **items;
    size_t count;
} ptth_strlist;

/* A list of problem lines (no program-name prefix, no newline). */
typedef struct ptth_problems {
    char **lines;
    size_t count;
} ptth_problems;

void ptth_problems_add(ptth_problems *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ptth_problems_free(ptth_problems *p);

typedef struct ptth_option {
    const char *name;          /* long name without "--" */
    ptth_opt_kind kind;
    size_t offset;             /* offsetof() of the field in the program's config struct */
    const char *metavar;       /* shown in --help, e.g. "ADDR:PORT"; NULL for flags */
    const char *help;          /* one line */
    const char *default_value; /* applied when the option is not given (LIST: when empty); NULL: none */
    uint64_t min, max;         /* UINT bounds (both 0: any) */
    /* Optional check of one value. Returns 0, or -1 with a reason in err
     * (without the location, which the parser adds). */
    int (*check)(const char *value, char *err, size_t errlen);
} ptth_option;

typedef struct ptth_program {
    const char *name;    /* "ptth_relay": prefix of every error line */
    const char *version; /* printed by --version */
    const char *usage;   /* after the name in "Usage: ", e.g. "[OPTIONS]" */
    const char *summary; /* paragraph printed by --help above the options */
    const char *epilog;  /* printed after the options (exit codes, env vars); may be NULL */
    const ptth_option *options;
    size_t n_options;
    size_t max_positional; /* positional arguments allowed (ptth_key: 2) */
    /* Optional: cross-option checks after parsing (required options, key
     * files, combinations). Adds to problems; must not exit. */
    void (*validate)(void *config, ptth_problems *problems);
} ptth_program;

/* What the built-in options said. */
typedef struct ptth_cli {
    char *config_path; /* --config, or NULL */
    bool check_config;
    ptth_log_level log_level; /* default PTTH_LOG_INFO */
    char **positional;
    size_t n_positional;
} ptth_cli;

typedef enum ptth_parse_result {
    PTTH_PARSE_RUN = 0,       /* start the program */
    PTTH_PARSE_EXIT_OK = 1,   /* --help / --version / --check-config ok: exit 0 */
    PTTH_PARSE_EXIT_USAGE = 2 /* problems were printed: exit 2 */
} ptth_parse_result;

/* Start-up entry point: zeroes config and cli, applies defaults, the file,
 * then argv; runs validate(). Prints help/version to stdout, problems to
 * stderr as "NAME: problem" (one line each), "config ok" for a clean
 * --check-config. Also calls ptth_log_init(name, level). */
ptth_parse_result ptth_options_parse(const ptth_program *prog, void *config, ptth_cli *cli, int argc, char **argv);

/* Same work without printing or exiting, for SIGHUP reload and tests: fills
 * config/cli and problems; returns 0 when there were none, -1 otherwise.
 * --help/--version in argv set *exit_early (when non-NULL). */
int ptth_options_load(const ptth_program *prog, void *config, ptth_cli *cli, int argc, char **argv, ptth_problems *problems,
                      bool *exit_early);

/* Prints the --help text to f. */
void ptth_options_print_help(const ptth_program *prog, FILE *f);

void ptth_options_free(const ptth_program *prog, void *config);
void ptth_cli_free(ptth_cli *cli);

/* Frequently needed checks, usable as ptth_option.check. */
int ptth_check_name(const char *value, char *err, size_t errlen);          /* SPEC §2 name */
int ptth_check_host_port(const char *value, char *err, size_t errlen);     /* HOST:PORT or [V6]:PORT */
int ptth_check_url(const char *value, char *err, size_t errlen);           /* http:// or https:// URL */
int ptth_check_name_hash(const char *value, char *err, size_t errlen);     /* NAME=64 hex */

/* Splits "HOST:PORT" / "[V6]:PORT" into host (brackets removed) and port.
 * 0, or -EINVAL when the form is wrong or port is not 1..65535 (0 allowed when
 * allow_zero). */
int ptth_split_host_port(const char *value, char *host, size_t hostlen, uint16_t *port, bool allow_zero);

#endif
