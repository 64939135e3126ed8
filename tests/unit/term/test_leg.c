/*
 * Unit tests of the upgraded relay leg (common/leg.c) through the real
 * relay client (its connect-only jobs, libcurl CURLOPT_CONNECT_ONLY) on a
 * ptth_loop, against a fake relay: a thread with a loopback listener that
 * takes one connection, records the request head, answers canned bytes
 * (in pieces, with pauses, so that reads split at awkward places), then
 * echoes, holds the connection (recording how it ended: EOF or reset) or
 * closes it. One TLS fake (OpenSSL, a throwaway self-signed certificate
 * made here) checks ALPN, curl_easy_send/recv and a transfer of a few MiB
 * with backpressure.
 *
 * The pure response parser (leg_parse.c) has its own suite, test_leg_parse.c.
 *
 * Every wait is bounded (run_until() fails the test when its guard fires).
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "check_main.h"
#include "leg.h"
#include "loop.h"
#include "relay_client.h"

#define KEY "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define GUARD_MS 5000
#define MAX_PIECES 8
#define BIG (4 * 1024 * 1024)

/* ---- the fake relay (a thread) ---- */

enum after { AFTER_CLOSE, AFTER_ECHO, AFTER_HOLD };

static struct {
    int lfd, port;
    bool tls;
    SSL_CTX *ctx;
    bool close_at_once;            /* close before reading the request */
    const char *piece[MAX_PIECES]; /* the answer, sent piece by piece */
    size_t piece_len[MAX_PIECES];  /* 0: strlen */
    int npieces;
    int piece_delay_ms;
    enum after after;
    int echo_delay_ms; /* before the echo starts reading */
    char req[8192];    /* the request head as received */
    size_t req_len;
    char alpn[64]; /* the protocols the client offered */
    size_t alpn_len;
    int end_errno; /* AFTER_HOLD/ECHO: 0 EOF, else the errno of the failed read */
    size_t echoed;
    atomic_bool done;
    pthread_t thread;
    bool started;
} F;

static void
sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

struct fio {
    int fd;
    SSL *ssl;
};

/* >0, 0 EOF, -errno */
static ssize_t
fio_read(struct fio *io, void *buf, size_t len)
{
    if (io->ssl != NULL) {
        errno = 0;
        int n = SSL_read(io->ssl, buf, (int)len);
        if (n > 0)
            return n;
        int e = SSL_get_error(io->ssl, n);
        if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && errno == 0))
            return 0;
        return errno != 0 ? -errno : -EPROTO;
    }
    ssize_t n = recv(io->fd, buf, len, 0);
    return n >= 0 ? n : -errno;
}

static void
fio_write(struct fio *io, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = io->ssl != NULL ? SSL_write(io->ssl, p, (int)len) : send(io->fd, p, len, MSG_NOSIGNAL);
        if (n <= 0)
            return;
        p += n;
        len -= (size_t)n;
    }
}

static void
fake_read_request(struct fio *io)
{
    while (F.req_len < sizeof(F.req) - 1) {
        ssize_t n = fio_read(io, F.req + F.req_len, 1); /* byte by byte: nothing after the head is taken */
        if (n <= 0)
            return;
        F.req_len++;
        F.req[F.req_len] = '\0';
        if (F.req_len >= 4 && memcmp(F.req + F.req_len - 4, "\r\n\r\n", 4) == 0)
            return;
    }
}

static void
fake_after(struct fio *io)
{
    static char buf[64 * 1024];
    if (F.after == AFTER_CLOSE)
        return;
    if (F.echo_delay_ms > 0)
        sleep_ms(F.echo_delay_ms);
    for (;;) {
        ssize_t n = fio_read(io, buf, sizeof(buf));
        if (n <= 0) {
            F.end_errno = n == 0 ? 0 : (int)-n;
            return;
        }
        if (F.after == AFTER_ECHO) {
            fio_write(io, buf, (size_t)n);
            F.echoed += (size_t)n;
        }
    }
}

