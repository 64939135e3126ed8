/* Unit tests: the TCP and UNIX transports against local listeners: open
 * (numeric, IPv6, host name), read, write, half-close both ways, refused
 * connections with their messages, and the PROXY v2 header. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "check_main.h"
#include "proxyproto.h"
#include "target.h"
#include "transport.h"

static char err[512];

/* Opens text and drives finish_open() with poll() until it is done. Returns
 * the stream, or NULL with err set and *rc the error. */
static ptth_stream *
open_sync(const char *text, const ptth_open_info *info, int *rc)
{
    ptth_target t;
    *rc = ptth_target_parse(text, &t, err, sizeof(err));
    ck_assert_msg(*rc == 0, "parse %s: %s", text, err);
    ptth_stream *s = NULL;
    *rc = ptth_transport_open(&t, info, &s, err, sizeof(err));
    if (*rc != 0) {
        ck_assert_ptr_null(s);
        return NULL;
    }
    ck_assert_ptr_nonnull(s);
    for (int i = 0; i < 100; i++) {
        ck_assert_int_ge(s->fd, 0);
        struct pollfd p = {.fd = s->fd,
                           .events = (short)((s->open_events & EPOLLIN ? POLLIN : 0) | (s->open_events & EPOLLOUT ? POLLOUT : 0))};
        ck_assert_int_ne(p.events, 0);
        ck_assert_int_ge(poll(&p, 1, 5000), 1);
        *rc = ptth_stream_finish_open(s, err, sizeof(err));
        if (*rc != -EINPROGRESS)
            break;
    }
    if (*rc != 0) {
        ptth_stream_close(s);
        return NULL;
    }
    return s;
}

static int
tcp_listener(int family, int *port)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    socklen_t len;
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof(*a);
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        len = sizeof(*a);
    }
    if (bind(fd, (struct sockaddr *)&ss, len) != 0) {
        close(fd);
        return -1;
    }
    ck_assert_int_eq(listen(fd, 16), 0);
    len = sizeof(ss);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    *port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port : ((struct sockaddr_in6 *)&ss)->sin6_port);
    return fd;
}

/* A port on 127.0.0.1 with nothing listening (bound, never listened). */
static int
closed_port(int *holder)
{
    int port;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t len = sizeof(a);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    port = ntohs(a.sin_port);
    *holder = fd;
    return port;
}

static void
wait_fd(int fd, short events)
{
    struct pollfd p = {.fd = fd, .events = events};
    ck_assert_int_eq(poll(&p, 1, 5000), 1);
}

/* Writes all of buf through the stream (waiting for EPOLLOUT when full). */
static void
stream_write_all(ptth_stream *s, const void *buf, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t n = ptth_stream_write(s, (const char *)buf + off, len - off);
        if (n == -EAGAIN) {
            wait_fd(s->fd, POLLOUT);
            continue;
        }
        ck_assert_int_gt(n, 0);
        off += (size_t)n;
    }
}

/* Reads what is there (waiting for EPOLLIN while nothing is): the read's
 * result. */
static ssize_t
stream_read_wait(ptth_stream *s, void *buf, size_t len)
{
    for (;;) {
        ssize_t n = ptth_stream_read(s, buf, len);
        if (n != -EAGAIN)
            return n;
        wait_fd(s->fd, POLLIN);
    }
}

/* Reads exactly len bytes from the stream. */
static void
stream_read_exact(ptth_stream *s, void *buf, size_t len)
{
    for (size_t off = 0; off < len;) {
        ssize_t n = stream_read_wait(s, (char *)buf + off, len - off);
        ck_assert_int_gt(n, 0);
        off += (size_t)n;
    }
}

/* Opens a stream to the target PREFIX followed by port (the port of the
 * listener lfd) through open_sync, and accepts its other end into *peer. */
static ptth_stream *
open_accepted(const char *prefix, int lfd, int port, const ptth_open_info *info, int *peer)
{
    char text[64];
    snprintf(text, sizeof(text), "%s%d", prefix, port);
    int rc;
    ptth_stream *s = open_sync(text, info, &rc);
    ck_assert_msg(s != NULL, "open %s: %d %s", text, rc, err);
    *peer = accept(lfd, NULL, NULL);
    ck_assert_int_ge(*peer, 0);
    return s;
}

