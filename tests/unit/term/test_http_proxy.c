/* Unit tests of common/http_proxy: the --http-proxy URL and user file
 * checks (never quoting a password), the CA file, what "may apply" and
 * "is TLS" mean for each relay scheme and environment, and the auth
 * scheme steps. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check_main.h"
#include "http_proxy.h"

static char dir[] = "/tmp/ptth-http-proxy-XXXXXX";

static const char *
write_file(const char *name, const char *text, mode_t mode)
{
    static char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    chmod(path, mode);
    return path;
}

static void
setup(void)
{
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void
teardown(void)
{
    static const char *const names[] = {"ok", "crlf", "bad", "open", "large", "ca"};
    char path[256];
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
}

START_TEST(urls_are_checked_without_quoting_credentials)
{
    ptth_http_proxy p;
    char err[256];
    ck_assert_int_eq(ptth_http_proxy_init(&p, "http://proxy.corp:3128", NULL, NULL, err, sizeof(err)), 0);
    ck_assert_str_eq(p.shown, "http://proxy.corp:3128");
    ck_assert_ptr_null(p.userpwd);
    ptth_http_proxy_dispose(&p);

    ck_assert_int_eq(ptth_http_proxy_init(&p, "https://bob:hunter2@10.1.2.3:8443/", NULL, NULL, err, sizeof(err)), 0);
    ck_assert_str_eq(p.shown, "https://10.1.2.3:8443");
    ck_assert_str_eq(p.url, "https://bob:hunter2@10.1.2.3:8443/");
    ptth_http_proxy_dispose(&p);

    static const char *const bad[] = {
        "ftp://bob:hunter2@proxy:21", "socks5://bob:hunter2@proxy:1080", "http://", "http://bob:hunter2@proxy:3128/path",
        "http://bob:hunter2@proxy:3128/?q=1", "http://bob:hunter2@pro xy:3128", "proxy:3128",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        ck_assert_msg(ptth_http_proxy_init(&p, bad[i], NULL, NULL, err, sizeof(err)) < 0, "%s taken", bad[i]);
        ck_assert_msg(err[0] != '\0', "no reason for %s", bad[i]);
        ck_assert_msg(strstr(err, "hunter2") == NULL, "'%s' quotes the password", err);
    }
    char longer[PTTH_HTTP_PROXY_URL_MAX + 16];
    memset(longer, 'a', sizeof(longer) - 1);
    memcpy(longer, "http://", 7);
    longer[sizeof(longer) - 1] = '\0';
    ck_assert_int_lt(ptth_http_proxy_init(&p, longer, NULL, NULL, err, sizeof(err)), 0);
    ck_assert_ptr_nonnull(strstr(err, "longer than"));
}
END_TEST

START_TEST(user_files_are_checked)
{
    ptth_http_proxy p;
    char err[256];
    const char *ok = write_file("ok", "alice:pa:ss word\n", 0600);
    ck_assert_int_eq(ptth_http_proxy_init(&p, "http://proxy:3128", ok, NULL, err, sizeof(err)), 0);
    ck_assert_str_eq(p.userpwd, "alice:pa:ss word");
    ptth_http_proxy_dispose(&p);
    ck_assert_ptr_null(p.userpwd);

    const char *crlf = write_file("crlf", "alice:secret\r\n", 0600);
    ck_assert_int_eq(ptth_http_proxy_init(&p, NULL, crlf, NULL, err, sizeof(err)), 0);
    ck_assert_str_eq(p.userpwd, "alice:secret");
    ptth_http_proxy_dispose(&p);

    static const char *const bad[] = {"no colon hunter2\n", ":hunter2\n", "alice:hunter2\nbob:x\n", "", "\n",
                                      "alice:hun\x01ter2\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *path = write_file("bad", bad[i], 0600);
        ck_assert_msg(ptth_http_proxy_init(&p, "http://proxy:3128", path, NULL, err, sizeof(err)) < 0, "case %zu taken", i);
        ck_assert_ptr_nonnull(strstr(err, "USER:PASS"));
        ck_assert_ptr_null(strstr(err, "hunter2"));
    }
    const char *open_file = write_file("open", "alice:hunter2\n", 0644);
    ck_assert_int_lt(ptth_http_proxy_init(&p, "http://proxy:3128", open_file, NULL, err, sizeof(err)), 0);
    ck_assert_ptr_nonnull(strstr(err, "readable by group or others"));

    char big[PTTH_HTTP_PROXY_USER_MAX + 64];
    memset(big, 'x', sizeof(big) - 1);
    big[0] = 'a';
    big[1] = ':';
    big[sizeof(big) - 1] = '\0';
    const char *large = write_file("large", big, 0600);
    ck_assert_int_lt(ptth_http_proxy_init(&p, "http://proxy:3128", large, NULL, err, sizeof(err)), 0);
    ck_assert_ptr_nonnull(strstr(err, "longer than"));

    ck_assert_int_lt(ptth_http_proxy_init(&p, "none", ok, NULL, err, sizeof(err)), 0);
    ck_assert_ptr_nonnull(strstr(err, "no proxy to use it with"));
    ck_assert_int_lt(ptth_http_proxy_init(&p, NULL, "/nonexistent/ptth-user", NULL, err, sizeof(err)), 0);
}
END_TEST

static void
clear_env(void)
{
    static const char *const names[] = {"http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        unsetenv(names[i]);
}

START_TEST(may_apply_follows_libcurls_variables)
{
    ptth_http_proxy given, none, env;
    char err[256];
    ck_assert_int_eq(ptth_http_proxy_init(&given, "http://proxy:3128", NULL, NULL, err, sizeof(err)), 0);
    ck_assert_int_eq(ptth_http_proxy_init(&none, "none", NULL, NULL, err, sizeof(err)), 0);
    ck_assert_int_eq(ptth_http_proxy_init(&env, NULL, NULL, NULL, err, sizeof(err)), 0);
    clear_env();
    ck_assert(ptth_http_proxy_may_apply(&given, false) && ptth_http_proxy_may_apply(&given, true));
    ck_assert(!ptth_http_proxy_may_apply(&env, false) && !ptth_http_proxy_may_apply(&env, true));
    /* upper-case HTTP_PROXY is not read (libcurl ignores it) */
    setenv("HTTP_PROXY", "http://proxy:3128", 1);
    ck_assert(!ptth_http_proxy_may_apply(&env, false));
    setenv("http_proxy", "http://proxy:3128", 1);
    ck_assert(ptth_http_proxy_may_apply(&env, false));
    ck_assert(!ptth_http_proxy_may_apply(&env, true));
    setenv("HTTPS_PROXY", "http://proxy:3128", 1);
    ck_assert(ptth_http_proxy_may_apply(&env, true));
    ck_assert(!ptth_http_proxy_may_apply(&none, false) && !ptth_http_proxy_may_apply(&none, true));
    clear_env();
    setenv("ALL_PROXY", "", 1); /* empty is unset */
    ck_assert(!ptth_http_proxy_may_apply(&env, true));
    setenv("all_proxy", "http://proxy:3128", 1);
    ck_assert(ptth_http_proxy_may_apply(&env, true) && ptth_http_proxy_may_apply(&env, false));
    clear_env();
    ptth_http_proxy_dispose(&given);
    ptth_http_proxy_dispose(&none);
    ptth_http_proxy_dispose(&env);
}
END_TEST

