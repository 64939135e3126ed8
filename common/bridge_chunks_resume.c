/*
 * bridge_chunks_resume.c: resumable tunnels on the chunked path (and the
 * hybrid path of a 2xx answer to an upgrade request), the terminator's side
 * of docs/protocol.md "Resumable tunnels" (SPEC §9.3).
 *
 * When the framed stream's 2xx carries PTTH-Resume and PTTH-Resume-Grace
 * (we asked with PTTH-Resumable: 1), the tunnel is raw:
 *   - each chunk body is whole end-to-end frames, exactly as on an
 *     upgraded leg: a DATA frame of one local read (our FIN frame at its
 *     end), an ACK frame behind it when one is due; the replay after a
 *     resume and lone ACKs go in chunks of their own. The relay writes the
 *     bodies into the peer's framed stream verbatim, so the peer decodes
 *     one frame stream (bridge.c's decoder, unchanged);
 *   - chunks carry PTTH-Epoch (the relay's resumes so far) and are
 *     numbered from 0 in every epoch;
 *   - done (both FINs through, ours acknowledged, our last ACK answered):
 *     an empty PTTH-Fin chunk says so to the relay, which ends both
 *     streams cleanly once both sides said it;
 *   - lost: the framed stream breaks or ends before we were done, or a
 *     chunk fails after its retries or is refused (404: the relay
 *     restarted; 409: it suspended the tunnel). Every chunk request and
 *     the stream are cancelled, and bridge_resume.c resumes as on the
 *     upgraded path, with a plain POST .../resume through the relay client
 *     whose 200 is the next epoch's framed stream.
 *
 * The layers (bridge_internal.h): called by bridge.c and bridge_leg.c by
 * name; calls bridge_resume.c by name and bridge.c only through b->env
 * (the chunk slots, feeding the decoder, failing); gives bridge_resume.c
 * this path's bridge_leg_ops (drop, reopen, read again, resumed, close an
 * attempt, what carries the tunnel).
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge_buf.h"
#include "bridge_internal.h"
#include "log.h"

static void chunks_drop(ptth_bridge *b);
static int chunks_reopen(ptth_bridge *b, const char *path, const char *const *headers, long timeout_ms);
static void chunks_resume_reading(ptth_bridge *b);
static void chunks_resumed(ptth_bridge *b, const ptth_leg_response *res);
static void chunks_close_attempt(ptth_bridge *b);
static bool chunks_carries(const ptth_bridge *b);

static const bridge_leg_ops chunks_ops = {
    .drop = chunks_drop,
    .reopen = chunks_reopen,
    .resume_reading = chunks_resume_reading,
    .resumed = chunks_resumed,
    .close_attempt = chunks_close_attempt,
    .carries = chunks_carries,
};

/* `upgraded` of a leg's answer stands for "granted": any 2xx here. */
void
ptth_bridge_chunks_response_of(const ptth_req *r, ptth_leg_response *res)
{
    memset(res, 0, sizeof(*res));
    res->status = (int)r->status;
    res->upgraded = r->status >= 200 && r->status <= 299;
    res->retry_after = r->retry_after;
    res->max_chunk = r->max_chunk;
    snprintf(res->conn, sizeof(res->conn), "%s", r->conn);
    snprintf(res->reason, sizeof(res->reason), "%s", r->reason);
    snprintf(res->resume_token, sizeof(res->resume_token), "%s", r->resume_token);
    res->resume_grace = r->resume_grace;
    res->peer_received = r->peer_received;
    res->peer_sent = r->peer_sent;
}

void
ptth_bridge_chunks_resume_opened(ptth_bridge *b, const ptth_leg_response *res, const bridge_leg_ops *leg)
{
    if (b->rs.capacity == 0 || res->resume_token[0] == '\0' || res->resume_grace <= 0)
        return; /* not asked, or not granted: the chunked path of before */
    assert((b->path == PATH_HYBRID) == (leg != NULL));
    b->hybrid_leg = leg;
    b->rs.leg = &chunks_ops;
    b->raw = true;
    b->epoch = 0;
    ptth_bridge_resume_opened(b, res);
}

