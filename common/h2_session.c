/* h2_session.c: one HTTP/2 connection of the client to the relay (see
 * h2_internal.h): the byte stream it runs on, the nghttp2 session and its
 * callbacks (requests' on_headers/on_body run in here), the send queue,
 * reading, flushing and closing. */
#include "h2_internal.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "bstream_sock.h"
#include "bstream_tls.h"
#include "req_response.h"

/* Each stream may have this many received bytes not yet taken by its
 * reader: the most a paused stream buffers, and the window a bulk stream
 * runs with. */
#define STREAM_WINDOW (256 * 1024)
/* Large enough that streams holding their whole window never stall the
 * connection (100 streams x 256 KiB is 25 MiB). */
#define CONN_WINDOW (1 << 30)
/* Frames are gathered up to this many bytes before one write. */
#define OUT_GATHER (256 * 1024)
#define READS_PER_EVENT 16 /* then back to the loop: other sockets get a turn */
#define CONNECT_TIMEOUT_MS 10000
#define IDLE_CLOSE_MS 60000 /* a connection without streams this long is closed */
/* A stream refused unprocessed is sent again this often, then fails: h2o
 * also refuses a body above its limit that way, and that would never pass. */
#define MAX_REFUSALS 3

/* The one place a connection's state changes, always one step on:
 * CONNECTING -> SETTINGS -> READY (it is freed from any of them). */
static void
conn_set_state(h2_conn *k, enum conn_state to)
{
    assert(to == k->state + 1);
    k->state = to;
}

/* ---- the connection's streams ---- */

static void
conn_link_stream(h2_conn *k, h2_stream *s)
{
    s->conn = k;
    s->prev = NULL;
    s->next = k->streams;
    if (k->streams != NULL)
        k->streams->prev = s;
    k->streams = s;
}

static void on_idle(ptth_timer *t);

/* A ready connection without streams is closed after IDLE_CLOSE_MS. */
static void
conn_check_idle(h2_conn *k)
{
    if (!k->closing && k->state == CONN_READY && k->streams == NULL && k->open_streams == 0 && !ptth_timer_active(&k->timer))
        ptth_timer_start(k->env->loop, &k->timer, IDLE_CLOSE_MS, on_idle, k);
}

void
ptth_h2_conn_unlink_stream(h2_stream *s)
{
    h2_conn *k = s->conn;
    if (k == NULL)
        return;
    ptth_h2_conn_detach(k, s);
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        k->streams = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
    s->conn = NULL;
    conn_check_idle(k);
}

/* Nobody will read the held bytes: the window gets them back. */
void
ptth_h2_stream_drop_held(h2_stream *s)
{
    size_t left = s->held_len - s->held_off;
    if (left > 0 && s->conn != NULL)
        nghttp2_session_consume(s->conn->session, s->id, left);
    free(s->held);
    s->held = NULL;
    s->held_len = s->held_off = s->held_cap = 0;
}

/* ---- output ---- */

static void on_flush_deferred(ptth_defer *d);

void
ptth_h2_conn_want_flush(h2_conn *k)
{
    ptth_defer_call(k->env->loop, &k->flush_defer, on_flush_deferred, k);
}

/* Copies len bytes into out; their offset in *off. */
static int
out_copy(h2_conn *k, const uint8_t *p, size_t len, size_t *off)
{
    if (k->out_len + len > k->out_cap) {
        size_t cap = k->out_cap == 0 ? 16 * 1024 : k->out_cap;
        while (cap < k->out_len + len)
            cap *= 2;
        uint8_t *n = realloc(k->out, cap);
        if (n == NULL)
            return -ENOMEM;
        k->out = n;
        k->out_cap = cap;
    }
    memcpy(k->out + k->out_len, p, len);
    *off = k->out_len;
    k->out_len += len;
    return 0;
}

static int
seg_push(h2_conn *k, const uint8_t *ext, size_t off, size_t len, h2_stream *owner)
{
    if (k->nsegs == k->segs_cap) {
        size_t cap = k->segs_cap == 0 ? 64 : k->segs_cap * 2;
        struct out_seg *n = realloc(k->segs, cap * sizeof(*n));
        if (n == NULL)
            return -ENOMEM;
        k->segs = n;
        k->segs_cap = cap;
    }
    k->segs[k->nsegs++] = (struct out_seg){.ext = ext, .off = off, .len = len, .owner = owner};
    k->queued += len;
    return 0;
}