START_TEST(ca_files_must_open_and_need_a_proxy)
{
    ptth_http_proxy p;
    char err[256];
    const char *ca = write_file("ca", "-----BEGIN CERTIFICATE-----\n", 0644);
    ck_assert_int_eq(ptth_http_proxy_init(&p, "https://proxy:3129", NULL, ca, err, sizeof(err)), 0);
    ck_assert_str_eq(p.ca_file, ca);
    ptth_http_proxy_dispose(&p);
    ck_assert_ptr_null(p.ca_file);
    ck_assert_int_lt(ptth_http_proxy_init(&p, "https://proxy:3129", NULL, "/nonexistent/ca.pem", err, sizeof(err)), 0);
    ck_assert_ptr_nonnull(strstr(err, "--http-proxy-ca-file '/nonexistent/ca.pem'"));
    ck_assert_ptr_nonnull(strstr(err, "No such file"));
    ck_assert_int_lt(ptth_http_proxy_init(&p, "none", NULL, ca, err, sizeof(err)), 0);
    ck_assert_ptr_nonnull(strstr(err, "--http-proxy-ca-file: no proxy"));
}
END_TEST

START_TEST(is_tls_follows_the_url_libcurl_will_use)
{
    ptth_http_proxy given, plain, none, env;
    char err[256];
    ck_assert_int_eq(ptth_http_proxy_init(&given, "HTTPS://proxy:3129", NULL, NULL, err, sizeof(err)), 0);
    ck_assert_int_eq(ptth_http_proxy_init(&plain, "http://proxy:3128", NULL, NULL, err, sizeof(err)), 0);
    ck_assert_int_eq(ptth_http_proxy_init(&none, "none", NULL, NULL, err, sizeof(err)), 0);
    ck_assert_int_eq(ptth_http_proxy_init(&env, NULL, NULL, NULL, err, sizeof(err)), 0);
    clear_env();
    ck_assert(ptth_http_proxy_is_tls(&given, false) && ptth_http_proxy_is_tls(&given, true));
    ck_assert(!ptth_http_proxy_is_tls(&plain, true) && !ptth_http_proxy_is_tls(&none, true));
    ck_assert(!ptth_http_proxy_is_tls(&env, true) && !ptth_http_proxy_is_tls(NULL, false));
    /* an option beats the environment */
    setenv("https_proxy", "https://proxy:3129", 1);
    ck_assert(!ptth_http_proxy_is_tls(&plain, true) && !ptth_http_proxy_is_tls(&none, true));
    ck_assert(ptth_http_proxy_is_tls(&env, true) && !ptth_http_proxy_is_tls(&env, false));
    /* the scheme's own variable comes before ALL_PROXY */
    setenv("ALL_PROXY", "http://other:3128", 1);
    ck_assert(ptth_http_proxy_is_tls(&env, true));
    setenv("https_proxy", "http://proxy:3128", 1);
    setenv("ALL_PROXY", "https://other:3129", 1);
    ck_assert(!ptth_http_proxy_is_tls(&env, true));
    ck_assert(ptth_http_proxy_is_tls(&env, false)); /* http: no http_proxy, so ALL_PROXY */
    setenv("http_proxy", "proxy:3128", 1);          /* no scheme: libcurl's http:// */
    ck_assert(!ptth_http_proxy_is_tls(&env, false));
    clear_env();
    ptth_http_proxy_dispose(&given);
    ptth_http_proxy_dispose(&plain);
    ptth_http_proxy_dispose(&none);
    ptth_http_proxy_dispose(&env);
}
END_TEST

