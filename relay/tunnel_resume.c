/*
 * tunnel_resume.c: resumable tunnels at the relay (SPEC §9.3,
 * docs/protocol.md "Resumable tunnels"): the tokens of the 101s (and of
 * the 200s of a raw tunnel, resumable on the chunked path), the suspension
 * of a joined tunnel that lost a leg or of a raw one that lost a stream,
 * the held resume requests of both sides, the new joint or the new framed
 * streams of the next epoch, the grace, and the memory of ended ids.
 * Part of the core: no h2o, everything through core->io (tunnel.h).
 *
 * The upper half of the tunnel core (tunnel_internal.h): it makes, changes
 * and ends tunnels through tunnel.c's calls; tunnel.c reaches it only
 * through the ptth_tunnel_resume_ops table that ptth_tunnel_resume_enable()
 * registers on the core.
 */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "instances.h"
#include "keys.h"
#include "log.h"
#include "resume.h"
#include "sysutil.h"
#include "tunnel_internal.h"

_Static_assert(sizeof(((ptth_ended *)0)->id) == PTTH_ID_LEN, "an ended id is a connection id");

/* One held resume request; its memory is the request's (core.h). */
typedef struct ptth_resume_hold {
    ptth_held held; /* first */
    ptth_tunnel *t;
    int side; /* 0 client, 1 server: the index into t->resume */
    uint64_t received, sent;
} ptth_resume_hold;

static int
token_of(const ptth_tunnel *t, bool server_side, char out[PTTH_RESUME_TOKEN_LEN + 1])
{
    if (t->core->resume_secret == NULL)
        return -1;
    return ptth_resume_token(t->core->resume_secret, t->id, server_side, t->server, t->port, ptth_tunnel_proto_name(t->proto),
                             t->client, out);
}

/* The resume headers of one 101 (the token is a secret: it goes into the
 * answer and nowhere else). */
static void
add_resume(ptth_tunnel *t, ptth_rq *rq, const char *token)
{
    char v[24];
    ptth_core_header(t->core, rq, "ptth-resume", token);
    snprintf(v, sizeof(v), "%" PRIu64, t->core->cfg->resume_grace);
    ptth_core_header(t->core, rq, "ptth-resume-grace", v);
}

/* ptth_tunnel_resume_ops.on_granted: PTTH-Resume (each side its token) and
 * PTTH-Resume-Grace on both answers; false (no header added) when a token
 * could not be made. */
static bool
on_granted(ptth_tunnel *t, ptth_rq *connect, ptth_rq *accept)
{
    char ct[PTTH_RESUME_TOKEN_LEN + 1], st[PTTH_RESUME_TOKEN_LEN + 1];
    if (token_of(t, false, ct) != 0 || token_of(t, true, st) != 0) {
        ptth_log_warn("event=resume_unavailable id=%s reason=\"cannot compute the resume tokens (HMAC-SHA256)\"", t->id);
        return false;
    }
    add_resume(t, connect, ct);
    add_resume(t, accept, st);
    ptth_instances_link(t);
    return true;
}

/* JOINED -> SUSPENDED: closes the joint with a reset, starts the grace
 * (ptth_tunnel_resume_ops.on_leg_lost, and a resume of a joined tunnel).
 * OPEN or BROKEN (raw) -> SUSPENDED: the streams aborted, the chunks held
 * answered 409 (on_stream_lost, and a resume of an open raw tunnel). */
