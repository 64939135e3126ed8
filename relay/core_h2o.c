/*
 * core_h2o.c: see core_h2o.h.
 */
#include "core_h2o.h"

#include <assert.h>
#include <stdalign.h>
#include <stddef.h>

#include "frame.h"
#include "h2obuf.h"
#include "joint.h"
#include "reply.h"
#include "fstream.h"
#include "tunnel.h"

static_assert(sizeof(h2o_timeout_entry_t) <= sizeof(((ptth_timer *)0)->store), "ptth_timer.store holds an h2o timeout entry");
static_assert(offsetof(ptth_timer, store) == 0, "the entry is the timer's first member");

/* The core's record of a held request starts this far into the hold's
 * memory (behind the ptth_hold, aligned for anything). */
#define HELD_OFFSET ((sizeof(ptth_hold) + alignof(max_align_t) - 1) & ~(alignof(max_align_t) - 1))

static h2o_req_t *
req_of(ptth_rq *rq)
{
    return (h2o_req_t *)(void *)rq;
}

static ptth_held *
held_of(ptth_hold *hold)
{
    return (ptth_held *)(void *)((char *)hold + HELD_OFFSET);
}

static ptth_hold *
hold_of(ptth_held *h)
{
    return (ptth_hold *)(void *)((char *)h - HELD_OFFSET);
}

/* ---- requests ------------------------------------------------------------------ */

static void
on_hold_gone(ptth_hold *hold)
{
    ptth_held *h = held_of(hold);
    h->rq = NULL;
    if (h->on_gone != NULL)
        h->on_gone(h);
}

static ptth_held *
io_hold(void *ctx, ptth_rq *rq, size_t size, ptth_held_cb on_gone, void *owner)
{
    ptth_relay *relay = ctx;
    ptth_hold *hold = ptth_hold_new(req_of(rq), HELD_OFFSET + size, on_hold_gone);
    ptth_held *h = held_of(hold);
    h->rq = rq;
    h->on_gone = on_gone;
    h->owner = owner;
    ptth_hold_watch_peer(hold, &relay->peers);
    return h;
}

static ptth_rq *
io_release(void *ctx, ptth_held *h)
{
    (void)ctx;
    return ptth_rq_of(ptth_hold_release(hold_of(h)));
}

static void
io_header(void *ctx, ptth_rq *rq, const char *name, const char *value, size_t len)
{
    (void)ctx;
    ptth_reply_header(req_of(rq), name, value, len);
}

static void
io_reply(void *ctx, ptth_rq *rq, int status, unsigned retry_after, const char *body)
{
    (void)ctx;
    if (retry_after != 0)
        ptth_reply_retry(req_of(rq), status, retry_after, body);
    else
        ptth_reply(req_of(rq), status, body);
}

static bool
io_peer_closed(void *ctx, ptth_rq *rq)
{
    (void)ctx;
    return ptth_req_peer_closed(req_of(rq));
}

/* ---- timers ------------------------------------------------------------------- */

static void
on_entry(h2o_timeout_entry_t *entry)
{
    ptth_timer_fire((ptth_timer *)(void *)entry);
}

static void
io_timer_arm(void *ctx, ptth_timer *t, ptth_timer_kind kind)
{
    ptth_relay *relay = ctx;
    h2o_timeout_t *const periods[PTTH_TIMER__COUNT] = {&relay->connect_timeout, &relay->idle_timeout, &relay->listen_timeout,
                                                       &relay->ctx.zero_timeout, &relay->resume_timeout};
    h2o_timeout_entry_t *entry = (h2o_timeout_entry_t *)(void *)&t->store;
    entry->cb = on_entry;
    h2o_timeout_link(relay->ctx.loop, periods[kind], entry);
}

static void
io_timer_disarm(void *ctx, ptth_timer *t)
{
    (void)ctx;
    h2o_timeout_unlink((h2o_timeout_entry_t *)(void *)&t->store);
}

/* ---- framed streams ---------------------------------------------------------------- */

static ptth_fstream *
stream_of(ptth_out *o)
{
    return (ptth_fstream *)(void *)o;
}

static void
on_stream_writable(ptth_fstream *s, void *owner)
{
    ptth_tunnel_on_writable(owner, (ptth_out *)(void *)s);
}

static void
on_stream_broken(ptth_fstream *s, void *owner)
{
    ptth_tunnel_on_broken(owner, (ptth_out *)(void *)s);
}

