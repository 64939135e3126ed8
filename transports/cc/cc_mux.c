/*
 * cc_mux.c: tunnels multiplexed over one comm-channel connection, with
 * per-tunnel credit flow control. See cc_mux.h for the contract and
 * docs/comm-channel.md for the protocol.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cc_mux.h"
#include "cc_tunnel.h"
#include "log.h"
#include "sysutil.h"

#define NBUCKETS 1024
#define CHANNEL_READ_BUDGET 64 /* messages per channel event, for fairness */
#define TUNNEL_READ_BUDGET 4   /* DATA messages per tunnel event */

struct ptth_cc_chunk {
    ptth_cc_chunk *next;
    size_t off, len;
    uint8_t data[];
};

struct ptth_cc_outmsg {
    struct ptth_cc_outmsg *next;
    size_t len;
    uint8_t data[];
};

static void update_channel(ptth_cc_mux *m);
static void update_tunnel(ptth_cc_mux *m, ptth_cc_tunnel *t);

void
ptth_cc_mux_fail(ptth_cc_mux *m, const char *fmt, ...)
{
    if (m->dead != NULL)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->dead_buf, sizeof(m->dead_buf), fmt, ap);
    va_end(ap);
    m->dead = m->dead_buf;
}

/* ---- id table ---------------------------------------------------------- */

static ptth_cc_tunnel *
find_tunnel(ptth_cc_mux *m, uint32_t id)
{
    for (ptth_cc_tunnel *t = m->buckets[id % m->nbuckets]; t != NULL; t = t->hnext)
        if (t->id == id)
            return t;
    return NULL;
}

static void
insert_tunnel(ptth_cc_mux *m, ptth_cc_tunnel *t)
{
    size_t b = t->id % m->nbuckets;
    t->hnext = m->buckets[b];
    m->buckets[b] = t;
    t->prev = NULL;
    t->next = m->list;
    if (m->list != NULL)
        m->list->prev = t;
    m->list = t;
    m->ntunnels++;
}

static void
remove_tunnel(ptth_cc_mux *m, ptth_cc_tunnel *t)
{
    ptth_cc_tunnel **pp = &m->buckets[t->id % m->nbuckets];
    while (*pp != NULL && *pp != t)
        pp = &(*pp)->hnext;
    if (*pp == t)
        *pp = t->hnext;
    if (t->prev != NULL)
        t->prev->next = t->next;
    else
        m->list = t->next;
    if (t->next != NULL)
        t->next->prev = t->prev;
    t->prev = t->next = NULL;
    m->ntunnels--;
}

/* ---- sending on the channel ------------------------------------------- */

/* Sends now when nothing is queued (the usual case, no copy); otherwise, or
 * when the carrier is full, keeps a copy in the queue. */
static void
chan_send(ptth_cc_mux *m, const uint8_t *msg, size_t len)
{
    if (m->dead != NULL)
        return;
    if (m->out_head == NULL && !m->conn->connecting && !m->conn->send_pending) {
        int r = m->conn->carrier->send(m->conn, msg, len);
        if (r == 0) {
            if (m->conn->send_pending)
                update_channel(m);
            return;
        }
        if (r != -EAGAIN) {
            ptth_cc_mux_fail(m, "channel send failed: %s", strerror(-r));
            return;
        }
    }
    struct ptth_cc_outmsg *o = malloc(sizeof(*o) + len);
    if (o == NULL) {
        ptth_cc_mux_fail(m, "out of memory queueing a channel message");
        return;
    }
    o->next = NULL;
    o->len = len;
    memcpy(o->data, msg, len);
    if (m->out_tail != NULL)
        m->out_tail->next = o;
    else
        m->out_head = o;
    m->out_tail = o;
    m->out_count++;
    if (m->out_count >= PTTH_CC_OUTQ_HIGH)
        m->out_blocked = true;
    update_channel(m);
}

static void
send_simple(ptth_cc_mux *m, uint8_t type, uint32_t id, const char *text)
{
    uint8_t buf[PTTH_CC_MSG_HEADER + PTTH_CC_TEXT_MAX];
    size_t len = text != NULL ? strlen(text) : 0;
    if (len > PTTH_CC_TEXT_MAX)
        len = PTTH_CC_TEXT_MAX;
    ssize_t n = ptth_cc_msg_encode(buf, sizeof(buf), type, id, text, len);
    if (n > 0)
        chan_send(m, buf, (size_t)n);
}