START_TEST(tcp_ipv4_round_trip)
{
    int port;
    int lfd = tcp_listener(AF_INET, &port);
    int peer;
    ptth_stream *s = open_accepted("127.0.0.1:", lfd, port, NULL, &peer);
    ck_assert_str_eq(s->transport->name, "tcp");

    char buf[64];
    ck_assert_int_eq(ptth_stream_read(s, buf, sizeof(buf)), -EAGAIN);
    stream_write_all(s, "ping", 4);
    ck_assert_int_eq(recv(peer, buf, 4, MSG_WAITALL), 4);
    ck_assert_int_eq(memcmp(buf, "ping", 4), 0);
    ck_assert_int_eq(send(peer, "pong!", 5, 0), 5);
    stream_read_exact(s, buf, 5);
    ck_assert_int_eq(memcmp(buf, "pong!", 5), 0);

    /* our half-close: the peer sees EOF and can still answer */
    ck_assert_int_eq(ptth_stream_shutdown_write(s), 0);
    ck_assert_int_eq(recv(peer, buf, sizeof(buf), 0), 0);
    ck_assert_int_eq(send(peer, "late", 4, 0), 4);
    stream_read_exact(s, buf, 4);
    ck_assert_int_eq(memcmp(buf, "late", 4), 0);
    /* the peer's half-close: read returns 0 */
    ck_assert_int_eq(shutdown(peer, SHUT_WR), 0);
    ck_assert_int_eq(stream_read_wait(s, buf, sizeof(buf)), 0);
    ptth_stream_close(s);
    close(peer);
    close(lfd);
}
END_TEST

START_TEST(tcp_port_only_is_loopback)
{
    int port;
    int lfd = tcp_listener(AF_INET, &port);
    int peer;
    ptth_stream *s = open_accepted("", lfd, port, NULL, &peer);
    ck_assert_int_eq(send(peer, "x", 1, 0), 1);
    char c;
    stream_read_exact(s, &c, 1);
    ck_assert_int_eq(c, 'x');
    ptth_stream_close(s);
    close(peer);
    close(lfd);
}
END_TEST

START_TEST(tcp_ipv6)
{
    int port;
    int lfd = tcp_listener(AF_INET6, &port);
    if (lfd < 0) {
        fprintf(stderr, "# no IPv6 loopback on this machine: skipped\n");
        return;
    }
    int peer;
    ptth_stream *s = open_accepted("[::1]:", lfd, port, NULL, &peer);
    stream_write_all(s, "six", 3);
    char buf[3];
    ck_assert_int_eq(recv(peer, buf, 3, MSG_WAITALL), 3);
    ck_assert_int_eq(memcmp(buf, "six", 3), 0);
    ptth_stream_close(s);
    close(peer);
    close(lfd);
}
END_TEST

START_TEST(tcp_host_name)
{
    int port;
    int lfd = tcp_listener(AF_INET, &port);
    char text[64];
    snprintf(text, sizeof(text), "localhost:%d", port);
    ptth_target t;
    ck_assert_int_eq(ptth_target_parse(text, &t, err, sizeof(err)), 0);
    ptth_stream *s = NULL;
    ck_assert_int_eq(ptth_transport_open(&t, NULL, &s, err, sizeof(err)), 0);
    /* a host name is resolved off the caller's thread: first wait is for EPOLLIN */
    ck_assert_uint_eq(s->open_events, EPOLLIN);
    ptth_stream_close(s);

    /* localhost may resolve to ::1 first, where nothing listens: the next
     * address (127.0.0.1) is tried */
    int peer;
    s = open_accepted("localhost:", lfd, port, NULL, &peer);
    stream_write_all(s, "name", 4);
    char buf[4];
    ck_assert_int_eq(recv(peer, buf, 4, MSG_WAITALL), 4);
    ptth_stream_close(s);
    close(peer);
    close(lfd);
}
END_TEST

START_TEST(tcp_unknown_host)
{
    int rc;
    ptth_stream *s = open_sync("no-such-host.invalid:22", NULL, &rc);
    ck_assert_ptr_null(s);
    ck_assert_int_lt(rc, 0);
    ck_assert_msg(strstr(err, "resolve 'no-such-host.invalid'") != NULL, "%s", err);
}
END_TEST

START_TEST(tcp_refused_message)
{
    int holder;
    int port = closed_port(&holder);
    char text[64], want[128];
    snprintf(text, sizeof(text), "127.0.0.1:%d", port);
    int rc;
    ptth_stream *s = open_sync(text, NULL, &rc);
    ck_assert_ptr_null(s);
    ck_assert_int_eq(rc, -ECONNREFUSED);
    snprintf(want, sizeof(want), "connect to 127.0.0.1:%d: Connection refused", port);
    ck_assert_str_eq(err, want);
    close(holder);
}
END_TEST

