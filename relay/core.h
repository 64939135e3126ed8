/*
 * core.h: the relay's tunnel core without h2o (tunnel.c, registry.c), and
 * the one interface through which it acts on the HTTP side.
 *
 * The core decides which request gets which answer and when, what goes into
 * which framed stream and which timer runs; it does no I/O itself. Every
 * effect goes through a ptth_core_io table: core_h2o.c implements it over
 * h2o in the relay, the unit tests (tests/unit/relay/test_tunnel.c) with a
 * recording fake. Events of the HTTP side come back as calls of tunnel.h
 * and registry.h.
 *
 * What the HTTP side hands the core is opaque to it:
 *   ptth_rq    a request (an h2o_req_t in the relay)
 *   ptth_out   a framed stream the core writes frames into (a ptth_fstream)
 *   ptth_join  the upgraded path of one tunnel (a ptth_joint)
 *
 * Held requests: a request the core answers later is held (io->hold). The
 * core's record of it starts with a ptth_held and lives in memory the io
 * gives (the request's pool in the relay), so the rule of reply.h applies:
 * the record may be used only while held->rq != NULL, which stops when the
 * core answers or releases it, or when the request goes away first (then
 * the io clears rq and calls on_gone once, which must drop every reference).
 *
 * Timers: a ptth_timer is armed with one of the relay's fixed periods
 * (ptth_timer_kind); the io keeps its own entry in `store`, which the core
 * never reads, and calls ptth_timer_fire() when the period ran out.
 *
 * One thread, no locks (relay.h).
 */
#ifndef PTTH_RELAY_CORE_H
#define PTTH_RELAY_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "table.h"

/* Retry-After (seconds) of the relay's refusals: 503 when the server is
 * offline or the relay shuts down, 429 when a limit was reached
 * (docs/protocol.md). */
#define PTTH_RETRY_OFFLINE 5
#define PTTH_RETRY_LIMIT 1

/* Why a tunnel ended (SPEC §4 tunnel_end reason). */
typedef enum ptth_end_reason {
    PTTH_END_FIN = 0,
    PTTH_END_RST,
    PTTH_END_IDLE,
    PTTH_END_BACKEND,
    PTTH_END_TIMEOUT,
    PTTH_END_SHUTDOWN,
    PTTH_END_RESUME_TIMEOUT, /* suspended past --resume-grace (SPEC §9.3) */
    PTTH_END_PEER_RESTARTED, /* suspended, and the lost side's terminator came back as a new instance (instances.h) */
    PTTH_END__COUNT
} ptth_end_reason;

const char *ptth_end_reason_name(ptth_end_reason r);

/* ---- an intrusive doubly linked list (FIFO queues of the core) ---------- */

typedef struct ptth_list {
    struct ptth_list *prev, *next; /* NULL, NULL: not linked */
} ptth_list;

#define PTTH_CONTAINER_OF(ptr, type, member) ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

static inline void
ptth_list_init(ptth_list *anchor)
{
    anchor->prev = anchor->next = anchor;
}

static inline bool
ptth_list_empty(const ptth_list *anchor)
{
    return anchor->next == anchor;
}

static inline bool
ptth_list_linked(const ptth_list *node)
{
    return node->next != NULL;
}

/* Appends node at the tail (the newest). */
static inline void
ptth_list_push(ptth_list *anchor, ptth_list *node)
{
    node->prev = anchor->prev;
    node->next = anchor;
    anchor->prev->next = node;
    anchor->prev = node;
}

static inline void
ptth_list_unlink(ptth_list *node)
{
    node->prev->next = node->next;
    node->next->prev = node->prev;
    node->prev = node->next = NULL;
}

/* ---- what the HTTP side hands the core ----------------------------------- */

typedef struct ptth_rq ptth_rq;
typedef struct ptth_out ptth_out;
typedef struct ptth_join ptth_join;
typedef struct ptth_tunnel ptth_tunnel;

typedef struct ptth_held ptth_held;
typedef void (*ptth_held_cb)(ptth_held *h);

struct ptth_held {
    ptth_rq *rq;          /* NULL once answered, released or gone */
    ptth_held_cb on_gone; /* the request went away unanswered (may be NULL) */
    void *owner;
};

