/* h2_client.c: HTTP/2 to the relay on libnghttp2; see h2_client.h. */
#include "h2_client.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "req_response.h"

/* Each stream may have this many received bytes not yet taken by its
 * reader: the most a paused stream buffers, and the window a bulk stream
 * runs with. */
#define STREAM_WINDOW (256 * 1024)
/* Large enough that streams holding their whole window never stall the
 * connection (100 streams x 256 KiB is 25 MiB). */
#define CONN_WINDOW (1 << 30)
/* Frames are gathered up to this many bytes before one write. */
#define OUT_GATHER (256 * 1024)
#define READ_SIZE (256 * 1024)
#define READS_PER_EVENT 16 /* then back to the loop: other sockets get a turn */
#define CONNECT_TIMEOUT_MS 10000
#define IDLE_CLOSE_MS 60000 /* a connection without streams this long is closed */
#define MAX_CONNECTIONS 1024
#define PATH_MAX_LEN 2048
#define HOST_MAX 256
#define HEADER_NAME_MAX 64
#define DEFAULT_MAX_STREAMS 100 /* until the relay's SETTINGS say */
/* A stream refused unprocessed is sent again this often, then fails: h2o
 * also refuses a body above its limit that way, and that would never pass. */
#define MAX_REFUSALS 3

typedef struct h2_conn h2_conn;
typedef struct h2_stream h2_stream;

enum conn_state {
    CONN_TCP,      /* non-blocking connect under way */
    CONN_TLS,      /* TLS handshake under way */
    CONN_SETTINGS, /* preface sent, waiting for the relay's SETTINGS */
    CONN_READY,
};

struct h2_conn {
    ptth_h2_client *cl;
    enum conn_state state;
    int fd;
    SSL *ssl;
    nghttp2_session *session;
    ptth_watch watch;
    ptth_timer timer; /* connect/handshake deadline, then idle close */
    ptth_defer flush_defer;
    struct addrinfo *addrs, *next_addr; /* while connecting */
    h2_stream *streams;                 /* submitted (or closed but still holding bytes) */
    size_t open_streams;                /* submitted and not closed by nghttp2 */
    uint32_t max_streams;
    bool goaway;  /* no new streams: GOAWAY received or ids used up */
    bool closing; /* inside conn_close */
    /* what is queued for the socket, in order: segments of our own bytes
     * (frames, in out) or of request bodies (DATA payloads sent from the
     * caller's memory, without a copy) */
    uint8_t *out;
    size_t out_len, out_cap;
    struct out_seg *segs;
    size_t nsegs, segs_cap, seg_head, seg_sent; /* seg_sent: bytes of segs[seg_head] written */
    size_t queued;                              /* bytes not written yet */
    h2_conn *prev, *next;
};

/* ext == NULL: bytes at out + off; else the caller's body bytes of owner */
struct out_seg {
    const uint8_t *ext;
    size_t off, len;
    h2_stream *owner;
};

struct h2_stream {
    ptth_h2_client *cl;
    ptth_req *req; /* NULL once the request is over or cancelled */
    h2_conn *conn; /* NULL while queued, or after its connection went away */
    int32_t id;
    ptth_req_kind kind;
    const char *headers[PTTH_REQ_HEADERS_MAX + 1];
    const uint8_t *body;
    size_t body_len, body_off, body_sent; /* body_off: given to nghttp2; body_sent: queued */
    uint8_t *held; /* body bytes received while the reader was paused */
    size_t held_len, held_off, held_cap;
    long status;          /* :status of the header block being read */
    int refusals;         /* REFUSED_STREAM answers so far */
    bool in_session;      /* nghttp2 still knows the stream */
    bool ended;           /* closed by nghttp2; held bytes may remain */
    bool queued;          /* in the client's wait queue */
    bool done_listed;     /* in the client's done list */
    char error[256];      /* for on_done when not empty */
    ptth_timer timer;     /* the request's timeout_ms */
    h2_stream *prev, *next; /* the queue, or the connection's list */
    h2_stream *done_next;
    char path[]; /* the API path as given (without the prefix), allocated to its length */
};

struct ptth_h2_client {
    ptth_loop *loop;
    bool https;
    bool unavailable;
    char host[HOST_MAX];      /* for resolving, SNI and the certificate check */
    char port[8];
    char authority[HOST_MAX + 8];
    char prefix[PATH_MAX_LEN / 2];
    char *auth_value;
    char *user_agent;
    SSL_CTX *ssl_ctx;
    nghttp2_session_callbacks *callbacks;
    nghttp2_option *option;
    ptth_h2_client_config cfg;
    h2_conn *conns;
    size_t nconns;
    h2_stream *queue_head, *queue_tail;
    h2_stream *done_head, *done_tail;
    ptth_defer done_defer;
    ptth_defer dispatch_defer;
    uint8_t *readbuf;
};

static void conn_close(h2_conn *k, const char *why);
static void dispatch(ptth_h2_client *cl);
static void schedule_dispatch(ptth_h2_client *cl);
static void stream_maybe_free(h2_stream *s);

/* ---- lists ---- */

static void
queue_push(ptth_h2_client *cl, h2_stream *s, bool front)
{
    s->queued = true;
    s->prev = s->next = NULL;
    if (cl->queue_head == NULL) {
        cl->queue_head = cl->queue_tail = s;
    } else if (front) {
        s->next = cl->queue_head;
        cl->queue_head->prev = s;
        cl->queue_head = s;
    } else {
        s->prev = cl->queue_tail;
        cl->queue_tail->next = s;
        cl->queue_tail = s;
    }
}

static void
queue_unlink(ptth_h2_client *cl, h2_stream *s)
{
    if (!s->queued)
        return;
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        cl->queue_head = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    else
        cl->queue_tail = s->prev;
    s->prev = s->next = NULL;
    s->queued = false;
}

static void
conn_link_stream(h2_conn *k, h2_stream *s)
{
    s->conn = k;
    s->prev = NULL;
    s->next = k->streams;
    if (k->streams != NULL)
        k->streams->prev = s;
    k->streams = s;
}

static void on_idle(ptth_timer *t);

/* A ready connection without streams is closed after IDLE_CLOSE_MS. */
static void
conn_check_idle(h2_conn *k)
{
    if (!k->closing && k->state == CONN_READY && k->streams == NULL && k->open_streams == 0 && !ptth_timer_active(&k->timer))
        ptth_timer_start(k->cl->loop, &k->timer, IDLE_CLOSE_MS, on_idle, k);
}