START_TEST(tcp_peer_reset_is_error)
{
    int port;
    int lfd = tcp_listener(AF_INET, &port);
    int peer;
    ptth_stream *s = open_accepted("127.0.0.1:", lfd, port, NULL, &peer);
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    ck_assert_int_eq(setsockopt(peer, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
    close(peer);
    char buf[16];
    ck_assert_int_eq(stream_read_wait(s, buf, sizeof(buf)), -ECONNRESET);
    ptth_stream_close(s);
    close(lfd);
}
END_TEST

START_TEST(tcp_write_full_gives_eagain)
{
    int port;
    int lfd = tcp_listener(AF_INET, &port);
    int peer;
    ptth_stream *s = open_accepted("127.0.0.1:", lfd, port, NULL, &peer);
    static char block[65536];
    size_t total = 0;
    ssize_t n;
    while ((n = ptth_stream_write(s, block, sizeof(block))) > 0)
        total += (size_t)n;
    ck_assert_int_eq(n, -EAGAIN);
    ck_assert_uint_gt(total, 0);
    ptth_stream_close(s);
    close(peer);
    close(lfd);
}
END_TEST

/* Reads the PROXY v2 header the TCP transport sends first. */
START_TEST(tcp_proxy_protocol_header)
{
    int port;
    int lfd = tcp_listener(AF_INET, &port);
    ptth_open_info info = {.client_addr = "203.0.113.7:40001", .proxy_protocol = 1};
    int peer;
    ptth_stream *s = open_accepted("127.0.0.1:", lfd, port, &info, &peer);
    unsigned char h[28];
    ck_assert_int_eq(recv(peer, h, sizeof(h), MSG_WAITALL), 28);
    static const unsigned char sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
    ck_assert_int_eq(memcmp(h, sig, 12), 0);
    ck_assert_uint_eq(h[12], 0x21);
    ck_assert_uint_eq(h[13], 0x11);
    ck_assert_uint_eq(h[14], 0);
    ck_assert_uint_eq(h[15], 12);
    ck_assert_uint_eq(h[16], 203);
    ck_assert_uint_eq(h[17], 0);
    ck_assert_uint_eq(h[18], 113);
    ck_assert_uint_eq(h[19], 7);
    ck_assert_uint_eq(h[20], 127);
    ck_assert_uint_eq(h[23], 1);
    ck_assert_uint_eq((h[24] << 8) | h[25], 40001);
    ck_assert_uint_eq((h[26] << 8) | h[27], (unsigned)port);
    /* then the stream's own bytes */
    stream_write_all(s, "data", 4);
    char buf[4];
    ck_assert_int_eq(recv(peer, buf, 4, MSG_WAITALL), 4);
    ck_assert_int_eq(memcmp(buf, "data", 4), 0);
    ptth_stream_close(s);
    close(peer);

    /* unknown client address: the LOCAL command, no address block */
    ptth_open_info anon = {.client_addr = NULL, .proxy_protocol = 1};
    s = open_accepted("127.0.0.1:", lfd, port, &anon, &peer);
    ck_assert_int_eq(recv(peer, h, 16, MSG_WAITALL), 16);
    ck_assert_uint_eq(h[12], 0x20);
    ck_assert_uint_eq(h[13], 0x00);
    ck_assert_uint_eq(h[15], 0);
    ptth_stream_close(s);
    close(peer);
    close(lfd);
}
END_TEST

START_TEST(proxy_v2_mixed_families)
{
    struct sockaddr_storage src, dst;
    ck_assert_int_eq(ptth_proxy_parse_addr("[2001:db8::5]:1234", &src), 0);
    ck_assert_int_eq(ptth_proxy_parse_addr("10.0.0.1:22", &dst), 0);
    unsigned char h[PTTH_PROXY_V2_MAX];
    ck_assert_int_eq(ptth_proxy_v2_build((struct sockaddr *)&src, (struct sockaddr *)&dst, h, sizeof(h)), 52);
    ck_assert_uint_eq(h[13], 0x21);
    ck_assert_uint_eq(h[15], 36);
    ck_assert_uint_eq(h[16], 0x20);
    ck_assert_uint_eq(h[17], 0x01);
    static const unsigned char mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1};
    ck_assert_int_eq(memcmp(h + 32, mapped, 16), 0);
    ck_assert_uint_eq((h[48] << 8) | h[49], 1234);
    ck_assert_uint_eq((h[50] << 8) | h[51], 22);
    ck_assert_int_eq(ptth_proxy_v2_build((struct sockaddr *)&src, (struct sockaddr *)&dst, h, 51), -ENOSPC);
    ck_assert_int_eq(ptth_proxy_parse_addr("nonsense", &src), -EINVAL);
    ck_assert_int_eq(ptth_proxy_parse_addr("1.2.3.4:99999", &src), -EINVAL);
    ck_assert_int_eq(ptth_proxy_parse_addr("host:22", &src), -EINVAL);
    ck_assert_int_eq(ptth_proxy_parse_addr(":22", &src), -EINVAL);
}
END_TEST

static int
unix_listener(char *path, size_t pathlen)
{
    snprintf(path, pathlen, "/tmp/ptth-unix-test-%d.sock", (int)getpid());
    unlink(path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    ck_assert_int_eq(listen(fd, 16), 0);
    return fd;
}

START_TEST(unix_round_trip)
{
    char path[108], text[128];
    int lfd = unix_listener(path, sizeof(path));
    snprintf(text, sizeof(text), "unix:%s", path);
    int rc;
    ptth_stream *s = open_sync(text, NULL, &rc);
    ck_assert_msg(s != NULL, "%s", err);
    ck_assert_str_eq(s->transport->name, "unix");
    int peer = accept(lfd, NULL, NULL);
    ck_assert_int_ge(peer, 0);
    char buf[16];
    ck_assert_int_eq(ptth_stream_read(s, buf, sizeof(buf)), -EAGAIN);
    stream_write_all(s, "abc", 3);
    ck_assert_int_eq(recv(peer, buf, 3, MSG_WAITALL), 3);
    ck_assert_int_eq(memcmp(buf, "abc", 3), 0);
    ck_assert_int_eq(ptth_stream_shutdown_write(s), 0);
    ck_assert_int_eq(recv(peer, buf, sizeof(buf), 0), 0);
    ck_assert_int_eq(send(peer, "reply", 5, 0), 5);
    ck_assert_int_eq(shutdown(peer, SHUT_WR), 0);
    stream_read_exact(s, buf, 5);
    ck_assert_int_eq(memcmp(buf, "reply", 5), 0);
    ck_assert_int_eq(stream_read_wait(s, buf, sizeof(buf)), 0);
    ptth_stream_close(s);
    close(peer);
    close(lfd);
    unlink(path);
}
END_TEST

START_TEST(unix_abstract)
{
    char name[64];
    snprintf(name, sizeof(name), "ptth-abstract-test-%d", (int)getpid());
    int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    memcpy(sun.sun_path + 1, name, strlen(name));
    ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sun, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name))), 0);
    ck_assert_int_eq(listen(lfd, 4), 0);
    char text[128];
    snprintf(text, sizeof(text), "unix:@%s", name);
    int rc;
    ptth_stream *s = open_sync(text, NULL, &rc);
    ck_assert_msg(s != NULL, "%s", err);
    int peer = accept(lfd, NULL, NULL);
    ck_assert_int_ge(peer, 0);
    ptth_stream_close(s);
    close(peer);
    close(lfd);
}
END_TEST