bool
ptth_bridge_chunks_reading_wanted(const ptth_bridge *b)
{
    return b->state == ST_OPEN && !b->failed && b->to_relay == TO_RELAY_OPEN && b->in_flight < PTTH_BRIDGE_WINDOW &&
           ptth_bridge_resume_read_room(b) > 0;
}

bool
ptth_bridge_chunks_done(const ptth_bridge *b)
{
    return b->to_relay == TO_RELAY_DONE && b->from_relay == FROM_RELAY_SHUT && b->in_flight == 0 &&
           ptth_bridge_resume_settled(b);
}

struct chunk *
ptth_bridge_chunks_slot(ptth_bridge *b)
{
    if (b->chunks == NULL) {
        b->chunks = calloc(PTTH_BRIDGE_WINDOW, sizeof(*b->chunks));
        if (b->chunks == NULL)
            return NULL;
        for (unsigned i = 0; i < PTTH_BRIDGE_WINDOW; i++)
            b->chunks[i].b = b;
    }
    for (unsigned i = 0; i < PTTH_BRIDGE_WINDOW; i++) {
        struct chunk *c = &b->chunks[i];
        if (!c->req.active && c->buf == NULL && !ptth_timer_active(&c->retry_timer))
            return c;
    }
    return NULL;
}

/* An ACK frame behind the n bytes at buf when one is due and fits. */
static size_t
add_ack(ptth_bridge *b, uint8_t *buf, size_t n, size_t room)
{
    if (room - n >= PTTH_FRAME_ACK_LEN && ptth_bridge_resume_ack_due(b)) {
        ptth_bridge_resume_ack_frame(b, buf + n);
        n += PTTH_FRAME_ACK_LEN;
    }
    return n;
}

bool
ptth_bridge_chunks_read_local(ptth_bridge *b, struct chunk *c)
{
    size_t room = b->read_limit - PTTH_FRAME_HEADER_LEN - PTTH_FRAME_ACK_LEN;
    size_t resume_room = ptth_bridge_resume_read_room(b);
    if (resume_room < room)
        room = resume_room;
    if (room == 0 || b->read_limit <= PTTH_FRAME_HEADER_LEN + PTTH_FRAME_ACK_LEN)
        return false;
    uint8_t *buf;
    ssize_t n = b->env->read_local_into(b, PTTH_FRAME_HEADER_LEN, room, &buf);
    if (n < 0)
        return false;
    size_t len;
    c->fin_frame = n == 0;
    c->data_len = (size_t)n;
    if (n == 0) {
        b->to_relay = TO_RELAY_EOF;
        ptth_frame_header(buf, PTTH_FRAME_FIN, 0);
        len = PTTH_FRAME_HEADER_LEN;
    } else {
        /* copied, not adopted: the chunk request needs its buffer until
         * it is answered, which may be after the peer's ACK */
        if (!ptth_bridge_resume_sent(b, NULL, 0, buf + PTTH_FRAME_HEADER_LEN, (size_t)n, NULL)) {
            ptth_bridge_buf_put(buf, b->max_chunk);
            return false;
        }
        ptth_frame_header(buf, PTTH_FRAME_DATA, (uint32_t)n);
        len = PTTH_FRAME_HEADER_LEN + (size_t)n;
        b->bytes_to_relay += (uint64_t)n;
    }
    c->buf = buf;
    c->len = add_ack(b, buf, len, b->read_limit);
    c->fin = false;
    return true;
}

