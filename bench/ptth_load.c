/*
 * ptth_load: the load tool of the benchmark (bench/run, docs/performance.md).
 *
 * Two servers and three clients, one per mode:
 *   sink      counts the bytes of each connection; when the client half-closes
 *             it answers the count as 8 bytes (big-endian) and closes.
 *   echo      writes back what it reads; when the client half-closes it
 *             finishes writing, half-closes too and closes.
 *   send      one connection: N bytes with large writes, half-close, read the
 *             count back and check it; prints MB/s (10^6 bytes per second).
 *   pingpong  one connection: M round trips of a small message against echo;
 *             prints latency percentiles in microseconds.
 *   conns     N connections, each one round trip against echo, at most P of
 *             them setting up at once; prints the set-up rate, successes and
 *             failures with their reasons. --hold keeps them open afterwards
 *             (so that the memory of N open tunnels can be measured).
 *
 * Output: a human line on stderr and, on stdout, one line of key=value fields
 * per result (the first field is mode=...), which bench/run parses.
 *
 * The servers and conns run one epoll loop over non-blocking sockets. send and
 * pingpong drive a single blocking socket with SO_SNDTIMEO/SO_RCVTIMEO: one
 * system call per write or read and no readiness round trip, so the tool adds
 * as little as possible to what it measures. Every wait is bounded by
 * --timeout. Servers run until SIGINT/SIGTERM and then exit 0 with everything
 * freed.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "options.h"
#include "sysutil.h"

#define PROG "ptth_load"
#define MAX_COUNT 1000000
#define SINK_BUF (1024 * 1024)
#define ECHO_BUF (256 * 1024)

typedef enum mode { MODE_NONE, MODE_SINK, MODE_ECHO, MODE_SEND, MODE_PINGPONG, MODE_CONNS } mode;

typedef struct settings {
    mode mode;
    const char *mode_name;
    const char *listen;
    const char *connect;
    uint64_t bytes;
    uint64_t write_size;
    uint64_t count;
    uint64_t size;
    uint64_t warmup;
    uint64_t parallel;
    uint64_t hold;
    uint64_t timeout;
    uint64_t backlog;
    bool quiet;
} settings;

static settings S;

static void
usage(FILE *f)
{
    fprintf(f, "Usage: " PROG " MODE [OPTIONS]\n"
               "\n"
               "The benchmark's load tool (see docs/performance.md). Modes:\n"
               "  sink      server: counts each connection's bytes; when the client half-closes,\n"
               "            answers the count as 8 bytes (big-endian) and closes\n"
               "  echo      server: writes back what it reads; on half-close finishes and half-closes\n"
               "  send      client: sends --bytes with large writes, half-closes, reads the count\n"
               "            back and checks it; prints MB/s (10^6 bytes/s, connect to count received)\n"
               "  pingpong  client: --count round trips of --size bytes against echo over one\n"
               "            connection; prints p50/p90/p99/max in microseconds\n"
               "  conns     client: --count connections, each one round trip of --size bytes against\n"
               "            echo, at most --parallel setting up at once; prints the set-up rate per\n"
               "            second, successes, and failures with their reasons\n"
               "\n"
               "Options:\n"
               "  --listen ADDR:PORT   (sink, echo) address to bind, port 0 = any; default 127.0.0.1:0\n"
               "  --connect ADDR:PORT  (send, pingpong, conns) where to connect\n"
               "  --bytes N            (send) bytes to send; default 1G\n"
               "  --write-size N       (send) bytes per write(); default 1M\n"
               "  --count N            (pingpong) round trips, default 10000; (conns) connections, default 1000\n"
               "  --size N             (pingpong) message bytes, default 64; (conns) default 16; at most 65536\n"
               "  --warmup N           (pingpong) round trips before measuring, default 100\n"
               "  --parallel N         (conns) connections setting up at once, default 256\n"
               "  --hold SECS          (conns) after the round trips keep every connection open until\n"
               "                       stdin reaches end of file or SECS pass; default 0 (close at once)\n"
               "  --timeout SECS       bound of every wait: a connect, a read or write making no progress,\n"
               "                       one connection's round trip (conns); servers close connections\n"
               "                       idle this long; default 30\n"
               "  --backlog N          (sink, echo) listen backlog, default 4096\n"
               "  --quiet              no human lines on stderr, only the key=value lines on stdout\n"
               "  -h, --help           this text\n"
               "\n"
               "Sizes take a suffix k, M or G (powers of 1024). Every result is one stdout line of\n"
               "key=value fields starting with mode=; servers print mode=... event=listening addr=ADDR:PORT\n"
               "when ready and their totals when SIGINT/SIGTERM stops them (exit 0).\n"
               "Exit codes: 0 success, 1 a measurement failed (count mismatch, timeout, a failed\n"
               "connection), 2 usage error.\n");
}

static void human(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void
human(const char *fmt, ...)
{
    if (S.quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, PROG " %s: ", S.mode_name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void fail_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void
fail_msg(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, PROG " %s: ", S.mode_name != NULL ? S.mode_name : "");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static long long
now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Parses a decimal size with an optional k/M/G suffix (powers of 1024). */
static int
parse_size(const char *s, uint64_t *out)
{
    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0)
        return -1;
    unsigned shift = 0;
    if (*end == 'k' || *end == 'K')
        shift = 10;
    else if (*end == 'm' || *end == 'M')
        shift = 20;
    else if (*end == 'g' || *end == 'G')
        shift = 30;
    if (shift != 0)
        end++;
    if (*end != '\0' || v > (UINT64_MAX >> shift))
        return -1;
    *out = (uint64_t)v << shift;
    return 0;
}

