/*
 * Unit tests of the upgraded relay leg (common/leg.c) over TLS, and of how
 * legs connect, through the real relay client against the fake relay of
 * leg_harness.c (a throwaway self-signed certificate for localhost): ALPN
 * http/1.1 only, a transfer of a few MiB with backpressure, abort without
 * close_notify, the certificate and host name checked unless insecure; that
 * legs connect without libcurl unless a proxy or PTTH_HTTP_CLIENT=curl says
 * otherwise; and the libcurl connect-only facts the proxied legs rely on.
 * Run twice (meson.build): our own layers, and PTTH_HTTP_CLIENT=curl.
 *
 * Every wait is bounded (run_until() fails the test when its guard fires).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_main.h"
#include "leg_harness.h"

/* ---- tests: TLS ---- */

START_TEST(tls_upgrade_echo_megabytes)
{
    F.tls = true;
    answer(HEAD_101 "\r\n");
    F.after = AFTER_ECHO;
    F.echo_delay_ms = 300; /* the client's writes fill the socket first */
    char *data = pattern(BIG);
    T.out = data;
    T.out_len = BIG;
    T.want_in = BIG;
    start_and_answer("/pfx", 0);
    ck_assert(T.res.upgraded);
    ck_assert(ptth_leg_is_tls(&T.leg));
    ck_assert_int_eq(F.alpn_len, 9);
    ck_assert(memcmp(F.alpn, "\x08http/1.1", 9) == 0);
    ck_assert(run_until(cond_echo_done, 20000));
    ck_assert_int_eq(T.read_err, 0);
    ck_assert_uint_eq(T.in_len, BIG);
    ck_assert(memcmp(T.in, data, BIG) == 0);
    ck_assert_int_gt(T.write_again, 0);
    ck_assert_msg(strncmp(F.req, "POST /pfx/v1/connect/foo/ssh HTTP/1.1\r\n", 38) == 0, "%s", F.req);
    ptth_leg_close(&T.leg, false);
    ck_assert(run_until(cond_fake_done, GUARD_MS));
    fake_join();
    ck_assert_int_eq(F.end_errno, 0);
    free(data);
    teardown_all();
}
END_TEST

START_TEST(tls_abort_resets_without_close_notify)
{
    F.tls = true;
    answer(HEAD_101 "\r\n");
    F.after = AFTER_HOLD;
    T.close_on_response = T.abort_on_response = true;
    start_and_answer("", 0);
    ck_assert(run_until(cond_fake_done, GUARD_MS));
    fake_join();
    ck_assert_int_eq(F.end_errno, ECONNRESET);
    teardown_all();
}
END_TEST

/* ---- tests: libcurl's connect-only facts the leg relies on (7.88) ---- */

static struct {
    ptth_conn_job job;
    int done;
    bool error_null;
} J;

static void
on_job_done(ptth_conn_job *job, const char *error)
{
    (void)job;
    J.done++;
    J.error_null = error == NULL;
}

static bool
cond_job_done(void)
{
    return J.done > 0;
}

/* After CURLMSG_DONE the connection stays open while the handle is in the
 * multi (here 200 ms), CURLINFO_ACTIVESOCKET names it, curl_easy_recv says
 * CURLE_AGAIN when nothing came and moves bytes both ways; removing the
 * handle (ptth_conn_job_end) closes it. */
START_TEST(conn_job_keeps_the_connection_until_ended)
{
    answer("pong");
    F.after = AFTER_HOLD;
    fake_start();
    client_new("http", F.port, "");
    J.job.on_done = on_job_done;
    ck_assert_int_eq(ptth_conn_job_start(C, &J.job), 0);
    ck_assert(run_until(cond_job_done, GUARD_MS));
    ck_assert(J.error_null);
    curl_socket_t fd = CURL_SOCKET_BAD;
    ck_assert(curl_easy_getinfo(J.job.curl, CURLINFO_ACTIVESOCKET, &fd) == CURLE_OK);
    ck_assert_int_ne(fd, CURL_SOCKET_BAD);
    char b[16];
    size_t n = 0;
    ck_assert(curl_easy_recv(J.job.curl, b, sizeof(b), &n) == CURLE_AGAIN);
    ck_assert(curl_easy_send(J.job.curl, "ping\r\n\r\n", 8, &n) == CURLE_OK);
    ck_assert_uint_eq(n, 8);
    ck_assert(!run_until(cond_fake_done, 200));
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    ck_assert_int_eq(poll(&pfd, 1, 2000), 1);
    ck_assert(curl_easy_recv(J.job.curl, b, sizeof(b), &n) == CURLE_OK);
    ck_assert_uint_eq(n, 4);
    ck_assert(memcmp(b, "pong", 4) == 0);
    ck_assert_int_eq(J.done, 1);
    ptth_conn_job_end(&J.job);
    ck_assert(run_until(cond_fake_done, GUARD_MS));
    fake_join();
    ck_assert_int_eq(F.end_errno, 0);
    ck_assert_str_eq(F.req, "ping\r\n\r\n");
    teardown_all();
}
END_TEST

