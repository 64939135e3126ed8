/*
 * relay.h: the state of one running ptth_relay, shared by its modules.
 *
 * One event loop (h2o evloop), one thread: nothing here is locked. The relay
 * owns the configuration snapshot (auth), the tables of servers and tunnels,
 * and the h2o timeouts whose periods come from the options (listen, connect,
 * heartbeat, idle). Servers and tunnels are plain malloc'd objects owned by
 * the tables; requests and framed streams belong to h2o (see reply.h,
 * fstream.h).
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
#include "core.h"
#include "peerlimit.h"
#include "peerwatch.h"
#include "resume.h"
#include "table.h"

typedef struct ptth_relay {
    ptth_relay_config *cfg; /* the caller's; reload changes the reloadable fields */
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
    h2o_timeout_t resume_timeout;  /* --resume-grace (only used when > 0) */
    ptth_resume_secret resume_secret; /* resume.h: kept across SIGHUP */
    ptth_peerset peers;            /* HTTP/1 peers of held requests and streams */
    ptth_peertable addrs;          /* per client address: connections, auth failures, penalties */

    ptth_core core;  /* servers and tunnels (tunnel.h, registry.h) */
    size_t nstreams; /* framed streams h2o still holds */
    bool shutting_down;

    struct {
        /* hardening (SPEC §9.6, docs/security.md) */
        uint64_t conns_refused_address;    /* closed at accept: --max-connections-per-address */
        uint64_t requests_refused_address; /* 429: a trusted proxy's client over that cap */
        uint64_t conns_drained;            /* closed at accept: out of descriptors, heaviest address */
        uint64_t accept_pauses;            /* listeners paused: out of descriptors */
        uint64_t conns_shed;               /* unused connections closed: out of descriptors */
        uint64_t auth_failures;            /* 401/403 answers */
        uint64_t auth_penalties;           /* penalties started (--auth-fail-limit) */
        uint64_t penalty_refused;          /* requests answered 429 during a penalty */
    } stats;
    long long started_ms;           /* ptth_now_ms() at init (admin pages) */
    struct ptth_admin_state *admin; /* admin.c: per server/port totals, recent ends */
} ptth_relay;

/* Sets up a relay for cfg (already validated: options parsed) on loop:
 * auth snapshot, trusted proxies, h2o global config with the handler on "/",
 * the h2o context, timeouts and tables. No socket is opened: hand accepted
 * connections to h2o_accept() with an accept context on relay->ctx (see
 * listener.h). Returns 0, or -1 with the problems added (nothing to free). */
int ptth_relay_init(ptth_relay *relay, ptth_relay_config *cfg, h2o_evloop_t *loop, ptth_problems *problems);

/* Ends every tunnel with reason `shutdown`, answers held listens 503 and
 * forgets the servers; new requests get 503 from now on. */
void ptth_relay_end_all(ptth_relay *relay);

/* Frees what init made. Every connection must be closed before (h2o's
 * context refuses to go with timers still linked). Does not free the loop. */
void ptth_relay_dispose(ptth_relay *relay);

/* SIGHUP: applies a freshly loaded configuration. Keys, ACLs, the admin key,
 * trusted proxies, the connection, listen and per-address limits take effect (tunnels and
 * listens of removed or changed keys end); a change to any other option is
 * logged as needing a restart. next is left for the caller to free. Returns
 * 0, or -1 with the problems added (nothing changed). */
int ptth_relay_reload(ptth_relay *relay, ptth_relay_config *next, ptth_problems *problems);

#endif
