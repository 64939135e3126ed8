/*
 * ptth_load's UDP modes (issue 15's benchmark rows):
 *   udpecho   server: one UDP socket that sends every datagram back to where
 *             it came from, until SIGINT/SIGTERM (then its totals, exit 0).
 *   udprr     client: --connections peers (each its own socket, so its own
 *             session through a UDP forward) doing round trips of --size
 *             bytes against udpecho for --duration seconds, each sending its
 *             next datagram when the echo of the last is back; a datagram
 *             without an echo for LOST_US is counted lost and the peer goes
 *             on. Round trips per second of all peers together.
 *   udprate   client: --rate datagrams per second of --size bytes, spread over
 *             --connections peers, for --duration seconds, paced by the
 *             clock, echoes read meanwhile; then waits for the last echoes.
 *             Sent, received, lost and the loss in percent.
 *
 * Every datagram says who sent it and which one it is: bytes 0-3 the peer's
 * index, 4-11 its sequence number (big-endian), the rest a pattern of both.
 * An echo that does not match is a failure (changed, or delivered to the
 * wrong peer); a late echo of a datagram already counted lost (udprr) or a
 * second copy of one (udprate) is counted, not a failure.
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

#define HDR 12
#define LOST_US 250000LL /* udprr: no echo this long, the datagram is lost */
#define QUIET_US 500000LL /* udprate: the drain ends after this long without an echo */
#define BATCH 64
#define SOCK_BUF (4 << 20)

static void
put_be(uint8_t *p, uint64_t v, int n)
{
    for (int k = n - 1; k >= 0; k--, v >>= 8)
        p[k] = (uint8_t)v;
}

static uint64_t
get_be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int k = 0; k < n; k++)
        v = v << 8 | p[k];
    return v;
}

static void
fill(uint8_t *p, size_t len, uint32_t peer, uint64_t seq)
{
    put_be(p, peer, 4);
    put_be(p + 4, seq, 8);
    for (size_t j = HDR; j < len; j++)
        p[j] = (uint8_t)(peer * 31u + seq * 7u + j);
}

/* 1: a datagram of this run from peer, its sequence number in *seq; 0 not
 * (wrong length, peer or content). */
static int
check(const uint8_t *p, size_t len, uint32_t peer, uint64_t *seq)
{
    if (len != load_cfg.size || get_be(p, 4) != peer)
        return 0;
    *seq = get_be(p + 4, 8);
    for (size_t j = HDR; j < len; j++)
        if (p[j] != (uint8_t)(peer * 31u + *seq * 7u + j))
            return 0;
    return 1;
}

static void
big_buffers(int fd)
{
    int v = SOCK_BUF;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v));
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v));
}

/* ---- udpecho ------------------------------------------------------------ */

int
load_run_udpecho(const struct sockaddr_storage *ss, socklen_t sslen)
{
    int rc = 1, ep = -1, sfd = -1, fd = -1;
    uint8_t *bufs = malloc((size_t)BATCH * 65536);
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    struct sockaddr_storage from[BATCH];
    uint64_t datagrams = 0, bytes = 0, dropped = 0;
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    ep = epoll_create1(EPOLL_CLOEXEC);
    sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    fd = socket(ss->ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (bufs == NULL || ep < 0 || sfd < 0 || fd < 0) {
        load_fail("start-up: %s", strerror(errno));
        goto out;
    }
    big_buffers(fd);
    if (bind(fd, (const struct sockaddr *)ss, sslen) != 0) {
        load_fail("cannot bind %s: %s", load_cfg.listen, strerror(errno));
        goto out;
    }
    struct sockaddr_storage bound;
    socklen_t blen = sizeof(bound);
    getsockname(fd, (struct sockaddr *)&bound, &blen);
    char addr[128];
    ptth_format_sockaddr((struct sockaddr *)&bound, addr, sizeof(addr));
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    ev.data.fd = sfd;
    epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);
    load_human("listening on %s (udp)", addr);
    printf("mode=udpecho event=listening addr=%s\n", addr);
    fflush(stdout);
    bool stop = false;
    while (!stop) {
        struct epoll_event evs[2];
        int n = epoll_wait(ep, evs, 2, 1000);
        if (n < 0 && errno != EINTR) {
            load_fail("epoll_wait: %s", strerror(errno));
            goto out;
        }
        for (int e = 0; e < n; e++) {
            if (evs[e].data.fd == sfd) {
                stop = true;
                continue;
            }
            while (true) {
                for (int k = 0; k < BATCH; k++) {
                    iov[k] = (struct iovec){.iov_base = bufs + (size_t)k * 65536, .iov_len = 65536};
                    msgs[k].msg_hdr = (struct msghdr){.msg_name = &from[k], .msg_namelen = sizeof(from[k]), .msg_iov = &iov[k],
                                                      .msg_iovlen = 1};
                }
                int got = recvmmsg(fd, msgs, BATCH, MSG_DONTWAIT, NULL);
                if (got <= 0)
                    break;
                for (int k = 0; k < got; k++) {
                    iov[k].iov_len = msgs[k].msg_len;
                    bytes += msgs[k].msg_len;
                }
                datagrams += (uint64_t)got;
                /* what the socket cannot take now is dropped, as UDP would */
                for (int off = 0; off < got;) {
                    int sent = sendmmsg(fd, msgs + off, (unsigned)(got - off), MSG_DONTWAIT);
                    if (sent <= 0) {
                        dropped += (uint64_t)(got - off);
                        break;
                    }
                    off += sent;
                }
            }
        }
    }
    load_human("stopped: %" PRIu64 " datagrams, %" PRIu64 " bytes, %" PRIu64 " not echoed", datagrams, bytes, dropped);
    printf("mode=udpecho event=stopped datagrams=%" PRIu64 " bytes=%" PRIu64 " dropped=%" PRIu64 "\n", datagrams, bytes, dropped);
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    if (sfd >= 0)
        close(sfd);
    if (ep >= 0)
        close(ep);
    free(bufs);
    return rc;
}

