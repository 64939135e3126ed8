/*
 * unix.c: the UNIX stream socket transport (unix:PATH targets).
 *
 * PATH is a file system path, or "@name" for a Linux abstract socket. A
 * non-blocking connect on a UNIX socket completes or fails at once (it never
 * returns EINPROGRESS), so open() either fails with the reason or hands out an
 * already connected stream whose finish_open() returns 0. A listener whose
 * backlog is full makes connect fail with EAGAIN: that is reported as a
 * failure, like a refused TCP connection.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "sockstream.h"
#include "transport.h"

typedef struct unix_stream {
    ptth_stream base;
} unix_stream;

static int
unix_open(const ptth_target *t, const ptth_open_info *info, ptth_stream **out, char *err, size_t errlen)
{
    (void)info;
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    size_t len = strlen(t->path);
    socklen_t alen;
    if (len == 0 || len >= sizeof(sun.sun_path)) {
        snprintf(err, errlen, "connect to unix:%s: path length %zu out of range", t->path, len);
        return -ENAMETOOLONG;
    }
    if (t->path[0] == '@') {
        /* abstract namespace: a leading NUL, no terminating NUL */
        memcpy(sun.sun_path + 1, t->path + 1, len - 1);
        alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    } else {
        memcpy(sun.sun_path, t->path, len);
        alen = (socklen_t)sizeof(sun);
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "connect to unix:%s: socket: %s", t->path, strerror(e));
        return -e;
    }
    int rc;
    do {
        rc = connect(fd, (struct sockaddr *)&sun, alen);
    } while (rc != 0 && errno == EINTR);
    if (rc != 0 && errno != EINPROGRESS) {
        int e = errno;
        if (e == EAGAIN)
            snprintf(err, errlen, "connect to unix:%s: %s (the listener's backlog is full)", t->path, strerror(e));
        else
            snprintf(err, errlen, "connect to unix:%s: %s", t->path, strerror(e));
        close(fd);
        return -e;
    }
    unix_stream *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        close(fd);
        snprintf(err, errlen, "connect to unix:%s: out of memory", t->path);
        return -ENOMEM;
    }
    s->base.transport = &ptth_transport_unix;
    s->base.fd = fd;
    s->base.open_events = EPOLLOUT;
    *out = &s->base;
    return 0;
}

static int
unix_finish_open(ptth_stream *s, char *err, size_t errlen)
{
    int soerr = 0;
    socklen_t len = sizeof(soerr);
    if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0)
        soerr = errno;
    if (soerr != 0) {
        snprintf(err, errlen, "connect to unix socket: %s", strerror(soerr));
        return -soerr;
    }
    return 0;
}

static ssize_t
unix_read(ptth_stream *s, void *buf, size_t len)
{
    return ptth_sock_read(s->fd, buf, len);
}

static ssize_t
unix_write(ptth_stream *s, const void *buf, size_t len)
{
    return ptth_sock_write(s->fd, buf, len);
}

static int
unix_shutdown_write(ptth_stream *s)
{
    return ptth_sock_shutdown_write(s->fd);
}

static void
unix_close(ptth_stream *s)
{
    if (s->fd >= 0)
        close(s->fd);
    free(s);
}

const ptth_transport ptth_transport_unix = {
    .name = "unix",
    .open = unix_open,
    .finish_open = unix_finish_open,
    .read = unix_read,
    .write = unix_write,
    .shutdown_write = unix_shutdown_write,
    .close = unix_close,
};
