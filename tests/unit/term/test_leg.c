/*
 * Unit tests of the upgraded relay leg (common/leg.c) through the real
 * relay client against the fake relay of leg_harness.c, on cleartext: the
 * request, the answers (101, 2xx bodies, errors), failures, abort. Run
 * twice (meson.build): with the legs on our own layers (leg_dial.h), and
 * with PTTH_HTTP_CLIENT=curl on libcurl's connect-only jobs. TLS and the
 * choice of connector: test_leg_tls.c.
 *
 * The pure response parser (leg_parse.c) has its own suite, test_leg_parse.c.
 *
 * Every wait is bounded (run_until() fails the test when its guard fires).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_main.h"
#include "leg_harness.h"

/* ---- tests: upgraded ---- */

START_TEST(upgrade_then_echo)
{
    answer(HEAD_101 "PTTH-Heartbeat: 30\r\nPTTH-Idle-Timeout: 120\r\nPTTH-Conn: c-17\r\n\r\n");
    F.after = AFTER_ECHO;
    T.out = "ping pong";
    T.out_len = 9;
    T.want_in = 9;
    start_and_answer("", 0);
    ck_assert(T.res.upgraded);
    ck_assert_int_eq(T.res.status, 101);
    ck_assert(T.error_null);
    ck_assert_int_eq(T.res.heartbeat, 30);
    ck_assert_int_eq(T.res.idle_timeout, 120);
    ck_assert_str_eq(T.res.conn, "c-17");
    ck_assert(!ptth_leg_is_tls(&T.leg));
    ck_assert(run_until(cond_echo_done, GUARD_MS));
    ck_assert_int_eq(T.in_len, 9);
    ck_assert(memcmp(T.in, "ping pong", 9) == 0);
    ck_assert_int_gt(T.readable_calls, 0);
    /* an orderly close: the fake reads EOF */
    ptth_leg_close(&T.leg, false);
    ck_assert(run_until(cond_fake_done, GUARD_MS));
    fake_join();
    ck_assert_int_eq(F.end_errno, 0);
    ck_assert_uint_eq(F.echoed, 9);
    teardown_all();
}
END_TEST

START_TEST(upgrade_with_bytes_in_the_head_packet)
{
    answer(HEAD_101 "\r\nFIRST");
    F.after = AFTER_ECHO;
    T.out = "x";
    T.out_len = 1;
    T.want_in = 6;
    start_and_answer("", 0);
    ck_assert(T.res.upgraded);
    ck_assert(run_until(cond_echo_done, GUARD_MS));
    ck_assert_int_eq(T.in_len, 6);
    ck_assert(memcmp(T.in, "FIRSTx", 6) == 0);
    teardown_all();
}
END_TEST

