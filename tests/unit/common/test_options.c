/* Unit tests of common/options, part one: the command line, ptth_options_parse
 * (what it prints, what it returns, --check-config, --version, --help, a
 * reload), and the shared checks of values (addresses, URLs, names, key
 * hashes). Config files are test_options_file.c; the test program and its
 * option table are options_fixture.c. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "check_main.h"
#include "options_fixture.h"

/* ---- command line ---- */

START_TEST(defaults)
{
    loaded l;
    LOAD(&l, "--name", "foo");
    ASSERT_CLEAN(&l);
    ck_assert_uint_eq(l.c.listens, 4);
    ck_assert_uint_eq(l.c.listen.count, 1);
    ck_assert_str_eq(l.c.listen.items[0], "127.0.0.1:4000");
    ck_assert_str_eq(l.c.mode, "fast");
    ck_assert_ptr_null(l.c.relay);
    ck_assert(!l.c.insecure);
    ck_assert_uint_eq(l.c.port_map.count, 0);
    ck_assert_int_eq(l.cli.log_level, PTTH_LOG_INFO);
    ck_assert_ptr_null(l.cli.config_path);
    ck_assert(!l.cli.check_config);
    ck_assert_int_eq(l.c.untouched, 77);
    ck_assert_int_eq(validate_calls, 1);
    unload(&l);
}
END_TEST

START_TEST(both_value_forms)
{
    loaded l;
    LOAD(&l, "--name", "foo", "--relay=http://127.0.0.1:4000/x", "--listens=7", "--big", "18446744073709551615");
    ASSERT_CLEAN(&l);
    ck_assert_str_eq(l.c.name, "foo");
    ck_assert_str_eq(l.c.relay, "http://127.0.0.1:4000/x");
    ck_assert_uint_eq(l.c.listens, 7);
    ck_assert_uint_eq(l.c.big, UINT64_MAX);
    unload(&l);
    /* a value may contain '=' */
    LOAD(&l, "--name", "foo", "--port-map", "ssh=22", "--port-map=web=127.0.0.1:80");
    ASSERT_CLEAN(&l);
    ck_assert_uint_eq(l.c.port_map.count, 2);
    ck_assert_str_eq(l.c.port_map.items[0], "ssh=22");
    ck_assert_str_eq(l.c.port_map.items[1], "web=127.0.0.1:80");
    unload(&l);
}
END_TEST

START_TEST(unknown_option)
{
    loaded l;
    LOAD(&l, "--name", "foo", "--nmae", "x", "--x=1", "-x");
    ck_assert_int_eq(l.rc, -1);
    ASSERT_PROBLEM(&l, "unknown option '--nmae'");
    ASSERT_PROBLEM(&l, "unknown option '--x'");
    ASSERT_PROBLEM(&l, "unknown option '-x'");
    /* "x" after the unknown option is then an unexpected argument */
    ASSERT_PROBLEM(&l, "unexpected argument 4 (not shown: it may be a secret; options take a value as --name VALUE or "
                       "--name=VALUE)");
    ck_assert_uint_eq(l.problems.count, 4);
    unload(&l);
}
END_TEST

START_TEST(positional)
{
    loaded l;
    LOAD(&l, "--name", "foo", "extra");
    ASSERT_PROBLEM(&l, "unexpected argument 3 (not shown: it may be a secret; options take a value as --name VALUE or "
                       "--name=VALUE)");
    ck_assert_uint_eq(l.cli.n_positional, 0);
    unload(&l);

    tprog.max_positional = 2;
    LOAD(&l, "new", "--name", "foo", "file.key");
    ASSERT_CLEAN(&l);
    ck_assert_uint_eq(l.cli.n_positional, 2);
    ck_assert_str_eq(l.cli.positional[0], "new");
    ck_assert_str_eq(l.cli.positional[1], "file.key");
    unload(&l);

    LOAD(&l, "a", "b", "c", "--name", "foo");
    ASSERT_PROBLEM(&l, "unexpected argument 3 (not shown: it may be a secret; options take a value as --name VALUE or "
                       "--name=VALUE)");
    ck_assert_uint_eq(l.problems.count, 1);
    unload(&l);

    /* "--" ends the options; "-" is an argument */
    LOAD(&l, "--name", "foo", "--", "--name");
    ASSERT_CLEAN(&l);
    ck_assert_str_eq(l.cli.positional[0], "--name");
    unload(&l);
    LOAD(&l, "--name", "foo", "-");
    ASSERT_CLEAN(&l);
    ck_assert_str_eq(l.cli.positional[0], "-");
    unload(&l);
}
END_TEST

