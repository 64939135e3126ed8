/*
 * tunnel.c: see tunnel.h.
 */
#include "tunnel.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "frame.h"
#include "h2obuf.h"
#include "log.h"
#include "sysutil.h"

/* Most bytes written into a stream in one go (several chunks may be batched). */
#define BATCH_BYTES (1024 * 1024)

struct ptth_chunk {
    ptth_hold hold; /* first: the hold's memory is the chunk's */
    ptth_tunnel *tunnel;
    ptth_dir *dir;
    uint64_t seq;
    bool fin;
    h2o_iovec_t data; /* req->entity, valid while the request lives and until write_data() */
};

static void on_stream_writable(ptth_stream *s, void *owner);
static void on_stream_broken(ptth_stream *s, void *owner);

static const ptth_stream_callbacks stream_callbacks = {on_stream_writable, on_stream_broken};

static void on_joint_moved(ptth_joint *j, void *owner, ptth_joint_side from, size_t n);
static void on_joint_end(ptth_joint *j, void *owner, bool clean, const char *detail);

static const ptth_joint_callbacks joint_callbacks = {on_joint_moved, on_joint_end};

const char *
ptth_end_reason_name(ptth_end_reason r)
{
    static const char *const names[] = {"fin", "rst", "idle", "backend", "timeout", "shutdown"};
    return (unsigned)r < PTTH_END__COUNT ? names[r] : "unknown";
}

ptth_tunnel *
ptth_tunnel_find(ptth_relay *relay, const char *id, size_t len)
{
    return ptth_table_get(&relay->tunnels, id, len);
}

static void
on_connect_gone(ptth_hold *hold)
{
    ptth_tunnel *t = hold->owner;
    t->connect = NULL;
    ptth_tunnel_end(t, PTTH_END_RST, "client went away before the tunnel opened");
}

static void
on_connect_timeout(h2o_timeout_entry_t *entry)
{
    ptth_tunnel *t = H2O_STRUCT_FROM_MEMBER(ptth_tunnel, connect_timer, entry);
    ptth_tunnel_end(t, PTTH_END_TIMEOUT, "server did not accept in time");
}

static void
on_idle_timeout(h2o_timeout_entry_t *entry)
{
    ptth_tunnel *t = H2O_STRUCT_FROM_MEMBER(ptth_tunnel, idle_timer, entry);
    ptth_tunnel_end(t, PTTH_END_IDLE, "idle");
}

static void
touch_idle(ptth_tunnel *t)
{
    if (t->relay->cfg->idle_timeout == 0 || t->state != PTTH_TUNNEL_OPEN || t->ending)
        return;
    h2o_timeout_unlink(&t->idle_timer);
    h2o_timeout_link(t->relay->ctx.loop, &t->relay->idle_timeout, &t->idle_timer);
}

ptth_tunnel *
ptth_tunnel_new(ptth_relay *relay, ptth_srv *srv, h2o_req_t *connect_req, const char *port, size_t port_len, const char *client,
                const char *addr)
{
    ptth_tunnel *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->relay = relay;
    t->srv = srv;
    snprintf(t->server, sizeof(t->server), "%s", srv->name);
    snprintf(t->port, sizeof(t->port), "%.*s", (int)port_len, port);
    snprintf(t->client, sizeof(t->client), "%s", client);
    snprintf(t->addr, sizeof(t->addr), "%s", addr);
    ptth_seqwin_init(&t->up.win);
    ptth_seqwin_init(&t->down.win);
    t->connect_timer.cb = on_connect_timeout;
    t->idle_timer.cb = on_idle_timeout;
    t->started_ms = ptth_now_ms();

    for (int attempt = 0;; attempt++) {
        if (attempt == 4 || ptth_random_id(t->id) != 0) {
            free(t);
            return NULL;
        }
        if (ptth_table_put(&relay->tunnels, t->id, PTTH_ID_LEN, t) == 0)
            break;
    }
    t->connect_wants_upgrade = ptth_joint_wanted(connect_req);
    t->connect = ptth_hold_new(connect_req, sizeof(ptth_hold), on_connect_gone, t);
    ptth_hold_watch_peer(t->connect, &relay->peers);
    srv->ntunnels++;
    relay->ntunnels++;
    relay->stats.tunnels_opened++;
    h2o_timeout_link(relay->ctx.loop, &relay->connect_timeout, &t->connect_timer);
    ptth_log_debug("event=tunnel_new id=%s server=%s port=%s client=%s addr=%s", t->id, t->server, t->port, t->client, t->addr);
    return t;
}

