/*
 * leg.c: an upgraded relay leg; see leg.h.
 *
 * The leg is a small state machine (enum leg_state, changed only by
 * set_state(), which asserts the transitions):
 *
 *   CONNECTING --> SENDING --> READING_HEAD --> UPGRADED      (101 + token)
 *        |            |             |      \--> BODY          (2xx)
 *        |            |             \--> READING_ERROR_BODY   (other status)
 *        v            v             v              |
 *      CLOSED <-------+-------------+--------------/          (failure, end)
 *
 * CLOSED means the connection is gone and on_response() was (being) called;
 * UPGRADED and BODY last until ptth_leg_close(), which frees everything in
 * any state. The connection is made by our own byte-stream layers
 * (leg_dial.h: socket, TLS on https://) when no forward proxy is in the
 * way, else by a ptth_conn_job of relay_client.c (libcurl,
 * CURLOPT_CONNECT_ONLY); the request and response heads are ours (the
 * response parser is leg_parse.c).
 *
 * With our layers the leg reads and writes through the stream (bstream.h)
 * on cleartext too: the socket layer owns the descriptor and its watch
 * (one epoll registration per descriptor), and one path for both makes
 * TLS and cleartext differ only in PTTH_BSTREAM_Q_SHORT_READ_DRAINS.
 */
#include "leg.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "leg_dial.h"

#define REQ_PATH_MAX 2048   /* base path + path */
#define REQ_HEADER_MAX 1024 /* one extra header line */
#define ERROR_BODY_WAIT_MS 2000

enum leg_state {
    LEG_CONNECTING,
    LEG_SENDING,
    LEG_READING_HEAD,
    LEG_READING_ERROR_BODY,
    LEG_UPGRADED,
    LEG_BODY,
    LEG_CLOSED,
};

enum leg_cb { CB_RESPONSE, CB_READABLE, CB_WRITABLE };

struct ptth_leg_impl {
    ptth_leg *leg;
    ptth_loop *loop;
    enum leg_state state;
    bool tls; /* TLS on the connection (ours to the relay, or libcurl's to the relay or to an https:// proxy) */
    bool via_curl; /* connected by libcurl's job (a forward proxy may be in the way) */
    bool drains; /* a short read leaves nothing to read (PTTH_BSTREAM_Q_SHORT_READ_DRAINS): cleartext */
    bool want_read, want_write;
    bool watching;
    bool *gone;       /* set by ptth_leg_close() while a callback runs, see run_cb() */
    ptth_bstream *bs; /* our layers (leg_dial.h), or NULL: libcurl's job */
    curl_socket_t fd; /* libcurl's: CURL_SOCKET_BAD until connected */
    bool own_fd;      /* cleartext: fd is our duplicate, libcurl let go of the connection */
    long timeout_ms;
    long long opened_ms; /* ptth_loop_now() at open */
    ptth_conn_job job;
    ptth_watch watch;
    ptth_timer timer;    /* the response head's timeout, then the error body's wait */
    ptth_defer readable; /* the on_readable() that ptth_leg_want() promises; in CONNECTING a failure to report */
    char *url;           /* the base URL, for error texts */
    char *req;           /* the request head; carries the key, wiped when done */
    size_t req_len, req_off;
    char *in; /* PTTH_LEG_HEAD_MAX bytes: the head, then what followed it */
    size_t in_len;
    size_t pend_off, pend_len; /* bytes after the head in in[] not read yet */
    ptth_leg_body body;
    ptth_leg_response res;
    char ebody[PTTH_LEG_REASON_MAX]; /* the start of a non-2xx body */
    size_t ebody_len;
    char error[CURL_ERROR_SIZE + 256];
    char why[200]; /* what our layers said about a failure */
};

/* ==== the request ==== */

static bool
text_ok(const char *s, bool spaces)
{
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch >= 0x7f || (ch < 0x20 && !(spaces && ch == '\t')) || (!spaces && ch == ' '))
            return false;
    }
    return true;
}

/* The request head, in one allocation: sent as it is, wiped afterwards
 * (it carries the key). */