static const ptth_fstream_callbacks stream_callbacks = {on_stream_writable, on_stream_broken};

static ptth_out *
io_out_open(void *ctx, ptth_rq *rq, ptth_tunnel *t)
{
    ptth_relay *relay = ctx;
    ptth_fstream *s =
        ptth_fstream_open(req_of(rq), relay->ctx.loop, &relay->heartbeat, &stream_callbacks, t, &relay->nstreams, &relay->peers);
    return (ptth_out *)(void *)s;
}

static int
io_out_write(void *ctx, ptth_out *o, uint8_t type, const void *payload, size_t len)
{
    (void)ctx;
    return ptth_fstream_write(stream_of(o), type, payload, len);
}

/* Over HTTP/2 the stream takes the request's body buffer and h2o sends from
 * it (no copy; the buffer outlives the chunk's request, which may go away
 * before h2o has sent the bytes); over HTTP/1 the bytes are copied. */
static int
io_out_write_chunk(void *ctx, ptth_out *o, ptth_rq *chunk, size_t len, bool raw)
{
    (void)ctx;
    h2o_req_t *req = req_of(chunk);
    if (raw) /* the body is frames already: copied as it is */
        return ptth_fstream_write_raw(stream_of(o), req->entity.base, len);
    h2o_buffer_t *body = ptth_h2obuf_take_body(req);
    if (body != NULL)
        return ptth_fstream_write_owned(stream_of(o), PTTH_FRAME_DATA, &body);
    return ptth_fstream_write(stream_of(o), PTTH_FRAME_DATA, req->entity.base, len);
}

static void
io_out_flush(void *ctx, ptth_out *o)
{
    (void)ctx;
    ptth_fstream_flush(stream_of(o));
}

static bool
io_out_idle(void *ctx, ptth_out *o)
{
    (void)ctx;
    return ptth_fstream_idle(stream_of(o));
}

static void
io_out_finish(void *ctx, ptth_out *o)
{
    (void)ctx;
    ptth_fstream_finish(stream_of(o));
}

static void
io_out_abort(void *ctx, ptth_out *o)
{
    (void)ctx;
    ptth_fstream_abort(stream_of(o));
}

/* ---- the upgraded path ----------------------------------------------------------------- */

static void
on_joint_moved(ptth_joint *j, void *owner, ptth_joint_side from, size_t n)
{
    (void)j;
    ptth_tunnel_on_moved(owner, from == PTTH_JOINT_CLIENT, n);
}

static void
on_joint_end(ptth_joint *j, void *owner, bool clean, const char *detail)
{
    ptth_tunnel_on_joint_end(owner, clean, ptth_joint_saw_eof(j), detail);
}

static const ptth_joint_callbacks joint_callbacks = {on_joint_moved, on_joint_end};

static ptth_join *
io_join_new(void *ctx, ptth_tunnel *t)
{
    (void)ctx;
    return (ptth_join *)(void *)ptth_joint_new(&joint_callbacks, t);
}

static void
io_join_start(void *ctx, ptth_join *j, ptth_rq *connect, ptth_rq *accept)
{
    (void)ctx;
    ptth_joint_upgrade((ptth_joint *)(void *)j, PTTH_JOINT_CLIENT, req_of(connect));
    ptth_joint_upgrade((ptth_joint *)(void *)j, PTTH_JOINT_SERVER, req_of(accept));
}

static void
io_join_close(void *ctx, ptth_join *j, bool reset)
{
    (void)ctx;
    ptth_joint_close((ptth_joint *)(void *)j, reset);
}

static const ptth_core_io h2o_io = {
    .hold = io_hold,
    .release = io_release,
    .header = io_header,
    .reply = io_reply,
    .peer_closed = io_peer_closed,
    .timer_arm = io_timer_arm,
    .timer_disarm = io_timer_disarm,
    .out_open = io_out_open,
    .out_write = io_out_write,
    .out_write_chunk = io_out_write_chunk,
    .out_flush = io_out_flush,
    .out_idle = io_out_idle,
    .out_finish = io_out_finish,
    .out_abort = io_out_abort,
    .join_new = io_join_new,
    .join_start = io_join_start,
    .join_close = io_join_close,
};

void
ptth_core_h2o_init(ptth_relay *relay)
{
    ptth_core_init(&relay->core, relay->cfg, &h2o_io, relay);
}
