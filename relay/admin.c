/*
 * admin.c: see admin.h. Three renderings of one snapshot (the servers and
 * tunnels in the relay's tables, sorted for stable output, plus the totals
 * and recent ends kept here).
 */
#include "admin.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "frame.h"
#include "guard.h"
#include "log.h"
#include "registry.h"
#include "reply.h"
#include "sbuf.h"
#include "sysutil.h"
#include "tunnel.h"

/* Totals of the tunnels of one server and port that have ended. */
typedef struct port_stats {
    char key[2 * PTTH_NAME_MAX + 2]; /* "server/port": the table's key */
    char server[PTTH_NAME_MAX + 1];
    char port[PTTH_NAME_MAX + 1];
    uint64_t ended[PTTH_END__COUNT];
    uint64_t bytes_up, bytes_down;
} port_stats;

typedef struct recent_end {
    char id[PTTH_ID_LEN + 1];
    char server[PTTH_NAME_MAX + 1];
    char port[PTTH_NAME_MAX + 1];
    char client[PTTH_NAME_MAX + 1];
    char addr[PTTH_ADDR_STRLEN];
    char detail[PTTH_FRAME_REASON_MAX + 1];
    ptth_end_reason reason;
    uint64_t bytes_up, bytes_down;
    long long duration_ms, ended_ms;
} recent_end;

struct ptth_admin_state {
    ptth_table ports;  /* key -> port_stats */
    port_stats *other; /* ends past PTTH_ADMIN_MAX_SERIES pairs */
    recent_end recent[PTTH_ADMIN_RECENT];
    size_t nrecent, next; /* ring: next is where the next end goes */
};

/* ---- recording ------------------------------------------------------------- */

static port_stats *
stats_for(struct ptth_admin_state *a, const char *server, const char *port)
{
    char key[sizeof(((port_stats *)0)->key)];
    int n = snprintf(key, sizeof(key), "%s/%s", server, port);
    port_stats *st = ptth_table_get(&a->ports, key, (size_t)n);
    if (st != NULL)
        return st;
    if (a->ports.count >= PTTH_ADMIN_MAX_SERIES) {
        if (a->other == NULL && (a->other = calloc(1, sizeof(*a->other))) != NULL) {
            strcpy(a->other->server, "_other");
            strcpy(a->other->port, "_other");
        }
        return a->other;
    }
    if ((st = calloc(1, sizeof(*st))) == NULL)
        return NULL;
    memcpy(st->key, key, (size_t)n + 1);
    snprintf(st->server, sizeof(st->server), "%s", server);
    snprintf(st->port, sizeof(st->port), "%s", port);
    if (ptth_table_put(&a->ports, st->key, (size_t)n, st) != 0) {
        free(st);
        return NULL;
    }
    return st;
}

/* The core's tunnel-end observer (ptth_admin_watch). */
static void
on_tunnel_end(void *data, const ptth_tunnel *t, ptth_end_reason reason, const char *detail)
{
    ptth_relay *relay = data;
    struct ptth_admin_state *a = relay->admin;
    if (a == NULL) {
        if ((a = calloc(1, sizeof(*a))) == NULL)
            return;
        ptth_table_init(&a->ports);
        relay->admin = a;
    }
    if ((unsigned)reason >= PTTH_END__COUNT)
        reason = PTTH_END_RST;
    port_stats *st = stats_for(a, t->server, t->port);
    if (st != NULL) {
        st->ended[reason]++;
        st->bytes_up += t->up.bytes;
        st->bytes_down += t->down.bytes;
    }
    recent_end *r = &a->recent[a->next];
    a->next = (a->next + 1) % PTTH_ADMIN_RECENT;
    if (a->nrecent < PTTH_ADMIN_RECENT)
        a->nrecent++;
    snprintf(r->id, sizeof(r->id), "%s", t->id);
    snprintf(r->server, sizeof(r->server), "%s", t->server);
    snprintf(r->port, sizeof(r->port), "%s", t->port);
    snprintf(r->client, sizeof(r->client), "%s", t->client);
    snprintf(r->addr, sizeof(r->addr), "%s", t->addr);
    snprintf(r->detail, sizeof(r->detail), "%s", detail != NULL ? detail : "");
    r->reason = reason;
    r->bytes_up = t->up.bytes;
    r->bytes_down = t->down.bytes;
    r->ended_ms = ptth_now_ms();
    r->duration_ms = r->ended_ms - t->started_ms;
}

void
ptth_admin_watch(ptth_relay *relay)
{
    relay->core.on_end = on_tunnel_end;
    relay->core.on_end_data = relay;
}

void
ptth_admin_dispose(ptth_relay *relay)
{
    struct ptth_admin_state *a = relay->admin;
    if (a == NULL)
        return;
    size_t n;
    port_stats **all = (port_stats **)ptth_table_values(&a->ports, &n);
    for (size_t i = 0; i < n; i++)
        free(all[i]);
    free(all);
    ptth_table_dispose(&a->ports);
    free(a->other);
    free(a);
    relay->admin = NULL;
}

