/*
 * h2_client.h: ptth's own HTTP/2 client for the connections to the relay,
 * on libnghttp2 and OpenSSL, driven by the terminator's loop. relay_client.c
 * sends every request through it while the relay speaks HTTP/2, and through
 * libcurl otherwise (see relay_client.h).
 *
 * Why not libcurl for this: every tunnel has a long-lived framed stream
 * whose reader pauses when its local socket is full. libcurl 7.88 (Debian
 * 12) cannot pause one HTTP/2 stream without stalling its whole connection,
 * and cannot reuse prior-knowledge connections (curl #10634), so with it
 * each tunnel needed a TCP connection of its own. Here each stream has its
 * own flow-control window that we open only as the caller takes the bytes
 * (automatic WINDOW_UPDATE is off, nghttp2_session_consume() once on_body()
 * took them), so a paused stream holds back only itself, and all requests of
 * all tunnels share a few connections: a new one is opened only when every
 * open one carries as many streams as the relay allows
 * (SETTINGS_MAX_CONCURRENT_STREAMS, 100 with h2o 2.2.5).
 *
 * Connections: http:// speaks HTTP/2 with prior knowledge; https:// offers
 * "h2" and "http/1.1" through ALPN and checks the certificate and host name (unless
 * insecure). Requests wait until a connection has the relay's SETTINGS, so a
 * connection that turns out not to speak HTTP/2 (ALPN chose nothing or
 * http/1.1; an HTTP/1.x answer to the preface) has sent no request: the
 * client then marks itself unavailable and hands every waiting request to
 * on_fallback, and relay_client.c sends them through libcurl instead.
 * A transient failure (refused, reset, timeout) never does that: it fails
 * the requests waiting for that connection with the reason.
 *
 * Requests follow relay_client.h's ptth_req contract (on_headers and on_body
 * run inside nghttp2's callbacks and must not start, cancel or resume
 * requests; on_done always runs from a deferred call of the loop). A stream
 * the relay refuses unprocessed (REFUSED_STREAM, or above a GOAWAY's last
 * stream id) is sent again on another connection.
 *
 * Ownership: the client copies the path; the header lines and the body stay
 * the caller's and must not change while the request is active.
 *
 * Inside: h2_client.c is the pool and the requests, h2_session.c one
 * connection (nghttp2 on a byte stream: bstream_sock.h, bstream_tls.h);
 * h2_internal.h is what the two share.
 */
#ifndef PTTH_H2_CLIENT_H
#define PTTH_H2_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include "loop.h"
#include "relay_client.h"

typedef struct ptth_h2_client ptth_h2_client;

#define PTTH_H2_LIVENESS_MS 10000L /* the default of liveness_ms */

typedef struct ptth_h2_config {
    const char *url;        /* http:// or https://, optional path prefix (checked by relay_client) */
    const char *auth_value; /* "Bearer KEY" */
    const char *user_agent;
    const char *instance; /* PTTH-Instance value, or NULL */
    const char *ca_file; /* or NULL: the system's CAs */
    bool insecure;
    /* a connection with open streams that brings nothing for this long is
     * sent a PING, and closed as dead when nothing comes within as long
     * again (a NAT or proxy that dropped it without a reset); 0: 10 s */
    long liveness_ms;
    /* r (not active any more in this client) must be sent another way; the
     * arguments are those given to ptth_h2_req_start() */
    void (*on_fallback)(void *data, ptth_req *r, ptth_req_kind kind, const char *path, const char *const *headers,
                        const void *body, size_t body_len);
    /* r is about to get its on_done(): it is no longer active */
    void (*on_release)(void *data, ptth_req *r);
    void *data;
} ptth_h2_client_config;

/* 0, or a negative errno with the reason in err (bad URL, CA file that
 * cannot be read, out of memory). */
int ptth_h2_client_new(ptth_loop *loop, const ptth_h2_client_config *cfg, ptth_h2_client **out, char *err, size_t errlen);
/* Closes every connection. Requests still active are dropped without
 * callbacks (relay_client cancels them first). */
void ptth_h2_client_free(ptth_h2_client *cl);

/* True once a connection showed that the relay (or a proxy in front of it)
 * does not speak HTTP/2: new requests should go another way. */
bool ptth_h2_client_unavailable(const ptth_h2_client *cl);

/* Starts a POST of base path + path (see relay_client.h). 0, or -E2BIG
 * (too many or too long headers, path too long), -ENOMEM. */
int ptth_h2_req_start(ptth_h2_client *cl, ptth_req *r, ptth_req_kind kind, const char *path, const char *const *headers,
                      const void *body, size_t body_len);
void ptth_h2_req_cancel(ptth_req *r);
void ptth_h2_req_resume(ptth_req *r);

#endif