START_TEST(url_ports_default_by_scheme)
{
    ck_assert_int_eq(ptth_http_proxy_url_port("http://relay.example:4000/prefix"), 4000);
    ck_assert_int_eq(ptth_http_proxy_url_port("http://relay.example"), 80);
    ck_assert_int_eq(ptth_http_proxy_url_port("https://relay.example/ptth"), 443);
    ck_assert_int_eq(ptth_http_proxy_url_port("https://[::1]:8443"), 8443);
    ck_assert_int_eq(ptth_http_proxy_url_port("not a url"), 0);
}
END_TEST

START_TEST(auth_schemes_step_up_never_down)
{
    ptth_http_proxy p;
    char err[256];
    ck_assert_int_eq(ptth_http_proxy_init(&p, "http://proxy:3128", NULL, NULL, err, sizeof(err)), 0);
    ck_assert_int_eq(ptth_http_proxy_first_auth(&p), (long)CURLAUTH_ANY); /* nothing to send */
    ptth_http_proxy_dispose(&p);
    ck_assert_int_eq(ptth_http_proxy_init(&p, "http://a:b@proxy:3128", NULL, NULL, err, sizeof(err)), 0);
    ck_assert_int_eq(ptth_http_proxy_first_auth(&p), (long)CURLAUTH_BASIC);
    ptth_http_proxy_dispose(&p);
    long a = (long)CURLAUTH_BASIC;
    ck_assert_int_eq(ptth_http_proxy_next_auth(a, (long)CURLAUTH_BASIC), (long)CURLAUTH_BASIC);
    a = ptth_http_proxy_next_auth(a, (long)(CURLAUTH_BASIC | CURLAUTH_DIGEST));
    ck_assert_int_eq(a, (long)CURLAUTH_ANYSAFE);
    ck_assert_int_eq(ptth_http_proxy_next_auth(a, (long)CURLAUTH_BASIC), (long)CURLAUTH_ANYSAFE);
}
END_TEST

Suite *
ptth_test_suite(void)
{
    Suite *s = suite_create("http_proxy");
    TCase *tc = tcase_create("http_proxy");
    tcase_add_unchecked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, urls_are_checked_without_quoting_credentials);
    tcase_add_test(tc, user_files_are_checked);
    tcase_add_test(tc, may_apply_follows_libcurls_variables);
    tcase_add_test(tc, ca_files_must_open_and_need_a_proxy);
    tcase_add_test(tc, is_tls_follows_the_url_libcurl_will_use);
    tcase_add_test(tc, url_ports_default_by_scheme);
    tcase_add_test(tc, auth_schemes_step_up_never_down);
    suite_add_tcase(s, tc);
    return s;
}