void
ptth_tunnel_match(ptth_tunnel *t, h2o_req_t *listen_req)
{
    t->state = PTTH_TUNNEL_AWAIT_ACCEPT;
    ptth_reply_header(listen_req, "ptth-conn", t->id, strlen(t->id));
    ptth_reply_header(listen_req, "ptth-port", t->port, strlen(t->port));
    ptth_reply_header(listen_req, "ptth-client-addr", t->addr, strlen(t->addr));
    ptth_reply_header(listen_req, "ptth-client", t->client, strlen(t->client));
    ptth_reply_max_chunk(listen_req, t->relay->cfg->max_chunk);
    ptth_reply(listen_req, 200, NULL);
}

/* ---- the upgraded path ---------------------------------------------------- */

/* Heartbeat and idle figures for the terminators: on this path they send
 * the PINGs themselves (the relay does not write into the joined bytes). */
static void
add_upgrade_headers(ptth_tunnel *t, h2o_req_t *req)
{
    char v[24];
    int n = snprintf(v, sizeof(v), "%" PRIu64, t->relay->cfg->heartbeat);
    ptth_reply_header(req, "ptth-conn", t->id, strlen(t->id));
    ptth_reply_header(req, "ptth-heartbeat", v, (size_t)n);
    if (t->relay->cfg->idle_timeout != 0) {
        n = snprintf(v, sizeof(v), "%" PRIu64, t->relay->cfg->idle_timeout);
        ptth_reply_header(req, "ptth-idle-timeout", v, (size_t)n);
    }
}

/* Both sides asked for the upgraded path: both get 101, then the joint
 * carries the bytes. */
static void
open_joined(ptth_tunnel *t, h2o_req_t *accept_req)
{
    ptth_joint *j = ptth_joint_new(&joint_callbacks, t);
    if (j == NULL) {
        ptth_reply(accept_req, 500, "relay out of memory\n");
        ptth_tunnel_end(t, PTTH_END_RST, "relay out of memory");
        return;
    }
    h2o_req_t *connect_req = ptth_hold_release(t->connect);
    t->connect = NULL;
    h2o_timeout_unlink(&t->connect_timer);
    t->state = PTTH_TUNNEL_OPEN;
    t->joint = j;
    add_upgrade_headers(t, connect_req);
    add_upgrade_headers(t, accept_req);
    ptth_joint_upgrade(j, PTTH_JOINT_CLIENT, connect_req);
    ptth_joint_upgrade(j, PTTH_JOINT_SERVER, accept_req);
    touch_idle(t);
    ptth_log_debug("event=tunnel_open id=%s server=%s port=%s client=%s path=upgrade", t->id, t->server, t->port, t->client);
}

static void
on_joint_moved(ptth_joint *j, void *owner, ptth_joint_side from, size_t n)
{
    (void)j;
    ptth_tunnel *t = owner;
    if (from == PTTH_JOINT_CLIENT) {
        t->up.bytes += n;
        t->relay->stats.bytes_up += n;
    } else {
        t->down.bytes += n;
        t->relay->stats.bytes_down += n;
    }
    /* a lone 4-byte burst is a PING (or FIN) frame: heartbeats keep proxies
     * open but are not traffic for --idle-timeout */
    if (n != PTTH_FRAME_HEADER_LEN)
        touch_idle(t);
}

static void
on_joint_end(ptth_joint *j, void *owner, bool clean, const char *detail)
{
    (void)j;
    ptth_tunnel *t = owner;
    if (clean)
        ptth_tunnel_end(t, PTTH_END_FIN, NULL);
    else
        ptth_tunnel_end(t, PTTH_END_RST, detail);
}

