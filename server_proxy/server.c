/* server.c: listens, backend opening and tunnels of ptth_server; see server.h. */
#include "server.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api_path.h"
#include "bridge.h"
#include "log.h"
#include "transport.h"
#include "tunnel_set.h"

#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000
#define AUTH_RETRY_MS 30000
#define LISTEN_TIMEOUT_MS 300000L /* safety net; the relay answers far sooner */
#define OPEN_TIMEOUT_MS 10000     /* the relay's default --connect-timeout */

typedef struct listen_slot {
    ptth_req req;
    ptth_server *srv;
    bool waiting; /* for the retry timer */
} listen_slot;

typedef enum tunnel_state {
    T_OPENING,   /* backend being opened */
    T_REJECTING, /* `reject` in flight */
    T_BRIDGED,   /* the bridge has it */
} tunnel_state;

typedef struct tunnel {
    ptth_server *srv;
    ptth_tunnel_link link; /* in the server's tunnels */
    tunnel_state state;
    char conn[PTTH_REQ_FIELD_MAX];
    char port[PTTH_REQ_FIELD_MAX];
    char client_addr[PTTH_REQ_FIELD_MAX];
    char client_name[PTTH_REQ_FIELD_MAX]; /* PTTH-Client: sent again with each resume */
    char proto[8];                        /* PTTH-Proto of the listen answer, "" from an older relay */
    const ptth_server_port *pe;
    ptth_stream *stream; /* while opening */
    ptth_watch open_watch;
    ptth_timer open_timer;
    ptth_req reject_req;
    char reject_header[240];
    ptth_bridge *bridge;
    int mport;             /* its series in the metrics, -1 for an unknown port */
    ptth_tm_result result; /* for the metrics, when it ends */
    uint64_t bytes_up, bytes_down;
} tunnel;

struct ptth_server {
    ptth_loop *loop;
    ptth_relay_client *client;
    const ptth_server_params *p;
    char listen_path[PTTH_API_PATH_MAX];
    char ports_header[1024];
    listen_slot *slots;
    unsigned n_slots;
    ptth_timer retry_timer;
    unsigned failures;  /* consecutive retry rounds */
    long next_delay_ms; /* of the round being scheduled */
    bool ever_connected;
    bool relay_down; /* logged as such; the next success says it is back */
    bool auth_failing;
    ptth_tunnel_set tunnels;
    bool stopping; /* ptth_server_shutdown() was called */
    int *mports;   /* the metrics' series of each of p->ports */
};

static void start_listen(listen_slot *sl);

/* ---- retries ---- */

/* The first retry after a listen that worked comes at once: a cut
 * connection (a NAT mapping that expired, a proxy or relay restart) is most
 * often back at the next try, and the open tunnels resume without waiting,
 * so new tunnels should not wait either. After that, exponential backoff
 * with jitter: a random delay between half and all of
 * 0.5 s * 2^(failures - 1), at most 30 s. */
static long
backoff_ms(unsigned failures)
{
    if (failures == 0)
        return 0;
    long base = BACKOFF_MIN_MS;
    for (unsigned i = 1; i < failures && base < BACKOFF_MAX_MS; i++)
        base *= 2;
    if (base > BACKOFF_MAX_MS)
        base = BACKOFF_MAX_MS;
    return base / 2 + random() % (base / 2 + 1);
}

static void
on_retry_timer(ptth_timer *t)
{
    ptth_server *s = t->data;
    for (unsigned i = 0; i < s->n_slots; i++) {
        if (s->slots[i].waiting) {
            s->slots[i].waiting = false;
            start_listen(&s->slots[i]);
        }
    }
}

/* Parks a slot until the shared retry timer fires. The first failure of a
 * round arms the timer; the others of the same round wait for it. */
static void
retry_later(listen_slot *sl, long delay_ms)
{
    ptth_server *s = sl->srv;
    sl->waiting = true;
    if (!ptth_timer_active(&s->retry_timer))
        ptth_timer_start(s->loop, &s->retry_timer, delay_ms, on_retry_timer, s);
}

