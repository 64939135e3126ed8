/*
 * Unit tests of the relay's tunnel core (relay/tunnel.c, registry.c,
 * core.c) without h2o: a recording fake of ptth_core_io stands for the HTTP
 * side. Requests are answered into struct ptth_rq, frames are counted per
 * fake stream, timers are fired by the test. Every transition of the
 * tunnel's state machine, every answer the core gives, the timers, the
 * limits, reload and shutdown, and the SPEC §4 order of events.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "frame.h"
#include "keys.h"
#include "log.h"
#include "principals.h"
#include "tunnel.h"

/* ---- the fake HTTP side --------------------------------------------------------- */

#define MAX_RQ 128
#define MAX_HDR 12

struct ptth_rq {
    int status; /* 0 until answered */
    unsigned retry;
    char body[512];
    char hname[MAX_HDR][32], hvalue[MAX_HDR][128];
    int nhdr;
    bool closed;     /* its peer closed (peer_closed answers true) */
    ptth_held *held; /* the core's record, when held */
    bool streamed;   /* became a framed stream or a joint leg */
};

struct ptth_out {
    ptth_rq *rq;
    ptth_tunnel *t;
    int data, fins, rsts; /* frames written, by type */
    size_t data_bytes;
    char rst[PTTH_FRAME_REASON_MAX + 1];
    bool pending, busy, finished;
    int fail; /* the next write_chunk fails with this */
};

struct ptth_join {
    ptth_tunnel *t;
    ptth_rq *connect, *accept;
    bool started, closed, reset;
};

static struct ptth_rq rqs[MAX_RQ];
static int nrq;
static void *holds[MAX_RQ];
static int nholds;
static struct ptth_out outs[16];
static int nouts;
static struct ptth_join joins[4];
static int njoins;
static bool join_fails;
static ptth_timer *armed[64];
static int narmed;

static ptth_relay_config cfg;
static ptth_core core;
static int ends;
static ptth_end_reason last_reason;
static char last_detail[256];

static ptth_rq *
rq_new(void)
{
    ck_assert_int_lt(nrq, MAX_RQ);
    ptth_rq *r = &rqs[nrq++];
    memset(r, 0, sizeof(*r));
    return r;
}

static const char *
hdr(const ptth_rq *r, const char *name)
{
    for (int i = 0; i < r->nhdr; i++)
        if (strcmp(r->hname[i], name) == 0)
            return r->hvalue[i];
    return NULL;
}

/* The request goes away unanswered (its peer left, its stream was reset). */
static void
rq_gone(ptth_rq *r)
{
    ck_assert_ptr_nonnull(r->held);
    ptth_held *h = r->held;
    r->held = NULL;
    ck_assert_ptr_eq(h->rq, r);
    h->rq = NULL;
    if (h->on_gone != NULL)
        h->on_gone(h);
}

static ptth_held *
fake_hold(void *ctx, ptth_rq *rq, size_t size, ptth_held_cb on_gone, void *owner)
{
    (void)ctx;
    ck_assert_int_eq(rq->status, 0);
    ck_assert_ptr_null(rq->held);
    ck_assert_int_lt(nholds, MAX_RQ);
    ptth_held *h = calloc(1, size);
    ck_assert_ptr_nonnull(h);
    holds[nholds++] = h;
    h->rq = rq;
    h->on_gone = on_gone;
    h->owner = owner;
    rq->held = h;
    return h;
}

static ptth_rq *
fake_release(void *ctx, ptth_held *h)
{
    (void)ctx;
    ck_assert_ptr_nonnull(h->rq);
    ck_assert_ptr_eq(h->rq->held, h);
    h->rq->held = NULL;
    return h->rq;
}

static void
fake_header(void *ctx, ptth_rq *rq, const char *name, const char *value, size_t len)
{
    (void)ctx;
    ck_assert_int_eq(rq->status, 0);
    ck_assert_int_lt(rq->nhdr, MAX_HDR);
    snprintf(rq->hname[rq->nhdr], sizeof(rq->hname[0]), "%s", name);
    snprintf(rq->hvalue[rq->nhdr], sizeof(rq->hvalue[0]), "%.*s", (int)len, value);
    rq->nhdr++;
}

static void
fake_reply(void *ctx, ptth_rq *rq, int status, unsigned retry_after, const char *body)
{
    (void)ctx;
    ck_assert_msg(rq->status == 0, "request answered twice (%d, then %d)", rq->status, status);
    ck_assert_ptr_null(rq->held); /* a held request is answered through its release */
    ck_assert(!rq->streamed);
    rq->status = status;
    rq->retry = retry_after;
    snprintf(rq->body, sizeof(rq->body), "%s", body != NULL ? body : "");
}

static bool
fake_peer_closed(void *ctx, ptth_rq *rq)
{
    (void)ctx;
    return rq->closed;
}

static int
armed_index(const ptth_timer *t)
{
    for (int i = 0; i < narmed; i++)
        if (armed[i] == t)
            return i;
    return -1;
}

static void
fake_timer_arm(void *ctx, ptth_timer *t, ptth_timer_kind kind)
{
    (void)ctx;
    (void)kind;
    ck_assert_int_eq(armed_index(t), -1); /* the core disarms before it arms again */
    ck_assert_int_lt(narmed, 64);
    armed[narmed++] = t;
}

static void
unarm(int i)
{
    armed[i] = armed[--narmed];
}

static void
fake_timer_disarm(void *ctx, ptth_timer *t)
{
    (void)ctx;
    int i = armed_index(t);
    ck_assert_int_ge(i, 0);
    unarm(i);
}

static int
armed_of(ptth_timer_kind kind)
{
    int n = 0;
    for (int i = 0; i < narmed; i++)
        n += armed[i]->kind == kind;
    return n;
}

/* Runs out the period of kind: fires every timer armed with it. */
static int
fire(ptth_timer_kind kind)
{
    ptth_timer *due[64];
    int n = 0;
    for (int i = 0; i < narmed; i++)
        if (armed[i]->kind == kind)
            due[n++] = armed[i];
    for (int k = 0; k < n; k++) {
        int i = armed_index(due[k]);
        if (i < 0)
            continue; /* disarmed by an earlier one */
        unarm(i);
        ptth_timer_fire(due[k]);
    }
    return n;
}

static ptth_out *
fake_out_open(void *ctx, ptth_rq *rq, ptth_tunnel *t)
{
    (void)ctx;
    ck_assert_int_eq(rq->status, 0);
    ck_assert_ptr_null(rq->held);
    ck_assert_int_lt(nouts, 16);
    ptth_out *o = &outs[nouts++];
    memset(o, 0, sizeof(*o));
    o->rq = rq;
    o->t = t;
    rq->status = 200; /* a framed stream is a 200 response */
    rq->streamed = true;
    return o;
}

static int
fake_out_write(void *ctx, ptth_out *o, uint8_t type, const void *payload, size_t len)
{
    (void)ctx;
    ck_assert(!o->finished);
    if (type == PTTH_FRAME_FIN)
        o->fins++;
    else if (type == PTTH_FRAME_RST) {
        o->rsts++;
        snprintf(o->rst, sizeof(o->rst), "%.*s", (int)len, (const char *)payload);
    } else
        ck_abort_msg("unexpected frame type %u", type);
    o->pending = true;
    return 0;
}