void
ptth_tunnel_on_accept(ptth_tunnel *t, h2o_req_t *req)
{
    if (t->state != PTTH_TUNNEL_AWAIT_ACCEPT || t->connect == NULL) {
        ptth_reply(req, 409, t->state == PTTH_TUNNEL_OPEN ? "tunnel already accepted\n" : "tunnel not offered to a listen yet\n");
        return;
    }
    if (ptth_req_peer_closed(t->connect->req)) {
        ptth_reply(req, 404, "tunnel closed: the client went away\n");
        ptth_tunnel_end(t, PTTH_END_RST, "client went away before the tunnel opened");
        return;
    }
    bool accept_wants_upgrade = ptth_joint_wanted(req);
    bool upgrade_on = ptth_relay_upgrade_on(t->relay->cfg);
    if (upgrade_on && t->connect_wants_upgrade && accept_wants_upgrade) {
        open_joined(t, req);
        return;
    }
    h2o_req_t *connect_req = ptth_hold_release(t->connect);
    t->connect = NULL;
    h2o_timeout_unlink(&t->connect_timer);
    t->state = PTTH_TUNNEL_OPEN;

    ptth_reply_header(connect_req, "ptth-conn", t->id, strlen(t->id));
    ptth_reply_max_chunk(connect_req, t->relay->cfg->max_chunk);
    ptth_reply_max_chunk(req, t->relay->cfg->max_chunk);
    /* a side that asked for the upgraded path learns why it did not get it */
    const char *why = upgrade_on ? "peer" : "off";
    if (t->connect_wants_upgrade)
        ptth_reply_header(connect_req, "ptth-upgrade", why, strlen(why));
    if (accept_wants_upgrade)
        ptth_reply_header(req, "ptth-upgrade", why, strlen(why));
    t->down.out = ptth_stream_open(connect_req, t->relay->ctx.loop, &t->relay->heartbeat, &stream_callbacks, t, &t->relay->nstreams,
                                   &t->relay->peers);
    t->up.out = ptth_stream_open(req, t->relay->ctx.loop, &t->relay->heartbeat, &stream_callbacks, t, &t->relay->nstreams,
                                 &t->relay->peers);
    touch_idle(t);
    ptth_log_debug("event=tunnel_open id=%s server=%s port=%s client=%s", t->id, t->server, t->port, t->client);
}

void
ptth_tunnel_on_reject(ptth_tunnel *t, h2o_req_t *req, const char *reason, size_t reason_len)
{
    if (t->state != PTTH_TUNNEL_AWAIT_ACCEPT) {
        ptth_reply(req, 409, t->state == PTTH_TUNNEL_OPEN ? "tunnel already accepted\n" : "tunnel not offered to a listen yet\n");
        return;
    }
    char text[PTTH_FRAME_REASON_MAX + 1];
    snprintf(text, sizeof(text), "%.*s", (int)(reason_len < PTTH_FRAME_REASON_MAX ? reason_len : PTTH_FRAME_REASON_MAX),
             reason != NULL ? reason : "");
    ptth_reply(req, 204, NULL);
    ptth_tunnel_end(t, PTTH_END_BACKEND, text[0] != '\0' ? text : "server could not reach its backend");
}

/* ---- chunks -------------------------------------------------------------- */

/* A chunk's 204 names the tunnel and the sequence number it answers
 * (PTTH-Conn, PTTH-Seq), so that a terminator can tell it from an answer
 * meant for another request (docs/protocol.md). */
static void
add_chunk_ids(h2o_req_t *req, const ptth_tunnel *t, uint64_t seq)
{
    char v[24];
    int n = snprintf(v, sizeof(v), "%" PRIu64, seq);
    ptth_reply_header(req, "ptth-conn", t->id, strlen(t->id));
    ptth_reply_header(req, "ptth-seq", v, (size_t)n);
}

static void
chunk_ack(ptth_chunk *c)
{
    if (c->hold.req != NULL)
        add_chunk_ids(c->hold.req, c->tunnel, c->seq);
    ptth_hold_reply(&c->hold, 204, NULL);
}

