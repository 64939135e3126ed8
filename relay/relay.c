/*
 * relay.c: see relay.h. Set-up and tear-down of the relay's state, and the
 * SIGHUP reload of keys and ACLs.
 */
#include "relay.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "core_h2o.h"
#include "h2obuf.h"
#include "handler.h"
#include "log.h"
#include "sysutil.h"
#include "joint.h"
#include "tunnel.h"

static int
build_trusted(const ptth_strlist *list, ptth_cidr **out, size_t *n, ptth_problems *problems)
{
    *out = NULL;
    *n = 0;
    if (list->count == 0)
        return 0;
    if ((*out = calloc(list->count, sizeof(**out))) == NULL) {
        ptth_problems_add(problems, "--trusted-proxy: out of memory");
        return -1;
    }
    for (size_t i = 0; i < list->count; i++) {
        if (ptth_cidr_parse(list->items[i], &(*out)[*n]) != 0) {
            ptth_problems_add(problems, "--trusted-proxy: bad CIDR '%s'", list->items[i]);
            free(*out);
            *out = NULL;
            *n = 0;
            return -1;
        }
        (*n)++;
    }
    return 0;
}

int
ptth_relay_init(ptth_relay *relay, ptth_relay_config *cfg, h2o_evloop_t *loop, ptth_problems *problems)
{
    memset(relay, 0, sizeof(*relay));
    relay->cfg = cfg;
    if (ptth_auth_build(&relay->auth, &cfg->server, &cfg->client, &cfg->allow, cfg->admin_key_hash, problems) != 0)
        return -1;
    if (build_trusted(&cfg->trusted_proxy, &relay->trusted, &relay->ntrusted, problems) != 0) {
        ptth_auth_free(&relay->auth);
        return -1;
    }

    h2o_config_init(&relay->globalconf);
    relay->globalconf.server_name = h2o_iovec_init(H2O_STRLIT("ptth_relay"));
    /* h2o refuses larger bodies itself (HTTP/1.1: 413; HTTP/2: the stream is
     * reset), so it never buffers more; a body of max-chunk + 1 bytes still
     * reaches the handler, which answers 413 (docs/protocol.md) */
    relay->globalconf.max_request_entity_size = (size_t)cfg->max_chunk + 1;
    /* request bodies start at a chunk's size (h2obuf.h) */
    ptth_h2obuf_init((size_t)cfg->max_chunk);
    /* held listens, connects and chunks are long-lived requests: let h2o run
     * all the streams it accepts on one HTTP/2 connection at once */
    relay->globalconf.http2.max_concurrent_requests_per_connection = 65536;
    /* --request-timeout: a TLS handshake, an HTTP/1 request (head and body)
     * or the pause between two, and an HTTP/2 connection without streams may
     * take this long; then h2o closes the connection (slow or idle clients
     * hold no descriptor and no buffer for longer) */
    relay->globalconf.handshake_timeout = cfg->request_timeout * 1000;
    relay->globalconf.http1.req_timeout = cfg->request_timeout * 1000;
    relay->globalconf.http2.idle_timeout = cfg->request_timeout * 1000;
    h2o_hostconf_t *hostconf = h2o_config_register_host(&relay->globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    ptth_handler_register(relay, hostconf);

    relay->loop = loop;
    int rc = ptth_peerset_init(&relay->peers, loop);
    if (rc != 0) {
        ptth_problems_add(problems, "cannot create an epoll set: %s", strerror(-rc));
        h2o_config_dispose(&relay->globalconf);
        free(relay->trusted);
        ptth_auth_free(&relay->auth);
        return -1;
    }
    if ((rc = ptth_peertable_init(&relay->addrs, (uint32_t)cfg->address_table_size)) != 0) {
        ptth_problems_add(problems, "--address-table-size %llu: cannot make the table: %s",
                          (unsigned long long)cfg->address_table_size, strerror(-rc));
        ptth_peerset_dispose(&relay->peers);
        h2o_config_dispose(&relay->globalconf);
        free(relay->trusted);
        ptth_auth_free(&relay->auth);
        return -1;
    }
    char err[600];
    if (ptth_resume_secret_load(&relay->resume_secret, cfg->resume_secret_file, err, sizeof(err)) != 0) {
        ptth_problems_add(problems, "%s", err);
        ptth_peertable_dispose(&relay->addrs);
        ptth_peerset_dispose(&relay->peers);
        h2o_config_dispose(&relay->globalconf);
        free(relay->trusted);
        ptth_auth_free(&relay->auth);
        return -1;
    }
    h2o_context_init(&relay->ctx, loop, &relay->globalconf);
    h2o_timeout_init(loop, &relay->listen_timeout, cfg->listen_timeout * 1000);
    h2o_timeout_init(loop, &relay->connect_timeout, cfg->connect_timeout * 1000);
    h2o_timeout_init(loop, &relay->heartbeat, cfg->heartbeat * 1000);
    h2o_timeout_init(loop, &relay->idle_timeout, (cfg->idle_timeout != 0 ? cfg->idle_timeout : 1) * 1000);
    h2o_timeout_init(loop, &relay->resume_timeout, (cfg->resume_grace != 0 ? cfg->resume_grace : 1) * 1000);
    ptth_core_h2o_init(relay);
    ptth_tunnel_resume_enable(&relay->core, &relay->resume_secret);
    ptth_admin_watch(relay);
    relay->started_ms = ptth_now_ms();
    return 0;
}

void
ptth_relay_end_all(ptth_relay *relay)
{
    relay->shutting_down = true;
    ptth_tunnel_end_all(&relay->core);
}

void
ptth_relay_dispose(ptth_relay *relay)
{
    ptth_relay_end_all(relay);
    ptth_admin_dispose(relay);
    h2o_timeout_dispose(relay->loop, &relay->listen_timeout);
    h2o_timeout_dispose(relay->loop, &relay->connect_timeout);
    h2o_timeout_dispose(relay->loop, &relay->heartbeat);
    h2o_timeout_dispose(relay->loop, &relay->idle_timeout);
    h2o_timeout_dispose(relay->loop, &relay->resume_timeout);
    ptth_resume_secret_wipe(&relay->resume_secret);
    h2o_context_dispose(&relay->ctx);
    ptth_peerset_dispose(&relay->peers);
    ptth_peertable_dispose(&relay->addrs);
    ptth_joint_release_pool();
    h2o_config_dispose(&relay->globalconf);
    ptth_core_dispose(&relay->core);
    ptth_auth_free(&relay->auth);
    free(relay->trusted);
    relay->trusted = NULL;
    relay->ntrusted = 0;
}

static void
swap_list(ptth_strlist *a, ptth_strlist *b)
{
    ptth_strlist t = *a;
    *a = *b;
    *b = t;
}

static bool
same_list(const ptth_strlist *a, const ptth_strlist *b)
{
    if (a->count != b->count)
        return false;
    for (size_t i = 0; i < a->count; i++)
        if (strcmp(a->items[i], b->items[i]) != 0)
            return false;
    return true;
}

static bool
same_str(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

int
ptth_relay_reload(ptth_relay *relay, ptth_relay_config *next, ptth_problems *problems)
{
    ptth_relay_config *cfg = relay->cfg;
    ptth_auth auth;
    ptth_cidr *trusted;
    size_t ntrusted;
    if (ptth_auth_build(&auth, &next->server, &next->client, &next->allow, next->admin_key_hash, problems) != 0)
        return -1;
    if (build_trusted(&next->trusted_proxy, &trusted, &ntrusted, problems) != 0) {
        ptth_auth_free(&auth);
        return -1;
    }

    static const char *const restart_only[] = {"listen",    "tls-cert",     "tls-key",   "listen-timeout", "connect-timeout",
                                               "heartbeat", "idle-timeout", "max-chunk", "request-timeout",
                                               "address-table-size", "resume-grace", "resume-secret-file"};
    const bool changed[] = {
        !same_list(&cfg->listen, &next->listen),       !same_str(cfg->tls_cert, next->tls_cert),
        !same_str(cfg->tls_key, next->tls_key),        cfg->listen_timeout != next->listen_timeout,
        cfg->connect_timeout != next->connect_timeout, cfg->heartbeat != next->heartbeat,
        cfg->idle_timeout != next->idle_timeout,       cfg->max_chunk != next->max_chunk,
        cfg->request_timeout != next->request_timeout, cfg->address_table_size != next->address_table_size,
        cfg->resume_grace != next->resume_grace,       !same_str(cfg->resume_secret_file, next->resume_secret_file),
    };
    for (size_t i = 0; i < sizeof(changed) / sizeof(changed[0]); i++)
        if (changed[i])
            ptth_log_warn("event=reload_ignored option=%s reason=\"takes effect at the next start\"", restart_only[i]);

    ptth_tunnel_apply_auth(&relay->core, &relay->auth, &auth);
    ptth_auth_free(&relay->auth);
    relay->auth = auth;
    free(relay->trusted);
    relay->trusted = trusted;
    relay->ntrusted = ntrusted;
    swap_list(&cfg->server, &next->server);
    swap_list(&cfg->client, &next->client);
    swap_list(&cfg->allow, &next->allow);
    swap_list(&cfg->trusted_proxy, &next->trusted_proxy);
    char *u = cfg->upgrade; /* new tunnels only: joined ones keep their path */
    cfg->upgrade = next->upgrade;
    next->upgrade = u;
    char *t = cfg->admin_key_hash;
    cfg->admin_key_hash = next->admin_key_hash;
    next->admin_key_hash = t;
    cfg->max_connections = next->max_connections;
    cfg->max_connections_per_server = next->max_connections_per_server;
    cfg->max_listens_per_server = next->max_listens_per_server;
    /* per-address limits: new connections and requests from now on; what an
     * address holds or has failed so far is kept */
    cfg->max_connections_per_address = next->max_connections_per_address;
    cfg->auth_fail_limit = next->auth_fail_limit;
    cfg->auth_fail_penalty = next->auth_fail_penalty;
    return 0;
}
