/* The fixture of the common/options suites: see options_fixture.h. */

#include "options_fixture.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int validate_calls;
bool validate_complains;

static void
tvalidate(void *config, ptth_problems *problems)
{
    tconf *c = config;
    validate_calls++;
    if (c->name == NULL)
        ptth_problems_add(problems, "--name is required");
    if (validate_complains)
        ptth_problems_add(problems, "validate says no");
}

static int
check_port_map(const char *value, char *err, size_t errlen)
{
    if (strchr(value, '=') != NULL)
        return 0;
    snprintf(err, errlen, "bad port map '%s': expected NAME=TARGET", value);
    return -1;
}

static const ptth_option toptions[] = {
    {"relay", PTTH_OPT_STRING, offsetof(tconf, relay), "URL", "the relay", NULL, 0, 0, ptth_check_url},
    {"name", PTTH_OPT_STRING, offsetof(tconf, name), "NAME", "this server's name", NULL, 0, 0, ptth_check_name},
    {"insecure", PTTH_OPT_FLAG, offsetof(tconf, insecure), NULL, "skip certificate checks", NULL, 0, 0, NULL},
    {"listens", PTTH_OPT_UINT, offsetof(tconf, listens), "N", "listens kept outstanding", "4", 1, 64, NULL},
    {"big", PTTH_OPT_UINT, offsetof(tconf, big), "BYTES", "any number", NULL, 0, 0, NULL},
    {"port-map", PTTH_OPT_LIST, offsetof(tconf, port_map), "NAME=TARGET", "a port", NULL, 0, 0, check_port_map},
    {"listen", PTTH_OPT_LIST, offsetof(tconf, listen), "ADDR:PORT", "where to listen", "127.0.0.1:4000", 0, 0,
     ptth_check_host_port},
    {"a-very-long-option-name-for-layout", PTTH_OPT_STRING, offsetof(tconf, mode), NULL, "how to run", "fast", 0, 0, NULL},
};

ptth_program tprog = {
    "ptth_test",
    "1.2.3",
    "[OPTIONS] [FILE...]",
    "Tests the option parser.",
    "Exit codes: 0 ok, 2 usage.",
    toptions,
    sizeof(toptions) / sizeof(toptions[0]),
    0,
    tvalidate,
};

char tmpdir[64];

void
options_fixture_setup(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/ptth-opts-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    validate_calls = 0;
    validate_complains = false;
    tprog.max_positional = 0;
}

void
options_fixture_teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
}

const char *
write_conf(const char *name, const char *content)
{
    static char path[4][128];
    static int next;
    char *p = path[next++ % 4];
    snprintf(p, 128, "%s/%s", tmpdir, name);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fputs(content, f);
    fclose(f);
    return p;
}

void
load_argv(loaded *l, int argc, char **argv)
{
    memset(l, 0, sizeof(*l));
    l->c.untouched = 77;
    l->rc = ptth_options_load(&tprog, &l->c, &l->cli, argc, argv, &l->problems, &l->exit_early);
}

void
unload(loaded *l)
{
    ptth_options_free(&tprog, &l->c);
    ptth_cli_free(&l->cli);
    ptth_problems_free(&l->problems);
}

bool
has_problem(const loaded *l, const char *text)
{
    for (size_t i = 0; i < l->problems.count; i++) {
        if (strcmp(l->problems.lines[i], text) == 0)
            return true;
    }
    return false;
}

void
dump_problems(const loaded *l, char *out, size_t outlen)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < l->problems.count && o < outlen; i++)
        o += (size_t)snprintf(out + o, outlen - o, "[%s] ", l->problems.lines[i]);
}

void
read_back(FILE *f, char *buf, size_t len)
{
    fflush(f);
    rewind(f);
    size_t n = fread(buf, 1, len - 1, f);
    buf[n] = '\0';
    fclose(f);
}

void
parse_argv(parsed *p, int argc, char **argv)
{
    memset(p, 0, sizeof(*p));
    FILE *out = tmpfile(), *err = tmpfile();
    ck_assert(out != NULL && err != NULL);
    fflush(stdout);
    fflush(stderr);
    int saved_out = dup(1), saved_err = dup(2);
    dup2(fileno(out), 1);
    dup2(fileno(err), 2);
    p->result = ptth_options_parse(&tprog, &p->c, &p->cli, argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);
    read_back(out, p->out, sizeof(p->out));
    read_back(err, p->err, sizeof(p->err));
}

void
unparse(parsed *p)
{
    ptth_options_free(&tprog, &p->c);
    ptth_cli_free(&p->cli);
}
