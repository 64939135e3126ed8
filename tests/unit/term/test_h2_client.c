/*
 * Unit tests of the terminators' HTTP/2 client (common/h2_client.c) driven
 * through the real relay client (ptth_relay_client_new, ptth_req_start,
 * cancel, resume on a ptth_loop) against a fake relay in the same process:
 * a loopback listener served on the same loop by an nghttp2 server session,
 * so that each test scripts what the relay does (answer, hold, refuse,
 * GOAWAY, reset, speak only HTTP/1.1).
 *
 * "Inside nghttp2": the binary is linked with --wrap for
 * nghttp2_session_mem_recv/mem_send, and the wrappers count how deep the
 * client's own sessions are in those calls (the fake relay's sessions are
 * not counted). on_done must run at depth 0 (from the loop); on_headers of
 * an HTTP/2 request must run at depth > 0, which shows the counting works.
 *
 * Every wait is bounded (run_until() fails the test when its guard timer
 * fires); nothing sleeps.
 */
#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>

#include "check_main.h"
#include "h2_client.h"
#include "loop.h"
#include "relay_client.h"

#define KEY "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define AUTH "Bearer " KEY
/* mirrors of h2_client.c's limits, which these tests check */
#define STREAM_WINDOW (256 * 1024)
#define MAX_REFUSALS 3
#define GUARD_MS 5000 /* the longest any single wait of a test may take */
#define MAX_TREQS 64
#define MAX_FHEADERS 16

/* ---- counting the client's nghttp2 calls (see the top comment) ---- */

ssize_t __real_nghttp2_session_mem_recv(nghttp2_session *session, const uint8_t *in, size_t inlen);
ssize_t __wrap_nghttp2_session_mem_recv(nghttp2_session *session, const uint8_t *in, size_t inlen);
ssize_t __real_nghttp2_session_mem_send(nghttp2_session *session, const uint8_t **data_ptr);
ssize_t __wrap_nghttp2_session_mem_send(nghttp2_session *session, const uint8_t **data_ptr);

static int ng_depth; /* the client's sessions only */
static bool is_fake_session(const nghttp2_session *session);

ssize_t
__wrap_nghttp2_session_mem_recv(nghttp2_session *session, const uint8_t *in, size_t inlen)
{
    bool mine = !is_fake_session(session);
    ng_depth += mine;
    ssize_t rv = __real_nghttp2_session_mem_recv(session, in, inlen);
    ng_depth -= mine;
    return rv;
}

ssize_t
__wrap_nghttp2_session_mem_send(nghttp2_session *session, const uint8_t **data_ptr)
{
    bool mine = !is_fake_session(session);
    ng_depth += mine;
    ssize_t rv = __real_nghttp2_session_mem_send(session, data_ptr);
    ng_depth -= mine;
    return rv;
}

/* ---- body bytes: a pattern that does not repeat at any frame size ---- */

static uint8_t
pattern(uint8_t seed, size_t i)
{
    uint32_t x = (uint32_t)i * 2654435761u;
    x ^= x >> 15;
    return (uint8_t)(x + seed);
}

/* ---- the fake relay ---- */

typedef struct fconn fconn;
typedef struct fstream fstream;

/* One request as the fake relay saw it, and its scripted response. */
struct fstream {
    fconn *c;
    int32_t id;
    char method[16], scheme[16], authority[64], path[512];
    char hname[MAX_FHEADERS][64], hval[MAX_FHEADERS][256];
    int nh;
    uint8_t *body;
    size_t body_len, body_cap;
    bool complete; /* the whole request arrived */
    bool closed;   /* the server session closed the stream */
    uint32_t close_code;
    bool got_rst;
    uint32_t rst_code;
    bool complete_at_rst; /* the whole request had arrived when RST_STREAM did */
    bool responded;
    /* response body: text, or resp_len bytes of pattern(seed) */
    const char *resp_text;
    size_t resp_len, resp_off;
    uint8_t seed;
    bool keep_open;   /* do not end the stream after the body */
    size_t sent_data; /* DATA payload bytes sent on it */
    fstream *next_all;
};

enum fmode {
    MODE_H2,
    MODE_SNIFF,  /* h1_only: first bytes decide */
    MODE_REJECT, /* answered the HTTP/2 preface with HTTP/1.1 400 */
    MODE_H1,
    MODE_SILENT, /* accepts, reads, never answers */
};

struct fconn {
    int fd; /* -1 once closed */
    int index;
    enum fmode mode;
    ptth_watch watch;
    ptth_defer flush_defer;
    nghttp2_session *session;
    uint8_t *out;
    size_t out_len, out_off, out_cap;
    char in[64 * 1024];
    size_t in_len;
    bool shut_after_flush;
    bool no_read; /* the relay stops reading this connection */
    fconn *next;
};

static struct {
    int lfd, port;
    ptth_watch lwatch;
    int accepted;
    int h2_prefaces;                 /* h1_only: HTTP/2 prefaces answered with 400 */
    uint32_t max_streams;            /* SETTINGS_MAX_CONCURRENT_STREAMS */
    bool h1_only;                    /* answers the HTTP/2 preface with HTTP/1.1 400, serves HTTP/1.1 */
    bool silent;                     /* never answers anything */
    bool big_window;                 /* 64 MiB windows for request bodies */
    void (*on_request)(fstream *st); /* a whole request arrived */
    void (*on_headers)(fstream *st); /* a request's headers arrived */
    nghttp2_session_callbacks *cbs;
    fconn *conns;
    fstream *all;
    fstream *reqs[512]; /* complete requests in arrival order */
    int nreqs;
} F;

static ptth_loop *loop;
static ptth_relay_client *C;
static char url[160];

static void poke(void);
static void fconn_want_flush(fconn *c);

static bool
is_fake_session(const nghttp2_session *session)
{
    for (fconn *c = F.conns; c != NULL; c = c->next)
        if (c->session == session)
            return true;
    return false;
}

static const char *
fheader(const fstream *st, const char *name)
{
    for (int i = 0; i < st->nh; i++)
        if (strcmp(st->hname[i], name) == 0)
            return st->hval[i];
    return NULL;
}

static int
count_path(const char *path)
{
    int n = 0;
    for (int i = 0; i < F.nreqs; i++)
        n += strcmp(F.reqs[i]->path, path) == 0;
    return n;
}

static fstream *
find_req(const char *path, int conn_index)
{
    for (int i = 0; i < F.nreqs; i++)
        if (strcmp(F.reqs[i]->path, path) == 0 && (conn_index < 0 || F.reqs[i]->c->index == conn_index))
            return F.reqs[i];
    return NULL;
}

static fstream *
fstream_new(fconn *c, int32_t id)
{
    fstream *st = calloc(1, sizeof(*st));
    ck_assert_ptr_nonnull(st);
    st->c = c;
    st->id = id;
    st->next_all = F.all;
    F.all = st;
    return st;
}

static void
body_append(fstream *st, const uint8_t *p, size_t len)
{
    if (len == 0)
        return;
    if (st->body_len + len > st->body_cap) {
        size_t cap = st->body_cap == 0 ? 4096 : st->body_cap;
        while (cap < st->body_len + len)
            cap *= 2;
        st->body = realloc(st->body, cap);
        ck_assert_ptr_nonnull(st->body);
        st->body_cap = cap;
    }
    memcpy(st->body + st->body_len, p, len);
    st->body_len += len;
}

static void
request_arrived(fstream *st)
{
    st->complete = true;
    ck_assert_int_lt(F.nreqs, (int)(sizeof(F.reqs) / sizeof(F.reqs[0])));
    F.reqs[F.nreqs++] = st;
    if (F.on_request != NULL)
        F.on_request(st);
}

static void
out_append(fconn *c, const void *p, size_t len)
{
    if (c->out_len + len > c->out_cap) {
        size_t cap = c->out_cap == 0 ? 64 * 1024 : c->out_cap;
        while (cap < c->out_len + len)
            cap *= 2;
        c->out = realloc(c->out, cap);
        ck_assert_ptr_nonnull(c->out);
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, p, len);
    c->out_len += len;
}

/* Closes one server connection; with abort, by a TCP reset. Never called
 * from inside its own session. */
static void
fconn_close(fconn *c, bool abort)
{
    if (c->fd < 0)
        return;
    ptth_watch_stop(&c->watch);
    ptth_defer_cancel(loop, &c->flush_defer);
    if (abort) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    close(c->fd);
    c->fd = -1;
    if (c->session != NULL) {
        nghttp2_session_del(c->session);
        c->session = NULL;
    }
    for (fstream *st = F.all; st != NULL; st = st->next_all)
        if (st->c == c)
            st->closed = true;
}

static uint32_t
fconn_events(const fconn *c, bool want_out)
{
    return (c->no_read ? 0 : EPOLLIN) | (want_out ? EPOLLOUT : 0);
}

/* Writes what is pending, then what the session has to send (gathered into
 * writes of up to 256 KiB). */
