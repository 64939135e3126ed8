/*
 * bridge_resume.c: resumable tunnels, the terminator's side of
 * docs/protocol.md "Resumable tunnels" (SPEC §9.3), on the upgraded path
 * and (through bridge_chunks_resume.c's bridge_leg_ops) on the chunked
 * and hybrid paths, where the same frames ride in chunks.
 *
 * The upgrade request asks with PTTH-Resumable: 1; a 101 with PTTH-Resume
 * (a token, a secret: never logged) and PTTH-Resume-Grace makes the tunnel
 * resumable. From then on:
 *   - positions: `sent` is every DATA byte framed (the resume buffer's
 *     `sent`) plus 1 once our FIN is framed; `received` every DATA byte
 *     written to the local end plus 1 once the peer's FIN was passed on;
 *   - what we send stays in the resume buffer until the peer's ACK frame
 *     covers it; a full buffer stops reading the local end, and so does a
 *     full window: we send at most the peer's window (in its ACKs) past
 *     its last ACK;
 *   - flow control without a stall: the peer's ACKs come on the leg behind
 *     its DATA, so while we may send nothing more we read the leg even
 *     when the local end is full (the bytes wait in memory). Because ACKs
 *     count delivered bytes and the peer keeps to our window, what waits
 *     is at most our window (`capacity`; more is a protocol error), and an
 *     ACK the peer wrote is always within reach;
 *   - we ACK, with our window, when 128 KiB more were delivered since our
 *     last ACK (checked after each read of the leg and each write to the
 *     local end), at once when the peer's FIN was passed on, and at a
 *     heartbeat when anything is unacknowledged;
 *   - the clean close waits for the ACK of our FIN (bridge_leg.c asks
 *     ptth_bridge_resume_settled()).
 * When the leg fails or ends before that, the local end stays open but is
 * neither read nor written (what was decoded and not delivered is dropped:
 * `received` is what the resume request tells), the leg is reset, and
 * resume requests go out on new legs: at
 * once, then after 0.1, 0.2, 0.4 ... at most 2 s, until PTTH-Resume-Grace
 * seconds after the loss (then reason resume_timeout, the local end reset).
 * A 101 gives the peer's counts: we drop what it received, write the rest
 * again (DATA, then our FIN if it did not get it), with a fresh decoder.
 *
 * Every byte of a relay's answer is untrusted: the positions it reports
 * are checked against what we sent and received before anything is
 * replayed, and nothing is allocated by what it says.
 *
 * The bottom of the bridge's layers but for bridge_buf.c
 * (bridge_internal.h): bridge_leg.c calls in by name for everything of the
 * upgraded path, bridge.c for the counts of what it writes to the local
 * end and for the sub-state. This file calls neither by name: the bridge
 * through b->env (fail, schedule, the watches, dropping what was not
 * delivered), the leg through b->rs.leg, the bridge_leg_ops that
 * bridge_leg.c gives to ptth_bridge_resume_init() (drop, reopen, read the
 * leg again, resumed). So its rules are tested without a leg
 * (tests/unit/term/test_bridge_resume.c).
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "bridge_buf.h"
#include "bridge_internal.h"
#include "log.h"

#define ACK_EVERY (128 * 1024) /* received bytes between ACKs (docs/protocol.md) */
#define BACKOFF_FIRST_MS 100L
#define BACKOFF_MAX_MS 2000L
/* a resume request is held by the relay until the other side comes (at
 * most the grace); our leg waits a little longer, so that the relay's
 * answer (404 resume timed out) normally comes first */
#define ANSWER_SLACK_MS 1000L
#define RESUMABLE_HEADER "PTTH-Resumable: 1"

static void on_attempt_timer(ptth_timer *t);

/* The one place the sub-state changes. */
static void
resume_set_state(ptth_bridge *b, bridge_resume_state next)
{
    struct bridge_resume *rs = &b->rs;
    switch (next) {
    case RS_OFF:
        assert(!"a tunnel never becomes unresumable again");
        break;
    case RS_LIVE:
        assert(rs->state == RS_OFF || rs->state == RS_ATTEMPT);
        assert(rs->leg->carries(b));
        break;
    case RS_WAITING:
        assert(rs->state == RS_LIVE || rs->state == RS_ATTEMPT);
        assert(!rs->leg->carries(b));
        break;
    case RS_ATTEMPT:
        assert(rs->state == RS_WAITING);
        assert(rs->leg->carries(b));
        break;
    }
    rs->state = next;
}