/* Queues a copy of len bytes. */
static int
out_append(h2_conn *k, const uint8_t *p, size_t len)
{
    size_t off;
    if (out_copy(k, p, len, &off) != 0)
        return -ENOMEM;
    struct out_seg *last = k->nsegs > k->seg_head ? &k->segs[k->nsegs - 1] : NULL;
    if (last != NULL && last->ext == NULL && last->off + last->len == off) {
        last->len += len;
        k->queued += len;
        return 0;
    }
    return seg_push(k, NULL, off, len, NULL);
}

/* The queued body bytes of s become copies: its body may go away (the
 * request ended or was cancelled before all of it was written). */
void
ptth_h2_conn_detach(h2_conn *k, h2_stream *s)
{
    for (size_t i = k->seg_head; i < k->nsegs; i++) {
        struct out_seg *g = &k->segs[i];
        if (g->ext == NULL || g->owner != s)
            continue;
        size_t off;
        if (out_copy(k, g->ext, g->len, &off) != 0) {
            /* cannot keep the bytes: the rest of the frame is lost, so is
             * the connection's framing */
            g->len = 0;
            continue;
        }
        g->ext = NULL;
        g->off = off;
        g->owner = NULL;
    }
}

static void
out_reset(h2_conn *k)
{
    k->out_len = k->nsegs = k->seg_head = k->seg_sent = k->queued = 0;
}

/* Writes queued segments: bytes written, -EAGAIN, or an error with why. A
 * stream that does not gather (TLS) gets the first segment only (its
 * segments are all copies, gathered into large records). */
static ssize_t
out_write(h2_conn *k, char *why, size_t whylen)
{
    struct iovec iov[64];
    int n = 0;
    for (size_t i = k->seg_head; i < k->nsegs && n < (k->gather ? 64 : 1); i++) {
        struct out_seg *g = &k->segs[i];
        size_t skip = i == k->seg_head ? k->seg_sent : 0;
        iov[n].iov_base = (void *)((g->ext != NULL ? g->ext : k->out + g->off) + skip);
        iov[n].iov_len = g->len - skip;
        n++;
    }
    return ptth_bstream_send(k->bs, iov, n, why, whylen);
}

static void
out_advance(h2_conn *k, size_t w)
{
    k->queued -= w;
    while (w > 0 && k->seg_head < k->nsegs) {
        size_t left = k->segs[k->seg_head].len - k->seg_sent;
        if (w < left) {
            k->seg_sent += w;
            return;
        }
        w -= left;
        k->seg_head++;
        k->seg_sent = 0;
    }
    /* zero-length segments (see ptth_h2_conn_detach) are skipped too */
    while (k->seg_head < k->nsegs && k->segs[k->seg_head].len == 0)
        k->seg_head++;
}

static void
conn_set_events(h2_conn *k, bool want_out)
{
    ptth_bstream_want(k->bs, true, want_out);
}

/* Sends what nghttp2 has queued, gathering frames into writes of up to
 * OUT_GATHER bytes (one 256 KiB chunk is then one sendmsg(), not sixteen).
 * 0, or -1 when the connection failed and is gone. */
static int
conn_flush(h2_conn *k)
{
    char why[160];
    for (;;) {
        if (k->seg_head < k->nsegs) {
            ssize_t w = out_write(k, why, sizeof(why));
            if (w == -EAGAIN) {
                conn_set_events(k, true);
                return 0;
            }
            if (w < 0) {
                ptth_h2_conn_close(k, why);
                return -1;
            }
            out_advance(k, (size_t)w);
            if (k->seg_head < k->nsegs) {
                conn_set_events(k, true);
                return 0;
            }
            out_reset(k);
        }
        while (k->queued < OUT_GATHER) {
            const uint8_t *data;
            ssize_t n = nghttp2_session_mem_send(k->session, &data); /* may call on_send_data */
            if (n < 0) {
                ptth_h2_conn_close(k, nghttp2_strerror((int)n));
                return -1;
            }
            if (n == 0)
                break;
            if (out_append(k, data, (size_t)n) != 0) {
                ptth_h2_conn_close(k, "out of memory");
                return -1;
            }
        }
        if (k->seg_head == k->nsegs)
            break;
    }
    conn_set_events(k, false);
    if (!nghttp2_session_want_read(k->session) && !nghttp2_session_want_write(k->session)) {
        ptth_h2_conn_close(k, "the relay ended the connection");
        return -1;
    }
    return 0;
}