static int
build_request(struct ptth_leg_impl *L, ptth_relay_client *c, const char *path, const char *const *headers)
{
    size_t nh = 0, hbytes = 0;
    for (; headers != NULL && headers[nh] != NULL; nh++) {
        size_t hl = strlen(headers[nh]);
        if (nh == PTTH_LEG_HEADERS_MAX || hl > REQ_HEADER_MAX)
            return -E2BIG;
        if (!text_ok(headers[nh], true))
            return -EINVAL;
        hbytes += hl + 2;
    }
    if (strlen(path) >= REQ_PATH_MAX)
        return -E2BIG;
    if (path[0] != '/' || !text_ok(path, false))
        return -EINVAL;
    const ptth_leg_dial *d = ptth_relay_client_leg_dial(c);
    const char *host = ptth_leg_dial_host_header(d), *prefix = ptth_leg_dial_prefix(d);
    L->tls = ptth_leg_dial_is_tls(d);
    /* through an https:// proxy even a cleartext relay's bytes ride in
     * libcurl's TLS to the proxy: they go through libcurl like a TLS leg's */
    if (!L->tls && !ptth_leg_dial_direct(d))
        L->tls = ptth_http_proxy_is_tls(ptth_relay_client_proxy(c), false);
    L->drains = !L->tls;
    if (strlen(prefix) + strlen(path) >= REQ_PATH_MAX)
        return -E2BIG;
    const char *auth = ptth_relay_client_auth_value(c), *ua = ptth_relay_client_user_agent(c);
    const char *inst = ptth_relay_client_instance(c);
    size_t cap = 256 + strlen(prefix) + strlen(path) + strlen(host) + strlen(auth) + strlen(ua) + hbytes +
                 (inst != NULL ? strlen(inst) + 20 : 0);
    L->req = malloc(cap);
    if (L->req == NULL)
        return -ENOMEM;
    int n = snprintf(L->req, cap,
                     "POST %s%s HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\nUser-Agent: %s\r\nContent-Length: 0\r\n"
                     "Connection: Upgrade\r\nUpgrade: " PTTH_LEG_UPGRADE_TOKEN "\r\n",
                     prefix, path, host, auth, ua);
    size_t len = (size_t)n;
    if (inst != NULL)
        len += (size_t)snprintf(L->req + len, cap - len, "PTTH-Instance: %s\r\n", inst);
    for (size_t i = 0; i < nh; i++)
        len += (size_t)snprintf(L->req + len, cap - len, "%s\r\n", headers[i]);
    len += (size_t)snprintf(L->req + len, cap - len, "\r\n");
    assert(len < cap);
    L->req_len = len;
    return 0;
}

static void
wipe_request(struct ptth_leg_impl *L)
{
    if (L->req == NULL)
        return;
    explicit_bzero(L->req, L->req_len);
    free(L->req);
    L->req = NULL;
}

/* ==== states, events, callbacks ==== */

static uint32_t
wanted_events(const struct ptth_leg_impl *L)
{
    switch (L->state) {
    case LEG_SENDING:
        return EPOLLOUT;
    case LEG_READING_HEAD:
    case LEG_READING_ERROR_BODY:
        return EPOLLIN;
    case LEG_UPGRADED:
        return (L->want_read ? EPOLLIN : 0) | (L->want_write ? EPOLLOUT : 0);
    case LEG_BODY:
        return L->want_read ? EPOLLIN : 0;
    default:
        return 0;
    }
}

/* Our layers: the stream's want() once connected (while connecting the
 * layers ask for what they wait for themselves); libcurl's: our watch. */
static void
update_watch(struct ptth_leg_impl *L)
{
    if (L->bs != NULL && L->state != LEG_CONNECTING && L->state != LEG_CLOSED) {
        uint32_t ev = wanted_events(L);
        ptth_bstream_want(L->bs, (ev & EPOLLIN) != 0, (ev & EPOLLOUT) != 0);
    } else if (L->watching) {
        ptth_watch_set(&L->watch, wanted_events(L));
    }
}

static void on_readable_defer(ptth_defer *d);

/* The one place the state changes; a transition not in the diagram at the
 * top is a bug. Entering UPGRADED or BODY keeps the promise of an early
 * ptth_leg_want(read). */