static uint64_t
sent_pos(const ptth_bridge *b)
{
    return b->rs.buf.sent + (b->to_relay != TO_RELAY_OPEN ? 1 : 0);
}

static bool
client_side(const ptth_bridge *b)
{
    return strcmp(b->chunk_kind, "upstream") == 0;
}

void
ptth_bridge_resume_init(ptth_bridge *b, const ptth_bridge_config *cfg, const bridge_leg_ops *leg)
{
    struct bridge_resume *rs = &b->rs;
    memset(rs, 0, sizeof(*rs));
    rs->state = RS_OFF;
    rs->leg = leg;
    rs->on_resumed = cfg->on_resumed;
    snprintf(rs->port, sizeof(rs->port), "%s", cfg->port != NULL ? cfg->port : "");
    snprintf(rs->proto, sizeof(rs->proto), "%s", cfg->proto != NULL ? cfg->proto : "tcp");
    snprintf(rs->client, sizeof(rs->client), "%s", cfg->client_name != NULL ? cfg->client_name : "");
    /* without what the resume request must carry there is nothing to ask
     * for: the port, and on the server side the client's name (a relay
     * old enough not to send PTTH-Client does not resume either) */
    bool can = rs->port[0] != '\0' && (client_side(b) || rs->client[0] != '\0');
    rs->capacity = can ? cfg->resume_buffer : 0;
    rs->peer_window = PTTH_RESUME_BUFFER_MIN; /* the least a peer can have, until its first ACK says */
    ptth_resume_buf_init(&rs->buf, rs->capacity);
}

const char *
ptth_bridge_resume_request_header(const ptth_bridge *b)
{
    return b->rs.capacity > 0 ? RESUMABLE_HEADER : NULL;
}

void
ptth_bridge_resume_opened(ptth_bridge *b, const ptth_leg_response *res)
{
    struct bridge_resume *rs = &b->rs;
    if (rs->capacity == 0 || res->resume_token[0] == '\0' || res->resume_grace <= 0)
        return; /* not asked, or not granted: exactly the tunnel of before */
    snprintf(rs->token, sizeof(rs->token), "%s", res->resume_token);
    rs->grace_ms = res->resume_grace * 1000;
    resume_set_state(b, RS_LIVE);
    ptth_log_debug("event=tunnel_resumable conn=%s grace_s=%ld buffer=%zu", b->conn_known ? b->conn : res->conn, res->resume_grace,
                   rs->capacity);
}

bool
ptth_bridge_resumable(const ptth_bridge *b)
{
    return b->rs.state != RS_OFF;
}

bool
ptth_bridge_resume_live(const ptth_bridge *b)
{
    return b->rs.state == RS_OFF || b->rs.state == RS_LIVE;
}

static bool
replaying(const ptth_bridge *b)
{
    return b->rs.replay_pos < b->rs.buf.sent || b->rs.replay_fin;
}

/* What we may send now: the room in our buffer and in the peer's window. */
static size_t
send_room(const struct bridge_resume *rs)
{
    size_t held = ptth_resume_buf_held(&rs->buf);
    size_t window = held < rs->peer_window ? rs->peer_window - held : 0;
    size_t room = ptth_resume_buf_room(&rs->buf);
    return room < window ? room : window;
}

size_t
ptth_bridge_resume_read_room(const ptth_bridge *b)
{
    if (b->rs.state == RS_OFF)
        return SIZE_MAX;
    if (b->rs.state != RS_LIVE || replaying(b))
        return 0; /* resuming: the local end's bytes wait in its socket */
    return send_room(&b->rs);
}

/* Why the leg is read past a full local end here: the peer's ACK frames
 * come on the leg behind its DATA. When we may send nothing more we stop
 * reading our local end; if that local end also stops reading us (an
 * echo, or any program that writes only while it is read), the DATA in
 * front of the peer's next ACK never leaves the leg unless we take it into
 * memory, and the tunnel would stall for good. The peer's ACKs count what
 * it delivered and it keeps to our window, so what we take in is bounded
 * by our window (resume_decoded() enforces it), and the ACK is reached. */
