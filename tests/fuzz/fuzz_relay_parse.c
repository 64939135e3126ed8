/*
 * fuzz_relay_parse.c: libFuzzer target for the relay's pure parsers of
 * request fields (relay/route.h, auth.h, addr.h): the request path, the
 * Authorization header (Bearer and Basic), X-Forwarded-For with
 * --trusted-proxy rules, and CIDR values. These see every request before
 * anything else does; fuzz_relay_http drives the same code through h2o.
 *
 * Input: byte 0 picks the parser (modulo 5), the rest is its input:
 *   0 path: ptth_route_parse() against a reference matcher written from
 *     route.h (kind and spans); an accepted path must be exactly the
 *     canonical form of its route; side, method and name lookups of the kind.
 *   1 "Authorization: Bearer KEY": accepted exactly when the text after
 *     "Bearer " and the spaces is one key (43 base64url characters, trailing
 *     spaces and tabs ignored), and then the hash is SHA-256 hex of it.
 *   2 "Authorization: Basic B64": same for the password of user:password,
 *     compared with a reference base64 decoder (both alphabets, '=' ends).
 *   3 X-Forwarded-For: 1 byte peer kind, 16 address bytes, 2 port bytes,
 *     then "CIDR CIDR ...\nXFF". The client address must be the peer's when
 *     the peer is not trusted (by a reference CIDR match that must agree with
 *     ptth_cidr_match), and is always a terminated "IP:PORT" / "[IP]:PORT" /
 *     "unknown" that a short buffer truncates cleanly.
 *   4 CIDR: an accepted value has a prefix within its family's bits and
 *     writes back (inet_ntop/prefix) to a value that parses the same.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/sha.h>

#include "addr.h"
#include "auth.h"
#include "keys.h"
#include "names.h"
#include "route.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fail(const char *what)
{
    fprintf(stderr, "fuzz_relay_parse: invariant broken: %s\n", what);
    abort();
}

/* ---- paths ---------------------------------------------------------------- */

static bool
lit(const char *p, size_t len, const char *s)
{
    return strlen(s) == len && memcmp(p, s, len) == 0;
}

static bool
ref_id(const char *p, size_t len)
{
    if (len != 22)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((p[i] >= 'A' && p[i] <= 'Z') || (p[i] >= 'a' && p[i] <= 'z') || (p[i] >= '0' && p[i] <= '9') || p[i] == '-' ||
              p[i] == '_'))
            return false;
    return true;
}

/* Takes the segment at *p up to the next '/' or the end. */
static size_t
segment(const char **p, const char *end)
{
    const char *s = *p;
    while (*p < end && **p != '/')
        (*p)++;
    return (size_t)(*p - s);
}

/* route.h's table, read left to right without splitting first. */
static ptth_route_kind
ref_match_route(const char *path, size_t len, ptth_route *r)
{
    const char *q = memchr(path, '?', len);
    if (q != NULL)
        len = (size_t)(q - path);
    if (lit(path, len, "/"))
        return PTTH_ROUTE_INDEX;
    if (lit(path, len, "/healthz"))
        return PTTH_ROUTE_HEALTHZ;
    if (lit(path, len, "/metrics"))
        return PTTH_ROUTE_METRICS;
    if (lit(path, len, "/v1/status"))
        return PTTH_ROUTE_STATUS;
    const char *prefix = "/v1/servers/";
    if (len < strlen(prefix) || memcmp(path, prefix, strlen(prefix)) != 0)
        return PTTH_ROUTE_NOT_FOUND;
    const char *p = path + strlen(prefix), *end = path + len;
    const char *server = p;
    size_t server_len = segment(&p, end);
    if (!ptth_name_valid(server, server_len) || p == end)
        return PTTH_ROUTE_NOT_FOUND;
    p++; /* '/' */
    r->server = (ptth_span){server, server_len};
    if (lit(p, (size_t)(end - p), "listen"))
        return PTTH_ROUTE_LISTEN;
    const char *what = p;
    size_t what_len = segment(&p, end);
    if (p == end)
        return PTTH_ROUTE_NOT_FOUND;
    p++;
    const char *name = p;
    size_t name_len = segment(&p, end);
    if (p == end)
        return PTTH_ROUTE_NOT_FOUND;
    p++;
    const char *verb = p;
    size_t verb_len = (size_t)(end - p);
    if (memchr(verb, '/', verb_len) != NULL)
        return PTTH_ROUTE_NOT_FOUND;
    if (lit(what, what_len, "ports") && ptth_name_valid(name, name_len) && lit(verb, verb_len, "connect")) {
        r->port = (ptth_span){name, name_len};
        return PTTH_ROUTE_CONNECT;
    }
    if (lit(what, what_len, "conns") && ref_id(name, name_len)) {
        static const struct {
            const char *verb;
            ptth_route_kind kind;
        } verbs[] = {{"accept", PTTH_ROUTE_ACCEPT},
                     {"reject", PTTH_ROUTE_REJECT},
                     {"downstream", PTTH_ROUTE_DOWNSTREAM},
                     {"upstream", PTTH_ROUTE_UPSTREAM},
                     {"close", PTTH_ROUTE_CLOSE},
                     {"resume", PTTH_ROUTE_RESUME}};
        for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
            if (lit(verb, verb_len, verbs[i].verb)) {
                r->id = (ptth_span){name, name_len};
                return verbs[i].kind;
            }
        }
    }
    return PTTH_ROUTE_NOT_FOUND;
}