static void
on_flush_deferred(ptth_defer *d)
{
    h2_conn *k = d->data;
    if (k->session != NULL)
        conn_flush(k);
}

/* ---- nghttp2 callbacks (requests' on_headers/on_body run in here) ---- */

static h2_stream *
stream_of(nghttp2_session *session, int32_t id)
{
    return id > 0 ? nghttp2_session_get_stream_user_data(session, id) : NULL;
}

static int
on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    (void)user_data;
    h2_stream *s = stream_of(session, frame->hd.stream_id);
    if (s != NULL)
        s->status = 0;
    return 0;
}

static int
on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name, size_t namelen, const uint8_t *value,
          size_t valuelen, uint8_t flags, void *user_data)
{
    (void)flags;
    (void)user_data;
    h2_stream *s = stream_of(session, frame->hd.stream_id);
    if (s == NULL || s->req == NULL || frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    ptth_req *r = s->req;
    if (namelen == 7 && memcmp(name, ":status", 7) == 0) {
        long code = 0;
        for (size_t i = 0; i < valuelen && i < 3; i++)
            code = code * 10 + (value[i] >= '0' && value[i] <= '9' ? value[i] - '0' : 0);
        s->status = code;
        if (code >= 200 && !r->headers_done)
            ptth_req_response_reset(r);
        return 0;
    }
    if (s->status >= 200 && !r->headers_done)
        ptth_req_response_header(r, (const char *)name, namelen, (const char *)value, valuelen);
    return 0;
}

/* ---- liveness ---- */

static void
on_live_timer(ptth_timer *t)
{
    h2_conn *k = t->data;
    h2_env *env = k->env;
    long long now = ptth_loop_now(env->loop);
    long long silent = now - k->last_rx_ms;
    if (k->open_streams == 0) {
        k->ping_out = false; /* nothing waits for the relay: no PING needed */
        ptth_timer_start(env->loop, &k->live_timer, env->liveness_ms, on_live_timer, k);
        return;
    }
    if (k->ping_out && silent >= 2 * env->liveness_ms) {
        char why[120];
        snprintf(why, sizeof(why), "nothing came from the relay for %lld s, not even the answer to a PING (the connection is dead?)",
                 silent / 1000);
        ptth_h2_conn_close(k, why);
        return;
    }
    if (!k->ping_out && silent >= env->liveness_ms) {
        if (nghttp2_submit_ping(k->session, NGHTTP2_FLAG_NONE, NULL) == 0) {
            k->ping_out = true;
            ptth_h2_conn_want_flush(k);
        }
        ptth_timer_start(env->loop, &k->live_timer, env->liveness_ms, on_live_timer, k);
        return;
    }
    long long next = (k->ping_out ? 2 : 1) * env->liveness_ms - silent;
    ptth_timer_start(env->loop, &k->live_timer, next > 0 ? next : 1, on_live_timer, k);
}

static void
conn_became_ready(h2_conn *k)
{
    conn_set_state(k, CONN_READY);
    ptth_timer_stop(k->env->loop, &k->timer);
    k->last_rx_ms = ptth_loop_now(k->env->loop);
    ptth_timer_start(k->env->loop, &k->live_timer, k->env->liveness_ms, on_live_timer, k);
    conn_check_idle(k);
    k->env->ev->dispatch(k->env->owner);
}

static int
on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    h2_conn *k = user_data;
    switch (frame->hd.type) {
    case NGHTTP2_SETTINGS:
        if (!(frame->hd.flags & NGHTTP2_FLAG_ACK)) {
            k->max_streams = nghttp2_session_get_remote_settings(session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
            if (k->state == CONN_SETTINGS)
                conn_became_ready(k);
            else if (k->env->ev->has_waiting(k->env->owner))
                k->env->ev->dispatch(k->env->owner); /* the limit may have grown */
        }
        break;
    case NGHTTP2_GOAWAY:
        k->goaway = true;
        break;
    case NGHTTP2_HEADERS: {
        h2_stream *s = stream_of(session, frame->hd.stream_id);
        if (s == NULL || s->req == NULL)
            break;
        ptth_req *r = s->req;
        if (s->status >= 200 && !r->headers_done) {
            r->status = s->status;
            r->headers_done = true;
            if (r->ops->on_headers != NULL)
                r->ops->on_headers(r);
        }
        break;
    }
    default:
        break;
    }
    return 0;
}

static int
hold(h2_stream *s, const uint8_t *p, size_t len)
{
    if (s->held_off > 0) {
        memmove(s->held, s->held + s->held_off, s->held_len - s->held_off);
        s->held_len -= s->held_off;
        s->held_off = 0;
    }
    if (s->held_len + len > s->held_cap) {
        size_t cap = s->held_cap == 0 ? 16 * 1024 : s->held_cap;
        while (cap < s->held_len + len)
            cap *= 2;
        uint8_t *n = realloc(s->held, cap);
        if (n == NULL)
            return -ENOMEM;
        s->held = n;
        s->held_cap = cap;
    }
    memcpy(s->held + s->held_len, p, len);
    s->held_len += len;
    return 0;
}

static int
on_data_chunk_recv(nghttp2_session *session, uint8_t flags, int32_t stream_id, const uint8_t *data, size_t len, void *user_data)
{
    (void)flags;
    (void)user_data;
    h2_stream *s = stream_of(session, stream_id);
    ptth_req *r = s != NULL ? s->req : NULL;
    if (r == NULL || r->status < 200 || r->status > 299 || r->ops->on_body == NULL) {
        if (r != NULL && (r->status < 200 || r->status > 299))
            ptth_req_response_error_body(r, (const char *)data, len);
        nghttp2_session_consume(session, stream_id, len);
        return 0;
    }
    if (!r->paused && s->held_len == s->held_off) {
        size_t took = r->ops->on_body(r, data, len);
        if (took != PTTH_REQ_PAUSE) {
            if (took > len)
                took = len;
            nghttp2_session_consume(session, stream_id, took);
            data += took;
            len -= took;
            if (len == 0)
                return 0;
        }
        r->paused = true;
    }
    /* bounded by the stream's window: the relay cannot send more than we
     * consumed */
    if (hold(s, data, len) != 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
    return 0;
}

static int
on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code, void *user_data)
{
    h2_conn *k = user_data;
    h2_stream *s = stream_of(session, stream_id);
    if (s == NULL)
        return 0;
    nghttp2_session_set_stream_user_data(session, stream_id, NULL);
    s->in_session = false;
    s->ended = true;
    if (k->open_streams > 0)
        k->open_streams--;
    if (k->env->ev->has_waiting(k->env->owner))
        k->env->ev->dispatch(k->env->owner);
    ptth_req *r = s->req;
    if (r == NULL) {
        ptth_h2_stream_drop_held(s);
        k->env->ev->stream_maybe_free(s);
        return 0;
    }
    if (error_code == NGHTTP2_REFUSED_STREAM && !r->headers_done && ++s->refusals <= MAX_REFUSALS) {
        /* not processed by the relay: send it again, on another connection
         * when this one is going away */
        ptth_h2_conn_unlink_stream(s);
        s->ended = false;
        s->id = 0;
        k->env->ev->requeue(k->env->owner, s);
        return 0;
    }
    if (error_code != NGHTTP2_NO_ERROR) {
        char why[96];
        snprintf(why, sizeof(why), "the relay reset the stream (%s)", nghttp2_http2_strerror(error_code));
        ptth_h2_stream_drop_held(s);
        k->env->ev->stream_complete(s, why);
    } else if (!r->headers_done) {
        k->env->ev->stream_complete(s, "the relay ended the stream without a response");
    } else if (s->held_len == s->held_off) {
        k->env->ev->stream_complete(s, NULL);
    }
    /* else: completes once the reader has taken the held bytes */
    return 0;
}

static ssize_t
on_read_body(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length, uint32_t *data_flags,
             nghttp2_data_source *source, void *user_data)
{
    (void)session;
    (void)stream_id;
    (void)buf;
    (void)user_data;
    h2_stream *s = source->ptr;
    if (s->req == NULL) { /* cancelled: the body may be gone */
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
        return 0;
    }
    size_t n = s->body_len - s->body_off;
    if (n > length)
        n = length;
    s->body_off += n;
    if (s->body_off == s->body_len)
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    *data_flags |= NGHTTP2_DATA_FLAG_NO_COPY; /* on_send_data queues it */
    return (ssize_t)n;
}

/* A DATA frame of a request body: its header is copied, the payload queued
 * from the caller's memory (copied on TLS, where records are built anyway). */
static int
on_send_data(nghttp2_session *session, nghttp2_frame *frame, const uint8_t *framehd, size_t length, nghttp2_data_source *source,
             void *user_data)
{
    (void)session;
    h2_conn *k = user_data;
    h2_stream *s = source->ptr;
    if (s->req == NULL)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* cancelled: its body may be gone; resets the stream */
    if (k->queued >= OUT_GATHER)
        return NGHTTP2_ERR_WOULDBLOCK; /* mem_send would queue a whole body at once: write first, then more */
    if (frame->data.padlen > 0 || s->body_sent + length > s->body_len)
        return NGHTTP2_ERR_CALLBACK_FAILURE; /* we never pad */
    const uint8_t *p = s->body + s->body_sent;
    s->body_sent += length;
    if (out_append(k, framehd, 9) != 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    int rc = k->gather ? seg_push(k, p, 0, length, s) : out_append(k, p, length);
    return rc == 0 ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE;
}

/* ---- connections ---- */

static void
on_idle(ptth_timer *t)
{
    h2_conn *k = t->data;
    if (k->open_streams == 0 && k->streams == NULL)
        ptth_h2_conn_close(k, NULL);
}

void
ptth_h2_conn_close(h2_conn *k, const char *why)
{
    h2_env *env = k->env;
    bool was_ready = k->state == CONN_READY;
    k->closing = true;
    if (k->prev != NULL)
        k->prev->next = k->next;
    else
        env->conns = k->next;
    if (k->next != NULL)
        k->next->prev = k->prev;
    env->nconns--;
    ptth_timer_stop(env->loop, &k->timer);
    ptth_timer_stop(env->loop, &k->live_timer);
    ptth_defer_cancel(env->loop, &k->flush_defer);

    char error[600];
    snprintf(error, sizeof(error), "relay connection %s:%s: %s", env->host, env->port, why != NULL ? why : "closed");
    h2_stream *s;
    while ((s = k->streams) != NULL) {
        ptth_h2_conn_unlink_stream(s);
        bool was_open = s->in_session;
        s->in_session = false;
        if (was_open && s->req != NULL) {
            ptth_h2_stream_drop_held(s);
            k->env->ev->stream_complete(s, error);
        }
        /* a stream that ended with held bytes keeps them for its reader */
        k->env->ev->stream_maybe_free(s);
    }
    if (k->session != NULL)
        nghttp2_session_del(k->session);
    ptth_bstream_close(k->bs);
    free(k->out);
    free(k->segs);
    free(k);
    if (!was_ready && !env->unavailable)
        env->ev->fail_waiting(env->owner, error);
    else if (env->ev->has_waiting(env->owner))
        env->ev->dispatch(env->owner);
}

static void
on_conn_deadline(ptth_timer *t)
{
    h2_conn *k = t->data;
    char why[64];
    snprintf(why, sizeof(why), "no connection within %d ms", CONNECT_TIMEOUT_MS);
    ptth_h2_conn_close(k, why);
}

static int
session_start(h2_conn *k)
{
    h2_env *env = k->env;
    if (nghttp2_session_client_new2(&k->session, env->callbacks, k, env->option) != 0)
        return -ENOMEM;
    nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW},
    };
    if (nghttp2_submit_settings(k->session, NGHTTP2_FLAG_NONE, settings, sizeof(settings) / sizeof(settings[0])) != 0 ||
        nghttp2_session_set_local_window_size(k->session, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW) != 0)
        return -ENOMEM;
    conn_set_state(k, CONN_SETTINGS);
    conn_set_events(k, true);
    return 0;
}

