/*
 * ptth_load's shared helpers (contract in load.h): messages, clock, sizes and
 * addresses, the blocking-socket calls of the one-connection clients,
 * percentiles and the failure tally of the many-connection clients.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "load.h"
#include "options.h"
#include "sysutil.h"

load_settings load_cfg;

void
load_human(const char *fmt, ...)
{
    if (load_cfg.quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, LOAD_PROG " %s: ", load_cfg.mode_name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void
load_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, LOAD_PROG " %s: ", load_cfg.mode_name != NULL ? load_cfg.mode_name : "");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

long long
load_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Parses a decimal size with an optional k/M/G suffix (powers of 1024). */
int
load_parse_size(const char *s, uint64_t *out)
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
int
load_resolve(const char *value, bool allow_zero, struct sockaddr_storage *ss, socklen_t *len)
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
int
load_connect_blocking(const struct sockaddr_storage *ss, socklen_t len)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        load_fail("socket: %s", strerror(errno));
        return -1;
    }
    if (connect(fd, (const struct sockaddr *)ss, len) != 0) {
        if (errno != EINPROGRESS) {
            load_fail("connect to %s: %s", load_cfg.connect, strerror(errno));
            close(fd);
            return -1;
        }
        int ep = epoll_create1(EPOLL_CLOEXEC);
        struct epoll_event ev = {.events = EPOLLOUT};
        int n = -1;
        if (ep >= 0 && epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0)
            n = epoll_wait(ep, &ev, 1, (int)(load_cfg.timeout * 1000));
        if (ep >= 0)
            close(ep);
        if (n <= 0) {
            load_fail("connect to %s: %s", load_cfg.connect, n == 0 ? "timed out" : strerror(errno));
            close(fd);
            return -1;
        }
        int err = 0;
        socklen_t elen = sizeof(err);
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen);
        if (err != 0) {
            load_fail("connect to %s: %s", load_cfg.connect, strerror(err));
            close(fd);
            return -1;
        }
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
        load_fail("fcntl: %s", strerror(errno));
        close(fd);
        return -1;
    }
    ptth_set_nodelay(fd);
    set_timeouts(fd, load_cfg.timeout);
    return fd;
}

/* Writes all of buf on a blocking socket; false with a message on error or
 * when one write made no progress for --timeout. */
bool
load_write_all(int fd, const char *buf, size_t len, const char *what)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            load_fail("%s: write: %s", what, errno == EAGAIN ? "no progress within --timeout" : strerror(errno));
            return false;
        }
        buf += n;
        len -= (size_t)n;
    }
    return true;
}

/* Reads exactly len bytes from a blocking socket; false with a message on
 * error, end of stream or --timeout without progress. */
bool
load_read_exactly(int fd, char *buf, size_t len, const char *what)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = recv(fd, buf + got, len - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            load_fail("%s: read: %s after %zu of %zu bytes", what,
                      errno == EAGAIN ? "no progress within --timeout" : strerror(errno), got, len);
            return false;
        }
        if (n == 0) {
            load_fail("%s: connection closed after %zu of %zu bytes", what, got, len);
            return false;
        }
        got += (size_t)n;
    }
    return true;
}

int
load_cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array. */
long long
load_percentile(const long long *v, size_t n, double q)
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

void
load_reasons_add(load_reasons *rs, const char *stage, int err)
{
    for (size_t k = 0; k < rs->n; k++) {
        if (rs->r[k].stage == stage && rs->r[k].err == err) {
            rs->r[k].count++;
            return;
        }
    }
    if (rs->n < LOAD_MAX_REASONS)
        rs->r[rs->n++] = (load_reason){stage, err, 1};
    else
        rs->r[LOAD_MAX_REASONS - 1].count++;
}

void
load_reasons_print(const load_reasons *rs)
{
    for (size_t k = 0; k < rs->n; k++) {
        const load_reason *e = &rs->r[k];
        load_human("  %" PRIu64 " failed at %s%s%s", e->count, e->stage, e->err ? ": " : "", e->err ? strerror(e->err) : "");
        printf("mode=%s event=failure stage=%s errno=%s count=%" PRIu64 "\n", load_cfg.mode_name, e->stage,
               e->err ? strerrorname_np(e->err) : "-", e->count);
    }
}
