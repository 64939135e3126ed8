/*
 * relay_client.h: the HTTP client both terminators use to talk to ptth_relay
 * (SPEC §4), driven by the terminator's epoll loop.
 *
 * Every request is a POST to the base URL (which may carry a path prefix)
 * plus an API path, with `Authorization: Bearer KEY` and, when the config
 * has one, `PTTH-Instance: SLOT.LIFE` (instance.h; upgraded legs too). Two HTTP paths:
 *   - HTTP/2 (the normal case): our own client on libnghttp2, h2_client.c.
 *     Prior knowledge on http://, ALPN on https://. All requests of all
 *     tunnels, the long-lived framed streams included, are multiplexed over
 *     as few connections as the relay's SETTINGS_MAX_CONCURRENT_STREAMS
 *     allows (100 streams each with h2o 2.2.5); each stream has its own
 *     flow-control window, so a paused framed stream holds back only itself.
 *   - HTTP/1.1 through libcurl's multi interface, for a relay (or a proxy in
 *     front of it) that does not speak HTTP/2: h2_client.c finds that out
 *     before sending any request and hands everything to libcurl from then
 *     on. PTTH_HTTP_CLIENT=curl in the environment forces this path (with
 *     libcurl's own HTTP/2 where it can: h2c upgrade on http://, ALPN on
 *     https://; see choose_http_versions()).
 *
 * The request kinds matter to the libcurl path only:
 *   - PTTH_REQ_SHORT: listens, chunks, accept/reject/close answers. They
 *     never pause, and are multiplexed (CURLPIPE_MULTIPLEX) over a few
 *     HTTP/2 connections shared by all tunnels.
 *   - PTTH_REQ_STREAM: the framed-stream responses of `connect` and `accept`.
 *     Their reader may pause (backpressure from the local socket). libcurl
 *     7.88 (Debian 12) stops reading a whole HTTP/2 connection when a paused
 *     stream's buffer overflows, so there each framed stream has a
 *     connection of its own.
 *
 * Callbacks ("inside libcurl" below means inside libcurl or nghttp2):
 *   - on_headers(r): the final status and the PTTH-* headers are known. Runs
 *     inside libcurl.
 *   - on_body(r, p, len): body bytes of a 2xx response (bodies of other
 *     statuses are kept, shortened, in r->reason). Return len when all were
 *     taken, or PTTH_REQ_PAUSE to get the same bytes again after
 *     ptth_req_resume(). Runs inside libcurl.
 *   - on_done(r, error): the request is over; error is NULL when a complete
 *     response was received (whatever its status), else a text saying what
 *     failed (connection refused, reset...). Runs from the loop, not inside
 *     libcurl: it may start, cancel and free anything, r included.
 * Code running inside libcurl must not start, cancel or resume requests:
 * it defers that work with ptth_defer_call().
 *
 * Ownership: a ptth_req is the caller's (usually embedded in a bigger
 * object); it is active from ptth_req_start() until on_done() or
 * ptth_req_cancel(). The body and the extra header lines passed to
 * ptth_req_start() are not copied (either client may send the request again
 * on a new connection) and must stay unchanged while the request is active; the
 * path is copied.
 */
#ifndef PTTH_RELAY_CLIENT_H
#define PTTH_RELAY_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "http_proxy.h"
#include "loop.h"

typedef struct ptth_relay_client ptth_relay_client;
typedef struct ptth_req ptth_req;

typedef struct ptth_relay_client_config {
    const char *url;     /* http:// or https://, optional path prefix */
    const char *key;     /* the Bearer key */
    const char *ca_file; /* trust these CAs instead of the system's; or NULL */
    bool insecure;       /* skip certificate and host name checks */
    const char *user_agent;
    const ptth_http_proxy *proxy; /* the forward proxy (http_proxy.h); NULL: the environment; kept, not copied */
    const char *instance; /* "SLOT.LIFE" (instance.h), sent as PTTH-Instance on every request; NULL: none */
    long liveness_ms;     /* HTTP/2: a silent connection's PING and dead time (h2_client.h); 0: the default */
} ptth_relay_client_config;

