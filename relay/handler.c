/*
 * handler.c: see handler.h.
 */
#include "handler.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "admin.h"
#include "core_h2o.h"
#include "frame.h"
#include "guard.h"
#include "h2obuf.h"
#include "instances.h"
#include "log.h"
#include "joint.h"
#include "names.h"
#include "reply.h"
#include "resume.h"
#include "route.h"
#include "tunnel.h"

typedef struct relay_handler {
    h2o_handler_t super;
    ptth_relay *relay;
} relay_handler;

/* Who the request's key belongs to. */
typedef struct caller {
    bool has_key;
    ptth_key_hash hash;
    const ptth_principal *server; /* the server named in the path, when the key is its key */
    const ptth_principal *client; /* the client whose key it is */
    ptth_instance instance;       /* PTTH-Instance (slot "" when absent) */
} caller;

/* PTTH-Instance (instance.h): absent is fine (an older terminator: no
 * instance), malformed is 400 with why. 0, or -1 when answered. */
static int
instance_of(h2o_req_t *req, ptth_instance *out)
{
    size_t len;
    const char *why = NULL;
    const char *v = ptth_req_header(req, "ptth-instance", &len);
    memset(out, 0, sizeof(*out));
    if (v == NULL || ptth_instance_parse(v, len, out, &why) == 0)
        return 0;
    char msg[200];
    snprintf(msg, sizeof(msg), "bad PTTH-Instance (%s): expected SLOT.LIFE, base64url, at most 43 characters each\n", why);
    ptth_reply(req, 400, msg);
    return -1;
}

/* The caller's instance told the core (instances.h): a terminator that
 * restarted ends the suspended tunnels of its previous life. */
static void
seen(ptth_relay *relay, const caller *c, bool server_side, const char *name, size_t name_len)
{
    char n[PTTH_NAME_MAX + 1];
    if (c->instance.slot[0] == '\0' || name_len > PTTH_NAME_MAX)
        return;
    memcpy(n, name, name_len);
    n[name_len] = '\0';
    ptth_instances_seen(&relay->core, server_side, n, &c->instance);
}

static void
identify(ptth_relay *relay, h2o_req_t *req, const ptth_route *route, caller *c)
{
    size_t len;
    const char *v = ptth_req_header(req, "authorization", &len);
    ptth_instance inst = c->instance;
    memset(c, 0, sizeof(*c));
    c->instance = inst;
    if (v == NULL || ptth_auth_bearer(v, len, &c->hash) != 0)
        return;
    c->has_key = true;
    if (route->server.len != 0) {
        const ptth_principal *p = ptth_auth_server(&relay->auth, route->server.base, route->server.len);
        if (p != NULL && ptth_key_hash_equal(&p->hash, &c->hash))
            c->server = p;
    }
    c->client = ptth_auth_client_by_hash(&relay->auth, &c->hash);
}

/* 401 when the key is missing or unknown, 403 when it is known but not for
 * this; each refusal is one auth_failed log line. */
static void
refuse(ptth_relay *relay, h2o_req_t *req, const caller *c, const char *what)
{
    char msg[160];
    if (!c->has_key) {
        ptth_guard_auth_failed(relay, req, "no_key", NULL);
        ptth_reply_header(req, "www-authenticate", H2O_STRLIT("Bearer"));
        ptth_reply(req, 401, "missing or malformed Authorization: Bearer KEY\n");
        return;
    }
    bool known = c->client != NULL || c->server != NULL || ptth_auth_server_by_hash(&relay->auth, &c->hash) != NULL ||
                 ptth_auth_is_admin(&relay->auth, &c->hash);
    if (!known) {
        ptth_guard_auth_failed(relay, req, "unknown_key", &c->hash);
        ptth_reply_header(req, "www-authenticate", H2O_STRLIT("Bearer"));
        ptth_reply(req, 401, "unknown key\n");
        return;
    }
    ptth_guard_auth_failed(relay, req, "not_allowed", &c->hash);
    snprintf(msg, sizeof(msg), "this key may not %s\n", what);
    ptth_reply(req, 403, msg);
}

/* What a connect or accept asked for: the upgraded path, and resumption
 * (PTTH-Resumable: 1, on either path; docs/protocol.md). */
