/*
 * bridge_leg.c: a bridge's relay side over a ptth_leg (see
 * bridge_internal.h): the upgraded path of SPEC §9.1, where both directions
 * are frames on one raw connection, and the fallbacks when the relay or a
 * proxy does not upgrade.
 *
 * Upgraded (PATH_UPGRADE), docs/protocol.md "Upgraded data path":
 *   - local -> relay: one read of the local end (up to max_chunk - 8 bytes)
 *     becomes one DATA frame, read into a pooled buffer behind the 4 header
 *     bytes so that it is written without a copy; the local end is not read
 *     again until the frame is written (TCP's backpressure). End of stream
 *     is a FIN frame. After --heartbeat idle seconds of sending nothing, a
 *     PING frame, also after our FIN (the relay does not write into joined
 *     connections, so the terminators keep proxies in between from timing
 *     the tunnel out, and tell each other they are there).
 *   - a dead leg: a path that drops everything without a reset (a NAT
 *     mapping that expired, a Wi-Fi roam) fails no read or write for many
 *     minutes. The peer sends something at least every heartbeat, so a leg
 *     that brings nothing for DEAD_BEATS heartbeats while we read it is
 *     taken as lost (resumed, or the tunnel fails). Time in which we did not
 *     read it does not count: the peer may be held back by us.
 *   - relay -> local: what the leg delivers goes through the frame decoder
 *     of bridge.c (its env's feed) and is written at once; the leg is not
 *     read while the local end is full.
 *   - the end: when our FIN was written and the peer's FIN received (and
 *     written through), the leg is closed normally; the relay sees both
 *     ends and logs reason=fin. On a failure, an RST frame (when no frame is
 *     half written) and a TCP reset. A leg that ends (EOF) before the peer's
 *     FIN, or is reset, is a broken tunnel.
 *   - --idle-timeout of the relay (PTTH-Idle-Timeout): the relay ends an
 *     idle tunnel (it does not count lone 4-byte bursts, PINGs, as traffic);
 *     here, 2 s later, the same rule ends it should the relay not have.
 *
 * Not upgraded: a 2xx answer's body is the framed stream (PATH_HYBRID, with
 * chunk POSTs upstream as on the chunked path); any other answer that is
 * not one of the relay's own refusals, or no answer, sends the request again
 * on the chunked path (auto), and data_path.h remembers when the relay
 * connection itself is the reason.
 *
 * The middle of the bridge's layers (bridge_internal.h): bridge.c calls in
 * by name (start, reading and writing on the upgraded path, the end);
 * this file calls bridge_resume.c and bridge_buf.c by name, and bridge.c
 * only through b->env (fail, schedule, the watches, a local read, feeding
 * the decoder, the tunnel opened or refused, the fallback to chunks). It
 * gives bridge_resume.c its bridge_leg_ops (drop, reopen, read the leg
 * again, resumed), so that the resume rules need not know this file.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge_buf.h"
#include "bridge_internal.h"
#include "log.h"

#define LEG_READ_MAX (256 * 1024)
#define LEG_READ_ROUNDS 8
#define DEFAULT_HEARTBEAT_MS 20000L
#define IDLE_GRACE_MS 2000L
#define DEAD_BEATS 3
/* room kept behind a DATA frame in the up buffer (a FIN may follow) */
#define UP_SLACK 8

/* Leg reads land here and are decoded at once (DATA is copied out to the
 * local end or bridge.c's out buffer), so no tunnel holds a read buffer. */
static uint8_t leg_rbuf[LEG_READ_MAX];

static void on_leg_response(ptth_leg *leg, const ptth_leg_response *res);
static void on_leg_readable(ptth_leg *leg);
static void on_leg_writable(ptth_leg *leg);
static void on_beat(ptth_timer *t);
static void flush_up(ptth_bridge *b);
static void leg_want(ptth_bridge *b);
static void leg_drop(ptth_bridge *b);
static int leg_reopen(ptth_bridge *b, const char *path, const char *const *headers, long timeout_ms);
static void leg_resumed(ptth_bridge *b, const ptth_leg_response *res);
static void leg_close_attempt(ptth_bridge *b);
static bool leg_carries(const ptth_bridge *b);

static const ptth_leg_ops leg_ops = {
    .on_response = on_leg_response,
    .on_readable = on_leg_readable,
    .on_writable = on_leg_writable,
};

