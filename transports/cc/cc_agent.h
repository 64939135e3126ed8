/*
 * cc_agent.h: the DPU side of the comm channel (ptth_cc_agent). It listens
 * on the channel address, accepts channel connections from the host (a new
 * one after ptth_server restarts; several at once are allowed), and for each
 * tunnel the host opens connects TARGET (`unix:PATH` or `HOST:PORT`,
 * nonblocking) and bridges it. At most max_clients tunnels exist at once
 * over all channels; an OPEN beyond that is answered OPEN_FAIL. A tunnel
 * lives until the host's CLOSE (SPEC §7: the host ends a connection) or
 * until its channel is lost.
 *
 * Single-threaded: ptth_cc_agent_run() is one epoll loop. Host names in
 * TARGET are resolved (getaddrinfo, blocking) at each open.
 */
#ifndef PTTH_CC_AGENT_H
#define PTTH_CC_AGENT_H

#include <stddef.h>
#include <stdint.h>

#include "cc_carrier.h"

typedef enum ptth_cc_agent_target_kind {
    PTTH_CC_AGENT_TARGET_TCP,
    PTTH_CC_AGENT_TARGET_UNIX,
} ptth_cc_agent_target_kind;

typedef struct ptth_cc_agent_config {
    ptth_cc_addr addr; /* where to listen (--cc-name) */
    ptth_cc_agent_target_kind target_kind;
    char target_text[PTTH_TARGET_TEXT_MAX];
    char target_host[PTTH_TARGET_HOST_MAX];
    uint16_t target_port;
    char target_path[PTTH_TARGET_PATH_MAX];
    uint32_t max_clients;        /* default 512 */
    uint32_t max_msg;            /* default PTTH_CC_MSG_DEFAULT_MAX */
    uint32_t window;             /* default PTTH_CC_DEFAULT_WINDOW */
    uint32_t connect_timeout_ms; /* connecting TARGET; default 8000 */
    uint32_t max_channels;       /* channel connections at once; default 16 */
} ptth_cc_agent_config;

typedef struct ptth_cc_agent ptth_cc_agent;

/* Fills the defaults (everything but addr and target). */
void ptth_cc_agent_config_init(ptth_cc_agent_config *cfg);

/* TARGET: "unix:PATH" or "HOST:PORT" / "[V6]:PORT". 0, or -EINVAL with the
 * reason in err. */
int ptth_cc_agent_parse_target(const char *text, ptth_cc_agent_config *cfg, char *err, size_t errlen);

/* Listens on cfg->addr (for seqpacket: creates $PTTH_CC_DIR 0700 when
 * missing, replaces a stale socket file, refuses one a live agent holds).
 * NULL with the reason in err. Logs event=listening on success. */
ptth_cc_agent *ptth_cc_agent_new(const ptth_cc_agent_config *cfg, char *err, size_t errlen);

/* Serves until stop_fd becomes readable (not read). 0, or -errno when the
 * event loop itself failed. */
int ptth_cc_agent_run(ptth_cc_agent *a, int stop_fd);

/* Tunnels open now (for tests). */
size_t ptth_cc_agent_tunnels(const ptth_cc_agent *a);

/* Closes every tunnel and channel, stops listening (removes the socket file)
 * and frees everything. */
void ptth_cc_agent_free(ptth_cc_agent *a);

#endif
