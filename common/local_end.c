/*
 * local_end.c: ptth_local_end_fds() of bridge.h: a tunnel's local end over
 * plain descriptors (an accepted socket, stdin/stdout, a backend socket).
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bridge.h"

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