static void *
fake_main(void *arg)
{
    (void)arg;
    struct fio io = {.fd = accept(F.lfd, NULL, NULL), .ssl = NULL};
    if (io.fd < 0)
        goto out;
    int one = 1;
    setsockopt(io.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (F.tls) {
        io.ssl = SSL_new(F.ctx);
        SSL_set_fd(io.ssl, io.fd);
        if (SSL_accept(io.ssl) != 1)
            goto done;
    }
    if (F.close_at_once)
        goto done;
    fake_read_request(&io);
    for (int i = 0; i < F.npieces; i++) {
        if (i > 0 && F.piece_delay_ms > 0)
            sleep_ms(F.piece_delay_ms);
        fio_write(&io, F.piece[i], F.piece_len[i] != 0 ? F.piece_len[i] : strlen(F.piece[i]));
    }
    fake_after(&io);
done:
    if (io.ssl != NULL) {
        if (F.end_errno == 0)
            SSL_shutdown(io.ssl);
        SSL_free(io.ssl);
    }
    close(io.fd);
out:
    atomic_store(&F.done, true);
    return NULL;
}

static int
on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    F.alpn_len = inlen < sizeof(F.alpn) ? inlen : sizeof(F.alpn);
    memcpy(F.alpn, in, F.alpn_len);
    if (SSL_select_next_proto((unsigned char **)out, outlen, (const unsigned char *)"\x08http/1.1", 9, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    return SSL_TLSEXT_ERR_OK;
}

/* A server context with a fresh self-signed P-256 certificate for
 * localhost (the client runs with insecure, so only TLS itself matters). */
static SSL_CTX *
make_tls_ctx(void)
{
    EVP_PKEY *pkey = EVP_EC_gen("P-256");
    ck_assert_ptr_nonnull(pkey);
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, pkey);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1, 0);
    X509_set_issuer_name(x, name);
    ck_assert(X509_sign(x, pkey, EVP_sha256()) > 0);
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    ck_assert(SSL_CTX_use_certificate(ctx, x) == 1);
    ck_assert(SSL_CTX_use_PrivateKey(ctx, pkey) == 1);
    SSL_CTX_set_alpn_select_cb(ctx, on_alpn, NULL);
    X509_free(x);
    EVP_PKEY_free(pkey);
    return ctx;
}

static int
listen_loopback(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(listen(fd, 4), 0);
    socklen_t al = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &al);
    *port = ntohs(a.sin_port);
    return fd;
}

static void
fake_start(void)
{
    F.lfd = listen_loopback(&F.port);
    if (F.tls)
        F.ctx = make_tls_ctx();
    ck_assert_int_eq(pthread_create(&F.thread, NULL, fake_main, NULL), 0);
    F.started = true;
}

static void
fake_join(void)
{
    if (!F.started)
        return;
    pthread_join(F.thread, NULL);
    F.started = false;
    close(F.lfd);
    if (F.ctx != NULL)
        SSL_CTX_free(F.ctx);
    F.ctx = NULL;
}

/* ---- the client side ---- */

static ptth_loop *loop;
static ptth_relay_client *C;
static char url[160];

static struct {
    ptth_leg leg;
    int responses;
    ptth_leg_response res;
    char error[512];
    bool error_null;
    char *in;
    size_t in_len, in_cap;
    bool eof;
    ssize_t read_err;
    const char *out;
    size_t out_len, out_off;
    int write_again; /* -EAGAIN from ptth_leg_write */
    int readable_calls;
    bool close_on_response, abort_on_response;
    bool close_when_read_all; /* close (not abort) once in_len == want_in */
    size_t want_in;
} T;

static void
on_response(ptth_leg *leg, const ptth_leg_response *res)
{
    T.responses++;
    T.res = *res;
    T.error_null = res->error == NULL;
    snprintf(T.error, sizeof(T.error), "%s", res->error != NULL ? res->error : "");
    T.res.error = NULL;
    if (T.close_on_response) {
        ptth_leg_close(leg, T.abort_on_response);
        return;
    }
    if (res->upgraded || (res->status >= 200 && res->status <= 299))
        ptth_leg_want(leg, true, T.out_off < T.out_len);
}

