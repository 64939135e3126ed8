/*
 * tunnel.c: see tunnel.h. The lower half of the tunnel core
 * (tunnel_internal.h): it reaches resumption (tunnel_resume.c) only
 * through core->resume_ops.
 */
#include "tunnel.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "log.h"
#include "sysutil.h"
#include "tunnel_internal.h"

/* Most bytes written into a stream in one go (several chunks may be batched). */
#define BATCH_BYTES (1024 * 1024)

struct ptth_chunk {
    ptth_held held; /* first: the held request's memory is the chunk's */
    ptth_tunnel *tunnel;
    ptth_dir *dir;
    uint64_t seq;
    bool fin;
    size_t len;
};

/* ---- states ----------------------------------------------------------------- */

static const char *const state_names[PTTH_TUNNEL__STATES] = {"await_listen", "await_accept", "open",  "joined",
                                                             "broken",       "suspended",    "ending"};

const char *
ptth_tunnel_state_name(ptth_tunnel_state s)
{
    return (unsigned)s < PTTH_TUNNEL__STATES ? state_names[s] : "invalid";
}

bool
ptth_tunnel_transition_ok(ptth_tunnel_state from, ptth_tunnel_state to)
{
    switch (to) {
    case PTTH_TUNNEL_AWAIT_ACCEPT:
        return from == PTTH_TUNNEL_AWAIT_LISTEN;
    case PTTH_TUNNEL_OPEN:
        return from == PTTH_TUNNEL_AWAIT_ACCEPT || from == PTTH_TUNNEL_SUSPENDED;
    case PTTH_TUNNEL_JOINED:
        return from == PTTH_TUNNEL_AWAIT_ACCEPT || from == PTTH_TUNNEL_SUSPENDED;
    case PTTH_TUNNEL_BROKEN:
        return from == PTTH_TUNNEL_OPEN;
    case PTTH_TUNNEL_SUSPENDED:
        /* from AWAIT_LISTEN only as a tunnel made from a resume token, fresh
         * from the constructor (no connect: the invariants tell) */
        return from == PTTH_TUNNEL_JOINED || from == PTTH_TUNNEL_AWAIT_LISTEN || from == PTTH_TUNNEL_OPEN ||
               from == PTTH_TUNNEL_BROKEN;
    case PTTH_TUNNEL_ENDING:
        return (unsigned)from < PTTH_TUNNEL_ENDING;
    default: /* AWAIT_LISTEN is where a tunnel starts, never a step */
        return false;
    }
}

unsigned
ptth_tunnel_phase(const ptth_tunnel *t)
{
    if (t->state == PTTH_TUNNEL_SUSPENDED)
        return 3;
    return t->state <= PTTH_TUNNEL_AWAIT_ACCEPT ? (unsigned)t->state : 2;
}

const char *
ptth_tunnel_phase_name(unsigned phase)
{
    static const char *const phase_names[PTTH_TUNNEL_PHASES] = {"await_listen", "await_accept", "open", "suspended"};
    return phase < PTTH_TUNNEL_PHASES ? phase_names[phase] : "open";
}

/* The one place a tunnel's state changes: the step must be one of the
 * diagram's, and what the new state promises must hold. These checks are
 * a few compares and stay on in release builds (meson b_ndebug=false). */
void
ptth_tunnel_set_state(ptth_tunnel *t, ptth_tunnel_state next)
{
    assert(ptth_tunnel_transition_ok(t->state, next));
    switch (next) {
    case PTTH_TUNNEL_AWAIT_ACCEPT:
        assert(t->connect != NULL && t->connect_timer.armed && !ptth_list_linked(&t->wait_link));
        break;
    case PTTH_TUNNEL_OPEN:
        assert(t->connect == NULL && !t->connect_timer.armed && t->joint == NULL);
        assert(t->up.out != NULL && t->down.out != NULL);
        assert(!t->grace_timer.armed && t->resume[0] == NULL && t->resume[1] == NULL);
        assert(t->state != PTTH_TUNNEL_SUSPENDED || t->raw); /* a raw tunnel resumes on the chunked path */
        break;
    case PTTH_TUNNEL_JOINED:
        assert(t->connect == NULL && !t->connect_timer.armed && t->joint != NULL);
        assert(t->up.out == NULL && t->down.out == NULL && !t->raw);
        assert(!t->grace_timer.armed && t->resume[0] == NULL && t->resume[1] == NULL);
        break;
    case PTTH_TUNNEL_SUSPENDED:
        assert(t->resumable && t->joint == NULL && t->connect == NULL && t->grace_timer.armed && !t->idle_timer.armed);
        assert(t->up.out == NULL && t->down.out == NULL && !t->end_timer.armed);
        assert(t->up.nacking == 0 && t->down.nacking == 0 && ptth_seqwin_peek(&t->up.win) == NULL);
        break;
    case PTTH_TUNNEL_BROKEN:
        assert(t->broken_text != NULL && t->end_timer.armed);
        break;
    default:
        break;
    }
    if (t->state == PTTH_TUNNEL_SUSPENDED)
        t->core->nsuspended--;
    if (next == PTTH_TUNNEL_SUSPENDED)
        t->core->nsuspended++;
    t->state = next;
}

