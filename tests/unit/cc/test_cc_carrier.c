/* Unit tests: comm-channel addresses (service names, vsock CID:PORT) and the
 * carriers: seqpacket over a socketpair and through listen/connect/accept,
 * and the vsock carrier's stream framing over a UNIX stream socketpair
 * (this machine has no vsock transport). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cc_carrier.h"
#include "cc_msg.h"
#include "cc_testutil.h"
#include "check_main.h"

static char err[512];

START_TEST(vsock_addresses_parse)
{
    uint32_t cid, port;
    ck_assert_int_eq(ptth_cc_vsock_parse("3:5000", false, &cid, &port, err, sizeof(err)), 0);
    ck_assert_uint_eq(cid, 3);
    ck_assert_uint_eq(port, 5000);
    ck_assert_int_eq(ptth_cc_vsock_parse("4294967294:4294967294", false, &cid, &port, err, sizeof(err)), 0);
    ck_assert_uint_eq(cid, 4294967294u);
    ck_assert_uint_eq(port, 4294967294u);
    ck_assert_int_eq(ptth_cc_vsock_parse("0:0", false, &cid, &port, err, sizeof(err)), 0);
    ck_assert_int_eq(ptth_cc_vsock_parse("any:1024", true, &cid, &port, err, sizeof(err)), 0);
    ck_assert_uint_eq(cid, 0xFFFFFFFFu);
    ck_assert_uint_eq(port, 1024);
}
END_TEST

START_TEST(vsock_bad_addresses_are_refused)
{
    static const char *const bad[] = {
        "",        "3",       ":5000",    "3:",       "3:x",          "x:5000",       "-1:5000",       "3:-1",          "+3:5000",
        " 3:5000", "3:5000 ", "3:5000:1", "0x3:5000", "4294967295:1", "1:4294967295", "99999999999:1", "1:99999999999", "any:5000"};
    uint32_t cid = 7, port = 7;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        ck_assert_msg(ptth_cc_vsock_parse(bad[i], false, &cid, &port, err, sizeof(err)) == -EINVAL, "'%s' accepted", bad[i]);
        ck_assert_msg(strstr(err, "vsock address") != NULL, "'%s': %s", bad[i], err);
    }
    ck_assert_uint_eq(cid, 7); /* nothing written on failure */
    ck_assert_int_eq(ptth_cc_vsock_parse("any:5000", false, &cid, &port, err, sizeof(err)), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "only for listening"));
}
END_TEST

