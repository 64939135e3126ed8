/*
 * leg_parse.c: the response parser of an upgraded leg (declared in leg.h,
 * "the response parser"): a relay's response head through picohttpparser
 * and the body framing after it. Pure functions on untrusted bytes, apart
 * from common/leg.c so that tests/fuzz/fuzz_leg.c reaches them without a
 * socket.
 */
#include "leg.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define RESP_HEADERS_MAX 256 /* header lines of a response head */
#define DAY_S 86400L

static bool
name_is(const struct phr_header *h, const char *lit)
{
    size_t n = strlen(lit);
    return h->name_len == n && strncasecmp(h->name, lit, n) == 0;
}

static void
trim(const char **v, size_t *len)
{
    while (*len > 0 && (**v == ' ' || **v == '\t')) {
        (*v)++;
        (*len)--;
    }
    while (*len > 0 && ((*v)[*len - 1] == ' ' || (*v)[*len - 1] == '\t'))
        (*len)--;
}

/* Copies an untrusted value into a bounded field: trimmed, anything that
 * is not printable ASCII becomes '?', so that it is safe in a log line. */
static void
copy_text(char *dst, size_t dstlen, const char *v, size_t vlen)
{
    trim(&v, &vlen);
    if (vlen >= dstlen)
        vlen = dstlen - 1;
    for (size_t i = 0; i < vlen; i++) {
        unsigned char ch = (unsigned char)v[i];
        dst[i] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
    }
    dst[vlen] = '\0';
}

/* A value of decimal digits only, capped at max; absent when it is
 * anything else (an HTTP date in Retry-After counts as absent). */
static long
parse_seconds(const char *v, size_t len, long max, long absent)
{
    trim(&v, &len);
    if (len == 0)
        return absent;
    long n = 0;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)v[i]))
            return absent;
        if (n < max)
            n = n * 10 + (v[i] - '0');
    }
    return n > max ? max : n;
}

/* Content-Length: digits only, below 2^62; -1 otherwise. */
static int
parse_length(const char *v, size_t len, unsigned long long *out)
{
    trim(&v, &len);
    if (len == 0 || len > 18)
        return -1;
    unsigned long long n = 0;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)v[i]))
            return -1;
        n = n * 10 + (unsigned)(v[i] - '0');
    }
    *out = n;
    return 0;
}

/* Transfer-Encoding is chunked when chunked is its last coding. */
static bool
last_coding_chunked(const char *v, size_t len)
{
    trim(&v, &len);
    const char *comma = NULL;
    for (size_t i = 0; i < len; i++)
        if (v[i] == ',')
            comma = v + i;
    if (comma != NULL) {
        len -= (size_t)(comma + 1 - v);
        v = comma + 1;
        trim(&v, &len);
    }
    return len == 7 && strncasecmp(v, "chunked", 7) == 0;
}

/* The start of untrusted bytes for an error text. */
static void
quote_start(char *dst, size_t dstlen, const char *p, size_t len)
{
    if (len > 32)
        len = 32;
    copy_text(dst, dstlen < len + 1 ? dstlen : len + 1, p, len);
}

/* A position (PTTH-Peer-Received, PTTH-Peer-Sent): decimal digits only,
 * below 2^63; -1 for anything else, which the bridge takes as absent. */
static int64_t
parse_position(const char *v, size_t len)
{
    trim(&v, &len);
    if (len == 0 || len > 19)
        return -1;
    uint64_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)v[i]))
            return -1;
        n = n * 10 + (unsigned)(v[i] - '0'); /* 19 digits fit in u64 */
    }
    return n > (uint64_t)INT64_MAX ? -1 : (int64_t)n;
}

/* PTTH-Resume: it goes back into a request header, so only base64url
 * characters are taken; anything else is no token at all. */
static void
take_token(ptth_leg_response *res, const char *v, size_t len)
{
    trim(&v, &len);
    res->resume_token[0] = '\0';
    if (len == 0 || len >= sizeof(res->resume_token))
        return;
    for (size_t i = 0; i < len; i++)
        if (!(isalnum((unsigned char)v[i]) || v[i] == '-' || v[i] == '_'))
            return;
    memcpy(res->resume_token, v, len);
    res->resume_token[len] = '\0';
}

