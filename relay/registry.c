/*
 * registry.c: see registry.h.
 */
#include "registry.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static void
on_offline_timer(ptth_timer *timer)
{
    ptth_srv *srv = PTTH_CONTAINER_OF(timer, ptth_srv, offline_timer);
    if (srv->nlistens == 0 && srv->online) {
        srv->online = false;
        ptth_log_info("event=server_offline server=%s", srv->name);
    }
}

ptth_srv *
ptth_srv_get(ptth_core *core, const char *name, size_t len)
{
    return ptth_table_get(&core->servers, name, len);
}

ptth_srv *
ptth_srv_get_or_create(ptth_core *core, const char *name, size_t len)
{
    ptth_srv *srv = ptth_srv_get(core, name, len);
    if (srv != NULL)
        return srv;
    if (len > PTTH_NAME_MAX || (srv = calloc(1, sizeof(*srv))) == NULL)
        return NULL;
    srv->core = core;
    memcpy(srv->name, name, len);
    ptth_list_init(&srv->listens);
    ptth_list_init(&srv->waiting);
    ptth_timer_init(&srv->offline_timer, on_offline_timer);
    if (ptth_table_put(&core->servers, srv->name, len, srv) != 0) {
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
    int err = -EINVAL;
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
            if ((ports[n] = strndup(value + a, b - a)) == NULL) {
                err = -ENOMEM;
                goto Bad;
            }
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
    return err;
}

bool
ptth_srv_offers(const ptth_srv *srv, const char *port, size_t len)
{
    for (size_t i = 0; i < srv->nports; i++)
        if (strlen(srv->ports[i]) == len && memcmp(srv->ports[i], port, len) == 0)
            return true;
    return false;
}

void
ptth_srv_mark_online(ptth_srv *srv)
{
    if (!srv->online) {
        srv->online = true;
        ptth_log_info("event=server_online server=%s ports=%zu", srv->name, srv->nports);
    }
}

/* The online window of --listen-timeout starts now (no listen is held). */
static void
start_online_window(ptth_srv *srv)
{
    ptth_timer_arm(srv->core, &srv->offline_timer, PTTH_TIMER_LISTEN);
}

/* A listen stopped being outstanding: when it was the last, the online
 * window starts. */
static void
listen_left(ptth_listen *l)
{
    ptth_srv *srv = l->srv;
    ptth_list_unlink(&l->link);
    ptth_timer_disarm(srv->core, &l->timer);
    srv->nlistens--;
    if (srv->nlistens == 0)
        start_online_window(srv);
}

static void
on_listen_gone(ptth_held *h)
{
    listen_left((ptth_listen *)h);
}

static void
on_listen_timeout(ptth_timer *timer)
{
    ptth_listen *l = PTTH_CONTAINER_OF(timer, ptth_listen, timer);
    ptth_srv *srv = l->srv;
    listen_left(l);
    ptth_core_max_chunk(srv->core, l->held.rq);
    ptth_core_answer(srv->core, &l->held, 204, 0, NULL);
}

void
ptth_srv_hold_listen(ptth_srv *srv, ptth_rq *rq)
{
    ptth_listen *l = (ptth_listen *)ptth_core_hold(srv->core, rq, sizeof(ptth_listen), on_listen_gone, srv);
    l->srv = srv;
    ptth_timer_init(&l->timer, on_listen_timeout);
    ptth_list_push(&srv->listens, &l->link);
    srv->nlistens++;
    ptth_timer_disarm(srv->core, &srv->offline_timer);
    ptth_timer_arm(srv->core, &l->timer, PTTH_TIMER_LISTEN);
}

void
ptth_srv_listen_used(ptth_srv *srv)
{
    if (srv->nlistens == 0)
        start_online_window(srv);
}

ptth_listen *
ptth_srv_take_listen(ptth_srv *srv)
{
    while (!ptth_list_empty(&srv->listens)) {
        ptth_listen *l = PTTH_CONTAINER_OF(srv->listens.next, ptth_listen, link);
        listen_left(l);
        if (!srv->core->io->peer_closed(srv->core->io_ctx, l->held.rq))
            return l;
        /* its HTTP/1 connection is gone: answering lets h2o clean it up */
        ptth_log_debug("event=listen_dropped server=%s reason=\"peer closed\"", srv->name);
        ptth_core_answer(srv->core, &l->held, 204, 0, NULL);
    }
    return NULL;
}

void
ptth_srv_wait(ptth_srv *srv, ptth_list *link)
{
    ptth_list_push(&srv->waiting, link);
}

void
ptth_srv_unwait(ptth_list *link)
{
    if (ptth_list_linked(link))
        ptth_list_unlink(link);
}

ptth_list *
ptth_srv_next_waiting(ptth_srv *srv)
{
    if (ptth_list_empty(&srv->waiting))
        return NULL;
    ptth_list *link = srv->waiting.next;
    ptth_list_unlink(link);
    return link;
}

void
ptth_srv_drop_listens(ptth_srv *srv, int status, const char *body)
{
    ptth_listen *l;
    while ((l = ptth_srv_take_listen(srv)) != NULL)
        ptth_core_answer(srv->core, &l->held, status, 0, body);
}

void
ptth_srv_free(ptth_srv *srv)
{
    ptth_table_remove(&srv->core->servers, srv->name, strlen(srv->name));
    ptth_srv_drop_listens(srv, 503, "relay shutting down\n");
    ptth_timer_disarm(srv->core, &srv->offline_timer);
    free_ports(srv->ports, srv->nports);
    free(srv);
}
