/*
 * joint.c: see joint.h.
 */
#include "joint.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

/* What a pipe is asked to hold (the kernel's default is 64 KiB): one splice
 * moves up to this much, so a bulk transfer costs few system calls. */
#define PIPE_WANT (256 * 1024)
#define PIPE_POOL_MAX 64
/* Splice rounds per event before the loop serves other sockets (epoll is
 * level-triggered in h2o: a busy source is called again next round). */
#define SPLICE_ROUNDS 4

typedef enum joint_state {
    JOINT_UPGRADING, /* waiting for h2o to hand over the legs */
    JOINT_OPEN,      /* both legs joined, bytes move */
    JOINT_ENDED,     /* on_end ran; waiting for ptth_joint_close() */
    JOINT_CLOSED,    /* closed by the owner; freed once no upgrade is pending */
} joint_state;

typedef enum dir_state {
    DIR_FLOWING, /* source open */
    DIR_EOF,     /* the source ended; its last bytes are still on their way */
    DIR_DONE,    /* the end was passed on: the destination's sending side is shut */
} dir_state;

struct leg {
    ptth_joint *joint;
    ptth_joint_side side;
    h2o_socket_t *sock; /* NULL until h2o hands it over, and after close */
    bool upgrading;     /* the 101 is being written */
};

/* One direction: bytes read from src's leg go to dst's leg. */
struct dir {
    ptth_joint *joint;
    struct leg *src, *dst;
    dir_state state;
    int pipe[2];        /* splice: -1 when the direction holds no pipe */
    size_t in_pipe;     /* bytes waiting in the pipe */
    size_t writing;     /* copy: bytes of src's input in flight to dst; 0: none */
    bool wait_writable; /* splice: h2o_socket_notify_write on dst is pending */
    bool copy;          /* splice joint, but no pipe could be made: this direction copies */
};

struct ptth_joint {
    const ptth_joint_callbacks *cb;
    void *owner;
    joint_state state;
    unsigned busy; /* h2o callbacks of this joint running: the owner may close it from inside them */
    bool splice;
    struct leg legs[2];
    struct dir dirs[2]; /* dirs[s]: from legs[s] to the other leg */
};

static void pump(struct dir *d);

/* ---- the pipe pool ---- */

/* Directions that had to copy because no pipe could be made, since the
 * last warning about it; the warning is written at most once a minute. */
static unsigned long splice_fallbacks;
static time_t splice_fallback_logged;

static struct {
    int fds[PIPE_POOL_MAX][2];
    size_t count;
    size_t capacity; /* what the kernel gave the last pipe made */
} pipes;

