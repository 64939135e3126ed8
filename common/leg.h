/*
 * leg.h: an upgraded relay leg (SPEC §9.1, docs/protocol.md "Upgraded data
 * path"): one `connect` or `accept` request sent over an HTTP/1.1 connection
 * of its own that asks the relay to leave HTTP, and, once the relay answered
 * 101, the raw byte stream that connection becomes.
 *
 * Lower layers, chosen per relay client (leg_dial.h):
 *   - no forward proxy in the way (the usual case): our own byte-stream
 *     layers connect, the socket (bstream_sock.h; the relay's addresses
 *     resolved once a minute at most) and on https:// TLS (bstream_tls.h;
 *     ALPN http/1.1 only, the relay's certificate and host name checked
 *     with the same CA file and --insecure as every other request), and
 *     every byte goes through the stream;
 *   - a forward proxy may apply (or PTTH_HTTP_CLIENT=curl): libcurl with
 *     CURLOPT_CONNECT_ONLY connects (TCP, the proxy's CONNECT and auth,
 *     TLS as above) and hands the connection over; on cleartext the leg
 *     then reads and writes the socket itself (CURLINFO_ACTIVESOCKET), over
 *     TLS through curl_easy_recv() / curl_easy_send().
 * The request head and the response head are ours either way; the response
 * is parsed with picohttpparser's phr_parse_response() (exported by libh2o).
 * Connecting is bounded by 10 s (PTTH_LEG_DIAL_CONNECT_TIMEOUT_MS, libcurl's
 * connect timeout of the relay client).
 *
 * The request: POST base path + path, HTTP/1.1, Host from the relay URL,
 * Authorization: Bearer KEY, User-Agent, Content-Length: 0,
 * Connection: Upgrade, Upgrade: PTTH_LEG_UPGRADE_TOKEN, plus the caller's
 * extra header lines.
 *
 * The answers, each reported once through on_response():
 *   - 101 with Upgrade: PTTH_LEG_UPGRADE_TOKEN: res->upgraded; from now on
 *     ptth_leg_read/write move the raw bytes (bytes that came in the same
 *     read as the response head are the first ones read).
 *   - 2xx: the relay (or a proxy in front of it) did not upgrade and answered
 *     as on the chunked path: ptth_leg_read() returns the response body
 *     (Transfer-Encoding: chunked decoded, or Content-Length, or up to the
 *     close), 0 at its end; ptth_leg_write() is -EPIPE.
 *   - any other status: the body is read first (at most PTTH_LEG_REASON_MAX
 *     bytes kept, at most 2 s waited) and res->reason holds PTTH-Reason or
 *     the start of the body; the leg is finished.
 *   - a 101 without our Upgrade token: res->status 101, !res->upgraded,
 *     res->error says which token came; the leg is finished.
 *   - no answer (refused, reset, closed before a complete response head, TLS
 *     failure, timeout, a response head that does not parse or is above
 *     PTTH_LEG_HEAD_MAX): res->status == 0 and res->error says what failed.
 * Interim 1xx answers other than 101 (100 Continue...) are skipped. res and
 * the texts it points to are valid during on_response() only.
 *
 * Byte I/O (after 101 or 2xx): the leg watches the socket as the caller
 * asks with ptth_leg_want(). on_readable() means "call ptth_leg_read() until
 * it returns -EAGAIN"; the leg calls it again only when more can be read
 * (over TLS bytes may wait decrypted inside OpenSSL where epoll does
 * not see them, and bytes may have come with the response head: there
 * ptth_leg_want() with read set schedules one on_readable() from the loop;
 * on cleartext the level-triggered watch reports what the socket holds, so
 * a caller that stopped before -EAGAIN is called again). on_writable() means a write may take bytes
 * again. A write over TLS that returned -EAGAIN must be repeated with the
 * same bytes (at least as many; the buffer may move) before anything else
 * is written.
 *
 * Callbacks run from the loop (never inside libcurl) and may call any
 * function here, ptth_leg_close() included. Not after ptth_leg_close().
 *
 * Ownership: a ptth_leg is the caller's (embedded in a bigger object); it is
 * active from ptth_leg_open() until ptth_leg_close(), which the caller must
 * call exactly once after a successful open (also after a failure reported
 * by on_response). The extra header lines are copied. Every leg is closed
 * before its ptth_relay_client is freed.
 */