static unsigned
asks_of(h2o_req_t *req)
{
    size_t len;
    const char *v = ptth_req_header(req, "ptth-resumable", &len);
    return (ptth_joint_wanted(req) ? PTTH_ASK_UPGRADE : 0) | (v != NULL && len == 1 && v[0] == '1' ? PTTH_ASK_RESUME : 0);
}

/* PTTH-Proto: absent or tcp: a byte stream; udp: a datagram session
 * (docs/protocol.md). -1 when it is something else. */
static int
proto_of(h2o_req_t *req, ptth_tunnel_proto *out)
{
    size_t plen = 0;
    const char *proto = ptth_req_header(req, "ptth-proto", &plen);
    bool udp = proto != NULL && plen == 3 && strncasecmp(proto, "udp", 3) == 0;
    if (proto != NULL && !udp && !(plen == 3 && strncasecmp(proto, "tcp", 3) == 0))
        return -1;
    *out = udp ? PTTH_PROTO_UDP : PTTH_PROTO_TCP;
    return 0;
}

static void
do_listen(ptth_relay *relay, h2o_req_t *req, const ptth_route *route, const caller *c)
{
    size_t len;
    seen(relay, c, true, route->server.base, route->server.len);
    const char *ports = ptth_req_header(req, "ptth-ports", &len);
    ptth_tunnel_listen(&relay->core, ptth_rq_of(req), route->server.base, route->server.len, ports, len);
}

static void
do_connect(ptth_relay *relay, h2o_req_t *req, const ptth_route *route, const caller *c)
{
    char msg[256];
    if (c->client == NULL || !ptth_auth_allowed(&relay->auth, c->client->name, route->server.base, route->server.len,
                                                route->port.base, route->port.len)) {
        refuse(relay, req, c, "reach this server and port");
        return;
    }
    if (ptth_auth_server(&relay->auth, route->server.base, route->server.len) == NULL) {
        snprintf(msg, sizeof(msg), "unknown server '%.*s'\n", (int)route->server.len, route->server.base);
        ptth_reply(req, 404, msg);
        return;
    }
    ptth_tunnel_proto proto;
    if (proto_of(req, &proto) != 0) {
        ptth_reply(req, 400, "bad PTTH-Proto: expected tcp or udp\n");
        return;
    }
    seen(relay, c, false, c->client->name, strlen(c->client->name));
    char addr[PTTH_ADDR_STRLEN];
    ptth_guard_client_addr(relay, req, addr, sizeof(addr));
    ptth_tunnel *t = ptth_tunnel_connect(&relay->core, ptth_rq_of(req), route->server.base, route->server.len, route->port.base,
                                         route->port.len, c->client->name, addr, asks_of(req), proto);
    if (t != NULL)
        ptth_instances_record(t, false, &c->instance);
}

/* A header that must be a name (names.h), copied NUL-terminated into out;
 * false when absent or not a name. */
static bool
name_header(h2o_req_t *req, const char *name, char out[PTTH_NAME_MAX + 1])
{
    size_t len;
    const char *v = ptth_req_header(req, name, &len);
    if (v == NULL || !ptth_name_valid(v, len))
        return false;
    memcpy(out, v, len);
    out[len] = '\0';
    return true;
}

/* POST .../conns/{id}/resume (docs/protocol.md "Resumable tunnels"): the
 * checks in the contract's order, the key's side already checked by
 * do_conn: the ACL, resumption on, the token; then the core (the tunnel,
 * the request's shape). */
