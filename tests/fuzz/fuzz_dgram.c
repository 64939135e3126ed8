/*
 * fuzz_dgram.c: libFuzzer target for the datagram framing of UDP sessions
 * (common/dgram.h): the byte stream a terminator gets from the relay for a
 * UDP session (2-byte big-endian length, payload, again), which it turns
 * into datagrams.
 *
 * Input: [split seed] then the stream. The stream goes through
 * ptth_dgram_io_write() in pieces whose sizes come from the seed (1 to 64
 * bytes, empty writes included, or all the rest at once) over one end of
 * an AF_UNIX SOCK_SEQPACKET pair; the other end is read after each piece. Checked against a reference
 * parser written from dgram.h: every write takes all its bytes, or says
 * -EPROTO exactly at the piece that completes the first length above
 * PTTH_DGRAM_MAX (and never before); the datagrams that arrive are the
 * complete frames before that point, whole, in order, none merged or cut,
 * each once its last byte was written; when a write fills the socket, the
 * rest of its frames are dropped (the newest) and counted, never others.
 * Then the way back: each frame's payload is sent as one datagram into the
 * pair and read with ptth_dgram_io_read() through buffers of seeded sizes
 * (1 byte to a whole frame): the bytes read are exactly the frames again;
 * after the sender shuts its writing, the read says end of stream.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dgram.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_FRAMES 4096

static void
fail(const char *what)
{
    fprintf(stderr, "fuzz_dgram: invariant broken: %s\n", what);
    abort();
}

static unsigned
next_rand(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return (*s >> 16) & 0x7fff;
}

typedef struct frame_ref {
    size_t off; /* of the payload in the stream */
    size_t len;
    size_t end; /* stream offset just past the frame */
} frame_ref;

/* The reference: the frames of stream, and where the first bad length ends
 * (SIZE_MAX when none). */
static size_t
reference(const uint8_t *p, size_t n, frame_ref *frames, size_t *nframes)
{
    size_t off = 0;
    *nframes = 0;
    while (n - off >= 2) {
        size_t len = ((size_t)p[off] << 8) | p[off + 1];
        if (len > PTTH_DGRAM_MAX)
            return off + 2;
        if (n - off - 2 < len)
            break;
        if (*nframes < MAX_FRAMES)
            frames[(*nframes)++] = (frame_ref){.off = off + 2, .len = len, .end = off + 2 + len};
        off += 2 + len;
    }
    return SIZE_MAX;
}

static frame_ref frames[MAX_FRAMES];
static uint8_t rbuf[PTTH_DGRAM_FRAME_MAX + 16];

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 1 << 20)
        return 0;
    unsigned seed = data[0];
    data++;
    size--;
    size_t nframes;
    size_t bad_end = reference(data, size, frames, &nframes);
    if (nframes >= MAX_FRAMES)
        return 0; /* keep the bookkeeping simple */

    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
        return 0;
    ptth_dgram_io io;
    ptth_dgram_io_init(&io, sv[0]);

    /* relay -> datagrams */
    size_t off = 0, next = 0; /* next: the frame the next datagram must be */
    bool eproto = false;
    do {
        size_t piece = next_rand(&seed) % 4 == 0 ? size - off : next_rand(&seed) % 65;
        if (piece > size - off)
            piece = size - off;
        uint64_t dropped_before = io.stats.dropped;
        ssize_t w = ptth_dgram_io_write(&io, data + off, piece);
        if (w == -EPROTO) {
            if (bad_end == SIZE_MAX || off >= bad_end || off + piece < bad_end)
                fail("-EPROTO where the reference has no bad length");
            eproto = true;
        } else if (w != (ssize_t)piece) {
            fail("a write did not take all its bytes");
        } else if (bad_end != SIZE_MAX && off + piece >= bad_end) {
            fail("a bad length was taken");
        } else {
            off += piece;
        }
        size_t done = eproto ? bad_end : off; /* the frames that ended up to here are out */
        size_t complete = next;
        while (complete < nframes && frames[complete].end <= done)
            complete++;
        for (;;) { /* what arrived, in order: the frames completed by this write, up to where the socket was full */
            ssize_t n = recv(sv[1], rbuf, sizeof(rbuf), MSG_DONTWAIT);
            if (n < 0)
                break;
            if (next >= complete || frames[next].len != (size_t)n || memcmp(rbuf, data + frames[next].off, (size_t)n) != 0)
                fail("a datagram is not the next frame");
            next++;
        }
        if (next + (io.stats.dropped - dropped_before) != complete)
            fail("a complete frame neither left nor was counted as dropped");
        next = complete; /* the dropped ones are the newest, the rest of this write's */
    } while (off < size && !eproto);
    if (io.stats.datagrams_out + io.stats.dropped != next)
        fail("datagrams sent + dropped is not the number of complete frames");
    if (!eproto && bad_end != SIZE_MAX)
        fail("a bad length went unnoticed");

    /* datagrams -> relay: the valid frames' payloads, read back as frames */
    ptth_dgram_io_dispose(&io);
    ptth_dgram_io_init(&io, sv[0]);
    for (size_t i = 0; i < nframes; i++) {
        if (send(sv[1], data + frames[i].off, frames[i].len, MSG_DONTWAIT) != (ssize_t)frames[i].len)
            fail("send to the pair failed");
        size_t want = 2 + frames[i].len, got = 0;
        while (got < want) {
            size_t cap = (next_rand(&seed) & 1) ? sizeof(rbuf) : 1 + next_rand(&seed) % 300;
            uint8_t *dst = rbuf;
            ssize_t n = ptth_dgram_io_read(&io, dst, cap);
            if (n <= 0)
                fail("a frame did not come back whole");
            if ((size_t)n > want - got)
                fail("a read went past its frame");
            if (memcmp(dst, data + frames[i].off - 2 + got, (size_t)n) != 0)
                fail("a frame came back changed");
            got += (size_t)n;
        }
    }
    if (ptth_dgram_io_read(&io, rbuf, sizeof(rbuf)) != -EAGAIN)
        fail("bytes from nowhere");
    if (shutdown(sv[1], SHUT_WR) != 0)
        fail("shutdown");
    if (ptth_dgram_io_read(&io, rbuf, sizeof(rbuf)) != 0)
        fail("no end of stream after the peer's shutdown");
    ptth_dgram_io_dispose(&io);
    close(sv[0]);
    close(sv[1]);
    return 0;
}
