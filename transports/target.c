/*
 * target.c: parsing of port-map targets (SPEC §5) and the start-up checks that
 * look at the machine. Every form is recognised here and nowhere else, so the
 * server terminator, --check-config and the fuzz target agree on what a
 * target means. Pure: no file system or network access (ptth_target_check(),
 * which looks at the machine, lives in transport.c).
 */
#include "target.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "names.h"

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int
fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

static bool
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* A TCP port: 1 to 5 decimal digits, value 1..65535, nothing else. */
static bool
parse_port(const char *s, size_t len, uint16_t *out)
{
    if (len == 0 || len > 5)
        return false;
    uint32_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (!is_digit(s[i]))
            return false;
        v = v * 10 + (uint32_t)(s[i] - '0');
    }
    if (v == 0 || v > 65535)
        return false;
    *out = (uint16_t)v;
    return true;
}

/* A decimal uint32 (no sign, no spaces, at most 10 digits, no overflow). */
static bool
parse_u32(const char *s, size_t len, uint32_t *out)
{
    if (len == 0 || len > 10)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (!is_digit(s[i]))
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > UINT32_MAX)
        return false;
    *out = (uint32_t)v;
    return true;
}

/* Host names and IPv4 literals: letters, digits, '.', '-', '_'. */
static bool
host_name_ok(const char *s, size_t len)
{
    if (len == 0 || len >= PTTH_TARGET_HOST_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '.' || c == '-' || c == '_'))
            return false;
    }
    return true;
}

/* IPv6 literals (what goes between the brackets): hex digits, ':', '.' (an
 * embedded IPv4 address), and a "%zone" suffix of name characters. getaddrinfo
 * has the last word on whether it is a valid address. */
static bool
host_v6_ok(const char *s, size_t len)
{
    if (len < 2 || len >= PTTH_TARGET_HOST_MAX || memchr(s, ':', len) == NULL)
        return false;
    bool zone = false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (zone) {
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '.' || c == '-' || c == '_'))
                return false;
        } else if (c == '%') {
            if (i + 1 == len)
                return false;
            zone = true;
        } else if (!(is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' || c == '.')) {
            return false;
        }
    }
    return true;
}

static bool
has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static bool
printable(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
            return false;
    return true;
}

static int
parse_unix(const char *text, ptth_target *t, char *err, size_t errlen)
{
    const char *path = text + strlen("unix:");
    size_t len = strlen(path);
    if (len == 0)
        return fail(err, errlen, "unix target '%s': missing PATH", text);
    if (len >= PTTH_TARGET_PATH_MAX)
        return fail(err, errlen, "unix target '%s': path is %zu bytes, the limit is %d", text, len, PTTH_TARGET_PATH_MAX - 1);
    if (path[0] == '@' && len == 1)
        return fail(err, errlen, "unix target '%s': abstract socket name after '@' is empty", text);
    t->kind = PTTH_TARGET_UNIX;
    memcpy(t->path, path, len + 1);
    return 0;
}

/* nvme:DEVICE:PORT[@NODE]. DEVICE is a path that may itself hold ':' and '@',
 * NODE may be an IPv6 literal with ':' in it, so the split point is the first
 * ":DIGITS" that is followed by the end or by '@'. */
