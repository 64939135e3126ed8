/*
 * local_end.c: ptth_local_end_fds() of bridge.h: a tunnel's local end over
 * plain descriptors (an accepted socket, stdin/stdout, a backend socket).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bridge.h"
#include "dgram.h"

struct fd_pair {
    int rfd, wfd;
};

static ssize_t
fds_read(void *ctx, void *buf, size_t len)
{
    struct fd_pair *p = ctx;
    ssize_t n = read(p->rfd, buf, len);
    return n >= 0 ? n : -errno;
}

static ssize_t
fds_write(void *ctx, const void *buf, size_t len)
{
    struct fd_pair *p = ctx;
    if (p->wfd < 0)
        return -EPIPE;
    ssize_t n = write(p->wfd, buf, len);
    if (n < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    return n > 0 ? n : -EIO;
}

static int
fds_shutdown_write(void *ctx)
{
    struct fd_pair *p = ctx;
    if (p->wfd < 0)
        return 0;
    if (p->rfd == p->wfd)
        return shutdown(p->wfd, SHUT_WR) == 0 ? 0 : -errno;
    close(p->wfd);
    p->wfd = -1;
    return 0;
}

static void
fds_close(void *ctx)
{
    struct fd_pair *p = ctx;
    if (p->rfd >= 0)
        close(p->rfd);
    if (p->wfd >= 0 && p->wfd != p->rfd)
        close(p->wfd);
    free(p);
}

/* A broken tunnel resets a socket peer (RST) instead of a clean close, so
 * that it cannot mistake the cut for the end of the stream. */
static void
fds_abort(void *ctx)
{
    struct fd_pair *p = ctx;
    if (p->rfd >= 0 && p->rfd == p->wfd) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(p->rfd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)); /* not a socket: nothing to do */
    }
    fds_close(ctx);
}

static const ptth_local_ops fd_ops = {
    .read = fds_read,
    .write = fds_write,
    .shutdown_write = fds_shutdown_write,
    .close = fds_close,
    .abort = fds_abort,
};

int
ptth_local_end_fds(ptth_local_end *end, int read_fd, int write_fd)
{
    struct fd_pair *p = malloc(sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    p->rfd = read_fd;
    p->wfd = write_fd;
    end->ops = &fd_ops;
    end->ctx = p;
    end->read_fd = read_fd;
    end->write_fd = write_fd;
    return 0;
}

/* ---- a datagram socket (dgram.h) as a tunnel's local end ---- */

struct dgram_end {
    ptth_dgram_io io;
    ptth_dgram_stats *stats;
};

static ssize_t
de_read(void *ctx, void *buf, size_t len)
{
    return ptth_dgram_io_read(&((struct dgram_end *)ctx)->io, buf, len);
}

static ssize_t
de_write(void *ctx, const void *buf, size_t len)
{
    return ptth_dgram_io_write(&((struct dgram_end *)ctx)->io, buf, len);
}

static int
de_shutdown_write(void *ctx)
{
    return ptth_dgram_io_finish(&((struct dgram_end *)ctx)->io);
}

static void
de_close(void *ctx)
{
    struct dgram_end *e = ctx;
    if (e->stats != NULL) {
        e->stats->datagrams_in += e->io.stats.datagrams_in;
        e->stats->datagrams_out += e->io.stats.datagrams_out;
        e->stats->dropped += e->io.stats.dropped;
        e->stats->unreachable += e->io.stats.unreachable;
    }
    close(e->io.fd);
    ptth_dgram_io_dispose(&e->io);
    free(e);
}

static const ptth_local_ops dgram_ops = {
    .read = de_read,
    .write = de_write,
    .shutdown_write = de_shutdown_write,
    .close = de_close,
};

int
ptth_local_end_dgram(ptth_local_end *end, int fd, ptth_dgram_stats *stats)
{
    struct dgram_end *e = malloc(sizeof(*e));
    if (e == NULL)
        return -ENOMEM;
    ptth_dgram_io_init(&e->io, fd);
    e->stats = stats;
    end->ops = &dgram_ops;
    end->ctx = e;
    end->read_fd = fd;
    end->write_fd = fd;
    return 0;
}