START_TEST(missing_value)
{
    loaded l;
    LOAD(&l, "--name", "foo", "--relay");
    ASSERT_PROBLEM(&l, "--relay: missing value");
    unload(&l);
    LOAD(&l, "--relay", "--name", "foo");
    ASSERT_PROBLEM(&l, "--relay: missing value");
    ck_assert_str_eq(l.c.name, "foo");
    unload(&l);
    LOAD(&l, "--name=", "--relay=");
    ASSERT_PROBLEM(&l, "--name: missing value");
    ASSERT_PROBLEM(&l, "--relay: missing value");
    /* validate does not run on half-parsed options: no "--name is required" */
    ck_assert_uint_eq(l.problems.count, 2);
    ck_assert_int_eq(validate_calls, 0);
    unload(&l);
    LOAD(&l, "--name", "foo", "--config");
    ASSERT_PROBLEM(&l, "--config: missing value");
    unload(&l);
    LOAD(&l, "--name", "foo", "--config=");
    ASSERT_PROBLEM(&l, "--config: missing value");
    unload(&l);
    /* "--name=--x" is how to give a value starting with "--" (then the check refuses it) */
    LOAD(&l, "--name=--x", "--relay=--x");
    ck_assert_uint_eq(l.problems.count, 1);
    ck_assert_ptr_nonnull(strstr(l.problems.lines[0], "--relay: bad URL '--x'"));
    ck_assert_str_eq(l.c.name, "--x");
    unload(&l);
}
END_TEST

START_TEST(flags)
{
    loaded l;
    LOAD(&l, "--name", "foo", "--insecure");
    ASSERT_CLEAN(&l);
    ck_assert(l.c.insecure);
    unload(&l);
    const char *yes[] = {"true", "yes", "on", "1"}, *no[] = {"false", "no", "off", "0"};
    for (int i = 0; i < 4; i++) {
        char arg[32];
        snprintf(arg, sizeof(arg), "--insecure=%s", yes[i]);
        LOAD(&l, "--name", "foo", arg);
        ASSERT_CLEAN(&l);
        ck_assert(l.c.insecure);
        unload(&l);
        snprintf(arg, sizeof(arg), "--insecure=%s", no[i]);
        LOAD(&l, "--name", "foo", arg);
        ASSERT_CLEAN(&l);
        ck_assert(!l.c.insecure);
        unload(&l);
    }
    LOAD(&l, "--name", "foo", "--insecure=maybe");
    ASSERT_PROBLEM(&l, "--insecure: 'maybe' is not a boolean (use true, false, yes, no, on, off, 1 or 0)");
    unload(&l);
    /* a flag takes no separate value: the next word is positional */
    LOAD(&l, "--name", "foo", "--insecure", "false");
    ASSERT_PROBLEM(&l, "unexpected argument 4 (not shown: it may be a secret; options take a value as --name VALUE or "
                       "--name=VALUE)");
    unload(&l);
    LOAD(&l, "--name", "foo", "--check-config=yes", "--help=1", "--version=x");
    ASSERT_PROBLEM(&l, "--check-config: takes no value");
    ASSERT_PROBLEM(&l, "--help: takes no value");
    ASSERT_PROBLEM(&l, "--version: takes no value");
    unload(&l);
}
END_TEST

