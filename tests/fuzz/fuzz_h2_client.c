/*
 * fuzz_h2_client.c: libFuzzer target for what the relay sends a terminator
 * over HTTP/2: the bytes common/h2_client.c hands to nghttp2 and whose
 * headers and bodies it turns into ptth_req callbacks (with
 * common/req_response.c reading the PTTH-* headers), reached through the
 * real relay client (common/relay_client.c) on a real ptth_loop.
 *
 * Input: up to 64 KiB of HTTP/2 frames as a relay would send them after its
 * preface (larger inputs are ignored). The harness is the relay: a loopback
 * listener on the same loop. Each input gets a fresh ptth_relay_client for
 * http://127.0.0.1:PORT/pfx (prior knowledge; PTTH_HTTP_CLIENT is unset)
 * and three requests, started in this order so that on the first
 * connection they are streams 1, 3 and 5:
 *   1  a framed stream (PTTH_REQ_STREAM, no body) whose reader pauses on
 *      every other on_body() and is resumed from a deferred call;
 *   3  a short request with a 100-byte body;
 *   5  a short request with a 70,000-byte body: more than the relay's
 *      initial windows (65,535), so its upload waits for WINDOW_UPDATE; it
 *      is cancelled (from a deferred call) when its answer is not 2xx.
 * When request 3 ends with a complete 2xx answer a fourth, short request
 * with no body is started from its on_done(), as terminators do.
 *
 * On each accepted connection the harness writes an empty SETTINGS frame at
 * once (the server preface), reads and throws away what the client sends,
 * and once the client's HEADERS frames arrived (the client sends none
 * before it has the relay's SETTINGS) writes the input as it is, then
 * half-closes. The first three connections get the input (a refused stream
 * is sent again on a new connection); later ones only the preface. The
 * loop runs until every request had its on_done(); then the client is freed
 * and ASan's leak check covers the rest.
 *
 * Checked, besides crashes, leaks and undefined behaviour:
 *   - every request gets exactly one on_done(), no callback after it, and is
 *     no longer active inside it; all of them within GUARD_MS (2 s) of loop
 *     time (the harness half-closes each connection right after its bytes,
 *     so a request still waiting then is stuck: in a terminator, a tunnel
 *     that never ends);
 *   - on_headers() at most once, with a final status (200..999);
 *   - on_body() only after on_headers() of a 2xx answer, never while the
 *     reader has paused (except from its own ptth_req_resume()), never with
 *     more bytes in total than the input carried to it;
 *   - on_done() without an error only for a request that got its headers;
 *   - the response fields (PTTH-Conn, -Port, -Client-Addr, reason) are
 *     NUL-terminated inside their arrays, Retry-After is -1..86400.
 * A broken invariant prints which and calls abort(), so libFuzzer keeps the
 * input. PTTH_FUZZ_LOG=1 prints what each request got.
 */
#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>

#include "loop.h"
#include "relay_client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define INPUT_MAX (64 * 1024)
#define NREQ 4         /* three started at once, one from an on_done() */
#define MAX_SCONNS 16  /* connections the harness serves per input */
#define REPLAY_CONNS 3 /* connections that get the input */
#define GUARD_MS 2000  /* loop time for all requests to end */
#define SMALL_BODY 100 /* request 3 */
#define BIG_BODY 70000 /* request 5: above the initial windows of 65,535 */
#define CLIENT_PREFACE 24

static const char KEY[] = "KKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKk";
static const uint8_t SERVER_PREFACE[9] = {0, 0, 0, 4, 0, 0, 0, 0, 0}; /* empty SETTINGS */

/* ---- the harness's side of one connection ---- */

typedef struct sconn {
    int fd; /* -1 when closed */
    ptth_watch watch;
    int index;
    const uint8_t *wbuf; /* left to write */
    size_t wlen;
    bool input_queued, fin;
    /* what the client sent, parsed just enough to count HEADERS frames */
    size_t preface_left;
    uint8_t hdr[9];
    size_t hdr_have;
    size_t payload_left;
    int headers_seen;
} sconn;

/* ---- a request and what it saw ---- */

typedef struct treq {
    ptth_req r;
    int index;
    bool started, done, headers, paused_by_us, in_resume, cancel_planned;
    unsigned body_calls;
    size_t body_total;
    ptth_defer resume_defer, cancel_defer;
    char error[160];
} treq;

static ptth_loop *loop;
static int listen_fd, listen_port;
static ptth_watch listen_watch;
static char url[64];
static bool verbose;

