/*
 * frame.h: the framed streams of SPEC §4 (bodies of `connect` and `accept`
 * responses).
 *
 * A frame is: 1-byte type, 3-byte big-endian payload length, payload.
 *   DATA (0) bytes of the stream; FIN (1) sender half-closed, payload empty;
 *   RST (2) tunnel aborted, payload is a UTF-8 reason; PING (3) ignore;
 *   ACK (4) resumable tunnels only (docs/protocol.md "Resumable tunnels"):
 *   payload exactly 12 bytes, big-endian: the sender's `received` position
 *   (8 bytes), then its receive window (4 bytes: how many positions past
 *   that one it takes in).
 *   The decoder decodes ACK frames on any stream; whether one is allowed
 *   there is its user's business (the bridge refuses them on a tunnel that
 *   is not resumable).
 *
 * Encoding: ptth_frame_header() writes the 4 header bytes so a caller can
 * place the payload right behind them without a copy.
 *
 * Decoding is incremental and zero-copy: the decoder is fed whatever bytes the
 * network delivered, in any split, and yields one event at a time. DATA
 * payloads are not buffered: each event points into the caller's input and
 * may be a part of a frame's payload. RST reasons are collected (up to
 * PTTH_FRAME_REASON_MAX bytes, the rest dropped) and yielded whole.
 * The decoder never reads past len and never allocates.
 */
#ifndef PTTH_FRAME_H
#define PTTH_FRAME_H

#include <stddef.h>
#include <stdint.h>

enum {
    PTTH_FRAME_DATA = 0,
    PTTH_FRAME_FIN = 1,
    PTTH_FRAME_RST = 2,
    PTTH_FRAME_PING = 3,
    PTTH_FRAME_ACK = 4,
};

#define PTTH_FRAME_HEADER_LEN 4
#define PTTH_FRAME_MAX_PAYLOAD 0xFFFFFFu
#define PTTH_FRAME_REASON_MAX 256
#define PTTH_FRAME_ACK_PAYLOAD 12
#define PTTH_FRAME_ACK_LEN (PTTH_FRAME_HEADER_LEN + PTTH_FRAME_ACK_PAYLOAD)

/* Writes the header of a frame of type with a payload of len bytes.
 * len must be <= PTTH_FRAME_MAX_PAYLOAD. */
void ptth_frame_header(uint8_t out[PTTH_FRAME_HEADER_LEN], uint8_t type, uint32_t len);

/* Writes a whole ACK frame carrying the position received and the window. */
void ptth_frame_ack(uint8_t out[PTTH_FRAME_ACK_LEN], uint64_t received, uint32_t window);

typedef enum ptth_frame_event_type {
    PTTH_FRAME_EV_NEED_MORE = 0, /* all input consumed, no event */
    PTTH_FRAME_EV_DATA,          /* data/len: a piece of DATA payload (len > 0) */
    PTTH_FRAME_EV_FIN,
    PTTH_FRAME_EV_RST,  /* data/len: the reason (decoder-owned, valid until next call) */
    PTTH_FRAME_EV_PING, /* payload already skipped */
    PTTH_FRAME_EV_ACK,  /* value: the position the peer acknowledges; window: its receive window */
    PTTH_FRAME_EV_ERROR /* error: constant string; the stream is unusable */
} ptth_frame_event_type;

typedef struct ptth_frame_event {
    ptth_frame_event_type type;
    const uint8_t *data;
    size_t len;
    uint64_t value;  /* ACK: the position; else 0 */
    uint32_t window; /* ACK: the receive window; else 0 */
    const char *error;
} ptth_frame_event;

typedef struct ptth_frame_decoder {
    uint8_t header[PTTH_FRAME_HEADER_LEN];
    size_t header_have;
    uint8_t type;       /* of the frame being read */
    uint32_t remaining; /* payload bytes of it still to come */
    uint32_t max_payload;
    int in_payload;
    int failed;
    int fin_seen;
    size_t reason_len;
    uint8_t reason[PTTH_FRAME_REASON_MAX];
    uint8_t ack[PTTH_FRAME_ACK_PAYLOAD]; /* an ACK payload, collected in any split */
    size_t ack_have;
    const char *error; /* after a failure: the error every later call repeats */
} ptth_frame_decoder;

/* max_payload bounds any frame's payload length (0 means PTTH_FRAME_MAX_PAYLOAD).
 * A frame announcing more is an error, as is an unknown type, a FIN with a
 * payload, DATA or a second FIN after FIN, a PING payload above 256 bytes,
 * or an ACK payload of another length than 12 bytes (ACK after FIN is fine:
 * it acknowledges the other direction).
 * PING and RST frames after FIN are fine (the other direction may still be
 * open). An empty DATA frame is accepted and yields no event. */
void ptth_frame_decoder_init(ptth_frame_decoder *d, uint32_t max_payload);

/* Consumes bytes from in[0..len) until one event is complete or the input is
 * used up; returns how many bytes were consumed and fills *ev. Call again with
 * the rest of the input until it returns PTTH_FRAME_EV_NEED_MORE. After an
 * ERROR every call returns ERROR and consumes nothing. */
size_t ptth_frame_decode(ptth_frame_decoder *d, const uint8_t *in, size_t len, ptth_frame_event *ev);

#endif