/* NOT_FOUND leaves every span empty. */
static ptth_route_kind
ref_route(const char *path, size_t len, ptth_route *r)
{
    memset(r, 0, sizeof(*r));
    ptth_route_kind k = ref_match_route(path, len, r);
    if (k == PTTH_ROUTE_NOT_FOUND)
        memset(r, 0, sizeof(*r));
    return k;
}

static bool
same_span(ptth_span a, ptth_span b)
{
    return a.len == b.len && a.base == b.base;
}

static void
fuzz_path(const uint8_t *data, size_t size)
{
    char *path = malloc(size > 0 ? size : 1); /* exact size, no NUL: ASan sees overreads */
    if (path == NULL)
        abort();
    memcpy(path, data, size);
    ptth_route got, want;
    memset(&got, 0x5A, sizeof(got));
    ptth_route_kind k = ptth_route_parse(path, size, &got);
    ptth_route_kind wk = ref_route(path, size, &want);
    if (k != got.kind)
        fail("route: returned kind is not out->kind");
    if (k != wk || !same_span(got.server, want.server) || !same_span(got.port, want.port) || !same_span(got.id, want.id)) {
        fprintf(stderr, "route: kind %d, reference %d for '%.*s'\n", (int)k, (int)wk, (int)size, path);
        fail("route: kind or spans differ from the reference");
    }
    /* the lookups of a kind are total */
    if (ptth_route_name(k) == NULL || ptth_route_side_of(k) > PTTH_SIDE_EITHER)
        fail("route: no name or an unknown side");
    bool post = ptth_route_method_ok(k, "POST", 4), get = ptth_route_method_ok(k, "GET", 3);
    if (k != PTTH_ROUTE_NOT_FOUND && post == get)
        fail("route: a route takes both POST and GET, or neither");
    if (k != PTTH_ROUTE_NOT_FOUND && (ptth_route_method_ok(k, "PUT", 3) || ptth_route_method_ok(k, "POSTX", 5)))
        fail("route: a route takes PUT or POSTX");
    free(path);
}

/* ---- Authorization ---------------------------------------------------------- */

