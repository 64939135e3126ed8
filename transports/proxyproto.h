/*
 * proxyproto.h: the PROXY protocol v2 header (haproxy's proxy-protocol.txt)
 * that ptth_server sends first to a TCP backend with --proxy-protocol, so the
 * backend learns the original client's address (SPEC §5).
 *
 * Pure functions: no I/O.
 */
#ifndef PTTH_PROXYPROTO_H
#define PTTH_PROXYPROTO_H

#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

/* 16-byte signature + fixed part, plus two IPv6 addresses and ports. */
#define PTTH_PROXY_V2_MAX 52

/* Writes a v2 header into out (at least PTTH_PROXY_V2_MAX bytes) saying the
 * stream came from src and was addressed to dst (AF_INET or AF_INET6 each;
 * when the two families differ the IPv4 one is written as ::ffff:a.b.c.d).
 * src NULL (client address unknown) gives the LOCAL command with no address.
 * Returns the header's length, or -EAFNOSUPPORT for another family. */
ssize_t ptth_proxy_v2_build(const struct sockaddr *src, const struct sockaddr *dst, unsigned char *out, size_t outlen);

/* "1.2.3.4:5678" or "[::1]:5678" -> a sockaddr; 0 or -EINVAL. */
int ptth_proxy_parse_addr(const char *text, struct sockaddr_storage *out);

#endif
