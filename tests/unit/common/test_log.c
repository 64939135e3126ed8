/* Unit tests of common/log: line format, levels, escaping, quoting. */
#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <unistd.h>

#include "check_main.h"
#include "log.h"

/* Runs in the forked test: stderr goes to a temporary file that
 * captured() reads back. */
static int saved_stderr = -1;
static FILE *capture_file;

static void
capture_start(void)
{
    capture_file = tmpfile();
    ck_assert_ptr_nonnull(capture_file);
    saved_stderr = dup(STDERR_FILENO);
    ck_assert_int_ge(saved_stderr, 0);
    ck_assert_int_eq(dup2(fileno(capture_file), STDERR_FILENO), STDERR_FILENO);
}

/* Returns what was logged since capture_start (static buffer). */
static const char *
captured(void)
{
    static char buf[1 << 20];
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    saved_stderr = -1;
    long end = lseek(fileno(capture_file), 0, SEEK_CUR);
    ck_assert_int_ge(end, 0);
    ck_assert_int_lt(end, (long)sizeof(buf));
    ssize_t n = pread(fileno(capture_file), buf, (size_t)end, 0);
    ck_assert_int_eq(n, end);
    buf[n] = '\0';
    fclose(capture_file);
    return buf;
}

static int
count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void
assert_matches(const char *text, const char *pattern)
{
    regex_t rx;
    ck_assert_int_eq(regcomp(&rx, pattern, REG_EXTENDED | REG_NOSUB), 0);
    int rc = regexec(&rx, text, 0, NULL, 0);
    regfree(&rx);
    ck_assert_msg(rc == 0, "'%s' does not match /%s/", text, pattern);
}

START_TEST(line_format)
{
    ptth_log_init("ptth_test", PTTH_LOG_INFO);
    capture_start();
    ptth_log_info("event=tunnel_end id=%s bytes=%d", "abc", 42);
    const char *out = captured();
    assert_matches(out, "^[0-9]{4}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9]\\.[0-9]{3}Z info "
                        "prog=ptth_test event=tunnel_end id=abc bytes=42\n$");
}
END_TEST

/* The timestamp is UTC and close to now. */
START_TEST(timestamp_is_utc_now)
{
    ptth_log_init("p", PTTH_LOG_INFO);
    time_t before = time(NULL);
    capture_start();
    ptth_log_info("event=x");
    const char *out = captured();
    time_t after = time(NULL);
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    char *rest = strptime(out, "%Y-%m-%dT%H:%M:%S", &tm);
    ck_assert_ptr_nonnull(rest);
    time_t logged = timegm(&tm);
    ck_assert_int_ge((long)logged, (long)before);
    ck_assert_int_le((long)logged, (long)after);
}
END_TEST

START_TEST(levels_and_threshold)
{
    ptth_log_init("p", PTTH_LOG_WARN);
    capture_start();
    ptth_log_error("event=e");
    ptth_log_warn("event=w");
    ptth_log_info("event=i");
    ptth_log_debug("event=d");
    const char *out = captured();
    ck_assert_int_eq(count_lines(out), 2);
    ck_assert_ptr_nonnull(strstr(out, " error prog=p event=e\n"));
    ck_assert_ptr_nonnull(strstr(out, " warn prog=p event=w\n"));

    ptth_log_set_level(PTTH_LOG_DEBUG);
    ck_assert(ptth_log_enabled(PTTH_LOG_DEBUG));
    capture_start();
    ptth_log_debug("event=d");
    ptth_log_info("event=i");
    out = captured();
    ck_assert_int_eq(count_lines(out), 2);
    ck_assert_ptr_nonnull(strstr(out, " debug prog=p event=d\n"));
    ck_assert_ptr_nonnull(strstr(out, " info prog=p event=i\n"));

    ptth_log_set_level(PTTH_LOG_ERROR);
    ck_assert(!ptth_log_enabled(PTTH_LOG_WARN));
    ck_assert(ptth_log_enabled(PTTH_LOG_ERROR));
}
END_TEST

START_TEST(parse_level)
{
    ptth_log_level l = PTTH_LOG_INFO;
    ck_assert_int_eq(ptth_log_parse_level("error", &l), 0);
    ck_assert_int_eq(l, PTTH_LOG_ERROR);
    ck_assert_int_eq(ptth_log_parse_level("warn", &l), 0);
    ck_assert_int_eq(l, PTTH_LOG_WARN);
    ck_assert_int_eq(ptth_log_parse_level("info", &l), 0);
    ck_assert_int_eq(l, PTTH_LOG_INFO);
    ck_assert_int_eq(ptth_log_parse_level("debug", &l), 0);
    ck_assert_int_eq(l, PTTH_LOG_DEBUG);
    ck_assert_int_eq(ptth_log_parse_level("INFO", &l), -EINVAL);
    ck_assert_int_eq(ptth_log_parse_level("warning", &l), -EINVAL);
    ck_assert_int_eq(ptth_log_parse_level("", &l), -EINVAL);
    ck_assert_int_eq(ptth_log_parse_level(NULL, &l), -EINVAL);
    ck_assert_int_eq(l, PTTH_LOG_DEBUG);
}
END_TEST

/* Bytes from the network must not be able to forge a second line. */
START_TEST(control_chars_escaped)
{
    ptth_log_init("p", PTTH_LOG_INFO);
    capture_start();
    ptth_log_info("event=x reason=%s", "a\nb\rc\td\x1b[31m\x7f"
                                       "e\x01");
    const char *out = captured();
    ck_assert_int_eq(count_lines(out), 1);
    ck_assert_ptr_nonnull(strstr(out, "reason=a\\x0ab\\x0dc\\x09d\\x1b[31m\\x7fe\\x01\n"));
}
END_TEST

