/*
 * resolve.h: a host name looked up without blocking the event loop, for the
 * transports that open sockets (tcp.c, udp.c).
 *
 * ptth_resolve_start() hands HOST:PORT to getaddrinfo() in a short-lived
 * detached thread and gives back a descriptor that becomes readable when
 * the answer is in; the caller polls it (EPOLLIN) as its stream's fd while
 * resolving, then calls ptth_resolve_take(). The job is shared by the
 * thread and the caller and freed by whichever lets go last, so the caller
 * may drop it at any time (ptth_resolve_release), also while the thread
 * still runs.
 *
 * Ownership: the caller owns *fd_out (closes it) and holds one reference
 * to the job until ptth_resolve_release(); addresses taken with
 * ptth_resolve_take() are the caller's (freeaddrinfo).
 */
#ifndef PTTH_RESOLVE_H
#define PTTH_RESOLVE_H

#include <stdbool.h>
#include <stddef.h>

struct addrinfo;

typedef struct ptth_resolve ptth_resolve;

/* Starts resolving host (a name) and port (numeric) for socktype
 * (SOCK_STREAM, SOCK_DGRAM), AI_ADDRCONFIG. 0, or a negative errno with
 * err saying why ("resolve 'HOST': ..."). */
int ptth_resolve_start(const char *host, const char *port, int socktype, ptth_resolve **out, int *fd_out, char *err,
                       size_t errlen);

/* false: not done yet (keep polling). true: *gai_rc is getaddrinfo()'s
 * result and, when 0, *res the addresses (now the caller's). Drains the
 * wake-up on fd. */
bool ptth_resolve_take(ptth_resolve *r, int fd, int *gai_rc, struct addrinfo **res);

/* Lets go of the caller's reference (NULL: nothing). */
void ptth_resolve_release(ptth_resolve *r);

#endif