static void
suspend(ptth_tunnel *t, const char *detail)
{
    ptth_core *core = t->core;
    assert(t->resumable);
    assert(t->state == PTTH_TUNNEL_JOINED ||
           (t->raw && (t->state == PTTH_TUNNEL_OPEN || t->state == PTTH_TUNNEL_BROKEN)));
    if (t->joint != NULL) {
        /* both legs reset: each terminator takes the tunnel as broken and
         * resumes (a clean close would look like the end of the tunnel) */
        core->io->join_close(core->io_ctx, t->joint, true);
        t->joint = NULL;
    } else {
        /* the same on the chunked path: a stream that breaks, not one that
         * ends, and 409 to what the terminators still send */
        ptth_tunnel_drop_streams(t, 409, "tunnel suspended: resume it\n");
    }
    ptth_timer_disarm(core, &t->idle_timer);
    ptth_timer_arm(core, &t->grace_timer, PTTH_TIMER_RESUME);
    t->suspended_ms = ptth_now_ms();
    ptth_tunnel_set_state(t, PTTH_TUNNEL_SUSPENDED);
    core->stats.tunnels_suspended++;
    char quoted[160];
    ptth_log_info("event=tunnel_suspended id=%s server=%s port=%s client=%s grace_s=%" PRIu64 " detail=%s", t->id, t->server,
                  t->port, t->client, core->cfg->resume_grace,
                  ptth_log_quote(quoted, sizeof(quoted), detail != NULL ? detail : ""));
}

static void
refuse_held(ptth_core *core, ptth_resume_hold *r, int status, unsigned retry, const char *body, ptth_resume_refusal why)
{
    core->stats.resume_refused[why]++;
    ptth_core_answer(core, &r->held, status, retry, body);
}

/* Answers the held resumes of an ending tunnel (404 resume timed out, 404
 * peer restarted, 503 at shutdown, else 404); rst_text (may be NULL) is the reason of a
 * `close`, which the other side then learns. */
static void
drop_resumes(ptth_tunnel *t, ptth_end_reason reason, const char *rst_text)
{
    for (int side = 0; side < 2; side++) {
        ptth_resume_hold *r = t->resume[side];
        if (r == NULL)
            continue;
        t->resume[side] = NULL;
        if (reason == PTTH_END_RESUME_TIMEOUT)
            refuse_held(t->core, r, 404, 0, "resume timed out\n", PTTH_REFUSED_TIMED_OUT);
        else if (reason == PTTH_END_PEER_RESTARTED)
            refuse_held(t->core, r, 404, 0, "peer restarted\n", PTTH_REFUSED_ENDED);
        else if (reason == PTTH_END_SHUTDOWN)
            ptth_core_answer(t->core, &r->held, 503, PTTH_RETRY_OFFLINE, "relay shutting down\n");
        else if (reason == PTTH_END_RST && rst_text != NULL && rst_text[0] != '\0') {
            /* a `close` while suspended: the other side learns its reason */
            char body[320];
            snprintf(body, sizeof(body), "%s\n", rst_text);
            refuse_held(t->core, r, 404, 0, body, PTTH_REFUSED_ENDED);
        } else
            refuse_held(t->core, r, 404, 0, "tunnel closed\n", PTTH_REFUSED_ENDED);
    }
}

/* ---- ended ids ------------------------------------------------------------------ */

void
ptth_tunnel_remember_end(ptth_tunnel *t, ptth_end_reason reason)
{
    ptth_core *core = t->core;
    if (core->cfg->resume_grace == 0)
        return;
    if (core->ended == NULL && (core->ended = calloc(PTTH_ENDED_MAX, sizeof(*core->ended))) == NULL)
        return; /* then a resume of it creates a suspended phantom that times out: no bytes reach anyone */
    ptth_ended *e = &core->ended[core->ended_next];
    core->ended_next = (core->ended_next + 1) % PTTH_ENDED_MAX;
    memcpy(e->id, t->id, sizeof(e->id));
    e->ended_ms = ptth_now_ms();
    e->reason = reason;
}

static const ptth_ended *
find_ended(ptth_core *core, const char *id)
{
    if (core->ended == NULL)
        return NULL;
    long long since = ptth_now_ms() - (long long)core->cfg->resume_grace * 1000;
    for (size_t i = 0; i < PTTH_ENDED_MAX; i++) {
        const ptth_ended *e = &core->ended[i];
        if (e->ended_ms != 0 && e->ended_ms >= since && memcmp(e->id, id, sizeof(e->id)) == 0)
            return e;
    }
    return NULL;
}

bool
ptth_tunnel_ended_recently(ptth_core *core, const char *id)
{
    return find_ended(core, id) != NULL;
}

/* ---- the resume request ---------------------------------------------------------------- */

static void
on_resume_gone(ptth_held *h)
{
    ptth_resume_hold *r = (ptth_resume_hold *)h;
    if (r->t->resume[r->side] == r)
        r->t->resume[r->side] = NULL;
}