static void out_detach(h2_conn *k, h2_stream *s);

static void
conn_unlink_stream(h2_stream *s)
{
    h2_conn *k = s->conn;
    if (k == NULL)
        return;
    out_detach(k, s);
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        k->streams = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
    s->conn = NULL;
    conn_check_idle(k);
}

/* ---- stream ends ---- */

static void
stream_maybe_free(h2_stream *s)
{
    if (s->req != NULL || s->in_session || s->queued || s->done_listed)
        return;
    conn_unlink_stream(s);
    ptth_timer_stop(s->cl->loop, &s->timer);
    free(s->held);
    free(s);
}

/* Gives the bytes still held back to the connection's window (nobody will
 * read them) and drops them. */
static void
drop_held(h2_stream *s)
{
    size_t left = s->held_len - s->held_off;
    if (left > 0 && s->conn != NULL)
        nghttp2_session_consume(s->conn->session, s->id, left);
    free(s->held);
    s->held = NULL;
    s->held_len = s->held_off = s->held_cap = 0;
}

static void on_done_deferred(ptth_defer *d);

/* The request is over (error NULL: a whole response arrived); on_done runs
 * from the loop after the current batch. */
static void
stream_complete(h2_stream *s, const char *error)
{
    if (s->req == NULL || s->done_listed)
        return;
    if (error != NULL)
        snprintf(s->error, sizeof(s->error), "%s", error);
    else
        s->error[0] = '\0';
    ptth_timer_stop(s->cl->loop, &s->timer);
    s->done_listed = true;
    s->done_next = NULL;
    ptth_h2_client *cl = s->cl;
    if (cl->done_tail != NULL)
        cl->done_tail->done_next = s;
    else
        cl->done_head = s;
    cl->done_tail = s;
    ptth_defer_call(cl->loop, &cl->done_defer, on_done_deferred, cl);
}

static void
on_done_deferred(ptth_defer *d)
{
    ptth_h2_client *cl = d->data;
    h2_stream *s;
    while ((s = cl->done_head) != NULL) {
        cl->done_head = s->done_next;
        if (cl->done_head == NULL)
            cl->done_tail = NULL;
        s->done_listed = false;
        ptth_req *r = s->req;
        if (r == NULL) { /* cancelled after it ended */
            stream_maybe_free(s);
            continue;
        }
        char error[sizeof(s->error)];
        memcpy(error, s->error, sizeof(error));
        s->req = NULL;
        r->h2 = NULL;
        r->paused = false;
        if (s->conn != NULL)
            out_detach(s->conn, s); /* the caller may reuse the body now */
        if (s->held_len > s->held_off)
            drop_held(s);
        stream_maybe_free(s);
        if (cl->cfg.on_release != NULL)
            cl->cfg.on_release(cl->cfg.data, r);
        r->ops->on_done(r, error[0] != '\0' ? error : NULL);
    }
}

/* ---- output ---- */

static void on_flush_deferred(ptth_defer *d);

static void
conn_want_flush(h2_conn *k)
{
    ptth_defer_call(k->cl->loop, &k->flush_defer, on_flush_deferred, k);
}

/* Writes what TLS takes (cleartext goes through out_write's sendmsg):
 * bytes written, or -EAGAIN, or -EIO with the reason in why. */
static ssize_t
tls_write(h2_conn *k, const uint8_t *p, size_t len, char *why, size_t whylen)
{
    ERR_clear_error();
    int n = SSL_write(k->ssl, p, len > INT32_MAX ? INT32_MAX : (int)len);
    if (n > 0)
        return n;
    int e = SSL_get_error(k->ssl, n);
    if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ)
        return -EAGAIN;
    unsigned long oe = ERR_get_error();
    snprintf(why, whylen, "TLS write to relay: %s", oe != 0 ? ERR_reason_error_string(oe) : strerror(errno));
    return -EIO;
}

/* Bytes read, 0 at the end of the stream, -EAGAIN, or -EIO with why. */
static ssize_t
sock_read(h2_conn *k, uint8_t *p, size_t len, char *why, size_t whylen)
{
    if (k->ssl == NULL) {
        ssize_t n = recv(k->fd, p, len, 0);
        if (n >= 0)
            return n;
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return -EAGAIN;
        snprintf(why, whylen, "receive from relay: %s", strerror(errno));
        return -EIO;
    }
    ERR_clear_error();
    int n = SSL_read(k->ssl, p, len > INT32_MAX ? INT32_MAX : (int)len);
    if (n > 0)
        return n;
    int e = SSL_get_error(k->ssl, n);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return -EAGAIN;
    if (e == SSL_ERROR_ZERO_RETURN)
        return 0;
    unsigned long oe = ERR_get_error();
    if (oe == 0 && e == SSL_ERROR_SYSCALL && errno == 0)
        return 0; /* EOF without close_notify */
    snprintf(why, whylen, "TLS read from relay: %s", oe != 0 ? ERR_reason_error_string(oe) : strerror(errno));
    return -EIO;
}

/* Copies len bytes into out; their offset in *off. */
static int
out_copy(h2_conn *k, const uint8_t *p, size_t len, size_t *off)
{
    if (k->out_len + len > k->out_cap) {
        size_t cap = k->out_cap == 0 ? 16 * 1024 : k->out_cap;
        while (cap < k->out_len + len)
            cap *= 2;
        uint8_t *n = realloc(k->out, cap);
        if (n == NULL)
            return -ENOMEM;
        k->out = n;
        k->out_cap = cap;
    }
    memcpy(k->out + k->out_len, p, len);
    *off = k->out_len;
    k->out_len += len;
    return 0;
}

static int
seg_push(h2_conn *k, const uint8_t *ext, size_t off, size_t len, h2_stream *owner)
{
    if (k->nsegs == k->segs_cap) {
        size_t cap = k->segs_cap == 0 ? 64 : k->segs_cap * 2;
        struct out_seg *n = realloc(k->segs, cap * sizeof(*n));
        if (n == NULL)
            return -ENOMEM;
        k->segs = n;
        k->segs_cap = cap;
    }
    k->segs[k->nsegs++] = (struct out_seg){.ext = ext, .off = off, .len = len, .owner = owner};
    k->queued += len;
    return 0;
}

