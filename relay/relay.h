/*
 * relay.h: the state of one running ptth_relay, shared by its modules.
 *
 * One event loop (h2o evloop), one thread: nothing here is locked. The relay
 * owns the configuration snapshot (auth), the tables of servers and tunnels,
 * and the h2o timeouts whose periods come from the options (listen, connect,
 * heartbeat, idle). Servers and tunnels are plain malloc'd objects owned by
 * the tables; requests and framed streams belong to h2o (see reply.h,
 * stream.h).
 */
#ifndef PTTH_RELAY_RELAY_H
#define PTTH_RELAY_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <h2o.h>

#include "addr.h"
#include "auth.h"
#include "config.h"
#include "table.h"

/* Why a tunnel ended (SPEC §4 tunnel_end reason). */
typedef enum ptth_end_reason {
    PTTH_END_FIN = 0,
    PTTH_END_RST,
    PTTH_END_IDLE,
    PTTH_END_BACKEND,
    PTTH_END_TIMEOUT,
    PTTH_END_SHUTDOWN,
    PTTH_END__COUNT
} ptth_end_reason;

const char *ptth_end_reason_name(ptth_end_reason r);

typedef struct ptth_relay {
    const ptth_relay_config *cfg;
    ptth_auth auth;
    ptth_cidr *trusted;
    size_t ntrusted;

    h2o_evloop_t *loop;
    h2o_globalconf_t globalconf;
    h2o_context_t ctx;

    h2o_timeout_t listen_timeout;  /* --listen-timeout: held listens, online window */
    h2o_timeout_t connect_timeout; /* --connect-timeout */
    h2o_timeout_t heartbeat;       /* --heartbeat */
    h2o_timeout_t idle_timeout;    /* --idle-timeout (only used when > 0) */

    ptth_table servers; /* name -> ptth_srv */
    ptth_table tunnels; /* id -> ptth_tunnel */
    size_t ntunnels;
    size_t nstreams; /* framed streams h2o still holds */
    bool shutting_down;

    struct {
        uint64_t tunnels_opened;
        uint64_t tunnels_ended[PTTH_END__COUNT];
        uint64_t bytes_up, bytes_down;
    } stats;
} ptth_relay;

#endif