static ptth_relay_client *C;
static treq reqs[NREQ];
static sconn sconns[MAX_SCONNS];
static int nsconns;
static const uint8_t *input;
static size_t input_len;
static int outstanding; /* started and not done */
static ptth_timer guard;

static uint8_t small_body[SMALL_BODY], big_body[BIG_BODY];
static const char *const small_headers[] = {"PTTH-Seq: 0", NULL};
static const char *const big_headers[] = {"PTTH-Seq: 1", "X-Fuzz: big", NULL};

static void
fail(const treq *t, const char *what)
{
    fprintf(stderr, "fuzz_h2_client: invariant broken: %s (request %d: status %ld, %zu body bytes, error %s)\n", what,
            t != NULL ? t->index : -1, t != NULL ? t->r.status : 0L, t != NULL ? t->body_total : 0,
            t != NULL && t->done ? (t->error[0] != '\0' ? t->error : "none") : "not done");
    abort();
}

/* ---- harness server ---- */

static void
sconn_close(sconn *s)
{
    if (s->fd < 0)
        return;
    ptth_watch_stop(&s->watch);
    close(s->fd);
    s->fd = -1;
}

/* Counts the client's HEADERS frames in what it sent (after the preface). */
static void
parse_client(sconn *s, const uint8_t *p, size_t n)
{
    while (n > 0) {
        if (s->preface_left > 0) {
            size_t k = n < s->preface_left ? n : s->preface_left;
            s->preface_left -= k;
            p += k;
            n -= k;
        } else if (s->payload_left > 0) {
            size_t k = n < s->payload_left ? n : s->payload_left;
            s->payload_left -= k;
            p += k;
            n -= k;
        } else {
            s->hdr[s->hdr_have++] = *p++;
            n--;
            if (s->hdr_have == sizeof(s->hdr)) {
                s->hdr_have = 0;
                s->payload_left = (size_t)s->hdr[0] << 16 | (size_t)s->hdr[1] << 8 | s->hdr[2];
                if (s->hdr[3] == 1) /* HEADERS */
                    s->headers_seen++;
            }
        }
    }
}

/* Writes what is queued; half-closes after the last byte. false when the
 * connection is gone. */
static bool
sconn_write(sconn *s)
{
    while (s->wlen > 0) {
        ssize_t n = send(s->fd, s->wbuf, s->wlen, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n < 0) {
            sconn_close(s);
            return false;
        }
        s->wbuf += n;
        s->wlen -= (size_t)n;
    }
    if (s->wlen == 0 && !s->fin && (s->input_queued || s->index >= REPLAY_CONNS)) {
        shutdown(s->fd, SHUT_WR);
        s->fin = true;
    }
    ptth_watch_set(&s->watch, EPOLLIN | (s->wlen > 0 ? EPOLLOUT : 0));
    return true;
}

static void
on_sconn_event(ptth_watch *w, uint32_t events)
{
    sconn *s = w->data;
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        for (;;) {
            uint8_t buf[16384];
            ssize_t n = recv(s->fd, buf, sizeof(buf), 0);
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                break;
            if (n <= 0) { /* the client closed (or reset) the connection */
                sconn_close(s);
                return;
            }
            parse_client(s, buf, (size_t)n);
        }
    }
    /* the client sends all its HEADERS of a dispatch in one write: once some
     * arrived and nothing more is readable, its streams exist */
    if (!s->input_queued && s->index < REPLAY_CONNS && s->headers_seen > 0 && s->wlen == 0) {
        s->input_queued = true;
        s->wbuf = input;
        s->wlen = input_len;
    }
    sconn_write(s);
}

static void
on_accept(ptth_watch *w, uint32_t events)
{
    (void)w;
    (void)events;
    for (;;) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        if (nsconns == MAX_SCONNS) {
            close(fd); /* the client sees a reset: a transient failure */
            continue;
        }
        sconn *s = &sconns[nsconns];
        memset(s, 0, sizeof(*s));
        s->fd = fd;
        s->index = nsconns++;
        s->preface_left = CLIENT_PREFACE;
        s->wbuf = SERVER_PREFACE;
        s->wlen = sizeof(SERVER_PREFACE);
        if (ptth_watch_start(loop, &s->watch, fd, EPOLLIN | EPOLLOUT, on_sconn_event, s) != 0) {
            fprintf(stderr, "fuzz_h2_client: cannot watch an accepted socket\n");
            abort();
        }
        sconn_write(s);
    }
}

/* ---- the requests' callbacks ---- */

static void start_req(int i);

