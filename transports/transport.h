/*
 * transport.h: how ptth_server reaches a backend. One table of operations per
 * kind of backend (tcp.c, unix.c, nvme.c, cc.c), like Redis's ConnectionType or
 * curl's Curl_cftype. The server terminator's core only uses this header and
 * knows nothing of any one transport.
 *
 * A stream has one file descriptor, `fd`, that the caller polls with its event
 * loop (edge- or level-triggered) and never reads, writes or closes itself:
 *
 *   1. ptth_transport_open() starts opening; it returns a stream whose `fd` is
 *      to be polled for `open_events` (EPOLLIN and/or EPOLLOUT). When the fd
 *      is ready, call finish_open(): 0 = open (from now on poll `fd`, which may
 *      have changed, for EPOLLIN/EPOLLOUT as needed), -EINPROGRESS = keep
 *      waiting (open_events/fd may have changed), other negative = failed
 *      with the reason in err; then call close().
 *   2. read(): >0 bytes, 0 = the backend half-closed (end of stream),
 *      -EAGAIN = nothing now (wait for EPOLLIN), other negative = broken.
 *   3. write(): >0 bytes taken (may be fewer than len), -EAGAIN = full (wait
 *      for EPOLLOUT), other negative = broken.
 *   4. shutdown_write(): no more bytes will be written (the client sent FIN);
 *      the backend sees end of stream once what was written is delivered.
 *   5. close(): ends the stream at once and frees it. Always called once.
 *
 * Transports whose device calls block (NVMe) or that multiplex many streams
 * over one channel (comm channel) hand out one end of a socketpair and pump
 * the other end from their own thread, so the fd behaves like a socket.
 * Errors are reported as negative errno plus, where a reason is asked for, a
 * one-line text naming what failed and the value (address, path, device).
 */
#ifndef PTTH_TRANSPORT_H
#define PTTH_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "target.h"

typedef struct ptth_stream ptth_stream;

typedef struct ptth_open_info {
    const char *client_addr; /* "ADDR:PORT" of the original client, or NULL */
    int proxy_protocol;      /* send a PROXY v2 header first (TCP), SPEC §5 */
    const char *conn;        /* the tunnel's id, for the transport's own log lines (udp), or NULL */
} ptth_open_info;

typedef struct ptth_transport {
    const char *name; /* "tcp", "unix", "nvme", "cc", "udp" */
    int (*open)(const ptth_target *target, const ptth_open_info *info, ptth_stream **out, char *err, size_t errlen);
    int (*finish_open)(ptth_stream *s, char *err, size_t errlen);
    ssize_t (*read)(ptth_stream *s, void *buf, size_t len);
    ssize_t (*write)(ptth_stream *s, const void *buf, size_t len);
    int (*shutdown_write)(ptth_stream *s);
    void (*close)(ptth_stream *s);
    /* optional: like close, when the tunnel broke (the client reset, the
     * relay gone): the backend is told the stream did not end normally (TCP
     * reset) where the kind can; NULL: close */
    void (*abort)(ptth_stream *s);
} ptth_transport;

struct ptth_stream {
    const ptth_transport *transport;
    int fd;               /* poll this; owned by the transport */
    uint32_t open_events; /* while opening: the epoll events to wait for */
};

/* The table for a target's kind. Never NULL. */
const ptth_transport *ptth_transport_for(const ptth_target *target);

/* Convenience wrappers over the table. */
int ptth_transport_open(const ptth_target *target, const ptth_open_info *info, ptth_stream **out, char *err, size_t errlen);
static inline int
ptth_stream_finish_open(ptth_stream *s, char *err, size_t errlen)
{
    return s->transport->finish_open(s, err, errlen);
}
static inline ssize_t
ptth_stream_read(ptth_stream *s, void *buf, size_t len)
{
    return s->transport->read(s, buf, len);
}
static inline ssize_t
ptth_stream_write(ptth_stream *s, const void *buf, size_t len)
{
    return s->transport->write(s, buf, len);
}
static inline int
ptth_stream_shutdown_write(ptth_stream *s)
{
    return s->transport->shutdown_write(s);
}
static inline void
ptth_stream_close(ptth_stream *s)
{
    s->transport->close(s);
}
static inline void
ptth_stream_abort(ptth_stream *s)
{
    if (s->transport->abort != NULL)
        s->transport->abort(s);
    else
        s->transport->close(s);
}

/* Call once at exit, after closing every stream: waits (at most 3 s) for the
 * helper threads of transports that have them (nvme) to finish, so that a
 * clean exit frees everything. */
void ptth_transports_cleanup(void);

extern const ptth_transport ptth_transport_tcp;
extern const ptth_transport ptth_transport_unix;
extern const ptth_transport ptth_transport_nvme;
extern const ptth_transport ptth_transport_cc;
extern const ptth_transport ptth_transport_udp;

#endif