static bool
ref_key_char(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/* The hash the relay must compute for a key text, or false when not a key. */
static bool
ref_key_hash(const uint8_t *key, size_t len, char hex[65])
{
    if (len != 43)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!ref_key_char(key[i]))
            return false;
    uint8_t md[SHA256_DIGEST_LENGTH];
    SHA256(key, len, md);
    for (size_t i = 0; i < sizeof(md); i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return true;
}

/* "SCHEME" (any case), at least one space, the rest without trailing spaces
 * and tabs; NULL when value does not start so. */
static const uint8_t *
ref_after_scheme(const uint8_t *v, size_t len, const char *scheme, size_t *rest)
{
    size_t n = strlen(scheme);
    if (len <= n || strncasecmp((const char *)v, scheme, n) != 0 || v[n] != ' ')
        return NULL;
    size_t i = n;
    while (i < len && v[i] == ' ')
        i++;
    size_t end = len;
    while (end > i && (v[end - 1] == ' ' || v[end - 1] == '\t'))
        end--;
    *rest = end - i;
    return v + i;
}

static int
ref_b64(uint8_t c)
{
    const char *a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    const char *p = c != 0 ? strchr(a, c) : NULL;
    if (p != NULL)
        return (int)(p - a);
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

static void
fuzz_auth(const uint8_t *data, size_t size, bool basic)
{
    char *v = malloc(size > 0 ? size : 1);
    if (v == NULL)
        abort();
    memcpy(v, data, size);
    ptth_key_hash h;
    memset(&h, 0, sizeof(h));
    int rc = basic ? ptth_auth_basic_password(v, size, &h) : ptth_auth_bearer(v, size, &h);

    char want_hex[65];
    bool want = false;
    size_t rest;
    const uint8_t *r = ref_after_scheme(data, size, basic ? "Basic" : "Bearer", &rest);
    if (r != NULL && !basic) {
        want = ref_key_hash(r, rest, want_hex);
    } else if (r != NULL && rest <= 512) {
        uint8_t dec[400];
        size_t dlen = 0;
        unsigned acc = 0;
        int bits = 0;
        bool ok = true;
        for (size_t i = 0; i < rest && r[i] != '='; i++) {
            int x = ref_b64(r[i]);
            if (x < 0) {
                ok = false;
                break;
            }
            acc = (acc << 6) | (unsigned)x;
            bits += 6;
            if (bits >= 8) {
                bits -= 8;
                dec[dlen++] = (uint8_t)(acc >> bits);
            }
        }
        const uint8_t *colon = ok ? memchr(dec, ':', dlen) : NULL;
        if (colon != NULL)
            want = ref_key_hash(colon + 1, dlen - (size_t)(colon + 1 - dec), want_hex);
    }
    if ((rc == 0) != want)
        fail(basic ? "Basic: accepted or refused against the reference" : "Bearer: accepted or refused against the reference");
    if (rc != 0 && rc != -EINVAL)
        fail("Authorization: error is not -EINVAL");
    if (rc == 0 && strcmp(h.hex, want_hex) != 0)
        fail("Authorization: hash is not SHA-256 hex of the key");
    free(v);
}

/* ---- X-Forwarded-For and CIDR --------------------------------------------- */

static bool
ref_match(const ptth_cidr *c, int family, const uint8_t *addr)
{
    if (c->family != family)
        return false;
    for (unsigned bit = 0; bit < c->prefix; bit++) {
        unsigned byte = bit / 8, shift = 7 - bit % 8;
        if (((c->addr[byte] >> shift) & 1) != ((addr[byte] >> shift) & 1))
            return false;
    }
    return true;
}

static void
format_peer(int family, const uint8_t *addr, unsigned port, char *out, size_t outlen)
{
    char ip[INET6_ADDRSTRLEN];
    inet_ntop(family, addr, ip, sizeof(ip));
    snprintf(out, outlen, family == AF_INET6 ? "[%s]:%u" : "%s:%u", ip, port);
}

static void
fuzz_xff(const uint8_t *data, size_t size)
{
    if (size < 19)
        return;
    uint8_t kind = data[0] % 4;
    const uint8_t *a = data + 1;
    unsigned port = ((unsigned)data[17] << 8) | data[18];
    data += 19;
    size -= 19;

    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    int family = AF_INET;
    uint8_t addr[16] = {0};
    if (kind == 0) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        sin->sin_family = AF_INET;
        memcpy(&sin->sin_addr, a, 4);
        sin->sin_port = htons((uint16_t)port);
        memcpy(addr, a, 4);
    } else if (kind == 1 || kind == 2) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        sin6->sin6_family = AF_INET6;
        memcpy(&sin6->sin6_addr, a, 16);
        if (kind == 2) { /* an IPv4-mapped peer */
            memset(&sin6->sin6_addr, 0, 10);
            memset((uint8_t *)&sin6->sin6_addr + 10, 0xff, 2);
            memcpy(addr, a + 12, 4);
        } else {
            family = AF_INET6;
            memcpy(addr, a, 16);
            if (memcmp(a, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0) {
                family = AF_INET;
                memset(addr, 0, 16);
                memcpy(addr, a + 12, 4);
            }
        }
        sin6->sin6_port = htons((uint16_t)port);
    } else {
        ss.ss_family = AF_UNIX; /* not an IP peer: "unknown" */
    }

    /* first line: trusted CIDRs, space-separated */
    const uint8_t *nl = memchr(data, '\n', size);
    size_t line = nl != NULL ? (size_t)(nl - data) : size;
    char *cidrs = malloc(line + 1);
    if (cidrs == NULL)
        abort();
    memcpy(cidrs, data, line);
    cidrs[line] = '\0';
    ptth_cidr trusted[8];
    size_t nt = 0;
    for (char *save = NULL, *tok = strtok_r(cidrs, " ", &save); tok != NULL && nt < 8; tok = strtok_r(NULL, " ", &save))
        if (ptth_cidr_parse(tok, &trusted[nt]) == 0)
            nt++;
    free(cidrs);
    size_t xff_len = nl != NULL ? size - line - 1 : 0;
    char *xff = malloc(xff_len > 0 ? xff_len : 1);
    if (xff == NULL)
        abort();
    if (xff_len > 0)
        memcpy(xff, nl + 1, xff_len);

    bool peer_trusted = false;
    for (size_t i = 0; i < nt; i++) {
        bool m = ptth_cidr_match(&trusted[i], family, addr);
        if (m != ref_match(&trusted[i], family, addr))
            fail("xff: ptth_cidr_match disagrees with a bitwise match");
        peer_trusted = peer_trusted || m;
    }

    char out[128], small[128];
    memset(out, 'X', sizeof(out));
    ptth_client_addr((struct sockaddr *)&ss, xff_len > 0 ? xff : NULL, xff_len, trusted, nt, out, sizeof(out));
    if (memchr(out, '\0', sizeof(out)) == NULL)
        fail("xff: client address not terminated");
    char peer_text[128];
    if (kind == 3)
        snprintf(peer_text, sizeof(peer_text), "unknown");
    else
        format_peer(family, addr, port, peer_text, sizeof(peer_text));
    if ((kind == 3 || !peer_trusted || xff_len == 0) && strcmp(out, peer_text) != 0) {
        fprintf(stderr, "xff: got '%s', peer '%s'\n", out, peer_text);
        fail("xff: an untrusted peer's address was replaced");
    }
    if (strcmp(out, peer_text) != 0) {
        /* taken from X-Forwarded-For: "IP:0" or "[IPV6]:0" */
        size_t n = strlen(out);
        char ip[128];
        uint8_t buf[16];
        if (n < 3 || strcmp(out + n - 2, ":0") != 0)
            fail("xff: an address from X-Forwarded-For without port 0");
        if (out[0] == '[') {
            snprintf(ip, sizeof(ip), "%.*s", (int)(n - 4), out + 1);
            if (inet_pton(AF_INET6, ip, buf) != 1)
                fail("xff: bad IPv6 address in the result");
        } else {
            snprintf(ip, sizeof(ip), "%.*s", (int)(n - 2), out);
            if (inet_pton(AF_INET, ip, buf) != 1)
                fail("xff: bad IPv4 address in the result");
        }
    }
    /* a short buffer gets a terminated prefix */
    size_t outlen = 1 + (xff_len + nt) % 24;
    memset(small, 'Y', sizeof(small));
    ptth_client_addr((struct sockaddr *)&ss, xff_len > 0 ? xff : NULL, xff_len, trusted, nt, small, outlen);
    if (memchr(small, '\0', outlen) == NULL || small[outlen] != 'Y' || strncmp(small, out, strlen(small)) != 0)
        fail("xff: a short buffer was overrun or holds something else");
    free(xff);
}

static void
fuzz_cidr(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (text == NULL)
        abort();
    memcpy(text, data, size);
    text[size] = '\0';
    ptth_cidr c;
    int rc = ptth_cidr_parse(text, &c);
    char err[256] = "";
    if ((ptth_cidr_check(text, err, sizeof(err)) == 0) != (rc == 0) || (rc != 0 && err[0] == '\0'))
        fail("cidr: check and parse disagree");
    if (rc == 0) {
        if ((c.family == AF_INET && c.prefix > 32) || (c.family == AF_INET6 && c.prefix > 128) ||
            (c.family != AF_INET && c.family != AF_INET6))
            fail("cidr: bad family or prefix");
        char ip[INET6_ADDRSTRLEN], again[INET6_ADDRSTRLEN + 8];
        if (inet_ntop(c.family, c.addr, ip, sizeof(ip)) == NULL)
            fail("cidr: address cannot be written");
        snprintf(again, sizeof(again), "%s/%u", ip, c.prefix);
        ptth_cidr c2;
        if (ptth_cidr_parse(again, &c2) != 0 || c2.family != c.family || c2.prefix != c.prefix || memcmp(c2.addr, c.addr, 16) != 0)
            fail("cidr: writing it back gives another CIDR");
        if (!ptth_cidr_match(&c, c.family, c.addr))
            fail("cidr: does not match its own address");
    }
    free(text);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const uint8_t *rest = data + 1;
    size_t len = size - 1;
    switch (data[0] % 5) {
    case 0:
        fuzz_path(rest, len);
        break;
    case 1:
        fuzz_auth(rest, len, false);
        break;
    case 2:
        fuzz_auth(rest, len, true);
        break;
    case 3:
        fuzz_xff(rest, len);
        break;
    default:
        fuzz_cidr(rest, len);
        break;
    }
    return 0;
}
