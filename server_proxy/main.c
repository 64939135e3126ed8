/*
 * ptth_server: the server terminator (SPEC §5). Runs next to the backends,
 * makes only outgoing requests to the relay, and connects each tunnel a
 * client opens to the backend its port name maps to.
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
#include "names.h"
#include "options.h"
#include "relay_client.h"
#include "server.h"
#include "sysutil.h"
#include "target.h"
#include "transport.h"

#define PROGRAM "ptth_server"

typedef struct server_config {
    char *relay;
    char *name;
    char *key_file;
    ptth_strlist port_maps;
    uint64_t listens;
    char *ca_file;
    bool insecure;
    char *http_proxy;
    char *http_proxy_user_file;
    char *http_proxy_ca_file;
    bool proxy_protocol;
    uint64_t max_chunk;
    char *data_path;
    uint64_t resume_buffer;
    char *metrics_listen;
    /* filled in by validate() */
    ptth_http_proxy proxy;
    ptth_key key;
    ptth_server_port *ports;
    size_t n_ports;
} server_config;

/* --port-map NAME=TARGET, checked alone; duplicates are found in validate(). */
static int
check_port_map(const char *value, char *err, size_t errlen)
{
    const char *eq = strchr(value, '=');
    if (eq == NULL) {
        snprintf(err, errlen, "bad port map '%s': expected NAME=TARGET", value);
        return -1;
    }
    if (!ptth_name_valid(value, (size_t)(eq - value))) {
        snprintf(err, errlen, "bad port name in '%s': use 1 to 64 of A-Z a-z 0-9 . _ -", value);
        return -1;
    }
    ptth_target t;
    char terr[256];
    if (ptth_target_parse(eq + 1, &t, terr, sizeof(terr)) != 0) {
        snprintf(err, errlen, "%s", terr);
        return -1;
    }
    return 0;
}

static void
validate(void *config, ptth_problems *problems)
{
    server_config *c = config;
    if (c->relay == NULL) {
        const char *env = getenv("PTTH_RELAY");
        char err[300];
        if (env == NULL || env[0] == '\0')
            ptth_problems_add(problems, "--relay is required (or set PTTH_RELAY)");
        else if (ptth_check_url(env, err, sizeof(err)) != 0)
            ptth_problems_add(problems, "PTTH_RELAY: %s", err);
        else if ((c->relay = strdup(env)) == NULL)
            ptth_problems_add(problems, "out of memory");
    }
    if (c->name == NULL)
        ptth_problems_add(problems, "--name is required");
    char err[512];
    if (ptth_key_load(c->key_file, &c->key, err, sizeof(err)) != 0)
        ptth_problems_add(problems, "%s", err);
    if (ptth_http_proxy_init(&c->proxy, c->http_proxy, c->http_proxy_user_file, c->http_proxy_ca_file, err, sizeof(err)) != 0)
        ptth_problems_add(problems, "%s", err);
    if (c->port_maps.count == 0) {
        ptth_problems_add(problems, "at least one --port-map NAME=TARGET is required");
        return;
    }
    c->ports = calloc(c->port_maps.count, sizeof(*c->ports));
    if (c->ports == NULL) {
        ptth_problems_add(problems, "out of memory");
        return;
    }
    for (size_t i = 0; i < c->port_maps.count; i++) {
        const char *pm = c->port_maps.items[i];
        const char *eq = strchr(pm, '=');
        ptth_server_port *p = &c->ports[c->n_ports];
        snprintf(p->name, sizeof(p->name), "%.*s", (int)(eq - pm), pm);
        bool dup = false;
        for (size_t j = 0; j < c->n_ports; j++)
            dup = dup || strcmp(c->ports[j].name, p->name) == 0;
        if (dup) {
            ptth_problems_add(problems, "--port-map: port '%s' is mapped twice", p->name);
            continue;
        }
        if (ptth_target_parse(eq + 1, &p->target, err, sizeof(err)) != 0) {
            ptth_problems_add(problems, "--port-map: %s", err);
            continue;
        }
        if (ptth_target_check(&p->target, err, sizeof(err)) != 0) {
            ptth_problems_add(problems, "--port-map %s: %s", p->name, err);
            continue;
        }
        c->n_ports++;
    }
}