/* Queues a copy of len bytes. */
static int
out_append(h2_conn *k, const uint8_t *p, size_t len)
{
    size_t off;
    if (out_copy(k, p, len, &off) != 0)
        return -ENOMEM;
    struct out_seg *last = k->nsegs > k->seg_head ? &k->segs[k->nsegs - 1] : NULL;
    if (last != NULL && last->ext == NULL && last->off + last->len == off) {
        last->len += len;
        k->queued += len;
        return 0;
    }
    return seg_push(k, NULL, off, len, NULL);
}

/* The queued body bytes of s become copies: its body may go away (the
 * request ended or was cancelled before all of it was written). */
static void
out_detach(h2_conn *k, h2_stream *s)
{
    for (size_t i = k->seg_head; i < k->nsegs; i++) {
        struct out_seg *g = &k->segs[i];
        if (g->ext == NULL || g->owner != s)
            continue;
        size_t off;
        if (out_copy(k, g->ext, g->len, &off) != 0) {
            /* cannot keep the bytes: the rest of the frame is lost, so is
             * the connection's framing */
            g->len = 0;
            continue;
        }
        g->ext = NULL;
        g->off = off;
        g->owner = NULL;
    }
}

static void
out_reset(h2_conn *k)
{
    k->out_len = k->nsegs = k->seg_head = k->seg_sent = k->queued = 0;
}

/* Writes queued segments: bytes written, -EAGAIN, or -EIO with why. TLS
 * gets one segment per SSL_write (its segments are all copies, gathered
 * into large records). */
static ssize_t
out_write(h2_conn *k, char *why, size_t whylen)
{
    struct out_seg *g = &k->segs[k->seg_head];
    if (k->ssl != NULL) {
        const uint8_t *p = (g->ext != NULL ? g->ext : k->out + g->off) + k->seg_sent;
        return tls_write(k, p, g->len - k->seg_sent, why, whylen);
    }
    struct iovec iov[64];
    int n = 0;
    for (size_t i = k->seg_head; i < k->nsegs && n < 64; i++) {
        g = &k->segs[i];
        size_t skip = i == k->seg_head ? k->seg_sent : 0;
        iov[n].iov_base = (void *)((g->ext != NULL ? g->ext : k->out + g->off) + skip);
        iov[n].iov_len = g->len - skip;
        n++;
    }
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)n};
    ssize_t w = sendmsg(k->fd, &msg, MSG_NOSIGNAL);
    if (w >= 0)
        return w;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return -EAGAIN;
    snprintf(why, whylen, "send to relay: %s", strerror(errno));
    return -EIO;
}

static void
out_advance(h2_conn *k, size_t w)
{
    k->queued -= w;
    while (w > 0 && k->seg_head < k->nsegs) {
        size_t left = k->segs[k->seg_head].len - k->seg_sent;
        if (w < left) {
            k->seg_sent += w;
            return;
        }
        w -= left;
        k->seg_head++;
        k->seg_sent = 0;
    }
    /* zero-length segments (see out_detach) are skipped too */
    while (k->seg_head < k->nsegs && k->segs[k->seg_head].len == 0)
        k->seg_head++;
}

static void
conn_set_events(h2_conn *k, bool want_out)
{
    ptth_watch_set(&k->watch, EPOLLIN | (want_out ? EPOLLOUT : 0));
}

/* Sends what nghttp2 has queued, gathering frames into writes of up to
 * OUT_GATHER bytes (one 256 KiB chunk is then one sendmsg(), not sixteen).
 * 0, or -1 when the connection failed and is gone. */
static int
conn_flush(h2_conn *k)
{
    char why[160];
    for (;;) {
        if (k->seg_head < k->nsegs) {
            ssize_t w = out_write(k, why, sizeof(why));
            if (w == -EAGAIN) {
                conn_set_events(k, true);
                return 0;
            }
            if (w < 0) {
                conn_close(k, why);
                return -1;
            }
            out_advance(k, (size_t)w);
            if (k->seg_head < k->nsegs) {
                conn_set_events(k, true);
                return 0;
            }
            out_reset(k);
        }
        while (k->queued < OUT_GATHER) {
            const uint8_t *data;
            ssize_t n = nghttp2_session_mem_send(k->session, &data); /* may call on_send_data */
            if (n < 0) {
                conn_close(k, nghttp2_strerror((int)n));
                return -1;
            }
            if (n == 0)
                break;
            if (out_append(k, data, (size_t)n) != 0) {
                conn_close(k, "out of memory");
                return -1;
            }
        }
        if (k->seg_head == k->nsegs)
            break;
    }
    conn_set_events(k, false);
    if (!nghttp2_session_want_read(k->session) && !nghttp2_session_want_write(k->session)) {
        conn_close(k, "the relay ended the connection");
        return -1;
    }
    return 0;
}

static void
on_flush_deferred(ptth_defer *d)
{
    h2_conn *k = d->data;
    if (k->session != NULL)
        conn_flush(k);
}

/* ---- nghttp2 callbacks (requests' on_headers/on_body run in here) ---- */

static h2_stream *
stream_of(nghttp2_session *session, int32_t id)
{
    return id > 0 ? nghttp2_session_get_stream_user_data(session, id) : NULL;
}

static int
on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    (void)user_data;
    h2_stream *s = stream_of(session, frame->hd.stream_id);
    if (s != NULL)
        s->status = 0;
    return 0;
}