typedef enum ptth_req_kind {
    PTTH_REQ_SHORT = 0,
    PTTH_REQ_STREAM = 1,
} ptth_req_kind;

#define PTTH_REQ_PAUSE ((size_t)-1)

typedef struct ptth_req_ops {
    void (*on_headers)(ptth_req *r);
    size_t (*on_body)(ptth_req *r, const uint8_t *p, size_t len);
    void (*on_done)(ptth_req *r, const char *error);
} ptth_req_ops;

#define PTTH_REQ_FIELD_MAX 80
#define PTTH_REQ_REASON_MAX 256
#define PTTH_REQ_HEADERS_MAX 8 /* extra request header lines (a resume request has 7) */

struct ptth_req {
    /* set by the caller before ptth_req_start() */
    const ptth_req_ops *ops;
    void *data;
    long timeout_ms; /* whole request; 0: none */

    /* the response, filled in by the client */
    long status;                          /* 0 until the final status is known */
    long retry_after;                     /* Retry-After in seconds, -1 when absent */
    long max_chunk;                       /* PTTH-Max-Chunk (the relay's chunk limit), 0 when absent */
    char conn[PTTH_REQ_FIELD_MAX];        /* PTTH-Conn */
    char port[PTTH_REQ_FIELD_MAX];        /* PTTH-Port */
    char client_addr[PTTH_REQ_FIELD_MAX]; /* PTTH-Client-Addr */
    char client_name[PTTH_REQ_FIELD_MAX]; /* PTTH-Client of a listen answer (the client's name), "" when absent */
    char proto[8];                        /* PTTH-Proto of a listen answer ("tcp", "udp"), "" when absent */
    char reason[PTTH_REQ_REASON_MAX];     /* PTTH-Reason, or the start of a non-2xx body */
    bool timed_out;                       /* on_done's error is timeout_ms running out */
    long long seq;                        /* PTTH-Seq of the answer, -1 when absent */
    /* resumable tunnels on the chunked path (docs/protocol.md "Resumable tunnels") */
    char resume_token[64];                /* PTTH-Resume: a secret, never logged; "" when absent or not 1..63 base64url characters */
    long resume_grace;                    /* PTTH-Resume-Grace in seconds (at most a day), 0 when absent */
    long long peer_received, peer_sent;   /* PTTH-Peer-Received / PTTH-Peer-Sent, -1 when absent */
    long long epoch;                      /* PTTH-Epoch, -1 when absent */

    /* private */
    ptth_relay_client *client;
    struct ptth_easy *easy; /* while sent through libcurl */
    struct h2_stream *h2;   /* while sent through h2_client.c */
    ptth_req *prev_active, *next_active;
    ptth_req_kind kind;
    bool active;
    bool headers_done;
    bool paused;
    bool has_reason_header;
    bool auth_retried; /* sent again once with the scheme a 407 offered */
    long sent_auth;    /* the CURLOPT_PROXYAUTH it went with */
    size_t reason_len;
    struct curl_slist header_nodes[4 + PTTH_REQ_HEADERS_MAX]; /* our own nodes: no allocation per request */
};

/* Creates the client: checks the URL, prepares the Authorization header and
 * the curl multi handles (short requests, framed streams, connect-only
 * jobs). 0, or a negative errno with the reason in err. */
int ptth_relay_client_new(ptth_loop *loop, const ptth_relay_client_config *cfg, ptth_relay_client **out, char *err, size_t errlen);
/* Cancels whatever is still active (without callbacks) and frees the client. */
void ptth_relay_client_free(ptth_relay_client *c);

/* The base URL as given, without a trailing slash (for logs). */
const char *ptth_relay_client_url(const ptth_relay_client *c);

/* Starts POST base+path with the extra header lines (NULL-terminated array of
 * "Name: value", at most PTTH_REQ_HEADERS_MAX) and the body. 0, or a negative
 * errno (-E2BIG: URL too long or too many headers; -ENOMEM) and nothing
 * started. */
