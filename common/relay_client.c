/* relay_client.c: the terminators' HTTP client (HTTP/2 of ours, libcurl
 * multi handles beside it); see relay_client.h. */
#include "relay_client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/ssl.h>

#include "curl_loop.h"
#include "h2_client.h"
#include "instance.h"
#include "keys.h"
#include "leg_dial.h"
#include "log.h"
#include "req_response.h"

#define POOL_MAX 64
#define URL_MAX 2048
#define STREAM_BUFFER_SIZE (512 * 1024)
#define CONNECT_TIMEOUT_MS 10000L

/* A pooled easy handle with its error buffer. */
struct ptth_easy {
    CURL *curl;
    char errbuf[CURL_ERROR_SIZE];
};

/* The client's multi handles: one per request kind, and one for the
 * connect-only connections of common/leg.c (ptth_conn_job). */
#define MULTI_LEGS 2
#define MULTI_COUNT 3

struct multi_ctx {
    ptth_relay_client *client;
    int kind; /* a ptth_req_kind, or MULTI_LEGS */
    ptth_curl_loop cl; /* the multi handle (cl.multi) on the loop */
    struct ptth_easy *pool[POOL_MAX];
    size_t pool_len;
    long http_version;      /* CURLOPT_HTTP_VERSION, see choose_http_versions() */
    bool fresh_connections; /* a new connection per request, closed after it */
    bool pipewait;          /* CURLOPT_PIPEWAIT on short requests */
};

struct ptth_relay_client {
    ptth_loop *loop;
    char *base;
    char *ca_file;
    char *user_agent;
    bool insecure;
    bool https;
    bool verbose; /* PTTH_CURL_VERBOSE set: libcurl traces on stderr */
    const ptth_http_proxy *proxy; /* the caller's; NULL: the environment */
    bool proxied;                 /* a proxy may be in the way (ptth_http_proxy_may_apply) */
    char auth[128];
    char instance[sizeof("PTTH-Instance: ") + PTTH_INSTANCE_TEXT_MAX]; /* "" : none */
    struct multi_ctx m[MULTI_COUNT];
    ptth_h2_client *h2;  /* NULL: libcurl only (PTTH_HTTP_CLIENT=curl) */
    ptth_leg_dial *legs; /* how the upgraded legs connect (leg_dial.h) */
    bool curl_fallback;  /* the relay showed it does not speak HTTP/2 */
    ptth_req *active;    /* every active request, for ptth_relay_client_free */
    ptth_conn_job *jobs; /* every active connect-only job, likewise */
    long long proxy_auth_logged_ms; /* the last event=proxy_auth_failed line */
    long proxy_auth;                /* CURLOPT_PROXYAUTH of every transfer (http_proxy.h) */
    /* requests to an http relay go inside CONNECT too: the proxy wants a
     * multi-pass scheme (Digest, NTLM, Negotiate), and libcurl 7.88 answers
     * a 407 to an absolute-form POST by reusing the connection with the
     * body unfinished, which hangs; CONNECT has no body */
    bool requests_via_connect;
    long relay_port; /* the relay URL's port (its scheme's default when none): what a direct connection reaches */
};

/* Constant header lines, as mutable arrays because curl_slist wants char *. */
static char hdr_no_content_type[] = "Content-Type:";
static char hdr_no_expect[] = "Expect:";

static void process_done(struct multi_ctx *m);
static long c_proxy_failed(ptth_relay_client *c, CURL *h, long status, long sent_auth, bool may_resend, bool *resend,
                           char *error, size_t errlen);
static void on_h2_fallback(void *data, ptth_req *r, ptth_req_kind kind, const char *path, const char *const *headers,
                           const void *body, size_t body_len);
static void on_h2_release(void *data, ptth_req *r);

/* after every action of a multi handle (curl_loop.h) */
static void
after_action(void *data)
{
    process_done(data);
}

/* ---- response callbacks ---- */