static void
fconn_flush(fconn *c)
{
    while (c->fd >= 0) {
        if (c->out_off < c->out_len) {
            ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                ptth_watch_set(&c->watch, fconn_events(c, true));
                return;
            }
            if (n < 0) {
                fconn_close(c, false);
                return;
            }
            c->out_off += (size_t)n;
            continue;
        }
        c->out_off = c->out_len = 0;
        if (c->session == NULL)
            break;
        while (c->out_len < 256 * 1024) {
            const uint8_t *data;
            ssize_t n = nghttp2_session_mem_send(c->session, &data);
            ck_assert_int_ge(n, 0);
            if (n == 0)
                break;
            out_append(c, data, (size_t)n);
        }
        if (c->out_len == 0)
            break;
    }
    if (c->fd < 0)
        return;
    ptth_watch_set(&c->watch, fconn_events(c, false));
    if (c->shut_after_flush) {
        shutdown(c->fd, SHUT_WR);
        c->shut_after_flush = false;
    }
    if (c->session != NULL && !nghttp2_session_want_read(c->session) && !nghttp2_session_want_write(c->session))
        fconn_close(c, false);
}

static void
on_fconn_flush(ptth_defer *d)
{
    fconn_flush(d->data);
    poke();
}

static void
fconn_want_flush(fconn *c)
{
    if (c->fd >= 0)
        ptth_defer_call(loop, &c->flush_defer, on_fconn_flush, c);
}

/* HTTP/1.1 requests of the fallback test: each gets 204 with PTTH-Conn. */
static void
h1_parse(fconn *c)
{
    for (;;) {
        char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
        if (end == NULL)
            return;
        size_t hlen = (size_t)(end - c->in) + 4;
        fstream *st = fstream_new(c, 0);
        char *line = c->in, *line_end = memmem(line, hlen, "\r\n", 2);
        ck_assert_int_eq(sscanf(line, "%15s %511s", st->method, st->path), 2);
        size_t clen = 0;
        for (line = line_end + 2; line < end; line = line_end + 2) {
            line_end = memmem(line, (size_t)(end + 2 - line), "\r\n", 2);
            char *colon = memchr(line, ':', (size_t)(line_end - line));
            if (colon == NULL || st->nh == MAX_FHEADERS)
                continue;
            size_t nlen = (size_t)(colon - line);
            const char *v = colon + 1;
            while (*v == ' ')
                v++;
            snprintf(st->hname[st->nh], sizeof(st->hname[0]), "%.*s", (int)nlen, line);
            for (char *p = st->hname[st->nh]; *p != '\0'; p++)
                if (*p >= 'A' && *p <= 'Z')
                    *p = (char)(*p + 32);
            snprintf(st->hval[st->nh], sizeof(st->hval[0]), "%.*s", (int)(line_end - v), v);
            if (strcmp(st->hname[st->nh], "content-length") == 0)
                clen = strtoul(st->hval[st->nh], NULL, 10);
            st->nh++;
        }
        if (c->in_len < hlen + clen) { /* the body is not all here yet */
            F.all = st->next_all;
            free(st);
            return;
        }
        body_append(st, (const uint8_t *)c->in + hlen, clen);
        memmove(c->in, c->in + hlen + clen, c->in_len - hlen - clen);
        c->in_len -= hlen + clen;
        static const char answer[] = "HTTP/1.1 204 No Content\r\nPTTH-Conn: h1conn\r\nPTTH-Seq: 9\r\n\r\n";
        out_append(c, answer, sizeof(answer) - 1);
        st->responded = true;
        st->closed = true;
        request_arrived(st);
    }
}

/* Bytes from the client; false when the connection went away. */
static bool
fconn_input(fconn *c, const uint8_t *p, size_t n)
{
    switch (c->mode) {
    case MODE_H2: {
        ssize_t rv = nghttp2_session_mem_recv(c->session, p, n);
        if (rv < 0) {
            fconn_close(c, false);
            return false;
        }
        return true;
    }
    case MODE_SILENT:
    case MODE_REJECT:
        return true;
    case MODE_SNIFF:
    case MODE_H1:
        ck_assert_uint_le(c->in_len + n, sizeof(c->in));
        memcpy(c->in + c->in_len, p, n);
        c->in_len += n;
        if (c->mode == MODE_SNIFF) {
            if (c->in_len < 4)
                return true;
            if (memcmp(c->in, "PRI ", 4) == 0) {
                static const char bad[] = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n"
                                          "Content-Length: 11\r\nConnection: close\r\n\r\nBad Request";
                F.h2_prefaces++;
                c->mode = MODE_REJECT;
                out_append(c, bad, sizeof(bad) - 1);
                c->shut_after_flush = true; /* then read until the client closes: no reset */
                return true;
            }
            c->mode = MODE_H1;
        }
        h1_parse(c);
        return true;
    }
    return true;
}

static void
on_fconn_event(ptth_watch *w, uint32_t events)
{
    fconn *c = w->data;
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        static uint8_t buf[64 * 1024];
        for (int i = 0; i < 16 && !c->no_read; i++) {
            ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                break;
            if (n <= 0) {
                fconn_close(c, false);
                poke();
                return;
            }
            if (!fconn_input(c, buf, (size_t)n)) {
                poke();
                return;
            }
        }
    }
    fconn_flush(c);
    poke();
}

static void
on_accept(ptth_watch *w, uint32_t events)
{
    (void)w;
    (void)events;
    int fd;
    while ((fd = accept4(F.lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
        fconn *c = calloc(1, sizeof(*c));
        ck_assert_ptr_nonnull(c);
        c->fd = fd;
        c->index = F.accepted++;
        c->next = F.conns;
        F.conns = c;
        ck_assert_int_eq(ptth_watch_start(loop, &c->watch, fd, EPOLLIN, on_fconn_event, c), 0);
        if (F.silent) {
            c->mode = MODE_SILENT;
        } else if (F.h1_only) {
            c->mode = MODE_SNIFF;
        } else {
            c->mode = MODE_H2;
            ck_assert_int_eq(nghttp2_session_server_new(&c->session, F.cbs, c), 0);
            nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, F.max_streams},
                                           {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 64 << 20}};
            ck_assert_int_eq(nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, iv, F.big_window ? 2 : 1), 0);
            if (F.big_window)
                ck_assert_int_eq(nghttp2_session_set_local_window_size(c->session, NGHTTP2_FLAG_NONE, 0, 64 << 20), 0);
            fconn_want_flush(c);
        }
    }
    poke();
}

/* -- the server session's callbacks -- */

static int
srv_on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST)
        nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, fstream_new(user_data, frame->hd.stream_id));
    return 0;
}

/* Bounded copy of len bytes as a string. */
static void
copy_text(char *dst, size_t dstlen, const uint8_t *p, size_t len)
{
    if (len >= dstlen)
        len = dstlen - 1;
    memcpy(dst, p, len);
    dst[len] = '\0';
}

static int
srv_on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name, size_t namelen, const uint8_t *value,
              size_t valuelen, uint8_t flags, void *user_data)
{
    (void)flags;
    (void)user_data;
    fstream *st = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (st == NULL)
        return 0;
#define PSEUDO(nm, field)                                                                                                          \
    if (namelen == sizeof(nm) - 1 && memcmp(name, nm, namelen) == 0) {                                                             \
        copy_text(st->field, sizeof(st->field), value, valuelen);                                                                  \
        return 0;                                                                                                                  \
    }
    PSEUDO(":method", method)
    PSEUDO(":scheme", scheme)
    PSEUDO(":authority", authority)
    PSEUDO(":path", path)
#undef PSEUDO
    ck_assert_int_lt(st->nh, MAX_FHEADERS);
    copy_text(st->hname[st->nh], sizeof(st->hname[0]), name, namelen);
    copy_text(st->hval[st->nh], sizeof(st->hval[0]), value, valuelen);
    st->nh++;
    return 0;
}

static int
srv_on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id, const uint8_t *data, size_t len, void *user_data)
{
    (void)flags;
    (void)user_data;
    fstream *st = nghttp2_session_get_stream_user_data(session, stream_id);
    if (st != NULL)
        body_append(st, data, len);
    return 0;
}

static int
srv_on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    (void)user_data;
    fstream *st = frame->hd.stream_id > 0 ? nghttp2_session_get_stream_user_data(session, frame->hd.stream_id) : NULL;
    if (st == NULL)
        return 0;
    switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
        if (F.on_headers != NULL)
            F.on_headers(st);
        /* fall through */
    case NGHTTP2_DATA:
        if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) && !st->complete)
            request_arrived(st);
        break;
    case NGHTTP2_RST_STREAM:
        st->got_rst = true;
        st->rst_code = frame->rst_stream.error_code;
        st->complete_at_rst = st->complete;
        break;
    default:
        break;
    }
    return 0;
}

static int
srv_on_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    (void)user_data;
    if (frame->hd.type != NGHTTP2_DATA)
        return 0;
    fstream *st = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (st != NULL)
        st->sent_data += frame->hd.length;
    return 0;
}

