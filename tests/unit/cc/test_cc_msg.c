/* Unit tests: the comm-channel message codec (cc_msg): round trips of every
 * type, and truncated, oversized and garbage messages. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cc_msg.h"
#include "check_main.h"

static uint8_t buf[PTTH_CC_MSG_LIMIT + 16];

static void
round_trip(uint8_t type, uint32_t tunnel, const void *payload, size_t len)
{
    ssize_t n = ptth_cc_msg_encode(buf, sizeof(buf), type, tunnel, payload, len);
    ck_assert_int_eq(n, (ssize_t)(PTTH_CC_MSG_HEADER + len));
    ptth_cc_msg m;
    const char *why = NULL;
    int r = ptth_cc_msg_decode(buf, (size_t)n, PTTH_CC_MSG_LIMIT, &m, &why);
    ck_assert_msg(r == 0, "%s: %s", ptth_cc_msg_type_name(type), why);
    ck_assert_uint_eq(m.type, type);
    ck_assert_uint_eq(m.tunnel, tunnel);
    ck_assert_uint_eq(m.len, len);
    ck_assert_ptr_eq(m.payload, buf + PTTH_CC_MSG_HEADER);
    if (len > 0)
        ck_assert_mem_eq(m.payload, payload, len);
    ck_assert_int_eq(ptth_cc_msg_frame_length(buf, PTTH_CC_MSG_LIMIT, NULL), n);
}

START_TEST(header_layout_is_big_endian)
{
    ck_assert_int_eq(ptth_cc_msg_encode(buf, sizeof(buf), PTTH_CC_DATA, 0x01020304, "xyz", 3), 11);
    static const uint8_t want[] = {5, 0, 0, 3, 1, 2, 3, 4, 'x', 'y', 'z'};
    ck_assert_mem_eq(buf, want, sizeof(want));
}
END_TEST

START_TEST(round_trip_every_type)
{
    uint8_t data[4000];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 7);
    round_trip(PTTH_CC_OPEN, 1, "127.0.0.1:5555", 14);
    round_trip(PTTH_CC_OPEN, 2, NULL, 0);
    round_trip(PTTH_CC_OPEN_OK, 3, NULL, 0);
    round_trip(PTTH_CC_OPEN_FAIL, 4, "too many tunnels", 16);
    round_trip(PTTH_CC_DATA, 0xFFFFFFFF, data, 1);
    round_trip(PTTH_CC_DATA, 5, data, sizeof(data));
    round_trip(PTTH_CC_FIN, 6, NULL, 0);
    round_trip(PTTH_CC_ABORT, 7, "target read: Connection reset by peer", 37);
    round_trip(PTTH_CC_CLOSE, 8, NULL, 0);
    round_trip(PTTH_CC_CLOSE, 8, "closed", 6);
    uint8_t big[65535];
    memset(big, 'a', sizeof(big));
    round_trip(PTTH_CC_DATA, 9, big, sizeof(big));
}
END_TEST

START_TEST(hello_and_credit_round_trip)
{
    ptth_cc_hello h = {.version = 1, .max_msg = 4096, .window = 32, .max_clients = 512}, got;
    size_t n = ptth_cc_msg_encode_hello(buf, &h);
    ck_assert_uint_eq(n, PTTH_CC_MSG_HEADER + PTTH_CC_HELLO_LEN);
    ptth_cc_msg m;
    ck_assert_int_eq(ptth_cc_msg_decode(buf, n, 4096, &m, NULL), 0);
    ck_assert_uint_eq(m.type, PTTH_CC_HELLO);
    ck_assert_uint_eq(m.tunnel, 0);
    ck_assert_int_eq(ptth_cc_msg_parse_hello(&m, &got, NULL), 0);
    ck_assert_uint_eq(got.version, 1);
    ck_assert_uint_eq(got.max_msg, 4096);
    ck_assert_uint_eq(got.window, 32);
    ck_assert_uint_eq(got.max_clients, 512);

    n = ptth_cc_msg_encode_credit(buf, 77, 123456);
    ck_assert_uint_eq(n, 12);
    ck_assert_int_eq(ptth_cc_msg_decode(buf, n, 4096, &m, NULL), 0);
    ck_assert_uint_eq(m.type, PTTH_CC_CREDIT);
    ck_assert_uint_eq(m.tunnel, 77);
    ck_assert_uint_eq(ptth_cc_msg_credit_count(&m), 123456);
}
END_TEST

START_TEST(hello_longer_payload_is_accepted)
{
    uint8_t p[24] = {0, 1, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 8, 0, 0, 0, 0, 9, 9, 9, 9, 9, 9, 9, 9};
    ssize_t n = ptth_cc_msg_encode(buf, sizeof(buf), PTTH_CC_HELLO, 0, p, sizeof(p));
    ptth_cc_msg m;
    ptth_cc_hello h;
    ck_assert_int_eq(ptth_cc_msg_decode(buf, (size_t)n, 4096, &m, NULL), 0);
    ck_assert_int_eq(ptth_cc_msg_parse_hello(&m, &h, NULL), 0);
    ck_assert_uint_eq(h.max_msg, 4096);
    ck_assert_uint_eq(h.window, 8);
}
END_TEST

START_TEST(hello_bad_fields_are_refused)
{
    struct {
        ptth_cc_hello h;
        const char *why;
    } cases[] = {
        {{.version = 0, .max_msg = 4096, .window = 8}, "HELLO version 0"},
        {{.version = 1, .max_msg = 511, .window = 8}, "HELLO message limit below 512"},
        {{.version = 1, .max_msg = 4096, .window = 0}, "HELLO window 0"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = ptth_cc_msg_encode_hello(buf, &cases[i].h);
        ptth_cc_msg m;
        ptth_cc_hello h;
        const char *why = NULL;
        ck_assert_int_eq(ptth_cc_msg_decode(buf, n, 4096, &m, NULL), 0);
        ck_assert_int_eq(ptth_cc_msg_parse_hello(&m, &h, &why), -EPROTO);
        ck_assert_str_eq(why, cases[i].why);
    }
    /* reserved field */
    ptth_cc_hello ok = {.version = 1, .max_msg = 4096, .window = 8};
    size_t n = ptth_cc_msg_encode_hello(buf, &ok);
    buf[PTTH_CC_MSG_HEADER + 3] = 1;
    ptth_cc_msg m;
    ptth_cc_hello h;
    ck_assert_int_eq(ptth_cc_msg_decode(buf, n, 4096, &m, NULL), 0);
    ck_assert_int_eq(ptth_cc_msg_parse_hello(&m, &h, NULL), -EPROTO);
    /* a limit above what the format can carry is clamped */
    ok.max_msg = 1u << 30;
    n = ptth_cc_msg_encode_hello(buf, &ok);
    ck_assert_int_eq(ptth_cc_msg_decode(buf, n, 4096, &m, NULL), 0);
    ck_assert_int_eq(ptth_cc_msg_parse_hello(&m, &h, NULL), 0);
    ck_assert_uint_eq(h.max_msg, PTTH_CC_MSG_LIMIT);
}
END_TEST

