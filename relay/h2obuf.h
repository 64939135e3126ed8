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

#endif
