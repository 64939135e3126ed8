/*
 * ptth_proxy: the client terminator (SPEC §6). Listens on local ports (or
 * speaks on stdin/stdout) and carries each connection through the relay to a
 * port of a ptth_server.
 */
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge.h"
#include "data_path.h"
#include "resume_buf.h"
#include "http_proxy.h"
#include "instance.h"
#include "keys.h"
#include "log.h"
#include "graceful_stop.h"
#include "loop.h"
#include "metrics_server.h"
#include "options.h"
#include "proxy.h"
#include "relay_client.h"
#include "socks_front.h"
#include "udp_front.h"
#include "sysutil.h"

#define PROGRAM "ptth_proxy"
#define DEFAULT_LISTEN "127.0.0.1:0"

typedef struct proxy_config {
    char *relay;
    char *server;
    char *port;
    char *listen;
    ptth_strlist forwards;
    bool stdio;
    char *key_file;
    char *ca_file;
    bool insecure;
    char *http_proxy;
    char *http_proxy_user_file;
    char *http_proxy_ca_file;
    uint64_t max_chunk;
    char *data_path;
    uint64_t resume_buffer;
    char *socks;
    char *socks_auth_file;
    bool udp;
    uint64_t udp_idle_timeout;
    char *metrics_listen;
    /* filled in by validate() */
    ptth_socks_users socks_users;
    char socks_host[256];
    uint16_t socks_port;
    ptth_http_proxy proxy;
    ptth_key key;
    ptth_forward_spec *specs;
    size_t n_specs;
} proxy_config;

static int
check_forward(const char *value, char *err, size_t errlen)
{
    ptth_forward_spec spec;
    return ptth_forward_parse(value, &spec, err, errlen) == 0 ? 0 : -1;
}

static void
validate(void *config, ptth_problems *problems)
{
    proxy_config *c = config;
    char err[512];
    if (c->relay == NULL) {
        const char *env = getenv("PTTH_RELAY");
        if (env == NULL || env[0] == '\0')
            ptth_problems_add(problems, "--relay is required (or set PTTH_RELAY)");
        else if (ptth_check_url(env, err, sizeof(err)) != 0)
            ptth_problems_add(problems, "PTTH_RELAY: %s", err);
        else if ((c->relay = strdup(env)) == NULL)
            ptth_problems_add(problems, "out of memory");
    }
    if (ptth_key_load(c->key_file, &c->key, err, sizeof(err)) != 0)
        ptth_problems_add(problems, "%s", err);
    if (ptth_http_proxy_init(&c->proxy, c->http_proxy, c->http_proxy_user_file, c->http_proxy_ca_file, err, sizeof(err)) != 0)
        ptth_problems_add(problems, "%s", err);

    bool direct = c->server != NULL || c->port != NULL;
    if (direct && (c->server == NULL || c->port == NULL))
        ptth_problems_add(problems, "--server and --port go together");
    if (c->stdio) {
        if (c->server == NULL || c->port == NULL)
            ptth_problems_add(problems, "--stdio needs --server and --port");
        if (c->forwards.count > 0)
            ptth_problems_add(problems, "--stdio cannot be combined with --forward");
        if (c->listen != NULL)
            ptth_problems_add(problems, "--stdio cannot be combined with --listen");
        if (c->socks != NULL)
            ptth_problems_add(problems, "--stdio cannot be combined with --socks");
    } else if (!direct && c->forwards.count == 0 && c->socks == NULL) {
        ptth_problems_add(problems, "give --server and --port, at least one --forward, or --socks");
    } else if (!direct && c->listen != NULL) {
        ptth_problems_add(problems, "--listen needs --server and --port (a --forward carries its own address)");
    }

    if (c->socks != NULL && ptth_split_host_port(c->socks, c->socks_host, sizeof(c->socks_host), &c->socks_port, true) != 0)
        ptth_problems_add(problems, "--socks: bad address '%s'", c->socks);
    if (c->socks_auth_file != NULL && c->socks == NULL)
        ptth_problems_add(problems, "--socks-auth-file needs --socks");
    else if (c->socks_auth_file != NULL && ptth_socks_users_load(c->socks_auth_file, &c->socks_users, err, sizeof(err)) != 0)
        ptth_problems_add(problems, "%s", err);

    c->specs = calloc(c->forwards.count + 1, sizeof(*c->specs));
    if (c->specs == NULL) {
        ptth_problems_add(problems, "out of memory");
        return;
    }
    if (c->udp && !direct)
        ptth_problems_add(problems, "--udp needs --server and --port (a --forward says udp: itself)");
    if (c->udp && c->stdio)
        ptth_problems_add(problems, "--udp cannot be combined with --stdio");
    if (direct && c->server != NULL && c->port != NULL) {
        ptth_forward_spec *sp = &c->specs[c->n_specs++];
        sp->udp = c->udp;
        snprintf(sp->server, sizeof(sp->server), "%s", c->server);
        snprintf(sp->port, sizeof(sp->port), "%s", c->port);
        const char *listen = c->listen != NULL ? c->listen : DEFAULT_LISTEN;
        if (ptth_split_host_port(listen, sp->bind_host, sizeof(sp->bind_host), &sp->bind_port, true) != 0)
            ptth_problems_add(problems, "--listen: bad address '%s'", listen);
    }
    for (size_t i = 0; i < c->forwards.count; i++) {
        if (ptth_forward_parse(c->forwards.items[i], &c->specs[c->n_specs], err, sizeof(err)) != 0)
            ptth_problems_add(problems, "--forward: %s", err);
        else
            c->n_specs++;
    }
}