static int
on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name, size_t namelen, const uint8_t *value,
          size_t valuelen, uint8_t flags, void *user_data)
{
    (void)flags;
    (void)user_data;
    h2_stream *s = stream_of(session, frame->hd.stream_id);
    if (s == NULL || s->req == NULL || frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    ptth_req *r = s->req;
    if (namelen == 7 && memcmp(name, ":status", 7) == 0) {
        long code = 0;
        for (size_t i = 0; i < valuelen && i < 3; i++)
            code = code * 10 + (value[i] >= '0' && value[i] <= '9' ? value[i] - '0' : 0);
        s->status = code;
        if (code >= 200 && !r->headers_done)
            ptth_req_response_reset(r);
        return 0;
    }
    if (s->status >= 200 && !r->headers_done)
        ptth_req_response_header(r, (const char *)name, namelen, (const char *)value, valuelen);
    return 0;
}

static void
conn_became_ready(h2_conn *k)
{
    k->state = CONN_READY;
    ptth_timer_stop(k->cl->loop, &k->timer);
    conn_check_idle(k);
    schedule_dispatch(k->cl);
}

static int
on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    h2_conn *k = user_data;
    switch (frame->hd.type) {
    case NGHTTP2_SETTINGS:
        if (!(frame->hd.flags & NGHTTP2_FLAG_ACK)) {
            k->max_streams = nghttp2_session_get_remote_settings(session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
            if (k->state == CONN_SETTINGS)
                conn_became_ready(k);
            else if (k->cl->queue_head != NULL)
                schedule_dispatch(k->cl); /* the limit may have grown */
        }
        break;
    case NGHTTP2_GOAWAY:
        k->goaway = true;
        break;
    case NGHTTP2_HEADERS: {
        h2_stream *s = stream_of(session, frame->hd.stream_id);
        if (s == NULL || s->req == NULL)
            break;
        ptth_req *r = s->req;
        if (s->status >= 200 && !r->headers_done) {
            r->status = s->status;
            r->headers_done = true;
            if (r->ops->on_headers != NULL)
                r->ops->on_headers(r);
        }
        break;
    }
    default:
        break;
    }
    return 0;
}

static int
hold(h2_stream *s, const uint8_t *p, size_t len)
{
    if (s->held_off > 0) {
        memmove(s->held, s->held + s->held_off, s->held_len - s->held_off);
        s->held_len -= s->held_off;
        s->held_off = 0;
    }
    if (s->held_len + len > s->held_cap) {
        size_t cap = s->held_cap == 0 ? 16 * 1024 : s->held_cap;
        while (cap < s->held_len + len)
            cap *= 2;
        uint8_t *n = realloc(s->held, cap);
        if (n == NULL)
            return -ENOMEM;
        s->held = n;
        s->held_cap = cap;
    }
    memcpy(s->held + s->held_len, p, len);
    s->held_len += len;
    return 0;
}

static int
on_data_chunk_recv(nghttp2_session *session, uint8_t flags, int32_t stream_id, const uint8_t *data, size_t len,
                   void *user_data)
{
    (void)flags;
    (void)user_data;
    h2_stream *s = stream_of(session, stream_id);
    ptth_req *r = s != NULL ? s->req : NULL;
    if (r == NULL || r->status < 200 || r->status > 299 || r->ops->on_body == NULL) {
        if (r != NULL && (r->status < 200 || r->status > 299))
            ptth_req_response_error_body(r, (const char *)data, len);
        nghttp2_session_consume(session, stream_id, len);
        return 0;
    }
    if (!r->paused && s->held_len == s->held_off) {
        size_t took = r->ops->on_body(r, data, len);
        if (took != PTTH_REQ_PAUSE) {
            if (took > len)
                took = len;
            nghttp2_session_consume(session, stream_id, took);
            data += took;
            len -= took;
            if (len == 0)
                return 0;
        }
        r->paused = true;
    }
    /* bounded by the stream's window: the relay cannot send more than we
     * consumed */
    if (hold(s, data, len) != 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
    return 0;
}

static int
on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code, void *user_data)
{
    h2_conn *k = user_data;
    h2_stream *s = stream_of(session, stream_id);
    if (s == NULL)
        return 0;
    nghttp2_session_set_stream_user_data(session, stream_id, NULL);
    s->in_session = false;
    s->ended = true;
    if (k->open_streams > 0)
        k->open_streams--;
    if (k->cl->queue_head != NULL)
        schedule_dispatch(k->cl);
    ptth_req *r = s->req;
    if (r == NULL) {
        drop_held(s);
        stream_maybe_free(s);
        return 0;
    }
    if (error_code == NGHTTP2_REFUSED_STREAM && !r->headers_done && ++s->refusals <= MAX_REFUSALS) {
        /* not processed by the relay: send it again, on another connection
         * when this one is going away */
        conn_unlink_stream(s);
        s->ended = false;
        s->id = 0;
        queue_push(k->cl, s, true);
        schedule_dispatch(k->cl);
        return 0;
    }
    if (error_code != NGHTTP2_NO_ERROR) {
        char why[96];
        snprintf(why, sizeof(why), "the relay reset the stream (%s)", nghttp2_http2_strerror(error_code));
        drop_held(s);
        stream_complete(s, why);
    } else if (!r->headers_done) {
        stream_complete(s, "the relay ended the stream without a response");
    } else if (s->held_len == s->held_off) {
        stream_complete(s, NULL);
    }
    /* else: completes once the reader has taken the held bytes */
    return 0;
}

static ssize_t
on_read_body(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length, uint32_t *data_flags,
             nghttp2_data_source *source, void *user_data)
{
    (void)session;
    (void)stream_id;
    (void)buf;
    (void)user_data;
    h2_stream *s = source->ptr;
    if (s->req == NULL) { /* cancelled: the body may be gone */
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
        return 0;
    }
    size_t n = s->body_len - s->body_off;
    if (n > length)
        n = length;
    s->body_off += n;
    if (s->body_off == s->body_len)
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    *data_flags |= NGHTTP2_DATA_FLAG_NO_COPY; /* on_send_data queues it */
    return (ssize_t)n;
}

/* A DATA frame of a request body: its header is copied, the payload queued
 * from the caller's memory (copied on TLS, where records are built anyway). */
static int
on_send_data(nghttp2_session *session, nghttp2_frame *frame, const uint8_t *framehd, size_t length,
             nghttp2_data_source *source, void *user_data)
{
    (void)session;
    h2_conn *k = user_data;
    h2_stream *s = source->ptr;
    if (s->req == NULL)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* cancelled: its body may be gone; resets the stream */
    if (k->queued >= OUT_GATHER)
        return NGHTTP2_ERR_WOULDBLOCK; /* mem_send would queue a whole body at once: write first, then more */
    if (frame->data.padlen > 0 || s->body_sent + length > s->body_len)
        return NGHTTP2_ERR_CALLBACK_FAILURE; /* we never pad */
    const uint8_t *p = s->body + s->body_sent;
    s->body_sent += length;
    if (out_append(k, framehd, 9) != 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    int rc = k->ssl != NULL ? out_append(k, p, length) : seg_push(k, p, 0, length, s);
    return rc == 0 ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE;
}

/* ---- connections ---- */

static void on_conn_event(ptth_watch *w, uint32_t events);

static void
on_dispatch_deferred(ptth_defer *d)
{
    dispatch(d->data);
}

static void
schedule_dispatch(ptth_h2_client *cl)
{
    ptth_defer_call(cl->loop, &cl->dispatch_defer, on_dispatch_deferred, cl);
}

/* Fails every queued request with why (they were waiting for the connection
 * that just failed to open). */
static void
fail_queue(ptth_h2_client *cl, const char *why)
{
    h2_stream *s;
    while ((s = cl->queue_head) != NULL) {
        queue_unlink(cl, s);
        stream_complete(s, why);
    }
}

static void
on_idle(ptth_timer *t)
{
    h2_conn *k = t->data;
    if (k->open_streams == 0 && k->streams == NULL)
        conn_close(k, NULL);
}

static void
conn_close(h2_conn *k, const char *why)
{
    ptth_h2_client *cl = k->cl;
    bool was_ready = k->state == CONN_READY;
    k->closing = true;
    if (k->prev != NULL)
        k->prev->next = k->next;
    else
        cl->conns = k->next;
    if (k->next != NULL)
        k->next->prev = k->prev;
    cl->nconns--;
    ptth_watch_stop(&k->watch);
    ptth_timer_stop(cl->loop, &k->timer);
    ptth_defer_cancel(cl->loop, &k->flush_defer);

    char error[600];
    snprintf(error, sizeof(error), "relay connection %s:%s: %s", cl->host, cl->port,
             why != NULL ? why : "closed");
    h2_stream *s;
    while ((s = k->streams) != NULL) {
        conn_unlink_stream(s);
        bool was_open = s->in_session;
        s->in_session = false;
        if (was_open && s->req != NULL) {
            drop_held(s);
            stream_complete(s, error);
        }
        /* a stream that ended with held bytes keeps them for its reader */
        stream_maybe_free(s);
    }
    if (k->session != NULL)
        nghttp2_session_del(k->session);
    if (k->ssl != NULL)
        SSL_free(k->ssl);
    if (k->fd >= 0)
        close(k->fd);
    if (k->addrs != NULL)
        freeaddrinfo(k->addrs);
    free(k->out);
    free(k->segs);
    free(k);
    if (!was_ready && !cl->unavailable)
        fail_queue(cl, error);
    else if (cl->queue_head != NULL)
        schedule_dispatch(cl);
}

/* The relay does not speak HTTP/2: from now on requests go another way. */
static void
fall_back(h2_conn *k)
{
    ptth_h2_client *cl = k->cl;
    cl->unavailable = true;
    conn_close(k, "no HTTP/2");
    h2_stream *s;
    while ((s = cl->queue_head) != NULL) {
        queue_unlink(cl, s);
        ptth_req *r = s->req;
        s->req = NULL;
        r->h2 = NULL;
        r->paused = false;
        ptth_req_kind kind = s->kind;
        char path[PATH_MAX_LEN];
        memcpy(path, s->path, strlen(s->path) + 1);
        const char *headers[PTTH_REQ_HEADERS_MAX + 1];
        memcpy(headers, s->headers, sizeof(headers));
        const void *body = s->body;
        size_t body_len = s->body_len;
        stream_maybe_free(s);
        cl->cfg.on_fallback(cl->cfg.data, r, kind, path, headers, body, body_len);
    }
}

static void
on_conn_deadline(ptth_timer *t)
{
    h2_conn *k = t->data;
    char why[64];
    snprintf(why, sizeof(why), "no connection within %d ms", CONNECT_TIMEOUT_MS);
    conn_close(k, why);
}

static int
session_start(h2_conn *k)
{
    ptth_h2_client *cl = k->cl;
    if (nghttp2_session_client_new2(&k->session, cl->callbacks, k, cl->option) != 0)
        return -ENOMEM;
    nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW},
    };
    if (nghttp2_submit_settings(k->session, NGHTTP2_FLAG_NONE, settings, sizeof(settings) / sizeof(settings[0])) != 0 ||
        nghttp2_session_set_local_window_size(k->session, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW) != 0)
        return -ENOMEM;
    k->state = CONN_SETTINGS;
    conn_set_events(k, true);
    return 0;
}