/* OPEN, or BROKEN until its end runs: the streams that are left carry bytes. */
static bool
carries_chunks(const ptth_tunnel *t)
{
    return t->state == PTTH_TUNNEL_OPEN || t->state == PTTH_TUNNEL_BROKEN;
}

/* ---- timers ------------------------------------------------------------------- */

static void
on_connect_timeout(ptth_timer *timer)
{
    ptth_tunnel *t = PTTH_CONTAINER_OF(timer, ptth_tunnel, connect_timer);
    ptth_tunnel_end(t, PTTH_END_TIMEOUT, "server did not accept in time");
}

static void
on_idle_timeout(ptth_timer *timer)
{
    ptth_tunnel *t = PTTH_CONTAINER_OF(timer, ptth_tunnel, idle_timer);
    ptth_tunnel_end(t, PTTH_END_IDLE, "idle");
}

static void
on_end_timer(ptth_timer *timer)
{
    ptth_tunnel *t = PTTH_CONTAINER_OF(timer, ptth_tunnel, end_timer);
    if (t->raw && t->state == PTTH_TUNNEL_BROKEN) {
        t->core->resume_ops->on_stream_lost(t, t->broken_text); /* raw: only the resume half makes it so */
        return;
    }
    ptth_tunnel_end(t, PTTH_END_RST, t->broken_text);
}

/* SUSPENDED past --resume-grace (tunnel_resume.c arms it). */
static void
on_grace_timeout(ptth_timer *timer)
{
    ptth_tunnel *t = PTTH_CONTAINER_OF(timer, ptth_tunnel, grace_timer);
    ptth_tunnel_end(t, PTTH_END_RESUME_TIMEOUT, "resume timed out");
}

void
ptth_tunnel_touch_idle(ptth_tunnel *t)
{
    if (t->core->cfg->idle_timeout == 0 || (!carries_chunks(t) && t->state != PTTH_TUNNEL_JOINED))
        return;
    ptth_timer_arm(t->core, &t->idle_timer, PTTH_TIMER_IDLE);
}

/* ---- from connect to accept ------------------------------------------------------ */

ptth_tunnel *
ptth_tunnel_find(ptth_core *core, const char *id, size_t len)
{
    return ptth_table_get(&core->tunnels, id, len);
}

static void
on_connect_gone(ptth_held *h)
{
    ptth_tunnel *t = h->owner;
    t->connect = NULL;
    ptth_tunnel_end(t, PTTH_END_RST, "client went away before the tunnel opened");
}

const char *
ptth_tunnel_proto_name(ptth_tunnel_proto p)
{
    return p == PTTH_PROTO_UDP ? "udp" : "tcp";
}

ptth_tunnel *
ptth_tunnel_alloc(ptth_core *core, ptth_srv *srv, const char *id, const char *port, size_t port_len, const char *client,
                  const char *addr, ptth_tunnel_proto proto)
{
    ptth_tunnel *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->core = core;
    t->srv = srv;
    t->state = PTTH_TUNNEL_AWAIT_LISTEN;
    t->proto = proto;
    snprintf(t->server, sizeof(t->server), "%s", srv->name);
    snprintf(t->port, sizeof(t->port), "%.*s", (int)port_len, port);
    snprintf(t->client, sizeof(t->client), "%s", client);
    snprintf(t->addr, sizeof(t->addr), "%s", addr);
    ptth_seqwin_init(&t->up.win);
    ptth_seqwin_init(&t->down.win);
    ptth_timer_init(&t->connect_timer, on_connect_timeout);
    ptth_timer_init(&t->idle_timer, on_idle_timeout);
    ptth_timer_init(&t->end_timer, on_end_timer);
    ptth_timer_init(&t->grace_timer, on_grace_timeout);
    t->started_ms = ptth_now_ms();

    if (id != NULL) {
        snprintf(t->id, sizeof(t->id), "%s", id);
        if (ptth_table_put(&core->tunnels, t->id, PTTH_ID_LEN, t) != 0) {
            free(t);
            return NULL;
        }
    } else {
        for (int attempt = 0;; attempt++) {
            if (attempt == 4 || ptth_random_id(t->id) != 0) {
                free(t);
                return NULL;
            }
            if (ptth_table_put(&core->tunnels, t->id, PTTH_ID_LEN, t) == 0)
                break;
        }
    }
    srv->ntunnels++;
    core->ntunnels++;
    core->stats.tunnels_opened++;
    return t;
}

static ptth_tunnel *
tunnel_new(ptth_core *core, ptth_srv *srv, ptth_rq *rq, const char *port, size_t port_len, const char *client, const char *addr,
           unsigned asks, ptth_tunnel_proto proto)
{
    ptth_tunnel *t = ptth_tunnel_alloc(core, srv, NULL, port, port_len, client, addr, proto);
    if (t == NULL)
        return NULL;
    t->connect_wants_upgrade = (asks & PTTH_ASK_UPGRADE) != 0;
    t->connect_wants_resume = (asks & PTTH_ASK_RESUME) != 0;
    t->connect = ptth_core_hold(core, rq, sizeof(ptth_held), on_connect_gone, t);
    ptth_timer_arm(core, &t->connect_timer, PTTH_TIMER_CONNECT);
    ptth_log_debug("event=tunnel_new id=%s server=%s port=%s client=%s addr=%s", t->id, t->server, t->port, t->client, t->addr);
    return t;
}

