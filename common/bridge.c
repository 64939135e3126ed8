/*
 * bridge.c: a tunnel between a local byte stream and the relay; see bridge.h.
 *
 * The top of the bridge's layers (bridge_internal.h): it owns the bridge
 * (its life, its state, the end and on_end), the local end (reads, the
 * coalesced writes of `out`, the watches) and the chunked path of SPEC §4
 * (the framed-stream request, the chunk POSTs). It calls the layers under
 * it by name: bridge_leg.c for the upgraded path, bridge_resume.c for the
 * counts of a resumable tunnel, bridge_buf.c for chunk buffers. They call
 * back only through the bridge_env table below (`env`), set on every
 * bridge by ptth_bridge_new().
 */
#include "bridge.h"
#include "bridge_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bridge_buf.h"
#include "frame.h"
#include "log.h"
#include "sysutil.h"

#define CLOSE_TIMEOUT_MS 5000L
/* A chunk whose request fails in transport (the shared connection died, a
 * 5xx) is sent again after these delays; the relay ignores a chunk it already
 * delivered, so a retry is always safe. */
static const long chunk_retry_ms[] = {0, 100, 300, 1000};
/* A chunk request without an answer after this long is sent again (without
 * counting as a failed attempt): the relay may hold a chunk that long when
 * the other side reads slowly (the copy sent again replaces the held one),
 * but a request can also be lost on a connection that libcurl 7.88 never
 * finishes (an h2c upgrade that failed while requests waited for it). */
#define CHUNK_TIMEOUT_MS 60000L
#define CHUNK_ATTEMPTS ((int)(sizeof(chunk_retry_ms) / sizeof(chunk_retry_ms[0])) + 1)
/* Relay -> local bytes wait in `out` until the end of the loop round, or
 * until this many wait (then they are written from the write callback). */
#define OUT_FLUSH_AT 262144
/* After a complete flush `out` is kept for the next round while data flows in
 * batches of at least OUT_KEEP_BATCH bytes, unless it grew above OUT_KEEP_CAP
 * (a backlog): a quiet tunnel holds no output buffer. */
#define OUT_KEEP_BATCH 16384
#define OUT_KEEP_CAP (2 * OUT_FLUSH_AT)

/* ---- the bridge ---- */

static const char fin_header[] = "PTTH-Fin: 1";

static void on_defer(ptth_defer *d);
static void on_out_defer(ptth_defer *d);
static void post_chunk(struct chunk *c);
static void on_chunk_retry_timer(ptth_timer *t);
static void fail(ptth_bridge *b, bool tell_relay, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void schedule(ptth_bridge *b);
static void update_watches(ptth_bridge *b);
static ssize_t read_local_into(ptth_bridge *b, size_t at, size_t room, uint8_t **bufp);
static size_t feed(ptth_bridge *b, const uint8_t *p, size_t len, bool flush_now);
static size_t drop_undelivered(ptth_bridge *b);
static bool opened(ptth_bridge *b, const char *conn, long max_chunk);
static void refused(ptth_bridge *b, long status, long retry_after, const char *why);
static int start_chunks(ptth_bridge *b);
static void release_chunks(ptth_bridge *b);
static void send_chunk(ptth_bridge *b, struct chunk *c);

/* What the layers under this one may ask of the bridge (bridge_internal.h). */
static const bridge_env env = {
    .fail = fail,
    .schedule = schedule,
    .update_watches = update_watches,
    .read_local_into = read_local_into,
    .feed = feed,
    .opened = opened,
    .refused = refused,
    .start_chunks = start_chunks,
    .drop_undelivered = drop_undelivered,
    .release_chunks = release_chunks,
    .send_chunk = send_chunk,
};

void
ptth_bridge_release_pool(void)
{
    ptth_bridge_buf_release();
}

bool
ptth_conn_id_valid(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = id[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_'))
            return false;
    }
    return true;
}

/* Records the first failure and lets the loop act on it (we may be inside
 * libcurl here). tell_relay: the relay does not know yet, send `close`. */
static void
fail(ptth_bridge *b, bool tell_relay, const char *fmt, ...)
{
    if (b->failed || b->state == ST_ENDED)
        return;
    b->failed = true;
    b->tell_relay = tell_relay;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->reason, sizeof(b->reason), fmt, ap);
    va_end(ap);
    ptth_defer_call(b->loop, &b->defer, on_defer, b);
}

