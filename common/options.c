/*
 * options.c: see options.h. One pass over argv finds the built-in options,
 * the positional arguments and which program option each argument names;
 * then the config file is read and applied, then the command-line values,
 * then the defaults of whatever nobody set. Every problem is collected with
 * its location; nothing here prints except ptth_options_parse().
 */
#include "options.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keys.h"
#include "names.h"

#define CONFIG_FILE_MAX (1024 * 1024)
#define CONFIG_LINE_MAX 4096
#define PROBLEM_LINE_MAX 1024
#define PROBLEMS_MAX 100
#define URL_MAX 2048

/* ---- problems ------------------------------------------------------------ */

/* Control characters in a problem line (they may come from a file or argv)
 * are shown as \xNN so that one problem is always one terminal line. */
void
ptth_problems_add(ptth_problems *p, const char *fmt, ...)
{
    if (p->count > PROBLEMS_MAX)
        return;
    char raw[PROBLEM_LINE_MAX];
    if (p->count == PROBLEMS_MAX) {
        snprintf(raw, sizeof(raw), "too many problems; the rest are not shown");
    } else {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(raw, sizeof(raw), fmt, ap);
        va_end(ap);
        if (n < 0)
            snprintf(raw, sizeof(raw), "(unprintable problem)");
        else if ((size_t)n >= sizeof(raw))
            memcpy(raw + sizeof(raw) - 4, "...", 4);
    }
    char clean[PROBLEM_LINE_MAX * 4];
    size_t o = 0;
    for (const char *s = raw; *s != '\0' && o + 5 < sizeof(clean); s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7f)
            o += (size_t)snprintf(clean + o, sizeof(clean) - o, "\\x%02x", c);
        else
            clean[o++] = (char)c;
    }
    clean[o] = '\0';
    char *line = strdup(clean);
    char **lines = line != NULL ? realloc(p->lines, (p->count + 1) * sizeof(*lines)) : NULL;
    if (lines == NULL) {
        free(line);
        return;
    }
    p->lines = lines;
    p->lines[p->count++] = line;
}

void
ptth_problems_free(ptth_problems *p)
{
    for (size_t i = 0; i < p->count; i++)
        free(p->lines[i]);
    free(p->lines);
    p->lines = NULL;
    p->count = 0;
}

/* ---- the option table ---------------------------------------------------- */

enum builtin { B_NONE = 0, B_HELP, B_VERSION, B_CONFIG, B_CHECK_CONFIG, B_LOG_LEVEL, B_COUNT };

static const ptth_option builtin_options[B_COUNT] = {
    [B_CONFIG] = {"config", PTTH_OPT_STRING, 0, "FILE", "read options from FILE: one 'name = value' per line", NULL, 0, 0, NULL},
    [B_CHECK_CONFIG] = {"check-config", PTTH_OPT_FLAG, 0, NULL, "check the options and files, print 'config ok' and exit", NULL, 0,
                        0, NULL},
    [B_LOG_LEVEL] = {"log-level", PTTH_OPT_STRING, 0, "LEVEL", "error, warn, info or debug", "info", 0, 0, NULL},
    [B_HELP] = {"help", PTTH_OPT_FLAG, 0, NULL, "print this help and exit", NULL, 0, 0, NULL},
    [B_VERSION] = {"version", PTTH_OPT_FLAG, 0, NULL, "print the version and exit", NULL, 0, 0, NULL},
};
/* the order in which --help lists them */
static const enum builtin builtin_help_order[] = {B_CONFIG, B_CHECK_CONFIG, B_LOG_LEVEL, B_HELP, B_VERSION};

/* An option of the program (index < n_options) or a built-in (n_options + B_x). */
typedef struct optref {
    const ptth_option *opt;
    size_t index;
    enum builtin builtin;
} optref;