/* UTF-8 and other high bytes are left alone. */
START_TEST(utf8_kept)
{
    ptth_log_init("p", PTTH_LOG_INFO);
    capture_start();
    ptth_log_info("event=x name=caf\xc3\xa9");
    const char *out = captured();
    ck_assert_ptr_nonnull(strstr(out, "name=caf\xc3\xa9\n"));
}
END_TEST

/* A long line is truncated into one line of at most 4 KiB, ending in \n. */
START_TEST(long_line_truncated)
{
    static char big[10000];
    memset(big, 'a', sizeof(big) - 1);
    ptth_log_init("p", PTTH_LOG_INFO);
    capture_start();
    ptth_log_info("event=x v=%s", big);
    const char *out = captured();
    ck_assert_int_eq(count_lines(out), 1);
    size_t len = strlen(out);
    ck_assert_uint_le(len, 4096);
    ck_assert_uint_ge(len, 4000);
    ck_assert_int_eq(out[len - 1], '\n');

    /* escapes are never cut in half */
    static char ctl[3000];
    memset(ctl, '\x01', sizeof(ctl) - 1);
    capture_start();
    ptth_log_info("v=%s", ctl);
    out = captured();
    len = strlen(out);
    ck_assert_uint_le(len, 4096);
    const char *v = strstr(out, "v=");
    ck_assert_ptr_nonnull(v);
    ck_assert_uint_eq((strlen(v + 2) - 1) % 4, 0);
}
END_TEST

/* Logging must not clobber errno, callers log then use it. */
START_TEST(errno_preserved)
{
    ptth_log_init("p", PTTH_LOG_INFO);
    capture_start();
    errno = ECONNRESET;
    ptth_log_info("event=x");
    ck_assert_int_eq(errno, ECONNRESET);
    captured();
}
END_TEST

/* Each line is one write: many lines from two processes never mix. */
START_TEST(lines_do_not_interleave)
{
    ptth_log_init("p", PTTH_LOG_INFO);
    static char payload[2000];
    capture_start();
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    char c = pid == 0 ? 'c' : 'p';
    memset(payload, c, sizeof(payload) - 1);
    for (int i = 0; i < 200; i++)
        ptth_log_info("event=x v=%s", payload);
    if (pid == 0)
        _exit(0);
    int status;
    waitpid(pid, &status, 0);
    const char *out = captured();
    ck_assert_int_eq(count_lines(out), 400);
    for (const char *line = out; *line; line = strchr(line, '\n') + 1) {
        const char *v = strstr(line, "v=");
        ck_assert_ptr_nonnull(v);
        ck_assert(v[2] == 'c' || v[2] == 'p');
        size_t run = strspn(v + 2, v[2] == 'c' ? "c" : "p");
        ck_assert_uint_eq(run, sizeof(payload) - 1);
        ck_assert_int_eq(v[2 + run], '\n');
    }
}
END_TEST

START_TEST(quote)
{
    char out[64];
    ck_assert_str_eq(ptth_log_quote(out, sizeof(out), "plain"), "\"plain\"");
    ck_assert_str_eq(ptth_log_quote(out, sizeof(out), "two words"), "\"two words\"");
    ck_assert_str_eq(ptth_log_quote(out, sizeof(out), "say \"hi\" \\o/"), "\"say \\\"hi\\\" \\\\o/\"");
    ck_assert_str_eq(ptth_log_quote(out, sizeof(out), ""), "\"\"");
    ck_assert_str_eq(ptth_log_quote(out, sizeof(out), NULL), "\"\"");
    /* truncation keeps the quotes and never splits an escape */
    ck_assert_str_eq(ptth_log_quote(out, 8, "abcdefghij"), "\"abcde\"");
    ck_assert_str_eq(ptth_log_quote(out, 6, "ab\"cd"), "\"ab\"");
    ck_assert_str_eq(ptth_log_quote(out, 7, "ab\"cd"), "\"ab\\\"\"");
    ck_assert_str_eq(ptth_log_quote(out, 3, "abc"), "\"\"");
    ck_assert_str_eq(ptth_log_quote(out, 2, "abc"), "");
    out[0] = 'z';
    ptth_log_quote(out, 0, "abc");
    ck_assert_int_eq(out[0], 'z');
}
END_TEST

/* Quoted values still get their control characters escaped by ptth_log. */
START_TEST(quote_then_log)
{
    char q[64];
    ptth_log_init("p", PTTH_LOG_INFO);
    capture_start();
    ptth_log_info("event=x reason=%s", ptth_log_quote(q, sizeof(q), "bad \"thing\"\nhere"));
    const char *out = captured();
    ck_assert_int_eq(count_lines(out), 1);
    ck_assert_ptr_nonnull(strstr(out, "reason=\"bad \\\"thing\\\"\\x0ahere\"\n"));
}
END_TEST

Suite *
ptth_test_suite(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("log");
    tcase_add_test(tc, line_format);
    tcase_add_test(tc, timestamp_is_utc_now);
    tcase_add_test(tc, levels_and_threshold);
    tcase_add_test(tc, parse_level);
    tcase_add_test(tc, control_chars_escaped);
    tcase_add_test(tc, utf8_kept);
    tcase_add_test(tc, long_line_truncated);
    tcase_add_test(tc, errno_preserved);
    tcase_add_test(tc, lines_do_not_interleave);
    tcase_add_test(tc, quote);
    tcase_add_test(tc, quote_then_log);
    suite_add_tcase(s, tc);
    return s;
}
