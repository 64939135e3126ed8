/*
 * dgram.h: datagrams over a tunnel's byte stream (SPEC §9.4, UDP).
 *
 * A tunnel stays a byte stream; a datagram session frames each datagram at
 * the edges as a 2-byte big-endian length and the payload (0 to
 * PTTH_DGRAM_MAX bytes), so both data paths carry datagrams unchanged and in
 * order (docs/protocol.md, "UDP sessions").
 *
 * ptth_dgram_io does that over one datagram socket (a connected UDP socket
 * on ptth_server; one end of an AF_UNIX SOCK_DGRAM socketpair on ptth_proxy):
 *   read   one recv() per datagram, each written out as one frame; a frame
 *          that does not fit the caller's buffer is handed out in pieces
 *          over the next reads (the other end reassembles). -EAGAIN when no
 *          datagram waits. ECONNREFUSED (an ICMP port unreachable on a
 *          connected UDP socket) is counted and skipped: it never ends the
 *          session. 0 (end of stream) only after ptth_dgram_io_finish().
 *   write  takes every byte (never -EAGAIN: a datagram session has no
 *          backpressure), sends each complete frame as one datagram; a
 *          datagram the socket cannot take now (EAGAIN, ENOBUFS) is dropped
 *          and counted, as UDP itself would lose it; ECONNREFUSED is counted
 *          and the datagram lost. A length above PTTH_DGRAM_MAX is a broken
 *          stream: -EPROTO.
 *   finish the session is over (the other side's FIN, or the idle timer):
 *          shuts the socket's reading down, which makes it readable, and the
 *          next read returns 0 once the datagrams queued before are out.
 * Memory: datagrams go straight between the socket and the caller's
 * buffer; at most one PTTH_DGRAM_FRAME_MAX buffer each way, only for frames
 * cut in pieces. ptth_dgram_io_dispose() frees them.
 */
#ifndef PTTH_DGRAM_H
#define PTTH_DGRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PTTH_DGRAM_MAX 65507 /* the largest UDP payload over IPv4 */
#define PTTH_DGRAM_FRAME_MAX (2 + PTTH_DGRAM_MAX)

typedef struct ptth_dgram_stats {
    uint64_t datagrams_in;  /* read from the socket */
    uint64_t datagrams_out; /* sent to the socket */
    uint64_t dropped;       /* the socket could not take them */
    uint64_t unreachable;   /* ECONNREFUSED seen (ICMP port unreachable) */
} ptth_dgram_stats;

typedef struct ptth_dgram_io {
    int fd;
    bool finished;
    /* read side: a frame being handed out in pieces (allocated only when a
     * caller's buffer is smaller than PTTH_DGRAM_FRAME_MAX) */
    uint8_t *rbuf;
    size_t roff, rlen;
    /* write side: a frame that arrived in pieces (allocated when one does) */
    uint8_t *wbuf;
    size_t wlen;
    ptth_dgram_stats stats;
} ptth_dgram_io;

/* fd: a non-blocking datagram socket, still owned by the caller. */
void ptth_dgram_io_init(ptth_dgram_io *io, int fd);
ssize_t ptth_dgram_io_read(ptth_dgram_io *io, void *buf, size_t len);
ssize_t ptth_dgram_io_write(ptth_dgram_io *io, const void *buf, size_t len);
int ptth_dgram_io_finish(ptth_dgram_io *io);
/* Frees the buffers (not fd). */
void ptth_dgram_io_dispose(ptth_dgram_io *io);

/* Frames a datagram into out (2 + len bytes; len <= PTTH_DGRAM_MAX). */
size_t ptth_dgram_frame(uint8_t *out, const void *data, size_t len);

#endif