static int
fake_out_write_chunk(void *ctx, ptth_out *o, ptth_rq *chunk, size_t len)
{
    (void)ctx;
    ck_assert(!o->finished);
    ck_assert_int_eq(chunk->status, 0); /* its bytes go out before its answer */
    if (o->fail != 0) {
        int err = o->fail;
        o->fail = 0;
        return err;
    }
    o->data++;
    o->data_bytes += len;
    o->pending = true;
    return 0;
}

static void
fake_out_flush(void *ctx, ptth_out *o)
{
    (void)ctx;
    if (o->pending) {
        o->pending = false;
        o->busy = true;
    }
}

static bool
fake_out_idle(void *ctx, ptth_out *o)
{
    (void)ctx;
    return !o->pending && !o->busy;
}

static void
fake_out_finish(void *ctx, ptth_out *o)
{
    (void)ctx;
    ck_assert(!o->finished);
    o->finished = true;
}

static ptth_join *
fake_join_new(void *ctx, ptth_tunnel *t)
{
    (void)ctx;
    if (join_fails)
        return NULL;
    ck_assert_int_lt(njoins, 4);
    ptth_join *j = &joins[njoins++];
    memset(j, 0, sizeof(*j));
    j->t = t;
    return j;
}

static void
fake_join_start(void *ctx, ptth_join *j, ptth_rq *connect, ptth_rq *accept)
{
    (void)ctx;
    ck_assert(!j->started);
    j->started = true;
    j->connect = connect;
    j->accept = accept;
    connect->status = accept->status = 101;
    connect->streamed = accept->streamed = true;
}

static void
fake_join_close(void *ctx, ptth_join *j, bool reset)
{
    (void)ctx;
    ck_assert(!j->closed);
    j->closed = true;
    j->reset = reset;
}

static const ptth_core_io fake_io = {
    .hold = fake_hold,
    .release = fake_release,
    .header = fake_header,
    .reply = fake_reply,
    .peer_closed = fake_peer_closed,
    .timer_arm = fake_timer_arm,
    .timer_disarm = fake_timer_disarm,
    .out_open = fake_out_open,
    .out_write = fake_out_write,
    .out_write_chunk = fake_out_write_chunk,
    .out_flush = fake_out_flush,
    .out_idle = fake_out_idle,
    .out_finish = fake_out_finish,
    .join_new = fake_join_new,
    .join_start = fake_join_start,
    .join_close = fake_join_close,
};

static void
on_end(void *data, const ptth_tunnel *t, ptth_end_reason reason, const char *detail)
{
    ck_assert_ptr_eq(data, &core);
    ck_assert_int_eq(t->state, PTTH_TUNNEL_ENDING);
    ck_assert_ptr_nonnull(ptth_tunnel_find(&core, t->id, PTTH_ID_LEN)); /* told before it is forgotten */
    ends++;
    last_reason = reason;
    snprintf(last_detail, sizeof(last_detail), "%s", detail != NULL ? detail : "");
}

static void
setup(void)
{
    ptth_log_set_level(PTTH_LOG_ERROR);
    nrq = nholds = nouts = njoins = narmed = 0;
    join_fails = false;
    ends = 0;
    last_detail[0] = '\0';
    memset(&cfg, 0, sizeof(cfg));
    cfg.max_chunk = 1000;
    cfg.max_connections = 6;
    cfg.max_connections_per_server = 4;
    cfg.max_listens_per_server = 3;
    cfg.heartbeat = 20;
    ptth_core_init(&core, &cfg, &fake_io, NULL);
    core.on_end = on_end;
    core.on_end_data = &core;
}

static void
teardown(void)
{
    ptth_tunnel_end_all(&core);
    ck_assert_uint_eq(core.ntunnels, 0);
    ck_assert_int_eq(narmed, 0); /* no timer outlives its object */
    ptth_core_dispose(&core);
    for (int i = 0; i < nholds; i++)
        free(holds[i]);
}

/* ---- helpers ------------------------------------------------------------------------ */

static ptth_rq *
listen_on(const char *server, const char *ports)
{
    ptth_rq *r = rq_new();
    ptth_tunnel_listen(&core, r, server, strlen(server), ports, ports != NULL ? strlen(ports) : 0);
    return r;
}

static ptth_tunnel *
connect_to(const char *server, const char *port, ptth_rq **out, bool upgrade)
{
    ptth_rq *r = rq_new();
    *out = r;
    return ptth_tunnel_connect(&core, r, server, strlen(server), port, strlen(port), "alice", "192.0.2.1:4242", upgrade);
}

/* listen, connect, accept: an OPEN tunnel on the chunked path. */
static ptth_tunnel *
open_tunnel(ptth_rq **connect, ptth_rq **accept)
{
    ptth_rq *l = listen_on("foo", "ssh, web");
    ptth_tunnel *t = connect_to("foo", "ssh", connect, false);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(l->status, 200);
    *accept = rq_new();
    ptth_tunnel_on_accept(t, *accept, false);
    ck_assert_int_eq(t->state, PTTH_TUNNEL_OPEN);
    return t;
}

static ptth_out *
out_of(ptth_rq *r)
{
    for (int i = 0; i < nouts; i++)
        if (outs[i].rq == r)
            return &outs[i];
    ck_abort_msg("no stream on that request");
    return NULL;
}

/* A chunk (from_client: upstream) with PTTH-Seq seq, PTTH-Fin when fin is
 * not NULL, and len body bytes. */
static ptth_rq *
chunk_raw(ptth_tunnel *t, bool from_client, const char *seq, const char *fin, size_t len)
{
    ptth_rq *r = rq_new();
    ptth_chunk_in in = {seq, seq != NULL ? strlen(seq) : 0, fin, fin != NULL ? strlen(fin) : 0, len};
    ptth_tunnel_on_chunk(t, r, from_client, &in);
    return r;
}

static ptth_rq *
chunk(ptth_tunnel *t, bool from_client, unsigned seq, bool fin, size_t len)
{
    char s[24];
    snprintf(s, sizeof(s), "%u", seq);
    return chunk_raw(t, from_client, s, fin ? "1" : NULL, len);
}

/* The stream took everything written so far (h2o's proceed). */
static void
drain(ptth_out *o)
{
    o->busy = false;
    ptth_tunnel_on_writable(o->t, o);
}

/* ---- the state machine ----------------------------------------------------------------- */

START_TEST(transitions_are_the_diagrams)
{
    /* [from][to]: AWAIT_LISTEN, AWAIT_ACCEPT, OPEN, JOINED, BROKEN, ENDING */
    static const bool legal[PTTH_TUNNEL__STATES][PTTH_TUNNEL__STATES] = {
        {0, 1, 0, 0, 0, 1}, /* AWAIT_LISTEN */
        {0, 0, 1, 1, 0, 1}, /* AWAIT_ACCEPT */
        {0, 0, 0, 0, 1, 1}, /* OPEN */
        {0, 0, 0, 0, 0, 1}, /* JOINED */
        {0, 0, 0, 0, 0, 1}, /* BROKEN */
        {0, 0, 0, 0, 0, 0}, /* ENDING */
    };
    for (int f = 0; f < PTTH_TUNNEL__STATES; f++)
        for (int to = 0; to < PTTH_TUNNEL__STATES; to++)
            ck_assert_msg(ptth_tunnel_transition_ok((ptth_tunnel_state)f, (ptth_tunnel_state)to) == legal[f][to], "%s -> %s",
                          ptth_tunnel_state_name((ptth_tunnel_state)f), ptth_tunnel_state_name((ptth_tunnel_state)to));
    ck_assert_str_eq(ptth_tunnel_state_name(PTTH_TUNNEL_BROKEN), "broken");
    ck_assert_str_eq(ptth_tunnel_phase_name(2), "open");
}
END_TEST