/* The byte stream connected: HTTP/2 unless ALPN chose something else. */
static void
on_connected(h2_conn *k)
{
    const char *alpn = NULL;
    if (ptth_bstream_query(k->bs, PTTH_BSTREAM_Q_ALPN, &alpn) == 0 && strcmp(alpn, "h2") != 0) {
        k->env->ev->fall_back(k->env->owner, k);
        return;
    }
    k->gather = ptth_bstream_is(k->bs, PTTH_BSTREAM_Q_GATHER);
    k->short_read_drains = ptth_bstream_is(k->bs, PTTH_BSTREAM_Q_SHORT_READ_DRAINS);
    if (session_start(k) != 0) {
        ptth_h2_conn_close(k, "out of memory");
        return;
    }
    conn_flush(k);
}

static void on_conn_event(void *data, uint32_t events);

/* The byte stream for a connection: the socket, TLS on it for https://. */
static int
open_layers(h2_conn *k, char *why, size_t whylen)
{
    h2_env *env = k->env;
    ptth_bstream *sock;
    int rc = ptth_bstream_sock_open(env->loop, env->host, env->port, "relay", on_conn_event, k, &sock, why, whylen);
    if (rc != 0 || !env->https) {
        k->bs = sock;
        return rc;
    }
    rc = ptth_bstream_tls_open(sock, env->ssl_ctx, env->host, !env->insecure, "relay", &k->bs);
    if (rc != 0)
        snprintf(why, whylen, "TLS set-up failed");
    return rc;
}