void
ptth_bridge_chunks_kick(ptth_bridge *b)
{
    struct chunk *c;
    while (b->state == ST_OPEN && !b->failed && b->rs.state == RS_LIVE && (c = ptth_bridge_chunks_slot(b)) != NULL) {
        bool replay = b->rs.replay_pos < b->rs.buf.sent || b->rs.replay_fin;
        if (replay || ptth_bridge_resume_ack_due(b)) {
            uint8_t *buf = ptth_bridge_buf_get(b->max_chunk);
            if (buf == NULL) {
                b->env->fail(b, true, "out of memory");
                return;
            }
            size_t n = 0, m, room = b->read_limit < b->max_chunk ? b->read_limit : b->max_chunk;
            bool fin = false, fin_frame = false;
            while (room - n > PTTH_FRAME_HEADER_LEN && (m = ptth_bridge_resume_next_replay(b, buf + n, room - n, &fin)) != 0) {
                n += m;
                fin_frame = fin_frame || fin;
            }
            n = add_ack(b, buf, n, room);
            if (n == 0) {
                ptth_bridge_buf_put(buf, b->max_chunk);
                return;
            }
            c->buf = buf;
            c->len = n;
            c->fin = false;
            c->fin_frame = fin_frame;
            c->data_len = 0;
            b->env->send_chunk(b, c);
            if (replay && b->rs.replay_pos == b->rs.buf.sent && !b->rs.replay_fin)
                b->env->update_watches(b); /* the replay is out: the local end is read again, behind it */
            continue;
        }
        if (!b->done_sent && ptth_bridge_chunks_done(b)) {
            c->buf = NULL;
            c->len = 0;
            c->fin = true;
            c->fin_frame = false;
            c->data_len = 0;
            b->done_sent = true;
            b->env->send_chunk(b, c);
        }
        return;
    }
}

void
ptth_bridge_chunks_stream_ended(ptth_bridge *b, const char *error)
{
    b->stream_done = true;
    if (b->state != ST_OPEN || b->failed)
        return;
    if (error == NULL && b->done_sent) {
        b->env->schedule(b); /* both sides said they were done: the end */
        return;
    }
    char why[PTTH_REQ_REASON_MAX + 40];
    if (error != NULL)
        snprintf(why, sizeof(why), "relay stream failed: %s", error);
    else
        snprintf(why, sizeof(why), "relay ended the stream before we were done");
    if (!ptth_bridge_resume_lost(b, why))
        b->env->fail(b, error != NULL, "%s", why);
}

/* ---- the resume request ---- */

static void
on_attempt_timeout(ptth_timer *t)
{
    ptth_bridge *b = t->data;
    if (b->rs.state != RS_ATTEMPT || b->state != ST_OPEN || b->failed)
        return;
    ptth_req_cancel(&b->stream);
    ptth_leg_response res;
    memset(&res, 0, sizeof(res));
    res.error = "no answer in time";
    res.retry_after = -1;
    ptth_bridge_resume_on_response(b, &res);
}

/* Inside libcurl: only counts and state change here (bridge_resume.c's
 * resumed() fails through env, which is safe); the replay's chunks are
 * posted from the loop (env->schedule, ptth_bridge_chunks_kick). */
static void
on_resume_headers(ptth_req *r)
{
    ptth_bridge *b = r->data;
    if (b->rs.state != RS_ATTEMPT || b->state != ST_OPEN || b->failed || r->status < 200 || r->status > 299)
        return; /* a refusal: on_resume_done has its body */
    ptth_timer_stop(b->loop, &b->attempt_timer);
    ptth_leg_response res;
    ptth_bridge_chunks_response_of(r, &res);
    ptth_bridge_resume_on_response(b, &res);
}

static size_t
on_resume_body(ptth_req *r, const uint8_t *p, size_t len)
{
    ptth_bridge *b = r->data;
    if (b->rs.state != RS_LIVE || r->status < 200 || r->status > 299)
        return len;
    return b->env->feed(b, p, len, false);
}

static void
on_resume_done(ptth_req *r, const char *error)
{
    ptth_bridge *b = r->data;
    ptth_timer_stop(b->loop, &b->attempt_timer);
    if (b->state != ST_OPEN || b->failed)
        return;
    if (b->rs.state == RS_ATTEMPT) {
        ptth_leg_response res;
        ptth_bridge_chunks_response_of(r, &res);
        res.upgraded = false;
        if (error != NULL) {
            res.status = 0;
            res.error = error;
        }
        ptth_bridge_resume_on_response(b, &res);
        return;
    }
    ptth_bridge_chunks_stream_ended(b, error);
    b->env->schedule(b);
}

