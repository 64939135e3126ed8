/*
 * tunnel.h: one tunnel between a client (ptth_proxy) and a server
 * (ptth_server), from the client's connect to the end (SPEC §4), and the
 * matching of connects with listens. Part of the core (core.h): no h2o;
 * every answer, frame and timer goes through core->io.
 *
 * States, changed only by ptth_tunnel_set_state() (tunnel.c), which asserts that the
 * change is one of these and that the invariants of the new state hold:
 *
 *   AWAIT_LISTEN --match--> AWAIT_ACCEPT --accept--> OPEN --broke--> BROKEN
 *        |                        |                 | ^                 |
 *        |                        |   (raw) a resume| |both plain       |(raw) end of
 *        |                        |            came | |resumes          |the round
 *        |                        |                 v |                 v
 *        |                        |             SUSPENDED <-------------+
 *        |                        |                 ^  |
 *        |                        |   (resumable) leg  |both upgrade resumes
 *        |                        |   broke, a resume  v
 *        |                        \--accept (both upgrade)--> JOINED
 *        |                                          ^
 *        +--- made from a resume token (no connect) +  (to SUSPENDED)
 *        |
 *        +------------------------+------ any of them --end--> ENDING (then freed)
 *
 *   (a resume with a valid token for an id the relay does not know is a
 *   tunnel from before a restart: fresh from the constructor it goes
 *   straight to SUSPENDED)
 *
 *   AWAIT_LISTEN  the connect is held and queued at its server for a listen;
 *                 connect_timer runs.
 *   AWAIT_ACCEPT  a listen got the connection id; the connect waits for the
 *                 server's accept or reject; connect_timer runs.
 *   OPEN          the chunked path: two framed streams, `down` is the connect
 *                 response carrying what the server sends, `up` the accept
 *                 response carrying what the client sends. No connect held.
 *                 A resumable one is `raw` (tunnel_resume.c): chunk
 *                 bodies are the terminators' own frames, written verbatim,
 *                 and chunks carry the tunnel's PTTH-Epoch.
 *   JOINED        the upgraded path (SPEC §9.1, joint.h): both requests got
 *                 101 and the joint moves the bytes; no streams, no chunks.
 *   SUSPENDED     a resumable tunnel (SPEC §9.3, tunnel_resume.c) lost a leg
 *                 or a stream: no joint, no streams, no chunks held;
 *                 grace_timer (--resume-grace) runs; up to one held resume
 *                 per side (resume[]). When both are held they get 101 and
 *                 a new joint (JOINED again), or, on the chunked path (raw),
 *                 200 framed streams of the next epoch (OPEN again); same
 *                 id, the byte counts go on. Grace over: reason resume_timeout.
 *   BROKEN        a framed stream broke: the end (reason rst; a raw tunnel is
 *                 suspended instead) waits for the
 *                 end of this loop round (end_timer), because h2o tells while
 *                 it tears the connection down and the other requests of that
 *                 connection must be disposed of before anything is answered.
 *                 The other direction goes on until then.
 *   ENDING        ptth_tunnel_end() runs: RST (unless both FINs went through),
 *                 both streams finished, held requests answered, the
 *                 tunnel_end line logged, the observer told; then freed.
 *
 * Each direction (ptth_dir) has a reorder window (seqwin.h) of chunk
 * requests and a FIN state of its own: NONE, HELD (a FIN chunk arrived at
 * fin_seq), WRITTEN (the FIN frame went into the stream), DONE (the stream
 * took it). A chunk is written into the other side's stream when its turn
 * comes and the stream is idle; it is answered 204 when the stream reports
 * that h2o took the bytes (ptth_tunnel_on_writable). So the relay holds at
 * most the window of chunks per direction, and a slow reader slows the
 * sender down. Both directions DONE ends the tunnel with reason fin.
 *
 * When only one of connect and accept asked for the upgraded path (or
 * --upgrade is off), that side gets the framed stream with `PTTH-Upgrade:
 * peer` (or `off`) saying why.
 *
 * Tunnels are malloc'd, owned by core->tunnels (by id).
 */
