/*
 * cc_msg.h: the messages of the comm channel (docs/comm-channel.md has the
 * byte layout). One channel between the host (ptth_server) and the DPU agent
 * (ptth_cc_agent) carries many tunnels; every message is an 8-byte header and
 * a payload:
 *
 *   offset 0  type      1 byte  (ptth_cc_msg_type)
 *   offset 1  flags     1 byte  (0; anything else is refused)
 *   offset 2  length    2 bytes big-endian: payload bytes that follow
 *   offset 4  tunnel    4 bytes big-endian: tunnel id (0 = the channel itself)
 *   offset 8  payload
 *
 * A whole message is at most the receiver's limit (4096 bytes by default,
 * announced in HELLO). On a message carrier (SOCK_SEQPACKET, DOCA) one
 * carrier message is one ptth message and its length must agree with the
 * header; on a byte-stream carrier (vsock) the length field frames them.
 *
 * The decoder trusts nothing: every length is checked against the bytes
 * actually present and against the limit, and every type has its payload
 * rules. It never reads outside [buf, buf+len) and never allocates.
 */
#ifndef PTTH_CC_MSG_H
#define PTTH_CC_MSG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PTTH_CC_MSG_HEADER 8
#define PTTH_CC_MSG_DEFAULT_MAX 4096                   /* whole message, header included */
#define PTTH_CC_MSG_MIN_MAX 512                        /* smallest limit a side may announce */
#define PTTH_CC_MSG_LIMIT (PTTH_CC_MSG_HEADER + 65535) /* largest the format can express */
#define PTTH_CC_PROTO_VERSION 1
#define PTTH_CC_HELLO_LEN 16 /* HELLO payload of version 1 */
#define PTTH_CC_TEXT_MAX 255 /* OPEN client text, reasons */

typedef enum ptth_cc_msg_type {
    PTTH_CC_HELLO = 1,     /* both ways, tunnel 0, first message of each side */
    PTTH_CC_OPEN = 2,      /* host -> agent: open tunnel; payload: client address text (may be empty) */
    PTTH_CC_OPEN_OK = 3,   /* agent -> host: the target is connected */
    PTTH_CC_OPEN_FAIL = 4, /* agent -> host: refused (limit) or target unreachable; payload: reason */
    PTTH_CC_DATA = 5,      /* both ways: 1 or more bytes of the stream; costs one credit */
    PTTH_CC_FIN = 6,       /* both ways: the sender's side half-closed; no more DATA */
    PTTH_CC_CREDIT = 7,    /* both ways: payload u32 N: the receiver consumed N more DATA messages */
    PTTH_CC_ABORT = 8,     /* agent -> host: the target connection broke; payload: reason */
    PTTH_CC_CLOSE = 9,     /* host -> agent: the tunnel is over, forget it; payload: reason (may be empty) */
} ptth_cc_msg_type;

/* A decoded message. payload points into the buffer given to decode. */
typedef struct ptth_cc_msg {
    uint8_t type;
    uint32_t tunnel;
    const uint8_t *payload;
    size_t len;
} ptth_cc_msg;

/* The HELLO payload (16 bytes, big-endian): version u16, reserved u16 (0),
 * max_msg u32 (largest whole message this side accepts), window u32 (DATA
 * messages per tunnel this side buffers before it returns credit),
 * max_clients u32 (agent: its tunnel limit; host: 0). A longer payload is
 * accepted and the rest ignored, so a later version may add fields. */
typedef struct ptth_cc_hello {
    uint16_t version;
    uint32_t max_msg;
    uint32_t window;
    uint32_t max_clients;
} ptth_cc_hello;

/* Writes the 8-byte header for a payload of len bytes at out. */
void ptth_cc_msg_put_header(uint8_t *out, uint8_t type, uint32_t tunnel, size_t len);

/* Encodes header + payload into out[0..cap). Returns the message length, or
 * -EMSGSIZE when it does not fit in cap or len exceeds 65535. */
ssize_t ptth_cc_msg_encode(uint8_t *out, size_t cap, uint8_t type, uint32_t tunnel, const void *payload, size_t len);

/* Encodes a HELLO message into out (at least PTTH_CC_MSG_HEADER +
 * PTTH_CC_HELLO_LEN bytes); returns its length. */
size_t ptth_cc_msg_encode_hello(uint8_t *out, const ptth_cc_hello *h);

/* Encodes a CREDIT message (12 bytes) for tunnel; returns its length. */
size_t ptth_cc_msg_encode_credit(uint8_t *out, uint32_t tunnel, uint32_t count);

/* Decodes one whole message buf[0..len) received under limit max (the
 * receiver's max_msg). Returns 0 and fills out, or:
 *   -EBADMSG   truncated: fewer bytes than the header, or than its length says
 *   -EMSGSIZE  oversized: more than max bytes
 *   -EPROTO    garbage: unknown type, flags set, trailing bytes, a payload
 *              that breaks its type's rules, tunnel 0 on a tunnel message
 * with a constant description in *why (when why is not NULL). */
int ptth_cc_msg_decode(const uint8_t *buf, size_t len, size_t max, ptth_cc_msg *out, const char **why);

/* For byte-stream carriers: the whole length announced by the 8-byte header
 * at hdr, or -EMSGSIZE when above max, -EPROTO when the header is garbage
 * (unknown type or flags set). */
ssize_t ptth_cc_msg_frame_length(const uint8_t *hdr, size_t max, const char **why);

/* Parses a decoded HELLO. 0, or -EPROTO (version 0, reserved bits, a limit
 * below PTTH_CC_MSG_MIN_MAX, window 0) with *why. */
int ptth_cc_msg_parse_hello(const ptth_cc_msg *m, ptth_cc_hello *out, const char **why);

/* The count of a decoded CREDIT message (always >= 1 after decode). */
uint32_t ptth_cc_msg_credit_count(const ptth_cc_msg *m);

/* "HELLO", "DATA", ... or "?" */
const char *ptth_cc_msg_type_name(uint8_t type);

#endif