void
ptth_leg_response_reset(ptth_leg_response *res)
{
    memset(res, 0, sizeof(*res));
    res->retry_after = -1;
    res->peer_received = res->peer_sent = -1;
}

/* One header line into res (the PTTH-* fields, Retry-After). */
static void
take_field(ptth_leg_response *res, const struct phr_header *h)
{
    if (name_is(h, "retry-after"))
        res->retry_after = parse_seconds(h->value, h->value_len, DAY_S, -1);
    else if (name_is(h, "ptth-heartbeat"))
        res->heartbeat = parse_seconds(h->value, h->value_len, DAY_S, 0);
    else if (name_is(h, "ptth-idle-timeout"))
        res->idle_timeout = parse_seconds(h->value, h->value_len, DAY_S, 0);
    else if (name_is(h, "ptth-max-chunk"))
        res->max_chunk = parse_seconds(h->value, h->value_len, 1L << 30, 0);
    else if (name_is(h, "ptth-conn"))
        copy_text(res->conn, sizeof(res->conn), h->value, h->value_len);
    else if (name_is(h, "ptth-upgrade"))
        copy_text(res->upgrade_note, sizeof(res->upgrade_note), h->value, h->value_len);
    else if (name_is(h, "ptth-reason"))
        copy_text(res->reason, sizeof(res->reason), h->value, h->value_len);
    else if (name_is(h, "ptth-resume"))
        take_token(res, h->value, h->value_len);
    else if (name_is(h, "ptth-resume-grace"))
        res->resume_grace = parse_seconds(h->value, h->value_len, DAY_S, 0);
    else if (name_is(h, "ptth-peer-received"))
        res->peer_received = parse_position(h->value, h->value_len);
    else if (name_is(h, "ptth-peer-sent"))
        res->peer_sent = parse_position(h->value, h->value_len);
}

/* How the body after a head of this status is delimited (RFC 9112 §6.3:
 * Transfer-Encoding wins over Content-Length; no body after 1xx, 204, 304). */
static int
choose_framing(int status, const struct phr_header *h, size_t nh, ptth_leg_body *body, char *err, size_t errlen)
{
    memset(body, 0, sizeof(*body));
    bool te = false, chunked = false, has_cl = false;
    unsigned long long cl = 0;
    for (size_t i = 0; i < nh; i++) {
        if (h[i].name == NULL)
            continue;
        if (name_is(&h[i], "transfer-encoding")) {
            te = true;
            chunked = last_coding_chunked(h[i].value, h[i].value_len);
        } else if (name_is(&h[i], "content-length")) {
            unsigned long long v;
            if (parse_length(h[i].value, h[i].value_len, &v) != 0 || (has_cl && v != cl)) {
                char q[40];
                quote_start(q, sizeof(q), h[i].value, h[i].value_len);
                snprintf(err, errlen, "the relay's response has an invalid Content-Length '%s'", q);
                return -EBADMSG;
            }
            has_cl = true;
            cl = v;
        }
    }
    if (status < 200 || status == 204 || status == 304) {
        body->framing = PTTH_LEG_BODY_NONE;
        body->done = true;
    } else if (te) {
        body->framing = chunked ? PTTH_LEG_BODY_CHUNKED : PTTH_LEG_BODY_CLOSE;
        body->chunked.consume_trailer = 1;
    } else if (has_cl) {
        body->framing = PTTH_LEG_BODY_LENGTH;
        body->left = cl;
        body->done = cl == 0;
    } else {
        body->framing = PTTH_LEG_BODY_CLOSE;
    }
    return 0;
}