static void
on_readable(ptth_leg *leg)
{
    T.readable_calls++;
    for (;;) {
        if (T.in_len == T.in_cap) {
            T.in_cap = T.in_cap ? 2 * T.in_cap : 4096;
            T.in = realloc(T.in, T.in_cap);
        }
        ssize_t n = ptth_leg_read(leg, T.in + T.in_len, T.in_cap - T.in_len);
        if (n == -EAGAIN)
            return;
        if (n <= 0) {
            if (n == 0)
                T.eof = true;
            else
                T.read_err = n;
            ptth_leg_want(leg, false, T.out_off < T.out_len);
            return;
        }
        T.in_len += (size_t)n;
        if (T.close_when_read_all && T.in_len == T.want_in) {
            ptth_leg_close(leg, false);
            return;
        }
    }
}

static void
on_writable(ptth_leg *leg)
{
    while (T.out_off < T.out_len) {
        size_t len = T.out_len - T.out_off;
        if (len > 100000)
            len = 100000;
        ssize_t n = ptth_leg_write(leg, T.out + T.out_off, len);
        if (n == -EAGAIN) {
            T.write_again++;
            return;
        }
        ck_assert_int_gt(n, 0);
        T.out_off += (size_t)n;
    }
    ptth_leg_want(leg, !T.eof, false);
}

static const ptth_leg_ops ops = {on_response, on_readable, on_writable};

/* ---- running the loop, bounded ---- */

static bool (*cur_cond)(void);
static bool guard_fired;
static ptth_timer guard_timer, poll_timer;

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
    if (cur_cond != NULL && cur_cond())
        ptth_loop_stop(loop);
    ptth_timer_start(loop, t, 2, on_poll, NULL);
}

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
cond_response(void)
{
    return T.responses > 0;
}

static bool
cond_eof(void)
{
    return T.eof || T.read_err != 0;
}

static bool
cond_fake_done(void)
{
    return atomic_load(&F.done);
}

static bool
cond_echo_done(void)
{
    return T.in_len >= T.want_in || T.read_err != 0 || T.eof;
}

static long long
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static void
client_new(const char *scheme, int port, const char *prefix)
{
    loop = ptth_loop_new();
    ck_assert_ptr_nonnull(loop);
    snprintf(url, sizeof(url), "%s://127.0.0.1:%d%s", scheme, port, prefix);
    ptth_relay_client_config cfg = {.url = url, .key = KEY, .insecure = true, .user_agent = "ptth-test/1"};
    char err[256];
    ck_assert_msg(ptth_relay_client_new(loop, &cfg, &C, err, sizeof(err)) == 0, "%s", err);
}

static void
open_leg(const char *path, const char *const *headers, long timeout_ms)
{
    ck_assert_int_eq(ptth_leg_open(C, &T.leg, path, headers, timeout_ms, &ops, NULL), 0);
}

static void
teardown_all(void)
{
    ptth_leg_close(&T.leg, false);
    ptth_relay_client_free(C);
    C = NULL;
    fake_join();
    ptth_loop_free(loop);
    free(T.in);
}

/* Starts the fake, opens a leg on it, waits for on_response. */
static void
start_and_answer(const char *prefix, long timeout_ms)
{
    fake_start();
    client_new(F.tls ? "https" : "http", F.port, prefix);
    open_leg("/v1/connect/foo/ssh", NULL, timeout_ms);
    ck_assert_msg(run_until(cond_response, GUARD_MS), "no on_response");
    ck_assert_int_eq(T.responses, 1);
}

static void
answer(const char *a)
{
    F.piece[F.npieces++] = a;
}

#define HEAD_101 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: ptth-tunnel/1\r\nConnection: Upgrade\r\n"

static void
assert_failed_with(const char *what)
{
    ck_assert_int_eq(T.res.status, 0);
    ck_assert(!T.res.upgraded);
    ck_assert(!T.error_null);
    ck_assert_msg(strstr(T.error, what) != NULL, "error '%s' does not contain '%s'", T.error, what);
    ck_assert_msg(strstr(T.error, KEY) == NULL, "the key is in the error text");
}

