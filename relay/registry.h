/*
 * registry.h: what the relay knows about each server at run time: the port
 * names it offers (PTTH-Ports of its last listen), its outstanding listens
 * (FIFO), the connects waiting for a listen (FIFO), its open tunnels, and
 * whether it is online.
 *
 * Online (SPEC §4): a listen is outstanding, or one was in the last
 * --listen-timeout seconds. The relay logs event=server_online when a server
 * becomes online and event=server_offline when the window runs out.
 *
 * A ptth_srv is created by the server's first listen, lives in relay->servers
 * and is freed at shutdown or when a reload removes the server. Listens are
 * ptth_holds (reply.h) linked in srv->listens; waiting tunnels are linked by
 * their wait_link.
 */
#ifndef PTTH_RELAY_REGISTRY_H
#define PTTH_RELAY_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>

#include "names.h"
#include "relay.h"
#include "reply.h"

#define PTTH_MAX_PORTS 256

typedef struct ptth_tunnel ptth_tunnel;

typedef struct ptth_srv {
    ptth_relay *relay;
    char name[PTTH_NAME_MAX + 1];
    char **ports; /* NULL until the first PTTH-Ports */
    size_t nports;
    h2o_linklist_t listens; /* ptth_hold.link, oldest first */
    size_t nlistens;
    h2o_linklist_t waiting; /* ptth_tunnel.wait_link, oldest first */
    size_t ntunnels;        /* tunnels of this server, in any state */
    bool online;
    h2o_timeout_entry_t offline_timer;
} ptth_srv;

ptth_srv *ptth_srv_get(ptth_relay *relay, const char *name, size_t len);
/* NULL when memory ran out. */
ptth_srv *ptth_srv_get_or_create(ptth_relay *relay, const char *name, size_t len);

/* Parses a PTTH-Ports value ("ssh, web"): 1..PTTH_MAX_PORTS valid names,
 * comma separated, spaces allowed around them. Replaces the known ports.
 * 0 or -EINVAL (nothing changed). */
int ptth_srv_set_ports(ptth_srv *srv, const char *value, size_t len);

/* true when the server announced this port (false when it never did). */
bool ptth_srv_offers(const ptth_srv *srv, const char *port, size_t len);

/* A listen came in: pairs it with the oldest waiting connect, or holds it up
 * to --listen-timeout (then 204). Marks the server online. */
void ptth_srv_on_listen(ptth_srv *srv, h2o_req_t *req);

/* Takes the oldest outstanding listen for a new tunnel; NULL when none. The
 * returned hold's request is still unanswered. */
ptth_hold *ptth_srv_take_listen(ptth_srv *srv);

/* Queues a tunnel that waits for a listen / removes it from the queue. */
void ptth_srv_wait(ptth_srv *srv, ptth_tunnel *t);
void ptth_srv_unwait(ptth_srv *srv, ptth_tunnel *t);

/* Answers every outstanding listen with status (reload, shutdown). */
void ptth_srv_drop_listens(ptth_srv *srv, int status, const char *body);

/* Unlinks timers and frees srv (not its tunnels: end those first). */
void ptth_srv_free(ptth_srv *srv);

#endif