START_TEST(channel_names_parse)
{
    ptth_cc_addr a;
    setenv("PTTH_CC_DIR", "/run/x", 1);
    ck_assert_int_eq(ptth_cc_addr_parse("svc-1.a_b", true, &a, err, sizeof(err)), 0);
    ck_assert_int_eq(a.kind, PTTH_CC_SEQPACKET);
    ck_assert_str_eq(a.path, "/run/x/svc-1.a_b");
    ck_assert_str_eq(a.text, "seqpacket:/run/x/svc-1.a_b");
    unsetenv("PTTH_CC_DIR");
    ck_assert_int_eq(ptth_cc_addr_parse("svc", false, &a, err, sizeof(err)), 0);
    ck_assert_str_eq(a.path, "/tmp/ptth-cc/svc");
    setenv("PTTH_CC_DIR", "", 1);
    ck_assert_str_eq(ptth_cc_dir(), PTTH_CC_DIR_DEFAULT);
    ck_assert_int_eq(ptth_cc_addr_parse("vsock:2:77", false, &a, err, sizeof(err)), 0);
    ck_assert_int_eq(a.kind, PTTH_CC_VSOCK);
    ck_assert_uint_eq(a.cid, 2);
    ck_assert_uint_eq(a.port, 77);
    ck_assert_str_eq(a.text, "vsock:2:77");
    ck_assert_int_eq(ptth_cc_addr_parse("vsock:any:77", true, &a, err, sizeof(err)), 0);
    ck_assert_str_eq(a.text, "vsock:any:77");

    static const char *const bad[] = {"", "a/b", "..x/../y", "with space", "vsock:", "vsock:1", "vsock:any:1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(ptth_cc_addr_parse(bad[i], false, &a, err, sizeof(err)) != 0, "'%s' accepted", bad[i]);
    char long_name[80];
    memset(long_name, 'n', 65);
    long_name[65] = '\0';
    ck_assert_int_eq(ptth_cc_addr_parse(long_name, false, &a, err, sizeof(err)), -EINVAL);

    /* a PTTH_CC_DIR that makes the path longer than sun_path */
    char dir[120];
    memset(dir, 'd', sizeof(dir) - 1);
    dir[0] = '/';
    dir[sizeof(dir) - 1] = '\0';
    setenv("PTTH_CC_DIR", dir, 1);
    ck_assert_int_eq(ptth_cc_addr_parse("svc", false, &a, err, sizeof(err)), -ENAMETOOLONG);
    ck_assert_ptr_nonnull(strstr(err, "PTTH_CC_DIR too long"));
}
END_TEST

START_TEST(addresses_from_targets)
{
    ptth_target t;
    ptth_cc_addr a;
    memset(&t, 0, sizeof(t));
    setenv("PTTH_CC_DIR", "/d", 1);
    t.kind = PTTH_TARGET_CC;
    t.cc_carrier = PTTH_CC_SEQPACKET;
    strcpy(t.cc_service, "dpu");
    ck_assert_int_eq(ptth_cc_addr_from_target(&t, &a, err, sizeof(err)), 0);
    ck_assert_str_eq(a.path, "/d/dpu");
    t.cc_carrier = PTTH_CC_VSOCK;
    t.vsock_cid = 5;
    t.vsock_port = 9000;
    ck_assert_int_eq(ptth_cc_addr_from_target(&t, &a, err, sizeof(err)), 0);
    ck_assert_str_eq(a.text, "vsock:5:9000");
    t.vsock_cid = 0xFFFFFFFFu;
    ck_assert_int_eq(ptth_cc_addr_from_target(&t, &a, err, sizeof(err)), -EINVAL);
    t.kind = PTTH_TARGET_TCP;
    ck_assert_int_eq(ptth_cc_addr_from_target(&t, &a, err, sizeof(err)), -EINVAL);
}
END_TEST

static void
pair(const ptth_cc_carrier *car, int type, ptth_cc_conn **a, ptth_cc_conn **b)
{
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    ck_assert_int_eq(car->adopt(sv[0], a), 0);
    ck_assert_int_eq(car->adopt(sv[1], b), 0);
}

static ssize_t
recv_wait(ptth_cc_conn *c, uint8_t *buf, size_t cap)
{
    for (int i = 0; i < 100; i++) {
        ssize_t n = c->carrier->recv(c, buf, cap);
        if (n != -EAGAIN)
            return n;
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        poll(&p, 1, 50);
    }
    return -EAGAIN;
}

START_TEST(seqpacket_keeps_message_boundaries)
{
    const ptth_cc_carrier *car = &ptth_cc_carrier_seqpacket;
    ptth_cc_conn *a, *b;
    pair(car, SOCK_SEQPACKET, &a, &b);
    uint8_t msg[4096], got[4096], payload[4096];
    memset(payload, 'p', sizeof(payload));
    for (int i = 1; i <= 20; i++) {
        ssize_t n = ptth_cc_msg_encode(msg, sizeof(msg), PTTH_CC_DATA, (uint32_t)i, payload, (size_t)(i * 100));
        ck_assert_int_eq(car->send(a, msg, (size_t)n), 0);
    }
    for (int i = 1; i <= 20; i++) {
        ssize_t n = car->recv(b, got, sizeof(got));
        ck_assert_int_eq(n, 8 + i * 100);
        ptth_cc_msg m;
        ck_assert_int_eq(ptth_cc_msg_decode(got, (size_t)n, sizeof(got), &m, NULL), 0);
        ck_assert_uint_eq(m.tunnel, (uint32_t)i);
    }
    ck_assert_int_eq(car->recv(b, got, sizeof(got)), -EAGAIN);
    /* a message larger than the receiver's buffer is reported, not cut */
    ssize_t n = ptth_cc_msg_encode(msg, sizeof(msg), PTTH_CC_DATA, 1, payload, 1000);
    ck_assert_int_eq(car->send(a, msg, (size_t)n), 0);
    ck_assert_int_eq(car->recv(b, got, 512), -EMSGSIZE);
    /* fill the socket: send says -EAGAIN, never takes half a message */
    int sent = 0;
    n = ptth_cc_msg_encode(msg, sizeof(msg), PTTH_CC_DATA, 1, payload, 4000);
    for (;;) {
        int r = car->send(a, msg, (size_t)n);
        if (r == -EAGAIN)
            break;
        ck_assert_int_eq(r, 0);
        ck_assert_int_lt(++sent, 100000);
    }
    ck_assert_int_gt(sent, 0);
    for (int i = 0; i < sent; i++)
        ck_assert_int_eq(car->recv(b, got, sizeof(got)), n);
    /* peer closed */
    car->close(a);
    ck_assert_int_eq(car->recv(b, got, sizeof(got)), 0);
    ck_assert_int_lt(car->send(b, msg, 20), 0);
    car->close(b);
}
END_TEST

START_TEST(stream_framing_reassembles_messages)
{
    const ptth_cc_carrier *car = &ptth_cc_carrier_vsock;
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    ptth_cc_conn *b;
    ck_assert_int_eq(car->adopt(sv[1], &b), 0);
    /* three messages written one byte at a time, then all at once */
    uint8_t stream[3 * 300], got[4096];
    size_t len = 0;
    for (uint32_t i = 1; i <= 3; i++) {
        uint8_t payload[300];
        memset(payload, (int)i, sizeof(payload));
        len += (size_t)ptth_cc_msg_encode(stream + len, sizeof(stream) - len, PTTH_CC_DATA, i, payload, 100 * i);
    }
    for (size_t i = 0; i < len; i++) {
        ck_assert_int_eq(write(sv[0], stream + i, 1), 1);
        ssize_t n = car->recv(b, got, sizeof(got));
        if (i + 1 == 108 || i + 1 == 108 + 208 || i + 1 == len) {
            ck_assert_msg(n > 0, "no message after byte %zu: %zd", i, n);
            ptth_cc_msg m;
            ck_assert_int_eq(ptth_cc_msg_decode(got, (size_t)n, sizeof(got), &m, NULL), 0);
        } else {
            ck_assert_msg(n == -EAGAIN, "byte %zu: %zd", i, n);
        }
    }
    ck_assert_int_eq(write(sv[0], stream, len), (ssize_t)len);
    ck_assert_int_eq(car->recv(b, got, sizeof(got)), 108);
    ck_assert_int_eq(car->recv(b, got, sizeof(got)), 208);
    ck_assert_int_eq(car->recv(b, got, sizeof(got)), 308);
    ck_assert_int_eq(car->recv(b, got, sizeof(got)), -EAGAIN);
    /* end of stream between messages is a clean close */
    close(sv[0]);
    ck_assert_int_eq(car->recv(b, got, sizeof(got)), 0);
    car->close(b);
}
END_TEST

START_TEST(stream_framing_refuses_bad_input)
{
    const ptth_cc_carrier *car = &ptth_cc_carrier_vsock;
    uint8_t got[4096];
    /* garbage header */
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    ptth_cc_conn *b;
    ck_assert_int_eq(car->adopt(sv[1], &b), 0);
    ck_assert_int_eq(write(sv[0], "GET / HTTP/1.1\r\n", 16), 16);
    ck_assert_int_eq(car->recv(b, got, sizeof(got)), -EPROTO);
    ck_assert_int_eq(car->recv(b, got, sizeof(got)), -EPROTO); /* stays broken */
    car->close(b);
    close(sv[0]);
    /* oversized announcement */
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    ck_assert_int_eq(car->adopt(sv[1], &b), 0);
    uint8_t hdr[8];
    ptth_cc_msg_put_header(hdr, PTTH_CC_DATA, 1, 5000);
    ck_assert_int_eq(write(sv[0], hdr, 8), 8);
    ck_assert_int_eq(car->recv(b, got, 4096), -EMSGSIZE);
    car->close(b);
    close(sv[0]);
    /* the peer closes in the middle of a message */
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    ck_assert_int_eq(car->adopt(sv[1], &b), 0);
    ptth_cc_msg_put_header(hdr, PTTH_CC_DATA, 1, 100);
    ck_assert_int_eq(write(sv[0], hdr, 8), 8);
    ck_assert_int_eq(write(sv[0], "abc", 3), 3);
    ck_assert_int_eq(car->recv(b, got, 4096), -EAGAIN);
    close(sv[0]);
    ck_assert_int_eq(car->recv(b, got, 4096), -EBADMSG);
    car->close(b);
}
END_TEST

/* With a tiny send buffer the stream carrier takes a message it can only
 * partly write, keeps the tail, and refuses the next until flushed; the
 * receiver still gets every message whole and in order. */
START_TEST(stream_framing_partial_sends)
{
    const ptth_cc_carrier *car = &ptth_cc_carrier_vsock;
    ptth_cc_conn *a, *b;
    pair(car, SOCK_STREAM, &a, &b);
    int small = 4096;
    setsockopt(a->fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    static uint8_t msg[PTTH_CC_MSG_LIMIT], got[PTTH_CC_MSG_LIMIT], payload[60000];
    uint32_t next_send = 1, next_recv = 1;
    const uint32_t total = 300;
    int pending_seen = 0;
    long long end = cct_now_ms() + 20000;
    while (next_recv <= total) {
        ck_assert_msg(cct_now_ms() < end, "stuck at send %u recv %u", next_send, next_recv);
        bool progress = false;
        while (next_send <= total) {
            if (a->send_pending) {
                pending_seen++;
                int r = car->flush(a);
                if (r == -EAGAIN)
                    break;
                ck_assert_int_eq(r, 0);
                progress = true;
            }
            size_t plen = 1 + (next_send * 7919u) % sizeof(payload);
            memset(payload, (int)(next_send & 0xff), plen);
            ssize_t n = ptth_cc_msg_encode(msg, sizeof(msg), PTTH_CC_DATA, next_send, payload, plen);
            int r = car->send(a, msg, (size_t)n);
            if (r == -EAGAIN)
                break;
            ck_assert_int_eq(r, 0);
            next_send++;
            progress = true;
        }
        if (next_send > total && a->send_pending && car->flush(a) == 0)
            progress = true;
        ssize_t n = car->recv(b, got, sizeof(got));
        if (n > 0) {
            ptth_cc_msg m;
            ck_assert_int_eq(ptth_cc_msg_decode(got, (size_t)n, sizeof(got), &m, NULL), 0);
            ck_assert_uint_eq(m.tunnel, next_recv);
            ck_assert_uint_eq(m.len, 1 + (next_recv * 7919u) % sizeof(payload));
            ck_assert_uint_eq(m.payload[0], next_recv & 0xff);
            ck_assert_uint_eq(m.payload[m.len - 1], next_recv & 0xff);
            next_recv++;
            progress = true;
        } else {
            ck_assert_int_eq(n, -EAGAIN);
        }
        if (!progress) {
            struct pollfd p[2] = {{.fd = a->fd, .events = POLLOUT}, {.fd = b->fd, .events = POLLIN}};
            poll(p, 2, 50);
        }
    }
    ck_assert_int_gt(pending_seen, 0);
    car->close(a);
    car->close(b);
}
END_TEST

START_TEST(seqpacket_listen_connect_accept)
{
    const char *dir = cct_tmpdir();
    ptth_cc_addr addr;
    ck_assert_int_eq(ptth_cc_addr_parse("svc", true, &addr, err, sizeof(err)), 0);
    const ptth_cc_carrier *car = &ptth_cc_carrier_seqpacket;
    /* no agent yet: a clear error */
    ptth_cc_conn *c = NULL;
    ck_assert_int_lt(car->connect(&addr, &c, err, sizeof(err)), 0);
    ck_assert_msg(strstr(err, "cannot connect to agent") && strstr(err, addr.path), "%s", err);
    int lfd;
    ck_assert_msg(car->listen(&addr, &lfd, err, sizeof(err)) == 0, "%s", err);
    /* the channel directory was made with mode 0700 */
    char ccdir[128];
    snprintf(ccdir, sizeof(ccdir), "%s/cc", dir);
    struct stat st;
    ck_assert_int_eq(stat(ccdir, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0700);
    /* a second listener on the same name is refused while the first lives */
    int lfd2;
    ck_assert_int_eq(car->listen(&addr, &lfd2, err, sizeof(err)), -EADDRINUSE);
    ck_assert_ptr_nonnull(strstr(err, "another agent"));
    /* that check was a connection, closed at once: it reads as end of channel */
    ck_assert_int_eq(car->accept(lfd, &c, err, sizeof(err)), 0);
    uint8_t probe[16];
    ck_assert_int_eq(recv_wait(c, probe, sizeof(probe)), 0);
    car->close(c);
    ck_assert_int_eq(car->accept(lfd, &c, err, sizeof(err)), -EAGAIN);
    ptth_cc_conn *h = NULL, *g = NULL;
    ck_assert_int_eq(car->connect(&addr, &h, err, sizeof(err)), 0);
    ck_assert(!h->connecting);
    ck_assert_int_eq(car->accept(lfd, &g, err, sizeof(err)), 0);
    uint8_t msg[64], got[64];
    ssize_t n = ptth_cc_msg_encode(msg, sizeof(msg), PTTH_CC_FIN, 9, NULL, 0);
    ck_assert_int_eq(car->send(h, msg, (size_t)n), 0);
    ck_assert_int_eq(recv_wait(g, got, sizeof(got)), n);
    car->close(h);
    car->close(g);
    /* a socket left by a dead agent is replaced */
    close(lfd);
    ck_assert_int_eq(lstat(addr.path, &st), 0);
    ck_assert_msg(car->listen(&addr, &lfd, err, sizeof(err)) == 0, "%s", err);
    car->unlisten(&addr, lfd);
    ck_assert_int_ne(lstat(addr.path, &st), 0);
    /* something that is not a socket is left alone */
    int f = open(addr.path, O_CREAT | O_WRONLY, 0600);
    ck_assert_int_ge(f, 0);
    close(f);
    ck_assert_int_eq(car->listen(&addr, &lfd, err, sizeof(err)), -EEXIST);
    ck_assert_ptr_nonnull(strstr(err, "not a socket"));
    unlink(addr.path);
    rmdir(ccdir);
    rmdir(dir);
}
END_TEST

START_TEST(vsock_without_transport_fails_clearly)
{
    ptth_cc_addr addr;
    ck_assert_int_eq(ptth_cc_addr_parse("vsock:3:5000", false, &addr, err, sizeof(err)), 0);
    ptth_cc_conn *c = NULL;
    int r = ptth_cc_carrier_vsock.connect(&addr, &c, err, sizeof(err));
    if (r == 0) {
        /* a machine with a vsock transport: the connect is under way */
        ptth_cc_carrier_vsock.close(c);
        return;
    }
    ck_assert_ptr_null(c);
    ck_assert_msg(strstr(err, "vsock") != NULL || strstr(err, "AF_VSOCK") != NULL, "%s", err);
}
END_TEST

Suite *
ptth_test_suite(void)
{
    Suite *s = suite_create("cc_carrier");
    TCase *tc = tcase_create("carrier");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, vsock_addresses_parse);
    tcase_add_test(tc, vsock_bad_addresses_are_refused);
    tcase_add_test(tc, channel_names_parse);
    tcase_add_test(tc, addresses_from_targets);
    tcase_add_test(tc, seqpacket_keeps_message_boundaries);
    tcase_add_test(tc, stream_framing_reassembles_messages);
    tcase_add_test(tc, stream_framing_refuses_bad_input);
    tcase_add_test(tc, stream_framing_partial_sends);
    tcase_add_test(tc, seqpacket_listen_connect_accept);
    tcase_add_test(tc, vsock_without_transport_fails_clearly);
    suite_add_tcase(s, tc);
    return s;
}
