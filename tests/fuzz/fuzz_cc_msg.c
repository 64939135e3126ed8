/*
 * fuzz_cc_msg.c: libFuzzer target for the comm-channel message codec
 * (transports/cc/cc_msg.h), the parser that meets every byte the DPU agent or
 * the host sends over the channel, and for the stream framing of the vsock
 * carrier (transports/cc/cc_carrier.h), which cuts a byte stream into messages.
 *
 * Input: byte 0: bits 0-1 pick the limit (512, 4096, PTTH_CC_MSG_LIMIT,
 * PTTH_CC_MSG_LIMIT + 1), bit 2 the mode; byte 1 seeds the random parts.
 *   mode 0: the rest is one whole message for ptth_cc_msg_decode().
 *   mode 1: the rest, repeated 1 to 64 times (so that more than the carrier's
 *           128 KiB buffer passes through it), is written in random pieces to
 *           one end of a socketpair whose other end is adopted by the vsock
 *           carrier; recv() is called after every piece until -EAGAIN, then
 *           the writer closes. The messages and the final result must be
 *           those of a reference cut with ptth_cc_msg_frame_length().
 * Every whole message then goes through the decoder, checked against the
 * rules of cc_msg.h written out here: accepted exactly when the reference
 * accepts; result 0, -EBADMSG, -EMSGSIZE or -EPROTO with a reason; an
 * accepted message re-encodes byte for byte (HELLO and CREDIT through their
 * own encoders too).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cc_carrier.h"
#include "cc_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fail(const char *what)
{
    fprintf(stderr, "fuzz_cc_msg: invariant broken: %s\n", what);
    abort();
}

static uint16_t
be16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t
be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* cc_msg.h's rules for a whole message, as a yes/no. */
static bool
ref_valid(const uint8_t *m, size_t len, size_t max)
{
    if (len > max || len < PTTH_CC_MSG_HEADER)
        return false;
    uint8_t type = m[0];
    size_t plen = be16(m + 2);
    uint32_t tunnel = be32(m + 4);
    if (type < PTTH_CC_HELLO || type > PTTH_CC_CLOSE || m[1] != 0 || plen != len - PTTH_CC_MSG_HEADER)
        return false;
    const uint8_t *p = m + PTTH_CC_MSG_HEADER;
    switch (type) {
    case PTTH_CC_HELLO:
        return tunnel == 0 && plen >= PTTH_CC_HELLO_LEN;
    case PTTH_CC_OPEN:
    case PTTH_CC_OPEN_FAIL:
    case PTTH_CC_ABORT:
    case PTTH_CC_CLOSE:
        return tunnel != 0 && plen <= PTTH_CC_TEXT_MAX;
    case PTTH_CC_OPEN_OK:
    case PTTH_CC_FIN:
        return tunnel != 0 && plen == 0;
    case PTTH_CC_DATA:
        return tunnel != 0 && plen > 0;
    default: /* CREDIT */
        return tunnel != 0 && plen == 4 && be32(p) != 0;
    }
}