/* ---- the snapshot ------------------------------------------------------------ */

/* One server/port series: its ended totals (st, may be NULL) and its live
 * tunnels (open count and bytes so far). */
typedef struct series {
    const char *server, *port;
    const port_stats *st;
    size_t open;
    uint64_t live_up, live_down;
} series;

typedef struct snapshot {
    long long now_ms;  /* monotonic */
    long long wall_ms; /* realtime, for the start time */
    ptth_srv **srvs;   /* every known server, by name */
    size_t nsrv, online, listens;
    ptth_tunnel **tuns; /* by server, port, age */
    size_t ntun, by_state[PTTH_TUNNEL_PHASES];
    series *ser; /* by server, port */
    size_t nser;
    const recent_end *recent[PTTH_ADMIN_RECENT]; /* newest first */
    size_t nrecent;
    uint64_t ended_total;
} snapshot;

static int
cmp_srv(const void *a, const void *b)
{
    return strcmp((*(ptth_srv *const *)a)->name, (*(ptth_srv *const *)b)->name);
}

static int
cmp_pair(const char *s1, const char *p1, const char *s2, const char *p2)
{
    int r = strcmp(s1, s2);
    return r != 0 ? r : strcmp(p1, p2);
}

static int
cmp_tunnel(const void *a, const void *b)
{
    const ptth_tunnel *x = *(ptth_tunnel *const *)a, *y = *(ptth_tunnel *const *)b;
    int r = cmp_pair(x->server, x->port, y->server, y->port);
    if (r == 0)
        r = x->started_ms < y->started_ms ? -1 : x->started_ms > y->started_ms;
    return r;
}

static int
cmp_stats(const void *a, const void *b)
{
    const port_stats *x = *(const port_stats *const *)a, *y = *(const port_stats *const *)b;
    return cmp_pair(x->server, x->port, y->server, y->port);
}

static void
snapshot_free(snapshot *s)
{
    free(s->srvs);
    free(s->tuns);
    free(s->ser);
}

/* false when memory ran out (nothing to free then). */
static bool
snapshot_take(ptth_relay *relay, snapshot *s)
{
    memset(s, 0, sizeof(*s));
    s->now_ms = ptth_now_ms();
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    s->wall_ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;

    s->srvs = (ptth_srv **)ptth_table_values(&relay->core.servers, &s->nsrv);
    s->tuns = (ptth_tunnel **)ptth_table_values(&relay->core.tunnels, &s->ntun);
    if ((s->srvs == NULL && relay->core.servers.count != 0) || (s->tuns == NULL && relay->core.tunnels.count != 0)) {
        snapshot_free(s);
        return false;
    }
    if (s->nsrv > 1)
        qsort(s->srvs, s->nsrv, sizeof(*s->srvs), cmp_srv);
    if (s->ntun > 1)
        qsort(s->tuns, s->ntun, sizeof(*s->tuns), cmp_tunnel);
    for (size_t i = 0; i < s->nsrv; i++) {
        s->online += s->srvs[i]->online;
        s->listens += s->srvs[i]->nlistens;
    }
    for (size_t i = 0; i < s->ntun; i++)
        s->by_state[ptth_tunnel_phase(s->tuns[i])]++;
    for (int r = 0; r < PTTH_END__COUNT; r++)
        s->ended_total += relay->core.stats.tunnels_ended[r];

    /* merge the ended totals (sorted) with the live tunnels (sorted) */
    struct ptth_admin_state *a = relay->admin;
    size_t nst = 0;
    port_stats **st = NULL;
    if (a != NULL) {
        st = (port_stats **)ptth_table_values(&a->ports, &nst);
        if (st == NULL && a->ports.count != 0) {
            snapshot_free(s);
            return false;
        }
        if (nst > 1)
            qsort(st, nst, sizeof(*st), cmp_stats);
    }
    size_t extra = a != NULL && a->other != NULL;
    if ((s->ser = calloc(nst + s->ntun + extra + 1, sizeof(*s->ser))) == NULL) {
        free(st);
        snapshot_free(s);
        return false;
    }
    size_t i = 0, j = 0;
    while (i < nst || j < s->ntun) {
        series *z = &s->ser[s->nser++];
        const ptth_tunnel *t = j < s->ntun ? s->tuns[j] : NULL;
        int c = i >= nst ? 1 : t == NULL ? -1 : cmp_pair(st[i]->server, st[i]->port, t->server, t->port);
        if (c <= 0) {
            z->server = st[i]->server;
            z->port = st[i]->port;
            z->st = st[i++];
        } else {
            z->server = t->server;
            z->port = t->port;
        }
        while (j < s->ntun && cmp_pair(z->server, z->port, s->tuns[j]->server, s->tuns[j]->port) == 0) {
            z->open++;
            z->live_up += s->tuns[j]->up.bytes;
            z->live_down += s->tuns[j]->down.bytes;
            j++;
        }
    }
    if (extra) {
        series *z = &s->ser[s->nser++];
        z->server = a->other->server;
        z->port = a->other->port;
        z->st = a->other;
    }
    free(st);

    if (a != NULL)
        for (size_t k = 0; k < a->nrecent; k++)
            s->recent[s->nrecent++] = &a->recent[(a->next + PTTH_ADMIN_RECENT - 1 - k) % PTTH_ADMIN_RECENT];
    return true;
}