static void
schedule(ptth_bridge *b)
{
    ptth_defer_call(b->loop, &b->defer, on_defer, b);
}

static void
close_local(ptth_bridge *b)
{
    if (b->local_closed)
        return;
    b->local_closed = true;
    ptth_watch_stop(&b->rwatch);
    ptth_watch_stop(&b->wwatch);
    if (b->failed && b->local.ops->abort != NULL)
        b->local.ops->abort(b->local.ctx);
    else
        b->local.ops->close(b->local.ctx);
}

static void
release_chunks(ptth_bridge *b)
{
    for (unsigned i = 0; b->chunks != NULL && i < PTTH_BRIDGE_WINDOW; i++) {
        struct chunk *c = &b->chunks[i];
        ptth_req_cancel(&c->req);
        ptth_timer_stop(b->loop, &c->retry_timer);
        ptth_bridge_buf_put(c->buf, b->max_chunk);
        c->buf = NULL;
    }
    b->in_flight = 0;
}

static void
destroy(ptth_bridge *b)
{
    ptth_defer_cancel(b->loop, &b->defer);
    ptth_defer_cancel(b->loop, &b->out_defer);
    ptth_timer_stop(b->loop, &b->close_timer);
    ptth_req_cancel(&b->stream);
    ptth_req_cancel(&b->close_req);
    release_chunks(b);
    close_local(b);
    ptth_bridge_leg_close(b, true);
    ptth_bridge_chunks_resume_stop(b);
    free(b->chunks);
    free(b->out);
    free(b);
}

void
ptth_bridge_free(ptth_bridge *b)
{
    if (b != NULL)
        destroy(b);
}

void
ptth_bridge_shutdown(ptth_bridge *b)
{
    /* before the tunnel id is known there is nothing to close at the relay:
     * dropping the connect request is enough */
    if (b->state == ST_OPENING && !b->conn_known) {
        ptth_req_cancel(&b->stream);
        ptth_bridge_leg_close(b, true);
    }
    fail(b, true, "shutdown");
}

const char *
ptth_bridge_conn(const ptth_bridge *b)
{
    return b->conn;
}

void
ptth_bridge_bytes(const ptth_bridge *b, uint64_t *to_relay, uint64_t *from_relay)
{
    *to_relay = b->bytes_to_relay;
    *from_relay = b->bytes_from_relay;
}

/* Calls on_end and frees the bridge. */
static void
finish(ptth_bridge *b)
{
    b->state = ST_ENDED;
    ptth_req_cancel(&b->stream);
    ptth_req_cancel(&b->close_req);
    release_chunks(b);
    close_local(b);
    ptth_bridge_leg_close(b, !b->clean);
    ptth_bridge_result res = {
        .established = b->established,
        .status = b->stream.status,
        .retry_after = b->stream.retry_after,
        .reason = b->reason,
        .clean = b->clean,
        .bytes_to_relay = b->bytes_to_relay,
        .bytes_from_relay = b->bytes_from_relay,
        .duration_ms = ptth_loop_now(b->loop) - b->started_ms,
        .resumes = ptth_bridge_resumable(b) ? (int)b->rs.resumes : -1,
    };
    b->on_end(b, &res, b->data);
    destroy(b);
}

