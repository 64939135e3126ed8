/*
 * cc_agent.c: the event loop of ptth_cc_agent: the channel listener, one
 * mux per channel connection, and the TARGET connections behind tunnels.
 * See cc_agent.h.
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cc_agent.h"
#include "cc_mux.h"
#include "log.h"
#include "options.h"
#include "sysutil.h"

#define EVENT_BATCH 128
#define ACCEPT_PAUSE_MS 500

enum {
    WATCH_LISTENER = PTTH_CC_WATCH_OWNER,
    WATCH_STOP,
};

typedef struct agent_chan {
    struct agent_chan *next;
    ptth_cc_mux *mux;
    unsigned long long id;
} agent_chan;

/* What the agent keeps per tunnel (ptth_cc_tunnel.user). */
typedef struct agent_tunnel {
    agent_chan *chan;
    struct addrinfo *res, *cur; /* TCP target: addresses, the one being tried */
    long long started;
    char client[PTTH_CC_TEXT_MAX + 1];
    int last_error;
} agent_tunnel;

struct ptth_cc_agent {
    ptth_cc_agent_config cfg;
    int epfd;
    int listen_fd;
    ptth_cc_watch listen_watch, stop_watch;
    agent_chan *chans;
    size_t nchans;
    long long listen_resume; /* listener paused after an accept error until then; 0 = watched */
    unsigned long long next_chan_id;
    size_t ntunnels; /* written by the loop only; atomic so tests may read it */
};

void
ptth_cc_agent_config_init(ptth_cc_agent_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->max_clients = 512;
    cfg->max_msg = PTTH_CC_MSG_DEFAULT_MAX;
    cfg->window = PTTH_CC_DEFAULT_WINDOW;
    cfg->connect_timeout_ms = 8000;
    cfg->max_channels = 16;
}

int
ptth_cc_agent_parse_target(const char *text, ptth_cc_agent_config *cfg, char *err, size_t errlen)
{
    if (strlen(text) >= sizeof(cfg->target_text)) {
        snprintf(err, errlen, "target is longer than %zu bytes", sizeof(cfg->target_text) - 1);
        return -EINVAL;
    }
    if (strncmp(text, "unix:", 5) == 0) {
        const char *path = text + 5;
        if (path[0] == '\0') {
            snprintf(err, errlen, "target '%s': missing PATH", text);
            return -EINVAL;
        }
        if (strlen(path) >= sizeof(cfg->target_path)) {
            snprintf(err, errlen, "target '%s': socket path longer than %zu bytes", text, sizeof(cfg->target_path) - 1);
            return -EINVAL;
        }
        cfg->target_kind = PTTH_CC_AGENT_TARGET_UNIX;
        snprintf(cfg->target_path, sizeof(cfg->target_path), "%s", path);
    } else {
        if (ptth_split_host_port(text, cfg->target_host, sizeof(cfg->target_host), &cfg->target_port, false) != 0) {
            snprintf(err, errlen, "target '%s': expected unix:PATH, HOST:PORT or [V6]:PORT (port 1 to 65535)", text);
            return -EINVAL;
        }
        cfg->target_kind = PTTH_CC_AGENT_TARGET_TCP;
    }
    snprintf(cfg->target_text, sizeof(cfg->target_text), "%s", text);
    return 0;
}

/* The channel a tunnel's log line and accounting belong to. */
static agent_chan *
chan_of(ptth_cc_agent *a, ptth_cc_mux *m)
{
    for (agent_chan *c = a->chans; c != NULL; c = c->next)
        if (c->mux == m)
            return c;
    return NULL;
}

/* ---- TARGET connections --------------------------------------------------- */

/* Starts a nonblocking connect to the next candidate address; returns the
 * socket, or -errno when no candidate is left (last error in ut). */