static bool
lookup(const ptth_program *prog, const char *name, size_t len, optref *out)
{
    for (size_t i = 0; i < prog->n_options; i++) {
        const char *n = prog->options[i].name;
        if (strlen(n) == len && memcmp(n, name, len) == 0) {
            *out = (optref){&prog->options[i], i, B_NONE};
            return true;
        }
    }
    for (int b = 1; b < B_COUNT; b++) {
        const char *n = builtin_options[b].name;
        if (strlen(n) == len && memcmp(n, name, len) == 0) {
            *out = (optref){&builtin_options[b], prog->n_options + (size_t)b, (enum builtin)b};
            return true;
        }
    }
    return false;
}

/* ---- one parse ----------------------------------------------------------- */

enum source_kind { SRC_NONE = 0, SRC_DEFAULT, SRC_FILE, SRC_CLI };

typedef struct source {
    enum source_kind kind;
    const char *file; /* SRC_FILE */
    size_t line;      /* SRC_FILE */
} source;

/* Where each option was last set, to find duplicates within one source. */
typedef struct opt_state {
    enum source_kind set_by;
    size_t line;
} opt_state;

typedef struct parse {
    const ptth_program *prog;
    void *config;
    ptth_cli *cli;
    ptth_problems *problems;
    opt_state *state; /* n_options + B_COUNT */
} parse;

/* A CLI argument that names a program option or --log-level, with its value. */
typedef struct cli_item {
    optref ref;
    const char *value; /* NULL for a flag without "=" */
} cli_item;

static void *
field(parse *ps, const ptth_option *opt)
{
    return (char *)ps->config + opt->offset;
}

/* "relay.conf:12: listen: " / "--listen: " / "default of --listen: " */
static void
location(const source *src, const ptth_option *opt, char *out, size_t outlen)
{
    switch (src->kind) {
    case SRC_FILE:
        snprintf(out, outlen, "%s:%zu: %s: ", src->file, src->line, opt->name);
        break;
    case SRC_CLI:
        snprintf(out, outlen, "--%s: ", opt->name);
        break;
    default:
        snprintf(out, outlen, "default of --%s: ", opt->name);
        break;
    }
}