START_TEST(connect_waits_for_a_listen_then_matches)
{
    listen_on("foo", "ssh")->closed = false;
    fire(PTTH_TIMER_LISTEN); /* that listen ran out: 204 */
    ck_assert_int_eq(rqs[0].status, 204);
    ck_assert_str_eq(hdr(&rqs[0], "ptth-max-chunk"), "1000");
    ptth_rq *c;
    ptth_tunnel *t = connect_to("foo", "ssh", &c, false);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->state, PTTH_TUNNEL_AWAIT_LISTEN);
    ck_assert_int_eq(ptth_tunnel_phase(t), 0);
    ck_assert_int_eq(armed_of(PTTH_TIMER_CONNECT), 1);
    ck_assert_int_eq(c->status, 0);
    ptth_rq *l = listen_on("foo", NULL); /* a later listen keeps the ports */
    ck_assert_int_eq(l->status, 200);
    ck_assert_str_eq(hdr(l, "ptth-conn"), t->id);
    ck_assert_str_eq(hdr(l, "ptth-port"), "ssh");
    ck_assert_str_eq(hdr(l, "ptth-client-addr"), "192.0.2.1:4242");
    ck_assert_str_eq(hdr(l, "ptth-client"), "alice");
    ck_assert_str_eq(hdr(l, "ptth-max-chunk"), "1000");
    ck_assert_int_eq(t->state, PTTH_TUNNEL_AWAIT_ACCEPT);
    ck_assert_int_eq(ptth_tunnel_phase(t), 1);
    ck_assert_int_eq(armed_of(PTTH_TIMER_CONNECT), 1);
    ck_assert_int_eq(c->status, 0);
}
END_TEST

START_TEST(held_listen_is_given_to_the_connect)
{
    ptth_rq *l1 = listen_on("foo", "ssh");
    ptth_rq *l2 = listen_on("foo", "ssh");
    ptth_srv *srv = ptth_srv_get(&core, "foo", 3);
    ck_assert_uint_eq(srv->nlistens, 2);
    ck_assert(srv->online);
    ck_assert_int_eq(l1->status, 0);
    ptth_rq *c1, *c2;
    ptth_tunnel *t1 = connect_to("foo", "ssh", &c1, false);
    ck_assert_int_eq(l1->status, 200); /* oldest listen first */
    ck_assert_int_eq(l2->status, 0);
    ck_assert_str_eq(hdr(l1, "ptth-conn"), t1->id);
    ptth_tunnel *t2 = connect_to("foo", "ssh", &c2, false);
    ck_assert_int_eq(l2->status, 200);
    ck_assert_str_eq(hdr(l2, "ptth-conn"), t2->id);
    ck_assert_uint_eq(srv->nlistens, 0);
    ck_assert_uint_eq(srv->ntunnels, 2);
    ck_assert_uint_eq(core.ntunnels, 2);
    ck_assert_uint_eq(core.stats.tunnels_opened, 2);
}
END_TEST

START_TEST(waiting_connects_are_matched_oldest_first)
{
    listen_on("foo", "ssh");
    fire(PTTH_TIMER_LISTEN);
    ptth_rq *c1, *c2;
    ptth_tunnel *t1 = connect_to("foo", "ssh", &c1, false);
    ptth_tunnel *t2 = connect_to("foo", "ssh", &c2, false);
    ptth_rq *l = listen_on("foo", NULL);
    ck_assert_str_eq(hdr(l, "ptth-conn"), t1->id);
    ck_assert_int_eq(t2->state, PTTH_TUNNEL_AWAIT_LISTEN);
    /* a waiting connect whose client left is skipped (and ends) */
    ptth_rq *c3;
    ptth_tunnel *t3 = connect_to("foo", "ssh", &c3, false);
    (void)t3;
    c2->closed = true;
    l = listen_on("foo", NULL);
    ck_assert_str_eq(hdr(l, "ptth-conn"), t3->id);
    ck_assert_int_eq(ends, 1);
    ck_assert_int_eq(last_reason, PTTH_END_RST);
    ck_assert_str_eq(last_detail, "client went away before the tunnel opened");
}
END_TEST

START_TEST(held_listen_whose_peer_closed_is_skipped)
{
    ptth_rq *l1 = listen_on("foo", "ssh");
    ptth_rq *l2 = listen_on("foo", "ssh");
    l1->closed = true;
    ptth_rq *c;
    ptth_tunnel *t = connect_to("foo", "ssh", &c, false);
    ck_assert_int_eq(l1->status, 204);
    ck_assert_ptr_null(hdr(l1, "ptth-conn"));
    ck_assert_int_eq(l2->status, 200);
    ck_assert_str_eq(hdr(l2, "ptth-conn"), t->id);
}
END_TEST

START_TEST(listen_gone_leaves_the_queue)
{
    ptth_rq *l1 = listen_on("foo", "ssh");
    ptth_rq *l2 = listen_on("foo", "ssh");
    ptth_srv *srv = ptth_srv_get(&core, "foo", 3);
    rq_gone(l1);
    ck_assert_uint_eq(srv->nlistens, 1);
    ck_assert_int_eq(armed_of(PTTH_TIMER_LISTEN), 1);
    rq_gone(l2);
    ck_assert_uint_eq(srv->nlistens, 0);
    /* the last one left: the online window runs */
    ck_assert_int_eq(armed_of(PTTH_TIMER_LISTEN), 1);
    ck_assert(srv->online);
    fire(PTTH_TIMER_LISTEN);
    ck_assert(!srv->online);
}
END_TEST

START_TEST(listen_errors)
{
    ptth_rq *r = listen_on("foo", NULL);
    ck_assert_int_eq(r->status, 400);
    ck_assert_ptr_nonnull(strstr(r->body, "missing PTTH-Ports"));
    r = listen_on("foo", "ssh,,web");
    ck_assert_int_eq(r->status, 400);
    ck_assert_ptr_nonnull(strstr(r->body, "bad PTTH-Ports"));
    char longname[PTTH_NAME_MAX + 8];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    r = listen_on(longname, "ssh");
    ck_assert_int_eq(r->status, 500);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(listen_on("foo", "ssh")->status, 0);
    r = listen_on("foo", "ssh");
    ck_assert_int_eq(r->status, 429);
    ck_assert_uint_eq(r->retry, PTTH_RETRY_LIMIT);
    ck_assert_ptr_nonnull(strstr(r->body, "--max-listens-per-server"));
}
END_TEST

