/*
 * listener.c: see listener.h.
 */
#include "listener.h"

#include <errno.h>
#include <fcntl.h>
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

struct ptth_accepted {
    h2o_linklist_t link;
    h2o_socket_t *sock;
    ptth_listeners *owner;
    uint32_t slot; /* per-address entry it is counted under, or PTTH_PEER_NONE */
    long long accepted_ms;
    bool trusted; /* the peer was a --trusted-proxy at accept */
    bool used;    /* it made a request */
    bool shed;    /* shut down for want of descriptors */
};

#define ACCEPTS_PER_WAKEUP 32
#define REFUSAL_LOG_INTERVAL_MS 60000
/* out of descriptors: how many waiting connections one pause may take off
 * the listen queue, how many unused ones of the heaviest address it shuts
 * down, and how old "unused" must be (a real client sends its request, or
 * its TLS hello, within milliseconds of connecting) */
#define DRAIN_PER_PAUSE 512
#define SHED_PER_PAUSE 64
#define SHED_MIN_AGE_MS 1000
#define TICK_MS 50

static void on_accept(h2o_socket_t *listener, const char *err);

static void
on_conn_close(void *data)
{
    ptth_accepted *a = data;
    ptth_peertable_conn_close(&a->owner->relay->addrs, a->slot);
    h2o_linklist_unlink(&a->link);
    a->owner->nconns--;
    free(a);
}

/* Closes fd with a reset: the relay keeps no TIME_WAIT state for a
 * connection it refused before reading a byte. */