static bool
parse_bool(const char *text, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcmp(text, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcmp(text, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

/* Decimal digits only (no sign, no spaces), no overflow. */
static bool
parse_u64(const char *text, uint64_t *out)
{
    uint64_t v = 0;
    if (*text == '\0')
        return false;
    for (const char *p = text; *p != '\0'; p++) {
        if (*p < '0' || *p > '9')
            return false;
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

static char *
dup_or_problem(parse *ps, const char *loc, const char *value)
{
    char *copy = strdup(value);
    if (copy == NULL)
        ptth_problems_add(ps->problems, "%sout of memory", loc);
    return copy;
}

/* Applies one value of an option from src: duplicate check, parse, check(),
 * store. value is NULL only for a flag given without a value. */
static void
apply(parse *ps, const optref *ref, const char *value, const source *src)
{
    const ptth_option *opt = ref->opt;
    opt_state *st = &ps->state[ref->index];
    char loc[PROBLEM_LINE_MAX];
    location(src, opt, loc, sizeof(loc));

    if (opt->kind != PTTH_OPT_LIST && src->kind != SRC_DEFAULT && st->set_by == src->kind) {
        if (src->kind == SRC_FILE)
            ptth_problems_add(ps->problems, "%s:%zu: duplicate option '%s' (first given on line %zu)", src->file, src->line,
                              opt->name, st->line);
        else
            ptth_problems_add(ps->problems, "--%s: given more than once", opt->name);
        return;
    }
    st->set_by = src->kind;
    st->line = src->line;

    if (value != NULL && value[0] == '\0') {
        ptth_problems_add(ps->problems, "%smissing value", loc);
        return;
    }
    if (value == NULL && opt->kind != PTTH_OPT_FLAG) {
        ptth_problems_add(ps->problems, "%smissing value", loc);
        return;
    }
    if (value != NULL && opt->check != NULL) {
        char err[PROBLEM_LINE_MAX] = "";
        if (opt->check(value, err, sizeof(err)) != 0) {
            ptth_problems_add(ps->problems, "%s%s", loc, err[0] != '\0' ? err : "bad value");
            return;
        }
    }

    if (ref->builtin == B_LOG_LEVEL) {
        if (ptth_log_parse_level(value, &ps->cli->log_level) != 0)
            ptth_problems_add(ps->problems, "%sbad level '%s' (use error, warn, info or debug)", loc, value);
        return;
    }
    if (ref->builtin != B_NONE) /* other built-ins never get here */
        return;

    switch (opt->kind) {
    case PTTH_OPT_FLAG: {
        bool v = true;
        if (value != NULL && !parse_bool(value, &v)) {
            ptth_problems_add(ps->problems, "%s'%s' is not a boolean (use true, false, yes, no, on, off, 1 or 0)", loc, value);
            return;
        }
        *(bool *)field(ps, opt) = v;
        break;
    }
    case PTTH_OPT_UINT: {
        uint64_t v;
        if (!parse_u64(value, &v)) {
            ptth_problems_add(ps->problems, "%s'%s' is not a number (decimal digits only)", loc, value);
            return;
        }
        if ((opt->min != 0 || opt->max != 0) && (v < opt->min || v > opt->max)) {
            ptth_problems_add(ps->problems, "%s%s is out of range (%llu to %llu)", loc, value, (unsigned long long)opt->min,
                              (unsigned long long)opt->max);
            return;
        }
        *(uint64_t *)field(ps, opt) = v;
        break;
    }
    case PTTH_OPT_STRING: {
        char *copy = dup_or_problem(ps, loc, value);
        if (copy == NULL)
            return;
        char **slot = field(ps, opt);
        free(*slot); /* the command line replaces the file's value */
        *slot = copy;
        break;
    }
    case PTTH_OPT_LIST: {
        ptth_strlist *list = field(ps, opt);
        char *copy = dup_or_problem(ps, loc, value);
        char **items = copy != NULL ? realloc(list->items, (list->count + 1) * sizeof(*items)) : NULL;
        if (items == NULL) {
            if (copy != NULL)
                ptth_problems_add(ps->problems, "%sout of memory", loc);
            free(copy);
            return;
        }
        list->items = items;
        list->items[list->count++] = copy;
        break;
    }
    }
}

/* ---- the command line ---------------------------------------------------- */

static void
add_positional(parse *ps, const char *arg, int index)
{
    if (ps->cli->n_positional >= ps->prog->max_positional) {
        /* not quoted: after a mistyped option it may well be its value, a
         * password (--http-proxy-password hunter2) */
        (void)arg;
        ptth_problems_add(ps->problems, "unexpected argument %d (not shown: it may be a secret; options take a value as "
                          "--name VALUE or --name=VALUE)", index);
        return;
    }
    char *copy = strdup(arg);
    if (copy == NULL) {
        ptth_problems_add(ps->problems, "out of memory");
        return;
    }
    if (ps->cli->positional == NULL) {
        ps->cli->positional = calloc(ps->prog->max_positional, sizeof(char *));
        if (ps->cli->positional == NULL) {
            free(copy);
            ptth_problems_add(ps->problems, "out of memory");
            return;
        }
    }
    ps->cli->positional[ps->cli->n_positional++] = copy;
}

/* Walks argv once: built-ins that matter before the file is read (--help,
 * --version, --config, --check-config) take effect here; program options
 * and --log-level are collected into items to be applied after the file. */
static size_t
scan_argv(parse *ps, int argc, char **argv, cli_item *items)
{
    size_t n_items = 0;
    bool options_done = false;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (options_done || arg[0] != '-' || strcmp(arg, "-") == 0) {
            add_positional(ps, arg, i);
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            options_done = true;
            continue;
        }
        if (strcmp(arg, "-h") == 0) {
            ps->cli->help = true;
            continue;
        }
        if (arg[1] != '-') {
            /* only the letter: the rest may be a value glued to it (-psecret) */
            ptth_problems_add(ps->problems, "unknown option '%.2s'", arg);
            continue;
        }
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t name_len = eq != NULL ? (size_t)(eq - name) : strlen(name);
        optref ref;
        if (!lookup(ps->prog, name, name_len, &ref)) {
            ptth_problems_add(ps->problems, "unknown option '--%.*s'", (int)name_len, name);
            continue;
        }
        const char *value = eq != NULL ? eq + 1 : NULL;
        bool is_flag = ref.opt->kind == PTTH_OPT_FLAG;

        if (ref.builtin == B_HELP || ref.builtin == B_VERSION || ref.builtin == B_CHECK_CONFIG) {
            if (value != NULL) {
                ptth_problems_add(ps->problems, "--%s: takes no value", ref.opt->name);
                continue;
            }
            if (ref.builtin == B_HELP)
                ps->cli->help = true;
            else if (ref.builtin == B_VERSION)
                ps->cli->version = true;
            else
                ps->cli->check_config = true;
            continue;
        }
        if (!is_flag && value == NULL) {
            /* "--name value"; a following "--x" is taken as a forgotten value */
            if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0)
                value = argv[++i];
            else {
                ptth_problems_add(ps->problems, "--%s: missing value", ref.opt->name);
                continue;
            }
        }
        if (ref.builtin == B_CONFIG) {
            if (ps->cli->config_path != NULL)
                ptth_problems_add(ps->problems, "--config: given more than once");
            else if (value[0] == '\0')
                ptth_problems_add(ps->problems, "--config: missing value");
            else if ((ps->cli->config_path = strdup(value)) == NULL)
                ptth_problems_add(ps->problems, "--config: out of memory");
            continue;
        }
        items[n_items++] = (cli_item){ref, value};
    }
    return n_items;
}

/* ---- the config file ----------------------------------------------------- */

/* Reads the whole file into a NUL-terminated heap buffer, refusing files
 * above CONFIG_FILE_MAX. Works on pipes too (--config <(...)). */
static char *
read_config_file(parse *ps, const char *path, size_t *lenp)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        ptth_problems_add(ps->problems, "cannot read config file '%s': %s", path, strerror(errno));
        return NULL;
    }
    struct stat st = {0};
    if (fstat(fd, &st) != 0 || S_ISDIR(st.st_mode)) {
        int e = S_ISDIR(st.st_mode) ? EISDIR : errno;
        ptth_problems_add(ps->problems, "cannot read config file '%s': %s", path, strerror(e));
        close(fd);
        return NULL;
    }
    if (S_ISREG(st.st_mode) && st.st_size > CONFIG_FILE_MAX) {
        ptth_problems_add(ps->problems, "config file '%s' is larger than 1 MiB", path);
        close(fd);
        return NULL;
    }
    char *buf = malloc(CONFIG_FILE_MAX + 2);
    if (buf == NULL) {
        ptth_problems_add(ps->problems, "cannot read config file '%s': out of memory", path);
        close(fd);
        return NULL;
    }
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, CONFIG_FILE_MAX + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            ptth_problems_add(ps->problems, "cannot read config file '%s': %s", path, strerror(errno));
            free(buf);
            close(fd);
            return NULL;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > CONFIG_FILE_MAX) {
            ptth_problems_add(ps->problems, "config file '%s' is larger than 1 MiB", path);
            free(buf);
            close(fd);
            return NULL;
        }
    }
    close(fd);
    buf[len] = '\0';
    *lenp = len;
    return buf;
}