bool
ptth_bridge_resume_overfill(const ptth_bridge *b)
{
    return b->rs.state == RS_LIVE && send_room(&b->rs) == 0;
}

static void
release_chunk(void *buf, size_t size)
{
    ptth_bridge_buf_put(buf, size);
}

bool
ptth_bridge_resume_sent(ptth_bridge *b, void *buf, size_t size, const uint8_t *p, size_t n, bool *adopted)
{
    if (adopted != NULL)
        *adopted = false;
    if (b->rs.state == RS_OFF)
        return true;
    int rc;
    /* a large read is kept where it is, no copy (a copy of every byte cost
     * about a tenth of the bulk throughput); a small one is copied, so
     * that a buffer holds at most twice the bytes it keeps */
    if (buf != NULL && adopted != NULL && n >= size / 2) {
        rc = ptth_resume_buf_adopt(&b->rs.buf, p, n, buf, size, release_chunk);
        *adopted = rc == 0;
    } else {
        rc = ptth_resume_buf_append(&b->rs.buf, p, n);
    }
    if (rc != 0) {
        /* read_room() bounded the read: only memory can be missing */
        b->env->fail(b, true, "cannot keep %zu sent bytes for resumption: %s", n, strerror(-rc));
        return false;
    }
    b->rs.replay_pos = b->rs.buf.sent; /* new bytes are not a replay */
    if (send_room(&b->rs) == 0 && b->out_blocked)
        b->rs.leg->resume_reading(b); /* full now: read the leg for the peer's ACKs */
    return true;
}

bool
ptth_bridge_resume_decoded(ptth_bridge *b, size_t n)
{
    struct bridge_resume *rs = &b->rs;
    if (rs->state == RS_OFF)
        return true;
    if (n > rs->capacity - rs->undelivered) {
        b->env->fail(b, true, "bad frame from relay: DATA past our receive window (%zu bytes undelivered, %zu more, window %zu)",
                     rs->undelivered, n, rs->capacity);
        return false;
    }
    rs->undelivered += n;
    return true;
}

void
ptth_bridge_resume_delivered(ptth_bridge *b, size_t n)
{
    struct bridge_resume *rs = &b->rs;
    if (rs->state == RS_OFF)
        return;
    assert(n <= rs->undelivered); /* every byte of `out` was decoded (and counted) first */
    rs->undelivered -= n;
    rs->received += n;
}

void
ptth_bridge_resume_delivered_fin(ptth_bridge *b)
{
    struct bridge_resume *rs = &b->rs;
    if (rs->state == RS_OFF)
        return;
    assert(rs->undelivered == 0);
    rs->received++;
    rs->ack_fin = true;
}

bool
ptth_bridge_resume_on_ack(ptth_bridge *b, uint64_t value, uint32_t window)
{
    struct bridge_resume *rs = &b->rs;
    if (rs->state == RS_OFF) {
        b->env->fail(b, true, "bad frame from relay: ACK frame on a tunnel that is not resumable");
        return false;
    }
    if (window < PTTH_RESUME_BUFFER_MIN || window > PTTH_RESUME_BUFFER_MAX) {
        /* a peer's --resume-buffer is within these; a smaller window could
         * stop us for good, a larger one is not a buffer anyone has */
        b->env->fail(b, true, "bad frame from relay: ACK with a window of %" PRIu32 " bytes (not %u to %u)", window,
                     PTTH_RESUME_BUFFER_MIN, PTTH_RESUME_BUFFER_MAX);
        return false;
    }
    rs->peer_window = window;
    uint64_t sent = sent_pos(b);
    if (value < rs->peer_acked || value > sent) {
        b->env->fail(b, true, "bad frame from relay: ACK of position %" PRIu64 " %s %" PRIu64, value,
                     value < rs->peer_acked ? "below the last ACK" : "above what was sent,",
                     value < rs->peer_acked ? rs->peer_acked : sent);
        return false;
    }
    rs->peer_acked = value;
    /* the FIN's position is not in the buffer */
    uint64_t data = value > rs->buf.sent ? rs->buf.sent : value;
    if (data > rs->buf.acked) {
        int rc = ptth_resume_buf_ack(&rs->buf, data);
        assert(rc == 0); /* within [acked, sent]: checked above */
        (void)rc;
        if (rs->replay_pos < rs->buf.acked)
            rs->replay_pos = rs->buf.acked;
    }
    b->env->update_watches(b); /* room in the buffer: read the local end again */
    b->env->schedule(b);       /* our FIN acknowledged: the end may have come */
    return true;
}