/* ---- the clients' peers -------------------------------------------------- */

typedef struct upeer {
    int fd;
    uint64_t seq;     /* udprr: the datagram in flight */
    long long sent_us; /* udprr: when it left */
    uint64_t done;    /* udprr: round trips completed (warm-up included) */
    long long echo_us; /* udprr: the last echo (or the start) */
} upeer;

/* --connections connected sockets in one epoll set (data.u64 = index);
 * NULL with a message. */
static upeer *
open_peers(const struct sockaddr_storage *ss, socklen_t sslen, int ep)
{
    size_t n = (size_t)load_cfg.connections;
    upeer *p = calloc(n, sizeof(*p));
    if (p == NULL) {
        load_fail("out of memory");
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        p[i].fd = -1;
    for (size_t i = 0; i < n; i++) {
        p[i].fd = socket(ss->ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (p[i].fd < 0 || connect(p[i].fd, (const struct sockaddr *)ss, sslen) != 0) {
            load_fail("peer %zu: %s", i, strerror(errno));
            goto fail;
        }
        big_buffers(p[i].fd);
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = i};
        epoll_ctl(ep, EPOLL_CTL_ADD, p[i].fd, &ev);
    }
    return p;
fail:
    for (size_t i = 0; i < n; i++)
        if (p[i].fd >= 0)
            close(p[i].fd);
    free(p);
    return NULL;
}

static void
close_peers(upeer *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < load_cfg.connections; i++)
        if (p[i].fd >= 0)
            close(p[i].fd);
    free(p);
}

/* ---- udprr -------------------------------------------------------------- */

typedef struct rr_state {
    upeer *p;
    long long *lat; /* per measured round trip, microseconds */
    size_t nlat, caplat;
    uint64_t lost, late, sendfail;
    bool measuring;
    long long start_us, end_us;
    uint64_t warmup_left; /* peers still warming up */
} rr_state;

static void
rr_send(rr_state *s, size_t i, long long now)
{
    upeer *pe = &s->p[i];
    uint8_t msg[LOAD_MAX_SIZE];
    pe->seq++;
    fill(msg, load_cfg.size, (uint32_t)i, pe->seq);
    pe->sent_us = now;
    if (send(pe->fd, msg, load_cfg.size, 0) < 0)
        s->sendfail++; /* a full socket or ECONNREFUSED (nobody there yet): the datagram is lost */
}

static bool
rr_record(rr_state *s, long long v)
{
    if (s->nlat == s->caplat) {
        size_t cap = s->caplat ? s->caplat * 2 : 65536;
        long long *n = realloc(s->lat, cap * sizeof(*n));
        if (n == NULL)
            return false;
        s->lat = n, s->caplat = cap;
    }
    s->lat[s->nlat++] = v;
    return true;
}

