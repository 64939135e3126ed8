/*
 * proxyproto.c: PROXY protocol v2 header builder (see proxyproto.h).
 */
#include "proxyproto.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

static const unsigned char signature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* An address as IPv6 (IPv4 mapped into ::ffff:0:0/96) with its port. */
static void
as_v6(const struct sockaddr *sa, unsigned char addr[16], uint16_t *port_be)
{
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        memcpy(addr, &s6->sin6_addr, 16);
        *port_be = s6->sin6_port;
    } else {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        memset(addr, 0, 10);
        addr[10] = 0xff;
        addr[11] = 0xff;
        memcpy(addr + 12, &s4->sin_addr, 4);
        *port_be = s4->sin_port;
    }
}

ssize_t
ptth_proxy_v2_build(const struct sockaddr *src, const struct sockaddr *dst, unsigned char *out, size_t outlen)
{
    if (outlen < PTTH_PROXY_V2_MAX)
        return -ENOSPC;
    memcpy(out, signature, sizeof(signature));
    if (src == NULL) {
        out[12] = 0x20; /* version 2, LOCAL */
        out[13] = 0x00; /* AF_UNSPEC, UNSPEC */
        out[14] = 0;
        out[15] = 0;
        return 16;
    }
    bool ok_src = src->sa_family == AF_INET || src->sa_family == AF_INET6;
    bool ok_dst = dst->sa_family == AF_INET || dst->sa_family == AF_INET6;
    if (!ok_src || !ok_dst)
        return -EAFNOSUPPORT;
    out[12] = 0x21; /* version 2, PROXY */
    if (src->sa_family == AF_INET && dst->sa_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)src, *d = (const struct sockaddr_in *)dst;
        out[13] = 0x11; /* TCP over IPv4 */
        out[14] = 0;
        out[15] = 12;
        memcpy(out + 16, &s->sin_addr, 4);
        memcpy(out + 20, &d->sin_addr, 4);
        memcpy(out + 24, &s->sin_port, 2);
        memcpy(out + 26, &d->sin_port, 2);
        return 28;
    }
    unsigned char a[16], b[16];
    uint16_t pa, pb;
    as_v6(src, a, &pa);
    as_v6(dst, b, &pb);
    out[13] = 0x21; /* TCP over IPv6 */
    out[14] = 0;
    out[15] = 36;
    memcpy(out + 16, a, 16);
    memcpy(out + 32, b, 16);
    memcpy(out + 48, &pa, 2);
    memcpy(out + 50, &pb, 2);
    return 52;
}

int
ptth_proxy_parse_addr(const char *text, struct sockaddr_storage *out)
{
    memset(out, 0, sizeof(*out));
    if (text == NULL)
        return -EINVAL;
    const char *colon = strrchr(text, ':');
    if (colon == NULL)
        return -EINVAL;
    char host[64];
    const char *h = text;
    size_t hlen = (size_t)(colon - text);
    if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    if (hlen == 0 || hlen >= sizeof(host))
        return -EINVAL;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    const char *p = colon + 1;
    unsigned long port = 0;
    if (*p == '\0' || strlen(p) > 5)
        return -EINVAL;
    for (; *p != '\0'; p++) {
        if (*p < '0' || *p > '9')
            return -EINVAL;
        port = port * 10 + (unsigned long)(*p - '0');
    }
    if (port > 65535)
        return -EINVAL;
    struct sockaddr_in *s4 = (struct sockaddr_in *)out;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)out;
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        return 0;
    }
    memset(out, 0, sizeof(*out));
    return -EINVAL;
}
