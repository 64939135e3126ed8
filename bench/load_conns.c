/*
 * ptth_load conns: N connections, each one round trip against echo, at most
 * --parallel of them setting up at once, in one epoll loop over non-blocking
 * sockets; prints the set-up rate, successes and failures with their reasons.
 * --hold keeps them open afterwards (so that the memory of N open tunnels can
 * be measured) until stdin ends or the seconds pass. With --socks NAME each
 * connection first does a SOCKS5 CONNECT to NAME (bench/load_socks.c): the
 * set-up then includes the handshake.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "load.h"
#include "sysutil.h"

typedef enum cstate { C_IDLE, C_CONNECTING, C_SOCKS, C_WRITING, C_READING, C_HELD, C_DONE } cstate;

typedef struct cconn {
    int fd;
    cstate state;
    uint32_t done; /* bytes written, then bytes read back */
    long long start_us;
    load_socks socks;
} cconn;

typedef struct conns_run {
    int ep;
    cconn *c;
    size_t n, next, inflight, ok, failed, held;
    long long *setup_us; /* per success */
    load_reasons reasons;
    const struct sockaddr_storage *ss;
    socklen_t sslen;
} conns_run;

static char stdin_tag;

/* Each connection sends its own bytes, so that crossed echoes show. */
static void
message_for(size_t i, char *out)
{
    for (size_t j = 0; j < load_cfg.size; j++)
        out[j] = (char)('a' + (i * 7 + j) % 26);
}

static void
conn_failed(conns_run *r, size_t i, const char *stage, int err)
{
    cconn *c = &r->c[i];
    if (c->fd >= 0) {
        epoll_ctl(r->ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    c->state = C_DONE;
    r->inflight--;
    r->failed++;
    load_reasons_add(&r->reasons, stage, err);
}

static void
conn_succeeded(conns_run *r, size_t i, long long now)
{
    cconn *c = &r->c[i];
    r->setup_us[r->ok++] = now - c->start_us;
    r->inflight--;
    epoll_ctl(r->ep, EPOLL_CTL_DEL, c->fd, NULL);
    if (load_cfg.hold > 0) {
        c->state = C_HELD;
        r->held++;
    } else {
        close(c->fd);
        c->fd = -1;
        c->state = C_DONE;
    }
}

/* Writes the rest of the message, then reads the echo. */
static void
conn_progress(conns_run *r, size_t i, long long now)
{
    cconn *c = &r->c[i];
    char want[LOAD_MAX_SIZE], got[LOAD_MAX_SIZE];
    if (c->state == C_CONNECTING) {
        int err = 0;
        socklen_t elen = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &elen);
        if (err != 0) {
            conn_failed(r, i, "connect", err);
            return;
        }
        c->state = load_cfg.socks != NULL ? C_SOCKS : C_WRITING;
        c->done = 0;
    }
    if (c->state == C_SOCKS) {
        const char *stage = NULL;
        int err = 0;
        int step = load_socks_progress(c->fd, &c->socks, load_cfg.socks, &stage, &err);
        switch (step) {
        case LOAD_SOCKS_FAILED:
            conn_failed(r, i, stage, err);
            return;
        case LOAD_SOCKS_WANT_READ:
        case LOAD_SOCKS_WANT_WRITE: {
            struct epoll_event ev = {.events = step == LOAD_SOCKS_WANT_READ ? EPOLLIN : EPOLLOUT, .data.u64 = i};
            epoll_ctl(r->ep, EPOLL_CTL_MOD, c->fd, &ev);
            return;
        }
        default:
            c->state = C_WRITING;
        }
    }
    if (c->state == C_WRITING) {
        message_for(i, want);
        while (c->done < load_cfg.size) {
            ssize_t n = send(c->fd, want + c->done, load_cfg.size - c->done, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                if (errno == EAGAIN) {
                    struct epoll_event ev = {.events = EPOLLOUT, .data.u64 = i};
                    epoll_ctl(r->ep, EPOLL_CTL_MOD, c->fd, &ev);
                    return;
                }
                conn_failed(r, i, "write", errno);
                return;
            }
            c->done += (uint32_t)n;
        }
        c->state = C_READING;
        c->done = 0;
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = i};
        epoll_ctl(r->ep, EPOLL_CTL_MOD, c->fd, &ev);
        return; /* the echo cannot be there yet */
    }
    if (c->state == C_READING) {
        while (c->done < load_cfg.size) {
            ssize_t n = recv(c->fd, got, load_cfg.size - c->done, 0);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                if (errno != EAGAIN)
                    conn_failed(r, i, "read", errno);
                return;
            }
            if (n == 0) {
                conn_failed(r, i, "eof", 0);
                return;
            }
            message_for(i, want);
            if (memcmp(got, want + c->done, (size_t)n) != 0) {
                conn_failed(r, i, "mismatch", 0);
                return;
            }
            c->done += (uint32_t)n;
        }
        conn_succeeded(r, i, now);
    }
}