/* Every strict prefix of a valid message is refused as truncated. */
START_TEST(truncated_messages_are_refused)
{
    ssize_t n = ptth_cc_msg_encode(buf, sizeof(buf), PTTH_CC_DATA, 42, "hello world", 11);
    for (size_t len = 0; len < (size_t)n; len++) {
        ptth_cc_msg m;
        const char *why = NULL;
        ck_assert_int_eq(ptth_cc_msg_decode(buf, len, 4096, &m, &why), -EBADMSG);
        ck_assert_ptr_nonnull(why);
    }
    /* HELLO cut inside its payload: the length field was rewritten to match */
    ptth_cc_hello h = {.version = 1, .max_msg = 4096, .window = 8};
    ptth_cc_msg_encode_hello(buf, &h);
    buf[3] = 10;
    ptth_cc_msg m;
    const char *why = NULL;
    ck_assert_int_eq(ptth_cc_msg_decode(buf, 18, 4096, &m, &why), -EPROTO);
    ck_assert_str_eq(why, "HELLO payload too short");
}
END_TEST

START_TEST(oversized_messages_are_refused)
{
    uint8_t data[5000];
    memset(data, 1, sizeof(data));
    ssize_t n = ptth_cc_msg_encode(buf, sizeof(buf), PTTH_CC_DATA, 1, data, 4096 - 8);
    ck_assert_int_eq(n, 4096);
    ptth_cc_msg m;
    ck_assert_int_eq(ptth_cc_msg_decode(buf, 4096, 4096, &m, NULL), 0);
    n = ptth_cc_msg_encode(buf, sizeof(buf), PTTH_CC_DATA, 1, data, 4096 - 7);
    const char *why = NULL;
    ck_assert_int_eq(ptth_cc_msg_decode(buf, (size_t)n, 4096, &m, &why), -EMSGSIZE);
    ck_assert_str_eq(why, "message larger than the limit");
    ck_assert_int_eq(ptth_cc_msg_frame_length(buf, 4096, NULL), -EMSGSIZE);
    /* the encoder refuses what does not fit */
    ck_assert_int_eq(ptth_cc_msg_encode(buf, 100, PTTH_CC_DATA, 1, data, 93), -EMSGSIZE);
    ck_assert_int_eq(ptth_cc_msg_encode(buf, 7, PTTH_CC_FIN, 1, NULL, 0), -EMSGSIZE);
    ck_assert_int_eq(ptth_cc_msg_encode(buf, sizeof(buf), PTTH_CC_DATA, 1, data, 65536), -EMSGSIZE);
    /* text payloads are bounded */
    n = ptth_cc_msg_encode(buf, sizeof(buf), PTTH_CC_OPEN_FAIL, 1, data, 256);
    ck_assert_int_eq(ptth_cc_msg_decode(buf, (size_t)n, 4096, &m, &why), -EPROTO);
}
END_TEST

