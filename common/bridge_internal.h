/*
 * bridge_internal.h: the parts of a bridge (bridge.h) that its layers
 * share; not for other modules. The layers, from the top down:
 *
 *   bridge.c         the bridge: its life and state, the end, the local end
 *                    (reads, the coalesced writes of `out`, the watches),
 *                    and the chunked path of SPEC §4
 *   bridge_leg.c     the relay side over a ptth_leg: the upgraded path of
 *                    SPEC §9.1, and the framed stream of a 2xx answer to an
 *                    upgrade request
 *   bridge_chunks_resume.c  a resumable tunnel on the chunked (and the
 *                    hybrid) path: its chunks carry end-to-end frames (raw),
 *                    the resume request is a plain POST whose 200 is the
 *                    new framed stream; the bridge_leg_ops of that path
 *   bridge_resume.c  the rules of a resumable tunnel on either path
 *                    (docs/protocol.md "Resumable tunnels"): the counts,
 *                    the ACKs, the replay, the resume requests
 *   bridge_buf.c     the pooled chunk buffers (bridge_buf.h), under all three
 *
 * The calls go one way, down: a layer calls those under it by name (the
 * declarations at the end of this file), and never one above it by name.
 * Where a lower layer must act on an upper one (fail the tunnel, let the
 * loop act, feed the framed stream's bytes to the decoder, reopen the
 * leg), it calls through a table of operations that the upper layer
 * fills, as h2_session.c reports to h2_client.c through h2_env_events:
 *   bridge_env      bridge.c's, for bridge_leg.c and bridge_resume.c
 *                   (ptth_bridge.env, set by ptth_bridge_new());
 *   bridge_leg_ops  how bridge_resume.c acts on what carries the tunnel
 *                   (b->rs.leg): bridge_leg.c's for a leg (given to
 *                   ptth_bridge_resume_init() by ptth_bridge_leg_init()),
 *                   bridge_chunks_resume.c's for the chunked and hybrid
 *                   paths (put there when such a tunnel becomes resumable).
 * So each layer can be read, and tested (tests/unit/term/test_bridge_resume.c),
 * with what is under it and the tables it is given. The state is one
 * struct (ptth_bridge, below) that all three see; its sections say which
 * layer keeps which fields.
 *
 * One tunnel has one relay path, chosen at start and changed at most once,
 * when the upgrade request falls back:
 *   PATH_CHUNKS  the framed stream is a ptth_req response, local bytes go up
 *                in chunk POSTs;
 *   PATH_HYBRID  the framed stream is the body of a 2xx answer on the leg
 *                (a proxy dropped Upgrade, or the other side is on chunks),
 *                local bytes go up in chunk POSTs;
 *   PATH_UPGRADE the leg was upgraded: both directions are frames on it.
 *
 * A tunnel on any path may be resumable (bridge_resume.c,
 * docs/protocol.md "Resumable tunnels"): its resume sub-state (bridge_resume_state)
 * says whether a leg or a stream carries it now; the main state stays ST_OPEN while it
 * resumes (the local end stays open, neither read nor written: what was
 * decoded and not delivered is dropped at the loss, the peer sends it again).
 */
#ifndef PTTH_BRIDGE_INTERNAL_H
#define PTTH_BRIDGE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api_path.h"
#include "bridge.h"
#include "data_path.h"
#include "frame.h"
#include "leg.h"
#include "resume_buf.h"

typedef enum bridge_path {
    PATH_CHUNKS = 0,
    PATH_HYBRID,
    PATH_UPGRADE,
} bridge_path;

/* relay -> local: how far the framed stream's end has come. */
typedef enum bridge_from_relay {
    FROM_RELAY_OPEN = 0,
    FROM_RELAY_FIN,  /* the FIN frame was decoded: what is left goes to the local end, then its write side is shut */
    FROM_RELAY_SHUT, /* the local end's write side is shut */
} bridge_from_relay;

