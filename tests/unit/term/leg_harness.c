/* leg_harness.c: the fake relay and the client side of the leg suites; see leg_harness.h. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "check_main.h"
#include "leg_harness.h"
#include "leg.h"
#include "loop.h"
#include "loop_wait.h"
#include "relay_client.h"

/* ---- the fake relay (a thread) ---- */

struct leg_fake F;

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
    snprintf(F.ca_path, sizeof(F.ca_path), "/tmp/ptth-test-leg-ca-XXXXXX");
    int fd = mkstemp(F.ca_path);
    ck_assert_int_ge(fd, 0);
    FILE *f = fdopen(fd, "w");
    ck_assert(f != NULL && PEM_write_X509(f, x) == 1);
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(pkey);
    return ctx;
}

int
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

void
fake_start(void)
{
    signal(SIGPIPE, SIG_IGN); /* the fake writes to clients that gave up (a failed certificate check) */
    F.lfd = listen_loopback(&F.port);
    if (F.tls)
        F.ctx = make_tls_ctx();
    ck_assert_int_eq(pthread_create(&F.thread, NULL, fake_main, NULL), 0);
    F.started = true;
}

void
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
    if (F.ca_path[0] != '\0')
        unlink(F.ca_path);
    F.ca_path[0] = '\0';
}

/* ---- the client side ---- */

ptth_loop *loop;
ptth_relay_client *C;
char url[160];

struct leg_client T;

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

const ptth_leg_ops ops = {on_response, on_readable, on_writable};

/* ---- running the loop, bounded (loop_wait.c) ---- */

bool
run_until(bool (*cond)(void), long ms)
{
    return loop_wait(loop, cond, ms);
}

bool
cond_response(void)
{
    return T.responses > 0;
}

bool
cond_eof(void)
{
    return T.eof || T.read_err != 0;
}

bool
cond_fake_done(void)
{
    return atomic_load(&F.done);
}

bool
cond_echo_done(void)
{
    return T.in_len >= T.want_in || T.read_err != 0 || T.eof;
}

long long
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

void
client_new(const char *scheme, int port, const char *prefix)
{
    loop = ptth_loop_new();
    ck_assert_ptr_nonnull(loop);
    snprintf(url, sizeof(url), "%s://127.0.0.1:%d%s", scheme, port, prefix);
    ptth_relay_client_config cfg = {.url = url, .key = KEY, .insecure = true, .user_agent = "ptth-test/1"};
    char err[256];
    ck_assert_msg(ptth_relay_client_new(loop, &cfg, &C, err, sizeof(err)) == 0, "%s", err);
}

void
client_new_verified(const char *scheme, const char *host, int port, const char *ca_file)
{
    loop = ptth_loop_new();
    ck_assert_ptr_nonnull(loop);
    snprintf(url, sizeof(url), "%s://%s:%d", scheme, host, port);
    ptth_relay_client_config cfg = {.url = url, .key = KEY, .ca_file = ca_file, .user_agent = "ptth-test/1"};
    char err[256];
    ck_assert_msg(ptth_relay_client_new(loop, &cfg, &C, err, sizeof(err)) == 0, "%s", err);
}

void
open_leg(const char *path, const char *const *headers, long timeout_ms)
{
    ck_assert_int_eq(ptth_leg_open(C, &T.leg, path, headers, timeout_ms, &ops, NULL), 0);
}

void
teardown_all(void)
{
    ptth_leg_close(&T.leg, false);
    ptth_relay_client_free(C);
    C = NULL;
    fake_join();
    ptth_loop_free(loop);
    free(T.in);
}

void
start_and_answer(const char *prefix, long timeout_ms)
{
    fake_start();
    client_new(F.tls ? "https" : "http", F.port, prefix);
    open_leg("/v1/connect/foo/ssh", NULL, timeout_ms);
    ck_assert_msg(run_until(cond_response, GUARD_MS), "no on_response");
    ck_assert_int_eq(T.responses, 1);
}

void
answer(const char *a)
{
    F.piece[F.npieces++] = a;
}

void
assert_failed_with(const char *what)
{
    ck_assert_int_eq(T.res.status, 0);
    ck_assert(!T.res.upgraded);
    ck_assert(!T.error_null);
    ck_assert_msg(strstr(T.error, what) != NULL, "error '%s' does not contain '%s'", T.error, what);
    ck_assert_msg(strstr(T.error, KEY) == NULL, "the key is in the error text");
}


char *
pattern(size_t n)
{
    char *p = malloc(n);
    for (size_t i = 0; i < n; i++)
        p[i] = (char)((i * 2654435761u) >> 13);
    return p;
}

