/*
 * fuzz_frame.c: libFuzzer target for the frame decoder (common/frame.h), the
 * parser that meets the bytes of every `connect` and `accept` response body.
 *
 * Input: byte 0 picks the decoder's max_payload, byte 1 seeds the split of the
 * rest into pieces (random sizes, empty pieces included); the rest is the
 * stream. The stream is decoded three times: in one piece, in the random
 * pieces, and one byte at a time. Each run must give exactly the events of a
 * small reference decoder written from the contract in frame.h (DATA bytes
 * compared as one concatenated stream, since their split varies; an ACK's
 * value as the 8 big-endian bytes that carried it), and on
 * every call:
 *   - the decoder consumes at most what it was given, and NEED_MORE only
 *     when it consumed everything;
 *   - a DATA event points inside the bytes consumed by that call, is not
 *     empty, and all DATA adds up to at most the input size;
 *   - an RST reason is at most PTTH_FRAME_REASON_MAX bytes and lives in the
 *     decoder;
 *   - after ERROR every call returns ERROR with the same error and consumes
 *     nothing.
 * A broken invariant calls abort() after printing which one, so libFuzzer
 * saves the input.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PING_MAX 256 /* frame.h: a PING payload above 256 bytes is an error */

/* One decoded event; DATA events are merged with the DATA event before them. */
typedef struct event {
    ptth_frame_event_type type;
    size_t off, len; /* DATA and RST: bytes in the trace's pool */
} event;

typedef struct trace {
    event *ev;
    size_t nev, ev_cap;
    uint8_t *pool;
    size_t pool_len, pool_cap;
    size_t data_total; /* DATA bytes, summed */
} trace;

static void
fail(const char *what, const char *pass)
{
    fprintf(stderr, "fuzz_frame: invariant broken (%s decode): %s\n", pass, what);
    abort();
}

static void
trace_init(trace *t, size_t size)
{
    t->ev_cap = size + 2;
    t->ev = calloc(t->ev_cap, sizeof(*t->ev));
    t->pool_cap = size + 1;
    t->pool = malloc(t->pool_cap);
    t->nev = t->pool_len = t->data_total = 0;
    if (t->ev == NULL || t->pool == NULL)
        abort();
}

static void
trace_free(trace *t)
{
    free(t->ev);
    free(t->pool);
}

/* Records one event. Only DATA and RST carry bytes; each of those bytes came
 * from a distinct input byte, so the pool (input size) cannot overflow unless
 * the decoder invents bytes, which is itself a failure. */
static void
trace_add(trace *t, ptth_frame_event_type type, const uint8_t *bytes, size_t len, const char *pass)
{
    if (len > t->pool_cap - t->pool_len)
        fail("events carry more bytes than the input holds", pass);
    if (type == PTTH_FRAME_EV_DATA && t->nev > 0 && t->ev[t->nev - 1].type == PTTH_FRAME_EV_DATA) {
        t->ev[t->nev - 1].len += len;
    } else {
        if (t->nev == t->ev_cap)
            fail("more events than input bytes", pass);
        t->ev[t->nev++] = (event){type, t->pool_len, len};
    }
    if (len > 0)
        memcpy(t->pool + t->pool_len, bytes, len);
    t->pool_len += len;
    if (type == PTTH_FRAME_EV_DATA)
        t->data_total += len;
}

/* The contract of frame.h, decoded in one pass over the whole stream. */
static void
reference(const uint8_t *s, size_t n, uint32_t max_payload, trace *t)
{
    if (max_payload == 0 || max_payload > PTTH_FRAME_MAX_PAYLOAD)
        max_payload = PTTH_FRAME_MAX_PAYLOAD;
    bool fin = false;
    size_t pos = 0;
    while (n - pos >= PTTH_FRAME_HEADER_LEN) {
        uint8_t type = s[pos];
        uint32_t len = ((uint32_t)s[pos + 1] << 16) | ((uint32_t)s[pos + 2] << 8) | s[pos + 3];
        pos += PTTH_FRAME_HEADER_LEN;
        if (type > PTTH_FRAME_ACK || len > max_payload || (type == PTTH_FRAME_DATA && fin) ||
            (type == PTTH_FRAME_FIN && (len != 0 || fin)) || (type == PTTH_FRAME_PING && len > PING_MAX) ||
            (type == PTTH_FRAME_ACK && len != PTTH_FRAME_ACK_PAYLOAD)) {
            trace_add(t, PTTH_FRAME_EV_ERROR, NULL, 0, "reference");
            return;
        }
        size_t avail = n - pos < len ? n - pos : len;
        switch (type) {
        case PTTH_FRAME_DATA:
            if (avail > 0)
                trace_add(t, PTTH_FRAME_EV_DATA, s + pos, avail, "reference");
            break;
        case PTTH_FRAME_FIN:
            trace_add(t, PTTH_FRAME_EV_FIN, NULL, 0, "reference");
            fin = true;
            break;
        case PTTH_FRAME_RST:
            if (avail == len)
                trace_add(t, PTTH_FRAME_EV_RST, s + pos, len < PTTH_FRAME_REASON_MAX ? len : PTTH_FRAME_REASON_MAX, "reference");
            break;
        case PTTH_FRAME_ACK: /* the payload as sent: the 12 big-endian bytes of position and window */
            if (avail == len)
                trace_add(t, PTTH_FRAME_EV_ACK, s + pos, len, "reference");
            break;
        default:
            if (avail == len)
                trace_add(t, PTTH_FRAME_EV_PING, NULL, 0, "reference");
            break;
        }
        if (avail < len)
            return;
        pos += len;
    }
}

