/* dgram.c: datagrams framed over a tunnel's byte stream; see dgram.h. */
#include "dgram.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define DATAGRAMS_PER_READ 64

void
ptth_dgram_io_init(ptth_dgram_io *io, int fd)
{
    memset(io, 0, sizeof(*io));
    io->fd = fd;
}

void
ptth_dgram_io_dispose(ptth_dgram_io *io)
{
    free(io->rbuf);
    free(io->wbuf);
    io->rbuf = io->wbuf = NULL;
}

size_t
ptth_dgram_frame(uint8_t *out, const void *data, size_t len)
{
    out[0] = (uint8_t)(len >> 8);
    out[1] = (uint8_t)len;
    memmove(out + 2, data, len);
    return 2 + len;
}

/* recv() says 0 for an empty datagram as well as for a socket whose reading
 * was shut down (ptth_dgram_io_finish, or ptth_proxy's idle timer on its
 * side of the pair); only the second one reports POLLRDHUP. */
static bool
read_shut(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP)) != 0;
}

/* One datagram into dst (room for PTTH_DGRAM_FRAME_MAX), framed: its frame
 * length, 0 when there is none now (*eof set when reading is over: the
 * other end of a SOCK_SEQPACKET pair shut its writing, or
 * ptth_dgram_io_finish() was called and what was queued before is out; a
 * UDP socket whose reading was shut down says EAGAIN, never 0), or a
 * negative errno for a broken socket. */
static ssize_t
recv_frame(ptth_dgram_io *io, uint8_t *dst, bool *eof)
{
    for (;;) {
        ssize_t n = recv(io->fd, dst + 2, PTTH_DGRAM_MAX, MSG_TRUNC);
        if (n < 0) {
            if (errno == ECONNREFUSED) { /* an earlier datagram met no one: not this session's end */
                io->stats.unreachable++;
                continue;
            }
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                *eof = io->finished;
                return 0;
            }
            return -errno;
        }
        if (n == 0 && (io->finished || read_shut(io->fd))) {
            io->finished = true;
            *eof = true;
            return 0;
        }
        if ((size_t)n > PTTH_DGRAM_MAX) { /* cut by the buffer: an IPv6 jumbo, which UDP over IPv4 cannot carry */
            io->stats.dropped++;
            continue;
        }
        dst[0] = (uint8_t)((size_t)n >> 8);
        dst[1] = (uint8_t)n;
        io->stats.datagrams_in++;
        return 2 + n;
    }
}

ssize_t
ptth_dgram_io_read(ptth_dgram_io *io, void *buf, size_t len)
{
    uint8_t *out = buf;
    size_t got = 0;
    bool eof = false;
    for (int i = 0; i < DATAGRAMS_PER_READ && got < len && !eof; i++) {
        if (io->roff < io->rlen) { /* the rest of a frame cut before */
            size_t take = io->rlen - io->roff < len - got ? io->rlen - io->roff : len - got;
            memcpy(out + got, io->rbuf + io->roff, take);
            io->roff += take;
            got += take;
            continue;
        }
        if (len - got >= PTTH_DGRAM_FRAME_MAX) {
            ssize_t n = recv_frame(io, out + got, &eof);
            if (n < 0)
                return got > 0 ? (ssize_t)got : n;
            if (n == 0)
                break;
            got += (size_t)n;
            continue;
        }
        if (got > 0)
            break; /* the next read has room for a whole one */
        if (io->rbuf == NULL && (io->rbuf = malloc(PTTH_DGRAM_FRAME_MAX)) == NULL)
            return -ENOMEM;
        ssize_t n = recv_frame(io, io->rbuf, &eof);
        if (n <= 0) {
            if (n < 0)
                return n;
            break;
        }
        io->roff = 0;
        io->rlen = (size_t)n;
    }
    if (got > 0)
        return (ssize_t)got;
    if (eof && io->roff == io->rlen)
        return 0;
    return -EAGAIN;
}

static void
send_datagram(ptth_dgram_io *io, const uint8_t *p, size_t len)
{
    for (;;) {
        ssize_t n = send(io->fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n >= 0) {
            io->stats.datagrams_out++;
            return;
        }
        if (errno == EINTR)
            continue;
        if (errno == ECONNREFUSED)
            io->stats.unreachable++;
        else
            io->stats.dropped++; /* EAGAIN, ENOBUFS, and whatever else loses a datagram */
        return;
    }
}

static size_t
frame_len(const uint8_t *hdr)
{
    return ((size_t)hdr[0] << 8) | hdr[1];
}

/* Whole frames go from the caller's buffer to the socket; only a frame cut
 * at the end of a write waits in wbuf for the rest. */
ssize_t
ptth_dgram_io_write(ptth_dgram_io *io, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    size_t off = 0;
    while (off < len) {
        if (io->wlen == 0 && len - off >= 2) {
            size_t plen = frame_len(p + off);
            if (plen > PTTH_DGRAM_MAX)
                return -EPROTO;
            if (len - off >= 2 + plen) {
                send_datagram(io, p + off + 2, plen);
                off += 2 + plen;
                continue;
            }
        }
        if (io->wbuf == NULL && (io->wbuf = malloc(PTTH_DGRAM_FRAME_MAX)) == NULL)
            return -ENOMEM;
        size_t want = io->wlen >= 2 ? 2 + frame_len(io->wbuf) : 2;
        size_t take = want - io->wlen < len - off ? want - io->wlen : len - off;
        memcpy(io->wbuf + io->wlen, p + off, take);
        io->wlen += take;
        off += take;
        if (io->wlen < 2)
            continue;
        size_t plen = frame_len(io->wbuf);
        if (plen > PTTH_DGRAM_MAX)
            return -EPROTO;
        if (io->wlen == 2 + plen) {
            send_datagram(io, io->wbuf + 2, plen);
            io->wlen = 0;
        }
    }
    return (ssize_t)len;
}

/* shutdown(SHUT_RD) only makes the socket readable, so that the caller's
 * poll comes back to read the end; finished is what ends the reading. */
int
ptth_dgram_io_finish(ptth_dgram_io *io)
{
    io->finished = true;
    if (shutdown(io->fd, SHUT_RD) != 0 && errno != ENOTCONN)
        return -errno;
    return 0;
}