ptth_bridge *
ptth_bridge_new(const ptth_bridge_config *cfg, const ptth_local_end *local)
{
    ptth_bridge *b = calloc(1, sizeof(*b));
    if (b == NULL) {
        local->ops->close(local->ctx);
        return NULL;
    }
    b->loop = cfg->loop;
    b->client = cfg->client;
    b->on_end = cfg->on_end;
    b->on_established = cfg->on_established;
    size_t nh = 0;
    if (cfg->stream_header != NULL) {
        snprintf(b->stream_header, sizeof(b->stream_header), "%s", cfg->stream_header);
        b->stream_headers[nh++] = b->stream_header;
    }
    b->data = cfg->data;
    snprintf(b->server, sizeof(b->server), "%s", cfg->server);
    snprintf(b->chunk_kind, sizeof(b->chunk_kind), "%s", cfg->chunk_kind);
    snprintf(b->local_name, sizeof(b->local_name), "%s", cfg->local_name != NULL ? cfg->local_name : "local");
    b->max_chunk = cfg->max_chunk > 0 ? cfg->max_chunk : 262144;
    b->data_path = cfg->data_path;
    b->read_limit = b->max_chunk;
    b->local = *local;
    b->same_fd = local->read_fd == local->write_fd;
    b->state = ST_NEW;
    b->stream.retry_after = -1;
    b->started_ms = ptth_loop_now(b->loop);
    ptth_frame_decoder_init(&b->dec, 0);
    b->env = &env;
    ptth_bridge_leg_init(b, cfg);
    /* the ask for resumption, on either path (bridge_resume.c decides) */
    b->stream_headers[nh] = ptth_bridge_resume_request_header(b);
    return b;
}

/* ---- relay -> local ---- */

static bool
out_pending(const ptth_bridge *b)
{
    return b->out_len > b->out_off;
}

/* Keeps bytes the local end did not take. */
static int
out_append(ptth_bridge *b, const uint8_t *p, size_t len)
{
    if (b->out_off > 0) {
        memmove(b->out, b->out + b->out_off, b->out_len - b->out_off);
        b->out_len -= b->out_off;
        b->out_off = 0;
    }
    if (b->out_len + len > b->out_cap) {
        size_t cap = b->out_cap > 0 ? b->out_cap : 65536;
        while (cap < b->out_len + len)
            cap *= 2;
        uint8_t *n = realloc(b->out, cap);
        if (n == NULL)
            return -ENOMEM;
        b->out = n;
        b->out_cap = cap;
    }
    memcpy(b->out + b->out_len, p, len);
    b->out_len += len;
    return 0;
}

/* Writes what waits in `out` as far as the local end takes it, and nothing
 * else (no resume, no scheduling: safe inside libcurl). 0 when all is
 * written, -EAGAIN when the local end is full (out_blocked), another negative
 * errno when it broke (out_broken). */
static int
write_out(ptth_bridge *b)
{
    while (out_pending(b)) {
        ssize_t n = b->local.ops->write(b->local.ctx, b->out + b->out_off, b->out_len - b->out_off);
        if (n == -EAGAIN) {
            b->out_blocked = true;
            return -EAGAIN;
        }
        if (n < 0) {
            b->out_broken = true;
            return (int)n;
        }
        b->out_off += (size_t)n;
        ptth_bridge_resume_delivered(b, (size_t)n);
    }
    b->out_off = b->out_len = 0;
    b->out_blocked = false;
    return 0;
}

static void
shut_local_write(ptth_bridge *b)
{
    if (b->from_relay == FROM_RELAY_SHUT || b->local_closed)
        return;
    b->from_relay = FROM_RELAY_SHUT;
    ptth_bridge_resume_delivered_fin(b);
    if (!b->same_fd)
        ptth_watch_stop(&b->wwatch);
    int rc = b->local.ops->shutdown_write(b->local.ctx);
    if (rc != 0 && rc != -ENOTCONN)
        fail(b, true, "%s shutdown failed: %s", b->local_name, strerror(-rc));
}

static bool
opened(ptth_bridge *b, const char *conn, long max_chunk)
{
    if (!b->conn_known) {
        if (!ptth_conn_id_valid(conn)) {
            fail(b, false, "relay answered without a valid PTTH-Conn");
            return false;
        }
        snprintf(b->conn, sizeof(b->conn), "%s", conn);
        b->conn_known = true;
    }
    if (ptth_api_conn_path(b->chunk_path, sizeof(b->chunk_path), b->server, b->conn, b->chunk_kind) != 0) {
        fail(b, false, "chunk path too long");
        return false;
    }
    /* the relay refuses bodies above its --max-chunk and says which */
    if (max_chunk > 0 && (size_t)max_chunk < b->read_limit)
        b->read_limit = (size_t)max_chunk;
    b->state = ST_OPEN;
    b->established = true;
    if (b->on_established != NULL)
        b->on_established(b, b->data);
    update_watches(b);
    return true;
}