#ifndef PTTH_LEG_H
#define PTTH_LEG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "loop.h"
#include "picohttp.h"
#include "relay_client.h"

#define PTTH_LEG_UPGRADE_TOKEN "ptth-tunnel/1"
#define PTTH_LEG_HEAD_MAX 16384 /* largest response head taken */
#define PTTH_LEG_REASON_MAX 256
#define PTTH_LEG_HEADERS_MAX 8 /* extra request header lines (a resume request has 6) */
#define PTTH_LEG_TOKEN_MAX 64  /* PTTH-Resume: 43 base64url characters today */

typedef struct ptth_leg ptth_leg;

typedef struct ptth_leg_response {
    int status;                            /* 0: no HTTP answer (see error) */
    bool upgraded;                         /* 101 with our Upgrade token */
    const char *error;                     /* status 0 (or a 101 without our token): what failed, for logs; else NULL */
    long proxy_status;                     /* status 0: a forward proxy's refusal of CONNECT (403, 407...), else 0 */
    long retry_after;                      /* Retry-After in seconds, -1 when absent */
    long heartbeat;                        /* PTTH-Heartbeat in seconds, 0 when absent */
    long idle_timeout;                     /* PTTH-Idle-Timeout in seconds, 0 when absent */
    long max_chunk;                        /* PTTH-Max-Chunk, 0 when absent */
    char conn[PTTH_REQ_FIELD_MAX];         /* PTTH-Conn, "" when absent */
    char upgrade_note[PTTH_REQ_FIELD_MAX]; /* PTTH-Upgrade (why the relay did not upgrade), "" when absent */
    char reason[PTTH_LEG_REASON_MAX];      /* PTTH-Reason or the start of a non-2xx body */
    /* resumable tunnels (docs/protocol.md "Resumable tunnels") */
    char resume_token[PTTH_LEG_TOKEN_MAX]; /* PTTH-Resume when it is 1..63 base64url characters, else "" */
    long resume_grace;                     /* PTTH-Resume-Grace in seconds (at most a day), 0 when absent */
    int64_t peer_received, peer_sent;      /* PTTH-Peer-Received / PTTH-Peer-Sent, -1 when absent or not a number below 2^63 */
} ptth_leg_response;

typedef struct ptth_leg_ops {
    void (*on_response)(ptth_leg *leg, const ptth_leg_response *res);
    void (*on_readable)(ptth_leg *leg);
    void (*on_writable)(ptth_leg *leg);
} ptth_leg_ops;

/* The leg's private state lives behind this pointer (allocated by open);
 * the caller zeroes the struct (impl NULL) before its first open. */
struct ptth_leg {
    const ptth_leg_ops *ops;
    void *data;
    struct ptth_leg_impl *impl; /* private; NULL while not active */
};

/* Connects and sends the upgrade request for base path + path with the extra
 * header lines (NULL-terminated "Name: value", at most PTTH_LEG_HEADERS_MAX).
 * timeout_ms bounds the wait for the response head, connecting included
 * (0: none but the 10 s connect timeout). 0, or a negative errno (-E2BIG
 * path or headers too long or too many, -EINVAL a control character in the
 * path or a header, -EBUSY already active, -ENOMEM) and nothing started. */
int ptth_leg_open(ptth_relay_client *c, ptth_leg *leg, const char *path, const char *const *headers, long timeout_ms,
                  const ptth_leg_ops *ops, void *data);