static int
parse_nvme(const char *text, ptth_target *t, char *err, size_t errlen)
{
    const char *rest = text + strlen("nvme:");
    const char *colon = NULL, *port_end = NULL;
    for (const char *p = strchr(rest, ':'); p != NULL; p = strchr(p + 1, ':')) {
        const char *q = p + 1;
        while (is_digit(*q))
            q++;
        if (q > p + 1 && (*q == '\0' || *q == '@')) {
            colon = p;
            port_end = q;
            break;
        }
    }
    if (colon == NULL) {
        const char *last = strrchr(rest, ':');
        if (last == NULL || last == rest)
            return fail(err, errlen, "nvme target '%s': expected nvme:DEVICE:PORT[@NODE], missing %s", text,
                        last == NULL ? "PORT" : "DEVICE");
        return fail(err, errlen, "nvme target '%s': missing PORT (a number in 1..65535 after DEVICE:)", text);
    }
    size_t dev_len = (size_t)(colon - rest);
    if (dev_len == 0)
        return fail(err, errlen, "nvme target '%s': missing DEVICE before ':PORT'", text);
    if (dev_len >= PTTH_TARGET_PATH_MAX)
        return fail(err, errlen, "nvme target '%s': DEVICE is %zu bytes, the limit is %d", text, dev_len, PTTH_TARGET_PATH_MAX - 1);
    uint16_t port;
    if (!parse_port(colon + 1, (size_t)(port_end - colon - 1), &port))
        return fail(err, errlen, "nvme target '%s': port '%.*s' is not a number in 1..65535", text, (int)(port_end - colon - 1),
                    colon + 1);
    const char *node = "127.0.0.1";
    size_t node_len = strlen(node);
    if (*port_end == '@') {
        node = port_end + 1;
        node_len = strlen(node);
        if (node_len >= 2 && node[0] == '[' && node[node_len - 1] == ']') {
            node++;
            node_len -= 2;
            if (!host_v6_ok(node, node_len))
                return fail(err, errlen, "nvme target '%s': bad IPv6 NODE '%.*s'", text, (int)node_len, node);
        } else if (node_len == 0) {
            return fail(err, errlen, "nvme target '%s': empty NODE after '@'", text);
        } else if (!host_name_ok(node, node_len) && !host_v6_ok(node, node_len)) {
            return fail(err, errlen, "nvme target '%s': bad NODE '%s' (a host name, IPv4 or IPv6 address)", text, node);
        }
    }
    t->kind = PTTH_TARGET_NVME;
    memcpy(t->path, rest, dev_len);
    t->path[dev_len] = '\0';
    t->port = port;
    snprintf(t->port_text, sizeof(t->port_text), "%u", (unsigned)port);
    memcpy(t->host, node, node_len);
    t->host[node_len] = '\0';
    return 0;
}

static int
parse_cc(const char *text, ptth_target *t, char *err, size_t errlen)
{
    const char *rest = text + strlen("cc:");
    if (has_prefix(rest, "vsock:")) {
        const char *cid = rest + strlen("vsock:");
        const char *colon = strchr(cid, ':');
        if (colon == NULL)
            return fail(err, errlen, "cc target '%s': expected cc:vsock:CID:PORT, missing PORT", text);
        uint32_t cid_v, port_v;
        if (!parse_u32(cid, (size_t)(colon - cid), &cid_v) || cid_v == UINT32_MAX)
            return fail(err, errlen, "cc target '%s': CID '%.*s' is not a number in 0..4294967294", text, (int)(colon - cid), cid);
        if (!parse_u32(colon + 1, strlen(colon + 1), &port_v) || port_v == UINT32_MAX)
            return fail(err, errlen, "cc target '%s': vsock port '%s' is not a number in 0..4294967294", text, colon + 1);
        t->kind = PTTH_TARGET_CC;
        t->cc_carrier = PTTH_CC_VSOCK;
        t->vsock_cid = cid_v;
        t->vsock_port = port_v;
        return 0;
    }
    if (*rest == '\0')
        return fail(err, errlen, "cc target '%s': missing SERVICE", text);
    if (!ptth_name_valid_str(rest))
        return fail(err, errlen, "cc target '%s': service '%s' is not a name (1 to %d of A-Z a-z 0-9 . _ -)", text, rest,
                    PTTH_NAME_MAX);
    t->kind = PTTH_TARGET_CC;
    t->cc_carrier = PTTH_CC_SEQPACKET;
    memcpy(t->cc_service, rest, strlen(rest) + 1);
    return 0;
}

