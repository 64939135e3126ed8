/*
 * config.c: see config.h.
 */
#include "config.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "addr.h"
#include "auth.h"
#include "resume.h"

/* Loads the certificate and key the way start-up will, so that a bad file is
 * a configuration error (exit 2) that names the file. */
static void
check_tls_files(const ptth_relay_config *c, ptth_problems *problems)
{
    if ((c->tls_cert == NULL) != (c->tls_key == NULL)) {
        ptth_problems_add(problems, "%s", c->tls_cert == NULL ? "--tls-key needs --tls-cert" : "--tls-cert needs --tls-key");
        return;
    }
    if (c->tls_cert == NULL)
        return;
    /* the private key is a secret like a ptth key file: refused when others
     * may read it */
    struct stat st;
    if (stat(c->tls_key, &st) == 0 && (st.st_mode & (S_IRGRP | S_IROTH)) != 0) {
        ptth_problems_add(problems, "--tls-key: '%s' is readable by group or others (mode %04o); run chmod 600 '%s'", c->tls_key,
                          (unsigned)(st.st_mode & 07777), c->tls_key);
        return;
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        ptth_problems_add(problems, "cannot create a TLS context");
        return;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, c->tls_cert) != 1) {
        ptth_problems_add(problems, "--tls-cert: cannot load certificate chain from '%s': %s", c->tls_cert,
                          ERR_reason_error_string(ERR_peek_last_error()) ? ERR_reason_error_string(ERR_peek_last_error())
                                                                         : "unknown error");
    } else if (SSL_CTX_use_PrivateKey_file(ctx, c->tls_key, SSL_FILETYPE_PEM) != 1) {
        ptth_problems_add(problems, "--tls-key: cannot load private key from '%s': %s", c->tls_key,
                          ERR_reason_error_string(ERR_peek_last_error()) ? ERR_reason_error_string(ERR_peek_last_error())
                                                                         : "unknown error");
    } else if (SSL_CTX_check_private_key(ctx) != 1) {
        ptth_problems_add(problems, "--tls-key: '%s' does not match the certificate in '%s'", c->tls_key, c->tls_cert);
    }
    ERR_clear_error();
    SSL_CTX_free(ctx);
}

static void
validate(void *config, ptth_problems *problems)
{
    ptth_relay_config *c = config;
    ptth_auth a;
    if (ptth_auth_build(&a, &c->server, &c->client, &c->allow, c->admin_key_hash, problems) == 0)
        ptth_auth_free(&a);
    check_tls_files(c, problems);
    if (c->resume_secret_file != NULL) {
        /* read the way start-up will, so that --check-config and SIGHUP name a bad file */
        ptth_resume_secret s;
        char err[600];
        if (ptth_resume_secret_load(&s, c->resume_secret_file, err, sizeof(err)) != 0)
            ptth_problems_add(problems, "%s", err);
        ptth_resume_secret_wipe(&s);
    }
    if (c->max_connections_per_server > c->max_connections)
        ptth_problems_add(problems, "--max-connections-per-server (%llu) is above --max-connections (%llu)",
                          (unsigned long long)c->max_connections_per_server, (unsigned long long)c->max_connections);
}

static int
check_on_off(const char *value, char *err, size_t errlen)
{
    if (strcmp(value, "on") == 0 || strcmp(value, "off") == 0)
        return 0;
    snprintf(err, errlen, "'%s' is not on or off", value);
    return -1;
}

bool
ptth_relay_upgrade_on(const ptth_relay_config *cfg)
{
    return cfg->upgrade == NULL || strcmp(cfg->upgrade, "on") == 0;
}

#define OFF(field) offsetof(ptth_relay_config, field)

