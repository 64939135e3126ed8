/*
 * cc_carrier_seqpacket.c: the comm channel over a UNIX SOCK_SEQPACKET socket
 * at $PTTH_CC_DIR/SERVICE. The kernel keeps message boundaries, so one
 * send() is one ptth message and recv() never sees half of one. Works on
 * every Linux machine; the tests use it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cc_carrier.h"

static int
make_sockaddr(const char *path, struct sockaddr_un *sun)
{
    memset(sun, 0, sizeof(*sun));
    sun->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sun->sun_path))
        return -ENAMETOOLONG;
    strcpy(sun->sun_path, path);
    return 0;
}

/* Creates the channel directory (mode 0700) when it does not exist yet; an
 * existing one is used as it is. */
static int
ensure_dir(const char *path, char *err, size_t errlen)
{
    char dir[sizeof(((ptth_cc_addr *)0)->path)];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL || slash == dir)
        return 0;
    *slash = '\0';
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) {
            snprintf(err, errlen, "channel directory '%s' is not a directory", dir);
            return -ENOTDIR;
        }
        return 0;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        int e = errno;
        snprintf(err, errlen, "cannot create channel directory '%s': %s", dir, strerror(e));
        return -e;
    }
    return 0;
}

/* A socket file left by an agent that died is removed; one that still
 * answers belongs to a running agent and is not touched. */
static int
clear_stale(const struct sockaddr_un *sun, char *err, size_t errlen)
{
    struct stat st;
    if (lstat(sun->sun_path, &st) != 0)
        return 0;
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "'%s' exists and is not a socket", sun->sun_path);
        return -EEXIST;
    }
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "socket: %s", strerror(e));
        return -e;
    }
    int r = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
    int e = errno;
    close(fd);
    if (r == 0) {
        snprintf(err, errlen, "another agent is listening at '%s'", sun->sun_path);
        return -EADDRINUSE;
    }
    if (e == ECONNREFUSED || e == ENOENT || e == EPROTOTYPE) {
        if (unlink(sun->sun_path) != 0 && errno != ENOENT) {
            e = errno;
            snprintf(err, errlen, "cannot remove stale socket '%s': %s", sun->sun_path, strerror(e));
            return -e;
        }
        return 0;
    }
    snprintf(err, errlen, "cannot check existing socket '%s': %s", sun->sun_path, strerror(e));
    return -e;
}

static int
sp_listen(const ptth_cc_addr *addr, int *out, char *err, size_t errlen)
{
    struct sockaddr_un sun;
    if (make_sockaddr(addr->path, &sun) != 0) {
        snprintf(err, errlen, "socket path '%s' too long", addr->path);
        return -ENAMETOOLONG;
    }
    int r = ensure_dir(addr->path, err, errlen);
    if (r == 0)
        r = clear_stale(&sun, err, errlen);
    if (r != 0)
        return r;
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "socket(AF_UNIX, SOCK_SEQPACKET): %s", strerror(e));
        return -e;
    }
    if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0 || listen(fd, 64) != 0) {
        int e = errno;
        snprintf(err, errlen, "cannot listen at '%s': %s", addr->path, strerror(e));
        close(fd);
        return -e;
    }
    *out = fd;
    return 0;
}

static void
sp_unlisten(const ptth_cc_addr *addr, int fd)
{
    struct stat st;
    if (fd >= 0)
        close(fd);
    if (lstat(addr->path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(addr->path);
}

static int
sp_adopt(int fd, ptth_cc_conn **out)
{
    ptth_cc_conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        close(fd);
        return -ENOMEM;
    }
    c->carrier = &ptth_cc_carrier_seqpacket;
    c->fd = fd;
    *out = c;
    return 0;
}

static int
sp_accept(int lfd, ptth_cc_conn **out, char *err, size_t errlen)
{
    return ptth_cc_carrier_accept(&ptth_cc_carrier_seqpacket, lfd, out, err, errlen);
}

static int
sp_connect(const ptth_cc_addr *addr, ptth_cc_conn **out, char *err, size_t errlen)
{
    struct sockaddr_un sun;
    if (make_sockaddr(addr->path, &sun) != 0) {
        snprintf(err, errlen, "socket path '%s' too long", addr->path);
        return -ENAMETOOLONG;
    }
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "socket(AF_UNIX, SOCK_SEQPACKET): %s", strerror(e));
        return -e;
    }
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
        int e = errno;
        if (e == EAGAIN)
            snprintf(err, errlen, "cannot connect to agent at '%s': its backlog is full", addr->path);
        else
            snprintf(err, errlen, "cannot connect to agent at '%s': %s%s", addr->path, strerror(e),
                     e == ENOENT || e == ECONNREFUSED ? " (is ptth_cc_agent running?)" : "");
        close(fd);
        return -e;
    }
    int r = sp_adopt(fd, out);
    if (r != 0)
        snprintf(err, errlen, "out of memory");
    return r;
}

static int
sp_finish_connect(ptth_cc_conn *c, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    c->connecting = false;
    return 0;
}

static int
sp_send(ptth_cc_conn *c, const uint8_t *msg, size_t len)
{
    ssize_t n = ptth_cc_carrier_send_some(c->fd, msg, len);
    if (n < 0)
        return (int)n;
    return (size_t)n == len ? 0 : -EIO; /* a seqpacket send is all or nothing */
}

static int
sp_flush(ptth_cc_conn *c)
{
    (void)c;
    return 0;
}

static ssize_t
sp_recv(ptth_cc_conn *c, uint8_t *buf, size_t cap)
{
    struct iovec iov = {.iov_base = buf, .iov_len = cap};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    ssize_t n;
    do {
        n = recvmsg(c->fd, &mh, MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    if (mh.msg_flags & MSG_TRUNC)
        return -EMSGSIZE;
    return n;
}

static void
sp_close(ptth_cc_conn *c)
{
    if (c == NULL)
        return;
    if (c->fd >= 0)
        close(c->fd);
    free(c);
}

const ptth_cc_carrier ptth_cc_carrier_seqpacket = {
    .name = "seqpacket",
    .listen = sp_listen,
    .accept = sp_accept,
    .unlisten = sp_unlisten,
    .connect = sp_connect,
    .finish_connect = sp_finish_connect,
    .adopt = sp_adopt,
    .send = sp_send,
    .flush = sp_flush,
    .recv = sp_recv,
    .close = sp_close,
};