/* Gives the tunnel to a listen: the listen is answered 200 with PTTH-Conn,
 * PTTH-Port, PTTH-Client-Addr and PTTH-Client; the tunnel waits for the
 * accept. */
static void
match(ptth_tunnel *t, ptth_rq *listen)
{
    ptth_core *core = t->core;
    ptth_tunnel_set_state(t, PTTH_TUNNEL_AWAIT_ACCEPT);
    ptth_core_header(core, listen, "ptth-conn", t->id);
    ptth_core_header(core, listen, "ptth-port", t->port);
    ptth_core_header(core, listen, "ptth-client-addr", t->addr);
    ptth_core_header(core, listen, "ptth-client", t->client);
    ptth_core_header(core, listen, "ptth-proto", ptth_tunnel_proto_name(t->proto));
    ptth_core_max_chunk(core, listen);
    ptth_core_reply(core, listen, 200, 0, NULL);
}

void
ptth_tunnel_listen(ptth_core *core, ptth_rq *rq, const char *server, size_t server_len, const char *ports, size_t ports_len)
{
    ptth_srv *srv = ptth_srv_get_or_create(core, server, server_len);
    if (srv == NULL) {
        ptth_core_reply(core, rq, 500, 0, "out of memory\n");
        return;
    }
    if (ports != NULL) {
        if (ptth_srv_set_ports(srv, ports, ports_len) != 0) {
            ptth_core_reply(core, rq, 400, 0, "bad PTTH-Ports: expected a comma-separated list of port names\n");
            return;
        }
    } else if (srv->ports == NULL) {
        ptth_core_reply(core, rq, 400, 0, "missing PTTH-Ports: the port names this server offers\n");
        return;
    }
    if (srv->nlistens >= core->cfg->max_listens_per_server && ptth_list_empty(&srv->waiting)) {
        ptth_core_reply(core, rq, 429, PTTH_RETRY_LIMIT,
                        "too many listens outstanding for this server (--max-listens-per-server)\n");
        return;
    }
    ptth_srv_mark_online(srv);
    ptth_list *link;
    while ((link = ptth_srv_next_waiting(srv)) != NULL) {
        ptth_tunnel *t = PTTH_CONTAINER_OF(link, ptth_tunnel, wait_link);
        assert(t->state == PTTH_TUNNEL_AWAIT_LISTEN && t->connect != NULL);
        if (core->io->peer_closed(core->io_ctx, t->connect->rq)) {
            ptth_tunnel_end(t, PTTH_END_RST, "client went away before the tunnel opened");
            continue;
        }
        ptth_srv_listen_used(srv);
        match(t, rq);
        return;
    }
    ptth_srv_hold_listen(srv, rq);
}

ptth_tunnel *
ptth_tunnel_connect(ptth_core *core, ptth_rq *rq, const char *server, size_t server_len, const char *port, size_t port_len,
                    const char *client, const char *addr, unsigned asks, ptth_tunnel_proto proto)
{
    char msg[256];
    ptth_srv *srv = ptth_srv_get(core, server, server_len);
    if (srv == NULL || !srv->online) {
        snprintf(msg, sizeof(msg), "server '%.*s' is offline\n", (int)server_len, server);
        ptth_core_reply(core, rq, 503, PTTH_RETRY_OFFLINE, msg);
        return NULL;
    }
    if (!ptth_srv_offers(srv, port, port_len)) {
        snprintf(msg, sizeof(msg), "server '%s' does not offer port '%.*s'\n", srv->name, (int)port_len, port);
        ptth_core_reply(core, rq, 404, 0, msg);
        return NULL;
    }
    if (core->ntunnels >= core->cfg->max_connections) {
        ptth_core_reply(core, rq, 429, PTTH_RETRY_LIMIT, "too many tunnels open at the relay (--max-connections)\n");
        return NULL;
    }
    if (srv->ntunnels >= core->cfg->max_connections_per_server) {
        ptth_core_reply(core, rq, 429, PTTH_RETRY_LIMIT, "too many tunnels open to this server (--max-connections-per-server)\n");
        return NULL;
    }
    ptth_tunnel *t = tunnel_new(core, srv, rq, port, port_len, client, addr, asks, proto);
    if (t == NULL) {
        ptth_core_reply(core, rq, 500, 0, "cannot create a tunnel\n");
        return NULL;
    }
    ptth_listen *l = ptth_srv_take_listen(srv);
    if (l != NULL)
        match(t, ptth_core_release(core, &l->held));
    else
        ptth_srv_wait(srv, &t->wait_link);
    return t;
}

/* The upgraded path: heartbeat and idle figures for the terminators, which
 * send the PINGs themselves on it (the relay does not write into the joined
 * bytes). */
