/* proxy.c: forwards and tunnels of ptth_proxy; see proxy.h. */
#include "proxy.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api_path.h"
#include "bridge.h"
#include "local_bind.h"
#include "log.h"
#include "options.h"
#include "sysutil.h"
#include "tunnel_set.h"

#define ACCEPTS_PER_EVENT 64
#define ACCEPT_PAUSE_MS 1000 /* after EMFILE and the like */
#define RETRY_AFTER_MAX_S 3600

typedef struct forward {
    ptth_proxy *px;
    const ptth_forward_spec *spec;
    int lfd;
    ptth_watch watch;
    ptth_timer pause_timer;
    char bound[96];
    char connect_path[PTTH_API_PATH_MAX];
    long long refuse_until_ms; /* honouring a Retry-After */
    long refuse_status;        /* the status that came with it */
    int mport;                 /* its series in the metrics */
} forward;

typedef struct ptunnel {
    ptth_proxy *px;
    forward *fw;           /* NULL for a front's tunnel (ptth_proxy_open_tunnel) */
    ptth_tunnel_link link; /* in the proxy's tunnels */
    ptth_bridge *bridge;
    char peer[96];
    char server[PTTH_NAME_MAX + 1];
    char port[PTTH_NAME_MAX + 1];
    int mport; /* its series in the metrics (-1: the totals only) */
    ptth_proxy_tunnel_hooks hooks;
} ptunnel;

struct ptth_proxy {
    ptth_loop *loop;
    ptth_relay_client *client;
    const ptth_proxy_params *p;
    forward *forwards;
    size_t n_forwards;
    ptth_tunnel_set tunnels;
    bool stopping;
};

/* [ADDR:]LPORT=SERVER/PORT from text; messages quote whole (text with its
 * "udp:" prefix). */
static int
parse_forward(const char *text, const char *whole, ptth_forward_spec *out, char *err, size_t errlen)
{
    const char *eq = strchr(text, '=');
    if (eq == NULL) {
        snprintf(err, errlen, "bad forward '%s': expected [ADDR:]LPORT=SERVER/PORT", whole);
        return -EINVAL;
    }
    const char *slash = strchr(eq + 1, '/');
    if (slash == NULL) {
        snprintf(err, errlen, "bad forward '%s': expected SERVER/PORT after '='", whole);
        return -EINVAL;
    }
    size_t slen = (size_t)(slash - (eq + 1));
    if (!ptth_name_valid(eq + 1, slen) || !ptth_name_valid_str(slash + 1)) {
        snprintf(err, errlen, "bad forward '%s': SERVER and PORT must be 1 to 64 of A-Z a-z 0-9 . _ -", whole);
        return -EINVAL;
    }
    memcpy(out->server, eq + 1, slen);
    out->server[slen] = '\0';
    snprintf(out->port, sizeof(out->port), "%s", slash + 1);

    char left[300];
    size_t llen = (size_t)(eq - text);
    if (llen == 0 || llen >= sizeof(left)) {
        snprintf(err, errlen, "bad forward '%s': missing local port before '='", whole);
        return -EINVAL;
    }
    memcpy(left, text, llen);
    left[llen] = '\0';
    if (strchr(left, ':') != NULL) {
        if (ptth_split_host_port(left, out->bind_host, sizeof(out->bind_host), &out->bind_port, true) != 0) {
            snprintf(err, errlen, "bad forward '%s': bad local address '%s'", whole, left);
            return -EINVAL;
        }
        return 0;
    }
    char *end;
    errno = 0;
    unsigned long port = strtoul(left, &end, 10);
    if (*end != '\0' || errno != 0 || port > 65535 || left[0] < '0' || left[0] > '9') {
        snprintf(err, errlen, "bad forward '%s': bad local port '%s'", whole, left);
        return -EINVAL;
    }
    snprintf(out->bind_host, sizeof(out->bind_host), "127.0.0.1");
    out->bind_port = (uint16_t)port;
    return 0;
}

