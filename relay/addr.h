/*
 * addr.h: client addresses as the relay reports them (PTTH-Client-Addr, the
 * tunnel_end log line), and --trusted-proxy CIDR rules.
 *
 * The address of a request is its TCP peer, unless that peer matches a
 * --trusted-proxy rule: then X-Forwarded-For is walked from its right end and
 * the first address that is not itself trusted is taken (the leftmost one when
 * all are trusted). Addresses are written as "IP:PORT" or "[IPV6]:PORT"; an
 * address taken from X-Forwarded-For has no port and is written with port 0.
 * IPv4-mapped IPv6 peers (::ffff:a.b.c.d) are treated as IPv4. Pure logic.
 */
#ifndef PTTH_RELAY_ADDR_H
#define PTTH_RELAY_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define PTTH_ADDR_STRLEN 64 /* "[ffff:...:ffff]:65535" fits */

typedef struct ptth_cidr {
    int family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    unsigned prefix; /* bits */
} ptth_cidr;

/* "10.0.0.0/8", "192.168.1.7", "fd00::/8", "::1". 0 or -EINVAL (host bits
 * beyond the prefix are ignored). */
int ptth_cidr_parse(const char *text, ptth_cidr *out);
/* Option check of one --trusted-proxy value. */
int ptth_cidr_check(const char *value, char *err, size_t errlen);

/* true when the address (family, 4 or 16 bytes) lies in c. */
bool ptth_cidr_match(const ptth_cidr *c, int family, const uint8_t *addr);

/* true when the peer (AF_INET or AF_INET6; IPv4-mapped IPv6 as IPv4) lies in
 * one of the n networks. */
bool ptth_addr_trusted(const struct sockaddr *peer, const ptth_cidr *trusted, size_t n);

/* Writes the client address of a request into out (see above). xff may be
 * NULL. Never fails: a malformed X-Forwarded-For falls back to the peer. */
void ptth_client_addr(const struct sockaddr *peer, const char *xff, size_t xff_len, const ptth_cidr *trusted, size_t ntrusted,
                      char *out, size_t outlen);

#endif