/* What bridge_resume.c may ask of this layer (bridge_internal.h). */
static const bridge_leg_ops resume_leg_ops = {
    .drop = leg_drop,
    .reopen = leg_reopen,
    .resume_reading = leg_want,
    .resumed = leg_resumed,
    .close_attempt = leg_close_attempt,
    .carries = leg_carries,
};

void
ptth_bridge_leg_init(ptth_bridge *b, const ptth_bridge_config *cfg)
{
    ptth_bridge_resume_init(b, cfg, &resume_leg_ops);
}

/* The frame buffer `up` is done with: back to the pool, unless the resume
 * buffer owns it (it gives it back when its bytes are acknowledged). */
static void
up_release(ptth_bridge *b)
{
    if (!b->up_adopted)
        ptth_bridge_buf_put(b->up, b->max_chunk);
    b->up = NULL;
    b->up_adopted = false;
}

static bool
up_pending(const ptth_bridge *b)
{
    return b->up_off < b->up_len;
}

static bool
leg_reading_wanted(const ptth_bridge *b)
{
    return b->state == ST_OPEN && !b->failed && !b->leg_eof && (!b->out_blocked || ptth_bridge_resume_overfill(b)) && b->leg_open &&
           ptth_bridge_resume_live(b);
}

static void
leg_want(ptth_bridge *b)
{
    if (b->out_blocked)
        b->stream_paused = true; /* flush_out() resumes the leg once the local end drained */
    if (b->leg_open)
        ptth_leg_want(&b->leg, leg_reading_wanted(b), b->path == PATH_UPGRADE && up_pending(b));
}

int
ptth_bridge_leg_start(ptth_bridge *b)
{
    memset(&b->leg, 0, sizeof(b->leg));
    b->path = PATH_HYBRID; /* until the answer says more */
    /* the framed-stream request's header, and the ask for resumption */
    int rc = ptth_leg_open(b->client, &b->leg, b->stream_path, b->stream_headers, 0, &leg_ops, b);
    if (rc == 0)
        b->leg_open = true;
    return rc;
}

/* ---- the answer ---- */

/* The relay's own refusals (SPEC §4): the same on every path. */
static bool
relay_refusal(int status)
{
    switch (status) {
    case 401:
    case 403:
    case 404:
    case 409:
    case 429:
    case 502:
    case 503:
    case 504:
        return true;
    default:
        return false;
    }
}

/* The upgrade request did not get a tunnel, for a reason of the path in
 * between (or none known): send it again on the chunked path. */
static void
fall_back(ptth_bridge *b, const char *why, bool remember)
{
    if (b->data_path->mode == PTTH_DATA_PATH_UPGRADE) {
        b->env->refused(b, 0, -1, why);
        return;
    }
    if (remember)
        ptth_data_path_unavailable(b->data_path, ptth_loop_now(b->loop), why);
    ptth_log_debug("event=upgrade_fallback conn=%s reason=\"%s\"", b->conn_known ? b->conn : "-", why);
    ptth_leg_close(&b->leg, false);
    b->leg_open = false;
    int rc = b->env->start_chunks(b);
    if (rc != 0)
        b->env->refused(b, 0, -1, "cannot start request on the chunked path");
}

static void
open_upgraded(ptth_bridge *b, const ptth_leg_response *res)
{
    b->path = PATH_UPGRADE;
    b->stream.status = 101;
    b->heartbeat_ms = res->heartbeat > 0 ? res->heartbeat * 1000 : DEFAULT_HEARTBEAT_MS;
    /* the relay ends an idle tunnel itself (reason=idle in its log); ours is
     * the backstop, a little later, should its guess at PINGs be wrong */
    b->idle_ms = res->idle_timeout > 0 ? res->idle_timeout * 1000 + IDLE_GRACE_MS : 0;
    ptth_bridge_resume_opened(b, res);
    if (!b->env->opened(b, res->conn, 0))
        return;
    b->last_sent_ms = b->last_data_ms = b->last_rx_ms = ptth_loop_now(b->loop);
    ptth_timer_start(b->loop, &b->beat_timer, b->idle_ms > 0 && b->idle_ms < b->heartbeat_ms ? b->idle_ms : b->heartbeat_ms,
                     on_beat, b);
    leg_want(b);
}

