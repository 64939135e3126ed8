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
#include <malloc.h>
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

/* SIGHUP: reads the options again (file and command line) and applies what
 * can change at run time (relay.h). A file with problems keeps the running
 * configuration and logs every problem. */
static void
reload(ptth_relay *relay, const ptth_cli *cli, int argc, char **argv)
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
    bool failed = false;
    if (ptth_options_load(&ptth_relay_program, &next, &ncli, argc, argv, &problems, &early) != 0) {
        /* the option layer checks keys and ACLs against each other only in a
         * file without other problems; check what did parse too, so that one
         * reload shows every problem */
        ptth_auth a;
        if (ptth_auth_build(&a, &next.server, &next.client, &next.allow, next.admin_key_hash, &problems) == 0)
            ptth_auth_free(&a);
        failed = true;
    } else if (ptth_relay_reload(relay, &next, &problems) != 0) {
        failed = true;
    }
    if (failed) {
        for (size_t i = 0; i < problems.count; i++)
            ptth_log_error("event=reload_failed file=%s problem=%s", cli->config_path,
                           ptth_log_quote(q, sizeof(q), problems.lines[i]));
        ptth_log_error("event=reload_failed file=%s problems=%zu reason=\"kept the running configuration\"", cli->config_path,
                       problems.count);
    } else {
        ptth_log_set_level(ncli.log_level);
        ptth_log_info("event=reload file=%s servers=%zu clients=%zu rules=%zu", cli->config_path, relay->auth.nservers,
                      relay->auth.nclients, relay->auth.nrules);
    }
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
    ptth_listeners_close(ls);
    ptth_relay_end_all(relay);
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
    if (pr != PTTH_PARSE_RUN)
        return pr == PTTH_PARSE_EXIT_OK ? 0 : 2;
    ptth_raise_nofile_limit();
    /* Over TLS the upgraded path moves bursts of a megabyte and more through
     * h2o's buffers; with glibc's defaults each burst's memory went back to
     * the kernel and was faulted in again (brk and page faults were most of
     * the relay's time per byte). Keep up to 64 MiB of freed heap instead. */
    (void)mallopt(M_TRIM_THRESHOLD, 64 << 20);
    (void)mallopt(M_MMAP_THRESHOLD, 32 << 20);

    static ptth_relay relay; /* lives for the whole run */
    ptth_problems problems = {0};
    int exit_code = 1;
    SSL_CTX *ssl_ctx = NULL;
    h2o_socket_t *sigsock = NULL;
    ptth_listeners ls;
    memset(&ls, 0, sizeof(ls));
    h2o_linklist_init_anchor(&ls.conns);

    if (cfg.tls_cert != NULL && (ssl_ctx = make_ssl_ctx(&cfg)) == NULL) {
        fprintf(stderr, "ptth_relay: cannot set up TLS with --tls-cert '%s' and --tls-key '%s'\n", cfg.tls_cert, cfg.tls_key);
        ptth_options_free(&ptth_relay_program, &cfg);
        ptth_cli_free(&cli);
        return 2;
    }
    h2o_evloop_t *loop = h2o_evloop_create();
    if (ptth_relay_init(&relay, &cfg, loop, &problems) != 0) {
        for (size_t i = 0; i < problems.count; i++)
            fprintf(stderr, "ptth_relay: %s\n", problems.lines[i]);
        ptth_problems_free(&problems);
        h2o_evloop_destroy(loop);
        if (ssl_ctx != NULL)
            SSL_CTX_free(ssl_ctx);
        ptth_options_free(&ptth_relay_program, &cfg);
        ptth_cli_free(&cli);
        return 2;
    }

    char err[512];
    if (install_signals(loop, &sigsock) != 0) {
        fprintf(stderr, "ptth_relay: cannot set up signal handling: %s\n", strerror(errno));
        goto Exit;
    }
    if (ptth_listeners_open(&ls, &relay, &cfg.listen, ssl_ctx, err, sizeof(err)) != 0) {
        fprintf(stderr, "ptth_relay: %s\n", err);
        goto Exit;
    }
    ptth_log_info("event=started version=%s servers=%zu clients=%zu rules=%zu max_chunk=%llu", PTTH_VERSION, relay.auth.nservers,
                  relay.auth.nclients, relay.auth.nrules, (unsigned long long)cfg.max_chunk);

    while (!got_term) {
        h2o_evloop_run(loop, INT32_MAX);
        if (got_hup) {
            got_hup = 0;
            reload(&relay, &cli, argc, argv);
        }
    }
    ptth_log_info("event=stopping tunnels=%zu connections=%zu", relay.core.ntunnels, ls.nconns);
    shutdown_relay(&relay, &ls);
    exit_code = 0;

Exit:
    ptth_listeners_close(&ls);
    if (sigsock != NULL) {
        h2o_socket_read_stop(sigsock);
        h2o_socket_close(sigsock);
        h2o_evloop_run(loop, 0);
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
    ptth_relay_dispose(&relay);
    h2o_evloop_destroy(loop);
    if (ssl_ctx != NULL)
        SSL_CTX_free(ssl_ctx);
    ptth_options_free(&ptth_relay_program, &cfg);
    ptth_cli_free(&cli);
    if (exit_code == 0)
        ptth_log_info("event=stopped");
    return exit_code;
}
