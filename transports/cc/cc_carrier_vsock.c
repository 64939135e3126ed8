/*
 * cc_carrier_vsock.c: the comm channel over AF_VSOCK (host <-> VM or DPU).
 * vsock SOCK_STREAM works on every vsock transport (SOCK_SEQPACKET only on
 * some), so messages are framed by their header's length field: the receive
 * side buffers bytes until a whole message is there, the send side keeps the
 * unsent tail of at most one message. The framing works on any connected
 * stream socket, which is how the unit tests exercise it (adopt() of one end
 * of a UNIX socketpair), as this machine has no vsock transport loaded.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

#include "cc_carrier.h"
#include "cc_msg.h"

#define RBUF_CAP (2 * PTTH_CC_MSG_LIMIT)

typedef struct stream_conn {
    ptth_cc_conn base;
    uint8_t *rbuf; /* received bytes [rstart, rend) not yet returned */
    size_t rstart, rend;
    uint8_t *wbuf; /* unsent tail of the last message [woff, wlen) */
    size_t woff, wlen;
    bool broken;
} stream_conn;

static void
make_sockaddr(const ptth_cc_addr *addr, struct sockaddr_vm *svm)
{
    memset(svm, 0, sizeof(*svm));
    svm->svm_family = AF_VSOCK;
    svm->svm_cid = addr->cid;
    svm->svm_port = addr->port;
}

static const char *
vsock_hint(int e)
{
    return e == EAFNOSUPPORT || e == ENODEV || e == EADDRNOTAVAIL ? " (no vsock transport on this machine?)" : "";
}

static int
vs_listen(const ptth_cc_addr *addr, int *out, char *err, size_t errlen)
{
    struct sockaddr_vm svm;
    make_sockaddr(addr, &svm);
    int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "socket(AF_VSOCK): %s%s", strerror(e), vsock_hint(e));
        return -e;
    }
    if (bind(fd, (struct sockaddr *)&svm, sizeof(svm)) != 0 || listen(fd, 64) != 0) {
        int e = errno;
        snprintf(err, errlen, "cannot listen at %s: %s%s", addr->text, strerror(e), vsock_hint(e));
        close(fd);
        return -e;
    }
    *out = fd;
    return 0;
}

static void
vs_unlisten(const ptth_cc_addr *addr, int fd)
{
    (void)addr;
    if (fd >= 0)
        close(fd);
}

static int
vs_adopt(int fd, ptth_cc_conn **out)
{
    stream_conn *c = calloc(1, sizeof(*c));
    if (c != NULL) {
        c->rbuf = malloc(RBUF_CAP);
        c->wbuf = malloc(PTTH_CC_MSG_LIMIT);
    }
    if (c == NULL || c->rbuf == NULL || c->wbuf == NULL) {
        if (c != NULL) {
            free(c->rbuf);
            free(c->wbuf);
        }
        free(c);
        close(fd);
        return -ENOMEM;
    }
    c->base.carrier = &ptth_cc_carrier_vsock;
    c->base.fd = fd;
    *out = &c->base;
    return 0;
}

static int
vs_accept(int lfd, ptth_cc_conn **out, char *err, size_t errlen)
{
    return ptth_cc_carrier_accept(&ptth_cc_carrier_vsock, lfd, out, err, errlen);
}

static int
vs_connect(const ptth_cc_addr *addr, ptth_cc_conn **out, char *err, size_t errlen)
{
    struct sockaddr_vm svm;
    make_sockaddr(addr, &svm);
    int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "socket(AF_VSOCK): %s%s", strerror(e), vsock_hint(e));
        return -e;
    }
    bool connecting = false;
    if (connect(fd, (struct sockaddr *)&svm, sizeof(svm)) != 0) {
        int e = errno;
        if (e != EINPROGRESS) {
            snprintf(err, errlen, "cannot connect to agent at %s: %s%s", addr->text, strerror(e), vsock_hint(e));
            close(fd);
            return -e;
        }
        connecting = true;
    }
    int r = vs_adopt(fd, out);
    if (r != 0) {
        snprintf(err, errlen, "out of memory");
        return r;
    }
    (*out)->connecting = connecting;
    return 0;
}