static void
on_stream_headers(ptth_req *r)
{
    ptth_bridge *b = r->data;
    if (r->status >= 200 && r->status <= 299 && b->state == ST_OPENING) {
        ptth_leg_response res;
        ptth_bridge_chunks_response_of(r, &res);
        ptth_bridge_chunks_resume_opened(b, &res, NULL); /* resumable (raw) when granted */
        (void)opened(b, r->conn, r->max_chunk);
    }
}

/* The framed stream's bytes: decode, and queue DATA for the local end.
 * From libcurl or nghttp2 (one HTTP/2 DATA frame of 16 KiB per call) the
 * payloads of one loop round are written with one call after the round
 * (on_out_defer), so a 256 KiB chunk costs one or two writes, not 17; a
 * leg's reads are large, and written at once (flush_now). */
static size_t
feed(ptth_bridge *b, const uint8_t *p, size_t len, bool flush_now)
{
    if (b->state != ST_OPEN || b->failed)
        return len; /* ending: nothing more goes to the local end */
    if (b->out_blocked && b->path == PATH_CHUNKS && !ptth_bridge_resume_overfill(b)) {
        /* the local end is full: keep at most what waits now (a leg is
         * read past a full local end only on purpose, and its bytes are
         * taken: ptth_bridge_resume_overfill()) */
        b->stream_paused = true;
        return PTTH_REQ_PAUSE;
    }
    size_t off = 0;
    while (off < len) {
        ptth_frame_event ev;
        off += ptth_frame_decode(&b->dec, p + off, len - off, &ev);
        switch (ev.type) {
        case PTTH_FRAME_EV_NEED_MORE:
            break;
        case PTTH_FRAME_EV_DATA: {
            b->bytes_from_relay += ev.len;
            if (!ptth_bridge_resume_decoded(b, ev.len))
                return len;
            int rc = out_append(b, ev.data, ev.len);
            if (rc != 0) {
                fail(b, true, "%s write failed: %s", b->local_name, strerror(-rc));
                return len;
            }
            break;
        }
        case PTTH_FRAME_EV_FIN:
            if (b->from_relay == FROM_RELAY_OPEN)
                b->from_relay = FROM_RELAY_FIN;
            break;
        case PTTH_FRAME_EV_RST:
            fail(b, false, "rst: %.*s", (int)ev.len, (const char *)ev.data);
            return len;
        case PTTH_FRAME_EV_PING:
            ptth_bridge_resume_beat(b); /* raw: the relay's heartbeat is ours */
            break;
        case PTTH_FRAME_EV_ACK: /* refused on a tunnel that is not resumable */
            if (!ptth_bridge_resume_on_ack(b, ev.value, ev.window))
                return len;
            break;
        case PTTH_FRAME_EV_ERROR:
            fail(b, true, "bad frame from relay: %s", ev.error);
            return len;
        }
        if (ev.type == PTTH_FRAME_EV_NEED_MORE)
            break;
    }
    if (out_pending(b) && !b->out_blocked && (flush_now || b->out_len - b->out_off >= OUT_FLUSH_AT)) {
        int rc = write_out(b);
        if (rc != 0 && rc != -EAGAIN) {
            fail(b, true, "%s write failed: %s", b->local_name, strerror(-rc));
            return len;
        }
    }
    if (out_pending(b) && !b->out_blocked)
        ptth_defer_call(b->loop, &b->out_defer, on_out_defer, b);
    if (b->from_relay != FROM_RELAY_OPEN && !out_pending(b))
        shut_local_write(b);
    update_watches(b);
    if (b->from_relay != FROM_RELAY_OPEN || (b->raw && ptth_bridge_resume_ack_due(b)))
        schedule(b); /* raw: the ACK goes in a chunk, from the loop */
    return len;
}

static size_t
on_stream_body(ptth_req *r, const uint8_t *p, size_t len)
{
    return feed(r->data, p, len, false);
}

static void
refused(ptth_bridge *b, long status, long retry_after, const char *why)
{
    b->stream_done = true;
    b->stream.status = status;
    b->stream.retry_after = retry_after;
    if (status == 0 && b->conn_known) {
        /* the accept failed in transport: the relay may still hold the
         * tunnel, and the client waits on it; say it is over */
        fail(b, true, "%s", why);
        return;
    }
    if (why != NULL && why[0] != '\0')
        snprintf(b->reason, sizeof(b->reason), "%s", why);
    else
        snprintf(b->reason, sizeof(b->reason), "HTTP %ld", status);
    finish(b);
}

