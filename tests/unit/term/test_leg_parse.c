/*
 * Unit tests of the upgraded leg's response parser (common/leg_parse.c,
 * declared in leg.h): response heads cut at every byte, the fields and
 * their bounds, the 101 token, body framing and the chunked decoder fed
 * byte by byte, the reason taken from an error body. No sockets.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "check_main.h"
#include "leg.h"

static int
parse(const char *head, ptth_leg_response *res, ptth_leg_body *body)
{
    static char err[256];
    return ptth_leg_parse_head(head, strlen(head), res, body, err, sizeof(err));
}

START_TEST(parser_head_in_every_split)
{
    const char *head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nRetry-After: 99999999\r\n\r\n";
    size_t len = strlen(head);
    for (size_t cut = 0; cut < len; cut++) {
        ptth_leg_response res;
        ptth_leg_body body;
        char err[256];
        ck_assert_int_eq(ptth_leg_parse_head(head, cut, &res, &body, err, sizeof(err)), 0);
    }
    ptth_leg_response res;
    ptth_leg_body body;
    char err[256];
    ck_assert_int_eq(ptth_leg_parse_head(head, len, &res, &body, err, sizeof(err)), (int)len);
    ck_assert_int_eq(body.framing, PTTH_LEG_BODY_CHUNKED);
    ck_assert_int_eq(res.retry_after, 86400);
    ck_assert_int_eq(ptth_leg_parse_head("HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n", 39, &res, &body, err, sizeof(err)),
                     -EBADMSG);
    ck_assert_int_eq(ptth_leg_parse_head("HTTP/1.1 000 OK\r\n\r\n", 19, &res, &body, err, sizeof(err)), -EBADMSG);
    ck_assert_int_eq(ptth_leg_parse_head("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", 46, &res, &body, err, sizeof(err)),
                     46);
    ck_assert(body.done);
}
END_TEST

START_TEST(parser_chunked_byte_by_byte)
{
    const char *wire = "3;ext=1\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nTrailer: x\r\n\r\nAFTER";
    ptth_leg_body body = {.framing = PTTH_LEG_BODY_CHUNKED};
    body.chunked.consume_trailer = 1;
    char out[64];
    size_t out_len = 0;
    int rc = 0;
    for (size_t i = 0; wire[i] != '\0'; i++) {
        char b = wire[i];
        size_t n = 1;
        rc = ptth_leg_body_decode(&body, &b, &n);
        ck_assert_int_ge(rc, 0);
        memcpy(out + out_len, &b, n);
        out_len += n;
    }
    ck_assert_int_eq(rc, 1);
    ck_assert_int_eq(out_len, 19);
    ck_assert(memcmp(out, "abc0123456789abcdef", 19) == 0);
    char bad[] = "zz\r\n";
    size_t n = 4;
    ptth_leg_body b2 = {.framing = PTTH_LEG_BODY_CHUNKED};
    ck_assert_int_eq(ptth_leg_body_decode(&b2, bad, &n), -EBADMSG);
}
END_TEST

START_TEST(parser_fields_and_bounds)
{
    ptth_leg_response res;
    ptth_leg_body body;
    static char head[2048];
    char longv[300];
    memset(longv, 'c', sizeof(longv) - 1);
    longv[sizeof(longv) - 1] = '\0';
    snprintf(head, sizeof(head),
             "HTTP/1.1 101 Switching Protocols\r\nUPGRADE: ptth-tunnel/1\r\nptth-heartbeat: 25\r\n"
             "PTTH-Idle-Timeout: x\r\nPTTH-Max-Chunk: 99999999999\r\nPTTH-Conn: %s\r\nPTTH-Upgrade: a\xc3\xa9\x62\r\n\r\nRAW",
             longv);
    int n = parse(head, &res, &body);
    ck_assert_int_eq(n, (int)strlen(head) - 3);
    ck_assert(res.upgraded);
    ck_assert_ptr_null(res.error);
    ck_assert_int_eq(res.heartbeat, 25);
    ck_assert_int_eq(res.idle_timeout, 0);
    ck_assert_int_eq(res.max_chunk, 1L << 30);
    ck_assert_int_eq(res.retry_after, -1);
    ck_assert_uint_eq(strlen(res.conn), PTTH_REQ_FIELD_MAX - 1);
    ck_assert_str_eq(res.upgrade_note, "a??b"); /* picohttpparser takes bytes >= 0x80, refuses controls */
    ck_assert_int_eq(body.framing, PTTH_LEG_BODY_NONE);
    ck_assert(body.done);

    ck_assert_int_gt(parse("HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n", &res, &body), 0);
    ck_assert(!res.upgraded);
    ck_assert_ptr_nonnull(res.error);
    ck_assert_ptr_nonnull(strstr(res.error, "'h2c'"));
    ck_assert_int_gt(parse("HTTP/1.1 101 Switching Protocols\r\n\r\n", &res, &body), 0);
    ck_assert_ptr_nonnull(strstr(res.error, "without an Upgrade header"));
}
END_TEST

