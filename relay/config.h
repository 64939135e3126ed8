/*
 * config.h: ptth_relay's options (SPEC §3) as one table for common/options,
 * and the checks that run on them (for start-up, --check-config and SIGHUP).
 */
#ifndef PTTH_RELAY_CONFIG_H
#define PTTH_RELAY_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "options.h"

typedef struct ptth_relay_config {
    ptth_strlist listen;
    char *tls_cert;
    char *tls_key;
    ptth_strlist server;
    ptth_strlist client;
    ptth_strlist allow;
    char *admin_key_hash;
    uint64_t listen_timeout;
    uint64_t connect_timeout;
    uint64_t heartbeat;
    uint64_t idle_timeout;
    uint64_t request_timeout;
    uint64_t max_chunk;
    uint64_t max_connections;
    uint64_t max_connections_per_server;
    uint64_t max_listens_per_server;
    ptth_strlist trusted_proxy;
    uint64_t max_connections_per_address; /* 0: no cap */
    uint64_t auth_fail_limit;             /* 0: no penalty */
    uint64_t auth_fail_penalty;           /* seconds */
    uint64_t address_table_size;          /* entries of the per-address table */
    char *upgrade; /* --upgrade: "on" or "off" */
    uint64_t resume_grace;    /* --resume-grace SECS: 0 = resumption off (SPEC §9.3) */
    char *resume_secret_file; /* NULL: a random secret per process */
} ptth_relay_config;

extern const ptth_program ptth_relay_program;

/* true unless --upgrade off (SPEC §9.1). */
bool ptth_relay_upgrade_on(const ptth_relay_config *cfg);

#endif
