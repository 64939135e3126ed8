/*
 * ptth_load's servers, one epoll loop over non-blocking sockets:
 *   sink  counts the bytes of each connection; when the client half-closes it
 *         answers the count as 8 bytes (big-endian) and closes.
 *   echo  writes back what it reads; when the client half-closes it finishes
 *         writing, half-closes too and closes.
 * Connections idle for --timeout are closed (an error in the totals). The
 * servers run until SIGINT/SIGTERM and then exit 0 with everything freed.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "load.h"
#include "sysutil.h"

#define SINK_BUF (1024 * 1024)
#define ECHO_BUF (256 * 1024)

typedef struct sconn {
    int fd;
    bool out_armed; /* EPOLLOUT is what we wait for (reply or pending echo bytes) */
    bool peer_fin;  /* read end of stream */
    uint64_t bytes; /* bytes received */
    char *pending;  /* echo: bytes read but not yet written back */
    size_t pending_len, pending_off;
    unsigned char reply[8]; /* sink: the count being written */
    size_t reply_off;
    long long last_us;
    struct sconn *prev, *next;
} sconn;

typedef struct server {
    int ep, lfd, sfd;
    bool listen_paused;
    char *scratch;
    size_t scratch_len;
    sconn *conns; /* every open connection, for the idle sweep and the exit */
    uint64_t accepted, open, total_bytes, completed, errors;
} server;

static char listener_tag, signal_tag;

static void
sconn_close(server *sv, sconn *c)
{
    epoll_ctl(sv->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        sv->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    sv->open--;
    free(c->pending);
    free(c);
}

static void
sconn_want(server *sv, sconn *c, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    epoll_ctl(sv->ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->out_armed = (events & EPOLLOUT) != 0;
}

/* Writes what the connection owes (the sink's count, the echo's pending
 * bytes). Returns 1 when all is written, 0 when the socket is full, -1 on
 * error. */
static int
sconn_flush(server *sv, sconn *c)
{
    (void)sv;
    while (true) {
        const char *p;
        size_t len;
        if (load_cfg.mode == MODE_SINK) {
            p = (const char *)c->reply + c->reply_off;
            len = sizeof(c->reply) - c->reply_off;
        } else {
            p = c->pending + c->pending_off;
            len = c->pending_len - c->pending_off;
        }
        if (len == 0)
            return 1;
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return 0;
            return -1;
        }
        if (load_cfg.mode == MODE_SINK) {
            c->reply_off += (size_t)n;
        } else {
            c->pending_off += (size_t)n;
            if (c->pending_off == c->pending_len) {
                free(c->pending);
                c->pending = NULL;
                c->pending_len = c->pending_off = 0;
            }
        }
    }
}

/* The connection finished its exchange: the sink wrote its count, the echo
 * wrote everything back after the peer's end of stream. */
static void
sconn_finish(server *sv, sconn *c)
{
    if (load_cfg.mode == MODE_ECHO)
        shutdown(c->fd, SHUT_WR);
    sv->completed++;
    sconn_close(sv, c);
}

static void
on_peer_fin(server *sv, sconn *c)
{
    c->peer_fin = true;
    if (load_cfg.mode == MODE_SINK) {
        for (int i = 0; i < 8; i++)
            c->reply[i] = (unsigned char)(c->bytes >> (56 - 8 * i));
    }
    int r = sconn_flush(sv, c);
    if (r < 0) {
        sv->errors++;
        sconn_close(sv, c);
    } else if (r == 0) {
        sconn_want(sv, c, EPOLLOUT);
    } else {
        sconn_finish(sv, c);
    }
}

static void
on_readable(server *sv, sconn *c)
{
    /* Bounded so that one busy connection does not starve the others. */
    for (int round = 0; round < 16; round++) {
        ssize_t n = recv(c->fd, sv->scratch, sv->scratch_len, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return;
            sv->errors++;
            sconn_close(sv, c);
            return;
        }
        if (n == 0) {
            on_peer_fin(sv, c);
            return;
        }
        c->bytes += (uint64_t)n;
        sv->total_bytes += (uint64_t)n;
        if (load_cfg.mode == MODE_ECHO) {
            ssize_t w = send(c->fd, sv->scratch, (size_t)n, MSG_NOSIGNAL);
            if (w < 0 && errno != EAGAIN && errno != EINTR) {
                sv->errors++;
                sconn_close(sv, c);
                return;
            }
            if (w < 0)
                w = 0;
            if (w < n) {
                /* The peer is not reading: keep the rest and stop reading
                 * until it is written (backpressure). */
                c->pending_len = (size_t)(n - w);
                c->pending_off = 0;
                c->pending = malloc(c->pending_len);
                if (c->pending == NULL) {
                    sv->errors++;
                    sconn_close(sv, c);
                    return;
                }
                memcpy(c->pending, sv->scratch + w, c->pending_len);
                sconn_want(sv, c, EPOLLOUT);
                return;
            }
        }
    }
}

static void
on_writable(server *sv, sconn *c)
{
    int r = sconn_flush(sv, c);
    if (r < 0) {
        sv->errors++;
        sconn_close(sv, c);
    } else if (r > 0) {
        if (c->peer_fin)
            sconn_finish(sv, c);
        else
            sconn_want(sv, c, EPOLLIN);
    }
}

static void
on_accept(server *sv)
{
    for (int i = 0; i < 256; i++) {
        int fd = accept4(sv->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
                return;
            /* EMFILE and friends: pause the listener until the next sweep
             * rather than spin on a level-triggered event. */
            load_fail("accept: %s (pausing the listener)", strerror(errno));
            struct epoll_event ev = {.events = 0, .data.ptr = &listener_tag};
            epoll_ctl(sv->ep, EPOLL_CTL_MOD, sv->lfd, &ev);
            sv->listen_paused = true;
            sv->errors++;
            return;
        }
        sconn *c = calloc(1, sizeof(*c));
        if (c == NULL) {
            close(fd);
            sv->errors++;
            continue;
        }
        c->fd = fd;
        c->last_us = load_now_us();
        ptth_set_nodelay(fd);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(sv->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
            close(fd);
            free(c);
            sv->errors++;
            continue;
        }
        c->next = sv->conns;
        if (sv->conns != NULL)
            sv->conns->prev = c;
        sv->conns = c;
        sv->accepted++;
        sv->open++;
    }
}

/* Once a second: close connections idle for --timeout, resume a paused
 * listener. */
static void
sweep(server *sv, long long now)
{
    if (sv->listen_paused) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &listener_tag};
        epoll_ctl(sv->ep, EPOLL_CTL_MOD, sv->lfd, &ev);
        sv->listen_paused = false;
    }
    long long limit = (long long)load_cfg.timeout * 1000000;
    for (sconn *c = sv->conns, *next; c != NULL; c = next) {
        next = c->next;
        if (now - c->last_us > limit) {
            sv->errors++;
            sconn_close(sv, c);
        }
    }
}