START_TEST(upgrade_with_a_wrong_token_fails)
{
    answer("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
    F.after = AFTER_HOLD;
    start_and_answer("", 0);
    ck_assert_int_eq(T.res.status, 101);
    ck_assert(!T.res.upgraded);
    ck_assert(!T.error_null);
    ck_assert_msg(strstr(T.error, "websocket") != NULL, "%s", T.error);
    char b[4];
    ck_assert_int_eq(ptth_leg_read(&T.leg, b, sizeof(b)), -ENOTCONN);
    ck_assert_int_eq(ptth_leg_write(&T.leg, b, sizeof(b)), -EPIPE);
    /* the connection was let go when the leg finished */
    ck_assert(run_until(cond_fake_done, GUARD_MS));
    teardown_all();
}
END_TEST

START_TEST(upgrade_token_case_insensitive)
{
    answer("HTTP/1.1 101 Switching Protocols\r\nupgrade:   PTTH-Tunnel/1  \r\n\r\n");
    F.after = AFTER_HOLD;
    start_and_answer("", 0);
    ck_assert(T.res.upgraded);
    ck_assert(T.error_null);
    teardown_all();
}
END_TEST

START_TEST(request_bytes)
{
    answer("HTTP/1.1 403 Forbidden\r\nPTTH-Reason: not allowed here\r\nContent-Length: 5\r\n\r\nnope!");
    F.after = AFTER_HOLD;
    fake_start();
    client_new("http", F.port, "/ptth/");
    const char *hdrs[] = {"PTTH-Name: foo", "X-Extra: 1 2", NULL};
    open_leg("/v1/connect/foo/ssh", hdrs, 0);
    ck_assert(run_until(cond_response, GUARD_MS));
    ck_assert_int_eq(T.res.status, 403);
    ck_assert_str_eq(T.res.reason, "not allowed here");
    ck_assert(T.error_null);
    ck_assert(run_until(cond_fake_done, GUARD_MS));
    fake_join();
    char host[64];
    snprintf(host, sizeof(host), "\r\nHost: 127.0.0.1:%d\r\n", F.port);
    const char *want[] = {"\r\nAuthorization: Bearer " KEY "\r\n",
                          "\r\nUpgrade: ptth-tunnel/1\r\n",
                          "\r\nConnection: Upgrade\r\n",
                          "\r\nContent-Length: 0\r\n",
                          "\r\nUser-Agent: ptth-test/1\r\n",
                          "\r\nPTTH-Name: foo\r\n",
                          "\r\nX-Extra: 1 2\r\n\r\n",
                          host};
    ck_assert_msg(strncmp(F.req, "POST /ptth/v1/connect/foo/ssh HTTP/1.1\r\n", 40) == 0, "%s", F.req);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        ck_assert_msg(strstr(F.req, want[i]) != NULL, "no '%s' in:\n%s", want[i], F.req);
    teardown_all();
}
END_TEST

START_TEST(bad_request_arguments)
{
    client_new("http", 9, "/p");
    const char *crlf[] = {"X-A: 1\r\nX-B: 2", NULL};
    ck_assert_int_eq(ptth_leg_open(C, &T.leg, "/v1/x", crlf, 0, &ops, NULL), -EINVAL);
    ck_assert_int_eq(ptth_leg_open(C, &T.leg, "/v1/a b", NULL, 0, &ops, NULL), -EINVAL);
    const char *many[] = {"A: 1", "B: 1", "C: 1", "D: 1", "E: 1", "F: 1", "G: 1", "H: 1", "I: 1", NULL};
    ck_assert_int_eq(ptth_leg_open(C, &T.leg, "/v1/x", many, 0, &ops, NULL), -E2BIG);
    static char longp[3000];
    memset(longp, 'a', sizeof(longp) - 1);
    longp[0] = '/';
    ck_assert_int_eq(ptth_leg_open(C, &T.leg, longp, NULL, 0, &ops, NULL), -E2BIG);
    ck_assert_ptr_null(T.leg.impl);
    teardown_all();
}
END_TEST

/* ---- tests: 2xx bodies ---- */

START_TEST(ok_chunked_body_split_awkwardly)
{
    answer("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nPTTH-Conn: abc\r\n\r\n5\r\nhel");
    answer("lo\r\n");
    answer("6\r");
    answer("\n world\r\n0\r\n");
    answer("\r\n");
    F.piece_delay_ms = 30;
    F.after = AFTER_HOLD;
    start_and_answer("", 0);
    ck_assert_int_eq(T.res.status, 200);
    ck_assert(!T.res.upgraded);
    ck_assert_str_eq(T.res.conn, "abc");
    ck_assert(run_until(cond_eof, GUARD_MS));
    ck_assert_int_eq(T.read_err, 0);
    ck_assert_int_eq(T.in_len, 11);
    ck_assert(memcmp(T.in, "hello world", 11) == 0);
    char b[4];
    ck_assert_int_eq(ptth_leg_write(&T.leg, b, sizeof(b)), -EPIPE);
    teardown_all();
}
END_TEST

START_TEST(ok_content_length_body)
{
    answer("HTTP/1.1 200 OK\r\nContent-Length: 11\r\nPTTH-Max-Chunk: 65536\r\n\r\nhello");
    answer(" world and more");
    F.piece_delay_ms = 30;
    F.after = AFTER_HOLD;
    start_and_answer("", 0);
    ck_assert_int_eq(T.res.status, 200);
    ck_assert_int_eq(T.res.max_chunk, 65536);
    ck_assert(run_until(cond_eof, GUARD_MS));
    ck_assert_int_eq(T.in_len, 11);
    ck_assert(memcmp(T.in, "hello world", 11) == 0);
    teardown_all();
}
END_TEST

START_TEST(ok_body_until_close)
{
    answer("HTTP/1.1 200 OK\r\n\r\nhello");
    answer(" world");
    F.piece_delay_ms = 30;
    F.after = AFTER_CLOSE;
    start_and_answer("", 0);
    ck_assert_int_eq(T.res.status, 200);
    ck_assert(run_until(cond_eof, GUARD_MS));
    ck_assert_int_eq(T.read_err, 0);
    ck_assert_int_eq(T.in_len, 11);
    ck_assert(memcmp(T.in, "hello world", 11) == 0);
    teardown_all();
}
END_TEST

START_TEST(ok_chunked_body_cut_short_is_an_error)
{
    answer("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel");
    F.after = AFTER_CLOSE;
    start_and_answer("", 0);
    ck_assert(run_until(cond_eof, GUARD_MS));
    ck_assert_int_eq(T.read_err, -EPROTO);
    ck_assert_int_eq(T.in_len, 3);
    teardown_all();
}
END_TEST

/* ---- tests: other statuses ---- */

START_TEST(forbidden_with_reason_header)
{
    answer("HTTP/1.1 403 Forbidden\r\nPTTH-Reason: client alice may not reach foo/ssh\r\nContent-Length: 9\r\n\r\nforbidden");
    F.after = AFTER_HOLD;
    start_and_answer("", 0);
    ck_assert_int_eq(T.res.status, 403);
    ck_assert(!T.res.upgraded);
    ck_assert(T.error_null);
    ck_assert_str_eq(T.res.reason, "client alice may not reach foo/ssh");
    teardown_all();
}
END_TEST

START_TEST(unavailable_with_retry_after_and_body)
{
    answer("HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\nPTTH-Upgrade: off\r\nContent-Length: 24\r\n\r\n");
    answer("  relay busy:\r\n");
    answer("\tretry\r\n\r\n");
    F.piece_delay_ms = 20;
    F.after = AFTER_HOLD;
    long long t0 = now_ms();
    start_and_answer("", 0);
    ck_assert_msg(now_ms() - t0 < 1500, "waited for more than the body");
    ck_assert_int_eq(T.res.status, 503);
    ck_assert_int_eq(T.res.retry_after, 7);
    ck_assert_str_eq(T.res.upgrade_note, "off");
    ck_assert_str_eq(T.res.reason, "relay busy: retry");
    teardown_all();
}
END_TEST

START_TEST(error_body_wait_is_bounded)
{
    answer("HTTP/1.1 500 Internal Server Error\r\n\r\noops");
    F.after = AFTER_HOLD;
    long long t0 = now_ms();
    start_and_answer("", 0);
    long long took = now_ms() - t0;
    ck_assert_msg(took >= 1900 && took < 4000, "took %lld ms", took);
    ck_assert_int_eq(T.res.status, 500);
    ck_assert_str_eq(T.res.reason, "oops");
    teardown_all();
}
END_TEST

/* ---- tests: no answer ---- */

START_TEST(closed_before_any_response)
{
    F.after = AFTER_CLOSE;
    start_and_answer("", 0);
    assert_failed_with("closed the connection before a complete response head");
    teardown_all();
}
END_TEST

START_TEST(closed_before_reading_the_request)
{
    F.close_at_once = true;
    start_and_answer("", 0);
    ck_assert_int_eq(T.res.status, 0);
    ck_assert(!T.error_null);
    teardown_all();
}
END_TEST

START_TEST(garbage_response)
{
    answer("SSH-2.0-OpenSSH_9.2\r\n\r\n");
    F.after = AFTER_HOLD;
    start_and_answer("", 0);
    assert_failed_with("not an HTTP/1.x response head");
    ck_assert_msg(strstr(T.error, "SSH-2.0") != NULL, "%s", T.error);
    teardown_all();
}
END_TEST

START_TEST(head_above_the_limit)
{
    static char big[PTTH_LEG_HEAD_MAX + 4096];
    int n = snprintf(big, sizeof(big), "HTTP/1.1 101 Switching Protocols\r\nX-Pad: ");
    memset(big + n, 'a', sizeof(big) - (size_t)n - 1);
    F.piece[0] = big;
    F.piece_len[0] = sizeof(big) - 1;
    F.npieces = 1;
    F.after = AFTER_HOLD;
    start_and_answer("", 0);
    assert_failed_with("larger than 16384 bytes");
    teardown_all();
}
END_TEST

START_TEST(response_timeout)
{
    F.after = AFTER_HOLD;
    long long t0 = now_ms();
    start_and_answer("", 300);
    ck_assert(now_ms() - t0 < 2000);
    assert_failed_with("within 300 ms");
    teardown_all();
}
END_TEST

START_TEST(connection_refused)
{
    int port;
    int fd = listen_loopback(&port);
    close(fd);
    client_new("http", port, "");
    open_leg("/v1/accept/foo", NULL, 0);
    ck_assert(run_until(cond_response, GUARD_MS));
    assert_failed_with("connecting to the relay");
    teardown_all();
}
END_TEST

START_TEST(interim_answer_is_skipped)
{
    answer("HTTP/1.1 100 Continue\r\n\r\n" HEAD_101 "\r\n");
    F.after = AFTER_HOLD;
    start_and_answer("", 0);
    ck_assert(T.res.upgraded);
    teardown_all();
}
END_TEST

/* ---- tests: closing ---- */

START_TEST(abort_resets_the_connection)
{
    answer(HEAD_101 "\r\n");
    F.after = AFTER_HOLD;
    T.close_on_response = T.abort_on_response = true; /* closed inside its callback */
    start_and_answer("", 0);
    ck_assert_ptr_null(T.leg.impl);
    ck_assert(run_until(cond_fake_done, GUARD_MS));
    fake_join();
    ck_assert_int_eq(F.end_errno, ECONNRESET);
    teardown_all();
}
END_TEST

START_TEST(close_inside_on_readable)
{
    answer(HEAD_101 "\r\nabc");
    F.after = AFTER_HOLD;
    T.close_when_read_all = true;
    T.want_in = 3;
    start_and_answer("", 0);
    ck_assert(run_until(cond_fake_done, GUARD_MS));
    ck_assert_ptr_null(T.leg.impl);
    ck_assert_int_eq(T.in_len, 3);
    fake_join();
    ck_assert_int_eq(F.end_errno, 0);
    teardown_all();
}
END_TEST

Suite *
ptth_test_suite(void)
{
    Suite *s = suite_create("leg");
    TCase *tc = tcase_create("leg");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, upgrade_then_echo);
    tcase_add_test(tc, upgrade_with_bytes_in_the_head_packet);
    tcase_add_test(tc, upgrade_with_a_wrong_token_fails);
    tcase_add_test(tc, upgrade_token_case_insensitive);
    tcase_add_test(tc, request_bytes);
    tcase_add_test(tc, bad_request_arguments);
    tcase_add_test(tc, ok_chunked_body_split_awkwardly);
    tcase_add_test(tc, ok_content_length_body);
    tcase_add_test(tc, ok_body_until_close);
    tcase_add_test(tc, ok_chunked_body_cut_short_is_an_error);
    tcase_add_test(tc, forbidden_with_reason_header);
    tcase_add_test(tc, unavailable_with_retry_after_and_body);
    tcase_add_test(tc, error_body_wait_is_bounded);
    tcase_add_test(tc, closed_before_any_response);
    tcase_add_test(tc, closed_before_reading_the_request);
    tcase_add_test(tc, garbage_response);
    tcase_add_test(tc, head_above_the_limit);
    tcase_add_test(tc, response_timeout);
    tcase_add_test(tc, connection_refused);
    tcase_add_test(tc, interim_answer_is_skipped);
    tcase_add_test(tc, abort_resets_the_connection);
    tcase_add_test(tc, close_inside_on_readable);
    suite_add_tcase(s, tc);
    return s;
}
