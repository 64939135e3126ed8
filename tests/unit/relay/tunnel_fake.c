/* The recording fake of ptth_core_io: see tunnel_fake.h. */

#include "tunnel_fake.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

struct ptth_rq rqs[MAX_RQ];
static int nrq;
static void *holds[MAX_RQ];
static int nholds;
static struct ptth_out outs[16];
int nouts;
struct ptth_join joins[8];
int njoins;
bool join_fails;
ptth_timer *armed[64];
int narmed;

ptth_relay_config cfg;
ptth_core core;
ptth_resume_secret resume_secret;
int ends;
ptth_end_reason last_reason;
char last_detail[256];

ptth_rq *
rq_new(void)
{
    ck_assert_int_lt(nrq, MAX_RQ);
    ptth_rq *r = &rqs[nrq++];
    memset(r, 0, sizeof(*r));
    return r;
}

const char *
hdr(const ptth_rq *r, const char *name)
{
    for (int i = 0; i < r->nhdr; i++)
        if (strcmp(r->hname[i], name) == 0)
            return r->hvalue[i];
    return NULL;
}

/* The request goes away unanswered (its peer left, its stream was reset). */
void
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

int
armed_of(ptth_timer_kind kind)
{
    int n = 0;
    for (int i = 0; i < narmed; i++)
        n += armed[i]->kind == kind;
    return n;
}

/* Runs out the period of kind: fires every timer armed with it. */
int
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
fake_out_write_chunk(void *ctx, ptth_out *o, ptth_rq *chunk, size_t len, bool raw)
{
    (void)ctx;
    o->raw += raw;
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

static void
fake_out_abort(void *ctx, ptth_out *o)
{
    (void)ctx;
    ck_assert(!o->finished);
    o->finished = o->aborted = true;
}

static ptth_join *
fake_join_new(void *ctx, ptth_tunnel *t)
{
    (void)ctx;
    if (join_fails)
        return NULL;
    ck_assert_int_lt(njoins, 8);
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
    .out_abort = fake_out_abort,
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

void
tunnel_fake_setup(void)
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
    ptth_resume_secret_set(&resume_secret, "0123456789abcdef0123456789abcdef", 32);
    ptth_tunnel_resume_enable(&core, &resume_secret);
    core.on_end = on_end;
    core.on_end_data = &core;
}

void
tunnel_fake_teardown(void)
{
    ptth_tunnel_end_all(&core);
    ck_assert_uint_eq(core.ntunnels, 0);
    ck_assert_int_eq(narmed, 0); /* no timer outlives its object */
    ptth_core_dispose(&core);
    for (int i = 0; i < nholds; i++)
        free(holds[i]);
}

/* ---- helpers ------------------------------------------------------------------------ */

ptth_rq *
listen_on(const char *server, const char *ports)
{
    ptth_rq *r = rq_new();
    ptth_tunnel_listen(&core, r, server, strlen(server), ports, ports != NULL ? strlen(ports) : 0);
    return r;
}

ptth_tunnel *
connect_to(const char *server, const char *port, ptth_rq **out, bool upgrade)
{
    ptth_rq *r = rq_new();
    *out = r;
    return ptth_tunnel_connect(&core, r, server, strlen(server), port, strlen(port), "alice", "192.0.2.1:4242", upgrade,
                               PTTH_PROTO_TCP);
}

/* listen, connect, accept: an OPEN tunnel on the chunked path. */
ptth_tunnel *
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

ptth_out *
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
ptth_rq *
chunk_raw(ptth_tunnel *t, bool from_client, const char *seq, const char *fin, size_t len)
{
    ptth_rq *r = rq_new();
    ptth_chunk_in in = {seq, seq != NULL ? strlen(seq) : 0, fin, fin != NULL ? strlen(fin) : 0, len, NULL, 0};
    ptth_tunnel_on_chunk(t, r, from_client, &in);
    return r;
}

ptth_rq *
chunk(ptth_tunnel *t, bool from_client, unsigned seq, bool fin, size_t len)
{
    char s[24];
    snprintf(s, sizeof(s), "%u", seq);
    return chunk_raw(t, from_client, s, fin ? "1" : NULL, len);
}

/* The stream took everything written so far (h2o's proceed). */
void
drain(ptth_out *o)
{
    o->busy = false;
    ptth_tunnel_on_writable(o->t, o);
}

/* ---- the state machine ----------------------------------------------------------------- */

ptth_tunnel *
connect_accept(unsigned asks_c, unsigned asks_a, ptth_rq **connect, ptth_rq **accept)
{
    listen_on("foo", "ssh");
    *connect = rq_new();
    ptth_tunnel *t =
        ptth_tunnel_connect(&core, *connect, "foo", 3, "ssh", 3, "alice", "192.0.2.1:4242", asks_c, PTTH_PROTO_TCP);
    ck_assert_ptr_nonnull(t);
    *accept = rq_new();
    ptth_tunnel_on_accept(t, *accept, asks_a);
    return t;
}

ptth_resume_in
resume_fields(bool server_side, uint64_t received, uint64_t sent, bool upgrade)
{
    ptth_resume_in in = {
        .server_side = server_side,
        .port = "ssh",
        .port_len = 3,
        .proto = PTTH_PROTO_TCP,
        .client = "alice",
        .addr = server_side ? "198.51.100.2:5000" : "198.51.100.1:6000",
        .received = received,
        .sent = sent,
        .upgrade = upgrade,
    };
    return in;
}

ptth_rq *
resume_send(const char *id, const ptth_resume_in *in)
{
    ptth_rq *r = rq_new();
    ptth_tunnel_resume(&core, r, "foo", 3, id, in);
    return r;
}