START_TEST(garbage_is_refused)
{
    ptth_cc_msg m;
    const char *why = NULL;
    struct {
        uint8_t bytes[16];
        size_t len;
        const char *why;
    } cases[] = {
        {{0, 0, 0, 0, 0, 0, 0, 1}, 8, "unknown message type"},
        {{10, 0, 0, 0, 0, 0, 0, 1}, 8, "unknown message type"},
        {{255, 0, 0, 0, 0, 0, 0, 1}, 8, "unknown message type"},
        {{PTTH_CC_FIN, 1, 0, 0, 0, 0, 0, 1}, 8, "reserved flags set"},
        {{PTTH_CC_FIN, 0, 0, 1, 0, 0, 0, 1, 'x'}, 9, "payload on a message that has none"},
        {{PTTH_CC_OPEN_OK, 0, 0, 1, 0, 0, 0, 1, 'x'}, 9, "payload on a message that has none"},
        {{PTTH_CC_DATA, 0, 0, 0, 0, 0, 0, 1}, 8, "empty DATA"},
        {{PTTH_CC_DATA, 0, 0, 1, 0, 0, 0, 0, 'x'}, 9, "tunnel message with tunnel id 0"},
        {{PTTH_CC_DATA, 0, 0, 1, 0, 0, 0, 1, 'x', 'y'}, 10, "bytes after the payload"},
        {{PTTH_CC_CREDIT, 0, 0, 4, 0, 0, 0, 1, 0, 0, 0, 0}, 12, "CREDIT of 0"},
        {{PTTH_CC_CREDIT, 0, 0, 3, 0, 0, 0, 1, 0, 0, 1}, 11, "CREDIT payload is not 4 bytes"},
        {{PTTH_CC_HELLO, 0, 0, 0, 0, 0, 0, 1}, 8, "HELLO on a tunnel id"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        why = NULL;
        ck_assert_int_eq(ptth_cc_msg_decode(cases[i].bytes, cases[i].len, 4096, &m, &why), -EPROTO);
        ck_assert_msg(why != NULL && strcmp(why, cases[i].why) == 0, "case %zu: got '%s', want '%s'", i, why, cases[i].why);
    }
    uint8_t bad_type[8] = {99, 0, 0, 0, 0, 0, 0, 1};
    ck_assert_int_eq(ptth_cc_msg_frame_length(bad_type, 4096, &why), -EPROTO);
    uint8_t bad_flags[8] = {PTTH_CC_DATA, 4, 0, 1, 0, 0, 0, 1};
    ck_assert_int_eq(ptth_cc_msg_frame_length(bad_flags, 4096, &why), -EPROTO);
}
END_TEST

/* Random bytes never crash the decoder, never make it read past len, and
 * whatever it accepts re-encodes to the same bytes. Each input is copied to a
 * heap block of exactly its size so that ASan catches any overread. */
START_TEST(random_bytes_decode_safely)
{
    srand(12345);
    int accepted = 0;
    for (int iter = 0; iter < 200000; iter++) {
        size_t len = (size_t)(rand() % 40);
        uint8_t *p = malloc(len + 1);
        ck_assert_ptr_nonnull(p);
        for (size_t i = 0; i < len; i++)
            p[i] = (uint8_t)rand();
        if (len >= 4 && (iter & 1)) { /* make the header plausible half of the time */
            p[0] = (uint8_t)(1 + rand() % 9);
            p[1] = 0;
            p[2] = 0;
            p[3] = (uint8_t)(len >= 8 ? len - 8 : 0);
        }
        ptth_cc_msg m;
        const char *why = NULL;
        int r = ptth_cc_msg_decode(p, len, 4096, &m, &why);
        if (r == 0) {
            accepted++;
            ck_assert_ptr_eq(m.payload, p + PTTH_CC_MSG_HEADER);
            ck_assert_uint_eq(m.len + PTTH_CC_MSG_HEADER, len);
            ssize_t n = ptth_cc_msg_encode(buf, sizeof(buf), m.type, m.tunnel, m.payload, m.len);
            ck_assert_int_eq(n, (ssize_t)len);
            ck_assert_mem_eq(buf, p, len);
        } else {
            ck_assert_msg(r == -EBADMSG || r == -EMSGSIZE || r == -EPROTO, "r=%d", r);
            ck_assert_ptr_nonnull(why);
        }
        free(p);
    }
    ck_assert_int_gt(accepted, 100); /* the generator does reach valid messages */
}
END_TEST

START_TEST(type_names)
{
    ck_assert_str_eq(ptth_cc_msg_type_name(PTTH_CC_HELLO), "HELLO");
    ck_assert_str_eq(ptth_cc_msg_type_name(PTTH_CC_CLOSE), "CLOSE");
    ck_assert_str_eq(ptth_cc_msg_type_name(0), "?");
    ck_assert_str_eq(ptth_cc_msg_type_name(200), "?");
}
END_TEST

Suite *
ptth_test_suite(void)
{
    Suite *s = suite_create("cc_msg");
    TCase *tc = tcase_create("codec");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, header_layout_is_big_endian);
    tcase_add_test(tc, round_trip_every_type);
    tcase_add_test(tc, hello_and_credit_round_trip);
    tcase_add_test(tc, hello_longer_payload_is_accepted);
    tcase_add_test(tc, hello_bad_fields_are_refused);
    tcase_add_test(tc, truncated_messages_are_refused);
    tcase_add_test(tc, oversized_messages_are_refused);
    tcase_add_test(tc, garbage_is_refused);
    tcase_add_test(tc, random_bytes_decode_safely);
    tcase_add_test(tc, type_names);
    suite_add_tcase(s, tc);
    return s;
}