static void
refuse(ptth_core *core, ptth_rq *rq, int status, unsigned retry, const char *body, ptth_resume_refusal why)
{
    core->stats.resume_refused[why]++;
    ptth_core_reply(core, rq, status, retry, body);
}

/* How many positions a side sends again: its sent minus what the peer
 * received. A count below the peer's is nonsense (the terminators refuse
 * that themselves, docs/protocol.md): it is logged as 0, not refused here,
 * because the relay cannot know which of the two is wrong. */
static uint64_t
replayed(uint64_t sent, uint64_t peer_received)
{
    return sent >= peer_received ? sent - peer_received : 0;
}

static void
add_peer_counts(ptth_tunnel *t, ptth_rq *rq, const ptth_resume_hold *peer)
{
    char v[24];
    snprintf(v, sizeof(v), "%" PRIu64, peer->received);
    ptth_core_header(t->core, rq, "ptth-peer-received", v);
    snprintf(v, sizeof(v), "%" PRIu64, peer->sent);
    ptth_core_header(t->core, rq, "ptth-peer-sent", v);
}

/* A raw tunnel's both sides are held: both get a 200 framed stream of the
 * next epoch (chunks from PTTH-Seq 0 again), OPEN as after an accept. */
static void
reopen_streams(ptth_tunnel *t, ptth_rq *crq, ptth_rq *srq, const char *ct, const char *st)
{
    ptth_core *core = t->core;
    char v[24];
    t->epoch++;
    snprintf(v, sizeof(v), "%" PRIu64, t->epoch);
    ptth_rq *rqs[2] = {crq, srq};
    for (int i = 0; i < 2; i++) {
        ptth_core_header(core, rqs[i], "ptth-conn", t->id);
        ptth_core_max_chunk(core, rqs[i]);
        ptth_core_header(core, rqs[i], "ptth-epoch", v);
        add_resume(t, rqs[i], i == 0 ? ct : st);
    }
    t->down.out = core->io->out_open(core->io_ctx, crq, t);
    t->up.out = core->io->out_open(core->io_ctx, srq, t);
    ptth_tunnel_set_state(t, PTTH_TUNNEL_OPEN);
}

/* Both sides are held: both get 101 and a new joint, as after an accept
 * (or, raw, 200 framed streams). */
static void
rejoin(ptth_tunnel *t)
{
    ptth_core *core = t->core;
    ptth_resume_hold *c = t->resume[0], *s = t->resume[1];
    char ct[PTTH_RESUME_TOKEN_LEN + 1], st[PTTH_RESUME_TOKEN_LEN + 1];
    ptth_join *j = NULL;
    if (token_of(t, false, ct) != 0 || token_of(t, true, st) != 0 ||
        (!t->raw && (j = core->io->join_new(core->io_ctx, t)) == NULL)) {
        t->resume[0] = t->resume[1] = NULL;
        ptth_core_answer(core, &c->held, 500, 0, "relay out of memory\n");
        ptth_core_answer(core, &s->held, 500, 0, "relay out of memory\n");
        ptth_tunnel_end(t, PTTH_END_RST, "relay out of memory");
        return;
    }
    t->resume[0] = t->resume[1] = NULL;
    uint64_t up = replayed(c->sent, s->received), down = replayed(s->sent, c->received);
    ptth_rq *crq = ptth_core_release(core, &c->held), *srq = ptth_core_release(core, &s->held);
    ptth_timer_disarm(core, &t->grace_timer);
    add_peer_counts(t, crq, s);
    add_peer_counts(t, srq, c);
    if (t->raw) {
        reopen_streams(t, crq, srq, ct, st);
    } else {
        t->joint = j;
        ptth_tunnel_set_state(t, PTTH_TUNNEL_JOINED);
        ptth_tunnel_add_upgrade_headers(t, crq);
        ptth_tunnel_add_upgrade_headers(t, srq);
        add_resume(t, crq, ct);
        add_resume(t, srq, st);
        core->io->join_start(core->io_ctx, j, crq, srq);
    }
    ptth_tunnel_touch_idle(t);
    core->stats.tunnels_resumed++;
    core->stats.replayed_up += up;
    core->stats.replayed_down += down;
    ptth_log_info("event=tunnel_resumed conn=%s gap_ms=%lld replayed_up=%" PRIu64 " replayed_down=%" PRIu64, t->id,
                  ptth_now_ms() - t->suspended_ms, up, down);
}