static void
on_stream_done(ptth_req *r, const char *error)
{
    ptth_bridge *b = r->data;
    b->stream_done = true;
    if (b->state == ST_OPENING) {
        refused(b, error != NULL ? 0 : r->status, r->retry_after, error != NULL ? error : r->reason);
        return;
    }
    if (b->state == ST_OPEN && b->raw) {
        ptth_bridge_chunks_stream_ended(b, error);
    } else if (b->state == ST_OPEN) {
        if (error != NULL) /* the relay may not know yet: tell it if it is there */
            fail(b, true, "relay stream failed: %s", error);
        else if (b->from_relay == FROM_RELAY_OPEN)
            fail(b, false, "relay ended the stream without FIN");
    }
    schedule(b);
}

static const ptth_req_ops stream_ops = {
    .on_headers = on_stream_headers,
    .on_body = on_stream_body,
    .on_done = on_stream_done,
};

/* Writes what waits (the round's DATA, or what a full local end refused);
 * once all is written, the FIN follows and the stream goes on. Outside
 * libcurl only. */
static void
flush_out(ptth_bridge *b)
{
    size_t batch = b->out_len;
    int rc = write_out(b);
    if (rc == -EAGAIN)
        return;
    if (rc != 0) {
        fail(b, true, "%s write failed: %s", b->local_name, strerror(-rc));
        return;
    }
    if (b->out_cap > OUT_KEEP_CAP || batch < OUT_KEEP_BATCH) {
        /* a backlog, or a trickle: give the memory back */
        free(b->out);
        b->out = NULL;
        b->out_cap = 0;
    }
    if (b->from_relay != FROM_RELAY_OPEN)
        shut_local_write(b);
    if (b->path == PATH_UPGRADE)
        ptth_bridge_leg_flush_ack(b); /* resumable: what was delivered may be due an ACK */
    if (b->failed)
        return;
    if (b->stream_paused) {
        b->stream_paused = false;
        /* may deliver more right away (feed) */
        if (b->path == PATH_CHUNKS)
            ptth_req_resume(&b->stream);
        else
            ptth_bridge_leg_resume(b);
    }
    schedule(b);
}

static size_t
drop_undelivered(ptth_bridge *b)
{
    size_t dropped = b->out_len - b->out_off;
    b->out_off = b->out_len = 0;
    b->out_blocked = false;
    b->stream_paused = false;
    b->bytes_from_relay -= dropped;
    if (b->from_relay == FROM_RELAY_FIN)
        b->from_relay = FROM_RELAY_OPEN; /* not passed on: it comes again after the resume */
    update_watches(b);
    return dropped;
}

/* The end of the round in which DATA arrived: write it (never later, so
 * coalescing adds no latency). */
static void
on_out_defer(ptth_defer *d)
{
    ptth_bridge *b = d->data;
    if (b->state != ST_OPEN || b->failed || b->local_closed || b->out_blocked || !out_pending(b))
        return;
    flush_out(b);
    if (!b->local_closed)
        update_watches(b);
}

/* ---- local -> relay ---- */

static bool
reading_wanted(const ptth_bridge *b)
{
    if (b->path == PATH_UPGRADE)
        return ptth_bridge_leg_reading_wanted(b);
    if (b->raw)
        return ptth_bridge_chunks_reading_wanted(b);
    return b->state == ST_OPEN && !b->failed && b->to_relay == TO_RELAY_OPEN && b->in_flight < PTTH_BRIDGE_WINDOW;
}

static void
update_watches(ptth_bridge *b)
{
    if (b->local_closed)
        return;
    uint32_t rev = reading_wanted(b) ? EPOLLIN : 0;
    uint32_t wev = b->out_blocked && out_pending(b) && b->from_relay != FROM_RELAY_SHUT && !b->failed ? EPOLLOUT : 0;
    if (b->same_fd) {
        ptth_watch_set(&b->rwatch, rev | wev);
    } else {
        ptth_watch_set(&b->rwatch, rev);
        if (b->wwatch.active)
            ptth_watch_set(&b->wwatch, wev);
    }
}