static void
check_fields(const treq *t)
{
    const ptth_req *r = &t->r;
    if (strnlen(r->conn, sizeof(r->conn)) == sizeof(r->conn) || strnlen(r->port, sizeof(r->port)) == sizeof(r->port) ||
        strnlen(r->client_addr, sizeof(r->client_addr)) == sizeof(r->client_addr) ||
        strnlen(r->reason, sizeof(r->reason)) == sizeof(r->reason))
        fail(t, "a response field is not NUL-terminated");
    if (r->retry_after < -1 || r->retry_after > 86400)
        fail(t, "Retry-After out of -1..86400");
}

static void
on_resume(ptth_defer *d)
{
    treq *t = d->data;
    if (t->done || !t->paused_by_us)
        return;
    t->paused_by_us = false;
    t->in_resume = true;
    ptth_req_resume(&t->r); /* may call on_body, which may pause again */
    t->in_resume = false;
}

static void
on_cancel(ptth_defer *d)
{
    treq *t = d->data;
    if (t->done || !ptth_req_active(&t->r))
        return;
    ptth_req_cancel(&t->r);
    if (verbose)
        fprintf(stderr, "fuzz_h2_client: request %d: status %ld: cancelled by the harness\n", t->index, t->r.status);
    t->done = true;
    snprintf(t->error, sizeof(t->error), "cancelled by the harness");
    if (--outstanding == 0)
        ptth_loop_stop(loop);
}

static void
on_headers(ptth_req *r)
{
    treq *t = r->data;
    if (t->done)
        fail(t, "on_headers after on_done");
    if (t->headers)
        fail(t, "on_headers twice");
    if (r->status < 200 || r->status > 999)
        fail(t, "on_headers with a status that is not final");
    t->headers = true;
    check_fields(t);
    if (t->index == 2 && (r->status < 200 || r->status > 299) && !t->cancel_planned) {
        /* a terminator gives up on an upload the relay refused */
        t->cancel_planned = true;
        ptth_defer_call(loop, &t->cancel_defer, on_cancel, t);
    }
}

static size_t
on_body(ptth_req *r, const uint8_t *p, size_t len)
{
    treq *t = r->data;
    (void)p;
    if (t->done)
        fail(t, "on_body after on_done");
    if (!t->headers || r->status < 200 || r->status > 299)
        fail(t, "on_body without the headers of a 2xx answer");
    if (t->paused_by_us && !t->in_resume)
        fail(t, "on_body while the reader is paused");
    t->body_calls++;
    if (t->index == 0 && t->body_calls % 2 == 1) {
        /* the framed-stream reader's local socket is full: come back later */
        t->paused_by_us = true;
        ptth_defer_call(loop, &t->resume_defer, on_resume, t);
        return PTTH_REQ_PAUSE;
    }
    t->body_total += len;
    if (t->body_total > input_len * REPLAY_CONNS)
        fail(t, "more body bytes than the relay sent");
    return len;
}

static void
on_done(ptth_req *r, const char *error)
{
    treq *t = r->data;
    if (t->done)
        fail(t, "on_done twice");
    if (ptth_req_active(r))
        fail(t, "active inside its on_done");
    t->done = true;
    snprintf(t->error, sizeof(t->error), "%s", error != NULL ? error : "");
    if (error == NULL && (!t->headers || r->status < 200))
        fail(t, "on_done without an error but without a final answer");
    check_fields(t);
    if (verbose)
        fprintf(stderr,
                "fuzz_h2_client: request %d: status %ld conn '%s' port '%s' addr '%s' reason '%s' retry %ld "
                "seq %lld %zu body bytes in %u calls: %s\n",
                t->index, r->status, r->conn, r->port, r->client_addr, r->reason, r->retry_after, r->seq, t->body_total,
                t->body_calls, error != NULL ? error : "complete");
    ptth_defer_cancel(loop, &t->resume_defer);
    ptth_defer_cancel(loop, &t->cancel_defer);
    if (t->index == 1 && error == NULL && r->status >= 200 && r->status <= 299)
        start_req(3); /* a terminator's next request, from on_done */
    if (--outstanding == 0)
        ptth_loop_stop(loop);
}

static const ptth_req_ops ops = {.on_headers = on_headers, .on_body = on_body, .on_done = on_done};