static const ptth_option options[] = {
    {"listen", PTTH_OPT_LIST, OFF(listen), "ADDR:PORT", "address to serve on; [::1]:4000 for IPv6, port 0: any", "127.0.0.1:4000",
     0, 0, ptth_check_listen},
    {"tls-cert", PTTH_OPT_STRING, OFF(tls_cert), "FILE", "serve HTTPS (ALPN h2, http/1.1) with this PEM certificate chain", NULL, 0,
     0, NULL},
    {"tls-key", PTTH_OPT_STRING, OFF(tls_key), "FILE", "the private key (PEM) of --tls-cert", NULL, 0, 0, NULL},
    {"server", PTTH_OPT_LIST, OFF(server), "NAME=KEYHASH", "a server and its key's hash", NULL, 0, 0, ptth_check_name_hash},
    {"client", PTTH_OPT_LIST, OFF(client), "NAME=KEYHASH", "a client and its key's hash", NULL, 0, 0, ptth_check_name_hash},
    {"allow", PTTH_OPT_LIST, OFF(allow), "CLIENT=SERVER/PORT", "let CLIENT reach SERVER/PORT (* for any)", NULL, 0, 0,
     ptth_auth_check_allow},
    {"admin-key-hash", PTTH_OPT_STRING, OFF(admin_key_hash), "HASH", "key hash for /v1/status, /metrics and /", NULL, 0, 0, NULL},
    {"listen-timeout", PTTH_OPT_UINT, OFF(listen_timeout), "SECS", "how long a listen is held", "25", 1, 3600, NULL},
    {"connect-timeout", PTTH_OPT_UINT, OFF(connect_timeout), "SECS", "how long a connect waits for the server", "10", 1, 3600,
     NULL},
    {"heartbeat", PTTH_OPT_UINT, OFF(heartbeat), "SECS", "PING frame on a stream idle this long", "20", 1, 3600, NULL},
    {"idle-timeout", PTTH_OPT_UINT, OFF(idle_timeout), "SECS", "close a tunnel without bytes either way for this long; 0 = never",
     "0", 0, 2592000, NULL},
    {"request-timeout", PTTH_OPT_UINT, OFF(request_timeout), "SECS",
     "close a connection that is slower than this to finish its TLS handshake or a request, or is idle this long between "
     "requests",
     "30", 1, 3600, NULL},
    {"max-chunk", PTTH_OPT_UINT, OFF(max_chunk), "BYTES", "largest upstream/downstream POST body", "262144", 1, 16777215, NULL},
    {"max-connections", PTTH_OPT_UINT, OFF(max_connections), "N", "tunnels open at once, all servers", "10000", 1, 10000000, NULL},
    {"max-connections-per-server", PTTH_OPT_UINT, OFF(max_connections_per_server), "N", "tunnels open at once per server", "1024",
     1, 10000000, NULL},
    {"max-listens-per-server", PTTH_OPT_UINT, OFF(max_listens_per_server), "N", "listens held at once per server", "64", 1, 100000,
     NULL},
    {"trusted-proxy", PTTH_OPT_LIST, OFF(trusted_proxy), "CIDR",
     "take the client address from X-Forwarded-For only from these peers", NULL, 0, 0, ptth_cidr_check},
    {"max-connections-per-address", PTTH_OPT_UINT, OFF(max_connections_per_address), "N",
     "connections open at once from one address (IPv6: one /64), checked at accept; --trusted-proxy peers are exempt and "
     "their clients counted by X-Forwarded-For; 0 = no cap",
     "512", 0, 10000000, NULL},
    {"auth-fail-limit", PTTH_OPT_UINT, OFF(auth_fail_limit), "N",
     "authentication failures from one address within 60 s that start its --auth-fail-penalty; 0 = never", "20", 0, 1000000, NULL},
    {"auth-fail-penalty", PTTH_OPT_UINT, OFF(auth_fail_penalty), "SECS",
     "how long an address over --auth-fail-limit is answered 429 before any key is checked", "60", 1, 86400, NULL},
    {"address-table-size", PTTH_OPT_UINT, OFF(address_table_size), "N",
     "addresses the relay keeps connection counts, failures and penalties for (about 80 bytes each); see docs/security.md", "16384",
     16, 1048576, NULL},
    {"upgrade", PTTH_OPT_STRING, OFF(upgrade), "on|off",
     "let connect and accept requests over HTTP/1.1 leave HTTP (101) for the upgraded data path", "on", 0, 0, check_on_off},
    {"resume-grace", PTTH_OPT_UINT, OFF(resume_grace), "SECS",
     "how long a broken upgraded tunnel whose both sides asked for it (PTTH-Resumable) waits to be resumed; 0 = off", "30", 0,
     3600, NULL},
    {"resume-secret-file", PTTH_OPT_STRING, OFF(resume_secret_file), "FILE",
     "the secret of resume tokens (at least 32 bytes, mode 0600): relays sharing it resume each other's tunnels; default: "
     "32 random bytes per start",
     NULL, 0, 0, NULL},
};

const ptth_program ptth_relay_program = {
    .name = "ptth_relay",
    .version = PTTH_VERSION,
    .usage = "[OPTIONS]",
    .summary = "The public meeting point of ptth: servers (ptth_server) hold listens open, clients (ptth_proxy)\n"
               "connect through it to a server's port; bytes flow as HTTP chunks and framed streams, or, once\n"
               "both sides upgraded their HTTP/1.1 connections (101), straight between the two connections.",
    .epilog = "Signals: SIGHUP reloads keys, ACLs, limits, --upgrade from --config (the resume secret is kept); SIGINT/SIGTERM end every tunnel and exit 0.\n"
              "Exit codes: 0 clean exit, 1 fatal error, 2 usage or configuration error.",
    .options = options,
    .n_options = sizeof(options) / sizeof(options[0]),
    .max_positional = 0,
    .validate = validate,
};