static void
relay_ok(ptth_server *s)
{
    if (s->relay_down || s->auth_failing)
        ptth_log_info("event=relay_connected relay=%s", ptth_relay_client_url(s->client));
    if (!s->ever_connected) {
        ptth_log_info("event=online relay=%s server=%s listens=%u", ptth_relay_client_url(s->client), s->p->name, s->n_slots);
        s->ever_connected = true;
    }
    s->relay_down = false;
    s->auth_failing = false;
    s->failures = 0;
    /* A listen got through, so the others parked by the same cut need not
     * wait for their round's delay. */
    if (ptth_timer_active(&s->retry_timer)) {
        ptth_timer_stop(s->loop, &s->retry_timer);
        on_retry_timer(&s->retry_timer);
    }
}

/* The relay could not be reached or answered 5xx/429: back off. */
static void
relay_failed(listen_slot *sl, const char *what, long retry_after)
{
    ptth_server *s = sl->srv;
    if (ptth_timer_active(&s->retry_timer)) {
        sl->waiting = true;
        return;
    }
    long delay = backoff_ms(s->failures);
    if (s->failures < 64)
        s->failures++;
    if (retry_after >= 0 && retry_after * 1000 > delay)
        delay = (retry_after > 3600 ? 3600 : retry_after) * 1000;
    char q[300];
    ptth_log_warn("event=relay_unreachable relay=%s error=%s retry_in_ms=%ld", ptth_relay_client_url(s->client),
                  ptth_log_quote(q, sizeof(q), what), delay);
    s->relay_down = true;
    retry_later(sl, delay);
}

/* ---- tunnels ---- */

static void
tunnel_unlink_free(tunnel *t)
{
    ptth_server *s = t->srv;
    ptth_tm_tunnel_end(s->p->metrics, t->mport, s->stopping && t->result == PTTH_TM_RST ? PTTH_TM_SHUTDOWN : t->result, t->bytes_up,
                       t->bytes_down);
    ptth_timer_stop(s->loop, &t->open_timer);
    ptth_watch_stop(&t->open_watch);
    ptth_req_cancel(&t->reject_req);
    if (t->stream != NULL)
        ptth_stream_close(t->stream);
    if (t->bridge != NULL)
        ptth_bridge_free(t->bridge);
    ptth_tunnel_set_remove(&s->tunnels, &t->link);
    free(t);
}

static void
on_reject_done(ptth_req *r, const char *error)
{
    tunnel *t = r->data;
    if (error != NULL)
        ptth_log_warn("event=reject_failed conn=%s error=%s", t->conn, error);
    else if (r->status < 200 || r->status > 299)
        ptth_log_debug("event=reject_answered conn=%s status=%ld", t->conn, r->status);
    tunnel_unlink_free(t);
}

static const ptth_req_ops reject_ops = {
    .on_done = on_reject_done,
};

/* The backend cannot be reached: tell the relay (the client gets 502). */
static void
reject(tunnel *t, const char *why)
{
    ptth_server *s = t->srv;
    char q[300];
    ptth_log_warn("event=backend_failed conn=%s port=%s target=%s error=%s", t->conn, t->port,
                  t->pe != NULL ? t->pe->target.text : "-", ptth_log_quote(q, sizeof(q), why));
    ptth_timer_stop(s->loop, &t->open_timer);
    ptth_watch_stop(&t->open_watch);
    if (s->stopping) {
        t->result = PTTH_TM_SHUTDOWN;
    } else {
        t->result = PTTH_TM_BACKEND;
        ptth_tm_failure(s->p->metrics, PTTH_TM_F_BACKEND);
    }
    if (t->stream != NULL) {
        ptth_stream_close(t->stream);
        t->stream = NULL;
    }
    char value[200], path[PTTH_API_PATH_MAX];
    ptth_req_header_value(value, sizeof(value), why);
    snprintf(t->reject_header, sizeof(t->reject_header), "PTTH-Reason: %s", value);
    ptth_api_conn_path(path, sizeof(path), s->p->name, t->conn, "reject");
    const char *headers[2] = {t->reject_header, NULL};
    t->state = T_REJECTING;
    t->reject_req.ops = &reject_ops;
    t->reject_req.data = t;
    t->reject_req.timeout_ms = 10000;
    if (ptth_req_start(s->client, &t->reject_req, PTTH_REQ_SHORT, path, headers, NULL, 0) != 0)
        tunnel_unlink_free(t);
}

