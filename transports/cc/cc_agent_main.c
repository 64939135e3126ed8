/*
 * ptth_cc_agent: runs on the DPU side of a comm channel (SPEC §7). It
 * accepts the channel from ptth_server (`cc:SERVICE` / `cc:vsock:CID:PORT`
 * targets) and connects every tunnel to TARGET. docs/ptth_cc_agent.md.
 */
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "cc_agent.h"
#include "log.h"
#include "options.h"
#include "sysutil.h"

#define PROG "ptth_cc_agent"

typedef struct agent_options {
    char *cc_name;
    char *target;
    uint64_t max_clients;
    uint64_t max_message;
    uint64_t connect_timeout;
} agent_options;

static int
check_cc_name(const char *value, char *err, size_t errlen)
{
    ptth_cc_addr addr;
    return ptth_cc_addr_parse(value, true, &addr, err, errlen) == 0 ? 0 : -1;
}

static int
check_target(const char *value, char *err, size_t errlen)
{
    ptth_cc_agent_config cfg;
    ptth_cc_agent_config_init(&cfg);
    return ptth_cc_agent_parse_target(value, &cfg, err, errlen) == 0 ? 0 : -1;
}

static void
validate(void *config, ptth_problems *problems)
{
    agent_options *o = config;
    if (o->cc_name == NULL)
        ptth_problems_add(problems, "--cc-name is required");
    if (o->target == NULL)
        ptth_problems_add(problems, "--target is required");
}

static const ptth_option options[] = {
    {"cc-name", PTTH_OPT_STRING, offsetof(agent_options, cc_name), "SERVICE|vsock:CID:PORT",
     "channel to serve: SERVICE (UNIX seqpacket at $PTTH_CC_DIR/SERVICE) or vsock:CID:PORT (CID may be 'any')", NULL, 0, 0,
     check_cc_name},
    {"target", PTTH_OPT_STRING, offsetof(agent_options, target), "TARGET",
     "where each tunnel goes: unix:PATH, HOST:PORT or [V6]:PORT", NULL, 0, 0, check_target},
    {"max-clients", PTTH_OPT_UINT, offsetof(agent_options, max_clients), "N", "tunnels open at once; one more is refused", "512", 1,
     1000000, NULL},
    {"max-message", PTTH_OPT_UINT, offsetof(agent_options, max_message), "BYTES",
     "largest channel message this side accepts, header included", "4096", 512, 65543, NULL},
    {"connect-timeout", PTTH_OPT_UINT, offsetof(agent_options, connect_timeout), "SECS",
     "give up connecting TARGET for a tunnel after this long", "8", 1, 3600, NULL},
};

static const ptth_program program = {
    .name = PROG,
    .version = PTTH_VERSION,
    .usage = "--cc-name SERVICE --target TARGET [OPTIONS]",
    .summary = "Serves a ptth comm channel on the DPU side: ptth_server's tunnels to a cc:SERVICE port map arrive\n"
               "over the channel and are connected to TARGET, one connection per tunnel.",
    .epilog = "Environment: PTTH_CC_DIR  directory of the seqpacket channel sockets (default /tmp/ptth-cc; created\n"
              "             with mode 0700 when missing).\n"
              "Exit codes: 0 clean exit (SIGINT/SIGTERM included), 2 usage or configuration error, 1 other fatal\n"
              "error (for example the channel address is in use by another agent).",
    .options = options,
    .n_options = sizeof(options) / sizeof(options[0]),
    .max_positional = 0,
    .validate = validate,
};

int
main(int argc, char **argv)
{
    agent_options opts;
    ptth_cli cli;
    switch (ptth_options_parse(&program, &opts, &cli, argc, argv)) {
    case PTTH_PARSE_EXIT_OK:
        return 0;
    case PTTH_PARSE_EXIT_USAGE:
        return 2;
    case PTTH_PARSE_RUN:
        break;
    }
    int status = 1;
    char err[512];
    ptth_cc_agent_config cfg;
    ptth_cc_agent_config_init(&cfg);
    cfg.max_clients = (uint32_t)opts.max_clients;
    cfg.max_msg = (uint32_t)opts.max_message;
    cfg.connect_timeout_ms = (uint32_t)opts.connect_timeout * 1000;
    if (ptth_cc_addr_parse(opts.cc_name, true, &cfg.addr, err, sizeof(err)) != 0 ||
        ptth_cc_agent_parse_target(opts.target, &cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, PROG ": %s\n", err);
        status = 2;
        goto out;
    }
    ptth_raise_nofile_limit();

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    signal(SIGPIPE, SIG_IGN);
    int sfd = -1;
    if (sigprocmask(SIG_BLOCK, &mask, NULL) != 0 || (sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) < 0) {
        fprintf(stderr, PROG ": cannot set up signal handling: %s\n", strerror(errno));
        goto out;
    }
    ptth_cc_agent *agent = ptth_cc_agent_new(&cfg, err, sizeof(err));
    if (agent == NULL) {
        fprintf(stderr, PROG ": channel %s: %s\n", cfg.addr.text, err);
        close(sfd);
        goto out;
    }
    int r = ptth_cc_agent_run(agent, sfd);
    if (r != 0) {
        ptth_log_error("event=fatal reason=\"event loop failed: %s\"", strerror(-r));
    } else {
        ptth_log_info("event=shutdown");
        status = 0;
    }
    ptth_cc_agent_free(agent);
    close(sfd);
out:
    ptth_options_free(&program, &opts);
    ptth_cli_free(&cli);
    return status;
}
