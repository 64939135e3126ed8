/*
 * listener.h: the relay's listening sockets and the connections they accept.
 *
 * Each --listen address gets a bound, listening TCP socket driven by the h2o
 * evloop; accepted connections go to h2o_accept() with one accept context
 * (cleartext HTTP/1.1 and HTTP/2 with prior knowledge, or TLS with ALPN h2 and
 * http/1.1 when an SSL_CTX is given). Every accepted socket is tracked (through
 * h2o's socket on_close hook) so that shutdown can end the connections that
 * are still open: h2o 2.2.5 has no call to close them all.
 */
#ifndef PTTH_RELAY_LISTENER_H
#define PTTH_RELAY_LISTENER_H

#include <stddef.h>

#include <h2o.h>
#include <openssl/ssl.h>

#include "options.h"

typedef struct ptth_listener ptth_listener;

typedef struct ptth_listeners {
    h2o_accept_ctx_t accept_ctx;
    ptth_listener **items;
    size_t count;
    h2o_linklist_t conns; /* tracked accepted sockets */
    size_t nconns;
} ptth_listeners;

/* Binds and listens on every address of addrs (HOST:PORT, [V6]:PORT; port 0:
 * any) and logs event=listening addr=IP:PORT with the real port. ssl_ctx may
 * be NULL (cleartext); the caller keeps owning it. Returns 0, or -1 with a
 * message naming the address in err (nothing left open). */
int ptth_listeners_open(ptth_listeners *ls, h2o_context_t *ctx, const ptth_strlist *addrs, SSL_CTX *ssl_ctx, char *err,
                        size_t errlen);

/* Stops accepting and closes the listening sockets. */
void ptth_listeners_close(ptth_listeners *ls);

/* Shuts down (both ways) every accepted connection still open; h2o then sees
 * the end of input and closes them through its own paths. */
void ptth_listeners_shutdown_conns(ptth_listeners *ls);

/* Drops the tracking of accepted connections (after the loop is gone). */
void ptth_listeners_dispose(ptth_listeners *ls);

#endif
