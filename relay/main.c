/*
 * main.c: ptth_relay, the program. Parses the options, sets up h2o (one
 * evloop, one context, one handler on "/"), listens, and runs until SIGINT or
 * SIGTERM. SIGHUP reloads keys and ACLs from --config.
 *
 * Signals reach the loop through a self-pipe: the handler only writes a byte;
 * the loop reads it and acts between events.
 *
 * Shutdown: stop accepting; end every tunnel with RST reason `shutdown`;
 * answer held listens 503; let the framed streams flush their last frames
 * (bounded wait); shut down the remaining connections so that h2o closes
 * them through its normal paths; then free everything and exit 0.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <h2o.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "addr.h"
#include "auth.h"
#include "config.h"
#include "handler.h"
#include "listener.h"
#include "log.h"
#include "options.h"
#include "registry.h"
#include "relay.h"
#include "sysutil.h"
#include "tunnel.h"

#define DRAIN_STREAMS_MS 2000
#define DRAIN_CONNS_MS 3000

static int signal_pipe[2] = {-1, -1};
static volatile sig_atomic_t got_term, got_hup;

static void
on_signal(int sig)
{
    int saved = errno;
    if (sig == SIGHUP)
        got_hup = 1;
    else
        got_term = 1;
    if (signal_pipe[1] >= 0) {
        ssize_t r = write(signal_pipe[1], "s", 1);
        (void)r;
    }
    errno = saved;
}

static void
on_signal_pipe(h2o_socket_t *sock, const char *err)
{
    if (err == NULL)
        h2o_buffer_consume(&sock->input, sock->input->size);
}

static int
install_signals(h2o_evloop_t *loop, h2o_socket_t **sock)
{
    if (pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
        return -errno;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    *sock = h2o_evloop_socket_create(loop, signal_pipe[0], H2O_SOCKET_FLAG_DONT_READ);
    h2o_socket_read_start(*sock, on_signal_pipe);
    return 0;
}

static int
build_trusted(const ptth_strlist *list, ptth_cidr **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (list->count == 0)
        return 0;
    if ((*out = calloc(list->count, sizeof(**out))) == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < list->count; i++)
        if (ptth_cidr_parse(list->items[i], &(*out)[(*n)++]) != 0)
            return -EINVAL;
    return 0;
}

static SSL_CTX *
make_ssl_ctx(const ptth_relay_config *cfg)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    h2o_ssl_register_alpn_protocols(ctx, h2o_alpn_protocols);
    return ctx;
}

/* The tunnels of a principal whose key was removed or changed end; so do the
 * listens of such a server. */
