/* h2_client.c: HTTP/2 to the relay on libnghttp2 (see h2_client.h): the
 * pool of connections and the requests. One connection, its byte stream
 * and its nghttp2 session are h2_session.c; what the two share is
 * h2_internal.h. */
#include "h2_client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bstream_tls.h"
#include "h2_internal.h"
#include "req_response.h"

#define MAX_CONNECTIONS 1024

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

/* ---- stream ends ---- */

static void
stream_maybe_free(h2_stream *s)
{
    if (s->req != NULL || s->in_session || s->queued || s->done_listed)
        return;
    ptth_h2_conn_unlink_stream(s);
    ptth_timer_stop(s->cl->env.loop, &s->timer);
    free(s->held);
    free(s);
}

static void on_done_deferred(ptth_defer *d);

static void
stream_complete(h2_stream *s, const char *error)
{
    if (s->req == NULL || s->done_listed)
        return;
    if (error != NULL)
        snprintf(s->error, sizeof(s->error), "%s", error);
    else
        s->error[0] = '\0';
    ptth_timer_stop(s->cl->env.loop, &s->timer);
    s->done_listed = true;
    s->done_next = NULL;
    ptth_h2_client *cl = s->cl;
    if (cl->done_tail != NULL)
        cl->done_tail->done_next = s;
    else
        cl->done_head = s;
    cl->done_tail = s;
    ptth_defer_call(cl->env.loop, &cl->done_defer, on_done_deferred, cl);
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
            ptth_h2_conn_detach(s->conn, s); /* the caller may reuse the body now */
        if (s->held_len > s->held_off)
            ptth_h2_stream_drop_held(s);
        stream_maybe_free(s);
        if (cl->cfg.on_release != NULL)
            cl->cfg.on_release(cl->cfg.data, r);
        r->ops->on_done(r, error[0] != '\0' ? error : NULL);
    }
}

/* ---- dispatch ---- */

static void dispatch(ptth_h2_client *cl);

static void
on_dispatch_deferred(ptth_defer *d)
{
    dispatch(d->data);
}

static void
schedule_dispatch(ptth_h2_client *cl)
{
    ptth_defer_call(cl->env.loop, &cl->dispatch_defer, on_dispatch_deferred, cl);
}