/* ---- /metrics ------------------------------------------------------------------ */

/* The per-address limits and the out-of-descriptor handling (SPEC §9.6). */
static void
render_hardening(const ptth_relay *relay, ptth_sbuf *b)
{
    ptth_sbuf_prom_family(
        b, "ptth_connections_refused_total", "counter",
        "Connections closed at accept, by reason (max_connections_per_address: the address's cap; out_of_descriptors: "
        "taken off the listen queue and closed while descriptors ran out, from the address holding the most).");
    ptth_sbuf_printf(b, "ptth_connections_refused_total{reason=\"max_connections_per_address\"} %" PRIu64 "\n",
                     relay->stats.conns_refused_address);
    ptth_sbuf_printf(b, "ptth_connections_refused_total{reason=\"out_of_descriptors\"} %" PRIu64 "\n", relay->stats.conns_drained);
    ptth_sbuf_prom_family(b, "ptth_connections_shed_total", "counter",
                          "Connections that had sent no request, shut down while descriptors ran out.");
    ptth_sbuf_printf(b, "ptth_connections_shed_total %" PRIu64 "\n", relay->stats.conns_shed);
    ptth_sbuf_prom_family(b, "ptth_accept_pauses_total", "counter",
                          "Times the listeners paused because accept ran out of descriptors.");
    ptth_sbuf_printf(b, "ptth_accept_pauses_total %" PRIu64 "\n", relay->stats.accept_pauses);
    ptth_sbuf_prom_family(
        b, "ptth_requests_refused_total", "counter",
        "Requests answered 429 before their key was checked, by reason (auth_penalty: the address is in a penalty; "
        "max_connections_per_address: a trusted proxy's client over the cap).");
    ptth_sbuf_printf(b, "ptth_requests_refused_total{reason=\"auth_penalty\"} %" PRIu64 "\n", relay->stats.penalty_refused);
    ptth_sbuf_printf(b, "ptth_requests_refused_total{reason=\"max_connections_per_address\"} %" PRIu64 "\n",
                     relay->stats.requests_refused_address);
    ptth_sbuf_prom_family(b, "ptth_auth_failures_total", "counter", "Requests refused with 401 or 403 (logged or not).");
    ptth_sbuf_printf(b, "ptth_auth_failures_total %" PRIu64 "\n", relay->stats.auth_failures);
    ptth_sbuf_prom_family(b, "ptth_auth_penalties_total", "counter", "Penalties started (--auth-fail-limit reached).");
    ptth_sbuf_printf(b, "ptth_auth_penalties_total %" PRIu64 "\n", relay->stats.auth_penalties);
    ptth_sbuf_prom_family(b, "ptth_address_table_entries", "gauge",
                          "Addresses in the per-address table now (at most --address-table-size).");
    ptth_sbuf_printf(b, "ptth_address_table_entries %u\n", relay->addrs.count);
    ptth_sbuf_prom_family(b, "ptth_address_table_evictions_total", "counter",
                          "Addresses forgotten to make room in the per-address table.");
    ptth_sbuf_printf(b, "ptth_address_table_evictions_total %" PRIu64 "\n", relay->addrs.evicted);
    ptth_sbuf_prom_family(b, "ptth_address_table_full_total", "counter",
                          "Connections and failures not counted because every entry of the table held open connections.");
    ptth_sbuf_printf(b, "ptth_address_table_full_total %" PRIu64 "\n", relay->addrs.full);
}

/* Resumable tunnels (SPEC §9.3, docs/ptth_relay.md "Resumable tunnels"). */
static void
render_resume(ptth_relay *relay, ptth_sbuf *b)
{
    const ptth_core_stats *st = &relay->core.stats;
    ptth_sbuf_prom_family(b, "ptth_tunnels_suspended", "gauge", "Tunnels suspended now, waiting for both sides to resume.");
    ptth_sbuf_printf(b, "ptth_tunnels_suspended %zu\n", relay->core.nsuspended);
    ptth_sbuf_prom_family(b, "ptth_tunnels_suspended_total", "counter",
                          "Times a resumable tunnel lost a leg (or was resumed while joined) and was suspended.");
    ptth_sbuf_printf(b, "ptth_tunnels_suspended_total %" PRIu64 "\n", st->tunnels_suspended);
    ptth_sbuf_prom_family(b, "ptth_tunnels_resumed_total", "counter", "Suspended tunnels joined again by both sides' resumes.");
    ptth_sbuf_printf(b, "ptth_tunnels_resumed_total %" PRIu64 "\n", st->tunnels_resumed);
    ptth_sbuf_prom_family(b, "ptth_resume_refused_total", "counter", "Resume requests refused, by reason.");
    for (int r = 0; r < PTTH_REFUSED__COUNT; r++)
        ptth_sbuf_printf(b, "ptth_resume_refused_total{reason=\"%s\"} %" PRIu64 "\n", ptth_resume_refusal_name((ptth_resume_refusal)r),
                         st->resume_refused[r]);
    ptth_sbuf_prom_family(b, "ptth_resume_replayed_bytes_total", "counter",
                          "Positions (payload bytes and FINs) the terminators sent again after resumes, by direction.");
    ptth_sbuf_printf(b,
                     "ptth_resume_replayed_bytes_total{direction=\"up\"} %" PRIu64
                     "\nptth_resume_replayed_bytes_total{direction=\"down\"} %" PRIu64 "\n",
                     st->replayed_up, st->replayed_down);
}