static void
on_bridge_end(ptth_bridge *b, const ptth_bridge_result *res, void *data)
{
    (void)b;
    tunnel *t = data;
    char q[300];
    t->result = ptth_tm_classify(res->established, res->clean, res->status, res->reason);
    t->bytes_up = res->bytes_from_relay;
    t->bytes_down = res->bytes_to_relay;
    if (res->established)
        ptth_tm_relay_answered(t->srv->p->metrics);
    else
        ptth_tm_relay_failure(t->srv->p->metrics, res->status);
    if (!res->established) {
        ptth_log_warn("event=accept_failed conn=%s port=%s status=%ld reason=%s", t->conn, t->port, res->status,
                      ptth_log_quote(q, sizeof(q), res->reason));
    } else {
        char resumes[32] = "";
        if (res->resumes >= 0)
            snprintf(resumes, sizeof(resumes), " resumes=%d", res->resumes);
        ptth_log_info("event=tunnel_end conn=%s port=%s client_addr=%s bytes_up=%" PRIu64 " bytes_down=%" PRIu64
                      " duration_ms=%lld reason=%s%s",
                      t->conn, t->port, t->client_addr[0] ? t->client_addr : "-", res->bytes_from_relay, res->bytes_to_relay,
                      res->duration_ms, ptth_log_quote(q, sizeof(q), res->reason), resumes);
    }
    t->bridge = NULL; /* freed by the bridge itself */
    tunnel_unlink_free(t);
}

static void
on_bridge_resumed(ptth_bridge *b, uint64_t replayed, void *data)
{
    (void)b;
    tunnel *t = data;
    ptth_tm_resumed(t->srv->p->metrics, replayed);
}

static ssize_t
stream_read(void *ctx, void *buf, size_t len)
{
    return ptth_stream_read(ctx, buf, len);
}

static ssize_t
stream_write(void *ctx, const void *buf, size_t len)
{
    return ptth_stream_write(ctx, buf, len);
}

static int
stream_shutdown_write(void *ctx)
{
    return ptth_stream_shutdown_write(ctx);
}

static void
stream_close(void *ctx)
{
    ptth_stream_close(ctx);
}

static void
stream_abort(void *ctx)
{
    ptth_stream_abort(ctx);
}

static const ptth_local_ops stream_local_ops = {
    .read = stream_read,
    .write = stream_write,
    .shutdown_write = stream_shutdown_write,
    .close = stream_close,
    .abort = stream_abort,
};

/* The backend is open: accept the tunnel and bridge. */
static void
backend_open(tunnel *t)
{
    ptth_server *s = t->srv;
    ptth_timer_stop(s->loop, &t->open_timer);
    ptth_watch_stop(&t->open_watch);
    ptth_local_end local = {
        .ops = &stream_local_ops,
        .ctx = t->stream,
        .read_fd = t->stream->fd,
        .write_fd = t->stream->fd,
    };
    t->stream = NULL; /* the bridge owns it now */
    ptth_bridge_config bc = {
        .loop = s->loop,
        .client = s->client,
        .server = s->p->name,
        .chunk_kind = "downstream",
        .local_name = "backend",
        .max_chunk = s->p->max_chunk,
        .data_path = s->p->data_path,
        .resume_buffer = s->p->resume_buffer,
        .port = t->port,
        .proto = t->proto[0] != '\0' ? t->proto : NULL,
        .client_name = t->client_name,
        .on_resumed = on_bridge_resumed,
        .on_end = on_bridge_end,
        .data = t,
    };
    t->bridge = ptth_bridge_new(&bc, &local);
    if (t->bridge == NULL) {
        ptth_log_error("event=tunnel_failed conn=%s error=\"out of memory\"", t->conn);
        tunnel_unlink_free(t);
        return;
    }
    t->state = T_BRIDGED;
    char path[PTTH_API_PATH_MAX];
    ptth_api_conn_path(path, sizeof(path), s->p->name, t->conn, "accept");
    ptth_log_info("event=tunnel_open conn=%s port=%s target=%s client_addr=%s", t->conn, t->port, t->pe->target.text,
                  t->client_addr[0] ? t->client_addr : "-");
    ptth_bridge_start(t->bridge, path, t->conn); /* a failure still ends in on_bridge_end */
}