/* Feeds one piece, checking every call; returns false once the decoder failed. */
static bool
feed(ptth_frame_decoder *d, const uint8_t *in, size_t len, trace *t, const char *pass)
{
    for (;;) {
        ptth_frame_event ev;
        memset(&ev, 0xA5, sizeof(ev));
        size_t used = ptth_frame_decode(d, in, len, &ev);
        if (used > len)
            fail("consumed more than it was given", pass);
        switch (ev.type) {
        case PTTH_FRAME_EV_NEED_MORE:
            if (used != len)
                fail("NEED_MORE before the input was used up", pass);
            return true;
        case PTTH_FRAME_EV_DATA:
            if (ev.len == 0 || ev.data == NULL)
                fail("empty DATA event", pass);
            if (ev.data < in || ev.len > used || ev.data + ev.len > in + used)
                fail("DATA event outside the bytes consumed by this call", pass);
            trace_add(t, ev.type, ev.data, ev.len, pass);
            break;
        case PTTH_FRAME_EV_RST:
            if (ev.len > PTTH_FRAME_REASON_MAX)
                fail("RST reason longer than PTTH_FRAME_REASON_MAX", pass);
            if (ev.len > 0 && (ev.data < d->reason || ev.data + ev.len > d->reason + sizeof(d->reason)))
                fail("RST reason not in the decoder's buffer", pass);
            trace_add(t, ev.type, ev.data, ev.len, pass);
            break;
        case PTTH_FRAME_EV_FIN:
        case PTTH_FRAME_EV_PING:
            trace_add(t, ev.type, NULL, 0, pass);
            break;
        case PTTH_FRAME_EV_ACK: {
            /* compared with the reference as the bytes that carried it */
            if (ev.data != NULL || ev.len != 0)
                fail("ACK event with a data pointer", pass);
            uint8_t be[PTTH_FRAME_ACK_LEN];
            ptth_frame_ack(be, ev.value, ev.window);
            trace_add(t, ev.type, be + PTTH_FRAME_HEADER_LEN, PTTH_FRAME_ACK_PAYLOAD, pass);
            break;
        }
        case PTTH_FRAME_EV_ERROR: {
            if (ev.error == NULL || ev.error[0] == '\0')
                fail("ERROR without an error string", pass);
            trace_add(t, ev.type, NULL, 0, pass);
            /* sticky: any later call, with or without input, repeats it */
            static const uint8_t more[8] = {0, 0, 0, 1, 'x', 1, 0, 0};
            const char *first = ev.error;
            for (int i = 0; i < 2; i++) {
                ptth_frame_event again;
                size_t u =
                    i == 0 ? ptth_frame_decode(d, in + used, len - used, &again) : ptth_frame_decode(d, more, sizeof(more), &again);
                if (u != 0 || again.type != PTTH_FRAME_EV_ERROR || again.error != first)
                    fail("a call after ERROR did not repeat the ERROR", pass);
            }
            return false;
        }
        default:
            fail("unknown event type", pass);
        }
        in += used;
        len -= used;
    }
}

static void
compare(const trace *want, const trace *got, const char *pass)
{
    if (got->nev != want->nev)
        fail("event count differs from the reference", pass);
    for (size_t i = 0; i < want->nev; i++) {
        const event *a = &want->ev[i], *b = &got->ev[i];
        if (a->type != b->type || a->len != b->len)
            fail("event type or length differs from the reference", pass);
        if (a->len > 0 && memcmp(want->pool + a->off, got->pool + b->off, a->len) != 0)
            fail("event bytes differ from the reference", pass);
    }
}

static uint32_t
next_rand(uint32_t *x)
{
    /* xorshift32: only needs to be deterministic for a given input */
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return *x;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    /* small limits make "payload too large" reachable; 0 means the default */
    static const uint32_t limits[8] = {0, 1, 4, 16, 255, 256, 257, 0x1000000};
    uint32_t max_payload = limits[data[0] & 7];
    uint32_t seed = 0x9E3779B9u ^ ((uint32_t)data[1] << 8) ^ (uint32_t)size;
    const uint8_t *s = data + 2;
    size_t n = size - 2;

    trace want, got;
    trace_init(&want, n);
    reference(s, n, max_payload, &want);

    for (int pass = 0; pass < 3; pass++) {
        static const char *const names[3] = {"one-piece", "random-split", "byte-by-byte"};
        ptth_frame_decoder d;
        ptth_frame_decoder_init(&d, max_payload);
        trace_init(&got, n);
        /* the piece is copied to its own heap block, so that ASan catches a
         * read past its end that would still be inside the whole input */
        size_t pos = 0;
        bool alive = true;
        while (alive && pos <= n) {
            size_t piece;
            if (pass == 0)
                piece = n - pos;
            else if (pass == 1)
                piece = next_rand(&seed) % 4 == 0 ? 0 : next_rand(&seed) % 24;
            else
                piece = 1;
            if (piece > n - pos)
                piece = n - pos;
            uint8_t *copy = malloc(piece > 0 ? piece : 1);
            if (copy == NULL)
                abort();
            memcpy(copy, s + pos, piece);
            alive = feed(&d, copy, piece, &got, names[pass]);
            free(copy);
            pos += piece;
            if (pos == n)
                break;
        }
        if (got.data_total > n)
            fail("DATA events add up to more than the input", names[pass]);
        compare(&want, &got, names[pass]);
        trace_free(&got);
    }
    trace_free(&want);
    return 0;
}