static void
start_req(int i)
{
    static const struct {
        ptth_req_kind kind;
        const char *path;
        const char *const *headers;
        const uint8_t *body;
        size_t body_len;
    } spec[NREQ] = {
        {PTTH_REQ_STREAM, "/v1/servers/foo/ports/ssh/connect", NULL, NULL, 0},
        {PTTH_REQ_SHORT, "/v1/servers/foo/conns/AAAAAAAAAAAAAAAAAAAAAA/upstream", small_headers, small_body, SMALL_BODY},
        {PTTH_REQ_SHORT, "/v1/servers/foo/conns/BBBBBBBBBBBBBBBBBBBBBB/upstream", big_headers, big_body, BIG_BODY},
        {PTTH_REQ_SHORT, "/v1/servers/foo/conns/AAAAAAAAAAAAAAAAAAAAAA/close", NULL, NULL, 0},
    };
    treq *t = &reqs[i];
    if (t->started)
        return;
    t->started = true;
    t->r.ops = &ops;
    t->r.data = t;
    int rc = ptth_req_start(C, &t->r, spec[i].kind, spec[i].path, spec[i].headers, spec[i].body, spec[i].body_len);
    if (rc != 0) {
        fprintf(stderr, "fuzz_h2_client: ptth_req_start of request %d: %s\n", i, strerror(-rc));
        abort();
    }
    outstanding++;
}

static void
on_guard(ptth_timer *tm)
{
    (void)tm;
    for (int i = 0; i < nsconns; i++)
        fprintf(stderr, "fuzz_h2_client: harness connection %d: %s, %d HEADERS from the client, input %s, %zu bytes unwritten\n", i,
                sconns[i].fd >= 0 ? (sconns[i].fin ? "half-closed" : "open") : "closed", sconns[i].headers_seen,
                sconns[i].input_queued ? "queued" : "not queued", sconns[i].wlen);
    for (int i = 0; i < NREQ; i++)
        if (reqs[i].started && !reqs[i].done)
            fail(&reqs[i], "a request did not end within GUARD_MS of loop time");
    ptth_loop_stop(loop);
}

/* ---- libFuzzer ---- */

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    verbose = getenv("PTTH_FUZZ_LOG") != NULL;
    unsetenv("PTTH_HTTP_CLIENT"); /* our own HTTP/2 client, not libcurl */
    signal(SIGPIPE, SIG_IGN);
    /* held for the whole run: each client's init/cleanup only counts */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        abort();
    loop = ptth_loop_new();
    if (loop == NULL)
        abort();
    listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t salen = sizeof(sa);
    if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(listen_fd, 64) != 0 ||
        getsockname(listen_fd, (struct sockaddr *)&sa, &salen) != 0) {
        fprintf(stderr, "fuzz_h2_client: cannot listen on 127.0.0.1: %s\n", strerror(errno));
        abort();
    }
    listen_port = ntohs(sa.sin_port);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/pfx", listen_port);
    if (ptth_watch_start(loop, &listen_watch, listen_fd, EPOLLIN, on_accept, NULL) != 0)
        abort();
    for (size_t i = 0; i < SMALL_BODY; i++)
        small_body[i] = (uint8_t)('a' + i % 26);
    for (size_t i = 0; i < BIG_BODY; i++)
        big_body[i] = (uint8_t)(i * 7 + 3);
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > INPUT_MAX)
        return 0;
    input = data;
    input_len = size;
    nsconns = 0;
    outstanding = 0;
    memset(reqs, 0, sizeof(reqs));
    for (int i = 0; i < NREQ; i++)
        reqs[i].index = i;

    ptth_relay_client_config cfg = {.url = url, .key = KEY, .user_agent = "fuzz_h2_client"};
    char err[256];
    if (ptth_relay_client_new(loop, &cfg, &C, err, sizeof(err)) != 0) {
        fprintf(stderr, "fuzz_h2_client: ptth_relay_client_new: %s\n", err);
        abort();
    }
    for (int i = 0; i < 3; i++)
        start_req(i);
    ptth_timer_start(loop, &guard, GUARD_MS, on_guard, NULL);
    if (ptth_loop_run(loop) != 0)
        abort();
    ptth_timer_stop(loop, &guard);
    for (int i = 0; i < NREQ; i++) {
        ptth_defer_cancel(loop, &reqs[i].resume_defer);
        ptth_defer_cancel(loop, &reqs[i].cancel_defer);
    }
    ptth_relay_client_free(C);
    C = NULL;

    /* the client's sockets are closed: close ours, and any connection it
     * made that was not accepted yet (it would be taken for the next input's) */
    for (int i = 0; i < nsconns; i++)
        sconn_close(&sconns[i]);
    for (;;) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            break;
        close(fd);
    }
    return 0;
}