void
ptth_tunnel_add_upgrade_headers(ptth_tunnel *t, ptth_rq *rq)
{
    char v[24];
    ptth_core_header(t->core, rq, "ptth-conn", t->id);
    snprintf(v, sizeof(v), "%" PRIu64, t->core->cfg->heartbeat);
    ptth_core_header(t->core, rq, "ptth-heartbeat", v);
    if (t->core->cfg->idle_timeout != 0) {
        snprintf(v, sizeof(v), "%" PRIu64, t->core->cfg->idle_timeout);
        ptth_core_header(t->core, rq, "ptth-idle-timeout", v);
    }
}

static void
open_joined(ptth_tunnel *t, ptth_rq *accept, bool accept_wants_resume)
{
    ptth_core *core = t->core;
    ptth_join *j = core->io->join_new(core->io_ctx, t);
    if (j == NULL) {
        ptth_core_reply(core, accept, 500, 0, "relay out of memory\n");
        ptth_tunnel_end(t, PTTH_END_RST, "relay out of memory");
        return;
    }
    ptth_rq *connect = ptth_core_release(core, t->connect);
    t->connect = NULL;
    ptth_timer_disarm(core, &t->connect_timer);
    t->joint = j;
    t->upgraded = true;
    ptth_tunnel_set_state(t, PTTH_TUNNEL_JOINED);
    ptth_tunnel_add_upgrade_headers(t, connect);
    ptth_tunnel_add_upgrade_headers(t, accept);
    /* resumable only when both can resume: a side without the resume
     * buffer would lose bytes at a resume (docs/protocol.md) */
    if (t->connect_wants_resume && accept_wants_resume && core->cfg->resume_grace > 0 && core->resume_ops != NULL)
        t->resumable = core->resume_ops->on_granted(t, connect, accept);
    core->io->join_start(core->io_ctx, j, connect, accept);
    ptth_tunnel_touch_idle(t);
    ptth_log_debug("event=tunnel_open id=%s server=%s port=%s client=%s path=upgrade", t->id, t->server, t->port, t->client);
}

void
ptth_tunnel_on_accept(ptth_tunnel *t, ptth_rq *rq, unsigned asks)
{
    bool wants_upgrade = (asks & PTTH_ASK_UPGRADE) != 0;
    ptth_core *core = t->core;
    if (t->state != PTTH_TUNNEL_AWAIT_ACCEPT) {
        ptth_core_reply(core, rq, 409, 0,
                        t->state == PTTH_TUNNEL_AWAIT_LISTEN ? "tunnel not offered to a listen yet\n"
                                                             : "tunnel already accepted\n");
        return;
    }
    if (core->io->peer_closed(core->io_ctx, t->connect->rq)) {
        ptth_core_reply(core, rq, 404, 0, "tunnel closed: the client went away\n");
        ptth_tunnel_end(t, PTTH_END_RST, "client went away before the tunnel opened");
        return;
    }
    bool upgrade_on = ptth_relay_upgrade_on(core->cfg);
    if (upgrade_on && t->connect_wants_upgrade && wants_upgrade) {
        open_joined(t, rq, (asks & PTTH_ASK_RESUME) != 0);
        return;
    }
    ptth_rq *connect = ptth_core_release(core, t->connect);
    t->connect = NULL;
    ptth_timer_disarm(core, &t->connect_timer);

    ptth_core_header(core, connect, "ptth-conn", t->id);
    ptth_core_max_chunk(core, connect);
    ptth_core_max_chunk(core, rq);
    /* a side that asked for the upgraded path learns why it did not get it */
    const char *why = upgrade_on ? "peer" : "off";
    if (t->connect_wants_upgrade)
        ptth_core_header(core, connect, "ptth-upgrade", why);
    if (wants_upgrade)
        ptth_core_header(core, rq, "ptth-upgrade", why);
    /* resumable on the chunked path (raw): the same tokens, on the 200s */
    if (t->connect_wants_resume && (asks & PTTH_ASK_RESUME) != 0 && core->cfg->resume_grace > 0 && core->resume_ops != NULL)
        t->resumable = t->raw = core->resume_ops->on_granted(t, connect, rq);
    t->down.out = core->io->out_open(core->io_ctx, connect, t);
    t->up.out = core->io->out_open(core->io_ctx, rq, t);
    ptth_tunnel_set_state(t, PTTH_TUNNEL_OPEN);
    ptth_tunnel_touch_idle(t);
    ptth_log_debug("event=tunnel_open id=%s server=%s port=%s client=%s", t->id, t->server, t->port, t->client);
}

void
ptth_tunnel_on_reject(ptth_tunnel *t, ptth_rq *rq, const char *reason, size_t reason_len)
{
    if (t->state != PTTH_TUNNEL_AWAIT_ACCEPT) {
        ptth_core_reply(t->core, rq, 409, 0,
                        t->state == PTTH_TUNNEL_AWAIT_LISTEN ? "tunnel not offered to a listen yet\n"
                                                             : "tunnel already accepted\n");
        return;
    }
    char text[PTTH_FRAME_REASON_MAX + 1];
    snprintf(text, sizeof(text), "%.*s", (int)(reason_len < PTTH_FRAME_REASON_MAX ? reason_len : PTTH_FRAME_REASON_MAX),
             reason != NULL ? reason : "");
    ptth_core_reply(t->core, rq, 204, 0, NULL);
    ptth_tunnel_end(t, PTTH_END_BACKEND, text[0] != '\0' ? text : "server could not reach its backend");
}

