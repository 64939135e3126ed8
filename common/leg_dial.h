/*
 * leg_dial.h: how the upgraded legs of one relay client (leg.h) reach the
 * relay. Made once per ptth_relay_client, so that what every leg needs is
 * worked out once, not per tunnel:
 *
 *   - the base URL split (libcurl's URL parser, the one that connects the
 *     legs through a forward proxy, so both agree on host and port): TLS or
 *     not, the Host header value, the path prefix without trailing slash;
 *   - without a forward proxy (direct), the connection itself, with our own
 *     byte-stream layers (bstream_sock.h, and bstream_tls.h on https://)
 *     instead of a libcurl connect-only job: the socket layer with the
 *     relay's addresses, and TLS with a client context of the legs' own.
 *
 * Resolution (direct): the relay's host is resolved by the first leg and
 * the addresses are kept for PTTH_LEG_DIAL_DNS_TTL_MS (an IP literal needs
 * no resolver and is kept for good). getaddrinfo blocks the loop; once a
 * minute at most, not once per tunnel, is what libcurl's DNS cache (60 s)
 * gave the legs before; a resolver that fails is asked again by the next
 * leg (nothing is kept).
 *
 * TLS context (direct, https://): made by the first leg and kept: ALPN
 * offers http/1.1 only (h2, which the HTTP/2 client's context offers
 * first, would make the relay leave HTTP/1.1 and the upgrade impossible),
 * the same CA file and --insecure as every other request (certificate
 * chain and host name checked unless insecure), an end of the connection
 * without close_notify taken for an end (the tunnel's FIN frames carry
 * the stream's end), and read-ahead into a
 * PTTH_LEG_DIAL_TLS_READ_BUFFER buffer (one socket read brings several
 * 16 KiB records), as libcurl's legs had.
 *
 * Not direct (a forward proxy may apply, or PTTH_HTTP_CLIENT=curl): the
 * legs connect with ptth_conn_job (relay_client.h) as before, and this
 * module gives them only the URL split.
 *
 * Ownership: the relay client's; the texts returned live as long as it.
 * ptth_leg_dial_open() gives the caller the stream (bstream.h), which it
 * closes. Single-threaded, the loop's thread.
 */
#ifndef PTTH_LEG_DIAL_H
#define PTTH_LEG_DIAL_H

#include <stdbool.h>
#include <stddef.h>

#include "bstream.h"
#include "loop.h"

#define PTTH_LEG_DIAL_DNS_TTL_MS 60000
#define PTTH_LEG_DIAL_CONNECT_TIMEOUT_MS 10000L /* the relay client's connect timeout (docs/ptth_server.md) */
#define PTTH_LEG_DIAL_TLS_READ_BUFFER (64 * 1024)

typedef struct ptth_leg_dial ptth_leg_dial;

typedef struct ptth_leg_dial_config {
    const char *url;     /* the base URL, without trailing slash */
    const char *ca_file; /* or NULL: the system's CAs */
    bool insecure;
    bool direct; /* connect with our own layers (no forward proxy in the way) */
} ptth_leg_dial_config;

/* 0, or a negative errno (-EINVAL a URL libcurl cannot split, -E2BIG parts
 * too long, -ENOMEM) with the reason in err. */
int ptth_leg_dial_new(ptth_loop *loop, const ptth_leg_dial_config *cfg, ptth_leg_dial **out, char *err, size_t errlen);
void ptth_leg_dial_free(ptth_leg_dial *d);

bool ptth_leg_dial_is_tls(const ptth_leg_dial *d);        /* https:// */
bool ptth_leg_dial_direct(const ptth_leg_dial *d);        /* legs connect with ptth_leg_dial_open() */
const char *ptth_leg_dial_host_header(const ptth_leg_dial *d); /* "host" or "host:port" as in the URL */
const char *ptth_leg_dial_prefix(const ptth_leg_dial *d);      /* "" or "/pfx" */

/* Starts connecting a leg (direct only): the socket layer, with TLS on top
 * on https://. on_event(data, events) reports the socket's events until the
 * stream is closed; the caller calls ptth_bstream_connect() on them until 0,
 * and bounds the wait itself (PTTH_LEG_DIAL_CONNECT_TIMEOUT_MS). 0 with
 * *out, or a negative errno with why ("cannot resolve: ...", "connect: ...",
 * "cannot load CA certificates ...") and nothing open. */
int ptth_leg_dial_open(ptth_leg_dial *d, ptth_bstream_event_cb on_event, void *data, ptth_bstream **out, char *why,
                       size_t whylen);

#endif