int
ptth_forward_parse(const char *text, ptth_forward_spec *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    out->udp = strncmp(text, "udp:", 4) == 0;
    return parse_forward(out->udp ? text + 4 : text, text, out, err, errlen);
}

/* ---- tunnels ---- */

static void
on_tunnel_established(ptth_bridge *b, void *data)
{
    ptunnel *t = data;
    if (t->hooks.on_established != NULL)
        t->hooks.on_established(b, t->hooks.data);
}

static void
on_tunnel_end(ptth_bridge *b, const ptth_bridge_result *res, void *data)
{
    ptunnel *t = data;
    forward *fw = t->fw;
    ptth_proxy *px = t->px;
    char q[300];
    ptth_log_quote(q, sizeof(q), res->reason);
    ptth_term_metrics *m = px->p->metrics;
    ptth_tm_tunnel_end(m, t->mport, ptth_tm_classify(res->established, res->clean, res->status, res->reason), res->bytes_to_relay,
                       res->bytes_from_relay);
    if (res->established)
        ptth_tm_relay_answered(m);
    else
        ptth_tm_relay_failure(m, res->status);
    if (res->established) {
        char resumes[32] = "";
        if (res->resumes >= 0)
            snprintf(resumes, sizeof(resumes), " resumes=%d", res->resumes);
        ptth_log_info("event=tunnel_end conn=%s server=%s port=%s peer=%s bytes_up=%" PRIu64 " bytes_down=%" PRIu64
                      " duration_ms=%lld reason=%s%s",
                      ptth_bridge_conn(b), t->server, t->port, t->peer, res->bytes_to_relay, res->bytes_from_relay,
                      res->duration_ms, q, resumes);
    } else if (res->status != 0) {
        long ra = res->retry_after;
        if ((res->status == 503 || res->status == 429) && ra > 0 && fw != NULL) {
            if (ra > RETRY_AFTER_MAX_S)
                ra = RETRY_AFTER_MAX_S;
            fw->refuse_until_ms = ptth_now_ms() + ra * 1000;
            fw->refuse_status = res->status;
        }
        if (ra >= 0)
            ptth_log_warn("event=connect_refused server=%s port=%s peer=%s status=%ld reason=%s retry_after=%ld", t->server,
                          t->port, t->peer, res->status, q, ra);
        else
            ptth_log_warn("event=connect_refused server=%s port=%s peer=%s status=%ld reason=%s", t->server, t->port, t->peer,
                          res->status, q);
    } else {
        ptth_log_warn("event=connect_failed server=%s port=%s peer=%s relay=%s error=%s", t->server, t->port, t->peer,
                      ptth_relay_client_url(px->client), q);
    }
    ptth_tunnel_set_remove(&px->tunnels, &t->link); /* when draining, the last one schedules on_drained */
    ptth_proxy_tunnel_hooks hooks = t->hooks;
    free(t);
    if (hooks.on_end != NULL)
        hooks.on_end(res, hooks.data);
    if (px->stopping)
        return;
    if (fw != NULL && px->p->stdio && px->p->on_stdio_end != NULL)
        px->p->on_stdio_end(res->established, px->p->data);
}

static void
on_tunnel_resumed(ptth_bridge *b, uint64_t replayed, void *data)
{
    (void)b;
    ptunnel *t = data;
    ptth_tm_resumed(t->px->p->metrics, replayed);
}