int
load_run_udprr(const struct sockaddr_storage *ss, socklen_t sslen)
{
    int rc = 1, ep = epoll_create1(EPOLL_CLOEXEC);
    rr_state s = {0};
    size_t n = (size_t)load_cfg.connections;
    uint64_t mismatched = 0;
    if (ep < 0 || (s.p = open_peers(ss, sslen, ep)) == NULL)
        goto out;
    /* Warm-up: every peer has --warmup round trips (the first one opens its
     * session), each bounded by --timeout; then the clock starts. */
    long long now = load_now_us();
    s.warmup_left = load_cfg.warmup > 0 ? n : 0;
    for (size_t i = 0; i < n; i++) {
        s.p[i].echo_us = now;
        rr_send(&s, i, now);
    }
    if (s.warmup_left == 0) {
        s.measuring = true;
        s.start_us = now;
        s.end_us = now + (long long)load_cfg.duration * 1000000;
    }
    struct epoll_event evs[256];
    uint8_t got[65536];
    while (true) {
        now = load_now_us();
        if (s.measuring && now >= s.end_us)
            break;
        int k = epoll_wait(ep, evs, 256, 10);
        if (k < 0 && errno != EINTR) {
            load_fail("epoll_wait: %s", strerror(errno));
            goto out;
        }
        now = load_now_us();
        for (int e = 0; e < k; e++) {
            size_t i = (size_t)evs[e].data.u64;
            upeer *pe = &s.p[i];
            ssize_t len;
            while ((len = recv(pe->fd, got, sizeof(got), MSG_DONTWAIT)) >= 0) {
                uint64_t seq;
                if (!check(got, (size_t)len, (uint32_t)i, &seq)) {
                    mismatched++;
                    continue;
                }
                if (seq != pe->seq) {
                    s.late++;
                    continue;
                }
                pe->done++;
                pe->echo_us = now;
                if (s.measuring) {
                    if (now >= s.end_us)
                        continue;
                    if (!rr_record(&s, now - pe->sent_us)) {
                        load_fail("out of memory");
                        goto out;
                    }
                } else if (pe->done == load_cfg.warmup) {
                    if (--s.warmup_left == 0) {
                        s.measuring = true;
                        s.start_us = now;
                        s.end_us = now + (long long)load_cfg.duration * 1000000;
                        s.late = s.sendfail = 0; /* the warm-up's */
                        for (size_t j = 0; j < n; j++)
                            rr_send(&s, j, now); /* the peers that waited start with it */
                        break;
                    }
                    continue; /* waits for the others */
                }
                rr_send(&s, i, now);
            }
        }
        /* datagrams without an echo: lost (measuring) or a failed warm-up */
        for (size_t i = 0; i < n; i++) {
            upeer *pe = &s.p[i];
            if (!s.measuring && pe->done >= load_cfg.warmup)
                continue;
            long long age = now - pe->sent_us;
            if (s.measuring && age > LOST_US) {
                s.lost++;
                rr_send(&s, i, now);
            } else if (!s.measuring && now - pe->echo_us > (long long)load_cfg.timeout * 1000000) {
                load_fail("peer %zu: no echo within %" PRIu64 " s during the warm-up", i, load_cfg.timeout);
                printf("mode=udprr ok=0 connections=%zu round_trips=0 rate_per_s=0 stage=warmup\n", n);
                goto out;
            } else if (!s.measuring && age > LOST_US) {
                rr_send(&s, i, now); /* a warm-up datagram lost (or its session still opening): the next */
            }
        }
    }
    double secs = (double)(s.end_us - s.start_us) / 1e6;
    qsort(s.lat, s.nlat, sizeof(*s.lat), load_cmp_ll);
    long long p50 = load_percentile(s.lat, s.nlat, 0.5), p90 = load_percentile(s.lat, s.nlat, 0.9),
              p99 = load_percentile(s.lat, s.nlat, 0.99), mx = s.nlat ? s.lat[s.nlat - 1] : 0;
    double rate = (double)s.nlat / secs;
    bool ok = s.nlat > 0 && mismatched == 0;
    load_human("%zu peers: %zu round trips in %.3f s = %.0f/s, %" PRIu64 " lost, %" PRIu64 " late, %" PRIu64
               " wrong; p50 %lld us, p99 %lld us",
               n, s.nlat, secs, rate, s.lost, s.late, mismatched, p50, p99);
    printf("mode=udprr ok=%d connections=%zu size=%" PRIu64 " seconds=%.6f round_trips=%zu rate_per_s=%.1f lost=%" PRIu64
           " late=%" PRIu64 " mismatched=%" PRIu64 " send_errors=%" PRIu64 " p50_us=%lld p90_us=%lld p99_us=%lld max_us=%lld\n",
           ok, n, load_cfg.size, secs, s.nlat, rate, s.lost, s.late, mismatched, s.sendfail, p50, p90, p99, mx);
    rc = ok ? 0 : 1;
out:
    close_peers(s.p);
    free(s.lat);
    if (ep >= 0)
        close(ep);
    return rc;
}

