/* Unit tests of common/options, part two: config files. Their syntax and
 * values, every error with its file and line, unreadable and oversized
 * files, a pipe as the file, the command line overriding the file, and all
 * problems of argv, the file and validate reported together, capped and
 * escaped. Part one is test_options.c; the test program and its option
 * table are options_fixture.c. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check_main.h"
#include "options_fixture.h"

/* ---- config files ---- */

START_TEST(good_file)
{
    const char *conf = write_conf("good.conf", "# a comment\n"
                                               "\n"
                                               "   \t  \n"
                                               "  # indented comment\n"
                                               "name = foo\n"
                                               "relay=http://127.0.0.1:4000/p\n"
                                               "\tlistens\t=\t9\t\n"
                                               "port-map = ssh=22   # trailing comment\n"
                                               "port-map = web=80\r\n"
                                               "insecure\n"
                                               "a-very-long-option-name-for-layout = slow mode#not-a-comment\n"
                                               "listen = [::1]:0");
    loaded l;
    LOAD(&l, "--config", (char *)conf);
    ASSERT_CLEAN(&l);
    ck_assert_str_eq(l.cli.config_path, conf);
    ck_assert_str_eq(l.c.name, "foo");
    ck_assert_str_eq(l.c.relay, "http://127.0.0.1:4000/p");
    ck_assert_uint_eq(l.c.listens, 9);
    ck_assert_uint_eq(l.c.port_map.count, 2);
    ck_assert_str_eq(l.c.port_map.items[0], "ssh=22");
    ck_assert_str_eq(l.c.port_map.items[1], "web=80");
    ck_assert(l.c.insecure);
    ck_assert_str_eq(l.c.mode, "slow mode#not-a-comment");
    ck_assert_uint_eq(l.c.listen.count, 1);
    ck_assert_str_eq(l.c.listen.items[0], "[::1]:0");
    unload(&l);
}
END_TEST

START_TEST(empty_file)
{
    const char *conf = write_conf("empty.conf", "");
    loaded l;
    LOAD(&l, "--config", (char *)conf, "--name", "x");
    ASSERT_CLEAN(&l);
    unload(&l);
}
END_TEST

START_TEST(file_flag_values)
{
    const char *conf = write_conf("f.conf", "name = foo\ninsecure = off\n");
    loaded l;
    LOAD(&l, "--config", (char *)conf);
    ASSERT_CLEAN(&l);
    ck_assert(!l.c.insecure);
    unload(&l);
    /* the command line turns it on over the file */
    LOAD(&l, "--config", (char *)conf, "--insecure");
    ASSERT_CLEAN(&l);
    ck_assert(l.c.insecure);
    unload(&l);
    conf = write_conf("g.conf", "name = foo\ninsecure = sure\n");
    LOAD(&l, "--config", (char *)conf);
    char want[256];
    snprintf(want, sizeof(want), "%s:2: insecure: 'sure' is not a boolean (use true, false, yes, no, on, off, 1 or 0)", conf);
    ASSERT_PROBLEM(&l, want);
    unload(&l);
}
END_TEST

START_TEST(file_errors_name_file_and_line)
{
    const char *conf = write_conf("bad.conf", "# header\n"
                                              "name = foo\n"
                                              "fo = 1\n"
                                              "name = bar\n"
                                              "listens = many\n"
                                              "listens = 100\n"
                                              "relay =\n"
                                              "relay\n"
                                              "= value\n"
                                              "config = other.conf\n"
                                              "check-config = yes\n"
                                              "help\n"
                                              "version\n"
                                              "--insecure = yes\n"
                                              "listen = 1.2.3.4\n"
                                              "Name = foo\n");
    loaded l;
    LOAD(&l, "--config", (char *)conf);
    ck_assert_int_eq(l.rc, -1);
    char want[512];
#define WANT(...)                                                                                                                  \
    do {                                                                                                                           \
        snprintf(want, sizeof(want), __VA_ARGS__);                                                                                 \
        ASSERT_PROBLEM(&l, want);                                                                                                  \
    } while (0)
    WANT("%s:3: unknown option 'fo'", conf);
    WANT("%s:4: duplicate option 'name' (first given on line 2)", conf);
    WANT("%s:5: listens: 'many' is not a number (decimal digits only)", conf);
    WANT("%s:6: duplicate option 'listens' (first given on line 5)", conf);
    WANT("%s:7: relay: missing value", conf);
    WANT("%s:8: duplicate option 'relay' (first given on line 7)", conf);
    WANT("%s:9: expected 'name = value'", conf);
    WANT("%s:10: 'config' is not allowed in a config file", conf);
    WANT("%s:11: 'check-config' is not allowed in a config file", conf);
    WANT("%s:12: 'help' is not allowed in a config file", conf);
    WANT("%s:13: 'version' is not allowed in a config file", conf);
    WANT("%s:14: unknown option '--insecure' (write it without '--')", conf);
    WANT("%s:15: listen: bad address '1.2.3.4': expected HOST:PORT or [IPV6]:PORT with a port of 0 to 65535", conf);
    WANT("%s:16: unknown option 'Name'", conf);
    ck_assert_uint_eq(l.problems.count, 14);
    ck_assert_int_eq(validate_calls, 0);
    unload(&l);

    /* a bare non-flag name is a missing value */
    conf = write_conf("bare.conf", "name\n");
    LOAD(&l, "--config", (char *)conf);
    WANT("%s:1: name: missing value", conf);
    unload(&l);
#undef WANT
}
END_TEST