void
ptth_h2_conn_open(h2_env *env)
{
    h2_conn *k = calloc(1, sizeof(*k));
    if (k == NULL) {
        env->ev->fail_waiting(env->owner, "out of memory");
        return;
    }
    k->env = env;
    k->state = CONN_CONNECTING; /* the first state */
    k->max_streams = DEFAULT_MAX_STREAMS;
    k->next = env->conns;
    if (env->conns != NULL)
        env->conns->prev = k;
    env->conns = k;
    env->nconns++;
    char why[200];
    if (open_layers(k, why, sizeof(why)) != 0) {
        ptth_h2_conn_close(k, why);
        return;
    }
    ptth_timer_start(env->loop, &k->timer, CONNECT_TIMEOUT_MS, on_conn_deadline, k);
}

/* Reads what the relay sent and feeds it to nghttp2. 0, or -1 when the
 * connection is gone. */
static int
conn_read(h2_conn *k)
{
    h2_env *env = k->env;
    char why[160];
    for (int i = 0; i < READS_PER_EVENT; i++) {
        ssize_t n = ptth_bstream_recv(k->bs, env->readbuf, READ_SIZE, why, sizeof(why));
        if (n == -EAGAIN)
            return 0;
        if (n == 0) {
            ptth_h2_conn_close(k, "closed by the relay");
            return -1;
        }
        if (n < 0) {
            ptth_h2_conn_close(k, why);
            return -1;
        }
        if (k->state == CONN_SETTINGS && n >= 5 && memcmp(env->readbuf, "HTTP/", 5) == 0) {
            /* an HTTP/1.x server answered the preface */
            env->ev->fall_back(env->owner, k);
            return -1;
        }
        k->last_rx_ms = ptth_loop_now(env->loop);
        k->ping_out = false;
        ssize_t rv = nghttp2_session_mem_recv(k->session, env->readbuf, (size_t)n);
        if (rv < 0) {
            ptth_h2_conn_close(k, nghttp2_strerror((int)rv));
            return -1;
        }
        if (k->short_read_drains && n < READ_SIZE)
            return 0; /* drained */
    }
    return 0;
}

