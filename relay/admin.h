/*
 * admin.h: the operator's views of the relay (SPEC §4 Operations):
 *   GET /metrics     Prometheus text
 *   GET /v1/status   JSON
 *   GET /            a small HTML page
 * All three need --admin-key-hash and that key, as Authorization: Bearer KEY
 * or as the password of HTTP Basic (any user name) so that a browser can
 * open the page. Without --admin-key-hash they answer 404.
 */
#ifndef PTTH_RELAY_ADMIN_H
#define PTTH_RELAY_ADMIN_H

#include <h2o.h>

#include "relay.h"
#include "route.h"

/* Answers req (kind: PTTH_ROUTE_METRICS, _STATUS or _INDEX). */
void ptth_admin_serve(ptth_relay *relay, h2o_req_t *req, ptth_route_kind kind);

#endif