static bool
is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* One line of the file, already without its newline (and \r), NUL-terminated
 * in place. */
static void
parse_config_line(parse *ps, char *line, const source *src)
{
    /* a '#' at the start or after a space or tab starts a comment */
    for (char *p = line; *p != '\0'; p++) {
        if (*p == '#' && (p == line || is_space(p[-1]))) {
            *p = '\0';
            break;
        }
    }
    while (is_space(*line))
        line++;
    size_t len = strlen(line);
    while (len > 0 && is_space(line[len - 1]))
        line[--len] = '\0';
    if (len == 0)
        return;

    char *eq = strchr(line, '=');
    char *name = line, *value = NULL;
    size_t name_len = eq != NULL ? (size_t)(eq - line) : len;
    while (name_len > 0 && is_space(name[name_len - 1]))
        name_len--;
    if (eq != NULL) {
        value = eq + 1;
        while (is_space(*value))
            value++;
    }
    if (name_len == 0) {
        ptth_problems_add(ps->problems, "%s:%zu: expected 'name = value'", src->file, src->line);
        return;
    }
    name[name_len] = '\0';

    optref ref;
    if (!lookup(ps->prog, name, name_len, &ref)) {
        if (strncmp(name, "--", 2) == 0 && lookup(ps->prog, name + 2, name_len - 2, &ref))
            ptth_problems_add(ps->problems, "%s:%zu: unknown option '%s' (write it without '--')", src->file, src->line, name);
        else
            ptth_problems_add(ps->problems, "%s:%zu: unknown option '%s'", src->file, src->line, name);
        return;
    }
    if (ref.builtin != B_NONE && ref.builtin != B_LOG_LEVEL) {
        ptth_problems_add(ps->problems, "%s:%zu: '%s' is not allowed in a config file", src->file, src->line, name);
        return;
    }
    /* a bare name is allowed for flags and means true */
    apply(ps, &ref, value, src);
}