static uint32_t
credit_threshold(const ptth_cc_mux *m)
{
    uint32_t th = m->cfg.window / 4;
    return th > 0 ? th : 1;
}

static void
send_credit(ptth_cc_mux *m, ptth_cc_tunnel *t)
{
    uint8_t buf[PTTH_CC_MSG_HEADER + 4];
    size_t n = ptth_cc_msg_encode_credit(buf, t->id, t->credit_ready);
    t->recv_held -= t->credit_ready;
    t->credit_ready = 0;
    chan_send(m, buf, n);
}

/* One DATA message was written whole into the local socket. */
static void
consumed(ptth_cc_mux *m, ptth_cc_tunnel *t)
{
    t->credit_ready++;
    if (t->credit_ready >= credit_threshold(m))
        send_credit(m, t);
}

/* ---- epoll interest --------------------------------------------------- */

static void
update_channel(ptth_cc_mux *m)
{
    if (m->conn == NULL)
        return;
    uint32_t want = 0;
    if (m->out_count < PTTH_CC_OUTQ_HARD && !m->conn->connecting)
        want |= EPOLLIN;
    if (m->out_head != NULL || m->conn->send_pending || m->conn->connecting)
        want |= EPOLLOUT;
    if (want == m->ch_events)
        return;
    struct epoll_event ev = {.events = want, .data.ptr = &m->watch};
    if (epoll_ctl(m->epfd, EPOLL_CTL_MOD, m->conn->fd, &ev) != 0) {
        ptth_cc_mux_fail(m, "epoll_ctl on the channel: %s", strerror(errno));
        return;
    }
    m->ch_events = want;
}

static bool
can_read_local(const ptth_cc_tunnel *t)
{
    return t->fd >= 0 && ptth_cc_tunnel_is_open(t) && !t->local_eof && !t->aborted && t->send_credit > 0;
}

static uint32_t
tunnel_want(const ptth_cc_mux *m, const ptth_cc_tunnel *t)
{
    if (t->state == PTTH_CC_T_DEAD || t->fd < 0 || t->aborted)
        return 0;
    if (t->state == PTTH_CC_T_OPENING)
        return m->cfg.side == PTTH_CC_SIDE_AGENT ? EPOLLOUT : 0;
    uint32_t want = 0;
    bool reads = t->state != PTTH_CC_T_CLOSING || m->cfg.side == PTTH_CC_SIDE_HOST; /* a closing agent tunnel only writes */
    if (reads && can_read_local(t) && !m->out_blocked)
        want |= EPOLLIN;
    if (t->in_head != NULL)
        want |= EPOLLOUT;
    return want;
}

static void
update_tunnel(ptth_cc_mux *m, ptth_cc_tunnel *t)
{
    uint32_t want = tunnel_want(m, t);
    if (want == t->events)
        return;
    struct epoll_event ev = {.events = want, .data.ptr = &t->watch};
    int op = want == 0 ? EPOLL_CTL_DEL : t->events == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
    if (epoll_ctl(m->epfd, op, t->fd, &ev) != 0 && op != EPOLL_CTL_DEL) {
        ptth_log_warn("event=cc_epoll_failed tunnel=%u error=%d", t->id, errno);
        want = 0;
    }
    t->events = want;
}

static void
unregister_tunnel(ptth_cc_mux *m, ptth_cc_tunnel *t)
{
    if (t->events != 0 && t->fd >= 0)
        epoll_ctl(m->epfd, EPOLL_CTL_DEL, t->fd, NULL);
    t->events = 0;
}

static void
free_chunks(ptth_cc_tunnel *t)
{
    while (t->in_head != NULL) {
        ptth_cc_chunk *c = t->in_head;
        t->in_head = c->next;
        free(c);
    }
    t->in_tail = NULL;
}

static void
close_local(ptth_cc_mux *m, ptth_cc_tunnel *t)
{
    unregister_tunnel(m, t);
    if (t->fd >= 0)
        close(t->fd);
    t->fd = -1;
    free_chunks(t);
}

/* ---- tunnel ends -------------------------------------------------------- */