START_TEST(numbers)
{
    loaded l;
    const char *bad[] = {"12x", "-1", "+1", " 1", "1 ", "0x10", "1e3", "1.5", "18446744073709551616", "99999999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char arg[64], want[160];
        snprintf(arg, sizeof(arg), "--big=%s", bad[i]);
        LOAD(&l, "--name", "foo", arg);
        snprintf(want, sizeof(want), "--big: '%s' is not a number (decimal digits only)", bad[i]);
        ASSERT_PROBLEM(&l, want);
        ck_assert_uint_eq(l.c.big, 0);
        unload(&l);
    }
    LOAD(&l, "--name", "foo", "--listens", "0");
    ASSERT_PROBLEM(&l, "--listens: 0 is out of range (1 to 64)");
    unload(&l);
    LOAD(&l, "--name", "foo", "--listens", "65");
    ASSERT_PROBLEM(&l, "--listens: 65 is out of range (1 to 64)");
    /* a refused value is not stored, and the default does not hide the error */
    ck_assert_int_eq(l.rc, -1);
    unload(&l);
    LOAD(&l, "--name", "foo", "--listens", "1");
    ASSERT_CLEAN(&l);
    ck_assert_uint_eq(l.c.listens, 1);
    unload(&l);
    LOAD(&l, "--name", "foo", "--listens", "64");
    ASSERT_CLEAN(&l);
    ck_assert_uint_eq(l.c.listens, 64);
    unload(&l);
    LOAD(&l, "--name", "foo", "--listens", "007");
    ASSERT_CLEAN(&l);
    ck_assert_uint_eq(l.c.listens, 7);
    unload(&l);
}
END_TEST

START_TEST(cli_duplicates)
{
    loaded l;
    LOAD(&l, "--name", "foo", "--name", "bar");
    ASSERT_PROBLEM(&l, "--name: given more than once");
    ck_assert_str_eq(l.c.name, "foo");
    unload(&l);
    LOAD(&l, "--name", "foo", "--insecure", "--insecure");
    ASSERT_PROBLEM(&l, "--insecure: given more than once");
    unload(&l);
    LOAD(&l, "--name", "foo", "--config", "a", "--config", "b");
    ASSERT_PROBLEM(&l, "--config: given more than once");
    unload(&l);
    LOAD(&l, "--name", "foo", "--log-level", "warn", "--log-level", "debug");
    ASSERT_PROBLEM(&l, "--log-level: given more than once");
    unload(&l);
    /* lists repeat, in order; the default is not added */
    LOAD(&l, "--name", "foo", "--listen", "127.0.0.1:1", "--listen", "[::1]:2", "--listen", "127.0.0.1:1");
    ASSERT_CLEAN(&l);
    ck_assert_uint_eq(l.c.listen.count, 3);
    ck_assert_str_eq(l.c.listen.items[0], "127.0.0.1:1");
    ck_assert_str_eq(l.c.listen.items[1], "[::1]:2");
    ck_assert_str_eq(l.c.listen.items[2], "127.0.0.1:1");
    unload(&l);
}
END_TEST

START_TEST(check_failures_name_option)
{
    loaded l;
    LOAD(&l, "--name", "a b", "--listen", "nope", "--port-map", "ssh", "--relay", "ftp://x");
    ck_assert_uint_eq(l.problems.count, 4);
    ASSERT_PROBLEM(&l, "--name: bad name 'a b': use 1 to 64 characters of A-Z a-z 0-9 . _ -");
    ASSERT_PROBLEM(&l, "--listen: bad address 'nope': expected HOST:PORT or [IPV6]:PORT with a port of 0 to 65535");
    ASSERT_PROBLEM(&l, "--port-map: bad port map 'ssh': expected NAME=TARGET");
    ASSERT_PROBLEM(&l, "--relay: bad URL 'ftp://x': must start with http:// or https://");
    /* refused values are not stored */
    ck_assert_ptr_null(l.c.name);
    ck_assert_ptr_null(l.c.relay);
    ck_assert_uint_eq(l.c.port_map.count, 0);
    unload(&l);
}
END_TEST

START_TEST(log_level)
{
    loaded l;
    LOAD(&l, "--name", "foo", "--log-level", "debug");
    ASSERT_CLEAN(&l);
    ck_assert_int_eq(l.cli.log_level, PTTH_LOG_DEBUG);
    unload(&l);
    LOAD(&l, "--name", "foo", "--log-level=loud");
    ASSERT_PROBLEM(&l, "--log-level: bad level 'loud' (use error, warn, info or debug)");
    unload(&l);
    const char *conf = write_conf("l.conf", "log-level = error\n");
    LOAD(&l, "--name", "foo", "--config", (char *)conf);
    ASSERT_CLEAN(&l);
    ck_assert_int_eq(l.cli.log_level, PTTH_LOG_ERROR);
    unload(&l);
    LOAD(&l, "--name", "foo", "--config", (char *)conf, "--log-level", "warn");
    ASSERT_CLEAN(&l);
    ck_assert_int_eq(l.cli.log_level, PTTH_LOG_WARN);
    unload(&l);
}
END_TEST

