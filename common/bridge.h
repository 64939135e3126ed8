/*
 * bridge.h: one tunnel between a local byte stream and the relay, the part
 * that ptth_server and ptth_proxy share (SPEC §4).
 *
 * The "local end" is what the terminator connects the tunnel to: a backend
 * stream from transports/ (ptth_server), an accepted TCP socket or
 * stdin/stdout (ptth_proxy). The bridge only sees it through ptth_local_ops
 * and one or two file descriptors to poll; it never reads, writes or closes
 * those descriptors itself.
 *
 * What the bridge does once started:
 *   1. POSTs the framed-stream request (`connect` or `accept`). Until its 200
 *      arrives nothing is read from the local end: bytes the client sends
 *      early wait in the socket.
 *   2. relay -> local: the response body goes through the frame decoder;
 *      DATA is collected and written to the local end once per loop round,
 *      after the round's events (a deferred call), or at once when 256 KiB
 *      wait: libcurl hands over one 16 KiB HTTP/2 DATA frame per callback,
 *      and one write per round instead of one per frame saves system calls
 *      without delaying anything past the round the data arrived in. When
 *      the local end is full (-EAGAIN) the response is paused (what was not
 *      taken is kept: at most 256 KiB plus one delivery of libcurl) and
 *      resumed once it drained. FIN -> shutdown_write() after the pending
 *      bytes; RST -> the tunnel ends at once (DATA that arrived before it is
 *      first offered to the local end once, as if written on arrival; what a
 *      full local end refused is dropped); PING is ignored.
 *   3. local -> relay: whatever one read returns (up to max_chunk bytes,
 *      never waiting to fill a chunk) becomes one chunk POST with PTTH-Seq
 *      0, 1, 2...; at most 8 are in flight, and the local end is not read
 *      while 8 are. End of stream -> an empty chunk with PTTH-Fin: 1. A chunk
 *      that fails in transport (or gets a 5xx) is sent again, up to 4 times
 *      after 0, 0.1, 0.3 and 1 s (the relay ignores duplicates).
 *   4. The tunnel ends when both directions finished (FIN received and
 *      written through, our FIN acknowledged, the response complete), on RST,
 *      when the response fails, or on a local error; a local error is told to
 *      the relay with a `close` POST carrying PTTH-Reason.
 *   5. On the upgraded path (bridge_leg.c) a tunnel may be resumable
 *      (bridge_resume.c, docs/protocol.md "Resumable tunnels"): with
 *      resume_buffer > 0 the upgrade request asks, and a 101 with a token
 *      grants it. Then sent DATA is kept until the peer's ACK frames cover
 *      it (a full buffer stops reading the local end), ACKs are sent, the
 *      clean end also waits for the ACK of our FIN, and a lost leg does
 *      not end the tunnel: the local end stays open (not read) while
 *      resume requests go out within the relay's grace; on_end follows
 *      only when that fails (reason "resume_timeout", or the refusal), the
 *      local end then reset.
 *
 * Ownership: ptth_bridge_new() takes the local end: from then on the bridge
 * closes it (ops->close) exactly once, also when new() fails. The owner
 * learns the end through on_end(), called once from the loop (never inside
 * libcurl); the bridge frees itself when on_end() returns. ptth_bridge_free()
 * ends a bridge early without calling on_end() (program shutdown).
 */
#ifndef PTTH_BRIDGE_H
#define PTTH_BRIDGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "loop.h"
#include "relay_client.h"

#define PTTH_BRIDGE_WINDOW 8 /* chunks in flight per direction (SPEC §4) */

typedef struct ptth_local_ops {
    /* >0 bytes read, 0 end of stream, -EAGAIN nothing now, other <0: broken */
    ssize_t (*read)(void *ctx, void *buf, size_t len);
    /* >0 bytes taken (maybe fewer than len), -EAGAIN full, other <0: broken */
    ssize_t (*write)(void *ctx, const void *buf, size_t len);
    /* no more writes; 0 or -errno */
    int (*shutdown_write)(void *ctx);
    /* ends the local end at once and frees what ctx owns */
    void (*close)(void *ctx);
    /* optional: like close, when the tunnel broke (RST from the other side,
     * the relay gone, shutdown), telling the peer that the stream did not end
     * normally (a TCP socket is reset, so its reader cannot take the cut for
     * a clean end); NULL: close is used */
    void (*abort)(void *ctx);
} ptth_local_ops;

typedef struct ptth_local_end {
    const ptth_local_ops *ops;
    void *ctx;
    int read_fd;  /* polled for EPOLLIN */
    int write_fd; /* polled for EPOLLOUT; may equal read_fd */
} ptth_local_end;

/* A local end over plain descriptors: a socket (read_fd == write_fd;
 * shutdown_write is shutdown(SHUT_WR)) or a pair like stdin/stdout
 * (shutdown_write closes write_fd). The descriptors must be non-blocking.
 * When the tunnel breaks, a socket is reset (SO_LINGER 0) rather than closed.
 * 0 or -ENOMEM; the descriptors are not closed on failure. */
