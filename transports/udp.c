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
 * HOST is resolved with getaddrinfo() on the caller's thread (numeric
 * addresses need no lookup; a name should come from /etc/hosts): unlike
 * tcp.c there is no resolver thread yet.
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dgram.h"
#include "transport.h"

typedef struct udp_stream {
    ptth_stream base;
    ptth_dgram_io io;
} udp_stream;

static int
udp_open(const ptth_target *t, const ptth_open_info *info, ptth_stream **out, char *err, size_t errlen)
{
    (void)info; /* no PROXY header for datagrams */
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM, .ai_flags = AI_NUMERICSERV | AI_NUMERICHOST};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(t->host, t->port_text, &hints, &res);
    if (gai == EAI_NONAME) {
        hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG;
        gai = getaddrinfo(t->host, t->port_text, &hints, &res);
    }
    if (gai != 0) {
        snprintf(err, errlen, "udp %s:%s: cannot resolve: %s", t->host, t->port_text, gai_strerror(gai));
        return -EHOSTUNREACH;
    }
    int fd = socket(res->ai_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int e = errno;
        freeaddrinfo(res);
        snprintf(err, errlen, "udp %s:%s: socket: %s", t->host, t->port_text, strerror(e));
        return -e;
    }
    if (connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
        int e = errno;
        freeaddrinfo(res);
        close(fd);
        snprintf(err, errlen, "udp %s:%s: connect: %s", t->host, t->port_text, strerror(e));
        return -e;
    }
    freeaddrinfo(res);
    udp_stream *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        close(fd);
        snprintf(err, errlen, "udp %s:%s: out of memory", t->host, t->port_text);
        return -ENOMEM;
    }
    s->base.transport = &ptth_transport_udp;
    s->base.fd = fd;
    s->base.open_events = EPOLLOUT; /* writable at once: finish_open follows */
    ptth_dgram_io_init(&s->io, fd);
    *out = &s->base;
    return 0;
}

static int
udp_finish_open(ptth_stream *s, char *err, size_t errlen)
{
    (void)s;
    (void)err;
    (void)errlen;
    return 0;
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
    close(u->base.fd);
    ptth_dgram_io_dispose(&u->io);
    free(u);
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
