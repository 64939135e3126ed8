/*
 * api_path.c: see api_path.h.
 */
#include "api_path.h"

#include <errno.h>
#include <stdio.h>

/* snprintf's result as the module's: the whole path fitted, or nothing. */
static int
fitted(char *out, size_t outlen, int n)
{
    if (n >= 0 && (size_t)n < outlen)
        return 0;
    if (outlen > 0)
        out[0] = '\0';
    return -E2BIG;
}

int
ptth_api_listen_path(char *out, size_t outlen, const char *server)
{
    return fitted(out, outlen, snprintf(out, outlen, "/v1/servers/%s/listen", server));
}

int
ptth_api_connect_path(char *out, size_t outlen, const char *server, const char *port)
{
    return fitted(out, outlen, snprintf(out, outlen, "/v1/servers/%s/ports/%s/connect", server, port));
}

int
ptth_api_conn_path(char *out, size_t outlen, const char *server, const char *conn, const char *action)
{
    return fitted(out, outlen, snprintf(out, outlen, "/v1/servers/%s/conns/%s/%s", server, conn, action));
}
