/* Unit tests of the terminators' small pieces that need no relay: local ends
 * over descriptors (common/bridge), connection ids, header values and the
 * relay client's checks (common/relay_client), --forward parsing
 * (client_proxy/proxy). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bridge.h"
#include "check_main.h"
#include "proxy.h"
#include "relay_client.h"

#define KEY "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

START_TEST(socket_local_end)
{
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    ptth_local_end e;
    ck_assert_int_eq(ptth_local_end_fds(&e, sv[0], sv[0]), 0);
    ck_assert_int_eq(e.read_fd, sv[0]);
    ck_assert_int_eq(e.write_fd, sv[0]);
    char buf[16];
    ck_assert_int_eq(e.ops->read(e.ctx, buf, sizeof(buf)), -EAGAIN);
    ck_assert_int_eq(e.ops->write(e.ctx, "hello", 5), 5);
    ck_assert_int_eq(read(sv[1], buf, sizeof(buf)), 5);
    ck_assert_int_eq(write(sv[1], "back", 4), 4);
    ck_assert_int_eq(e.ops->read(e.ctx, buf, sizeof(buf)), 4);
    /* half-close: the peer sees end of stream, and can still send */
    ck_assert_int_eq(e.ops->shutdown_write(e.ctx), 0);
    ck_assert_int_eq(read(sv[1], buf, sizeof(buf)), 0);
    ck_assert_int_eq(write(sv[1], "more", 4), 4);
    ck_assert_int_eq(e.ops->read(e.ctx, buf, sizeof(buf)), 4);
    close(sv[1]);
    ck_assert_int_eq(e.ops->read(e.ctx, buf, sizeof(buf)), 0);
    e.ops->close(e.ctx); /* closes sv[0] */
    ck_assert_int_eq(fcntl(sv[0], F_GETFD), -1);
}
END_TEST

START_TEST(pipe_pair_local_end)
{
    int in[2], out[2];
    ck_assert_int_eq(pipe2(in, O_NONBLOCK), 0);
    ck_assert_int_eq(pipe2(out, O_NONBLOCK), 0);
    ptth_local_end e;
    ck_assert_int_eq(ptth_local_end_fds(&e, in[0], out[1]), 0);
    char buf[8];
    ck_assert_int_eq(e.ops->write(e.ctx, "abc", 3), 3);
    ck_assert_int_eq(read(out[0], buf, sizeof(buf)), 3);
    /* shutdown_write closes the write side: the reader sees end of stream */
    ck_assert_int_eq(e.ops->shutdown_write(e.ctx), 0);
    ck_assert_int_eq(read(out[0], buf, sizeof(buf)), 0);
    ck_assert_int_eq(e.ops->write(e.ctx, "x", 1), -EPIPE);
    /* full pipe: -EAGAIN, not an error */
    int fill[2];
    ck_assert_int_eq(pipe2(fill, O_NONBLOCK), 0);
    ptth_local_end f;
    ck_assert_int_eq(ptth_local_end_fds(&f, fill[0], fill[1]), 0);
    static char big[1 << 16];
    ssize_t n;
    while ((n = f.ops->write(f.ctx, big, sizeof(big))) > 0)
        ;
    ck_assert_int_eq(n, -EAGAIN);
    f.ops->close(f.ctx);
    e.ops->close(e.ctx);
    close(in[1]);
    close(out[0]);
}
END_TEST

START_TEST(conn_ids)
{
    ck_assert(ptth_conn_id_valid("z8dbUr9YsF79AmP-3fXiBg"));
    ck_assert(ptth_conn_id_valid("a"));
    ck_assert(!ptth_conn_id_valid(""));
    ck_assert(!ptth_conn_id_valid("a/b"));
    ck_assert(!ptth_conn_id_valid("a b"));
    ck_assert(!ptth_conn_id_valid("../x"));
    ck_assert(!ptth_conn_id_valid("a%2f"));
    char longid[70];
    memset(longid, 'a', 65);
    longid[65] = '\0';
    ck_assert(!ptth_conn_id_valid(longid));
    longid[64] = '\0';
    ck_assert(ptth_conn_id_valid(longid));
}
END_TEST

START_TEST(header_values_are_printable)
{
    char out[16];
    ptth_req_header_value(out, sizeof(out), "ok value");
    ck_assert_str_eq(out, "ok value");
    ptth_req_header_value(out, sizeof(out), "a\r\nInjected: 1");
    ck_assert_str_eq(out, "a??Injected: 1");
    ptth_req_header_value(out, sizeof(out), "\xc3\xa9t\xc3\xa9 and much longer than sixteen");
    ck_assert_int_eq(strlen(out), 15);
    ck_assert(strchr(out, '\xc3') == NULL);
}
END_TEST