static void
on_chunk_gone(ptth_hold *hold)
{
    ptth_chunk *c = (ptth_chunk *)hold;
    ptth_dir *dir = c->dir;
    if (ptth_seqwin_remove(&dir->win, c))
        return;
    for (size_t i = 0; i < dir->nacking; i++)
        if (dir->acking[i] == c)
            dir->acking[i] = NULL;
}

/* Writes a chunk's bytes as a DATA frame: over HTTP/2 the stream takes the
 * request's body buffer and h2o sends from it (no copy; the buffer outlives
 * the chunk's request, which may go away before h2o has sent the bytes);
 * over HTTP/1 they are copied. */
static int
write_data(ptth_stream *out, ptth_chunk *c)
{
    h2o_buffer_t *body = ptth_h2obuf_take_body(c->hold.req);
    if (body != NULL)
        return ptth_stream_write_owned(out, PTTH_FRAME_DATA, &body);
    return ptth_stream_write(out, PTTH_FRAME_DATA, c->data.base, c->data.len);
}

/* Writes the chunks whose turn came into the direction's stream, as long as
 * the stream is idle. They are answered when the stream becomes writable. */
static void
pump(ptth_tunnel *t, ptth_dir *dir)
{
    if (t->state != PTTH_TUNNEL_OPEN || t->ending || dir->out == NULL || dir->nacking != 0 || !ptth_stream_idle(dir->out))
        return;
    size_t batched = 0;
    ptth_chunk *c = NULL;
    int err = 0;
    while (batched < BATCH_BYTES && dir->nacking < PTTH_SEQWIN_SIZE && (c = ptth_seqwin_peek(&dir->win)) != NULL) {
        ptth_seqwin_take(&dir->win);
        if (c->data.len != 0 && (err = write_data(dir->out, c)) != 0)
            break;
        if (c->fin && (err = ptth_stream_write(dir->out, PTTH_FRAME_FIN, NULL, 0)) != 0)
            break;
        dir->bytes += c->data.len;
        if (dir == &t->up)
            t->relay->stats.bytes_up += c->data.len;
        else
            t->relay->stats.bytes_down += c->data.len;
        batched += c->data.len;
        dir->acking[dir->nacking++] = c;
        if (c->fin) {
            dir->fin_written = true;
            break;
        }
    }
    if (err != 0 && c != NULL) {
        ptth_hold_reply(&c->hold, 500, "relay could not buffer the chunk\n");
        ptth_tunnel_end(t, PTTH_END_RST, "relay out of memory");
        return;
    }
    if (dir->nacking != 0) {
        if (batched != 0)
            touch_idle(t);
        ptth_stream_flush(dir->out);
    }
}

static ptth_dir *
dir_of(ptth_tunnel *t, ptth_stream *s)
{
    if (t->up.out == s)
        return &t->up;
    if (t->down.out == s)
        return &t->down;
    return NULL;
}

static void
on_stream_writable(ptth_stream *s, void *owner)
{
    ptth_tunnel *t = owner;
    ptth_dir *dir = dir_of(t, s);
    if (dir == NULL || t->ending)
        return;
    size_t n = dir->nacking;
    dir->nacking = 0;
    for (size_t i = 0; i < n; i++) {
        ptth_chunk *c = dir->acking[i];
        dir->acking[i] = NULL;
        if (c != NULL)
            chunk_ack(c);
    }
    if (dir->fin_written)
        dir->fin_done = true;
    if (t->up.fin_done && t->down.fin_done) {
        ptth_tunnel_end(t, PTTH_END_FIN, NULL);
        return;
    }
    pump(t, dir);
}

static void
on_broken_end(h2o_timeout_entry_t *entry)
{
    ptth_tunnel *t = H2O_STRUCT_FROM_MEMBER(ptth_tunnel, connect_timer, entry);
    ptth_tunnel_end(t, PTTH_END_RST, t->broken_text);
}

/* A framed stream broke. h2o tells while it closes that stream, often while
 * it closes the whole connection with it; other requests of the same
 * connection (the same terminator's chunks, held here) are then still to be
 * closed, and answering them now would make h2o write to a connection it is
 * tearing down (h2o 2.2.5 asserts in close_connection_now). So the tunnel
 * ends at the end of this loop round (zero timeout), when h2o has disposed of
 * those requests and only the live ones get their answer. */