static void
render_metrics(ptth_relay *relay, const snapshot *s, ptth_sbuf *b)
{
    ptth_sbuf_prom_family(b, "ptth_relay_info", "gauge", "Always 1; the version of this relay.");
    ptth_sbuf_lit(b, "ptth_relay_info{version=\"");
    ptth_sbuf_labels(b, PTTH_VERSION);
    ptth_sbuf_lit(b, "\"} 1\n");
    ptth_sbuf_prom_family(b, "ptth_relay_start_time_seconds", "gauge", "When this relay started, in seconds since the Unix epoch.");
    ptth_sbuf_printf(b, "ptth_relay_start_time_seconds %.3f\n", (double)(s->wall_ms - (s->now_ms - relay->started_ms)) / 1000.0);

    ptth_sbuf_prom_family(b, "ptth_tunnels_open", "gauge", "Tunnels the relay holds now, in any state.");
    ptth_sbuf_printf(b, "ptth_tunnels_open %zu\n", s->ntun);
    ptth_sbuf_prom_family(
        b, "ptth_tunnels_current", "gauge",
        "Tunnels now, by state (await_listen: the connect waits for a listen; await_accept: for the server's accept).");
    for (unsigned k = 0; k < PTTH_TUNNEL_PHASES; k++)
        ptth_sbuf_printf(b, "ptth_tunnels_current{state=\"%s\"} %zu\n", ptth_tunnel_phase_name(k), s->by_state[k]);
    ptth_sbuf_prom_family(b, "ptth_tunnels_opened_total", "counter", "Tunnels started (connects accepted for matching).");
    ptth_sbuf_printf(b, "ptth_tunnels_opened_total %" PRIu64 "\n", relay->core.stats.tunnels_opened);
    ptth_sbuf_prom_family(b, "ptth_tunnels_total", "counter", "Tunnels ended, by result.");
    for (int r = 0; r < PTTH_END__COUNT; r++)
        ptth_sbuf_printf(b, "ptth_tunnels_total{result=\"%s\"} %" PRIu64 "\n", ptth_end_reason_name((ptth_end_reason)r),
                         relay->core.stats.tunnels_ended[r]);
    ptth_sbuf_prom_family(b, "ptth_bytes_total", "counter",
                          "Bytes carried, by direction (up: client to server, down: server to client).");
    ptth_sbuf_printf(b, "ptth_bytes_total{direction=\"up\"} %" PRIu64 "\nptth_bytes_total{direction=\"down\"} %" PRIu64 "\n",
                     relay->core.stats.bytes_up, relay->core.stats.bytes_down);
    render_resume(relay, b);
    ptth_sbuf_prom_family(b, "ptth_servers_online", "gauge",
                          "Servers online now (a listen outstanding or in the last --listen-timeout).");
    ptth_sbuf_printf(b, "ptth_servers_online %zu\n", s->online);
    ptth_sbuf_prom_family(b, "ptth_listens_outstanding", "gauge", "Listens held now, all servers.");
    ptth_sbuf_printf(b, "ptth_listens_outstanding %zu\n", s->listens);
    render_hardening(relay, b);

    ptth_sbuf_prom_family(b, "ptth_server_online", "gauge", "1 when the server is online, 0 when it was seen and went offline.");
    for (size_t i = 0; i < s->nsrv; i++)
        ptth_sbuf_prom_sample(b, "ptth_server_online", s->srvs[i]->name, NULL, NULL, s->srvs[i]->online);
    ptth_sbuf_prom_family(b, "ptth_server_listens", "gauge", "Listens held now, by server.");
    for (size_t i = 0; i < s->nsrv; i++)
        ptth_sbuf_prom_sample(b, "ptth_server_listens", s->srvs[i]->name, NULL, NULL, s->srvs[i]->nlistens);
    ptth_sbuf_prom_family(b, "ptth_server_tunnels_open", "gauge", "Tunnels now, by server.");
    for (size_t i = 0; i < s->nsrv; i++)
        ptth_sbuf_prom_sample(b, "ptth_server_tunnels_open", s->srvs[i]->name, NULL, NULL, s->srvs[i]->ntunnels);

    ptth_sbuf_prom_family(b, "ptth_port_tunnels_open", "gauge", "Tunnels now, by server and port.");
    for (size_t i = 0; i < s->nser; i++)
        ptth_sbuf_prom_sample(b, "ptth_port_tunnels_open", s->ser[i].server, s->ser[i].port, NULL, s->ser[i].open);
    ptth_sbuf_prom_family(b, "ptth_port_tunnels_total", "counter", "Tunnels ended, by server, port and result.");
    for (size_t i = 0; i < s->nser; i++)
        for (int r = 0; r < PTTH_END__COUNT; r++) {
            char extra[48];
            snprintf(extra, sizeof(extra), ",result=\"%s\"", ptth_end_reason_name((ptth_end_reason)r));
            ptth_sbuf_prom_sample(b, "ptth_port_tunnels_total", s->ser[i].server, s->ser[i].port, extra,
                                  s->ser[i].st != NULL ? s->ser[i].st->ended[r] : 0);
        }
    ptth_sbuf_prom_family(b, "ptth_port_bytes_total", "counter",
                          "Bytes carried, by server, port and direction (open tunnels included).");
    for (size_t i = 0; i < s->nser; i++) {
        const series *z = &s->ser[i];
        ptth_sbuf_prom_sample(b, "ptth_port_bytes_total", z->server, z->port, ",direction=\"up\"",
                              z->live_up + (z->st != NULL ? z->st->bytes_up : 0));
        ptth_sbuf_prom_sample(b, "ptth_port_bytes_total", z->server, z->port, ",direction=\"down\"",
                              z->live_down + (z->st != NULL ? z->st->bytes_down : 0));
    }
}