START_TEST(file_out_of_range)
{
    const char *conf = write_conf("r.conf", "name = foo\nlistens = 0\n");
    loaded l;
    LOAD(&l, "--config", (char *)conf);
    char want[256];
    snprintf(want, sizeof(want), "%s:2: listens: 0 is out of range (1 to 64)", conf);
    ASSERT_PROBLEM(&l, want);
    unload(&l);
}
END_TEST

START_TEST(file_unreadable)
{
    loaded l;
    char path[128];
    snprintf(path, sizeof(path), "%s/missing.conf", tmpdir);
    LOAD(&l, "--config", path, "--name", "foo");
    char want[256];
    snprintf(want, sizeof(want), "cannot read config file '%s': %s", path, strerror(ENOENT));
    ASSERT_PROBLEM(&l, want);
    ck_assert_uint_eq(l.problems.count, 1);
    unload(&l);

    LOAD(&l, "--config", tmpdir, "--name", "foo");
    snprintf(want, sizeof(want), "cannot read config file '%s': %s", tmpdir, strerror(EISDIR));
    ASSERT_PROBLEM(&l, want);
    unload(&l);

    if (geteuid() != 0) { /* root reads anything */
        const char *conf = write_conf("noperm.conf", "name = foo\n");
        ck_assert_int_eq(chmod(conf, 0), 0);
        LOAD(&l, "--config", (char *)conf);
        snprintf(want, sizeof(want), "cannot read config file '%s': %s", conf, strerror(EACCES));
        ASSERT_PROBLEM(&l, want);
        unload(&l);
    }
}
END_TEST

START_TEST(file_limits)
{
    /* a line of exactly 4096 bytes is fine, 4097 is not */
    static char content[3 * 4200];
    size_t n = 0;
    n += (size_t)sprintf(content + n, "name = ");
    memset(content + n, 'a', 4096 - 7);
    n += 4096 - 7;
    content[n++] = '\n';
    n += (size_t)sprintf(content + n, "relay = ");
    memset(content + n, 'b', 4097 - 8);
    n += 4097 - 8;
    content[n++] = '\n';
    n += (size_t)sprintf(content + n, "fo = 1\n");
    content[n] = '\0';
    const char *conf = write_conf("long.conf", content);
    loaded l;
    LOAD(&l, "--config", (char *)conf);
    char want[256];
    /* line 1 is read (its value is then refused by the name check) */
    ck_assert(l.problems.count >= 1);
    ck_assert_ptr_nonnull(strstr(l.problems.lines[0], ":1: name: bad name 'aaaa"));
    snprintf(want, sizeof(want), "%s:2: line longer than 4096 bytes", conf);
    ASSERT_PROBLEM(&l, want);
    /* parsing goes on after a long line */
    snprintf(want, sizeof(want), "%s:3: unknown option 'fo'", conf);
    ASSERT_PROBLEM(&l, want);
    unload(&l);

    /* 1 MiB exactly is read; one byte more is refused */
    char path[128];
    snprintf(path, sizeof(path), "%s/big.conf", tmpdir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("name = foo\n", f);
    for (size_t i = 11; i < 1024 * 1024; i++)
        fputc(i % 64 == 63 ? '\n' : '#', f);
    fclose(f);
    LOAD(&l, "--config", path);
    ASSERT_CLEAN(&l);
    unload(&l);
    f = fopen(path, "a");
    fputc('\n', f);
    fclose(f);
    LOAD(&l, "--config", path);
    snprintf(want, sizeof(want), "config file '%s' is larger than 1 MiB", path);
    ASSERT_PROBLEM(&l, want);
    unload(&l);
}
END_TEST

START_TEST(file_nul_byte)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/nul.conf", tmpdir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fwrite("name = foo\nrelay = x\0y\n", 1, 23, f);
    fclose(f);
    loaded l;
    LOAD(&l, "--config", path);
    char want[256];
    snprintf(want, sizeof(want), "%s:2: NUL byte in line", path);
    ASSERT_PROBLEM(&l, want);
    unload(&l);
}
END_TEST

