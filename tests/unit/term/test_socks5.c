/* Unit tests of ptth_proxy's SOCKS5 handshake (client_proxy/socks5.h), one
 * per behaviour, and of the --socks-auth-file reader (socks_front.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check_main.h"
#include "socks5.h"
#include "socks_front.h"

static bool
auth_alice(const uint8_t *user, size_t ulen, const uint8_t *pass, size_t plen, void *data)
{
    (void)data;
    return ulen == 5 && memcmp(user, "alice", 5) == 0 && plen == 6 && memcmp(pass, "secret", 6) == 0;
}

/* Feeds msg byte by byte as a reader taking out.need bytes at a time would,
 * checking that NEED_MORE never asks past the message; returns the final
 * output. */
static ptth_socks_out
feed(ptth_socks *s, const uint8_t *msg, size_t len)
{
    ptth_socks_out out;
    size_t have = 1;
    for (;;) {
        ptth_socks_event ev = {.kind = PTTH_SOCKS_EV_BYTES, .data = msg, .len = have};
        ptth_socks_step(s, &ev, &out);
        if (out.action != PTTH_SOCKS_NEED_MORE)
            return out;
        ck_assert_uint_ge(out.need, 1);
        ck_assert_uint_le(have + out.need, len);
        have += out.need;
    }
}

#define FEED(s, ...) feed((s), (const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__}))

static const uint8_t connect_ssh_foo[] = {5, 1, 0, 3, 7, 's', 's', 'h', '.', 'f', 'o', 'o', 0, 22};

START_TEST(no_auth_connect_to_port_dot_server)
{
    ptth_socks s;
    ptth_socks_init(&s, NULL, NULL);
    ptth_socks_out out = FEED(&s, 5, 2, 0x02, 0x00);
    ck_assert_int_eq(out.action, PTTH_SOCKS_REPLY);
    ck_assert_uint_eq(out.used, 4);
    ck_assert_uint_eq(out.reply_len, 2);
    ck_assert_int_eq(out.reply[0], 5);
    ck_assert_int_eq(out.reply[1], 0x00);
    ck_assert_int_eq(s.state, PTTH_SOCKS_ST_REQUEST);
    out = feed(&s, connect_ssh_foo, sizeof(connect_ssh_foo));
    ck_assert_int_eq(out.action, PTTH_SOCKS_CONNECT);
    ck_assert_uint_eq(out.used, sizeof(connect_ssh_foo));
    ck_assert_uint_eq(out.reply_len, 0); /* no reply before the tunnel is there */
    ck_assert_str_eq(s.port, "ssh");
    ck_assert_str_eq(s.server, "foo");
    ck_assert_int_eq(s.state, PTTH_SOCKS_ST_CONNECTING);
    ptth_socks_event ev = {.kind = PTTH_SOCKS_EV_OPENED};
    ptth_socks_step(&s, &ev, &out);
    ck_assert_int_eq(out.action, PTTH_SOCKS_OPEN);
    ck_assert_uint_eq(out.reply_len, 10);
    ck_assert_int_eq(out.reply[0], 5);
    ck_assert_int_eq(out.reply[1], 0);
    ck_assert_int_eq(out.reply[3], 1);
    ck_assert_int_eq(s.state, PTTH_SOCKS_ST_OPEN);
}
END_TEST

START_TEST(destination_split_at_the_first_dot)
{
    ptth_socks s;
    ptth_socks_init(&s, NULL, NULL);
    FEED(&s, 5, 1, 0);
    ptth_socks_out out = FEED(&s, 5, 1, 0, 3, 12, 'w', 'e', 'b', '.', 'h', 'o', 's', 't', '.', 'l', 'a', 'n', 0x1f, 0x90);
    ck_assert_int_eq(out.action, PTTH_SOCKS_CONNECT);
    ck_assert_str_eq(s.port, "web");
    ck_assert_str_eq(s.server, "host.lan");
}
END_TEST

