/* curl_loop.c: a libcurl multi handle on the epoll loop; see curl_loop.h. */
#include "curl_loop.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>

/* One socket libcurl wants watched. */
struct ptth_curl_sock {
    ptth_watch watch;
    ptth_curl_loop *cl;
    curl_socket_t fd;
    struct ptth_curl_sock *prev, *next;
};

static void
on_sock_event(ptth_watch *w, uint32_t events)
{
    struct ptth_curl_sock *s = w->data;
    ptth_curl_loop *cl = s->cl;
    int flags = 0, running;
    if (events & (EPOLLIN | EPOLLHUP))
        flags |= CURL_CSELECT_IN;
    if (events & EPOLLOUT)
        flags |= CURL_CSELECT_OUT;
    if (events & EPOLLERR)
        flags |= CURL_CSELECT_ERR;
    /* s may be freed inside (CURL_POLL_REMOVE): not touched afterwards */
    curl_multi_socket_action(cl->multi, s->fd, flags, &running);
    cl->after(cl->data);
}

static void
sock_free(struct ptth_curl_sock *s)
{
    ptth_watch_stop(&s->watch);
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        s->cl->socks = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    free(s);
}

static int
on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    ptth_curl_loop *cl = userp;
    struct ptth_curl_sock *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s != NULL) {
            curl_multi_assign(cl->multi, fd, NULL);
            sock_free(s);
        }
        return 0;
    }
    uint32_t ev = 0;
    if (what & CURL_POLL_IN)
        ev |= EPOLLIN;
    if (what & CURL_POLL_OUT)
        ev |= EPOLLOUT;
    if (s != NULL) {
        ptth_watch_set(&s->watch, ev);
        return 0;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -1;
    s->cl = cl;
    s->fd = fd;
    if (ptth_watch_start(cl->loop, &s->watch, fd, ev, on_sock_event, s) != 0) {
        free(s);
        return -1;
    }
    s->next = cl->socks;
    if (cl->socks != NULL)
        cl->socks->prev = s;
    cl->socks = s;
    curl_multi_assign(cl->multi, fd, s);
    return 0;
}

static void
on_multi_timer(ptth_timer *t)
{
    ptth_curl_loop *cl = t->data;
    int running;
    curl_multi_socket_action(cl->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    cl->after(cl->data);
}

static int
on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    ptth_curl_loop *cl = userp;
    if (timeout_ms < 0)
        ptth_timer_stop(cl->loop, &cl->timer);
    else
        ptth_timer_start(cl->loop, &cl->timer, timeout_ms, on_multi_timer, cl);
    return 0;
}

int
ptth_curl_loop_init(ptth_curl_loop *cl, ptth_loop *loop, void (*after)(void *data), void *data)
{
    cl->loop = loop;
    cl->after = after;
    cl->data = data;
    cl->socks = NULL;
    cl->multi = curl_multi_init();
    if (cl->multi == NULL)
        return -ENOMEM;
    curl_multi_setopt(cl->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(cl->multi, CURLMOPT_SOCKETDATA, cl);
    curl_multi_setopt(cl->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(cl->multi, CURLMOPT_TIMERDATA, cl);
    return 0;
}

void
ptth_curl_loop_cleanup(ptth_curl_loop *cl)
{
    if (cl->multi == NULL)
        return;
    curl_multi_cleanup(cl->multi);
    cl->multi = NULL;
    while (cl->socks != NULL)
        sock_free(cl->socks);
    ptth_timer_stop(cl->loop, &cl->timer);
}
