/* socks_front.c: ptth_proxy's SOCKS5 server; see socks_front.h. */
#include "socks_front.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bridge.h"
#include "keys.h"
#include "local_bind.h"
#include "log.h"
#include "socks5.h"
#include "sysutil.h"

#define ACCEPTS_PER_EVENT 64
#define ACCEPT_PAUSE_MS 1000

/* ---- the auth file ---- */

static uint8_t *
dup_bytes(const char *p, size_t len)
{
    uint8_t *d = malloc(len > 0 ? len : 1);
    if (d != NULL)
        memcpy(d, p, len);
    return d;
}

int
ptth_socks_users_load(const char *path, ptth_socks_users *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    char *buf = malloc(PTTH_SOCKS_USERS_FILE_MAX + 1);
    if (buf == NULL) {
        snprintf(err, errlen, "out of memory reading --socks-auth-file '%s'", path);
        return -ENOMEM;
    }
    size_t len = 0;
    int rc = ptth_secret_file_read(path, "--socks-auth-file", buf, PTTH_SOCKS_USERS_FILE_MAX + 1, &len, err, errlen);
    if (rc == -EFBIG)
        snprintf(err, errlen, "--socks-auth-file '%s' is larger than %d bytes", path, PTTH_SOCKS_USERS_FILE_MAX);
    if (rc != 0) {
        free(buf);
        return rc < 0 ? rc : -EINVAL;
    }
    out->items = calloc(PTTH_SOCKS_USERS_MAX, sizeof(*out->items));
    if (out->items == NULL)
        rc = -ENOMEM;
    size_t lineno = 0;
    for (char *line = buf; rc == 0 && line < buf + len;) {
        char *nl = memchr(line, '\n', (size_t)(buf + len - line));
        char *end = nl != NULL ? nl : buf + len;
        lineno++;
        size_t ll = (size_t)(end - line);
        if (ll > 0 && line[ll - 1] == '\r')
            ll--;
        if (ll > 0 && line[0] != '#') {
            char *colon = memchr(line, ':', ll);
            size_t ulen = colon != NULL ? (size_t)(colon - line) : 0;
            size_t plen = colon != NULL ? ll - ulen - 1 : 0;
            if (colon == NULL || ulen == 0 || ulen > 255 || plen == 0 || plen > 255) {
                snprintf(err, errlen, "--socks-auth-file '%s' line %zu: expected USER:PASS, each 1 to 255 bytes", path, lineno);
                rc = -EINVAL;
            } else if (out->count == PTTH_SOCKS_USERS_MAX) {
                snprintf(err, errlen, "--socks-auth-file '%s': more than %d users", path, PTTH_SOCKS_USERS_MAX);
                rc = -E2BIG;
            } else {
                ptth_socks_user *u = &out->items[out->count];
                u->user = dup_bytes(line, ulen);
                u->pass = dup_bytes(colon + 1, plen);
                u->ulen = ulen;
                u->plen = plen;
                out->count++;
                if (u->user == NULL || u->pass == NULL)
                    rc = -ENOMEM;
            }
        }
        line = nl != NULL ? nl + 1 : buf + len;
    }
    if (rc == 0 && out->count == 0) {
        snprintf(err, errlen, "--socks-auth-file '%s' holds no USER:PASS line", path);
        rc = -EINVAL;
    }
    if (rc == -ENOMEM)
        snprintf(err, errlen, "out of memory reading --socks-auth-file '%s'", path);
    OPENSSL_cleanse(buf, PTTH_SOCKS_USERS_FILE_MAX + 1);
    free(buf);
    if (rc != 0)
        ptth_socks_users_free(out);
    return rc;
}

/* Compares with every entry, each in constant time, so that neither which
 * user matched nor how much of a password did shows in the timing. */
