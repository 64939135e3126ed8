/*
 * instances.h: which terminator instance (common/instance.h, the
 * PTTH-Instance header) made each side of each resumable tunnel, and the
 * end of a restarted terminator's suspended tunnels (docs/protocol.md
 * "Restarted terminators"). Part of the core: no h2o.
 *
 * A slot is a terminator's (side, name, SLOT): the server name or the
 * client name whose key authorized the request, and the SLOT of its
 * PTTH-Instance. The core keeps, per slot, the list of the resumable
 * tunnels' sides that it made (core->instance_slots); a slot exists only
 * while it has sides, so there are at most two per tunnel.
 *
 * The rule (ptth_instances_seen): a request of a slot with a LIFE that is
 * not the one last seen there is a new process of that terminator. Each
 * tunnel side of the slot made by another life is then
 *   - lost when the tunnel is SUSPENDED and that side has no held resume:
 *     its process is gone, nobody will resume it;
 *   - live otherwise (JOINED, or its resume held): that life still runs.
 * With no live side, the lost ones end at once with reason peer_restarted.
 * A live side of another life means that two processes share the slot (a
 * collision, e.g. the same arguments on one host): the slot is marked
 * shared, logged once, and from then on ends nothing (a live process's
 * suspended tunnel is about to be resumed, the grace stays the rule).
 *
 * The calls go one way: instances.c ends tunnels through tunnel.c;
 * tunnel.c never calls it. tunnel_resume.c links a tunnel when it becomes
 * resumable, records a resume's instance, and unlinks at the end; the
 * HTTP side records the instance of a connect and of an accept and calls
 * ptth_instances_seen for every authorized request.
 */
#ifndef PTTH_RELAY_INSTANCES_H
#define PTTH_RELAY_INSTANCES_H

#include <stdbool.h>

#include "instance.h"
#include "tunnel.h"

/* An authorized request of the server (server_side) or client called name
 * (a valid name) carried inst (NULL or slot "": nothing happens). May end
 * tunnels (see above); returns how many ended. */
size_t ptth_instances_seen(ptth_core *core, bool server_side, const char *name, const ptth_instance *inst);

/* inst (NULL: none) made t's side: recorded, and when the side was linked
 * or t is resumable, (re)linked in inst's slot. */
void ptth_instances_record(ptth_tunnel *t, bool server_side, const ptth_instance *inst);

/* t is resumable from now on: links both sides that have an instance (a
 * slot that cannot be allocated is skipped: that side then waits for the
 * grace as without instances). */
void ptth_instances_link(ptth_tunnel *t);

/* t ends: unlinks both sides (a slot left with none is freed). */
void ptth_instances_unlink(ptth_tunnel *t);

#endif