static void
close_reset(int fd)
{
    struct linger lg = {1, 0};
    (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
}

static int
reserve_open(void)
{
    return open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void
log_refusal(ptth_relay *relay, uint32_t slot, const char *reason)
{
    uint32_t refused;
    if (!ptth_peertable_refusal_log(&relay->addrs, slot, ptth_now_ms(), REFUSAL_LOG_INTERVAL_MS, &refused))
        return;
    const ptth_peer_entry *e = ptth_peertable_at(&relay->addrs, slot);
    char addr[PTTH_PEER_KEY_STRLEN];
    ptth_peer_key_format(&e->key, addr, sizeof(addr));
    ptth_log_warn("event=conn_refused addr=%s reason=%s open=%u limit=%llu refused=%u", addr, reason, e->conns,
                  (unsigned long long)relay->cfg->max_connections_per_address, refused);
}

/* Hands an accepted descriptor to h2o, or refuses it for its address (then
 * fd is closed). */
static void
admit(ptth_listeners *ls, int fd, struct sockaddr *sa, socklen_t salen)
{
    ptth_relay *relay = ls->relay;
    uint32_t slot = PTTH_PEER_NONE;
    bool trusted = ptth_addr_trusted(sa, relay->trusted, relay->ntrusted);
    ptth_peer_key key;
    if (!trusted && ptth_peer_key_from_sockaddr(&key, sa) == 0) {
        ptth_peer_admit r =
            ptth_peertable_conn_open(&relay->addrs, &key, (uint32_t)relay->cfg->max_connections_per_address, ptth_now_ms(), &slot);
        if (r == PTTH_PEER_OVER_CAP) {
            close_reset(fd);
            relay->stats.conns_refused_address++;
            log_refusal(relay, slot, "max_connections_per_address");
            return;
        }
    }
    ptth_accepted *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        ptth_peertable_conn_close(&relay->addrs, slot);
        close_reset(fd);
        return;
    }
    ptth_set_nodelay(fd);
    h2o_socket_t *sock = h2o_evloop_socket_create(relay->loop, fd, H2O_SOCKET_FLAG_IS_ACCEPTED_CONNECTION);
    h2o_socket_setpeername(sock, sa, salen); /* h2o and the handler ask for it again; this saves the calls */
    a->sock = sock;
    a->owner = ls;
    a->slot = slot;
    a->trusted = trusted;
    a->accepted_ms = ptth_now_ms();
    h2o_linklist_insert(&ls->conns, &a->link);
    ls->nconns++;
    sock->on_close.cb = on_conn_close;
    sock->on_close.data = a;
    ptth_h2obuf_on_accept(sock);
    h2o_accept(&ls->accept_ctx, sock);
}

static void
set_listening(ptth_listeners *ls, bool on)
{
    for (size_t i = 0; i < ls->count; i++) {
        if (on)
            h2o_socket_read_start(ls->items[i]->sock, on_accept);
        else
            h2o_socket_read_stop(ls->items[i]->sock);
    }
}

/* Shuts down up to max connections of the address in slot that never made a
 * request and are older than SHED_MIN_AGE_MS, oldest first. h2o sees their
 * end and closes them at its next read, which frees their descriptors. */
static size_t
shed_unused(ptth_listeners *ls, uint32_t slot, size_t max, long long now)
{
    size_t n = 0;
    for (h2o_linklist_t *l = ls->conns.next; l != &ls->conns && n < max; l = l->next) {
        ptth_accepted *a = H2O_STRUCT_FROM_MEMBER(ptth_accepted, link, l);
        if (now - a->accepted_ms < SHED_MIN_AGE_MS)
            break; /* the list is in accept order */
        if (a->slot != slot || a->used || a->shed)
            continue;
        a->shed = true;
        struct linger lg = {1, 0};
        int fd = h2o_socket_get_fd(a->sock);
        (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        shutdown(fd, SHUT_RDWR);
        n++;
    }
    return n;
}

/* With the reserve's descriptor free, takes waiting connections off the
 * queue of listener fd: the heaviest address's are closed, the first from
 * anyone else is kept (and uses up the reserve). Returns how many it
 * closed. */
static size_t
drain(ptth_listeners *ls, int lfd, uint32_t heaviest, size_t budget)
{
    size_t closed = 0;
    while (closed < budget && ls->reserve_fd >= 0) {
        close(ls->reserve_fd);
        ls->reserve_fd = -1;
        struct sockaddr_storage ss;
        socklen_t sslen = sizeof(ss);
        int fd = accept4(lfd, (struct sockaddr *)&ss, &sslen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            ls->reserve_fd = reserve_open();
            break; /* nothing waiting (or no descriptor even now) */
        }
        ptth_peer_key key;
        ptth_peer_entry *e = NULL;
        if (ptth_peer_key_from_sockaddr(&key, (struct sockaddr *)&ss) == 0 &&
            !ptth_addr_trusted((struct sockaddr *)&ss, ls->relay->trusted, ls->relay->ntrusted))
            e = ptth_peertable_find(&ls->relay->addrs, &key);
        bool heavy = heaviest == PTTH_PEER_NONE || (e != NULL && e == ptth_peertable_at(&ls->relay->addrs, heaviest));
        if (!heavy) {
            admit(ls, fd, (struct sockaddr *)&ss, sslen); /* the reserve comes back at a tick */
            break;
        }
        close_reset(fd);
        closed++;
        ls->reserve_fd = reserve_open();
    }
    return closed;
}

static void on_tick(h2o_timeout_entry_t *entry);

/* accept() failed for want of descriptors or memory: pause every listener
 * (one log line per pause), make room as listener.h says, and resume at the
 * tick after the pause. */
static void
out_of_descriptors(ptth_listeners *ls, int lfd, int err)
{
    ptth_relay *relay = ls->relay;
    long long now = ptth_now_ms();
    long long pause = ptth_backoff_next(&ls->backoff, now);
    uint32_t heaviest = ptth_peertable_heaviest(&relay->addrs);
    size_t drained = drain(ls, lfd, heaviest, DRAIN_PER_PAUSE);
    size_t shed = heaviest != PTTH_PEER_NONE ? shed_unused(ls, heaviest, SHED_PER_PAUSE, now) : 0;
    relay->stats.accept_pauses++;
    relay->stats.conns_drained += drained;
    relay->stats.conns_shed += shed;
    char addr[PTTH_PEER_KEY_STRLEN] = "-";
    const ptth_peer_entry *e = ptth_peertable_at(&relay->addrs, heaviest);
    if (e != NULL)
        ptth_peer_key_format(&e->key, addr, sizeof(addr));
    ptth_log_warn("event=accept_paused reason=%s for_ms=%lld connections=%zu heaviest=%s heaviest_open=%u drained=%zu shed=%zu",
                  err == EMFILE    ? "EMFILE"
                  : err == ENFILE  ? "ENFILE"
                  : err == ENOBUFS ? "ENOBUFS"
                                   : "ENOMEM",
                  pause, ls->nconns, addr, e != NULL ? e->conns : 0, drained, shed);
    ls->paused = true;
    ls->resume_at_ms = now + pause;
    set_listening(ls, false);
    if (!h2o_timeout_is_linked(&ls->tick_entry))
        h2o_timeout_link(relay->loop, &ls->tick, &ls->tick_entry);
}

static void
on_tick(h2o_timeout_entry_t *entry)
{
    ptth_listeners *ls = H2O_STRUCT_FROM_MEMBER(ptth_listeners, tick_entry, entry);
    if (ls->reserve_fd < 0)
        ls->reserve_fd = reserve_open();
    if (ls->paused && ptth_now_ms() + TICK_MS / 2 >= ls->resume_at_ms) {
        ls->paused = false;
        set_listening(ls, true);
    }
    if (ls->paused || ls->reserve_fd < 0)
        h2o_timeout_link(ls->relay->loop, &ls->tick, &ls->tick_entry);
}

static void
on_accept(h2o_socket_t *listener, const char *err)
{
    ptth_listener *l = listener->data;
    ptth_listeners *ls = l->owner;
    if (err != NULL || ls->paused)
        return;
    int lfd = h2o_socket_get_fd(listener);
    for (int i = 0; i < ACCEPTS_PER_WAKEUP; i++) {
        struct sockaddr_storage ss;
        socklen_t sslen = sizeof(ss);
        int fd = accept4(lfd, (struct sockaddr *)&ss, &sslen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            admit(ls, fd, (struct sockaddr *)&ss, sslen);
            continue;
        }
        switch (errno) {
        case EINTR:
        case ECONNABORTED: /* the client gave up while queued */
            continue;
        case EAGAIN:
#if EAGAIN != EWOULDBLOCK
        case EWOULDBLOCK:
#endif
            return;
        case EMFILE:
        case ENFILE:
        case ENOBUFS:
        case ENOMEM:
            out_of_descriptors(ls, lfd, errno);
            return;
        default:
            /* anything else (EPERM from a firewall hook, EPROTO, ...) is
             * about one connection: the next accept may work */
            ptth_log_debug("event=accept_failed error=\"%s\"", strerror(errno));
            continue;
        }
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
ptth_listeners_open(ptth_listeners *ls, ptth_relay *relay, const ptth_strlist *addrs, SSL_CTX *ssl_ctx, char *err, size_t errlen)
{
    h2o_context_t *ctx = &relay->ctx;
    memset(ls, 0, sizeof(*ls));
    h2o_linklist_init_anchor(&ls->conns);
    ls->relay = relay;
    ls->accept_ctx.ctx = ctx;
    ls->accept_ctx.hosts = ctx->globalconf->hosts;
    ls->accept_ctx.ssl_ctx = ssl_ctx;
    ptth_backoff_init(&ls->backoff, PTTH_BACKOFF_MIN_MS, PTTH_BACKOFF_MAX_MS);
    h2o_timeout_init(relay->loop, &ls->tick, TICK_MS);
    ls->tick_entry.cb = on_tick;
    ls->tick_inited = true;
    if ((ls->reserve_fd = reserve_open()) < 0) {
        snprintf(err, errlen, "cannot open /dev/null for the reserve descriptor: %s", strerror(errno));
        ptth_listeners_close(ls);
        return -1;
    }
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
    ls->paused = false;
    if (ls->tick_inited) { /* set by open: a zeroed ls owns no descriptor */
        if (ls->reserve_fd >= 0)
            close(ls->reserve_fd);
        ls->reserve_fd = -1;
        if (h2o_timeout_is_linked(&ls->tick_entry))
            h2o_timeout_unlink(&ls->tick_entry);
        h2o_timeout_dispose(ls->relay->loop, &ls->tick);
        ls->tick_inited = false;
    }
}

void
ptth_listeners_shutdown_conns(ptth_listeners *ls)
{
    for (h2o_linklist_t *n = ls->conns.next; n != &ls->conns; n = n->next) {
        ptth_accepted *a = H2O_STRUCT_FROM_MEMBER(ptth_accepted, link, n);
        shutdown(h2o_socket_get_fd(a->sock), SHUT_RDWR);
    }
}

void
ptth_listeners_dispose(ptth_listeners *ls)
{
    while (!h2o_linklist_is_empty(&ls->conns)) {
        ptth_accepted *a = H2O_STRUCT_FROM_MEMBER(ptth_accepted, link, ls->conns.next);
        a->sock->on_close.cb = NULL;
        ptth_peertable_conn_close(&ls->relay->addrs, a->slot);
        h2o_linklist_unlink(&a->link);
        free(a);
    }
    ls->nconns = 0;
}

ptth_accepted *
ptth_accepted_of(h2o_req_t *req)
{
    if (req->conn->callbacks->get_socket == NULL)
        return NULL;
    h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
    return sock != NULL && sock->on_close.cb == on_conn_close ? sock->on_close.data : NULL;
}

void
ptth_accepted_note_request(ptth_accepted *a)
{
    if (a != NULL)
        a->used = true;
}

uint32_t
ptth_accepted_slot(const ptth_accepted *a)
{
    return a != NULL ? a->slot : PTTH_PEER_NONE;
}

bool
ptth_accepted_trusted(const ptth_accepted *a)
{
    return a != NULL && a->trusted;
}

ptth_peer_admit
ptth_accepted_attribute(ptth_accepted *a, ptth_peertable *t, const ptth_peer_key *k, uint32_t cap, uint32_t *slot)
{
    *slot = PTTH_PEER_NONE;
    ptth_peer_entry *cur = ptth_peertable_at(t, a->slot);
    if (cur != NULL && cur->key.family == k->family && memcmp(cur->key.addr, k->addr, sizeof(k->addr)) == 0) {
        *slot = a->slot;
        return PTTH_PEER_ADMIT; /* the same client as before */
    }
    ptth_peertable_conn_close(t, a->slot);
    a->slot = PTTH_PEER_NONE;
    ptth_peer_admit r = ptth_peertable_conn_open(t, k, cap, ptth_now_ms(), slot);
    if (r == PTTH_PEER_ADMIT)
        a->slot = *slot;
    return r;
}