static void
load_config_file(parse *ps, const char *path)
{
    size_t len = 0;
    char *buf = read_config_file(ps, path, &len);
    if (buf == NULL)
        return;
    source src = {SRC_FILE, path, 0};
    char *p = buf, *end = buf + len;
    while (p < end) {
        src.line++;
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *line_end = nl != NULL ? nl : end;
        size_t line_len = (size_t)(line_end - p);
        if (line_len > CONFIG_LINE_MAX) {
            ptth_problems_add(ps->problems, "%s:%zu: line longer than %d bytes", path, src.line, CONFIG_LINE_MAX);
        } else if (memchr(p, '\0', line_len) != NULL) {
            ptth_problems_add(ps->problems, "%s:%zu: NUL byte in line", path, src.line);
        } else {
            *line_end = '\0';
            if (line_len > 0 && line_end[-1] == '\r')
                line_end[-1] = '\0';
            parse_config_line(ps, p, &src);
        }
        p = line_end + 1;
    }
    free(buf);
}

/* ---- entry points -------------------------------------------------------- */

static void
reset_fields(const ptth_program *prog, void *config)
{
    for (size_t i = 0; i < prog->n_options; i++) {
        void *f = (char *)config + prog->options[i].offset;
        switch (prog->options[i].kind) {
        case PTTH_OPT_FLAG:
            *(bool *)f = false;
            break;
        case PTTH_OPT_UINT:
            *(uint64_t *)f = 0;
            break;
        case PTTH_OPT_STRING:
            *(char **)f = NULL;
            break;
        case PTTH_OPT_LIST:
            *(ptth_strlist *)f = (ptth_strlist){NULL, 0};
            break;
        }
    }
}

static void
apply_defaults(parse *ps)
{
    const source src = {SRC_DEFAULT, NULL, 0};
    for (size_t i = 0; i < ps->prog->n_options; i++) {
        const ptth_option *opt = &ps->prog->options[i];
        if (opt->default_value == NULL)
            continue;
        bool unset = opt->kind == PTTH_OPT_LIST ? ((ptth_strlist *)field(ps, opt))->count == 0 : ps->state[i].set_by == SRC_NONE;
        if (unset) {
            optref ref = {opt, i, B_NONE};
            apply(ps, &ref, opt->default_value, &src);
        }
    }
}