static ssize_t
read_local_into(ptth_bridge *b, size_t at, size_t room, uint8_t **bufp)
{
    uint8_t *buf = ptth_bridge_buf_get(b->max_chunk);
    if (buf == NULL) {
        fail(b, true, "out of memory");
        return -ENOMEM;
    }
    ssize_t n = b->local.ops->read(b->local.ctx, buf + at, room);
    if (n < 0) {
        ptth_bridge_buf_put(buf, b->max_chunk);
        if (n != -EAGAIN)
            fail(b, true, "%s read failed: %s", b->local_name, strerror((int)-n));
        return n;
    }
    *bufp = buf;
    return n;
}

static void
read_local(ptth_bridge *b)
{
    if (b->path == PATH_UPGRADE) {
        ptth_bridge_leg_read_local(b);
        return;
    }
    struct chunk *c = ptth_bridge_chunks_slot(b);
    if (c == NULL) {
        if (b->chunks == NULL)
            fail(b, true, "out of memory");
        return; /* else every slot is busy: a chunk's answer frees one */
    }
    if (b->raw) {
        if (ptth_bridge_chunks_read_local(b, c))
            send_chunk(b, c);
        return;
    }
    uint8_t *buf;
    ssize_t n = read_local_into(b, 0, b->read_limit, &buf);
    if (n < 0)
        return;
    if (n == 0) {
        ptth_bridge_buf_put(buf, b->max_chunk);
        b->to_relay = TO_RELAY_EOF;
        c->buf = NULL;
        c->len = 0;
        c->fin = true;
    } else {
        c->buf = buf;
        c->len = (size_t)n;
        c->fin = false;
    }
    send_chunk(b, c);
}

static void
send_chunk(ptth_bridge *b, struct chunk *c)
{
    c->seq = b->next_seq++;
    c->attempts = 0;
    b->in_flight++;
    post_chunk(c);
}

