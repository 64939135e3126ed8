/* udp_front.c: ptth_proxy's UDP forwards; see udp_front.h. */
#include "udp_front.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bridge.h"
#include "dgram.h"
#include "local_bind.h"
#include "log.h"
#include "sysutil.h"

#define BUCKETS 4096 /* a power of two */
#define DATAGRAMS_PER_EVENT 64
#define SWEEP_MAX_MS 1000
#define FULL_LOG_EVERY_MS 10000
#define REFUSED_PAUSE_MS 1000   /* no new session for this long after the relay refused one (or its Retry-After) */
#define RETRY_AFTER_MAX_S 3600
#define SOCKET_BUFFER (4 << 20) /* asked for the bound socket (the kernel caps it at net.core.rmem_max/wmem_max) */

typedef struct usession {
    ptth_udp_front *f;
    struct usession *hnext;       /* bucket chain */
    struct usession *prev, *next; /* all sessions */
    struct sockaddr_storage peer;
    socklen_t peer_len;
    char peer_text[96];
    int fd;                 /* our end of the pair; the bridge's local end holds the other */
    ptth_watch watch;       /* fd, for datagrams back to the peer */
    long long last_ms;      /* the last datagram either way */
    bool idle;              /* ended by the idle timer */
    uint64_t dropped_up;    /* the pair was full */
    uint64_t sent_down;     /* sent to the peer */
    uint64_t dropped_down;  /* the bound socket did not take them */
    ptth_dgram_stats stats; /* the local end adds its counters here when it closes */
} usession;

struct ptth_udp_front {
    ptth_loop *loop;
    ptth_proxy *px;
    const ptth_forward_spec *spec;
    long long idle_ms;
    int fd;
    bool stopping;
    ptth_watch watch;
    ptth_timer sweep;
    char bound[96];
    usession *buckets[BUCKETS];
    usession *all;
    size_t count;
    long long full_logged_ms;
    long long paused_until_ms; /* the relay refused a session: new peers wait (their datagrams are dropped) */
    ptth_udp_front_stats stats;
    uint8_t buf[65536];
};

static const char udp_header[] = "PTTH-Proto: udp";

