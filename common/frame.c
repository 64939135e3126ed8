/*
 * frame.c: see frame.h. The decoder is a small state machine: collect the
 * 4 header bytes (in any split), validate them, then walk the payload. DATA
 * payload is handed out in place; RST reasons are copied into the decoder
 * (bounded); PING payloads are skipped; the 12 bytes of an ACK are
 * collected (in any split) and yielded as two numbers.
 */
#include "frame.h"

#include <string.h>

#define PING_PAYLOAD_MAX 256

void
ptth_frame_header(uint8_t out[PTTH_FRAME_HEADER_LEN], uint8_t type, uint32_t len)
{
    out[0] = type;
    out[1] = (uint8_t)(len >> 16);
    out[2] = (uint8_t)(len >> 8);
    out[3] = (uint8_t)len;
}

void
ptth_frame_ack(uint8_t out[PTTH_FRAME_ACK_LEN], uint64_t received, uint32_t window)
{
    ptth_frame_header(out, PTTH_FRAME_ACK, PTTH_FRAME_ACK_PAYLOAD);
    for (int i = 0; i < 8; i++)
        out[PTTH_FRAME_HEADER_LEN + i] = (uint8_t)(received >> (56 - 8 * i));
    for (int i = 0; i < 4; i++)
        out[PTTH_FRAME_HEADER_LEN + 8 + i] = (uint8_t)(window >> (24 - 8 * i));
}

void
ptth_frame_decoder_init(ptth_frame_decoder *d, uint32_t max_payload)
{
    memset(d, 0, sizeof(*d));
    if (max_payload == 0 || max_payload > PTTH_FRAME_MAX_PAYLOAD)
        max_payload = PTTH_FRAME_MAX_PAYLOAD;
    d->max_payload = max_payload;
}

static void
set_event(ptth_frame_event *ev, ptth_frame_event_type type, const uint8_t *data, size_t len)
{
    ev->type = type;
    ev->data = data;
    ev->len = len;
    ev->value = 0;
    ev->window = 0;
    ev->error = NULL;
}

static size_t
fail(ptth_frame_decoder *d, ptth_frame_event *ev, const char *error, size_t consumed)
{
    d->failed = 1;
    d->error = error;
    set_event(ev, PTTH_FRAME_EV_ERROR, NULL, 0);
    ev->error = error;
    return consumed;
}

/* Validates a complete header and enters the payload state. Returns NULL or
 * the reason the stream is unusable. */
static const char *
start_frame(ptth_frame_decoder *d)
{
    uint8_t type = d->header[0];
    uint32_t len = ((uint32_t)d->header[1] << 16) | ((uint32_t)d->header[2] << 8) | d->header[3];

    if (type > PTTH_FRAME_ACK)
        return "unknown frame type";
    if (len > d->max_payload)
        return "frame payload too large";
    switch (type) {
    case PTTH_FRAME_DATA:
        if (d->fin_seen)
            return "DATA frame after FIN";
        break;
    case PTTH_FRAME_FIN:
        if (len != 0)
            return "FIN frame with a payload";
        if (d->fin_seen)
            return "second FIN frame";
        break;
    case PTTH_FRAME_PING:
        if (len > PING_PAYLOAD_MAX)
            return "PING payload too large";
        break;
    case PTTH_FRAME_ACK:
        if (len != PTTH_FRAME_ACK_PAYLOAD)
            return "ACK frame payload is not 12 bytes";
        break;
    default:
        break;
    }
    d->type = type;
    d->remaining = len;
    d->in_payload = 1;
    d->reason_len = 0;
    d->ack_have = 0;
    return NULL;
}

static void
end_frame(ptth_frame_decoder *d)
{
    d->in_payload = 0;
    d->header_have = 0;
}

size_t
ptth_frame_decode(ptth_frame_decoder *d, const uint8_t *in, size_t len, ptth_frame_event *ev)
{
    size_t used = 0;

    if (d->failed)
        return fail(d, ev, d->error != NULL ? d->error : "frame stream already failed", 0);

    for (;;) {
        if (!d->in_payload) {
            while (d->header_have < PTTH_FRAME_HEADER_LEN && used < len)
                d->header[d->header_have++] = in[used++];
            if (d->header_have < PTTH_FRAME_HEADER_LEN)
                break;
            const char *error = start_frame(d);
            if (error != NULL)
                return fail(d, ev, error, used);
        }

        /* in the payload of d->type, d->remaining bytes still to come */
        size_t avail = len - used;
        size_t take = avail < d->remaining ? avail : d->remaining;
        switch (d->type) {
        case PTTH_FRAME_DATA:
            if (d->remaining == 0) { /* empty DATA frame: nothing to report */
                end_frame(d);
                continue;
            }
            if (take == 0)
                goto need_more;
            d->remaining -= (uint32_t)take;
            if (d->remaining == 0)
                end_frame(d);
            set_event(ev, PTTH_FRAME_EV_DATA, in + used, take);
            return used + take;
        case PTTH_FRAME_FIN:
            d->fin_seen = 1;
            end_frame(d);
            set_event(ev, PTTH_FRAME_EV_FIN, NULL, 0);
            return used;
        case PTTH_FRAME_RST:
            if (d->reason_len < PTTH_FRAME_REASON_MAX) {
                size_t room = PTTH_FRAME_REASON_MAX - d->reason_len;
                size_t copy = take < room ? take : room;
                memcpy(d->reason + d->reason_len, in + used, copy);
                d->reason_len += copy;
            }
            used += take;
            d->remaining -= (uint32_t)take;
            if (d->remaining > 0)
                goto need_more;
            end_frame(d);
            set_event(ev, PTTH_FRAME_EV_RST, d->reason, d->reason_len);
            return used;
        case PTTH_FRAME_PING:
            used += take;
            d->remaining -= (uint32_t)take;
            if (d->remaining > 0)
                goto need_more;
            end_frame(d);
            set_event(ev, PTTH_FRAME_EV_PING, NULL, 0);
            return used;
        case PTTH_FRAME_ACK: {
            /* start_frame() checked the length: take <= 12 - ack_have */
            memcpy(d->ack + d->ack_have, in + used, take);
            d->ack_have += take;
            used += take;
            d->remaining -= (uint32_t)take;
            if (d->remaining > 0)
                goto need_more;
            end_frame(d);
            uint64_t v = 0;
            uint32_t w = 0;
            for (int i = 0; i < 8; i++)
                v = (v << 8) | d->ack[i];
            for (int i = 8; i < PTTH_FRAME_ACK_PAYLOAD; i++)
                w = (w << 8) | d->ack[i];
            set_event(ev, PTTH_FRAME_EV_ACK, NULL, 0);
            ev->value = v;
            ev->window = w;
            return used;
        }
        default:
            return fail(d, ev, "unknown frame type", used);
        }
    }
need_more:
    set_event(ev, PTTH_FRAME_EV_NEED_MORE, NULL, 0);
    return used;
}