static void
set_state(struct ptth_leg_impl *L, enum leg_state to)
{
    static const unsigned allowed[] = {
        [LEG_CONNECTING] = 1u << LEG_SENDING | 1u << LEG_CLOSED,
        [LEG_SENDING] = 1u << LEG_READING_HEAD | 1u << LEG_CLOSED,
        [LEG_READING_HEAD] = 1u << LEG_READING_ERROR_BODY | 1u << LEG_UPGRADED | 1u << LEG_BODY | 1u << LEG_CLOSED,
        [LEG_READING_ERROR_BODY] = 1u << LEG_CLOSED,
        [LEG_UPGRADED] = 0,
        [LEG_BODY] = 0,
        [LEG_CLOSED] = 0,
    };
    assert(allowed[L->state] & (1u << to));
    L->state = to;
    update_watch(L);
    if ((to == LEG_UPGRADED || to == LEG_BODY) && L->want_read)
        ptth_defer_call(L->loop, &L->readable, on_readable_defer, L);
}

/* Calls one of the user's callbacks. false when the leg was closed inside
 * it: L is freed then and the caller must return at once. */
static bool
run_cb(struct ptth_leg_impl *L, enum leg_cb which)
{
    bool gone = false;
    bool *outer = L->gone;
    ptth_leg *leg = L->leg;
    L->gone = &gone;
    if (which == CB_RESPONSE)
        leg->ops->on_response(leg, &L->res);
    else if (which == CB_READABLE)
        leg->ops->on_readable(leg);
    else
        leg->ops->on_writable(leg);
    if (gone) {
        if (outer != NULL)
            *outer = true;
        return false;
    }
    L->gone = outer;
    return true;
}

/* Lets the connection go once the leg can no longer use it. */
static void
release_connection(struct ptth_leg_impl *L)
{
    if (L->watching)
        ptth_watch_stop(&L->watch);
    L->watching = false;
    ptth_timer_stop(L->loop, &L->timer);
    ptth_defer_cancel(L->loop, &L->readable);
    ptth_conn_job_end(&L->job);
    ptth_bstream_close(L->bs);
    L->bs = NULL;
    if (L->own_fd && L->fd != CURL_SOCKET_BAD)
        close(L->fd);
    L->own_fd = false;
    L->fd = CURL_SOCKET_BAD;
    wipe_request(L);
    free(L->in);
    L->in = NULL;
    L->in_len = L->pend_len = L->pend_off = 0;
}

/* The leg ends with res as it is (an answer that is not ours to use). */
static void
finish(struct ptth_leg_impl *L)
{
    release_connection(L);
    set_state(L, LEG_CLOSED);
    run_cb(L, CB_RESPONSE);
}

/* The leg ends without an answer: status 0 and what failed, and the
 * forward proxy's refusal of CONNECT when that was why (else 0). */