static void
conn_start(conns_run *r, size_t i, long long now)
{
    cconn *c = &r->c[i];
    c->start_us = now;
    r->inflight++;
    c->fd = socket(r->ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        conn_failed(r, i, "socket", errno);
        return;
    }
    ptth_set_nodelay(c->fd);
    c->state = C_CONNECTING;
    bool at_once = connect(c->fd, (const struct sockaddr *)r->ss, r->sslen) == 0;
    if (!at_once && errno != EINPROGRESS) {
        conn_failed(r, i, "connect", errno);
        return;
    }
    struct epoll_event ev = {.events = EPOLLOUT, .data.u64 = i};
    if (epoll_ctl(r->ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
        conn_failed(r, i, "epoll", errno);
        return;
    }
    if (at_once)
        conn_progress(r, i, now);
}

/* After the round trips: holds the connections open until stdin ends or
 * --hold seconds pass, then counts those still open (not closed by a peer). */
static void
conns_hold(conns_run *r)
{
    printf("mode=conns event=holding open=%zu\n", r->held);
    fflush(stdout);
    load_human("holding %zu connections open (close stdin or wait %" PRIu64 " s)", r->held, load_cfg.hold);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &stdin_tag};
    bool watch_stdin = epoll_ctl(r->ep, EPOLL_CTL_ADD, 0, &ev) == 0;
    long long deadline = load_now_us() + (long long)load_cfg.hold * 1000000;
    while (true) {
        long long left = (deadline - load_now_us()) / 1000;
        if (left <= 0)
            break;
        int n = epoll_wait(r->ep, &ev, 1, (int)(left > 1000 ? 1000 : left));
        if (n > 0 && watch_stdin) {
            char buf[256];
            ssize_t got = read(0, buf, sizeof(buf));
            if (got <= 0 || ev.events & (EPOLLHUP | EPOLLERR))
                break;
        }
    }
    if (watch_stdin)
        epoll_ctl(r->ep, EPOLL_CTL_DEL, 0, NULL);
    size_t alive = 0;
    for (size_t i = 0; i < r->n; i++) {
        cconn *c = &r->c[i];
        if (c->state != C_HELD)
            continue;
        char b;
        ssize_t got = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
        if (got < 0 && errno == EAGAIN)
            alive++;
    }
    load_human("%zu of %zu held connections were still open at the end", alive, r->held);
    printf("mode=conns event=held held=%zu alive=%zu\n", r->held, alive);
}

int
load_run_conns(const struct sockaddr_storage *ss, socklen_t sslen)
{
    conns_run *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        load_fail("out of memory");
        return 1;
    }
    int rc = 1;
    r->n = (size_t)load_cfg.count;
    r->ss = ss;
    r->sslen = sslen;
    r->c = calloc(r->n, sizeof(*r->c));
    r->setup_us = calloc(r->n, sizeof(*r->setup_us));
    r->ep = epoll_create1(EPOLL_CLOEXEC);
    if (r->c == NULL || r->setup_us == NULL || r->ep < 0) {
        load_fail("start-up: %s", strerror(errno));
        goto out;
    }
    for (size_t i = 0; i < r->n; i++)
        r->c[i].fd = -1;

    long long start = load_now_us(), last_done = start, last_sweep = start;
    size_t first_open = 0;
    long long limit = (long long)load_cfg.timeout * 1000000;
    struct epoll_event evs[256];
    while (r->ok + r->failed < r->n) {
        long long now = load_now_us();
        while (r->inflight < load_cfg.parallel && r->next < r->n) {
            conn_start(r, r->next++, now);
            now = load_now_us();
        }
        int n = epoll_wait(r->ep, evs, 256, 50);
        if (n < 0 && errno != EINTR) {
            load_fail("epoll_wait: %s", strerror(errno));
            goto out;
        }
        now = load_now_us();
        for (int k = 0; k < n; k++) {
            size_t i = (size_t)evs[k].data.u64;
            cstate st = r->c[i].state;
            if (st == C_CONNECTING || st == C_SOCKS || st == C_WRITING || st == C_READING)
                conn_progress(r, i, now);
        }
        /* Every 50 ms, time out round trips older than --timeout; the scan
         * starts at the oldest connection still setting up. */
        if (now - last_sweep >= 50000) {
            last_sweep = now;
            while (first_open < r->next && (r->c[first_open].state == C_DONE || r->c[first_open].state == C_HELD))
                first_open++;
            for (size_t i = first_open; i < r->next; i++) {
                cconn *c = &r->c[i];
                bool busy = c->state == C_CONNECTING || c->state == C_SOCKS || c->state == C_WRITING || c->state == C_READING;
                if (busy && now - c->start_us > limit)
                    conn_failed(r, i, "timeout", 0);
            }
        }
        if (r->ok + r->failed == r->n)
            last_done = now;
    }
    double secs = (double)(last_done - start) / 1e6;
    double rate = secs > 0 ? (double)r->ok / secs : 0;
    qsort(r->setup_us, r->ok, sizeof(*r->setup_us), load_cmp_ll);
    double p50 = (double)load_percentile(r->setup_us, r->ok, 0.5) / 1000,
           p99 = (double)load_percentile(r->setup_us, r->ok, 0.99) / 1000;
    double max = r->ok > 0 ? (double)r->setup_us[r->ok - 1] / 1000 : 0;
    load_human("%zu connections (%" PRIu64
               " at once): %zu succeeded, %zu failed in %.3f s = %.0f set-ups/s; round trip p50 %.1f ms, "
               "p99 %.1f ms, max %.1f ms",
               r->n, load_cfg.parallel, r->ok, r->failed, secs, rate, p50, p99, max);
    printf("mode=conns ok=%d count=%zu parallel=%" PRIu64
           " succeeded=%zu failed=%zu seconds=%.6f rate_per_s=%.1f setup_p50_ms=%.2f "
           "setup_p99_ms=%.2f setup_max_ms=%.2f\n",
           r->failed == 0, r->n, load_cfg.parallel, r->ok, r->failed, secs, rate, p50, p99, max);
    load_reasons_print(&r->reasons);
    fflush(stdout);
    if (load_cfg.hold > 0)
        conns_hold(r);
    rc = r->failed == 0 ? 0 : 1;
out:
    if (r->c != NULL) {
        for (size_t i = 0; i < r->n; i++)
            if (r->c[i].fd >= 0)
                close(r->c[i].fd);
    }
    if (r->ep >= 0)
        close(r->ep);
    free(r->c);
    free(r->setup_us);
    free(r);
    return rc;
}