/* (They were waiting for the connection that just failed to open.) */
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
fall_back(ptth_h2_client *cl, h2_conn *k)
{
    cl->env.unavailable = true;
    ptth_h2_conn_close(k, "no HTTP/2");
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

/* ---- the events table its sessions report through ---- */

static void
ev_requeue(void *owner, h2_stream *s)
{
    queue_push(owner, s, true);
    schedule_dispatch(owner);
}

static void
ev_dispatch(void *owner)
{
    schedule_dispatch(owner);
}

static bool
ev_has_waiting(void *owner)
{
    const ptth_h2_client *cl = owner;
    return cl->queue_head != NULL;
}

static void
ev_fail_waiting(void *owner, const char *why)
{
    fail_queue(owner, why);
}

static void
ev_fall_back(void *owner, h2_conn *k)
{
    fall_back(owner, k);
}

static const h2_env_events session_events = {
    .requeue = ev_requeue,
    .dispatch = ev_dispatch,
    .has_waiting = ev_has_waiting,
    .fail_waiting = ev_fail_waiting,
    .fall_back = ev_fall_back,
    .stream_complete = stream_complete,
    .stream_maybe_free = stream_maybe_free,
};

static h2_conn *
pick_conn(ptth_h2_client *cl, bool *opening)
{
    *opening = false;
    for (h2_conn *k = cl->env.conns; k != NULL; k = k->next) {
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
            if (!opening && cl->env.nconns < MAX_CONNECTIONS && !cl->env.unavailable)
                ptth_h2_conn_open(&cl->env); /* may fail the queue at once */
            return;
        }
        h2_stream *s = cl->queue_head;
        queue_unlink(cl, s);
        int rc = ptth_h2_conn_submit(k, s);
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
    ptth_h2_stream_reset(s);
    char why[80];
    snprintf(why, sizeof(why), "request timed out after %ld ms", r->timeout_ms);
    ptth_h2_stream_drop_held(s);
    stream_complete(s, why);
}

int
ptth_h2_req_start(ptth_h2_client *cl, ptth_req *r, ptth_req_kind kind, const char *path, const char *const *headers,
                  const void *body, size_t body_len)
{
    size_t plen = strlen(path);
    if (plen >= PATH_MAX_LEN || plen + strlen(cl->env.prefix) >= PATH_MAX_LEN)
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
        ptth_timer_start(cl->env.loop, &s->timer, r->timeout_ms, on_req_timeout, s);
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
    ptth_timer_stop(s->cl->env.loop, &s->timer);
    queue_unlink(s->cl, s);
    ptth_h2_stream_reset(s);
    if (s->conn != NULL)
        ptth_h2_conn_detach(s->conn, s);
    ptth_h2_stream_drop_held(s);
    if (s->conn != NULL)
        ptth_h2_conn_want_flush(s->conn);
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
    ptth_h2_stream_consumed(s, taken);
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
        cl->env.https = true;
        p = url + 8;
    } else if (strncasecmp(url, "http://", 7) == 0) {
        p = url + 7;
    } else {
        snprintf(err, errlen, "relay URL '%s' must start with http:// or https://", url);
        return -EINVAL;
    }
    size_t alen = strcspn(p, "/");
    if (alen == 0 || alen >= sizeof(cl->env.authority) || memchr(p, '@', alen) != NULL) {
        snprintf(err, errlen, "relay URL '%s' has no usable host", url);
        return -EINVAL;
    }
    memcpy(cl->env.authority, p, alen);
    cl->env.authority[alen] = '\0';
    const char *hp = cl->env.authority, *port = NULL;
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
    if (hlen == 0 || hlen >= sizeof(cl->env.host)) {
        snprintf(err, errlen, "relay URL '%s' has no usable host", url);
        return -EINVAL;
    }
    memcpy(cl->env.host, hp, hlen);
    cl->env.host[hlen] = '\0';
    if (port != NULL) {
        size_t n = strlen(port);
        if (n == 0 || n > 5 || strspn(port, "0123456789") != n || atoi(port) < 1 || atoi(port) > 65535) {
            snprintf(err, errlen, "relay URL '%s' has a bad port", url);
            return -EINVAL;
        }
        memcpy(cl->env.port, port, n + 1);
    } else {
        snprintf(cl->env.port, sizeof(cl->env.port), "%s", cl->env.https ? "443" : "80");
    }
    const char *prefix = p + alen;
    size_t plen = strlen(prefix);
    while (plen > 0 && prefix[plen - 1] == '/')
        plen--;
    if (plen >= sizeof(cl->env.prefix)) {
        snprintf(err, errlen, "relay URL '%s' has a path that is too long", url);
        return -E2BIG;
    }
    memcpy(cl->env.prefix, prefix, plen);
    cl->env.prefix[plen] = '\0';
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
    cl->env.loop = loop;
    cl->env.ev = &session_events;
    cl->env.owner = cl;
    cl->cfg = *cfg;
    cl->env.insecure = cfg->insecure;
    cl->env.liveness_ms = cfg->liveness_ms > 0 ? cfg->liveness_ms : PTTH_H2_LIVENESS_MS;
    cl->cfg.ca_file = NULL;
    int rc = parse_url(cl, cfg->url, err, errlen);
    if (rc != 0) {
        free(cl);
        return rc;
    }
    cl->cfg.ca_file = cfg->ca_file;
    cl->env.auth_value = strdup(cfg->auth_value);
    cl->env.user_agent = strdup(cfg->user_agent != NULL ? cfg->user_agent : "ptth");
    cl->env.instance = cfg->instance != NULL ? strdup(cfg->instance) : NULL;
    cl->env.readbuf = malloc(READ_SIZE);
    if (cl->env.auth_value == NULL || cl->env.user_agent == NULL || (cfg->instance != NULL && cl->env.instance == NULL) ||
        cl->env.readbuf == NULL || ptth_h2_sessions_init(&cl->env) != 0) {
        ptth_h2_client_free(cl);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    if (cl->env.https) {
        /* http/1.1 too: a server without h2 then picks it (instead of ending
         * the handshake with "no application protocol") and we fall back */
        static const unsigned char alpn[] = {2, 'h', '2', 8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
        rc = ptth_bstream_tls_ctx_new(alpn, sizeof(alpn), cl->cfg.ca_file, cl->cfg.insecure, &cl->env.ssl_ctx, err, errlen);
        if (rc != 0) {
            ptth_h2_client_free(cl);
            return rc;
        }
    }
    cl->cfg.ca_file = NULL; /* not kept: loaded into the context */
    cl->cfg.url = NULL;
    cl->cfg.auth_value = NULL;
    cl->cfg.user_agent = NULL;
    cl->cfg.instance = NULL;
    *out = cl;
    return 0;
}

void
ptth_h2_client_free(ptth_h2_client *cl)
{
    if (cl == NULL)
        return;
    cl->env.unavailable = true; /* ptth_h2_conn_close must not fail or dispatch the queue */
    while (cl->queue_head != NULL) {
        h2_stream *s = cl->queue_head;
        queue_unlink(cl, s);
        if (s->req != NULL)
            s->req->h2 = NULL;
        s->req = NULL;
        stream_maybe_free(s);
    }
    while (cl->env.conns != NULL)
        ptth_h2_conn_close(cl->env.conns, NULL);
    h2_stream *s;
    while ((s = cl->done_head) != NULL) {
        cl->done_head = s->done_next;
        s->done_listed = false;
        if (s->req != NULL)
            s->req->h2 = NULL;
        s->req = NULL;
        stream_maybe_free(s);
    }
    ptth_defer_cancel(cl->env.loop, &cl->done_defer);
    ptth_defer_cancel(cl->env.loop, &cl->dispatch_defer);
    if (cl->env.ssl_ctx != NULL)
        SSL_CTX_free(cl->env.ssl_ctx);
    ptth_h2_sessions_fini(&cl->env);
    if (cl->env.auth_value != NULL) {
        memset(cl->env.auth_value, 0, strlen(cl->env.auth_value)); /* the key is a secret */
        free(cl->env.auth_value);
    }
    free(cl->env.user_agent);
    free(cl->env.instance);
    free(cl->env.readbuf);
    free(cl);
}

bool
ptth_h2_client_unavailable(const ptth_h2_client *cl)
{
    return cl->env.unavailable;
}