bool
ptth_socks_users_check(const ptth_socks_users *u, const uint8_t *user, size_t ulen, const uint8_t *pass, size_t plen)
{
    bool ok = false;
    for (size_t i = 0; i < u->count; i++) {
        const ptth_socks_user *e = &u->items[i];
        bool m = e->ulen == ulen && e->plen == plen;
        m &= CRYPTO_memcmp(e->user, user, e->ulen <= ulen ? e->ulen : ulen) == 0;
        m &= CRYPTO_memcmp(e->pass, pass, e->plen <= plen ? e->plen : plen) == 0;
        ok |= m;
    }
    return ok;
}

void
ptth_socks_users_free(ptth_socks_users *u)
{
    for (size_t i = 0; u->items != NULL && i < u->count; i++) {
        if (u->items[i].user != NULL)
            OPENSSL_cleanse(u->items[i].user, u->items[i].ulen);
        if (u->items[i].pass != NULL)
            OPENSSL_cleanse(u->items[i].pass, u->items[i].plen);
        free(u->items[i].user);
        free(u->items[i].pass);
    }
    free(u->items);
    memset(u, 0, sizeof(*u));
}

/* ---- connections ---- */

typedef struct socks_conn {
    ptth_socks_front *f;
    struct socks_conn *prev, *next;
    int fd;
    ptth_watch watch;
    ptth_timer timer;
    ptth_socks hs;
    uint8_t buf[PTTH_SOCKS_MSG_MAX];
    size_t have, need;
    bool tunnel; /* handed to the proxy: the bridge holds the local end */
    char peer[96];
} socks_conn;

struct ptth_socks_front {
    ptth_loop *loop;
    ptth_proxy *px;
    const ptth_socks_users *users;
    int lfd;
    ptth_watch watch;
    ptth_timer pause_timer;
    char bound[96];
    socks_conn *conns;
    size_t pending; /* conns still in the handshake */
};

static bool
check_user(const uint8_t *user, size_t ulen, const uint8_t *pass, size_t plen, void *data)
{
    return ptth_socks_users_check(data, user, ulen, pass, plen);
}

static void
conn_free(socks_conn *c)
{
    ptth_socks_front *f = c->f;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        f->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    if (!c->tunnel)
        f->pending--;
    ptth_watch_stop(&c->watch);
    ptth_timer_stop(f->loop, &c->timer);
    if (c->fd >= 0)
        close(c->fd);
    free(c);
}

/* The replies are at most 10 bytes on a socket that has sent nothing yet:
 * they fit its buffer, so a short write means the peer is gone. */
static void
send_reply(socks_conn *c, const uint8_t *p, size_t len)
{
    if (len > 0 && c->fd >= 0)
        (void)send(c->fd, p, len, MSG_NOSIGNAL);
}

static void
handshake_failed(socks_conn *c, const char *why)
{
    char q[200];
    ptth_log_warn("event=socks_refused listen=%s peer=%s state=%s reason=%s", c->f->bound, c->peer,
                  ptth_socks_state_name(c->hs.state == PTTH_SOCKS_ST_CLOSED ? c->hs.failed_in : c->hs.state),
                  ptth_log_quote(q, sizeof(q), why));
    conn_free(c);
}

/* ---- the socket as the tunnel's local end ----
 * Like common/local_end.c's, except that closing before the tunnel opened
 * keeps the socket: the refusal's reply goes out in on_end. */

static ssize_t
sc_read(void *ctx, void *buf, size_t len)
{
    socks_conn *c = ctx;
    ssize_t n = read(c->fd, buf, len);
    return n >= 0 ? n : -errno;
}

static ssize_t
sc_write(void *ctx, const void *buf, size_t len)
{
    socks_conn *c = ctx;
    ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);
    if (n < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    return n > 0 ? n : -EIO;
}

static int
sc_shutdown_write(void *ctx)
{
    socks_conn *c = ctx;
    return shutdown(c->fd, SHUT_WR) == 0 ? 0 : -errno;
}