static int
srv_on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code, void *user_data)
{
    (void)user_data;
    fstream *st = nghttp2_session_get_stream_user_data(session, stream_id);
    if (st != NULL) {
        st->closed = true;
        st->close_code = error_code;
    }
    return 0;
}

static ssize_t
srv_read_body(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length, uint32_t *data_flags,
              nghttp2_data_source *source, void *user_data)
{
    (void)session;
    (void)stream_id;
    (void)user_data;
    fstream *st = source->ptr;
    size_t n = st->resp_len - st->resp_off;
    if (n > length)
        n = length;
    for (size_t i = 0; i < n; i++)
        buf[i] = st->resp_text != NULL ? (uint8_t)st->resp_text[st->resp_off + i] : pattern(st->seed, st->resp_off + i);
    st->resp_off += n;
    if (st->resp_off == st->resp_len) {
        if (!st->keep_open)
            *data_flags |= NGHTTP2_DATA_FLAG_EOF;
        else if (n == 0)
            return NGHTTP2_ERR_DEFERRED; /* open, nothing more to say */
    }
    return (ssize_t)n;
}

/* A scripted answer: status, header pairs (lowercase name, value; NULL
 * ends), and a text body or gen bytes of pattern(seed). */
typedef struct resp {
    int status;
    const char *h[12];
    const char *text;
    size_t gen;
    uint8_t seed;
    bool keep_open;
} resp;

static void
respond(fstream *st, resp rp)
{
    ck_assert(!st->responded);
    ck_assert_ptr_nonnull(st->c->session);
    st->responded = true;
    char status[8];
    snprintf(status, sizeof(status), "%d", rp.status);
    nghttp2_nv nva[1 + 6];
    size_t n = 0;
    nva[n++] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)status, 7, strlen(status), NGHTTP2_NV_FLAG_NONE};
    for (size_t i = 0; rp.h[i] != NULL; i += 2) {
        ck_assert_uint_lt(n, sizeof(nva) / sizeof(nva[0]));
        nva[n++] =
            (nghttp2_nv){(uint8_t *)rp.h[i], (uint8_t *)rp.h[i + 1], strlen(rp.h[i]), strlen(rp.h[i + 1]), NGHTTP2_NV_FLAG_NONE};
    }
    st->resp_text = rp.text;
    st->resp_len = rp.text != NULL ? strlen(rp.text) : rp.gen;
    st->seed = rp.seed;
    st->keep_open = rp.keep_open;
    nghttp2_data_provider prd = {.source.ptr = st, .read_callback = srv_read_body};
    bool body = st->resp_len > 0 || rp.keep_open;
    ck_assert_int_eq(nghttp2_submit_response(st->c->session, st->id, nva, n, body ? &prd : NULL), 0);
    fconn_want_flush(st->c);
}

static void
refuse(fstream *st)
{
    st->responded = true;
    ck_assert_int_eq(nghttp2_submit_rst_stream(st->c->session, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_REFUSED_STREAM), 0);
    fconn_want_flush(st->c);
}