static int
vs_finish_connect(ptth_cc_conn *c, char *err, size_t errlen)
{
    int soerr = 0;
    socklen_t sl = sizeof(soerr);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
        soerr = errno;
    if (soerr == EINPROGRESS || soerr == EALREADY)
        return -EINPROGRESS;
    if (soerr != 0) {
        snprintf(err, errlen, "cannot connect to agent over vsock: %s", strerror(soerr));
        return -soerr;
    }
    c->connecting = false;
    return 0;
}

static int
vs_flush(ptth_cc_conn *base)
{
    stream_conn *c = (stream_conn *)base;
    while (c->woff < c->wlen) {
        ssize_t n = ptth_cc_carrier_send_some(base->fd, c->wbuf + c->woff, c->wlen - c->woff);
        if (n < 0)
            return (int)n;
        c->woff += (size_t)n;
    }
    c->woff = c->wlen = 0;
    base->send_pending = false;
    return 0;
}

static int
vs_send(ptth_cc_conn *base, const uint8_t *msg, size_t len)
{
    stream_conn *c = (stream_conn *)base;
    if (len > PTTH_CC_MSG_LIMIT)
        return -EMSGSIZE;
    if (base->send_pending) {
        int r = vs_flush(base);
        if (r != 0)
            return r;
    }
    ssize_t n = ptth_cc_carrier_send_some(base->fd, msg, len);
    if (n < 0)
        return (int)n;
    if ((size_t)n < len) {
        /* Taken: the tail waits here; the caller polls for EPOLLOUT. */
        memcpy(c->wbuf, msg + n, len - (size_t)n);
        c->woff = 0;
        c->wlen = len - (size_t)n;
        base->send_pending = true;
    }
    return 0;
}

/* Returns one whole message from the buffered bytes, reading more from the
 * socket while none is complete. */
static ssize_t
vs_recv(ptth_cc_conn *base, uint8_t *buf, size_t cap)
{
    stream_conn *c = (stream_conn *)base;
    if (c->broken)
        return -EPROTO;
    if (cap > PTTH_CC_MSG_LIMIT)
        cap = PTTH_CC_MSG_LIMIT;
    for (;;) {
        size_t have = c->rend - c->rstart;
        if (have >= PTTH_CC_MSG_HEADER) {
            ssize_t total = ptth_cc_msg_frame_length(c->rbuf + c->rstart, cap, NULL);
            if (total < 0) {
                c->broken = true; /* a byte stream cannot resynchronise */
                return total;
            }
            if (have >= (size_t)total) {
                memcpy(buf, c->rbuf + c->rstart, (size_t)total);
                c->rstart += (size_t)total;
                if (c->rstart == c->rend)
                    c->rstart = c->rend = 0;
                return total;
            }
        }
        if (c->rstart > 0 && RBUF_CAP - c->rend < PTTH_CC_MSG_LIMIT) {
            memmove(c->rbuf, c->rbuf + c->rstart, have);
            c->rstart = 0;
            c->rend = have;
        }
        ssize_t n;
        do {
            n = recv(base->fd, c->rbuf + c->rend, RBUF_CAP - c->rend, MSG_DONTWAIT);
        } while (n < 0 && errno == EINTR);
        if (n < 0)
            return errno == EWOULDBLOCK ? -EAGAIN : -errno;
        if (n == 0) {
            if (have == 0)
                return 0;
            c->broken = true;
            return -EBADMSG; /* the peer closed in the middle of a message */
        }
        c->rend += (size_t)n;
    }
}

static void
vs_close(ptth_cc_conn *base)
{
    if (base == NULL)
        return;
    stream_conn *c = (stream_conn *)base;
    if (base->fd >= 0)
        close(base->fd);
    free(c->rbuf);
    free(c->wbuf);
    free(c);
}

const ptth_cc_carrier ptth_cc_carrier_vsock = {
    .name = "vsock",
    .listen = vs_listen,
    .accept = vs_accept,
    .unlisten = vs_unlisten,
    .connect = vs_connect,
    .finish_connect = vs_finish_connect,
    .adopt = vs_adopt,
    .send = vs_send,
    .flush = vs_flush,
    .recv = vs_recv,
    .close = vs_close,
};