static void
end_tunnel(ptth_cc_mux *m, ptth_cc_tunnel *t, const char *reason, bool notify)
{
    if (t->state == PTTH_CC_T_DEAD)
        return;
    if (notify && m->hooks->on_end != NULL)
        m->hooks->on_end(m->ctx, t, reason);
    ptth_cc_tunnel_set_state(m, t, PTTH_CC_T_DEAD);
    remove_tunnel(m, t);
    close_local(m, t);
    t->next = m->graveyard;
    m->graveyard = t;
}

/* The local socket failed. Agent: tell the host (ABORT) and keep the tunnel
 * until its CLOSE. Host: the terminator's end is gone; its close() follows. */
static void
local_broken(ptth_cc_mux *m, ptth_cc_tunnel *t, int err, const char *op)
{
    char reason[PTTH_CC_TEXT_MAX + 1];
    snprintf(reason, sizeof(reason), "%s: %s", op, strerror(err));
    ptth_log_debug("event=cc_local_broken side=%s tunnel=%u reason=\"%s\"", m->cfg.side == PTTH_CC_SIDE_AGENT ? "agent" : "host",
                   t->id, reason);
    t->aborted = true;
    close_local(m, t);
    if (m->cfg.side == PTTH_CC_SIDE_AGENT && t->state != PTTH_CC_T_CLOSING)
        send_simple(m, PTTH_CC_ABORT, t->id, reason);
}

/* A closing tunnel whose local side has nothing more to deliver ends now:
 * host: everything read and sent (FIN sent) or the socket broke -> CLOSE;
 * agent: everything written to TARGET (shut down) or the socket broke. */
static void
maybe_finish_closing(ptth_cc_mux *m, ptth_cc_tunnel *t)
{
    if (t->state != PTTH_CC_T_CLOSING)
        return;
    bool done =
        t->aborted || t->fd < 0 || (m->cfg.side == PTTH_CC_SIDE_HOST ? t->local_eof : (t->in_head == NULL && t->in == PTTH_CC_IN_SHUT));
    if (!done)
        return;
    if (m->cfg.side == PTTH_CC_SIDE_HOST)
        send_simple(m, PTTH_CC_CLOSE, t->id, NULL);
    end_tunnel(m, t, "close", true);
}

/* ---- local socket I/O --------------------------------------------------- */

static void
tunnel_read(ptth_cc_mux *m, ptth_cc_tunnel *t)
{
    size_t room = m->send_max - PTTH_CC_MSG_HEADER;
    for (int budget = TUNNEL_READ_BUDGET; budget > 0 && can_read_local(t) && m->dead == NULL; budget--) {
        if (m->out_blocked)
            break; /* resume_tunnels() watches it again */
        ssize_t n = recv(t->fd, m->sbuf + PTTH_CC_MSG_HEADER, room, MSG_DONTWAIT);
        if (n > 0) {
            ptth_cc_msg_put_header(m->sbuf, PTTH_CC_DATA, t->id, (size_t)n);
            t->send_credit--;
            t->bytes_out += (uint64_t)n;
            chan_send(m, m->sbuf, PTTH_CC_MSG_HEADER + (size_t)n);
        } else if (n == 0) {
            t->local_eof = true;
            send_simple(m, PTTH_CC_FIN, t->id, NULL);
        } else if (errno == EINTR) {
            budget++;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            break;
        } else {
            local_broken(m, t, errno, m->cfg.side == PTTH_CC_SIDE_AGENT ? "target read" : "read");
            maybe_finish_closing(m, t);
            return;
        }
    }
    maybe_finish_closing(m, t);
    if (t->state != PTTH_CC_T_DEAD)
        update_tunnel(m, t);
}

static void
maybe_shutdown(ptth_cc_tunnel *t)
{
    if (t->in == PTTH_CC_IN_FIN && t->in_head == NULL && t->fd >= 0) {
        shutdown(t->fd, SHUT_WR);
        t->in = PTTH_CC_IN_SHUT;
    }
}

static void
tunnel_flush_in(ptth_cc_mux *m, ptth_cc_tunnel *t)
{
    while (t->in_head != NULL && t->fd >= 0) {
        ptth_cc_chunk *c = t->in_head;
        ssize_t n = send(t->fd, c->data + c->off, c->len - c->off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            local_broken(m, t, errno, m->cfg.side == PTTH_CC_SIDE_AGENT ? "target write" : "write");
            maybe_finish_closing(m, t);
            return;
        }
        c->off += (size_t)n;
        if (c->off == c->len) {
            t->in_head = c->next;
            if (t->in_head == NULL)
                t->in_tail = NULL;
            free(c);
            consumed(m, t);
        }
    }
    maybe_shutdown(t);
    maybe_finish_closing(m, t);
    if (t->state != PTTH_CC_T_DEAD)
        update_tunnel(m, t);
}

