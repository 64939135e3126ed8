/*
 * cc_mux.h: many tunnels over one comm-channel connection, used by both ends
 * (the host side in cc_host.c, the agent in cc_agent.c). Each tunnel bridges
 * a local stream socket (host: one end of a socketpair whose other end the
 * server terminator holds; agent: the socket to TARGET) with the channel.
 *
 * Everything runs on the owner's thread, driven by the owner's epoll loop:
 * the mux registers the channel fd and every tunnel fd in epfd with
 * data.ptr pointing at a ptth_cc_watch; the owner passes each event to
 * ptth_cc_mux_handle(), then calls ptth_cc_mux_after_events() once per batch
 * (which frees tunnels that ended during the batch: their pointers may still
 * be in the batch's event array until then).
 *
 * Flow control (credit based, per tunnel and direction): each side announces
 * in HELLO how many DATA messages per tunnel it will hold (`window`). A sender
 * may have at most the peer's window of DATA messages not yet credited;
 * the receiver returns CREDIT once it has written messages into the local
 * socket. When a local socket is full the receiver keeps that tunnel's DATA
 * in memory (at most `window` messages, as the sender runs out of credit)
 * and keeps reading the channel for the other tunnels: one slow tunnel never
 * stalls the channel, and memory per tunnel is bounded by window x max_msg.
 * A peer that sends beyond its credit breaks the protocol: the channel is
 * dropped. When the channel itself is full (more than PTTH_CC_OUTQ_HIGH
 * messages queued) reading from local sockets pauses for every tunnel until
 * it drains below PTTH_CC_OUTQ_LOW.
 *
 * Tunnel life (SPEC §7: the host ends a connection):
 *   host  OPEN -> agent; agent connects TARGET -> OPEN_OK or OPEN_FAIL (end).
 *   DATA/CREDIT both ways; local EOF -> FIN; FIN received -> shutdown(SHUT_WR)
 *   of the local socket once buffered DATA is written.
 *   agent: local socket error -> ABORT to host, the socket is closed, the
 *   tunnel stays (and counts against --max-clients) until the host's CLOSE.
 *   host: ptth_cc_mux_close_tunnel() -> CLOSE; the agent frees the tunnel.
 *   Closing is graceful like close() of a TCP socket: what the local side
 *   wrote before closing is still delivered (host: the rest of the socketpair
 *   is read and sent, then FIN, then CLOSE; agent: on a CLOSE after FIN, DATA
 *   it still holds is written to TARGET before it shuts it down), for at most
 *   PTTH_CC_LINGER_MS. A CLOSE without FIN before it aborts at once.
 *   channel lost: every tunnel ends at once on both sides.
 */
#ifndef PTTH_CC_MUX_H
#define PTTH_CC_MUX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cc_carrier.h"
#include "cc_msg.h"

#define PTTH_CC_DEFAULT_WINDOW 32 /* DATA messages per tunnel and direction */
#define PTTH_CC_OUTQ_HIGH 64      /* queued channel messages: pause local reads */
#define PTTH_CC_OUTQ_LOW 16       /* ... and resume below this */
#define PTTH_CC_OUTQ_HARD 8192    /* pause reading the channel itself (peer does not read) */
#define PTTH_CC_LINGER_MS 10000   /* a closed tunnel may take this long to deliver what it holds */

typedef enum ptth_cc_side {
    PTTH_CC_SIDE_HOST,
    PTTH_CC_SIDE_AGENT,
} ptth_cc_side;

/* What an epoll event's data.ptr points at; owners add their own kinds. */
typedef enum ptth_cc_watch_kind {
    PTTH_CC_WATCH_CHANNEL = 1,
    PTTH_CC_WATCH_TUNNEL = 2,
    PTTH_CC_WATCH_OWNER = 100, /* first value free for the owner */
} ptth_cc_watch_kind;

typedef struct ptth_cc_watch {
    int kind;
} ptth_cc_watch;

typedef struct ptth_cc_mux ptth_cc_mux;
typedef struct ptth_cc_tunnel ptth_cc_tunnel;

