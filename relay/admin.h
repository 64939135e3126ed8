/*
 * admin.h: the operator's views of the relay (SPEC §4 Operations):
 *   GET /metrics     Prometheus text format (names ptth_*, HELP and TYPE lines)
 *   GET /v1/status   JSON
 *   GET /            the same as a small HTML page (no script)
 * All three need --admin-key-hash and that key, as Authorization: Bearer KEY
 * or as the password of HTTP Basic (any user name) so that a browser can
 * open the page (a request without either gets 401 with WWW-Authenticate:
 * Basic). Without --admin-key-hash they answer 404. docs/ptth_relay.md lists
 * every metric and field.
 *
 * Besides what the relay's tables hold now (servers, tunnels), the module
 * keeps, per relay, totals of the tunnels that ended by server and port
 * (result counts, bytes each way) and the last PTTH_ADMIN_RECENT ends with
 * their reasons, fed by the core's tunnel-end observer (ptth_admin_watch). At most
 * PTTH_ADMIN_MAX_SERIES server/port pairs are kept; ends of further pairs
 * count under server="_other", port="_other".
 *
 * Everything that is not a constant of the page goes through the escapes of
 * sbuf.h: reasons come from PTTH-Reason headers and may hold any bytes.
 *
 * Memory: the state (relay->admin) is made at the first tunnel end and
 * freed by ptth_admin_dispose() (ptth_relay_dispose calls it).
 */
#ifndef PTTH_RELAY_ADMIN_H
#define PTTH_RELAY_ADMIN_H

#include <h2o.h>

#include "relay.h"
#include "route.h"

#define PTTH_ADMIN_RECENT 32
#define PTTH_ADMIN_MAX_SERIES 4096

/* Answers req (kind: PTTH_ROUTE_METRICS, _STATUS or _INDEX). */
void ptth_admin_serve(ptth_relay *relay, h2o_req_t *req, ptth_route_kind kind);

/* Registers the module as the core's tunnel-end observer (core.h): each end
 * is recorded before the tunnel is freed. Out of memory only loses the
 * record. */
void ptth_admin_watch(ptth_relay *relay);

/* Frees relay->admin. */
void ptth_admin_dispose(ptth_relay *relay);

#endif