static void
queue_chunk(ptth_cc_mux *m, ptth_cc_tunnel *t, const uint8_t *p, size_t len)
{
    ptth_cc_chunk *c = malloc(sizeof(*c) + len);
    if (c == NULL) {
        local_broken(m, t, ENOMEM, "buffer");
        return;
    }
    c->next = NULL;
    c->off = 0;
    c->len = len;
    memcpy(c->data, p, len);
    if (t->in_tail != NULL)
        t->in_tail->next = c;
    else
        t->in_head = c;
    t->in_tail = c;
}

/* DATA from the channel: write it now when nothing waits before it, keep
 * the rest (bounded by the window the peer must respect). */
static void
on_data(ptth_cc_mux *m, ptth_cc_tunnel *t, const uint8_t *p, size_t len)
{
    if (!ptth_cc_tunnel_is_open(t) || t->in != PTTH_CC_IN_OPEN) {
        ptth_cc_mux_fail(m, "protocol error: DATA on tunnel %u %s", t->id, ptth_cc_tunnel_is_open(t) ? "after FIN" : "before it opened");
        return;
    }
    if (t->recv_held >= m->cfg.window) {
        ptth_cc_mux_fail(m, "protocol error: tunnel %u exceeded its window of %u messages", t->id, m->cfg.window);
        return;
    }
    t->recv_held++;
    t->bytes_in += len;
    if (t->aborted || t->fd < 0 || t->state == PTTH_CC_T_CLOSING)
        return; /* dropped; no credit: the tunnel is ending */
    if (t->in_head == NULL) {
        ssize_t n;
        do {
            n = send(t->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        } while (n < 0 && errno == EINTR);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                local_broken(m, t, errno, m->cfg.side == PTTH_CC_SIDE_AGENT ? "target write" : "write");
                return;
            }
            n = 0;
        }
        if ((size_t)n == len) {
            consumed(m, t);
            return;
        }
        p += n;
        len -= (size_t)n;
    }
    queue_chunk(m, t, p, len);
    update_tunnel(m, t);
}

/* ---- channel messages -------------------------------------------------- */

static void
send_hello(ptth_cc_mux *m)
{
    uint8_t buf[PTTH_CC_MSG_HEADER + PTTH_CC_HELLO_LEN];
    ptth_cc_hello h = {.version = PTTH_CC_PROTO_VERSION,
                       .max_msg = m->cfg.max_msg,
                       .window = m->cfg.window,
                       .max_clients = m->cfg.side == PTTH_CC_SIDE_AGENT ? m->cfg.max_clients : 0};
    size_t n = ptth_cc_msg_encode_hello(buf, &h);
    chan_send(m, buf, n);
}

static void
on_hello(ptth_cc_mux *m, const ptth_cc_msg *msg)
{
    const char *why = NULL;
    if (m->hello_seen) {
        ptth_cc_mux_fail(m, "protocol error: second HELLO");
        return;
    }
    if (ptth_cc_msg_parse_hello(msg, &m->peer_hello, &why) != 0) {
        ptth_cc_mux_fail(m, "protocol error: %s", why);
        return;
    }
    if (m->peer_hello.version != PTTH_CC_PROTO_VERSION) {
        ptth_cc_mux_fail(m, "peer speaks protocol version %u, this side %u", m->peer_hello.version, PTTH_CC_PROTO_VERSION);
        return;
    }
    m->hello_seen = true;
    m->send_max = m->peer_hello.max_msg < m->cfg.max_msg ? m->peer_hello.max_msg : m->cfg.max_msg;
}