/* ---- tests: which connector, certificate checks ---- */

static bool
curl_forced(void)
{
    const char *v = getenv("PTTH_HTTP_CLIENT");
    return v != NULL && strcmp(v, "curl") == 0;
}

/* Without a forward proxy a leg connects with our own layers (no libcurl
 * handle), unless PTTH_HTTP_CLIENT=curl; with one, with libcurl's job. */
START_TEST(legs_connect_without_libcurl_unless_a_proxy_or_told)
{
    answer(HEAD_101 "\r\n");
    F.after = AFTER_HOLD;
    start_and_answer("", 0);
    ck_assert(T.res.upgraded);
    ck_assert(ptth_leg_via_curl(&T.leg) == curl_forced());
    teardown_all();

    /* a forward proxy that is not there: the leg is libcurl's, and fails */
    memset(&T, 0, sizeof(T));
    loop = ptth_loop_new();
    ck_assert_ptr_nonnull(loop);
    int pfd, pport;
    pfd = listen_loopback(&pport);
    close(pfd); /* refused from now on */
    char purl[64];
    snprintf(purl, sizeof(purl), "http://127.0.0.1:%d", pport);
    ptth_http_proxy proxy = {.url = purl};
    ptth_relay_client_config cfg = {
        .url = "http://127.0.0.1:9/", .key = KEY, .insecure = true, .user_agent = "ptth-test/1", .proxy = &proxy};
    char err[256];
    ck_assert_msg(ptth_relay_client_new(loop, &cfg, &C, err, sizeof(err)) == 0, "%s", err);
    open_leg("/v1/connect/foo/ssh", NULL, 0);
    ck_assert(ptth_leg_via_curl(&T.leg));
    ck_assert(run_until(cond_response, GUARD_MS));
    assert_failed_with("connecting to the relay");
    teardown_all();
}
END_TEST

/* A self-signed certificate the client was not told to trust: no answer,
 * and the error says why (libcurl's words or OpenSSL's, both with it). */
START_TEST(tls_untrusted_certificate_fails)
{
    F.tls = true;
    answer(HEAD_101 "\r\n");
    fake_start();
    client_new_verified("https", "localhost", F.port, NULL);
    open_leg("/v1/connect/foo/ssh", NULL, 0);
    ck_assert(run_until(cond_response, GUARD_MS));
    assert_failed_with("connecting to the relay");
    assert_failed_with("self-signed certificate");
    ck_assert_uint_eq(F.req_len, 0);
    teardown_all();
}
END_TEST

/* Trusted, but for localhost, reached as 127.0.0.1: the host check fails. */
START_TEST(tls_host_name_mismatch_fails)
{
    F.tls = true;
    answer(HEAD_101 "\r\n");
    fake_start();
    client_new_verified("https", "127.0.0.1", F.port, F.ca_path);
    open_leg("/v1/connect/foo/ssh", NULL, 0);
    ck_assert(run_until(cond_response, GUARD_MS));
    assert_failed_with("connecting to the relay");
    ck_assert_msg(strstr(T.error, "match") != NULL || strstr(T.error, "mismatch") != NULL, "%s", T.error);
    ck_assert_uint_eq(F.req_len, 0);
    teardown_all();
}
END_TEST

/* Trusted and for the name reached: upgraded, ALPN offered http/1.1 alone. */
START_TEST(tls_verified_certificate_upgrades)
{
    F.tls = true;
    answer(HEAD_101 "\r\n");
    F.after = AFTER_HOLD;
    fake_start();
    client_new_verified("https", "localhost", F.port, F.ca_path);
    open_leg("/v1/connect/foo/ssh", NULL, 0);
    ck_assert(run_until(cond_response, GUARD_MS));
    ck_assert_msg(T.res.upgraded, "%s", T.error);
    ck_assert(ptth_leg_is_tls(&T.leg));
    ck_assert_int_eq(F.alpn_len, 9);
    ck_assert(memcmp(F.alpn, "\x08http/1.1", 9) == 0);
    char host[64];
    snprintf(host, sizeof(host), "\r\nHost: localhost:%d\r\n", F.port);
    ck_assert_msg(strstr(F.req, host) != NULL, "%s", F.req);
    teardown_all();
}
END_TEST

Suite *
ptth_test_suite(void)
{
    Suite *s = suite_create("leg_tls");
    TCase *tc = tcase_create("leg_tls");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, tls_upgrade_echo_megabytes);
    tcase_add_test(tc, tls_abort_resets_without_close_notify);
    tcase_add_test(tc, legs_connect_without_libcurl_unless_a_proxy_or_told);
    tcase_add_test(tc, tls_untrusted_certificate_fails);
    tcase_add_test(tc, tls_host_name_mismatch_fails);
    tcase_add_test(tc, tls_verified_certificate_upgrades);
    tcase_add_test(tc, conn_job_keeps_the_connection_until_ended);
    suite_add_tcase(s, tc);
    return s;
}
