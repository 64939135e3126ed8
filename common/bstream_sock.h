/*
 * bstream_sock.h: the bottom layer of a byte stream (bstream.h): a TCP
 * socket to host:port, connected without blocking on the terminator's loop.
 *
 * The name is resolved at once (getaddrinfo, blocking); then each address
 * is tried in turn: a non-blocking connect(), the socket watched for
 * writable, and on an error the next address. TCP_NODELAY and keepalive
 * (idle 30 s, interval 10 s) on every socket. No deadline of its own: the
 * owner bounds the connect with a timer and closes the stream.
 *
 * send is sendmsg() of all the buffers (MSG_NOSIGNAL), recv is recv().
 * Error reasons name the peer as given ("send to relay: ...").
 */
#ifndef PTTH_BSTREAM_SOCK_H
#define PTTH_BSTREAM_SOCK_H

#include "bstream.h"
#include "loop.h"

/* Resolves host:port and starts connecting to the first address that takes
 * a socket. on_event(data, events) then reports every event of the socket
 * until close; the owner calls ptth_bstream_connect() on them until it
 * returns 0. peer names the other end in error reasons (kept, not copied).
 * 0 with *out, or a negative errno with why ("cannot resolve: ...",
 * "connect: ...") and nothing allocated. */
int ptth_bstream_sock_open(ptth_loop *loop, const char *host, const char *port, const char *peer, ptth_bstream_event_cb on_event,
                           void *data, ptth_bstream **out, char *why, size_t whylen);

#endif