bool
ptth_bridge_resume_ack_due(const ptth_bridge *b)
{
    const struct bridge_resume *rs = &b->rs;
    if (rs->state != RS_LIVE || rs->received == rs->ack_sent)
        return false;
    return rs->received - rs->ack_sent >= ACK_EVERY || rs->ack_fin || rs->ack_beat;
}

void
ptth_bridge_resume_ack_frame(ptth_bridge *b, uint8_t out[PTTH_FRAME_ACK_LEN])
{
    /* capacity is at most PTTH_RESUME_BUFFER_MAX (1 GiB): it fits */
    ptth_frame_ack(out, b->rs.received, (uint32_t)b->rs.capacity);
    b->rs.ack_sent = b->rs.received;
    b->rs.ack_fin = b->rs.ack_beat = false;
}

void
ptth_bridge_resume_beat(ptth_bridge *b)
{
    if (b->rs.state == RS_LIVE && b->rs.received != b->rs.ack_sent)
        b->rs.ack_beat = true;
}

size_t
ptth_bridge_resume_next_replay(ptth_bridge *b, uint8_t *buf, size_t room, bool *fin)
{
    struct bridge_resume *rs = &b->rs;
    *fin = false;
    if (rs->state != RS_LIVE || room <= PTTH_FRAME_HEADER_LEN)
        return 0;
    if (rs->replay_pos < rs->buf.sent) {
        /* one DATA frame of what the peer did not get, gathered across
         * the buffer's pieces */
        size_t len = 0, max = room - PTTH_FRAME_HEADER_LEN;
        while (len < max && rs->replay_pos < rs->buf.sent) {
            const uint8_t *p;
            long n = ptth_resume_buf_peek(&rs->buf, rs->replay_pos, &p);
            assert(n > 0);
            size_t take = (size_t)n < max - len ? (size_t)n : max - len;
            memcpy(buf + PTTH_FRAME_HEADER_LEN + len, p, take);
            len += take;
            rs->replay_pos += take;
        }
        ptth_frame_header(buf, PTTH_FRAME_DATA, (uint32_t)len);
        return PTTH_FRAME_HEADER_LEN + len;
    }
    if (rs->replay_fin) {
        rs->replay_fin = false;
        ptth_frame_header(buf, PTTH_FRAME_FIN, 0);
        *fin = true;
        return PTTH_FRAME_HEADER_LEN;
    }
    return 0;
}

bool
ptth_bridge_resume_settled(const ptth_bridge *b)
{
    const struct bridge_resume *rs = &b->rs;
    if (rs->state == RS_OFF)
        return true;
    return rs->state == RS_LIVE && rs->peer_acked == sent_pos(b) && rs->ack_sent == rs->received && b->up_off >= b->up_len;
}

bool
ptth_bridge_resume_peer_done(const ptth_bridge *b)
{
    return b->from_relay != FROM_RELAY_OPEN && b->to_relay != TO_RELAY_OPEN && b->rs.peer_acked == sent_pos(b);
}

static void
wait_next(ptth_bridge *b, long delay_ms)
{
    ptth_timer_start(b->loop, &b->rs.timer, delay_ms, on_attempt_timer, b);
}

bool
ptth_bridge_resume_lost(ptth_bridge *b, const char *why)
{
    struct bridge_resume *rs = &b->rs;
    if (rs->state != RS_LIVE || b->failed || b->state != ST_OPEN)
        return false;
    char q[300];
    ptth_log_debug("event=tunnel_suspended conn=%s sent=%" PRIu64 " received=%" PRIu64 " acked=%" PRIu64 " reason=%s", b->conn,
                   sent_pos(b), rs->received, rs->peer_acked, ptth_log_quote(q, sizeof(q), why));
    b->rs.leg->drop(b);
    /* what waits for the local end is not written while resuming: the
     * resume request tells the peer what we delivered, and it sends the
     * rest again (the local end may take more meanwhile: it would be
     * written twice) */
    size_t dropped = b->env->drop_undelivered(b);
    assert(dropped == rs->undelivered);
    (void)dropped;
    rs->undelivered = 0;
    rs->lost_ms = ptth_loop_now(b->loop);
    rs->attempts = 0;
    rs->delay_ms = 0;
    rs->ack_fin = rs->ack_beat = false;
    resume_set_state(b, RS_WAITING);
    b->env->update_watches(b); /* the local end is not read while resuming */
    /* at once, but from the loop: we may be inside the old leg's callback */
    wait_next(b, 0);
    return true;
}