static void
on_local_event(ptth_watch *w, uint32_t events)
{
    ptth_bridge *b = w->data;
    if (w == &b->wwatch || (b->same_fd && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) && out_pending(b)))
        flush_out(b);
    if (w == &b->rwatch && !b->local_closed && reading_wanted(b) && (events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
        read_local(b);
    if (!b->local_closed)
        update_watches(b);
}

static void
on_chunk_done(ptth_req *r, const char *error)
{
    struct chunk *c = r->data;
    ptth_bridge *b = c->b;
    if (b->state != ST_OPEN || b->failed)
        return; /* ending: on_defer releases the buffer */
    if (r->status >= 200 && r->status <= 299 && error == NULL && (r->seq != (long long)c->seq || strcmp(r->conn, b->conn) != 0)) {
        /* an answer that is not this chunk's: libcurl 7.88's h2c-upgrade path
         * was seen to hand a request the answer of another one on the same
         * connection, so a chunk the relay never got counted as delivered
         * (the window then slid past it: 409 "more than 8 ahead", or a
         * stall). Sent again like a chunk lost in transport. */
        ptth_log_warn("event=chunk_answer_mismatch conn=%s seq=%" PRIu64 " answer_conn=%s answer_seq=%lld", b->conn, c->seq,
                      r->conn[0] != '\0' ? r->conn : "-", r->seq);
        error = "answer for another request";
    }
    if (r->timed_out) {
        ptth_log_debug("event=chunk_retry conn=%s seq=%" PRIu64 " reason=timeout", b->conn, c->seq);
        c->attempts--; /* not a failure: the relay may hold chunks this long */
        post_chunk(c);
        return;
    }
    bool transport = error != NULL || r->status >= 500;
    if (transport && c->attempts < CHUNK_ATTEMPTS) {
        long delay = chunk_retry_ms[c->attempts - 1];
        ptth_log_debug("event=chunk_retry conn=%s seq=%" PRIu64 " attempt=%d delay_ms=%ld error=%s", b->conn, c->seq,
                       c->attempts + 1, delay, error != NULL ? "transport" : "5xx");
        if (delay == 0)
            post_chunk(c);
        else
            ptth_timer_start(b->loop, &c->retry_timer, delay, on_chunk_retry_timer, c);
        return;
    }
    if (b->raw && (error != NULL || r->status < 200 || r->status > 299) && !(r->status == 404 && b->done_sent)) {
        /* raw: whatever keeps a chunk from the relay is a loss, not an end
         * (404: the relay restarted, or forgot; 409: it suspended the
         * tunnel): the resume tells the peer where to start again */
        char why[PTTH_REQ_REASON_MAX + 64];
        snprintf(why, sizeof(why), "chunk %" PRIu64 ": %s", c->seq, error != NULL ? error : r->reason);
        if (ptth_bridge_resume_lost(b, why))
            return;
    }
    if (error != NULL) {
        fail(b, true, "chunk %" PRIu64 " failed: %s", c->seq, error);
        return;
    }
    if (r->status == 404 && !(b->stream_done && b->from_relay != FROM_RELAY_OPEN)) {
        fail(b, false, "relay no longer knows the tunnel (404 on chunk %" PRIu64 ")", c->seq);
        return;
    }
    /* a 404 after our stream ended cleanly: the relay ends a tunnel that way
     * only once every chunk up to both FINs was delivered, so this one (sent
     * again because its answer was lost) was delivered too */
    if (r->status == 404)
        r->status = 204;
    if (r->status < 200 || r->status > 299) {
        fail(b, true, "chunk %" PRIu64 " refused: HTTP %ld %s", c->seq, r->status, r->reason);
        return;
    }
    if (b->raw) {
        if (c->fin_frame && b->to_relay == TO_RELAY_EOF)
            b->to_relay = TO_RELAY_DONE; /* our FIN frame went through */
    } else {
        b->bytes_to_relay += c->len;
        if (c->fin)
            b->to_relay = TO_RELAY_DONE;
    }
    ptth_bridge_buf_put(c->buf, b->max_chunk);
    c->buf = NULL;
    b->in_flight--;
    update_watches(b);
    schedule(b);
}

static const ptth_req_ops chunk_ops = {
    .on_done = on_chunk_done,
};

static void
on_chunk_retry_timer(ptth_timer *t)
{
    struct chunk *c = t->data;
    if (c->b->state == ST_OPEN && !c->b->failed)
        post_chunk(c);
}

static void
post_chunk(struct chunk *c)
{
    ptth_bridge *b = c->b;
    snprintf(c->seq_header, sizeof(c->seq_header), "PTTH-Seq: %" PRIu64, c->seq);
    snprintf(c->epoch_header, sizeof(c->epoch_header), "PTTH-Epoch: %" PRIu64, b->epoch);
    const char *headers[4] = {c->seq_header, NULL, NULL, NULL};
    size_t nh = 1;
    if (b->raw)
        headers[nh++] = c->epoch_header;
    if (c->fin)
        headers[nh] = fin_header;
    c->req.ops = &chunk_ops;
    c->req.data = c;
    c->req.timeout_ms = CHUNK_TIMEOUT_MS;
    c->attempts++;
    int rc = ptth_req_start(b->client, &c->req, PTTH_REQ_SHORT, b->chunk_path, headers, c->buf, c->len);
    if (rc != 0)
        fail(b, true, "cannot send chunk: %s", strerror(-rc));
}

/* ---- the end ---- */

static void
on_close_done(ptth_req *r, const char *error)
{
    ptth_bridge *b = r->data;
    if (error != NULL)
        ptth_log_debug("event=close_failed conn=%s error=%s", b->conn, error);
    finish(b);
}

static const ptth_req_ops close_ops = {
    .on_done = on_close_done,
};

static void
on_close_timeout(ptth_timer *t)
{
    finish(t->data);
}

/* Acts on the state outside libcurl: failures, and the normal end. */
static void
on_defer(ptth_defer *d)
{
    ptth_bridge *b = d->data;
    if (b->state == ST_ENDED || b->state == ST_CLOSING)
        return;
    if (b->failed) {
        /* DATA that arrived before the failure and was not offered to the
         * local end yet (coalesced in this round) goes out as far as the
         * local end takes it now, as if written on arrival; what a full local
         * end refused is dropped */
        if (!b->out_blocked && !b->out_broken && !b->local_closed && b->from_relay != FROM_RELAY_SHUT)
            (void)write_out(b);
        close_local(b);
        release_chunks(b);
        /* upgraded: the leg's reset tells the relay (and the other side).
         * A resumable tunnel is closed at the relay like a chunked one: the
         * relay takes a lone reset for a lost leg and would wait for a
         * resume (and it may be suspended there already) */
        bool upgraded = b->path == PATH_UPGRADE && ptth_bridge_resume_live(b) && !ptth_bridge_resumable(b);
        ptth_bridge_leg_close(b, true);
        if (b->tell_relay && b->conn_known && !upgraded) {
            /* tell the relay first, then drop the stream */
            char path[PTTH_API_PATH_MAX], value[200];
            ptth_api_conn_path(path, sizeof(path), b->server, b->conn, "close"); /* fits: chunk_path did */
            ptth_req_header_value(value, sizeof(value), b->reason);
            snprintf(b->close_header, sizeof(b->close_header), "PTTH-Reason: %s", value);
            const char *headers[2] = {b->close_header, NULL};
            b->close_req.ops = &close_ops;
            b->close_req.data = b;
            b->close_req.timeout_ms = CLOSE_TIMEOUT_MS;
            if (ptth_req_start(b->client, &b->close_req, PTTH_REQ_SHORT, path, headers, NULL, 0) == 0) {
                b->state = ST_CLOSING;
                ptth_timer_start(b->loop, &b->close_timer, CLOSE_TIMEOUT_MS + 1000, on_close_timeout, b);
                return;
            }
        }
        finish(b);
        return;
    }
    if (b->raw && b->state == ST_OPEN)
        ptth_bridge_chunks_kick(b); /* the replay, ACKs, our PTTH-Fin chunk */
    if (b->failed)
        return; /* again: the kick failed */
    /* raw: the relay ends the streams cleanly only when both sides said
     * they were done (PTTH-Fin chunks) */
    bool relay_done = b->path == PATH_UPGRADE ? ptth_bridge_leg_done(b)
                      : b->raw            ? b->stream_done && b->done_sent
                                          : b->stream_done && b->to_relay == TO_RELAY_DONE && b->in_flight == 0;
    if (b->state == ST_OPEN && b->from_relay == FROM_RELAY_SHUT && relay_done) {
        b->clean = true;
        snprintf(b->reason, sizeof(b->reason), "fin");
        finish(b);
    }
}

static int
start_chunks(ptth_bridge *b)
{
    b->path = PATH_CHUNKS;
    b->stream.ops = &stream_ops;
    b->stream.data = b;
    b->stream.timeout_ms = 0;
    return ptth_req_start(b->client, &b->stream, PTTH_REQ_STREAM, b->stream_path, b->stream_headers, NULL, 0);
}

int
ptth_bridge_start(ptth_bridge *b, const char *stream_path, const char *conn_id)
{
    if (b->state != ST_NEW)
        return -EINVAL;
    b->started_ms = ptth_loop_now(b->loop);
    if (conn_id != NULL) {
        snprintf(b->conn, sizeof(b->conn), "%s", conn_id);
        b->conn_known = true;
    }
    int rc = ptth_watch_start(b->loop, &b->rwatch, b->local.read_fd, 0, on_local_event, b);
    if (rc == 0 && !b->same_fd) {
        rc = ptth_watch_start(b->loop, &b->wwatch, b->local.write_fd, 0, on_local_event, b);
        if (rc != 0)
            ptth_watch_stop(&b->rwatch);
    }
    if (rc == 0 && snprintf(b->stream_path, sizeof(b->stream_path), "%s", stream_path) >= (int)sizeof(b->stream_path))
        rc = -E2BIG;
    if (rc == 0) {
        if (b->data_path != NULL && ptth_data_path_try_upgrade(b->data_path, ptth_loop_now(b->loop)))
            rc = ptth_bridge_leg_start(b);
        else
            rc = start_chunks(b);
    }
    if (rc != 0) {
        b->state = ST_OPENING;
        snprintf(b->reason, sizeof(b->reason), "cannot start request: %s", strerror(-rc));
        b->failed = true;
        b->tell_relay = false;
        schedule(b);
        return rc;
    }
    b->state = ST_OPENING;
    return 0;
}