/* ---- /v1/status ------------------------------------------------------------------ */

static void
json_str(ptth_sbuf *b, const char *s)
{
    ptth_sbuf_lit(b, "\"");
    ptth_sbuf_jsons(b, s);
    ptth_sbuf_lit(b, "\"");
}

/* ,"key":"escaped value" */
static void
json_kv(ptth_sbuf *b, const char *key, const char *value)
{
    ptth_sbuf_printf(b, ",\"%s\":", key);
    json_str(b, value);
}

static void
render_status(ptth_relay *relay, const snapshot *s, ptth_sbuf *b)
{
    ptth_sbuf_printf(b, "{\"relay\":{\"version\":");
    json_str(b, PTTH_VERSION);
    ptth_sbuf_printf(b,
                     ",\"uptime_s\":%lld,\"servers_online\":%zu,\"listens\":%zu,\"tunnels_open\":%zu,"
                     "\"tunnels_opened\":%" PRIu64 ",\"bytes_up\":%" PRIu64 ",\"bytes_down\":%" PRIu64
                     ",\"tunnels_suspended\":%zu,\"tunnels_resumed\":%" PRIu64 ",\"replayed_up\":%" PRIu64
                     ",\"replayed_down\":%" PRIu64 ",\"tunnels_ended\":{",
                     (s->now_ms - relay->started_ms) / 1000, s->online, s->listens, s->ntun, relay->core.stats.tunnels_opened,
                     relay->core.stats.bytes_up, relay->core.stats.bytes_down, relay->core.nsuspended,
                     relay->core.stats.tunnels_resumed, relay->core.stats.replayed_up, relay->core.stats.replayed_down);
    for (int r = 0; r < PTTH_END__COUNT; r++)
        ptth_sbuf_printf(b, "%s\"%s\":%" PRIu64, r ? "," : "", ptth_end_reason_name((ptth_end_reason)r),
                         relay->core.stats.tunnels_ended[r]);
    ptth_sbuf_printf(b, "}},\n\"servers\":[");
    for (size_t i = 0; i < s->nsrv; i++) {
        const ptth_srv *v = s->srvs[i];
        ptth_sbuf_printf(b, "%s\n{\"name\":", i ? "," : "");
        json_str(b, v->name);
        ptth_sbuf_printf(b, ",\"online\":%s,\"ports\":[", v->online ? "true" : "false");
        for (size_t j = 0; j < v->nports; j++) {
            if (j)
                ptth_sbuf_lit(b, ",");
            json_str(b, v->ports[j]);
        }
        ptth_sbuf_printf(b, "],\"listens\":%zu,\"tunnels\":%zu}", v->nlistens, v->ntunnels);
    }
    ptth_sbuf_printf(b, "],\n\"tunnels\":[");
    for (size_t i = 0; i < s->ntun; i++) {
        const ptth_tunnel *t = s->tuns[i];
        ptth_sbuf_printf(b, "%s\n{\"id\":", i ? "," : "");
        json_str(b, t->id);
        json_kv(b, "server", t->server);
        json_kv(b, "port", t->port);
        json_kv(b, "proto", ptth_tunnel_proto_name(t->proto));
        json_kv(b, "client", t->client);
        json_kv(b, "addr", t->addr);
        json_kv(b, "state", ptth_tunnel_phase_name(ptth_tunnel_phase(t)));
        ptth_sbuf_printf(b, ",\"bytes_up\":%" PRIu64 ",\"bytes_down\":%" PRIu64 ",\"age_ms\":%lld}", t->up.bytes, t->down.bytes,
                         s->now_ms - t->started_ms);
    }
    ptth_sbuf_printf(b, "],\n\"recent\":[");
    for (size_t i = 0; i < s->nrecent; i++) {
        const recent_end *r = s->recent[i];
        ptth_sbuf_printf(b, "%s\n{\"id\":", i ? "," : "");
        json_str(b, r->id);
        json_kv(b, "server", r->server);
        json_kv(b, "port", r->port);
        json_kv(b, "client", r->client);
        json_kv(b, "addr", r->addr);
        json_kv(b, "reason", ptth_end_reason_name(r->reason));
        json_kv(b, "detail", r->detail);
        ptth_sbuf_printf(b, ",\"bytes_up\":%" PRIu64 ",\"bytes_down\":%" PRIu64 ",\"duration_ms\":%lld,\"ended_ago_ms\":%lld}",
                         r->bytes_up, r->bytes_down, r->duration_ms, s->now_ms - r->ended_ms);
    }
    ptth_sbuf_printf(b, "]}\n");
}