START_TEST(destination_without_dot_or_bad_name_is_host_unreachable)
{
    static const uint8_t *cases[] = {
        (const uint8_t *)"\x05\x01\x00\x03\x03"
                         "foo\x00\x16",
        (const uint8_t *)"\x05\x01\x00\x03\x04"
                         ".foo\x00\x16",
        (const uint8_t *)"\x05\x01\x00\x03\x04"
                         "ssh.\x00\x16",
        (const uint8_t *)"\x05\x01\x00\x03\x07"
                         "ss h.fo\x00\x16",
    };
    static const size_t lens[] = {10, 11, 11, 14};
    for (size_t i = 0; i < 4; i++) {
        ptth_socks s;
        ptth_socks_init(&s, NULL, NULL);
        FEED(&s, 5, 1, 0);
        ptth_socks_out out = feed(&s, cases[i], lens[i]);
        ck_assert_int_eq(out.action, PTTH_SOCKS_CLOSE);
        ck_assert_uint_eq(out.reply_len, 10);
        ck_assert_int_eq(out.reply[1], PTTH_SOCKS_REP_HOST_UNREACHABLE);
        ck_assert_int_eq(s.state, PTTH_SOCKS_ST_CLOSED);
    }
}
END_TEST

START_TEST(ipv4_and_ipv6_destinations_are_address_type_not_supported)
{
    ptth_socks s;
    ptth_socks_init(&s, NULL, NULL);
    FEED(&s, 5, 1, 0);
    ptth_socks_out out = FEED(&s, 5, 1, 0, 1, 127, 0, 0, 1, 0, 22);
    ck_assert_int_eq(out.action, PTTH_SOCKS_CLOSE);
    ck_assert_uint_eq(out.used, 10); /* read whole before the answer */
    ck_assert_int_eq(out.reply[1], PTTH_SOCKS_REP_ATYP_UNSUPPORTED);

    ptth_socks_init(&s, NULL, NULL);
    FEED(&s, 5, 1, 0);
    out = FEED(&s, 5, 1, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 22);
    ck_assert_int_eq(out.action, PTTH_SOCKS_CLOSE);
    ck_assert_uint_eq(out.used, 22);
    ck_assert_int_eq(out.reply[1], PTTH_SOCKS_REP_ATYP_UNSUPPORTED);

    ptth_socks_init(&s, NULL, NULL);
    FEED(&s, 5, 1, 0);
    out = FEED(&s, 5, 1, 0, 9, 0);
    ck_assert_int_eq(out.action, PTTH_SOCKS_CLOSE);
    ck_assert_int_eq(out.reply[1], PTTH_SOCKS_REP_ATYP_UNSUPPORTED);
}
END_TEST

START_TEST(bind_and_udp_associate_are_command_not_supported)
{
    for (uint8_t cmd = 2; cmd <= 4; cmd++) {
        ptth_socks s;
        ptth_socks_init(&s, NULL, NULL);
        FEED(&s, 5, 1, 0);
        uint8_t req[sizeof(connect_ssh_foo)];
        memcpy(req, connect_ssh_foo, sizeof(req));
        req[1] = cmd;
        ptth_socks_out out = feed(&s, req, sizeof(req));
        ck_assert_int_eq(out.action, PTTH_SOCKS_CLOSE);
        ck_assert_int_eq(out.reply[1], PTTH_SOCKS_REP_CMD_UNSUPPORTED);
    }
}
END_TEST

START_TEST(no_acceptable_method_is_0xff)
{
    ptth_socks s;
    ptth_socks_init(&s, NULL, NULL);
    ptth_socks_out out = FEED(&s, 5, 1, 0x02); /* only username/password offered, none wanted */
    ck_assert_int_eq(out.action, PTTH_SOCKS_CLOSE);
    ck_assert_uint_eq(out.reply_len, 2);
    ck_assert_int_eq(out.reply[1], 0xFF);

    ptth_socks_init(&s, auth_alice, NULL);
    out = FEED(&s, 5, 1, 0x00); /* only no-auth offered, a password wanted */
    ck_assert_int_eq(out.action, PTTH_SOCKS_CLOSE);
    ck_assert_int_eq(out.reply[1], 0xFF);
}
END_TEST