int ptth_req_start(ptth_relay_client *c, ptth_req *r, ptth_req_kind kind, const char *path, const char *const *headers,
                   const void *body, size_t body_len);

/* Stops an active request; no callback follows. A no-op when not active.
 * Not from inside libcurl. */
void ptth_req_cancel(ptth_req *r);

/* Delivery of the body continues after on_body() returned PTTH_REQ_PAUSE
 * (on_body may be called before this returns). Not from inside libcurl. */
void ptth_req_resume(ptth_req *r);

/* ---- for common/leg.c (the upgraded data path) ----
 *
 * A connect-only job (the legs' connection when a forward proxy may be in
 * the way, or PTTH_HTTP_CLIENT=curl; otherwise leg_dial.h connects them): libcurl connects to the relay of the base URL (TCP,
 * then TLS on https:// with ALPN offering http/1.1 only, the certificate
 * checked as for every request; same CA file, --insecure, user agent,
 * timeouts, keepalive and traces as the requests) with
 * CURLOPT_CONNECT_ONLY on a multi handle of its own, and hands the
 * connection over: once on_done(job, NULL) ran, job->curl carries it
 * (CURLINFO_ACTIVESOCKET, curl_easy_send/recv). on_done(job, error) runs
 * once, from the loop (not inside libcurl), with error NULL when connected,
 * else a text saying what failed (no secret in it).
 *
 * The easy handle stays in the multi handle until ptth_conn_job_end()
 * (libcurl 7.88 closes a connect-only connection when it is removed), so
 * the connection lives until then, also after on_done.
 *
 * Ownership: the job is the caller's, zeroed before its first start; active
 * from ptth_conn_job_start() until ptth_conn_job_end(), which the caller
 * calls exactly once (it may do so inside on_done). Jobs still active when
 * the client is freed are ended then (without callback). */
typedef struct ptth_conn_job ptth_conn_job;
struct ptth_conn_job {
    void (*on_done)(ptth_conn_job *job, const char *error);
    void *data;
    CURL *curl;        /* while active */
    long proxy_status; /* when on_done has an error: the forward proxy's answer to CONNECT (407, 403...), else 0 */
    /* private */
    ptth_relay_client *client;
    bool active;
    bool done;
    bool auth_retried; /* restarted once with the scheme a 407 offered */
    long sent_auth;    /* the CURLOPT_PROXYAUTH it went with */
    ptth_conn_job *prev, *next;
    char errbuf[CURL_ERROR_SIZE];
};

/* 0, or a negative errno (-EBUSY active, -ENOMEM) and nothing started. */
int ptth_conn_job_start(ptth_relay_client *c, ptth_conn_job *job);
/* Closes the connection and frees the handle; a no-op when not active. Not
 * from inside libcurl. */
void ptth_conn_job_end(ptth_conn_job *job);

/* "Bearer KEY", the Authorization value: a secret, never to be logged. */
const char *ptth_relay_client_auth_value(const ptth_relay_client *c);
const char *ptth_relay_client_user_agent(const ptth_relay_client *c);
/* The PTTH-Instance value of the config, or NULL. */
const char *ptth_relay_client_instance(const ptth_relay_client *c);
ptth_loop *ptth_relay_client_loop(const ptth_relay_client *c);
/* The forward proxy of the config (NULL: the environment's). */
const ptth_http_proxy *ptth_relay_client_proxy(const ptth_relay_client *c);
/* How the upgraded legs reach the relay (leg_dial.h): the base URL split
 * once, and our own layers when no forward proxy is in the way. */
struct ptth_leg_dial *ptth_relay_client_leg_dial(const ptth_relay_client *c);

/* Copies text for use as a request header value: printable ASCII only,
 * anything else becomes '?', truncated to outlen. */
void ptth_req_header_value(char *out, size_t outlen, const char *in);

static inline bool
ptth_req_active(const ptth_req *r)
{
    return r->active;
}

#endif
