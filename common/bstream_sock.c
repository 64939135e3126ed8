/* bstream_sock.c: the TCP socket layer of a byte stream; see bstream_sock.h. */
#include "bstream_sock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum sock_state {
    SOCK_CONNECTING, /* a connect() under way on fd, more addresses maybe left */
    SOCK_OPEN,
    SOCK_FAILED, /* no address left */
};

typedef struct sock {
    ptth_bstream bs;
    enum sock_state state;
    int fd;
    bool event_seen; /* SOCK_CONNECTING: the watch fired since the connect() began */
    ptth_loop *loop;
    ptth_watch watch;
    const char *peer;
    ptth_bstream_event_cb on_event;
    void *data;
    ptth_bstream_sock_addrs *addrs; /* a copy, while connecting */
    size_t next_addr;               /* the next one of addrs to try */
} sock;

/* Leaves SOCK_CONNECTING (the only change there is): the addresses go. */
static void
set_state(sock *s, enum sock_state to)
{
    s->state = to;
    free(s->addrs);
    s->addrs = NULL;
}

static void
on_watch(ptth_watch *w, uint32_t events)
{
    sock *s = w->data;
    if (s->state == SOCK_CONNECTING)
        s->event_seen = true;
    s->on_event(s->data, events);
}

/* Tries the next resolved address; false when there is none left (why
 * then says what failed last). */
static bool
try_next_addr(sock *s, char *why, size_t whylen)
{
    while (s->addrs != NULL && s->next_addr < s->addrs->n) {
        const struct sockaddr *sa = &s->addrs->a[s->next_addr].u.sa;
        socklen_t salen = s->addrs->a[s->next_addr].len;
        s->next_addr++;
        if (s->fd >= 0) {
            ptth_watch_stop(&s->watch);
            close(s->fd);
            s->fd = -1;
        }
        int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
        if (fd < 0) {
            snprintf(why, whylen, "socket: %s", strerror(errno));
            continue;
        }
        int one = 1, idle = 30, intvl = 10;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
        if (connect(fd, sa, salen) != 0 && errno != EINPROGRESS) {
            snprintf(why, whylen, "connect: %s", strerror(errno));
            close(fd);
            continue;
        }
        s->fd = fd;
        s->event_seen = false;
        if (ptth_watch_start(s->loop, &s->watch, fd, EPOLLOUT, on_watch, s) != 0) {
            snprintf(why, whylen, "cannot watch the socket");
            close(fd);
            s->fd = -1;
            continue;
        }
        return true;
    }
    set_state(s, SOCK_FAILED);
    return false;
}

/* Writable (or an error) after connect(): connected, or on to the next
 * address. */
static int
sock_connect(ptth_bstream *bs, char *why, size_t whylen)
{
    sock *s = (sock *)bs;
    if (s->state == SOCK_OPEN)
        return 0;
    if (s->state == SOCK_FAILED) {
        snprintf(why, whylen, "not connected");
        return -ENOTCONN;
    }
    if (!s->event_seen)
        return -EAGAIN;
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    if (err != 0) {
        snprintf(why, whylen, "connect: %s", strerror(err));
        return try_next_addr(s, why, whylen) ? -EAGAIN : -err;
    }
    set_state(s, SOCK_OPEN);
    return 0;
}

/* What a send or recv returned, in bstream.h's terms ("send to" ...). */
static ssize_t
io_result(const sock *s, ssize_t n, const char *what, char *why, size_t whylen)
{
    if (n >= 0)
        return n;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return -EAGAIN;
    int e = errno;
    snprintf(why, whylen, "%s %s: %s", what, s->peer, strerror(e));
    return -e;
}

static ssize_t
sock_send(ptth_bstream *bs, const struct iovec *iov, int iovcnt, char *why, size_t whylen)
{
    sock *s = (sock *)bs;
    struct msghdr msg = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt};
    return io_result(s, sendmsg(s->fd, &msg, MSG_NOSIGNAL), "send to", why, whylen);
}

static ssize_t
sock_recv(ptth_bstream *bs, void *buf, size_t len, char *why, size_t whylen)
{
    sock *s = (sock *)bs;
    return io_result(s, recv(s->fd, buf, len, 0), "receive from", why, whylen);
}

static void
sock_want(ptth_bstream *bs, bool read, bool write)
{
    sock *s = (sock *)bs;
    ptth_watch_set(&s->watch, (read ? EPOLLIN : 0) | (write ? EPOLLOUT : 0));
}

static int
sock_shutdown(ptth_bstream *bs, char *why, size_t whylen)
{
    sock *s = (sock *)bs;
    if (shutdown(s->fd, SHUT_WR) == 0)
        return 0;
    int e = errno;
    snprintf(why, whylen, "shutdown: %s", strerror(e));
    return -e;
}

