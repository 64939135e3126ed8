/* Unit tests of relay/resume: the resume secret and the tokens (SPEC §9.3). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check_main.h"
#include "resume.h"

#define KEY "0123456789abcdef0123456789abcdef"

/* Computed independently of this code:
 *   printf 'ptth-resume/1\nk3Jx0v4GZ9yS1b3mYw2aQQ\nclient\nfoo\nssh\ntcp\nalice' |
 *     openssl dgst -sha256 -mac HMAC -macopt key:0123456789abcdef0123456789abcdef -binary |
 *     openssl base64 -A | tr '+/' '-_' | tr -d '='
 * and the same with "server" as SIDE. */
#define VECTOR_CLIENT "RmNA-GeSqbxM-s2OAZEYI0ZNupTVmsR7chbGSn3MQYE"
#define VECTOR_SERVER "_nkSQpjyHRoXczZNkLc5gg7E1siP3Lre4ssKAbtiho8"
#define ID "k3Jx0v4GZ9yS1b3mYw2aQQ"

START_TEST(token_matches_the_known_vector)
{
    ptth_resume_secret s;
    ptth_resume_secret_set(&s, KEY, 32);
    char tok[PTTH_RESUME_TOKEN_LEN + 1];
    ck_assert_int_eq(ptth_resume_token(&s, ID, false, "foo", "ssh", "tcp", "alice", tok), 0);
    ck_assert_str_eq(tok, VECTOR_CLIENT);
    ck_assert_int_eq(ptth_resume_token(&s, ID, true, "foo", "ssh", "tcp", "alice", tok), 0);
    ck_assert_str_eq(tok, VECTOR_SERVER);
    ck_assert_uint_eq(strlen(tok), 43);
}
END_TEST

START_TEST(token_checks_every_field)
{
    ptth_resume_secret s;
    ptth_resume_secret_set(&s, KEY, 32);
    ck_assert(ptth_resume_token_ok(&s, ID, false, "foo", "ssh", "tcp", "alice", VECTOR_CLIENT, 43));
    ck_assert(ptth_resume_token_ok(&s, ID, true, "foo", "ssh", "tcp", "alice", VECTOR_SERVER, 43));
    ck_assert(!ptth_resume_token_ok(&s, ID, true, "foo", "ssh", "tcp", "alice", VECTOR_CLIENT, 43)); /* the other side's */
    ck_assert(!ptth_resume_token_ok(&s, "k3Jx0v4GZ9yS1b3mYw2aQR", false, "foo", "ssh", "tcp", "alice", VECTOR_CLIENT, 43));
    ck_assert(!ptth_resume_token_ok(&s, ID, false, "fop", "ssh", "tcp", "alice", VECTOR_CLIENT, 43));
    ck_assert(!ptth_resume_token_ok(&s, ID, false, "foo", "web", "tcp", "alice", VECTOR_CLIENT, 43));
    ck_assert(!ptth_resume_token_ok(&s, ID, false, "foo", "ssh", "udp", "alice", VECTOR_CLIENT, 43));
    ck_assert(!ptth_resume_token_ok(&s, ID, false, "foo", "ssh", "tcp", "bob", VECTOR_CLIENT, 43));
    ck_assert(!ptth_resume_token_ok(&s, ID, false, "foo", "ssh", "tcp", "alice", VECTOR_CLIENT, 42));
    ck_assert(!ptth_resume_token_ok(&s, ID, false, "foo", "ssh", "tcp", "alice", NULL, 0));
    char bad[] = VECTOR_CLIENT;
    bad[42] = bad[42] == 'E' ? 'F' : 'E';
    ck_assert(!ptth_resume_token_ok(&s, ID, false, "foo", "ssh", "tcp", "alice", bad, 43));
    /* another secret, another token */
    ptth_resume_secret other;
    ptth_resume_secret_set(&other, KEY "x", 33);
    ck_assert(!ptth_resume_token_ok(&other, ID, false, "foo", "ssh", "tcp", "alice", VECTOR_CLIENT, 43));
}
END_TEST

static char dir[64];

static char *
write_file(const char *name, const char *content, size_t len, mode_t mode)
{
    static char path[128];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, content, len), (ssize_t)len);
    close(fd);
    ck_assert_int_eq(chmod(path, mode), 0);
    return path;
}

START_TEST(secret_file_rules)
{
    snprintf(dir, sizeof(dir), "/tmp/ptth-resume-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    ptth_resume_secret s;
    char err[600];

    char *p = write_file("ok", KEY "\n", 33, 0600);
    ck_assert_int_eq(ptth_resume_secret_load(&s, p, err, sizeof(err)), 0);
    ck_assert_uint_eq(s.len, 33); /* the bytes as they are, newline included */

    p = write_file("open", KEY, 32, 0644);
    ck_assert_int_eq(ptth_resume_secret_load(&s, p, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "readable by group or others"));
    ck_assert_ptr_nonnull(strstr(err, p));

    p = write_file("short", "0123456789", 10, 0600);
    ck_assert_int_eq(ptth_resume_secret_load(&s, p, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "holds 10 bytes; at least 32"));
    ck_assert_ptr_nonnull(strstr(err, p));

    ck_assert_int_eq(ptth_resume_secret_load(&s, "/nonexistent/secret", err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/secret"));

    /* without a file: 32 random bytes, different each time */
    ptth_resume_secret a, b;
    ck_assert_int_eq(ptth_resume_secret_load(&a, NULL, err, sizeof(err)), 0);
    ck_assert_int_eq(ptth_resume_secret_load(&b, NULL, err, sizeof(err)), 0);
    ck_assert_uint_eq(a.len, 32);
    ck_assert(memcmp(a.bytes, b.bytes, 32) != 0);
    ptth_resume_secret_wipe(&a);
    ck_assert_uint_eq(a.len, 0);
    char tok[PTTH_RESUME_TOKEN_LEN + 1];
    ck_assert_int_eq(ptth_resume_token(&a, ID, false, "foo", "ssh", "tcp", "alice", tok), -1); /* no secret, no token */

    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

START_TEST(counts_are_decimal_u64)
{
    uint64_t v = 7;
    ck_assert_int_eq(ptth_resume_parse_count("0", 1, &v), 0);
    ck_assert_uint_eq(v, 0);
    ck_assert_int_eq(ptth_resume_parse_count("18446744073709551615", 20, &v), 0);
    ck_assert_uint_eq(v, UINT64_MAX);
    ck_assert_int_eq(ptth_resume_parse_count("18446744073709551616", 20, &v), -1);
    ck_assert_int_eq(ptth_resume_parse_count("", 0, &v), -1);
    ck_assert_int_eq(ptth_resume_parse_count("-1", 2, &v), -1);
    ck_assert_int_eq(ptth_resume_parse_count("12a", 3, &v), -1);
    ck_assert_int_eq(ptth_resume_parse_count(" 1", 2, &v), -1);
    ck_assert_int_eq(ptth_resume_parse_count("000000000000000000001", 21, &v), -1);
}
END_TEST

Suite *
ptth_test_suite(void)
{
    Suite *s = suite_create("relay_resume");
    TCase *tc = tcase_create("resume");
    tcase_add_test(tc, token_matches_the_known_vector);
    tcase_add_test(tc, token_checks_every_field);
    tcase_add_test(tc, secret_file_rules);
    tcase_add_test(tc, counts_are_decimal_u64);
    suite_add_tcase(s, tc);
    return s;
}