static void
agent_on_open(ptth_cc_mux *m, const ptth_cc_msg *msg)
{
    if (find_tunnel(m, msg->tunnel) != NULL) {
        ptth_cc_mux_fail(m, "protocol error: OPEN of tunnel %u which is open", msg->tunnel);
        return;
    }
    ptth_cc_tunnel *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        send_simple(m, PTTH_CC_OPEN_FAIL, msg->tunnel, "agent out of memory");
        return;
    }
    t->watch.kind = PTTH_CC_WATCH_TUNNEL;
    t->mux = m;
    t->id = msg->tunnel;
    t->fd = -1;
    insert_tunnel(m, t);
    ptth_cc_tunnel_set_state(m, t, PTTH_CC_T_OPENING);
    char client[PTTH_CC_TEXT_MAX + 1];
    memcpy(client, msg->payload, msg->len);
    client[msg->len] = '\0';
    char reason[PTTH_CC_TEXT_MAX + 1] = "";
    int r = m->hooks->on_open(m->ctx, t, client, reason, sizeof(reason));
    if (r != 0) {
        send_simple(m, PTTH_CC_OPEN_FAIL, t->id, reason[0] ? reason : strerror(-r));
        end_tunnel(m, t, "open_failed", false);
        return;
    }
    update_tunnel(m, t);
}

static void
mark_open(ptth_cc_mux *m, ptth_cc_tunnel *t)
{
    ptth_cc_tunnel_set_state(m, t, PTTH_CC_T_OPEN);
    t->send_credit = m->peer_hello.window;
}

/* Agent: the target socket of an opening tunnel is writable (or failed). */
static void
agent_on_connect(ptth_cc_mux *m, ptth_cc_tunnel *t)
{
    char reason[PTTH_CC_TEXT_MAX + 1] = "";
    unregister_tunnel(m, t);
    int r = m->hooks->on_connect(m->ctx, t, reason, sizeof(reason));
    if (r == -EINPROGRESS) {
        update_tunnel(m, t);
        return;
    }
    if (r != 0) {
        send_simple(m, PTTH_CC_OPEN_FAIL, t->id, reason[0] ? reason : strerror(-r));
        end_tunnel(m, t, "open_failed", true);
        return;
    }
    mark_open(m, t);
    send_simple(m, PTTH_CC_OPEN_OK, t->id, NULL);
    update_tunnel(m, t);
}

static void
text_of(const ptth_cc_msg *msg, char *out, size_t outlen, const char *dflt)
{
    size_t n = msg->len < outlen - 1 ? msg->len : outlen - 1;
    memcpy(out, msg->payload, n);
    out[n] = '\0';
    if (n == 0)
        snprintf(out, outlen, "%s", dflt);
}

static bool
direction_ok(const ptth_cc_mux *m, uint8_t type)
{
    switch (type) {
    case PTTH_CC_OPEN:
    case PTTH_CC_CLOSE:
        return m->cfg.side == PTTH_CC_SIDE_AGENT;
    case PTTH_CC_OPEN_OK:
    case PTTH_CC_OPEN_FAIL:
    case PTTH_CC_ABORT:
        return m->cfg.side == PTTH_CC_SIDE_HOST;
    default:
        return true;
    }
}