static size_t
on_curl_header(char *p, size_t size, size_t n, void *userp)
{
    ptth_req *r = userp;
    size_t len = size * n;
    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        /* a new response starts (an interim 1xx may have come first) */
        ptth_req_response_reset(r);
        return len;
    }
    if (len <= 2 && (len == 0 || p[0] == '\r' || p[0] == '\n')) {
        long code = 0;
        curl_easy_getinfo(r->easy->curl, CURLINFO_RESPONSE_CODE, &code);
        if (code >= 200 && !r->headers_done) {
            r->status = code;
            r->headers_done = true;
            /* a 407 is the forward proxy's (the relay never sends one):
             * process_done() handles it, perhaps by sending r again */
            bool from_proxy = code == 407 && r->client->proxied;
            if (r->ops->on_headers != NULL && !from_proxy)
                r->ops->on_headers(r);
        }
        return len;
    }
    const char *colon = memchr(p, ':', len);
    if (colon == NULL)
        return len;
    size_t nlen = (size_t)(colon - p);
    const char *v = colon + 1;
    size_t vlen = len - nlen - 1;
    ptth_req_response_header(r, p, nlen, v, vlen);
    return len;
}

static size_t
on_curl_write(char *p, size_t size, size_t n, void *userp)
{
    ptth_req *r = userp;
    size_t len = size * n;
    if (r->status < 200 || r->status > 299) {
        ptth_req_response_error_body(r, p, len);
        return len;
    }
    if (r->ops->on_body == NULL)
        return len;
    size_t took = r->ops->on_body(r, (const uint8_t *)p, len);
    if (took == PTTH_REQ_PAUSE) {
        r->paused = true;
        return CURL_WRITEFUNC_PAUSE;
    }
    return took;
}

/* ---- easy handles ---- */

/* The options every easy handle of this client gets, requests and
 * connect-only legs alike, so that both reach the relay the same way (same
 * trust, timeouts, keepalive, traces). */
static void
easy_setup_common(ptth_relay_client *c, CURL *h, char *errbuf, bool tunnel)
{
    ptth_http_proxy_setup_easy(c->proxy, h, tunnel);
    curl_easy_setopt(h, CURLOPT_PROXYAUTH, c->proxy_auth);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_USERAGENT, c->user_agent);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, 30L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, 10L);
    if (c->verbose)
        curl_easy_setopt(h, CURLOPT_VERBOSE, 1L);
    if (c->ca_file != NULL)
        curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
    if (c->insecure) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
}

static struct ptth_easy *
easy_new(struct multi_ctx *m)
{
    ptth_relay_client *c = m->client;
    struct ptth_easy *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return NULL;
    e->curl = curl_easy_init();
    if (e->curl == NULL) {
        free(e);
        return NULL;
    }
    CURL *h = e->curl;
    easy_setup_common(c, h, e->errbuf, false);
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, m->http_version);
    if (m->fresh_connections) {
        curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, 1L);
        curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L);
    }
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_curl_header);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_curl_write);
    if (m->kind == PTTH_REQ_STREAM) {
        curl_easy_setopt(h, CURLOPT_BUFFERSIZE, (long)STREAM_BUFFER_SIZE);
    } else {
        /* wait for the HTTP/2 connection being set up instead of opening
         * one connection per request; not while connections start as
         * HTTP/1.1 with an h2c upgrade (libcurl 7.88 on http://): after a
         * shared connection died, requests waiting for the upgrade of its
         * successor were seen to wait forever, listens included */
        curl_easy_setopt(h, CURLOPT_PIPEWAIT, m->pipewait ? 1L : 0L);
        curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE, (long)(256 * 1024));
    }
    return e;
}

static void
easy_free(struct ptth_easy *e)
{
    curl_easy_cleanup(e->curl);
    free(e);
}

static struct ptth_easy *
easy_take(struct multi_ctx *m)
{
    if (m->pool_len > 0)
        return m->pool[--m->pool_len];
    return easy_new(m);
}

/* A handle whose transfer completed normally goes back to the pool; one that
 * was cancelled or paused may carry state, and is dropped. */
static void
easy_give_back(struct multi_ctx *m, struct ptth_easy *e, bool clean)
{
    if (clean && m->pool_len < POOL_MAX) {
        e->errbuf[0] = '\0';
        m->pool[m->pool_len++] = e;
    } else {
        easy_free(e);
    }
}

static void
link_active(ptth_relay_client *c, ptth_req *r)
{
    r->prev_active = NULL;
    r->next_active = c->active;
    if (c->active != NULL)
        c->active->prev_active = r;
    c->active = r;
}