/* FNV-1a over the address bytes that tell peers apart */
static size_t
peer_hash(const struct sockaddr_storage *ss, socklen_t len)
{
    const uint8_t *p = (const uint8_t *)ss;
    uint32_t h = 2166136261u;
    for (socklen_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 16777619u;
    return h & (BUCKETS - 1);
}

static usession *
find(ptth_udp_front *f, const struct sockaddr_storage *ss, socklen_t len)
{
    for (usession *s = f->buckets[peer_hash(ss, len)]; s != NULL; s = s->hnext)
        if (s->peer_len == len && memcmp(&s->peer, ss, len) == 0)
            return s;
    return NULL;
}

/* Takes s out of the peer table (not out of the list of all sessions): the
 * peer's next datagram opens a new session. */
static void
unhash(usession *s)
{
    usession **pp = &s->f->buckets[peer_hash(&s->peer, s->peer_len)];
    while (*pp != NULL && *pp != s)
        pp = &(*pp)->hnext;
    if (*pp == s)
        *pp = s->hnext;
    s->hnext = NULL;
}

static void
session_free(usession *s)
{
    ptth_udp_front *f = s->f;
    unhash(s);
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        f->all = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    f->count--;
    ptth_watch_stop(&s->watch);
    close(s->fd);
    free(s);
}

/* A session the relay refused (or that could not reach it) stops new
 * sessions for a while: every peer goes to the same SERVER/PORT, and a
 * datagram per peer per attempt must not become a connect per datagram. */
static void
pause_after_refusal(ptth_udp_front *f, const ptth_bridge_result *res)
{
    long long ms = REFUSED_PAUSE_MS;
    if (res->retry_after > 0)
        ms = (res->retry_after < RETRY_AFTER_MAX_S ? res->retry_after : RETRY_AFTER_MAX_S) * 1000LL;
    f->paused_until_ms = ptth_loop_now(f->loop) + ms;
    ptth_log_warn("event=udp_sessions_paused listen=%s server=%s port=%s status=%ld pause_ms=%lld", f->bound, f->spec->server,
                  f->spec->port, res->status, ms);
}

static void
on_session_end(const ptth_bridge_result *res, void *data)
{
    usession *s = data;
    if (!res->established && !s->f->stopping)
        pause_after_refusal(s->f, res);
    if (res->established) {
        char q[300];
        /* up: what went into the tunnel (read from the pair) and what a full pair dropped; down: what reached the
         * peer, and what a full pair (the local end's count) or the bound socket dropped */
        ptth_log_info("event=udp_session_end listen=%s peer=%s server=%s port=%s datagrams_up=%" PRIu64 " datagrams_down=%" PRIu64
                      " dropped_up=%" PRIu64 " dropped_down=%" PRIu64 " duration_ms=%lld reason=%s",
                      s->f->bound, s->peer_text, s->f->spec->server, s->f->spec->port, s->stats.datagrams_in, s->sent_down,
                      s->dropped_up, s->stats.dropped + s->dropped_down, res->duration_ms,
                      s->idle ? "idle" : ptth_log_quote(q, sizeof(q), res->reason));
    }
    session_free(s);
}

/* Datagrams from the tunnel, for the peer. recv() says 0 for an empty
 * datagram and for the bridge's end closed; only the second one is HUP. */
static void
on_session_readable(ptth_watch *w, uint32_t events)
{
    usession *s = w->data;
    ptth_udp_front *f = s->f;
    for (int i = 0; i < DATAGRAMS_PER_EVENT; i++) {
        ssize_t n = recv(s->fd, f->buf, sizeof(f->buf), 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break; /* EAGAIN; or the pair broke, which the tunnel's end reports */
        }
        if (n == 0 && (events & (EPOLLHUP | EPOLLRDHUP)) != 0) {
            ptth_watch_set(&s->watch, 0); /* the tunnel's end is gone: on_session_end follows */
            return;
        }
        s->last_ms = ptth_loop_now(f->loop);
        if (sendto(f->fd, f->buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&s->peer, s->peer_len) < 0) {
            s->dropped_down++;
            f->stats.dropped_down++;
        } else {
            s->sent_down++;
        }
    }
}

static usession *
session_new(ptth_udp_front *f, const struct sockaddr_storage *ss, socklen_t len)
{
    if (f->count >= PTTH_UDP_SESSIONS_MAX)
        return NULL;
    usession *s = calloc(1, sizeof(*s));
    int sv[2];
    if (s == NULL || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) {
        ptth_log_warn("event=udp_session_failed listen=%s error=\"%s\"", f->bound, s == NULL ? "out of memory" : strerror(errno));
        free(s);
        return NULL;
    }
    s->f = f;
    memcpy(&s->peer, ss, len);
    s->peer_len = len;
    ptth_format_sockaddr((const struct sockaddr *)ss, s->peer_text, sizeof(s->peer_text));
    s->fd = sv[0];
    s->last_ms = ptth_loop_now(f->loop);
    size_t h = peer_hash(ss, len);
    s->hnext = f->buckets[h];
    f->buckets[h] = s;
    s->next = f->all;
    if (f->all != NULL)
        f->all->prev = s;
    f->all = s;
    f->count++;
    f->stats.sessions++;
    ptth_local_end local;
    if (ptth_watch_start(f->loop, &s->watch, s->fd, EPOLLIN | EPOLLRDHUP, on_session_readable, s) != 0 ||
        ptth_local_end_dgram(&local, sv[1], &s->stats) != 0) {
        close(sv[1]);
        session_free(s);
        return NULL;
    }
    ptth_proxy_tunnel_hooks hooks = {.on_end = on_session_end, .data = s, .stream_header = udp_header, .proto = "udp"};
    if (ptth_proxy_open_tunnel(f->px, f->spec->server, f->spec->port, &local, s->peer_text, &hooks) != 0) {
        session_free(s); /* the local end (sv[1]) was closed by the proxy */
        return NULL;
    }
    /* a tunnel that fails at once has ended (and freed s) already */
    return find(f, ss, len);
}

static void
on_udp_readable(ptth_watch *w, uint32_t events)
{
    (void)events;
    ptth_udp_front *f = w->data;
    for (int i = 0; i < DATAGRAMS_PER_EVENT; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        ssize_t n = recvfrom(f->fd, f->buf, sizeof(f->buf), 0, (struct sockaddr *)&ss, &sl);
        if (n < 0) {
            if (errno == EINTR || errno == ECONNREFUSED)
                continue;
            return;
        }
        if ((size_t)n > PTTH_DGRAM_MAX) { /* an IPv6 peer's datagram too big for a frame (and for UDP over IPv4) */
            f->stats.dropped_up++;
            continue;
        }
        usession *s = find(f, &ss, sl);
        if (s == NULL && f->paused_until_ms > ptth_loop_now(f->loop)) {
            f->stats.refused++;
            continue;
        }
        if (s == NULL && (s = session_new(f, &ss, sl)) == NULL) {
            f->stats.peers_dropped++;
            long long now = ptth_loop_now(f->loop);
            if (now - f->full_logged_ms >= FULL_LOG_EVERY_MS) {
                f->full_logged_ms = now;
                ptth_log_warn("event=udp_sessions_full listen=%s sessions=%zu max=%d dropped=%" PRIu64, f->bound, f->count,
                              PTTH_UDP_SESSIONS_MAX, f->stats.peers_dropped);
            }
            continue;
        }
        s->last_ms = ptth_loop_now(f->loop);
        if (send(s->fd, f->buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
            s->dropped_up++; /* the queue to the tunnel is full: UDP drops the newest */
            f->stats.dropped_up++;
        }
    }
}

/* Ends the sessions idle for idle_ms: shutting our side for writing is the
 * end of stream the bridge reads on the other side (then FIN both ways).
 * The ending session leaves the peer table at once, so that a datagram of
 * the same peer meanwhile starts a new session instead of being lost. */
static void
on_sweep(ptth_timer *t)
{
    ptth_udp_front *f = t->data;
    long long now = ptth_loop_now(f->loop);
    for (usession *s = f->all; s != NULL; s = s->next) {
        if (!s->idle && now - s->last_ms >= f->idle_ms) {
            s->idle = true;
            unhash(s);
            shutdown(s->fd, SHUT_WR);
        }
    }
    long long every = f->idle_ms / 4 < SWEEP_MAX_MS ? f->idle_ms / 4 : SWEEP_MAX_MS;
    ptth_timer_start(f->loop, &f->sweep, every > 10 ? every : 10, on_sweep, f);
}

int
ptth_udp_front_new(ptth_loop *loop, ptth_proxy *px, const ptth_forward_spec *spec, long long idle_ms, ptth_udp_front **out,
                   char *err, size_t errlen)
{
    *out = NULL;
    ptth_udp_front *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    f->loop = loop;
    f->px = px;
    f->spec = spec;
    f->idle_ms = idle_ms > 0 ? idle_ms : PTTH_UDP_IDLE_DEFAULT_S * 1000LL;
    int rc = ptth_local_bind(spec->bind_host, spec->bind_port, SOCK_DGRAM, &f->fd, f->bound, sizeof(f->bound), err, errlen);
    if (rc == 0) {
        /* one socket for every peer: a burst of many peers (or one fast one) must not overflow the default buffer
         * while the loop is busy elsewhere; best effort */
        int size = SOCKET_BUFFER;
        (void)setsockopt(f->fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
        (void)setsockopt(f->fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
    }
    if (rc == 0 && (rc = ptth_watch_start(loop, &f->watch, f->fd, EPOLLIN, on_udp_readable, f)) != 0)
        snprintf(err, errlen, "cannot watch udp socket %s: %s", f->bound, strerror(-rc));
    if (rc != 0) {
        if (f->fd >= 0)
            close(f->fd);
        free(f);
        return rc;
    }
    long long every = f->idle_ms / 4 < SWEEP_MAX_MS ? f->idle_ms / 4 : SWEEP_MAX_MS;
    ptth_timer_start(loop, &f->sweep, every > 10 ? every : 10, on_sweep, f);
    fprintf(stderr, "listening on %s (udp)\n", f->bound);
    fflush(stderr);
    ptth_log_info("event=forward listen=%s proto=udp server=%s port=%s idle_timeout_s=%lld", f->bound, spec->server, spec->port,
                  f->idle_ms / 1000);
    *out = f;
    return 0;
}

const ptth_udp_front_stats *
ptth_udp_front_stats_get(const ptth_udp_front *f)
{
    return &f->stats;
}

void
ptth_udp_front_shutdown(ptth_udp_front *f)
{
    if (f == NULL)
        return;
    f->stopping = true;
    ptth_watch_stop(&f->watch);
    ptth_timer_stop(f->loop, &f->sweep);
}

void
ptth_udp_front_free(ptth_udp_front *f)
{
    if (f == NULL)
        return;
    ptth_udp_front_shutdown(f);
    while (f->all != NULL) /* sessions whose tunnels went with ptth_proxy_free */
        session_free(f->all);
    close(f->fd);
    free(f);
}