/* Starts one tunnel to server/port. Takes the local end. */
static int
open_tunnel(ptth_proxy *px, forward *fw, const char *server, const char *port, const ptth_local_end *local, const char *peer,
            const ptth_proxy_tunnel_hooks *hooks)
{
    char path[PTTH_API_PATH_MAX];
    ptunnel *t = ptth_api_connect_path(path, sizeof(path), server, port) == 0 ? calloc(1, sizeof(*t)) : NULL;
    if (t == NULL) {
        local->ops->close(local->ctx);
        ptth_log_error("event=accept_failed server=%.64s port=%.64s error=\"out of memory or names too long\"", server, port);
        return -ENOMEM;
    }
    t->px = px;
    t->fw = fw;
    snprintf(t->peer, sizeof(t->peer), "%s", peer);
    snprintf(t->server, sizeof(t->server), "%s", server);
    snprintf(t->port, sizeof(t->port), "%s", port);
    /* a front's tunnel: the series of a --forward with the same target, else one added for it (bounded by term_metrics) */
    t->mport = fw != NULL ? fw->mport : ptth_tm_add_port(px->p->metrics, server, port);
    if (hooks != NULL)
        t->hooks = *hooks;
    ptth_bridge_config bc = {
        .loop = px->loop,
        .client = px->client,
        .server = server,
        .chunk_kind = "upstream",
        .local_name = "client",
        .max_chunk = px->p->max_chunk,
        .data_path = px->p->data_path,
        .on_end = on_tunnel_end,
        .on_established = on_tunnel_established,
        .stream_header = t->hooks.stream_header,
        .resume_buffer = px->p->resume_buffer,
        .port = port,
        .proto = t->hooks.proto,
        .on_resumed = on_tunnel_resumed,
        .data = t,
    };
    t->bridge = ptth_bridge_new(&bc, local);
    if (t->bridge == NULL) {
        free(t);
        ptth_log_error("event=accept_failed error=\"out of memory\"");
        return -ENOMEM;
    }
    ptth_tunnel_set_add(&px->tunnels, &t->link);
    ptth_tm_tunnel_open(px->p->metrics, t->mport);
    ptth_log_debug("event=connecting server=%s port=%s peer=%s", server, port, peer);
    ptth_bridge_start(t->bridge, path, NULL); /* failures end in on_tunnel_end */
    return 0;
}

static void
start_tunnel(forward *fw, const ptth_local_end *local, const char *peer)
{
    (void)open_tunnel(fw->px, fw, fw->spec->server, fw->spec->port, local, peer, NULL);
}

int
ptth_proxy_open_tunnel(ptth_proxy *px, const char *server, const char *port, const ptth_local_end *local, const char *peer,
                       const ptth_proxy_tunnel_hooks *hooks)
{
    if (px->stopping) {
        local->ops->close(local->ctx);
        return -ESHUTDOWN;
    }
    return open_tunnel(px, NULL, server, port, local, peer, hooks);
}

/* ---- forwards ---- */

static void on_accept(ptth_watch *w, uint32_t events);

static void
on_accept_pause_over(ptth_timer *t)
{
    forward *fw = t->data;
    ptth_watch_set(&fw->watch, EPOLLIN);
}

static void
on_accept(ptth_watch *w, uint32_t events)
{
    (void)events;
    forward *fw = w->data;
    for (int i = 0; i < ACCEPTS_PER_EVENT; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(fw->lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED)
                return;
            /* out of descriptors or memory: wait a little instead of spinning */
            ptth_log_warn("event=accept_failed listen=%s error=\"%s\" pause_ms=%d", fw->bound, strerror(errno), ACCEPT_PAUSE_MS);
            ptth_tm_failure(fw->px->p->metrics, PTTH_TM_F_ACCEPT);
            ptth_watch_set(&fw->watch, 0);
            ptth_timer_start(fw->px->loop, &fw->pause_timer, ACCEPT_PAUSE_MS, on_accept_pause_over, fw);
            return;
        }
        char peer[96];
        ptth_format_sockaddr((struct sockaddr *)&ss, peer, sizeof(peer));
        long long now = ptth_now_ms();
        if (fw->refuse_until_ms > now) {
            ptth_log_warn("event=connect_refused server=%s port=%s peer=%s status=%ld reason=\"relay asked to retry "
                          "later; not asking again yet\" retry_in_ms=%lld",
                          fw->spec->server, fw->spec->port, peer, fw->refuse_status, fw->refuse_until_ms - now);
            close(fd);
            continue;
        }
        ptth_set_nodelay(fd);
        ptth_local_end local;
        if (ptth_local_end_fds(&local, fd, fd) != 0) {
            close(fd);
            continue;
        }
        start_tunnel(fw, &local, peer);
    }
}

