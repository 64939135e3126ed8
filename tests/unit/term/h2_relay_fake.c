/* The fake relay of the h2_client suites and the count of the client's
 * nghttp2 calls: see h2_relay_fake.h. */

#include "h2_relay_fake.h"

#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

/* ---- counting the client's nghttp2 calls (see h2_relay_fake.h) ---- */

ssize_t __real_nghttp2_session_mem_recv(nghttp2_session *session, const uint8_t *in, size_t inlen);
ssize_t __wrap_nghttp2_session_mem_recv(nghttp2_session *session, const uint8_t *in, size_t inlen);
ssize_t __real_nghttp2_session_mem_send(nghttp2_session *session, const uint8_t **data_ptr);
ssize_t __wrap_nghttp2_session_mem_send(nghttp2_session *session, const uint8_t **data_ptr);

int ng_depth; /* the client's sessions only */
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

uint8_t
pattern(uint8_t seed, size_t i)
{
    uint32_t x = (uint32_t)i * 2654435761u;
    x ^= x >> 15;
    return (uint8_t)(x + seed);
}

/* ---- the fake relay ---- */

struct fake_relay F;

static ptth_loop *fake_loop;
static void (*progress)(void); /* fake_start's on_progress */

static bool
is_fake_session(const nghttp2_session *session)
{
    for (fconn *c = F.conns; c != NULL; c = c->next)
        if (c->session == session)
            return true;
    return false;
}

const char *
fheader(const fstream *st, const char *name)
{
    for (int i = 0; i < st->nh; i++)
        if (strcmp(st->hname[i], name) == 0)
            return st->hval[i];
    return NULL;
}

int
count_path(const char *path)
{
    int n = 0;
    for (int i = 0; i < F.nreqs; i++)
        n += strcmp(F.reqs[i]->path, path) == 0;
    return n;
}

fstream *
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
void
fconn_close(fconn *c, bool abort)
{
    if (c->fd < 0)
        return;
    ptth_watch_stop(&c->watch);
    ptth_defer_cancel(fake_loop, &c->flush_defer);
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

uint32_t
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
    progress();
}

void
fconn_want_flush(fconn *c)
{
    if (c->fd >= 0)
        ptth_defer_call(fake_loop, &c->flush_defer, on_fconn_flush, c);
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
                progress();
                return;
            }
            if (!fconn_input(c, buf, (size_t)n)) {
                progress();
                return;
            }
        }
    }
    fconn_flush(c);
    progress();
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
        ck_assert_int_eq(ptth_watch_start(fake_loop, &c->watch, fd, EPOLLIN, on_fconn_event, c), 0);
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
    progress();
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
    if (frame->hd.type == NGHTTP2_PING && !(frame->hd.flags & NGHTTP2_FLAG_ACK))
        F.pings++;
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

void
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

void
refuse(fstream *st)
{
    st->responded = true;
    ck_assert_int_eq(nghttp2_submit_rst_stream(st->c->session, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_REFUSED_STREAM), 0);
    fconn_want_flush(st->c);
}

void
fake_start(ptth_loop *loop, void (*on_progress)(void))
{
    memset(&F, 0, sizeof(F));
    fake_loop = loop;
    progress = on_progress;
    F.max_streams = 100;
    F.lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(F.lfd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(F.lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(F.lfd, 64), 0);
    socklen_t len = sizeof(sa);
    ck_assert_int_eq(getsockname(F.lfd, (struct sockaddr *)&sa, &len), 0);
    F.port = ntohs(sa.sin_port);
    ck_assert_int_eq(ptth_watch_start(fake_loop, &F.lwatch, F.lfd, EPOLLIN, on_accept, NULL), 0);
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
void
fake_big_window(void)
{
    F.big_window = true;
    int size = 64 * 1024;
    ck_assert_int_eq(setsockopt(F.lfd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size)), 0);
}

void
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