int
ptth_options_load(const ptth_program *prog, void *config, ptth_cli *cli, int argc, char **argv, ptth_problems *problems,
                  bool *exit_early)
{
    size_t problems_before = problems->count;
    memset(cli, 0, sizeof(*cli));
    cli->log_level = PTTH_LOG_INFO;
    reset_fields(prog, config);
    if (exit_early != NULL)
        *exit_early = false;

    parse ps = {prog, config, cli, problems, NULL};
    ps.state = calloc(prog->n_options + B_COUNT, sizeof(*ps.state));
    cli_item *items = calloc(argc > 0 ? (size_t)argc : 1, sizeof(*items));
    if (ps.state == NULL || items == NULL) {
        ptth_problems_add(problems, "out of memory");
        free(ps.state);
        free(items);
        return -1;
    }

    size_t n_items = scan_argv(&ps, argc, argv, items);
    if (cli->help || cli->version) {
        if (exit_early != NULL)
            *exit_early = true;
    } else {
        if (cli->config_path != NULL)
            load_config_file(&ps, cli->config_path);
        const source src = {SRC_CLI, NULL, 0};
        for (size_t i = 0; i < n_items; i++)
            apply(&ps, &items[i].ref, items[i].value, &src);
        apply_defaults(&ps);
        /* validate() sees only options that parsed cleanly, so it never
         * reports "missing" for an option that was given with a bad value */
        if (problems->count == problems_before && prog->validate != NULL)
            prog->validate(config, problems);
    }
    free(items);
    free(ps.state);
    return problems->count == problems_before ? 0 : -1;
}

ptth_parse_result
ptth_options_parse(const ptth_program *prog, void *config, ptth_cli *cli, int argc, char **argv)
{
    ptth_problems problems = {NULL, 0};
    bool exit_early = false;
    int rc = ptth_options_load(prog, config, cli, argc, argv, &problems, &exit_early);
    ptth_log_init(prog->name, cli->log_level);

    ptth_parse_result result = PTTH_PARSE_RUN;
    if (exit_early) {
        if (cli->help)
            ptth_options_print_help(prog, stdout);
        else
            printf("%s %s\n", prog->name, prog->version != NULL ? prog->version : PTTH_VERSION);
        fflush(stdout);
        result = PTTH_PARSE_EXIT_OK;
    } else if (rc != 0) {
        fflush(stdout);
        for (size_t i = 0; i < problems.count; i++)
            fprintf(stderr, "%s: %s\n", prog->name, problems.lines[i]);
        fflush(stderr);
        result = PTTH_PARSE_EXIT_USAGE;
    } else if (cli->check_config) {
        printf("config ok\n");
        fflush(stdout);
        result = PTTH_PARSE_EXIT_OK;
    }
    ptth_problems_free(&problems);
    if (result != PTTH_PARSE_RUN) {
        /* the program is about to exit: nothing left for it to free */
        ptth_options_free(prog, config);
        ptth_cli_free(cli);
    }
    return result;
}

/* "--listen ADDR:PORT" */
static void
option_left(const ptth_option *opt, char *out, size_t outlen)
{
    if (opt->kind == PTTH_OPT_FLAG)
        snprintf(out, outlen, "--%s", opt->name);
    else
        snprintf(out, outlen, "--%s %s", opt->name, opt->metavar != NULL ? opt->metavar : "VALUE");
}

static void
print_option(const ptth_option *opt, FILE *f)
{
    enum { COLUMN = 32 };
    char left[256];
    option_left(opt, left, sizeof(left));
    if (strlen(left) + 4 <= COLUMN)
        fprintf(f, "  %-*s", COLUMN - 2, left);
    else
        fprintf(f, "  %s\n%*s", left, COLUMN, "");
    fputs(opt->help != NULL ? opt->help : "", f);
    if (opt->kind == PTTH_OPT_LIST)
        fputs(" (repeatable)", f);
    if (opt->default_value != NULL)
        fprintf(f, " (default: %s)", opt->default_value);
    fputc('\n', f);
}

void
ptth_options_print_help(const ptth_program *prog, FILE *f)
{
    fprintf(f, "Usage: %s %s\n", prog->name, prog->usage != NULL ? prog->usage : "[OPTIONS]");
    if (prog->summary != NULL)
        fprintf(f, "\n%s\n", prog->summary);
    fputs("\nOptions:\n", f);
    for (size_t i = 0; i < prog->n_options; i++)
        print_option(&prog->options[i], f);
    for (size_t i = 0; i < sizeof(builtin_help_order) / sizeof(builtin_help_order[0]); i++)
        print_option(&builtin_options[builtin_help_order[i]], f);
    fputs("\nEvery option may also be given in the --config file as 'name = value' (without '--').\n"
          "Command-line options are applied after the file.\n",
          f);
    if (prog->epilog != NULL)
        fprintf(f, "\n%s\n", prog->epilog);
}

