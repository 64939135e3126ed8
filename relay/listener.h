/*
 * listener.h: the relay's listening sockets and the connections they accept.
 *
 * Each --listen address gets a bound, listening TCP socket driven by the h2o
 * evloop; accepted connections go to h2o_accept() with one accept context
 * (cleartext HTTP/1.1 and HTTP/2 with prior knowledge, or TLS with ALPN h2 and
 * http/1.1 when an SSL_CTX is given). This is the one accept path of the
 * relay: HTTP/1, HTTP/2, TLS and the connections that later leave HTTP for
 * the upgraded path (joint.h keeps the same h2o socket) all come through it.
 * Every accepted socket is tracked (through h2o's socket on_close hook) so
 * that shutdown can end the connections that are still open (h2o 2.2.5 has
 * no call to close them all), and so that the limits below can count them.
 *
 * Hardening (SPEC §9.6, docs/security.md):
 * - --max-connections-per-address: the relay accepts itself (accept4 with the
 *   peer's address) and closes a connection over its address's cap at once
 *   (RST), before any TLS handshake or h2o state; one log line per address
 *   per minute (event=conn_refused). --trusted-proxy peers are not counted
 *   at accept: the handler attributes their connections to the client named
 *   by X-Forwarded-For (ptth_accepted_attribute).
 * - Out of descriptors (EMFILE, ENFILE; also ENOBUFS, ENOMEM): every listener
 *   stops accepting for a back-off interval (backoff.h: 100 ms doubling to
 *   1 s), one log line per interval (event=accept_paused), while the
 *   connections already accepted are served as before. A reserve descriptor
 *   (/dev/null) kept open for this moment is freed to take waiting
 *   connections off the listen queue: those of the address that holds the
 *   most connections are closed at once, a newcomer from another address is
 *   kept (with the reserve's descriptor). Connections of that heaviest
 *   address that have not sent a request for a second are shut down, so
 *   that descriptors come back for others. The reserve is taken again when
 *   a descriptor is free.
 */
#ifndef PTTH_RELAY_LISTENER_H
#define PTTH_RELAY_LISTENER_H

#include <stdbool.h>
#include <stddef.h>

#include <h2o.h>
#include <openssl/ssl.h>

#include "backoff.h"
#include "options.h"
#include "peerlimit.h"
#include "relay.h"

typedef struct ptth_listener ptth_listener;

typedef struct ptth_listeners {
    h2o_accept_ctx_t accept_ctx;
    ptth_relay *relay;
    ptth_listener **items;
    size_t count;
    h2o_linklist_t conns; /* tracked accepted sockets, oldest first */
    size_t nconns;
    /* out of descriptors */
    int reserve_fd; /* -1 while spent */
    ptth_backoff backoff;
    bool paused;
    long long resume_at_ms;
    bool tick_inited;
    h2o_timeout_t tick; /* while paused: resume, take the reserve again */
    h2o_timeout_entry_t tick_entry;
} ptth_listeners;

/* What the listener knows of one accepted connection (NULL for a socket it
 * did not accept, e.g. a fuzz harness's socketpair). */
typedef struct ptth_accepted ptth_accepted;

/* Binds and listens on every address of addrs (HOST:PORT, [V6]:PORT; port 0:
 * any) and logs event=listening addr=IP:PORT with the real port. ssl_ctx may
 * be NULL (cleartext); the caller keeps owning it. The limits come from
 * relay (its cfg, trusted proxies, per-address table), which must outlive
 * the listeners. Returns 0, or -1 with a message naming the address in err
 * (nothing left open). */
int ptth_listeners_open(ptth_listeners *ls, ptth_relay *relay, const ptth_strlist *addrs, SSL_CTX *ssl_ctx, char *err,
                        size_t errlen);

/* Stops accepting and closes the listening sockets (and the reserve). May be
 * called again, and on a zeroed ptth_listeners. */
void ptth_listeners_close(ptth_listeners *ls);

/* Shuts down (both ways) every accepted connection still open; h2o then sees
 * the end of input and closes them through its own paths. */
void ptth_listeners_shutdown_conns(ptth_listeners *ls);

/* Drops the tracking of accepted connections (after the loop is gone). */
void ptth_listeners_dispose(ptth_listeners *ls);

/* The accepted connection a request came on, or NULL. */
ptth_accepted *ptth_accepted_of(h2o_req_t *req);

/* The connection made a request (it will not be shed for sending none). */
void ptth_accepted_note_request(ptth_accepted *a);

/* The per-address entry it is counted under, or PTTH_PEER_NONE. */
uint32_t ptth_accepted_slot(const ptth_accepted *a);

/* true when its peer was a --trusted-proxy at accept. */
bool ptth_accepted_trusted(const ptth_accepted *a);

/* A trusted proxy's connection now carries a request of client k: counts it
 * under k (instead of the client of its previous request) against cap (0:
 * none). PTTH_PEER_ADMIT or UNTRACKED: go on; OVER_CAP: the client holds
 * cap connections already (the connection is then counted under no one),
 * and *slot names its entry for ptth_peertable_refusal_log. */
ptth_peer_admit ptth_accepted_attribute(ptth_accepted *a, ptth_peertable *t, const ptth_peer_key *k, uint32_t cap, uint32_t *slot);

#endif
