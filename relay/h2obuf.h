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
 * - HTTP/2 request bodies start at --max-chunk bytes (at most
 *   PTTH_H2OBUF_BODY_START_MAX): h2o makes them from its default prototype
 *   (h2o_socket_buffer_prototype), whose initial capacity the relay raises,
 *   so a chunk is received into one buffer allocated at its first DATA
 *   frame. A body the relay does not use (any request but a chunk: a
 *   listen, connect or accept sent with an empty DATA frame) is freed as
 *   soon as the request arrives, so held requests keep no such buffer.
 * - HTTP/1 connections (their input buffers would otherwise start from that
 *   prototype too) keep an 8 KiB start: h2o keeps an HTTP/1 request's head
 *   in its input buffer until the response ends, and the relay holds such
 *   requests (listens, connects, framed streams) for long.
 * - A chunk's body buffer is then handed to the framed stream, which sends
 *   from it (ptth_h2obuf_take_body, ptth_fstream_write_owned).
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

#include <stdbool.h>
#include <stddef.h>

#include <h2o.h>

/* Initial capacity of an HTTP/2 connection's input buffer. */
#define PTTH_H2OBUF_BULK_INPUT (1024 * 1024)

/* Largest start given to HTTP/2 request bodies (a larger --max-chunk lets
 * bodies above it grow as before). */
#define PTTH_H2OBUF_BODY_START_MAX (1024 * 1024)

/* Sizes h2o's default buffer prototype for request bodies of max_chunk
 * bytes. Call before h2o allocates from it (ptth_relay_init); calling again
 * with another size is safe (the prototype's free buffers are released). */
void ptth_h2obuf_init(size_t max_chunk);

/* A connection was accepted (before h2o_accept): its input buffer starts
 * at 8 KiB, whatever ptth_h2obuf_init() did to h2o's default. */
void ptth_h2obuf_on_accept(h2o_socket_t *sock);

/* A request arrived: over HTTP/2, its connection reads into bulk buffers
 * from now on, and unless uses_body its body buffer is freed now (the
 * relay ignores the body of any request but a chunk; req->entity is then
 * empty). */
void ptth_h2obuf_on_request(h2o_req_t *req, bool uses_body);

/* Takes the buffer that holds req's body (req->entity) away from h2o, so
 * that the body outlives the request: over HTTP/2 only (the stream's request
 * body buffer), NULL otherwise (HTTP/1: the body is in the connection's
 * input buffer; then req->entity is left as it is). On success req->entity
 * is cleared, the buffer's bytes and size are the body, and the caller
 * disposes it (h2o_buffer_dispose). */
h2o_buffer_t *ptth_h2obuf_take_body(h2o_req_t *req);

#endif