static const ptth_option options[] = {
    {"relay", PTTH_OPT_STRING, offsetof(server_config, relay), "URL",
     "the relay: http:// or https://, may carry a path prefix (or set PTTH_RELAY)", NULL, 0, 0, ptth_check_url},
    {"name", PTTH_OPT_STRING, offsetof(server_config, name), "NAME", "this server's name at the relay", NULL, 0, 0,
     ptth_check_name},
    {"key-file", PTTH_OPT_STRING, offsetof(server_config, key_file), "FILE", "this server's key (or set PTTH_KEY); mode 0600", NULL,
     0, 0, NULL},
    {"port-map", PTTH_OPT_LIST, offsetof(server_config, port_maps), "NAME=TARGET",
     "offer port NAME; TARGET is PORT, HOST:PORT, [V6]:PORT, unix:PATH, nvme:DEVICE:PORT[@NODE], "
     "cc:SERVICE or udp:HOST:PORT (UDP datagrams, for ptth_proxy --udp)",
     NULL, 0, 0, check_port_map},
    {"listens", PTTH_OPT_UINT, offsetof(server_config, listens), "N", "listen requests kept outstanding at the relay", "4", 1, 64,
     NULL},
    {"ca-file", PTTH_OPT_STRING, offsetof(server_config, ca_file), "FILE", "trust these CAs for the relay", NULL, 0, 0, NULL},
    {"insecure", PTTH_OPT_FLAG, offsetof(server_config, insecure), NULL, "do not check the relay's certificate (testing only)",
     NULL, 0, 0, NULL},
    PTTH_HTTP_PROXY_OPTIONS(server_config, http_proxy, http_proxy_user_file, http_proxy_ca_file),
    {"proxy-protocol", PTTH_OPT_FLAG, offsetof(server_config, proxy_protocol), NULL,
     "send a PROXY protocol v2 header with the client's address to TCP backends (not udp:)", NULL, 0, 0, NULL},
    {"max-chunk", PTTH_OPT_UINT, offsetof(server_config, max_chunk), "BYTES",
     "largest downstream chunk; at most the relay's --max-chunk", "262144", 1024, 16777215, NULL},
    {"data-path", PTTH_OPT_STRING, offsetof(server_config, data_path), "auto|upgrade|chunks",
     "upgrade: tunnels leave HTTP after the handshake (HTTP/1.1 Upgrade, fast); chunks: HTTP requests only (passes any proxy); "
     "auto: upgrade where the relay and every proxy in between allow it, else chunks",
     "auto", 0, 0, ptth_data_path_check},
    {"resume-buffer", PTTH_OPT_UINT, offsetof(server_config, resume_buffer), "BYTES",
     "per tunnel and direction, sent bytes kept until the other side acknowledges them, so that an upgraded tunnel "
     "survives a lost relay connection (a full buffer is backpressure); 0: do not ask for resumable tunnels",
     PTTH_RESUME_BUFFER_DEFAULT, 0, 0, ptth_resume_buffer_check},
    PTTH_METRICS_LISTEN_OPTION(server_config, metrics_listen),
};

static const ptth_program program = {
    .name = PROGRAM,
    .version = PTTH_VERSION,
    .usage = "--relay URL --name NAME --key-file FILE --port-map NAME=TARGET... [OPTIONS]",
    .summary = "Connects the tunnels that clients open at a ptth relay to local backends. Makes only outgoing\n"
               "HTTP(S) requests, so it works behind NAT and firewalls.",
    .epilog = "Environment: PTTH_RELAY (instead of --relay), PTTH_KEY (instead of --key-file).\n"
              "Exit codes: 0 clean exit (SIGINT/SIGTERM), 1 fatal error, 2 usage or configuration error.",
    .options = options,
    .n_options = sizeof(options) / sizeof(options[0]),
    .max_positional = 0,
    .validate = validate,
};

/* How long SIGTERM waits for the tunnels to be closed at the relay. */
#define DRAIN_MS 3000

typedef struct app {
    ptth_loop *loop;
    ptth_server *srv;
    ptth_graceful_stop stop;
} app;

/* SIGINT/SIGTERM: the tunnels end with reason "shutdown" (told to the
 * relay), then the loop stops; a second signal or DRAIN_MS stops it at once. */
static void
on_signal(int signo, void *data)
{
    app *a = data;
    if (signo != SIGINT && signo != SIGTERM)
        return;
    if (!ptth_graceful_stop_begin(&a->stop, a->srv != NULL))
        return;
    ptth_log_info("event=stopping signal=%s tunnels=%zu", signo == SIGINT ? "SIGINT" : "SIGTERM", ptth_server_tunnels(a->srv));
    ptth_server_shutdown(a->srv, ptth_graceful_stop_drained, &a->stop);
}

/* This process's PTTH-Instance (instance.h): the slot is the host, the
 * program, --name and the port maps (name=target), so that a restart with
 * the same arguments has the same slot. 0, or -EIO. */
