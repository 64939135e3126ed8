/*
 * socks_front.h: ptth_proxy --socks ADDR:PORT (SPEC §9.4): a SOCKS5 server
 * whose CONNECT to PORT.SERVER is one tunnel of the proxy (proxy.h,
 * ptth_proxy_open_tunnel).
 *
 * Each accepted connection goes through the handshake of socks5.h, read
 * byte-exact (nothing after the request is taken from the socket), within
 * PTTH_SOCKS_HANDSHAKE_MS; at most PTTH_SOCKS_PENDING_MAX handshakes at
 * once (more are closed at accept and logged). After the request the socket
 * is the tunnel's local end; the success reply is written when the tunnel
 * is established (so a client never sends into a tunnel that will be
 * refused), a refusal's reply code when it is refused (SPEC §9.4), then the
 * socket is closed.
 *
 * --socks-auth-file: one USER:PASS per line (blank lines and lines starting
 * with '#' ignored; USER without ':', both 1 to 255 bytes), a secret file
 * refused when group or others may read it; no user name or password is
 * ever logged.
 *
 * Ownership: the front borrows the proxy; free the proxy first (it may hold
 * tunnels whose local ends belong to the front), then the front.
 */
#ifndef PTTH_SOCKS_FRONT_H
#define PTTH_SOCKS_FRONT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loop.h"
#include "proxy.h"

#define PTTH_SOCKS_HANDSHAKE_MS 10000
#define PTTH_SOCKS_PENDING_MAX 1024
#define PTTH_SOCKS_USERS_MAX 1024
#define PTTH_SOCKS_USERS_FILE_MAX 65536

typedef struct ptth_socks_user {
    uint8_t *user, *pass;
    size_t ulen, plen;
} ptth_socks_user;

typedef struct ptth_socks_users {
    ptth_socks_user *items;
    size_t count;
} ptth_socks_users;

/* Reads an auth file. 0, or a negative errno with err naming the file (and
 * the line for a bad one, never its text). */
int ptth_socks_users_load(const char *path, ptth_socks_users *out, char *err, size_t errlen);
/* true when user/pass matches an entry (compared in constant time). */
bool ptth_socks_users_check(const ptth_socks_users *u, const uint8_t *user, size_t ulen, const uint8_t *pass, size_t plen);
/* Wipes and frees; harmless on a zeroed struct. */
void ptth_socks_users_free(ptth_socks_users *u);

typedef struct ptth_socks_front ptth_socks_front;

/* Binds host:port and prints "listening on ADDR:PORT (socks5)" on stderr.
 * users NULL (or empty): no authentication; else it must outlive the
 * front. 0, or a negative errno with err saying what failed. */
int ptth_socks_front_new(ptth_loop *loop, ptth_proxy *px, const char *host, uint16_t port, const ptth_socks_users *users,
                         ptth_socks_front **out, char *err, size_t errlen);

/* Stops accepting and closes the handshakes under way (tunnels are the
 * proxy's, ended by ptth_proxy_shutdown). */
void ptth_socks_front_shutdown(ptth_socks_front *f);

void ptth_socks_front_free(ptth_socks_front *f);

#endif
