/*
 * bridge_internal.h: the parts of a bridge (bridge.h) that its relay paths
 * share: bridge.c (the bridge, the chunked path of SPEC §4) and
 * bridge_leg.c (the upgraded path of SPEC §9.1 over a ptth_leg, and the
 * framed stream of a 2xx answer to an upgrade request). Not for other
 * modules.
 *
 * One tunnel has one relay path, chosen at start and changed at most once,
 * when the upgrade request falls back:
 *   PATH_CHUNKS  the framed stream is a ptth_req response, local bytes go up
 *                in chunk POSTs;
 *   PATH_HYBRID  the framed stream is the body of a 2xx answer on the leg
 *                (a proxy dropped Upgrade, or the other side is on chunks),
 *                local bytes go up in chunk POSTs;
 *   PATH_UPGRADE the leg was upgraded: both directions are frames on it.
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

struct chunk {
    ptth_req req;
    ptth_bridge *b;
    uint8_t *buf;
    size_t len;
    uint64_t seq;
    bool fin;
    int attempts;
    ptth_timer retry_timer;
    char seq_header[32];
};

struct ptth_bridge {
    ptth_loop *loop;
    ptth_relay_client *client;
    ptth_bridge_end_cb on_end;
    void (*on_established)(ptth_bridge *b, void *data);
    char stream_header[64];
    const char *stream_headers[2]; /* {stream_header or NULL, NULL} */
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

    /* relay -> local */
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

    /* local -> relay */
    struct chunk chunks[PTTH_BRIDGE_WINDOW];
    unsigned in_flight;
    uint64_t next_seq;
    bridge_to_relay to_relay;

    /* the end */
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
    bool leg_eof;  /* the leg's stream (or 2xx body) ended */
    uint8_t *up;   /* PATH_UPGRADE: frames not written to the leg yet */
    size_t up_off, up_len;
    long heartbeat_ms, idle_ms;
    long long last_sent_ms, last_data_ms;
    ptth_timer beat_timer;
};

/* bridge.c */
/* Chunk-sized buffers from a process-wide free list (size: max_chunk). */
void *ptth_bridge_buf_get(size_t size);
void ptth_bridge_buf_put(void *buf, size_t size);
void ptth_bridge_fail(ptth_bridge *b, bool tell_relay, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void ptth_bridge_schedule(ptth_bridge *b);
void ptth_bridge_update_watches(ptth_bridge *b);
/* One read of the local end into a pooled buffer, at offset at, at most
 * room bytes: >0 bytes or 0 (end of stream) with *bufp set (the caller's
 * now); -EAGAIN nothing; another negative errno: the failure is recorded. */
ssize_t ptth_bridge_read_local_into(ptth_bridge *b, size_t at, size_t room, uint8_t **bufp);
/* The framed stream's bytes, from whichever path carries them: decoded, and
 * DATA queued for the local end (written now when flush_now, else at the end
 * of the round). len, or PTTH_REQ_PAUSE when the local end is full (the same
 * bytes are to be offered again once ptth_bridge_leg_resume() or
 * ptth_req_resume() is called). */
size_t ptth_bridge_feed(ptth_bridge *b, const uint8_t *p, size_t len, bool flush_now);
/* The framed-stream request (connect/accept) answered 2xx with these
 * fields: the tunnel opens. false when that failed (recorded). */
bool ptth_bridge_opened(ptth_bridge *b, const char *conn, long max_chunk);
/* The framed-stream request failed before the tunnel opened: status (0:
 * none), its Retry-After, and why. */
void ptth_bridge_refused(ptth_bridge *b, long status, long retry_after, const char *why);
/* Starts the framed-stream request on the chunked path. 0 or -errno. */
int ptth_bridge_start_chunks(ptth_bridge *b);

/* bridge_leg.c */
/* Starts the upgrade request. 0 or -errno (nothing started). */
int ptth_bridge_leg_start(ptth_bridge *b);
/* PATH_UPGRADE: local reading is wanted now / read the local end into frames. */
bool ptth_bridge_leg_reading_wanted(const ptth_bridge *b);
void ptth_bridge_leg_read_local(ptth_bridge *b);
/* The local end drained: read the leg again (PATH_HYBRID, PATH_UPGRADE). */
void ptth_bridge_leg_resume(ptth_bridge *b);
/* PATH_UPGRADE: true once both FINs went through. */
bool ptth_bridge_leg_done(const ptth_bridge *b);
/* Ends the leg: after a failure with an RST frame first (best effort), then
 * a TCP reset; else a normal close. A no-op without a leg. */
void ptth_bridge_leg_close(ptth_bridge *b, bool failed);

#endif