static void
tls_continue(h2_conn *k)
{
    ERR_clear_error();
    int rc = SSL_do_handshake(k->ssl);
    if (rc != 1) {
        int e = SSL_get_error(k->ssl, rc);
        if (e == SSL_ERROR_WANT_READ) {
            conn_set_events(k, false);
            return;
        }
        if (e == SSL_ERROR_WANT_WRITE) {
            conn_set_events(k, true);
            return;
        }
        char why[200];
        long vr = SSL_get_verify_result(k->ssl);
        unsigned long oe = ERR_get_error();
        if (vr != X509_V_OK)
            snprintf(why, sizeof(why), "TLS handshake failed: certificate verify failed (%s)",
                     X509_verify_cert_error_string(vr));
        else
            snprintf(why, sizeof(why), "TLS handshake failed: %s",
                     oe != 0 ? ERR_reason_error_string(oe) : "connection closed");
        conn_close(k, why);
        return;
    }
    const unsigned char *alpn = NULL;
    unsigned int alpn_len = 0;
    SSL_get0_alpn_selected(k->ssl, &alpn, &alpn_len);
    if (alpn_len != 2 || memcmp(alpn, "h2", 2) != 0) {
        fall_back(k);
        return;
    }
    if (session_start(k) != 0) {
        conn_close(k, "out of memory");
        return;
    }
    conn_flush(k);
}

static int
tls_start(h2_conn *k)
{
    ptth_h2_client *cl = k->cl;
    k->ssl = SSL_new(cl->ssl_ctx);
    if (k->ssl == NULL || SSL_set_fd(k->ssl, k->fd) != 1)
        return -ENOMEM;
    SSL_set_mode(k->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    unsigned char v6[16];
    bool ip_literal = inet_pton(AF_INET, cl->host, v6) == 1 || inet_pton(AF_INET6, cl->host, v6) == 1;
    if (!ip_literal)
        SSL_set_tlsext_host_name(k->ssl, cl->host);
    if (!cl->cfg.insecure) {
        X509_VERIFY_PARAM *param = SSL_get0_param(k->ssl);
        int ok = ip_literal ? X509_VERIFY_PARAM_set1_ip_asc(param, cl->host) : X509_VERIFY_PARAM_set1_host(param, cl->host, 0);
        if (ok != 1)
            return -EINVAL;
    }
    SSL_set_connect_state(k->ssl);
    k->state = CONN_TLS;
    tls_continue(k);
    return 0;
}

/* Tries the next resolved address; false when there is none left. */
static bool
try_next_addr(h2_conn *k, char *why, size_t whylen)
{
    while (k->next_addr != NULL) {
        struct addrinfo *ai = k->next_addr;
        k->next_addr = ai->ai_next;
        if (k->fd >= 0) {
            ptth_watch_stop(&k->watch);
            close(k->fd);
            k->fd = -1;
        }
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            snprintf(why, whylen, "socket: %s", strerror(errno));
            continue;
        }
        int one = 1, idle = 30, intvl = 10;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
            snprintf(why, whylen, "connect: %s", strerror(errno));
            close(fd);
            continue;
        }
        k->fd = fd;
        if (ptth_watch_start(k->cl->loop, &k->watch, fd, EPOLLOUT, on_conn_event, k) != 0) {
            snprintf(why, whylen, "cannot watch the socket");
            close(fd);
            k->fd = -1;
            continue;
        }
        return true;
    }
    return false;
}