START_TEST(online_window_and_offline)
{
    ptth_rq *c;
    ck_assert_ptr_null(connect_to("foo", "ssh", &c, false));
    ck_assert_int_eq(c->status, 503);
    ck_assert_uint_eq(c->retry, PTTH_RETRY_OFFLINE);
    ck_assert_str_eq(c->body, "server 'foo' is offline\n");
    listen_on("foo", "ssh");
    ptth_srv *srv = ptth_srv_get(&core, "foo", 3);
    ck_assert(srv->online);
    fire(PTTH_TIMER_LISTEN); /* the listen: 204, and the window starts */
    ck_assert(srv->online);
    ck_assert_ptr_nonnull(connect_to("foo", "ssh", &c, false)); /* still online: the connect waits */
    fire(PTTH_TIMER_LISTEN); /* the window ran out */
    ck_assert(!srv->online);
    ptth_rq *c2;
    ck_assert_ptr_null(connect_to("foo", "ssh", &c2, false));
    ck_assert_int_eq(c2->status, 503);
}
END_TEST

START_TEST(connect_checks_and_limits)
{
    listen_on("foo", "ssh");
    listen_on("bar", "ssh");
    ptth_rq *c;
    ck_assert_ptr_null(connect_to("foo", "web", &c, false));
    ck_assert_int_eq(c->status, 404);
    ck_assert_str_eq(c->body, "server 'foo' does not offer port 'web'\n");
    for (int i = 0; i < 4; i++)
        ck_assert_ptr_nonnull(connect_to("foo", "ssh", &c, false));
    ck_assert_ptr_null(connect_to("foo", "ssh", &c, false));
    ck_assert_int_eq(c->status, 429);
    ck_assert_uint_eq(c->retry, PTTH_RETRY_LIMIT);
    ck_assert_ptr_nonnull(strstr(c->body, "--max-connections-per-server"));
    for (int i = 0; i < 2; i++)
        ck_assert_ptr_nonnull(connect_to("bar", "ssh", &c, false));
    ck_assert_ptr_null(connect_to("bar", "ssh", &c, false));
    ck_assert_int_eq(c->status, 429);
    ck_assert_ptr_nonnull(strstr(c->body, "(--max-connections)"));
    /* a limit is on tunnels open now: one ends, one more fits */
    ptth_tunnel_end(ptth_tunnel_find(&core, hdr(&rqs[1], "ptth-conn"), PTTH_ID_LEN), PTTH_END_RST, "test");
    ck_assert_ptr_nonnull(connect_to("bar", "ssh", &c, false));
}
END_TEST

/* ---- accept and reject ---------------------------------------------------------------- */

START_TEST(accept_opens_both_streams)
{
    ptth_rq *c, *a;
    ptth_tunnel *t = open_tunnel(&c, &a);
    ck_assert_int_eq(c->status, 200);
    ck_assert_int_eq(a->status, 200);
    ck_assert_str_eq(hdr(c, "ptth-conn"), t->id);
    ck_assert_str_eq(hdr(c, "ptth-max-chunk"), "1000");
    ck_assert_str_eq(hdr(a, "ptth-max-chunk"), "1000");
    ck_assert_ptr_null(hdr(c, "ptth-upgrade"));
    ck_assert_ptr_eq(t->down.out, out_of(c));
    ck_assert_ptr_eq(t->up.out, out_of(a));
    ck_assert_ptr_null(t->connect);
    ck_assert_int_eq(armed_of(PTTH_TIMER_CONNECT), 0);
    ck_assert_int_eq(armed_of(PTTH_TIMER_IDLE), 0); /* --idle-timeout 0 */
    ck_assert_int_eq(ptth_tunnel_phase(t), 2);
}
END_TEST

START_TEST(accept_in_the_wrong_state_is_409)
{
    listen_on("foo", "ssh");
    fire(PTTH_TIMER_LISTEN);
    ptth_rq *c;
    ptth_tunnel *t = connect_to("foo", "ssh", &c, false);
    ptth_rq *a = rq_new();
    ptth_tunnel_on_accept(t, a, false);
    ck_assert_int_eq(a->status, 409);
    ck_assert_str_eq(a->body, "tunnel not offered to a listen yet\n");
    ptth_rq *r = rq_new();
    ptth_tunnel_on_reject(t, r, "x", 1);
    ck_assert_int_eq(r->status, 409);
    listen_on("foo", NULL);
    a = rq_new();
    ptth_tunnel_on_accept(t, a, false);
    ck_assert_int_eq(t->state, PTTH_TUNNEL_OPEN);
    ptth_rq *a2 = rq_new();
    ptth_tunnel_on_accept(t, a2, false);
    ck_assert_int_eq(a2->status, 409);
    ck_assert_str_eq(a2->body, "tunnel already accepted\n");
    r = rq_new();
    ptth_tunnel_on_reject(t, r, NULL, 0);
    ck_assert_int_eq(r->status, 409);
    ck_assert_int_eq(ends, 0);
}
END_TEST

START_TEST(accept_after_the_client_left_is_404)
{
    listen_on("foo", "ssh");
    ptth_rq *c;
    ptth_tunnel *t = connect_to("foo", "ssh", &c, false);
    c->closed = true;
    ptth_rq *a = rq_new();
    ptth_tunnel_on_accept(t, a, false);
    ck_assert_int_eq(a->status, 404);
    ck_assert_int_eq(ends, 1);
    ck_assert_int_eq(last_reason, PTTH_END_RST);
    ck_assert_int_eq(c->status, 502);
    ck_assert_uint_eq(core.ntunnels, 0);
}
END_TEST

START_TEST(reject_ends_with_backend)
{
    listen_on("foo", "ssh");
    ptth_rq *c;
    ptth_tunnel *t = connect_to("foo", "ssh", &c, false);
    ptth_rq *r = rq_new();
    ptth_tunnel_on_reject(t, r, "connection refused", 18);
    ck_assert_int_eq(r->status, 204);
    ck_assert_int_eq(c->status, 502);
    ck_assert_str_eq(c->body, "server could not reach its backend: connection refused\n");
    ck_assert_int_eq(last_reason, PTTH_END_BACKEND);
    ck_assert_uint_eq(core.stats.tunnels_ended[PTTH_END_BACKEND], 1);
    ck_assert_uint_eq(ptth_srv_get(&core, "foo", 3)->ntunnels, 0);
    /* without a reason */
    listen_on("foo", NULL);
    t = connect_to("foo", "ssh", &c, false);
    ptth_tunnel_on_reject(t, rq_new(), NULL, 0);
    ck_assert_str_eq(c->body, "server could not reach its backend: server could not reach its backend\n");
}
END_TEST

START_TEST(connect_timeout_is_504_in_either_wait)
{
    ptth_rq *c1, *c2;
    listen_on("foo", "ssh");
    ptth_tunnel *t1 = connect_to("foo", "ssh", &c1, false); /* AWAIT_ACCEPT */
    ptth_tunnel *t2 = connect_to("foo", "ssh", &c2, false); /* AWAIT_LISTEN */
    ck_assert_int_eq(t1->state, PTTH_TUNNEL_AWAIT_ACCEPT);
    ck_assert_int_eq(t2->state, PTTH_TUNNEL_AWAIT_LISTEN);
    ck_assert_int_eq(fire(PTTH_TIMER_CONNECT), 2);
    ck_assert_int_eq(c1->status, 504);
    ck_assert_int_eq(c2->status, 504);
    ck_assert_int_eq(last_reason, PTTH_END_TIMEOUT);
    ck_assert_uint_eq(core.stats.tunnels_ended[PTTH_END_TIMEOUT], 2);
    ck_assert(ptth_list_empty(&ptth_srv_get(&core, "foo", 3)->waiting));
    /* a listen now is held: nobody waits any more */
    ck_assert_int_eq(listen_on("foo", NULL)->status, 0);
}
END_TEST

