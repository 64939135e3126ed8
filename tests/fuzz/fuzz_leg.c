/*
 * fuzz_leg.c: libFuzzer target for what a relay (or anything claiming to
 * be one) answers an upgraded leg: the response head parser and the body
 * framing of common/leg_parse.c (picohttpparser's phr_parse_response and
 * phr_decode_chunked from the system's libh2o-evloop), fed as common/leg.c
 * feeds them.
 *
 * Input: [split seed] then the bytes of the connection. The head is
 * parsed the way the leg reads it: the bytes arrive in pieces (sizes from
 * the seed), at most PTTH_LEG_HEAD_MAX of them, the parser runs on all
 * bytes so far after each piece; interim 1xx heads are dropped and parsing
 * goes on. After a final head, the rest is run through
 * ptth_leg_body_decode() three times: in one piece, in pieces from the
 * seed, byte by byte; for a non-2xx status the payload also goes through
 * ptth_leg_reason_from_body().
 *
 * Checked, besides memory safety and undefined behaviour:
 *   - a head is found at the same length whatever the pieces; a shorter
 *     prefix is incomplete (0), never an error or a different head;
 *   - a head is at most PTTH_LEG_HEAD_MAX bytes; an error comes with a
 *     NUL-terminated text;
 *   - the fields: status 100..999, texts NUL-terminated inside their
 *     arrays and printable ASCII, numbers within their caps
 *     (retry_after -1..86400, heartbeat and idle_timeout 0..86400,
 *     max_chunk 0..2^30, resume_grace 0..86400, peer_received and
 *     peer_sent -1 or positive, a resume token empty or 1..63 base64url
 *     characters); upgraded only for 101 with no error, a 101
 *     without it always with an error;
 *   - the three body decodings give the same payload, the same end and the
 *     same error (on broken chunked framing, the payload handed out before
 *     it agrees as far as each got); never more payload than bytes;
 *     Content-Length bodies exactly min(bytes, length); once done, no more
 *     payload;
 *   - reasons are printable, bounded, without blanks at either end.
 * A broken invariant prints which and aborts, so libFuzzer keeps the input.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "leg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                                        \
    do {                                                                                                                   \
        if (!(cond)) {                                                                                                     \
            fprintf(stderr, "fuzz_leg: %s:%d: %s\n", __FILE__, __LINE__, #cond);                                          \
            abort();                                                                                                       \
        }                                                                                                                  \
    } while (0)

static uint32_t rng;

static size_t
piece(size_t left)
{
    rng = rng * 1103515245u + 12345u;
    size_t n = 1 + (rng >> 16) % 64;
    return n < left ? n : left;
}

static void
check_text(const char *s, size_t cap)
{
    size_t len = strnlen(s, cap);
    CHECK(len < cap);
    for (size_t i = 0; i < len; i++)
        CHECK((unsigned char)s[i] >= 0x20 && (unsigned char)s[i] < 0x7f);
}

static void
check_response(const ptth_leg_response *res)
{
    CHECK(res->status >= 100 && res->status <= 999);
    CHECK(res->retry_after >= -1 && res->retry_after <= 86400);
    CHECK(res->heartbeat >= 0 && res->heartbeat <= 86400);
    CHECK(res->idle_timeout >= 0 && res->idle_timeout <= 86400);
    CHECK(res->max_chunk >= 0 && res->max_chunk <= (1L << 30));
    check_text(res->conn, sizeof(res->conn));
    check_text(res->upgrade_note, sizeof(res->upgrade_note));
    check_text(res->reason, sizeof(res->reason));
    CHECK(res->resume_grace >= 0 && res->resume_grace <= 86400);
    CHECK(res->peer_received >= -1 && res->peer_sent >= -1);
    size_t tl = strnlen(res->resume_token, sizeof(res->resume_token));
    CHECK(tl < sizeof(res->resume_token));
    for (size_t i = 0; i < tl; i++) {
        char ch = res->resume_token[i];
        CHECK((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_');
    }
    if (res->upgraded)
        CHECK(res->status == 101 && res->error == NULL);
    if (res->status == 101 && !res->upgraded)
        CHECK(res->error != NULL);
    if (res->status != 101)
        CHECK(res->error == NULL);
}

/* One head at the start of buf[0..len), read in pieces as the leg does:
 * its length, 0 when none came (or an error). */