static void
do_resume(ptth_relay *relay, h2o_req_t *req, const ptth_route *route, const caller *c, bool is_server)
{
    char server[PTTH_NAME_MAX + 1], port[PTTH_NAME_MAX + 1], client[PTTH_NAME_MAX + 1], id[PTTH_ID_LEN + 1];
    ptth_resume_in in;
    memset(&in, 0, sizeof(in));
    in.server_side = is_server;
    /* the fields the ACL and the token need come first */
    if (!name_header(req, "ptth-port", port)) {
        ptth_reply(req, 400, "missing or bad PTTH-Port: the tunnel's port name\n");
        return;
    }
    if (proto_of(req, &in.proto) != 0) {
        ptth_reply(req, 400, "bad PTTH-Proto: expected tcp or udp\n");
        return;
    }
    if (is_server) {
        if (!name_header(req, "ptth-client", client)) {
            ptth_reply(req, 400, "missing or bad PTTH-Client: the client's name from the listen answer\n");
            return;
        }
    } else {
        snprintf(client, sizeof(client), "%s", c->client->name);
    }
    snprintf(server, sizeof(server), "%.*s", (int)route->server.len, route->server.base);
    snprintf(id, sizeof(id), "%.*s", (int)route->id.len, route->id.base);
    if (!ptth_auth_allowed(&relay->auth, client, route->server.base, route->server.len, port, strlen(port))) {
        refuse(relay, req, c, is_server ? "resume a tunnel of this client and port" : "reach this server and port");
        return;
    }
    if (relay->cfg->resume_grace == 0) {
        relay->core.stats.resume_refused[PTTH_REFUSED_OFF]++;
        ptth_reply(req, 404, "resumption is off\n");
        return;
    }
    size_t tlen;
    const char *token = ptth_req_header(req, "ptth-resume", &tlen);
    if (!ptth_resume_token_ok(&relay->resume_secret, id, is_server, server, port, ptth_tunnel_proto_name(in.proto), client, token,
                              tlen)) {
        relay->core.stats.resume_refused[PTTH_REFUSED_BAD_PROOF]++;
        ptth_guard_resume_refused(relay, req, id, is_server);
        ptth_reply(req, 403, "bad resume proof\n");
        return;
    }
    size_t len;
    const char *v;
    /* an upgrade request resumes an upgraded tunnel, a plain one a tunnel
     * of the chunked path (the core refuses the other path) */
    in.upgrade = ptth_joint_wanted(req);
    if ((v = ptth_req_header(req, "ptth-received", &len)) == NULL || ptth_resume_parse_count(v, len, &in.received) != 0)
        in.bad_request = "missing or bad PTTH-Received: a decimal count\n";
    else if ((v = ptth_req_header(req, "ptth-sent", &len)) == NULL || ptth_resume_parse_count(v, len, &in.sent) != 0)
        in.bad_request = "missing or bad PTTH-Sent: a decimal count\n";
    char addr[PTTH_ADDR_STRLEN];
    ptth_guard_client_addr(relay, req, addr, sizeof(addr));
    in.port = port;
    in.port_len = strlen(port);
    in.client = client;
    in.addr = addr;
    in.instance = &c->instance;
    ptth_tunnel_resume(&relay->core, ptth_rq_of(req), route->server.base, route->server.len, id, &in);
}

/* A chunk request's fields for the core. */
static void
chunk_in(h2o_req_t *req, ptth_chunk_in *in)
{
    in->seq = ptth_req_header(req, "ptth-seq", &in->seq_len);
    in->fin = ptth_req_header(req, "ptth-fin", &in->fin_len);
    in->epoch = ptth_req_header(req, "ptth-epoch", &in->epoch_len);
    in->len = req->entity.base != NULL ? req->entity.len : 0;
}

/* The conns/{id}/... routes: find the tunnel and check that the caller is
 * its server or its client, as the route requires. */