/* A tunnel's life, changed only by set_state() in cc_mux.c (which asserts
 * the step): NEW -> OPENING -> OPEN -> CLOSING -> DEAD, and OPENING or OPEN
 * -> DEAD. OPENING and CLOSING have a deadline (--open-timeout, the linger)
 * and sit in the mux's queue of that deadline. */
typedef enum ptth_cc_tunnel_state {
    PTTH_CC_T_NEW = 0, /* allocated, not started */
    PTTH_CC_T_OPENING, /* host: OPEN sent, no answer yet; agent: connecting TARGET */
    PTTH_CC_T_OPEN,    /* OPEN_OK sent / received */
    PTTH_CC_T_CLOSING, /* closed, still delivering what was written before (linger) */
    PTTH_CC_T_DEAD,    /* ended; freed after the batch */
} ptth_cc_tunnel_state;

/* The peer's direction (what arrives for the local socket). */
typedef enum ptth_cc_inbound {
    PTTH_CC_IN_OPEN = 0, /* DATA may arrive */
    PTTH_CC_IN_FIN,      /* FIN received; held DATA may still wait for the socket */
    PTTH_CC_IN_SHUT,     /* ... all written, shutdown(fd, SHUT_WR) done */
} ptth_cc_inbound;

/* Tunnels waiting for one kind of deadline, earliest first: every entry of
 * a queue has the same period, so appending keeps the order. */
typedef struct ptth_cc_deadlines {
    ptth_cc_tunnel *head, *tail;
} ptth_cc_deadlines;
typedef struct ptth_cc_chunk ptth_cc_chunk;

struct ptth_cc_tunnel {
    ptth_cc_watch watch; /* first member: kind PTTH_CC_WATCH_TUNNEL */
    ptth_cc_mux *mux;
    uint32_t id;
    int fd;             /* local stream socket, owned by the mux; -1 when closed */
    void *user;         /* the owner's per-tunnel data */
    long long deadline; /* ptth_now_ms() limit while queued for one (OPENING, CLOSING), else 0 */
    uint64_t bytes_in;  /* DATA bytes received from the channel */
    uint64_t bytes_out; /* DATA bytes sent to the channel */
    /* the rest is the mux's own state */
    ptth_cc_tunnel_state state;
    ptth_cc_inbound in;
    bool local_eof;  /* read 0 from fd: FIN sent */
    bool aborted;    /* local socket broke (agent: ABORT sent) or ABORT received */
    uint32_t events; /* registered epoll mask, 0 = not registered */
    uint32_t send_credit;
    uint32_t recv_held;    /* DATA received and not credited yet */
    uint32_t credit_ready; /* of those, written to fd: credit to return */
    ptth_cc_chunk *in_head, *in_tail;
    ptth_cc_tunnel *hnext;       /* id table chain */
    ptth_cc_tunnel *prev, *next;       /* all tunnels of the mux; graveyard once dead */
    ptth_cc_tunnel *dl_prev, *dl_next; /* the deadline queue of its state */
};

typedef struct ptth_cc_mux_hooks {
    /* Agent: an OPEN arrived for t (fd -1). Start connecting the target: set
     * t->fd to a nonblocking socket (the mux polls it for EPOLLOUT while
     * t->opening) and return 0; or return -errno with a reason: OPEN_FAIL is
     * sent and t is dropped (on_end is not called). */
    int (*on_open)(void *ctx, ptth_cc_tunnel *t, const char *client, char *reason, size_t len);
    /* Agent: t->fd became writable while connecting. Return 0 when connected
     * (OPEN_OK is sent), -EINPROGRESS after swapping t->fd to another attempt
     * (the mux re-registers it), or -errno with a reason (OPEN_FAIL). */
    int (*on_connect)(void *ctx, ptth_cc_tunnel *t, char *reason, size_t len);
    /* Host: the answer to OPEN: ok, or the agent's reason. */
    void (*on_open_result)(void *ctx, ptth_cc_tunnel *t, bool ok, const char *reason);
    /* Host: the agent reports the target connection broke (before the mux
     * closes t->fd). */
    void (*on_abort)(void *ctx, ptth_cc_tunnel *t, const char *reason);
    /* Any side: t ends now (fd still open, closed by the mux right after).
     * reason: "close" (CLOSE sent/received), "open_failed", or why the
     * channel went down. Not called for tunnels dropped by on_open. */
    void (*on_end)(void *ctx, ptth_cc_tunnel *t, const char *reason);
} ptth_cc_mux_hooks;

