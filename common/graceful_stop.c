/* graceful_stop.c: see graceful_stop.h. */
#include "graceful_stop.h"

#include <string.h>

void
ptth_graceful_stop_init(ptth_graceful_stop *g, ptth_loop *loop, long long drain_ms)
{
    g->loop = loop;
    g->drain_ms = drain_ms;
    g->draining = false;
    memset(&g->timer, 0, sizeof(g->timer));
}

static void
on_drain_timeout(ptth_timer *t)
{
    ptth_graceful_stop_drained(t->data);
}

bool
ptth_graceful_stop_begin(ptth_graceful_stop *g, bool can_drain)
{
    if (g->draining || !can_drain) {
        ptth_loop_stop(g->loop);
        return false;
    }
    g->draining = true;
    ptth_timer_start(g->loop, &g->timer, g->drain_ms, on_drain_timeout, g);
    return true;
}

void
ptth_graceful_stop_drained(void *data)
{
    ptth_graceful_stop *g = data;
    ptth_loop_stop(g->loop);
}

void
ptth_graceful_stop_dispose(ptth_graceful_stop *g)
{
    if (g->loop != NULL)
        ptth_timer_stop(g->loop, &g->timer);
}