/* ---- tests: upgraded ---- */

START_TEST(upgrade_then_echo)
{
    answer(HEAD_101 "PTTH-Heartbeat: 30\r\nPTTH-Idle-Timeout: 120\r\nPTTH-Conn: c-17\r\n\r\n");
    F.after = AFTER_ECHO;
    T.out = "ping pong";
    T.out_len = 9;
    T.want_in = 9;
    start_and_answer("", 0);
    ck_assert(T.res.upgraded);
    ck_assert_int_eq(T.res.status, 101);
    ck_assert(T.error_null);
    ck_assert_int_eq(T.res.heartbeat, 30);
    ck_assert_int_eq(T.res.idle_timeout, 120);
    ck_assert_str_eq(T.res.conn, "c-17");
    ck_assert(!ptth_leg_is_tls(&T.leg));
    ck_assert(run_until(cond_echo_done, GUARD_MS));
    ck_assert_int_eq(T.in_len, 9);
    ck_assert(memcmp(T.in, "ping pong", 9) == 0);
    ck_assert_int_gt(T.readable_calls, 0);
    /* an orderly close: the fake reads EOF */
    ptth_leg_close(&T.leg, false);
    ck_assert(run_until(cond_fake_done, GUARD_MS));
    fake_join();
    ck_assert_int_eq(F.end_errno, 0);
    ck_assert_uint_eq(F.echoed, 9);
    teardown_all();
}
END_TEST

START_TEST(upgrade_with_bytes_in_the_head_packet)
{
    answer(HEAD_101 "\r\nFIRST");
    F.after = AFTER_ECHO;
    T.out = "x";
    T.out_len = 1;
    T.want_in = 6;
    start_and_answer("", 0);
    ck_assert(T.res.upgraded);
    ck_assert(run_until(cond_echo_done, GUARD_MS));
    ck_assert_int_eq(T.in_len, 6);
    ck_assert(memcmp(T.in, "FIRSTx", 6) == 0);
    teardown_all();
}
END_TEST