static const ptth_option options[] = {
    {"relay", PTTH_OPT_STRING, offsetof(proxy_config, relay), "URL",
     "the relay: http:// or https://, may carry a path prefix (or set PTTH_RELAY)", NULL, 0, 0, ptth_check_url},
    {"server", PTTH_OPT_STRING, offsetof(proxy_config, server), "NAME", "the server to reach", NULL, 0, 0, ptth_check_name},
    {"port", PTTH_OPT_STRING, offsetof(proxy_config, port), "NAME", "the port (name) of that server", NULL, 0, 0, ptth_check_name},
    {"listen", PTTH_OPT_STRING, offsetof(proxy_config, listen), "ADDR:PORT",
     "local address for --server/--port; port 0 lets the system choose (default: " DEFAULT_LISTEN ")", NULL, 0, 0,
     ptth_check_host_port},
    {"forward", PTTH_OPT_LIST, offsetof(proxy_config, forwards), "[ADDR:]LPORT=SERVER/PORT",
     "listen on ADDR:LPORT (ADDR default 127.0.0.1) and carry connections to SERVER/PORT; udp:[ADDR:]LPORT=SERVER/PORT "
     "forwards UDP datagrams",
     NULL, 0, 0, check_forward},
    {"stdio", PTTH_OPT_FLAG, offsetof(proxy_config, stdio), NULL,
     "carry one connection over stdin/stdout, then exit (ssh ProxyCommand)", NULL, 0, 0, NULL},
    {"key-file", PTTH_OPT_STRING, offsetof(proxy_config, key_file), "FILE", "this client's key (or set PTTH_KEY); mode 0600", NULL,
     0, 0, NULL},
    {"ca-file", PTTH_OPT_STRING, offsetof(proxy_config, ca_file), "FILE", "trust these CAs for the relay", NULL, 0, 0, NULL},
    {"insecure", PTTH_OPT_FLAG, offsetof(proxy_config, insecure), NULL, "do not check the relay's certificate (testing only)", NULL,
     0, 0, NULL},
    PTTH_HTTP_PROXY_OPTIONS(proxy_config, http_proxy, http_proxy_user_file, http_proxy_ca_file),
    {"max-chunk", PTTH_OPT_UINT, offsetof(proxy_config, max_chunk), "BYTES",
     "largest upstream chunk; at most the relay's --max-chunk", "262144", 1024, 16777215, NULL},
    {"data-path", PTTH_OPT_STRING, offsetof(proxy_config, data_path), "auto|upgrade|chunks",
     "upgrade: tunnels leave HTTP after the handshake (HTTP/1.1 Upgrade, fast); chunks: HTTP requests only (passes any proxy); "
     "auto: upgrade where the relay and every proxy in between allow it, else chunks",
     "auto", 0, 0, ptth_data_path_check},
    {"resume-buffer", PTTH_OPT_UINT, offsetof(proxy_config, resume_buffer), "BYTES",
     "per tunnel and direction, sent bytes kept until the other side acknowledges them, so that an upgraded tunnel "
     "survives a lost relay connection (a full buffer is backpressure); 0: do not ask for resumable tunnels",
     PTTH_RESUME_BUFFER_DEFAULT, 0, 0, ptth_resume_buffer_check},
    {"udp", PTTH_OPT_FLAG, offsetof(proxy_config, udp), NULL,
     "--server/--port/--listen forward UDP: each local peer address is one session (one tunnel)", NULL, 0, 0, NULL},
    {"udp-idle-timeout", PTTH_OPT_UINT, offsetof(proxy_config, udp_idle_timeout), "SECS",
     "end a UDP session after this long without a datagram either way", "60", 1, 86400, NULL},
    {"socks", PTTH_OPT_STRING, offsetof(proxy_config, socks), "ADDR:PORT",
     "also a SOCKS5 server here: CONNECT to host PORT.SERVER opens a tunnel to SERVER's port PORT (curl --socks5-hostname, "
     "ssh -o ProxyCommand='nc -X 5 -x ADDR:PORT %h %p')",
     NULL, 0, 0, ptth_check_host_port},
    {"socks-auth-file", PTTH_OPT_STRING, offsetof(proxy_config, socks_auth_file), "FILE",
     "--socks asks for a username and password (RFC 1929): one USER:PASS per line; mode 0600", NULL, 0, 0, NULL},
    PTTH_METRICS_LISTEN_OPTION(proxy_config, metrics_listen),
};

