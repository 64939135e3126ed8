/*
 * reply.h: answering h2o requests, now or later.
 *
 * Most relay requests are answered after a while (a listen waits for a
 * client, a connect for the server's accept, a chunk for its turn in the
 * stream). A ptth_hold keeps such a request: it lives in the request's memory
 * pool (h2o_mem_alloc_shared), so h2o frees it together with the request.
 * The tunnel core's record of a held request lives right behind its hold
 * (core_h2o.c).
 *
 * Ownership and lifetime, the one rule: a hold may be referenced only while
 * hold->req != NULL. It stops being usable in exactly two ways:
 *   - the relay takes the request back (ptth_hold_release) to answer it or
 *     to make it a stream: req is cleared before h2o sees the answer; the
 *     caller must already have dropped its references;
 *   - h2o disposes the request first (the peer went away, the HTTP/2 stream
 *     was reset, the relay shut down): req is cleared and on_gone(hold) runs
 *     once, and must drop every reference to the hold.
 * After either, the memory is released by h2o at some later point.
 */
#ifndef PTTH_RELAY_REPLY_H
#define PTTH_RELAY_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <h2o.h>

#include "peerwatch.h"

typedef struct ptth_hold ptth_hold;
typedef void (*ptth_hold_cb)(ptth_hold *hold);

struct ptth_hold {
    h2o_req_t *req;       /* NULL once answered or gone */
    ptth_hold_cb on_gone; /* may be NULL */
    ptth_peer_watch peer; /* see ptth_hold_watch_peer() */
};

/* Allocates a hold of size bytes (>= sizeof(ptth_hold), so that a larger
 * struct may start with one) in req's pool, zeroed. */
ptth_hold *ptth_hold_new(h2o_req_t *req, size_t size, ptth_hold_cb on_gone);

/* Over HTTP/1.x: when the request's peer closes its connection while the
 * hold waits, the hold ends as if h2o had disposed the request (req cleared,
 * on_gone runs) and the request is answered, so that h2o finds the closed
 * connection and cleans up. Nothing for HTTP/2 (h2o notices by itself). */
void ptth_hold_watch_peer(ptth_hold *hold, ptth_peerset *peers);

/* Detaches the hold from its request (the caller is about to use hold->req
 * in another way, e.g. as a stream) and returns the request. */
h2o_req_t *ptth_hold_release(ptth_hold *hold);

/* Answers req at once: status, a text body (NULL for none). Response headers
 * already added to req->res.headers are kept. */
void ptth_reply(h2o_req_t *req, int status, const char *body);

/* Same, with a Retry-After header of secs seconds. */
void ptth_reply_retry(h2o_req_t *req, int status, unsigned secs, const char *body);

/* Adds a response header (name lowercase); value is copied into the pool. */
void ptth_reply_header(h2o_req_t *req, const char *name, const char *value, size_t len);

/* The value of a request header (name lowercase) or NULL (then *len = 0). */
const char *ptth_req_header(h2o_req_t *req, const char *name, size_t *len);

/* true when req came over HTTP/1.x and its peer closed the connection. h2o
 * 2.2.5 stops reading an HTTP/1 connection while a request is processed, so
 * it notices a vanished client only at its next write; this peeks (MSG_PEEK,
 * non-blocking, nothing consumed) at the socket to find out now. Always false
 * for HTTP/2, where h2o keeps reading and resets the request itself. */
bool ptth_req_peer_closed(h2o_req_t *req);

/* Reason phrase of an HTTP status. */
const char *ptth_status_reason(int status);

#endif