static void
on_connected(h2_conn *k)
{
    char why[160];
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(k->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    if (err != 0) {
        snprintf(why, sizeof(why), "connect: %s", strerror(err));
        if (!try_next_addr(k, why, sizeof(why)))
            conn_close(k, why);
        return;
    }
    freeaddrinfo(k->addrs);
    k->addrs = k->next_addr = NULL;
    if (k->cl->https) {
        if (tls_start(k) != 0)
            conn_close(k, "TLS set-up failed");
        return;
    }
    if (session_start(k) != 0) {
        conn_close(k, "out of memory");
        return;
    }
    conn_flush(k);
}

static void
conn_open(ptth_h2_client *cl)
{
    h2_conn *k = calloc(1, sizeof(*k));
    if (k == NULL) {
        fail_queue(cl, "out of memory");
        return;
    }
    k->cl = cl;
    k->fd = -1;
    k->state = CONN_TCP;
    k->max_streams = DEFAULT_MAX_STREAMS;
    k->next = cl->conns;
    if (cl->conns != NULL)
        cl->conns->prev = k;
    cl->conns = k;
    cl->nconns++;
    char why[200];
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG};
    int rc = getaddrinfo(cl->host, cl->port, &hints, &k->addrs);
    if (rc != 0) {
        snprintf(why, sizeof(why), "cannot resolve: %s", gai_strerror(rc));
        conn_close(k, why);
        return;
    }
    k->next_addr = k->addrs;
    snprintf(why, sizeof(why), "no address");
    if (!try_next_addr(k, why, sizeof(why))) {
        conn_close(k, why);
        return;
    }
    ptth_timer_start(cl->loop, &k->timer, CONNECT_TIMEOUT_MS, on_conn_deadline, k);
}

/* Reads what the relay sent and feeds it to nghttp2. 0, or -1 when the
 * connection is gone. */
static int
conn_read(h2_conn *k)
{
    ptth_h2_client *cl = k->cl;
    char why[160];
    for (int i = 0; i < READS_PER_EVENT; i++) {
        ssize_t n = sock_read(k, cl->readbuf, READ_SIZE, why, sizeof(why));
        if (n == -EAGAIN)
            return 0;
        if (n == 0) {
            conn_close(k, "closed by the relay");
            return -1;
        }
        if (n < 0) {
            conn_close(k, why);
            return -1;
        }
        if (k->state == CONN_SETTINGS && n >= 5 && memcmp(cl->readbuf, "HTTP/", 5) == 0) {
            /* an HTTP/1.x server answered the preface */
            fall_back(k);
            return -1;
        }
        ssize_t rv = nghttp2_session_mem_recv(k->session, cl->readbuf, (size_t)n);
        if (rv < 0) {
            conn_close(k, nghttp2_strerror((int)rv));
            return -1;
        }
        if (k->ssl == NULL && n < READ_SIZE)
            return 0; /* drained */
    }
    return 0;
}

static void
on_conn_event(ptth_watch *w, uint32_t events)
{
    h2_conn *k = w->data;
    switch (k->state) {
    case CONN_TCP:
        on_connected(k);
        return;
    case CONN_TLS:
        tls_continue(k);
        return;
    default:
        break;
    }
    if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && conn_read(k) != 0)
        return;
    conn_flush(k);
}

/* ---- requests ---- */

static int
submit(h2_conn *k, h2_stream *s)
{
    ptth_h2_client *cl = k->cl;
    char path[PATH_MAX_LEN + sizeof(cl->prefix)];
    snprintf(path, sizeof(path), "%s%s", cl->prefix, s->path);
    char clen[24];
    snprintf(clen, sizeof(clen), "%zu", s->body_len);
    nghttp2_nv nva[7 + PTTH_REQ_HEADERS_MAX];
    char names[PTTH_REQ_HEADERS_MAX][HEADER_NAME_MAX];
    size_t n = 0;
#define NV(nm, nlen, val, vlen)                                                                                                    \
    do {                                                                                                                           \
        nva[n].name = (uint8_t *)(nm);                                                                                             \
        nva[n].namelen = (nlen);                                                                                                   \
        nva[n].value = (uint8_t *)(val);                                                                                           \
        nva[n].valuelen = (vlen);                                                                                                  \
        nva[n].flags = NGHTTP2_NV_FLAG_NONE;                                                                                       \
        n++;                                                                                                                       \
    } while (0)
#define NVS(nm, val) NV(nm, sizeof(nm) - 1, val, strlen(val))
    NVS(":method", "POST");
    NVS(":scheme", cl->https ? "https" : "http");
    NVS(":authority", cl->authority);
    NVS(":path", path);
    NVS("authorization", cl->auth_value);
    NVS("user-agent", cl->user_agent);
    NVS("content-length", clen);
    for (size_t i = 0; s->headers[i] != NULL; i++) {
        const char *line = s->headers[i];
        const char *colon = strchr(line, ':');
        size_t nlen = colon != NULL ? (size_t)(colon - line) : 0;
        if (nlen == 0 || nlen >= HEADER_NAME_MAX)
            continue; /* checked at start */
        for (size_t j = 0; j < nlen; j++)
            names[i][j] = (char)(line[j] >= 'A' && line[j] <= 'Z' ? line[j] + 32 : line[j]);
        const char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        NV(names[i], nlen, v, strlen(v));
    }
#undef NVS
#undef NV
    nghttp2_data_provider prd = {.source.ptr = s, .read_callback = on_read_body};
    s->body_off = s->body_sent = 0;
    int32_t id = nghttp2_submit_request(k->session, NULL, nva, n, s->body_len > 0 ? &prd : NULL, s);
    if (id < 0)
        return id;
    s->id = id;
    s->in_session = true;
    s->ended = false;
    k->open_streams++;
    conn_link_stream(k, s);
    if (ptth_timer_active(&k->timer) && k->state == CONN_READY)
        ptth_timer_stop(cl->loop, &k->timer); /* the idle timer */
    conn_want_flush(k);
    return 0;
}