static void
attempt(ptth_bridge *b)
{
    struct bridge_resume *rs = &b->rs;
    assert(rs->state == RS_WAITING);
    long long left = rs->grace_ms - (ptth_loop_now(b->loop) - rs->lost_ms);
    if (left <= 0) {
        b->env->fail(b, false, "resume_timeout");
        return;
    }
    char path[PTTH_API_PATH_MAX];
    if (ptth_api_conn_path(path, sizeof(path), b->server, b->conn, "resume") != 0) {
        b->env->fail(b, false, "resume path too long");
        return;
    }
    /* the leg copies these */
    char token[24 + PTTH_LEG_TOKEN_MAX], port[16 + PTTH_REQ_FIELD_MAX], proto[32], client[16 + PTTH_REQ_FIELD_MAX];
    char received[48], sent[48];
    snprintf(token, sizeof(token), "PTTH-Resume: %s", rs->token);
    snprintf(port, sizeof(port), "PTTH-Port: %s", rs->port);
    snprintf(proto, sizeof(proto), "PTTH-Proto: %s", rs->proto);
    snprintf(client, sizeof(client), "PTTH-Client: %s", rs->client);
    snprintf(received, sizeof(received), "PTTH-Received: %" PRIu64, rs->received);
    snprintf(sent, sizeof(sent), "PTTH-Sent: %" PRIu64, sent_pos(b));
    const char *headers[7] = {token, port, proto, received, sent, NULL, NULL};
    if (!client_side(b))
        headers[5] = client;
    rs->attempts++;
    ptth_log_debug("event=resume_attempt conn=%s attempt=%u left_ms=%lld", b->conn, rs->attempts, left);
    int rc = b->rs.leg->reopen(b, path, headers, left + ANSWER_SLACK_MS);
    explicit_bzero(token, sizeof(token));
    if (rc != 0) {
        b->env->fail(b, false, "cannot send the resume request: %s", strerror(-rc));
        return;
    }
    resume_set_state(b, RS_ATTEMPT);
}

static void
on_attempt_timer(ptth_timer *t)
{
    ptth_bridge *b = t->data;
    if (b->state != ST_OPEN || b->failed || b->rs.state != RS_WAITING)
        return;
    attempt(b);
}

/* 409, 429, 5xx or no answer: again after the backoff, within the grace. */
static void
retry(ptth_bridge *b, const char *why)
{
    struct bridge_resume *rs = &b->rs;
    rs->leg->close_attempt(b);
    resume_set_state(b, RS_WAITING);
    rs->delay_ms = rs->delay_ms == 0 ? BACKOFF_FIRST_MS : rs->delay_ms * 2;
    if (rs->delay_ms > BACKOFF_MAX_MS)
        rs->delay_ms = BACKOFF_MAX_MS;
    long long left = rs->grace_ms - (ptth_loop_now(b->loop) - rs->lost_ms);
    char q[300];
    ptth_log_debug("event=resume_retry conn=%s attempt=%u delay_ms=%ld reason=%s", b->conn, rs->attempts, rs->delay_ms,
                   ptth_log_quote(q, sizeof(q), why));
    /* past the grace the timer's attempt ends the tunnel (resume_timeout) */
    wait_next(b, left < rs->delay_ms ? (long)(left > 0 ? left : 0) : rs->delay_ms);
}

/* The 101 of a resume: check the peer's counts, drop what it has, and
 * go on with the replay. */