static void
sc_close(void *ctx)
{
    socks_conn *c = ctx;
    if (c->hs.state == PTTH_SOCKS_ST_OPEN && c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
}

static void
sc_abort(void *ctx)
{
    socks_conn *c = ctx;
    if (c->hs.state == PTTH_SOCKS_ST_OPEN && c->fd >= 0) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    sc_close(ctx);
}

static const ptth_local_ops socks_local_ops = {
    .read = sc_read,
    .write = sc_write,
    .shutdown_write = sc_shutdown_write,
    .close = sc_close,
    .abort = sc_abort,
};

static void
on_tunnel_established(ptth_bridge *b, void *data)
{
    (void)b;
    socks_conn *c = data;
    ptth_socks_event ev = {.kind = PTTH_SOCKS_EV_OPENED};
    ptth_socks_out out;
    ptth_socks_step(&c->hs, &ev, &out);
    send_reply(c, out.reply, out.reply_len);
}

static void
on_tunnel_end(const ptth_bridge_result *res, void *data)
{
    socks_conn *c = data;
    if (!res->established) {
        ptth_socks_event ev = {.kind = PTTH_SOCKS_EV_REFUSED, .status = res->status};
        ptth_socks_out out;
        ptth_socks_step(&c->hs, &ev, &out);
        send_reply(c, out.reply, out.reply_len);
        ptth_log_debug("event=socks_reply peer=%s server=%s port=%s status=%ld reply=%u", c->peer, c->hs.server, c->hs.port,
                       res->status, out.reply_len > 1 ? out.reply[1] : 0);
    }
    conn_free(c);
}

static void
start_tunnel(socks_conn *c)
{
    ptth_socks_front *f = c->f;
    ptth_watch_stop(&c->watch);
    ptth_timer_stop(f->loop, &c->timer);
    c->tunnel = true;
    f->pending--;
    ptth_local_end local = {.ops = &socks_local_ops, .ctx = c, .read_fd = c->fd, .write_fd = c->fd};
    ptth_proxy_tunnel_hooks hooks = {.on_established = on_tunnel_established, .on_end = on_tunnel_end, .data = c, .proto = "tcp"};
    ptth_set_nodelay(c->fd);
    if (ptth_proxy_open_tunnel(f->px, c->hs.server, c->hs.port, &local, c->peer, &hooks) != 0) {
        uint8_t rep[10] = {5, PTTH_SOCKS_REP_FAILURE, 0, 1, 0, 0, 0, 0, 0, 0};
        send_reply(c, rep, sizeof(rep));
        conn_free(c);
    }
}

/* Reads only what the current message still needs, so that the bytes a
 * client sends after its request stay in the socket for the tunnel. */
static void
on_readable(ptth_watch *w, uint32_t events)
{
    (void)events;
    socks_conn *c = w->data;
    for (;;) {
        ssize_t n = read(c->fd, c->buf + c->have, c->need);
        if (n == 0) {
            handshake_failed(c, "client closed during the handshake");
            return;
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                return;
            handshake_failed(c, strerror(errno));
            return;
        }
        c->have += (size_t)n;
        ptth_socks_event ev = {.kind = PTTH_SOCKS_EV_BYTES, .data = c->buf, .len = c->have};
        ptth_socks_out out;
        ptth_socks_step(&c->hs, &ev, &out);
        switch (out.action) {
        case PTTH_SOCKS_NEED_MORE:
            if (c->have + out.need > sizeof(c->buf)) { /* cannot happen: socks5.h bounds every message */
                handshake_failed(c, "message too long");
                return;
            }
            c->need = out.need;
            break;
        case PTTH_SOCKS_REPLY:
            send_reply(c, out.reply, out.reply_len);
            c->have = 0;
            c->need = 1;
            break;
        case PTTH_SOCKS_CONNECT:
            c->have = 0;
            start_tunnel(c);
            return;
        case PTTH_SOCKS_OPEN:
        case PTTH_SOCKS_CLOSE:
            send_reply(c, out.reply, out.reply_len);
            handshake_failed(c, c->hs.error != NULL ? c->hs.error : "closed");
            return;
        }
    }
}

static void
on_handshake_timeout(ptth_timer *t)
{
    socks_conn *c = t->data;
    handshake_failed(c, "handshake not finished in time");
}

static void
on_accept_pause_over(ptth_timer *t)
{
    ptth_socks_front *f = t->data;
    ptth_watch_set(&f->watch, EPOLLIN);
}

static void
on_accept(ptth_watch *w, uint32_t events)
{
    (void)events;
    ptth_socks_front *f = w->data;
    for (int i = 0; i < ACCEPTS_PER_EVENT; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(f->lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED)
                return;
            ptth_log_warn("event=accept_failed listen=%s error=\"%s\" pause_ms=%d", f->bound, strerror(errno), ACCEPT_PAUSE_MS);
            ptth_watch_set(&f->watch, 0);
            ptth_timer_start(f->loop, &f->pause_timer, ACCEPT_PAUSE_MS, on_accept_pause_over, f);
            return;
        }
        char peer[96];
        ptth_format_sockaddr((struct sockaddr *)&ss, peer, sizeof(peer));
        socks_conn *c = f->pending < PTTH_SOCKS_PENDING_MAX ? calloc(1, sizeof(*c)) : NULL;
        if (c == NULL) {
            ptth_log_warn("event=socks_refused listen=%s peer=%s reason=\"%d handshakes under way already, or out of memory\"",
                          f->bound, peer, PTTH_SOCKS_PENDING_MAX);
            close(fd);
            continue;
        }
        c->f = f;
        c->fd = fd;
        c->need = 1;
        snprintf(c->peer, sizeof(c->peer), "%s", peer);
        ptth_socks_init(&c->hs, f->users != NULL && f->users->count > 0 ? check_user : NULL, (void *)f->users);
        c->next = f->conns;
        if (f->conns != NULL)
            f->conns->prev = c;
        f->conns = c;
        f->pending++;
        if (ptth_watch_start(f->loop, &c->watch, fd, EPOLLIN, on_readable, c) != 0) {
            handshake_failed(c, "cannot watch the socket");
            continue;
        }
        ptth_timer_start(f->loop, &c->timer, PTTH_SOCKS_HANDSHAKE_MS, on_handshake_timeout, c);
    }
}

