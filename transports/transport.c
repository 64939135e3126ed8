/*
 * transport.c: the table lookup behind ptth_transport_open(), the start-up
 * checks of targets, and the socket stream operations that every fd-backed
 * transport shares.
 */
#include "transport.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cc/cc_carrier.h"
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
    case PTTH_TARGET_UDP:
        return &ptth_transport_udp;
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

/* Start-up checks (declared in target.h; here rather than in target.c so that
 * the parser stays free of machine access and of the cc carriers). */
int
ptth_target_check(const ptth_target *t, char *err, size_t errlen)
{
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (t->kind == PTTH_TARGET_CC) {
        /* $PTTH_CC_DIR/SERVICE must fit a socket address; the agent need not be up */
        ptth_cc_addr addr;
        return ptth_cc_addr_from_target(t, &addr, err, errlen);
    }
    if (t->kind != PTTH_TARGET_NVME)
        return 0;
    struct stat st;
    if (stat(t->path, &st) != 0) {
        int e = errno;
        snprintf(err, errlen, "nvme device '%s': %s", t->path, strerror(e));
        return -e;
    }
    if (!S_ISCHR(st.st_mode) && !S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "nvme device '%s': not a character device (an NVMe controller) nor a UNIX socket (ptth_csd_emu)",
                 t->path);
        return -ENODEV;
    }
    return 0;
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

void
ptth_sock_reset_on_close(int fd)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)); /* a UNIX socket has no reset: a plain close */
}