static void
unlink_active(ptth_relay_client *c, ptth_req *r)
{
    if (r->prev_active != NULL)
        r->prev_active->next_active = r->next_active;
    else
        c->active = r->next_active;
    if (r->next_active != NULL)
        r->next_active->prev_active = r->prev_active;
    r->prev_active = r->next_active = NULL;
}

/* Detaches r from its easy handle and the multi handle. */
static void
req_finish(ptth_req *r, bool clean)
{
    struct multi_ctx *m = &r->client->m[r->kind];
    curl_multi_remove_handle(m->cl.multi, r->easy->curl);
    easy_give_back(m, r->easy, clean && !r->paused);
    r->easy = NULL;
    r->active = false;
    r->paused = false;
    unlink_active(r->client, r);
}

static void job_done(CURL *h, CURLcode res);

/* Sends r again on its handle (same URL, headers, body) with the client's
 * proxy settings as they are now: after a 407 that offered a scheme not
 * tried, the caller should not see a failure. The proxy's 407 reached only
 * r's status and reason, never its on_body. */
static bool
req_resend(struct multi_ctx *m, ptth_req *r)
{
    ptth_relay_client *c = m->client;
    /* on a copy: the options (URL, headers, body, callbacks) without the
     * handle's state, in which libcurl 7.88 keeps the failed scheme
     * ("Authentication problem. Ignoring this.") and would give up on the
     * next 407 at once */
    CURL *h = curl_easy_duphandle(r->easy->curl);
    if (h == NULL)
        return false;
    curl_multi_remove_handle(m->cl.multi, r->easy->curl);
    curl_easy_cleanup(r->easy->curl);
    r->easy->curl = h;
    curl_easy_setopt(h, CURLOPT_PROXYAUTH, c->proxy_auth);
    if (c->requests_via_connect)
        curl_easy_setopt(h, CURLOPT_HTTPPROXYTUNNEL, 1L);
    r->sent_auth = c->proxy_auth;
    r->auth_retried = true;
    r->headers_done = false;
    r->paused = false;
    r->timed_out = false;
    ptth_req_response_reset(r);
    /* when it cannot be added, req_finish()'s remove is a harmless no-op */
    return curl_multi_add_handle(m->cl.multi, h) == CURLM_OK;
}

static void
process_done(struct multi_ctx *m)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(m->cl.multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        if (m->kind == MULTI_LEGS) {
            job_done(msg->easy_handle, msg->data.result);
            continue;
        }
        ptth_req *r = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        if (r == NULL)
            continue;
        CURLcode res = msg->data.result;
        r->timed_out = res == CURLE_OPERATION_TIMEDOUT;
        char error[CURL_ERROR_SIZE + 64];
        const char *errp = NULL;
        if (res == CURLE_OK && !r->headers_done) {
            long code = 0;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &code);
            r->status = code;
            r->headers_done = true;
        }
        bool resend = false;
        long proxy_code = c_proxy_failed(m->client, msg->easy_handle, res == CURLE_OK ? r->status : 0, r->sent_auth,
                                         !r->auth_retried, &resend, error, sizeof(error));
        /* sent before the client knew the scheme the proxy wants (this 407
         * or another one taught it): once more, with it */
        if (resend && req_resend(m, r))
            continue;
        if (proxy_code != 0) {
            res = CURLE_COULDNT_CONNECT; /* the relay never saw it: a failure, not an answer */
            r->status = 0;
            errp = error;
        } else if (res != CURLE_OK) {
            if (r->easy->errbuf[0] != '\0')
                snprintf(error, sizeof(error), "%s", r->easy->errbuf);
            else
                snprintf(error, sizeof(error), "%s", curl_easy_strerror(res));
            errp = error;
            if (m->client->proxied)
                ptth_http_proxy_note(msg->easy_handle, m->client->relay_port, error, sizeof(error));
        }
        req_finish(r, res == CURLE_OK);
        r->ops->on_done(r, errp);
    }
}

/* ---- public ---- */

