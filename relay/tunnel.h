/*
 * tunnel.h: one tunnel between a client (ptth_proxy) and a server
 * (ptth_server), from the client's connect to the end (SPEC §4).
 *
 * States: AWAIT_LISTEN (the connect waits for a listen of the server),
 * AWAIT_ACCEPT (a listen got the connection id, the connect waits for the
 * server's accept), OPEN (two framed streams: `down` is the connect response
 * carrying what the server sends, `up` is the accept response carrying what
 * the client sends).
 *
 * Each direction has a reorder window (seqwin.h) of chunk requests. A chunk
 * is written into the other side's stream when its turn comes and the stream
 * is idle; it is answered 204 when the stream reports that h2o took the bytes
 * (on_writable). So the relay holds at most the window of chunks per
 * direction, and a slow reader slows the sender down.
 *
 * The tunnel ends when both directions delivered FIN, on close/reject, when a
 * stream breaks, on connect timeout, on idle timeout or at shutdown. Ending
 * writes RST (unless both FINs were delivered), finishes both streams,
 * answers held requests, logs event=tunnel_end and frees the tunnel.
 *
 * The upgraded data path (SPEC §9.1, joint.h): when the connect and the
 * accept both asked for it over HTTP/1.1 and --upgrade is on, OPEN has no
 * framed streams and no chunks: both requests get 101 and the joint moves
 * the bytes between the two connections (`path=upgrade` in the tunnel_end
 * line). When only one of them asked, it gets the framed stream as usual,
 * with `PTTH-Upgrade: peer` (or `off` when --upgrade is off) saying why.
 *
 * Tunnels are malloc'd, owned by relay->tunnels (by id).
 */
#ifndef PTTH_RELAY_TUNNEL_H
#define PTTH_RELAY_TUNNEL_H

#include <stdbool.h>
#include <stdint.h>

#include "addr.h"
#include "keys.h"
#include "names.h"
#include "registry.h"
#include "relay.h"
#include "reply.h"
#include "joint.h"
#include "seqwin.h"
#include "stream.h"

typedef enum ptth_tunnel_state {
    PTTH_TUNNEL_AWAIT_LISTEN = 0,
    PTTH_TUNNEL_AWAIT_ACCEPT,
    PTTH_TUNNEL_OPEN,
} ptth_tunnel_state;

typedef struct ptth_chunk ptth_chunk;

/* One direction of the byte flow. */
typedef struct ptth_dir {
    ptth_seqwin win;
    ptth_stream *out;                     /* the stream these bytes go to; NULL before OPEN or once it ended */
    ptth_chunk *acking[PTTH_SEQWIN_SIZE]; /* written into out, answered at its next on_writable */
    size_t nacking;
    bool fin_known; /* a FIN chunk arrived (fin_seq valid) */
    uint64_t fin_seq;
    bool fin_written; /* the FIN frame went into out */
    bool fin_done;    /* ... and h2o took it */
    uint64_t bytes;
} ptth_dir;

struct ptth_tunnel {
    ptth_relay *relay;
    ptth_srv *srv;
    char id[PTTH_ID_LEN + 1];
    char server[PTTH_NAME_MAX + 1];
    char port[PTTH_NAME_MAX + 1];
    char client[PTTH_NAME_MAX + 1];
    char addr[PTTH_ADDR_STRLEN];
    ptth_tunnel_state state;
    ptth_hold *connect; /* the client's connect until it is answered */
    h2o_linklist_t wait_link;
    ptth_dir up;                       /* client -> server: upstream chunks, written into the accept stream */
    ptth_dir down;                     /* server -> client: downstream chunks, written into the connect stream */
    h2o_timeout_entry_t connect_timer; /* the connect timeout until OPEN; then the deferred end after a stream broke */
    const char *broken_text;           /* a stream broke: the end (with this reason) waits for the next loop round */
    h2o_timeout_entry_t idle_timer;
    long long started_ms;
    bool ending;
    bool connect_wants_upgrade; /* the connect asked for the upgraded path */
    bool udp;                   /* PTTH-Proto: udp (a datagram session, docs/protocol.md): logged as proto=udp */
    ptth_joint *joint;          /* the upgraded path, once accepted on it */
};

/* Creates a tunnel for a connect request (already authorized and checked
 * against the limits), registers it and starts the connect timeout. NULL on
 * memory or id failure (the caller answers 500). */
ptth_tunnel *ptth_tunnel_new(ptth_relay *relay, ptth_srv *srv, h2o_req_t *connect_req, const char *port, size_t port_len,
                             const char *client, const char *addr);

ptth_tunnel *ptth_tunnel_find(ptth_relay *relay, const char *id, size_t len);

/* Gives the tunnel to a listen: the listen is answered 200 with PTTH-Conn,
 * PTTH-Port and PTTH-Client-Addr; the tunnel waits for accept. */
void ptth_tunnel_match(ptth_tunnel *t, h2o_req_t *listen_req);

/* The server accepts: both framed streams start. Answers req itself (409
 * when the tunnel is not waiting for an accept). */
void ptth_tunnel_on_accept(ptth_tunnel *t, h2o_req_t *req);

/* The server rejects: the connect gets 502 with the reason; the tunnel ends
 * with reason backend. Answers req itself. */
void ptth_tunnel_on_reject(ptth_tunnel *t, h2o_req_t *req, const char *reason, size_t reason_len);

/* A chunk for one direction (upstream: from_client). The request's checks on
 * headers are done here: PTTH-Seq, PTTH-Fin, body size. Answers req itself,
 * now or when the bytes were handed over. */
void ptth_tunnel_on_chunk(ptth_tunnel *t, h2o_req_t *req, bool from_client);

/* Ends the tunnel: RST frames with reason_text to both streams (when open),
 * answers what is held, logs and frees. */
void ptth_tunnel_end(ptth_tunnel *t, ptth_end_reason reason, const char *rst_text);

#endif
