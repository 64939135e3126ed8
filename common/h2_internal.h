/*
 * h2_internal.h: what the two halves of the HTTP/2 client (h2_client.h)
 * share; not for other modules.
 *
 *   h2_client.c   the pool and the requests: the URL, the wait queue,
 *                 dispatch onto connections, the public calls, on_done
 *                 deferral, the HTTP/1 fallback
 *   h2_session.c  one connection: its byte stream (bstream.h: socket, TLS),
 *                 the nghttp2 session and its callbacks, the send queue,
 *                 reading, flushing, closing
 *
 * The calls go one way, from the pool down to the sessions: a session
 * knows only its h2_env (what every connection of one client shares) and
 * reports back through the env's events table, which h2_client.c fills.
 *
 * States: a connection's is an enum changed only by h2_session.c; a
 * stream's life is the flags below (in_session, ended, queued,
 * done_listed) and it is freed by ptth_h2_stream_maybe_free() once none
 * holds and the request is gone.
 */
#ifndef PTTH_H2_INTERNAL_H
#define PTTH_H2_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>

#include "bstream.h"
#include "h2_client.h"

#define PATH_MAX_LEN 2048
#define HOST_MAX 256
#define HEADER_NAME_MAX 64
#define DEFAULT_MAX_STREAMS 100 /* until the relay's SETTINGS say */
#define READ_SIZE (256 * 1024)

typedef struct h2_conn h2_conn;
typedef struct h2_stream h2_stream;

enum conn_state {
    CONN_CONNECTING, /* the byte stream connects (TCP, then TLS) */
    CONN_SETTINGS,   /* preface sent, waiting for the relay's SETTINGS */
    CONN_READY,
};

/* ext == NULL: bytes at out + off; else the caller's body bytes of owner */
struct out_seg {
    const uint8_t *ext;
    size_t off, len;
    h2_stream *owner;
};

/* How a session reports to its pool (h2_client.c); owner is the env's. */
typedef struct h2_env_events {
    /* s goes back to the front of the wait queue, and a dispatch is scheduled */
    void (*requeue)(void *owner, h2_stream *s);
    /* runs dispatch from the loop (a no-op when already scheduled) */
    void (*dispatch)(void *owner);
    /* true when requests wait for a connection */
    bool (*has_waiting)(void *owner);
    /* fails every waiting request with why */
    void (*fail_waiting)(void *owner, const char *why);
    /* the relay does not speak HTTP/2 (k is closed): from now on requests go
     * another way, the waiting ones at once */
    void (*fall_back)(void *owner, h2_conn *k);
    /* the request is over (error NULL: a whole response arrived); its
     * on_done runs from the loop after the current batch */
    void (*stream_complete)(h2_stream *s, const char *error);
    /* frees s when nothing holds it any more */
    void (*stream_maybe_free)(h2_stream *s);
} h2_env_events;

/* What every connection of one client shares: where the relay is, how to
 * speak to it, the connections themselves and the events table. */
typedef struct h2_env {
    ptth_loop *loop;
    bool https;
    bool insecure;       /* no certificate or host check */
    bool unavailable;    /* the relay does not speak HTTP/2, or the client is going away */
    char host[HOST_MAX]; /* for resolving, SNI and the certificate check */
    char port[8];
    char authority[HOST_MAX + 8];
    char prefix[PATH_MAX_LEN / 2];
    char *auth_value;
    char *user_agent;
    char *instance; /* PTTH-Instance value, or NULL */
    long liveness_ms; /* see ptth_h2_client_config */
    SSL_CTX *ssl_ctx;
    nghttp2_session_callbacks *callbacks;
    nghttp2_option *option;
    uint8_t *readbuf; /* READ_SIZE, shared by the connections */
    h2_conn *conns;
    size_t nconns;
    const h2_env_events *ev;
    void *owner;
} h2_env;