static const ptth_program program = {
    .name = PROGRAM,
    .version = PTTH_VERSION,
    .usage = "--relay URL --key-file FILE (--server NAME --port NAME [--listen ADDR:PORT [--udp] | --stdio] | --forward "
             "SPEC... | --socks ADDR:PORT) [OPTIONS]",
    .summary = "Carries local TCP connections (or stdin/stdout, or UDP datagrams) through a ptth relay to a port of a\n"
               "ptth_server. Prints 'listening on ADDR:PORT' on stderr for each local port it listens on.",
    .epilog = "UDP: --udp --server foo --port dns --listen 127.0.0.1:5353, or --forward udp:5353=foo/dns (ptth_server\n"
              "--port-map dns=udp:127.0.0.1:53); each peer address is one session (one tunnel), ended after\n"
              "--udp-idle-timeout; datagrams keep their boundaries and order; a full queue drops the newest.\n"
              "  dig @127.0.0.1 -p 5353 example.com\n"
              "SOCKS5 (--socks 127.0.0.1:1080): the destination host is PORT.SERVER (the port number is ignored):\n"
              "  curl --socks5-hostname 127.0.0.1:1080 http://web.foo/   (port web of server foo)\n"
              "  ssh -o ProxyCommand='nc -X 5 -x 127.0.0.1:1080 %h %p' ssh.foo   (netcat-openbsd)\n"
              "  browsers: SOCKS v5 proxy 127.0.0.1:1080 with remote DNS, then http://web.foo/\n"
              "Refusals answer SOCKS5 reply 0x02 (not allowed), 0x04 (unknown or offline server), 0x05 (backend\n"
              "refused), 0x01 (other); IPv4/IPv6 destinations 0x08, BIND and UDP ASSOCIATE 0x07.\n"
              "Environment: PTTH_RELAY (instead of --relay), PTTH_KEY (instead of --key-file).\n"
              "Exit codes: 0 clean exit (SIGINT/SIGTERM; with --stdio: the tunnel was established), 1 fatal\n"
              "error or (--stdio) the relay refused the tunnel, 2 usage or configuration error.",
    .options = options,
    .n_options = sizeof(options) / sizeof(options[0]),
    .max_positional = 0,
    .validate = validate,
};

/* How long SIGTERM waits for the tunnels to be closed at the relay. */
#define DRAIN_MS 3000

typedef struct app {
    ptth_loop *loop;
    ptth_proxy *px;
    ptth_socks_front *socks;
    ptth_udp_front **udp;
    size_t n_udp;
    int exit_code;
    bool stdio;
    ptth_graceful_stop stop;
} app;

/* SIGINT/SIGTERM stop: the tunnels end with reason "shutdown" (told to the
 * relay), then the loop stops; a second signal or DRAIN_MS stops it at once.
 * SIGHUP stops in --stdio mode (ssh sends it to its ProxyCommand when the
 * session is over) and is ignored otherwise. */