/* A 101 is ours only with our token in Upgrade. */
static void
check_upgrade(ptth_leg_response *res, const struct phr_header *h, size_t nh, char *err, size_t errlen)
{
    const char *up = NULL;
    size_t uplen = 0;
    for (size_t i = 0; i < nh; i++) {
        if (h[i].name != NULL && name_is(&h[i], "upgrade")) {
            up = h[i].value;
            uplen = h[i].value_len;
        }
    }
    if (up != NULL) {
        trim(&up, &uplen);
        if (uplen == strlen(PTTH_LEG_UPGRADE_TOKEN) && strncasecmp(up, PTTH_LEG_UPGRADE_TOKEN, uplen) == 0) {
            res->upgraded = true;
            return;
        }
        char q[40];
        quote_start(q, sizeof(q), up, uplen);
        snprintf(err, errlen, "the relay answered 101 with Upgrade: '%s', not " PTTH_LEG_UPGRADE_TOKEN, q);
    } else {
        snprintf(err, errlen, "the relay answered 101 without an Upgrade header");
    }
    res->error = err;
}

int
ptth_leg_parse_head(const char *buf, size_t len, ptth_leg_response *res, ptth_leg_body *body, char *err, size_t errlen)
{
    struct phr_header h[RESP_HEADERS_MAX];
    size_t nh = RESP_HEADERS_MAX;
    int minor = 0, status = 0;
    const char *msg = NULL;
    size_t msg_len = 0;
    size_t plen = len > PTTH_LEG_HEAD_MAX ? PTTH_LEG_HEAD_MAX : len;
    int n = phr_parse_response(buf, plen, &minor, &status, &msg, &msg_len, h, &nh, 0);
    if (n == -2) {
        if (len < PTTH_LEG_HEAD_MAX)
            return 0;
        snprintf(err, errlen, "the relay's response head is larger than %d bytes", PTTH_LEG_HEAD_MAX);
        return -EMSGSIZE;
    }
    if (n < 0 || status < 100) {
        char q[40];
        quote_start(q, sizeof(q), buf, plen);
        snprintf(err, errlen, "the relay's answer is not an HTTP/1.x response head (or has over %d header lines): '%s'",
                 RESP_HEADERS_MAX, q);
        return -EBADMSG;
    }
    ptth_leg_response_reset(res);
    res->status = status;
    for (size_t i = 0; i < nh; i++)
        if (h[i].name != NULL)
            take_field(res, &h[i]);
    int rc = choose_framing(status, h, nh, body, err, errlen);
    if (rc != 0)
        return rc;
    if (status == 101)
        check_upgrade(res, h, nh, err, errlen);
    return n;
}

int
ptth_leg_body_decode(ptth_leg_body *body, char *buf, size_t *len)
{
    if (body->done) {
        *len = 0;
        return 1;
    }
    switch (body->framing) {
    case PTTH_LEG_BODY_CLOSE:
        return 0;
    case PTTH_LEG_BODY_LENGTH:
        if (*len < body->left) {
            body->left -= *len;
            return 0;
        }
        *len = (size_t)body->left;
        body->left = 0;
        body->done = true;
        return 1;
    case PTTH_LEG_BODY_CHUNKED: {
        ssize_t r = phr_decode_chunked(&body->chunked, buf, len);
        if (r == -2)
            return 0;
        if (r == -1) {
            *len = 0;
            return -EBADMSG;
        }
        body->done = true;
        return 1;
    }
    case PTTH_LEG_BODY_NONE:
    default:
        *len = 0;
        body->done = true;
        return 1;
    }
}

int
ptth_leg_body_closed(const ptth_leg_body *body)
{
    return body->done || body->framing == PTTH_LEG_BODY_CLOSE ? 0 : -EPROTO;
}

void
ptth_leg_reason_from_body(ptth_leg_response *res, const char *body, size_t len)
{
    if (res->reason[0] != '\0')
        return;
    size_t j = 0;
    bool blank = false;
    for (size_t i = 0; i < len && j < sizeof(res->reason) - 1; i++) {
        unsigned char ch = (unsigned char)body[i];
        if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n') {
            blank = j > 0;
            continue;
        }
        if (ch < 0x20 || ch >= 0x7f)
            ch = '?';
        if (blank && j + 2 < sizeof(res->reason))
            res->reason[j++] = ' ';
        blank = false;
        res->reason[j++] = (char)ch;
    }
    res->reason[j] = '\0';
}
