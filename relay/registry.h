/*
 * registry.h: what the relay knows about each server at run time: the port
 * names it offers (PTTH-Ports of its last listen), its outstanding listens
 * (FIFO), the tunnels waiting for a listen (FIFO), how many tunnels it has,
 * and whether it is online. Part of the core (core.h): no h2o.
 *
 * Online (SPEC §4): a listen is outstanding, or one was in the last
 * --listen-timeout seconds. The relay logs event=server_online when a server
 * becomes online and event=server_offline when the window runs out.
 *
 * The registry knows nothing of tunnels but the queue links and the count
 * they keep here: tunnel.c matches listens with connects and calls in; the
 * registry never calls tunnel.c.
 *
 * A ptth_srv is created by the server's first listen, lives in
 * core->servers and is freed at shutdown or when a reload removes the
 * server. Listens are held requests (ptth_listen) linked in srv->listens.
 */
#ifndef PTTH_RELAY_REGISTRY_H
#define PTTH_RELAY_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>

#include "core.h"
#include "names.h"

#define PTTH_MAX_PORTS 256

typedef struct ptth_srv {
    ptth_core *core;
    char name[PTTH_NAME_MAX + 1];
    char **ports; /* NULL until the first PTTH-Ports */
    size_t nports;
    ptth_list listens; /* ptth_listen.link, oldest first */
    size_t nlistens;
    ptth_list waiting; /* the waiting tunnels' links, oldest first */
    size_t ntunnels;   /* tunnels of this server, in any state (kept by tunnel.c) */
    bool online;
    ptth_timer offline_timer; /* the online window after the last listen left */
} ptth_srv;

/* A held listen: answered 204 after --listen-timeout, or given to a tunnel. */
typedef struct ptth_listen {
    ptth_held held; /* first */
    ptth_srv *srv;
    ptth_list link;
    ptth_timer timer;
} ptth_listen;

ptth_srv *ptth_srv_get(ptth_core *core, const char *name, size_t len);
/* NULL when memory ran out or the name is too long. */
ptth_srv *ptth_srv_get_or_create(ptth_core *core, const char *name, size_t len);

/* Parses a PTTH-Ports value ("ssh, web"): 1..PTTH_MAX_PORTS valid names,
 * comma separated, spaces allowed around them. Replaces the known ports.
 * 0, -EINVAL or -ENOMEM (nothing changed). */
int ptth_srv_set_ports(ptth_srv *srv, const char *value, size_t len);

/* true when the server announced this port (false when it never did). */
bool ptth_srv_offers(const ptth_srv *srv, const char *port, size_t len);

/* A listen came in: the server is online from now on. */
void ptth_srv_mark_online(ptth_srv *srv);

/* Holds a listen up to --listen-timeout (then 204 with PTTH-Max-Chunk). */
void ptth_srv_hold_listen(ptth_srv *srv, ptth_rq *rq);

/* A listen was answered at once (a tunnel waited for it): when none is
 * outstanding, the online window starts again now. */
void ptth_srv_listen_used(ptth_srv *srv);

/* Takes the oldest outstanding listen whose peer is still there (closed ones
 * are answered 204 and dropped); NULL when none. The returned listen is
 * still held: release or answer it. */
ptth_listen *ptth_srv_take_listen(ptth_srv *srv);

/* The FIFO of tunnels that wait for a listen (their links). */
void ptth_srv_wait(ptth_srv *srv, ptth_list *link);
/* Unlinks link when it is queued. */
void ptth_srv_unwait(ptth_list *link);
/* Unlinks and returns the oldest waiting link; NULL when none. */
ptth_list *ptth_srv_next_waiting(ptth_srv *srv);

/* Answers every outstanding listen with status (reload, shutdown). */
void ptth_srv_drop_listens(ptth_srv *srv, int status, const char *body);

/* Removes srv from core->servers, answers its listens 503 and frees it (its
 * tunnels must have ended). */
void ptth_srv_free(ptth_srv *srv);

#endif