/* HTTP/2 through ALPN on https://. On http://, prior knowledge, except where
 * libcurl is older than 8.0.0: there a request that reuses a prior-knowledge
 * connection fails with "Error in the HTTP2 framing layer" (curl issue
 * #10634, fixed by commit cbe9d82 in 8.0.0). With those versions:
 *   - short requests start each new connection as HTTP/1.1 with
 *     "Upgrade: h2c" (h2o switches to HTTP/2 at once; a relay behind an
 *     HTTP/1.1-only proxy still works) and reuse it as HTTP/2 afterwards;
 *   - framed streams cannot take that path: libcurl 7.88 fails when more
 *     than 32 KiB follow the 101 answer ("connection buffer size is too
 *     small"), which is what a stream full of waiting bytes does. So each
 *     framed stream opens a fresh prior-knowledge connection and closes it
 *     when done: never reused, never hit by the bug. */
static void
choose_http_versions(ptth_relay_client *c, bool https)
{
    if (c->proxied && !https) {
        /* an http relay through a forward proxy: absolute-form HTTP/1.1
         * requests, which every proxy passes (HTTP/2 would need CONNECT) */
        c->m[PTTH_REQ_SHORT].http_version = c->m[PTTH_REQ_STREAM].http_version = (long)CURL_HTTP_VERSION_1_1;
        c->m[PTTH_REQ_SHORT].pipewait = false;
        return;
    }
    const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
    bool reuse_ok = v != NULL && v->version_num >= 0x080000;
    c->m[PTTH_REQ_SHORT].pipewait = https || reuse_ok;
    if (https) {
        c->m[PTTH_REQ_SHORT].http_version = c->m[PTTH_REQ_STREAM].http_version = (long)CURL_HTTP_VERSION_2TLS;
    } else {
        c->m[PTTH_REQ_SHORT].http_version = reuse_ok ? (long)CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE : (long)CURL_HTTP_VERSION_2_0;
        c->m[PTTH_REQ_STREAM].http_version = (long)CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE;
        c->m[PTTH_REQ_STREAM].fresh_connections = !reuse_ok;
    }
}

