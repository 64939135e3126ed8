/*
 * registry.c: see registry.h.
 */
#include "registry.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "tunnel.h"

static void
on_offline_timer(h2o_timeout_entry_t *entry)
{
    ptth_srv *srv = H2O_STRUCT_FROM_MEMBER(ptth_srv, offline_timer, entry);
    if (srv->nlistens == 0 && srv->online) {
        srv->online = false;
        ptth_log_info("event=server_offline server=%s", srv->name);
    }
}

ptth_srv *
ptth_srv_get(ptth_relay *relay, const char *name, size_t len)
{
    return ptth_table_get(&relay->servers, name, len);
}

ptth_srv *
ptth_srv_get_or_create(ptth_relay *relay, const char *name, size_t len)
{
    ptth_srv *srv = ptth_srv_get(relay, name, len);
    if (srv != NULL)
        return srv;
    if (len > PTTH_NAME_MAX || (srv = calloc(1, sizeof(*srv))) == NULL)
        return NULL;
    srv->relay = relay;
    memcpy(srv->name, name, len);
    h2o_linklist_init_anchor(&srv->listens);
    h2o_linklist_init_anchor(&srv->waiting);
    srv->offline_timer.cb = on_offline_timer;
    if (ptth_table_put(&relay->servers, srv->name, len, srv) != 0) {
        free(srv);
        return NULL;
    }
    return srv;
}

static void
free_ports(char **ports, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(ports[i]);
    free(ports);
}

int
ptth_srv_set_ports(ptth_srv *srv, const char *value, size_t len)
{
    char **ports = calloc(PTTH_MAX_PORTS, sizeof(*ports));
    size_t n = 0, i = 0;
    if (ports == NULL)
        return -ENOMEM;
    while (i <= len) {
        size_t start = i;
        while (i < len && value[i] != ',')
            i++;
        size_t a = start, b = i;
        while (a < b && (value[a] == ' ' || value[a] == '\t'))
            a++;
        while (b > a && (value[b - 1] == ' ' || value[b - 1] == '\t'))
            b--;
        if (n == PTTH_MAX_PORTS || !ptth_name_valid(value + a, b - a))
            goto Bad;
        bool dup = false;
        for (size_t k = 0; k < n; k++)
            if (strlen(ports[k]) == b - a && memcmp(ports[k], value + a, b - a) == 0)
                dup = true;
        if (!dup) {
            if ((ports[n] = strndup(value + a, b - a)) == NULL)
                goto Bad;
            n++;
        }
        i++;
    }
    free_ports(srv->ports, srv->nports);
    srv->ports = ports;
    srv->nports = n;
    return 0;
Bad:
    free_ports(ports, n);
    return -EINVAL;
}

bool
ptth_srv_offers(const ptth_srv *srv, const char *port, size_t len)
{
    for (size_t i = 0; i < srv->nports; i++)
        if (strlen(srv->ports[i]) == len && memcmp(srv->ports[i], port, len) == 0)
            return true;
    return false;
}

static void
mark_online(ptth_srv *srv)
{
    if (!srv->online) {
        srv->online = true;
        ptth_log_info("event=server_online server=%s ports=%zu", srv->name, srv->nports);
    }
}

/* A listen stopped being outstanding: when it was the last, the online window
 * of --listen-timeout starts now. */
static void
listen_left(ptth_srv *srv)
{
    srv->nlistens--;
    if (srv->nlistens == 0) {
        h2o_timeout_unlink(&srv->offline_timer);
        h2o_timeout_link(srv->relay->ctx.loop, &srv->relay->listen_timeout, &srv->offline_timer);
    }
}

static void
on_listen_gone(ptth_hold *hold)
{
    ptth_srv *srv = hold->owner;
    h2o_linklist_unlink(&hold->link);
    listen_left(srv);
}

static void
on_listen_timeout(h2o_timeout_entry_t *entry)
{
    ptth_hold *hold = H2O_STRUCT_FROM_MEMBER(ptth_hold, timer, entry);
    ptth_srv *srv = hold->owner;
    h2o_linklist_unlink(&hold->link);
    listen_left(srv);
    ptth_reply_max_chunk(hold->req, srv->relay->cfg->max_chunk);
    ptth_hold_reply(hold, 204, NULL);
}

void
ptth_srv_on_listen(ptth_srv *srv, h2o_req_t *req)
{
    mark_online(srv);
    while (!h2o_linklist_is_empty(&srv->waiting)) {
        ptth_tunnel *t = H2O_STRUCT_FROM_MEMBER(ptth_tunnel, wait_link, srv->waiting.next);
        ptth_srv_unwait(srv, t);
        if (t->connect != NULL && ptth_req_peer_closed(t->connect->req)) {
            ptth_tunnel_end(t, PTTH_END_RST, "client went away before the tunnel opened");
            continue;
        }
        if (srv->nlistens == 0) {
            h2o_timeout_unlink(&srv->offline_timer);
            h2o_timeout_link(srv->relay->ctx.loop, &srv->relay->listen_timeout, &srv->offline_timer);
        }
        ptth_tunnel_match(t, req);
        return;
    }
    ptth_hold *hold = ptth_hold_new(req, sizeof(ptth_hold), on_listen_gone, srv);
    ptth_hold_watch_peer(hold, &srv->relay->peers);
    h2o_linklist_insert(&srv->listens, &hold->link);
    srv->nlistens++;
    h2o_timeout_unlink(&srv->offline_timer);
    hold->timer.cb = on_listen_timeout;
    h2o_timeout_link(srv->relay->ctx.loop, &srv->relay->listen_timeout, &hold->timer);
}

ptth_hold *
ptth_srv_take_listen(ptth_srv *srv)
{
    while (!h2o_linklist_is_empty(&srv->listens)) {
        ptth_hold *hold = H2O_STRUCT_FROM_MEMBER(ptth_hold, link, srv->listens.next);
        h2o_linklist_unlink(&hold->link);
        h2o_timeout_unlink(&hold->timer);
        listen_left(srv);
        if (!ptth_req_peer_closed(hold->req))
            return hold;
        /* its HTTP/1 connection is gone: answering lets h2o clean it up */
        ptth_log_debug("event=listen_dropped server=%s reason=\"peer closed\"", srv->name);
        ptth_hold_reply(hold, 204, NULL);
    }
    return NULL;
}

void
ptth_srv_wait(ptth_srv *srv, ptth_tunnel *t)
{
    h2o_linklist_insert(&srv->waiting, &t->wait_link);
}

void
ptth_srv_unwait(ptth_srv *srv, ptth_tunnel *t)
{
    (void)srv;
    if (h2o_linklist_is_linked(&t->wait_link))
        h2o_linklist_unlink(&t->wait_link);
}

void
ptth_srv_drop_listens(ptth_srv *srv, int status, const char *body)
{
    ptth_hold *hold;
    while ((hold = ptth_srv_take_listen(srv)) != NULL)
        ptth_hold_reply(hold, status, body);
}

void
ptth_srv_free(ptth_srv *srv)
{
    ptth_srv_drop_listens(srv, 503, "relay shutting down\n");
    h2o_timeout_unlink(&srv->offline_timer);
    free_ports(srv->ports, srv->nports);
    free(srv);
}
