/*
 * admin.c: see admin.h. Every name that appears in the output was checked
 * against the SPEC §2 name alphabet and every address was formatted by the
 * relay, so nothing needs escaping for JSON, HTML or Prometheus labels.
 */
#include "admin.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry.h"
#include "reply.h"
#include "sysutil.h"
#include "tunnel.h"

typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool failed;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
sb_printf(sbuf *b, const char *fmt, ...)
{
    if (b->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p != NULL ? b->p + b->len : NULL, b->p != NULL ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = true;
            return;
        }
        if (b->p != NULL && (size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap == 0 ? 4096 : b->cap;
        while (cap - b->len <= (size_t)n)
            cap *= 2;
        char *q = realloc(b->p, cap);
        if (q == NULL) {
            b->failed = true;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
}

static const char *
state_name(ptth_tunnel_state s)
{
    switch (s) {
    case PTTH_TUNNEL_AWAIT_LISTEN:
        return "await_listen";
    case PTTH_TUNNEL_AWAIT_ACCEPT:
        return "await_accept";
    default:
        return "open";
    }
}

static int
cmp_srv(const void *a, const void *b)
{
    return strcmp((*(ptth_srv *const *)a)->name, (*(ptth_srv *const *)b)->name);
}

static int
cmp_tunnel(const void *a, const void *b)
{
    const ptth_tunnel *x = *(ptth_tunnel *const *)a, *y = *(ptth_tunnel *const *)b;
    int r = strcmp(x->server, y->server);
    if (r == 0)
        r = strcmp(x->port, y->port);
    if (r == 0)
        r = x->started_ms < y->started_ms ? -1 : x->started_ms > y->started_ms;
    return r;
}

/* Snapshots of the servers and tunnels, sorted for stable output. */
static void
snapshot(ptth_relay *relay, ptth_srv ***srvs, size_t *nsrv, ptth_tunnel ***tuns, size_t *ntun)
{
    *srvs = (ptth_srv **)ptth_table_values(&relay->servers, nsrv);
    *tuns = (ptth_tunnel **)ptth_table_values(&relay->tunnels, ntun);
    if (*nsrv > 1)
        qsort(*srvs, *nsrv, sizeof(**srvs), cmp_srv);
    if (*ntun > 1)
        qsort(*tuns, *ntun, sizeof(**tuns), cmp_tunnel);
}

static void
render_status(ptth_relay *relay, sbuf *b)
{
    ptth_srv **srvs;
    ptth_tunnel **tuns;
    size_t nsrv, ntun;
    long long now = ptth_now_ms();
    snapshot(relay, &srvs, &nsrv, &tuns, &ntun);

    sb_printf(b, "{\"servers\":[");
    for (size_t i = 0, k = 0; i < nsrv; i++) {
        ptth_srv *s = srvs[i];
        if (!s->online)
            continue;
        sb_printf(b, "%s{\"name\":\"%s\",\"ports\":[", k++ ? "," : "", s->name);
        for (size_t j = 0; j < s->nports; j++)
            sb_printf(b, "%s\"%s\"", j ? "," : "", s->ports[j]);
        sb_printf(b, "],\"listens\":%zu,\"tunnels\":%zu}", s->nlistens, s->ntunnels);
    }
    sb_printf(b, "],\"tunnels\":[");
    for (size_t i = 0; i < ntun; i++) {
        ptth_tunnel *t = tuns[i];
        sb_printf(b,
                  "%s{\"id\":\"%s\",\"server\":\"%s\",\"port\":\"%s\",\"client\":\"%s\",\"addr\":\"%s\",\"state\":\"%s\","
                  "\"bytes_up\":%" PRIu64 ",\"bytes_down\":%" PRIu64 ",\"age_ms\":%lld}",
                  i ? "," : "", t->id, t->server, t->port, t->client, t->addr, state_name(t->state), t->up.bytes, t->down.bytes,
                  now - t->started_ms);
    }
    sb_printf(b, "]}\n");
    free(srvs);
    free(tuns);
}

static void
render_metrics(ptth_relay *relay, sbuf *b)
{
    ptth_srv **srvs;
    ptth_tunnel **tuns;
    size_t nsrv, ntun, online = 0;
    snapshot(relay, &srvs, &nsrv, &tuns, &ntun);
    for (size_t i = 0; i < nsrv; i++)
        online += srvs[i]->online;

    sb_printf(b, "# HELP ptth_tunnels_open Tunnels open now.\n# TYPE ptth_tunnels_open gauge\nptth_tunnels_open %zu\n",
              relay->ntunnels);
    sb_printf(b, "# HELP ptth_tunnels_total Tunnels ended, by result.\n# TYPE ptth_tunnels_total counter\n");
    for (int r = 0; r < PTTH_END__COUNT; r++)
        sb_printf(b, "ptth_tunnels_total{result=\"%s\"} %" PRIu64 "\n", ptth_end_reason_name((ptth_end_reason)r),
                  relay->stats.tunnels_ended[r]);
    sb_printf(b,
              "# HELP ptth_bytes_total Bytes carried, by direction (up: client to server).\n"
              "# TYPE ptth_bytes_total counter\nptth_bytes_total{direction=\"up\"} %" PRIu64
              "\nptth_bytes_total{direction=\"down\"} %" PRIu64 "\n",
              relay->stats.bytes_up, relay->stats.bytes_down);
    sb_printf(b, "# HELP ptth_servers_online Servers online now.\n# TYPE ptth_servers_online gauge\nptth_servers_online %zu\n",
              online);
    sb_printf(b, "# HELP ptth_server_listens Outstanding listens, by server.\n# TYPE ptth_server_listens gauge\n");
    for (size_t i = 0; i < nsrv; i++)
        sb_printf(b, "ptth_server_listens{server=\"%s\"} %zu\n", srvs[i]->name, srvs[i]->nlistens);
    sb_printf(b, "# HELP ptth_port_tunnels_open Tunnels open now, by server and port.\n# TYPE ptth_port_tunnels_open gauge\n");
    for (size_t i = 0; i < ntun;) {
        size_t j = i;
        while (j < ntun && strcmp(tuns[j]->server, tuns[i]->server) == 0 && strcmp(tuns[j]->port, tuns[i]->port) == 0)
            j++;
        sb_printf(b, "ptth_port_tunnels_open{server=\"%s\",port=\"%s\"} %zu\n", tuns[i]->server, tuns[i]->port, j - i);
        i = j;
    }
    free(srvs);
    free(tuns);
}

static void
render_index(ptth_relay *relay, sbuf *b)
{
    ptth_srv **srvs;
    ptth_tunnel **tuns;
    size_t nsrv, ntun;
    long long now = ptth_now_ms();
    snapshot(relay, &srvs, &nsrv, &tuns, &ntun);
    sb_printf(b, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>ptth_relay</title></head><body>\n"
                 "<h1>ptth_relay</h1>\n<h2>Servers</h2>\n<table border=\"1\"><tr><th>server</th><th>online</th><th>ports</th>"
                 "<th>listens</th><th>tunnels</th></tr>\n");
    for (size_t i = 0; i < nsrv; i++) {
        ptth_srv *s = srvs[i];
        sb_printf(b, "<tr><td>%s</td><td>%s</td><td>", s->name, s->online ? "yes" : "no");
        for (size_t j = 0; j < s->nports; j++)
            sb_printf(b, "%s%s", j ? ", " : "", s->ports[j]);
        sb_printf(b, "</td><td>%zu</td><td>%zu</td></tr>\n", s->nlistens, s->ntunnels);
    }
    sb_printf(b,
              "</table>\n<h2>Tunnels (%zu)</h2>\n<table border=\"1\"><tr><th>id</th><th>server</th><th>port</th>"
              "<th>client</th><th>address</th><th>state</th><th>bytes up</th><th>bytes down</th><th>age (s)</th></tr>\n",
              ntun);
    for (size_t i = 0; i < ntun; i++) {
        ptth_tunnel *t = tuns[i];
        sb_printf(b,
                  "<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%" PRIu64 "</td><td>%" PRIu64
                  "</td><td>%lld</td></tr>\n",
                  t->id, t->server, t->port, t->client, t->addr, state_name(t->state), t->up.bytes, t->down.bytes,
                  (now - t->started_ms) / 1000);
    }
    sb_printf(b, "</table>\n</body></html>\n");
    free(srvs);
    free(tuns);
}

void
ptth_admin_serve(ptth_relay *relay, h2o_req_t *req, ptth_route_kind kind)
{
    if (!relay->auth.has_admin) {
        ptth_reply(req, 404, "not found\n");
        return;
    }
    size_t len;
    const char *v = ptth_req_header(req, "authorization", &len);
    ptth_key_hash h;
    if (v == NULL || (ptth_auth_bearer(v, len, &h) != 0 && ptth_auth_basic_password(v, len, &h) != 0) ||
        !ptth_auth_is_admin(&relay->auth, &h)) {
        if (v != NULL && (ptth_auth_bearer(v, len, &h) == 0 || ptth_auth_basic_password(v, len, &h) == 0) &&
            (ptth_auth_client_by_hash(&relay->auth, &h) != NULL || ptth_auth_server_by_hash(&relay->auth, &h) != NULL)) {
            ptth_reply(req, 403, "this key is not the admin key\n");
            return;
        }
        ptth_reply_header(req, "www-authenticate", H2O_STRLIT("Basic realm=\"ptth_relay\", charset=\"UTF-8\""));
        ptth_reply(req, 401, "admin key required\n");
        return;
    }

    sbuf b = {0};
    const char *type;
    switch (kind) {
    case PTTH_ROUTE_METRICS:
        render_metrics(relay, &b);
        type = "text/plain; version=0.0.4; charset=utf-8";
        break;
    case PTTH_ROUTE_STATUS:
        render_status(relay, &b);
        type = "application/json";
        break;
    default:
        render_index(relay, &b);
        type = "text/html; charset=utf-8";
        break;
    }
    if (b.failed || b.p == NULL) {
        free(b.p);
        ptth_reply(req, 500, "out of memory\n");
        return;
    }
    static h2o_generator_t generator = {NULL, NULL};
    h2o_iovec_t body = h2o_strdup(&req->pool, b.p, b.len);
    free(b.p);
    req->res.status = 200;
    req->res.reason = "OK";
    req->res.content_length = body.len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, type, strlen(type));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    h2o_start_response(req, &generator);
    if (h2o_memis(req->input.method.base, req->input.method.len, H2O_STRLIT("HEAD")))
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
    else
        h2o_send(req, &body, 1, H2O_SEND_STATE_FINAL);
}