static bool
pipe_take(struct dir *d)
{
    if (d->pipe[0] >= 0)
        return true;
    if (pipes.count > 0) {
        pipes.count--;
        d->pipe[0] = pipes.fds[pipes.count][0];
        d->pipe[1] = pipes.fds[pipes.count][1];
        return true;
    }
    if (pipe2(d->pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
        d->pipe[0] = d->pipe[1] = -1;
        return false;
    }
    (void)fcntl(d->pipe[1], F_SETPIPE_SZ, PIPE_WANT); /* a smaller pipe only costs calls */
    int cap = fcntl(d->pipe[1], F_GETPIPE_SZ);
    pipes.capacity = cap > 0 ? (size_t)cap : 65536;
    return true;
}

/* An empty pipe goes back to the pool; one with bytes in it cannot be reused
 * and is closed. */
static void
pipe_give_back(struct dir *d)
{
    if (d->pipe[0] < 0)
        return;
    if (d->in_pipe == 0 && pipes.count < PIPE_POOL_MAX) {
        pipes.fds[pipes.count][0] = d->pipe[0];
        pipes.fds[pipes.count][1] = d->pipe[1];
        pipes.count++;
    } else {
        close(d->pipe[0]);
        close(d->pipe[1]);
    }
    d->pipe[0] = d->pipe[1] = -1;
    d->in_pipe = 0;
}

void
ptth_joint_release_pool(void)
{
    while (pipes.count > 0) {
        pipes.count--;
        close(pipes.fds[pipes.count][0]);
        close(pipes.fds[pipes.count][1]);
    }
}

/* ---- states ---- */

static const char *
side_name(ptth_joint_side side)
{
    return side == PTTH_JOINT_CLIENT ? "client" : "server";
}

/* The one place the joint's state changes. */
static void
set_state(ptth_joint *j, joint_state next)
{
    switch (next) {
    case JOINT_UPGRADING:
        assert(!"a joint never returns to UPGRADING");
        break;
    case JOINT_OPEN:
        assert(j->state == JOINT_UPGRADING);
        assert(j->legs[0].sock != NULL && j->legs[1].sock != NULL);
        break;
    case JOINT_ENDED:
        assert(j->state == JOINT_UPGRADING || j->state == JOINT_OPEN);
        break;
    case JOINT_CLOSED:
        assert(j->state != JOINT_CLOSED);
        break;
    }
    j->state = next;
}

static void
maybe_free(ptth_joint *j)
{
    if (j->state == JOINT_CLOSED && j->busy == 0 && !j->legs[0].upgrading && !j->legs[1].upgrading)
        free(j);
}

/* Every h2o callback runs between enter() and leave(): on_end may make the
 * owner close the joint, which is freed only once the callback is done. */
static ptth_joint *
enter(h2o_socket_t *sock, struct leg **leg)
{
    *leg = sock->data;
    (*leg)->joint->busy++;
    return (*leg)->joint;
}

static void
leave(ptth_joint *j)
{
    j->busy--;
    maybe_free(j);
}

/* Ends the joint (once) and tells the owner. */
static void
end(ptth_joint *j, bool clean, const char *detail)
{
    if (j->state != JOINT_UPGRADING && j->state != JOINT_OPEN)
        return;
    set_state(j, JOINT_ENDED);
    for (int i = 0; i < 2; i++)
        if (j->legs[i].sock != NULL)
            h2o_socket_read_stop(j->legs[i].sock);
    j->cb->on_end(j, j->owner, clean, detail);
}

static void
broken(struct dir *d, struct leg *leg, const char *what)
{
    char detail[160];
    snprintf(detail, sizeof(detail), "%s's connection %s", side_name(leg->side), what);
    end(d->joint, false, detail);
}

static void
broken_errno(struct dir *d, struct leg *leg, int err)
{
    broken(d, leg, err == ECONNRESET ? "was reset" : strerror(err));
}

static void
moved(struct dir *d, size_t n)
{
    d->joint->cb->on_moved(d->joint, d->joint->owner, d->src->side, n);
}

/* The source ended and every byte went through: pass the end on. */
static void
pass_end(struct dir *d)
{
    assert(d->state == DIR_EOF && d->in_pipe == 0 && d->writing == 0);
    d->state = DIR_DONE;
    pipe_give_back(d);
    if (shutdown(h2o_socket_get_fd(d->dst->sock), SHUT_WR) != 0 && errno != ENOTCONN) {
        broken_errno(d, d->dst, errno);
        return;
    }
    ptth_joint *j = d->joint;
    if (j->dirs[0].state == DIR_DONE && j->dirs[1].state == DIR_DONE)
        end(j, true, NULL);
}

static void
source_ended(struct dir *d)
{
    if (d->state == DIR_FLOWING)
        d->state = DIR_EOF;
    h2o_socket_read_stop(d->src->sock); /* an ended socket stays readable */
}

/* ---- copy: h2o reads (and decrypts), one write per burst ---- */

static void on_copy_read(h2o_socket_t *sock, const char *err);

static void
on_copy_written(h2o_socket_t *sock, const char *err)
{
    struct leg *leg;
    ptth_joint *j = enter(sock, &leg);
    struct dir *d = &j->dirs[1 - leg->side];
    if (j->state != JOINT_OPEN) {
        /* ended */
    } else if (err != NULL) {
        broken(d, d->dst, err);
    } else {
        size_t n = d->writing;
        d->writing = 0;
        h2o_buffer_consume(&d->src->sock->input, n);
        moved(d, n);
        pump(d);
    }
    leave(j);
}

static void
on_copy_read(h2o_socket_t *sock, const char *err)
{
    struct leg *leg;
    ptth_joint *j = enter(sock, &leg);
    struct dir *d = &j->dirs[leg->side];
    if (j->state != JOINT_OPEN) {
        /* ended */
    } else if (err != NULL && err != h2o_socket_error_closed) {
        broken(d, leg, err == h2o_socket_error_io ? "was reset" : err);
    } else {
        if (err != NULL)
            source_ended(d);
        pump(d);
    }
    leave(j);
}

/* Writes what waits in src's input buffer (everything, in one write), or
 * passes the end on; returns true when it did either, or must wait. */
static bool
pump_buffered(struct dir *d)
{
    if (d->writing != 0)
        return true; /* on_copy_written continues */
    h2o_buffer_t *in = d->src->sock->input;
    if (in->size > 0) {
        h2o_iovec_t buf = h2o_iovec_init(in->bytes, in->size);
        d->writing = in->size;
        h2o_socket_read_stop(d->src->sock); /* the input buffer must not move under the write */
        h2o_socket_write(d->dst->sock, &buf, 1, on_copy_written);
        return true;
    }
    return false;
}

/* ---- splice: the kernel moves the bytes ---- */

static void on_splice_readable(h2o_socket_t *sock, const char *err);

static void
on_splice_writable(h2o_socket_t *sock, const char *err)
{
    struct leg *leg;
    ptth_joint *j = enter(sock, &leg);
    struct dir *d = &j->dirs[1 - leg->side];
    d->wait_writable = false;
    if (j->state != JOINT_OPEN) {
        /* ended */
    } else if (err != NULL) {
        broken(d, d->dst, err);
    } else {
        pump(d);
    }
    leave(j);
}

static void
on_splice_readable(h2o_socket_t *sock, const char *err)
{
    struct leg *leg;
    ptth_joint *j = enter(sock, &leg);
    struct dir *d = &j->dirs[leg->side];
    if (j->state != JOINT_OPEN)
        ; /* ended */
    else if (err != NULL)
        broken(d, leg, err);
    else
        pump(d);
    leave(j);
}

/* The destination is full: stop reading the source until it drains. */
static void
wait_writable(struct dir *d)
{
    h2o_socket_read_stop(d->src->sock);
    if (!d->wait_writable) {
        d->wait_writable = true;
        h2o_socket_notify_write(d->dst->sock, on_splice_writable);
    }
}

/* Writes what waits in the pipe. true when it all went; false when the
 * destination is full (the direction waits for it) or broke (ended). */
static bool
drain_pipe(struct dir *d, int dst_fd)
{
    while (d->in_pipe > 0) {
        ssize_t n = splice(d->pipe[0], NULL, dst_fd, NULL, d->in_pipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n > 0) {
            d->in_pipe -= (size_t)n;
        } else if (n < 0 && errno == EAGAIN) {
            wait_writable(d);
            return false;
        } else if (n < 0 && errno != EINTR) {
            broken_errno(d, d->dst, errno);
            return false;
        }
    }
    return true;
}

static void
pump_splice(struct dir *d)
{
    int src_fd = h2o_socket_get_fd(d->src->sock), dst_fd = h2o_socket_get_fd(d->dst->sock);
    for (int round = 0; round < SPLICE_ROUNDS; round++) {
        if (!drain_pipe(d, dst_fd))
            return;
        if (d->state == DIR_EOF) {
            pass_end(d);
            return;
        }
        if (!pipe_take(d)) {
            /* out of descriptors for a pipe: this direction copies through
             * user space from now on (each socket is the source of one
             * direction only, so the other may go on splicing) rather than
             * cutting a working tunnel */
            int why = errno;
            d->copy = true;
            splice_fallbacks++;
            time_t now = time(NULL);
            if (now - splice_fallback_logged >= 60) {
                splice_fallback_logged = now;
                ptth_log_warn("event=splice_unavailable directions=%lu error=\"%s\" message=\"no pipe for splice(2): "
                              "these directions copy through user space\"",
                              splice_fallbacks, strerror(why));
                splice_fallbacks = 0;
            }
            h2o_socket_dont_read(d->src->sock, 0); /* h2o reads the source again (join() stopped it) */
            h2o_socket_read_start(d->src->sock, on_copy_read);
            return;
        }
        ssize_t n = splice(src_fd, NULL, d->pipe[1], NULL, pipes.capacity, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n > 0) {
            d->in_pipe = (size_t)n;
            moved(d, (size_t)n);
            if (d->joint->state != JOINT_OPEN)
                return;
            if ((size_t)n < pipes.capacity) {
                /* a short read emptied the socket: another splice now would
                 * only say EAGAIN (one system call per burst saved); the
                 * level-triggered watch reports the next bytes */
                if (drain_pipe(d, dst_fd)) {
                    pipe_give_back(d);
                    h2o_socket_read_start(d->src->sock, on_splice_readable);
                }
                return;
            }
        } else if (n == 0) {
            source_ended(d);
        } else if (errno == EAGAIN) {
            pipe_give_back(d);
            h2o_socket_read_start(d->src->sock, on_splice_readable);
            return;
        } else if (errno != EINTR) {
            broken_errno(d, d->src, errno);
            return;
        }
    }
    /* rounds used up: what was just read waits for the next turn */
    if (d->in_pipe > 0)
        wait_writable(d);
    else if (d->state == DIR_EOF)
        pass_end(d);
    else
        h2o_socket_read_start(d->src->sock, on_splice_readable);
}

/* Moves what can be moved in one direction now. */
static void
pump(struct dir *d)
{
    if (d->joint->state != JOINT_OPEN || d->state == DIR_DONE)
        return;
    if (pump_buffered(d))
        return;
    if (d->joint->splice && !d->copy) {
        pump_splice(d);
        return;
    }
    if (d->state == DIR_EOF) {
        pass_end(d);
        return;
    }
    h2o_socket_read_start(d->src->sock, on_copy_read);
}

/* ---- upgrade ---- */

bool
ptth_joint_wanted(const h2o_req_t *req)
{
    return req->version == 0x101 && req->upgrade.base != NULL &&
           h2o_lcstris(req->upgrade.base, req->upgrade.len, H2O_STRLIT(PTTH_UPGRADE_TOKEN));
}

ptth_joint *
ptth_joint_new(const ptth_joint_callbacks *cb, void *owner)
{
    ptth_joint *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return NULL;
    j->cb = cb;
    j->owner = owner;
    j->state = JOINT_UPGRADING;
    for (int s = 0; s < 2; s++) {
        j->legs[s].joint = j;
        j->legs[s].side = (ptth_joint_side)s;
        j->dirs[s].joint = j;
        j->dirs[s].src = &j->legs[s];
        j->dirs[s].dst = &j->legs[1 - s];
        j->dirs[s].pipe[0] = j->dirs[s].pipe[1] = -1;
    }
    return j;
}

static void
close_leg(struct leg *leg, bool reset)
{
    h2o_socket_t *sock = leg->sock;
    if (sock == NULL)
        return;
    leg->sock = NULL;
    if (reset) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        (void)setsockopt(h2o_socket_get_fd(sock), SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    h2o_socket_read_stop(sock);
    h2o_socket_close(sock);
}

/* Both legs are there: start moving. Bytes the terminators sent right
 * behind their request (already in h2o's input buffer) go first. */
static void
join(ptth_joint *j)
{
    set_state(j, JOINT_OPEN);
    j->splice = j->legs[0].sock->ssl == NULL && j->legs[1].sock->ssl == NULL;
    for (int s = 0; s < 2; s++)
        if (j->splice)
            h2o_socket_dont_read(j->legs[s].sock, 1);
    for (int s = 0; s < 2 && j->state == JOINT_OPEN; s++)
        pump(&j->dirs[s]);
}

static void
on_upgraded(void *user_data, h2o_socket_t *sock, size_t reqsize)
{
    struct leg *leg = user_data;
    ptth_joint *j = leg->joint;
    j->busy++;
    leg->upgrading = false;
    if (sock != NULL) {
        h2o_buffer_consume(&sock->input, reqsize);
        sock->data = leg;
        leg->sock = sock;
    }
    if (j->state != JOINT_UPGRADING)
        close_leg(leg, true); /* ended or closed while h2o wrote the 101 */
    else if (sock == NULL)
        end(j, false,
            leg->side == PTTH_JOINT_CLIENT ? "client's connection closed before its 101 went out"
                                           : "server's connection closed before its 101 went out");
    else if (j->legs[1 - leg->side].sock != NULL)
        join(j);
    leave(j);
}

void
ptth_joint_upgrade(ptth_joint *j, ptth_joint_side side, h2o_req_t *req)
{
    struct leg *leg = &j->legs[side];
    assert(j->state == JOINT_UPGRADING && !leg->upgrading && leg->sock == NULL);
    assert(ptth_joint_wanted(req));
    leg->upgrading = true;
    req->res.status = 101;
    req->res.reason = "Switching Protocols";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_UPGRADE, NULL, H2O_STRLIT(PTTH_UPGRADE_TOKEN));
    h2o_http1_upgrade(req, NULL, 0, on_upgraded, leg);
}

bool
ptth_joint_joined(const ptth_joint *j)
{
    return j->state == JOINT_OPEN || (j->state == JOINT_ENDED && j->legs[0].sock != NULL && j->legs[1].sock != NULL);
}

bool
ptth_joint_saw_eof(const ptth_joint *j)
{
    return j->dirs[0].state != DIR_FLOWING || j->dirs[1].state != DIR_FLOWING;
}

bool
ptth_joint_spliced(const ptth_joint *j)
{
    return j->splice;
}

void
ptth_joint_close(ptth_joint *j, bool reset)
{
    if (j->state == JOINT_CLOSED)
        return;
    set_state(j, JOINT_CLOSED);
    for (int s = 0; s < 2; s++) {
        pipe_give_back(&j->dirs[s]);
        close_leg(&j->legs[s], reset);
    }
    maybe_free(j);
}