/* Resolves a numeric "HOST:PORT" / "[V6]:PORT" into a socket address. */
static int
resolve(const char *value, bool allow_zero, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[256];
    uint16_t port;
    if (ptth_split_host_port(value, host, sizeof(host), &port, allow_zero) != 0)
        return -1;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV};
    char portstr[8];
    snprintf(portstr, sizeof(portstr), "%u", (unsigned)port);
    struct addrinfo *res;
    if (getaddrinfo(host, portstr, &hints, &res) != 0)
        return -1;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static void
set_timeouts(int fd, uint64_t secs)
{
    struct timeval tv = {.tv_sec = (time_t)secs, .tv_usec = 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

/* A connected blocking socket, the connect bounded by --timeout (a
 * non-blocking connect waited for with epoll). -1 with a message on failure. */
static int
connect_blocking(const struct sockaddr_storage *ss, socklen_t len)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fail_msg("socket: %s", strerror(errno));
        return -1;
    }
    if (connect(fd, (const struct sockaddr *)ss, len) != 0) {
        if (errno != EINPROGRESS) {
            fail_msg("connect to %s: %s", S.connect, strerror(errno));
            close(fd);
            return -1;
        }
        int ep = epoll_create1(EPOLL_CLOEXEC);
        struct epoll_event ev = {.events = EPOLLOUT};
        int n = -1;
        if (ep >= 0 && epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0)
            n = epoll_wait(ep, &ev, 1, (int)(S.timeout * 1000));
        if (ep >= 0)
            close(ep);
        if (n <= 0) {
            fail_msg("connect to %s: %s", S.connect, n == 0 ? "timed out" : strerror(errno));
            close(fd);
            return -1;
        }
        int err = 0;
        socklen_t elen = sizeof(err);
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen);
        if (err != 0) {
            fail_msg("connect to %s: %s", S.connect, strerror(err));
            close(fd);
            return -1;
        }
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
        fail_msg("fcntl: %s", strerror(errno));
        close(fd);
        return -1;
    }
    ptth_set_nodelay(fd);
    set_timeouts(fd, S.timeout);
    return fd;
}

/* Writes all of buf on a blocking socket; false with a message on error or
 * when one write made no progress for --timeout. */