static void on_open_event(ptth_watch *w, uint32_t events);

/* Drives the transport's open one step. */
static void
continue_open(tunnel *t)
{
    char err[256] = "";
    int rc = ptth_stream_finish_open(t->stream, err, sizeof(err));
    if (rc == 0) {
        backend_open(t);
        return;
    }
    if (rc != -EINPROGRESS) {
        if (err[0] == '\0')
            snprintf(err, sizeof(err), "%s", strerror(-rc));
        reject(t, err);
        return;
    }
    /* still opening; the fd or the events may have changed */
    if (!t->open_watch.active || t->open_watch.fd != t->stream->fd) {
        ptth_watch_stop(&t->open_watch);
        rc = ptth_watch_start(t->srv->loop, &t->open_watch, t->stream->fd, t->stream->open_events, on_open_event, t);
        if (rc != 0)
            reject(t, "cannot watch the backend socket");
    } else {
        ptth_watch_set(&t->open_watch, t->stream->open_events);
    }
}

static void
on_open_event(ptth_watch *w, uint32_t events)
{
    (void)events;
    continue_open(w->data);
}

static void
on_open_timeout(ptth_timer *tm)
{
    reject(tm->data, "backend did not answer within 10 s");
}

/* A listen brought a client: open the backend of the port it asked for. */
static void
start_tunnel(ptth_server *s, const ptth_req *r)
{
    tunnel *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        ptth_log_error("event=tunnel_failed conn=%s error=\"out of memory\"", r->conn);
        return;
    }
    t->srv = s;
    snprintf(t->conn, sizeof(t->conn), "%s", r->conn);
    snprintf(t->port, sizeof(t->port), "%s", r->port);
    snprintf(t->client_name, sizeof(t->client_name), "%s", r->client_name);
    if (strcmp(r->proto, "tcp") == 0 || strcmp(r->proto, "udp") == 0)
        snprintf(t->proto, sizeof(t->proto), "%s", r->proto);
    /* an address is all it may hold: it goes into logs and PROXY headers */
    if (strspn(r->client_addr, "0123456789abcdefABCDEF.:[]%") == strlen(r->client_addr))
        snprintf(t->client_addr, sizeof(t->client_addr), "%s", r->client_addr);
    ptth_tunnel_set_add(&s->tunnels, &t->link);
    t->state = T_OPENING;
    t->mport = -1;
    t->result = PTTH_TM_RST;

    for (size_t i = 0; i < s->p->n_ports; i++)
        if (strcmp(s->p->ports[i].name, t->port) == 0) {
            t->pe = &s->p->ports[i];
            t->mport = s->mports[i];
        }
    ptth_tm_tunnel_open(s->p->metrics, t->mport);
    if (t->pe == NULL) {
        reject(t, "unknown port");
        return;
    }
    /* what the client's tunnel carries, as the relay says (PTTH-Proto; older relays do not): a UDP session
     * (datagrams framed, docs/protocol.md) only makes sense to a udp: target, a byte stream only to the others */
    bool udp_target = t->pe->target.kind == PTTH_TARGET_UDP;
    if (r->proto[0] != '\0' && (strcmp(r->proto, "udp") == 0) != udp_target) {
        char why[160];
        snprintf(why, sizeof(why), "port %s is %s: the client's tunnel is %s", t->port,
                 udp_target ? "a UDP target" : "not a UDP target", udp_target ? "a byte stream" : "a UDP session");
        reject(t, why);
        return;
    }
    ptth_open_info info = {
        .client_addr = t->client_addr[0] != '\0' ? t->client_addr : NULL,
        .proxy_protocol = s->p->proxy_protocol,
        .conn = t->conn,
    };
    char err[256] = "";
    int rc = ptth_transport_open(&t->pe->target, &info, &t->stream, err, sizeof(err));
    if (rc != 0) {
        t->stream = NULL;
        if (err[0] == '\0')
            snprintf(err, sizeof(err), "%s", strerror(-rc));
        reject(t, err);
        return;
    }
    rc = ptth_watch_start(s->loop, &t->open_watch, t->stream->fd, t->stream->open_events, on_open_event, t);
    if (rc != 0) {
        reject(t, "cannot watch the backend socket");
        return;
    }
    ptth_timer_start(s->loop, &t->open_timer, OPEN_TIMEOUT_MS, on_open_timeout, t);
}