static void
on_conn_event(void *data, uint32_t events)
{
    h2_conn *k = data;
    if (k->state == CONN_CONNECTING) {
        char why[200];
        int rc = ptth_bstream_connect(k->bs, why, sizeof(why));
        if (rc == 0)
            on_connected(k);
        else if (rc != -EAGAIN)
            ptth_h2_conn_close(k, why);
        return;
    }
    if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && conn_read(k) != 0)
        return;
    conn_flush(k);
}

/* ---- requests ---- */

int
ptth_h2_conn_submit(h2_conn *k, h2_stream *s)
{
    h2_env *env = k->env;
    char path[PATH_MAX_LEN + sizeof(env->prefix)];
    snprintf(path, sizeof(path), "%s%s", env->prefix, s->path);
    char clen[24];
    snprintf(clen, sizeof(clen), "%zu", s->body_len);
    nghttp2_nv nva[8 + PTTH_REQ_HEADERS_MAX];
    char names[PTTH_REQ_HEADERS_MAX][HEADER_NAME_MAX];
    size_t n = 0;
#define NV(nm, nlen, val, vlen)                                                                                                    \
    do {                                                                                                                           \
        nva[n].name = (uint8_t *)(nm);                                                                                             \
        nva[n].namelen = (nlen);                                                                                                   \
        nva[n].value = (uint8_t *)(val);                                                                                           \
        nva[n].valuelen = (vlen);                                                                                                  \
        nva[n].flags = NGHTTP2_NV_FLAG_NONE;                                                                                       \
        n++;                                                                                                                       \
    } while (0)
#define NVS(nm, val) NV(nm, sizeof(nm) - 1, val, strlen(val))
    NVS(":method", "POST");
    NVS(":scheme", env->https ? "https" : "http");
    NVS(":authority", env->authority);
    NVS(":path", path);
    NVS("authorization", env->auth_value);
    NVS("user-agent", env->user_agent);
    if (env->instance != NULL)
        NVS("ptth-instance", env->instance);
    NVS("content-length", clen);
    for (size_t i = 0; s->headers[i] != NULL; i++) {
        const char *line = s->headers[i];
        const char *colon = strchr(line, ':');
        size_t nlen = colon != NULL ? (size_t)(colon - line) : 0;
        if (nlen == 0 || nlen >= HEADER_NAME_MAX)
            continue; /* checked at start */
        for (size_t j = 0; j < nlen; j++)
            names[i][j] = (char)(line[j] >= 'A' && line[j] <= 'Z' ? line[j] + 32 : line[j]);
        const char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        NV(names[i], nlen, v, strlen(v));
    }
#undef NVS
#undef NV
    nghttp2_data_provider prd = {.source.ptr = s, .read_callback = on_read_body};
    s->body_off = s->body_sent = 0;
    int32_t id = nghttp2_submit_request(k->session, NULL, nva, n, s->body_len > 0 ? &prd : NULL, s);
    if (id < 0)
        return id;
    s->id = id;
    s->in_session = true;
    s->ended = false;
    k->open_streams++;
    conn_link_stream(k, s);
    if (ptth_timer_active(&k->timer) && k->state == CONN_READY)
        ptth_timer_stop(env->loop, &k->timer); /* the idle timer */
    ptth_h2_conn_want_flush(k);
    return 0;
}