/* An unknown id with a valid token: a tunnel of the relay before a restart
 * (or of another relay with the same secret), made again from the token's
 * fields, SUSPENDED, counted against the limits as a connect is. */
static ptth_tunnel *
recreate(ptth_core *core, ptth_rq *rq, const char *server, size_t server_len, const char *id, const ptth_resume_in *in)
{
    if (core->ntunnels >= core->cfg->max_connections) {
        refuse(core, rq, 429, PTTH_RETRY_LIMIT, "too many tunnels open at the relay (--max-connections)\n", PTTH_REFUSED_LIMIT);
        return NULL;
    }
    ptth_srv *srv = ptth_srv_get_or_create(core, server, server_len);
    if (srv == NULL) {
        ptth_core_reply(core, rq, 500, 0, "out of memory\n");
        return NULL;
    }
    if (srv->ntunnels >= core->cfg->max_connections_per_server) {
        refuse(core, rq, 429, PTTH_RETRY_LIMIT, "too many tunnels open to this server (--max-connections-per-server)\n",
               PTTH_REFUSED_LIMIT);
        return NULL;
    }
    ptth_tunnel *t =
        ptth_tunnel_alloc(core, srv, id, in->port, in->port_len, in->client, in->server_side ? "-" : in->addr, in->proto);
    if (t == NULL) {
        ptth_core_reply(core, rq, 500, 0, "cannot create a tunnel\n");
        return NULL;
    }
    t->connect_wants_upgrade = in->upgrade;
    t->connect_wants_resume = true;
    t->resumable = true;
    /* the path of the resume is the tunnel's */
    t->upgraded = in->upgrade;
    t->raw = !in->upgrade;
    /* fresh from the constructor (AWAIT_LISTEN without a connect): a tunnel
     * of before, already broken */
    ptth_timer_arm(core, &t->grace_timer, PTTH_TIMER_RESUME);
    t->suspended_ms = ptth_now_ms();
    ptth_tunnel_set_state(t, PTTH_TUNNEL_SUSPENDED);
    core->stats.tunnels_suspended++;
    ptth_log_info("event=tunnel_suspended id=%s server=%s port=%s client=%s grace_s=%" PRIu64 " detail=\"resumed, unknown here\"",
                  t->id, t->server, t->port, t->client, core->cfg->resume_grace);
    return t;
}

/* SUSPENDED with both resumes held (side's just came): open it again. */
static void
maybe_rejoin(ptth_tunnel *t, int side)
{
    ptth_core *core = t->core;
    if (t->state != PTTH_TUNNEL_SUSPENDED || t->resume[side] == NULL)
        return;
    /* the other side's request may have lost its connection unnoticed yet */
    ptth_resume_hold *peer = t->resume[1 - side];
    if (peer != NULL && peer->held.rq != NULL && core->io->peer_closed(core->io_ctx, peer->held.rq)) {
        t->resume[1 - side] = NULL;
        ptth_core_answer(core, &peer->held, 404, 0, "connection closed\n");
        peer = NULL;
    }
    if (peer != NULL)
        rejoin(t);
}