void
ptth_options_free(const ptth_program *prog, void *config)
{
    for (size_t i = 0; i < prog->n_options; i++) {
        void *f = (char *)config + prog->options[i].offset;
        if (prog->options[i].kind == PTTH_OPT_STRING) {
            free(*(char **)f);
            *(char **)f = NULL;
        } else if (prog->options[i].kind == PTTH_OPT_LIST) {
            ptth_strlist *list = f;
            for (size_t j = 0; j < list->count; j++)
                free(list->items[j]);
            free(list->items);
            list->items = NULL;
            list->count = 0;
        }
    }
}

void
ptth_cli_free(ptth_cli *cli)
{
    free(cli->config_path);
    cli->config_path = NULL;
    for (size_t i = 0; i < cli->n_positional; i++)
        free(cli->positional[i]);
    free(cli->positional);
    cli->positional = NULL;
    cli->n_positional = 0;
}

/* ---- checks -------------------------------------------------------------- */

int
ptth_check_name(const char *value, char *err, size_t errlen)
{
    if (ptth_name_valid_str(value))
        return 0;
    snprintf(err, errlen, "bad name '%s': use 1 to %d characters of A-Z a-z 0-9 . _ -", value, PTTH_NAME_MAX);
    return -1;
}

static bool
parse_port(const char *text, bool allow_zero, uint16_t *port)
{
    uint64_t v;
    if (strlen(text) > 5 || !parse_u64(text, &v) || v > 65535 || (v == 0 && !allow_zero))
        return false;
    *port = (uint16_t)v;
    return true;
}

static bool
host_char(unsigned char c)
{
    return isalnum(c) || c == '.' || c == '-' || c == '_';
}

int
ptth_split_host_port(const char *value, char *host, size_t hostlen, uint16_t *port, bool allow_zero)
{
    const char *host_start, *host_end, *port_text;
    if (value == NULL)
        return -EINVAL;
    if (value[0] == '[') {
        host_start = value + 1;
        host_end = strchr(host_start, ']');
        if (host_end == NULL || host_end[1] != ':')
            return -EINVAL;
        port_text = host_end + 2;
    } else {
        host_start = value;
        host_end = strrchr(value, ':');
        if (host_end == NULL)
            return -EINVAL;
        port_text = host_end + 1;
    }
    size_t len = (size_t)(host_end - host_start);
    if (len == 0 || len >= hostlen || len > 253)
        return -EINVAL;
    if (!parse_port(port_text, allow_zero, port))
        return -EINVAL;
    memcpy(host, host_start, len);
    host[len] = '\0';
    if (value[0] == '[') {
        struct in6_addr a6;
        if (inet_pton(AF_INET6, host, &a6) != 1)
            return -EINVAL;
    } else {
        for (size_t i = 0; i < len; i++) {
            if (!host_char((unsigned char)host[i]))
                return -EINVAL;
        }
    }
    return 0;
}

int
ptth_check_host_port(const char *value, char *err, size_t errlen)
{
    char host[256];
    uint16_t port;
    if (ptth_split_host_port(value, host, sizeof(host), &port, true) == 0)
        return 0;
    const char *colon = strchr(value, ':');
    if (value[0] != '[' && colon != NULL && strchr(colon + 1, ':') != NULL)
        snprintf(err, errlen, "bad address '%s': write IPv6 addresses in brackets, e.g. [::1]:4000", value);
    else
        snprintf(err, errlen, "bad address '%s': expected HOST:PORT or [IPV6]:PORT with a port of 0 to 65535", value);
    return -1;
}