static void
dispatch(ptth_cc_mux *m, const ptth_cc_msg *msg)
{
    if (msg->type == PTTH_CC_HELLO) {
        on_hello(m, msg);
        return;
    }
    if (!m->hello_seen) {
        ptth_cc_mux_fail(m, "protocol error: %s before HELLO", ptth_cc_msg_type_name(msg->type));
        return;
    }
    if (!direction_ok(m, msg->type)) {
        ptth_cc_mux_fail(m, "protocol error: %s sent the wrong way", ptth_cc_msg_type_name(msg->type));
        return;
    }
    if (msg->type == PTTH_CC_OPEN) {
        agent_on_open(m, msg);
        return;
    }
    ptth_cc_tunnel *t = find_tunnel(m, msg->tunnel);
    if (t == NULL) {
        /* A message that crossed our CLOSE / OPEN_FAIL / timeout: harmless. */
        ptth_log_debug("event=cc_stale_message type=%s tunnel=%u", ptth_cc_msg_type_name(msg->type), msg->tunnel);
        return;
    }
    char text[PTTH_CC_TEXT_MAX + 1];
    switch (msg->type) {
    case PTTH_CC_DATA:
        on_data(m, t, msg->payload, msg->len);
        break;
    case PTTH_CC_FIN:
        if (!ptth_cc_tunnel_is_open(t) || t->in != PTTH_CC_IN_OPEN) {
            ptth_cc_mux_fail(m, "protocol error: FIN on tunnel %u %s", t->id, ptth_cc_tunnel_is_open(t) ? "twice" : "before it opened");
            return;
        }
        t->in = PTTH_CC_IN_FIN;
        if (!t->aborted && t->state != PTTH_CC_T_CLOSING) {
            maybe_shutdown(t);
            update_tunnel(m, t);
        }
        break;
    case PTTH_CC_CREDIT: {
        uint32_t n = ptth_cc_msg_credit_count(msg);
        if (!ptth_cc_tunnel_is_open(t) || n > m->peer_hello.window || t->send_credit > m->peer_hello.window - n) {
            ptth_cc_mux_fail(m, "protocol error: CREDIT of %u on tunnel %u beyond the window", n, t->id);
            return;
        }
        t->send_credit += n;
        update_tunnel(m, t);
        break;
    }
    case PTTH_CC_OPEN_OK:
        if (t->state != PTTH_CC_T_OPENING) {
            ptth_cc_mux_fail(m, "protocol error: OPEN_OK on tunnel %u which is not opening", t->id);
            return;
        }
        mark_open(m, t);
        if (m->hooks->on_open_result != NULL)
            m->hooks->on_open_result(m->ctx, t, true, NULL);
        update_tunnel(m, t);
        break;
    case PTTH_CC_OPEN_FAIL:
        if (t->state != PTTH_CC_T_OPENING) {
            ptth_cc_mux_fail(m, "protocol error: OPEN_FAIL on tunnel %u which is not opening", t->id);
            return;
        }
        text_of(msg, text, sizeof(text), "refused by the agent");
        if (m->hooks->on_open_result != NULL)
            m->hooks->on_open_result(m->ctx, t, false, text);
        end_tunnel(m, t, "open_failed", true);
        break;
    case PTTH_CC_ABORT:
        if (!ptth_cc_tunnel_is_open(t)) {
            ptth_cc_mux_fail(m, "protocol error: ABORT on tunnel %u which is not open", t->id);
            return;
        }
        if (!t->aborted) {
            text_of(msg, text, sizeof(text), "target connection broke");
            t->aborted = true;
            if (m->hooks->on_abort != NULL)
                m->hooks->on_abort(m->ctx, t, text);
            close_local(m, t);
            maybe_finish_closing(m, t);
        }
        break;
    case PTTH_CC_CLOSE:
        if (t->in != PTTH_CC_IN_OPEN && t->in_head != NULL && t->fd >= 0 && !t->aborted && t->state == PTTH_CC_T_OPEN) {
            /* graceful: TARGET still gets what the host sent before its FIN */
            ptth_cc_tunnel_set_state(m, t, PTTH_CC_T_CLOSING);
            update_tunnel(m, t);
        } else {
            end_tunnel(m, t, "close", true);
        }
        break;
    default:
        break;
    }
}

static void
chan_read(ptth_cc_mux *m)
{
    for (int i = 0; i < CHANNEL_READ_BUDGET && m->dead == NULL; i++) {
        if (m->out_count >= PTTH_CC_OUTQ_HARD)
            break;
        ssize_t n = m->conn->carrier->recv(m->conn, m->rbuf, m->cfg.max_msg);
        if (n == -EAGAIN)
            break;
        if (n == 0) {
            ptth_cc_mux_fail(m, "%s closed the channel", m->cfg.side == PTTH_CC_SIDE_AGENT ? "host" : "agent");
            break;
        }
        if (n < 0) {
            if (n == -EMSGSIZE)
                ptth_cc_mux_fail(m, "protocol error: message larger than %u bytes", m->cfg.max_msg);
            else if (n == -EBADMSG || n == -EPROTO)
                ptth_cc_mux_fail(m, "protocol error: bad framing on the channel");
            else
                ptth_cc_mux_fail(m, "channel receive failed: %s", strerror((int)-n));
            break;
        }
        ptth_cc_msg msg;
        const char *why = "?";
        if (ptth_cc_msg_decode(m->rbuf, (size_t)n, m->cfg.max_msg, &msg, &why) != 0) {
            ptth_cc_mux_fail(m, "protocol error: %s", why);
            break;
        }
        dispatch(m, &msg);
    }
}

/* The channel drained below the low-water mark: every tunnel's interest is
 * computed again, as any of them may have been left without EPOLLIN while
 * the channel was full (by tunnel_read, or by a CREDIT or FIN handled then). */
static void
resume_tunnels(ptth_cc_mux *m)
{
    for (ptth_cc_tunnel *t = m->list; t != NULL; t = t->next)
        update_tunnel(m, t);
}