START_TEST(connect_gone_ends_the_tunnel)
{
    listen_on("foo", "ssh");
    fire(PTTH_TIMER_LISTEN);
    ptth_rq *c;
    connect_to("foo", "ssh", &c, false);
    rq_gone(c);
    ck_assert_int_eq(ends, 1);
    ck_assert_int_eq(last_reason, PTTH_END_RST);
    ck_assert_int_eq(c->status, 0); /* nothing to answer */
    ck_assert_int_eq(armed_of(PTTH_TIMER_CONNECT), 0);
    ck_assert_int_eq(listen_on("foo", NULL)->status, 0); /* no longer queued */
}
END_TEST

/* ---- chunks ---------------------------------------------------------------------------------- */

START_TEST(chunk_is_answered_when_the_stream_took_it)
{
    ptth_rq *c, *a;
    ptth_tunnel *t = open_tunnel(&c, &a);
    ptth_rq *u = chunk(t, true, 0, false, 100);
    ck_assert_int_eq(out_of(a)->data, 1); /* upstream goes into the accept stream */
    ck_assert_uint_eq(out_of(a)->data_bytes, 100);
    ck_assert_int_eq(u->status, 0);
    ptth_rq *u1 = chunk(t, true, 1, false, 50); /* the stream is busy: held */
    ck_assert_int_eq(out_of(a)->data, 1);
    drain(out_of(a));
    ck_assert_int_eq(u->status, 204);
    ck_assert_str_eq(hdr(u, "ptth-conn"), t->id);
    ck_assert_str_eq(hdr(u, "ptth-seq"), "0");
    ck_assert_int_eq(out_of(a)->data, 2); /* the next one went out */
    ck_assert_int_eq(u1->status, 0);
    drain(out_of(a));
    ck_assert_int_eq(u1->status, 204);
    ck_assert_uint_eq(t->up.bytes, 150);
    ck_assert_uint_eq(core.stats.bytes_up, 150);
    ptth_rq *d = chunk(t, false, 0, false, 7);
    ck_assert_int_eq(out_of(c)->data, 1); /* downstream into the connect stream */
    drain(out_of(c));
    ck_assert_int_eq(d->status, 204);
    ck_assert_uint_eq(core.stats.bytes_down, 7);
}
END_TEST

START_TEST(chunks_are_delivered_in_order)
{
    ptth_rq *c, *a;
    ptth_tunnel *t = open_tunnel(&c, &a);
    ptth_rq *r[8];
    for (int i = 7; i >= 1; i--)
        r[i] = chunk(t, true, (unsigned)i, false, 10);
    ck_assert_int_eq(out_of(a)->data, 0);
    r[0] = chunk(t, true, 0, false, 10);
    ck_assert_int_eq(out_of(a)->data, 8); /* one batch */
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(r[i]->status, 0);
    drain(out_of(a));
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(r[i]->status, 204);
    ck_assert_uint_eq(ptth_seqwin_next(&t->up.win), 8);
}
END_TEST

START_TEST(chunk_retries)
{
    ptth_rq *c, *a;
    ptth_tunnel *t = open_tunnel(&c, &a);
    chunk(t, true, 0, false, 10);
    drain(out_of(a));
    ptth_rq *again = chunk(t, true, 0, false, 10); /* delivered before */
    ck_assert_int_eq(again->status, 204);
    ck_assert_str_eq(hdr(again, "ptth-seq"), "0");
    ck_assert_int_eq(out_of(a)->data, 1);
    ptth_rq *first = chunk(t, true, 2, false, 10); /* held: 1 is missing */
    ptth_rq *second = chunk(t, true, 2, false, 10);
    ck_assert_int_eq(first->status, 409);
    ck_assert_str_eq(first->body, "superseded by a retry of the same PTTH-Seq\n");
    ck_assert_int_eq(second->status, 0);
    chunk(t, true, 1, false, 10);
    ck_assert_int_eq(out_of(a)->data, 3); /* 1 and 2, once */
    drain(out_of(a));
    ck_assert_int_eq(second->status, 204);
}
END_TEST

START_TEST(chunk_errors)
{
    ptth_rq *c, *a;
    ptth_tunnel *t = open_tunnel(&c, &a);
    ptth_rq *r = chunk_raw(t, true, NULL, NULL, 10);
    ck_assert_int_eq(r->status, 400);
    ck_assert_ptr_nonnull(strstr(r->body, "PTTH-Seq"));
    ck_assert_int_eq(chunk_raw(t, true, "-1", NULL, 10)->status, 400);
    ck_assert_int_eq(chunk_raw(t, true, "1x", NULL, 10)->status, 400);
    r = chunk_raw(t, true, "0", "yes", 10);
    ck_assert_int_eq(r->status, 400);
    ck_assert_str_eq(r->body, "bad PTTH-Fin (1 or 0)\n");
    r = chunk_raw(t, true, "0", "0", 0);
    ck_assert_int_eq(r->status, 400);
    ck_assert_str_eq(r->body, "empty chunk without PTTH-Fin: 1\n");
    r = chunk(t, true, 0, false, 1001);
    ck_assert_int_eq(r->status, 413);
    ck_assert_str_eq(r->body, "chunk of 1001 bytes is above --max-chunk 1000\n");
    ck_assert_int_eq(chunk(t, true, 0, false, 1000)->status, 0); /* the limit itself is fine */
    r = chunk(t, true, 9, false, 10); /* next is 1: 1..8 fit */
    ck_assert_int_eq(r->status, 409);
    ck_assert_str_eq(r->body, "PTTH-Seq 9 is more than 8 ahead of the last delivered chunk (next is 1)\n");
    ck_assert_int_eq(chunk(t, true, 8, false, 10)->status, 0);
    /* a FIN while later chunks are held */
    r = chunk(t, true, 3, true, 0);
    ck_assert_int_eq(r->status, 409);
    ck_assert_str_eq(r->body, "FIN at 3 but later chunks are held\n");
    ck_assert_int_eq(ends, 0);
}
END_TEST

