/*
 * route.c: see route.h. The path is split on '/' into at most 6 segments and
 * matched against the fixed shapes of the API; no decoding is done, so a name
 * reaches the relay exactly as its owner wrote it ('%' is not a name
 * character, so an encoded name is simply not found).
 */
#include "route.h"

#include <string.h>

#include "keys.h"
#include "names.h"

#define MAX_SEGMENTS 6

static bool
span_is(ptth_span s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && memcmp(s.base, lit, n) == 0;
}

bool
ptth_route_id_valid(const char *id, size_t len)
{
    if (len != PTTH_ID_LEN)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = id[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return false;
    }
    return true;
}

/* Splits "/a/b/c" into segments; false when there are too many, when the
 * path does not start with '/', or when a segment is empty (except that "/"
 * alone gives zero segments). */
static bool
split(const char *path, size_t len, ptth_span *seg, size_t *nseg)
{
    *nseg = 0;
    if (len == 0 || path[0] != '/')
        return false;
    if (len == 1)
        return true;
    size_t i = 1;
    while (i <= len) {
        size_t start = i;
        while (i < len && path[i] != '/')
            i++;
        if (i == start || *nseg == MAX_SEGMENTS)
            return false;
        seg[(*nseg)++] = (ptth_span){path + start, i - start};
        i++; /* skip '/' (or step past the end) */
    }
    return true;
}

static ptth_route_kind
conn_verb(ptth_span verb)
{
    if (span_is(verb, "accept"))
        return PTTH_ROUTE_ACCEPT;
    if (span_is(verb, "reject"))
        return PTTH_ROUTE_REJECT;
    if (span_is(verb, "downstream"))
        return PTTH_ROUTE_DOWNSTREAM;
    if (span_is(verb, "upstream"))
        return PTTH_ROUTE_UPSTREAM;
    if (span_is(verb, "close"))
        return PTTH_ROUTE_CLOSE;
    if (span_is(verb, "resume"))
        return PTTH_ROUTE_RESUME;
    return PTTH_ROUTE_NOT_FOUND;
}

ptth_route_kind
ptth_route_parse(const char *path, size_t len, ptth_route *out)
{
    memset(out, 0, sizeof(*out));
    const char *q = memchr(path, '?', len);
    if (q != NULL)
        len = (size_t)(q - path);

    ptth_span seg[MAX_SEGMENTS];
    size_t n;
    if (!split(path, len, seg, &n))
        return out->kind = PTTH_ROUTE_NOT_FOUND;

    if (n == 0)
        return out->kind = PTTH_ROUTE_INDEX;
    if (n == 1 && span_is(seg[0], "healthz"))
        return out->kind = PTTH_ROUTE_HEALTHZ;
    if (n == 1 && span_is(seg[0], "metrics"))
        return out->kind = PTTH_ROUTE_METRICS;
    if (n == 2 && span_is(seg[0], "v1") && span_is(seg[1], "status"))
        return out->kind = PTTH_ROUTE_STATUS;

    if (n < 4 || !span_is(seg[0], "v1") || !span_is(seg[1], "servers") || !ptth_name_valid(seg[2].base, seg[2].len))
        return out->kind = PTTH_ROUTE_NOT_FOUND;
    out->server = seg[2];

    if (n == 4 && span_is(seg[3], "listen"))
        return out->kind = PTTH_ROUTE_LISTEN;
    if (n == 6 && span_is(seg[3], "ports") && span_is(seg[5], "connect") && ptth_name_valid(seg[4].base, seg[4].len)) {
        out->port = seg[4];
        return out->kind = PTTH_ROUTE_CONNECT;
    }
    if (n == 6 && span_is(seg[3], "conns") && ptth_route_id_valid(seg[4].base, seg[4].len)) {
        out->id = seg[4];
        out->kind = conn_verb(seg[5]);
        if (out->kind != PTTH_ROUTE_NOT_FOUND)
            return out->kind;
    }
    memset(out, 0, sizeof(*out));
    return out->kind = PTTH_ROUTE_NOT_FOUND;
}

ptth_route_side
ptth_route_side_of(ptth_route_kind kind)
{
    switch (kind) {
    case PTTH_ROUTE_LISTEN:
    case PTTH_ROUTE_ACCEPT:
    case PTTH_ROUTE_REJECT:
    case PTTH_ROUTE_DOWNSTREAM:
        return PTTH_SIDE_SERVER;
    case PTTH_ROUTE_CONNECT:
    case PTTH_ROUTE_UPSTREAM:
        return PTTH_SIDE_CLIENT;
    case PTTH_ROUTE_CLOSE:
    case PTTH_ROUTE_RESUME:
        return PTTH_SIDE_EITHER;
    default:
        return PTTH_SIDE_NONE;
    }
}

bool
ptth_route_method_ok(ptth_route_kind kind, const char *method, size_t len)
{
    bool post = len == 4 && memcmp(method, "POST", 4) == 0;
    bool get = (len == 3 && memcmp(method, "GET", 3) == 0) || (len == 4 && memcmp(method, "HEAD", 4) == 0);
    switch (kind) {
    case PTTH_ROUTE_NOT_FOUND:
        return true;
    case PTTH_ROUTE_HEALTHZ:
    case PTTH_ROUTE_METRICS:
    case PTTH_ROUTE_STATUS:
    case PTTH_ROUTE_INDEX:
        return get;
    default:
        return post;
    }
}

const char *
ptth_route_name(ptth_route_kind kind)
{
    static const char *const names[] = {
        [PTTH_ROUTE_NOT_FOUND] = "not_found",   [PTTH_ROUTE_HEALTHZ] = "healthz",   [PTTH_ROUTE_METRICS] = "metrics",
        [PTTH_ROUTE_STATUS] = "status",         [PTTH_ROUTE_INDEX] = "index",       [PTTH_ROUTE_LISTEN] = "listen",
        [PTTH_ROUTE_CONNECT] = "connect",       [PTTH_ROUTE_ACCEPT] = "accept",     [PTTH_ROUTE_REJECT] = "reject",
        [PTTH_ROUTE_DOWNSTREAM] = "downstream", [PTTH_ROUTE_UPSTREAM] = "upstream", [PTTH_ROUTE_CLOSE] = "close",
        [PTTH_ROUTE_RESUME] = "resume",
    };
    if ((size_t)kind >= sizeof(names) / sizeof(names[0]))
        return "unknown";
    return names[kind];
}