START_TEST(upgrade_with_a_wrong_token_fails)
{
    answer("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
    F.after = AFTER_HOLD;
    start_and_answer("", 0);
    ck_assert_int_eq(T.res.status, 101);
    ck_assert(!T.res.upgraded);
    ck_assert(!T.error_null);
    ck_assert_msg(strstr(T.error, "websocket") != NULL, "%s", T.error);
    char b[4];
    ck_assert_int_eq(ptth_leg_read(&T.leg, b, sizeof(b)), -ENOTCONN);
    ck_assert_int_eq(ptth_leg_write(&T.leg, b, sizeof(b)), -EPIPE);
    /* the connection was let go when the leg finished */
    ck_assert(run_until(cond_fake_done, GUARD_MS));
    teardown_all();
}
END_TEST

START_TEST(upgrade_token_case_insensitive)
{
    answer("HTTP/1.1 101 Switching Protocols\r\nupgrade:   PTTH-Tunnel/1  \r\n\r\n");
    F.after = AFTER_HOLD;
    start_and_answer("", 0);
    ck_assert(T.res.upgraded);
    ck_assert(T.error_null);
    teardown_all();
}
END_TEST

START_TEST(request_bytes)
{
    answer("HTTP/1.1 403 Forbidden\r\nPTTH-Reason: not allowed here\r\nContent-Length: 5\r\n\r\nnope!");
    F.after = AFTER_HOLD;
    fake_start();
    client_new("http", F.port, "/ptth/");
    const char *hdrs[] = {"PTTH-Name: foo", "X-Extra: 1 2", NULL};
    open_leg("/v1/connect/foo/ssh", hdrs, 0);
    ck_assert(run_until(cond_response, GUARD_MS));
    ck_assert_int_eq(T.res.status, 403);
    ck_assert_str_eq(T.res.reason, "not allowed here");
    ck_assert(T.error_null);
    ck_assert(run_until(cond_fake_done, GUARD_MS));
    fake_join();
    char host[64];
    snprintf(host, sizeof(host), "\r\nHost: 127.0.0.1:%d\r\n", F.port);
    const char *want[] = {"\r\nAuthorization: Bearer " KEY "\r\n",
                          "\r\nUpgrade: ptth-tunnel/1\r\n",
                          "\r\nConnection: Upgrade\r\n",
                          "\r\nContent-Length: 0\r\n",
                          "\r\nUser-Agent: ptth-test/1\r\n",
                          "\r\nPTTH-Name: foo\r\n",
                          "\r\nX-Extra: 1 2\r\n\r\n",
                          host};
    ck_assert_msg(strncmp(F.req, "POST /ptth/v1/connect/foo/ssh HTTP/1.1\r\n", 40) == 0, "%s", F.req);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        ck_assert_msg(strstr(F.req, want[i]) != NULL, "no '%s' in:\n%s", want[i], F.req);
    teardown_all();
}
END_TEST

START_TEST(bad_request_arguments)
{
    client_new("http", 9, "/p");
    const char *crlf[] = {"X-A: 1\r\nX-B: 2", NULL};
    ck_assert_int_eq(ptth_leg_open(C, &T.leg, "/v1/x", crlf, 0, &ops, NULL), -EINVAL);
    ck_assert_int_eq(ptth_leg_open(C, &T.leg, "/v1/a b", NULL, 0, &ops, NULL), -EINVAL);
    const char *many[] = {"A: 1", "B: 1", "C: 1", "D: 1", "E: 1", "F: 1", "G: 1", "H: 1", "I: 1", NULL};
    ck_assert_int_eq(ptth_leg_open(C, &T.leg, "/v1/x", many, 0, &ops, NULL), -E2BIG);
    static char longp[3000];
    memset(longp, 'a', sizeof(longp) - 1);
    longp[0] = '/';
    ck_assert_int_eq(ptth_leg_open(C, &T.leg, longp, NULL, 0, &ops, NULL), -E2BIG);
    ck_assert_ptr_null(T.leg.impl);
    teardown_all();
}
END_TEST

/* ---- tests: 2xx bodies ---- */

START_TEST(ok_chunked_body_split_awkwardly)
{
    answer("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nPTTH-Conn: abc\r\n\r\n5\r\nhel");
    answer("lo\r\n");
    answer("6\r");
    answer("\n world\r\n0\r\n");
    answer("\r\n");
    F.piece_delay_ms = 30;
    F.after = AFTER_HOLD;
    start_and_answer("", 0);
    ck_assert_int_eq(T.res.status, 200);
    ck_assert(!T.res.upgraded);
    ck_assert_str_eq(T.res.conn, "abc");
    ck_assert(run_until(cond_eof, GUARD_MS));
    ck_assert_int_eq(T.read_err, 0);
    ck_assert_int_eq(T.in_len, 11);
    ck_assert(memcmp(T.in, "hello world", 11) == 0);
    char b[4];
    ck_assert_int_eq(ptth_leg_write(&T.leg, b, sizeof(b)), -EPIPE);
    teardown_all();
}
END_TEST

START_TEST(ok_content_length_body)
{
    answer("HTTP/1.1 200 OK\r\nContent-Length: 11\r\nPTTH-Max-Chunk: 65536\r\n\r\nhello");
    answer(" world and more");
    F.piece_delay_ms = 30;
    F.after = AFTER_HOLD;
    start_and_answer("", 0);
    ck_assert_int_eq(T.res.status, 200);
    ck_assert_int_eq(T.res.max_chunk, 65536);
    ck_assert(run_until(cond_eof, GUARD_MS));
    ck_assert_int_eq(T.in_len, 11);
    ck_assert(memcmp(T.in, "hello world", 11) == 0);
    teardown_all();
}
END_TEST

START_TEST(ok_body_until_close)
{
    answer("HTTP/1.1 200 OK\r\n\r\nhello");
    answer(" world");
    F.piece_delay_ms = 30;
    F.after = AFTER_CLOSE;
    start_and_answer("", 0);
    ck_assert_int_eq(T.res.status, 200);
    ck_assert(run_until(cond_eof, GUARD_MS));
    ck_assert_int_eq(T.read_err, 0);
    ck_assert_int_eq(T.in_len, 11);
    ck_assert(memcmp(T.in, "hello world", 11) == 0);
    teardown_all();
}
END_TEST

START_TEST(ok_chunked_body_cut_short_is_an_error)
{
    answer("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel");
    F.after = AFTER_CLOSE;
    start_and_answer("", 0);
    ck_assert(run_until(cond_eof, GUARD_MS));
    ck_assert_int_eq(T.read_err, -EPROTO);
    ck_assert_int_eq(T.in_len, 3);
    teardown_all();
}
END_TEST

/* ---- tests: other statuses ---- */

START_TEST(forbidden_with_reason_header)
{
    answer("HTTP/1.1 403 Forbidden\r\nPTTH-Reason: client alice may not reach foo/ssh\r\nContent-Length: 9\r\n\r\nforbidden");
    F.after = AFTER_HOLD;
    start_and_answer("", 0);
    ck_assert_int_eq(T.res.status, 403);
    ck_assert(!T.res.upgraded);
    ck_assert(T.error_null);
    ck_assert_str_eq(T.res.reason, "client alice may not reach foo/ssh");
    teardown_all();
}
END_TEST

START_TEST(unavailable_with_retry_after_and_body)
{
    answer("HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\nPTTH-Upgrade: off\r\nContent-Length: 24\r\n\r\n");
    answer("  relay busy:\r\n");
    answer("\tretry\r\n\r\n");
    F.piece_delay_ms = 20;
    F.after = AFTER_HOLD;
    long long t0 = now_ms();
    start_and_answer("", 0);
    ck_assert_msg(now_ms() - t0 < 1500, "waited for more than the body");
    ck_assert_int_eq(T.res.status, 503);
    ck_assert_int_eq(T.res.retry_after, 7);
    ck_assert_str_eq(T.res.upgrade_note, "off");
    ck_assert_str_eq(T.res.reason, "relay busy: retry");
    teardown_all();
}
END_TEST

START_TEST(error_body_wait_is_bounded)
{
    answer("HTTP/1.1 500 Internal Server Error\r\n\r\noops");
    F.after = AFTER_HOLD;
    long long t0 = now_ms();
    start_and_answer("", 0);
    long long took = now_ms() - t0;
    ck_assert_msg(took >= 1900 && took < 4000, "took %lld ms", took);
    ck_assert_int_eq(T.res.status, 500);
    ck_assert_str_eq(T.res.reason, "oops");
    teardown_all();
}
END_TEST

/* ---- tests: no answer ---- */

START_TEST(closed_before_any_response)
{
    F.after = AFTER_CLOSE;
    start_and_answer("", 0);
    assert_failed_with("closed the connection before a complete response head");
    teardown_all();
}
END_TEST

START_TEST(closed_before_reading_the_request)
{
    F.close_at_once = true;
    start_and_answer("", 0);
    ck_assert_int_eq(T.res.status, 0);
    ck_assert(!T.error_null);
    teardown_all();
}
END_TEST

START_TEST(garbage_response)
{
    answer("SSH-2.0-OpenSSH_9.2\r\n\r\n");
    F.after = AFTER_HOLD;
    start_and_answer("", 0);
    assert_failed_with("not an HTTP/1.x response head");
    ck_assert_msg(strstr(T.error, "SSH-2.0") != NULL, "%s", T.error);
    teardown_all();
}
END_TEST

START_TEST(head_above_the_limit)
{
    static char big[PTTH_LEG_HEAD_MAX + 4096];
    int n = snprintf(big, sizeof(big), "HTTP/1.1 101 Switching Protocols\r\nX-Pad: ");
    memset(big + n, 'a', sizeof(big) - (size_t)n - 1);
    F.piece[0] = big;
    F.piece_len[0] = sizeof(big) - 1;
    F.npieces = 1;
    F.after = AFTER_HOLD;
    start_and_answer("", 0);
    assert_failed_with("larger than 16384 bytes");
    teardown_all();
}
END_TEST

START_TEST(response_timeout)
{
    F.after = AFTER_HOLD;
    long long t0 = now_ms();
    start_and_answer("", 300);
    ck_assert(now_ms() - t0 < 2000);
    assert_failed_with("within 300 ms");
    teardown_all();
}
END_TEST

START_TEST(connection_refused)
{
    int port;
    int fd = listen_loopback(&port);
    close(fd);
    client_new("http", port, "");
    open_leg("/v1/accept/foo", NULL, 0);
    ck_assert(run_until(cond_response, GUARD_MS));
    assert_failed_with("connecting to the relay");
    teardown_all();
}
END_TEST

START_TEST(interim_answer_is_skipped)
{
    answer("HTTP/1.1 100 Continue\r\n\r\n" HEAD_101 "\r\n");
    F.after = AFTER_HOLD;
    start_and_answer("", 0);
    ck_assert(T.res.upgraded);
    teardown_all();
}
END_TEST

/* ---- tests: closing ---- */

START_TEST(abort_resets_the_connection)
{
    answer(HEAD_101 "\r\n");
    F.after = AFTER_HOLD;
    T.close_on_response = T.abort_on_response = true; /* closed inside its callback */
    start_and_answer("", 0);
    ck_assert_ptr_null(T.leg.impl);
    ck_assert(run_until(cond_fake_done, GUARD_MS));
    fake_join();
    ck_assert_int_eq(F.end_errno, ECONNRESET);
    teardown_all();
}
END_TEST

START_TEST(close_inside_on_readable)
{
    answer(HEAD_101 "\r\nabc");
    F.after = AFTER_HOLD;
    T.close_when_read_all = true;
    T.want_in = 3;
    start_and_answer("", 0);
    ck_assert(run_until(cond_fake_done, GUARD_MS));
    ck_assert_ptr_null(T.leg.impl);
    ck_assert_int_eq(T.in_len, 3);
    fake_join();
    ck_assert_int_eq(F.end_errno, 0);
    teardown_all();
}
END_TEST

/* ---- tests: TLS ---- */

static char *
pattern(size_t n)
{
    char *p = malloc(n);
    for (size_t i = 0; i < n; i++)
        p[i] = (char)((i * 2654435761u) >> 13);
    return p;
}

START_TEST(tls_upgrade_echo_megabytes)
{
    F.tls = true;
    answer(HEAD_101 "\r\n");
    F.after = AFTER_ECHO;
    F.echo_delay_ms = 300; /* the client's writes fill the socket first */
    char *data = pattern(BIG);
    T.out = data;
    T.out_len = BIG;
    T.want_in = BIG;
    start_and_answer("/pfx", 0);
    ck_assert(T.res.upgraded);
    ck_assert(ptth_leg_is_tls(&T.leg));
    ck_assert_int_eq(F.alpn_len, 9);
    ck_assert(memcmp(F.alpn, "\x08http/1.1", 9) == 0);
    ck_assert(run_until(cond_echo_done, 20000));
    ck_assert_int_eq(T.read_err, 0);
    ck_assert_uint_eq(T.in_len, BIG);
    ck_assert(memcmp(T.in, data, BIG) == 0);
    ck_assert_int_gt(T.write_again, 0);
    ck_assert_msg(strncmp(F.req, "POST /pfx/v1/connect/foo/ssh HTTP/1.1\r\n", 38) == 0, "%s", F.req);
    ptth_leg_close(&T.leg, false);
    ck_assert(run_until(cond_fake_done, GUARD_MS));
    fake_join();
    ck_assert_int_eq(F.end_errno, 0);
    free(data);
    teardown_all();
}
END_TEST

START_TEST(tls_abort_resets_without_close_notify)
{
    F.tls = true;
    answer(HEAD_101 "\r\n");
    F.after = AFTER_HOLD;
    T.close_on_response = T.abort_on_response = true;
    start_and_answer("", 0);
    ck_assert(run_until(cond_fake_done, GUARD_MS));
    fake_join();
    ck_assert_int_eq(F.end_errno, ECONNRESET);
    teardown_all();
}
END_TEST

/* ---- tests: libcurl's connect-only facts the leg relies on (7.88) ---- */

static struct {
    ptth_conn_job job;
    int done;
    bool error_null;
} J;

static void
on_job_done(ptth_conn_job *job, const char *error)
{
    (void)job;
    J.done++;
    J.error_null = error == NULL;
}

static bool
cond_job_done(void)
{
    return J.done > 0;
}

/* After CURLMSG_DONE the connection stays open while the handle is in the
 * multi (here 200 ms), CURLINFO_ACTIVESOCKET names it, curl_easy_recv says
 * CURLE_AGAIN when nothing came and moves bytes both ways; removing the
 * handle (ptth_conn_job_end) closes it. */
START_TEST(conn_job_keeps_the_connection_until_ended)
{
    answer("pong");
    F.after = AFTER_HOLD;
    fake_start();
    client_new("http", F.port, "");
    J.job.on_done = on_job_done;
    ck_assert_int_eq(ptth_conn_job_start(C, &J.job), 0);
    ck_assert(run_until(cond_job_done, GUARD_MS));
    ck_assert(J.error_null);
    curl_socket_t fd = CURL_SOCKET_BAD;
    ck_assert(curl_easy_getinfo(J.job.curl, CURLINFO_ACTIVESOCKET, &fd) == CURLE_OK);
    ck_assert_int_ne(fd, CURL_SOCKET_BAD);
    char b[16];
    size_t n = 0;
    ck_assert(curl_easy_recv(J.job.curl, b, sizeof(b), &n) == CURLE_AGAIN);
    ck_assert(curl_easy_send(J.job.curl, "ping\r\n\r\n", 8, &n) == CURLE_OK);
    ck_assert_uint_eq(n, 8);
    ck_assert(!run_until(cond_fake_done, 200));
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    ck_assert_int_eq(poll(&pfd, 1, 2000), 1);
    ck_assert(curl_easy_recv(J.job.curl, b, sizeof(b), &n) == CURLE_OK);
    ck_assert_uint_eq(n, 4);
    ck_assert(memcmp(b, "pong", 4) == 0);
    ck_assert_int_eq(J.done, 1);
    ptth_conn_job_end(&J.job);
    ck_assert(run_until(cond_fake_done, GUARD_MS));
    fake_join();
    ck_assert_int_eq(F.end_errno, 0);
    ck_assert_str_eq(F.req, "ping\r\n\r\n");
    teardown_all();
}
END_TEST

Suite *
ptth_test_suite(void)
{
    Suite *s = suite_create("leg");
    TCase *tc = tcase_create("leg");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, upgrade_then_echo);
    tcase_add_test(tc, upgrade_with_bytes_in_the_head_packet);
    tcase_add_test(tc, upgrade_with_a_wrong_token_fails);
    tcase_add_test(tc, upgrade_token_case_insensitive);
    tcase_add_test(tc, request_bytes);
    tcase_add_test(tc, bad_request_arguments);
    tcase_add_test(tc, ok_chunked_body_split_awkwardly);
    tcase_add_test(tc, ok_content_length_body);
    tcase_add_test(tc, ok_body_until_close);
    tcase_add_test(tc, ok_chunked_body_cut_short_is_an_error);
    tcase_add_test(tc, forbidden_with_reason_header);
    tcase_add_test(tc, unavailable_with_retry_after_and_body);
    tcase_add_test(tc, error_body_wait_is_bounded);
    tcase_add_test(tc, closed_before_any_response);
    tcase_add_test(tc, closed_before_reading_the_request);
    tcase_add_test(tc, garbage_response);
    tcase_add_test(tc, head_above_the_limit);
    tcase_add_test(tc, response_timeout);
    tcase_add_test(tc, connection_refused);
    tcase_add_test(tc, interim_answer_is_skipped);
    tcase_add_test(tc, abort_resets_the_connection);
    tcase_add_test(tc, close_inside_on_readable);
    tcase_add_test(tc, tls_upgrade_echo_megabytes);
    tcase_add_test(tc, tls_abort_resets_without_close_notify);
    tcase_add_test(tc, conn_job_keeps_the_connection_until_ended);
    suite_add_tcase(s, tc);
    return s;
}
