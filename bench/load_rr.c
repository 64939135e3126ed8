/*
 * ptth_load rr: request/response traffic. --connections connections against
 * echo, each doing round trips of --size bytes back to back (the next message
 * leaves when the echo of the last is back, like a database or HTTP client
 * with one request in flight per connection), all at once for --duration
 * seconds; prints the round trips per second of all connections together and
 * the latency percentiles of every round trip measured.
 *
 * Phases: every connection connects and does --warmup round trips; when all
 * have (or failed), the clock starts and every connection starts round trips
 * at once; a round trip is counted when its echo is complete before the end
 * of the --duration window; after the window each connection finishes the
 * round trip it has in flight (not counted) and is closed. Any failure
 * (connect, read, write, end of stream, an echo that differs, a round trip
 * longer than --timeout) fails the run: ok=0 and exit 1, with the reasons.
 *
 * One epoll loop over non-blocking sockets; per round trip the tool makes a
 * send() and a recv() and shares one epoll_wait() with the other connections.
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

typedef enum rstate {
    R_CONNECTING, /* connect in progress */
    R_TRIP,       /* a round trip: the message going out, its echo coming back */
    R_READY,      /* warmed up, waiting for the clock to start */
    R_DONE,       /* closed after the window, or failed */
} rstate;

typedef struct rconn {
    int fd;
    rstate state;
    bool out_armed;      /* EPOLLOUT requested (a write would block) */
    uint32_t wrote, got; /* bytes of this round trip's message written, echoed */
    uint64_t trips;      /* round trips completed, for the message contents */
    long long start_us;  /* of the round trip, or of the connect */
} rconn;

typedef enum rphase { P_WARMUP, P_MEASURE, P_DRAIN } rphase;

typedef struct rr_run {
    int ep;
    rconn *c;
    size_t n, ready, finished, failed;
    rphase phase;
    long long t0, t_end;
    long long *lat; /* microseconds, one per counted round trip */
    size_t n_lat, cap_lat;
    bool out_of_memory;
    load_reasons reasons;
    char msg[LOAD_MAX_SIZE], got[LOAD_MAX_SIZE];
} rr_run;

/* The bytes of connection i's round trip k: they differ from connection to
 * connection and from one round trip to the next, so a crossed or repeated
 * echo shows. */
static char
msg_byte(size_t i, uint64_t k, size_t j)
{
    return (char)('a' + (i * 7 + (size_t)k * 3 + j) % 26);
}

static void
conn_want(rr_run *r, size_t i, bool out)
{
    rconn *c = &r->c[i];
    if (c->out_armed == out)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.u64 = i};
    epoll_ctl(r->ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->out_armed = out;
}