static void
sock_abort(ptth_bstream *bs)
{
    sock *s = (sock *)bs;
    struct linger lg = {.l_onoff = 1, .l_linger = 0}; /* close() sends RST */
    if (s->fd >= 0)
        setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

static void
sock_close(ptth_bstream *bs)
{
    sock *s = (sock *)bs;
    ptth_watch_stop(&s->watch);
    if (s->fd >= 0)
        close(s->fd);
    free(s->addrs);
    free(s);
}

static int
sock_query(ptth_bstream *bs, ptth_bstream_q q, void *out)
{
    sock *s = (sock *)bs;
    switch (q) {
    case PTTH_BSTREAM_Q_FD:
        *(int *)out = s->fd;
        return 0;
    case PTTH_BSTREAM_Q_TLS:
        *(bool *)out = false;
        return 0;
    case PTTH_BSTREAM_Q_GATHER:
    case PTTH_BSTREAM_Q_SHORT_READ_DRAINS:
        *(bool *)out = true;
        return 0;
    default:
        return -ENOTSUP;
    }
}

static const ptth_bstream_type sock_type = {
    .name = "sock",
    .connect = sock_connect,
    .send = sock_send,
    .recv = sock_recv,
    .want = sock_want,
    .shutdown = sock_shutdown,
    .abort = sock_abort,
    .close = sock_close,
    .query = sock_query,
};

/* A literal needs no resolver: inet_pton, so that an owner with a numeric
 * host never calls getaddrinfo (whose AI_ADDRCONFIG asks the kernel for the
 * interfaces' addresses on every call). */
static bool
parse_literal(const char *host, unsigned short port, ptth_bstream_sock_addrs *out)
{
    struct in_addr v4;
    struct in6_addr v6;
    if (inet_pton(AF_INET, host, &v4) == 1) {
        out->a[0].u.in = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons(port), .sin_addr = v4};
        out->a[0].len = sizeof(struct sockaddr_in);
    } else if (inet_pton(AF_INET6, host, &v6) == 1) {
        out->a[0].u.in6 = (struct sockaddr_in6){.sin6_family = AF_INET6, .sin6_port = htons(port), .sin6_addr = v6};
        out->a[0].len = sizeof(struct sockaddr_in6);
    } else {
        return false;
    }
    out->n = 1;
    return true;
}

int
ptth_bstream_sock_resolve(const char *host, const char *port, ptth_bstream_sock_addrs *out, char *why, size_t whylen)
{
    out->n = 0;
    char *end = NULL;
    unsigned long pn = strtoul(port, &end, 10);
    if (end != NULL && *end == '\0' && end != port && pn <= 65535 && parse_literal(host, (unsigned short)pn, out))
        return 0;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        snprintf(why, whylen, "cannot resolve: %s", gai_strerror(rc));
        return -EHOSTUNREACH;
    }
    for (struct addrinfo *ai = res; ai != NULL && out->n < PTTH_BSTREAM_SOCK_ADDRS_MAX; ai = ai->ai_next) {
        if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) || ai->ai_addrlen > sizeof(out->a[0].u))
            continue;
        memcpy(&out->a[out->n].u, ai->ai_addr, ai->ai_addrlen);
        out->a[out->n].len = (socklen_t)ai->ai_addrlen;
        out->n++;
    }
    freeaddrinfo(res);
    if (out->n == 0) {
        snprintf(why, whylen, "cannot resolve: no IPv4 or IPv6 address");
        return -EHOSTUNREACH;
    }
    return 0;
}

int
ptth_bstream_sock_open_addrs(ptth_loop *loop, const ptth_bstream_sock_addrs *addrs, const char *peer,
                             ptth_bstream_event_cb on_event, void *data, ptth_bstream **out, char *why, size_t whylen)
{
    *out = NULL;
    sock *s = calloc(1, sizeof(*s));
    ptth_bstream_sock_addrs *copy = malloc(sizeof(*copy));
    if (s == NULL || copy == NULL) {
        free(s);
        free(copy);
        snprintf(why, whylen, "out of memory");
        return -ENOMEM;
    }
    *copy = *addrs;
    s->bs.type = &sock_type;
    s->state = SOCK_CONNECTING;
    s->fd = -1;
    s->loop = loop;
    s->peer = peer;
    s->on_event = on_event;
    s->data = data;
    s->addrs = copy;
    snprintf(why, whylen, "no address");
    if (!try_next_addr(s, why, whylen)) {
        sock_close(&s->bs);
        return -ECONNREFUSED;
    }
    *out = &s->bs;
    return 0;
}

int
ptth_bstream_sock_open(ptth_loop *loop, const char *host, const char *port, const char *peer, ptth_bstream_event_cb on_event,
                       void *data, ptth_bstream **out, char *why, size_t whylen)
{
    *out = NULL;
    ptth_bstream_sock_addrs addrs;
    int rc = ptth_bstream_sock_resolve(host, port, &addrs, why, whylen);
    if (rc != 0)
        return rc;
    return ptth_bstream_sock_open_addrs(loop, &addrs, peer, on_event, data, out, why, whylen);
}
