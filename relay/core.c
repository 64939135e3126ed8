/*
 * core.c: see core.h. The helpers every part of the core uses to act
 * through its io table.
 */
#include "core.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *
ptth_end_reason_name(ptth_end_reason r)
{
    static const char *const names[] = {"fin", "rst", "idle", "backend", "timeout", "shutdown", "resume_timeout", "peer_restarted"};
    _Static_assert(sizeof(names) / sizeof(names[0]) == PTTH_END__COUNT, "a name per end reason");
    return (unsigned)r < PTTH_END__COUNT ? names[r] : "unknown";
}

const char *
ptth_resume_refusal_name(ptth_resume_refusal r)
{
    static const char *const names[] = {"off",        "bad_proof", "ended", "not_resumable", "superseded",
                                        "timed_out", "limit",     "bad_request"};
    _Static_assert(sizeof(names) / sizeof(names[0]) == PTTH_REFUSED__COUNT, "a name per refusal");
    return (unsigned)r < PTTH_REFUSED__COUNT ? names[r] : "unknown";
}

void
ptth_core_init(ptth_core *core, const ptth_relay_config *cfg, const ptth_core_io *io, void *io_ctx)
{
    memset(core, 0, sizeof(*core));
    core->cfg = cfg;
    core->io = io;
    core->io_ctx = io_ctx;
    ptth_table_init(&core->servers);
    ptth_table_init(&core->tunnels);
    ptth_table_init(&core->instance_slots);
}

void
ptth_core_dispose(ptth_core *core)
{
    ptth_table_dispose(&core->servers);
    ptth_table_dispose(&core->tunnels);
    ptth_table_dispose(&core->instance_slots); /* empty: every tunnel ended first, and its slots went with it */
    free(core->ended);
    core->ended = NULL;
}

ptth_held *
ptth_core_hold(ptth_core *core, ptth_rq *rq, size_t size, ptth_held_cb on_gone, void *owner)
{
    assert(size >= sizeof(ptth_held));
    ptth_held *h = core->io->hold(core->io_ctx, rq, size, on_gone, owner);
    assert(h->rq == rq && h->on_gone == on_gone && h->owner == owner);
    return h;
}

ptth_rq *
ptth_core_release(ptth_core *core, ptth_held *h)
{
    if (h->rq == NULL)
        return NULL;
    ptth_rq *rq = core->io->release(core->io_ctx, h);
    h->rq = NULL;
    return rq;
}

void
ptth_core_answer(ptth_core *core, ptth_held *h, int status, unsigned retry_after, const char *body)
{
    ptth_rq *rq = ptth_core_release(core, h);
    if (rq != NULL)
        core->io->reply(core->io_ctx, rq, status, retry_after, body);
}

void
ptth_core_reply(ptth_core *core, ptth_rq *rq, int status, unsigned retry_after, const char *body)
{
    core->io->reply(core->io_ctx, rq, status, retry_after, body);
}

void
ptth_core_header(ptth_core *core, ptth_rq *rq, const char *name, const char *value)
{
    core->io->header(core->io_ctx, rq, name, value, strlen(value));
}

void
ptth_core_max_chunk(ptth_core *core, ptth_rq *rq)
{
    char v[24];
    snprintf(v, sizeof(v), "%" PRIu64, core->cfg->max_chunk);
    ptth_core_header(core, rq, "ptth-max-chunk", v);
}

void
ptth_timer_init(ptth_timer *t, ptth_timer_cb cb)
{
    memset(t, 0, sizeof(*t));
    t->cb = cb;
}

void
ptth_timer_arm(ptth_core *core, ptth_timer *t, ptth_timer_kind kind)
{
    assert(t->cb != NULL && (unsigned)kind < PTTH_TIMER__COUNT);
    ptth_timer_disarm(core, t);
    core->io->timer_arm(core->io_ctx, t, kind);
    t->armed = true;
    t->kind = kind;
}

void
ptth_timer_disarm(ptth_core *core, ptth_timer *t)
{
    if (!t->armed)
        return;
    core->io->timer_disarm(core->io_ctx, t);
    t->armed = false;
}

void
ptth_timer_fire(ptth_timer *t)
{
    assert(t->armed);
    t->armed = false;
    t->cb(t);
}