/* ---- the upgraded path's events --------------------------------------------------- */

void
ptth_tunnel_on_moved(ptth_tunnel *t, bool from_client, size_t n)
{
    if (from_client) {
        t->up.bytes += n;
        t->core->stats.bytes_up += n;
    } else {
        t->down.bytes += n;
        t->core->stats.bytes_down += n;
    }
    /* a lone 4-byte burst is a PING (or FIN) frame: heartbeats keep proxies
     * open but are not traffic for --idle-timeout */
    if (n != PTTH_FRAME_HEADER_LEN)
        ptth_tunnel_touch_idle(t);
}

void
ptth_tunnel_on_joint_end(ptth_tunnel *t, bool clean, bool saw_eof, const char *detail)
{
    /* A clean end is the terminators' own (both FINs): never resumed. Nor
     * is a reset that follows a clean end of stream of the other leg: a
     * terminator that ends a tunnel (done, or aborting it after an RST
     * frame) closes its leg cleanly, and so does the kernel of one that
     * died; only a terminator that leaves a leg to resume resets it first
     * (docs/protocol.md "Losing a connection"). */
    if (!clean && !saw_eof && t->resumable && t->state == PTTH_TUNNEL_JOINED) {
        t->core->resume_ops->on_leg_lost(t, detail); /* resumable: only the resume half makes it so */
        return;
    }
    if (clean)
        ptth_tunnel_end(t, PTTH_END_FIN, NULL);
    else
        ptth_tunnel_end(t, PTTH_END_RST, detail);
}

/* ---- chunks ---------------------------------------------------------------------- */

/* A chunk's 204 names the tunnel and the sequence number it answers
 * (PTTH-Conn, PTTH-Seq), so that a terminator can tell it from an answer
 * meant for another request (docs/protocol.md). */
static void
add_chunk_ids(ptth_tunnel *t, ptth_rq *rq, uint64_t seq)
{
    char v[24];
    snprintf(v, sizeof(v), "%" PRIu64, seq);
    ptth_core_header(t->core, rq, "ptth-conn", t->id);
    ptth_core_header(t->core, rq, "ptth-seq", v);
}

static void
chunk_ack(ptth_chunk *c)
{
    if (c->held.rq != NULL)
        add_chunk_ids(c->tunnel, c->held.rq, c->seq);
    ptth_core_answer(c->tunnel->core, &c->held, 204, 0, NULL);
}

static void
on_chunk_gone(ptth_held *h)
{
    ptth_chunk *c = (ptth_chunk *)h;
    ptth_dir *dir = c->dir;
    if (ptth_seqwin_remove(&dir->win, c))
        return;
    for (size_t i = 0; i < dir->nacking; i++)
        if (dir->acking[i] == c)
            dir->acking[i] = NULL;
}

static void written(ptth_tunnel *t, ptth_dir *dir);

/* Writes the chunks whose turn came into the direction's stream, as long as
 * the stream is idle. They are answered when the stream becomes writable. */
static void
pump(ptth_tunnel *t, ptth_dir *dir)
{
    ptth_core *core = t->core;
    if (!carries_chunks(t) || dir->out == NULL || dir->nacking != 0 || !core->io->out_idle(core->io_ctx, dir->out))
        return;
    size_t batched = 0;
    ptth_chunk *c = NULL;
    int err = 0;
    while (batched < BATCH_BYTES && dir->nacking < PTTH_SEQWIN_SIZE && (c = ptth_seqwin_peek(&dir->win)) != NULL) {
        ptth_seqwin_take(&dir->win);
        if (c->len != 0 && (err = core->io->out_write_chunk(core->io_ctx, dir->out, c->held.rq, c->len, t->raw)) != 0)
            break;
        /* raw: the end-to-end FIN was a frame in an earlier chunk; this
         * PTTH-Fin chunk only says the terminator is done */
        if (c->fin && !t->raw && (err = core->io->out_write(core->io_ctx, dir->out, PTTH_FRAME_FIN, NULL, 0)) != 0)
            break;
        dir->bytes += c->len;
        if (dir == &t->up)
            core->stats.bytes_up += c->len;
        else
            core->stats.bytes_down += c->len;
        batched += c->len;
        dir->acking[dir->nacking++] = c;
        if (c->fin) {
            assert(dir->fin == PTTH_FIN_HELD && dir->fin_seq == c->seq);
            dir->fin = PTTH_FIN_WRITTEN;
            break;
        }
    }
    if (err != 0 && c != NULL) {
        ptth_core_answer(core, &c->held, 500, 0, "relay could not buffer the chunk\n");
        ptth_tunnel_end(t, PTTH_END_RST, "relay out of memory");
        return;
    }
    if (dir->nacking != 0) {
        if (batched != 0)
            ptth_tunnel_touch_idle(t);
        if (core->io->out_idle(core->io_ctx, dir->out)) {
            /* nothing was written (a raw PTTH-Fin chunk alone): no proceed
             * will come, the stream took it all now */
            written(t, dir);
            return;
        }
        core->io->out_flush(core->io_ctx, dir->out);
    }
}