int
ptth_check_listen(const char *value, char *err, size_t errlen)
{
    char host[256];
    uint16_t port;
    unsigned char buf[16];
    if (ptth_split_host_port(value, host, sizeof(host), &port, true) != 0) {
        snprintf(err, errlen, "bad address '%s': expected ADDR:PORT or [V6ADDR]:PORT", value);
        return -1;
    }
    if (inet_pton(AF_INET, host, buf) != 1 && inet_pton(AF_INET6, host, buf) != 1) {
        snprintf(err, errlen, "bad address '%s': '%s' is not a numeric IPv4 or IPv6 address", value, host);
        return -1;
    }
    return 0;
}

int
ptth_check_url(const char *value, char *err, size_t errlen)
{
    const char *rest;
    if (strncasecmp(value, "http://", 7) == 0)
        rest = value + 7;
    else if (strncasecmp(value, "https://", 8) == 0)
        rest = value + 8;
    else {
        snprintf(err, errlen, "bad URL '%s': must start with http:// or https://", value);
        return -1;
    }
    if (strlen(value) > URL_MAX) {
        snprintf(err, errlen, "bad URL: longer than %d characters", URL_MAX);
        return -1;
    }
    for (const char *p = value; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if (c <= 0x20 || c >= 0x7f) {
            snprintf(err, errlen, "bad URL '%s': spaces, control and non-ASCII characters are not allowed", value);
            return -1;
        }
        if (c == '?' || c == '#') {
            snprintf(err, errlen, "bad URL '%s': a query or fragment is not allowed", value);
            return -1;
        }
    }
    size_t auth_len = strcspn(rest, "/");
    if (memchr(rest, '@', auth_len) != NULL) {
        snprintf(err, errlen, "bad URL '%s': credentials in the URL are not supported", value);
        return -1;
    }
    char authority[512];
    if (auth_len == 0 || auth_len >= sizeof(authority)) {
        snprintf(err, errlen, "bad URL '%s': no host", value);
        return -1;
    }
    memcpy(authority, rest, auth_len);
    authority[auth_len] = '\0';

    /* host, host:port, [v6] or [v6]:port */
    char host[256];
    uint16_t port;
    bool ok;
    if (authority[0] == '[') {
        char *close = strchr(authority, ']');
        if (close != NULL && close[1] == '\0') {
            char with_port[520];
            snprintf(with_port, sizeof(with_port), "%s:1", authority);
            ok = ptth_split_host_port(with_port, host, sizeof(host), &port, false) == 0;
        } else {
            ok = ptth_split_host_port(authority, host, sizeof(host), &port, false) == 0;
        }
    } else if (strchr(authority, ':') != NULL) {
        ok = ptth_split_host_port(authority, host, sizeof(host), &port, false) == 0;
    } else {
        ok = true;
        for (const char *p = authority; *p != '\0'; p++)
            ok = ok && host_char((unsigned char)*p);
    }
    if (!ok) {
        snprintf(err, errlen, "bad URL '%s': bad host or port '%s'", value, authority);
        return -1;
    }
    return 0;
}

int
ptth_check_name_hash(const char *value, char *err, size_t errlen)
{
    const char *eq = strchr(value, '=');
    if (eq == NULL) {
        snprintf(err, errlen, "bad entry '%s': expected NAME=KEYHASH", value);
        return -1;
    }
    size_t name_len = (size_t)(eq - value);
    if (!ptth_name_valid(value, name_len)) {
        snprintf(err, errlen, "bad name '%.*s': use 1 to %d characters of A-Z a-z 0-9 . _ -", (int)name_len, value, PTTH_NAME_MAX);
        return -1;
    }
    const char *hash = eq + 1;
    if (ptth_key_hash_format_valid(hash))
        return 0;
    /* do not echo something that may be a key */
    if (ptth_key_format_valid(hash, strlen(hash)))
        snprintf(err, errlen, "'%.*s=...' holds a key, not a key hash: give the output of 'ptth_key hash FILE'", (int)name_len,
                 value);
    else
        snprintf(err, errlen, "bad key hash for '%.*s': expected 64 lowercase hex digits (from 'ptth_key hash FILE')",
                 (int)name_len, value);
    return -1;
}