/* The relay's timeout periods. */
typedef enum ptth_timer_kind {
    PTTH_TIMER_CONNECT = 0, /* --connect-timeout */
    PTTH_TIMER_IDLE,        /* --idle-timeout */
    PTTH_TIMER_LISTEN,      /* --listen-timeout: held listens, the online window */
    PTTH_TIMER_NOW,         /* zero: at the end of this loop round */
    PTTH_TIMER_RESUME,      /* --resume-grace: a suspended tunnel */
    PTTH_TIMER__COUNT
} ptth_timer_kind;

typedef struct ptth_timer ptth_timer;
typedef void (*ptth_timer_cb)(ptth_timer *t);

struct ptth_timer {
    union {
        void *p[6];
        uint64_t u[3];
    } store; /* first: the io's entry (an h2o_timeout_entry_t in the relay) */
    ptth_timer_cb cb;
    bool armed;
    ptth_timer_kind kind; /* valid while armed */
};

typedef struct ptth_core_io {
    /* Holds rq: returns size zeroed bytes (size >= sizeof(ptth_held)) that
     * start with a ptth_held {rq, on_gone, owner}, freed by the io after the
     * request ended. The request's peer is watched: when it goes away, rq is
     * cleared and on_gone runs (reply.h). NULL never (h2o's pools abort on
     * out of memory). */
    ptth_held *(*hold)(void *ctx, ptth_rq *rq, size_t size, ptth_held_cb on_gone, void *owner);
    /* Detaches h from its request (no on_gone from now on) and returns it. */
    ptth_rq *(*release)(void *ctx, ptth_held *h);
    /* Adds a response header (name lowercase; value copied). */
    void (*header)(void *ctx, ptth_rq *rq, const char *name, const char *value, size_t len);
    /* Answers rq with status, Retry-After when retry_after != 0, and a text
     * body (NULL: none). */
    void (*reply)(void *ctx, ptth_rq *rq, int status, unsigned retry_after, const char *body);
    /* true when rq's HTTP/1 peer closed its connection (reply.h). */
    bool (*peer_closed)(void *ctx, ptth_rq *rq);

    void (*timer_arm)(void *ctx, ptth_timer *t, ptth_timer_kind kind);
    void (*timer_disarm)(void *ctx, ptth_timer *t);

    /* Framed streams (fstream.h): rq becomes the 200 response whose body the
     * stream is; its events come back as ptth_tunnel_on_writable/_broken. */
    ptth_out *(*out_open)(void *ctx, ptth_rq *rq, ptth_tunnel *t);
    /* One frame; 0, -EPIPE, -ENOMEM. */
    int (*out_write)(void *ctx, ptth_out *o, uint8_t type, const void *payload, size_t len);
    /* A DATA frame of the len bytes of chunk's body, or (raw) the body
     * itself, which is frames already. 0, -EPIPE, -ENOMEM. */
    int (*out_write_chunk)(void *ctx, ptth_out *o, ptth_rq *chunk, size_t len, bool raw);
    void (*out_flush)(void *ctx, ptth_out *o);
    bool (*out_idle)(void *ctx, ptth_out *o);
    /* Ends the response after what was written; no more events. */
    void (*out_finish)(void *ctx, ptth_out *o);
    /* Ends the response abnormally (HTTP/2: RST_STREAM; HTTP/1.1: the
     * connection closed without the last chunk), so that its reader sees
     * a broken stream, not an end; no more events. */
    void (*out_abort)(void *ctx, ptth_out *o);

    /* The upgraded path (joint.h): NULL when out of memory. */
    ptth_join *(*join_new)(void *ctx, ptth_tunnel *t);
    /* Both requests get 101; the bytes move once both legs are there; the
     * events come back as ptth_tunnel_on_moved/_on_joint_end. */
    void (*join_start)(void *ctx, ptth_join *j, ptth_rq *connect, ptth_rq *accept);
    /* Closes both legs (reset: with a TCP reset). No more events. */
    void (*join_close)(void *ctx, ptth_join *j, bool reset);
} ptth_core_io;

/* Why a resume request was refused (the admin pages count them). */
typedef enum ptth_resume_refusal {
    PTTH_REFUSED_OFF = 0,     /* 404 --resume-grace 0 */
    PTTH_REFUSED_BAD_PROOF,   /* 403 the token does not match */
    PTTH_REFUSED_ENDED,       /* 404 the tunnel ended */
    PTTH_REFUSED_NOT_RESUMABLE, /* 409 not upgraded, not resumable or not open yet */
    PTTH_REFUSED_SUPERSEDED,  /* 409 a newer resume of the same side came */
    PTTH_REFUSED_TIMED_OUT,   /* 404 held past the grace */
    PTTH_REFUSED_LIMIT,       /* 429 --max-connections(-per-server) */
    PTTH_REFUSED_BAD_REQUEST, /* 400 */
    PTTH_REFUSED__COUNT
} ptth_resume_refusal;