static void
conn_close(rr_run *r, size_t i)
{
    rconn *c = &r->c[i];
    if (c->fd >= 0) {
        epoll_ctl(r->ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    c->state = R_DONE;
    r->finished++;
}

static void
conn_failed(rr_run *r, size_t i, const char *stage, int err)
{
    if (r->c[i].state == R_DONE)
        return;
    if (r->phase == P_WARMUP && r->c[i].state != R_READY)
        r->ready++; /* counts as settled for the start of the clock */
    r->failed++;
    load_reasons_add(&r->reasons, stage, err);
    conn_close(r, i);
}

static void
conn_write(rr_run *r, size_t i)
{
    rconn *c = &r->c[i];
    size_t size = (size_t)load_cfg.size;
    for (size_t j = c->wrote; j < size; j++)
        r->msg[j] = msg_byte(i, c->trips, j);
    while (c->wrote < size) {
        ssize_t n = send(c->fd, r->msg + c->wrote, size - c->wrote, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                conn_want(r, i, true);
                return;
            }
            conn_failed(r, i, "write", errno);
            return;
        }
        c->wrote += (uint32_t)n;
    }
    conn_want(r, i, false);
}

static void
begin_trip(rr_run *r, size_t i, long long now)
{
    rconn *c = &r->c[i];
    c->state = R_TRIP;
    c->wrote = c->got = 0;
    c->start_us = now;
    conn_write(r, i);
}

static void
record(rr_run *r, long long us)
{
    if (r->n_lat == r->cap_lat) {
        size_t cap = r->cap_lat ? r->cap_lat * 2 : 65536;
        long long *p = realloc(r->lat, cap * sizeof(*p));
        if (p == NULL) {
            r->out_of_memory = true;
            return;
        }
        r->lat = p;
        r->cap_lat = cap;
    }
    r->lat[r->n_lat++] = us;
}

/* The echo of connection i's round trip is complete at now. */
static void
trip_done(rr_run *r, size_t i, long long now)
{
    rconn *c = &r->c[i];
    c->trips++;
    if (r->phase == P_WARMUP) {
        if (c->trips < load_cfg.warmup) {
            begin_trip(r, i, now);
        } else {
            c->state = R_READY;
            r->ready++;
        }
        return;
    }
    if (r->phase == P_MEASURE && now <= r->t_end && c->start_us >= r->t0)
        record(r, now - c->start_us);
    if (r->phase == P_MEASURE && now < r->t_end)
        begin_trip(r, i, now);
    else
        conn_close(r, i);
}

/* Reads the echo as far as it has come (it may start before the whole
 * message is written). A connection with no round trip in flight is owed
 * nothing: a byte or an end of stream then is a failure. */
static void
conn_read(rr_run *r, size_t i, long long now)
{
    rconn *c = &r->c[i];
    if (c->state != R_TRIP) {
        char b;
        ssize_t n = recv(c->fd, &b, 1, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            conn_failed(r, i, n == 0 ? "eof" : "read", n == 0 ? 0 : errno);
        else if (n > 0)
            conn_failed(r, i, "mismatch", 0);
        return;
    }
    size_t size = (size_t)load_cfg.size;
    while (c->got < size) {
        ssize_t n = recv(c->fd, r->got, size - c->got, 0);
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
        for (size_t j = 0; j < (size_t)n; j++) {
            if (r->got[j] != msg_byte(i, c->trips, c->got + j)) {
                conn_failed(r, i, "mismatch", 0);
                return;
            }
        }
        c->got += (uint32_t)n;
    }
    trip_done(r, i, now);
}

static void
on_event(rr_run *r, size_t i, uint32_t events, long long now)
{
    rconn *c = &r->c[i];
    if (c->state == R_CONNECTING) {
        int err = 0;
        socklen_t elen = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &elen);
        if (err != 0) {
            conn_failed(r, i, "connect", err);
            return;
        }
        c->out_armed = true; /* as registered */
        if (load_cfg.warmup > 0) {
            begin_trip(r, i, now);
        } else {
            conn_want(r, i, false);
            c->state = R_READY;
            r->ready++;
        }
        return;
    }
    if (c->state == R_TRIP && c->wrote < load_cfg.size && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
        conn_write(r, i);
    if (c->state != R_DONE && (events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
        conn_read(r, i, now);
}

static void
conn_start(rr_run *r, size_t i, const struct sockaddr_storage *ss, socklen_t sslen, long long now)
{
    rconn *c = &r->c[i];
    c->start_us = now;
    c->state = R_CONNECTING;
    c->fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        conn_failed(r, i, "socket", errno);
        return;
    }
    ptth_set_nodelay(c->fd);
    if (connect(c->fd, (const struct sockaddr *)ss, sslen) != 0 && errno != EINPROGRESS) {
        conn_failed(r, i, "connect", errno);
        return;
    }
    struct epoll_event ev = {.events = EPOLLOUT, .data.u64 = i};
    if (epoll_ctl(r->ep, EPOLL_CTL_ADD, c->fd, &ev) != 0)
        conn_failed(r, i, "epoll", errno);
}

/* Times out round trips (and connects) older than --timeout. */
static void
sweep(rr_run *r, long long now)
{
    long long limit = (long long)load_cfg.timeout * 1000000;
    for (size_t i = 0; i < r->n; i++) {
        rconn *c = &r->c[i];
        if ((c->state == R_CONNECTING || c->state == R_TRIP) && now - c->start_us > limit)
            conn_failed(r, i, "timeout", 0);
    }
}

static void
report(rr_run *r)
{
    double secs = (double)(r->t_end - r->t0) / 1e6;
    size_t n = r->n_lat;
    double rate = secs > 0 ? (double)n / secs : 0;
    long long sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += r->lat[i];
    if (n > 0) /* r->lat may be NULL then, and qsort's argument must not be */
        qsort(r->lat, n, sizeof(*r->lat), load_cmp_ll);
    long long p50 = load_percentile(r->lat, n, 0.50), p90 = load_percentile(r->lat, n, 0.90);
    long long p99 = load_percentile(r->lat, n, 0.99), max = n > 0 ? r->lat[n - 1] : 0;
    double mean = n > 0 ? (double)sum / (double)n : 0;
    bool ok = r->failed == 0 && n > 0 && !r->out_of_memory;
    load_human("%zu connections, %" PRIu64 "-byte round trips for %.3f s: %zu round trips = %.0f/s; p50 %lld us, p90 %lld us, "
               "p99 %lld us, max %lld us; %zu connections failed",
               r->n, load_cfg.size, secs, n, rate, p50, p90, p99, max, r->failed);
    if (r->out_of_memory)
        load_fail("out of memory for the latencies");
    printf("mode=rr ok=%d connections=%zu size=%" PRIu64 " seconds=%.6f round_trips=%zu rate_per_s=%.1f p50_us=%lld p90_us=%lld "
           "p99_us=%lld max_us=%lld mean_us=%.1f failed=%zu\n",
           ok, r->n, load_cfg.size, secs, n, rate, p50, p90, p99, max, mean, r->failed);
    load_reasons_print(&r->reasons);
}

int
load_run_rr(const struct sockaddr_storage *ss, socklen_t sslen)
{
    rr_run *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        load_fail("out of memory");
        return 1;
    }
    int rc = 1;
    r->n = (size_t)load_cfg.connections;
    r->c = calloc(r->n, sizeof(*r->c));
    r->ep = epoll_create1(EPOLL_CLOEXEC);
    if (r->c == NULL || r->ep < 0) {
        load_fail("start-up: %s", strerror(errno));
        goto out;
    }
    for (size_t i = 0; i < r->n; i++)
        r->c[i].fd = -1;
    long long now = load_now_us(), last_sweep = now;
    for (size_t i = 0; i < r->n; i++)
        conn_start(r, i, ss, sslen, now);
    struct epoll_event evs[256];
    while (r->finished < r->n) {
        if (r->phase == P_WARMUP && r->ready == r->n) {
            /* Everyone is warm: the clock starts, every connection at once. */
            r->phase = P_MEASURE;
            r->t0 = load_now_us();
            r->t_end = r->t0 + (long long)load_cfg.duration * 1000000;
            for (size_t i = 0; i < r->n; i++)
                if (r->c[i].state == R_READY)
                    begin_trip(r, i, r->t0);
        }
        int n = epoll_wait(r->ep, evs, 256, 50);
        if (n < 0 && errno != EINTR) {
            load_fail("epoll_wait: %s", strerror(errno));
            goto out;
        }
        now = load_now_us();
        for (int k = 0; k < n; k++)
            on_event(r, (size_t)evs[k].data.u64, evs[k].events, now);
        if (r->phase == P_MEASURE && now >= r->t_end) {
            r->phase = P_DRAIN;
            for (size_t i = 0; i < r->n; i++)
                if (r->c[i].state == R_READY)
                    conn_close(r, i);
        }
        if (now - last_sweep >= 50000) {
            last_sweep = now;
            sweep(r, now);
        }
    }
    if (r->phase == P_WARMUP) /* every connection failed before the clock started */
        r->t0 = r->t_end = now;
    report(r);
    rc = r->failed == 0 && r->n_lat > 0 && !r->out_of_memory ? 0 : 1;
out:
    if (r->c != NULL) {
        for (size_t i = 0; i < r->n; i++)
            if (r->c[i].fd >= 0)
                close(r->c[i].fd);
    }
    if (r->ep >= 0)
        close(r->ep);
    free(r->c);
    free(r->lat);
    free(r);
    return rc;
}
