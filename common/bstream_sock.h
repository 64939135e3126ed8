/*
 * bstream_sock.h: the bottom layer of a byte stream (bstream.h): a TCP
 * socket to host:port, connected without blocking on the terminator's loop.
 *
 * ptth_bstream_sock_open() resolves the name at once (getaddrinfo,
 * blocking; ptth_bstream_sock_resolve() alone lets an owner resolve once
 * and open many streams with ptth_bstream_sock_open_addrs()); then each
 * address is tried in turn: a non-blocking connect(), the socket watched
 * for writable, and on an error the next address. TCP_NODELAY and keepalive
 * (idle 30 s, interval 10 s) on every socket. No deadline of its own: the
 * owner bounds the connect with a timer and closes the stream.
 *
 * send is sendmsg() of all the buffers (MSG_NOSIGNAL), recv is recv().
 * Error reasons name the peer as given ("send to relay: ...").
 */
#ifndef PTTH_BSTREAM_SOCK_H
#define PTTH_BSTREAM_SOCK_H

#include <netinet/in.h>
#include <sys/socket.h>

#include "bstream.h"
#include "loop.h"

#define PTTH_BSTREAM_SOCK_ADDRS_MAX 8 /* addresses of a name kept and tried, the first ones getaddrinfo gives */

/* The resolved addresses of host:port, in the order to try them (IPv4 or
 * IPv6; small enough to copy). */
typedef struct ptth_bstream_sock_addrs {
    size_t n;
    struct {
        union {
            struct sockaddr sa;
            struct sockaddr_in in;
            struct sockaddr_in6 in6;
        } u;
        socklen_t len;
    } a[PTTH_BSTREAM_SOCK_ADDRS_MAX];
} ptth_bstream_sock_addrs;

/* Resolves host (a name, or an IPv4 or IPv6 literal: then without
 * getaddrinfo) and the numeric port into *out: 0, or -EHOSTUNREACH with why
 * ("cannot resolve: ..."). Blocking for a name. */
int ptth_bstream_sock_resolve(const char *host, const char *port, ptth_bstream_sock_addrs *out, char *why, size_t whylen);

/* Like ptth_bstream_sock_open() with addresses resolved before (copied). */
int ptth_bstream_sock_open_addrs(ptth_loop *loop, const ptth_bstream_sock_addrs *addrs, const char *peer,
                                 ptth_bstream_event_cb on_event, void *data, ptth_bstream **out, char *why, size_t whylen);

/* Resolves host:port and starts connecting to the first address that takes
 * a socket. on_event(data, events) then reports every event of the socket
 * until close; the owner calls ptth_bstream_connect() on them until it
 * returns 0. peer names the other end in error reasons (kept, not copied).
 * 0 with *out, or a negative errno with why ("cannot resolve: ...",
 * "connect: ...") and nothing allocated. */
int ptth_bstream_sock_open(ptth_loop *loop, const char *host, const char *port, const char *peer, ptth_bstream_event_cb on_event,
                           void *data, ptth_bstream **out, char *why, size_t whylen);

#endif