void
ptth_h2_stream_consumed(h2_stream *s, size_t n)
{
    if (n > 0 && s->conn != NULL) {
        nghttp2_session_consume(s->conn->session, s->id, n);
        ptth_h2_conn_want_flush(s->conn);
    }
}

void
ptth_h2_stream_reset(h2_stream *s)
{
    if (s->in_session && s->conn != NULL) {
        nghttp2_submit_rst_stream(s->conn->session, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_CANCEL);
        ptth_h2_conn_want_flush(s->conn);
    }
}

int
ptth_h2_sessions_init(h2_env *env)
{
    if (nghttp2_session_callbacks_new(&env->callbacks) != 0 || nghttp2_option_new(&env->option) != 0)
        return -ENOMEM;
    nghttp2_session_callbacks_set_on_begin_headers_callback(env->callbacks, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(env->callbacks, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(env->callbacks, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(env->callbacks, on_data_chunk_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(env->callbacks, on_stream_close);
    nghttp2_session_callbacks_set_send_data_callback(env->callbacks, on_send_data);
    nghttp2_option_set_no_auto_window_update(env->option, 1);
    nghttp2_option_set_peer_max_concurrent_streams(env->option, DEFAULT_MAX_STREAMS);
    return 0;
}

void
ptth_h2_sessions_fini(h2_env *env)
{
    if (env->callbacks != NULL)
        nghttp2_session_callbacks_del(env->callbacks);
    if (env->option != NULL)
        nghttp2_option_del(env->option);
    env->callbacks = NULL;
    env->option = NULL;
}
