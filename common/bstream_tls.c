/* bstream_tls.c: the TLS layer of a byte stream; see bstream_tls.h. */
#include "bstream_tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#define HOST_MAX 256

enum tls_state {
    TLS_LOWER,     /* waiting for the layer below to connect */
    TLS_HANDSHAKE, /* SSL_do_handshake under way */
    TLS_OPEN,
    TLS_CLOSING, /* our close_notify sent (shutdown); reading goes on */
    TLS_FAILED,  /* set-up or handshake failed */
};

typedef struct tls {
    ptth_bstream bs;
    enum tls_state state;
    SSL_CTX *ctx; /* a reference of ours */
    SSL *ssl;     /* from TLS_HANDSHAKE on */
    bool verify;
    const char *peer;
    char host[HOST_MAX];
    char alpn[32]; /* chosen by the server, "" none */
} tls;

static void
set_state(tls *t, enum tls_state to)
{
    t->state = to;
}

/* The SSL object on the descriptor below: SNI, host check, client mode. */
static int
tls_setup(tls *t)
{
    int fd = -1;
    if (ptth_bstream_query(t->bs.lower, PTTH_BSTREAM_Q_FD, &fd) != 0 || fd < 0)
        return -EBADF;
    t->ssl = SSL_new(t->ctx);
    if (t->ssl == NULL || SSL_set_fd(t->ssl, fd) != 1)
        return -ENOMEM;
    SSL_set_mode(t->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    unsigned char v6[16];
    bool ip_literal = inet_pton(AF_INET, t->host, v6) == 1 || inet_pton(AF_INET6, t->host, v6) == 1;
    if (!ip_literal)
        SSL_set_tlsext_host_name(t->ssl, t->host);
    if (t->verify) {
        X509_VERIFY_PARAM *param = SSL_get0_param(t->ssl);
        int ok = ip_literal ? X509_VERIFY_PARAM_set1_ip_asc(param, t->host) : X509_VERIFY_PARAM_set1_host(param, t->host, 0);
        if (ok != 1)
            return -EINVAL;
    }
    SSL_set_connect_state(t->ssl);
    return 0;
}

static int
handshake(tls *t, char *why, size_t whylen)
{
    ERR_clear_error();
    int rc = SSL_do_handshake(t->ssl);
    if (rc != 1) {
        int e = SSL_get_error(t->ssl, rc);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            ptth_bstream_want(t->bs.lower, true, e == SSL_ERROR_WANT_WRITE);
            return -EAGAIN;
        }
        long vr = SSL_get_verify_result(t->ssl);
        unsigned long oe = ERR_get_error();
        if (vr != X509_V_OK)
            snprintf(why, whylen, "TLS handshake failed: certificate verify failed (%s)", X509_verify_cert_error_string(vr));
        else
            snprintf(why, whylen, "TLS handshake failed: %s", oe != 0 ? ERR_reason_error_string(oe) : "connection closed");
        set_state(t, TLS_FAILED);
        return -EPROTO;
    }
    const unsigned char *alpn = NULL;
    unsigned int alpn_len = 0;
    SSL_get0_alpn_selected(t->ssl, &alpn, &alpn_len);
    if (alpn_len >= sizeof(t->alpn))
        alpn_len = 0; /* not one we offered */
    memcpy(t->alpn, alpn, alpn_len);
    t->alpn[alpn_len] = '\0';
    set_state(t, TLS_OPEN);
    return 0;
}

static int
tls_connect(ptth_bstream *bs, char *why, size_t whylen)
{
    tls *t = (tls *)bs;
    switch (t->state) {
    case TLS_LOWER: {
        int rc = ptth_bstream_connect(t->bs.lower, why, whylen);
        if (rc != 0)
            return rc;
        if (tls_setup(t) != 0) {
            snprintf(why, whylen, "TLS set-up failed");
            set_state(t, TLS_FAILED);
            return -EPROTO;
        }
        set_state(t, TLS_HANDSHAKE);
        return handshake(t, why, whylen);
    }
    case TLS_HANDSHAKE:
        return handshake(t, why, whylen);
    case TLS_OPEN:
    case TLS_CLOSING:
        return 0;
    default:
        snprintf(why, whylen, "TLS failed");
        return -EPROTO;
    }
}

/* A failed SSL_read/SSL_write: the socket's errno when the socket failed
 * (-ECONNRESET, -EPIPE: callers tell a reset from other failures), else
 * -EIO. */
static ssize_t
sys_error(int ssl_error, unsigned long openssl_error, int saved_errno)
{
    if (ssl_error == SSL_ERROR_SYSCALL && openssl_error == 0 && saved_errno != 0)
        return -saved_errno;
    return -EIO;
}