/* PORT, HOST:PORT or [V6]:PORT. */
static int
parse_tcp(const char *text, ptth_target *t, char *err, size_t errlen)
{
    const char *host, *port;
    size_t host_len;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL)
            return fail(err, errlen, "tcp target '%s': missing ']' after the IPv6 address", text);
        if (close[1] != ':')
            return fail(err, errlen, "tcp target '%s': expected [V6]:PORT, missing ':PORT' after ']'", text);
        host = text + 1;
        host_len = (size_t)(close - host);
        if (!host_v6_ok(host, host_len))
            return fail(err, errlen, "tcp target '%s': bad IPv6 address '%.*s'", text, (int)host_len, host);
        port = close + 2;
    } else {
        const char *colon = strchr(text, ':');
        if (colon == NULL) {
            uint16_t p;
            if (!parse_port(text, strlen(text), &p))
                return fail(err, errlen,
                            "target '%s': not a port number in 1..65535, nor HOST:PORT, [V6]:PORT, unix:PATH, "
                            "nvme:DEVICE:PORT[@NODE], cc:SERVICE or udp:HOST:PORT",
                            text);
            host = "127.0.0.1";
            host_len = strlen(host);
            port = text;
        } else {
            if (strchr(colon + 1, ':') != NULL)
                return fail(err, errlen,
                            "tcp target '%s': too many ':' (an IPv6 address goes in brackets: [V6]:PORT; other forms "
                            "are unix:PATH, nvme:DEVICE:PORT[@NODE], cc:SERVICE, udp:HOST:PORT)",
                            text);
            host = text;
            host_len = (size_t)(colon - text);
            if (host_len == 0)
                return fail(err, errlen, "tcp target '%s': missing HOST before ':PORT'", text);
            if (!host_name_ok(host, host_len))
                return fail(err, errlen, "tcp target '%s': bad host '%.*s' (letters, digits, '.', '-', '_')", text, (int)host_len,
                            host);
            port = colon + 1;
        }
    }
    uint16_t p;
    if (*port == '\0')
        return fail(err, errlen, "tcp target '%s': missing PORT", text);
    if (!parse_port(port, strlen(port), &p))
        return fail(err, errlen, "tcp target '%s': port '%s' is not a number in 1..65535", text, port);
    t->kind = PTTH_TARGET_TCP;
    memcpy(t->host, host, host_len);
    t->host[host_len] = '\0';
    t->port = p;
    snprintf(t->port_text, sizeof(t->port_text), "%u", (unsigned)p);
    return 0;
}

/* udp:HOST:PORT or udp:[V6]:PORT: the TCP forms, without the bare PORT */
static int
parse_udp(const char *text, ptth_target *t, char *err, size_t errlen)
{
    const char *rest = text + strlen("udp:");
    if (rest[0] != '[' && strchr(rest, ':') == NULL)
        return fail(err, errlen, "udp target '%s': expected udp:HOST:PORT or udp:[V6]:PORT", text);
    char why[256];
    if (parse_tcp(rest, t, why, sizeof(why)) != 0) {
        /* parse_tcp says "tcp target 'REST': what"; keep only what */
        const char *what = strstr(why, "': ");
        return fail(err, errlen, "udp target '%s': %s", text, what != NULL ? what + 3 : why);
    }
    t->kind = PTTH_TARGET_UDP;
    return 0;
}

int
ptth_target_parse(const char *text, ptth_target *out, char *err, size_t errlen)
{
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    memset(out, 0, sizeof(*out));
    if (text == NULL || text[0] == '\0')
        return fail(err, errlen, "empty target");
    size_t len = strlen(text);
    if (len >= PTTH_TARGET_TEXT_MAX)
        return fail(err, errlen, "target '%.40s...' is %zu bytes, the limit is %d", text, len, PTTH_TARGET_TEXT_MAX - 1);
    if (!printable(text))
        return fail(err, errlen, "target holds a control character");
    ptth_target t;
    memset(&t, 0, sizeof(t));
    memcpy(t.text, text, len + 1);
    int r;
    if (has_prefix(text, "unix:"))
        r = parse_unix(text, &t, err, errlen);
    else if (has_prefix(text, "nvme:"))
        r = parse_nvme(text, &t, err, errlen);
    else if (has_prefix(text, "cc:"))
        r = parse_cc(text, &t, err, errlen);
    else if (has_prefix(text, "udp:"))
        r = parse_udp(text, &t, err, errlen);
    else
        r = parse_tcp(text, &t, err, errlen);
    if (r == 0)
        *out = t;
    return r;
}
