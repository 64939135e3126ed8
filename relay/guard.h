/*
 * guard.h: the per-address checks of a request (SPEC §9.6), made before its
 * key is looked at, and the counting of its authentication failures.
 *
 * - An address in an authentication penalty (peerlimit.h) is answered 429
 *   with Retry-After (the seconds left) before any key is checked: the
 *   relay spends one table lookup on it, not a hash and a compare per key.
 * - A request that comes through a --trusted-proxy peer counts its
 *   connection under the client named by X-Forwarded-For (listener.h
 *   ptth_accepted_attribute); a client over --max-connections-per-address
 *   is answered 429 with Retry-After: 1.
 * - A client address that is itself a trusted proxy (a proxy's request
 *   without X-Forwarded-For, or one whose every hop is trusted) is never
 *   penalised: that would lock out everyone behind it.
 * The client address is the one addr.h defines; IPv6 counts by /64.
 */
#ifndef PTTH_RELAY_GUARD_H
#define PTTH_RELAY_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <h2o.h>

#include "peerlimit.h"
#include "relay.h"

/* The window in which --auth-fail-limit failures start a penalty (SPEC §9.6). */
#define PTTH_AUTH_FAIL_WINDOW_MS 60000

/* The request's client address as addr.h writes it (X-Forwarded-For from a
 * trusted proxy). */
void ptth_guard_client_addr(ptth_relay *relay, h2o_req_t *req, char *out, size_t outlen);

/* Every request, first thing: its connection has made a request. */
void ptth_guard_note_request(h2o_req_t *req);

/* The checks above for a request that needs a key. true when it answered
 * the request (429): the caller must not touch it any more. */
bool ptth_guard_request(ptth_relay *relay, h2o_req_t *req);

/* Counts an authentication failure of client address addr (as addr.h
 * writes it, or without the port): what to log (peerlimit.h ptth_peer_fail), with
 * the failures in the window in *failures. Counts it in relay->stats. */
ptth_peer_fail ptth_guard_failure(ptth_relay *relay, const char *addr, uint32_t *failures);

/* Logs one failed authentication (for fail2ban, docs/security.md):
 * `event=auth_failed addr=IP reason=no_key|unknown_key|not_allowed key=HASH12
 * path="..."`, where addr is the client address (X-Forwarded-For from a
 * trusted proxy) without its port and key the first 12 hex digits of the
 * presented key's hash ("-" without one). Each failure is counted for the
 * address; the one that reaches --auth-fail-limit is followed by
 * `event=auth_penalty addr=IP failures=N for_s=SECS [prefix=V6/64]`, and
 * failures beyond the limit are not logged (SPEC §9.6). */
void ptth_guard_auth_failed(ptth_relay *relay, h2o_req_t *req, const char *reason, const ptth_key_hash *key);

/* A resume request whose token does not match (SPEC §9.3): counted as an
 * authentication failure of its address (--auth-fail-limit) and logged as
 * `event=resume_refused addr=IP conn=ID side=client|server reason=bad_proof`
 * (never the token), quiet beyond the limit like auth_failed. */
void ptth_guard_resume_refused(ptth_relay *relay, h2o_req_t *req, const char *id, bool server_side);

#endif