static void
on_leg_response(ptth_leg *leg, const ptth_leg_response *res)
{
    ptth_bridge *b = leg->data;
    if (b->rs.state == RS_ATTEMPT) {
        ptth_bridge_resume_on_response(b, res);
        return;
    }
    if (b->state != ST_OPENING || b->failed)
        return; /* ending: the leg goes with the bridge */
    if (res->upgraded) {
        open_upgraded(b, res);
        return;
    }
    char why[PTTH_LEG_REASON_MAX + 64];
    if (res->status >= 200 && res->status <= 299) {
        /* not upgraded, but the tunnel is open: the body is its framed stream */
        bool peer = strcmp(res->upgrade_note, "peer") == 0;
        if (!peer)
            ptth_data_path_unavailable(
                b->data_path, ptth_loop_now(b->loop),
                strcmp(res->upgrade_note, "off") == 0
                    ? "the relay has --upgrade off"
                    : "the upgrade request was answered without upgrading (a proxy in between drops Upgrade?)");
        if (b->data_path->mode == PTTH_DATA_PATH_UPGRADE) {
            b->env->fail(b, true, "--data-path upgrade: %s",
                         peer ? "the other side of the tunnel is on the chunked path" : "the relay did not upgrade");
            return;
        }
        b->stream.status = res->status;
        /* resumable (raw) when granted; the leg is still read through our
         * operations (the framed stream is its answer's body) */
        ptth_bridge_chunks_resume_opened(b, res, &resume_leg_ops);
        if (b->env->opened(b, res->conn, res->max_chunk))
            leg_want(b);
        return;
    }
    if (relay_refusal(res->status)) {
        b->env->refused(b, res->status, res->retry_after, res->reason);
        return;
    }
    if (res->status == 0) {
        /* no answer at all: perhaps the relay is down, perhaps a proxy hung
         * up on the Upgrade; try once the other way, remember nothing. A
         * forward proxy that refused CONNECT (not 407: that is
         * credentials, and the chunked path needs them as much) will refuse
         * the next leg too: remembered, as a path problem */
        snprintf(why, sizeof(why), "upgrade request failed: %s", res->error != NULL ? res->error : "no answer");
        fall_back(b, why, res->proxy_status != 0 && res->proxy_status != 407);
        return;
    }
    snprintf(why, sizeof(why), "upgrade request answered HTTP %d%s%s", res->status, res->reason[0] != '\0' ? ": " : "",
             res->reason);
    fall_back(b, why, true);
}

/* ---- relay -> local ---- */

static void
leg_ended(ptth_bridge *b)
{
    b->leg_eof = true;
    if (b->path == PATH_HYBRID)
        b->stream_done = true;
    /* a resumable tunnel closes only when both FINs went through and both
     * were acknowledged: an end before that is a loss */
    if (b->path == PATH_UPGRADE && ptth_bridge_resumable(b) && !ptth_bridge_resume_peer_done(b) &&
        ptth_bridge_resume_lost(b, "the relay ended the connection"))
        return;
    if (b->raw) { /* the hybrid path: the framed stream ended */
        ptth_bridge_chunks_stream_ended(b, NULL);
        return;
    }
    if (b->from_relay == FROM_RELAY_OPEN)
        b->env->fail(b, false, "relay ended the stream without FIN");
    b->env->schedule(b);
}

/* One batch from the leg into leg_rbuf: a cleartext socket gives it in one
 * recv(); over TLS each read is one record (16 KiB at most), so records are
 * gathered until the buffer is full or nothing more waits, and the local
 * end gets one write per batch instead of one per record. *last is the
 * result that ended the batch when it was not a byte count (-EAGAIN, 0 the
 * end, an error), else 1. */
static size_t
read_leg_batch(ptth_leg *leg, ssize_t *last)
{
    bool gather = ptth_leg_is_tls(leg);
    size_t got = 0;
    *last = 1;
    while (got < sizeof(leg_rbuf)) {
        ssize_t n = ptth_leg_read(leg, leg_rbuf + got, sizeof(leg_rbuf) - got);
        if (n <= 0) {
            *last = n;
            break;
        }
        got += (size_t)n;
        if (!gather)
            break;
    }
    return got;
}

