/*
 * Fuzz target for the frame decoder (common/frame.c), the parser that meets
 * bytes from the relay. Property checked on every input: decoding it in one
 * piece, byte by byte, and in pieces chosen by the input itself all give the
 * same events, and the decoder never consumes more than it was given.
 * Built with -fsanitize=fuzzer when meson -Dfuzz=true (clang); otherwise
 * linked with fuzz_driver.c and run as a test over pseudo-random inputs.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct trace {
    uint8_t bytes[1 << 16]; /* event types and DATA/RST bytes, in order */
    size_t len;
    int ended; /* 1: error seen */
} trace;

static void
put(trace *t, const void *p, size_t n)
{
    if (n > sizeof(t->bytes) - t->len)
        n = sizeof(t->bytes) - t->len;
    memcpy(t->bytes + t->len, p, n);
    t->len += n;
}

static void
feed(ptth_frame_decoder *d, const uint8_t *in, size_t len, trace *t)
{
    while (!t->ended) {
        ptth_frame_event ev;
        size_t used = ptth_frame_decode(d, in, len, &ev);
        if (used > len)
            abort();
        in += used;
        len -= used;
        if (ev.type == PTTH_FRAME_EV_NEED_MORE) {
            if (len != 0)
                abort();
            return;
        }
        /* DATA pieces are recorded as bytes only, since their split varies */
        if (ev.type != PTTH_FRAME_EV_DATA) {
            uint8_t type = (uint8_t)(0x80 | ev.type);
            put(t, &type, 1);
        }
        if (ev.type == PTTH_FRAME_EV_DATA || ev.type == PTTH_FRAME_EV_RST) {
            if (ev.type == PTTH_FRAME_EV_DATA && ev.len == 0)
                abort();
            if (ev.type == PTTH_FRAME_EV_RST && ev.len > PTTH_FRAME_REASON_MAX)
                abort();
            put(t, ev.data, ev.len);
        }
        if (ev.type == PTTH_FRAME_EV_ERROR) {
            if (ev.error == NULL)
                abort();
            t->ended = 1;
        }
    }
}

static trace whole, bytewise, pieces;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint32_t max_payload = data[0] & 1 ? 64 : 0;
    size_t step = 1 + data[1] % 13;
    data += 2;
    size -= 2;

    ptth_frame_decoder d;
    memset(&whole, 0, sizeof(whole));
    ptth_frame_decoder_init(&d, max_payload);
    feed(&d, data, size, &whole);

    memset(&bytewise, 0, sizeof(bytewise));
    ptth_frame_decoder_init(&d, max_payload);
    for (size_t i = 0; i < size && !bytewise.ended; i++)
        feed(&d, data + i, 1, &bytewise);

    memset(&pieces, 0, sizeof(pieces));
    ptth_frame_decoder_init(&d, max_payload);
    for (size_t off = 0; off < size && !pieces.ended; off += step)
        feed(&d, data + off, size - off < step ? size - off : step, &pieces);

    if (whole.len != bytewise.len || memcmp(whole.bytes, bytewise.bytes, whole.len) != 0)
        abort();
    if (whole.len != pieces.len || memcmp(whole.bytes, pieces.bytes, whole.len) != 0)
        abort();
    return 0;
}