/* ---- / ---------------------------------------------------------------------------- */

#define HTML_MAX_TUNNEL_ROWS 500

static void
human_bytes(char *out, size_t outlen, uint64_t n)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = (double)n;
    int u = 0;
    while (v >= 1024 && u < 5)
        v /= 1024, u++;
    if (u == 0)
        snprintf(out, outlen, "%" PRIu64 " B", n);
    else
        snprintf(out, outlen, "%.1f %s", v, units[u]);
}

static void
human_ms(char *out, size_t outlen, long long ms)
{
    long long s = ms / 1000;
    if (s < 60)
        snprintf(out, outlen, "%lld.%01llds", s, (ms % 1000) / 100);
    else if (s < 3600)
        snprintf(out, outlen, "%lldm %02llds", s / 60, s % 60);
    else if (s < 86400)
        snprintf(out, outlen, "%lldh %02lldm", s / 3600, (s % 3600) / 60);
    else
        snprintf(out, outlen, "%lldd %02lldh", s / 86400, (s % 86400) / 3600);
}

static void
td(ptth_sbuf *b, const char *text)
{
    ptth_sbuf_lit(b, "<td>");
    ptth_sbuf_htmls(b, text);
    ptth_sbuf_lit(b, "</td>");
}

static void
td_bytes(ptth_sbuf *b, uint64_t n)
{
    char h[32];
    human_bytes(h, sizeof(h), n);
    ptth_sbuf_printf(b, "<td class=\"n\" title=\"%" PRIu64 " bytes\">%s</td>", n, h);
}

static void
td_ms(ptth_sbuf *b, long long ms)
{
    char h[32];
    human_ms(h, sizeof(h), ms);
    ptth_sbuf_printf(b, "<td class=\"n\">%s</td>", h);
}

static void
card(ptth_sbuf *b, const char *id, const char *value, const char *label)
{
    ptth_sbuf_printf(b, "<div class=\"card\" id=\"%s\"><b>%s</b>%s</div>\n", id, value, label);
}

static const char html_head[] =
    "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<meta http-equiv=\"refresh\" content=\"10\">\n<title>ptth_relay status</title>\n<style>\n"
    "body{font-family:system-ui,-apple-system,\"Segoe UI\",sans-serif;margin:1.5em 2em;color:#1d1d1f;background:#f6f7f9}\n"
    "h1{font-size:1.5em;margin:0}h2{font-size:1.1em;margin:1.6em 0 .5em}\n"
    ".sub{color:#5f6368;margin:.3em 0 1.2em}.sub a{color:#1a5fb4}\n"
    ".cards{display:flex;gap:.8em;flex-wrap:wrap}\n"
    ".card{background:#fff;border:1px solid #d8dbe0;border-radius:8px;padding:.6em 1em;min-width:8.5em;color:#5f6368;"
    "font-size:.85em}\n.card b{display:block;font-size:1.7em;color:#1d1d1f;font-weight:600}\n"
    "table{border-collapse:collapse;background:#fff;width:100%;border:1px solid #d8dbe0}\n"
    "th,td{padding:.35em .7em;text-align:left;font-size:.88em;border-bottom:1px solid #eceef1;vertical-align:top}\n"
    "th{background:#eef0f3;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\n"
    "td.id,td.addr{font-family:ui-monospace,monospace;font-size:.82em}\n"
    ".on{color:#137333;font-weight:600}.off{color:#b3261e}.empty{color:#5f6368;font-style:italic}\n"
    ".r-fin{color:#137333}.r-rst,.r-backend,.r-timeout{color:#b3261e}.r-idle,.r-shutdown{color:#7a5900}\n"
    "</style></head><body>\n";

