/*
 * tunnel_set.h: the open tunnels of a terminator (ptth_server's tunnels,
 * ptth_proxy's), and the wait for them to end when the program stops.
 *
 * The set does not own its tunnels: each embeds a ptth_tunnel_link and is
 * added once, removed once (before it is freed). Order is newest first.
 * Iterating while tunnels are removed is safe with PTTH_TUNNEL_SET_EACH,
 * which reads the next link before the body runs.
 *
 * Draining: ptth_tunnel_set_drain() says the program is stopping; once the
 * set is (or becomes) empty, on_drained runs once, from the loop (never
 * inside the remove that emptied it, whose caller is still unwinding).
 */
#ifndef PTTH_TUNNEL_SET_H
#define PTTH_TUNNEL_SET_H

#include <stdbool.h>
#include <stddef.h>

#include "loop.h"

typedef struct ptth_tunnel_link {
    struct ptth_tunnel_link *prev, *next;
    bool linked;
} ptth_tunnel_link;

typedef struct ptth_tunnel_set {
    ptth_loop *loop;
    ptth_tunnel_link *head;
    size_t count;
    bool draining;
    void (*on_drained)(void *data);
    void *drained_data;
    ptth_defer drained;
} ptth_tunnel_set;

/* The tunnel that embeds link as member. */
#define PTTH_TUNNEL_OF(link, type, member) ((type *)(void *)((char *)(link)-offsetof(type, member)))

/* for (each link l of set, newest first; l may be removed in the body) */
#define PTTH_TUNNEL_SET_EACH(set, l, nx)                                                                                           \
    for (ptth_tunnel_link *l = (set)->head, *nx = l != NULL ? l->next : NULL; l != NULL; l = nx, nx = l != NULL ? l->next : NULL)

void ptth_tunnel_set_init(ptth_tunnel_set *set, ptth_loop *loop);
/* Adds link (not in a set) at the front. */
void ptth_tunnel_set_add(ptth_tunnel_set *set, ptth_tunnel_link *link);
/* Removes link (in this set). */
void ptth_tunnel_set_remove(ptth_tunnel_set *set, ptth_tunnel_link *link);
/* From now on, on_drained(data) runs once the set is empty (deferred). */
void ptth_tunnel_set_drain(ptth_tunnel_set *set, void (*on_drained)(void *data), void *data);
/* Cancels a pending on_drained; the set must not be used afterwards (its
 * links are the owner's to free). */
void ptth_tunnel_set_fini(ptth_tunnel_set *set);

#endif