static void
check_decode(const uint8_t *bytes, size_t len, size_t max)
{
    /* an exact-size copy, so that ASan sees any read past the end */
    uint8_t *m = malloc(len > 0 ? len : 1);
    if (m == NULL)
        abort();
    memcpy(m, bytes, len);
    ptth_cc_msg msg;
    const char *why = NULL;
    int rc = ptth_cc_msg_decode(m, len, max, &msg, &why);
    bool want = ref_valid(m, len, max);
    if ((rc == 0) != want)
        fail(want ? "a valid message was refused" : "an invalid message was accepted");
    if (rc != 0) {
        if (rc != -EBADMSG && rc != -EMSGSIZE && rc != -EPROTO)
            fail("decode error is not -EBADMSG, -EMSGSIZE or -EPROTO");
        if (why == NULL || why[0] == '\0')
            fail("decode error without a reason");
        if (len > max && rc != -EMSGSIZE)
            fail("a message above the limit is not -EMSGSIZE");
        if (len <= max && len < PTTH_CC_MSG_HEADER && rc != -EBADMSG)
            fail("a message shorter than its header is not -EBADMSG");
        free(m);
        return;
    }
    if (msg.type != m[0] || msg.tunnel != be32(m + 4) || msg.payload != m + PTTH_CC_MSG_HEADER ||
        msg.len != len - PTTH_CC_MSG_HEADER)
        fail("decoded fields do not match the bytes");
    if (strcmp(ptth_cc_msg_type_name(msg.type), "?") == 0)
        fail("an accepted type has no name");

    uint8_t out[PTTH_CC_MSG_LIMIT];
    ssize_t n = ptth_cc_msg_encode(out, sizeof(out), msg.type, msg.tunnel, msg.payload, msg.len);
    if (n != (ssize_t)len || memcmp(out, m, len) != 0)
        fail("re-encoding an accepted message gives other bytes");
    if (len > PTTH_CC_MSG_HEADER && ptth_cc_msg_encode(out, len - 1, msg.type, msg.tunnel, msg.payload, msg.len) != -EMSGSIZE)
        fail("encode into a too small buffer is not -EMSGSIZE");

    if (msg.type == PTTH_CC_CREDIT) {
        uint32_t count = ptth_cc_msg_credit_count(&msg);
        if (count == 0 || count != be32(msg.payload))
            fail("credit count is 0 or not the payload");
        if (ptth_cc_msg_encode_credit(out, msg.tunnel, count) != len || memcmp(out, m, len) != 0)
            fail("re-encoding a CREDIT gives other bytes");
    }
    if (msg.type == PTTH_CC_HELLO) {
        ptth_cc_hello h;
        const char *hwhy = NULL;
        int hr = ptth_cc_msg_parse_hello(&msg, &h, &hwhy);
        const uint8_t *p = msg.payload;
        uint32_t max_msg = be32(p + 4);
        bool hello_ok = be16(p) != 0 && be16(p + 2) == 0 && max_msg >= PTTH_CC_MSG_MIN_MAX && be32(p + 8) != 0;
        if ((hr == 0) != hello_ok)
            fail("HELLO accepted or refused against the rules");
        if (hr != 0 && (hr != -EPROTO || hwhy == NULL || hwhy[0] == '\0'))
            fail("HELLO refused without -EPROTO and a reason");
        if (hr == 0) {
            uint32_t want_max = max_msg > PTTH_CC_MSG_LIMIT ? PTTH_CC_MSG_LIMIT : max_msg;
            if (h.version != be16(p) || h.max_msg != want_max || h.window != be32(p + 8) || h.max_clients != be32(p + 12))
                fail("HELLO fields do not match the bytes");
            if (msg.len == PTTH_CC_HELLO_LEN && max_msg <= PTTH_CC_MSG_LIMIT &&
                (ptth_cc_msg_encode_hello(out, &h) != len || memcmp(out, m, len) != 0))
                fail("re-encoding a HELLO gives other bytes");
        }
    }
    free(m);
}

static uint32_t
next_rand(uint32_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return *x;
}

/* What the carrier must yield for stream s[0..n): the messages (their
 * offsets and lengths), then the end it returns: 0 for a clean end, or the
 * error. */
static ssize_t
reference_cut(const uint8_t *s, size_t n, size_t cap, size_t *offsets, size_t *lens, size_t *count, size_t max_count)
{
    size_t pos = 0;
    *count = 0;
    for (;;) {
        size_t rem = n - pos;
        if (rem == 0)
            return 0;
        if (rem < PTTH_CC_MSG_HEADER)
            return -EBADMSG;
        ssize_t total = ptth_cc_msg_frame_length(s + pos, cap, NULL);
        if (total < 0)
            return total;
        if ((size_t)total < PTTH_CC_MSG_HEADER || (size_t)total > cap)
            fail("frame_length outside [header, limit]");
        if (rem < (size_t)total)
            return -EBADMSG;
        if (*count == max_count)
            fail("more messages than the stream can hold");
        offsets[*count] = pos;
        lens[*count] = (size_t)total;
        (*count)++;
        pos += (size_t)total;
    }
}