static void
on_signal(int signo, void *data)
{
    app *a = data;
    if (signo == SIGINT || signo == SIGTERM || (signo == SIGHUP && a->stdio)) {
        a->exit_code = 0; /* SPEC §2: a signal is a clean exit */
        if (!ptth_graceful_stop_begin(&a->stop, a->px != NULL))
            return;
        ptth_log_info("event=stopping signal=%s", signo == SIGINT ? "SIGINT" : signo == SIGTERM ? "SIGTERM" : "SIGHUP");
        ptth_socks_front_shutdown(a->socks);
        for (size_t i = 0; i < a->n_udp; i++)
            ptth_udp_front_shutdown(a->udp[i]);
        ptth_proxy_shutdown(a->px, ptth_graceful_stop_drained, &a->stop);
    }
}

static void
on_stdio_end(bool ok, void *data)
{
    app *a = data;
    a->exit_code = ok ? 0 : 1;
    ptth_loop_stop(a->loop);
}

/* This process's PTTH-Instance (instance.h): the slot is the host, the
 * program and what this proxy offers (each forward's bind address, server,
 * port and kind, --socks), so that a restart with the same arguments has the
 * same slot. --stdio runs one per ssh session, many alike at a time: its
 * slot takes the random life in too, so that no two are taken for one
 * restarted proxy. 0, or -EIO. */
static int
make_instance(const proxy_config *cfg, char out[PTTH_INSTANCE_TEXT_MAX + 1])
{
    size_t n = cfg->n_specs + 2;
    char(*fwd)[512] = calloc(n, sizeof(*fwd));
    const char **ident = calloc(n, sizeof(*ident));
    int rc = -EIO;
    char life[PTTH_ID_LEN + 1];
    if (fwd != NULL && ident != NULL && (!cfg->stdio || ptth_random_id(life) == 0)) {
        size_t k = 0;
        for (size_t i = 0; i < cfg->n_specs; i++) {
            const ptth_forward_spec *s = &cfg->specs[i];
            snprintf(fwd[k], sizeof(fwd[k]), "%s%s:%u=%s/%s", s->udp ? "udp:" : "", s->bind_host, (unsigned)s->bind_port, s->server,
                     s->port);
            ident[k] = fwd[k];
            k++;
        }
        snprintf(fwd[k], sizeof(fwd[k]), "socks=%s stdio=%s", cfg->socks != NULL ? cfg->socks : "", cfg->stdio ? life : "no");
        ident[k] = fwd[k];
        k++;
        ptth_instance inst;
        if ((rc = ptth_instance_make(PROGRAM, ident, k, &inst)) == 0) {
            if (cfg->stdio)
                memcpy(inst.life, life, sizeof(life));
            ptth_instance_format(&inst, out);
            ptth_log_info("event=instance slot=%s life=%s", inst.slot, inst.life);
        }
    }
    free(fwd);
    free(ident);
    return rc;
}