static void
fake_start(void)
{
    memset(&F, 0, sizeof(F));
    F.max_streams = 100;
    F.lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(F.lfd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(F.lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(F.lfd, 64), 0);
    socklen_t len = sizeof(sa);
    ck_assert_int_eq(getsockname(F.lfd, (struct sockaddr *)&sa, &len), 0);
    F.port = ntohs(sa.sin_port);
    ck_assert_int_eq(ptth_watch_start(loop, &F.lwatch, F.lfd, EPOLLIN, on_accept, NULL), 0);
    ck_assert_int_eq(nghttp2_session_callbacks_new(&F.cbs), 0);
    nghttp2_session_callbacks_set_on_begin_headers_callback(F.cbs, srv_on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(F.cbs, srv_on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(F.cbs, srv_on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_recv_callback(F.cbs, srv_on_frame_recv);
    nghttp2_session_callbacks_set_on_frame_send_callback(F.cbs, srv_on_frame_send);
    nghttp2_session_callbacks_set_on_stream_close_callback(F.cbs, srv_on_stream_close);
}

/* Big flow-control windows for request bodies, and a small fixed socket
 * buffer (set on the listener, so that accepted sockets start with it): a
 * relay that stops reading then leaves most of a big body in the client. */
static void
fake_big_window(void)
{
    F.big_window = true;
    int size = 64 * 1024;
    ck_assert_int_eq(setsockopt(F.lfd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size)), 0);
}

static void
fake_free(void)
{
    ptth_watch_stop(&F.lwatch);
    close(F.lfd);
    while (F.conns != NULL) {
        fconn *c = F.conns;
        F.conns = c->next;
        fconn_close(c, false);
        free(c->out);
        free(c);
    }
    while (F.all != NULL) {
        fstream *st = F.all;
        F.all = st->next_all;
        free(st->body);
        free(st);
    }
    nghttp2_session_callbacks_del(F.cbs);
}

/* ---- the client's requests ---- */

typedef struct treq {
    ptth_req r; /* first: the callbacks get &t->r */
    int done;
    bool error_null;
    char error[512];
    bool done_inside_ng; /* on_done ran inside the client's nghttp2 calls */
    bool active_at_done; /* ptth_req_active() in on_done */
    size_t taken_at_done;
    int headers_calls;
    bool headers_outside_ng; /* on_headers ran outside nghttp2 */
    long status_at_headers;
    int body_calls;
    size_t taken; /* body bytes accepted */
    bool check_pattern;
    uint8_t seed;
    bool bad_byte;
    size_t bad_at;
    char text[512];
    size_t text_len;
    /* pausing */
    bool pause_first;   /* PTTH_REQ_PAUSE at the first body bytes */
    size_t pause_every; /* after resuming: pause again once this many were taken (0: never) */
    size_t since_resume;
    int pause_next;   /* PTTH_REQ_PAUSE at the next this many calls */
    bool auto_resume; /* resume from a deferred call after each pause */
    int pauses;
    ptth_defer resume_defer;
    const char *headers[PTTH_REQ_HEADERS_MAX + 1];
    char path[64];
} treq;

static treq T[MAX_TREQS];
static int NT;
static int stray_callbacks; /* callbacks of requests that were cancelled */

static void
on_resume_deferred(ptth_defer *d)
{
    treq *t = d->data;
    t->since_resume = 0;
    ptth_req_resume(&t->r);
}

static void
t_on_headers(ptth_req *r)
{
    treq *t = (treq *)r;
    t->headers_calls++;
    t->status_at_headers = r->status;
    if (ng_depth == 0)
        t->headers_outside_ng = true;
}

static size_t
t_on_body(ptth_req *r, const uint8_t *p, size_t len)
{
    treq *t = (treq *)r;
    t->body_calls++;
    ck_assert_uint_gt(len, 0);
    if ((t->pause_first && t->pauses == 0) || (t->pause_every > 0 && t->since_resume >= t->pause_every) || t->pause_next > 0) {
        t->pauses++;
        if (t->pause_next > 0)
            t->pause_next--;
        if (t->auto_resume)
            ptth_defer_call(loop, &t->resume_defer, on_resume_deferred, t);
        poke();
        return PTTH_REQ_PAUSE;
    }
    if (t->check_pattern) {
        for (size_t i = 0; i < len && !t->bad_byte; i++) {
            if (p[i] != pattern(t->seed, t->taken + i)) {
                t->bad_byte = true;
                t->bad_at = t->taken + i;
            }
        }
    } else {
        size_t n = len < sizeof(t->text) - 1 - t->text_len ? len : sizeof(t->text) - 1 - t->text_len;
        memcpy(t->text + t->text_len, p, n);
        t->text_len += n;
        t->text[t->text_len] = '\0';
    }
    t->taken += len;
    t->since_resume += len;
    poke();
    return len;
}

static void
t_on_done(ptth_req *r, const char *error)
{
    treq *t = (treq *)r;
    t->done++;
    t->done_inside_ng = t->done_inside_ng || ng_depth > 0;
    t->active_at_done = ptth_req_active(r);
    t->taken_at_done = t->taken;
    t->error_null = error == NULL;
    snprintf(t->error, sizeof(t->error), "%s", error != NULL ? error : "");
    poke();
}

static const ptth_req_ops t_ops = {t_on_headers, t_on_body, t_on_done};

/* Callbacks of requests freed right after ptth_req_cancel(): any call is a
 * defect (and under ASan the ptth_req is gone). */
static void
stray_on_headers(ptth_req *r)
{
    (void)r;
    stray_callbacks++;
}

static size_t
stray_on_body(ptth_req *r, const uint8_t *p, size_t len)
{
    (void)r;
    (void)p;
    stray_callbacks++;
    return len;
}

static void
stray_on_done(ptth_req *r, const char *error)
{
    (void)r;
    (void)error;
    stray_callbacks++;
}

static const ptth_req_ops stray_ops = {stray_on_headers, stray_on_body, stray_on_done};

/* Starts request T[NT] (POST path, optional body). */
static treq *
start_req(const char *path, const char *body, size_t body_len)
{
    ck_assert_int_lt(NT, MAX_TREQS);
    treq *t = &T[NT++];
    if (t->r.ops == NULL)
        t->r.ops = &t_ops;
    t->r.data = t;
    snprintf(t->path, sizeof(t->path), "%s", path);
    ck_assert_int_eq(ptth_req_start(C, &t->r, PTTH_REQ_SHORT, t->path, t->headers[0] != NULL ? t->headers : NULL, body, body_len),
                     0);
    ck_assert(ptth_req_active(&t->r));
    return t;
}

/* t ended with a whole response, delivered from the loop. */
static void
assert_ok(const treq *t, long status)
{
    ck_assert_msg(t->done == 1, "%s: on_done ran %d times", t->path, t->done);
    ck_assert_msg(t->error_null, "%s: on_done error '%s'", t->path, t->error);
    ck_assert_msg(!t->done_inside_ng, "%s: on_done ran inside nghttp2", t->path);
    ck_assert(!t->active_at_done);
    ck_assert_int_eq(t->r.status, status);
    ck_assert(!t->bad_byte);
}

/* t failed once with an error text containing what. */
static void
assert_failed(const treq *t, const char *what)
{
    ck_assert_msg(t->done == 1, "%s: on_done ran %d times", t->path, t->done);
    ck_assert_msg(!t->error_null, "%s: no error", t->path);
    ck_assert_msg(strstr(t->error, what) != NULL, "%s: error '%s' does not contain '%s'", t->path, t->error, what);
    ck_assert(!t->done_inside_ng);
    ck_assert(!t->active_at_done);
}

/* ---- running the loop, bounded ---- */

static bool (*cur_cond)(void);
static bool guard_fired;
static ptth_timer guard_timer, poll_timer;

static void
poke(void)
{
    if (cur_cond != NULL && cur_cond())
        ptth_loop_stop(loop);
}

static void
on_guard(ptth_timer *t)
{
    (void)t;
    guard_fired = true;
    ptth_loop_stop(loop);
}

static void
on_poll(ptth_timer *t)
{
    poke();
    ptth_timer_start(loop, t, 2, on_poll, NULL);
}

/* Runs the loop until cond() holds; false when ms passed first. */
static bool
run_until(bool (*cond)(void), long ms)
{
    if (cond())
        return true;
    cur_cond = cond;
    guard_fired = false;
    ptth_timer_start(loop, &guard_timer, ms, on_guard, NULL);
    ptth_timer_start(loop, &poll_timer, 2, on_poll, NULL);
    while (!cond() && !guard_fired)
        ck_assert_int_eq(ptth_loop_run(loop), 0);
    ptth_timer_stop(loop, &guard_timer);
    ptth_timer_stop(loop, &poll_timer);
    cur_cond = NULL;
    return cond();
}

static bool
cond_never(void)
{
    return false;
}

/* Runs the loop for ms (to see that nothing more happens). */
static void
run_for(long ms)
{
    ck_assert(!run_until(cond_never, ms));
}

static int want_n;

static bool
all_done(void)
{
    for (int i = 0; i < NT; i++)
        if (T[i].done == 0)
            return false;
    return true;
}

static bool
reqs_reached(void)
{
    return F.nreqs >= want_n;
}

static fstream *watched;

static bool
watched_closed(void)
{
    return watched->closed;
}

static bool
watched_rst(void)
{
    return watched->got_rst;
}

static bool
all_have_body(void)
{
    for (int i = 0; i < NT; i++)
        if (T[i].taken == 0)
            return false;
    return true;
}

#define WAIT(cond) ck_assert_msg(run_until(cond, GUARD_MS), "timed out waiting for " #cond)

/* ---- set-up ---- */

static void
env_start(const char *prefix)
{
    unsetenv("PTTH_HTTP_CLIENT");
    memset(T, 0, sizeof(T));
    NT = 0;
    stray_callbacks = 0;
    loop = ptth_loop_new();
    ck_assert_ptr_nonnull(loop);
    fake_start();
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", F.port, prefix);
    char err[256];
    ptth_relay_client_config cfg = {.url = url, .key = KEY, .user_agent = "h2test-agent"};
    ck_assert_msg(ptth_relay_client_new(loop, &cfg, &C, err, sizeof(err)) == 0, "%s", err);
}

static void
env_stop(void)
{
    ptth_relay_client_free(C);
    C = NULL;
    for (int i = 0; i < NT; i++)
        ptth_defer_cancel(loop, &T[i].resume_defer);
    fake_free();
    ptth_loop_free(loop);
    loop = NULL;
}

/* ---- 1. one POST: what the relay sees, what the caller gets ---- */

static void
script_basic(fstream *st)
{
    if (strcmp(st->path, "/pre/fix/v1/ok") == 0)
        respond(st, (resp){.status = 200,
                           .h = {"ptth-conn", "c0nn-ID_1", "ptth-seq", "42", "ptth-max-chunk", "65536", "retry-after", "7",
                                 "ptth-reason", "all fine", NULL},
                           .text = "hello from relay"});
    else if (strcmp(st->path, "/pre/fix/v1/busy") == 0)
        respond(st, (resp){.status = 503, .h = {"retry-after", "3", NULL}, .text = "relay is busy\r\nsecond line\r\n"});
    else if (strcmp(st->path, "/pre/fix/v1/gone") == 0)
        respond(st, (resp){.status = 404, .h = {"ptth-reason", "no such connection", NULL}, .text = "body line\n"});
    else if (strcmp(st->path, "/pre/fix/v1/big") == 0)
        respond(st, (resp){.status = 204});
    else
        ck_abort_msg("unexpected path %s", st->path);
}

START_TEST(basic_post)
{
    env_start("/pre/fix/");
    F.on_request = script_basic;
    static const char body[] = "hello relay";
    static uint8_t big[100 * 1024];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = pattern(9, i);
    treq *ok = &T[NT];
    ok->headers[0] = "PTTH-Conn-Id: AbC";
    ok->headers[1] = "X-Mixed-Case:value";
    start_req("/v1/ok", body, sizeof(body) - 1);
    treq *busy = start_req("/v1/busy", NULL, 0);
    treq *gone = start_req("/v1/gone", "x", 1);
    treq *bigr = start_req("/v1/big", (const char *)big, sizeof(big));
    WAIT(all_done);

    /* what the relay saw */
    char authority[64];
    snprintf(authority, sizeof(authority), "127.0.0.1:%d", F.port);
    fstream *st = find_req("/pre/fix/v1/ok", -1);
    ck_assert_ptr_nonnull(st);
    ck_assert_str_eq(st->method, "POST");
    ck_assert_str_eq(st->scheme, "http");
    ck_assert_str_eq(st->authority, authority);
    ck_assert_ptr_nonnull(fheader(st, "authorization"));
    ck_assert_str_eq(fheader(st, "authorization"), AUTH);
    ck_assert_ptr_nonnull(fheader(st, "user-agent"));
    ck_assert_str_eq(fheader(st, "user-agent"), "h2test-agent");
    ck_assert_ptr_nonnull(fheader(st, "content-length"));
    ck_assert_str_eq(fheader(st, "content-length"), "11");
    ck_assert_uint_eq(st->body_len, 11);
    ck_assert_mem_eq(st->body, body, 11);
    ck_assert_ptr_nonnull(fheader(st, "ptth-conn-id"));
    ck_assert_str_eq(fheader(st, "ptth-conn-id"), "AbC");
    ck_assert_ptr_nonnull(fheader(st, "x-mixed-case"));
    ck_assert_str_eq(fheader(st, "x-mixed-case"), "value");
    for (int i = 0; i < st->nh; i++)
        for (const char *p = st->hname[i]; *p != '\0'; p++)
            ck_assert_msg(!(*p >= 'A' && *p <= 'Z'), "header name %s is not lowercase", st->hname[i]);
    st = find_req("/pre/fix/v1/busy", -1);
    ck_assert_ptr_nonnull(st);
    ck_assert_str_eq(fheader(st, "content-length"), "0");
    ck_assert_uint_eq(st->body_len, 0);
    st = find_req("/pre/fix/v1/big", -1);
    ck_assert_ptr_nonnull(st);
    ck_assert_str_eq(fheader(st, "content-length"), "102400");
    ck_assert_uint_eq(st->body_len, sizeof(big));
    ck_assert_mem_eq(st->body, big, sizeof(big));
    ck_assert_int_eq(F.accepted, 1);

    /* what the caller got */
    assert_ok(ok, 200);
    ck_assert_int_eq(ok->headers_calls, 1);
    ck_assert_int_eq(ok->status_at_headers, 200);
    ck_assert_msg(!ok->headers_outside_ng, "on_headers of an HTTP/2 request ran outside nghttp2 (the --wrap count is off)");
    ck_assert_str_eq(ok->r.conn, "c0nn-ID_1");
    ck_assert_int_eq(ok->r.seq, 42);
    ck_assert_int_eq(ok->r.max_chunk, 65536);
    ck_assert_int_eq(ok->r.retry_after, 7);
    ck_assert_str_eq(ok->r.reason, "all fine");
    ck_assert_str_eq(ok->text, "hello from relay");
    ck_assert(!ok->r.timed_out);

    assert_ok(busy, 503);
    ck_assert_str_eq(busy->r.reason, "relay is busy");
    ck_assert_int_eq(busy->r.retry_after, 3);
    ck_assert_int_eq(busy->r.seq, -1);
    ck_assert_str_eq(busy->r.conn, "");
    ck_assert_int_eq(busy->body_calls, 0); /* a non-2xx body is not the caller's */

    assert_ok(gone, 404);
    ck_assert_str_eq(gone->r.reason, "no such connection");
    ck_assert_int_eq(gone->body_calls, 0);

    assert_ok(bigr, 204);
    ck_assert_int_eq(bigr->r.retry_after, -1);
    ck_assert_int_eq(bigr->body_calls, 0);
    env_stop();
}
END_TEST

/* ---- 2. many requests share connections ---- */

static void
script_echo_path(fstream *st)
{
    respond(st, (resp){.status = 200, .text = st->path});
}

START_TEST(fifty_requests_one_connection)
{
    env_start("");
    F.on_request = script_echo_path;
    char paths[50][32];
    for (int i = 0; i < 50; i++) {
        snprintf(paths[i], sizeof(paths[i]), "/v1/n/%d", i);
        start_req(paths[i], paths[i], strlen(paths[i]));
    }
    WAIT(all_done);
    for (int i = 0; i < 50; i++) {
        assert_ok(&T[i], 200);
        ck_assert_str_eq(T[i].text, paths[i]); /* each got its own answer */
    }
    ck_assert_int_eq(F.nreqs, 50);
    ck_assert_int_eq(F.accepted, 1);
    env_stop();
}
END_TEST

START_TEST(max_concurrent_streams_opens_more_connections)
{
    env_start("");
    F.max_streams = 10; /* and F.on_request NULL: every answer held */
    for (int i = 0; i < 25; i++) {
        char path[32];
        snprintf(path, sizeof(path), "/v1/held/%d", i);
        start_req(path, NULL, 0);
    }
    want_n = 25;
    WAIT(reqs_reached);
    run_for(50); /* nothing more comes */
    ck_assert_int_eq(F.nreqs, 25);
    ck_assert_int_eq(F.accepted, 3);
    int per_conn[3] = {0, 0, 0};
    for (int i = 0; i < F.nreqs; i++)
        per_conn[F.reqs[i]->c->index]++;
    ck_assert_int_eq(per_conn[0], 10);
    ck_assert_int_eq(per_conn[1], 10);
    ck_assert_int_eq(per_conn[2], 5);
    for (int i = 0; i < NT; i++)
        ck_assert_int_eq(T[i].done, 0);
    for (int i = 0; i < F.nreqs; i++)
        respond(F.reqs[i], (resp){.status = 200, .text = F.reqs[i]->path});
    WAIT(all_done);
    for (int i = 0; i < NT; i++) {
        assert_ok(&T[i], 200);
        ck_assert_str_eq(T[i].text, T[i].path);
    }
    ck_assert_int_eq(F.accepted, 3);
    env_stop();
}
END_TEST

/* A relay whose SETTINGS allow no streams for now: the requests wait on
 * that one connection (no storm of new connections), and go out once a
 * later SETTINGS raises the limit. */
START_TEST(zero_stream_limit_waits_for_a_raised_limit)
{
    env_start("");
    F.max_streams = 0;
    F.on_request = script_echo_path;
    for (int i = 0; i < 3; i++) {
        char path[32];
        snprintf(path, sizeof(path), "/v1/wait/%d", i);
        start_req(path, NULL, 0);
    }
    run_for(200);
    ck_assert_int_eq(F.accepted, 1);
    ck_assert_int_eq(F.nreqs, 0);
    for (int i = 0; i < NT; i++)
        ck_assert_int_eq(T[i].done, 0);
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 10}};
    ck_assert_int_eq(nghttp2_submit_settings(F.conns->session, NGHTTP2_FLAG_NONE, iv, 1), 0);
    fconn_want_flush(F.conns);
    WAIT(all_done);
    for (int i = 0; i < NT; i++) {
        if (T[i].path[0] != '\0') {
            assert_ok(&T[i], 200);
            ck_assert_str_eq(T[i].text, T[i].path);
        }
    }
    ck_assert_int_eq(F.accepted, 1);
    env_stop();
}
END_TEST

/* ---- 3. flow control per stream ---- */

static void
script_a_b(fstream *st)
{
    if (strcmp(st->path, "/v1/a") == 0)
        respond(st, (resp){.status = 200, .gen = 1024 * 1024, .seed = 1});
    else if (strcmp(st->path, "/v1/b") == 0)
        respond(st, (resp){.status = 200, .gen = 4 * 1024 * 1024, .seed = 2});
}

static treq *flow_b;

static bool
b_done(void)
{
    return flow_b->done > 0;
}

START_TEST(paused_stream_holds_only_its_window)
{
    env_start("");
    F.on_request = script_a_b;
    treq *a = &T[NT];
    a->pause_first = true;
    a->check_pattern = true;
    a->seed = 1;
    start_req("/v1/a", NULL, 0);
    treq *b = &T[NT];
    b->check_pattern = true;
    b->seed = 2;
    start_req("/v1/b", NULL, 0);
    flow_b = b;
    WAIT(b_done);
    /* b got everything past the paused a, on the same connection */
    assert_ok(b, 200);
    ck_assert_uint_eq(b->taken, 4 * 1024 * 1024);
    ck_assert_int_eq(F.accepted, 1);
    /* a holds what its window let through, and the relay can send no more */
    fstream *sa = find_req("/v1/a", 0);
    ck_assert_ptr_nonnull(sa);
    ck_assert_int_eq(a->done, 0);
    ck_assert_int_eq(a->pauses, 1);
    ck_assert_uint_eq(a->taken, 0);
    ck_assert_uint_eq(sa->sent_data, STREAM_WINDOW);
    ck_assert_int_eq(nghttp2_session_get_stream_remote_window_size(sa->c->session, sa->id), 0);
    ck_assert(!sa->closed);
    run_for(30);
    ck_assert_uint_eq(sa->sent_data, STREAM_WINDOW);
    ck_assert_int_eq(a->done, 0);

    /* resumed: every byte in order, pausing again every 64 KiB */
    a->auto_resume = true;
    a->pause_every = 64 * 1024;
    a->since_resume = 0;
    ptth_req_resume(&a->r);
    ck_assert_int_eq(a->done, 0); /* on_done comes from the loop */
    WAIT(all_done);
    assert_ok(a, 200);
    ck_assert_uint_eq(a->taken, 1024 * 1024);
    ck_assert_uint_eq(a->taken_at_done, 1024 * 1024);
    ck_assert_int_ge(a->pauses, 3); /* it paused again after the resume */
    ck_assert_int_eq(F.accepted, 1);
    env_stop();
}
END_TEST

static void
script_a_now_b_held(fstream *st)
{
    if (strcmp(st->path, "/v1/a") == 0)
        respond(st, (resp){.status = 200, .gen = 100 * 1024, .seed = 3});
}

START_TEST(stream_ended_while_paused_completes_after_its_bytes)
{
    env_start("");
    F.on_request = script_a_now_b_held;
    treq *a = &T[NT];
    a->pause_first = true;
    a->check_pattern = true;
    a->seed = 3;
    start_req("/v1/a", NULL, 0);
    treq *b = start_req("/v1/b", NULL, 0);
    want_n = 2;
    WAIT(reqs_reached);
    watched = find_req("/v1/a", 0);
    ck_assert_ptr_nonnull(watched);
    WAIT(watched_closed); /* the relay sent all of a and ended it */
    ck_assert_uint_eq(watched->sent_data, 100 * 1024);
    ck_assert_int_eq(watched->close_code, NGHTTP2_NO_ERROR);
    /* b's answer follows a's end on the wire: once b is done, the client
     * has read the end of a */
    respond(find_req("/v1/b", 0), (resp){.status = 200, .text = "b"});
    flow_b = b;
    WAIT(b_done);
    assert_ok(b, 200);
    run_for(20);
    ck_assert_int_eq(a->done, 0); /* its bytes are still held */
    ck_assert_int_eq(a->pauses, 1);
    ck_assert_uint_eq(a->taken, 0);

    /* a resume whose reader pauses again at once: still nothing taken */
    a->pause_next = 1;
    ptth_req_resume(&a->r);
    ck_assert_int_eq(a->pauses, 2);
    ck_assert_uint_eq(a->taken, 0);
    run_for(20);
    ck_assert_int_eq(a->done, 0);
    /* then all of it, and on_done only from the loop */
    ptth_req_resume(&a->r);
    ck_assert_uint_eq(a->taken, 100 * 1024);
    ck_assert_int_eq(a->done, 0);
    WAIT(all_done);
    assert_ok(a, 200);
    ck_assert_uint_eq(a->taken, 100 * 1024);
    ck_assert_uint_eq(a->taken_at_done, 100 * 1024);
    ck_assert_int_eq(F.accepted, 1);
    env_stop();
}
END_TEST

/* ---- 4. REFUSED_STREAM ---- */

static int refuse_times;

static void
script_refuse(fstream *st)
{
    if (count_path(st->path) <= refuse_times)
        refuse(st);
    else
        respond(st, (resp){.status = 200, .h = {"ptth-seq", "5", NULL}, .text = "accepted"});
}

/* A lone refused request is sent again at once (h2_client.c of 95954e7
 * re-queued it without scheduling a dispatch: it waited for the
 * connection's 60 s idle close). */
START_TEST(refused_stream_is_sent_again)
{
    env_start("");
    F.on_request = script_refuse;
    refuse_times = 1;
    treq *t = start_req("/v1/refused-once", "body", 4);
    WAIT(all_done);
    assert_ok(t, 200);
    ck_assert_str_eq(t->text, "accepted");
    ck_assert_int_eq(t->r.seq, 5);
    ck_assert_int_eq(count_path("/v1/refused-once"), 2);
    /* the body was sent again in full */
    ck_assert_uint_eq(F.reqs[1]->body_len, 4);
    ck_assert_mem_eq(F.reqs[1]->body, "body", 4);
    env_stop();
}
END_TEST

START_TEST(refused_stream_with_company_is_sent_again)
{
    /* the same with another request open on the connection */
    env_start("");
    F.on_request = script_refuse;
    refuse_times = 2;
    treq *t = start_req("/v1/refused-twice", NULL, 0);
    treq *u = start_req("/v1/other", NULL, 0);
    WAIT(all_done);
    assert_ok(t, 200);
    assert_ok(u, 200);
    ck_assert_int_eq(count_path("/v1/refused-twice"), 3);
    env_stop();
}
END_TEST

/* Refused more often than MAX_REFUSALS: on_done gets an error. */
START_TEST(refused_four_times_fails)
{
    env_start("");
    F.on_request = script_refuse;
    refuse_times = 100;
    treq *t = start_req("/v1/always-refused", NULL, 0);
    WAIT(all_done);
    assert_failed(t, "REFUSED_STREAM");
    ck_assert_int_eq(count_path("/v1/always-refused"), 1 + MAX_REFUSALS);
    run_for(20);
    ck_assert_int_eq(count_path("/v1/always-refused"), 1 + MAX_REFUSALS);
    ck_assert_int_eq(t->done, 1);
    env_stop();
}
END_TEST

/* ---- 5. GOAWAY ---- */

static int32_t goaway_last_id;

static void
script_goaway(fstream *st)
{
    if (st->c->index > 0) { /* the new connection answers at once */
        respond(st, (resp){.status = 200, .text = st->path});
        return;
    }
    if (F.nreqs < 6)
        return; /* held */
    /* all six here: GOAWAY naming the third, answer those at or below it */
    int32_t ids[6];
    for (int i = 0; i < 6; i++)
        ids[i] = F.reqs[i]->id;
    for (int i = 0; i < 6; i++)
        for (int j = i + 1; j < 6; j++)
            if (ids[j] < ids[i]) {
                int32_t x = ids[i];
                ids[i] = ids[j];
                ids[j] = x;
            }
    goaway_last_id = ids[2];
    ck_assert_int_eq(nghttp2_submit_goaway(st->c->session, NGHTTP2_FLAG_NONE, goaway_last_id, NGHTTP2_NO_ERROR, NULL, 0), 0);
    for (int i = 0; i < 6; i++)
        if (F.reqs[i]->id <= goaway_last_id)
            respond(F.reqs[i], (resp){.status = 200, .text = F.reqs[i]->path});
    fconn_want_flush(st->c);
}

START_TEST(goaway_retries_streams_above_last_id)
{
    env_start("");
    F.on_request = script_goaway;
    for (int i = 0; i < 6; i++) {
        char path[32];
        snprintf(path, sizeof(path), "/v1/g/%d", i);
        start_req(path, NULL, 0);
    }
    WAIT(all_done);
    int low = 0, high = 0;
    for (int i = 0; i < NT; i++) {
        assert_ok(&T[i], 200);
        ck_assert_str_eq(T[i].text, T[i].path);
        fstream *first = find_req(T[i].path, 0);
        ck_assert_ptr_nonnull(first);
        if (first->id <= goaway_last_id) {
            low++;
            ck_assert_int_eq(count_path(T[i].path), 1);
        } else {
            high++;
            ck_assert_int_eq(count_path(T[i].path), 2);
            ck_assert_ptr_nonnull(find_req(T[i].path, 1)); /* again, on the new connection */
        }
    }
    ck_assert_int_eq(low, 3);
    ck_assert_int_eq(high, 3);
    ck_assert_int_eq(F.accepted, 2);
    env_stop();
}
END_TEST

/* ---- 6. connection reset mid-response ---- */

static void
script_partial(fstream *st)
{
    if (st->c->index == 0)
        respond(st, (resp){.status = 200, .text = "partial", .keep_open = true}); /* and the stream stays open */
    else
        respond(st, (resp){.status = 200, .text = "fresh"});
}

START_TEST(reset_connection_fails_its_requests)
{
    env_start("");
    F.on_request = script_partial;
    for (int i = 0; i < 3; i++) {
        char path[32];
        snprintf(path, sizeof(path), "/v1/r/%d", i);
        start_req(path, NULL, 0);
    }
    WAIT(all_have_body);
    ck_assert(!all_done());
    ck_assert_int_eq(F.accepted, 1);
    fconn_close(F.conns, true); /* TCP reset */
    WAIT(all_done);
    char name[64];
    snprintf(name, sizeof(name), "relay connection 127.0.0.1:%d", F.port);
    for (int i = 0; i < NT; i++) {
        assert_failed(&T[i], name);
        ck_assert_str_eq(T[i].text, "partial");
    }
    treq *t = start_req("/v1/after", NULL, 0);
    WAIT(all_done);
    assert_ok(t, 200);
    ck_assert_str_eq(t->text, "fresh");
    ck_assert_int_eq(F.accepted, 2);
    env_stop();
}
END_TEST

/* ---- 7. timeouts and cancel ---- */

static long long
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

START_TEST(timeout_while_relay_is_silent)
{
    env_start(""); /* no script: the request is held forever */
    treq *t = &T[NT];
    t->r.timeout_ms = 300;
    long long t0 = now_ms();
    start_req("/v1/slow", NULL, 0);
    WAIT(all_done);
    long long took = now_ms() - t0;
    assert_failed(t, "timed out");
    ck_assert(t->r.timed_out);
    ck_assert_int_ge(took, 290);
    ck_assert_int_lt(took, 3000);
    ck_assert_int_eq(F.nreqs, 1);
    watched = F.reqs[0];
    WAIT(watched_rst); /* and the relay is told */
    ck_assert_int_eq(watched->rst_code, NGHTTP2_CANCEL);
    run_for(20);
    ck_assert_int_eq(t->done, 1);
    env_stop();
}
END_TEST

START_TEST(timeout_before_the_connection_is_ready)
{
    env_start("");
    F.silent = true; /* accepts, never sends SETTINGS */
    treq *t = &T[NT];
    t->r.timeout_ms = 200;
    start_req("/v1/never", NULL, 0);
    WAIT(all_done);
    assert_failed(t, "timed out");
    ck_assert(t->r.timed_out);
    ck_assert_int_eq(F.accepted, 1);
    env_stop();
}
END_TEST

static void
script_cancel(fstream *st)
{
    if (strcmp(st->path, "/v1/paused") == 0) {
        respond(st, (resp){.status = 200, .gen = 100 * 1024, .seed = 4});
    } else if (strcmp(st->path, "/v1/paused-open") == 0) {
        respond(st, (resp){.status = 200, .gen = 1024 * 1024, .seed = 5});
    } else if (strcmp(st->path, "/v1/pair2") == 0) {
        /* both answers in one write: both requests end in one read */
        respond(find_req("/v1/pair1", -1), (resp){.status = 200, .text = "1"});
        respond(st, (resp){.status = 200, .text = "2"});
    } else if (strncmp(st->path, "/v1/after", 9) == 0) {
        respond(st, (resp){.status = 200, .text = "ok"});
    }
    /* /v1/held and /v1/pair1: held */
}

/* Requests freed right after ptth_req_cancel() use these callbacks: any
 * call after the cancel is counted (and under ASan the ptth_req is gone). */
static bool pauser_cancelled;
static int pauser_pauses;

static void
pauser_on_headers(ptth_req *r)
{
    (void)r;
    stray_callbacks += pauser_cancelled;
}

static size_t
pauser_on_body(ptth_req *r, const uint8_t *p, size_t len)
{
    (void)r;
    (void)p;
    (void)len;
    stray_callbacks += pauser_cancelled;
    pauser_pauses++;
    poke();
    return PTTH_REQ_PAUSE;
}

static const ptth_req_ops pauser_ops = {pauser_on_headers, pauser_on_body, stray_on_done};

static ptth_req *victim; /* cancelled and freed by its partner's on_done */

static void
partner_on_done(ptth_req *r, const char *error)
{
    t_on_done(r, error);
    if (victim != NULL) {
        ptth_req_cancel(victim);
        ck_assert(!ptth_req_active(victim));
        free(victim);
        victim = NULL;
    }
}

static const ptth_req_ops partner_ops = {t_on_headers, t_on_body, partner_on_done};

/* The victim's headers and body may come before its partner's on_done
 * cancels it; after that nothing may. */
static void
victim_on_headers(ptth_req *r)
{
    (void)r;
    stray_callbacks += victim == NULL;
}

static size_t
victim_on_body(ptth_req *r, const uint8_t *p, size_t len)
{
    (void)r;
    (void)p;
    stray_callbacks += victim == NULL;
    return len;
}

static const ptth_req_ops victim_ops = {victim_on_headers, victim_on_body, stray_on_done};

static ptth_req *
start_heap_req(const char *path, const ptth_req_ops *ops)
{
    ptth_req *r = calloc(1, sizeof(*r));
    ck_assert_ptr_nonnull(r);
    r->ops = ops;
    ck_assert_int_eq(ptth_req_start(C, r, PTTH_REQ_SHORT, path, NULL, "gone", 4), 0);
    return r;
}

static bool
pauser_paused(void)
{
    return pauser_pauses >= want_n;
}

START_TEST(cancel_is_silent_and_frees)
{
    env_start("");
    F.on_request = script_cancel;
    pauser_cancelled = false;
    pauser_pauses = 0;

    /* queued, before any connection: cancelled and freed at once */
    ptth_req *q = start_heap_req("/v1/queued", &stray_ops);
    ptth_req_cancel(q);
    ck_assert(!ptth_req_active(q));
    free(q);

    /* active, the relay holding it: the relay sees RST_STREAM CANCEL */
    ptth_req *r = start_heap_req("/v1/held", &stray_ops);
    want_n = 1;
    WAIT(reqs_reached);
    ck_assert_str_eq(F.reqs[0]->path, "/v1/held"); /* the queued one never went out */
    ptth_req_cancel(r);
    ck_assert(!ptth_req_active(r));
    free(r);
    watched = F.reqs[0];
    WAIT(watched_rst);
    ck_assert_int_eq(watched->rst_code, NGHTTP2_CANCEL);

    ck_assert_int_eq(stray_callbacks, 0);

    /* paused, the relay done sending (its bytes held by the client) */
    ptth_req *p = start_heap_req("/v1/paused", &pauser_ops);
    want_n = 2;
    WAIT(reqs_reached);
    watched = F.reqs[1];
    WAIT(watched_closed);
    ck_assert_uint_eq(watched->sent_data, 100 * 1024);
    treq *a1 = start_req("/v1/after1", NULL, 0); /* answered after p's end */
    WAIT(all_done);
    assert_ok(a1, 200);
    ck_assert_int_eq(pauser_pauses, 1);
    pauser_cancelled = true;
    ptth_req_cancel(p);
    free(p);
    pauser_cancelled = false;

    ck_assert_int_eq(stray_callbacks, 0);

    /* paused with its window full, the stream still open */
    p = start_heap_req("/v1/paused-open", &pauser_ops);
    want_n = 2;
    WAIT(pauser_paused);
    watched = find_req("/v1/paused-open", -1);
    ck_assert_ptr_nonnull(watched);
    pauser_cancelled = true;
    ptth_req_cancel(p);
    free(p);
    WAIT(watched_rst);
    ck_assert_int_eq(watched->rst_code, NGHTTP2_CANCEL);
    ck_assert_uint_le(watched->sent_data, STREAM_WINDOW);

    ck_assert_int_eq(stray_callbacks, 0);

    /* completed, its on_done not run yet: cancelled from another on_done */
    treq *partner = &T[NT];
    partner->r.ops = &partner_ops;
    start_req("/v1/pair1", NULL, 0);
    victim = start_heap_req("/v1/pair2", &victim_ops);
    WAIT(all_done);
    assert_ok(partner, 200);
    ck_assert_ptr_null(victim);

    ck_assert_int_eq(stray_callbacks, 0);

    /* the connection still works, and nothing called the freed requests */
    treq *a2 = start_req("/v1/after2", NULL, 0);
    WAIT(all_done);
    assert_ok(a2, 200);
    run_for(20);
    ck_assert_int_eq(stray_callbacks, 0);
    ck_assert_int_eq(F.accepted, 1);
    env_stop();
}
END_TEST

/* ---- request bodies go out from the caller's memory (no copy) ---- */

#define BIG_BODY (16 * 1024 * 1024) /* more than the socket buffers take */

static fstream *headers_seen;

static bool
saw_headers(void)
{
    return headers_seen != NULL;
}

/* The relay takes the headers, then stops reading: the client's socket
 * fills and body bytes stay queued in the client. */
static void
script_stop_reading(fstream *st)
{
    headers_seen = st;
    st->c->no_read = true;
}

static void
script_stop_reading_and_answer(fstream *st)
{
    script_stop_reading(st);
    respond(st, (resp){.status = 200, .text = "early"});
}

static void
server_read_again(fconn *c)
{
    c->no_read = false;
    ptth_watch_set(&c->watch, fconn_events(c, false));
}

/* The part of a big body the relay got is the caller's bytes, in order. */
static void
assert_body_prefix(const fstream *st, uint8_t seed)
{
    for (size_t i = 0; i < st->body_len; i++)
        if (st->body[i] != pattern(seed, i))
            ck_abort_msg("body byte %zu of %zu is 0x%02x, not 0x%02x", i, st->body_len, st->body[i], pattern(seed, i));
}

static void
script_answer_after(fstream *st)
{
    if (strncmp(st->path, "/v1/after", 9) == 0)
        respond(st, (resp){.status = 200, .text = "ok"});
}

/* Starts a heap request with a BIG_BODY body of pattern(seed) while the
 * relay stops reading after the headers; returns once the client's socket
 * is full, with the relay's stream in *stp. */
static ptth_req *
start_big_upload(uint8_t **bodyp, uint8_t seed, fstream **stp)
{
    fake_big_window();
    F.on_headers = script_stop_reading;
    F.on_request = script_answer_after;
    headers_seen = NULL;
    uint8_t *body = malloc(BIG_BODY);
    ck_assert_ptr_nonnull(body);
    for (size_t i = 0; i < BIG_BODY; i++)
        body[i] = pattern(seed, i);
    ptth_req *r = calloc(1, sizeof(*r));
    ck_assert_ptr_nonnull(r);
    r->ops = &stray_ops;
    ck_assert_int_eq(ptth_req_start(C, r, PTTH_REQ_SHORT, "/v1/upload", NULL, body, BIG_BODY), 0);
    WAIT(saw_headers);
    run_for(100); /* the client writes until its socket is full */
    ck_assert(!headers_seen->complete);
    *bodyp = body;
    *stp = headers_seen;
    return r;
}

START_TEST(cancel_with_body_queued_then_free_body)
{
    env_start("");
    uint8_t *body;
    fstream *st;
    ptth_req *r = start_big_upload(&body, 7, &st);
    ptth_req_cancel(r);
    memset(body, 0xEE, BIG_BODY); /* the caller reuses the memory... */
    free(body);                   /* ...or frees it */
    free(r);
    server_read_again(st->c);
    watched = st;
    WAIT(watched_rst);
    ck_assert_int_eq(st->rst_code, NGHTTP2_CANCEL);
    ck_assert_uint_gt(st->body_len, 0);
    assert_body_prefix(st, 7); /* only the caller's bytes, never freed memory */
    /* the connection's framing survived */
    F.on_headers = NULL;
    treq *t = start_req("/v1/after", "x", 1);
    WAIT(all_done);
    assert_ok(t, 200);
    ck_assert_int_eq(F.accepted, 1);
    ck_assert_int_eq(stray_callbacks, 0);
    env_stop();
}
END_TEST

/* The request-body queue holds about OUT_GATHER bytes, so a cancel stops
 * the body there and the relay never sees a complete request. (In
 * h2_client.c of 95954e7 one nghttp2_session_mem_send() call queued every
 * NO_COPY DATA frame the window allowed, END_STREAM included, ahead of the
 * RST_STREAM.) */
START_TEST(cancelled_upload_stops_short)
{
    env_start("");
    uint8_t *body;
    fstream *st;
    ptth_req *r = start_big_upload(&body, 6, &st);
    ptth_req_cancel(r);
    free(body);
    free(r);
    server_read_again(st->c);
    watched = st;
    WAIT(watched_rst);
    ck_assert_int_eq(st->rst_code, NGHTTP2_CANCEL);
    ck_assert_msg(!st->complete_at_rst, "the relay got the whole cancelled request (%zu bytes and END_STREAM) before RST_STREAM",
                  st->body_len);
    ck_assert_uint_lt(st->body_len, BIG_BODY / 2);
    assert_body_prefix(st, 6);
    env_stop();
}
END_TEST

static uint8_t *early_body;

static void
free_body_on_done(ptth_req *r, const char *error)
{
    t_on_done(r, error);
    memset(early_body, 0xEE, BIG_BODY);
    free(early_body);
    early_body = NULL;
}

static const ptth_req_ops free_body_ops = {t_on_headers, t_on_body, free_body_on_done};

static bool
first_has_headers(void)
{
    return T[0].headers_calls > 0;
}

START_TEST(early_answer_with_body_queued_then_free_body)
{
    env_start("");
    fake_big_window();
    F.on_headers = script_stop_reading_and_answer;
    F.on_request = script_answer_after;
    headers_seen = NULL;
    early_body = malloc(BIG_BODY);
    ck_assert_ptr_nonnull(early_body);
    for (size_t i = 0; i < BIG_BODY; i++)
        early_body[i] = pattern(8, i);
    treq *t = &T[NT];
    t->r.ops = &free_body_ops;
    start_req("/v1/early", (const char *)early_body, BIG_BODY);
    WAIT(first_has_headers);
    run_for(100); /* the client writes until its socket is full */
    fstream *st = headers_seen;
    if (t->done == 0) {
        /* the request is not all sent: the relay says it is done with it,
         * RST_STREAM NO_ERROR (RFC 9113 8.1). (With every body byte queued
         * in the client at once, see cancelled_upload_stops_short, the
         * request is over already.) */
        ck_assert_int_eq(nghttp2_submit_rst_stream(st->c->session, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_NO_ERROR), 0);
        fconn_want_flush(st->c);
    }
    WAIT(all_done);
    assert_ok(t, 200); /* on_done freed the body */
    ck_assert_str_eq(t->text, "early");
    ck_assert_ptr_null(early_body);
    server_read_again(st->c);
    F.on_headers = NULL;
    treq *u = start_req("/v1/after", "x", 1);
    WAIT(all_done);
    assert_ok(u, 200);
    ck_assert_uint_gt(st->body_len, 0);
    assert_body_prefix(st, 8);
    ck_assert_int_eq(F.accepted, 1);
    env_stop();
}
END_TEST

/* ---- 8. a relay that does not speak HTTP/2 ---- */

START_TEST(http1_relay_falls_back_to_libcurl)
{
    env_start("/pre");
    F.h1_only = true;
    char bodies[3][16];
    for (int i = 0; i < 3; i++) {
        char path[32];
        snprintf(path, sizeof(path), "/v1/x%d", i);
        snprintf(bodies[i], sizeof(bodies[i]), "body-%d", i);
        treq *t = &T[NT];
        t->headers[0] = "PTTH-Conn-Id: Z9";
        start_req(path, bodies[i], strlen(bodies[i]));
    }
    WAIT(all_done);
    ck_assert_int_eq(F.h2_prefaces, 1);
    for (int i = 0; i < 3; i++) {
        assert_ok(&T[i], 204);
        ck_assert_str_eq(T[i].r.conn, "h1conn");
        ck_assert_int_eq(T[i].r.seq, 9);
        char path[32];
        snprintf(path, sizeof(path), "/pre/v1/x%d", i);
        fstream *st = find_req(path, -1);
        ck_assert_ptr_nonnull(st);
        ck_assert_str_eq(st->method, "POST");
        ck_assert_str_eq(fheader(st, "authorization"), AUTH);
        ck_assert_str_eq(fheader(st, "ptth-conn-id"), "Z9");
        ck_assert_uint_eq(st->body_len, strlen(bodies[i]));
        ck_assert_mem_eq(st->body, bodies[i], st->body_len);
    }
    /* later requests go to libcurl at once: no second HTTP/2 attempt */
    treq *t = start_req("/v1/later", NULL, 0);
    WAIT(all_done);
    assert_ok(t, 204);
    ck_assert_ptr_nonnull(find_req("/pre/v1/later", -1));
    ck_assert_int_eq(F.h2_prefaces, 1);
    env_stop();
}
END_TEST

/* The same seen from h2_client itself: unavailable, and the request handed
 * over with its arguments. */
static int fallbacks;
static ptth_req *fb_req;
static char fb_path[64];
static const char *fb_header0;
static const void *fb_body;
static size_t fb_body_len;
static ptth_req_kind fb_kind;

static void
on_test_fallback(void *data, ptth_req *r, ptth_req_kind kind, const char *path, const char *const *headers, const void *body,
                 size_t body_len)
{
    (void)data;
    fallbacks++;
    fb_req = r;
    fb_kind = kind;
    snprintf(fb_path, sizeof(fb_path), "%s", path);
    fb_header0 = headers[0];
    fb_body = body;
    fb_body_len = body_len;
    poke();
}

static bool
fell_back(void)
{
    return fallbacks > 0;
}

START_TEST(h2_client_unavailable_after_http1_answer)
{
    env_start("");
    F.h1_only = true;
    ptth_h2_client *cl = NULL;
    char err[256];
    ptth_h2_client_config cfg = {.url = url, .auth_value = AUTH, .user_agent = "x", .on_fallback = on_test_fallback};
    ck_assert_msg(ptth_h2_client_new(loop, &cfg, &cl, err, sizeof(err)) == 0, "%s", err);
    ck_assert(!ptth_h2_client_unavailable(cl));
    treq *t = &T[NT++];
    t->r.ops = &t_ops;
    const char *headers[] = {"PTTH-Conn-Id: Q", NULL};
    static const char body[] = "payload";
    fallbacks = 0;
    ck_assert_int_eq(ptth_h2_req_start(cl, &t->r, PTTH_REQ_STREAM, "/v1/s", headers, body, 7), 0);
    WAIT(fell_back);
    ck_assert(ptth_h2_client_unavailable(cl));
    ck_assert_int_eq(fallbacks, 1);
    ck_assert_ptr_eq(fb_req, &t->r);
    ck_assert_int_eq(fb_kind, PTTH_REQ_STREAM);
    ck_assert_str_eq(fb_path, "/v1/s");
    ck_assert_ptr_eq(fb_header0, headers[0]);
    ck_assert_ptr_eq(fb_body, body);
    ck_assert_uint_eq(fb_body_len, 7);
    ck_assert_ptr_null(t->r.h2);
    ck_assert_int_eq(F.h2_prefaces, 1);
    ck_assert_int_eq(t->done, 0);
    ptth_h2_client_free(cl);
    env_stop();
}
END_TEST

/* ---- 9. nothing listening ---- */

START_TEST(connection_refused_fails_fast)
{
    env_start("");
    /* a bound port without listen() refuses connections and stays ours */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t len = sizeof(sa);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    ptth_relay_client_free(C);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", ntohs(sa.sin_port));
    char err[256];
    ptth_relay_client_config cfg = {.url = url, .key = KEY};
    ck_assert_msg(ptth_relay_client_new(loop, &cfg, &C, err, sizeof(err)) == 0, "%s", err);
    long long t0 = now_ms();
    treq *a = start_req("/v1/a", NULL, 0);
    treq *b = start_req("/v1/b", NULL, 0);
    WAIT(all_done);
    assert_failed(a, "Connection refused");
    assert_failed(b, "Connection refused");
    /* and again: the client is not stuck */
    treq *c = start_req("/v1/c", NULL, 0);
    WAIT(all_done);
    assert_failed(c, "Connection refused");
    ck_assert_int_lt(now_ms() - t0, 2000);
    close(fd);
    env_stop();
}
END_TEST

Suite *
ptth_test_suite(void)
{
    Suite *s = suite_create("h2_client");
    TCase *tc = tcase_create("h2_client");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, basic_post);
    tcase_add_test(tc, fifty_requests_one_connection);
    tcase_add_test(tc, max_concurrent_streams_opens_more_connections);
    tcase_add_test(tc, zero_stream_limit_waits_for_a_raised_limit);
    tcase_add_test(tc, paused_stream_holds_only_its_window);
    tcase_add_test(tc, stream_ended_while_paused_completes_after_its_bytes);
    tcase_add_test(tc, refused_stream_is_sent_again);
    tcase_add_test(tc, refused_stream_with_company_is_sent_again);
    tcase_add_test(tc, refused_four_times_fails);
    tcase_add_test(tc, goaway_retries_streams_above_last_id);
    tcase_add_test(tc, reset_connection_fails_its_requests);
    tcase_add_test(tc, timeout_while_relay_is_silent);
    tcase_add_test(tc, timeout_before_the_connection_is_ready);
    tcase_add_test(tc, cancel_is_silent_and_frees);
    tcase_add_test(tc, cancel_with_body_queued_then_free_body);
    tcase_add_test(tc, cancelled_upload_stops_short);
    tcase_add_test(tc, early_answer_with_body_queued_then_free_body);
    tcase_add_test(tc, http1_relay_falls_back_to_libcurl);
    tcase_add_test(tc, h2_client_unavailable_after_http1_answer);
    tcase_add_test(tc, connection_refused_fails_fast);
    suite_add_tcase(s, tc);
    return s;
}