static int
make_instance(const server_config *cfg, char out[PTTH_INSTANCE_TEXT_MAX + 1])
{
    char(*maps)[PTTH_NAME_MAX + 1 + PTTH_TARGET_TEXT_MAX + 1] = calloc(cfg->n_ports + 1, sizeof(*maps));
    const char **ident = calloc(cfg->n_ports + 1, sizeof(*ident));
    int rc = -EIO;
    if (maps != NULL && ident != NULL) {
        ident[0] = cfg->name;
        for (size_t i = 0; i < cfg->n_ports; i++) {
            snprintf(maps[i], sizeof(maps[i]), "%s=%s", cfg->ports[i].name, cfg->ports[i].target.text);
            ident[i + 1] = maps[i];
        }
        ptth_instance inst;
        if ((rc = ptth_instance_make(PROGRAM, ident, cfg->n_ports + 1, &inst)) == 0) {
            ptth_instance_format(&inst, out);
            ptth_log_info("event=instance slot=%s life=%s", inst.slot, inst.life);
        }
    }
    free(maps);
    free(ident);
    return rc;
}

int
main(int argc, char **argv)
{
    server_config cfg;
    ptth_cli cli;
    memset(&cfg, 0, sizeof(cfg));
    ptth_parse_result pr = ptth_options_parse(&program, &cfg, &cli, argc, argv);
    if (pr != PTTH_PARSE_RUN) {
        free(cfg.ports);
        memset(&cfg.key, 0, sizeof(cfg.key));
        ptth_http_proxy_dispose(&cfg.proxy);
        return pr == PTTH_PARSE_EXIT_OK ? 0 : 2;
    }
    int exit_code = 1;
    ptth_raise_nofile_limit();
    if (cfg.insecure)
        ptth_log_warn("event=insecure message=\"--insecure: the relay's certificate is not checked\"");

    ptth_loop *loop = ptth_loop_new();
    ptth_relay_client *client = NULL;
    ptth_server *srv = NULL;
    ptth_metrics_server *msrv = NULL;
    ptth_term_metrics metrics;
    ptth_tm_init(&metrics, PROGRAM);
    app a;
    memset(&a, 0, sizeof(a));
    a.loop = loop;
    char err[512];
    if (loop == NULL) {
        fprintf(stderr, "%s: cannot create the event loop: %s\n", PROGRAM, strerror(errno));
        goto out;
    }
    ptth_graceful_stop_init(&a.stop, loop, DRAIN_MS);
    int rc = ptth_loop_catch_signals(loop, on_signal, &a);
    if (rc != 0) {
        fprintf(stderr, "%s: cannot set up signals: %s\n", PROGRAM, strerror(-rc));
        goto out;
    }
    static ptth_data_path data_path;                      /* shared by every bridge; lives for the run */
    (void)ptth_data_path_init(&data_path, cfg.data_path); /* checked by the option parser */
    if (cfg.metrics_listen != NULL && ptth_metrics_server_new(loop, cfg.metrics_listen, &metrics, &msrv, err, sizeof(err)) != 0) {
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
    if (ptth_relay_client_new(loop, &rcc, &client, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s: %s\n", PROGRAM, err);
        goto out;
    }
    ptth_server_params params = {
        .name = cfg.name,
        .ports = cfg.ports,
        .n_ports = cfg.n_ports,
        .listens = (unsigned)cfg.listens,
        .max_chunk = (size_t)cfg.max_chunk,
        .data_path = &data_path,
        .resume_buffer = (size_t)cfg.resume_buffer,
        .proxy_protocol = cfg.proxy_protocol,
        .metrics = &metrics,
    };
    for (size_t i = 0; i < cfg.n_ports; i++)
        ptth_log_info("event=port_map port=%s target=%s", cfg.ports[i].name, cfg.ports[i].target.text);
    if (ptth_server_new(loop, client, &params, &srv, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s: %s\n", PROGRAM, err);
        goto out;
    }
    a.srv = srv;
    if (msrv != NULL)
        ptth_metrics_server_set_live(msrv, ptth_server_metrics_live, srv);
    ptth_log_info("event=started relay=%s server=%s listens=%u", cfg.relay, cfg.name, params.listens);
    rc = ptth_loop_run(loop);
    if (rc != 0) {
        fprintf(stderr, "%s: event loop failed: %s\n", PROGRAM, strerror(-rc));
        goto out;
    }
    exit_code = 0;
    ptth_log_info("event=stopped");
out:
    ptth_graceful_stop_dispose(&a.stop);
    ptth_metrics_server_free(msrv);
    ptth_server_free(srv);
    ptth_transports_cleanup(); /* every stream is closed: let helper threads finish */
    ptth_relay_client_free(client);
    ptth_bridge_release_pool();
    ptth_loop_free(loop);
    ptth_tm_dispose(&metrics);
    free(cfg.ports);
    memset(&cfg.key, 0, sizeof(cfg.key));
    ptth_http_proxy_dispose(&cfg.proxy);
    ptth_options_free(&program, &cfg);
    ptth_cli_free(&cli);
    return exit_code;
}