int
load_run_server(const struct sockaddr_storage *ss, socklen_t sslen)
{
    server sv = {.ep = -1, .lfd = -1, .sfd = -1};
    int rc = 1;
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    sv.scratch_len = load_cfg.mode == MODE_SINK ? SINK_BUF : ECHO_BUF;
    sv.scratch = malloc(sv.scratch_len);
    sv.ep = epoll_create1(EPOLL_CLOEXEC);
    sv.sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    sv.lfd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (sv.scratch == NULL || sv.ep < 0 || sv.sfd < 0 || sv.lfd < 0) {
        load_fail("start-up: %s", strerror(errno));
        goto out;
    }
    int one = 1;
    setsockopt(sv.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(sv.lfd, (const struct sockaddr *)ss, sslen) != 0 || listen(sv.lfd, (int)load_cfg.backlog) != 0) {
        load_fail("cannot listen on %s: %s", load_cfg.listen, strerror(errno));
        goto out;
    }
    struct sockaddr_storage bound;
    socklen_t blen = sizeof(bound);
    getsockname(sv.lfd, (struct sockaddr *)&bound, &blen);
    char addr[128];
    ptth_format_sockaddr((struct sockaddr *)&bound, addr, sizeof(addr));
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &listener_tag};
    epoll_ctl(sv.ep, EPOLL_CTL_ADD, sv.lfd, &ev);
    ev.data.ptr = &signal_tag;
    epoll_ctl(sv.ep, EPOLL_CTL_ADD, sv.sfd, &ev);
    load_human("listening on %s", addr);
    printf("mode=%s event=listening addr=%s\n", load_cfg.mode_name, addr);
    fflush(stdout);

    struct epoll_event evs[256];
    long long last_sweep = load_now_us();
    bool stop = false;
    while (!stop) {
        int n = epoll_wait(sv.ep, evs, 256, 1000);
        if (n < 0 && errno != EINTR) {
            load_fail("epoll_wait: %s", strerror(errno));
            goto out;
        }
        long long now = load_now_us();
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (p == &listener_tag) {
                on_accept(&sv);
            } else if (p == &signal_tag) {
                stop = true;
            } else {
                sconn *c = p;
                c->last_us = now;
                /* Errors and hang-ups show up as a failing read or write. */
                if (c->out_armed)
                    on_writable(&sv, c);
                else
                    on_readable(&sv, c);
            }
        }
        if (now - last_sweep >= 1000000) {
            sweep(&sv, now);
            last_sweep = now;
        }
    }
    load_human("stopped: %" PRIu64 " connections, %" PRIu64 " completed, %" PRIu64 " bytes, %" PRIu64 " errors", sv.accepted,
               sv.completed, sv.total_bytes, sv.errors);
    printf("mode=%s event=stopped connections=%" PRIu64 " completed=%" PRIu64 " bytes=%" PRIu64 " errors=%" PRIu64 "\n",
           load_cfg.mode_name, sv.accepted, sv.completed, sv.total_bytes, sv.errors);
    rc = 0;
out:
    while (sv.conns != NULL)
        sconn_close(&sv, sv.conns);
    if (sv.lfd >= 0)
        close(sv.lfd);
    if (sv.sfd >= 0)
        close(sv.sfd);
    if (sv.ep >= 0)
        close(sv.ep);
    free(sv.scratch);
    return rc;
}
