/*
 * peerwatch.c: see peerwatch.h.
 */
#include "peerwatch.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

/* The set became readable: some watched peers closed. One event per
 * epoll_wait, because a callback may stop (and free) other watches that a
 * bigger batch would already have fetched. */
static void
on_set_ready(h2o_socket_t *sock, const char *err)
{
    ptth_peerset *ps = sock->data;
    if (err != NULL)
        return;
    for (;;) {
        struct epoll_event ev;
        int n = epoll_wait(ps->epfd, &ev, 1, 0);
        if (n <= 0)
            return;
        ptth_peer_watch *w = ev.data.ptr;
        ptth_peer_watch_cb cb = w->cb;
        ptth_peer_watch_stop(w);
        cb(w);
    }
}

int
ptth_peerset_init(ptth_peerset *ps, h2o_loop_t *loop)
{
    memset(ps, 0, sizeof(*ps));
    ps->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (ps->epfd < 0) {
        int e = errno;
        ps->epfd = -1;
        return -e;
    }
    ps->sock = h2o_evloop_socket_create(loop, ps->epfd, H2O_SOCKET_FLAG_DONT_READ);
    ps->sock->data = ps;
    h2o_socket_read_start(ps->sock, on_set_ready);
    return 0;
}

void
ptth_peerset_dispose(ptth_peerset *ps)
{
    if (ps->sock == NULL)
        return;
    h2o_socket_read_stop(ps->sock);
    h2o_socket_close(ps->sock); /* closes epfd */
    ps->sock = NULL;
    ps->epfd = -1;
}

bool
ptth_peer_watch_start(ptth_peerset *ps, ptth_peer_watch *w, h2o_req_t *req, ptth_peer_watch_cb cb)
{
    ptth_peer_watch_stop(w);
    if (ps == NULL || ps->sock == NULL || req == NULL || req->version >= 0x200 || req->conn->callbacks->get_socket == NULL)
        return false;
    h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
    if (sock == NULL)
        return false;
    struct epoll_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLRDHUP;
    ev.data.ptr = w;
    int fd = h2o_socket_get_fd(sock);
    if (epoll_ctl(ps->epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
        return false;
    w->cb = cb;
    w->set = ps;
    w->fd = fd;
    ps->count++;
    return true;
}

void
ptth_peer_watch_stop(ptth_peer_watch *w)
{
    if (w->set == NULL)
        return;
    struct epoll_event ev; /* ignored, but kernels before 2.6.9 wanted one */
    epoll_ctl(w->set->epfd, EPOLL_CTL_DEL, w->fd, &ev);
    w->set->count--;
    w->set = NULL;
}