static void
chan_flush(ptth_cc_mux *m)
{
    ptth_cc_conn *c = m->conn;
    char err[256];
    if (c->connecting) {
        int r = c->carrier->finish_connect(c, err, sizeof(err));
        if (r == -EINPROGRESS)
            return;
        if (r != 0) {
            ptth_cc_mux_fail(m, "%s", err);
            return;
        }
    }
    if (c->send_pending) {
        int r = c->carrier->flush(c);
        if (r == -EAGAIN)
            goto out;
        if (r != 0) {
            ptth_cc_mux_fail(m, "channel send failed: %s", strerror(-r));
            return;
        }
    }
    while (m->out_head != NULL && !c->send_pending) {
        struct ptth_cc_outmsg *o = m->out_head;
        int r = c->carrier->send(c, o->data, o->len);
        if (r == -EAGAIN)
            break;
        if (r != 0) {
            ptth_cc_mux_fail(m, "channel send failed: %s", strerror(-r));
            return;
        }
        m->out_head = o->next;
        if (m->out_head == NULL)
            m->out_tail = NULL;
        m->out_count--;
        free(o);
    }
out:
    if (m->out_blocked && m->out_count < PTTH_CC_OUTQ_LOW) {
        m->out_blocked = false;
        resume_tunnels(m);
    }
    update_channel(m);
}

/* ---- public ------------------------------------------------------------- */

ptth_cc_mux *
ptth_cc_mux_new(const ptth_cc_mux_config *cfg, const ptth_cc_mux_hooks *hooks, void *ctx, int epfd, ptth_cc_conn *conn,
                const char *peer)
{
    ptth_cc_mux *m = calloc(1, sizeof(*m));
    if (m == NULL) {
        conn->carrier->close(conn);
        return NULL;
    }
    m->watch.kind = PTTH_CC_WATCH_CHANNEL;
    m->cfg = *cfg;
    if (m->cfg.max_msg < PTTH_CC_MSG_MIN_MAX)
        m->cfg.max_msg = PTTH_CC_MSG_MIN_MAX;
    if (m->cfg.max_msg > PTTH_CC_MSG_LIMIT)
        m->cfg.max_msg = PTTH_CC_MSG_LIMIT;
    if (m->cfg.window == 0)
        m->cfg.window = PTTH_CC_DEFAULT_WINDOW;
    m->hooks = hooks;
    m->ctx = ctx;
    m->epfd = epfd;
    m->conn = conn;
    snprintf(m->peer, sizeof(m->peer), "%s", peer != NULL ? peer : "?");
    m->send_max = PTTH_CC_MSG_MIN_MAX;
    m->nbuckets = NBUCKETS;
    m->next_id = 1;
    m->buckets = calloc(m->nbuckets, sizeof(*m->buckets));
    m->rbuf = malloc(m->cfg.max_msg);
    m->sbuf = malloc(m->cfg.max_msg);
    if (m->buckets == NULL || m->rbuf == NULL || m->sbuf == NULL)
        goto fail;
    m->ch_events = conn->connecting ? EPOLLOUT : EPOLLIN;
    struct epoll_event ev = {.events = m->ch_events, .data.ptr = &m->watch};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, conn->fd, &ev) != 0)
        goto fail;
    send_hello(m);
    return m;
fail:
    free(m->buckets);
    free(m->rbuf);
    free(m->sbuf);
    conn->carrier->close(conn);
    free(m);
    return NULL;
}

static void
free_graveyard(ptth_cc_mux *m)
{
    while (m->graveyard != NULL) {
        ptth_cc_tunnel *t = m->graveyard;
        m->graveyard = t->next;
        free(t);
    }
}

void
ptth_cc_mux_free(ptth_cc_mux *m)
{
    if (m == NULL)
        return;
    const char *reason = m->dead != NULL ? m->dead : "shutdown";
    while (m->list != NULL)
        end_tunnel(m, m->list, reason, true);
    free_graveyard(m);
    while (m->out_head != NULL) {
        struct ptth_cc_outmsg *o = m->out_head;
        m->out_head = o->next;
        free(o);
    }
    epoll_ctl(m->epfd, EPOLL_CTL_DEL, m->conn->fd, NULL);
    m->conn->carrier->close(m->conn);
    free(m->buckets);
    free(m->rbuf);
    free(m->sbuf);
    free(m);
}

