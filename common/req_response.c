/* req_response.c: see req_response.h. */
#include "req_response.h"

#include <ctype.h>
#include <limits.h>
#include <string.h>
#include <strings.h>

/* Copies a header value into a bounded field, trimmed. */
static void
copy_field(char *dst, size_t dstlen, const char *v, size_t vlen)
{
    while (vlen > 0 && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
        vlen--;
    if (vlen >= dstlen)
        vlen = dstlen - 1;
    memcpy(dst, v, vlen);
    dst[vlen] = '\0';
}

/* Leading decimal digits of a header value, capped at max; -1 when there
 * are none. */
static long
parse_number(const char *v, size_t len, long max)
{
    long n = 0;
    size_t i = 0;
    while (i < len && (v[i] == ' ' || v[i] == '\t'))
        i++;
    if (i == len || !isdigit((unsigned char)v[i]))
        return -1;
    for (; i < len && isdigit((unsigned char)v[i]); i++) {
        n = n * 10 + (v[i] - '0');
        if (n > max)
            n = max;
    }
    return n;
}

/* A resume token: 1 to dstlen-1 base64url characters, else "" (a secret:
 * kept, never logged). */
static void
copy_token(char *dst, size_t dstlen, const char *v, size_t vlen)
{
    while (vlen > 0 && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
        vlen--;
    dst[0] = '\0';
    if (vlen == 0 || vlen >= dstlen)
        return;
    for (size_t i = 0; i < vlen; i++)
        if (!isalnum((unsigned char)v[i]) && v[i] != '-' && v[i] != '_')
            return;
    memcpy(dst, v, vlen);
    dst[vlen] = '\0';
}

void
ptth_req_response_reset(ptth_req *r)
{
    r->status = 0;
    r->retry_after = -1;
    r->max_chunk = 0;
    r->seq = -1;
    r->resume_token[0] = '\0';
    r->resume_grace = 0;
    r->peer_received = r->peer_sent = r->epoch = -1;
    r->conn[0] = r->port[0] = r->client_addr[0] = r->client_name[0] = r->proto[0] = r->reason[0] = '\0';
    r->headers_done = false;
    r->has_reason_header = false;
    r->reason_len = 0;
}

void
ptth_req_response_header(ptth_req *r, const char *name, size_t nlen, const char *v, size_t vlen)
{
    while (vlen > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        vlen--;
    }
#define IS(lit) (nlen == sizeof(lit) - 1 && strncasecmp(name, lit, nlen) == 0)
    if (IS("ptth-conn")) {
        copy_field(r->conn, sizeof(r->conn), v, vlen);
    } else if (IS("ptth-port")) {
        copy_field(r->port, sizeof(r->port), v, vlen);
    } else if (IS("ptth-client-addr")) {
        copy_field(r->client_addr, sizeof(r->client_addr), v, vlen);
    } else if (IS("ptth-client")) {
        copy_field(r->client_name, sizeof(r->client_name), v, vlen);
    } else if (IS("ptth-proto")) {
        copy_field(r->proto, sizeof(r->proto), v, vlen);
    } else if (IS("ptth-reason")) {
        copy_field(r->reason, sizeof(r->reason), v, vlen);
        r->has_reason_header = true;
    } else if (IS("retry-after")) {
        /* seconds, capped at a day; an HTTP date counts as absent (-1) */
        r->retry_after = parse_number(v, vlen, 86400);
    } else if (IS("ptth-max-chunk")) {
        r->max_chunk = parse_number(v, vlen, 1L << 30);
    } else if (IS("ptth-seq")) {
        r->seq = parse_number(v, vlen, LONG_MAX);
    } else if (IS("ptth-resume")) {
        copy_token(r->resume_token, sizeof(r->resume_token), v, vlen);
    } else if (IS("ptth-resume-grace")) {
        long g = parse_number(v, vlen, 86400);
        r->resume_grace = g > 0 ? g : 0;
    } else if (IS("ptth-peer-received")) {
        r->peer_received = parse_number(v, vlen, LONG_MAX);
    } else if (IS("ptth-peer-sent")) {
        r->peer_sent = parse_number(v, vlen, LONG_MAX);
    } else if (IS("ptth-epoch")) {
        r->epoch = parse_number(v, vlen, LONG_MAX);
    }
#undef IS
}

void
ptth_req_response_error_body(ptth_req *r, const char *p, size_t len)
{
    if (r->has_reason_header)
        return;
    for (size_t i = 0; i < len && r->reason_len < sizeof(r->reason) - 1; i++) {
        char ch = p[i];
        if (ch == '\n' || ch == '\r') {
            if (r->reason_len > 0) {
                r->has_reason_header = true; /* first line complete */
                break;
            }
            continue;
        }
        r->reason[r->reason_len++] = ch;
        r->reason[r->reason_len] = '\0';
    }
}