static void
stream_mode(const uint8_t *body, size_t body_len, size_t cap, uint32_t seed, unsigned repeat)
{
    size_t n = body_len * repeat;
    uint8_t *s = malloc(n > 0 ? n : 1);
    size_t max_count = n / PTTH_CC_MSG_HEADER + 1;
    size_t *offsets = calloc(max_count, sizeof(size_t)), *lens = calloc(max_count, sizeof(size_t));
    uint8_t *buf = malloc(PTTH_CC_MSG_LIMIT);
    if (s == NULL || offsets == NULL || lens == NULL || buf == NULL)
        abort();
    for (unsigned i = 0; i < repeat; i++)
        memcpy(s + i * body_len, body, body_len);
    size_t want_count;
    ssize_t want_end =
        reference_cut(s, n, cap > PTTH_CC_MSG_LIMIT ? PTTH_CC_MSG_LIMIT : cap, offsets, lens, &want_count, max_count);

    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        abort();
    for (int i = 0; i < 2; i++)
        if (fcntl(sv[i], F_SETFL, fcntl(sv[i], F_GETFL) | O_NONBLOCK) != 0)
            abort();
    ptth_cc_conn *conn = NULL;
    if (ptth_cc_carrier_vsock.adopt(sv[0], &conn) != 0)
        abort();

    size_t got = 0, pos = 0;
    ssize_t end = 1; /* not ended yet */
    bool closed = false;
    while (end == 1) {
        if (pos < n) {
            size_t piece = 1 + next_rand(&seed) % (next_rand(&seed) % 2 ? 64 : 20000);
            if (piece > n - pos)
                piece = n - pos;
            ssize_t w = write(sv[1], s + pos, piece);
            if (w < 0 && errno != EAGAIN && errno != EINTR)
                abort();
            if (w > 0)
                pos += (size_t)w;
        } else if (!closed) {
            close(sv[1]);
            closed = true;
        }
        for (;;) {
            ssize_t r = conn->carrier->recv(conn, buf, cap);
            if (r == -EAGAIN) {
                if (closed)
                    fail("-EAGAIN after the writer closed");
                break;
            }
            if (r <= 0) {
                end = r;
                break;
            }
            if (got == want_count || (size_t)r != lens[got] || memcmp(buf, s + offsets[got], (size_t)r) != 0)
                fail("the carrier yielded a message the reference did not cut");
            check_decode(buf, (size_t)r, cap);
            got++;
        }
    }
    if (got != want_count || end != want_end) {
        fprintf(stderr, "fuzz_cc_msg: carrier %zu messages then %zd, reference %zu then %zd\n", got, end, want_count, want_end);
        fail("the carrier's messages or end differ from the reference");
    }
    if (end < 0 && conn->carrier->recv(conn, buf, cap) >= 0)
        fail("recv after a framing error did not fail again");
    conn->carrier->close(conn);
    if (!closed)
        close(sv[1]);
    free(s);
    free(offsets);
    free(lens);
    free(buf);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size > 65536)
        return 0;
    static const size_t limits[4] = {512, PTTH_CC_MSG_DEFAULT_MAX, PTTH_CC_MSG_LIMIT, PTTH_CC_MSG_LIMIT + 1};
    size_t max = limits[data[0] & 3];
    uint32_t seed = 0x2545F491u ^ ((uint32_t)data[1] << 16) ^ (uint32_t)size;
    const uint8_t *body = data + 2;
    size_t len = size - 2;
    if (data[0] & 4)
        stream_mode(body, len, max, seed, 1 + data[1] % 64);
    else
        check_decode(body, len, max);
    return 0;
}
