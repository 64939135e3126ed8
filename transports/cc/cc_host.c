/*
 * cc_host.c: ptth_transport_cc, the host side of the comm channel. The
 * terminator's thread only creates socketpairs and queues commands; one
 * pump thread per channel address owns the channel, the mux and the other
 * ends of the socketpairs. See cc_host.h.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cc_carrier.h"
#include "cc_host.h"
#include "cc_mux.h"
#include "log.h"
#include "sysutil.h"
#include "transport.h"

#define DEFAULT_OPEN_TIMEOUT_MS 9000 /* below ptth_server's own 10 s, so our reason is the one logged */
#define EVENT_BATCH 64

typedef struct host_chan host_chan;
typedef struct cc_stream cc_stream;

typedef enum cmd_type {
    CMD_OPEN,
    CMD_CLOSE,
} cmd_type;

typedef struct cmd {
    struct cmd *next;
    cmd_type type;
    cc_stream *s;
} cmd;

struct cc_stream {
    ptth_stream base; /* base.fd: the terminator's end of the socketpair */
    host_chan *ch;
    pthread_mutex_t lock; /* guards aborted and reason */
    bool aborted;
    char reason[512];
    /* pump thread only */
    int pump_fd; /* our end until the mux takes it */
    ptth_cc_tunnel *t;
    char client[PTTH_CC_TEXT_MAX + 1];
    cmd open_cmd, close_cmd;
};

struct host_chan {
    host_chan *next;
    ptth_cc_addr addr;
    pthread_t thread;
    int epfd, evfd;
    ptth_cc_watch ev_watch;
    pthread_mutex_t lock; /* guards the queue and stop */
    cmd *q_head, *q_tail;
    bool stop;
    /* pump thread only */
    ptth_cc_mux *mux;
    bool connect_failing;
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static host_chan *channels;
static bool atexit_done;
static unsigned open_timeout_ms = DEFAULT_OPEN_TIMEOUT_MS;

/* ---- terminator side ------------------------------------------------------ */

static void set_reason(cc_stream *s, bool aborted, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void
set_reason(cc_stream *s, bool aborted, const char *fmt, ...)
{
    pthread_mutex_lock(&s->lock);
    if (s->reason[0] == '\0') {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(s->reason, sizeof(s->reason), fmt, ap);
        va_end(ap);
    }
    if (aborted)
        s->aborted = true;
    pthread_mutex_unlock(&s->lock);
}

static bool
is_aborted(cc_stream *s)
{
    pthread_mutex_lock(&s->lock);
    bool a = s->aborted;
    pthread_mutex_unlock(&s->lock);
    return a;
}

static void
enqueue(host_chan *ch, cmd *c)
{
    c->next = NULL;
    pthread_mutex_lock(&ch->lock);
    if (ch->q_tail != NULL)
        ch->q_tail->next = c;
    else
        ch->q_head = c;
    ch->q_tail = c;
    pthread_mutex_unlock(&ch->lock);
    uint64_t one = 1;
    ssize_t n = write(ch->evfd, &one, sizeof(one));
    (void)n; /* a full eventfd counter still wakes the thread */
}

static void *pump_main(void *arg);

static void
free_chan(host_chan *ch)
{
    if (ch->epfd >= 0)
        close(ch->epfd);
    if (ch->evfd >= 0)
        close(ch->evfd);
    pthread_mutex_destroy(&ch->lock);
    free(ch);
}

/* The channel for addr, with its pump thread started on first use. */
static host_chan *
get_channel(const ptth_cc_addr *addr, char *err, size_t errlen)
{
    pthread_mutex_lock(&registry_lock);
    host_chan *ch;
    for (ch = channels; ch != NULL; ch = ch->next)
        if (strcmp(ch->addr.text, addr->text) == 0)
            goto out;
    ch = calloc(1, sizeof(*ch));
    if (ch == NULL) {
        snprintf(err, errlen, "cc %s: out of memory", addr->text);
        goto out;
    }
    ch->addr = *addr;
    ch->ev_watch.kind = PTTH_CC_WATCH_OWNER;
    pthread_mutex_init(&ch->lock, NULL);
    ch->epfd = epoll_create1(EPOLL_CLOEXEC);
    ch->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &ch->ev_watch};
    if (ch->epfd < 0 || ch->evfd < 0 || epoll_ctl(ch->epfd, EPOLL_CTL_ADD, ch->evfd, &ev) != 0) {
        snprintf(err, errlen, "cc %s: epoll/eventfd: %s", addr->text, strerror(errno));
        free_chan(ch);
        ch = NULL;
        goto out;
    }
    int r = pthread_create(&ch->thread, NULL, pump_main, ch);
    if (r != 0) {
        snprintf(err, errlen, "cc %s: cannot start its thread: %s", addr->text, strerror(r));
        free_chan(ch);
        ch = NULL;
        goto out;
    }
    ch->next = channels;
    channels = ch;
    if (!atexit_done) {
        atexit_done = true;
        atexit(ptth_cc_host_shutdown);
    }
out:
    pthread_mutex_unlock(&registry_lock);
    return ch;
}

static int
cc_open(const ptth_target *target, const ptth_open_info *info, ptth_stream **out, char *err, size_t errlen)
{
    ptth_cc_addr addr;
    int r = ptth_cc_addr_from_target(target, &addr, err, errlen);
    if (r != 0)
        return r;
    host_chan *ch = get_channel(&addr, err, errlen);
    if (ch == NULL)
        return -ENOMEM;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) {
        int e = errno;
        snprintf(err, errlen, "cc %s: socketpair: %s", addr.text, strerror(e));
        return -e;
    }
    cc_stream *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        close(sv[0]);
        close(sv[1]);
        snprintf(err, errlen, "cc %s: out of memory", addr.text);
        return -ENOMEM;
    }
    s->base.transport = &ptth_transport_cc;
    s->base.fd = sv[0];
    s->base.open_events = EPOLLIN;
    s->ch = ch;
    s->pump_fd = sv[1];
    pthread_mutex_init(&s->lock, NULL);
    if (info != NULL && info->client_addr != NULL)
        snprintf(s->client, sizeof(s->client), "%s", info->client_addr);
    s->open_cmd.type = CMD_OPEN;
    s->open_cmd.s = s;
    s->close_cmd.type = CMD_CLOSE;
    s->close_cmd.s = s;
    enqueue(ch, &s->open_cmd);
    *out = &s->base;
    return 0;
}