static ssize_t
tls_send(ptth_bstream *bs, const struct iovec *iov, int iovcnt, char *why, size_t whylen)
{
    tls *t = (tls *)bs;
    if (iovcnt < 1)
        return 0;
    size_t len = iov[0].iov_len;
    ERR_clear_error();
    int n = SSL_write(t->ssl, iov[0].iov_base, len > INT32_MAX ? INT32_MAX : (int)len);
    if (n > 0)
        return n;
    int e = SSL_get_error(t->ssl, n);
    if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ)
        return -EAGAIN;
    int saved = errno;
    unsigned long oe = ERR_get_error();
    snprintf(why, whylen, "TLS write to %s: %s", t->peer, oe != 0 ? ERR_reason_error_string(oe) : strerror(saved));
    return sys_error(e, oe, saved);
}

static ssize_t
tls_recv(ptth_bstream *bs, void *buf, size_t len, char *why, size_t whylen)
{
    tls *t = (tls *)bs;
    ERR_clear_error();
    int n = SSL_read(t->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
    if (n > 0)
        return n;
    int e = SSL_get_error(t->ssl, n);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return -EAGAIN;
    if (e == SSL_ERROR_ZERO_RETURN)
        return 0;
    int saved = errno;
    unsigned long oe = ERR_get_error();
    if (oe == 0 && e == SSL_ERROR_SYSCALL && saved == 0)
        return 0; /* EOF without close_notify */
    snprintf(why, whylen, "TLS read from %s: %s", t->peer, oe != 0 ? ERR_reason_error_string(oe) : strerror(saved));
    return sys_error(e, oe, saved);
}

static void
tls_want(ptth_bstream *bs, bool read, bool write)
{
    ptth_bstream_want(bs->lower, read, write);
}

/* Sends our close_notify once, then shuts the layer below. */
static int
tls_shutdown(ptth_bstream *bs, char *why, size_t whylen)
{
    tls *t = (tls *)bs;
    if (t->state == TLS_OPEN) {
        ERR_clear_error();
        int rc = SSL_shutdown(t->ssl);
        if (rc < 0) {
            int e = SSL_get_error(t->ssl, rc);
            if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ)
                return -EAGAIN;
            snprintf(why, whylen, "TLS shutdown to %s failed", t->peer);
            return -EIO;
        }
        set_state(t, TLS_CLOSING);
    }
    return ptth_bstream_shutdown(bs->lower, why, whylen);
}

static void
tls_abort(ptth_bstream *bs)
{
    ptth_bstream_abort(bs->lower); /* and no close_notify: close never sends one */
}

static void
tls_close(ptth_bstream *bs)
{
    tls *t = (tls *)bs;
    if (t->ssl != NULL)
        SSL_free(t->ssl);
    SSL_CTX_free(t->ctx);
    ptth_bstream_close(bs->lower);
    free(t);
}

static int
tls_query(ptth_bstream *bs, ptth_bstream_q q, void *out)
{
    tls *t = (tls *)bs;
    switch (q) {
    case PTTH_BSTREAM_Q_TLS:
        *(bool *)out = true;
        return 0;
    case PTTH_BSTREAM_Q_ALPN:
        *(const char **)out = t->alpn;
        return 0;
    case PTTH_BSTREAM_Q_GATHER:
    case PTTH_BSTREAM_Q_SHORT_READ_DRAINS:
        *(bool *)out = false;
        return 0;
    default:
        return ptth_bstream_query(bs->lower, q, out);
    }
}

static const ptth_bstream_type tls_type = {
    .name = "tls",
    .connect = tls_connect,
    .send = tls_send,
    .recv = tls_recv,
    .want = tls_want,
    .shutdown = tls_shutdown,
    .abort = tls_abort,
    .close = tls_close,
    .query = tls_query,
};

int
ptth_bstream_tls_open(ptth_bstream *lower, SSL_CTX *ctx, const char *host, bool verify, const char *peer, ptth_bstream **out)
{
    *out = NULL;
    tls *t = calloc(1, sizeof(*t));
    if (t == NULL || strlen(host) >= sizeof(t->host) || SSL_CTX_up_ref(ctx) != 1) {
        free(t);
        ptth_bstream_close(lower);
        return t == NULL ? -ENOMEM : -EINVAL;
    }
    t->bs.type = &tls_type;
    t->bs.lower = lower;
    t->state = TLS_LOWER;
    t->ctx = ctx;
    t->verify = verify;
    t->peer = peer;
    memcpy(t->host, host, strlen(host) + 1);
    *out = &t->bs;
    return 0;
}

int
ptth_bstream_tls_ctx_new(const unsigned char *alpn, size_t alpn_len, const char *ca_file, bool insecure, SSL_CTX **out, char *err,
                         size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    *out = ctx;
    if (ctx == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_alpn_protos(ctx, alpn, (unsigned int)alpn_len);
    if (insecure) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        return 0;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    int ok = ca_file != NULL ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL) : SSL_CTX_set_default_verify_paths(ctx);
    if (ok != 1) {
        unsigned long oe = ERR_get_error();
        snprintf(err, errlen, "cannot load CA certificates from '%s': %s", ca_file != NULL ? ca_file : "the system store",
                 oe != 0 ? ERR_reason_error_string(oe) : "unknown error");
        SSL_CTX_free(ctx);
        *out = NULL;
        return -EINVAL;
    }
    return 0;
}