struct h2_conn {
    h2_env *env;
    enum conn_state state;
    ptth_bstream *bs; /* the byte stream to the relay (its top layer) */
    bool gather;      /* bs sends several buffers at once: bodies go uncopied */
    bool short_read_drains;
    nghttp2_session *session;
    ptth_timer timer; /* connect/handshake deadline, then idle close */
    ptth_defer flush_defer;
    h2_stream *streams;  /* submitted (or closed but still holding bytes) */
    size_t open_streams; /* submitted and not closed by nghttp2 */
    uint32_t max_streams;
    bool goaway;  /* no new streams: GOAWAY received or ids used up */
    /* liveness (CONN_READY): the relay answers a PING at once, and a
     * framed stream brings a PING every --heartbeat, so a connection with
     * open streams that stays silent was dropped on the way */
    ptth_timer live_timer;
    long long last_rx_ms; /* bytes last came from the relay */
    bool ping_out;        /* our PING went at last_rx_ms + liveness_ms; nothing came since */
    bool closing; /* inside conn_close */
    /* what is queued for the byte stream, in order: segments of our own
     * bytes (frames, in out) or of request bodies (DATA payloads sent from
     * the caller's memory, without a copy) */
    uint8_t *out;
    size_t out_len, out_cap;
    struct out_seg *segs;
    size_t nsegs, segs_cap, seg_head, seg_sent; /* seg_sent: bytes of segs[seg_head] written */
    size_t queued;                              /* bytes not written yet */
    h2_conn *prev, *next;
};

struct h2_stream {
    ptth_h2_client *cl;
    ptth_req *req; /* NULL once the request is over or cancelled */
    h2_conn *conn; /* NULL while queued, or after its connection went away */
    int32_t id;
    ptth_req_kind kind;
    const char *headers[PTTH_REQ_HEADERS_MAX + 1];
    const uint8_t *body;
    size_t body_len, body_off, body_sent; /* body_off: given to nghttp2; body_sent: queued */
    uint8_t *held;                        /* body bytes received while the reader was paused */
    size_t held_len, held_off, held_cap;
    long status;            /* :status of the header block being read */
    int refusals;           /* REFUSED_STREAM answers so far */
    bool in_session;        /* nghttp2 still knows the stream */
    bool ended;             /* closed by nghttp2; held bytes may remain */
    bool queued;            /* in the client's wait queue */
    bool done_listed;       /* in the client's done list */
    char error[256];        /* for on_done when not empty */
    ptth_timer timer;       /* the request's timeout_ms */
    h2_stream *prev, *next; /* the queue, or the connection's list */
    h2_stream *done_next;
    char path[]; /* the API path as given (without the prefix), allocated to its length */
};

struct ptth_h2_client {
    h2_env env; /* what its sessions see */
    ptth_h2_client_config cfg;
    h2_stream *queue_head, *queue_tail;
    h2_stream *done_head, *done_tail;
    ptth_defer done_defer;
    ptth_defer dispatch_defer;
};

/* ---- h2_session.c, for the pool ---- */

/* The nghttp2 callbacks and options every session of the client uses.
 * 0 or -ENOMEM; ptth_h2_sessions_fini() frees what was made. */
int ptth_h2_sessions_init(h2_env *env);
void ptth_h2_sessions_fini(h2_env *env);
/* Opens one more connection (a failure fails the waiting requests at once). */
void ptth_h2_conn_open(h2_env *env);
/* Closes k and frees it: its open requests fail with why (NULL: "closed"). */
void ptth_h2_conn_close(h2_conn *k, const char *why);
/* Submits s on the ready connection k: 0 or an nghttp2 error. */
int ptth_h2_conn_submit(h2_conn *k, h2_stream *s);
/* s leaves its connection's list (its queued body bytes become copies). */
void ptth_h2_conn_unlink_stream(h2_stream *s);
/* The queued body bytes of s become copies: its body may go away. */
void ptth_h2_conn_detach(h2_conn *k, h2_stream *s);
/* The reader took n held bytes: opens the stream's window by as much. */
void ptth_h2_stream_consumed(h2_stream *s, size_t n);
/* Gives the bytes still held back to the window and drops them. */
void ptth_h2_stream_drop_held(h2_stream *s);
/* Resets s on its connection (RST_STREAM CANCEL) when nghttp2 knows it. */
void ptth_h2_stream_reset(h2_stream *s);
/* Flushes k from the loop (a no-op when already scheduled). */
void ptth_h2_conn_want_flush(h2_conn *k);

#endif