/* Binds and listens on a forward's address. */
static int
bind_forward(forward *fw, char *err, size_t errlen)
{
    return ptth_local_bind(fw->spec->bind_host, fw->spec->bind_port, SOCK_STREAM, &fw->lfd, fw->bound, sizeof(fw->bound), err,
                           errlen);
}

static int
forward_init(ptth_proxy *px, forward *fw, const ptth_forward_spec *sp)
{
    fw->px = px;
    fw->spec = sp;
    fw->lfd = -1;
    fw->mport = ptth_tm_add_port(px->p->metrics, sp->server, sp->port);
    return ptth_api_connect_path(fw->connect_path, sizeof(fw->connect_path), sp->server, sp->port);
}

/* ---- stdio: stdin/stdout as the local end ---- */

typedef struct stdio_end {
    int in_flags, out_flags;
    bool out_done, in_done;
} stdio_end;

/* Replaces fd with /dev/null: ends the stream for the other side (the pipe's
 * last writer goes away) while keeping the number taken, so that no socket
 * opened later becomes "stdout". */
static void
retire_fd(int fd, int flags)
{
    fcntl(fd, F_SETFL, flags); /* give back the blocking mode of a shared descriptor */
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0) {
        dup2(null, fd);
        close(null);
    } else {
        close(fd);
    }
}

static ssize_t
stdio_read(void *ctx, void *buf, size_t len)
{
    (void)ctx;
    ssize_t n = read(0, buf, len);
    return n >= 0 ? n : -errno;
}