void
ptth_tunnel_resume(ptth_core *core, ptth_rq *rq, const char *server, size_t server_len, const char *id, const ptth_resume_in *in)
{
    ptth_tunnel *t = ptth_tunnel_find(core, id, PTTH_ID_LEN);
    const ptth_ended *e = t == NULL ? find_ended(core, id) : NULL;
    if (e != NULL) {
        /* the terminators tell a restarted peer from other ends by this text */
        refuse(core, rq, 404, 0, e->reason == PTTH_END_PEER_RESTARTED ? "peer restarted\n" : "tunnel ended\n", PTTH_REFUSED_ENDED);
        return;
    }
    if (t != NULL) {
        bool same = strlen(t->server) == server_len && memcmp(t->server, server, server_len) == 0 &&
                    strlen(t->port) == in->port_len && memcmp(t->port, in->port, in->port_len) == 0 && t->proto == in->proto &&
                    strcmp(t->client, in->client) == 0;
        bool open = t->state == PTTH_TUNNEL_JOINED || t->state == PTTH_TUNNEL_SUSPENDED ||
                    (t->raw && (t->state == PTTH_TUNNEL_OPEN || t->state == PTTH_TUNNEL_BROKEN));
        if (!same || !t->resumable || !open) {
            refuse(core, rq, 409, 0,
                   !same ? "tunnel has other fields than the resume\n"
                         : "tunnel is not resumable: not open yet, or not asked for\n",
                   PTTH_REFUSED_NOT_RESUMABLE);
            return;
        }
        if (t->raw == in->upgrade) {
            /* a tunnel resumes on the path it had */
            refuse(core, rq, 409, 0,
                   t->raw ? "tunnel is on the chunked path: resume it without Upgrade\n"
                          : "tunnel is on the upgraded path: resume it with Upgrade\n",
                   PTTH_REFUSED_NOT_RESUMABLE);
            return;
        }
    }
    if (in->bad_request != NULL) {
        refuse(core, rq, 400, 0, in->bad_request, PTTH_REFUSED_BAD_REQUEST);
        return;
    }
    if (t == NULL && (t = recreate(core, rq, server, server_len, id, in)) == NULL)
        return;
    if (t->state == PTTH_TUNNEL_JOINED || t->state == PTTH_TUNNEL_OPEN)
        suspend(t, in->server_side ? "server resumed: its leg broke" : "client resumed: its leg broke");
    /* BROKEN: held here; on_stream_lost suspends it at the end of the round */
    if (!in->server_side && strcmp(t->addr, "-") == 0)
        snprintf(t->addr, sizeof(t->addr), "%s", in->addr);

    int side = in->server_side ? 1 : 0;
    ptth_resume_hold *old = t->resume[side];
    if (old != NULL) {
        t->resume[side] = NULL;
        refuse_held(core, old, 409, 0, "superseded\n", PTTH_REFUSED_SUPERSEDED);
    }
    ptth_resume_hold *r = (ptth_resume_hold *)ptth_core_hold(core, rq, sizeof(ptth_resume_hold), on_resume_gone, t);
    r->t = t;
    r->side = side;
    r->received = in->received;
    r->sent = in->sent;
    t->resume[side] = r;
    ptth_instances_record(t, in->server_side, in->instance);

    maybe_rejoin(t, side);
}

/* ---- what tunnel.c tells ------------------------------------------------------------- */

/* ptth_tunnel_resume_ops.on_end */
static void
on_end(ptth_tunnel *t, ptth_end_reason reason, const char *rst_text)
{
    drop_resumes(t, reason, rst_text);
    ptth_instances_unlink(t);
    /* Both legs ended cleanly: the terminators' own end (both FINs, and
     * nobody resumes it), or a proxy in between that closed both of its
     * connections (a squid restart, an nginx reload): the relay cannot tell
     * (it does not read frames), the terminators can, and they resume. So
     * that end is not remembered: their resumes find the tunnel unknown
     * and, with a valid token, recreate it as after a relay restart. */
    if (t->resumable && reason != PTTH_END_FIN)
        ptth_tunnel_remember_end(t, reason);
}

/* ptth_tunnel_resume_ops.on_stream_lost: BROKEN -> SUSPENDED; resumes
 * that came while it was BROKEN may be both there already. */
static void
on_stream_lost(ptth_tunnel *t, const char *detail)
{
    suspend(t, detail);
    maybe_rejoin(t, 0);
}

static const ptth_tunnel_resume_ops resume_ops = {
    .on_granted = on_granted,
    .on_leg_lost = suspend,
    .on_stream_lost = on_stream_lost,
    .on_end = on_end,
};

void
ptth_tunnel_resume_enable(ptth_core *core, const ptth_resume_secret *secret)
{
    core->resume_secret = secret;
    core->resume_ops = &resume_ops;
}
