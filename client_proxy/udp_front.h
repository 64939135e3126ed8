/*
 * udp_front.h: a UDP forward of ptth_proxy (--udp with --server/--port/
 * --listen, or --forward udp:[ADDR:]LPORT=SERVER/PORT; SPEC §9.4).
 *
 * The front owns one bound UDP socket. Each local peer address is a
 * session, and a session is one tunnel of the proxy (proxy.h,
 * ptth_proxy_open_tunnel, with "PTTH-Proto: udp" on its connect). Between
 * the front and the tunnel's bridge sits an AF_UNIX SOCK_SEQPACKET
 * socketpair (boundaries kept): the front writes the peer's datagrams into
 * its end, the bridge reads the other end through ptth_local_end_dgram()
 * (each datagram one frame of common/dgram.h), and the other way round.
 *
 * Bounds, UDP semantics (never backpressure, never unbounded memory):
 *   - at most PTTH_UDP_SESSIONS_MAX sessions; a datagram from a new peer
 *     while the table is full is dropped and counted (logged at most every
 *     10 s);
 *   - a datagram the session's socketpair cannot take now (its socket
 *     buffer is full, e.g. while the tunnel is still opening) is dropped and
 *     counted, and so is one the local socket cannot send back;
 *   - a session the relay refused (or could not be asked) pauses new
 *     sessions for 1 s, or the refusal's Retry-After: their datagrams are
 *     dropped and counted (refused), so that a peer that keeps sending is
 *     not one connect per datagram;
 *   - a session with no datagram either way for idle_ms ends: the front
 *     shuts its side of the pair, the bridge reads the end and sends FIN,
 *     ptth_server's side answers with its FIN; the tunnel ends clean.
 * Datagrams of a session keep their order; different peers never mix.
 *
 * Ownership: the front borrows the proxy and the spec; free the proxy first
 * (its tunnels' local ends hold the pairs' other ends), then the front.
 */
#ifndef PTTH_UDP_FRONT_H
#define PTTH_UDP_FRONT_H

#include <stdbool.h>
#include <stdint.h>

#include "loop.h"
#include "proxy.h"

#define PTTH_UDP_SESSIONS_MAX 4096
#define PTTH_UDP_IDLE_DEFAULT_S 60

typedef struct ptth_udp_front ptth_udp_front;

typedef struct ptth_udp_front_stats {
    uint64_t sessions;      /* opened */
    uint64_t peers_dropped; /* datagrams of new peers dropped: the table was full */
    uint64_t refused;       /* datagrams of new peers dropped: paused after the relay refused a session */
    uint64_t dropped_up;    /* peer -> tunnel datagrams dropped: the session's queue was full */
    uint64_t dropped_down;  /* tunnel -> peer datagrams the local socket did not take */
} ptth_udp_front_stats;

/* Binds spec's address (UDP) and prints "listening on ADDR:PORT (udp)" on
 * stderr. idle_ms > 0. 0, or a negative errno with err saying what failed. */
int ptth_udp_front_new(ptth_loop *loop, ptth_proxy *px, const ptth_forward_spec *spec, long long idle_ms, ptth_udp_front **out,
                       char *err, size_t errlen);

const ptth_udp_front_stats *ptth_udp_front_stats_get(const ptth_udp_front *f);

/* Stops reading the socket (the sessions' tunnels are the proxy's, ended by
 * ptth_proxy_shutdown). */
void ptth_udp_front_shutdown(ptth_udp_front *f);

void ptth_udp_front_free(ptth_udp_front *f);

#endif