static bool
write_all(int fd, const char *buf, size_t len, const char *what)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fail_msg("%s: write: %s", what, errno == EAGAIN ? "no progress within --timeout" : strerror(errno));
            return false;
        }
        buf += n;
        len -= (size_t)n;
    }
    return true;
}

/* Reads exactly len bytes from a blocking socket; false with a message on
 * error, end of stream or --timeout without progress. */
static bool
read_exactly(int fd, char *buf, size_t len, const char *what)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = recv(fd, buf + got, len - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fail_msg("%s: read: %s after %zu of %zu bytes", what,
                     errno == EAGAIN ? "no progress within --timeout" : strerror(errno), got, len);
            return false;
        }
        if (n == 0) {
            fail_msg("%s: connection closed after %zu of %zu bytes", what, got, len);
            return false;
        }
        got += (size_t)n;
    }
    return true;
}

static int
run_send(const struct sockaddr_storage *ss, socklen_t sslen)
{
    size_t wsize = (size_t)S.write_size;
    char *buf = malloc(wsize);
    if (buf == NULL) {
        fail_msg("out of memory for a %zu-byte buffer", wsize);
        return 1;
    }
    for (size_t i = 0; i < wsize; i++)
        buf[i] = (char)('a' + i % 26);
    long long start = now_us();
    int fd = connect_blocking(ss, sslen);
    if (fd < 0) {
        free(buf);
        return 1;
    }
    int rc = 1;
    uint64_t left = S.bytes;
    while (left > 0) {
        size_t n = left < wsize ? (size_t)left : wsize;
        if (!write_all(fd, buf, n, "send"))
            goto out;
        left -= n;
    }
    if (shutdown(fd, SHUT_WR) != 0) {
        fail_msg("shutdown: %s", strerror(errno));
        goto out;
    }
    unsigned char cnt[8];
    if (!read_exactly(fd, (char *)cnt, sizeof(cnt), "byte count"))
        goto out;
    long long end = now_us();
    uint64_t counted = 0;
    for (int i = 0; i < 8; i++)
        counted = counted << 8 | cnt[i];
    if (counted != S.bytes) {
        fail_msg("the sink counted %" PRIu64 " bytes, %" PRIu64 " were sent", counted, S.bytes);
        printf("mode=send ok=0 bytes=%" PRIu64 " counted=%" PRIu64 "\n", S.bytes, counted);
        goto out;
    }
    double secs = (double)(end - start) / 1e6;
    double mbps = (double)S.bytes / 1e6 / secs;
    human("%" PRIu64 " bytes in %.3f s = %.1f MB/s (count confirmed)", S.bytes, secs, mbps);
    printf("mode=send ok=1 bytes=%" PRIu64 " write_size=%zu seconds=%.6f mb_per_s=%.1f\n", S.bytes, wsize, secs, mbps);
    rc = 0;
out:
    close(fd);
    free(buf);
    return rc;
}

