/*
 * api_path.h: the paths of the relay's HTTP API (SPEC §4, docs/protocol.md)
 * as the terminators write them, built in this one place. Every tunnel
 * endpoint starts with /v1/servers/{server}/ so that a load balancer can
 * route one server's traffic by that segment. The relay reads them with
 * relay/route.c.
 *
 * Names and ids are not checked or escaped here: they are names.h names and
 * keys.h ids, which need no escaping in a path.
 */
#ifndef PTTH_API_PATH_H
#define PTTH_API_PATH_H

#include <stddef.h>

/* Room for every path built here: names are at most PTTH_NAME_MAX and ids
 * PTTH_ID_LEN bytes, so a path is far shorter. */
#define PTTH_API_PATH_MAX 512

/* /v1/servers/{server}/listen. 0, or -E2BIG (out is then ""). */
int ptth_api_listen_path(char *out, size_t outlen, const char *server);

/* /v1/servers/{server}/ports/{port}/connect. 0 or -E2BIG. */
int ptth_api_connect_path(char *out, size_t outlen, const char *server, const char *port);

/* /v1/servers/{server}/conns/{conn}/{action}, action one of accept,
 * reject, upstream, downstream, close. 0 or -E2BIG. */
int ptth_api_conn_path(char *out, size_t outlen, const char *server, const char *conn, const char *action);

#endif