/* ---- udprate ------------------------------------------------------------ */

int
load_run_udprate(const struct sockaddr_storage *ss, socklen_t sslen)
{
    int rc = 1, ep = epoll_create1(EPOLL_CLOEXEC);
    size_t n = (size_t)load_cfg.connections;
    uint64_t total = load_cfg.rate * load_cfg.duration;
    uint8_t *seen = calloc((size_t)total / 8 + 1, 1);
    upeer *p = NULL;
    uint64_t sent = 0, received = 0, dups = 0, mismatched = 0, send_errors = 0;
    if (ep < 0 || seen == NULL || (p = open_peers(ss, sslen, ep)) == NULL) {
        if (seen == NULL)
            load_fail("out of memory");
        goto out;
    }
    uint8_t msg[LOAD_MAX_SIZE], got[65536];
    long long start = load_now_us(), send_end = start, last_rx = start;
    struct epoll_event evs[256];
    bool sending = true;
    while (true) {
        long long now = load_now_us();
        if (sending) {
            /* datagram k leaves at start + k / rate, through peer k mod n */
            uint64_t due = (uint64_t)((double)(now - start) * (double)load_cfg.rate / 1e6) + 1;
            if (due > total)
                due = total;
            while (sent < due) {
                size_t i = (size_t)(sent % n);
                fill(msg, load_cfg.size, (uint32_t)i, sent);
                if (send(p[i].fd, msg, load_cfg.size, 0) < 0) {
                    if (errno == EAGAIN)
                        break; /* the socket is full: try again on the next tick */
                    send_errors++; /* ECONNREFUSED from an earlier datagram: this one counts as sent and lost */
                }
                sent++;
            }
            if (sent == total) {
                sending = false;
                send_end = now;
                last_rx = now;
            }
        } else if (received == sent || now - last_rx > QUIET_US || now - send_end > (long long)load_cfg.timeout * 1000000) {
            break;
        }
        int k = epoll_wait(ep, evs, 256, 1);
        if (k < 0 && errno != EINTR) {
            load_fail("epoll_wait: %s", strerror(errno));
            goto out;
        }
        for (int e = 0; e < k; e++) {
            size_t i = (size_t)evs[e].data.u64;
            ssize_t len;
            while ((len = recv(p[i].fd, got, sizeof(got), MSG_DONTWAIT)) >= 0) {
                uint64_t seq;
                if (!check(got, (size_t)len, (uint32_t)i, &seq) || seq >= sent || seq % n != i) {
                    mismatched++;
                    continue;
                }
                if (seen[seq / 8] & (1u << (seq % 8))) {
                    dups++;
                    continue;
                }
                seen[seq / 8] |= (uint8_t)(1u << (seq % 8));
                received++;
                last_rx = load_now_us();
            }
        }
    }
    double secs = (double)(send_end - start) / 1e6;
    uint64_t lost = sent - received;
    double loss = sent ? 100.0 * (double)lost / (double)sent : 0;
    double send_rate = secs > 0 ? (double)sent / secs : 0;
    bool ok = sent == total && mismatched == 0;
    load_human("%" PRIu64 " datagrams of %" PRIu64 " bytes at %.0f/s (asked %" PRIu64 "/s) over %zu peers: %" PRIu64
               " echoed, %" PRIu64 " lost (%.2f %%), %" PRIu64 " duplicates, %" PRIu64 " wrong",
               sent, load_cfg.size, send_rate, load_cfg.rate, n, received, lost, loss, dups, mismatched);
    printf("mode=udprate ok=%d connections=%zu size=%" PRIu64 " rate=%" PRIu64 " seconds=%.6f send_rate_per_s=%.1f sent=%" PRIu64
           " received=%" PRIu64 " lost=%" PRIu64 " loss_pct=%.3f duplicates=%" PRIu64 " mismatched=%" PRIu64
           " send_errors=%" PRIu64 "\n",
           ok, n, load_cfg.size, load_cfg.rate, secs, send_rate, sent, received, lost, loss, dups, mismatched, send_errors);
    rc = ok ? 0 : 1;
out:
    close_peers(p);
    free(seen);
    if (ep >= 0)
        close(ep);
    return rc;
}
