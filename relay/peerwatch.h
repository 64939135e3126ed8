/*
 * peerwatch.h: noticing at once that the peer of a held HTTP/1.x request
 * closed its connection.
 *
 * h2o 2.2.5 stops reading an HTTP/1 connection while a request on it is being
 * processed, so on its own it learns that the peer went away only when it
 * next writes there. The relay holds HTTP/1 requests for a long time (a
 * listen, a connect, a chunk waiting for its turn, the framed streams): a
 * terminator that died (kill -9, a cut connection, nginx closing its upstream
 * connection) would keep its tunnels open until the next heartbeat.
 *
 * A ptth_peerset is a private epoll set in which such connections are
 * registered for EPOLLRDHUP only (no EPOLLIN: bytes the peer pipelines stay
 * unread, for h2o). The set's own descriptor is watched by the h2o loop with
 * H2O_SOCKET_FLAG_DONT_READ, so h2o never reads it. When a watched peer sends
 * FIN or RST (or the socket has an error), the watch is stopped and its
 * callback runs once, from the loop. A peer that only half-closes its sending
 * side counts as gone (as for ptth_req_peer_closed()).
 *
 * HTTP/2 needs none of this: h2o keeps reading an HTTP/2 connection and
 * resets its streams itself. ptth_peer_watch_start() does nothing for it.
 *
 * Ownership: a ptth_peer_watch is embedded in its owner's object (a hold, a
 * stream). The owner stops it before the object goes away, and before h2o
 * closes the socket: from the request's dispose or stop callbacks, which h2o
 * runs before it closes the connection. Stopping an inactive watch is a no-op.
 */
#ifndef PTTH_RELAY_PEERWATCH_H
#define PTTH_RELAY_PEERWATCH_H

#include <stdbool.h>
#include <stddef.h>

#include <h2o.h>

typedef struct ptth_peerset {
    int epfd;
    h2o_socket_t *sock; /* epfd as seen by the h2o loop */
    size_t count;       /* active watches */
} ptth_peerset;

typedef struct ptth_peer_watch ptth_peer_watch;
typedef void (*ptth_peer_watch_cb)(ptth_peer_watch *w);

struct ptth_peer_watch {
    ptth_peer_watch_cb cb;
    ptth_peerset *set; /* NULL while inactive */
    int fd;
};

/* Creates the epoll set and hooks it into loop. 0 or a negative errno. */
int ptth_peerset_init(ptth_peerset *ps, h2o_loop_t *loop);
/* Closes the set (every watch must be stopped). */
void ptth_peerset_dispose(ptth_peerset *ps);

/* Watches the connection of req (HTTP/1.x only) for its peer closing; cb
 * runs once then. false (and nothing watched) for HTTP/2, a request without
 * a socket, or when the socket cannot be registered. */
bool ptth_peer_watch_start(ptth_peerset *ps, ptth_peer_watch *w, h2o_req_t *req, ptth_peer_watch_cb cb);
void ptth_peer_watch_stop(ptth_peer_watch *w);

#endif
