/*
 * bstream.h: a byte stream as a stack of layers, each layer the same small
 * table of operations (the shape of curl's connection filters,
 * lib/cfilters.h). A connection is its layers stacked:
 *
 *     HTTP/2 session (h2_session.c)     uses the top layer
 *     TLS            (bstream_tls.h)    optional
 *     socket         (bstream_sock.h)   resolve, non-blocking TCP connect
 *
 * A forward-proxy CONNECT layer fits between the socket and TLS, an HTTP/1.1
 * upgrade client on top beside the HTTP/2 session: one more implementation
 * of this table, not an if in every caller. Each layer holds the one below
 * (ptth_bstream.lower) and calls it only through this table; it never knows
 * what is above it. Each keeps its own state as a named enum in its file.
 *
 * Events: only the bottom layer has a descriptor. It watches it on the
 * terminator's loop (loop.h) and reports every event to the owner of the
 * stack through the callback it was made with (ptth_bstream_event_cb).
 * While a layer connects it asks for the events it waits for itself (the
 * socket for writable, TLS for what the handshake wants); once connected,
 * the owner says what it wants with ptth_bstream_want(), which each layer
 * passes down. Level-triggered, like every watch of the loop.
 *
 * Results, the same in every operation:
 *   >= 0      done: connect 0 when connected, send/recv a byte count
 *             (recv 0: the end of the stream)
 *   -EAGAIN   would block: call again after the next event
 *   other < 0 a negative errno: the stream failed, why (when given) holds
 *             what failed for logs ("connect: Connection refused", "TLS
 *             read from relay: ..."); nothing but close is called after it;
             -ECONNRESET / -EPIPE when the socket was reset / broken
 * send and recv may move fewer bytes than asked. After a send returned
 * -EAGAIN, the next send must start with the same bytes (at least as many:
 * TLS repeats the record it could not finish).
 *
 * Ownership: each layer owns the one below; ptth_bstream_close() on the top
 * frees the whole stack, and no event is reported after it. Single-threaded,
 * from the loop's thread, like loop.h.
 */
#ifndef PTTH_BSTREAM_H
#define PTTH_BSTREAM_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

typedef struct ptth_bstream ptth_bstream;

/* What ptth_bstream_query() asks; the type *out points to is given. */
typedef enum ptth_bstream_q {
    PTTH_BSTREAM_Q_FD,                /* int: the socket's descriptor (bottom layer) */
    PTTH_BSTREAM_Q_TLS,               /* bool: some layer encrypts */
    PTTH_BSTREAM_Q_ALPN,              /* const char *: the protocol ALPN chose, "" none; -ENOTSUP without TLS */
    PTTH_BSTREAM_Q_GATHER,            /* bool: send takes several buffers in one call, so sending the caller's
                                       * memory without a copy pays (a socket: sendmsg); else it takes from
                                       * the first buffer only and the caller gathers small ones itself */
    PTTH_BSTREAM_Q_SHORT_READ_DRAINS, /* bool: a recv shorter than asked leaves nothing to read before
                                       * the next readable event (a socket: yes; TLS returns a record
                                       * at a time: read until -EAGAIN) */
} ptth_bstream_q;

/* An event of the bottom layer's descriptor (EPOLLIN, EPOLLOUT, EPOLLERR,
 * EPOLLHUP), for the owner of the stack. */
typedef void (*ptth_bstream_event_cb)(void *data, uint32_t events);

typedef struct ptth_bstream_type {
    const char *name; /* "sock", "tls": for logs */
    /* Moves the connect on, the layers below first: 0 connected (a no-op
     * once it is), -EAGAIN under way, another negative errno failed. */
    int (*connect)(ptth_bstream *bs, char *why, size_t whylen);
    ssize_t (*send)(ptth_bstream *bs, const struct iovec *iov, int iovcnt, char *why, size_t whylen);
    ssize_t (*recv)(ptth_bstream *bs, void *buf, size_t len, char *why, size_t whylen);
    /* The events the owner waits for (once connected): readable, writable. */
    void (*want)(ptth_bstream *bs, bool read, bool write);
    /* Ends our direction politely (TLS close_notify, then the socket's FIN);
     * reading goes on. 0 done, -EAGAIN call again when writable, or failed. */
    int (*shutdown)(ptth_bstream *bs, char *why, size_t whylen);
    /* Makes the coming close a TCP reset (no TLS close_notify, no FIN), so
     * the peer takes it for a broken stream, not an end. Close follows. */
    void (*abort)(ptth_bstream *bs);
    /* Frees this layer and the ones below. */
    void (*close)(ptth_bstream *bs);
    /* 0 with *out filled, or what the layer below answers (-ENOTSUP at the
     * bottom for what no layer knows). */
    int (*query)(ptth_bstream *bs, ptth_bstream_q q, void *out);
} ptth_bstream_type;

/* The part every layer starts with; the rest of a layer is its own. */
struct ptth_bstream {
    const ptth_bstream_type *type;
    ptth_bstream *lower; /* the layer below (owned), NULL at the bottom */
};

static inline int
ptth_bstream_connect(ptth_bstream *bs, char *why, size_t whylen)
{
    return bs->type->connect(bs, why, whylen);
}

static inline ssize_t
ptth_bstream_send(ptth_bstream *bs, const struct iovec *iov, int iovcnt, char *why, size_t whylen)
{
    return bs->type->send(bs, iov, iovcnt, why, whylen);
}

static inline ssize_t
ptth_bstream_recv(ptth_bstream *bs, void *buf, size_t len, char *why, size_t whylen)
{
    return bs->type->recv(bs, buf, len, why, whylen);
}

static inline void
ptth_bstream_want(ptth_bstream *bs, bool read, bool write)
{
    bs->type->want(bs, read, write);
}

static inline int
ptth_bstream_shutdown(ptth_bstream *bs, char *why, size_t whylen)
{
    return bs->type->shutdown(bs, why, whylen);
}

static inline void
ptth_bstream_abort(ptth_bstream *bs)
{
    bs->type->abort(bs);
}

/* NULL is a no-op. */
static inline void
ptth_bstream_close(ptth_bstream *bs)
{
    if (bs != NULL)
        bs->type->close(bs);
}

static inline int
ptth_bstream_query(ptth_bstream *bs, ptth_bstream_q q, void *out)
{
    return bs != NULL ? bs->type->query(bs, q, out) : -ENOTSUP;
}

/* A bool query, false when no layer knows. */
static inline bool
ptth_bstream_is(ptth_bstream *bs, ptth_bstream_q q)
{
    bool v = false;
    return ptth_bstream_query(bs, q, &v) == 0 && v;
}

#endif