/* A pipe works as a config file (--config <(...)), with the same size limit. */
START_TEST(file_from_pipe)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    const char *text = "name = piped\nlistens = 3\n";
    ck_assert_int_eq(write(p[1], text, strlen(text)), (ssize_t)strlen(text));
    close(p[1]);
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", p[0]);
    loaded l;
    LOAD(&l, "--config", path);
    ASSERT_CLEAN(&l);
    ck_assert_str_eq(l.c.name, "piped");
    ck_assert_uint_eq(l.c.listens, 3);
    unload(&l);
    close(p[0]);
}
END_TEST

START_TEST(cli_overrides_file)
{
    const char *conf = write_conf("o.conf", "name = fromfile\n"
                                            "listens = 5\n"
                                            "relay = http://file:1/\n"
                                            "port-map = a=1\n"
                                            "port-map = b=2\n"
                                            "listen = 127.0.0.1:7\n");
    loaded l;
    LOAD(&l, "--name", "fromcli", "--port-map", "c=3", "--config", (char *)conf, "--listens", "6", "--listen", "127.0.0.1:8");
    ASSERT_CLEAN(&l);
    ck_assert_str_eq(l.c.name, "fromcli");
    ck_assert_uint_eq(l.c.listens, 6);
    ck_assert_str_eq(l.c.relay, "http://file:1/");
    ck_assert_uint_eq(l.c.port_map.count, 3);
    ck_assert_str_eq(l.c.port_map.items[0], "a=1");
    ck_assert_str_eq(l.c.port_map.items[1], "b=2");
    ck_assert_str_eq(l.c.port_map.items[2], "c=3");
    ck_assert_uint_eq(l.c.listen.count, 2);
    ck_assert_str_eq(l.c.listen.items[0], "127.0.0.1:7");
    ck_assert_str_eq(l.c.listen.items[1], "127.0.0.1:8");
    unload(&l);
}
END_TEST

/* All problems are reported, from argv, the file and validate together. */
START_TEST(every_problem_collected)
{
    const char *conf = write_conf("m.conf", "bogus = 1\nlistens = x\n");
    loaded l;
    LOAD(&l, "--config", (char *)conf, "--what", "--big=y", "--name=foo");
    ck_assert_uint_eq(l.problems.count, 4);
    unload(&l);

    /* validate's problems when all else is clean */
    validate_complains = true;
    load_argv(&l, 1, (char *[]){"ptth_test", NULL});
    ASSERT_PROBLEM(&l, "--name is required");
    ASSERT_PROBLEM(&l, "validate says no");
    ck_assert_int_eq(l.rc, -1);
    unload(&l);
}
END_TEST

START_TEST(problems_capped_and_escaped)
{
    static char content[200 * 16];
    size_t n = 0;
    for (int i = 0; i < 200; i++)
        n += (size_t)sprintf(content + n, "bad%d = 1\n", i);
    const char *conf = write_conf("many.conf", content);
    loaded l;
    LOAD(&l, "--config", (char *)conf);
    ck_assert_uint_eq(l.problems.count, 101);
    ck_assert_str_eq(l.problems.lines[100], "too many problems; the rest are not shown");
    unload(&l);

    LOAD(&l, "--name", "foo", "--x\ny\x1b");
    ASSERT_PROBLEM(&l, "unknown option '--x\\x0ay\\x1b'");
    unload(&l);
}
END_TEST

Suite *
ptth_test_suite(void)
{
    Suite *s = suite_create("options_file");
    TCase *tc = tcase_create("options_file");
    tcase_add_checked_fixture(tc, options_fixture_setup, options_fixture_teardown);
    tcase_add_test(tc, good_file);
    tcase_add_test(tc, empty_file);
    tcase_add_test(tc, file_flag_values);
    tcase_add_test(tc, file_errors_name_file_and_line);
    tcase_add_test(tc, file_out_of_range);
    tcase_add_test(tc, file_unreadable);
    tcase_add_test(tc, file_limits);
    tcase_add_test(tc, file_nul_byte);
    tcase_add_test(tc, file_from_pipe);
    tcase_add_test(tc, cli_overrides_file);
    tcase_add_test(tc, every_problem_collected);
    tcase_add_test(tc, problems_capped_and_escaped);
    suite_add_tcase(s, tc);
    return s;
}