static void
render_index(ptth_relay *relay, const snapshot *s, ptth_sbuf *b)
{
    char v1[32], v2[32];
    ptth_sbuf_add(b, html_head, sizeof(html_head) - 1);
    human_ms(v1, sizeof(v1), s->now_ms - relay->started_ms);
    ptth_sbuf_lit(b, "<h1>ptth_relay</h1>\n<div class=\"sub\">version ");
    ptth_sbuf_htmls(b, PTTH_VERSION);
    ptth_sbuf_printf(b,
                     " &middot; up %s &middot; <a href=\"v1/status\">JSON</a> &middot; <a href=\"metrics\">metrics</a>"
                     " &middot; refreshes every 10 s</div>\n<div class=\"cards\">\n",
                     v1);
    snprintf(v1, sizeof(v1), "%zu", s->online);
    card(b, "servers-online", v1, "servers online");
    snprintf(v1, sizeof(v1), "%zu", s->ntun);
    card(b, "tunnels-open", v1, "tunnels open");
    snprintf(v1, sizeof(v1), "%zu", s->listens);
    card(b, "listens", v1, "listens held");
    snprintf(v1, sizeof(v1), "%" PRIu64, s->ended_total);
    card(b, "tunnels-ended", v1, "tunnels ended");
    human_bytes(v1, sizeof(v1), relay->core.stats.bytes_up);
    card(b, "bytes-up", v1, "client &rarr; server");
    human_bytes(v2, sizeof(v2), relay->core.stats.bytes_down);
    card(b, "bytes-down", v2, "server &rarr; client");
    /* resumable tunnels (SPEC §9.3): suspended now, resumes, what the
     * terminators sent again after them */
    snprintf(v1, sizeof(v1), "%zu", relay->core.nsuspended);
    card(b, "tunnels-suspended", v1, "tunnels suspended");
    snprintf(v1, sizeof(v1), "%" PRIu64, relay->core.stats.tunnels_resumed);
    card(b, "tunnels-resumed", v1, "resumes");
    human_bytes(v1, sizeof(v1), relay->core.stats.replayed_up + relay->core.stats.replayed_down);
    card(b, "bytes-replayed", v1, "replayed after resumes");
    ptth_sbuf_lit(b, "</div>\n");

    ptth_sbuf_printf(b,
                     "<h2>Servers (%zu online of %zu seen)</h2>\n<table id=\"servers\"><tr><th>server</th><th>state</th>"
                     "<th>ports</th><th>listens held</th><th>tunnels</th></tr>\n",
                     s->online, s->nsrv);
    for (size_t i = 0; i < s->nsrv; i++) {
        const ptth_srv *v = s->srvs[i];
        ptth_sbuf_lit(b, "<tr class=\"server\">");
        td(b, v->name);
        ptth_sbuf_printf(b, "<td class=\"%s\">%s</td><td>", v->online ? "on" : "off", v->online ? "online" : "offline");
        for (size_t j = 0; j < v->nports; j++) {
            if (j)
                ptth_sbuf_lit(b, ", ");
            ptth_sbuf_htmls(b, v->ports[j]);
        }
        ptth_sbuf_printf(b, "</td><td class=\"n\">%zu</td><td class=\"n\">%zu</td></tr>\n", v->nlistens, v->ntunnels);
    }
    if (s->nsrv == 0)
        ptth_sbuf_printf(b, "<tr><td colspan=\"5\" class=\"empty\">no server has sent a listen yet</td></tr>\n");
    ptth_sbuf_lit(b, "</table>\n");

    ptth_sbuf_printf(b,
                     "<h2>Open tunnels (%zu)</h2>\n<table id=\"tunnels\"><tr><th>server</th><th>port</th><th>client</th>"
                     "<th>address</th><th>state</th><th>up</th><th>down</th><th>age</th><th>id</th></tr>\n",
                     s->ntun);
    size_t rows = s->ntun < HTML_MAX_TUNNEL_ROWS ? s->ntun : HTML_MAX_TUNNEL_ROWS;
    for (size_t i = 0; i < rows; i++) {
        const ptth_tunnel *t = s->tuns[i];
        ptth_sbuf_lit(b, "<tr class=\"tunnel\">");
        td(b, t->server);
        td(b, t->port);
        td(b, t->client);
        ptth_sbuf_lit(b, "<td class=\"addr\">");
        ptth_sbuf_htmls(b, t->addr);
        ptth_sbuf_printf(b, "</td><td>%s</td>", ptth_tunnel_phase_name(ptth_tunnel_phase(t)));
        td_bytes(b, t->up.bytes);
        td_bytes(b, t->down.bytes);
        td_ms(b, s->now_ms - t->started_ms);
        ptth_sbuf_lit(b, "<td class=\"id\">");
        ptth_sbuf_htmls(b, t->id);
        ptth_sbuf_lit(b, "</td></tr>\n");
    }
    if (s->ntun == 0)
        ptth_sbuf_printf(b, "<tr><td colspan=\"9\" class=\"empty\">no tunnel open</td></tr>\n");
    else if (rows < s->ntun)
        ptth_sbuf_printf(b, "<tr><td colspan=\"9\" class=\"empty\">%zu more: see <a href=\"v1/status\">JSON</a></td></tr>\n",
                         s->ntun - rows);
    ptth_sbuf_lit(b, "</table>\n");

    ptth_sbuf_printf(b,
                     "<h2>Recent tunnel ends (last %d)</h2>\n<table id=\"recent\"><tr><th>server</th><th>port</th>"
                     "<th>client</th><th>address</th><th>result</th><th>detail</th><th>up</th><th>down</th>"
                     "<th>duration</th><th>ended</th></tr>\n",
                     PTTH_ADMIN_RECENT);
    for (size_t i = 0; i < s->nrecent; i++) {
        const recent_end *r = s->recent[i];
        const char *reason = ptth_end_reason_name(r->reason);
        ptth_sbuf_lit(b, "<tr class=\"end\">");
        td(b, r->server);
        td(b, r->port);
        td(b, r->client);
        ptth_sbuf_lit(b, "<td class=\"addr\">");
        ptth_sbuf_htmls(b, r->addr);
        ptth_sbuf_printf(b, "</td><td class=\"r-%s\">%s</td>", reason, reason);
        td(b, r->detail);
        td_bytes(b, r->bytes_up);
        td_bytes(b, r->bytes_down);
        td_ms(b, r->duration_ms);
        human_ms(v1, sizeof(v1), s->now_ms - r->ended_ms);
        ptth_sbuf_printf(b, "<td class=\"n\">%s ago</td></tr>\n", v1);
    }
    if (s->nrecent == 0)
        ptth_sbuf_printf(b, "<tr><td colspan=\"10\" class=\"empty\">no tunnel has ended yet</td></tr>\n");
    ptth_sbuf_lit(b, "</table>\n</body></html>\n");
}

