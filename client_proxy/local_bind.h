/*
 * local_bind.h: the local sockets of ptth_proxy's fronts (--listen,
 * --forward, --socks, --udp): resolve ADDR, bind, listen.
 */
#ifndef PTTH_LOCAL_BIND_H
#define PTTH_LOCAL_BIND_H

#include <stddef.h>
#include <stdint.h>

/* Binds host:port (numeric or a name; port 0: the kernel chooses) for
 * socktype SOCK_STREAM (then listens) or SOCK_DGRAM, non-blocking and
 * close-on-exec, IPv6 sockets v6-only. *fd_out is the socket and bound its
 * address as "ADDR:PORT". 0, or a negative errno with err saying which
 * address failed and why. */
int ptth_local_bind(const char *host, uint16_t port, int socktype, int *fd_out, char *bound, size_t boundlen, char *err,
                    size_t errlen);

#endif
