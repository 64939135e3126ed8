/*
 * h2obuf.h: how the relay sizes and owns h2o 2.2.5's input buffers, so that
 * the bytes of a chunk are copied as few times as h2o allows
 * (docs/performance.md, "Relay copies").
 *
 * h2o reads a socket into sock->input, an h2o_buffer_t that starts at its
 * prototype's initial capacity and doubles (copying what it holds) while a
 * read fills it; the HTTP/2 code then copies each DATA frame into the
 * stream's request body, another h2o_buffer_t that doubles the same way.
 * With h2o's default prototype (8 KiB) a 256 KiB chunk was copied about 2.4
 * times by that growth alone.
 *
 * - HTTP/2 connections read into buffers of PTTH_H2OBUF_BULK_INPUT bytes
 *   (their own prototype, set when the first request arrives). h2o frees an
 *   HTTP/2 connection's input buffer whenever it has parsed all of it, so an
 *   idle connection holds none.
 * - HTTP/1 connections keep h2o's 8 KiB start: h2o keeps an HTTP/1
 *   request's head in its input buffer until the response ends, and the
 *   relay holds such requests (listens, connects, framed streams) for long.
 *
 * Everything here touches h2o's internals (the request body buffer of an
 * HTTP/2 stream, include/h2o/http2_internal.h), checked for h2o 2.2.x at
 * compile time; with another h2o the functions do nothing and the relay
 * copies as before.
 *
 * One thread (the relay's loop): the prototypes are per-thread in h2o.
 */
#ifndef PTTH_RELAY_H2OBUF_H
#define PTTH_RELAY_H2OBUF_H

#include <h2o.h>

/* Initial capacity of an HTTP/2 connection's input buffer. */
#define PTTH_H2OBUF_BULK_INPUT (1024 * 1024)

/* A request arrived: over HTTP/2, its connection reads into bulk buffers
 * from now on. */
void ptth_h2obuf_on_request(h2o_req_t *req);

/* Takes the buffer that holds req's body (req->entity) away from h2o, so
 * that the body outlives the request: over HTTP/2 only (the stream's request
 * body buffer), NULL otherwise (HTTP/1: the body is in the connection's
 * input buffer; then req->entity is left as it is). On success req->entity
 * is cleared, the buffer's bytes and size are the body, and the caller
 * disposes it (h2o_buffer_dispose). */
h2o_buffer_t *ptth_h2obuf_take_body(h2o_req_t *req);

#endif