static void
on_leg_readable(ptth_leg *leg)
{
    ptth_bridge *b = leg->data;
    for (int round = 0; round < LEG_READ_ROUNDS; round++) {
        if (!leg_reading_wanted(b)) {
            leg_want(b);
            return;
        }
        ssize_t last;
        size_t got = read_leg_batch(leg, &last);
        if (got > 0) {
            b->last_rx_ms = ptth_loop_now(b->loop);
            if (got != PTTH_FRAME_HEADER_LEN) /* a lone PING is not traffic */
                b->last_data_ms = b->last_rx_ms;
            /* an end or an error read after these bytes is acted on below
             * even when the local end is full now: over TLS it may not be
             * read a second time */
            (void)b->env->feed(b, leg_rbuf, got, true);
            /* resumable: ACK what was delivered, when due (once per read) */
            ptth_bridge_leg_flush_ack(b);
            if (!b->leg_open || b->failed)
                return;
        }
        if (last == -EAGAIN)
            return;
        if (last == 0) {
            leg_ended(b);
            return;
        }
        if (last < 0) {
            char why[160];
            if (last == -ECONNRESET)
                snprintf(why, sizeof(why), "tunnel reset (the relay or the other side broke it)");
            else
                snprintf(why, sizeof(why), "relay connection failed: %s", strerror((int)-last));
            if (!ptth_bridge_resume_lost(b, why))
                b->env->fail(b, false, "%s", why);
            return;
        }
        /* a short read drained a cleartext socket: the next recv() would
         * find nothing (and the watch reports more if it comes) */
        if (got < sizeof(leg_rbuf) && !ptth_leg_is_tls(leg))
            return;
    }
    leg_want(b); /* more may wait: one more on_readable */
}

void
ptth_bridge_leg_resume(ptth_bridge *b)
{
    leg_want(b);
}

void
ptth_bridge_leg_flush_ack(ptth_bridge *b)
{
    if (b->path == PATH_UPGRADE && b->leg_open && !b->failed && !up_pending(b) && ptth_bridge_resume_ack_due(b))
        flush_up(b);
}

/* ---- local -> relay ---- */

bool
ptth_bridge_leg_reading_wanted(const ptth_bridge *b)
{
    return b->state == ST_OPEN && !b->failed && b->to_relay == TO_RELAY_OPEN && !up_pending(b) && b->leg_open &&
           ptth_bridge_resume_read_room(b) > 0;
}

/* Resumable tunnels: the frame that goes out next when the local end is
 * not what sends (the replay after a resume, then an ACK that is due).
 * false when there is none. */
static bool
next_own_frame(ptth_bridge *b)
{
    if (!ptth_bridge_resumable(b) || !b->leg_open || b->failed)
        return false;
    bool replay = b->rs.replay_pos < b->rs.buf.sent || b->rs.replay_fin;
    if (!replay && !ptth_bridge_resume_ack_due(b))
        return false; /* the usual case: no buffer taken to find that out */
    uint8_t *buf = ptth_bridge_buf_get(b->max_chunk);
    if (buf == NULL) {
        b->env->fail(b, true, "out of memory");
        return false;
    }
    bool fin = false;
    size_t n = ptth_bridge_resume_next_replay(b, buf, b->max_chunk - UP_SLACK, &fin);
    if (n == 0 && ptth_bridge_resume_ack_due(b)) {
        ptth_bridge_resume_ack_frame(b, buf);
        n = PTTH_FRAME_ACK_LEN;
    }
    if (n == 0) {
        ptth_bridge_buf_put(buf, b->max_chunk);
        return false;
    }
    b->up = buf;
    b->up_off = 0;
    b->up_len = n;
    b->up_fin = fin;
    return true;
}

/* Writes the frames that wait; when all went, the buffer goes back, and
 * a resumable tunnel's own frames follow (replay, ACK). */