void
ptth_cc_mux_handle(ptth_cc_mux *m, ptth_cc_watch *w, uint32_t events)
{
    if (m->dead != NULL)
        return;
    if (w->kind == PTTH_CC_WATCH_CHANNEL) {
        if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
            if (m->conn->connecting || m->conn->send_pending || m->out_head != NULL)
                chan_flush(m);
        }
        if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) && !m->conn->connecting)
            chan_read(m);
        if (m->dead == NULL)
            update_channel(m);
        return;
    }
    ptth_cc_tunnel *t = (ptth_cc_tunnel *)w;
    if (t->state == PTTH_CC_T_DEAD || t->fd < 0)
        return;
    if (t->state == PTTH_CC_T_OPENING) {
        if (m->cfg.side == PTTH_CC_SIDE_AGENT)
            agent_on_connect(m, t);
        return;
    }
    if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) && t->in_head != NULL)
        tunnel_flush_in(m, t);
    if (t->state != PTTH_CC_T_DEAD && (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) && can_read_local(t))
        tunnel_read(m, t);
    if (t->state != PTTH_CC_T_DEAD && m->dead == NULL)
        update_tunnel(m, t);
}

void
ptth_cc_mux_after_events(ptth_cc_mux *m)
{
    free_graveyard(m);
}

long long
ptth_cc_mux_expire(ptth_cc_mux *m, long long now)
{
    ptth_cc_tunnel *t;
    while ((t = m->closing.head) != NULL && t->deadline <= now) {
        if (m->cfg.side == PTTH_CC_SIDE_HOST)
            send_simple(m, PTTH_CC_CLOSE, t->id, "linger timeout");
        end_tunnel(m, t, "linger_timeout", true);
    }
    while ((t = m->opening.head) != NULL && t->deadline <= now) {
        char reason[PTTH_CC_TEXT_MAX + 1];
        if (m->cfg.side == PTTH_CC_SIDE_HOST) {
            snprintf(reason, sizeof(reason), "agent did not answer within %u ms", m->cfg.open_timeout_ms);
            if (m->hooks->on_open_result != NULL)
                m->hooks->on_open_result(m->ctx, t, false, reason);
            send_simple(m, PTTH_CC_CLOSE, t->id, "open timeout");
        } else {
            snprintf(reason, sizeof(reason), "connecting the target timed out after %u ms", m->cfg.open_timeout_ms);
            send_simple(m, PTTH_CC_OPEN_FAIL, t->id, reason);
        }
        end_tunnel(m, t, "open_timeout", true);
    }
    long long a = m->closing.head != NULL ? m->closing.head->deadline : 0;
    long long b = m->opening.head != NULL ? m->opening.head->deadline : 0;
    return a == 0 ? b : b == 0 || a < b ? a : b;
}

ptth_cc_tunnel *
ptth_cc_mux_open_tunnel(ptth_cc_mux *m, int fd, const char *client, void *user)
{
    if (m->dead != NULL) {
        close(fd);
        return NULL;
    }
    ptth_cc_tunnel *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        close(fd);
        return NULL;
    }
    /* Ids only grow (wrapping past 2^32), so a late answer to an old tunnel
     * can never be taken for the answer to a new one. */
    uint32_t id;
    do {
        id = m->next_id++;
    } while (id == 0 || find_tunnel(m, id) != NULL);
    t->watch.kind = PTTH_CC_WATCH_TUNNEL;
    t->mux = m;
    t->id = id;
    t->fd = fd;
    t->user = user;
    insert_tunnel(m, t);
    ptth_cc_tunnel_set_state(m, t, PTTH_CC_T_OPENING);
    send_simple(m, PTTH_CC_OPEN, id, client);
    return t;
}

void
ptth_cc_mux_close_tunnel(ptth_cc_mux *m, ptth_cc_tunnel *t, const char *reason)
{
    if (t->state == PTTH_CC_T_DEAD || t->state == PTTH_CC_T_CLOSING)
        return;
    if (m->dead == NULL && t->state == PTTH_CC_T_OPEN && !t->aborted && t->fd >= 0 && !t->local_eof) {
        /* graceful: send what the terminator wrote before closing, then FIN */
        ptth_cc_tunnel_set_state(m, t, PTTH_CC_T_CLOSING);
        free_chunks(t); /* nobody reads them any more */
        update_tunnel(m, t);
        return;
    }
    send_simple(m, PTTH_CC_CLOSE, t->id, reason);
    end_tunnel(m, t, "close", true);
}
