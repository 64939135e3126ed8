/* leg_dial.c: how the legs of one relay client reach the relay; see leg_dial.h. */
#include "leg_dial.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <openssl/ssl.h>

#include "bstream_sock.h"
#include "bstream_tls.h"

#define HOST_MAX 256
#define PREFIX_MAX 1024

struct ptth_leg_dial {
    ptth_loop *loop;
    bool tls, direct, insecure;
    char *ca_file;
    char host[HOST_MAX]; /* for the resolver, SNI and the certificate: an IPv6 literal without brackets */
    char port[8];
    char host_header[HOST_MAX + 8];
    char prefix[PREFIX_MAX];
    /* direct only */
    ptth_bstream_sock_addrs addrs; /* valid while addrs.n > 0 */
    bool addrs_literal;            /* host is an IP literal: kept for good */
    long long resolved_ms;
    SSL_CTX *ssl_ctx; /* made by the first TLS leg */
};

/* Scheme, host, port, Host header value and path prefix of the base URL,
 * with libcurl's URL parser (the one that connects the proxied legs), so
 * both agree on host and port. */
static int
split_url(ptth_leg_dial *d, const char *base, char *err, size_t errlen)
{
    CURLU *u = curl_url();
    if (u == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    char *scheme = NULL, *h = NULL, *port = NULL, *dport = NULL, *path = NULL;
    int rc = -EINVAL;
    if (curl_url_set(u, CURLUPART_URL, base, 0) != CURLUE_OK || curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &h, 0) != CURLUE_OK || curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, &dport, CURLU_DEFAULT_PORT) != CURLUE_OK) {
        snprintf(err, errlen, "relay URL '%s' cannot be split into host, port and path", base);
        goto out;
    }
    if (curl_url_get(u, CURLUPART_PORT, &port, CURLU_NO_DEFAULT_PORT) != CURLUE_OK)
        port = NULL;
    d->tls = strcasecmp(scheme, "https") == 0;
    size_t plen = strlen(path);
    while (plen > 0 && path[plen - 1] == '/')
        plen--;
    size_t hlen = strlen(h);
    const char *hp = h;
    if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') { /* an IPv6 literal */
        hp++;
        hlen -= 2;
    }
    int n1 = snprintf(d->host_header, sizeof(d->host_header), "%s%s%s", h, port != NULL ? ":" : "", port != NULL ? port : "");
    int n2 = snprintf(d->prefix, sizeof(d->prefix), "%.*s", (int)plen, path);
    int n3 = snprintf(d->port, sizeof(d->port), "%s", dport);
    if (n1 < 0 || (size_t)n1 >= sizeof(d->host_header) || n2 < 0 || (size_t)n2 >= sizeof(d->prefix) || n3 < 0 ||
        (size_t)n3 >= sizeof(d->port) || hlen >= sizeof(d->host)) {
        snprintf(err, errlen, "relay URL '%s' has a host or path that is too long", base);
        rc = -E2BIG;
        goto out;
    }
    memcpy(d->host, hp, hlen);
    d->host[hlen] = '\0';
    rc = 0;
out:
    curl_free(scheme);
    curl_free(h);
    curl_free(port);
    curl_free(dport);
    curl_free(path);
    curl_url_cleanup(u);
    return rc;
}

int
ptth_leg_dial_new(ptth_loop *loop, const ptth_leg_dial_config *cfg, ptth_leg_dial **out, char *err, size_t errlen)
{
    *out = NULL;
    ptth_leg_dial *d = calloc(1, sizeof(*d));
    if (d == NULL || (cfg->ca_file != NULL && (d->ca_file = strdup(cfg->ca_file)) == NULL)) {
        free(d);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    d->loop = loop;
    d->direct = cfg->direct;
    d->insecure = cfg->insecure;
    int rc = split_url(d, cfg->url, err, errlen);
    if (rc != 0) {
        ptth_leg_dial_free(d);
        return rc;
    }
    *out = d;
    return 0;
}

void
ptth_leg_dial_free(ptth_leg_dial *d)
{
    if (d == NULL)
        return;
    if (d->ssl_ctx != NULL)
        SSL_CTX_free(d->ssl_ctx);
    free(d->ca_file);
    free(d);
}

bool
ptth_leg_dial_is_tls(const ptth_leg_dial *d)
{
    return d->tls;
}

bool
ptth_leg_dial_direct(const ptth_leg_dial *d)
{
    return d->direct;
}

const char *
ptth_leg_dial_host_header(const ptth_leg_dial *d)
{
    return d->host_header;
}

const char *
ptth_leg_dial_prefix(const ptth_leg_dial *d)
{
    return d->prefix;
}

/* The relay's addresses, resolved again once they are older than the TTL
 * (see the header for why the loop may block here). */
static int
addresses(ptth_leg_dial *d, char *why, size_t whylen)
{
    long long now = ptth_loop_now(d->loop);
    if (d->addrs.n > 0 && (d->addrs_literal || now - d->resolved_ms < PTTH_LEG_DIAL_DNS_TTL_MS))
        return 0;
    int rc = ptth_bstream_sock_resolve(d->host, d->port, &d->addrs, why, whylen);
    if (rc != 0)
        return rc; /* addrs.n is 0: the next leg asks again */
    unsigned char buf[16];
    d->addrs_literal = inet_pton(AF_INET, d->host, buf) == 1 || inet_pton(AF_INET6, d->host, buf) == 1;
    d->resolved_ms = now;
    return 0;
}

/* The legs' TLS context (see the header): made once, kept. */
static int
leg_ssl_ctx(ptth_leg_dial *d, char *why, size_t whylen)
{
    if (d->ssl_ctx != NULL)
        return 0;
    static const unsigned char alpn[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    int rc = ptth_bstream_tls_ctx_new(alpn, sizeof(alpn), d->ca_file, d->insecure, &d->ssl_ctx, why, whylen);
    if (rc != 0)
        return rc;
    /* an end without close_notify is an end (OpenSSL 3 would make it an
     * error): the tunnel's own FIN frames say whether the stream ended
     * properly, and the relay may close a finished leg without one */
    SSL_CTX_set_options(d->ssl_ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_read_ahead(d->ssl_ctx, 1);
    SSL_CTX_set_default_read_buffer_len(d->ssl_ctx, PTTH_LEG_DIAL_TLS_READ_BUFFER);
    return 0;
}

int
ptth_leg_dial_open(ptth_leg_dial *d, ptth_bstream_event_cb on_event, void *data, ptth_bstream **out, char *why, size_t whylen)
{
    *out = NULL;
    if (!d->direct) {
        snprintf(why, whylen, "not a direct connection");
        return -EINVAL;
    }
    int rc;
    if ((rc = addresses(d, why, whylen)) != 0 || (d->tls && (rc = leg_ssl_ctx(d, why, whylen)) != 0))
        return rc;
    ptth_bstream *sock;
    if ((rc = ptth_bstream_sock_open_addrs(d->loop, &d->addrs, "relay", on_event, data, &sock, why, whylen)) != 0)
        return rc;
    if (!d->tls) {
        *out = sock;
        return 0;
    }
    rc = ptth_bstream_tls_open(sock, d->ssl_ctx, d->host, !d->insecure, "relay", out);
    if (rc != 0)
        snprintf(why, whylen, "TLS set-up failed");
    return rc;
}