int
ptth_socks_front_new(ptth_loop *loop, ptth_proxy *px, const char *host, uint16_t port, const ptth_socks_users *users,
                     ptth_socks_front **out, char *err, size_t errlen)
{
    *out = NULL;
    ptth_socks_front *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    f->loop = loop;
    f->px = px;
    f->users = users;
    int rc = ptth_local_bind(host, port, SOCK_STREAM, &f->lfd, f->bound, sizeof(f->bound), err, errlen);
    if (rc == 0 && (rc = ptth_watch_start(loop, &f->watch, f->lfd, EPOLLIN, on_accept, f)) != 0)
        snprintf(err, errlen, "cannot watch --socks socket %s: %s", f->bound, strerror(-rc));
    if (rc != 0) {
        if (f->lfd >= 0)
            close(f->lfd);
        free(f);
        return rc;
    }
    fprintf(stderr, "listening on %s (socks5)\n", f->bound);
    fflush(stderr);
    ptth_log_info("event=socks listen=%s auth=%s", f->bound, users != NULL && users->count > 0 ? "userpass" : "none");
    *out = f;
    return 0;
}

void
ptth_socks_front_shutdown(ptth_socks_front *f)
{
    if (f == NULL)
        return;
    ptth_watch_stop(&f->watch);
    ptth_timer_stop(f->loop, &f->pause_timer);
    for (socks_conn *c = f->conns, *next; c != NULL; c = next) {
        next = c->next;
        if (!c->tunnel)
            conn_free(c);
    }
}

void
ptth_socks_front_free(ptth_socks_front *f)
{
    if (f == NULL)
        return;
    ptth_socks_front_shutdown(f);
    while (f->conns != NULL) /* tunnels whose proxy is gone already (ptth_proxy_free) */
        conn_free(f->conns);
    if (f->lfd >= 0)
        close(f->lfd);
    free(f);
}