#ifndef PTTH_RELAY_TUNNEL_H
#define PTTH_RELAY_TUNNEL_H

#include <stdbool.h>
#include <stdint.h>

#include "addr.h"
#include "auth.h"
#include "core.h"
#include "instance.h"
#include "keys.h"
#include "names.h"
#include "registry.h"
#include "seqwin.h"

typedef enum ptth_tunnel_state {
    PTTH_TUNNEL_AWAIT_LISTEN = 0,
    PTTH_TUNNEL_AWAIT_ACCEPT,
    PTTH_TUNNEL_OPEN,
    PTTH_TUNNEL_JOINED,
    PTTH_TUNNEL_BROKEN,
    PTTH_TUNNEL_SUSPENDED,
    PTTH_TUNNEL_ENDING,
    PTTH_TUNNEL__STATES
} ptth_tunnel_state;

/* true when a tunnel may go from `from` to `to` (the diagram above). */
bool ptth_tunnel_transition_ok(ptth_tunnel_state from, ptth_tunnel_state to);
const char *ptth_tunnel_state_name(ptth_tunnel_state s);

/* What the operator's views show (SPEC §4 status): await_listen,
 * await_accept, open (OPEN, JOINED, BROKEN and ENDING all count as open),
 * suspended. */
#define PTTH_TUNNEL_PHASES 4
unsigned ptth_tunnel_phase(const ptth_tunnel *t);
const char *ptth_tunnel_phase_name(unsigned phase);

/* What a tunnel carries (the connect's PTTH-Proto, docs/protocol.md): a
 * byte stream, or a UDP session (datagrams framed by the terminators). The
 * relay treats both alike; it tells the server on the listen answer and
 * logs it (tunnel_end proto=). */
typedef enum ptth_tunnel_proto {
    PTTH_PROTO_TCP = 0,
    PTTH_PROTO_UDP,
} ptth_tunnel_proto;

/* "tcp", "udp" */
const char *ptth_tunnel_proto_name(ptth_tunnel_proto p);

typedef enum ptth_fin_state {
    PTTH_FIN_NONE = 0,
    PTTH_FIN_HELD,    /* a FIN chunk arrived: fin_seq is valid */
    PTTH_FIN_WRITTEN, /* the FIN frame went into the stream */
    PTTH_FIN_DONE,    /* ... and the stream took it */
} ptth_fin_state;

typedef struct ptth_chunk ptth_chunk;

/* One direction of the byte flow. */
typedef struct ptth_dir {
    ptth_seqwin win;
    ptth_out *out;                        /* the stream these bytes go to; NULL before OPEN or once it ended */
    ptth_chunk *acking[PTTH_SEQWIN_SIZE]; /* written into out, answered at its next on_writable */
    size_t nacking;
    ptth_fin_state fin;
    uint64_t fin_seq;
    uint64_t bytes;
} ptth_dir;

/* The terminator instance (instance.h) that made one side of a tunnel: the
 * PTTH-Instance of its connect (client) or accept (server), or of its
 * latest resume. While the tunnel is resumable the side is linked in the
 * slot's list (instances.h). */
typedef struct ptth_tunnel_side_instance {
    ptth_instance id;            /* id.slot "": the request carried none */
    struct ptth_inst_slot *slot; /* NULL: not linked */
    ptth_list link;              /* in slot->sides */
} ptth_tunnel_side_instance;