__attribute__((format(printf, 3, 4))) static void
fail_at(struct ptth_leg_impl *L, long proxy_status, const char *fmt, ...)
{
    char text[sizeof(L->error)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    memcpy(L->error, text, sizeof(L->error));
    ptth_leg_response_reset(&L->res);
    L->res.error = L->error;
    L->res.proxy_status = proxy_status;
    finish(L);
}

#define fail(L, ...) fail_at((L), 0, __VA_ARGS__)

/* ==== bytes on the connection ==== */

static int
curl_errno(int saved, int fallback)
{
    return saved == ECONNRESET || saved == EPIPE || saved == ETIMEDOUT ? -saved : -fallback;
}

/* One read: >0, 0 at the end, -EAGAIN, or a negative errno. Over TLS
 * through libcurl (the TLS state is its own), else from the socket. */
static ssize_t
conn_recv(struct ptth_leg_impl *L, void *buf, size_t len)
{
    if (L->bs != NULL)
        return ptth_bstream_recv(L->bs, buf, len, L->why, sizeof(L->why));
    if (L->tls) {
        size_t n = 0;
        errno = 0;
        CURLcode rc = curl_easy_recv(L->job.curl, buf, len, &n);
        int saved = errno;
        if (rc == CURLE_OK)
            return (ssize_t)n;
        return rc == CURLE_AGAIN ? -EAGAIN : curl_errno(saved, EIO);
    }
    ssize_t n = recv(L->fd, buf, len, 0);
    if (n >= 0)
        return n;
    return errno == EWOULDBLOCK ? -EAGAIN : -errno;
}

static ssize_t
conn_send(struct ptth_leg_impl *L, const void *buf, size_t len)
{
    if (L->bs != NULL) {
        struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
        return ptth_bstream_send(L->bs, &iov, 1, L->why, sizeof(L->why));
    }
    if (L->tls) {
        size_t n = 0;
        errno = 0;
        CURLcode rc = curl_easy_send(L->job.curl, buf, len, &n);
        int saved = errno;
        if (rc == CURLE_OK)
            return (ssize_t)n;
        return rc == CURLE_AGAIN ? -EAGAIN : curl_errno(saved, EPIPE);
    }
    ssize_t n = send(L->fd, buf, len, MSG_NOSIGNAL);
    if (n >= 0)
        return n;
    return errno == EWOULDBLOCK ? -EAGAIN : -errno;
}

/* libcurl's OpenSSL handle, or NULL. */
static SSL *
conn_ssl(struct ptth_leg_impl *L)
{
    struct curl_tlssessioninfo *info = NULL;
    if (!L->tls || L->bs != NULL || curl_easy_getinfo(L->job.curl, CURLINFO_TLS_SSL_PTR, &info) != CURLE_OK || info == NULL ||
        info->backend != CURLSSLBACKEND_OPENSSL)
        return NULL;
    return info->internals;
}

/* What a failed conn_recv/conn_send (n < 0) was: our layers' text when
 * they gave one, else the errno's. */
static const char *
conn_error(struct ptth_leg_impl *L, ssize_t n)
{
    return L->bs != NULL && L->why[0] != '\0' ? L->why : strerror((int)-n);
}

/* ==== the phases ==== */

static void read_head(struct ptth_leg_impl *L);
static void read_error_body(struct ptth_leg_impl *L);
static void on_event(ptth_watch *w, uint32_t events);
static void on_timer(ptth_timer *t);

static void
send_request(struct ptth_leg_impl *L)
{
    while (L->req_off < L->req_len) {
        ssize_t n = conn_send(L, L->req + L->req_off, L->req_len - L->req_off);
        if (n == -EAGAIN)
            return; /* the watch wants EPOLLOUT in this state */
        if (n < 0) {
            fail(L, "sending the upgrade request to %s failed: %s", L->url, conn_error(L, n));
            return;
        }
        L->req_off += (size_t)n;
    }
    wipe_request(L);
    L->in = malloc(PTTH_LEG_HEAD_MAX);
    if (L->in == NULL) {
        fail(L, "out of memory for the response head from %s", L->url);
        return;
    }
    set_state(L, LEG_READING_HEAD);
    read_head(L); /* over TLS the answer may already wait inside OpenSSL */
}

/* The connect-only job is done: the connection is ours (or failed). */
static void
on_connected(ptth_conn_job *job, const char *error)
{
    struct ptth_leg_impl *L = job->data;
    if (error != NULL) {
        fail_at(L, job->proxy_status, "connecting to the relay %s failed: %s", L->url, error);
        return;
    }
    curl_socket_t fd = CURL_SOCKET_BAD;
    if (curl_easy_getinfo(job->curl, CURLINFO_ACTIVESOCKET, &fd) != CURLE_OK || fd == CURL_SOCKET_BAD) {
        fail(L, "libcurl gave no socket for the connection to %s", L->url);
        return;
    }
    SSL *ssl = conn_ssl(L);
    if (ssl != NULL) {
        /* so that a write repeated after -EAGAIN may come from a moved buffer */
        SSL_set_mode(ssl, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        /* it reads ahead (relay_client.c, on_leg_ssl_ctx): the decrypted
         * bytes that wait are why ptth_leg_want() schedules a read over TLS */
    }
    if (!L->tls) {
        /* cleartext needs nothing more from libcurl: keep a duplicate of the
         * socket and let the easy handle go, so that an open tunnel holds
         * no libcurl state (memory per tunnel) and the multi handle only
         * the legs still connecting (its work grows with the handles in it) */
        int own = fcntl(fd, F_DUPFD_CLOEXEC, 0);
        if (own >= 0) {
            ptth_conn_job_end(&L->job);
            fd = own;
            L->own_fd = true;
        }
    }
    int rc = ptth_watch_start(L->loop, &L->watch, fd, 0, on_event, L);
    if (rc != 0) {
        fail(L, "watching the connection to %s (fd %d) failed: %s", L->url, (int)fd, strerror(-rc));
        return;
    }
    L->fd = fd;
    L->watching = true;
    set_state(L, LEG_SENDING);
    send_request(L);
}

/* Bytes of a non-2xx body: the start is kept for the reason. */
static void
keep_error_body(struct ptth_leg_impl *L, const char *p, size_t len)
{
    size_t room = sizeof(L->ebody) - L->ebody_len;
    if (len > room)
        len = room;
    memcpy(L->ebody + L->ebody_len, p, len);
    L->ebody_len += len;
}

static void
end_error_body(struct ptth_leg_impl *L)
{
    ptth_leg_reason_from_body(&L->res, L->ebody, L->ebody_len);
    finish(L);
}

/* The head buffer is kept only while bytes that followed the head wait in
 * it (a few KiB per open leg otherwise). */
static void
drop_head_buffer(struct ptth_leg_impl *L)
{
    if (L->pend_len > 0)
        return;
    free(L->in);
    L->in = NULL;
    L->in_len = L->pend_off = 0;
}

/* A complete head was parsed and L->in[pend_off..] follows it. */
static void
take_answer(struct ptth_leg_impl *L)
{
    ptth_timer_stop(L->loop, &L->timer);
    int s = L->res.status;
    if (s == 101 && !L->res.upgraded) {
        finish(L);
    } else if (s == 101) {
        drop_head_buffer(L);
        set_state(L, LEG_UPGRADED);
        run_cb(L, CB_RESPONSE);
    } else if (s >= 200 && s <= 299) {
        if (ptth_leg_body_decode(&L->body, L->in + L->pend_off, &L->pend_len) < 0) {
            fail(L, "the relay's %d response from %s has a broken chunked body", s, L->url);
            return;
        }
        drop_head_buffer(L);
        set_state(L, LEG_BODY);
        run_cb(L, CB_RESPONSE);
    } else {
        set_state(L, LEG_READING_ERROR_BODY);
        ptth_timer_start(L->loop, &L->timer, ERROR_BODY_WAIT_MS, on_timer, L);
        size_t len = L->pend_len;
        int rc = ptth_leg_body_decode(&L->body, L->in + L->pend_off, &len);
        keep_error_body(L, L->in + L->pend_off, len);
        L->pend_len = 0;
        if (rc != 0)
            end_error_body(L);
        else
            read_error_body(L);
    }
}

/* Parses what arrived of the head: false when the leg moved on (answer
 * taken, or failed), true when more bytes are needed. */
static bool
parse_head(struct ptth_leg_impl *L)
{
    for (;;) {
        int n = ptth_leg_parse_head(L->in, L->in_len, &L->res, &L->body, L->error, sizeof(L->error));
        if (n == 0)
            return true;
        if (n < 0) {
            fail(L, "%s (from %s)", L->error, L->url);
            return false;
        }
        if (L->res.status >= 200 || L->res.status == 101) {
            L->pend_off = (size_t)n;
            L->pend_len = L->in_len - (size_t)n;
            take_answer(L);
            return false;
        }
        /* an interim answer (100 Continue...): the real one follows */
        memmove(L->in, L->in + n, L->in_len - (size_t)n);
        L->in_len -= (size_t)n;
    }
}

static void
read_head(struct ptth_leg_impl *L)
{
    for (;;) {
        ssize_t n = conn_recv(L, L->in + L->in_len, PTTH_LEG_HEAD_MAX - L->in_len);
        if (n == -EAGAIN)
            return;
        if (n == 0) {
            fail(L, "the relay %s closed the connection before a complete response head (%zu bytes came)", L->url, L->in_len);
            return;
        }
        if (n < 0) {
            fail(L, "reading the response head from %s failed: %s", L->url, conn_error(L, n));
            return;
        }
        L->in_len += (size_t)n;
        if (!parse_head(L))
            return;
    }
}

static void
read_error_body(struct ptth_leg_impl *L)
{
    for (;;) {
        ssize_t n = conn_recv(L, L->in, PTTH_LEG_HEAD_MAX);
        if (n == -EAGAIN)
            return;
        if (n <= 0) { /* the end, or broken: the answer is what came */
            end_error_body(L);
            return;
        }
        size_t len = (size_t)n;
        int rc = ptth_leg_body_decode(&L->body, L->in, &len);
        keep_error_body(L, L->in, len);
        if (rc != 0) {
            end_error_body(L);
            return;
        }
    }
}

/* With our layers the timer bounds the connect first: by timeout_ms when
 * that is the shorter, else by the connect timeout libcurl's legs have. */
static bool
connect_deadline_is_timeout(const struct ptth_leg_impl *L)
{
    return L->timeout_ms > 0 && L->timeout_ms <= PTTH_LEG_DIAL_CONNECT_TIMEOUT_MS;
}

static void
on_timer(ptth_timer *t)
{
    struct ptth_leg_impl *L = t->data;
    if (L->state == LEG_READING_ERROR_BODY)
        end_error_body(L);
    else if (L->state == LEG_CONNECTING && L->bs != NULL && !connect_deadline_is_timeout(L))
        fail(L, "connecting to the relay %s failed: connect timed out after %ld ms", L->url, PTTH_LEG_DIAL_CONNECT_TIMEOUT_MS);
    else
        fail(L, "no response head from the relay %s within %ld ms", L->url, L->timeout_ms);
}

/* Our layers connected: the request goes out, and the timer bounds what is
 * left of timeout_ms (if any). */
static void
stream_connected(struct ptth_leg_impl *L)
{
    L->tls = ptth_bstream_is(L->bs, PTTH_BSTREAM_Q_TLS);
    L->drains = ptth_bstream_is(L->bs, PTTH_BSTREAM_Q_SHORT_READ_DRAINS);
    ptth_timer_stop(L->loop, &L->timer);
    if (L->timeout_ms > 0) {
        long long left = L->opened_ms + L->timeout_ms - ptth_loop_now(L->loop);
        ptth_timer_start(L->loop, &L->timer, left > 1 ? left : 1, on_timer, L);
    }
    set_state(L, LEG_SENDING);
    send_request(L);
}

/* ptth_leg_dial_open() failed inside ptth_leg_open(): reported from the
 * loop, as every failure to connect is. */
static void
on_open_failed(ptth_defer *d)
{
    struct ptth_leg_impl *L = d->data;
    fail(L, "connecting to the relay %s failed: %s", L->url, L->why);
}

static void
handle_events(struct ptth_leg_impl *L, uint32_t events)
{
    switch (L->state) {
    case LEG_SENDING:
        send_request(L);
        return;
    case LEG_READING_HEAD:
        read_head(L);
        return;
    case LEG_READING_ERROR_BODY:
        read_error_body(L);
        return;
    case LEG_UPGRADED:
    case LEG_BODY:
        if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && L->want_read && !run_cb(L, CB_READABLE))
            return;
        if ((events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) && L->want_write && L->state == LEG_UPGRADED)
            run_cb(L, CB_WRITABLE);
        return;
    default:
        return;
    }
}

static void
on_event(ptth_watch *w, uint32_t events)
{
    handle_events(w->data, events);
}

/* An event of our layers' socket: the connect moves on, then as above. */
static void
on_stream_event(void *data, uint32_t events)
{
    struct ptth_leg_impl *L = data;
    if (L->state != LEG_CONNECTING) {
        handle_events(L, events);
        return;
    }
    int rc = ptth_bstream_connect(L->bs, L->why, sizeof(L->why));
    if (rc == 0)
        stream_connected(L);
    else if (rc != -EAGAIN)
        fail(L, "connecting to the relay %s failed: %s", L->url, L->why);
}

static void
on_readable_defer(ptth_defer *d)
{
    struct ptth_leg_impl *L = d->data;
    if (L->want_read && (L->state == LEG_UPGRADED || L->state == LEG_BODY))
        run_cb(L, CB_READABLE);
}

/* ==== public ==== */

int
ptth_leg_open(ptth_relay_client *c, ptth_leg *leg, const char *path, const char *const *headers, long timeout_ms,
              const ptth_leg_ops *ops, void *data)
{
    if (leg->impl != NULL)
        return -EBUSY;
    struct ptth_leg_impl *L = calloc(1, sizeof(*L));
    if (L == NULL)
        return -ENOMEM;
    L->url = strdup(ptth_relay_client_url(c));
    int rc = L->url == NULL ? -ENOMEM : build_request(L, c, path, headers);
    if (rc != 0)
        goto fail;
    L->leg = leg;
    L->loop = ptth_relay_client_loop(c);
    L->state = LEG_CONNECTING;
    L->fd = CURL_SOCKET_BAD;
    L->timeout_ms = timeout_ms;
    L->opened_ms = ptth_loop_now(L->loop);
    ptth_leg_dial *d = ptth_relay_client_leg_dial(c);
    if (ptth_leg_dial_direct(d)) {
        if (ptth_leg_dial_open(d, on_stream_event, L, &L->bs, L->why, sizeof(L->why)) != 0)
            ptth_defer_call(L->loop, &L->readable, on_open_failed, L);
        ptth_timer_start(L->loop, &L->timer, connect_deadline_is_timeout(L) ? timeout_ms : PTTH_LEG_DIAL_CONNECT_TIMEOUT_MS,
                         on_timer, L);
    } else {
        L->via_curl = true;
        L->job.on_done = on_connected;
        L->job.data = L;
        if ((rc = ptth_conn_job_start(c, &L->job)) != 0)
            goto fail;
        if (timeout_ms > 0)
            ptth_timer_start(L->loop, &L->timer, timeout_ms, on_timer, L);
    }
    leg->ops = ops;
    leg->data = data;
    leg->impl = L;
    return 0;
fail:
    wipe_request(L);
    free(L->url);
    free(L);
    return rc;
}

ssize_t
ptth_leg_read(ptth_leg *leg, void *buf, size_t len)
{
    struct ptth_leg_impl *L = leg->impl;
    if (L == NULL || (L->state != LEG_UPGRADED && L->state != LEG_BODY))
        return -ENOTCONN;
    if (len == 0)
        return -EINVAL;
    if (L->pend_len > 0) {
        size_t n = L->pend_len < len ? L->pend_len : len;
        memcpy(buf, L->in + L->pend_off, n);
        L->pend_off += n;
        L->pend_len -= n;
        drop_head_buffer(L);
        return (ssize_t)n;
    }
    if (L->state == LEG_BODY && L->body.done)
        return 0;
    for (;;) {
        ssize_t n = conn_recv(L, buf, len);
        if (n < 0 || L->state == LEG_UPGRADED)
            return n;
        if (n == 0)
            return ptth_leg_body_closed(&L->body);
        size_t got = (size_t)n;
        int rc = ptth_leg_body_decode(&L->body, buf, &got);
        if (rc < 0)
            return -EPROTO;
        if (got > 0 || rc == 1)
            return (ssize_t)got;
        /* only chunk framing came: read on */
    }
}

ssize_t
ptth_leg_write(ptth_leg *leg, const void *buf, size_t len)
{
    struct ptth_leg_impl *L = leg->impl;
    if (L == NULL || L->state != LEG_UPGRADED)
        return -EPIPE;
    if (len == 0)
        return 0;
    return conn_send(L, buf, len);
}

void
ptth_leg_want(ptth_leg *leg, bool read, bool write)
{
    struct ptth_leg_impl *L = leg->impl;
    if (L == NULL)
        return;
    L->want_read = read;
    L->want_write = write;
    if (L->state != LEG_UPGRADED && L->state != LEG_BODY)
        return; /* applied when the answer comes (set_state) */
    update_watch(L);
    /* Only bytes epoll cannot see need the promised call: decrypted ones
     * inside OpenSSL, or what came with the response head. On cleartext the
     * level-triggered watch reports the socket itself (a call per want
     * would cost a recv() that finds nothing, on every round trip). */
    if (read && (!L->drains || L->pend_len > 0))
        ptth_defer_call(L->loop, &L->readable, on_readable_defer, L);
    else if (!read)
        ptth_defer_cancel(L->loop, &L->readable);
}

bool
ptth_leg_is_tls(const ptth_leg *leg)
{
    return leg->impl != NULL && leg->impl->tls;
}

bool
ptth_leg_via_curl(const ptth_leg *leg)
{
    return leg->impl != NULL && leg->impl->via_curl;
}

void
ptth_leg_close(ptth_leg *leg, bool abort)
{
    struct ptth_leg_impl *L = leg->impl;
    if (L == NULL)
        return;
    leg->impl = NULL;
    if (L->gone != NULL)
        *L->gone = true;
    if (L->bs != NULL && abort) {
        ptth_bstream_abort(L->bs);
    } else if (L->bs != NULL && (L->state == LEG_UPGRADED || L->state == LEG_BODY)) {
        /* an end, not a break: TLS close_notify (libcurl sent one too) and
         * the FIN, as far as the socket takes them now */
        char why[64];
        (void)ptth_bstream_shutdown(L->bs, why, sizeof(why));
    }
    if (abort && L->fd != CURL_SOCKET_BAD) {
        /* a TCP reset, and no TLS close_notify before it: the other end must
         * see a broken connection, not an end */
        SSL *ssl = conn_ssl(L);
        if (ssl != NULL)
            SSL_set_quiet_shutdown(ssl, 1);
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(L->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    release_connection(L);
    free(L->url);
    free(L);
}