int ptth_local_end_fds(ptth_local_end *end, int read_fd, int write_fd);

/* A local end over a datagram socket (ptth_proxy's UDP sessions), framing
 * each datagram as dgram.h says; shutdown_write ends reading (a datagram
 * session has no half-close); close closes fd and adds the session's
 * counters to *stats (NULL: none). 0 or -ENOMEM (fd not closed then). */
struct ptth_dgram_stats;
int ptth_local_end_dgram(ptth_local_end *end, int fd, struct ptth_dgram_stats *stats);

typedef struct ptth_bridge ptth_bridge;

typedef struct ptth_bridge_result {
    bool established;          /* the tunnel opened (200 with a framed stream, or 101 upgraded) */
    long status;               /* HTTP status of the framed-stream request; 0: none */
    long retry_after;          /* its Retry-After in seconds, or -1 */
    const char *reason;        /* "fin", or what ended the tunnel / why it was refused */
    bool clean;                /* ended by FIN both ways */
    uint64_t bytes_to_relay;   /* read from the local end and acknowledged */
    uint64_t bytes_from_relay; /* received from the relay for the local end */
    long long duration_ms;     /* since ptth_bridge_start() */
    int resumes;               /* -1: the tunnel was not resumable; else how many times it resumed */
} ptth_bridge_result;

typedef void (*ptth_bridge_end_cb)(ptth_bridge *b, const ptth_bridge_result *res, void *data);

typedef struct ptth_bridge_config {
    ptth_loop *loop;
    ptth_relay_client *client;
    const char *server;     /* the {server} of the API paths */
    const char *chunk_kind; /* "upstream" (ptth_proxy) or "downstream" (ptth_server) */
    const char *local_name; /* what the local end is, for reasons: "client", "backend" */
    size_t max_chunk;       /* largest chunk body */
    /* --data-path and what was learned about the relay connection (shared by
     * the terminator's bridges); NULL: the chunked path only */
    struct ptth_data_path *data_path;
    ptth_bridge_end_cb on_end;
    /* optional: the tunnel just opened (200 or 101), before any byte of the
     * relay's stream is written to the local end, so that a front (SOCKS5)
     * can answer its client first. May run inside libcurl: it must only
     * write to the local end, never end or free the bridge. */
    void (*on_established)(ptth_bridge *b, void *data);
    /* optional: one more "Name: value" header on the framed-stream request
     * (ptth_proxy's UDP sessions send "PTTH-Proto: udp"); copied */
    const char *stream_header;
    /* Resumable tunnels (docs/protocol.md "Resumable tunnels", upgraded
     * path only): --resume-buffer bytes per direction, 0 (or no port) to
     * not ask; the tunnel's port and proto ("tcp" when NULL) and, on the
     * server side, the client's name of the listen answer (PTTH-Client),
     * all sent again with each resume request; copied */
    size_t resume_buffer;
    const char *port;
    const char *proto;
    const char *client_name;
    /* optional: the tunnel was resumed, replayed positions written again
     * (for the metrics); from the loop */
    void (*on_resumed)(ptth_bridge *b, uint64_t replayed, void *data);
    void *data;
} ptth_bridge_config;

/* NULL when out of memory (the local end is closed then). */
ptth_bridge *ptth_bridge_new(const ptth_bridge_config *cfg, const ptth_local_end *local);

/* POSTs stream_path (e.g. "/v1/servers/foo/ports/ssh/connect"). conn_id is the
 * tunnel id when already known (accept), or NULL to take it from the
 * response's PTTH-Conn (connect). 0, or a negative errno; on failure on_end
 * still follows (with status 0). */
int ptth_bridge_start(ptth_bridge *b, const char *stream_path, const char *conn_id);

/* The tunnel id, "" until known. */
const char *ptth_bridge_conn(const ptth_bridge *b);

/* The bytes counted so far, as in ptth_bridge_result (for live metrics). */
void ptth_bridge_bytes(const ptth_bridge *b, uint64_t *to_relay, uint64_t *from_relay);

/* The program is stopping (SIGTERM): ends the tunnel with reason
 * "shutdown". The local end is closed at once; an open tunnel is closed at
 * the relay with a `close` carrying PTTH-Reason: shutdown (so the other side
 * gets RST "closed by ...: shutdown"). on_end follows from the loop, within
 * about 6 s at most (the close request's timeout). A no-op when the bridge is
 * already ending. */
void ptth_bridge_shutdown(ptth_bridge *b);

/* Ends the bridge now without on_end(): cancels its requests (the relay sees
 * the stream fail and aborts the tunnel) and closes the local end. */
void ptth_bridge_free(ptth_bridge *b);

/* true for 1..64 characters of A-Z a-z 0-9 - _ (a PTTH-Conn value). */
bool ptth_conn_id_valid(const char *id);

/* Frees the process-wide pool of chunk buffers (at exit, for leak checks). */
void ptth_bridge_release_pool(void);

#endif