/* ---- ptth_options_parse: printing and results ---- */

START_TEST(parse_problems_to_stderr)
{
    parsed p;
    PARSE(&p, "--name", "foo", "--x", "--listens=0");
    ck_assert_int_eq(p.result, PTTH_PARSE_EXIT_USAGE);
    ck_assert_str_eq(p.err, "ptth_test: unknown option '--x'\nptth_test: --listens: 0 is out of range (1 to 64)\n");
    ck_assert_str_eq(p.out, "");
    /* already freed for the caller; freeing again is harmless */
    ck_assert_ptr_null(p.c.name);
    unparse(&p);
}
END_TEST

START_TEST(parse_run)
{
    parsed p;
    PARSE(&p, "--name", "foo", "--log-level", "debug");
    ck_assert_int_eq(p.result, PTTH_PARSE_RUN);
    ck_assert_str_eq(p.out, "");
    ck_assert_str_eq(p.err, "");
    ck_assert_str_eq(p.c.name, "foo");
    /* the logger was set up with the name and level */
    ck_assert(ptth_log_enabled(PTTH_LOG_DEBUG));
    unparse(&p);
}
END_TEST

START_TEST(check_config)
{
    const char *conf = write_conf("c.conf", "name = foo\n");
    parsed p;
    PARSE(&p, "--config", (char *)conf, "--check-config");
    ck_assert_int_eq(p.result, PTTH_PARSE_EXIT_OK);
    ck_assert_str_eq(p.out, "config ok\n");
    ck_assert_str_eq(p.err, "");
    unparse(&p);

    conf = write_conf("d.conf", "name = foo\nnope = 1\nlistens = 99\n");
    PARSE(&p, "--config", (char *)conf, "--check-config", "--bad");
    ck_assert_int_eq(p.result, PTTH_PARSE_EXIT_USAGE);
    ck_assert_str_eq(p.out, "");
    char want[1024];
    snprintf(want, sizeof(want),
             "ptth_test: unknown option '--bad'\nptth_test: %s:2: unknown option 'nope'\n"
             "ptth_test: %s:3: listens: 99 is out of range (1 to 64)\n",
             conf, conf);
    ck_assert_str_eq(p.err, want);
    unparse(&p);

    /* validate runs under --check-config too */
    PARSE(&p, "--check-config");
    ck_assert_int_eq(p.result, PTTH_PARSE_EXIT_USAGE);
    ck_assert_str_eq(p.err, "ptth_test: --name is required\n");
    unparse(&p);
}
END_TEST

START_TEST(version)
{
    parsed p;
    PARSE(&p, "--version");
    ck_assert_int_eq(p.result, PTTH_PARSE_EXIT_OK);
    ck_assert_str_eq(p.out, "ptth_test 1.2.3\n");
    ck_assert_str_eq(p.err, "");
    unparse(&p);
    tprog.version = NULL;
    PARSE(&p, "--version");
    ck_assert_str_eq(p.out, "ptth_test " PTTH_VERSION "\n");
    tprog.version = "1.2.3";
    unparse(&p);
}
END_TEST