START_TEST(username_password_right_and_wrong)
{
    ptth_socks s;
    ptth_socks_init(&s, auth_alice, NULL);
    ptth_socks_out out = FEED(&s, 5, 2, 0x00, 0x02);
    ck_assert_int_eq(out.action, PTTH_SOCKS_REPLY);
    ck_assert_int_eq(out.reply[1], 0x02);
    ck_assert_int_eq(s.state, PTTH_SOCKS_ST_AUTH);
    out = FEED(&s, 1, 5, 'a', 'l', 'i', 'c', 'e', 6, 's', 'e', 'c', 'r', 'e', 't');
    ck_assert_int_eq(out.action, PTTH_SOCKS_REPLY);
    ck_assert_uint_eq(out.reply_len, 2);
    ck_assert_int_eq(out.reply[0], 1);
    ck_assert_int_eq(out.reply[1], 0);
    ck_assert_int_eq(s.state, PTTH_SOCKS_ST_REQUEST);
    out = feed(&s, connect_ssh_foo, sizeof(connect_ssh_foo));
    ck_assert_int_eq(out.action, PTTH_SOCKS_CONNECT);

    ptth_socks_init(&s, auth_alice, NULL);
    FEED(&s, 5, 1, 0x02);
    out = FEED(&s, 1, 5, 'a', 'l', 'i', 'c', 'e', 6, 's', 'e', 'c', 'r', 'e', 'T');
    ck_assert_int_eq(out.action, PTTH_SOCKS_CLOSE);
    ck_assert_int_eq(out.reply[0], 1);
    ck_assert_int_ne(out.reply[1], 0);
    ck_assert_ptr_eq(strstr(s.error, "secre"), NULL);

    ptth_socks_init(&s, auth_alice, NULL); /* empty username */
    FEED(&s, 5, 1, 0x02);
    out = FEED(&s, 1, 0, 1, 'x');
    ck_assert_int_eq(out.action, PTTH_SOCKS_CLOSE);
}
END_TEST

START_TEST(wrong_versions_close)
{
    ptth_socks s;
    ptth_socks_init(&s, NULL, NULL);
    ptth_socks_out out = FEED(&s, 4, 1, 0, 22, 127, 0, 0, 1, 0); /* SOCKS4 */
    ck_assert_int_eq(out.action, PTTH_SOCKS_CLOSE);
    ck_assert_uint_eq(out.reply_len, 0);
    ptth_socks_init(&s, NULL, NULL);
    out = FEED(&s, 5, 0);
    ck_assert_int_eq(out.action, PTTH_SOCKS_CLOSE);
    ptth_socks_init(&s, NULL, NULL);
    FEED(&s, 5, 1, 0);
    uint8_t req[sizeof(connect_ssh_foo)];
    memcpy(req, connect_ssh_foo, sizeof(req));
    req[0] = 4;
    out = feed(&s, req, sizeof(req));
    ck_assert_int_eq(out.action, PTTH_SOCKS_CLOSE);
    ck_assert_int_eq(out.reply[1], PTTH_SOCKS_REP_FAILURE);
    ptth_socks_init(&s, auth_alice, NULL);
    FEED(&s, 5, 1, 2);
    out = FEED(&s, 5, 1, 'a', 1, 'b');
    ck_assert_int_eq(out.action, PTTH_SOCKS_CLOSE);
}
END_TEST

START_TEST(messages_are_bounded)
{
    /* the longest greeting, auth and request each need no more than their bound */
    uint8_t big[600];
    memset(big, 'a', sizeof(big));
    ptth_socks s;
    ptth_socks_init(&s, auth_alice, NULL);
    big[0] = 5;
    big[1] = 255;
    big[2] = 2;
    ptth_socks_out out = feed(&s, big, 257);
    ck_assert_int_eq(out.action, PTTH_SOCKS_REPLY);
    ck_assert_uint_eq(out.used, 257);
    big[0] = 1;
    big[1] = 255;
    big[257] = 255;
    out = feed(&s, big, 513);
    ck_assert_int_eq(out.action, PTTH_SOCKS_CLOSE); /* wrong password, but read whole */
    ck_assert_uint_eq(out.used, 513);
    ck_assert_uint_le(513, PTTH_SOCKS_MSG_MAX);
    /* a 255-byte domain name that is not PORT.SERVER */
    ptth_socks_init(&s, NULL, NULL);
    FEED(&s, 5, 1, 0);
    big[0] = 5;
    big[1] = 1;
    big[2] = 0;
    big[3] = 3;
    big[4] = 255;
    out = feed(&s, big, 262);
    ck_assert_int_eq(out.action, PTTH_SOCKS_CLOSE);
    ck_assert_uint_eq(out.used, 262);
}
END_TEST

START_TEST(events_out_of_turn_close)
{
    ptth_socks s;
    ptth_socks_init(&s, NULL, NULL);
    ptth_socks_event ev = {.kind = PTTH_SOCKS_EV_OPENED};
    ptth_socks_out out;
    ptth_socks_step(&s, &ev, &out);
    ck_assert_int_eq(out.action, PTTH_SOCKS_CLOSE);
    ptth_socks_init(&s, NULL, NULL);
    FEED(&s, 5, 1, 0);
    feed(&s, connect_ssh_foo, sizeof(connect_ssh_foo));
    ptth_socks_event bytes = {.kind = PTTH_SOCKS_EV_BYTES, .data = (const uint8_t *)"x", .len = 1};
    ptth_socks_step(&s, &bytes, &out);
    ck_assert_int_eq(out.action, PTTH_SOCKS_CLOSE);
}
END_TEST