START_TEST(parser_framing_choices)
{
    ptth_leg_response res;
    ptth_leg_body body;
    ck_assert_int_gt(parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", &res, &body), 0);
    ck_assert_int_eq(body.framing, PTTH_LEG_BODY_CHUNKED);
    ck_assert_int_gt(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", &res, &body), 0);
    ck_assert_int_eq(body.framing, PTTH_LEG_BODY_CLOSE);
    ck_assert_int_gt(parse("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", &res, &body), 0);
    ck_assert_int_eq(body.framing, PTTH_LEG_BODY_LENGTH);
    ck_assert(body.done);
    ck_assert_int_eq(parse("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", &res, &body), -EBADMSG);
    ck_assert_int_gt(parse("HTTP/1.0 404 Not Found\r\n\r\n", &res, &body), 0);
    ck_assert_int_eq(body.framing, PTTH_LEG_BODY_CLOSE);
    ck_assert_int_eq(ptth_leg_body_closed(&body), 0);
    ck_assert_int_gt(parse("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n", &res, &body), 0);
    char b[] = "abcdef";
    size_t n = 2;
    ck_assert_int_eq(ptth_leg_body_decode(&body, b, &n), 0);
    ck_assert_int_eq(ptth_leg_body_closed(&body), -EPROTO);
    n = 4;
    ck_assert_int_eq(ptth_leg_body_decode(&body, b, &n), 1);
    ck_assert_uint_eq(n, 2);
    n = 3;
    ck_assert_int_eq(ptth_leg_body_decode(&body, b, &n), 1);
    ck_assert_uint_eq(n, 0);
}
END_TEST

START_TEST(parser_head_limit)
{
    static char big[PTTH_LEG_HEAD_MAX + 10];
    memset(big, 'x', sizeof(big));
    memcpy(big, "HTTP/1.1 200 OK\r\nX: ", 20);
    ptth_leg_response res;
    ptth_leg_body body;
    char err[128];
    ck_assert_int_eq(ptth_leg_parse_head(big, PTTH_LEG_HEAD_MAX - 1, &res, &body, err, sizeof(err)), 0);
    ck_assert_int_eq(ptth_leg_parse_head(big, PTTH_LEG_HEAD_MAX, &res, &body, err, sizeof(err)), -EMSGSIZE);
    ck_assert_int_eq(ptth_leg_parse_head(big, sizeof(big), &res, &body, err, sizeof(err)), -EMSGSIZE);
}
END_TEST

/* The headers of a resumable tunnel's 101: bounded, untrusted. */
START_TEST(parser_resume_fields)
{
    ptth_leg_response res;
    ptth_leg_body body;
    const char *ok = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: ptth-tunnel/1\r\n"
                     "PTTH-Resume:  abcdefghijklmnopqrstuvwxyzABCDEFGHIJK-_0123 \r\nPTTH-Resume-Grace: 30\r\n"
                     "PTTH-Peer-Received: 131072\r\nPTTH-Peer-Sent: 9223372036854775807\r\n\r\n";
    ck_assert_int_gt(parse(ok, &res, &body), 0);
    ck_assert(res.upgraded);
    ck_assert_str_eq(res.resume_token, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJK-_0123");
    ck_assert_int_eq(res.resume_grace, 30);
    ck_assert_int_eq(res.peer_received, 131072);
    ck_assert_int_eq(res.peer_sent, INT64_MAX);

    const char *none = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: ptth-tunnel/1\r\n\r\n";
    ck_assert_int_gt(parse(none, &res, &body), 0);
    ck_assert_str_eq(res.resume_token, "");
    ck_assert_int_eq(res.resume_grace, 0);
    ck_assert_int_eq(res.peer_received, -1);
    ck_assert_int_eq(res.peer_sent, -1);

    static char bad[1024];
    char longtok[80];
    memset(longtok, 'a', sizeof(longtok) - 1);
    longtok[sizeof(longtok) - 1] = '\0';
    const char *tokens[] = {"a b", "abc=", "ab\"c", longtok};
    for (size_t i = 0; i < sizeof(tokens) / sizeof(tokens[0]); i++) {
        snprintf(bad, sizeof(bad),
                 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: ptth-tunnel/1\r\nPTTH-Resume: %s\r\n"
                 "PTTH-Resume-Grace: 99999999\r\nPTTH-Peer-Received: 9223372036854775808\r\nPTTH-Peer-Sent: -1\r\n\r\n",
                 tokens[i]);
        ck_assert_int_gt(parse(bad, &res, &body), 0);
        ck_assert_msg(res.resume_token[0] == '\0', "token '%s' taken", tokens[i]);
        ck_assert_int_eq(res.resume_grace, 86400);
        ck_assert_int_eq(res.peer_received, -1); /* 2^63 */
        ck_assert_int_eq(res.peer_sent, -1);
    }
}
END_TEST

START_TEST(reason_from_body)
{
    ptth_leg_response res;
    ptth_leg_response_reset(&res);
    const char *html = "\r\n  <h1>Bad\tGateway</h1>\r\n\x7f end  \n";
    ptth_leg_reason_from_body(&res, html, strlen(html));
    ck_assert_str_eq(res.reason, "<h1>Bad Gateway</h1> ? end");
    snprintf(res.reason, sizeof(res.reason), "from the header");
    ptth_leg_reason_from_body(&res, "body", 4);
    ck_assert_str_eq(res.reason, "from the header");
    ptth_leg_response_reset(&res);
    static char lots[1000];
    memset(lots, 'z', sizeof(lots));
    ptth_leg_reason_from_body(&res, lots, sizeof(lots));
    ck_assert_uint_eq(strlen(res.reason), PTTH_LEG_REASON_MAX - 1);
}
END_TEST

Suite *
ptth_test_suite(void)
{
    Suite *s = suite_create("leg_parse");
    TCase *tc = tcase_create("leg_parse");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, parser_head_in_every_split);
    tcase_add_test(tc, parser_chunked_byte_by_byte);
    tcase_add_test(tc, parser_fields_and_bounds);
    tcase_add_test(tc, parser_framing_choices);
    tcase_add_test(tc, parser_head_limit);
    tcase_add_test(tc, parser_resume_fields);
    tcase_add_test(tc, reason_from_body);
    suite_add_tcase(s, tc);
    return s;
}