/* ---- listens ---- */

static void
on_listen_done(ptth_req *r, const char *error)
{
    listen_slot *sl = r->data;
    ptth_server *s = sl->srv;
    if (error != NULL) {
        ptth_tm_relay_failure(s->p->metrics, 0);
        relay_failed(sl, error, -1);
        return;
    }
    long st = r->status;
    if (st == 204 || st == 200)
        ptth_tm_relay_answered(s->p->metrics);
    else
        ptth_tm_relay_failure(s->p->metrics, st);
    if (st == 204 || st == 200) {
        relay_ok(s);
        if (st == 200) {
            if (!ptth_conn_id_valid(r->conn) || !ptth_name_valid_str(r->port)) {
                ptth_log_warn("event=bad_listen_answer error=\"200 without a valid PTTH-Conn and PTTH-Port\"");
            } else {
                start_tunnel(s, r);
            }
        }
        start_listen(sl);
        return;
    }
    char q[300];
    if (st == 401 || st == 403) {
        if (!s->auth_failing || ptth_log_enabled(PTTH_LOG_DEBUG))
            ptth_log_error("event=relay_refused_key status=%ld relay=%s server=%s reason=%s retry_in_ms=%d "
                           "hint=\"check --name and --key-file against the relay's --server entry\"",
                           st, ptth_relay_client_url(s->client), s->p->name, ptth_log_quote(q, sizeof(q), r->reason),
                           AUTH_RETRY_MS);
        s->auth_failing = true;
        retry_later(sl, AUTH_RETRY_MS);
        return;
    }
    if (st >= 500 || st == 429) {
        char what[PTTH_REQ_REASON_MAX + 32];
        snprintf(what, sizeof(what), "HTTP %ld %s", st, r->reason);
        relay_failed(sl, what, r->retry_after);
        return;
    }
    /* anything else (400, 404, ...) will not fix itself quickly */
    ptth_log_error("event=listen_refused status=%ld relay=%s reason=%s retry_in_ms=%d", st, ptth_relay_client_url(s->client),
                   ptth_log_quote(q, sizeof(q), r->reason), AUTH_RETRY_MS);
    retry_later(sl, AUTH_RETRY_MS);
}

static const ptth_req_ops listen_ops = {
    .on_done = on_listen_done,
};

static void
start_listen(listen_slot *sl)
{
    ptth_server *s = sl->srv;
    if (s->stopping)
        return;
    const char *headers[2] = {s->ports_header, NULL};
    sl->req.ops = &listen_ops;
    sl->req.data = sl;
    sl->req.timeout_ms = LISTEN_TIMEOUT_MS;
    int rc = ptth_req_start(s->client, &sl->req, PTTH_REQ_SHORT, s->listen_path, headers, NULL, 0);
    if (rc != 0)
        relay_failed(sl, strerror(-rc), -1);
}

