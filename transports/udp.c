/*
 * udp.c: the UDP transport (udp:HOST:PORT targets, SPEC §9.4).
 *
 * A stream is one connected UDP socket: the tunnel's byte stream carries
 * datagrams framed as common/dgram.h says (2-byte length, payload), each
 * frame one datagram to the backend, each datagram from it one frame. A
 * connected socket only takes datagrams from the backend's address, and an
 * ICMP port unreachable shows as ECONNREFUSED, which dgram.c counts and
 * skips: a backend that is not there (yet) loses datagrams, never the
 * session. connect() on a UDP socket sends nothing and completes at once.
 *
 * A numeric HOST is connected at once; a host name is looked up by
 * resolve.h in a helper thread (the loop never blocks on DNS), and the
 * socket is connected to the first address that takes one.
 *
 * close() logs the session's datagram counters (event=udp_session_end),
 * the only place where what UDP lost on this side shows.
 */
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dgram.h"
#include "log.h"
#include "resolve.h"
#include "sysutil.h"
#include "transport.h"

#define SOCKET_BUFFER (1 << 20)

typedef struct udp_stream {
    ptth_stream base;
    ptth_dgram_io io;
    ptth_resolve *job; /* resolving a host name; base.fd is then its descriptor */
    char host[PTTH_TARGET_HOST_MAX];
    char port[8];
    char conn[32];
    char target[PTTH_TARGET_TEXT_MAX];
    long long opened_ms;
} udp_stream;

/* A UDP socket connected to the first address that takes one; it replaces
 * the stream's fd (created before the old one is closed: a new number). 0,
 * or a negative errno with err set. */
static int
connect_first(udp_stream *s, const struct addrinfo *addrs, char *err, size_t errlen)
{
    int e = EHOSTUNREACH;
    for (const struct addrinfo *ai = addrs; ai != NULL; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            e = errno;
            continue;
        }
        /* the backend's answers to a burst arrive while the loop may be busy sending it: room for them, best
         * effort (the kernel caps it at net.core.rmem_max) */
        int size = SOCKET_BUFFER;
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            e = errno;
            close(fd);
            continue;
        }
        if (s->base.fd >= 0)
            close(s->base.fd);
        s->base.fd = fd;
        ptth_dgram_io_init(&s->io, fd);
        return 0;
    }
    snprintf(err, errlen, "udp %s:%s: connect: %s", s->host, s->port, strerror(e));
    return -e;
}

static void
free_stream(udp_stream *s)
{
    ptth_resolve_release(s->job);
    if (s->base.fd >= 0)
        close(s->base.fd);
    ptth_dgram_io_dispose(&s->io);
    free(s);
}

static int
udp_open(const ptth_target *t, const ptth_open_info *info, ptth_stream **out, char *err, size_t errlen)
{
    /* no PROXY header for datagrams: info only names the tunnel */
    udp_stream *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(err, errlen, "udp %s: out of memory", t->text);
        return -ENOMEM;
    }
    s->base.transport = &ptth_transport_udp;
    s->base.fd = -1;
    ptth_dgram_io_init(&s->io, -1);
    snprintf(s->host, sizeof(s->host), "%s", t->host);
    snprintf(s->port, sizeof(s->port), "%s", t->port_text);
    snprintf(s->conn, sizeof(s->conn), "%s", info != NULL && info->conn != NULL ? info->conn : "-");
    snprintf(s->target, sizeof(s->target), "%s", t->text);
    s->opened_ms = ptth_now_ms();

    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM, .ai_flags = AI_NUMERICSERV | AI_NUMERICHOST};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(s->host, s->port, &hints, &res);
    int rc;
    if (gai == 0) {
        rc = connect_first(s, res, err, errlen);
        freeaddrinfo(res);
        s->base.open_events = EPOLLOUT; /* writable at once: finish_open follows */
    } else if (gai == EAI_NONAME) {
        rc = ptth_resolve_start(s->host, s->port, SOCK_DGRAM, &s->job, &s->base.fd, err, errlen);
        s->base.open_events = EPOLLIN;
    } else {
        snprintf(err, errlen, "udp %s:%s: cannot resolve: %s", s->host, s->port, gai_strerror(gai));
        rc = -EINVAL;
    }
    if (rc != 0) {
        free_stream(s);
        return rc;
    }
    *out = &s->base;
    return 0;
}

/* Connected already, or the name's answer is in (or not yet). */
static int
udp_finish_open(ptth_stream *base, char *err, size_t errlen)
{
    udp_stream *s = (udp_stream *)base;
    if (s->job == NULL)
        return 0;
    int gai;
    struct addrinfo *res;
    if (!ptth_resolve_take(s->job, s->base.fd, &gai, &res))
        return -EINPROGRESS;
    ptth_resolve_release(s->job);
    s->job = NULL;
    if (gai != 0) {
        snprintf(err, errlen, "resolve '%s': %s", s->host, gai_strerror(gai));
        return gai == EAI_MEMORY ? -ENOMEM : -EHOSTUNREACH;
    }
    int rc = connect_first(s, res, err, errlen);
    freeaddrinfo(res);
    return rc;
}

static ssize_t
udp_read(ptth_stream *s, void *buf, size_t len)
{
    return ptth_dgram_io_read(&((udp_stream *)s)->io, buf, len);
}

static ssize_t
udp_write(ptth_stream *s, const void *buf, size_t len)
{
    return ptth_dgram_io_write(&((udp_stream *)s)->io, buf, len);
}

/* The client's side ended the session (FIN): a datagram session has no
 * half-close, so reading ends too, and our FIN follows. */
static int
udp_shutdown_write(ptth_stream *s)
{
    return ptth_dgram_io_finish(&((udp_stream *)s)->io);
}

static void
udp_close(ptth_stream *s)
{
    udp_stream *u = (udp_stream *)s;
    const ptth_dgram_stats *st = &u->io.stats;
    char q[PTTH_TARGET_TEXT_MAX + 16];
    if (u->job == NULL && u->io.fd >= 0) /* it was connected */
        ptth_log_info("event=udp_session_end conn=%s target=%s datagrams_to_backend=%" PRIu64 " datagrams_from_backend=%" PRIu64
                      " dropped=%" PRIu64 " unreachable=%" PRIu64 " duration_ms=%lld",
                      u->conn, ptth_log_quote(q, sizeof(q), u->target), st->datagrams_out, st->datagrams_in, st->dropped,
                      st->unreachable, ptth_now_ms() - u->opened_ms);
    free_stream(u);
}

const ptth_transport ptth_transport_udp = {
    .name = "udp",
    .open = udp_open,
    .finish_open = udp_finish_open,
    .read = udp_read,
    .write = udp_write,
    .shutdown_write = udp_shutdown_write,
    .close = udp_close,
};