static int
cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array. */
static long long
percentile(const long long *v, size_t n, double q)
{
    if (n == 0)
        return 0;
    size_t rank = (size_t)(q * (double)n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return v[rank - 1];
}

static int
run_pingpong(const struct sockaddr_storage *ss, socklen_t sslen)
{
    size_t size = (size_t)S.size, total = (size_t)(S.warmup + S.count);
    char *msg = malloc(size), *back = malloc(size);
    long long *lat = malloc(sizeof(*lat) * (size_t)S.count);
    int rc = 1, fd = -1;
    if (msg == NULL || back == NULL || lat == NULL) {
        fail_msg("out of memory");
        goto out;
    }
    if ((fd = connect_blocking(ss, sslen)) < 0)
        goto out;
    for (size_t i = 0; i < total; i++) {
        for (size_t j = 0; j < size; j++)
            msg[j] = (char)('A' + (i + j) % 26);
        long long t0 = now_us();
        if (!write_all(fd, msg, size, "round trip") || !read_exactly(fd, back, size, "round trip"))
            goto out;
        long long t1 = now_us();
        if (memcmp(msg, back, size) != 0) {
            fail_msg("round trip %zu: the echo differs from what was sent", i);
            goto out;
        }
        if (i >= S.warmup)
            lat[i - S.warmup] = t1 - t0;
    }
    size_t n = (size_t)S.count;
    long long sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += lat[i];
    qsort(lat, n, sizeof(*lat), cmp_ll);
    long long p50 = percentile(lat, n, 0.50), p90 = percentile(lat, n, 0.90), p99 = percentile(lat, n, 0.99), max = lat[n - 1];
    double mean = (double)sum / (double)n;
    human("%zu round trips of %zu bytes: p50 %lld us, p90 %lld us, p99 %lld us, max %lld us, mean %.1f us", n, size, p50, p90, p99,
          max, mean);
    printf("mode=pingpong ok=1 count=%zu size=%zu p50_us=%lld p90_us=%lld p99_us=%lld max_us=%lld mean_us=%.1f\n", n, size, p50,
           p90, p99, max, mean);
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    free(msg);
    free(back);
    free(lat);
    return rc;
}

/* ---- servers: sink and echo ------------------------------------------- */

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
        if (S.mode == MODE_SINK) {
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
        if (S.mode == MODE_SINK) {
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
    if (S.mode == MODE_ECHO)
        shutdown(c->fd, SHUT_WR);
    sv->completed++;
    sconn_close(sv, c);
}

static void
on_peer_fin(server *sv, sconn *c)
{
    c->peer_fin = true;
    if (S.mode == MODE_SINK) {
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
        if (S.mode == MODE_ECHO) {
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
            fail_msg("accept: %s (pausing the listener)", strerror(errno));
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
        c->last_us = now_us();
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
    long long limit = (long long)S.timeout * 1000000;
    for (sconn *c = sv->conns, *next; c != NULL; c = next) {
        next = c->next;
        if (now - c->last_us > limit) {
            sv->errors++;
            sconn_close(sv, c);
        }
    }
}

static int
run_server(const struct sockaddr_storage *ss, socklen_t sslen)
{
    server sv = {.ep = -1, .lfd = -1, .sfd = -1};
    int rc = 1;
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    sv.scratch_len = S.mode == MODE_SINK ? SINK_BUF : ECHO_BUF;
    sv.scratch = malloc(sv.scratch_len);
    sv.ep = epoll_create1(EPOLL_CLOEXEC);
    sv.sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    sv.lfd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (sv.scratch == NULL || sv.ep < 0 || sv.sfd < 0 || sv.lfd < 0) {
        fail_msg("start-up: %s", strerror(errno));
        goto out;
    }
    int one = 1;
    setsockopt(sv.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(sv.lfd, (const struct sockaddr *)ss, sslen) != 0 || listen(sv.lfd, (int)S.backlog) != 0) {
        fail_msg("cannot listen on %s: %s", S.listen, strerror(errno));
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
    human("listening on %s", addr);
    printf("mode=%s event=listening addr=%s\n", S.mode_name, addr);
    fflush(stdout);

    struct epoll_event evs[256];
    long long last_sweep = now_us();
    bool stop = false;
    while (!stop) {
        int n = epoll_wait(sv.ep, evs, 256, 1000);
        if (n < 0 && errno != EINTR) {
            fail_msg("epoll_wait: %s", strerror(errno));
            goto out;
        }
        long long now = now_us();
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
    human("stopped: %" PRIu64 " connections, %" PRIu64 " completed, %" PRIu64 " bytes, %" PRIu64 " errors", sv.accepted,
          sv.completed, sv.total_bytes, sv.errors);
    printf("mode=%s event=stopped connections=%" PRIu64 " completed=%" PRIu64 " bytes=%" PRIu64 " errors=%" PRIu64 "\n",
           S.mode_name, sv.accepted, sv.completed, sv.total_bytes, sv.errors);
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

/* ---- conns: many connections, one round trip each --------------------- */

typedef enum cstate { C_IDLE, C_CONNECTING, C_WRITING, C_READING, C_HELD, C_DONE } cstate;

typedef struct cconn {
    int fd;
    cstate state;
    uint32_t done; /* bytes written, then bytes read back */
    long long start_us;
} cconn;

#define MAX_REASONS 32

typedef struct reason {
    const char *stage; /* connect, write, read, eof, mismatch, timeout */
    int err;           /* errno, 0 when the stage says it all */
    uint64_t count;
} reason;

typedef struct conns_run {
    int ep;
    cconn *c;
    size_t n, next, inflight, ok, failed, held;
    long long *setup_us; /* per success */
    reason reasons[MAX_REASONS];
    size_t n_reasons;
    const struct sockaddr_storage *ss;
    socklen_t sslen;
    char msg[65536];
} conns_run;

static char stdin_tag;

/* Each connection sends its own bytes, so that crossed echoes show. */
static void
message_for(size_t i, char *out)
{
    for (size_t j = 0; j < S.size; j++)
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
    for (size_t k = 0; k < r->n_reasons; k++) {
        if (r->reasons[k].stage == stage && r->reasons[k].err == err) {
            r->reasons[k].count++;
            return;
        }
    }
    if (r->n_reasons < MAX_REASONS)
        r->reasons[r->n_reasons++] = (reason){stage, err, 1};
    else
        r->reasons[MAX_REASONS - 1].count++;
}

static void
conn_succeeded(conns_run *r, size_t i, long long now)
{
    cconn *c = &r->c[i];
    r->setup_us[r->ok++] = now - c->start_us;
    r->inflight--;
    epoll_ctl(r->ep, EPOLL_CTL_DEL, c->fd, NULL);
    if (S.hold > 0) {
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
    char want[65536], got[65536];
    if (c->state == C_CONNECTING) {
        int err = 0;
        socklen_t elen = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &elen);
        if (err != 0) {
            conn_failed(r, i, "connect", err);
            return;
        }
        c->state = C_WRITING;
        c->done = 0;
    }
    if (c->state == C_WRITING) {
        message_for(i, want);
        while (c->done < S.size) {
            ssize_t n = send(c->fd, want + c->done, S.size - c->done, MSG_NOSIGNAL);
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
        while (c->done < S.size) {
            ssize_t n = recv(c->fd, got, S.size - c->done, 0);
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
    human("holding %zu connections open (close stdin or wait %" PRIu64 " s)", r->held, S.hold);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &stdin_tag};
    bool watch_stdin = epoll_ctl(r->ep, EPOLL_CTL_ADD, 0, &ev) == 0;
    long long deadline = now_us() + (long long)S.hold * 1000000;
    while (true) {
        long long left = (deadline - now_us()) / 1000;
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
    human("%zu of %zu held connections were still open at the end", alive, r->held);
    printf("mode=conns event=held held=%zu alive=%zu\n", r->held, alive);
}

static int
run_conns(const struct sockaddr_storage *ss, socklen_t sslen)
{
    conns_run *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        fail_msg("out of memory");
        return 1;
    }
    int rc = 1;
    r->n = (size_t)S.count;
    r->ss = ss;
    r->sslen = sslen;
    r->c = calloc(r->n, sizeof(*r->c));
    r->setup_us = calloc(r->n, sizeof(*r->setup_us));
    r->ep = epoll_create1(EPOLL_CLOEXEC);
    if (r->c == NULL || r->setup_us == NULL || r->ep < 0) {
        fail_msg("start-up: %s", strerror(errno));
        goto out;
    }
    for (size_t i = 0; i < r->n; i++)
        r->c[i].fd = -1;

    long long start = now_us(), last_done = start, last_sweep = start;
    size_t first_open = 0;
    long long limit = (long long)S.timeout * 1000000;
    struct epoll_event evs[256];
    while (r->ok + r->failed < r->n) {
        long long now = now_us();
        while (r->inflight < S.parallel && r->next < r->n) {
            conn_start(r, r->next++, now);
            now = now_us();
        }
        int n = epoll_wait(r->ep, evs, 256, 50);
        if (n < 0 && errno != EINTR) {
            fail_msg("epoll_wait: %s", strerror(errno));
            goto out;
        }
        now = now_us();
        for (int k = 0; k < n; k++) {
            size_t i = (size_t)evs[k].data.u64;
            if (r->c[i].state == C_CONNECTING || r->c[i].state == C_WRITING || r->c[i].state == C_READING)
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
                if ((c->state == C_CONNECTING || c->state == C_WRITING || c->state == C_READING) && now - c->start_us > limit)
                    conn_failed(r, i, "timeout", 0);
            }
        }
        if (r->ok + r->failed == r->n)
            last_done = now;
    }
    double secs = (double)(last_done - start) / 1e6;
    double rate = secs > 0 ? (double)r->ok / secs : 0;
    qsort(r->setup_us, r->ok, sizeof(*r->setup_us), cmp_ll);
    double p50 = (double)percentile(r->setup_us, r->ok, 0.5) / 1000, p99 = (double)percentile(r->setup_us, r->ok, 0.99) / 1000;
    double max = r->ok > 0 ? (double)r->setup_us[r->ok - 1] / 1000 : 0;
    human("%zu connections (%" PRIu64 " at once): %zu succeeded, %zu failed in %.3f s = %.0f set-ups/s; round trip p50 %.1f ms, "
          "p99 %.1f ms, max %.1f ms",
          r->n, S.parallel, r->ok, r->failed, secs, rate, p50, p99, max);
    printf("mode=conns ok=%d count=%zu parallel=%" PRIu64
           " succeeded=%zu failed=%zu seconds=%.6f rate_per_s=%.1f setup_p50_ms=%.2f "
           "setup_p99_ms=%.2f setup_max_ms=%.2f\n",
           r->failed == 0, r->n, S.parallel, r->ok, r->failed, secs, rate, p50, p99, max);
    for (size_t k = 0; k < r->n_reasons; k++) {
        const reason *e = &r->reasons[k];
        human("  %" PRIu64 " failed at %s%s%s", e->count, e->stage, e->err ? ": " : "", e->err ? strerror(e->err) : "");
        printf("mode=conns event=failure stage=%s errno=%s count=%" PRIu64 "\n", e->stage, e->err ? strerrorname_np(e->err) : "-",
               e->count);
    }
    fflush(stdout);
    if (S.hold > 0)
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

/* ---- main -------------------------------------------------------------- */

static int
parse_args(int argc, char **argv)
{
    static const struct {
        const char *name;
        mode m;
    } modes[] = {{"sink", MODE_SINK}, {"echo", MODE_ECHO}, {"send", MODE_SEND}, {"pingpong", MODE_PINGPONG}, {"conns", MODE_CONNS}};
    enum {
        O_LISTEN = 256,
        O_CONNECT,
        O_BYTES,
        O_WSIZE,
        O_COUNT,
        O_SIZE,
        O_WARMUP,
        O_PARALLEL,
        O_HOLD,
        O_TIMEOUT,
        O_BACKLOG,
        O_QUIET
    };
    static const struct option longopts[] = {{"listen", required_argument, NULL, O_LISTEN},
                                             {"connect", required_argument, NULL, O_CONNECT},
                                             {"bytes", required_argument, NULL, O_BYTES},
                                             {"write-size", required_argument, NULL, O_WSIZE},
                                             {"count", required_argument, NULL, O_COUNT},
                                             {"size", required_argument, NULL, O_SIZE},
                                             {"warmup", required_argument, NULL, O_WARMUP},
                                             {"parallel", required_argument, NULL, O_PARALLEL},
                                             {"hold", required_argument, NULL, O_HOLD},
                                             {"timeout", required_argument, NULL, O_TIMEOUT},
                                             {"backlog", required_argument, NULL, O_BACKLOG},
                                             {"quiet", no_argument, NULL, O_QUIET},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    bool count_set = false, size_set = false;
    S = (settings){.listen = "127.0.0.1:0",
                   .bytes = 1ull << 30,
                   .write_size = 1u << 20,
                   .warmup = 100,
                   .parallel = 256,
                   .timeout = 30,
                   .backlog = 4096};
    if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc < 2 || argv[1][0] == '-') {
        fail_msg("missing MODE (sink, echo, send, pingpong or conns); see --help");
        return 2;
    }
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
        if (strcmp(argv[1], modes[i].name) == 0) {
            S.mode = modes[i].m;
            S.mode_name = modes[i].name;
        }
    if (S.mode == MODE_NONE) {
        fail_msg("unknown mode '%s' (sink, echo, send, pingpong or conns)", argv[1]);
        return 2;
    }
    optind = 2;
    opterr = 0;
    int o;
    while ((o = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        uint64_t *target = NULL, lo = 0, hi = UINT64_MAX;
        switch (o) {
        case 'h':
            usage(stdout);
            return 0;
        case O_LISTEN:
            S.listen = optarg;
            continue;
        case O_CONNECT:
            S.connect = optarg;
            continue;
        case O_QUIET:
            S.quiet = true;
            continue;
        case O_BYTES:
            target = &S.bytes, lo = 1, hi = 1ull << 50;
            break;
        case O_WSIZE:
            target = &S.write_size, lo = 1, hi = 64u << 20;
            break;
        case O_COUNT:
            target = &S.count, lo = 1, hi = MAX_COUNT, count_set = true;
            break;
        case O_SIZE:
            target = &S.size, lo = 1, hi = 65536, size_set = true;
            break;
        case O_WARMUP:
            target = &S.warmup, hi = MAX_COUNT;
            break;
        case O_PARALLEL:
            target = &S.parallel, lo = 1, hi = MAX_COUNT;
            break;
        case O_HOLD:
            target = &S.hold, hi = 86400;
            break;
        case O_TIMEOUT:
            target = &S.timeout, lo = 1, hi = 86400;
            break;
        case O_BACKLOG:
            target = &S.backlog, lo = 1, hi = 65535;
            break;
        case ':':
            fail_msg("option %s needs a value", argv[optind - 1]);
            return 2;
        default:
            fail_msg("unknown option '%s'; see --help", argv[optind - 1]);
            return 2;
        }
        uint64_t v;
        if (parse_size(optarg, &v) != 0 || v < lo || v > hi) {
            fail_msg("bad value '%s' for %s (a number from %" PRIu64 " to %" PRIu64 ", suffix k/M/G allowed)", optarg,
                     argv[optind - 1], lo, hi);
            return 2;
        }
        *target = v;
    }
    if (optind < argc) {
        fail_msg("unexpected argument '%s'", argv[optind]);
        return 2;
    }
    if (!count_set)
        S.count = S.mode == MODE_CONNS ? 1000 : 10000;
    if (!size_set)
        S.size = S.mode == MODE_CONNS ? 16 : 64;
    bool client = S.mode == MODE_SEND || S.mode == MODE_PINGPONG || S.mode == MODE_CONNS;
    if (client && S.connect == NULL) {
        fail_msg("--connect ADDR:PORT is required");
        return 2;
    }
    return -1;
}

int
main(int argc, char **argv)
{
    int rc = parse_args(argc, argv);
    if (rc >= 0)
        return rc;
    bool client = S.mode == MODE_SEND || S.mode == MODE_PINGPONG || S.mode == MODE_CONNS;
    const char *addr = client ? S.connect : S.listen;
    struct sockaddr_storage ss;
    socklen_t sslen;
    if (resolve(addr, !client, &ss, &sslen) != 0) {
        fail_msg("bad address '%s' (want IP:PORT or [IPv6]:PORT, numeric)", addr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    ptth_raise_nofile_limit();
    switch (S.mode) {
    case MODE_SEND:
        return run_send(&ss, sslen);
    case MODE_PINGPONG:
        return run_pingpong(&ss, sslen);
    case MODE_CONNS:
        return run_conns(&ss, sslen);
    default:
        return run_server(&ss, sslen);
    }
}