typedef struct ptth_cc_mux_config {
    ptth_cc_side side;
    uint32_t max_msg;         /* largest message this side accepts (PTTH_CC_MSG_DEFAULT_MAX) */
    uint32_t window;          /* DATA messages per tunnel this side holds (PTTH_CC_DEFAULT_WINDOW) */
    uint32_t max_clients;     /* agent: announced in HELLO */
    uint32_t open_timeout_ms; /* deadline of an opening tunnel (0: none) */
} ptth_cc_mux_config;

struct ptth_cc_mux {
    ptth_cc_watch watch; /* first member: kind PTTH_CC_WATCH_CHANNEL */
    ptth_cc_mux_config cfg;
    const ptth_cc_mux_hooks *hooks;
    void *ctx;
    int epfd;
    ptth_cc_conn *conn;
    char peer[64];    /* for logs */
    const char *dead; /* why the channel is down; NULL while up */
    char dead_buf[256];
    bool hello_seen;
    ptth_cc_hello peer_hello;
    size_t send_max; /* min(own, peer max_msg) */
    uint32_t ch_events;
    /* outgoing messages waiting for the carrier */
    struct ptth_cc_outmsg *out_head, *out_tail;
    size_t out_count;
    bool out_blocked;
    /* tunnels */
    ptth_cc_tunnel **buckets;
    size_t nbuckets;
    size_t ntunnels; /* live (not dead) tunnels */
    ptth_cc_deadlines opening; /* OPENING tunnels with an open timeout */
    ptth_cc_deadlines closing; /* CLOSING tunnels (the linger) */
    ptth_cc_tunnel *list;
    ptth_cc_tunnel *graveyard;
    uint32_t next_id;
    uint8_t *rbuf; /* one received message */
    uint8_t *sbuf; /* one message being built */
};

/* Creates a mux over conn (taken: closed by ptth_cc_mux_free), registers the
 * channel fd in epfd and queues this side's HELLO. NULL on out of memory or
 * when epoll refuses the fd (conn is then closed). */
ptth_cc_mux *ptth_cc_mux_new(const ptth_cc_mux_config *cfg, const ptth_cc_mux_hooks *hooks, void *ctx, int epfd, ptth_cc_conn *conn,
                             const char *peer);

/* Ends every tunnel (on_end with the mux's dead reason, or "shutdown"),
 * closes the channel and frees everything. */
void ptth_cc_mux_free(ptth_cc_mux *m);

/* Passes one epoll event whose data.ptr is the channel's or a tunnel's watch. */
void ptth_cc_mux_handle(ptth_cc_mux *m, ptth_cc_watch *w, uint32_t events);

/* Call once after each batch of events (and after timers): frees tunnels that
 * ended. */
void ptth_cc_mux_after_events(ptth_cc_mux *m);

/* Ends opening tunnels whose deadline passed (host: on_open_result(false),
 * agent: OPEN_FAIL). Returns the next deadline (0 = none). */
long long ptth_cc_mux_expire(ptth_cc_mux *m, long long now);

/* Host: opens a tunnel over the channel with the local socket fd (taken,
 * nonblocking) and the client's address text (may be NULL). Sends OPEN.
 * NULL when out of memory (fd closed) or the mux is dead (fd closed). */
ptth_cc_tunnel *ptth_cc_mux_open_tunnel(ptth_cc_mux *m, int fd, const char *client, void *user);

/* Host: the tunnel is over. Sends what the local socket still holds, FIN,
 * then CLOSE (see above), and ends it (on_end "close"); the caller must not
 * use t afterwards (set t->user to NULL first if it frees what user points
 * at: on_end may come later). */
void ptth_cc_mux_close_tunnel(ptth_cc_mux *m, ptth_cc_tunnel *t, const char *reason);

/* Marks the channel down with a reason (the owner then frees the mux). */
void ptth_cc_mux_fail(ptth_cc_mux *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* True once the channel is down (peer gone, protocol error, ...). */
static inline bool
ptth_cc_mux_dead(const ptth_cc_mux *m)
{
    return m->dead != NULL;
}

#endif