static void
flush_up(ptth_bridge *b)
{
    if (!b->leg_open)
        return; /* resuming: the frames went with the old leg */
    bool wrote = false;
    for (;;) {
        while (up_pending(b)) {
            ssize_t n = ptth_leg_write(&b->leg, b->up + b->up_off, b->up_len - b->up_off);
            if (n == -EAGAIN) {
                if (wrote)
                    b->last_sent_ms = ptth_loop_now(b->loop);
                leg_want(b);
                return;
            }
            if (n < 0) {
                char why[160];
                snprintf(why, sizeof(why), "relay connection failed: %s", n == -ECONNRESET ? "reset" : strerror((int)-n));
                if (!ptth_bridge_resume_lost(b, why))
                    b->env->fail(b, false, "%s", why);
                return;
            }
            b->up_off += (size_t)n;
            wrote = true;
        }
        up_release(b);
        b->up_off = b->up_len = 0;
        if (b->up_fin && b->to_relay == TO_RELAY_EOF)
            b->to_relay = TO_RELAY_DONE; /* the FIN frame went out */
        b->up_fin = false;
        if (!next_own_frame(b))
            break;
    }
    if (wrote)
        b->last_sent_ms = ptth_loop_now(b->loop);
    leg_want(b);
    b->env->update_watches(b);
    b->env->schedule(b);
}

void
ptth_bridge_leg_read_local(ptth_bridge *b)
{
    uint8_t *buf;
    size_t room = b->max_chunk - PTTH_FRAME_HEADER_LEN - UP_SLACK;
    size_t resume_room = ptth_bridge_resume_read_room(b); /* a resumable tunnel's buffer bounds the read */
    if (resume_room < room)
        room = resume_room;
    if (room == 0)
        return;
    ssize_t n = b->env->read_local_into(b, PTTH_FRAME_HEADER_LEN, room, &buf);
    if (n < 0)
        return;
    if (n == 0) {
        b->to_relay = TO_RELAY_EOF;
        ptth_frame_header(buf, PTTH_FRAME_FIN, 0);
        b->up_len = PTTH_FRAME_HEADER_LEN;
        b->up_fin = true;
    } else {
        if (!ptth_bridge_resume_sent(b, buf, b->max_chunk, buf + PTTH_FRAME_HEADER_LEN, (size_t)n, &b->up_adopted)) {
            ptth_bridge_buf_put(buf, b->max_chunk);
            return;
        }
        ptth_frame_header(buf, PTTH_FRAME_DATA, (uint32_t)n);
        b->up_len = PTTH_FRAME_HEADER_LEN + (size_t)n;
        b->bytes_to_relay += (uint64_t)n;
        b->last_data_ms = ptth_loop_now(b->loop);
    }
    b->up = buf;
    b->up_off = 0;
    flush_up(b);
}

static void
on_leg_writable(ptth_leg *leg)
{
    ptth_bridge *b = leg->data;
    if (b->state == ST_OPEN && !b->failed && b->path == PATH_UPGRADE && ptth_bridge_resume_live(b))
        flush_up(b);
}

/* Heartbeat and idle timeout of the upgraded path. */
static void
on_beat(ptth_timer *t)
{
    ptth_bridge *b = t->data;
    if (b->state != ST_OPEN || b->failed)
        return;
    long long now = ptth_loop_now(b->loop);
    if (b->idle_ms > 0 && now - b->last_data_ms >= b->idle_ms) {
        b->env->fail(b, false, "idle");
        return;
    }
    long long dead_ms = DEAD_BEATS * b->heartbeat_ms;
    if (!leg_reading_wanted(b)) {
        b->last_rx_ms = now; /* not read: silence is ours, not the path's */
    } else if (now - b->last_rx_ms >= dead_ms) {
        char why[96];
        snprintf(why, sizeof(why), "nothing came from the relay for %lld s (the connection is dead?)", (now - b->last_rx_ms) / 1000);
        if (!ptth_bridge_resume_lost(b, why))
            b->env->fail(b, false, "%s", why);
        return;
    }
    /* resumable: an ACK when anything is unacknowledged; it is also a heartbeat */
    ptth_bridge_resume_beat(b);
    ptth_bridge_leg_flush_ack(b);
    if (b->failed || !b->leg_open)
        return;
    /* after our FIN too: the peer's dead-leg check needs our PINGs while it
     * waits for anything (frames, or the ACK of its FIN) */
    if (!up_pending(b) && now - b->last_sent_ms >= b->heartbeat_ms - 100) {
        uint8_t *buf = ptth_bridge_buf_get(b->max_chunk);
        if (buf != NULL) {
            ptth_frame_header(buf, PTTH_FRAME_PING, 0);
            b->up = buf;
            b->up_off = 0;
            b->up_len = PTTH_FRAME_HEADER_LEN;
            flush_up(b);
            if (b->failed)
                return;
        }
    }
    long long next = b->heartbeat_ms - (now - b->last_sent_ms);
    if (b->idle_ms > 0 && b->idle_ms - (now - b->last_data_ms) < next)
        next = b->idle_ms - (now - b->last_data_ms);
    if (dead_ms - (now - b->last_rx_ms) < next)
        next = dead_ms - (now - b->last_rx_ms);
    ptth_timer_start(b->loop, &b->beat_timer, next < 1000 ? 1000 : next, on_beat, b);
}

