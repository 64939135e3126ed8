/*
 * handler.h: the relay's one h2o handler. It routes every request (route.h),
 * authenticates it (auth.h: 401 without or with an unknown key, 403 with a
 * known key that may not do this), and hands it to the registry or the
 * tunnel, which answer it now or later.
 */
#ifndef PTTH_RELAY_HANDLER_H
#define PTTH_RELAY_HANDLER_H

#include <h2o.h>

#include "relay.h"

/* Registers the handler on path "/" of hostconf. */
void ptth_handler_register(ptth_relay *relay, h2o_hostconf_t *hostconf);

/* Logs one failed authentication (for fail2ban, docs/security.md):
 * `event=auth_failed addr=IP reason=no_key|unknown_key|not_allowed key=HASH12
 * path="..."`, where addr is the client address (X-Forwarded-For from a
 * trusted proxy) without its port and key the first 12 hex digits of the
 * presented key's hash ("-" without one). Each failure is counted for the
 * address (guard.h); the one that reaches --auth-fail-limit is followed by
 * `event=auth_penalty addr=IP failures=N for_s=SECS [prefix=V6/64]`, and
 * failures beyond the limit are not logged (SPEC §9.6). */
void ptth_handler_log_auth_failed(ptth_relay *relay, h2o_req_t *req, const char *reason, const ptth_key_hash *key);

/* Retry-After (seconds) sent with 503 (server offline) and 429 (limits). */
#define PTTH_RETRY_OFFLINE 5
#define PTTH_RETRY_LIMIT 1

#endif
