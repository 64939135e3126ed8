/*
 * tcp.c: the TCP transport (PORT, HOST:PORT, [V6]:PORT targets).
 *
 * Opening never blocks the caller's event loop:
 *   - a numeric address is connected at once (non-blocking connect);
 *   - a host name is resolved by getaddrinfo() in a short-lived thread
 *     (resolve.h), and while it runs the stream's fd is the descriptor that
 *     becomes readable when the answer is there;
 *   - each resolved address is tried in turn; finish_open() reads SO_ERROR
 *     and moves on to the next address on failure.
 * Whenever the fd changes, the new one is created before the old one is
 * closed, so the caller always sees a different number (re-register it).
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxyproto.h"
#include "resolve.h"
#include "sockstream.h"
#include "sysutil.h"
#include "transport.h"

typedef enum tcp_state {
    TCP_RESOLVING,
    TCP_CONNECTING,
    TCP_OPEN,
    TCP_FAILED,
} tcp_state;

typedef struct tcp_stream {
    ptth_stream base;
    tcp_state state;
    char host[PTTH_TARGET_HOST_MAX];
    char port[8];
    int proxy_protocol;
    int have_client;
    struct sockaddr_storage client;
    ptth_resolve *job;
    struct addrinfo *addrs, *next;
    char cur_addr[64]; /* address being connected, for messages */
    int last_err;
    char last_addr[64];
} tcp_stream;

static int set_err(char *err, size_t errlen, int code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int
set_err(char *err, size_t errlen, int code, const char *fmt, ...)
{
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* Replaces the stream's fd with newfd (or just closes the old one when newfd
 * is -1). newfd was created while the old fd was still open, so the numbers
 * differ. */
static void
swap_fd(tcp_stream *s, int newfd)
{
    int old = s->base.fd;
    s->base.fd = newfd;
    if (old >= 0)
        close(old);
}

/* Starts connecting to the next address. Returns -EINPROGRESS (waiting for
 * EPOLLOUT on the new fd), 0 (already connected), or the last error once
 * every address failed. */
static int
connect_next(tcp_stream *s, char *err, size_t errlen)
{
    while (s->next != NULL) {
        struct addrinfo *ai = s->next;
        s->next = ai->ai_next;
        ptth_format_sockaddr(ai->ai_addr, s->cur_addr, sizeof(s->cur_addr));
        int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            s->last_err = errno;
            snprintf(s->last_addr, sizeof(s->last_addr), "%s", s->cur_addr);
            continue;
        }
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        swap_fd(s, fd);
        s->base.open_events = EPOLLOUT;
        s->state = TCP_CONNECTING;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            return 0;
        if (errno == EINPROGRESS || errno == EINTR)
            return -EINPROGRESS;
        s->last_err = errno;
        snprintf(s->last_addr, sizeof(s->last_addr), "%s", s->cur_addr);
    }
    s->state = TCP_FAILED;
    swap_fd(s, -1);
    if (s->last_err == 0)
        s->last_err = EHOSTUNREACH;
    return set_err(err, errlen, -s->last_err, "connect to %s: %s", s->last_addr[0] ? s->last_addr : s->host, strerror(s->last_err));
}

/* Sends the PROXY v2 header on a freshly connected socket: its send buffer is
 * empty, so the at most 52 bytes go in one call. */
static int
send_proxy_header(tcp_stream *s, char *err, size_t errlen)
{
    struct sockaddr_storage peer;
    socklen_t plen = sizeof(peer);
    if (getpeername(s->base.fd, (struct sockaddr *)&peer, &plen) != 0)
        return set_err(err, errlen, -errno, "connect to %s: %s", s->cur_addr, strerror(errno));
    unsigned char hdr[PTTH_PROXY_V2_MAX];
    ssize_t n =
        ptth_proxy_v2_build(s->have_client ? (struct sockaddr *)&s->client : NULL, (struct sockaddr *)&peer, hdr, sizeof(hdr));
    if (n < 0)
        return set_err(err, errlen, (int)n, "PROXY header to %s: %s", s->cur_addr, strerror((int)-n));
    ssize_t w = ptth_sock_write(s->base.fd, hdr, (size_t)n);
    if (w != n)
        return set_err(err, errlen, w < 0 ? (int)w : -EIO, "PROXY header to %s: %s", s->cur_addr,
                       w < 0 ? strerror((int)-w) : "short write");
    return 0;
}

static int
become_open(tcp_stream *s, char *err, size_t errlen)
{
    s->state = TCP_OPEN;
    if (s->addrs != NULL) {
        freeaddrinfo(s->addrs);
        s->addrs = s->next = NULL;
    }
    if (s->proxy_protocol)
        return send_proxy_header(s, err, errlen);
    return 0;
}

/* Frees a stream that never reached the caller. */
static int
discard(tcp_stream *s, int r)
{
    if (s->addrs != NULL)
        freeaddrinfo(s->addrs);
    if (s->base.fd >= 0)
        close(s->base.fd);
    free(s);
    return r;
}

/* Hands a host name to a resolver thread; the stream's fd becomes readable
 * when the answer is in. */