const char *ptth_resume_refusal_name(ptth_resume_refusal r);

/* Totals since the start (the admin pages). */
typedef struct ptth_core_stats {
    uint64_t tunnels_opened;
    uint64_t tunnels_ended[PTTH_END__COUNT];
    uint64_t bytes_up, bytes_down;
    uint64_t tunnels_suspended; /* times a tunnel was suspended */
    uint64_t tunnels_resumed;
    uint64_t resume_refused[PTTH_REFUSED__COUNT];
    uint64_t replayed_up, replayed_down; /* positions sent again after resumes (tunnel_resumed) */
} ptth_core_stats;

/* Ids of resumable tunnels that ended less than --resume-grace ago, so that
 * a resume for one is 404 and does not bring it back (tunnel_resume.c). A
 * ring of PTTH_ENDED_MAX: when full the oldest is forgotten early. */
#define PTTH_ENDED_MAX 4096
typedef struct ptth_ended {
    char id[22];
    long long ended_ms;
    ptth_end_reason reason; /* a late resume of a peer_restarted end learns it */
} ptth_ended;

/* Told of every tunnel end, before the tunnel is freed (admin.c keeps its
 * totals and recent ends this way). detail may be NULL. */
typedef void (*ptth_tunnel_end_observer)(void *data, const ptth_tunnel *t, ptth_end_reason reason, const char *detail);

typedef struct ptth_core {
    const ptth_relay_config *cfg; /* the relay's; reload changes the limits */
    const ptth_core_io *io;
    void *io_ctx;
    ptth_table servers; /* name -> ptth_srv */
    ptth_table tunnels; /* id -> ptth_tunnel */
    size_t ntunnels;
    ptth_core_stats stats;
    ptth_tunnel_end_observer on_end; /* NULL: nobody watches */
    void *on_end_data;
    const struct ptth_resume_secret *resume_secret; /* resume.h; NULL: resumption off */
    /* tunnel_resume.c's events table (tunnel_internal.h), set with the
     * secret by ptth_tunnel_resume_enable(); NULL: no tunnel is resumable */
    const struct ptth_tunnel_resume_ops *resume_ops;
    ptth_ended *ended; /* PTTH_ENDED_MAX, malloc'd at the first resumable end */
    size_t ended_next;   /* where the next end is written */
    size_t nsuspended;   /* tunnels SUSPENDED now */
    /* instances.c: "S|C name slot" -> the tunnel sides of that terminator
     * slot (struct ptth_inst_slot, malloc'd, freed when it has none) */
    ptth_table instance_slots;
} ptth_core;

void ptth_core_init(ptth_core *core, const ptth_relay_config *cfg, const ptth_core_io *io, void *io_ctx);
/* Frees the tables (end the tunnels and free the servers first). */
void ptth_core_dispose(ptth_core *core);

/* Holds rq (see ptth_core_io.hold). */
ptth_held *ptth_core_hold(ptth_core *core, ptth_rq *rq, size_t size, ptth_held_cb on_gone, void *owner);
/* Detaches and returns h's request; NULL when it was answered or gone. */
ptth_rq *ptth_core_release(ptth_core *core, ptth_held *h);
/* Answers a held request (nothing when it is gone). */
void ptth_core_answer(ptth_core *core, ptth_held *h, int status, unsigned retry_after, const char *body);
void ptth_core_reply(ptth_core *core, ptth_rq *rq, int status, unsigned retry_after, const char *body);
void ptth_core_header(ptth_core *core, ptth_rq *rq, const char *name, const char *value);
/* PTTH-Max-Chunk: the largest chunk body the relay takes (docs/protocol.md). */
void ptth_core_max_chunk(ptth_core *core, ptth_rq *rq);

void ptth_timer_init(ptth_timer *t, ptth_timer_cb cb);
/* (Re)starts t with the period of kind. */
void ptth_timer_arm(ptth_core *core, ptth_timer *t, ptth_timer_kind kind);
/* Stops t when armed. */
void ptth_timer_disarm(ptth_core *core, ptth_timer *t);
/* The io's call when t's period ran out. */
void ptth_timer_fire(ptth_timer *t);

#endif