START_TEST(chunks_after_fin_conflict)
{
    ptth_rq *c, *a;
    ptth_tunnel *t = open_tunnel(&c, &a);
    ptth_rq *f = chunk(t, false, 2, true, 0); /* FIN at 2, held */
    ck_assert_int_eq(f->status, 0);
    ck_assert_int_eq(t->down.fin, PTTH_FIN_HELD);
    ptth_rq *r = chunk(t, false, 3, false, 10);
    ck_assert_int_eq(r->status, 409);
    ck_assert_str_eq(r->body, "chunk 3 conflicts with FIN at 2\n");
    r = chunk(t, false, 1, true, 0); /* a second FIN elsewhere */
    ck_assert_int_eq(r->status, 409);
    ptth_rq *f2 = chunk(t, false, 2, true, 0); /* a retry of the FIN itself supersedes it */
    ck_assert_int_eq(f2->status, 0);
    ck_assert_int_eq(f->status, 409);
    ck_assert_int_eq(chunk(t, false, 0, false, 10)->status, 0);
    ck_assert_int_eq(chunk(t, false, 1, false, 10)->status, 0);
    ck_assert_int_eq(out_of(c)->data, 1);
    drain(out_of(c)); /* 1 and the FIN at 2 go out together */
    ck_assert_int_eq(out_of(c)->data, 2);
    ck_assert_int_eq(out_of(c)->fins, 1);
    ck_assert_int_eq(t->down.fin, PTTH_FIN_WRITTEN);
    ck_assert_int_eq(f2->status, 0);
    drain(out_of(c));
    ck_assert_int_eq(f2->status, 204);
    ck_assert_int_eq(t->down.fin, PTTH_FIN_DONE);
    ck_assert_int_eq(t->state, PTTH_TUNNEL_OPEN); /* the other way is still open */
}
END_TEST

START_TEST(chunk_before_accept_is_409)
{
    listen_on("foo", "ssh");
    ptth_rq *c;
    ptth_tunnel *t = connect_to("foo", "ssh", &c, false);
    ptth_rq *r = chunk(t, true, 0, false, 10);
    ck_assert_int_eq(r->status, 409);
    ck_assert_str_eq(r->body, "tunnel not accepted yet\n");
}
END_TEST

START_TEST(chunk_gone_while_held_must_be_sent_again)
{
    ptth_rq *c, *a;
    ptth_tunnel *t = open_tunnel(&c, &a);
    ptth_rq *r1 = chunk(t, true, 1, false, 10);
    rq_gone(r1);
    ck_assert_uint_eq(t->up.win.held, 0);
    chunk(t, true, 0, false, 10);
    ck_assert_int_eq(out_of(a)->data, 1);
    drain(out_of(a));
    ptth_rq *r1b = chunk(t, true, 1, false, 10);
    ck_assert_int_eq(out_of(a)->data, 2);
    rq_gone(r1b); /* gone after it was written: no answer, nothing breaks */
    drain(out_of(a));
    ck_assert_int_eq(r1b->status, 0);
    ck_assert_int_eq(ends, 0);
}
END_TEST

START_TEST(write_failure_ends_the_tunnel)
{
    ptth_rq *c, *a;
    ptth_tunnel *t = open_tunnel(&c, &a);
    ptth_rq *held = chunk(t, true, 1, false, 10);
    out_of(a)->fail = -ENOMEM;
    ptth_rq *r = chunk(t, true, 0, false, 10);
    ck_assert_int_eq(r->status, 500);
    ck_assert_int_eq(held->status, 404);
    ck_assert_int_eq(last_reason, PTTH_END_RST);
    ck_assert_str_eq(last_detail, "relay out of memory");
}
END_TEST

/* ---- ends ----------------------------------------------------------------------------------------- */

START_TEST(both_fins_end_with_fin)
{
    ptth_rq *c, *a;
    ptth_tunnel *t = open_tunnel(&c, &a);
    ptth_rq *u = chunk(t, true, 0, true, 5); /* data and FIN in one */
    ck_assert_int_eq(out_of(a)->data, 1);
    ck_assert_int_eq(out_of(a)->fins, 1);
    drain(out_of(a));
    ck_assert_int_eq(u->status, 204);
    ck_assert_int_eq(t->up.fin, PTTH_FIN_DONE);
    ptth_rq *d = chunk(t, false, 0, true, 0);
    drain(out_of(c));
    ck_assert_int_eq(d->status, 204);
    ck_assert_int_eq(ends, 1);
    ck_assert_int_eq(last_reason, PTTH_END_FIN);
    ck_assert(out_of(a)->finished && out_of(c)->finished);
    ck_assert_int_eq(out_of(a)->rsts + out_of(c)->rsts, 0);
    ck_assert_uint_eq(core.ntunnels, 0);
}
END_TEST

START_TEST(end_writes_rst_and_answers_what_is_held)
{
    ptth_rq *c, *a;
    ptth_tunnel *t = open_tunnel(&c, &a);
    ptth_rq *w = chunk(t, true, 0, false, 10); /* written, not yet answered */
    ptth_rq *h = chunk(t, true, 2, false, 10); /* held in the window */
    ptth_tunnel_end(t, PTTH_END_RST, "closed by client: bye");
    ck_assert_int_eq(w->status, 404);
    ck_assert_int_eq(h->status, 404);
    ck_assert_str_eq(out_of(a)->rst, "closed by client: bye");
    ck_assert_str_eq(out_of(c)->rst, "closed by client: bye");
    ck_assert(out_of(a)->finished && out_of(c)->finished);
    ck_assert_int_eq(last_reason, PTTH_END_RST);
    ck_assert_ptr_null(ptth_tunnel_find(&core, hdr(c, "ptth-conn"), PTTH_ID_LEN));
}
END_TEST

START_TEST(broken_stream_ends_at_the_end_of_the_round)
{
    ptth_rq *c, *a;
    ptth_tunnel *t = open_tunnel(&c, &a);
    ptth_rq *d = chunk(t, false, 0, false, 10);
    ptth_tunnel_on_broken(t, out_of(a)); /* the server's stream */
    ck_assert_int_eq(t->state, PTTH_TUNNEL_BROKEN);
    ck_assert_ptr_null(t->up.out);
    ck_assert_int_eq(armed_of(PTTH_TIMER_NOW), 1);
    ck_assert_int_eq(ends, 0);
    ptth_tunnel_on_broken(t, out_of(c)); /* the other breaking too changes nothing more */
    ck_assert_int_eq(t->state, PTTH_TUNNEL_BROKEN);
    ck_assert_int_eq(armed_of(PTTH_TIMER_NOW), 1);
    ck_assert_int_eq(armed_of(PTTH_TIMER_CONNECT), 0); /* its own timer, not the connect timer */
    fire(PTTH_TIMER_NOW);
    ck_assert_int_eq(ends, 1);
    ck_assert_int_eq(last_reason, PTTH_END_RST);
    ck_assert_str_eq(last_detail, "server's stream broke");
    ck_assert_int_eq(d->status, 404);
}
END_TEST

START_TEST(broken_tunnel_still_moves_the_other_way)
{
    ptth_rq *c, *a;
    ptth_tunnel *t = open_tunnel(&c, &a);
    ptth_tunnel_on_broken(t, out_of(c)); /* the client's stream */
    ptth_rq *u = chunk(t, true, 0, false, 10);
    ck_assert_int_eq(out_of(a)->data, 1);
    drain(out_of(a));
    ck_assert_int_eq(u->status, 204);
    fire(PTTH_TIMER_NOW);
    ck_assert_str_eq(last_detail, "client's stream broke");
    ck_assert_str_eq(out_of(a)->rst, "client's stream broke");
}
END_TEST