/* local -> relay: how far the local end's end has come. */
typedef enum bridge_to_relay {
    TO_RELAY_OPEN = 0,
    TO_RELAY_EOF,  /* the local end read 0: our FIN (a chunk, or a frame on the leg) is on its way */
    TO_RELAY_DONE, /* the relay has it: the FIN chunk was answered 2xx, or the FIN frame was written */
} bridge_to_relay;

typedef enum bridge_state {
    ST_NEW,     /* created, stream not requested yet */
    ST_OPENING, /* framed-stream request sent, no 200 yet */
    ST_OPEN,    /* bridging */
    ST_CLOSING, /* local error: `close` POST in flight, the rest stopped */
    ST_ENDED,   /* on_end queued */
} bridge_state;

/* Resumable tunnels (bridge_resume.c). Changed only through
 * resume_set_state(), which asserts the transitions:
 *   RS_OFF -> RS_LIVE           the first 101 granted resumption
 *   RS_LIVE -> RS_WAITING       the leg was lost (failed, reset, or ended before done)
 *   RS_WAITING -> RS_ATTEMPT    a resume request went out on a new leg
 *   RS_ATTEMPT -> RS_WAITING    it was answered 409/429/5xx or not at all: try again
 *   RS_ATTEMPT -> RS_LIVE       101: the tunnel goes on (the replay first)
 * Every other end (refusal, resume_timeout, any failure) is the bridge's
 * ordinary failure, whatever the sub-state. */
typedef enum bridge_resume_state {
    RS_OFF = 0, /* not resumable: a lost leg ends the tunnel (as on every tunnel before resumption) */
    RS_LIVE,    /* resumable, and the leg carries it */
    RS_WAITING, /* the leg was lost; the next resume attempt waits for its timer */
    RS_ATTEMPT, /* a resume request is out on a new leg */
} bridge_resume_state;

struct chunk;

/* What bridge.c does for the layers under it (bridge_leg.c,
 * bridge_resume.c); filled by bridge.c, reached as b->env. */