static void
on_stream_broken(ptth_stream *s, void *owner)
{
    ptth_tunnel *t = owner;
    ptth_dir *dir = dir_of(t, s);
    if (dir == NULL)
        return;
    dir->out = NULL;
    if (t->ending || t->broken_text != NULL)
        return;
    t->broken_text = dir == &t->up ? "server's stream broke" : "client's stream broke";
    h2o_timeout_unlink(&t->connect_timer);
    t->connect_timer.cb = on_broken_end;
    h2o_timeout_link(t->relay->ctx.loop, &t->relay->ctx.zero_timeout, &t->connect_timer);
}

/* A FIN at fin_seq must not leave held data behind it. */
static bool
data_held_after(const ptth_dir *dir, uint64_t fin_seq)
{
    for (uint64_t s = fin_seq + 1; s < dir->win.next + PTTH_SEQWIN_SIZE; s++)
        if (dir->win.slot[s % PTTH_SEQWIN_SIZE] != NULL)
            return true;
    return false;
}

void
ptth_tunnel_on_chunk(ptth_tunnel *t, h2o_req_t *req, bool from_client)
{
    ptth_dir *dir = from_client ? &t->up : &t->down;
    char msg[160];
    size_t vlen;
    const char *v;
    uint64_t seq;
    bool fin = false;

    if (t->state != PTTH_TUNNEL_OPEN) {
        ptth_reply(req, 409, "tunnel not accepted yet\n");
        return;
    }
    if ((v = ptth_req_header(req, "ptth-seq", &vlen)) == NULL || ptth_seqwin_parse_seq(v, vlen, &seq) != 0) {
        ptth_reply(req, 400, "missing or bad PTTH-Seq (a decimal sequence number)\n");
        return;
    }
    if ((v = ptth_req_header(req, "ptth-fin", &vlen)) != NULL) {
        if (vlen == 1 && (v[0] == '1' || v[0] == '0')) {
            fin = v[0] == '1';
        } else {
            ptth_reply(req, 400, "bad PTTH-Fin (1 or 0)\n");
            return;
        }
    }
    size_t len = req->entity.base != NULL ? req->entity.len : 0;
    if (len > t->relay->cfg->max_chunk) {
        snprintf(msg, sizeof(msg), "chunk of %zu bytes is above --max-chunk %" PRIu64 "\n", len, t->relay->cfg->max_chunk);
        ptth_reply(req, 413, msg);
        return;
    }
    if (seq < dir->win.next) {
        add_chunk_ids(req, t, seq);
        ptth_reply(req, 204, NULL); /* delivered before: a retry, no effect */
        return;
    }
    if (len == 0 && !fin) {
        ptth_reply(req, 400, "empty chunk without PTTH-Fin: 1\n");
        return;
    }
    if (dir->fin_known && (seq > dir->fin_seq || (fin && seq != dir->fin_seq))) {
        snprintf(msg, sizeof(msg), "chunk %" PRIu64 " conflicts with FIN at %" PRIu64 "\n", seq, dir->fin_seq);
        ptth_reply(req, 409, msg);
        return;
    }
    if (fin && data_held_after(dir, seq)) {
        snprintf(msg, sizeof(msg), "FIN at %" PRIu64 " but later chunks are held\n", seq);
        ptth_reply(req, 409, msg);
        return;
    }

    ptth_chunk *c = (ptth_chunk *)ptth_hold_new(req, sizeof(ptth_chunk), on_chunk_gone, t);
    c->tunnel = t;
    c->dir = dir;
    c->seq = seq;
    c->fin = fin;
    c->data = h2o_iovec_init(req->entity.base, len);

    void *replaced;
    switch (ptth_seqwin_put(&dir->win, seq, c, &replaced)) {
    case PTTH_SEQWIN_STORED:
        break;
    case PTTH_SEQWIN_DELIVERED:
        chunk_ack(c);
        return;
    case PTTH_SEQWIN_TOO_FAR:
        snprintf(msg, sizeof(msg), "PTTH-Seq %" PRIu64 " is more than %d ahead of the last delivered chunk (next is %" PRIu64 ")\n",
                 seq, PTTH_SEQWIN_SIZE, dir->win.next);
        ptth_hold_reply(&c->hold, 409, msg);
        return;
    }
    ptth_hold_watch_peer(&c->hold, &t->relay->peers);
    if (replaced != NULL)
        ptth_hold_reply(&((ptth_chunk *)replaced)->hold, 409, "superseded by a retry of the same PTTH-Seq\n");
    if (fin) {
        dir->fin_known = true;
        dir->fin_seq = seq;
    }
    pump(t, dir);
}