START_TEST(unix_missing_and_refused)
{
    int rc;
    ptth_stream *s = open_sync("unix:/nonexistent-dir/x.sock", NULL, &rc);
    ck_assert_ptr_null(s);
    ck_assert_int_eq(rc, -ENOENT);
    ck_assert_str_eq(err, "connect to unix:/nonexistent-dir/x.sock: No such file or directory");

    /* a socket file with no listener behind it */
    char path[108], text[128];
    int lfd = unix_listener(path, sizeof(path));
    close(lfd);
    snprintf(text, sizeof(text), "unix:%s", path);
    s = open_sync(text, NULL, &rc);
    ck_assert_ptr_null(s);
    ck_assert_int_eq(rc, -ECONNREFUSED);
    ck_assert_msg(strstr(err, path) != NULL && strstr(err, "Connection refused") != NULL, "%s", err);
    unlink(path);
}
END_TEST

Suite *
ptth_test_suite(void)
{
    Suite *s = suite_create("sock");
    TCase *tc = tcase_create("tcp");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, tcp_ipv4_round_trip);
    tcase_add_test(tc, tcp_port_only_is_loopback);
    tcase_add_test(tc, tcp_ipv6);
    tcase_add_test(tc, tcp_host_name);
    tcase_add_test(tc, tcp_unknown_host);
    tcase_add_test(tc, tcp_refused_message);
    tcase_add_test(tc, tcp_peer_reset_is_error);
    tcase_add_test(tc, tcp_write_full_gives_eagain);
    tcase_add_test(tc, tcp_proxy_protocol_header);
    tcase_add_test(tc, proxy_v2_mixed_families);
    suite_add_tcase(s, tc);
    TCase *tu = tcase_create("unix");
    tcase_set_timeout(tu, 20);
    tcase_add_test(tu, unix_round_trip);
    tcase_add_test(tu, unix_abstract);
    tcase_add_test(tu, unix_missing_and_refused);
    suite_add_tcase(s, tu);
    return s;
}