static ptth_dir *
dir_of(ptth_tunnel *t, ptth_out *o)
{
    if (o == NULL)
        return NULL;
    if (t->up.out == o)
        return &t->up;
    if (t->down.out == o)
        return &t->down;
    return NULL;
}

/* Everything written into dir's stream was taken: its chunks are
 * answered, and the next ones go. */
static void
written(ptth_tunnel *t, ptth_dir *dir)
{
    size_t n = dir->nacking;
    dir->nacking = 0;
    for (size_t i = 0; i < n; i++) {
        ptth_chunk *c = dir->acking[i];
        dir->acking[i] = NULL;
        if (c != NULL)
            chunk_ack(c);
    }
    if (dir->fin == PTTH_FIN_WRITTEN)
        dir->fin = PTTH_FIN_DONE;
    if (t->up.fin == PTTH_FIN_DONE && t->down.fin == PTTH_FIN_DONE) {
        ptth_tunnel_end(t, PTTH_END_FIN, NULL);
        return;
    }
    pump(t, dir);
}

void
ptth_tunnel_on_writable(ptth_tunnel *t, ptth_out *o)
{
    ptth_dir *dir = dir_of(t, o);
    if (dir == NULL || t->state == PTTH_TUNNEL_ENDING)
        return;
    written(t, dir);
}

/* A framed stream broke. h2o tells while it closes that stream, often while
 * it closes the whole connection with it; other requests of the same
 * connection (the same terminator's chunks, held here) are then still to be
 * closed, and answering them now would make h2o write to a connection it is
 * tearing down (h2o 2.2.5 asserts in close_connection_now). So the tunnel
 * ends at the end of this loop round (BROKEN, end_timer), when h2o has
 * disposed of those requests and only the live ones get their answer. */
void
ptth_tunnel_on_broken(ptth_tunnel *t, ptth_out *o)
{
    ptth_dir *dir = dir_of(t, o);
    if (dir == NULL)
        return;
    dir->out = NULL;
    if (t->state != PTTH_TUNNEL_OPEN)
        return; /* BROKEN already, or ENDING */
    t->broken_text = dir == &t->up ? "server's stream broke" : "client's stream broke";
    ptth_timer_arm(t->core, &t->end_timer, PTTH_TIMER_NOW);
    ptth_tunnel_set_state(t, PTTH_TUNNEL_BROKEN);
}

/* A chunk's headers and size against the direction's rules: 0 when it may
 * go into the window, else the status it was answered with. */
static int
check_chunk(ptth_tunnel *t, ptth_dir *dir, ptth_rq *rq, const ptth_chunk_in *in, uint64_t *seq, bool *fin)
{
    ptth_core *core = t->core;
    char msg[160];
    *fin = false;
    if (t->state == PTTH_TUNNEL_SUSPENDED && t->raw) {
        ptth_core_reply(core, rq, 409, 0, "tunnel is suspended: resume it first\n");
        return 409;
    }
    if (t->state == PTTH_TUNNEL_JOINED || t->state == PTTH_TUNNEL_SUSPENDED) {
        ptth_core_reply(core, rq, 409, 0, "tunnel is on the upgraded path: no chunks\n");
        return 409;
    }
    if (!carries_chunks(t)) {
        ptth_core_reply(core, rq, 409, 0, "tunnel not accepted yet\n");
        return 409;
    }
    if (in->seq == NULL || ptth_seqwin_parse_seq(in->seq, in->seq_len, seq) != 0) {
        ptth_core_reply(core, rq, 400, 0, "missing or bad PTTH-Seq (a decimal sequence number)\n");
        return 400;
    }
    uint64_t epoch = 0;
    if (t->raw && in->epoch != NULL && ptth_seqwin_parse_seq(in->epoch, in->epoch_len, &epoch) != 0) {
        ptth_core_reply(core, rq, 400, 0, "bad PTTH-Epoch (a decimal count)\n");
        return 400;
    }
    if (t->raw && epoch != t->epoch) {
        /* a chunk from before a resume, still on its way: not one of this
         * epoch's, whose numbers start at 0 again */
        snprintf(msg, sizeof(msg), "chunk of epoch %" PRIu64 ", the tunnel is at epoch %" PRIu64 "\n", epoch, t->epoch);
        ptth_core_reply(core, rq, 409, 0, msg);
        return 409;
    }
    if (in->fin != NULL) {
        if (in->fin_len != 1 || (in->fin[0] != '1' && in->fin[0] != '0')) {
            ptth_core_reply(core, rq, 400, 0, "bad PTTH-Fin (1 or 0)\n");
            return 400;
        }
        *fin = in->fin[0] == '1';
    }
    if (in->len > core->cfg->max_chunk) {
        snprintf(msg, sizeof(msg), "chunk of %zu bytes is above --max-chunk %" PRIu64 "\n", in->len, core->cfg->max_chunk);
        ptth_core_reply(core, rq, 413, 0, msg);
        return 413;
    }
    if (*seq < ptth_seqwin_next(&dir->win)) {
        add_chunk_ids(t, rq, *seq);
        ptth_core_reply(core, rq, 204, 0, NULL); /* delivered before: a retry, no effect */
        return 204;
    }
    if (in->len == 0 && !*fin) {
        ptth_core_reply(core, rq, 400, 0, "empty chunk without PTTH-Fin: 1\n");
        return 400;
    }
    if (dir->fin != PTTH_FIN_NONE && (*seq > dir->fin_seq || (*fin && *seq != dir->fin_seq))) {
        snprintf(msg, sizeof(msg), "chunk %" PRIu64 " conflicts with FIN at %" PRIu64 "\n", *seq, dir->fin_seq);
        ptth_core_reply(core, rq, 409, 0, msg);
        return 409;
    }
    if (*fin && ptth_seqwin_holds_after(&dir->win, *seq)) {
        snprintf(msg, sizeof(msg), "FIN at %" PRIu64 " but later chunks are held\n", *seq);
        ptth_core_reply(core, rq, 409, 0, msg);
        return 409;
    }
    return 0;
}

