/* Unit tests: the UDP transport (udp:HOST:PORT) against local UDP sockets:
 * a numeric address connects at once, a host name is resolved off the
 * caller's thread, frames become datagrams and datagrams frames, a port
 * with nothing bound (ICMP unreachable) does not break the stream, the
 * client's FIN ends the reading, a broken frame length is an error. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check_main.h"
#include "dgram.h"
#include "target.h"
#include "transport.h"

static char err[512];

/* A UDP socket bound on loopback (family AF_INET or AF_INET6) at *port (0:
 * any, then set); -1 when that family or port cannot be had. */
static int
udp_bound(int family, int *port)
{
    int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    socklen_t len;
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a->sin_port = htons((uint16_t)*port);
        len = sizeof(*a);
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        a->sin6_port = htons((uint16_t)*port);
        len = sizeof(*a);
    }
    if (bind(fd, (struct sockaddr *)&ss, len) != 0) {
        close(fd);
        return -1;
    }
    len = sizeof(ss);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    *port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port : ((struct sockaddr_in6 *)&ss)->sin6_port);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

/* Opens text, driving finish_open() with poll() until done; the stream, or
 * NULL with *rc and err. *first_events: what the first wait was for. */
static ptth_stream *
open_udp(const char *text, int *rc, uint32_t *first_events)
{
    ptth_target t;
    ck_assert_int_eq(ptth_target_parse(text, &t, err, sizeof(err)), 0);
    ck_assert_int_eq(t.kind, PTTH_TARGET_UDP);
    ptth_stream *s = NULL;
    ptth_open_info info = {.conn = "TESTCONN"};
    *rc = ptth_transport_open(&t, &info, &s, err, sizeof(err));
    if (*rc != 0)
        return NULL;
    if (first_events != NULL)
        *first_events = s->open_events;
    for (int i = 0; i < 100; i++) {
        struct pollfd p = {.fd = s->fd,
                           .events = (short)((s->open_events & EPOLLIN ? POLLIN : 0) | (s->open_events & EPOLLOUT ? POLLOUT : 0))};
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

static void
wait_readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    ck_assert_int_eq(poll(&p, 1, 5000), 1);
}

/* Reads until want bytes of frames came (or the stream ends). */
static size_t
read_frames(ptth_stream *s, uint8_t *buf, size_t cap, size_t want)
{
    size_t off = 0;
    while (off < want) {
        ssize_t n = ptth_stream_read(s, buf + off, cap - off);
        if (n == -EAGAIN) {
            wait_readable(s->fd);
            continue;
        }
        ck_assert_int_gt(n, 0);
        off += (size_t)n;
    }
    return off;
}

START_TEST(numeric_address_frames_both_ways)
{
    int port = 0;
    int b = udp_bound(AF_INET, &port);
    ck_assert_int_ge(b, 0);
    char text[64];
    snprintf(text, sizeof(text), "udp:127.0.0.1:%d", port);
    int rc;
    uint32_t ev;
    ptth_stream *s = open_udp(text, &rc, &ev);
    ck_assert_msg(s != NULL, "%d %s", rc, err);
    ck_assert_uint_eq(ev, EPOLLOUT); /* connected at once */

    /* two frames and the start of a third in one write, its rest later */
    ck_assert_int_eq(ptth_stream_write(s, "\0\5hello\0\0\0\3ab", 13), 13);
    ck_assert_int_eq(ptth_stream_write(s, "c", 1), 1);
    char d[16];
    struct sockaddr_storage from;
    socklen_t fl = sizeof(from);
    ck_assert_int_eq(recvfrom(b, d, sizeof(d), 0, (struct sockaddr *)&from, &fl), 5);
    ck_assert_int_eq(memcmp(d, "hello", 5), 0);
    ck_assert_int_eq(recv(b, d, sizeof(d), 0), 0);
    ck_assert_int_eq(recv(b, d, sizeof(d), 0), 3);
    ck_assert_int_eq(memcmp(d, "abc", 3), 0);

    /* the backend answers the session's own address: two datagrams, two frames */
    ck_assert_int_eq(sendto(b, "pong", 4, 0, (struct sockaddr *)&from, fl), 4);
    ck_assert_int_eq(sendto(b, "!", 1, 0, (struct sockaddr *)&from, fl), 1);
    uint8_t buf[PTTH_DGRAM_FRAME_MAX * 2];
    ck_assert_uint_eq(read_frames(s, buf, sizeof(buf), 9), 9);
    ck_assert_int_eq(memcmp(buf, "\0\4pong\0\1!", 9), 0);

    /* a datagram from another address never reaches the session */
    int other_port = 0;
    int other = udp_bound(AF_INET, &other_port);
    ck_assert_int_eq(sendto(other, "stray", 5, 0, (struct sockaddr *)&from, fl), 5);
    usleep(50 * 1000);
    ck_assert_int_eq(ptth_stream_read(s, buf, sizeof(buf)), -EAGAIN);
    close(other);

    /* the client's FIN: the reading ends, after what was queued */
    ck_assert_int_eq(sendto(b, "late", 4, 0, (struct sockaddr *)&from, fl), 4);
    usleep(50 * 1000);
    ck_assert_int_eq(ptth_stream_shutdown_write(s), 0);
    wait_readable(s->fd);
    ck_assert_int_eq(ptth_stream_read(s, buf, sizeof(buf)), 6);
    ck_assert_int_eq(memcmp(buf, "\0\4late", 6), 0);
    ck_assert_int_eq(ptth_stream_read(s, buf, sizeof(buf)), 0);
    ptth_stream_close(s);
    close(b);
}
END_TEST

START_TEST(host_name_is_resolved_off_the_loop)
{
    /* localhost may give ::1 or 127.0.0.1 first: the same port on both */
    int b4 = -1, b6 = -1, port = 0;
    for (int tries = 0; tries < 20 && b6 < 0; tries++) {
        port = 0;
        b4 = udp_bound(AF_INET, &port);
        ck_assert_int_ge(b4, 0);
        b6 = udp_bound(AF_INET6, &port);
        if (b6 < 0)
            close(b4);
    }
    ck_assert_msg(b6 >= 0, "no port free on both 127.0.0.1 and ::1");
    char text[64];
    snprintf(text, sizeof(text), "udp:localhost:%d", port);
    int rc;
    uint32_t ev;
    ptth_stream *s = open_udp(text, &rc, &ev);
    ck_assert_msg(s != NULL, "%d %s", rc, err);
    ck_assert_uint_eq(ev, EPOLLIN); /* first the resolver's answer */
    ck_assert_int_eq(ptth_stream_write(s, "\0\4name", 6), 6);
    struct pollfd p[2] = {{.fd = b4, .events = POLLIN}, {.fd = b6, .events = POLLIN}};
    ck_assert_int_eq(poll(p, 2, 5000), 1);
    char d[8];
    ck_assert_int_eq(recv((p[0].revents & POLLIN) ? b4 : b6, d, sizeof(d), 0), 4);
    ck_assert_int_eq(memcmp(d, "name", 4), 0);
    ptth_stream_close(s);
    close(b4);
    close(b6);
}
END_TEST

START_TEST(unknown_host_is_an_error)
{
    int rc;
    ptth_stream *s = open_udp("udp:no-such-host.invalid:53", &rc, NULL);
    ck_assert_ptr_null(s);
    ck_assert_int_lt(rc, 0);
    ck_assert_msg(strstr(err, "resolve 'no-such-host.invalid'") != NULL, "%s", err);
}
END_TEST

/* Nothing bound at the port: the kernel's ICMP port unreachable comes back
 * as ECONNREFUSED, which loses that datagram, never the stream. */
START_TEST(nothing_bound_does_not_break_the_stream)
{
    int port = 0;
    int hold = udp_bound(AF_INET, &port);
    close(hold); /* a port that was free a moment ago */
    char text[64];
    snprintf(text, sizeof(text), "udp:127.0.0.1:%d", port);
    int rc;
    ptth_stream *s = open_udp(text, &rc, NULL);
    ck_assert_msg(s != NULL, "%d %s", rc, err);
    uint8_t buf[PTTH_DGRAM_FRAME_MAX];
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(ptth_stream_write(s, "\0\3abc", 5), 5);
        usleep(20 * 1000);
        ck_assert_int_eq(ptth_stream_read(s, buf, sizeof(buf)), -EAGAIN);
    }
    int b = udp_bound(AF_INET, &port); /* the backend comes up */
    ck_assert_int_ge(b, 0);
    ck_assert_int_eq(ptth_stream_write(s, "\0\3now", 5), 5);
    char d[8];
    struct sockaddr_storage from;
    socklen_t fl = sizeof(from);
    ck_assert_int_eq(recvfrom(b, d, sizeof(d), 0, (struct sockaddr *)&from, &fl), 3);
    ck_assert_int_eq(memcmp(d, "now", 3), 0);
    ck_assert_int_eq(sendto(b, "up", 2, 0, (struct sockaddr *)&from, fl), 2);
    ck_assert_uint_eq(read_frames(s, buf, sizeof(buf), 4), 4);
    ck_assert_int_eq(memcmp(buf, "\0\2up", 4), 0);
    ptth_stream_close(s);
    close(b);
}
END_TEST

START_TEST(broken_frame_length_is_an_error)
{
    int port = 0;
    int b = udp_bound(AF_INET6, &port);
    ck_assert_int_ge(b, 0);
    char text[64];
    snprintf(text, sizeof(text), "udp:[::1]:%d", port);
    int rc;
    ptth_stream *s = open_udp(text, &rc, NULL);
    ck_assert_msg(s != NULL, "%d %s", rc, err);
    ck_assert_int_eq(ptth_stream_write(s, "\xff\xff", 2), -EPROTO);
    ptth_stream_close(s);
    close(b);
}
END_TEST

Suite *
ptth_test_suite(void)
{
    Suite *s = suite_create("udp");
    TCase *tc = tcase_create("udp");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, numeric_address_frames_both_ways);
    tcase_add_test(tc, host_name_is_resolved_off_the_loop);
    tcase_add_test(tc, unknown_host_is_an_error);
    tcase_add_test(tc, nothing_bound_does_not_break_the_stream);
    tcase_add_test(tc, broken_frame_length_is_an_error);
    suite_add_tcase(s, tc);
    return s;
}