START_TEST(help_lists_everything)
{
    parsed p;
    PARSE(&p, "--help");
    ck_assert_int_eq(p.result, PTTH_PARSE_EXIT_OK);
    ck_assert_str_eq(p.err, "");
    const char *h = p.out;
    ck_assert_msg(strncmp(h, "Usage: ptth_test [OPTIONS] [FILE...]\n", 37) == 0, "%s", h);
    ck_assert_ptr_nonnull(strstr(h, "\nTests the option parser.\n"));
    for (size_t i = 0; i < tprog.n_options; i++) {
        const ptth_option *o = &tprog.options[i];
        char want[128];
        snprintf(want, sizeof(want), "  --%s", o->name);
        ck_assert_msg(strstr(h, want) != NULL, "--%s missing from help", o->name);
        ck_assert_msg(strstr(h, o->help) != NULL, "help of --%s missing", o->name);
    }
    const char *builtins[] = {"  --config FILE", "  --check-config", "  --log-level LEVEL", "  --help", "  --version"};
    for (size_t i = 0; i < 5; i++)
        ck_assert_msg(strstr(h, builtins[i]) != NULL, "'%s' missing from help", builtins[i]);
    ck_assert_ptr_nonnull(strstr(h, "--relay URL"));
    ck_assert_ptr_nonnull(strstr(h, "--listens N"));
    ck_assert_ptr_nonnull(strstr(h, "listens kept outstanding (default: 4)\n"));
    ck_assert_ptr_nonnull(strstr(h, "a port (repeatable)\n"));
    ck_assert_ptr_nonnull(strstr(h, "where to listen (repeatable) (default: 127.0.0.1:4000)\n"));
    ck_assert_ptr_nonnull(strstr(h, "error, warn, info or debug (default: info)\n"));
    ck_assert_ptr_nonnull(strstr(h, "--a-very-long-option-name-for-layout VALUE\n"));
    ck_assert_ptr_nonnull(strstr(h, "how to run (default: fast)\n"));
    /* flags show no metavar */
    ck_assert_ptr_nonnull(strstr(h, "  --insecure  "));
    /* epilog last */
    size_t len = strlen(h);
    const char *epi = "Exit codes: 0 ok, 2 usage.\n";
    ck_assert(len > strlen(epi) && strcmp(h + len - strlen(epi), epi) == 0);
    unparse(&p);

    /* help wins over other problems, and over --version */
    PARSE(&p, "--bogus", "-h", "--version");
    ck_assert_int_eq(p.result, PTTH_PARSE_EXIT_OK);
    ck_assert_ptr_nonnull(strstr(p.out, "Usage: ptth_test"));
    ck_assert_str_eq(p.err, "");
    unparse(&p);

    /* print_help gives the same text */
    FILE *f = tmpfile();
    ptth_options_print_help(&tprog, f);
    static char again[16384];
    read_back(f, again, sizeof(again));
    PARSE(&p, "--help");
    ck_assert_str_eq(again, p.out);
    unparse(&p);
}
END_TEST

/* --help does not read the config file (it may not exist yet). */
START_TEST(help_ignores_file)
{
    loaded l;
    LOAD(&l, "--config", "/nonexistent/x.conf", "--help");
    ck_assert(l.exit_early);
    ck_assert(l.cli.help);
    ck_assert_int_eq(l.rc, 0);
    unload(&l);
    LOAD(&l, "--version");
    ck_assert(l.exit_early);
    ck_assert(l.cli.version);
    unload(&l);
}
END_TEST

/* ptth_options_load can run again into a fresh struct (SIGHUP reload). */
START_TEST(reload)
{
    const char *conf = write_conf("r.conf", "name = one\nport-map = a=1\n");
    loaded l;
    LOAD(&l, "--config", (char *)conf);
    ASSERT_CLEAN(&l);
    ck_assert_str_eq(l.c.name, "one");
    unload(&l);
    conf = write_conf("r.conf", "name = two\nport-map = b=2\nport-map = c=3\n");
    LOAD(&l, "--config", (char *)conf);
    ASSERT_CLEAN(&l);
    ck_assert_str_eq(l.c.name, "two");
    ck_assert_uint_eq(l.c.port_map.count, 2);
    unload(&l);
}
END_TEST

/* ---- the shared checks ---- */

static bool
check_ok(int (*check)(const char *, char *, size_t), const char *value, char *err, size_t errlen)
{
    err[0] = '\0';
    return check(value, err, errlen) == 0;
}