/* >0 bytes read, 0 end of stream (the relay closed, or the end of a 2xx
 * body), -EAGAIN nothing now, -ECONNRESET the connection was reset, another
 * negative errno when it broke (-EPROTO: a 2xx body with broken chunked
 * framing or cut short; -ENOTCONN: no usable answer yet, or none came;
 * -EINVAL: len 0). */
ssize_t ptth_leg_read(ptth_leg *leg, void *buf, size_t len);

/* >0 bytes taken (maybe fewer than len), -EAGAIN full (see above), -EPIPE
 * not upgraded or closed, another negative errno when it broke. */
ssize_t ptth_leg_write(ptth_leg *leg, const void *buf, size_t len);

/* Which of on_readable / on_writable the caller wants now. */
void ptth_leg_want(ptth_leg *leg, bool read, bool write);

/* true on a TLS connection (for logs). */
bool ptth_leg_is_tls(const ptth_leg *leg);

/* true when libcurl's connect-only job connected the leg, false when our
 * own layers did (for logs and tests). */
bool ptth_leg_via_curl(const ptth_leg *leg);

/* Ends the leg: closes the connection, with a TCP reset when abort (so the
 * relay and the other side take it for a broken tunnel, not an end), and
 * frees what open allocated. No callback follows. A no-op when not active. */
void ptth_leg_close(ptth_leg *leg, bool abort);

/* ---- the response parser (leg_parse.c) ----
 * Pure functions on bytes (no socket, no loop): what the leg does with the
 * relay's answer. In this header for tests/unit/term/test_leg.c and
 * tests/fuzz/fuzz_leg.c; a leg's user does not need them. Every byte is
 * untrusted: fields are copied bounded (printable ASCII, trimmed), numbers
 * capped. */

typedef enum ptth_leg_framing {
    PTTH_LEG_BODY_NONE = 0, /* no body: 101 (the raw stream follows), 1xx, 204, 304 */
    PTTH_LEG_BODY_CHUNKED,  /* Transfer-Encoding: chunked */
    PTTH_LEG_BODY_LENGTH,   /* Content-Length */
    PTTH_LEG_BODY_CLOSE,    /* up to the close of the connection */
} ptth_leg_framing;

typedef struct ptth_leg_body {
    ptth_leg_framing framing;
    bool done;               /* the end of the body was seen */
    unsigned long long left; /* LENGTH: bytes still to come */
    struct phr_chunked_decoder chunked;
} ptth_leg_body;

/* Clears res to "no answer": status 0, retry_after -1, texts empty. */
void ptth_leg_response_reset(ptth_leg_response *res);

/* Parses the response head at the start of buf[0..len). >0: the head's
 * length; res (all fields; error points into err for a 101 without our
 * token) and body are filled. 0: incomplete, more bytes needed.
 * -EMSGSIZE: no complete head within PTTH_LEG_HEAD_MAX bytes. -EBADMSG: not
 * an HTTP/1.x response head (or an invalid Content-Length). err says what
 * failed. */
int ptth_leg_parse_head(const char *buf, size_t len, ptth_leg_response *res, ptth_leg_body *body, char *err, size_t errlen);

/* Turns *len bytes received at buf into body payload, in place: on return
 * buf[0..*len) is payload. 0: more body to come; 1: the body ended (what
 * came after its end is dropped); -EBADMSG: broken chunked framing. After
 * the end, every call gives 1 and no bytes. */
int ptth_leg_body_decode(ptth_leg_body *body, char *buf, size_t *len);

/* The connection closed: 0 when that ends the body properly (up to the
 * close, or already done), -EPIPE when the body was cut short. */
int ptth_leg_body_closed(const ptth_leg_body *body);

/* res->reason from the start of a non-2xx body when the relay sent no
 * (or an empty) PTTH-Reason: printable ASCII, blank runs made one space,
 * trimmed, at most PTTH_LEG_REASON_MAX - 1 bytes. */
void ptth_leg_reason_from_body(ptth_leg_response *res, const char *body, size_t len);

#endif