struct ptth_tunnel {
    ptth_core *core;
    ptth_srv *srv;
    char id[PTTH_ID_LEN + 1];
    char server[PTTH_NAME_MAX + 1];
    char port[PTTH_NAME_MAX + 1];
    char client[PTTH_NAME_MAX + 1];
    char addr[PTTH_ADDR_STRLEN];
    ptth_tunnel_state state;
    ptth_held *connect; /* the client's connect until it is answered (AWAIT_*) */
    ptth_list wait_link; /* in srv->waiting while AWAIT_LISTEN and no listen came */
    ptth_dir up;         /* client -> server: upstream chunks, written into the accept stream */
    ptth_dir down;       /* server -> client: downstream chunks, written into the connect stream */
    ptth_timer connect_timer; /* --connect-timeout, AWAIT_LISTEN and AWAIT_ACCEPT */
    ptth_timer idle_timer;    /* --idle-timeout, OPEN and JOINED */
    ptth_timer end_timer;     /* BROKEN: the end at the end of this loop round */
    const char *broken_text;  /* BROKEN: which stream broke */
    long long started_ms;
    bool connect_wants_upgrade; /* the connect asked for the upgraded path */
    ptth_tunnel_proto proto;
    ptth_join *joint;           /* JOINED */
    bool connect_wants_resume;  /* the connect asked for PTTH-Resumable */
    bool resumable;             /* tokens were given (both asked, --resume-grace > 0): SUSPENDED instead of rst */
    bool upgraded;              /* joined at least once: path=upgrade */
    ptth_timer grace_timer;     /* --resume-grace, SUSPENDED */
    long long suspended_ms;     /* when it was suspended (gap_ms) */
    struct ptth_resume_hold *resume[2]; /* SUSPENDED: the held resume of the client [0] and the server [1] side */
    ptth_tunnel_side_instance inst[2];  /* the client [0] and the server [1] side's instance */
    bool raw;                   /* resumable on the chunked path: chunk bodies are end-to-end frames, written verbatim */
    uint64_t epoch;             /* raw: resumes so far; a chunk of another epoch is 409 */
};

/* What a connect or accept asked for (its upgrade request's headers). */
#define PTTH_ASK_UPGRADE 1u /* Connection: Upgrade, Upgrade: ptth-tunnel/1 */
#define PTTH_ASK_RESUME 2u  /* PTTH-Resumable: 1 (on either path) */

/* A resume request (docs/protocol.md), its token already verified by the
 * caller against exactly these fields. */
typedef struct ptth_resume_in {
    bool server_side;
    const char *port; /* a valid name (names.h) */
    size_t port_len;
    ptth_tunnel_proto proto;
    const char *client;      /* the client's name (NUL-terminated) */
    const char *addr;        /* the request's client address */
    uint64_t received, sent; /* PTTH-Received, PTTH-Sent */
    bool upgrade;            /* an upgrade request (the upgraded path), else a plain POST (the chunked path) */
    const char *bad_request; /* non-NULL: answered 400 with it once the tunnel checks passed */
    const ptth_instance *instance; /* the request's PTTH-Instance, or NULL: recorded for that side when held */
} ptth_resume_in;

/* A chunk request's fields (docs/protocol.md): the header values as they
 * came (NULL when absent) and the body's size. */
typedef struct ptth_chunk_in {
    const char *seq;
    size_t seq_len;
    const char *fin;
    size_t fin_len;
    size_t len;
    const char *epoch; /* PTTH-Epoch (raw tunnels; absent: 0) */
    size_t epoch_len;
} ptth_chunk_in;

/* POST .../listen of an authorized server: creates the server's entry,
 * takes PTTH-Ports (ports may be NULL), then gives the listen to the oldest
 * waiting connect or holds it. Answers 500 (out of memory), 400 (bad or
 * missing PTTH-Ports), 429 (--max-listens-per-server, with Retry-After)
 * itself. */
void ptth_tunnel_listen(ptth_core *core, ptth_rq *rq, const char *server, size_t server_len, const char *ports, size_t ports_len);

/* POST .../connect of an authorized client to a configured server: 503
 * (offline, Retry-After), 404 (port not offered), 429 (--max-connections,
 * then --max-connections-per-server, Retry-After), 500 (no tunnel could be
 * made); otherwise the tunnel exists, holds rq, and is given to the oldest
 * listen or queued for the next one. NULL when rq was answered. */
ptth_tunnel *ptth_tunnel_connect(ptth_core *core, ptth_rq *rq, const char *server, size_t server_len, const char *port,
                                 size_t port_len, const char *client, const char *addr, unsigned asks, ptth_tunnel_proto proto);

ptth_tunnel *ptth_tunnel_find(ptth_core *core, const char *id, size_t len);

