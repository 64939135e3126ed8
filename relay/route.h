/*
 * route.h: request paths of the relay's HTTP API (SPEC §4) to routes.
 *
 *   /healthz                                         HEALTHZ
 *   /metrics, /v1/status, /                          METRICS, STATUS, INDEX (admin)
 *   /v1/servers/{server}/listen                      LISTEN
 *   /v1/servers/{server}/ports/{port}/connect        CONNECT
 *   /v1/servers/{server}/conns/{id}/{verb}           ACCEPT REJECT DOWNSTREAM UPSTREAM CLOSE RESUME
 *
 * The query string (from '?') is ignored. Names must be valid SPEC §2 names,
 * ids 22 base64url characters; anything else is NOT_FOUND. The parsed names
 * point into the caller's path buffer (not NUL-terminated). Pure logic.
 */
#ifndef PTTH_RELAY_ROUTE_H
#define PTTH_RELAY_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

typedef enum ptth_route_kind {
    PTTH_ROUTE_NOT_FOUND = 0,
    PTTH_ROUTE_HEALTHZ,
    PTTH_ROUTE_METRICS,
    PTTH_ROUTE_STATUS,
    PTTH_ROUTE_INDEX,
    PTTH_ROUTE_LISTEN,
    PTTH_ROUTE_CONNECT,
    PTTH_ROUTE_ACCEPT,
    PTTH_ROUTE_REJECT,
    PTTH_ROUTE_DOWNSTREAM,
    PTTH_ROUTE_UPSTREAM,
    PTTH_ROUTE_CLOSE,
    PTTH_ROUTE_RESUME,
} ptth_route_kind;

typedef struct ptth_span {
    const char *base;
    size_t len;
} ptth_span;

typedef struct ptth_route {
    ptth_route_kind kind;
    ptth_span server; /* LISTEN, CONNECT and the conns routes */
    ptth_span port;   /* CONNECT */
    ptth_span id;     /* conns routes */
} ptth_route;

/* Fills out and returns out->kind. */
ptth_route_kind ptth_route_parse(const char *path, size_t len, ptth_route *out);

/* Which side of a tunnel may call a route. */
typedef enum ptth_route_side {
    PTTH_SIDE_NONE = 0,   /* no tunnel key needed (healthz) or admin */
    PTTH_SIDE_SERVER = 1, /* listen, accept, reject, downstream */
    PTTH_SIDE_CLIENT = 2, /* connect, upstream */
    PTTH_SIDE_EITHER = 3, /* close, resume */
} ptth_route_side;

ptth_route_side ptth_route_side_of(ptth_route_kind kind);

/* true when method (not NUL-terminated) is allowed on the route: POST for the
 * tunnel API, GET or HEAD for the others. */
bool ptth_route_method_ok(ptth_route_kind kind, const char *method, size_t len);

/* The route's name in logs, e.g. "listen". */
const char *ptth_route_name(ptth_route_kind kind);

/* true when the len bytes at id form a connection id (22 base64url chars). */
bool ptth_route_id_valid(const char *id, size_t len);

#endif
