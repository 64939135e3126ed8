/*
 * fstream.h: a framed stream (SPEC §4): the body of a `connect` or `accept`
 * response, written frame by frame with an h2o generator.
 *
 * Backpressure follows h2o's rule of one h2o_send in flight per request
 * (h2o v2.2.5 lib/core/proxy.c, do_send/do_proceed): frames written while a
 * send is in flight wait in `pending` and go out with the next send, after
 * h2o's proceed callback. The owner learns that everything it wrote so far
 * was taken by h2o through on_writable; that is when the relay answers the
 * chunks whose bytes it wrote (SPEC: 204 once handed to the other side).
 *
 * Ownership: the stream lives in its request's pool and is freed by h2o with
 * the request. The owner (a tunnel) holds a pointer until it calls
 * ptth_fstream_finish() or until on_broken runs; after either the stream makes
 * no more callbacks and the owner must forget the pointer.
 *
 * A peer that goes away is noticed by h2o over HTTP/2, and over HTTP/1.x by the
 * relay's peer watch (peerwatch.h); the heartbeat's peek is a second check.
 *
 * Heartbeat: after `heartbeat` idle time (nothing written), a PING frame goes
 * out so that proxies keep the response open. The stream starts with a PING
 * so that the response headers leave h2o (and any proxy) at once.
 */
#ifndef PTTH_RELAY_FSTREAM_H
#define PTTH_RELAY_FSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <h2o.h>

#include "peerwatch.h"

typedef struct ptth_fstream ptth_fstream;

typedef struct ptth_fstream_callbacks {
    /* All frames written so far were handed to h2o, and h2o wants more. */
    void (*on_writable)(ptth_fstream *s, void *owner);
    /* The HTTP response failed (peer gone, stream reset) before finish; the
     * stream is detached from its owner when this runs. */
    void (*on_broken)(ptth_fstream *s, void *owner);
} ptth_fstream_callbacks;

/* Most payloads one send carries from their own buffers (one per chunk of a
 * batch: tunnel.c batches at most the window of 8 chunks). */
#define PTTH_FSTREAM_MAX_OWNED 8

/* Smaller payloads are copied even when they could be sent by reference. */
#define PTTH_FSTREAM_COPY_BELOW 4096

/* Payloads that stay in their own h2o_buffer_t: buf[i] goes out after at[i]
 * bytes of the frame bytes. */
typedef struct ptth_fstream_owned {
    unsigned n;
    uint32_t at[PTTH_FSTREAM_MAX_OWNED];
    h2o_buffer_t *buf[PTTH_FSTREAM_MAX_OWNED];
} ptth_fstream_owned;

/* Frames on their way: headers and copied payloads in bytes, and the owned
 * payloads (allocated with the first one, so that an idle stream holds
 * none). Everything here belongs to the stream. */
typedef struct ptth_fstream_buf {
    uint8_t *bytes;
    size_t size, capacity;
    ptth_fstream_owned *owned; /* NULL when none */
} ptth_fstream_buf;

struct ptth_fstream {
    h2o_generator_t super; /* first: h2o hands it back to the callbacks */
    h2o_req_t *req;        /* NULL once the final send was made or the response broke */
    const ptth_fstream_callbacks *cb;
    void *owner;              /* NULL when detached */
    ptth_fstream_buf pending;  /* frames not yet given to h2o */
    ptth_fstream_buf inflight; /* what h2o holds until proceed */
    bool sending;             /* an h2o_send is in flight */
    bool finishing;           /* end the response after pending */
    bool aborting;            /* ... with H2O_SEND_STATE_ERROR */
    size_t *live_counter;     /* decremented when the stream is freed */
    h2o_timeout_t *heartbeat;
    h2o_timeout_entry_t heartbeat_entry;
    h2o_loop_t *loop;
    uint64_t bytes_written; /* frame bytes handed to h2o */
    ptth_peer_watch peer;   /* HTTP/1.x: the peer closing breaks the stream at once */
};

/* Starts a 200 response on req whose body is a framed stream, with
 * Cache-Control: no-store, X-Accel-Buffering: no and content type
 * application/octet-stream (headers added to req->res.headers before are
 * kept), and sends a first PING. live_counter (may be NULL) is incremented
 * now and decremented when h2o frees the stream. Over HTTP/1.x the peer is
 * watched (peers, may be NULL): when it closes its connection, on_broken runs
 * at once and the response is ended. */
ptth_fstream *ptth_fstream_open(h2o_req_t *req, h2o_loop_t *loop, h2o_timeout_t *heartbeat, const ptth_fstream_callbacks *cb,
                              void *owner, size_t *live_counter, ptth_peerset *peers);

/* Appends one frame (header + copy of payload) to pending. Nothing is sent
 * before ptth_fstream_flush(). 0, -EPIPE when the stream is finished or broken,
 * -ENOMEM. */
int ptth_fstream_write(ptth_fstream *s, uint8_t type, const void *payload, size_t len);

/* Appends one frame whose payload is all of *body, an h2o buffer the stream
 * takes over (*body is set to NULL, whatever the result): h2o sends the
 * payload from that buffer, which the stream disposes once h2o is done with
 * it (proceed, or the end of the response), so the payload is not copied
 * here. A payload under PTTH_FSTREAM_COPY_BELOW bytes (cheaper to copy than
 * to keep track of), or one when PTTH_FSTREAM_MAX_OWNED already wait, is
 * copied.
 * Results as for ptth_fstream_write(). */
int ptth_fstream_write_owned(ptth_fstream *s, uint8_t type, h2o_buffer_t **body);

/* Appends len bytes that are whole frames already (a raw chunk body,
 * docs/protocol.md "Resumable tunnels"), copied. Results as for
 * ptth_fstream_write(). */
int ptth_fstream_write_raw(ptth_fstream *s, const void *bytes, size_t len);

/* Hands pending frames to h2o unless a send is already in flight (then they
 * follow after proceed). */
void ptth_fstream_flush(ptth_fstream *s);

/* true when nothing is pending or in flight: a write now goes out at once. */
bool ptth_fstream_idle(const ptth_fstream *s);

/* Ends the response after the pending frames and detaches the owner: no more
 * callbacks. */
void ptth_fstream_finish(ptth_fstream *s);

/* Ends the response abnormally and detaches the owner: what is pending is
 * dropped, and the final send (now, or at proceed when one is in flight)
 * has H2O_SEND_STATE_ERROR, which h2o 2.2.5 turns into an RST_STREAM over
 * HTTP/2 and a connection closed without the last chunk over HTTP/1.1. */
void ptth_fstream_abort(ptth_fstream *s);

#endif