/* The pump thread announces the outcome on the socketpair itself: one byte
 * 'K' before any data when the agent opened the tunnel, end of stream (with
 * the reason stored) when it did not. */
static int
cc_finish_open(ptth_stream *base, char *err, size_t errlen)
{
    cc_stream *s = (cc_stream *)base;
    char b;
    ssize_t n;
    do {
        n = recv(base->fd, &b, 1, MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n == 1 && b == 'K') {
        base->open_events = 0;
        return 0;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return -EINPROGRESS;
    pthread_mutex_lock(&s->lock);
    if (s->reason[0] != '\0')
        snprintf(err, errlen, "%s", s->reason);
    else
        snprintf(err, errlen, "cc %s: open failed", s->ch->addr.text);
    pthread_mutex_unlock(&s->lock);
    return n < 0 ? -errno : -ECONNREFUSED;
}

static ssize_t
cc_read(ptth_stream *base, void *buf, size_t len)
{
    cc_stream *s = (cc_stream *)base;
    ssize_t n;
    do {
        n = recv(base->fd, buf, len, MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n > 0)
        return n;
    if (n == 0)
        return is_aborted(s) ? -ECONNRESET : 0;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        return -EAGAIN;
    return is_aborted(s) ? -ECONNRESET : -errno;
}

static ssize_t
cc_write(ptth_stream *base, const void *buf, size_t len)
{
    cc_stream *s = (cc_stream *)base;
    ssize_t n;
    do {
        n = send(base->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n >= 0)
        return n;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        return -EAGAIN;
    return is_aborted(s) ? -ECONNRESET : -errno;
}

static int
cc_shutdown_write(ptth_stream *base)
{
    return shutdown(base->fd, SHUT_WR) == 0 ? 0 : -errno;
}

static void
cc_close(ptth_stream *base)
{
    cc_stream *s = (cc_stream *)base;
    if (base->fd >= 0)
        close(base->fd);
    base->fd = -1;
    enqueue(s->ch, &s->close_cmd);
}

/* ---- pump thread ----------------------------------------------------------- */

static void
on_open_result(void *ctx, ptth_cc_tunnel *t, bool ok, const char *reason)
{
    host_chan *ch = ctx;
    cc_stream *s = t->user;
    if (s == NULL)
        return;
    if (ok) {
        ssize_t n = send(t->fd, "K", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)n; /* fails only when the terminator already closed its end */
        return;
    }
    set_reason(s, false, "cc %s: agent refused the tunnel: %s", ch->addr.text, reason);
}

static void
on_abort(void *ctx, ptth_cc_tunnel *t, const char *reason)
{
    host_chan *ch = ctx;
    cc_stream *s = t->user;
    if (s != NULL)
        set_reason(s, true, "cc %s: the agent's target connection broke: %s", ch->addr.text, reason);
}

static void
on_end(void *ctx, ptth_cc_tunnel *t, const char *reason)
{
    host_chan *ch = ctx;
    cc_stream *s = t->user;
    t->user = NULL;
    if (s == NULL)
        return;
    s->t = NULL;
    if (strcmp(reason, "close") != 0 && strcmp(reason, "open_failed") != 0 && strcmp(reason, "open_timeout") != 0)
        set_reason(s, true, "cc %s: channel to the agent lost: %s", ch->addr.text, reason);
}

static const ptth_cc_mux_hooks host_hooks = {
    .on_open_result = on_open_result,
    .on_abort = on_abort,
    .on_end = on_end,
};

static void
fail_open(cc_stream *s, const char *reason)
{
    set_reason(s, false, "%s", reason);
    if (s->pump_fd >= 0)
        close(s->pump_fd); /* the terminator's finish_open sees end of stream */
    s->pump_fd = -1;
}

static void
drop_mux(host_chan *ch)
{
    if (ch->mux == NULL)
        return;
    if (ch->mux->dead != NULL) {
        char q[300];
        ptth_log_warn("event=cc_channel_lost channel=%s reason=%s", ch->addr.text, ptth_log_quote(q, sizeof(q), ch->mux->dead));
    }
    ptth_cc_mux_free(ch->mux);
    ch->mux = NULL;
}

static void
do_open(host_chan *ch, cc_stream *s)
{
    char err[300];
    if (ch->mux != NULL && ptth_cc_mux_dead(ch->mux))
        drop_mux(ch); /* it died while commands ran: connect again */
    if (ch->mux == NULL) {
        ptth_cc_conn *conn = NULL;
        const ptth_cc_carrier *car = ptth_cc_carrier_for(ch->addr.kind);
        if (car->connect(&ch->addr, &conn, err, sizeof(err)) != 0) {
            char reason[512];
            snprintf(reason, sizeof(reason), "cc: %s", err);
            if (!ch->connect_failing) {
                char q[512];
                ptth_log_warn("event=cc_connect_failed channel=%s reason=%s", ch->addr.text, ptth_log_quote(q, sizeof(q), err));
                ch->connect_failing = true;
            }
            fail_open(s, reason);
            return;
        }
        ptth_cc_mux_config cfg = {.side = PTTH_CC_SIDE_HOST,
                                  .max_msg = PTTH_CC_MSG_DEFAULT_MAX,
                                  .window = PTTH_CC_DEFAULT_WINDOW,
                                  .open_timeout_ms = open_timeout_ms};
        ch->mux = ptth_cc_mux_new(&cfg, &host_hooks, ch, ch->epfd, conn, ch->addr.text);
        if (ch->mux == NULL) {
            snprintf(err, sizeof(err), "cc %s: cannot set up the channel (out of memory)", ch->addr.text);
            fail_open(s, err);
            return;
        }
        ch->connect_failing = false;
        if (conn->connecting)
            ptth_log_info("event=cc_channel_connecting channel=%s", ch->addr.text);
        else
            ptth_log_info("event=cc_channel_up channel=%s", ch->addr.text);
    }
    int fd = s->pump_fd;
    s->pump_fd = -1; /* the mux owns it from here, also on failure */
    s->t = ptth_cc_mux_open_tunnel(ch->mux, fd, s->client[0] ? s->client : NULL, s);
    if (s->t == NULL)
        set_reason(s, false, "cc %s: cannot open a tunnel (out of memory or channel down)", ch->addr.text);
}

static void
do_close(host_chan *ch, cc_stream *s)
{
    if (s->t != NULL && ch->mux != NULL) {
        ptth_cc_tunnel *t = s->t;
        t->user = NULL; /* s is freed now; the tunnel may linger (cc_mux.h) */
        s->t = NULL;
        ptth_cc_mux_close_tunnel(ch->mux, t, NULL);
    }
    if (s->pump_fd >= 0)
        close(s->pump_fd);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

/* Takes every queued command; returns whether stop was asked. */
static bool
run_commands(host_chan *ch)
{
    uint64_t v;
    ssize_t n = read(ch->evfd, &v, sizeof(v));
    (void)n;
    pthread_mutex_lock(&ch->lock);
    cmd *c = ch->q_head;
    ch->q_head = ch->q_tail = NULL;
    bool stop = ch->stop;
    pthread_mutex_unlock(&ch->lock);
    while (c != NULL) {
        cmd *next = c->next;
        if (c->type == CMD_OPEN) {
            if (stop)
                fail_open(c->s, "cc: shutting down");
            else
                do_open(ch, c->s);
        } else {
            do_close(ch, c->s);
        }
        c = next;
    }
    return stop;
}

static void *
pump_main(void *arg)
{
    host_chan *ch = arg;
    struct epoll_event evs[EVENT_BATCH];
    for (;;) {
        int timeout = -1;
        if (ch->mux != NULL) {
            long long now = ptth_now_ms();
            long long next = ptth_cc_mux_expire(ch->mux, now);
            ptth_cc_mux_after_events(ch->mux);
            if (next != 0)
                timeout = next > now ? (int)(next - now) : 0;
        }
        int n = epoll_wait(ch->epfd, evs, EVENT_BATCH, timeout);
        if (n < 0 && errno != EINTR) {
            ptth_log_error("event=cc_epoll_failed channel=%s error=%d", ch->addr.text, errno);
            break;
        }
        bool commands = false;
        for (int i = 0; i < n; i++) {
            ptth_cc_watch *w = evs[i].data.ptr;
            if (w == &ch->ev_watch)
                commands = true;
            else if (ch->mux != NULL)
                ptth_cc_mux_handle(ch->mux, w, evs[i].events);
        }
        if (ch->mux != NULL) {
            if (ptth_cc_mux_dead(ch->mux))
                drop_mux(ch);
            else
                ptth_cc_mux_after_events(ch->mux);
        }
        if (commands && run_commands(ch))
            break;
    }
    drop_mux(ch);
    /* commands that came after stop (closes of streams still open) */
    pthread_mutex_lock(&ch->lock);
    ch->stop = true;
    pthread_mutex_unlock(&ch->lock);
    run_commands(ch);
    return NULL;
}

void
ptth_cc_host_shutdown(void)
{
    pthread_mutex_lock(&registry_lock);
    host_chan *list = channels;
    channels = NULL;
    pthread_mutex_unlock(&registry_lock);
    while (list != NULL) {
        host_chan *ch = list;
        list = ch->next;
        pthread_mutex_lock(&ch->lock);
        ch->stop = true;
        pthread_mutex_unlock(&ch->lock);
        uint64_t one = 1;
        ssize_t n = write(ch->evfd, &one, sizeof(one));
        (void)n;
        pthread_join(ch->thread, NULL);
        free_chan(ch);
    }
}

void
ptth_cc_host_set_open_timeout(unsigned ms)
{
    open_timeout_ms = ms;
}

const ptth_transport ptth_transport_cc = {
    .name = "cc",
    .open = cc_open,
    .finish_open = cc_finish_open,
    .read = cc_read,
    .write = cc_write,
    .shutdown_write = cc_shutdown_write,
    .close = cc_close,
};