START_TEST(idle_timeout)
{
    cfg.idle_timeout = 30;
    ptth_rq *c, *a;
    ptth_tunnel *t = open_tunnel(&c, &a);
    ck_assert_int_eq(armed_of(PTTH_TIMER_IDLE), 1);
    ck_assert(t->idle_timer.armed);
    chunk(t, true, 0, false, 10); /* traffic restarts it (the fake checks the disarm) */
    ck_assert_int_eq(armed_of(PTTH_TIMER_IDLE), 1);
    fire(PTTH_TIMER_IDLE);
    ck_assert_int_eq(last_reason, PTTH_END_IDLE);
    ck_assert_str_eq(out_of(a)->rst, "idle");
}
END_TEST

START_TEST(shutdown_answers_everything)
{
    ptth_rq *l = listen_on("foo", "ssh");
    listen_on("bar", "ssh");
    fire(PTTH_TIMER_LISTEN);
    ck_assert_int_eq(l->status, 204);
    ptth_rq *held = listen_on("bar", NULL);
    ptth_rq *c;
    connect_to("foo", "ssh", &c, false);
    ptth_tunnel_end_all(&core);
    ck_assert_int_eq(c->status, 503);
    ck_assert_uint_eq(c->retry, PTTH_RETRY_OFFLINE);
    ck_assert_int_eq(held->status, 503);
    ck_assert_int_eq(last_reason, PTTH_END_SHUTDOWN);
    ck_assert_uint_eq(core.servers.count, 0);
    ck_assert_int_eq(narmed, 0);
}
END_TEST

/* ---- the upgraded path ------------------------------------------------------------------------------ */

START_TEST(both_ask_for_upgrade_then_joined)
{
    cfg.idle_timeout = 30;
    listen_on("foo", "ssh");
    ptth_rq *c;
    ptth_tunnel *t = connect_to("foo", "ssh", &c, true);
    ptth_rq *a = rq_new();
    ptth_tunnel_on_accept(t, a, true);
    ck_assert_int_eq(t->state, PTTH_TUNNEL_JOINED);
    ck_assert_int_eq(njoins, 1);
    ck_assert(joins[0].started);
    ck_assert_ptr_eq(joins[0].connect, c);
    ck_assert_ptr_eq(joins[0].accept, a);
    ck_assert_str_eq(hdr(c, "ptth-conn"), t->id);
    ck_assert_str_eq(hdr(a, "ptth-heartbeat"), "20");
    ck_assert_str_eq(hdr(c, "ptth-idle-timeout"), "30");
    ck_assert_int_eq(nouts, 0);
    ck_assert_int_eq(armed_of(PTTH_TIMER_CONNECT), 0);
    ck_assert_int_eq(armed_of(PTTH_TIMER_IDLE), 1);
    ptth_rq *r = chunk(t, true, 0, false, 10);
    ck_assert_int_eq(r->status, 409);
    ck_assert_str_eq(r->body, "tunnel is on the upgraded path: no chunks\n");
    ptth_tunnel_on_moved(t, true, 100);
    ptth_tunnel_on_moved(t, false, PTTH_FRAME_HEADER_LEN);
    ck_assert_uint_eq(t->up.bytes, 100);
    ck_assert_uint_eq(t->down.bytes, PTTH_FRAME_HEADER_LEN);
    ptth_tunnel_on_joint_end(t, true, NULL);
    ck_assert_int_eq(last_reason, PTTH_END_FIN);
    ck_assert(joins[0].closed && !joins[0].reset);
}
END_TEST

START_TEST(joint_broken_ends_with_reset)
{
    listen_on("foo", "ssh");
    ptth_rq *c;
    ptth_tunnel *t = connect_to("foo", "ssh", &c, true);
    ptth_tunnel_on_accept(t, rq_new(), true);
    ptth_tunnel_on_joint_end(t, false, "server leg: reset");
    ck_assert_int_eq(last_reason, PTTH_END_RST);
    ck_assert_str_eq(last_detail, "server leg: reset");
    ck_assert(joins[0].closed && joins[0].reset);
}
END_TEST

START_TEST(one_side_asks_for_upgrade)
{
    listen_on("foo", "ssh");
    ptth_rq *c;
    ptth_tunnel *t = connect_to("foo", "ssh", &c, true);
    ptth_rq *a = rq_new();
    ptth_tunnel_on_accept(t, a, false);
    ck_assert_int_eq(t->state, PTTH_TUNNEL_OPEN);
    ck_assert_str_eq(hdr(c, "ptth-upgrade"), "peer");
    ck_assert_ptr_null(hdr(a, "ptth-upgrade"));
    /* --upgrade off: both asked, neither gets it */
    cfg.upgrade = "off";
    listen_on("foo", NULL);
    t = connect_to("foo", "ssh", &c, true);
    a = rq_new();
    ptth_tunnel_on_accept(t, a, true);
    ck_assert_int_eq(t->state, PTTH_TUNNEL_OPEN);
    ck_assert_str_eq(hdr(c, "ptth-upgrade"), "off");
    ck_assert_str_eq(hdr(a, "ptth-upgrade"), "off");
}
END_TEST

START_TEST(joint_out_of_memory_is_500)
{
    join_fails = true;
    listen_on("foo", "ssh");
    ptth_rq *c;
    ptth_tunnel *t = connect_to("foo", "ssh", &c, true);
    ptth_rq *a = rq_new();
    ptth_tunnel_on_accept(t, a, true);
    ck_assert_int_eq(a->status, 500);
    ck_assert_int_eq(c->status, 502);
    ck_assert_str_eq(last_detail, "relay out of memory");
}
END_TEST

/* ---- reload --------------------------------------------------------------------------------------------- */

static char pitems[8][PTTH_TEST_PRINCIPAL_LEN];
static char *pptrs[8];

static void
auth_of(ptth_auth *a, const char *foo_key, bool with_bar, const char *alice_key)
{
    const char *snames[] = {"foo", "bar"}, *skeys[] = {foo_key, "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"};
    const char *cnames[] = {"alice"}, *ckeys[] = {alice_key};
    ptth_strlist servers = ptth_test_principals(&pitems[0], &pptrs[0], with_bar ? 2 : 1, snames, skeys);
    ptth_strlist clients = ptth_test_principals(&pitems[4], &pptrs[4], 1, cnames, ckeys);
    ptth_strlist allow = {0};
    ptth_problems p = {0};
    ck_assert_int_eq(ptth_auth_build(a, &servers, &clients, &allow, NULL, &p), 0);
    ptth_problems_free(&p);
}

#define KEY_A "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define KEY_C "CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC"
#define KEY_E "EEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEE"