static int
head_in_pieces(const char *buf, size_t len, ptth_leg_response *res, ptth_leg_body *body, int *err_rc)
{
    char err[512];
    size_t have = 0;
    if (len > PTTH_LEG_HEAD_MAX)
        len = PTTH_LEG_HEAD_MAX;
    while (have < len) {
        have += piece(len - have);
        err[0] = 'x';
        int n = ptth_leg_parse_head(buf, have, res, body, err, sizeof(err));
        if (n < 0) {
            CHECK(n == -EBADMSG || n == -EMSGSIZE);
            CHECK(memchr(err, '\0', sizeof(err)) != NULL && err[0] != 'x');
            *err_rc = n;
            return 0;
        }
        if (n > 0) {
            CHECK((size_t)n <= have && n <= PTTH_LEG_HEAD_MAX);
            return n;
        }
    }
    *err_rc = 0;
    return 0;
}

/* The body after the head, decoded with pieces of at most step bytes
 * (0: pieces from the seed). */
static int
decode_body(ptth_leg_body body, const char *p, size_t len, size_t step, char *out, size_t *out_len)
{
    char *tmp = malloc(len + 1);
    CHECK(tmp != NULL);
    *out_len = 0;
    int rc = 0;
    size_t off = 0;
    while (off < len && rc == 0) {
        size_t n = step != 0 ? (step < len - off ? step : len - off) : piece(len - off);
        memcpy(tmp, p + off, n);
        size_t got = n;
        rc = ptth_leg_body_decode(&body, tmp, &got);
        CHECK(rc >= -EBADMSG && rc <= 1 && (rc >= 0 || rc == -EBADMSG));
        CHECK(got <= n);
        if (rc < 0)
            CHECK(got == 0);
        memcpy(out + *out_len, tmp, got);
        *out_len += got;
        off += n;
    }
    if (rc == 1) {
        size_t got = 1;
        CHECK(ptth_leg_body_decode(&body, tmp, &got) == 1 && got == 0);
        CHECK(ptth_leg_body_closed(&body) == 0);
    }
    free(tmp);
    return rc;
}

static void
check_body(const ptth_leg_response *res, const ptth_leg_body *body, const char *p, size_t len)
{
    char *a = malloc(len + 1), *b = malloc(len + 1), *c = malloc(len + 1);
    CHECK(a != NULL && b != NULL && c != NULL);
    size_t al, bl, cl;
    int ra = decode_body(*body, p, len, len + 1, a, &al);
    int rb = decode_body(*body, p, len, 0, b, &bl);
    int rc = decode_body(*body, p, len, 1, c, &cl);
    CHECK(ra == rb && rb == rc);
    CHECK(al <= len && bl <= len && cl <= len);
    if (ra < 0) {
        /* payload before the broken framing was handed out piece by piece:
         * the same bytes, as far as each decoding got */
        size_t m = bl < cl ? bl : cl;
        CHECK(al == 0 && memcmp(b, c, m) == 0);
    } else {
        CHECK(al == bl && bl == cl);
        CHECK(memcmp(a, b, al) == 0 && memcmp(b, c, al) == 0);
    }
    if (body->framing == PTTH_LEG_BODY_LENGTH)
        CHECK(al == (len < body->left ? len : (size_t)body->left));
    if (body->framing == PTTH_LEG_BODY_CLOSE)
        CHECK(al == len && ra == 0);
    if (res->status < 200 || res->status > 299) {
        ptth_leg_response r = *res;
        r.reason[0] = '\0';
        ptth_leg_reason_from_body(&r, a, al);
        check_text(r.reason, sizeof(r.reason));
        size_t n = strlen(r.reason);
        CHECK(n == 0 || (r.reason[0] != ' ' && r.reason[n - 1] != ' '));
    }
    free(a);
    free(b);
    free(c);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 1 << 20)
        return 0;
    rng = data[0];
    const char *buf = (const char *)data + 1;
    size_t len = size - 1;
    for (int interim = 0; interim < 16; interim++) {
        ptth_leg_response res, whole;
        ptth_leg_body body, wbody;
        int err_rc = 0;
        int n = head_in_pieces(buf, len, &res, &body, &err_rc);
        char err[512];
        size_t wlen = len > PTTH_LEG_HEAD_MAX ? PTTH_LEG_HEAD_MAX : len;
        int wn = ptth_leg_parse_head(buf, wlen, &whole, &wbody, err, sizeof(err));
        if (n == 0) {
            /* nothing, or an error: all of it at once says the same */
            CHECK(wn == err_rc || (err_rc == 0 && wn == 0));
            return 0;
        }
        CHECK(wn == n);
        CHECK(whole.status == res.status && whole.upgraded == res.upgraded && wbody.framing == body.framing);
        if (n > 1)
            CHECK(ptth_leg_parse_head(buf, (size_t)n - 1, &whole, &wbody, err, sizeof(err)) == 0);
        check_response(&res);
        if (res.status >= 200 || res.status == 101) {
            check_body(&res, &body, buf + n, len - (size_t)n);
            return 0;
        }
        buf += n; /* an interim 1xx: the leg goes on with what follows */
        len -= (size_t)n;
    }
    return 0;
}
