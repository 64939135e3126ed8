/*
 * options.h: one parser for the command line and `--config` files of every
 * ptth program (SPEC §2). Each program describes its options in a table; this
 * module does the rest:
 *
 *   - `--name value` and `--name=value` on the command line (a flag takes no
 *     value, though `--flag=false` is accepted; in "--name value" a value that
 *     starts with "--" is taken as a missing value: write --name=--x); `-h` is
 *     --help; `--` ends the options. Other arguments are positional, up to
 *     max_positional of them.
 *   - `name = value` lines in the config file: name and value are trimmed of
 *     spaces and tabs, the value is everything after the first '=' (taken
 *     literally, no quoting); `#` at the start of a line or after a space or
 *     tab starts a comment; blank lines are ignored; a flag may be written as
 *     its bare name (meaning true). Empty values are an error everywhere. A
 *     line above 4096 bytes, a NUL byte or a file above 1 MiB is an error;
 *     `config`, `check-config`, `help` and `version` are not allowed in a file.
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
 * owned by it; ptth_options_free() releases them. Only the fields named in
 * the table are touched: a program's struct may hold other fields too.
 * A value that fails its check is not stored, so anything present in the
 * struct passed its check.
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
    const char *name; /* long name without "--" */
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
    size_t max_positional; /* positional arguments allowed (ptth_key: 2); more is an error */
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
    bool help, version; /* --help (or -h) / --version was given */
} ptth_cli;

typedef enum ptth_parse_result {
    PTTH_PARSE_RUN = 0,       /* start the program */
    PTTH_PARSE_EXIT_OK = 1,   /* --help / --version / --check-config ok: exit 0 */
    PTTH_PARSE_EXIT_USAGE = 2 /* problems were printed: exit 2 */
} ptth_parse_result;

/* Start-up entry point: zeroes the table's fields of config and cli, applies
 * the file, then argv, then the defaults of options nobody set; runs
 * validate() when everything else parsed cleanly. Prints help/version to
 * stdout (--help and --version win over any other problem and do not read
 * the file), problems to stderr as "NAME: problem" (one line each, at most
 * 100), "config ok" for a clean --check-config. Also calls
 * ptth_log_init(name, level). On EXIT_OK and EXIT_USAGE, config and cli are
 * already freed (freeing them again is harmless). */
ptth_parse_result ptth_options_parse(const ptth_program *prog, void *config, ptth_cli *cli, int argc, char **argv);

/* Same work without printing or exiting, for SIGHUP reload and tests: fills
 * config/cli and problems; returns 0 when there were none, -1 otherwise.
 * --help/--version in argv set *exit_early (when non-NULL). config and cli
 * must hold nothing yet (a fresh struct, or one passed through
 * ptth_options_free/ptth_cli_free): their fields are overwritten. On failure
 * they may hold the values that did parse; free them as usual. */
int ptth_options_load(const ptth_program *prog, void *config, ptth_cli *cli, int argc, char **argv, ptth_problems *problems,
                      bool *exit_early);

/* Prints the --help text to f. */
void ptth_options_print_help(const ptth_program *prog, FILE *f);

void ptth_options_free(const ptth_program *prog, void *config);
void ptth_cli_free(ptth_cli *cli);

/* Frequently needed checks, usable as ptth_option.check. */
int ptth_check_name(const char *value, char *err, size_t errlen);      /* SPEC §2 name */
int ptth_check_host_port(const char *value, char *err, size_t errlen); /* HOST:PORT or [V6]:PORT, port 0..65535 */
int ptth_check_listen(const char *value, char *err, size_t errlen);    /* numeric ADDR:PORT or [V6]:PORT to bind, port 0..65535 */
int ptth_check_url(const char *value, char *err, size_t errlen);       /* http(s)://HOST[:PORT][/PATH], no query */
int ptth_check_name_hash(const char *value, char *err, size_t errlen); /* NAME=64 hex */

/* Splits "HOST:PORT" / "[V6]:PORT" into host (brackets removed) and port.
 * 0, or -EINVAL when the form is wrong or port is not 1..65535 (0 allowed when
 * allow_zero). */
int ptth_split_host_port(const char *value, char *host, size_t hostlen, uint16_t *port, bool allow_zero);

#endif