static int
multi_init(ptth_relay_client *c, struct multi_ctx *m, int kind)
{
    m->client = c;
    m->kind = kind;
    int rc = ptth_curl_loop_init(&m->cl, c->loop, after_action, m);
    if (rc != 0)
        return rc;
    if (kind == PTTH_REQ_SHORT) {
        curl_multi_setopt(m->cl.multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
        curl_multi_setopt(m->cl.multi, CURLMOPT_MAX_CONCURRENT_STREAMS, 1000L);
    } else if (kind == MULTI_LEGS) {
        /* connect-only connections are never shared nor kept */
        curl_multi_setopt(m->cl.multi, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING);
    } else {
        /* one framed stream per connection, see the header */
        curl_multi_setopt(m->cl.multi, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING);
        curl_multi_setopt(m->cl.multi, CURLMOPT_MAXCONNECTS, 64L);
    }
    return 0;
}

static void
multi_cleanup(struct multi_ctx *m)
{
    if (m->cl.multi == NULL)
        return;
    while (m->pool_len > 0)
        easy_free(m->pool[--m->pool_len]);
    ptth_curl_loop_cleanup(&m->cl);
}

int
ptth_relay_client_new(ptth_loop *loop, const ptth_relay_client_config *cfg, ptth_relay_client **out, char *err, size_t errlen)
{
    *out = NULL;
    const char *url = cfg->url;
    bool https;
    if (strncasecmp(url, "http://", 7) == 0) {
        https = false;
    } else if (strncasecmp(url, "https://", 8) == 0) {
        https = true;
    } else {
        snprintf(err, errlen, "relay URL '%s' must start with http:// or https://", url);
        return -EINVAL;
    }
    size_t ulen = strlen(url);
    if (ulen > URL_MAX / 2) {
        snprintf(err, errlen, "relay URL is too long (%zu bytes)", ulen);
        return -E2BIG;
    }
    for (size_t i = 0; i < ulen; i++) {
        unsigned char ch = (unsigned char)url[i];
        if (ch <= ' ' || ch >= 0x7f || ch == '?' || ch == '#') {
            snprintf(err, errlen, "relay URL '%s' has a character that is not allowed at offset %zu", url, i);
            return -EINVAL;
        }
    }
    if (!ptth_key_format_valid(cfg->key, strlen(cfg->key))) {
        snprintf(err, errlen, "the key is not 43 base64url characters");
        return -EINVAL;
    }
    ptth_instance parsed;
    if (cfg->instance != NULL && ptth_instance_parse(cfg->instance, strlen(cfg->instance), &parsed, NULL) != 0) {
        snprintf(err, errlen, "bad instance id '%s'", cfg->instance);
        return -EINVAL;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(err, errlen, "libcurl could not be initialised");
        return -ENOMEM;
    }
    ptth_relay_client *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        curl_global_cleanup();
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    c->loop = loop;
    c->https = https;
    c->insecure = cfg->insecure;
    c->verbose = getenv("PTTH_CURL_VERBOSE") != NULL;
    c->proxy = cfg->proxy;
    c->proxied = ptth_http_proxy_may_apply(cfg->proxy, https);
    c->proxy_auth = ptth_http_proxy_first_auth(cfg->proxy);
    choose_http_versions(c, https);
    c->base = strdup(url);
    c->user_agent = strdup(cfg->user_agent != NULL ? cfg->user_agent : "ptth");
    c->ca_file = cfg->ca_file != NULL ? strdup(cfg->ca_file) : NULL;
    snprintf(c->auth, sizeof(c->auth), "Authorization: Bearer %s", cfg->key);
    if (cfg->instance != NULL)
        snprintf(c->instance, sizeof(c->instance), "PTTH-Instance: %s", cfg->instance);
    int rc = -ENOMEM;
    if (c->base == NULL || c->user_agent == NULL || (cfg->ca_file != NULL && c->ca_file == NULL) ||
        (rc = multi_init(c, &c->m[PTTH_REQ_SHORT], PTTH_REQ_SHORT)) != 0 ||
        (rc = multi_init(c, &c->m[PTTH_REQ_STREAM], PTTH_REQ_STREAM)) != 0 ||
        (rc = multi_init(c, &c->m[MULTI_LEGS], MULTI_LEGS)) != 0) {
        ptth_relay_client_free(c);
        snprintf(err, errlen, "out of memory");
        return rc;
    }
    /* the API paths start with a slash */
    size_t blen = strlen(c->base);
    while (blen > 0 && c->base[blen - 1] == '/')
        c->base[--blen] = '\0';
    c->relay_port = ptth_http_proxy_url_port(c->base);
    /* Through a forward proxy every request and every upgraded leg goes
     * through libcurl, which does CONNECT, proxy TLS and proxy auth (our
     * byte-stream layers have no proxy layer yet). */
    const char *which = getenv("PTTH_HTTP_CLIENT");
    bool ours = (which == NULL || strcmp(which, "curl") != 0) && !c->proxied;
    ptth_leg_dial_config lc = {.url = c->base, .ca_file = c->ca_file, .insecure = c->insecure, .direct = ours};
    if ((rc = ptth_leg_dial_new(loop, &lc, &c->legs, err, errlen)) != 0) {
        ptth_relay_client_free(c);
        return rc;
    }
    if (ours) {
        ptth_h2_client_config hc = {
            .url = c->base,
            .auth_value = c->auth + strlen("Authorization: "),
            .user_agent = c->user_agent,
            .instance = ptth_relay_client_instance(c),
            .ca_file = c->ca_file,
            .insecure = c->insecure,
            .liveness_ms = cfg->liveness_ms,
            .on_fallback = on_h2_fallback,
            .on_release = on_h2_release,
            .data = c,
        };
        if ((rc = ptth_h2_client_new(loop, &hc, &c->h2, err, errlen)) != 0) {
            ptth_relay_client_free(c);
            return rc;
        }
    }
    *out = c;
    return 0;
}

void
ptth_relay_client_free(ptth_relay_client *c)
{
    if (c == NULL)
        return;
    while (c->active != NULL)
        ptth_req_cancel(c->active);
    while (c->jobs != NULL)
        ptth_conn_job_end(c->jobs);
    ptth_h2_client_free(c->h2);
    ptth_leg_dial_free(c->legs);
    for (int i = 0; i < MULTI_COUNT; i++)
        multi_cleanup(&c->m[i]);
    free(c->base);
    free(c->user_agent);
    free(c->ca_file);
    /* the key is a secret: do not leave it in freed memory */
    memset(c->auth, 0, sizeof(c->auth));
    free(c);
    curl_global_cleanup();
}

const char *
ptth_relay_client_url(const ptth_relay_client *c)
{
    return c->base;
}

const char *
ptth_relay_client_auth_value(const ptth_relay_client *c)
{
    return c->auth + strlen("Authorization: ");
}

const char *
ptth_relay_client_user_agent(const ptth_relay_client *c)
{
    return c->user_agent;
}

ptth_loop *
ptth_relay_client_loop(const ptth_relay_client *c)
{
    return c->loop;
}

const char *
ptth_relay_client_instance(const ptth_relay_client *c)
{
    return c->instance[0] != '\0' ? c->instance + strlen("PTTH-Instance: ") : NULL;
}

const ptth_http_proxy *
ptth_relay_client_proxy(const ptth_relay_client *c)
{
    return c->proxy;
}

ptth_leg_dial *
ptth_relay_client_leg_dial(const ptth_relay_client *c)
{
    return c->legs;
}

/* Sends r through libcurl; r->active and the active list are the caller's. */
static int
curl_req_start(ptth_relay_client *c, ptth_req *r, ptth_req_kind kind, const char *path, const char *const *headers,
               const void *body, size_t body_len)
{
    char url[URL_MAX];
    int n = snprintf(url, sizeof(url), "%s%s", c->base, path);
    if (n < 0 || (size_t)n >= sizeof(url))
        return -E2BIG;

    /* header list: our own nodes pointing at the caller's texts (curl only
     * reads them) */
    size_t nodes = 0;
    r->header_nodes[nodes++].data = c->auth;
    r->header_nodes[nodes++].data = hdr_no_content_type;
    r->header_nodes[nodes++].data = hdr_no_expect;
    if (c->instance[0] != '\0')
        r->header_nodes[nodes++].data = c->instance;
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++) {
        if (nodes == sizeof(r->header_nodes) / sizeof(r->header_nodes[0]))
            return -E2BIG;
        r->header_nodes[nodes++].data = (char *)headers[i];
    }
    for (size_t i = 0; i < nodes; i++)
        r->header_nodes[i].next = i + 1 < nodes ? &r->header_nodes[i + 1] : NULL;

    struct multi_ctx *m = &c->m[kind];
    struct ptth_easy *e = easy_take(m);
    if (e == NULL)
        return -ENOMEM;
    CURL *h = e->curl;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROXYAUTH, c->proxy_auth); /* a pooled handle may predate a change */
    r->sent_auth = c->proxy_auth;
    if (c->requests_via_connect)
        curl_easy_setopt(h, CURLOPT_HTTPPROXYTUNNEL, 1L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, &r->header_nodes[0]);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body_len > 0 ? body : "");
    curl_easy_setopt(h, CURLOPT_PRIVATE, (char *)r);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, r->timeout_ms > 0 ? r->timeout_ms : 0L);

    r->client = c;
    r->easy = e;
    r->kind = kind;
    r->paused = false;
    r->timed_out = false;
    ptth_req_response_reset(r);
    CURLMcode mc = curl_multi_add_handle(m->cl.multi, h);
    if (mc != CURLM_OK) {
        r->easy = NULL;
        easy_give_back(m, e, false);
        return mc == CURLM_RECURSIVE_API_CALL ? -EDEADLK : -ENOMEM;
    }
    return 0;
}