static int
start_connect(ptth_cc_agent *a, agent_tunnel *ut)
{
    if (a->cfg.target_kind == PTTH_CC_AGENT_TARGET_UNIX) {
        if (ut->cur != NULL || ut->last_error != 0)
            return -ut->last_error;
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", a->cfg.target_path);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            ut->last_error = errno;
            return -ut->last_error;
        }
        if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
            /* a UNIX connect never is in progress: EAGAIN means its backlog is full */
            ut->last_error = errno;
            close(fd);
            return -ut->last_error;
        }
        return fd;
    }
    for (ut->cur = ut->cur == NULL ? ut->res : ut->cur->ai_next; ut->cur != NULL; ut->cur = ut->cur->ai_next) {
        struct addrinfo *ai = ut->cur;
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            ut->last_error = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 || errno == EINPROGRESS)
            return fd;
        ut->last_error = errno;
        close(fd);
    }
    return -(ut->last_error != 0 ? ut->last_error : EHOSTUNREACH);
}

static void
free_agent_tunnel(agent_tunnel *ut)
{
    if (ut == NULL)
        return;
    if (ut->res != NULL)
        freeaddrinfo(ut->res);
    free(ut);
}

static int
on_open(void *ctx, ptth_cc_tunnel *t, const char *client, char *reason, size_t len)
{
    ptth_cc_agent *a = ctx;
    char q[PTTH_CC_TEXT_MAX * 2 + 4];
    if (a->ntunnels >= a->cfg.max_clients) {
        snprintf(reason, len, "too many tunnels: --max-clients %u reached", a->cfg.max_clients);
        ptth_log_warn("event=tunnel_refused tunnel=%u client=%s reason=max_clients max_clients=%u", t->id,
                      ptth_log_quote(q, sizeof(q), client), a->cfg.max_clients);
        return -EBUSY;
    }
    agent_tunnel *ut = calloc(1, sizeof(*ut));
    if (ut == NULL) {
        snprintf(reason, len, "agent out of memory");
        return -ENOMEM;
    }
    snprintf(ut->client, sizeof(ut->client), "%s", client);
    ut->chan = chan_of(a, t->mux);
    ut->started = ptth_now_ms();
    if (a->cfg.target_kind == PTTH_CC_AGENT_TARGET_TCP) {
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
        char port[8];
        snprintf(port, sizeof(port), "%u", a->cfg.target_port);
        int g = getaddrinfo(a->cfg.target_host, port, &hints, &ut->res);
        if (g != 0) {
            snprintf(reason, len, "cannot resolve target %s: %s", a->cfg.target_text, gai_strerror(g));
            ptth_log_warn("event=tunnel_failed tunnel=%u target=%s reason=%s", t->id, a->cfg.target_text,
                          ptth_log_quote(q, sizeof(q), reason));
            free_agent_tunnel(ut);
            return -EHOSTUNREACH;
        }
    }
    int fd = start_connect(a, ut);
    if (fd < 0) {
        snprintf(reason, len, "cannot connect to target %s: %s", a->cfg.target_text, strerror(-fd));
        ptth_log_warn("event=tunnel_failed tunnel=%u target=%s reason=%s", t->id, a->cfg.target_text,
                      ptth_log_quote(q, sizeof(q), reason));
        free_agent_tunnel(ut);
        return fd;
    }
    t->fd = fd;
    t->user = ut;
    __atomic_add_fetch(&a->ntunnels, 1, __ATOMIC_RELAXED);
    return 0;
}

