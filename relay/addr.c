/*
 * addr.c: see addr.h.
 */
#include "addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parses a bare IPv4 or IPv6 address of len bytes. */
static int
parse_ip(const char *text, size_t len, int *family, uint8_t addr[16])
{
    char buf[INET6_ADDRSTRLEN + 1];
    if (len == 0 || len >= sizeof(buf))
        return -EINVAL;
    memcpy(buf, text, len);
    buf[len] = '\0';
    memset(addr, 0, 16);
    if (inet_pton(AF_INET, buf, addr) == 1) {
        *family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, buf, addr) == 1) {
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(addr, mapped, 12) == 0) {
            memmove(addr, addr + 12, 4);
            memset(addr + 4, 0, 12);
            *family = AF_INET;
        } else {
            *family = AF_INET6;
        }
        return 0;
    }
    return -EINVAL;
}

int
ptth_cidr_parse(const char *text, ptth_cidr *out)
{
    const char *slash = strchr(text, '/');
    size_t iplen = slash != NULL ? (size_t)(slash - text) : strlen(text);
    memset(out, 0, sizeof(*out));
    if (parse_ip(text, iplen, &out->family, out->addr) != 0)
        return -EINVAL;
    unsigned maxbits = out->family == AF_INET ? 32 : 128;
    if (slash == NULL) {
        out->prefix = maxbits;
        return 0;
    }
    const char *p = slash + 1;
    if (*p == '\0' || strlen(p) > 3)
        return -EINVAL;
    unsigned v = 0;
    for (; *p != '\0'; p++) {
        if (*p < '0' || *p > '9')
            return -EINVAL;
        v = v * 10 + (unsigned)(*p - '0');
    }
    if (v > maxbits)
        return -EINVAL;
    out->prefix = v;
    return 0;
}

int
ptth_cidr_check(const char *value, char *err, size_t errlen)
{
    ptth_cidr c;
    if (ptth_cidr_parse(value, &c) != 0) {
        snprintf(err, errlen, "bad CIDR '%s': expected ADDRESS[/BITS], e.g. 10.0.0.0/8 or fd00::/8", value);
        return -1;
    }
    return 0;
}

bool
ptth_cidr_match(const ptth_cidr *c, int family, const uint8_t *addr)
{
    if (c->family != family)
        return false;
    unsigned full = c->prefix / 8, rest = c->prefix % 8;
    if (memcmp(c->addr, addr, full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (c->addr[full] & mask) == (addr[full] & mask);
}

static bool
trusted_addr(const ptth_cidr *trusted, size_t n, int family, const uint8_t *addr)
{
    for (size_t i = 0; i < n; i++)
        if (ptth_cidr_match(&trusted[i], family, addr))
            return true;
    return false;
}

bool
ptth_addr_trusted(const struct sockaddr *peer, const ptth_cidr *trusted, size_t n)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (n == 0 || peer == NULL)
        return false;
    if (peer->sa_family == AF_INET)
        return trusted_addr(trusted, n, AF_INET, (const uint8_t *)&((const struct sockaddr_in *)peer)->sin_addr);
    if (peer->sa_family != AF_INET6)
        return false;
    const uint8_t *a6 = ((const struct sockaddr_in6 *)peer)->sin6_addr.s6_addr;
    if (memcmp(a6, mapped, sizeof(mapped)) == 0)
        return trusted_addr(trusted, n, AF_INET, a6 + 12);
    return trusted_addr(trusted, n, AF_INET6, a6);
}

static void
format_addr(int family, const uint8_t *addr, unsigned port, char *out, size_t outlen)
{
    char ip[INET6_ADDRSTRLEN];
    if (inet_ntop(family, addr, ip, sizeof(ip)) == NULL) {
        snprintf(out, outlen, "unknown");
        return;
    }
    if (family == AF_INET6)
        snprintf(out, outlen, "[%s]:%u", ip, port);
    else
        snprintf(out, outlen, "%s:%u", ip, port);
}

/* Takes one X-Forwarded-For element (trimmed); accepts "IP", "IP:PORT" and
 * "[IPV6]:PORT" forms, keeping only the IP. */
static int
parse_xff_item(const char *s, size_t len, int *family, uint8_t addr[16])
{
    while (len > 0 && (*s == ' ' || *s == '\t'))
        s++, len--;
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    if (len > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (close == NULL)
            return -EINVAL;
        return parse_ip(s + 1, (size_t)(close - s - 1), family, addr);
    }
    if (parse_ip(s, len, family, addr) == 0)
        return 0;
    const char *colon = memchr(s, ':', len);
    if (colon != NULL && memchr(colon + 1, ':', len - (size_t)(colon + 1 - s)) == NULL)
        return parse_ip(s, (size_t)(colon - s), family, addr);
    return -EINVAL;
}

void
ptth_client_addr(const struct sockaddr *peer, const char *xff, size_t xff_len, const ptth_cidr *trusted, size_t ntrusted, char *out,
                 size_t outlen)
{
    int family = AF_UNSPEC;
    uint8_t addr[16] = {0};
    unsigned port = 0;

    if (peer != NULL && peer->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)peer;
        family = AF_INET;
        memcpy(addr, &sin->sin_addr, 4);
        port = ntohs(sin->sin_port);
    } else if (peer != NULL && peer->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)peer;
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        port = ntohs(sin6->sin6_port);
        if (memcmp(sin6->sin6_addr.s6_addr, mapped, 12) == 0) {
            family = AF_INET;
            memcpy(addr, sin6->sin6_addr.s6_addr + 12, 4);
        } else {
            family = AF_INET6;
            memcpy(addr, sin6->sin6_addr.s6_addr, 16);
        }
    } else {
        snprintf(out, outlen, "unknown");
        return;
    }

    if (xff != NULL && xff_len > 0 && trusted_addr(trusted, ntrusted, family, addr)) {
        /* walk the list from the right: each hop was added by the proxy after it */
        int cand_family = AF_UNSPEC;
        uint8_t cand[16];
        size_t end = xff_len;
        while (end > 0) {
            size_t start = end;
            while (start > 0 && xff[start - 1] != ',')
                start--;
            int f;
            uint8_t a[16];
            if (parse_xff_item(xff + start, end - start, &f, a) != 0)
                break; /* garbage: keep what we have */
            cand_family = f;
            memcpy(cand, a, 16);
            if (!trusted_addr(trusted, ntrusted, f, a))
                break;
            end = start > 0 ? start - 1 : 0;
            if (start == 0)
                break;
        }
        if (cand_family != AF_UNSPEC) {
            format_addr(cand_family, cand, 0, out, outlen);
            return;
        }
    }
    format_addr(family, addr, port, out, outlen);
}
