/*
 * listener.c: see listener.h.
 */
#include "listener.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "h2obuf.h"
#include "log.h"
#include "sysutil.h"

struct ptth_listener {
    ptth_listeners *owner;
    h2o_socket_t *sock;
    char addr[80];
};

typedef struct tracked_conn {
    h2o_linklist_t link;
    h2o_socket_t *sock;
    ptth_listeners *owner;
} tracked_conn;

#define ACCEPTS_PER_WAKEUP 32

static void
on_conn_close(void *data)
{
    tracked_conn *tc = data;
    h2o_linklist_unlink(&tc->link);
    tc->owner->nconns--;
    free(tc);
}

static void
on_accept(h2o_socket_t *listener, const char *err)
{
    ptth_listener *l = listener->data;
    if (err != NULL)
        return;
    for (int i = 0; i < ACCEPTS_PER_WAKEUP; i++) {
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (sock == NULL)
            return;
        ptth_set_nodelay(h2o_socket_get_fd(sock));
        tracked_conn *tc = calloc(1, sizeof(*tc));
        if (tc == NULL) {
            h2o_socket_close(sock);
            continue;
        }
        tc->sock = sock;
        tc->owner = l->owner;
        h2o_linklist_insert(&l->owner->conns, &tc->link);
        l->owner->nconns++;
        sock->on_close.cb = on_conn_close;
        sock->on_close.data = tc;
        ptth_h2obuf_on_accept(sock);
        h2o_accept(&l->owner->accept_ctx, sock);
    }
}

static int
open_one(ptth_listeners *ls, h2o_context_t *ctx, const char *spec, char *err, size_t errlen)
{
    char host[256], portstr[8];
    uint16_t port;
    struct addrinfo hints, *ai = NULL;
    int fd = -1, on = 1, r;

    if (ptth_split_host_port(spec, host, sizeof(host), &port, true) != 0) {
        snprintf(err, errlen, "--listen: bad address '%s'", spec);
        return -1;
    }
    snprintf(portstr, sizeof(portstr), "%u", (unsigned)port);
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
    if ((r = getaddrinfo(host, portstr, &hints, &ai)) != 0) {
        snprintf(err, errlen, "--listen: bad address '%s': %s", spec, gai_strerror(r));
        return -1;
    }
    if ((fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        goto Fail;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0)
        goto Fail;
    if (ai->ai_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) != 0)
        goto Fail;
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0 || ptth_set_nonblocking(fd) != 0)
        goto Fail;
    freeaddrinfo(ai);
    ai = NULL;

    ptth_listener *l = calloc(1, sizeof(*l));
    ptth_listener **items = realloc(ls->items, (ls->count + 1) * sizeof(*items));
    if (l == NULL || items == NULL) {
        free(l);
        if (items != NULL)
            ls->items = items;
        close(fd);
        snprintf(err, errlen, "--listen %s: out of memory", spec);
        return -1;
    }
    ls->items = items;
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sslen) == 0)
        ptth_format_sockaddr((struct sockaddr *)&ss, l->addr, sizeof(l->addr));
    else
        snprintf(l->addr, sizeof(l->addr), "%s", spec);
    l->owner = ls;
    l->sock = h2o_evloop_socket_create(ctx->loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    l->sock->data = l;
    h2o_socket_read_start(l->sock, on_accept);
    ls->items[ls->count++] = l;
    ptth_log_info("event=listening addr=%s tls=%s", l->addr, ls->accept_ctx.ssl_ctx != NULL ? "yes" : "no");
    return 0;

Fail:
    snprintf(err, errlen, "cannot listen on %s: %s", spec, strerror(errno));
    if (fd >= 0)
        close(fd);
    if (ai != NULL)
        freeaddrinfo(ai);
    return -1;
}

int
ptth_listeners_open(ptth_listeners *ls, h2o_context_t *ctx, const ptth_strlist *addrs, SSL_CTX *ssl_ctx, char *err, size_t errlen)
{
    memset(ls, 0, sizeof(*ls));
    h2o_linklist_init_anchor(&ls->conns);
    ls->accept_ctx.ctx = ctx;
    ls->accept_ctx.hosts = ctx->globalconf->hosts;
    ls->accept_ctx.ssl_ctx = ssl_ctx;
    for (size_t i = 0; i < addrs->count; i++) {
        if (open_one(ls, ctx, addrs->items[i], err, errlen) != 0) {
            ptth_listeners_close(ls);
            return -1;
        }
    }
    return 0;
}

void
ptth_listeners_close(ptth_listeners *ls)
{
    for (size_t i = 0; i < ls->count; i++) {
        h2o_socket_read_stop(ls->items[i]->sock);
        h2o_socket_close(ls->items[i]->sock);
        free(ls->items[i]);
    }
    free(ls->items);
    ls->items = NULL;
    ls->count = 0;
}

void
ptth_listeners_shutdown_conns(ptth_listeners *ls)
{
    for (h2o_linklist_t *n = ls->conns.next; n != &ls->conns; n = n->next) {
        tracked_conn *tc = H2O_STRUCT_FROM_MEMBER(tracked_conn, link, n);
        shutdown(h2o_socket_get_fd(tc->sock), SHUT_RDWR);
    }
}

void
ptth_listeners_dispose(ptth_listeners *ls)
{
    while (!h2o_linklist_is_empty(&ls->conns)) {
        tracked_conn *tc = H2O_STRUCT_FROM_MEMBER(tracked_conn, link, ls->conns.next);
        tc->sock->on_close.cb = NULL;
        h2o_linklist_unlink(&tc->link);
        free(tc);
    }
    ls->nconns = 0;
}