void
ptth_tunnel_on_chunk(ptth_tunnel *t, ptth_rq *rq, bool from_client, const ptth_chunk_in *in)
{
    ptth_core *core = t->core;
    ptth_dir *dir = from_client ? &t->up : &t->down;
    uint64_t seq;
    bool fin;
    if (check_chunk(t, dir, rq, in, &seq, &fin) != 0)
        return;

    ptth_chunk *c = (ptth_chunk *)ptth_core_hold(core, rq, sizeof(ptth_chunk), on_chunk_gone, t);
    c->tunnel = t;
    c->dir = dir;
    c->seq = seq;
    c->fin = fin;
    c->len = in->len;

    void *replaced;
    char msg[160];
    switch (ptth_seqwin_put(&dir->win, seq, c, &replaced)) {
    case PTTH_SEQWIN_STORED:
        break;
    case PTTH_SEQWIN_DELIVERED:
        chunk_ack(c);
        return;
    case PTTH_SEQWIN_TOO_FAR:
        snprintf(msg, sizeof(msg), "PTTH-Seq %" PRIu64 " is more than %d ahead of the last delivered chunk (next is %" PRIu64 ")\n",
                 seq, PTTH_SEQWIN_SIZE, ptth_seqwin_next(&dir->win));
        ptth_core_answer(core, &c->held, 409, 0, msg);
        return;
    }
    if (replaced != NULL)
        ptth_core_answer(core, &((ptth_chunk *)replaced)->held, 409, 0, "superseded by a retry of the same PTTH-Seq\n");
    if (fin) {
        dir->fin = PTTH_FIN_HELD;
        dir->fin_seq = seq;
    }
    pump(t, dir);
}

/* ---- the end ------------------------------------------------------------------------ */

/* Answers every chunk of dir that is held or waits for its 204. */
static void
answer_chunks(ptth_core *core, ptth_dir *dir, int status, const char *body)
{
    for (size_t i = 0; i < dir->nacking; i++) {
        ptth_chunk *c = dir->acking[i];
        dir->acking[i] = NULL;
        if (c != NULL)
            ptth_core_answer(core, &c->held, status, 0, body);
    }
    dir->nacking = 0;
    ptth_chunk *c;
    while ((c = ptth_seqwin_pop_any(&dir->win)) != NULL)
        ptth_core_answer(core, &c->held, status, 0, body);
}

static void
end_dir(ptth_tunnel *t, ptth_dir *dir, ptth_end_reason reason, const char *rst_text)
{
    ptth_core *core = t->core;
    if (dir->out != NULL) {
        ptth_out *o = dir->out;
        dir->out = NULL;
        if (reason != PTTH_END_FIN) {
            const char *text = rst_text != NULL ? rst_text : ptth_end_reason_name(reason);
            size_t n = strlen(text);
            core->io->out_write(core->io_ctx, o, PTTH_FRAME_RST, text, n < PTTH_FRAME_REASON_MAX ? n : PTTH_FRAME_REASON_MAX);
        }
        core->io->out_finish(core->io_ctx, o);
    }
    answer_chunks(core, dir, 404, "tunnel closed\n");
}

void
ptth_tunnel_drop_streams(ptth_tunnel *t, int status, const char *body)
{
    ptth_core *core = t->core;
    ptth_dir *dirs[2] = {&t->up, &t->down};
    ptth_timer_disarm(core, &t->end_timer);
    for (int i = 0; i < 2; i++) {
        ptth_dir *dir = dirs[i];
        if (dir->out != NULL) {
            ptth_out *o = dir->out;
            dir->out = NULL;
            core->io->out_abort(core->io_ctx, o);
        }
        answer_chunks(core, dir, status, body);
        ptth_seqwin_init(&dir->win);
        dir->fin = PTTH_FIN_NONE;
        dir->fin_seq = 0;
    }
}