/* ---- the handler ------------------------------------------------------------------ */

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
    bool parsed = v != NULL && (ptth_auth_bearer(v, len, &h) == 0 || ptth_auth_basic_password(v, len, &h) == 0);
    if (!parsed || !ptth_auth_is_admin(&relay->auth, &h)) {
        /* one auth_failed line each, so that fail2ban also sees guessing at
         * the admin pages (a browser's first, key-less request counts too) */
        if (parsed && (ptth_auth_client_by_hash(&relay->auth, &h) != NULL || ptth_auth_server_by_hash(&relay->auth, &h) != NULL)) {
            ptth_guard_auth_failed(relay, req, "not_allowed", &h);
            ptth_reply(req, 403, "this key is not the admin key\n");
            return;
        }
        ptth_guard_auth_failed(relay, req, parsed ? "unknown_key" : "no_key", parsed ? &h : NULL);
        ptth_reply_header(req, "www-authenticate", H2O_STRLIT("Basic realm=\"ptth_relay\", charset=\"UTF-8\""));
        ptth_reply(req, 401, "admin key required (Authorization: Bearer KEY, or HTTP Basic with the key as password)\n");
        return;
    }

    snapshot s;
    ptth_sbuf b = {0};
    const char *type;
    if (!snapshot_take(relay, &s)) {
        ptth_reply(req, 500, "out of memory\n");
        return;
    }
    switch (kind) {
    case PTTH_ROUTE_METRICS:
        render_metrics(relay, &s, &b);
        type = "text/plain; version=0.0.4; charset=utf-8";
        break;
    case PTTH_ROUTE_STATUS:
        render_status(relay, &s, &b);
        type = "application/json";
        break;
    default:
        render_index(relay, &s, &b);
        type = "text/html; charset=utf-8";
        break;
    }
    snapshot_free(&s);
    if (b.failed || b.p == NULL) {
        ptth_sbuf_free(&b);
        ptth_log_warn("event=admin_failed problem=\"out of memory or page too large\"");
        ptth_reply(req, 500, "out of memory\n");
        return;
    }
    static h2o_generator_t generator = {NULL, NULL};
    h2o_iovec_t body = h2o_strdup(&req->pool, b.p, b.len);
    ptth_sbuf_free(&b);
    req->res.status = 200;
    req->res.reason = "OK";
    req->res.content_length = body.len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, type, strlen(type));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-content-type-options"), 0, NULL, H2O_STRLIT("nosniff"));
    if (kind == PTTH_ROUTE_INDEX) {
        /* no script, no frames, nothing from elsewhere: even a mistake in the
         * escaping could not run anything */
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("content-security-policy"), 0, NULL,
                              H2O_STRLIT("default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"));
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-frame-options"), 0, NULL, H2O_STRLIT("DENY"));
    }
    h2o_start_response(req, &generator);
    if (h2o_memis(req->input.method.base, req->input.method.len, H2O_STRLIT("HEAD")))
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
    else
        h2o_send(req, &body, 1, H2O_SEND_STATE_FINAL);
}
