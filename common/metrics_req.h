/*
 * metrics_req.h: what the terminators' metrics endpoint (metrics_server.h)
 * answers to a request head, and the response bytes. No sockets here, so
 * that the unit tests and the fuzz target (tests/fuzz/fuzz_metrics_req.c)
 * reach all of it.
 *
 * The head is parsed by picohttpparser (phr_parse_request, exported by
 * libh2o-evloop; common/picohttp.h). Only one request per connection is
 * served (the answer says Connection: close), so a body or a pipelined second
 * request is never read.
 */
#ifndef PTTH_METRICS_REQ_H
#define PTTH_METRICS_REQ_H

#include <stddef.h>

#include "sbuf.h"

#define PTTH_METRICS_REQ_MAX 8192   /* a longer head is answered 431 */
#define PTTH_METRICS_REQ_HEADERS 32 /* more header lines: 400 */

/* The status to answer the bytes received so far (buf[0..len)), or 0 when
 * the head is not complete yet and may still be (len < PTTH_METRICS_REQ_MAX):
 *   200 GET /metrics (a query string is allowed and ignored), HTTP/1.0 or 1.1
 *   404 GET of any other path
 *   405 any other method (the answer carries Allow: GET)
 *   400 a malformed head, or more than PTTH_METRICS_REQ_HEADERS header lines
 *   431 no complete head within PTTH_METRICS_REQ_MAX bytes */
int ptth_metrics_req_status(const char *buf, size_t len);

/* Appends a whole HTTP/1.1 response with Connection: close: for 200 the body
 * given as Prometheus text (text/plain; version=0.0.4), for other statuses a
 * one-line text body (body is ignored). */
void ptth_metrics_response(ptth_sbuf *out, int status, const char *body, size_t body_len);

#endif