static ssize_t
stdio_write(void *ctx, const void *buf, size_t len)
{
    stdio_end *e = ctx;
    if (e->out_done)
        return -EPIPE;
    ssize_t n = write(1, buf, len);
    if (n < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    return n > 0 ? n : -EIO;
}

static int
stdio_shutdown_write(void *ctx)
{
    stdio_end *e = ctx;
    if (e->out_done)
        return 0;
    e->out_done = true;
    struct stat st;
    if (fstat(1, &st) == 0 && S_ISSOCK(st.st_mode)) {
        fcntl(1, F_SETFL, e->out_flags);
        return shutdown(1, SHUT_WR) == 0 ? 0 : -errno;
    }
    retire_fd(1, e->out_flags);
    return 0;
}

static void
stdio_close(void *ctx)
{
    stdio_end *e = ctx;
    if (!e->out_done)
        retire_fd(1, e->out_flags);
    retire_fd(0, e->in_flags);
    free(e);
}

static const ptth_local_ops stdio_ops = {
    .read = stdio_read,
    .write = stdio_write,
    .shutdown_write = stdio_shutdown_write,
    .close = stdio_close,
};

static int
start_stdio(ptth_proxy *px, char *err, size_t errlen)
{
    stdio_end *e = calloc(1, sizeof(*e));
    if (e == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    e->in_flags = fcntl(0, F_GETFL);
    e->out_flags = fcntl(1, F_GETFL);
    if (e->in_flags < 0 || e->out_flags < 0) {
        free(e);
        snprintf(err, errlen, "--stdio needs both stdin and stdout open");
        return -EBADF;
    }
    ptth_set_nonblocking(0);
    ptth_set_nonblocking(1);
    ptth_local_end local = {.ops = &stdio_ops, .ctx = e, .read_fd = 0, .write_fd = 1};
    snprintf(px->forwards[0].bound, sizeof(px->forwards[0].bound), "stdio");
    start_tunnel(&px->forwards[0], &local, "stdio");
    return 0;
}

int
ptth_proxy_new(ptth_loop *loop, ptth_relay_client *client, const ptth_proxy_params *params, ptth_proxy **out, char *err,
               size_t errlen)
{
    *out = NULL;
    ptth_proxy *px = calloc(1, sizeof(*px));
    if (px == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    px->loop = loop;
    ptth_tunnel_set_init(&px->tunnels, loop);
    px->client = client;
    px->p = params;
    px->forwards = calloc(params->n_forwards > 0 ? params->n_forwards : 1, sizeof(*px->forwards));
    if (px->forwards == NULL) {
        free(px);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    px->n_forwards = params->n_forwards;
    int rc = 0;
    for (size_t i = 0; i < px->n_forwards && rc == 0; i++) {
        rc = forward_init(px, &px->forwards[i], &params->forwards[i]);
        if (rc != 0)
            snprintf(err, errlen, "server or port name too long");
    }
    if (rc == 0 && params->stdio) {
        rc = start_stdio(px, err, errlen);
    } else {
        for (size_t i = 0; i < px->n_forwards && rc == 0; i++) {
            forward *fw = &px->forwards[i];
            if (fw->spec->udp)
                continue;
            rc = bind_forward(fw, err, errlen);
            if (rc == 0)
                rc = ptth_watch_start(loop, &fw->watch, fw->lfd, EPOLLIN, on_accept, fw);
            if (rc == 0) {
                /* the readiness line of SPEC §6, on stderr as a plain line */
                fprintf(stderr, "listening on %s\n", fw->bound);
                fflush(stderr);
                ptth_log_info("event=forward listen=%s server=%s port=%s", fw->bound, fw->spec->server, fw->spec->port);
            }
        }
    }
    if (rc != 0) {
        ptth_proxy_free(px);
        return rc;
    }
    *out = px;
    return 0;
}

void
ptth_proxy_shutdown(ptth_proxy *px, void (*on_drained)(void *data), void *data)
{
    px->stopping = true;
    for (size_t i = 0; i < px->n_forwards; i++) {
        ptth_watch_stop(&px->forwards[i].watch);
        ptth_timer_stop(px->loop, &px->forwards[i].pause_timer);
    }
    PTTH_TUNNEL_SET_EACH(&px->tunnels, l, nx)
    ptth_bridge_shutdown(PTTH_TUNNEL_OF(l, ptunnel, link)->bridge);
    ptth_tunnel_set_drain(&px->tunnels, on_drained, data);
}

void
ptth_proxy_free(ptth_proxy *px)
{
    if (px == NULL)
        return;
    while (px->tunnels.head != NULL) {
        ptunnel *t = PTTH_TUNNEL_OF(px->tunnels.head, ptunnel, link);
        ptth_tunnel_set_remove(&px->tunnels, &t->link);
        ptth_bridge_free(t->bridge);
        free(t);
    }
    ptth_tunnel_set_fini(&px->tunnels); /* after the removes: the last one may have scheduled on_drained */
    for (size_t i = 0; i < px->n_forwards; i++) {
        forward *fw = &px->forwards[i];
        ptth_watch_stop(&fw->watch);
        ptth_timer_stop(px->loop, &fw->pause_timer);
        if (fw->lfd >= 0)
            close(fw->lfd);
    }
    free(px->forwards);
    free(px);
}

void
ptth_proxy_metrics_live(void *data, ptth_term_metrics *m)
{
    const ptth_proxy *px = data;
    PTTH_TUNNEL_SET_EACH(&px->tunnels, l, nx)
    {
        const ptunnel *t = PTTH_TUNNEL_OF(l, ptunnel, link);
        uint64_t to_relay, from_relay;
        ptth_bridge_bytes(t->bridge, &to_relay, &from_relay);
        ptth_tm_live(m, t->mport, to_relay, from_relay);
    }
}