static int
on_connect(void *ctx, ptth_cc_tunnel *t, char *reason, size_t len)
{
    ptth_cc_agent *a = ctx;
    agent_tunnel *ut = t->user;
    int soerr = 0;
    socklen_t sl = sizeof(soerr);
    if (getsockopt(t->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
        soerr = errno;
    if (soerr == 0) {
        ptth_set_nodelay(t->fd);
        char q[PTTH_CC_TEXT_MAX * 2 + 4];
        ptth_log_info("event=tunnel_open tunnel=%u client=%s target=%s tunnels=%zu", t->id,
                      ptth_log_quote(q, sizeof(q), ut->client), a->cfg.target_text, a->ntunnels);
        return 0;
    }
    ut->last_error = soerr;
    close(t->fd);
    t->fd = -1;
    int fd = start_connect(a, ut);
    if (fd >= 0) {
        t->fd = fd;
        return -EINPROGRESS;
    }
    snprintf(reason, len, "cannot connect to target %s: %s", a->cfg.target_text, strerror(soerr));
    char q[PTTH_CC_TEXT_MAX * 2 + 4];
    ptth_log_warn("event=tunnel_failed tunnel=%u target=%s reason=%s", t->id, a->cfg.target_text,
                  ptth_log_quote(q, sizeof(q), reason));
    return -soerr;
}

static void
on_end(void *ctx, ptth_cc_tunnel *t, const char *reason)
{
    ptth_cc_agent *a = ctx;
    agent_tunnel *ut = t->user;
    t->user = NULL;
    if (ut == NULL)
        return;
    __atomic_sub_fetch(&a->ntunnels, 1, __ATOMIC_RELAXED);
    char q[300];
    ptth_log_info("event=tunnel_end tunnel=%u channel=%llu bytes_up=%llu bytes_down=%llu duration_ms=%lld reason=%s", t->id,
                  ut->chan != NULL ? ut->chan->id : 0ULL, (unsigned long long)t->bytes_in, (unsigned long long)t->bytes_out,
                  ptth_now_ms() - ut->started, ptth_log_quote(q, sizeof(q), reason));
    free_agent_tunnel(ut);
}

static const ptth_cc_mux_hooks agent_hooks = {
    .on_open = on_open,
    .on_connect = on_connect,
    .on_end = on_end,
};

/* ---- channels ------------------------------------------------------------- */

static void
accept_channels(ptth_cc_agent *a)
{
    const ptth_cc_carrier *car = ptth_cc_carrier_for(a->cfg.addr.kind);
    for (;;) {
        ptth_cc_conn *conn = NULL;
        char err[256];
        int r = car->accept(a->listen_fd, &conn, err, sizeof(err));
        if (r == -EAGAIN)
            return;
        if (r != 0) {
            char q[300];
            ptth_log_warn("event=channel_accept_failed reason=%s retry_in_ms=%d", ptth_log_quote(q, sizeof(q), err),
                          ACCEPT_PAUSE_MS);
            /* EMFILE and the like: the listener stays readable, so stop
             * watching it for a moment instead of spinning */
            epoll_ctl(a->epfd, EPOLL_CTL_DEL, a->listen_fd, NULL);
            a->listen_resume = ptth_now_ms() + ACCEPT_PAUSE_MS;
            return;
        }
        if (a->nchans >= a->cfg.max_channels) {
            ptth_log_warn("event=channel_refused reason=too_many_channels max_channels=%u", a->cfg.max_channels);
            car->close(conn);
            continue;
        }
        agent_chan *c = calloc(1, sizeof(*c));
        if (c == NULL) {
            car->close(conn);
            continue;
        }
        c->id = ++a->next_chan_id;
        char peer[32];
        snprintf(peer, sizeof(peer), "channel %llu", c->id);
        ptth_cc_mux_config mcfg = {.side = PTTH_CC_SIDE_AGENT,
                                   .max_msg = a->cfg.max_msg,
                                   .window = a->cfg.window,
                                   .max_clients = a->cfg.max_clients,
                                   .open_timeout_ms = a->cfg.connect_timeout_ms};
        c->mux = ptth_cc_mux_new(&mcfg, &agent_hooks, a, a->epfd, conn, peer);
        if (c->mux == NULL) {
            free(c);
            continue;
        }
        c->next = a->chans;
        a->chans = c;
        a->nchans++;
        ptth_log_info("event=channel_open channel=%llu channels=%zu", c->id, a->nchans);
    }
}

static void
drop_channel(ptth_cc_agent *a, agent_chan *c)
{
    agent_chan **pp = &a->chans;
    while (*pp != c)
        pp = &(*pp)->next;
    *pp = c->next;
    a->nchans--;
    char q[300];
    ptth_log_info("event=channel_closed channel=%llu reason=%s", c->id,
                  ptth_log_quote(q, sizeof(q), c->mux->dead != NULL ? c->mux->dead : "shutdown"));
    ptth_cc_mux_free(c->mux);
    free(c);
}

/* ---- public ---------------------------------------------------------------- */

ptth_cc_agent *
ptth_cc_agent_new(const ptth_cc_agent_config *cfg, char *err, size_t errlen)
{
    ptth_cc_agent *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    a->cfg = *cfg;
    a->listen_fd = -1;
    a->listen_watch.kind = WATCH_LISTENER;
    a->stop_watch.kind = WATCH_STOP;
    a->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (a->epfd < 0) {
        snprintf(err, errlen, "epoll_create1: %s", strerror(errno));
        free(a);
        return NULL;
    }
    const ptth_cc_carrier *car = ptth_cc_carrier_for(cfg->addr.kind);
    if (car->listen(&cfg->addr, &a->listen_fd, err, errlen) != 0) {
        close(a->epfd);
        free(a);
        return NULL;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &a->listen_watch};
    if (epoll_ctl(a->epfd, EPOLL_CTL_ADD, a->listen_fd, &ev) != 0) {
        snprintf(err, errlen, "epoll_ctl: %s", strerror(errno));
        car->unlisten(&cfg->addr, a->listen_fd);
        close(a->epfd);
        free(a);
        return NULL;
    }
    ptth_log_info("event=listening channel=%s target=%s max_clients=%u max_message=%u", cfg->addr.text, cfg->target_text,
                  cfg->max_clients, cfg->max_msg);
    return a;
}

int
ptth_cc_agent_run(ptth_cc_agent *a, int stop_fd)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &a->stop_watch};
    if (epoll_ctl(a->epfd, EPOLL_CTL_ADD, stop_fd, &ev) != 0)
        return -errno;
    struct epoll_event evs[EVENT_BATCH];
    int result = 0;
    for (;;) {
        long long now = ptth_now_ms(), next = 0;
        if (a->listen_resume != 0) {
            if (now >= a->listen_resume) {
                struct epoll_event lev = {.events = EPOLLIN, .data.ptr = &a->listen_watch};
                if (epoll_ctl(a->epfd, EPOLL_CTL_ADD, a->listen_fd, &lev) == 0)
                    a->listen_resume = 0;
                else
                    a->listen_resume = now + ACCEPT_PAUSE_MS;
            }
            if (a->listen_resume != 0)
                next = a->listen_resume;
        }
        for (agent_chan *c = a->chans; c != NULL; c = c->next) {
            long long d = ptth_cc_mux_expire(c->mux, now);
            if (d != 0 && (next == 0 || d < next))
                next = d;
        }
        int timeout = next == 0 ? -1 : next > now ? (int)(next - now) : 0;
        int n = epoll_wait(a->epfd, evs, EVENT_BATCH, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            result = -errno;
            break;
        }
        bool stop = false;
        for (int i = 0; i < n; i++) {
            ptth_cc_watch *w = evs[i].data.ptr;
            switch (w->kind) {
            case WATCH_STOP:
                stop = true;
                break;
            case WATCH_LISTENER:
                accept_channels(a);
                break;
            case PTTH_CC_WATCH_CHANNEL:
                ptth_cc_mux_handle((ptth_cc_mux *)w, w, evs[i].events);
                break;
            case PTTH_CC_WATCH_TUNNEL: {
                ptth_cc_tunnel *t = (ptth_cc_tunnel *)w;
                ptth_cc_mux_handle(t->mux, w, evs[i].events);
                break;
            }
            default:
                break;
            }
        }
        agent_chan *c = a->chans;
        while (c != NULL) {
            agent_chan *nx = c->next;
            if (ptth_cc_mux_dead(c->mux))
                drop_channel(a, c);
            else
                ptth_cc_mux_after_events(c->mux);
            c = nx;
        }
        if (stop)
            break;
    }
    epoll_ctl(a->epfd, EPOLL_CTL_DEL, stop_fd, NULL);
    return result;
}

size_t
ptth_cc_agent_tunnels(const ptth_cc_agent *a)
{
    return __atomic_load_n(&a->ntunnels, __ATOMIC_RELAXED);
}

void
ptth_cc_agent_free(ptth_cc_agent *a)
{
    if (a == NULL)
        return;
    while (a->chans != NULL)
        drop_channel(a, a->chans);
    ptth_cc_carrier_for(a->cfg.addr.kind)->unlisten(&a->cfg.addr, a->listen_fd);
    close(a->epfd);
    free(a);
}