START_TEST(refusals_map_to_reply_codes)
{
    static const long status[] = {403, 404, 503, 502, 401, 429, 504, 0};
    static const uint8_t rep[] = {2, 4, 4, 5, 1, 1, 1, 1};
    for (size_t i = 0; i < sizeof(status) / sizeof(status[0]); i++) {
        ck_assert_int_eq(ptth_socks_reply_for_status(status[i]), rep[i]);
        ptth_socks s;
        ptth_socks_init(&s, NULL, NULL);
        FEED(&s, 5, 1, 0);
        feed(&s, connect_ssh_foo, sizeof(connect_ssh_foo));
        ptth_socks_event ev = {.kind = PTTH_SOCKS_EV_REFUSED, .status = status[i]};
        ptth_socks_out out;
        ptth_socks_step(&s, &ev, &out);
        ck_assert_int_eq(out.action, PTTH_SOCKS_CLOSE);
        ck_assert_uint_eq(out.reply_len, 10);
        ck_assert_int_eq(out.reply[1], rep[i]);
    }
}
END_TEST

static char *
write_file(const char *text, mode_t mode)
{
    static char path[64];
    snprintf(path, sizeof(path), "/tmp/ptth-socks-users-XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    chmod(path, mode);
    return path;
}

START_TEST(auth_file_is_read_and_checked)
{
    char *path = write_file("# users\nalice:secret\r\n\nbob:pa:ss\n", 0600);
    ptth_socks_users u;
    char err[256];
    ck_assert_int_eq(ptth_socks_users_load(path, &u, err, sizeof(err)), 0);
    ck_assert_uint_eq(u.count, 2);
    ck_assert(ptth_socks_users_check(&u, (const uint8_t *)"alice", 5, (const uint8_t *)"secret", 6));
    ck_assert(ptth_socks_users_check(&u, (const uint8_t *)"bob", 3, (const uint8_t *)"pa:ss", 5));
    ck_assert(!ptth_socks_users_check(&u, (const uint8_t *)"alice", 5, (const uint8_t *)"secre", 5));
    ck_assert(!ptth_socks_users_check(&u, (const uint8_t *)"bob", 3, (const uint8_t *)"secret", 6));
    ptth_socks_users_free(&u);
    unlink(path);

    path = write_file("alice:secret\n", 0644);
    ck_assert_int_ne(ptth_socks_users_load(path, &u, err, sizeof(err)), 0);
    ck_assert_ptr_ne(strstr(err, "readable by group or others"), NULL);
    unlink(path);

    path = write_file("alice-without-password\n", 0600);
    ck_assert_int_eq(ptth_socks_users_load(path, &u, err, sizeof(err)), -EINVAL);
    ck_assert_ptr_ne(strstr(err, "line 1"), NULL);
    ck_assert_ptr_eq(strstr(err, "alice"), NULL); /* the line's text is never shown */
    unlink(path);

    path = write_file("# nobody\n", 0600);
    ck_assert_int_eq(ptth_socks_users_load(path, &u, err, sizeof(err)), -EINVAL);
    unlink(path);
}
END_TEST

Suite *
ptth_test_suite(void)
{
    Suite *s = suite_create("socks5");
    TCase *tc = tcase_create("socks5");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, no_auth_connect_to_port_dot_server);
    tcase_add_test(tc, destination_split_at_the_first_dot);
    tcase_add_test(tc, destination_without_dot_or_bad_name_is_host_unreachable);
    tcase_add_test(tc, ipv4_and_ipv6_destinations_are_address_type_not_supported);
    tcase_add_test(tc, bind_and_udp_associate_are_command_not_supported);
    tcase_add_test(tc, no_acceptable_method_is_0xff);
    tcase_add_test(tc, username_password_right_and_wrong);
    tcase_add_test(tc, wrong_versions_close);
    tcase_add_test(tc, messages_are_bounded);
    tcase_add_test(tc, events_out_of_turn_close);
    tcase_add_test(tc, refusals_map_to_reply_codes);
    tcase_add_test(tc, auth_file_is_read_and_checked);
    suite_add_tcase(s, tc);
    return s;
}