static const ptth_req_ops resume_rq_ops = {
    .on_headers = on_resume_headers,
    .on_body = on_resume_body,
    .on_done = on_resume_done,
};

/* ---- bridge_leg_ops of this path ---- */

/* The tunnel is lost: no request of it stays (a chunk that still arrived
 * at the relay is one of the epoch before: 409), the hybrid path's leg
 * goes too (resumed, the tunnel is on the chunked path). */
static void
chunks_drop(ptth_bridge *b)
{
    b->env->release_chunks(b);
    ptth_req_cancel(&b->stream);
    if (b->leg_open) {
        ptth_leg_close(&b->leg, true);
        b->leg_open = false;
    }
    b->path = PATH_CHUNKS;
    b->hybrid_leg = NULL;
    b->next_seq = 0;
    b->done_sent = false;
    b->stream_done = false;
    b->stream_paused = false;
    ptth_timer_stop(b->loop, &b->attempt_timer);
}

static int
chunks_reopen(ptth_bridge *b, const char *path, const char *const *headers, long timeout_ms)
{
    /* the request keeps pointers to its header lines: copied here */
    size_t n = 0;
    for (; headers[n] != NULL && n < sizeof(b->rq_hdr) / sizeof(b->rq_hdr[0]); n++) {
        if (snprintf(b->rq_hdr[n], sizeof(b->rq_hdr[n]), "%s", headers[n]) >= (int)sizeof(b->rq_hdr[n]))
            return -E2BIG;
        b->rq_hdrs[n] = b->rq_hdr[n];
    }
    b->rq_hdrs[n] = NULL;
    memset(&b->stream, 0, sizeof(b->stream));
    b->stream.ops = &resume_rq_ops;
    b->stream.data = b;
    b->stream.timeout_ms = 0; /* the whole request: the stream lives on after the 200 */
    b->stream.retry_after = -1;
    int rc = ptth_req_start(b->client, &b->stream, PTTH_REQ_STREAM, path, b->rq_hdrs, NULL, 0);
    if (rc == 0)
        ptth_timer_start(b->loop, &b->attempt_timer, timeout_ms, on_attempt_timeout, b);
    return rc;
}

static void
chunks_resume_reading(ptth_bridge *b)
{
    /* we may send nothing more: the peer's next ACK is in the stream,
     * behind DATA that waits for the local end. On the hybrid path the
     * stream is the leg's answer body: its read watch is bridge_leg.c's
     * (which reads on past a full local end while we may send nothing);
     * left off, the ACK is never read, and with a local end that writes
     * only while it is read (an echo) the tunnel stalls for good */
    if (b->path == PATH_HYBRID) {
        if (b->leg_open && b->hybrid_leg != NULL)
            b->hybrid_leg->resume_reading(b);
        return;
    }
    if (b->stream_paused && b->path == PATH_CHUNKS && ptth_req_active(&b->stream)) {
        b->stream_paused = false;
        ptth_req_resume(&b->stream);
    }
}

/* The resume's 200 (inside libcurl): the next epoch; the replay goes out
 * from the loop. */
static void
chunks_resumed(ptth_bridge *b, const ptth_leg_response *res)
{
    b->epoch = b->stream.epoch > 0 ? (uint64_t)b->stream.epoch : 0;
    if (res->max_chunk > 0 && (size_t)res->max_chunk < b->read_limit)
        b->read_limit = (size_t)res->max_chunk;
    b->path = PATH_CHUNKS;
    b->stream_done = false;
    b->env->update_watches(b);
    b->env->schedule(b);
}

static void
chunks_close_attempt(ptth_bridge *b)
{
    ptth_timer_stop(b->loop, &b->attempt_timer);
    ptth_req_cancel(&b->stream);
}

static bool
chunks_carries(const ptth_bridge *b)
{
    return (b->path == PATH_HYBRID && b->leg_open) || ptth_req_active(&b->stream);
}

void
ptth_bridge_chunks_resume_stop(ptth_bridge *b)
{
    ptth_timer_stop(b->loop, &b->attempt_timer);
}