int
ptth_server_new(ptth_loop *loop, ptth_relay_client *client, const ptth_server_params *params, ptth_server **out, char *err,
                size_t errlen)
{
    *out = NULL;
    ptth_server *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    s->loop = loop;
    ptth_tunnel_set_init(&s->tunnels, loop);
    s->client = client;
    s->p = params;
    ptth_api_listen_path(s->listen_path, sizeof(s->listen_path), params->name);
    size_t used = (size_t)snprintf(s->ports_header, sizeof(s->ports_header), "PTTH-Ports: ");
    for (size_t i = 0; i < params->n_ports; i++) {
        int n = snprintf(s->ports_header + used, sizeof(s->ports_header) - used, "%s%s", i > 0 ? "," : "", params->ports[i].name);
        if (n < 0 || used + (size_t)n >= sizeof(s->ports_header)) {
            free(s->mports);
            free(s);
            snprintf(err, errlen, "too many port names for one PTTH-Ports header");
            return -E2BIG;
        }
        used += (size_t)n;
    }
    s->mports = calloc(params->n_ports > 0 ? params->n_ports : 1, sizeof(*s->mports));
    if (s->mports == NULL) {
        free(s);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    for (size_t i = 0; i < params->n_ports; i++)
        s->mports[i] = ptth_tm_add_port(params->metrics, params->name, params->ports[i].name);
    s->n_slots = params->listens > 0 ? params->listens : 1;
    s->slots = calloc(s->n_slots, sizeof(*s->slots));
    if (s->slots == NULL) {
        free(s->mports);
        free(s);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    srandom((unsigned)time(NULL) ^ (unsigned)getpid());
    for (unsigned i = 0; i < s->n_slots; i++) {
        s->slots[i].srv = s;
        start_listen(&s->slots[i]);
    }
    *out = s;
    return 0;
}

void
ptth_server_shutdown(ptth_server *s, void (*on_drained)(void *data), void *data)
{
    s->stopping = true;
    ptth_timer_stop(s->loop, &s->retry_timer);
    for (unsigned i = 0; i < s->n_slots; i++) {
        s->slots[i].waiting = false;
        ptth_req_cancel(&s->slots[i].req);
    }
    PTTH_TUNNEL_SET_EACH(&s->tunnels, l, nx)
    { /* reject() may free t when its request cannot start */
        tunnel *t = PTTH_TUNNEL_OF(l, tunnel, link);
        if (t->state == T_OPENING)
            reject(t, "server shutting down");
        else if (t->state == T_BRIDGED && t->bridge != NULL)
            ptth_bridge_shutdown(t->bridge);
    }
    ptth_tunnel_set_drain(&s->tunnels, on_drained, data);
}

void
ptth_server_free(ptth_server *s)
{
    if (s == NULL)
        return;
    ptth_timer_stop(s->loop, &s->retry_timer);
    for (unsigned i = 0; i < s->n_slots; i++)
        ptth_req_cancel(&s->slots[i].req);
    while (s->tunnels.head != NULL)
        tunnel_unlink_free(PTTH_TUNNEL_OF(s->tunnels.head, tunnel, link));
    ptth_tunnel_set_fini(&s->tunnels); /* after the removes: the last one may have scheduled on_drained */
    free(s->slots);
    free(s->mports);
    free(s);
}

size_t
ptth_server_tunnels(const ptth_server *s)
{
    return s->tunnels.count;
}

void
ptth_server_metrics_live(void *data, ptth_term_metrics *m)
{
    const ptth_server *s = data;
    PTTH_TUNNEL_SET_EACH(&s->tunnels, l, nx)
    {
        const tunnel *t = PTTH_TUNNEL_OF(l, tunnel, link);
        if (t->bridge == NULL)
            continue;
        uint64_t to_relay, from_relay;
        ptth_bridge_bytes(t->bridge, &to_relay, &from_relay);
        ptth_tm_live(m, t->mport, from_relay, to_relay);
    }
}