static void
do_conn(ptth_relay *relay, h2o_req_t *req, const ptth_route *route, const caller *c)
{
    ptth_tunnel *t = ptth_tunnel_find(&relay->core, route->id.base, route->id.len);
    bool is_server = c->server != NULL;
    bool is_client = !is_server && c->client != NULL;
    ptth_route_side side = ptth_route_side_of(route->kind);

    if ((side == PTTH_SIDE_SERVER && !is_server) || (side == PTTH_SIDE_CLIENT && !is_client) ||
        (side == PTTH_SIDE_EITHER && !is_server && !is_client)) {
        refuse(relay, req, c, side == PTTH_SIDE_SERVER ? "act as this server" : "act as a client of this tunnel");
        return;
    }
    if (is_server)
        seen(relay, c, true, route->server.base, route->server.len);
    else
        seen(relay, c, false, c->client->name, strlen(c->client->name));
    t = ptth_tunnel_find(&relay->core, route->id.base, route->id.len); /* seen() may have ended it */
    if (route->kind == PTTH_ROUTE_RESUME) {
        do_resume(relay, req, route, c, is_server);
        return;
    }
    if (t == NULL || strlen(t->server) != route->server.len || memcmp(t->server, route->server.base, route->server.len) != 0) {
        ptth_reply(req, 404, "unknown or closed tunnel\n");
        return;
    }
    if (is_client && strcmp(t->client, c->client->name) != 0) {
        refuse(relay, req, c, "act as a client of this tunnel");
        return;
    }

    size_t len;
    const char *reason;
    ptth_chunk_in in;
    switch (route->kind) {
    case PTTH_ROUTE_ACCEPT:
        if (t->state == PTTH_TUNNEL_AWAIT_ACCEPT)
            ptth_instances_record(t, true, &c->instance);
        ptth_tunnel_on_accept(t, ptth_rq_of(req), asks_of(req));
        break;
    case PTTH_ROUTE_REJECT:
        reason = ptth_req_header(req, "ptth-reason", &len);
        ptth_tunnel_on_reject(t, ptth_rq_of(req), reason, len);
        break;
    case PTTH_ROUTE_DOWNSTREAM:
    case PTTH_ROUTE_UPSTREAM:
        chunk_in(req, &in);
        ptth_tunnel_on_chunk(t, ptth_rq_of(req), route->kind == PTTH_ROUTE_UPSTREAM, &in);
        break;
    case PTTH_ROUTE_CLOSE: {
        char text[PTTH_FRAME_REASON_MAX + 1];
        reason = ptth_req_header(req, "ptth-reason", &len);
        snprintf(text, sizeof(text), "%s: %.*s", is_server ? "closed by server" : "closed by client", (int)(len < 200 ? len : 200),
                 reason != NULL ? reason : "");
        if (reason == NULL)
            text[strlen(text) - 2] = '\0';
        ptth_reply(req, 204, NULL);
        ptth_tunnel_end(t, PTTH_END_RST, text);
        break;
    }
    default:
        ptth_reply(req, 404, "not found\n");
        break;
    }
}

static int
on_req(h2o_handler_t *self, h2o_req_t *req)
{
    ptth_relay *relay = ((relay_handler *)self)->relay;
    ptth_route route;
    ptth_route_parse(req->input.path.base, req->input.path.len, &route);
    ptth_h2obuf_on_request(req, route.kind == PTTH_ROUTE_UPSTREAM || route.kind == PTTH_ROUTE_DOWNSTREAM);
    ptth_guard_note_request(req);

    if (route.kind == PTTH_ROUTE_NOT_FOUND) {
        ptth_reply(req, 404, "not found\n");
        return 0;
    }
    if (!ptth_route_method_ok(route.kind, req->input.method.base, req->input.method.len)) {
        ptth_route_side side = ptth_route_side_of(route.kind);
        ptth_reply_header(req, "allow", side == PTTH_SIDE_NONE ? "GET, HEAD" : "POST", side == PTTH_SIDE_NONE ? 9 : 4);
        ptth_reply(req, 405, "method not allowed\n");
        return 0;
    }
    if (route.kind == PTTH_ROUTE_HEALTHZ) {
        ptth_reply(req, 200, "ok\n");
        return 0;
    }
    /* every other route takes a key: an address in a penalty, or a proxy's
     * client over its connection cap, is answered before any key is looked at */
    if (ptth_guard_request(relay, req))
        return 0;
    switch (route.kind) {
    case PTTH_ROUTE_METRICS:
    case PTTH_ROUTE_STATUS:
    case PTTH_ROUTE_INDEX:
        ptth_admin_serve(relay, req, route.kind);
        return 0;
    default:
        break;
    }
    if (relay->shutting_down) {
        ptth_reply_retry(req, 503, PTTH_RETRY_OFFLINE, "relay shutting down\n");
        return 0;
    }

    caller c;
    if (instance_of(req, &c.instance) != 0)
        return 0;
    identify(relay, req, &route, &c);
    switch (route.kind) {
    case PTTH_ROUTE_LISTEN:
        if (c.server == NULL)
            refuse(relay, req, &c, "listen for this server");
        else
            do_listen(relay, req, &route, &c);
        break;
    case PTTH_ROUTE_CONNECT:
        do_connect(relay, req, &route, &c);
        break;
    default:
        do_conn(relay, req, &route, &c);
        break;
    }
    return 0;
}

void
ptth_handler_register(ptth_relay *relay, h2o_hostconf_t *hostconf)
{
    h2o_pathconf_t *pathconf = h2o_config_register_path(hostconf, "/", 0);
    relay_handler *h = (relay_handler *)h2o_create_handler(pathconf, sizeof(*h));
    h->super.on_req = on_req;
    h->relay = relay;
}