START_TEST(check_host_port)
{
    char err[256];
    const char *good[] = {"127.0.0.1:4000", "127.0.0.1:0",  "0.0.0.0:65535",         "[::1]:4000",  "[::]:0",
                          "[fe80::1]:1",    "localhost:80", "relay.example.com:443", "my_host-1:22"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        ck_assert_msg(check_ok(ptth_check_host_port, good[i], err, sizeof(err)), "%s refused: %s", good[i], err);
    const char *bad[] = {"",       "127.0.0.1", ":80",   "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:+1",
                         "h:8x",   "h:123456",  "[::1]", "[::1]80",    "[zz]:80",         "[]:80",        "a b:80",
                         "h/x:80", "[::1:80",   "h:80:"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(!check_ok(ptth_check_host_port, bad[i], err, sizeof(err)), "'%s' accepted", bad[i]);
        ck_assert_ptr_nonnull(strstr(err, "bad address"));
    }
    ck_assert(!check_ok(ptth_check_host_port, "::1:80", err, sizeof(err)));
    ck_assert_str_eq(err, "bad address '::1:80': write IPv6 addresses in brackets, e.g. [::1]:4000");
}
END_TEST

START_TEST(split_host_port)
{
    char host[64];
    uint16_t port = 0;
    ck_assert_int_eq(ptth_split_host_port("[::1]:4000", host, sizeof(host), &port, false), 0);
    ck_assert_str_eq(host, "::1");
    ck_assert_uint_eq(port, 4000);
    ck_assert_int_eq(ptth_split_host_port("example.com:1", host, sizeof(host), &port, false), 0);
    ck_assert_str_eq(host, "example.com");
    ck_assert_uint_eq(port, 1);
    ck_assert_int_eq(ptth_split_host_port("127.0.0.1:0", host, sizeof(host), &port, false), -EINVAL);
    ck_assert_int_eq(ptth_split_host_port("127.0.0.1:0", host, sizeof(host), &port, true), 0);
    ck_assert_uint_eq(port, 0);
    /* a host that does not fit */
    ck_assert_int_eq(ptth_split_host_port("example.com:1", host, 11, &port, false), -EINVAL);
    ck_assert_int_eq(ptth_split_host_port("example.com:1", host, 12, &port, false), 0);
    ck_assert_int_eq(ptth_split_host_port(NULL, host, sizeof(host), &port, false), -EINVAL);
}
END_TEST

START_TEST(check_url)
{
    char err[512];
    const char *good[] = {"http://127.0.0.1:4000",   "https://relay.example.com",   "https://relay.example.com/",
                          "http://h/prefix/ptth",    "http://[::1]:8080/x",         "http://[::1]",
                          "HTTPS://RELAY.EXAMPLE:1", "http://localhost:65535/a/b/c"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        ck_assert_msg(check_ok(ptth_check_url, good[i], err, sizeof(err)), "%s refused: %s", good[i], err);
    struct {
        const char *url, *why;
    } bad[] = {
        {"ftp://h/", "must start with http:// or https://"},
        {"relay.example.com", "must start with http:// or https://"},
        {"http://", "no host"},
        {"http:///x", "no host"},
        {"http://h x/", "spaces, control and non-ASCII"},
        {"http://h\x01/", "spaces, control and non-ASCII"},
        {"http://caf\xc3\xa9/", "spaces, control and non-ASCII"},
        {"http://h:99999/", "bad host or port"},
        {"http://h:0/", "bad host or port"},
        {"http://h:/", "bad host or port"},
        {"http://[::1/", "bad host or port"},
        {"http://[zz]:80/", "bad host or port"},
        {"http://user:pw@h/", "credentials"},
        {"http://h/?a=b", "query or fragment"},
        {"http://h/#f", "query or fragment"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(!check_ok(ptth_check_url, bad[i].url, err, sizeof(err)), "'%s' accepted", bad[i].url);
        ck_assert_msg(strstr(err, bad[i].why) != NULL, "'%s': '%s' lacks '%s'", bad[i].url, err, bad[i].why);
    }
    static char longurl[3000];
    strcpy(longurl, "http://h/");
    memset(longurl + 9, 'a', 2100);
    ck_assert(!check_ok(ptth_check_url, longurl, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "longer than 2048"));
}
END_TEST

START_TEST(check_name_and_hash)
{
    char err[512];
    ck_assert(check_ok(ptth_check_name, "web-1", err, sizeof(err)));
    ck_assert(!check_ok(ptth_check_name, "", err, sizeof(err)));
    ck_assert(!check_ok(ptth_check_name, "web/1", err, sizeof(err)));
    ck_assert_str_eq(err, "bad name 'web/1': use 1 to 64 characters of A-Z a-z 0-9 . _ -");

    const char *hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    char v[256];
    snprintf(v, sizeof(v), "foo=%s", hash);
    ck_assert(check_ok(ptth_check_name_hash, v, err, sizeof(err)));
    ck_assert(!check_ok(ptth_check_name_hash, hash, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "expected NAME=KEYHASH"));
    snprintf(v, sizeof(v), "=%s", hash);
    ck_assert(!check_ok(ptth_check_name_hash, v, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "bad name ''"));
    snprintf(v, sizeof(v), "f o=%s", hash);
    ck_assert(!check_ok(ptth_check_name_hash, v, err, sizeof(err)));
    ck_assert(
        !check_ok(ptth_check_name_hash, "foo=E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855", err, sizeof(err)));
    ck_assert_str_eq(err, "bad key hash for 'foo': expected 64 lowercase hex digits (from 'ptth_key hash FILE')");
    ck_assert(!check_ok(ptth_check_name_hash, "foo=", err, sizeof(err)));
    snprintf(v, sizeof(v), "foo=%s0", hash);
    ck_assert(!check_ok(ptth_check_name_hash, v, err, sizeof(err)));
    /* a key given where its hash belongs: said so, and the key is not echoed */
    const char *key = "Dq3Eq2cIb1XrZHJwZ4pq9c3sTxgZ8Yk2W1X5i8nYb-A";
    snprintf(v, sizeof(v), "foo=%s", key);
    ck_assert(!check_ok(ptth_check_name_hash, v, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "holds a key, not a key hash"));
    ck_assert_ptr_null(strstr(err, key));
}
END_TEST

/* Messages from checks stay within bounds whatever the value's length. */
START_TEST(long_values_are_bounded)
{
    static char huge[20000];
    memset(huge, 'x', sizeof(huge) - 1);
    char err[64];
    ck_assert(!check_ok(ptth_check_name, huge, err, sizeof(err)));
    ck_assert_uint_lt(strlen(err), sizeof(err));
    ck_assert(!check_ok(ptth_check_url, huge, err, sizeof(err)));
    ck_assert(!check_ok(ptth_check_host_port, huge, err, sizeof(err)));
    ck_assert(!check_ok(ptth_check_name_hash, huge, err, sizeof(err)));
    loaded l;
    static char arg[20100];
    snprintf(arg, sizeof(arg), "--name=%s", huge);
    LOAD(&l, arg);
    ck_assert_uint_eq(l.problems.count, 1);
    ck_assert_uint_lt(strlen(l.problems.lines[0]), 1100);
    unload(&l);
}
END_TEST

Suite *
ptth_test_suite(void)
{
    Suite *s = suite_create("options");
    TCase *tc = tcase_create("options");
    tcase_add_checked_fixture(tc, options_fixture_setup, options_fixture_teardown);
    tcase_add_test(tc, defaults);
    tcase_add_test(tc, both_value_forms);
    tcase_add_test(tc, unknown_option);
    tcase_add_test(tc, positional);
    tcase_add_test(tc, missing_value);
    tcase_add_test(tc, flags);
    tcase_add_test(tc, numbers);
    tcase_add_test(tc, cli_duplicates);
    tcase_add_test(tc, check_failures_name_option);
    tcase_add_test(tc, log_level);
    tcase_add_test(tc, parse_problems_to_stderr);
    tcase_add_test(tc, parse_run);
    tcase_add_test(tc, check_config);
    tcase_add_test(tc, version);
    tcase_add_test(tc, help_lists_everything);
    tcase_add_test(tc, help_ignores_file);
    tcase_add_test(tc, reload);
    tcase_add_test(tc, check_host_port);
    tcase_add_test(tc, split_host_port);
    tcase_add_test(tc, check_url);
    tcase_add_test(tc, check_name_and_hash);
    tcase_add_test(tc, long_values_are_bounded);
    suite_add_tcase(s, tc);
    return s;
}