/* ---- the end ---- */

bool
ptth_bridge_leg_done(const ptth_bridge *b)
{
    return b->to_relay == TO_RELAY_DONE && b->from_relay != FROM_RELAY_OPEN && ptth_bridge_resume_settled(b);
}

/* resume_leg_ops.drop: the tunnel resumes, the leg goes without an RST. */
static void
leg_drop(ptth_bridge *b)
{
    ptth_timer_stop(b->loop, &b->beat_timer);
    if (b->leg_open)
        ptth_leg_close(&b->leg, true);
    b->leg_open = false;
    up_release(b);
    b->up_off = b->up_len = 0;
    b->up_fin = false; /* the FIN is written again after a resume when the peer did not get it */
}

/* resume_leg_ops.reopen: a new leg for a resume request. */
static int
leg_reopen(ptth_bridge *b, const char *path, const char *const *headers, long timeout_ms)
{
    memset(&b->leg, 0, sizeof(b->leg));
    int rc = ptth_leg_open(b->client, &b->leg, path, headers, timeout_ms, &leg_ops, b);
    if (rc == 0)
        b->leg_open = true;
    return rc;
}

/* resume_leg_ops.resumed: the resume request got its 101. */
static void
leg_resumed(ptth_bridge *b, const ptth_leg_response *res)
{
    if (res->heartbeat > 0)
        b->heartbeat_ms = res->heartbeat * 1000;
    long long now = ptth_loop_now(b->loop);
    b->last_sent_ms = b->last_data_ms = b->last_rx_ms = now;
    ptth_timer_start(b->loop, &b->beat_timer, b->idle_ms > 0 && b->idle_ms < b->heartbeat_ms ? b->idle_ms : b->heartbeat_ms,
                     on_beat, b);
    flush_up(b); /* nothing waits: the replay starts */
    if (b->failed || !b->leg_open)
        return;
    leg_want(b); /* bytes may have come with the 101 */
}

/* resume_leg_ops.close_attempt: a refused or unanswered resume request. */
static void
leg_close_attempt(ptth_bridge *b)
{
    ptth_leg_close(&b->leg, false);
    b->leg_open = false;
}

static bool
leg_carries(const ptth_bridge *b)
{
    return b->path == PATH_UPGRADE && b->leg_open;
}

void
ptth_bridge_leg_close(ptth_bridge *b, bool failed)
{
    ptth_bridge_resume_stop(b);
    if (!b->leg_open)
        return;
    ptth_timer_stop(b->loop, &b->beat_timer);
    if (failed && b->path == PATH_UPGRADE && b->state == ST_OPEN && !up_pending(b) && ptth_bridge_resume_live(b)) {
        /* best effort: the reason reaches the other side unless the reset
         * that follows overtakes it */
        uint8_t frame[PTTH_FRAME_HEADER_LEN + 200];
        /* worded as the relay words a `close` on the chunked path */
        int len = snprintf((char *)frame + PTTH_FRAME_HEADER_LEN, sizeof(frame) - PTTH_FRAME_HEADER_LEN, "closed by %s: %s",
                           strcmp(b->chunk_kind, "downstream") == 0 ? "server" : "client", b->reason);
        size_t n = len < 0 ? 0 : (size_t)len;
        if (n > sizeof(frame) - PTTH_FRAME_HEADER_LEN - 1)
            n = sizeof(frame) - PTTH_FRAME_HEADER_LEN - 1;
        ptth_frame_header(frame, PTTH_FRAME_RST, (uint32_t)n);
        (void)ptth_leg_write(&b->leg, frame, PTTH_FRAME_HEADER_LEN + n);
    }
    ptth_leg_close(&b->leg, failed);
    b->leg_open = false;
    up_release(b);
    b->up_off = b->up_len = 0;
}
