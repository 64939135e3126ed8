/* tunnel_set.c: a terminator's open tunnels; see tunnel_set.h. */
#include "tunnel_set.h"

#include <assert.h>
#include <string.h>

void
ptth_tunnel_set_init(ptth_tunnel_set *set, ptth_loop *loop)
{
    memset(set, 0, sizeof(*set));
    set->loop = loop;
}

static void
on_drained_defer(ptth_defer *d)
{
    ptth_tunnel_set *set = d->data;
    if (set->on_drained != NULL)
        set->on_drained(set->drained_data);
}

static void
drained_maybe(ptth_tunnel_set *set)
{
    if (set->draining && set->count == 0)
        ptth_defer_call(set->loop, &set->drained, on_drained_defer, set);
}

void
ptth_tunnel_set_add(ptth_tunnel_set *set, ptth_tunnel_link *link)
{
    assert(!link->linked);
    link->prev = NULL;
    link->next = set->head;
    if (set->head != NULL)
        set->head->prev = link;
    set->head = link;
    link->linked = true;
    set->count++;
}

void
ptth_tunnel_set_remove(ptth_tunnel_set *set, ptth_tunnel_link *link)
{
    assert(link->linked && set->count > 0);
    if (link->prev != NULL)
        link->prev->next = link->next;
    else
        set->head = link->next;
    if (link->next != NULL)
        link->next->prev = link->prev;
    link->prev = link->next = NULL;
    link->linked = false;
    set->count--;
    drained_maybe(set);
}

void
ptth_tunnel_set_drain(ptth_tunnel_set *set, void (*on_drained)(void *data), void *data)
{
    set->draining = true;
    set->on_drained = on_drained;
    set->drained_data = data;
    drained_maybe(set);
}

void
ptth_tunnel_set_fini(ptth_tunnel_set *set)
{
    set->draining = false;
    ptth_defer_cancel(set->loop, &set->drained);
}
