/* metrics_server.c: the terminators' /metrics responder on the loop; see metrics_server.h. */
#include "metrics_server.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "metrics_req.h"
#include "sysutil.h"

typedef struct mconn {
    ptth_metrics_server *srv;
    struct mconn *prev, *next;
    int fd;
    ptth_watch watch;
    ptth_timer timer;
    char in[PTTH_METRICS_REQ_MAX];
    size_t in_len;
    ptth_sbuf out; /* the whole answer, once known */
    size_t out_off;
} mconn;

struct ptth_metrics_server {
    ptth_loop *loop;
    int lfd;
    ptth_watch watch;
    ptth_term_metrics *metrics;
    void (*live)(void *data, ptth_term_metrics *m);
    void *live_data;
    mconn *conns;
    unsigned n_conns;
    char bound[96];
};

static void
conn_close(mconn *c)
{
    ptth_metrics_server *s = c->srv;
    ptth_watch_stop(&c->watch);
    ptth_timer_stop(s->loop, &c->timer);
    close(c->fd);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    s->n_conns--;
    ptth_sbuf_free(&c->out);
    free(c);
}

static void
on_conn_timeout(ptth_timer *t)
{
    conn_close(t->data);
}

/* Writes what the socket takes; closes the connection once all is out. */
static void
conn_write(mconn *c)
{
    while (c->out_off < c->out.len) {
        ssize_t n = send(c->fd, c->out.p + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            ptth_watch_set(&c->watch, EPOLLOUT);
            return;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        c->out_off += (size_t)n;
    }
    /* all sent (or the peer is gone): a FIN after the answer, then close */
    shutdown(c->fd, SHUT_WR);
    conn_close(c);
}

static void
conn_answer(mconn *c, int status)
{
    ptth_metrics_server *s = c->srv;
    ptth_sbuf body = {0};
    if (status == 200) {
        ptth_tm_render(s->metrics, s->live, s->live_data, &body);
        if (body.failed)
            status = 503;
    }
    ptth_metrics_response(&c->out, status, body.p, body.len);
    ptth_sbuf_free(&body);
    if (c->out.failed) {
        conn_close(c);
        return;
    }
    c->out_off = 0;
    conn_write(c);
}

static void
on_conn_event(ptth_watch *w, uint32_t events)
{
    mconn *c = w->data;
    if (c->out.p != NULL) {
        conn_write(c);
        return;
    }
    if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) == 0)
        return;
    ssize_t n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        conn_close(c); /* closed or reset before a whole head came */
        return;
    }
    c->in_len += (size_t)n;
    int status = ptth_metrics_req_status(c->in, c->in_len);
    if (status != 0)
        conn_answer(c, status);
}

static void
on_accept(ptth_watch *w, uint32_t events)
{
    (void)events;
    ptth_metrics_server *s = w->data;
    for (int i = 0; i < 16; i++) {
        int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
                ptth_log_warn("event=metrics_accept_failed listen=%s error=\"%s\"", s->bound, strerror(errno));
            return;
        }
        mconn *c = s->n_conns < PTTH_METRICS_CONNS_MAX ? calloc(1, sizeof(*c)) : NULL;
        if (c == NULL) {
            close(fd); /* too many scrapers at once (or no memory): they retry */
            continue;
        }
        c->srv = s;
        c->fd = fd;
        if (ptth_watch_start(s->loop, &c->watch, fd, EPOLLIN, on_conn_event, c) != 0) {
            close(fd);
            free(c);
            continue;
        }
        c->next = s->conns;
        if (s->conns != NULL)
            s->conns->prev = c;
        s->conns = c;
        s->n_conns++;
        ptth_timer_start(s->loop, &c->timer, PTTH_METRICS_CONN_MS, on_conn_timeout, c);
    }
}

static int
bind_listen(ptth_metrics_server *s, const char *addr, char *err, size_t errlen)
{
    char host[256];
    uint16_t port;
    if (ptth_check_listen(addr, err, errlen) != 0 || ptth_split_host_port(addr, host, sizeof(host), &port, true) != 0)
        return -EINVAL;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char portstr[8];
    snprintf(portstr, sizeof(portstr), "%u", (unsigned)port);
    int gai = getaddrinfo(host, portstr, &hints, &res);
    if (gai != 0) {
        snprintf(err, errlen, "--metrics-listen %s: %s", addr, gai_strerror(gai));
        return -EINVAL;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    int rc = 0;
    if (fd < 0) {
        rc = -errno;
    } else {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (res->ai_family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
        if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 64) != 0)
            rc = -errno;
    }
    freeaddrinfo(res);
    if (rc != 0) {
        snprintf(err, errlen, "--metrics-listen: cannot listen on %s: %s", addr, strerror(-rc));
        if (fd >= 0)
            close(fd);
        return rc;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    ptth_format_sockaddr((struct sockaddr *)&ss, s->bound, sizeof(s->bound));
    s->lfd = fd;
    return 0;
}

int
ptth_metrics_server_new(ptth_loop *loop, const char *addr, ptth_term_metrics *m, ptth_metrics_server **out, char *err,
                        size_t errlen)
{
    *out = NULL;
    ptth_metrics_server *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    s->loop = loop;
    s->lfd = -1;
    s->metrics = m;
    int rc = bind_listen(s, addr, err, errlen);
    if (rc == 0) {
        rc = ptth_watch_start(loop, &s->watch, s->lfd, EPOLLIN, on_accept, s);
        if (rc != 0)
            snprintf(err, errlen, "--metrics-listen %s: cannot watch the socket: %s", addr, strerror(-rc));
    }
    if (rc != 0) {
        ptth_metrics_server_free(s);
        return rc;
    }
    ptth_log_info("event=metrics_listen listen=%s path=/metrics", s->bound);
    *out = s;
    return 0;
}

void
ptth_metrics_server_set_live(ptth_metrics_server *s, void (*live)(void *data, ptth_term_metrics *m), void *data)
{
    s->live = live;
    s->live_data = data;
}

const char *
ptth_metrics_server_address(const ptth_metrics_server *s)
{
    return s->bound;
}

void
ptth_metrics_server_free(ptth_metrics_server *s)
{
    if (s == NULL)
        return;
    while (s->conns != NULL)
        conn_close(s->conns);
    ptth_watch_stop(&s->watch);
    if (s->lfd >= 0)
        close(s->lfd);
    free(s);
}