typedef struct bridge_env {
    /* The chunked path: every chunk request cancelled, its buffer given
     * back, none in flight. */
    void (*release_chunks)(ptth_bridge *b);
    /* Posts chunk c (its body, fin_frame, data_len and fin set) as the next
     * PTTH-Seq. Not from inside libcurl. */
    void (*send_chunk)(ptth_bridge *b, struct chunk *c);
    /* Records the first failure (reason from fmt) and lets the loop act on
     * it: safe inside libcurl. tell_relay: the relay does not know yet,
     * send `close`. */
    void (*fail)(ptth_bridge *b, bool tell_relay, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
    /* Lets the loop look at the state (the end may have come). */
    void (*schedule)(ptth_bridge *b);
    /* Sets the local end's watches from the state. */
    void (*update_watches)(ptth_bridge *b);
    /* One read of the local end into a pooled buffer, at offset at, at most
     * room bytes: >0 bytes or 0 (end of stream) with *bufp set (the
     * caller's now); -EAGAIN nothing; another negative errno: the failure
     * is recorded. */
    ssize_t (*read_local_into)(ptth_bridge *b, size_t at, size_t room, uint8_t **bufp);
    /* The framed stream's bytes, from whichever path carries them:
     * decoded, and DATA queued for the local end (written now when
     * flush_now, else at the end of the round). len, or PTTH_REQ_PAUSE when
     * the local end is full (the same bytes are to be offered again once
     * ptth_bridge_leg_resume() or ptth_req_resume() is called). */
    size_t (*feed)(ptth_bridge *b, const uint8_t *p, size_t len, bool flush_now);
    /* The framed-stream request (connect/accept) answered 2xx with these
     * fields: the tunnel opens. false when that failed (recorded). */
    bool (*opened)(ptth_bridge *b, const char *conn, long max_chunk);
    /* The framed-stream request failed before the tunnel opened: status
     * (0: none), its Retry-After, and why. */
    void (*refused)(ptth_bridge *b, long status, long retry_after, const char *why);
    /* Starts the framed-stream request on the chunked path (the upgrade
     * request fell back). 0 or -errno. */
    int (*start_chunks)(ptth_bridge *b);
    /* A resumable tunnel lost its leg: the DATA decoded and not written to
     * the local end yet is dropped (the peer sends it again from our
     * `received`), and with it a FIN that was decoded but not passed on.
     * Returns the DATA bytes dropped. */
    size_t (*drop_undelivered)(ptth_bridge *b);
} bridge_env;

/* What bridge_leg.c does for bridge_resume.c; filled by bridge_leg.c,
 * reached as b->rs.leg. */
typedef struct bridge_leg_ops {
    /* The leg was lost: it is reset without an RST frame (the tunnel goes
     * on), frames not written are dropped (DATA is in the resume buffer). */
    void (*drop)(ptth_bridge *b);
    /* Opens a new leg for path with the extra header lines (a resume
     * request). 0 or -errno. */
    int (*reopen)(ptth_bridge *b, const char *path, const char *const *headers, long timeout_ms);
    /* The leg is to be read again (the local end drained, or we may send
     * nothing more and wait for the peer's ACKs). */
    void (*resume_reading)(ptth_bridge *b);
    /* The resume request got its 101 (or 200): heartbeats as after the
     * first one, and the replay goes out. */
    void (*resumed)(ptth_bridge *b, const ptth_leg_response *res);
    /* A resume attempt was refused or not answered: its request goes
     * (a normal close). */
    void (*close_attempt)(ptth_bridge *b);
    /* A connection carries the tunnel now (the leg, or the framed stream
     * or resume request of the chunked path): the sub-state's invariant. */
    bool (*carries)(const ptth_bridge *b);
} bridge_leg_ops;

struct bridge_resume {
    bridge_resume_state state;
    size_t capacity;                 /* --resume-buffer; 0: do not ask */
    char port[PTTH_REQ_FIELD_MAX];   /* PTTH-Port of the resume request */
    char proto[8];                   /* PTTH-Proto: tcp or udp */
    char client[PTTH_REQ_FIELD_MAX]; /* PTTH-Client (server side), "" on the client side */
    char token[PTTH_LEG_TOKEN_MAX];  /* PTTH-Resume of the last 101: a secret, never logged */
    long grace_ms;                   /* PTTH-Resume-Grace */
    ptth_resume_buf buf;             /* DATA sent and not acknowledged; buf.sent counts every DATA byte sent */
    uint64_t received;               /* positions delivered: DATA bytes written to the local end, +1 once the peer's FIN shut its write side */
    size_t undelivered;              /* DATA bytes decoded and not written yet (in `out`): at most `capacity`, our receive window */
    uint64_t peer_acked;             /* the peer's last ACK (or PTTH-Peer-Received) */
    size_t peer_window;              /* the peer's receive window (its last ACK; PTTH_RESUME_BUFFER_MIN before one came) */
    uint64_t ack_sent;               /* our last ACK (or what our resume told the peer) */
    bool ack_fin;                    /* the peer's FIN was decoded: ACK at once */
    bool ack_beat;                   /* a heartbeat found something unacknowledged: ACK */
    uint64_t replay_pos;             /* after a resume: DATA from here to buf.sent is written again */
    bool replay_fin;                 /* after a resume: our FIN is written again after that */
    long long lost_ms;               /* when the leg was lost */
    unsigned attempts;               /* resume requests since the loss */
    long delay_ms;                   /* the last backoff delay */
    ptth_timer timer;                /* the next attempt */
    unsigned resumes;                /* successful resumes of this tunnel */
    void (*on_resumed)(ptth_bridge *b, uint64_t replayed, void *data);
    const bridge_leg_ops *leg; /* bridge_leg.c's operations */
};

struct chunk {
    ptth_req req;
    ptth_bridge *b;
    uint8_t *buf;
    size_t len;
    uint64_t seq;
    bool fin;       /* PTTH-Fin: 1 (raw: the terminator is done, empty body) */
    bool fin_frame; /* raw: the body holds our end-to-end FIN frame */
    size_t data_len; /* raw: the DATA payload bytes in the body */
    int attempts;
    ptth_timer retry_timer;
    char seq_header[32];
    char epoch_header[40];
};

struct ptth_bridge {
    const bridge_env *env; /* bridge.c's operations, for the layers under it */
    ptth_loop *loop;
    ptth_relay_client *client;
    ptth_bridge_end_cb on_end;
    void (*on_established)(ptth_bridge *b, void *data);
    char stream_header[64];
    const char *stream_headers[3]; /* {stream_header, PTTH-Resumable, NULL}, the absent ones left out */
    void *data;
    char server[PTTH_REQ_FIELD_MAX];
    char chunk_kind[16];
    char local_name[16]; /* "backend" or "client": for reasons */
    size_t max_chunk;    /* size of the chunk buffers */
    size_t read_limit;   /* bytes per chunk: max_chunk, or less when the relay says so */
    char conn[PTTH_REQ_FIELD_MAX];
    bool conn_known;
    char chunk_path[PTTH_API_PATH_MAX];

    ptth_local_end local;
    bool local_closed;
    bool same_fd;
    ptth_watch rwatch, wwatch;

    bridge_state state;
    bool established; /* reached ST_OPEN */
    long long started_ms;

    /* relay -> local (bridge.c; the decoder is reset by bridge_resume.c after a resume) */
    ptth_req stream;
    ptth_frame_decoder dec;
    uint8_t *out; /* DATA not written yet: coalesced this round, or refused by a full local end */
    size_t out_off, out_len, out_cap;
    ptth_defer out_defer; /* writes `out` after the round's events */
    bool out_blocked;     /* the local end said -EAGAIN: wait for EPOLLOUT (the stream pauses) */
    bool out_broken;      /* a write to the local end failed */
    bool stream_paused;
    bridge_from_relay from_relay;
    bool stream_done;

    /* local -> relay (bridge.c: the chunks; to_relay also bridge_leg.c and bridge_resume.c) */
    struct chunk *chunks; /* PTTH_BRIDGE_WINDOW of them, made when the first chunk goes (most tunnels never send one) */
    unsigned in_flight;
    uint64_t next_seq;
    bridge_to_relay to_relay;

    /* the end (bridge.c; failed and reason set through env->fail) */
    ptth_req close_req;
    char close_header[240];
    ptth_timer close_timer;
    ptth_defer defer;
    bool failed;     /* a failure was recorded; reason holds it */
    bool tell_relay; /* the failure is ours: POST close */
    char reason[PTTH_REQ_REASON_MAX];
    bool clean;
    uint64_t bytes_to_relay, bytes_from_relay;

    /* the relay path (bridge_leg.c) */
    bridge_path path;
    ptth_data_path *data_path; /* the terminator's choice and what it learned */
    char stream_path[PTTH_API_PATH_MAX];
    ptth_leg leg;
    bool leg_open;
    bool leg_eof; /* the leg's stream (or 2xx body) ended */
    uint8_t *up;  /* PATH_UPGRADE: frames not written to the leg yet */
    size_t up_off, up_len;
    bool up_fin;     /* up holds our FIN frame */
    bool up_adopted; /* up's payload is in the resume buffer, which owns up now (ptth_resume_buf_adopt) */
    long heartbeat_ms, idle_ms;
    long long last_sent_ms, last_data_ms;
    long long last_rx_ms; /* bytes last came on the leg (or it was last not read): a silent leg is a dead one */
    ptth_timer beat_timer;

    struct bridge_resume rs; /* bridge_resume.c */

    /* resumable on the chunked or hybrid path (bridge_chunks_resume.c) */
    bool raw;               /* chunks carry end-to-end frames */
    uint64_t epoch;         /* PTTH-Epoch of the chunks: the relay's resumes so far */
    bool done_sent;         /* the PTTH-Fin chunk (we are done) was posted */
    const bridge_leg_ops *hybrid_leg; /* PATH_HYBRID: bridge_leg.c's operations, for the leg's read watch */
    char rq_hdr[8][160];    /* the resume request's header lines (a request does not copy them) */
    const char *rq_hdrs[9];
    ptth_timer attempt_timer; /* the resume request's answer is due */
};

/* ---- bridge_leg.c, for bridge.c ---- */

/* At ptth_bridge_new(), after b->env is set: the resume half's init, with
 * this layer's bridge_leg_ops. */
void ptth_bridge_leg_init(ptth_bridge *b, const ptth_bridge_config *cfg);
/* Starts the upgrade request. 0 or -errno (nothing started). */
int ptth_bridge_leg_start(ptth_bridge *b);
/* PATH_UPGRADE: local reading is wanted now / read the local end into frames. */
bool ptth_bridge_leg_reading_wanted(const ptth_bridge *b);
void ptth_bridge_leg_read_local(ptth_bridge *b);
/* The local end drained: read the leg again (PATH_HYBRID, PATH_UPGRADE). */
void ptth_bridge_leg_resume(ptth_bridge *b);
/* Bytes were delivered to the local end: the ACK that became due goes
 * out now unless a frame is being written (it follows that one). */
void ptth_bridge_leg_flush_ack(ptth_bridge *b);
/* PATH_UPGRADE: true once both FINs went through. */
bool ptth_bridge_leg_done(const ptth_bridge *b);
/* Ends the leg: after a failure with an RST frame first (best effort), then
 * a TCP reset; else a normal close. A no-op without a leg. Also stops
 * what resuming had going (bridge_resume.c). */
void ptth_bridge_leg_close(ptth_bridge *b, bool failed);

/* ---- bridge_chunks_resume.c, for bridge.c and bridge_leg.c ---- */

/* The framed stream's 2xx on the chunked or hybrid path (res): the tunnel
 * is resumable (raw) when it carries a token and a grace; b->rs.leg
 * becomes this path's. leg: on the hybrid path, bridge_leg.c's operations
 * (its resume_reading sets the leg's read watch, which carries the framed
 * stream until the first loss); NULL on the chunked path. */
void ptth_bridge_chunks_resume_opened(ptth_bridge *b, const ptth_leg_response *res, const bridge_leg_ops *leg);
/* The fields of a ptth_req answer as a leg's (for the resume rules). */
void ptth_bridge_chunks_response_of(const ptth_req *r, ptth_leg_response *res);
/* A free chunk slot of the window (made, PTTH_BRIDGE_WINDOW slots, on the
 * first call: an upgraded tunnel never has one), NULL when every slot is
 * busy or there is no memory. Both the raw and the plain chunked path. */
struct chunk *ptth_bridge_chunks_slot(ptth_bridge *b);
/* raw: posts what is due in free chunk slots: the replay, an ACK, our
 * PTTH-Fin chunk once done. Not from inside libcurl. */
void ptth_bridge_chunks_kick(ptth_bridge *b);
/* raw: one read of the local end into chunk c as a DATA frame (or our FIN
 * frame at its end), an ACK behind it when due; false when nothing was
 * read (c untouched). */
bool ptth_bridge_chunks_read_local(ptth_bridge *b, struct chunk *c);
/* raw: the local end may be read (a slot is free, the buffer and the
 * peer's window have room, no replay waits). */
bool ptth_bridge_chunks_reading_wanted(const ptth_bridge *b);
/* raw: done: both FINs through, ours acknowledged, our last ACK answered. */
bool ptth_bridge_chunks_done(const ptth_bridge *b);
/* raw: the framed stream (first or resumed) ended, error NULL when
 * cleanly: a loss (the tunnel resumes) unless we were done, when the
 * relay's clean end is the tunnel's. */
void ptth_bridge_chunks_stream_ended(ptth_bridge *b, const char *error);
/* The tunnel ends: the attempt timer stopped. */
void ptth_bridge_chunks_resume_stop(ptth_bridge *b);

/* ---- bridge_resume.c, for bridge_leg.c (and bridge.c: the counts of
 * what goes to the local end, the state) ---- */

/* The tunnel is not resumable until ptth_bridge_resume_opened(); leg is
 * how this layer acts on the leg (kept in b->rs.leg). */
void ptth_bridge_resume_init(ptth_bridge *b, const ptth_bridge_config *cfg, const bridge_leg_ops *leg);
/* The upgrade request's extra header line when resumption is to be asked
 * for, else NULL. */
const char *ptth_bridge_resume_request_header(const ptth_bridge *b);
/* The first 101 (res): the tunnel is resumable when it carries a token and
 * a grace. */
void ptth_bridge_resume_opened(ptth_bridge *b, const ptth_leg_response *res);
/* Not RS_OFF. */
bool ptth_bridge_resumable(const ptth_bridge *b);
/* A leg carries the tunnel (RS_OFF or RS_LIVE). */
bool ptth_bridge_resume_live(const ptth_bridge *b);
/* How many bytes one read of the local end may take now: SIZE_MAX when not
 * resumable; 0 while resuming, replaying, or when the resume buffer or the
 * peer's window is full. */
size_t ptth_bridge_resume_read_room(const ptth_bridge *b);
/* true when the leg is to be read although the local end is full: we may
 * send nothing more (buffer or window full) until the peer's next ACK,
 * which comes on the leg behind its DATA. The peer sends at most our
 * window past what we delivered, so what this reads is bounded by it. */
bool ptth_bridge_resume_overfill(const ptth_bridge *b);
/* n DATA bytes at p were framed: kept in the resume buffer. p is inside
 * the pooled chunk buffer buf (of size bytes, NULL: copy), which a large
 * read gives to the resume buffer instead of a copy: then *adopted is set
 * and buf goes back to the pool when its bytes are acknowledged (the
 * caller must not put it back). false when that failed (recorded; buf is
 * still the caller's). */
bool ptth_bridge_resume_sent(ptth_bridge *b, void *buf, size_t size, const uint8_t *p, size_t n, bool *adopted);
/* The decoder gave n DATA bytes: false when they overrun our receive
 * window (a protocol error, recorded). */
bool ptth_bridge_resume_decoded(ptth_bridge *b, size_t n);
/* n decoded DATA bytes were written to the local end. Counting only: safe
 * inside libcurl. */
void ptth_bridge_resume_delivered(ptth_bridge *b, size_t n);
/* The peer's FIN was passed on (the local end's write side shut). */
void ptth_bridge_resume_delivered_fin(ptth_bridge *b);
/* The decoder gave an ACK frame: false when it is a protocol error (recorded). */
bool ptth_bridge_resume_on_ack(ptth_bridge *b, uint64_t value, uint32_t window);
/* An ACK frame is due (128 KiB more delivered since the last one, the
 * peer's FIN delivered, or a heartbeat found something unacknowledged);
 * then ack_frame() writes it and records it as sent. */
bool ptth_bridge_resume_ack_due(const ptth_bridge *b);
void ptth_bridge_resume_ack_frame(ptth_bridge *b, uint8_t out[PTTH_FRAME_ACK_LEN]);
/* A heartbeat: ACK when anything is unacknowledged. */
void ptth_bridge_resume_beat(ptth_bridge *b);
/* After a resume: the next frame of the replay into buf (at most room
 * bytes, header included), its length, 0 when the replay is done; *fin
 * when it is our FIN. */
size_t ptth_bridge_resume_next_replay(ptth_bridge *b, uint8_t *buf, size_t room, bool *fin);
/* Nothing stands between a done tunnel and its clean close: not
 * resumable, or our FIN acknowledged and our ACK of everything received
 * written. */
bool ptth_bridge_resume_settled(const ptth_bridge *b);
/* Nothing more is needed from the peer: its FIN came and our FIN (framed)
 * is acknowledged. An end of the leg then is no loss. */
bool ptth_bridge_resume_peer_done(const ptth_bridge *b);
/* The leg failed or ended before done (why, for the debug log): true when
 * the tunnel resumes (the caller must not touch the leg any more), false
 * when it is not resumable (the caller fails the tunnel as before). */
bool ptth_bridge_resume_lost(ptth_bridge *b, const char *why);
/* The answer to a resume request (RS_ATTEMPT). */
void ptth_bridge_resume_on_response(ptth_bridge *b, const ptth_leg_response *res);
/* The tunnel ends: timers stopped, the buffer given back. */
void ptth_bridge_resume_stop(ptth_bridge *b);

#endif