void
ptth_tunnel_end(ptth_tunnel *t, ptth_end_reason reason, const char *rst_text)
{
    if (t->state == PTTH_TUNNEL_ENDING)
        return;
    ptth_tunnel_set_state(t, PTTH_TUNNEL_ENDING);
    ptth_core *core = t->core;
    ptth_timer_disarm(core, &t->connect_timer);
    ptth_timer_disarm(core, &t->idle_timer);
    ptth_timer_disarm(core, &t->end_timer);
    ptth_timer_disarm(core, &t->grace_timer);
    ptth_srv_unwait(&t->wait_link);
    if (core->resume_ops != NULL)
        core->resume_ops->on_end(t, reason, rst_text);

    if (t->connect != NULL) {
        ptth_held *h = t->connect;
        t->connect = NULL;
        char body[PTTH_FRAME_REASON_MAX + 32];
        switch (reason) {
        case PTTH_END_TIMEOUT:
            ptth_core_answer(core, h, 504, 0, "server did not accept the connection in time\n");
            break;
        case PTTH_END_SHUTDOWN:
            ptth_core_answer(core, h, 503, PTTH_RETRY_OFFLINE, "relay shutting down\n");
            break;
        default:
            snprintf(body, sizeof(body), "server could not reach its backend: %s\n", rst_text != NULL ? rst_text : "");
            ptth_core_answer(core, h, 502, 0, body);
            break;
        }
    }
    end_dir(t, &t->up, reason, rst_text);
    end_dir(t, &t->down, reason, rst_text);
    const char *path = t->upgraded ? "upgrade" : "chunks";
    if (t->joint != NULL) {
        /* anything but both ends seen: each terminator must take it for an abort */
        core->io->join_close(core->io_ctx, t->joint, reason != PTTH_END_FIN);
        t->joint = NULL;
    }

    char quoted[PTTH_FRAME_REASON_MAX + 16];
    ptth_log_info("event=tunnel_end id=%s server=%s port=%s client=%s addr=%s bytes_up=%" PRIu64 " bytes_down=%" PRIu64
                  " duration_ms=%lld reason=%s detail=%s path=%s proto=%s",
                  t->id, t->server, t->port, t->client, t->addr, t->up.bytes, t->down.bytes, ptth_now_ms() - t->started_ms,
                  ptth_end_reason_name(reason), ptth_log_quote(quoted, sizeof(quoted), rst_text != NULL ? rst_text : ""), path,
                  ptth_tunnel_proto_name(t->proto));

    core->stats.tunnels_ended[reason]++;
    if (core->on_end != NULL)
        core->on_end(core->on_end_data, t, reason, rst_text);
    ptth_table_remove(&core->tunnels, t->id, PTTH_ID_LEN);
    t->srv->ntunnels--;
    core->ntunnels--;
    free(t);
}

/* ---- shutdown and reload --------------------------------------------------------------- */

void
ptth_tunnel_end_all(ptth_core *core)
{
    size_t n;
    ptth_tunnel **tuns = (ptth_tunnel **)ptth_table_values(&core->tunnels, &n);
    for (size_t i = 0; i < n; i++)
        ptth_tunnel_end(tuns[i], PTTH_END_SHUTDOWN, "shutdown");
    free(tuns);
    ptth_srv **srvs = (ptth_srv **)ptth_table_values(&core->servers, &n);
    for (size_t i = 0; i < n; i++)
        ptth_srv_free(srvs[i]);
    free(srvs);
}

static bool
same_hash(const ptth_principal *a, const ptth_principal *b)
{
    return a != NULL && b != NULL && strcmp(a->hash.hex, b->hash.hex) == 0;
}

void
ptth_tunnel_apply_auth(ptth_core *core, const ptth_auth *old, const ptth_auth *next)
{
    size_t n;
    ptth_tunnel **tuns = (ptth_tunnel **)ptth_table_values(&core->tunnels, &n);
    for (size_t i = 0; i < n; i++) {
        ptth_tunnel *t = tuns[i];
        bool server_ok =
            same_hash(ptth_auth_server(old, t->server, strlen(t->server)), ptth_auth_server(next, t->server, strlen(t->server)));
        bool client_ok =
            same_hash(ptth_auth_client(old, t->client, strlen(t->client)), ptth_auth_client(next, t->client, strlen(t->client)));
        if (!server_ok || !client_ok)
            ptth_tunnel_end(t, PTTH_END_RST, !server_ok ? "server key revoked" : "client key revoked");
    }
    free(tuns);

    ptth_srv **srvs = (ptth_srv **)ptth_table_values(&core->servers, &n);
    for (size_t i = 0; i < n; i++) {
        ptth_srv *s = srvs[i];
        const ptth_principal *ns = ptth_auth_server(next, s->name, strlen(s->name));
        if (same_hash(ptth_auth_server(old, s->name, strlen(s->name)), ns))
            continue;
        ptth_srv_drop_listens(s, 401, "server key revoked\n");
        if (ns == NULL && s->ntunnels == 0) {
            if (s->online)
                ptth_log_info("event=server_offline server=%s", s->name);
            ptth_srv_free(s);
        }
    }
    free(srvs);
}