static h2_conn *
pick_conn(ptth_h2_client *cl, bool *opening)
{
    *opening = false;
    for (h2_conn *k = cl->conns; k != NULL; k = k->next) {
        if (k->state != CONN_READY || k->max_streams == 0) {
            /* being opened, or the relay allows no streams for now (its
             * SETTINGS may say 0): wait for it rather than open more */
            *opening = true;
            continue;
        }
        if (!k->goaway && k->open_streams < k->max_streams)
            return k;
    }
    return NULL;
}

static void
dispatch(ptth_h2_client *cl)
{
    while (cl->queue_head != NULL) {
        bool opening;
        h2_conn *k = pick_conn(cl, &opening);
        if (k == NULL) {
            if (!opening && cl->nconns < MAX_CONNECTIONS && !cl->unavailable)
                conn_open(cl); /* may fail the queue at once */
            return;
        }
        h2_stream *s = cl->queue_head;
        queue_unlink(cl, s);
        int rc = submit(k, s);
        if (rc == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE) {
            k->goaway = true;
            queue_push(cl, s, true);
        } else if (rc != 0) {
            stream_complete(s, nghttp2_strerror(rc));
        }
    }
}

static void
on_req_timeout(ptth_timer *t)
{
    h2_stream *s = t->data;
    ptth_req *r = s->req;
    if (r == NULL)
        return;
    r->timed_out = true;
    queue_unlink(s->cl, s);
    if (s->in_session && s->conn != NULL) {
        nghttp2_submit_rst_stream(s->conn->session, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_CANCEL);
        conn_want_flush(s->conn);
    }
    char why[80];
    snprintf(why, sizeof(why), "request timed out after %ld ms", r->timeout_ms);
    drop_held(s);
    stream_complete(s, why);
}

int
ptth_h2_req_start(ptth_h2_client *cl, ptth_req *r, ptth_req_kind kind, const char *path, const char *const *headers,
                  const void *body, size_t body_len)
{
    size_t plen = strlen(path);
    if (plen >= PATH_MAX_LEN || plen + strlen(cl->prefix) >= PATH_MAX_LEN)
        return -E2BIG;
    size_t nh = 0;
    for (; headers != NULL && headers[nh] != NULL; nh++) {
        if (nh == PTTH_REQ_HEADERS_MAX)
            return -E2BIG;
        const char *colon = strchr(headers[nh], ':');
        if (colon == NULL || colon == headers[nh] || (size_t)(colon - headers[nh]) >= HEADER_NAME_MAX)
            return -EINVAL;
    }
    h2_stream *s = calloc(1, sizeof(*s) + plen + 1);
    if (s == NULL)
        return -ENOMEM;
    s->cl = cl;
    s->req = r;
    s->kind = kind;
    memcpy(s->path, path, plen + 1);
    for (size_t i = 0; i < nh; i++)
        s->headers[i] = headers[i];
    s->body = body;
    s->body_len = body_len;
    r->h2 = s;
    r->paused = false;
    r->timed_out = false;
    ptth_req_response_reset(r);
    if (r->timeout_ms > 0)
        ptth_timer_start(cl->loop, &s->timer, r->timeout_ms, on_req_timeout, s);
    queue_push(cl, s, false);
    schedule_dispatch(cl);
    return 0;
}

void
ptth_h2_req_cancel(ptth_req *r)
{
    h2_stream *s = r->h2;
    if (s == NULL)
        return;
    r->h2 = NULL;
    s->req = NULL;
    ptth_timer_stop(s->cl->loop, &s->timer);
    queue_unlink(s->cl, s);
    if (s->in_session && s->conn != NULL)
        nghttp2_submit_rst_stream(s->conn->session, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_CANCEL);
    if (s->conn != NULL)
        out_detach(s->conn, s);
    drop_held(s);
    if (s->conn != NULL)
        conn_want_flush(s->conn);
    stream_maybe_free(s);
}

void
ptth_h2_req_resume(ptth_req *r)
{
    h2_stream *s = r->h2;
    if (s == NULL || !r->paused)
        return;
    r->paused = false;
    size_t taken = 0;
    while (s->held_off < s->held_len) {
        size_t took = r->ops->on_body(r, s->held + s->held_off, s->held_len - s->held_off);
        if (took == PTTH_REQ_PAUSE) {
            r->paused = true;
            break;
        }
        if (took > s->held_len - s->held_off)
            took = s->held_len - s->held_off;
        s->held_off += took;
        taken += took;
    }
    if (taken > 0 && s->conn != NULL) {
        nghttp2_session_consume(s->conn->session, s->id, taken);
        conn_want_flush(s->conn);
    }
    if (s->held_off == s->held_len) {
        /* drained: the buffer goes (a paused stream is the exception) */
        free(s->held);
        s->held = NULL;
        s->held_len = s->held_off = s->held_cap = 0;
        if (s->ended && !r->paused)
            stream_complete(s, NULL);
    }
}

/* ---- the client ---- */