int
main(int argc, char **argv)
{
    proxy_config cfg;
    ptth_cli cli;
    memset(&cfg, 0, sizeof(cfg));
    ptth_parse_result pr = ptth_options_parse(&program, &cfg, &cli, argc, argv);
    if (pr != PTTH_PARSE_RUN) {
        free(cfg.specs);
        memset(&cfg.key, 0, sizeof(cfg.key));
        ptth_http_proxy_dispose(&cfg.proxy);
        ptth_socks_users_free(&cfg.socks_users);
        return pr == PTTH_PARSE_EXIT_OK ? 0 : 2;
    }
    app a = {.loop = NULL, .px = NULL, .socks = NULL, .udp = NULL, .n_udp = 0, .exit_code = 1, .stdio = cfg.stdio};
    ptth_raise_nofile_limit();
    if (cfg.insecure)
        ptth_log_warn("event=insecure message=\"--insecure: the relay's certificate is not checked\"");

    ptth_relay_client *client = NULL;
    ptth_proxy *px = NULL;
    ptth_metrics_server *msrv = NULL;
    ptth_term_metrics metrics;
    ptth_tm_init(&metrics, PROGRAM);
    char err[512];
    a.loop = ptth_loop_new();
    if (a.loop == NULL) {
        fprintf(stderr, "%s: cannot create the event loop: %s\n", PROGRAM, strerror(errno));
        goto out;
    }
    ptth_graceful_stop_init(&a.stop, a.loop, DRAIN_MS);
    int rc = ptth_loop_catch_signals(a.loop, on_signal, &a);
    if (rc != 0) {
        fprintf(stderr, "%s: cannot set up signals: %s\n", PROGRAM, strerror(-rc));
        goto out;
    }
    static ptth_data_path data_path;                      /* shared by every bridge; lives for the run */
    (void)ptth_data_path_init(&data_path, cfg.data_path); /* checked by the option parser */
    if (cfg.metrics_listen != NULL && ptth_metrics_server_new(a.loop, cfg.metrics_listen, &metrics, &msrv, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s: %s\n", PROGRAM, err);
        goto out;
    }
    char instance[PTTH_INSTANCE_TEXT_MAX + 1];
    if (make_instance(&cfg, instance) != 0) {
        fprintf(stderr, "%s: cannot make the instance id (SHA-256 or random bytes failed)\n", PROGRAM);
        goto out;
    }
    ptth_relay_client_config rcc = {
        .instance = instance,
        .url = cfg.relay,
        .key = cfg.key.text,
        .ca_file = cfg.ca_file,
        .insecure = cfg.insecure,
        .proxy = &cfg.proxy,
        .user_agent = PROGRAM "/" PTTH_VERSION,
    };
    if (ptth_relay_client_new(a.loop, &rcc, &client, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s: %s\n", PROGRAM, err);
        goto out;
    }
    ptth_proxy_params params = {
        .forwards = cfg.specs,
        .n_forwards = cfg.n_specs,
        .max_chunk = (size_t)cfg.max_chunk,
        .data_path = &data_path,
        .resume_buffer = (size_t)cfg.resume_buffer,
        .stdio = cfg.stdio,
        .metrics = &metrics,
        .on_stdio_end = on_stdio_end,
        .data = &a,
    };
    if (ptth_proxy_new(a.loop, client, &params, &px, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s: %s\n", PROGRAM, err);
        goto out;
    }
    a.px = px;
    if (msrv != NULL)
        ptth_metrics_server_set_live(msrv, ptth_proxy_metrics_live, px);
    if (cfg.socks != NULL &&
        ptth_socks_front_new(a.loop, px, cfg.socks_host, cfg.socks_port, &cfg.socks_users, &a.socks, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s: --socks: %s\n", PROGRAM, err);
        goto out;
    }
    a.udp = calloc(cfg.n_specs + 1, sizeof(*a.udp));
    if (a.udp == NULL) {
        fprintf(stderr, "%s: out of memory\n", PROGRAM);
        goto out;
    }
    for (size_t i = 0; i < cfg.n_specs; i++) {
        if (cfg.specs[i].udp && ptth_udp_front_new(a.loop, px, &cfg.specs[i], (long long)cfg.udp_idle_timeout * 1000,
                                                   &a.udp[a.n_udp++], err, sizeof(err)) != 0) {
            fprintf(stderr, "%s: %s\n", PROGRAM, err);
            goto out;
        }
    }
    if (!cfg.stdio)
        a.exit_code = 0; /* a signal is the normal way out */
    rc = ptth_loop_run(a.loop);
    if (rc != 0) {
        fprintf(stderr, "%s: event loop failed: %s\n", PROGRAM, strerror(-rc));
        a.exit_code = 1;
    }
out:
    ptth_graceful_stop_dispose(&a.stop);
    ptth_metrics_server_free(msrv);
    ptth_proxy_free(px);
    ptth_socks_front_free(a.socks); /* after the proxy: its tunnels may hold the front's sockets */
    for (size_t i = 0; i < a.n_udp; i++)
        ptth_udp_front_free(a.udp[i]);
    free(a.udp);
    ptth_relay_client_free(client);
    ptth_bridge_release_pool();
    ptth_loop_free(a.loop);
    ptth_tm_dispose(&metrics);
    free(cfg.specs);
    memset(&cfg.key, 0, sizeof(cfg.key));
    ptth_http_proxy_dispose(&cfg.proxy);
    ptth_socks_users_free(&cfg.socks_users);
    ptth_options_free(&program, &cfg);
    ptth_cli_free(&cli);
    return a.exit_code;
}
