/*
 * cc_tunnel.c: see cc_tunnel.h.
 */
#include "cc_tunnel.h"

#include <assert.h>

#include "sysutil.h"

static void
deadline_push(ptth_cc_deadlines *q, ptth_cc_tunnel *t, long long at)
{
    assert(t->dl_prev == NULL && t->dl_next == NULL && q->head != t);
    t->deadline = at;
    t->dl_prev = q->tail;
    t->dl_next = NULL;
    if (q->tail != NULL)
        q->tail->dl_next = t;
    else
        q->head = t;
    q->tail = t;
}

static void
deadline_remove(ptth_cc_deadlines *q, ptth_cc_tunnel *t)
{
    if (t->dl_prev != NULL)
        t->dl_prev->dl_next = t->dl_next;
    else if (q->head == t)
        q->head = t->dl_next;
    else
        return; /* not queued (no open timeout) */
    if (t->dl_next != NULL)
        t->dl_next->dl_prev = t->dl_prev;
    else
        q->tail = t->dl_prev;
    t->dl_prev = t->dl_next = NULL;
    t->deadline = 0;
}

bool
ptth_cc_tunnel_step_ok(ptth_cc_tunnel_state from, ptth_cc_tunnel_state to)
{
    switch (to) {
    case PTTH_CC_T_OPENING:
        return from == PTTH_CC_T_NEW;
    case PTTH_CC_T_OPEN:
        return from == PTTH_CC_T_OPENING;
    case PTTH_CC_T_CLOSING:
        return from == PTTH_CC_T_OPEN;
    case PTTH_CC_T_DEAD:
        return from == PTTH_CC_T_OPENING || from == PTTH_CC_T_OPEN || from == PTTH_CC_T_CLOSING;
    default:
        return false;
    }
}

void
ptth_cc_tunnel_set_state(ptth_cc_mux *m, ptth_cc_tunnel *t, ptth_cc_tunnel_state next)
{
    assert(ptth_cc_tunnel_step_ok(t->state, next));
    if (t->state == PTTH_CC_T_OPENING)
        deadline_remove(&m->opening, t);
    else if (t->state == PTTH_CC_T_CLOSING)
        deadline_remove(&m->closing, t);
    assert(t->dl_prev == NULL && t->dl_next == NULL && t->deadline == 0);
    t->state = next;
    if (next == PTTH_CC_T_OPENING && m->cfg.open_timeout_ms > 0)
        deadline_push(&m->opening, t, ptth_now_ms() + m->cfg.open_timeout_ms);
    else if (next == PTTH_CC_T_CLOSING)
        deadline_push(&m->closing, t, ptth_now_ms() + PTTH_CC_LINGER_MS);
}

bool
ptth_cc_tunnel_is_open(const ptth_cc_tunnel *t)
{
    return t->state == PTTH_CC_T_OPEN || t->state == PTTH_CC_T_CLOSING;
}