START_TEST(reload_revokes_changed_keys)
{
    ptth_auth old, same, foo_changed, alice_changed, bar_gone;
    auth_of(&old, KEY_A, true, KEY_C);
    auth_of(&same, KEY_A, true, KEY_C);
    auth_of(&foo_changed, KEY_E, true, KEY_C);
    auth_of(&alice_changed, KEY_A, true, KEY_E);
    auth_of(&bar_gone, KEY_A, false, KEY_C);

    ptth_rq *c, *a;
    ptth_tunnel *t = open_tunnel(&c, &a);
    ptth_rq *bar_listen = listen_on("bar", "ssh");
    ptth_tunnel_apply_auth(&core, &old, &same);
    ck_assert_int_eq(ends, 0);
    ck_assert_int_eq(bar_listen->status, 0);

    ptth_tunnel_apply_auth(&core, &old, &bar_gone); /* bar: listens 401, and forgotten */
    ck_assert_int_eq(bar_listen->status, 401);
    ck_assert_ptr_null(ptth_srv_get(&core, "bar", 3));
    ck_assert_int_eq(ends, 0);

    ptth_tunnel_apply_auth(&core, &old, &alice_changed);
    ck_assert_int_eq(ends, 1);
    ck_assert_str_eq(last_detail, "client key revoked");
    ck_assert_str_eq(out_of(a)->rst, "client key revoked");
    (void)t;

    t = open_tunnel(&c, &a);
    ptth_rq *foo_listen = listen_on("foo", NULL);
    ptth_tunnel_apply_auth(&core, &old, &foo_changed);
    ck_assert_int_eq(ends, 2);
    ck_assert_str_eq(last_detail, "server key revoked");
    ck_assert_int_eq(foo_listen->status, 401);
    ck_assert_ptr_nonnull(ptth_srv_get(&core, "foo", 3)); /* changed, not removed: kept */

    ptth_auth_free(&old);
    ptth_auth_free(&same);
    ptth_auth_free(&foo_changed);
    ptth_auth_free(&alice_changed);
    ptth_auth_free(&bar_gone);
}
END_TEST

/* ---- the order of events (SPEC §4) ------------------------------------------------------------------------ */

/* The order as the SPEC tells it: listen, connect, the listen's 200, accept
 * (both 200), chunks each way, FIN each way, the end. */
START_TEST(order_of_events_as_specified)
{
    ptth_rq *l = listen_on("foo", "ssh"); /* 1. the server listens */
    ptth_rq *c;
    ptth_tunnel *t = connect_to("foo", "ssh", &c, false); /* 2. a client connects */
    ck_assert_int_eq(l->status, 200);                     /* 3. the listen learns the id */
    ck_assert_int_eq(c->status, 0);                       /*    the connect is held */
    ptth_rq *a = rq_new();
    ptth_tunnel_on_accept(t, a, false); /* 4. accept: both streams at once */
    ck_assert_int_eq(c->status, 200);
    ck_assert_int_eq(a->status, 200);
    ptth_rq *u0 = chunk(t, true, 0, false, 10); /* 5. upstream */
    drain(out_of(a));
    ptth_rq *d0 = chunk(t, false, 0, false, 20); /* 6. downstream */
    drain(out_of(c));
    ptth_rq *uf = chunk(t, true, 1, true, 0); /* 7. the client half-closes */
    drain(out_of(a));
    ptth_rq *df = chunk(t, false, 1, true, 0); /* 8. the server half-closes */
    drain(out_of(c));
    ck_assert_int_eq(u0->status, 204);
    ck_assert_int_eq(d0->status, 204);
    ck_assert_int_eq(uf->status, 204);
    ck_assert_int_eq(df->status, 204);
    ck_assert_int_eq(last_reason, PTTH_END_FIN); /* 9. the end */
    ck_assert_int_eq(ends, 1);
}
END_TEST

/* Steps 5 to 8 are not ordered against each other: downstream first, a
 * FIN of one way while the other keeps sending, chunks out of order, both
 * FINs in one batch. */
START_TEST(order_of_events_relaxed_steps)
{
    ptth_rq *c, *a;
    ptth_tunnel *t = open_tunnel(&c, &a);
    ptth_rq *df = chunk(t, false, 1, true, 0); /* 8 before 6: the server's FIN, before its data */
    ck_assert_int_eq(out_of(c)->fins, 0);
    ptth_rq *d0 = chunk(t, false, 0, false, 20); /* 6 */
    ck_assert_int_eq(out_of(c)->data, 1);
    ck_assert_int_eq(out_of(c)->fins, 1); /* data and FIN in one batch */
    drain(out_of(c));
    ck_assert_int_eq(d0->status, 204);
    ck_assert_int_eq(df->status, 204);
    ck_assert_int_eq(t->down.fin, PTTH_FIN_DONE);
    /* the client goes on after the server's half-close (5 after 8) */
    for (unsigned i = 0; i < 3; i++) {
        ptth_rq *u = chunk(t, true, i, false, 10);
        drain(out_of(a));
        ck_assert_int_eq(u->status, 204);
    }
    ck_assert_int_eq(ends, 0);
    ptth_rq *uf = chunk(t, true, 3, true, 0); /* 7, last */
    drain(out_of(a));
    ck_assert_int_eq(uf->status, 204);
    ck_assert_int_eq(last_reason, PTTH_END_FIN);
    ck_assert_uint_eq(core.stats.tunnels_ended[PTTH_END_FIN], 1);
}
END_TEST

Suite *
ptth_test_suite(void)
{
    Suite *s = suite_create("relay_tunnel");
    TCase *tc = tcase_create("tunnel");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, transitions_are_the_diagrams);
    tcase_add_test(tc, connect_waits_for_a_listen_then_matches);
    tcase_add_test(tc, held_listen_is_given_to_the_connect);
    tcase_add_test(tc, waiting_connects_are_matched_oldest_first);
    tcase_add_test(tc, held_listen_whose_peer_closed_is_skipped);
    tcase_add_test(tc, listen_gone_leaves_the_queue);
    tcase_add_test(tc, listen_errors);
    tcase_add_test(tc, online_window_and_offline);
    tcase_add_test(tc, connect_checks_and_limits);
    tcase_add_test(tc, accept_opens_both_streams);
    tcase_add_test(tc, accept_in_the_wrong_state_is_409);
    tcase_add_test(tc, accept_after_the_client_left_is_404);
    tcase_add_test(tc, reject_ends_with_backend);
    tcase_add_test(tc, connect_timeout_is_504_in_either_wait);
    tcase_add_test(tc, connect_gone_ends_the_tunnel);
    tcase_add_test(tc, chunk_is_answered_when_the_stream_took_it);
    tcase_add_test(tc, chunks_are_delivered_in_order);
    tcase_add_test(tc, chunk_retries);
    tcase_add_test(tc, chunk_errors);
    tcase_add_test(tc, chunks_after_fin_conflict);
    tcase_add_test(tc, chunk_before_accept_is_409);
    tcase_add_test(tc, chunk_gone_while_held_must_be_sent_again);
    tcase_add_test(tc, write_failure_ends_the_tunnel);
    tcase_add_test(tc, both_fins_end_with_fin);
    tcase_add_test(tc, end_writes_rst_and_answers_what_is_held);
    tcase_add_test(tc, broken_stream_ends_at_the_end_of_the_round);
    tcase_add_test(tc, broken_tunnel_still_moves_the_other_way);
    tcase_add_test(tc, idle_timeout);
    tcase_add_test(tc, shutdown_answers_everything);
    tcase_add_test(tc, both_ask_for_upgrade_then_joined);
    tcase_add_test(tc, joint_broken_ends_with_reset);
    tcase_add_test(tc, one_side_asks_for_upgrade);
    tcase_add_test(tc, joint_out_of_memory_is_500);
    tcase_add_test(tc, reload_revokes_changed_keys);
    tcase_add_test(tc, order_of_events_as_specified);
    tcase_add_test(tc, order_of_events_relaxed_steps);
    suite_add_tcase(s, tc);
    return s;
}