static void
apply_new_auth(ptth_relay *relay, ptth_auth *next)
{
    size_t n;
    ptth_tunnel **tuns = (ptth_tunnel **)ptth_table_values(&relay->tunnels, &n);
    for (size_t i = 0; i < n; i++) {
        ptth_tunnel *t = tuns[i];
        const ptth_principal *os = ptth_auth_server(&relay->auth, t->server, strlen(t->server));
        const ptth_principal *ns = ptth_auth_server(next, t->server, strlen(t->server));
        const ptth_principal *oc = ptth_auth_client(&relay->auth, t->client, strlen(t->client));
        const ptth_principal *nc = ptth_auth_client(next, t->client, strlen(t->client));
        bool server_ok = ns != NULL && os != NULL && strcmp(ns->hash.hex, os->hash.hex) == 0;
        bool client_ok = nc != NULL && oc != NULL && strcmp(nc->hash.hex, oc->hash.hex) == 0;
        if (!server_ok || !client_ok)
            ptth_tunnel_end(t, PTTH_END_RST, !server_ok ? "server key revoked" : "client key revoked");
    }
    free(tuns);

    ptth_srv **srvs = (ptth_srv **)ptth_table_values(&relay->servers, &n);
    for (size_t i = 0; i < n; i++) {
        ptth_srv *s = srvs[i];
        const ptth_principal *os = ptth_auth_server(&relay->auth, s->name, strlen(s->name));
        const ptth_principal *ns = ptth_auth_server(next, s->name, strlen(s->name));
        if (ns != NULL && os != NULL && strcmp(ns->hash.hex, os->hash.hex) == 0)
            continue;
        ptth_srv_drop_listens(s, 401, "server key revoked\n");
        if (ns == NULL && s->ntunnels == 0) {
            ptth_table_remove(&relay->servers, s->name, strlen(s->name));
            if (s->online)
                ptth_log_info("event=server_offline server=%s", s->name);
            ptth_srv_free(s);
        }
    }
    free(srvs);
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

/* SIGHUP: reads the options again (file and command line). Keys, ACLs, the
 * admin key, trusted proxies and the connection limits take effect; the
 * other options need a restart and a change to them is logged. A file with
 * problems keeps the running configuration and logs every problem. */
static void
reload(ptth_relay *relay, ptth_relay_config *cfg, const ptth_cli *cli, int argc, char **argv)
{
    if (cli->config_path == NULL) {
        ptth_log_warn("event=reload_skipped reason=\"no --config file to reload\"");
        return;
    }
    ptth_relay_config next;
    ptth_cli ncli;
    ptth_problems problems = {0};
    bool early = false;
    char q[512];
    if (ptth_options_load(&ptth_relay_program, &next, &ncli, argc, argv, &problems, &early) != 0) {
        for (size_t i = 0; i < problems.count; i++)
            ptth_log_error("event=reload_failed file=%s problem=%s", cli->config_path,
                           ptth_log_quote(q, sizeof(q), problems.lines[i]));
        ptth_log_error("event=reload_failed file=%s problems=%zu reason=\"kept the running configuration\"", cli->config_path,
                       problems.count);
        ptth_problems_free(&problems);
        ptth_options_free(&ptth_relay_program, &next);
        ptth_cli_free(&ncli);
        return;
    }
    ptth_auth auth;
    ptth_cidr *trusted;
    size_t ntrusted;
    if (ptth_auth_build(&auth, &next.server, &next.client, &next.allow, next.admin_key_hash, &problems) != 0 ||
        build_trusted(&next.trusted_proxy, &trusted, &ntrusted) != 0) {
        for (size_t i = 0; i < problems.count; i++)
            ptth_log_error("event=reload_failed problem=%s", ptth_log_quote(q, sizeof(q), problems.lines[i]));
        ptth_problems_free(&problems);
        ptth_options_free(&ptth_relay_program, &next);
        ptth_cli_free(&ncli);
        return;
    }

    static const char *const restart_only[] = {"listen", "tls-cert", "tls-key", "listen-timeout", "connect-timeout",
                                               "heartbeat", "idle-timeout", "max-chunk"};
    bool changed[8] = {
        !same_list(&cfg->listen, &next.listen),        !same_str(cfg->tls_cert, next.tls_cert),
        !same_str(cfg->tls_key, next.tls_key),         cfg->listen_timeout != next.listen_timeout,
        cfg->connect_timeout != next.connect_timeout, cfg->heartbeat != next.heartbeat,
        cfg->idle_timeout != next.idle_timeout,        cfg->max_chunk != next.max_chunk,
    };
    for (size_t i = 0; i < 8; i++)
        if (changed[i])
            ptth_log_warn("event=reload_ignored option=%s reason=\"takes effect at the next start\"", restart_only[i]);

    apply_new_auth(relay, &auth);
    ptth_auth_free(&relay->auth);
    relay->auth = auth;
    free(relay->trusted);
    relay->trusted = trusted;
    relay->ntrusted = ntrusted;
    swap_list(&cfg->server, &next.server);
    swap_list(&cfg->client, &next.client);
    swap_list(&cfg->allow, &next.allow);
    swap_list(&cfg->trusted_proxy, &next.trusted_proxy);
    char *t = cfg->admin_key_hash;
    cfg->admin_key_hash = next.admin_key_hash;
    next.admin_key_hash = t;
    cfg->max_connections = next.max_connections;
    cfg->max_connections_per_server = next.max_connections_per_server;
    ptth_log_set_level(ncli.log_level);
    ptth_log_info("event=reload file=%s servers=%zu clients=%zu rules=%zu", cli->config_path, relay->auth.nservers,
                  relay->auth.nclients, relay->auth.nrules);
    ptth_problems_free(&problems);
    ptth_options_free(&ptth_relay_program, &next);
    ptth_cli_free(&ncli);
}

/* Runs the loop until done() or the deadline. */
static void
run_until(ptth_relay *relay, bool (*done)(void *), void *arg, long long ms)
{
    long long deadline = ptth_now_ms() + ms;
    while (!done(arg)) {
        long long left = deadline - ptth_now_ms();
        if (left <= 0)
            break;
        h2o_evloop_run(relay->loop, (int32_t)(left < 50 ? left : 50));
    }
}

static bool
streams_done(void *arg)
{
    return ((ptth_relay *)arg)->nstreams == 0;
}

static bool
conns_done(void *arg)
{
    return ((ptth_listeners *)arg)->nconns == 0;
}

static void
shutdown_relay(ptth_relay *relay, ptth_listeners *ls)
{
    relay->shutting_down = true;
    ptth_listeners_close(ls);

    size_t n;
    ptth_tunnel **tuns = (ptth_tunnel **)ptth_table_values(&relay->tunnels, &n);
    for (size_t i = 0; i < n; i++)
        ptth_tunnel_end(tuns[i], PTTH_END_SHUTDOWN, "shutdown");
    free(tuns);
    ptth_srv **srvs = (ptth_srv **)ptth_table_values(&relay->servers, &n);
    for (size_t i = 0; i < n; i++) {
        ptth_table_remove(&relay->servers, srvs[i]->name, strlen(srvs[i]->name));
        ptth_srv_free(srvs[i]);
    }
    free(srvs);

    run_until(relay, streams_done, relay, DRAIN_STREAMS_MS);
    ptth_listeners_shutdown_conns(ls);
    run_until(relay, conns_done, ls, DRAIN_CONNS_MS);
}

int
main(int argc, char **argv)
{
    ptth_relay_config cfg;
    ptth_cli cli;
    ptth_parse_result pr = ptth_options_parse(&ptth_relay_program, &cfg, &cli, argc, argv);
    if (pr != PTTH_PARSE_RUN) {
        ptth_options_free(&ptth_relay_program, &cfg);
        ptth_cli_free(&cli);
        return pr == PTTH_PARSE_EXIT_OK ? 0 : 2;
    }
    ptth_raise_nofile_limit();

    static ptth_relay relay; /* zeroed; lives for the whole run */
    relay.cfg = &cfg;
    ptth_problems problems = {0};
    int exit_code = 1;
    SSL_CTX *ssl_ctx = NULL;
    h2o_socket_t *sigsock = NULL;
    ptth_listeners ls;
    memset(&ls, 0, sizeof(ls));
    h2o_linklist_init_anchor(&ls.conns);

    if (ptth_auth_build(&relay.auth, &cfg.server, &cfg.client, &cfg.allow, cfg.admin_key_hash, &problems) != 0 ||
        build_trusted(&cfg.trusted_proxy, &relay.trusted, &relay.ntrusted) != 0) {
        for (size_t i = 0; i < problems.count; i++)
            fprintf(stderr, "ptth_relay: %s\n", problems.lines[i]);
        ptth_problems_free(&problems);
        free(relay.trusted);
        ptth_options_free(&ptth_relay_program, &cfg);
        ptth_cli_free(&cli);
        return 2;
    }
    if (cfg.tls_cert != NULL && (ssl_ctx = make_ssl_ctx(&cfg)) == NULL) {
        fprintf(stderr, "ptth_relay: cannot set up TLS with --tls-cert '%s' and --tls-key '%s'\n", cfg.tls_cert, cfg.tls_key);
        ptth_auth_free(&relay.auth);
        free(relay.trusted);
        ptth_options_free(&ptth_relay_program, &cfg);
        ptth_cli_free(&cli);
        return 2;
    }

    h2o_config_init(&relay.globalconf);
    relay.globalconf.server_name = h2o_iovec_init(H2O_STRLIT("ptth_relay"));
    /* h2o refuses larger bodies itself; a body of max-chunk+1 reaches the
     * handler, which answers 413 (see docs/protocol.md for HTTP/2) */
    relay.globalconf.max_request_entity_size = (size_t)cfg.max_chunk + 1;
    relay.globalconf.http2.max_concurrent_requests_per_connection = 65536;
    relay.globalconf.http1.req_timeout = 30 * 1000;
    relay.globalconf.http2.idle_timeout = 60 * 1000;
    h2o_hostconf_t *hostconf = h2o_config_register_host(&relay.globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    ptth_handler_register(&relay, hostconf);

    relay.loop = h2o_evloop_create();
    h2o_context_init(&relay.ctx, relay.loop, &relay.globalconf);
    h2o_timeout_init(relay.loop, &relay.listen_timeout, cfg.listen_timeout * 1000);
    h2o_timeout_init(relay.loop, &relay.connect_timeout, cfg.connect_timeout * 1000);
    h2o_timeout_init(relay.loop, &relay.heartbeat, cfg.heartbeat * 1000);
    h2o_timeout_init(relay.loop, &relay.idle_timeout, (cfg.idle_timeout != 0 ? cfg.idle_timeout : 1) * 1000);
    ptth_table_init(&relay.servers);
    ptth_table_init(&relay.tunnels);

    char err[512];
    if (install_signals(relay.loop, &sigsock) != 0) {
        fprintf(stderr, "ptth_relay: cannot set up signal handling: %s\n", strerror(errno));
        goto Exit;
    }
    if (ptth_listeners_open(&ls, &relay.ctx, &cfg.listen, ssl_ctx, err, sizeof(err)) != 0) {
        fprintf(stderr, "ptth_relay: %s\n", err);
        goto Exit;
    }
    ptth_log_info("event=started version=%s servers=%zu clients=%zu rules=%zu max_chunk=%llu", PTTH_VERSION, relay.auth.nservers,
                  relay.auth.nclients, relay.auth.nrules, (unsigned long long)cfg.max_chunk);

    while (!got_term) {
        h2o_evloop_run(relay.loop, INT32_MAX);
        if (got_hup) {
            got_hup = 0;
            reload(&relay, &cfg, &cli, argc, argv);
        }
    }
    ptth_log_info("event=stopping tunnels=%zu connections=%zu", relay.ntunnels, ls.nconns);
    shutdown_relay(&relay, &ls);
    exit_code = 0;

Exit:
    ptth_listeners_close(&ls);
    if (sigsock != NULL) {
        h2o_socket_read_stop(sigsock);
        h2o_socket_close(sigsock);
        h2o_evloop_run(relay.loop, 0);
    }
    if (ls.nconns != 0) {
        /* h2o still holds connections (a peer that never read its last bytes):
         * their timers keep the context alive, so leave it to the exit */
        ptth_log_warn("event=stopped connections_left=%zu", ls.nconns);
        ptth_listeners_dispose(&ls);
        return exit_code;
    }
    if (signal_pipe[1] >= 0)
        close(signal_pipe[1]);
    h2o_timeout_dispose(relay.loop, &relay.listen_timeout);
    h2o_timeout_dispose(relay.loop, &relay.connect_timeout);
    h2o_timeout_dispose(relay.loop, &relay.heartbeat);
    h2o_timeout_dispose(relay.loop, &relay.idle_timeout);
    h2o_context_dispose(&relay.ctx);
    h2o_evloop_destroy(relay.loop);
    h2o_config_dispose(&relay.globalconf);
    ptth_table_dispose(&relay.servers);
    ptth_table_dispose(&relay.tunnels);
    ptth_auth_free(&relay.auth);
    free(relay.trusted);
    if (ssl_ctx != NULL)
        SSL_CTX_free(ssl_ctx);
    ptth_options_free(&ptth_relay_program, &cfg);
    ptth_cli_free(&cli);
    if (exit_code == 0)
        ptth_log_info("event=stopped");
    return exit_code;
}