/* h2_client.c found that the relay does not speak HTTP/2: libcurl takes
 * this request and every later one, as HTTP/1.1 on http:// (no h2c or prior
 * knowledge either) and with ALPN on https://. */
static void
on_h2_fallback(void *data, ptth_req *r, ptth_req_kind kind, const char *path, const char *const *headers, const void *body,
               size_t body_len)
{
    ptth_relay_client *c = data;
    if (!c->curl_fallback) {
        c->curl_fallback = true;
        for (int i = 0; i < MULTI_LEGS; i++) {
            struct multi_ctx *m = &c->m[i];
            m->http_version = c->https ? (long)CURL_HTTP_VERSION_2TLS : (long)CURL_HTTP_VERSION_1_1;
            m->fresh_connections = false;
            m->pipewait = c->https;
            while (m->pool_len > 0) /* made for the old versions */
                easy_free(m->pool[--m->pool_len]);
        }
    }
    if (curl_req_start(c, r, kind, path, headers, body, body_len) != 0) {
        unlink_active(c, r);
        r->active = false;
        r->ops->on_done(r, "libcurl could not take the request");
    }
}

static void
on_h2_release(void *data, ptth_req *r)
{
    unlink_active(data, r);
    r->active = false;
}

int
ptth_req_start(ptth_relay_client *c, ptth_req *r, ptth_req_kind kind, const char *path, const char *const *headers,
               const void *body, size_t body_len)
{
    if (r->active)
        return -EBUSY;
    if (strlen(c->base) + strlen(path) >= URL_MAX)
        return -E2BIG;
    r->client = c;
    r->kind = kind;
    r->easy = NULL;
    r->h2 = NULL;
    r->auth_retried = false;
    int rc;
    if (c->h2 != NULL && !ptth_h2_client_unavailable(c->h2))
        rc = ptth_h2_req_start(c->h2, r, kind, path, headers, body, body_len);
    else
        rc = curl_req_start(c, r, kind, path, headers, body, body_len);
    if (rc != 0)
        return rc;
    r->active = true;
    link_active(c, r);
    return 0;
}