static int
start_resolve(tcp_stream *s, char *err, size_t errlen)
{
    int fd;
    int rc = ptth_resolve_start(s->host, s->port, SOCK_STREAM, &s->job, &fd, err, errlen);
    if (rc != 0)
        return rc;
    s->state = TCP_RESOLVING;
    s->base.fd = fd;
    s->base.open_events = EPOLLIN;
    return 0;
}

static int
tcp_open(const ptth_target *t, const ptth_open_info *info, ptth_stream **out, char *err, size_t errlen)
{
    tcp_stream *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return set_err(err, errlen, -ENOMEM, "tcp %s: out of memory", t->text);
    s->base.transport = &ptth_transport_tcp;
    s->base.fd = -1;
    snprintf(s->host, sizeof(s->host), "%s", t->host);
    snprintf(s->port, sizeof(s->port), "%u", (unsigned)t->port);
    if (info != NULL) {
        s->proxy_protocol = info->proxy_protocol;
        s->have_client = info->client_addr != NULL && ptth_proxy_parse_addr(info->client_addr, &s->client) == 0;
    }

    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    int rc = getaddrinfo(s->host, s->port, &hints, &s->addrs);
    int r;
    if (rc == 0) {
        s->next = s->addrs;
        r = connect_next(s, err, errlen);
        if (r == 0)
            r = become_open(s, err, errlen);
        if (r == -EINPROGRESS)
            r = 0;
    } else if (rc == EAI_NONAME) {
        s->addrs = NULL;
        r = start_resolve(s, err, errlen);
    } else {
        s->addrs = NULL;
        r = set_err(err, errlen, -EINVAL, "resolve '%s': %s", s->host, gai_strerror(rc));
    }
    if (r != 0)
        return discard(s, r);
    *out = &s->base;
    return 0;
}

static int
tcp_finish_open(ptth_stream *base, char *err, size_t errlen)
{
    tcp_stream *s = (tcp_stream *)base;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    switch (s->state) {
    case TCP_RESOLVING: {
        int rc;
        if (!ptth_resolve_take(s->job, s->base.fd, &rc, &s->addrs))
            return -EINPROGRESS;
        ptth_resolve_release(s->job);
        s->job = NULL;
        if (rc != 0) {
            s->state = TCP_FAILED;
            swap_fd(s, -1);
            return set_err(err, errlen, rc == EAI_MEMORY ? -ENOMEM : -EHOSTUNREACH, "resolve '%s': %s", s->host,
                           rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
        }
        s->next = s->addrs;
        int r = connect_next(s, err, errlen);
        if (r == 0)
            r = become_open(s, err, errlen);
        return r;
    }
    case TCP_CONNECTING: {
        int soerr = 0;
        socklen_t len = sizeof(soerr);
        if (getsockopt(s->base.fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0)
            soerr = errno;
        if (soerr == 0) {
            struct sockaddr_storage peer;
            socklen_t plen = sizeof(peer);
            if (getpeername(s->base.fd, (struct sockaddr *)&peer, &plen) == 0)
                return become_open(s, err, errlen);
            if (errno != ENOTCONN)
                soerr = errno;
            else
                return -EINPROGRESS; /* woken up early */
        }
        if (soerr == EINPROGRESS || soerr == EALREADY)
            return -EINPROGRESS;
        s->last_err = soerr;
        snprintf(s->last_addr, sizeof(s->last_addr), "%s", s->cur_addr);
        int r = connect_next(s, err, errlen);
        if (r == 0)
            r = become_open(s, err, errlen);
        return r;
    }
    case TCP_OPEN:
        return 0;
    case TCP_FAILED:
    default:
        return set_err(err, errlen, s->last_err ? -s->last_err : -EIO, "connect to %s: %s",
                       s->last_addr[0] ? s->last_addr : s->host, strerror(s->last_err ? s->last_err : EIO));
    }
}

static ssize_t
tcp_read(ptth_stream *s, void *buf, size_t len)
{
    return ptth_sock_read(s->fd, buf, len);
}

static ssize_t
tcp_write(ptth_stream *s, const void *buf, size_t len)
{
    return ptth_sock_write(s->fd, buf, len);
}

static int
tcp_shutdown_write(ptth_stream *s)
{
    return ptth_sock_shutdown_write(s->fd);
}

static void
tcp_close(ptth_stream *base)
{
    tcp_stream *s = (tcp_stream *)base;
    ptth_resolve_release(s->job);
    if (s->addrs != NULL)
        freeaddrinfo(s->addrs);
    if (s->base.fd >= 0)
        close(s->base.fd);
    free(s);
}

/* A broken tunnel resets the backend connection. */
static void
tcp_abort(ptth_stream *s)
{
    if (s->fd >= 0)
        ptth_sock_reset_on_close(s->fd);
    tcp_close(s);
}

const ptth_transport ptth_transport_tcp = {
    .name = "tcp",
    .open = tcp_open,
    .finish_open = tcp_finish_open,
    .read = tcp_read,
    .write = tcp_write,
    .shutdown_write = tcp_shutdown_write,
    .close = tcp_close,
    .abort = tcp_abort,
};
