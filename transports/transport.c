/*
 * transport.c: the table lookup behind ptth_transport_open(), and the socket
 * stream operations that every fd-backed transport shares.
 */
#include "transport.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sockstream.h"

const ptth_transport *
ptth_transport_for(const ptth_target *target)
{
    switch (target->kind) {
    case PTTH_TARGET_UNIX:
        return &ptth_transport_unix;
    case PTTH_TARGET_NVME:
        return &ptth_transport_nvme;
    case PTTH_TARGET_CC:
        return &ptth_transport_cc;
    case PTTH_TARGET_TCP:
    default:
        return &ptth_transport_tcp;
    }
}

int
ptth_transport_open(const ptth_target *target, const ptth_open_info *info, ptth_stream **out, char *err, size_t errlen)
{
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    *out = NULL;
    return ptth_transport_for(target)->open(target, info, out, err, errlen);
}

ssize_t
ptth_sock_read(int fd, void *buf, size_t len)
{
    for (;;) {
        ssize_t n = recv(fd, buf, len, MSG_DONTWAIT);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        if (errno == EWOULDBLOCK)
            return -EAGAIN;
        return -errno;
    }
}

ssize_t
ptth_sock_write(int fd, const void *buf, size_t len)
{
    for (;;) {
        ssize_t n = send(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        if (errno == EWOULDBLOCK)
            return -EAGAIN;
        return -errno;
    }
}

int
ptth_sock_shutdown_write(int fd)
{
    return shutdown(fd, SHUT_WR) == 0 ? 0 : -errno;
}