START_TEST(relay_client_checks_its_config)
{
    ptth_loop *loop = ptth_loop_new();
    ptth_relay_client *c = NULL;
    char err[256];
    ptth_relay_client_config cfg = {.url = "ftp://x", .key = KEY};
    ck_assert_int_eq(ptth_relay_client_new(loop, &cfg, &c, err, sizeof(err)), -EINVAL);
    ck_assert_ptr_null(c);
    ck_assert(strstr(err, "ftp://x") != NULL);
    cfg.url = "http://relay:4000/a b";
    ck_assert_int_eq(ptth_relay_client_new(loop, &cfg, &c, err, sizeof(err)), -EINVAL);
    cfg.url = "http://relay:4000/prefix/";
    cfg.key = "short";
    ck_assert_int_eq(ptth_relay_client_new(loop, &cfg, &c, err, sizeof(err)), -EINVAL);
    cfg.key = KEY;
    ck_assert_int_eq(ptth_relay_client_new(loop, &cfg, &c, err, sizeof(err)), 0);
    ck_assert_str_eq(ptth_relay_client_url(c), "http://relay:4000/prefix");
    ptth_relay_client_free(c);
    ptth_loop_free(loop);
}
END_TEST

START_TEST(forward_specs)
{
    ptth_forward_spec f;
    char err[256];
    ck_assert_int_eq(ptth_forward_parse("2222=foo/ssh", &f, err, sizeof(err)), 0);
    ck_assert_str_eq(f.bind_host, "127.0.0.1");
    ck_assert_int_eq(f.bind_port, 2222);
    ck_assert_str_eq(f.server, "foo");
    ck_assert_str_eq(f.port, "ssh");
    ck_assert_int_eq(ptth_forward_parse("0.0.0.0:0=db-1/pg.main", &f, err, sizeof(err)), 0);
    ck_assert_str_eq(f.bind_host, "0.0.0.0");
    ck_assert_int_eq(f.bind_port, 0);
    ck_assert_str_eq(f.port, "pg.main");
    ck_assert_int_eq(ptth_forward_parse("[::1]:5432=db/pg", &f, err, sizeof(err)), 0);
    ck_assert_str_eq(f.bind_host, "::1");
    ck_assert_int_eq(f.bind_port, 5432);
    ck_assert(!f.udp);
    ck_assert_int_eq(ptth_forward_parse("udp:5353=foo/dns", &f, err, sizeof(err)), 0);
    ck_assert(f.udp);
    ck_assert_str_eq(f.bind_host, "127.0.0.1");
    ck_assert_int_eq(f.bind_port, 5353);
    ck_assert_str_eq(f.server, "foo");
    ck_assert_str_eq(f.port, "dns");
    ck_assert_int_eq(ptth_forward_parse("udp:[::1]:0=foo/syslog", &f, err, sizeof(err)), 0);
    ck_assert(f.udp);
    ck_assert_str_eq(f.bind_host, "::1");
    ck_assert_int_eq(f.bind_port, 0);
    err[0] = '\0';
    ck_assert_int_eq(ptth_forward_parse("udp:5353=foo", &f, err, sizeof(err)), -EINVAL);
    ck_assert_msg(strstr(err, "bad forward 'udp:5353=foo'") != NULL, "%s", err); /* the text as given */
    ck_assert_int_eq(ptth_forward_parse("udp:", &f, err, sizeof(err)), -EINVAL);
    ck_assert_int_eq(ptth_forward_parse("udp:x=foo/dns", &f, err, sizeof(err)), -EINVAL);
    const char *bad[] = {"2222", "=foo/ssh", "2222=foo", "2222=/ssh", "2222=foo/", "x=foo/ssh", "70000=foo/ssh",
                         "-1=foo/ssh", "::1:22=foo/ssh", "2222=fo o/ssh", "2222=foo/s/h", "1.2.3.4:=foo/ssh"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        ck_assert_msg(ptth_forward_parse(bad[i], &f, err, sizeof(err)) == -EINVAL, "accepted '%s'", bad[i]);
        ck_assert_msg(strstr(err, "bad forward") != NULL, "no reason for '%s': %s", bad[i], err);
    }
}
END_TEST

Suite *
ptth_test_suite(void)
{
    Suite *s = suite_create("term");
    TCase *tc = tcase_create("term");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, socket_local_end);
    tcase_add_test(tc, pipe_pair_local_end);
    tcase_add_test(tc, conn_ids);
    tcase_add_test(tc, header_values_are_printable);
    tcase_add_test(tc, relay_client_checks_its_config);
    tcase_add_test(tc, forward_specs);
    suite_add_tcase(s, tc);
    return s;
}