void
ptth_req_cancel(ptth_req *r)
{
    if (!r->active)
        return;
    if (r->h2 != NULL) {
        ptth_h2_req_cancel(r);
        r->active = false;
        r->paused = false;
        unlink_active(r->client, r);
        return;
    }
    req_finish(r, false);
}

void
ptth_req_resume(ptth_req *r)
{
    if (!r->active || !r->paused)
        return;
    if (r->h2 != NULL) {
        ptth_h2_req_resume(r);
        return;
    }
    r->paused = false;
    curl_easy_pause(r->easy->curl, CURLPAUSE_CONT);
}

void
ptth_req_header_value(char *out, size_t outlen, const char *in)
{
    size_t j = 0;
    for (size_t i = 0; in[i] != '\0' && j + 1 < outlen; i++) {
        unsigned char ch = (unsigned char)in[i];
        out[j++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
    }
    if (outlen > 0)
        out[j] = '\0';
}

/* ---- the forward proxy ---- */

/* The proxy's status when the transfer failed at the proxy (CONNECT
 * refused, or 407), else 0; error says so. A 407 that offers a scheme not
 * tried yet switches the client to it (sent_auth, what the transfer went
 * with, is then older than c->proxy_auth) and is no failure yet: *resend
 * says to send the transfer again once (may_resend: not done already).
 * Any other 407 is logged, at most once per PROXY_AUTH_LOG_MS (a
 * terminator retries with backoff; each retry would log again). */
#define PROXY_AUTH_LOG_MS 10000
static long
c_proxy_failed(ptth_relay_client *c, CURL *h, long status, long sent_auth, bool may_resend, bool *resend, char *error,
               size_t errlen)
{
    *resend = false;
    if (!c->proxied)
        return 0;
    long code = ptth_http_proxy_failure(h, status, error, errlen);
    if (code != 407)
        return code;
    long offered = 0;
    if (curl_easy_getinfo(h, CURLINFO_PROXYAUTH_AVAIL, &offered) == CURLE_OK) {
        long next = ptth_http_proxy_next_auth(c->proxy_auth, offered);
        if (next != c->proxy_auth) {
            c->proxy_auth = next;
            c->requests_via_connect = true;
            ptth_log_info("event=proxy_auth_scheme proxy=%s message=\"%s; answering with the strongest it offers\"",
                          c->proxy != NULL && c->proxy->shown[0] != '\0' ? c->proxy->shown : "environment", error);
        }
    }
    if (may_resend && sent_auth != c->proxy_auth) {
        *resend = true;
        return code;
    }
    long long now = ptth_loop_now(c->loop);
    if (c->proxy_auth_logged_ms == 0 || now - c->proxy_auth_logged_ms >= PROXY_AUTH_LOG_MS) {
        c->proxy_auth_logged_ms = now;
        ptth_log_warn("event=proxy_auth_failed proxy=%s credentials=%s message=\"%s\"",
                      c->proxy != NULL && c->proxy->shown[0] != '\0' ? c->proxy->shown : "environment",
                      c->proxy != NULL && c->proxy->userpwd != NULL ? "user-file" : "url-or-none", error);
    }
    return code;
}

/* ---- connect-only jobs (common/leg.c) ---- */

/* A connect-only transfer is done: the connection is up (res CURLE_OK) or
 * failed. The handle stays in the multi either way (removing it would close
 * the connection, libcurl 7.88) until ptth_conn_job_end(). Runs from
 * process_done(), outside libcurl, so on_done may end the job or free
 * anything. */
static void
job_done(CURL *h, CURLcode res)
{
    ptth_conn_job *job = NULL;
    curl_easy_getinfo(h, CURLINFO_PRIVATE, (char **)&job);
    if (job == NULL || job->done)
        return;
    job->done = true;
    char error[CURL_ERROR_SIZE + 64];
    const char *errp = NULL;
    job->proxy_status = 0;
    if (res != CURLE_OK) {
        ptth_relay_client *c = job->client;
        bool resend = false;
        job->proxy_status = c_proxy_failed(c, h, 0, job->sent_auth, !job->auth_retried, &resend, error, sizeof(error));
        if (resend) {
            /* once more at once, with the scheme the 407 offered */
            ptth_conn_job_end(job);
            job->auth_retried = true;
            if (ptth_conn_job_start(c, job) == 0)
                return;
        }
        if (job->proxy_status == 0) {
            snprintf(error, sizeof(error), "%s", job->errbuf[0] != '\0' ? job->errbuf : curl_easy_strerror(res));
            if (c->proxied)
                ptth_http_proxy_note(h, c->relay_port, error, sizeof(error));
        }
        errp = error;
    }
    job->on_done(job, errp);
}

/* TLS of a leg reads ahead into a buffer of this size: one socket read
 * then brings several 16 KiB records instead of two reads (header, body)
 * per record. It stays allocated while the leg is open. */
#define LEG_TLS_READ_BUFFER (64 * 1024)

/* Called by libcurl with the SSL_CTX of a leg's connection before the
 * connection's SSL object is made from it. */
static CURLcode
on_leg_ssl_ctx(CURL *h, void *ssl_ctx, void *data)
{
    (void)h;
    (void)data;
    SSL_CTX_set_read_ahead(ssl_ctx, 1);
    SSL_CTX_set_default_read_buffer_len(ssl_ctx, LEG_TLS_READ_BUFFER);
    return CURLE_OK;
}

int
ptth_conn_job_start(ptth_relay_client *c, ptth_conn_job *job)
{
    if (job->active)
        return -EBUSY;
    CURL *h = curl_easy_init();
    if (h == NULL)
        return -ENOMEM;
    job->errbuf[0] = '\0';
    /* through a proxy always CONNECT: the leg needs a raw connection */
    easy_setup_common(c, h, job->errbuf, true);
    job->sent_auth = c->proxy_auth;
    /* HTTP/1.1 only: on https:// ALPN then offers http/1.1 alone, and the
     * leg writes an HTTP/1.1 request on the connection itself */
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(h, CURLOPT_CONNECT_ONLY, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_CTX_FUNCTION, on_leg_ssl_ctx);
    curl_easy_setopt(h, CURLOPT_URL, c->base);
    curl_easy_setopt(h, CURLOPT_PRIVATE, (char *)job);
    job->client = c;
    job->curl = h;
    job->done = false;
    CURLMcode mc = curl_multi_add_handle(c->m[MULTI_LEGS].cl.multi, h);
    if (mc != CURLM_OK) {
        curl_easy_cleanup(h);
        job->curl = NULL;
        return mc == CURLM_RECURSIVE_API_CALL ? -EDEADLK : -ENOMEM;
    }
    job->active = true;
    job->prev = NULL;
    job->next = c->jobs;
    if (c->jobs != NULL)
        c->jobs->prev = job;
    c->jobs = job;
    return 0;
}

void
ptth_conn_job_end(ptth_conn_job *job)
{
    if (!job->active)
        return;
    ptth_relay_client *c = job->client;
    curl_multi_remove_handle(c->m[MULTI_LEGS].cl.multi, job->curl);
    curl_easy_cleanup(job->curl);
    job->curl = NULL;
    job->active = false;
    if (job->prev != NULL)
        job->prev->next = job->next;
    else
        c->jobs = job->next;
    if (job->next != NULL)
        job->next->prev = job->prev;
    job->prev = job->next = NULL;
}