static void
resumed(ptth_bridge *b, const ptth_leg_response *res)
{
    struct bridge_resume *rs = &b->rs;
    if (res->conn[0] != '\0' && strcmp(res->conn, b->conn) != 0) {
        b->env->fail(b, false, "resume answer for another tunnel (PTTH-Conn %s)", res->conn);
        return;
    }
    if (res->peer_received < 0 || res->peer_sent < 0) {
        b->env->fail(b, false, "resume answer without valid PTTH-Peer-Received and PTTH-Peer-Sent");
        return;
    }
    uint64_t peer_received = (uint64_t)res->peer_received, peer_sent = (uint64_t)res->peer_sent, sent = sent_pos(b);
    if (peer_received < rs->peer_acked || peer_received > sent) {
        b->env->fail(b, false,
                     "resume: the peer received position %" PRIu64 ", outside what we sent (acknowledged %" PRIu64 ", sent %" PRIu64
                     ")",
                     peer_received, rs->peer_acked, sent);
        return;
    }
    if (peer_sent < rs->received) {
        b->env->fail(b, false, "resume: the peer sent position %" PRIu64 ", less than we received (%" PRIu64 ")", peer_sent,
                     rs->received);
        return;
    }
    if (res->resume_token[0] != '\0')
        snprintf(rs->token, sizeof(rs->token), "%s", res->resume_token);
    if (res->resume_grace > 0)
        rs->grace_ms = res->resume_grace * 1000;
    rs->peer_acked = peer_received;
    uint64_t data = peer_received > rs->buf.sent ? rs->buf.sent : peer_received;
    int rc = ptth_resume_buf_ack(&rs->buf, data);
    assert(rc == 0);
    (void)rc;
    rs->replay_pos = data;
    rs->replay_fin = b->to_relay != TO_RELAY_OPEN && peer_received <= rs->buf.sent;
    if (b->to_relay == TO_RELAY_EOF && !rs->replay_fin)
        b->to_relay = TO_RELAY_DONE; /* the FIN in the lost frames did get through */
    /* the relay told the peer our received (PTTH-Received): that is our ACK */
    rs->ack_sent = rs->received;
    rs->ack_fin = rs->ack_beat = false;
    /* a fresh decoder: the old leg may have ended inside a frame; the
     * peer's FIN stays seen (no DATA may follow it) */
    ptth_frame_decoder_init(&b->dec, 0);
    b->dec.fin_seen = b->from_relay != FROM_RELAY_OPEN;
    b->leg_eof = false;

    uint64_t ours = sent - peer_received, theirs = peer_sent - rs->received;
    long long gap = ptth_loop_now(b->loop) - rs->lost_ms;
    ptth_log_info("event=tunnel_resumed conn=%s gap_ms=%lld replayed_up=%" PRIu64 " replayed_down=%" PRIu64, b->conn, gap,
                  client_side(b) ? ours : theirs, client_side(b) ? theirs : ours);
    rs->resumes++;
    rs->attempts = 0;
    rs->delay_ms = 0;
    resume_set_state(b, RS_LIVE);
    if (rs->on_resumed != NULL)
        rs->on_resumed(b, ours, b->data);
    b->rs.leg->resumed(b, res);
}

void
ptth_bridge_resume_on_response(ptth_bridge *b, const ptth_leg_response *res)
{
    assert(b->rs.state == RS_ATTEMPT);
    if (b->state != ST_OPEN || b->failed)
        return;
    if (res->upgraded) {
        resumed(b, res);
        return;
    }
    char why[PTTH_LEG_REASON_MAX + 80];
    if (res->status == 0) {
        snprintf(why, sizeof(why), "resume request failed: %s", res->error != NULL ? res->error : "no answer");
        retry(b, why);
        return;
    }
    snprintf(why, sizeof(why), "resume refused: HTTP %d%s%s", res->status, res->reason[0] != '\0' ? " " : "", res->reason);
    if (res->status == 409 || res->status == 429 || (res->status >= 500 && res->status <= 599)) {
        retry(b, why);
        return;
    }
    /* 400, 401, 403, 404 (ended, timed out, resumption off) and whatever
     * else answers: the tunnel cannot come back. The relay's own grace
     * ran out ("404 resume timed out"): the same end as ours; the peer's
     * terminator restarted and nobody will resume its side ("404 peer
     * restarted", docs/protocol.md "Restarted terminators") */
    if (res->status == 404 && strcmp(res->reason, "resume timed out") == 0)
        b->env->fail(b, false, "resume_timeout");
    else if (res->status == 404 && strcmp(res->reason, "peer restarted") == 0)
        b->env->fail(b, false, "peer_restarted");
    else
        b->env->fail(b, false, "%s", why);
}

void
ptth_bridge_resume_stop(ptth_bridge *b)
{
    ptth_timer_stop(b->loop, &b->rs.timer);
    ptth_resume_buf_clear(&b->rs.buf);
}