/* Splits the URL into host, port, authority and path prefix. */
static int
parse_url(ptth_h2_client *cl, const char *url, char *err, size_t errlen)
{
    const char *p;
    if (strncasecmp(url, "https://", 8) == 0) {
        cl->https = true;
        p = url + 8;
    } else if (strncasecmp(url, "http://", 7) == 0) {
        p = url + 7;
    } else {
        snprintf(err, errlen, "relay URL '%s' must start with http:// or https://", url);
        return -EINVAL;
    }
    size_t alen = strcspn(p, "/");
    if (alen == 0 || alen >= sizeof(cl->authority) || memchr(p, '@', alen) != NULL) {
        snprintf(err, errlen, "relay URL '%s' has no usable host", url);
        return -EINVAL;
    }
    memcpy(cl->authority, p, alen);
    cl->authority[alen] = '\0';
    const char *hp = cl->authority, *port = NULL;
    size_t hlen;
    if (hp[0] == '[') {
        const char *end = strchr(hp, ']');
        if (end == NULL) {
            snprintf(err, errlen, "relay URL '%s' has an unclosed '['", url);
            return -EINVAL;
        }
        hp++;
        hlen = (size_t)(end - hp);
        if (end[1] == ':')
            port = end + 2;
        else if (end[1] != '\0') {
            snprintf(err, errlen, "relay URL '%s' has junk after the address", url);
            return -EINVAL;
        }
    } else {
        const char *colon = strchr(hp, ':');
        hlen = colon != NULL ? (size_t)(colon - hp) : strlen(hp);
        if (colon != NULL)
            port = colon + 1;
    }
    if (hlen == 0 || hlen >= sizeof(cl->host)) {
        snprintf(err, errlen, "relay URL '%s' has no usable host", url);
        return -EINVAL;
    }
    memcpy(cl->host, hp, hlen);
    cl->host[hlen] = '\0';
    if (port != NULL) {
        size_t n = strlen(port);
        if (n == 0 || n > 5 || strspn(port, "0123456789") != n || atoi(port) < 1 || atoi(port) > 65535) {
            snprintf(err, errlen, "relay URL '%s' has a bad port", url);
            return -EINVAL;
        }
        memcpy(cl->port, port, n + 1);
    } else {
        snprintf(cl->port, sizeof(cl->port), "%s", cl->https ? "443" : "80");
    }
    const char *prefix = p + alen;
    size_t plen = strlen(prefix);
    while (plen > 0 && prefix[plen - 1] == '/')
        plen--;
    if (plen >= sizeof(cl->prefix)) {
        snprintf(err, errlen, "relay URL '%s' has a path that is too long", url);
        return -E2BIG;
    }
    memcpy(cl->prefix, prefix, plen);
    cl->prefix[plen] = '\0';
    return 0;
}

static int
make_ssl_ctx(ptth_h2_client *cl, char *err, size_t errlen)
{
    cl->ssl_ctx = SSL_CTX_new(TLS_client_method());
    if (cl->ssl_ctx == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    SSL_CTX_set_min_proto_version(cl->ssl_ctx, TLS1_2_VERSION);
    /* http/1.1 too: a server without h2 then picks it (instead of ending the
     * handshake with "no application protocol") and we fall back */
    static const unsigned char alpn[] = {2, 'h', '2', 8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    SSL_CTX_set_alpn_protos(cl->ssl_ctx, alpn, sizeof(alpn));
    if (cl->cfg.insecure) {
        SSL_CTX_set_verify(cl->ssl_ctx, SSL_VERIFY_NONE, NULL);
        return 0;
    }
    SSL_CTX_set_verify(cl->ssl_ctx, SSL_VERIFY_PEER, NULL);
    int ok = cl->cfg.ca_file != NULL ? SSL_CTX_load_verify_locations(cl->ssl_ctx, cl->cfg.ca_file, NULL)
                                     : SSL_CTX_set_default_verify_paths(cl->ssl_ctx);
    if (ok != 1) {
        unsigned long oe = ERR_get_error();
        snprintf(err, errlen, "cannot load CA certificates from '%s': %s",
                 cl->cfg.ca_file != NULL ? cl->cfg.ca_file : "the system store",
                 oe != 0 ? ERR_reason_error_string(oe) : "unknown error");
        return -EINVAL;
    }
    return 0;
}

int
ptth_h2_client_new(ptth_loop *loop, const ptth_h2_client_config *cfg, ptth_h2_client **out, char *err, size_t errlen)
{
    *out = NULL;
    ptth_h2_client *cl = calloc(1, sizeof(*cl));
    if (cl == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    cl->loop = loop;
    cl->cfg = *cfg;
    cl->cfg.ca_file = NULL;
    int rc = parse_url(cl, cfg->url, err, errlen);
    if (rc != 0) {
        free(cl);
        return rc;
    }
    cl->cfg.ca_file = cfg->ca_file;
    cl->auth_value = strdup(cfg->auth_value);
    cl->user_agent = strdup(cfg->user_agent != NULL ? cfg->user_agent : "ptth");
    cl->readbuf = malloc(READ_SIZE);
    if (cl->auth_value == NULL || cl->user_agent == NULL || cl->readbuf == NULL ||
        nghttp2_session_callbacks_new(&cl->callbacks) != 0 || nghttp2_option_new(&cl->option) != 0) {
        ptth_h2_client_free(cl);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    nghttp2_session_callbacks_set_on_begin_headers_callback(cl->callbacks, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cl->callbacks, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cl->callbacks, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cl->callbacks, on_data_chunk_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cl->callbacks, on_stream_close);
    nghttp2_session_callbacks_set_send_data_callback(cl->callbacks, on_send_data);
    nghttp2_option_set_no_auto_window_update(cl->option, 1);
    nghttp2_option_set_peer_max_concurrent_streams(cl->option, DEFAULT_MAX_STREAMS);
    if (cl->https && (rc = make_ssl_ctx(cl, err, errlen)) != 0) {
        ptth_h2_client_free(cl);
        return rc;
    }
    cl->cfg.ca_file = NULL; /* not kept: loaded into the context */
    cl->cfg.url = NULL;
    cl->cfg.auth_value = NULL;
    cl->cfg.user_agent = NULL;
    *out = cl;
    return 0;
}

void
ptth_h2_client_free(ptth_h2_client *cl)
{
    if (cl == NULL)
        return;
    cl->unavailable = true; /* conn_close must not fail or dispatch the queue */
    while (cl->queue_head != NULL) {
        h2_stream *s = cl->queue_head;
        queue_unlink(cl, s);
        if (s->req != NULL)
            s->req->h2 = NULL;
        s->req = NULL;
        stream_maybe_free(s);
    }
    while (cl->conns != NULL)
        conn_close(cl->conns, NULL);
    h2_stream *s;
    while ((s = cl->done_head) != NULL) {
        cl->done_head = s->done_next;
        s->done_listed = false;
        if (s->req != NULL)
            s->req->h2 = NULL;
        s->req = NULL;
        stream_maybe_free(s);
    }
    ptth_defer_cancel(cl->loop, &cl->done_defer);
    ptth_defer_cancel(cl->loop, &cl->dispatch_defer);
    if (cl->ssl_ctx != NULL)
        SSL_CTX_free(cl->ssl_ctx);
    if (cl->callbacks != NULL)
        nghttp2_session_callbacks_del(cl->callbacks);
    if (cl->option != NULL)
        nghttp2_option_del(cl->option);
    if (cl->auth_value != NULL) {
        memset(cl->auth_value, 0, strlen(cl->auth_value)); /* the key is a secret */
        free(cl->auth_value);
    }
    free(cl->user_agent);
    free(cl->readbuf);
    free(cl);
}

bool
ptth_h2_client_unavailable(const ptth_h2_client *cl)
{
    return cl->unavailable;
}