/* ---- the end --------------------------------------------------------------- */

static void
end_dir(ptth_tunnel *t, ptth_dir *dir, ptth_end_reason reason, const char *rst_text)
{
    (void)t;
    if (dir->out != NULL) {
        ptth_stream *s = dir->out;
        dir->out = NULL;
        if (reason != PTTH_END_FIN) {
            const char *text = rst_text != NULL ? rst_text : ptth_end_reason_name(reason);
            size_t n = strlen(text);
            ptth_stream_write(s, PTTH_FRAME_RST, text, n < PTTH_FRAME_REASON_MAX ? n : PTTH_FRAME_REASON_MAX);
        }
        ptth_stream_finish(s);
    }
    for (size_t i = 0; i < dir->nacking; i++) {
        ptth_chunk *c = dir->acking[i];
        dir->acking[i] = NULL;
        if (c != NULL)
            ptth_hold_reply(&c->hold, 404, "tunnel closed\n");
    }
    dir->nacking = 0;
    ptth_chunk *c;
    while ((c = ptth_seqwin_pop_any(&dir->win)) != NULL)
        ptth_hold_reply(&c->hold, 404, "tunnel closed\n");
}

void
ptth_tunnel_end(ptth_tunnel *t, ptth_end_reason reason, const char *rst_text)
{
    if (t->ending)
        return;
    t->ending = true;
    ptth_relay *relay = t->relay;
    h2o_timeout_unlink(&t->connect_timer);
    h2o_timeout_unlink(&t->idle_timer);
    ptth_srv_unwait(t->srv, t);

    if (t->connect != NULL) {
        ptth_hold *h = t->connect;
        t->connect = NULL;
        char body[PTTH_FRAME_REASON_MAX + 32];
        switch (reason) {
        case PTTH_END_TIMEOUT:
            ptth_hold_reply(h, 504, "server did not accept the connection in time\n");
            break;
        case PTTH_END_SHUTDOWN:
            ptth_reply_retry(ptth_hold_release(h), 503, 5, "relay shutting down\n");
            break;
        default:
            snprintf(body, sizeof(body), "server could not reach its backend: %s\n", rst_text != NULL ? rst_text : "");
            ptth_hold_reply(h, 502, body);
            break;
        }
    }
    end_dir(t, &t->up, reason, rst_text);
    end_dir(t, &t->down, reason, rst_text);
    const char *path = t->joint != NULL ? "upgrade" : "chunks";
    if (t->joint != NULL) {
        /* anything but both ends seen: each terminator must take it for an abort */
        ptth_joint_close(t->joint, reason != PTTH_END_FIN);
        t->joint = NULL;
    }

    char quoted[PTTH_FRAME_REASON_MAX + 16];
    ptth_log_info("event=tunnel_end id=%s server=%s port=%s client=%s addr=%s bytes_up=%" PRIu64 " bytes_down=%" PRIu64
                  " duration_ms=%lld reason=%s detail=%s path=%s proto=%s",
                  t->id, t->server, t->port, t->client, t->addr, t->up.bytes, t->down.bytes, ptth_now_ms() - t->started_ms,
                  ptth_end_reason_name(reason), ptth_log_quote(quoted, sizeof(quoted), rst_text != NULL ? rst_text : ""), path,
                  t->udp ? "udp" : "tcp");

    relay->stats.tunnels_ended[reason]++;
    ptth_admin_on_tunnel_end(relay, t, reason, rst_text);
    ptth_table_remove(&relay->tunnels, t->id, PTTH_ID_LEN);
    t->srv->ntunnels--;
    relay->ntunnels--;
    free(t);
}