/* The server accepts (asks: PTTH_ASK_*). Answers rq itself: 409 unless
 * AWAIT_ACCEPT, 404 when the client's connection closed meanwhile (then the
 * tunnel ends), 500 without memory for the joint; else OPEN or JOINED. When
 * both asked for resume and --resume-grace > 0, both answers (101s, or the
 * 200 framed streams of a raw tunnel) carry PTTH-Resume (each side's
 * token) and PTTH-Resume-Grace. */
void ptth_tunnel_on_accept(ptth_tunnel *t, ptth_rq *rq, unsigned asks);

/* POST .../conns/{id}/resume of an authorized side whose token is valid,
 * with resumption on (tunnel_resume.c). Answers rq itself: 404 when the
 * tunnel ended within the grace, 409 when it is not resumable or not open
 * yet (or other fields than its own, or the other data path: an upgrade
 * resume of a raw tunnel, a plain one of an upgraded tunnel), 400
 * (in->bad_request), 429 when an unknown id would exceed the limits.
 * Otherwise rq is held: a JOINED tunnel is suspended (its joint closed
 * with a reset), an OPEN raw one too (its streams aborted), an unknown one
 * created SUSPENDED on the path of the resume; a held resume of the same
 * side is answered 409 superseded; with both sides held both get 101 and
 * the tunnel is JOINED again, or 200 framed streams and OPEN again. */
void ptth_tunnel_resume(ptth_core *core, ptth_rq *rq, const char *server, size_t server_len, const char *id,
                        const ptth_resume_in *in);

/* true when id ended within --resume-grace (as a resumable tunnel). */
bool ptth_tunnel_ended_recently(ptth_core *core, const char *id);

/* Turns resumption on for core's tunnels (tunnel_resume.c): the secret of
 * the tokens (kept by the caller while core lives) and the events table
 * through which tunnel.c tells the resume half (tunnel_internal.h). Once,
 * after ptth_core_init(); without it no tunnel is resumable. */
void ptth_tunnel_resume_enable(ptth_core *core, const struct ptth_resume_secret *secret);

/* The server rejects: 409 unless AWAIT_ACCEPT; else 204, the connect gets
 * 502 with the reason and the tunnel ends with reason backend. */
void ptth_tunnel_on_reject(ptth_tunnel *t, ptth_rq *rq, const char *reason, size_t reason_len);

/* A chunk for one direction (upstream: from_client). Answers rq itself, now
 * (400, 409, 413, or 204 for a retry of a delivered one) or once the bytes
 * were handed over (204), or 404 when the tunnel ends first. */
void ptth_tunnel_on_chunk(ptth_tunnel *t, ptth_rq *rq, bool from_client, const ptth_chunk_in *in);

/* Events of the framed streams (fstream.h) and of the joint (joint.h). */
void ptth_tunnel_on_writable(ptth_tunnel *t, ptth_out *o);
void ptth_tunnel_on_broken(ptth_tunnel *t, ptth_out *o);
void ptth_tunnel_on_moved(ptth_tunnel *t, bool from_client, size_t n);
/* saw_eof: a leg had ended cleanly (end of stream) before the joint broke */
void ptth_tunnel_on_joint_end(ptth_tunnel *t, bool clean, bool saw_eof, const char *detail);

/* Ends the tunnel: RST frames with rst_text to both streams (unless reason
 * is fin), the held connect answered (504 timeout, 503 shutdown, else 502),
 * held chunks 404, logs event=tunnel_end, tells the observer and frees t.
 * Nothing when it is already ending. */
void ptth_tunnel_end(ptth_tunnel *t, ptth_end_reason reason, const char *rst_text);

/* Shutdown: ends every tunnel (reason shutdown) and frees every server. */
void ptth_tunnel_end_all(ptth_core *core);

/* Reload: the tunnels of a server or client whose key was removed or
 * changed between old and next end (rst, "server key revoked" / "client key
 * revoked"); such a server's listens get 401, and a removed server without
 * tunnels is forgotten. */
void ptth_tunnel_apply_auth(ptth_core *core, const ptth_auth *old, const ptth_auth *next);

#endif
