/*
 * cc_msg.c: encoder and defensive decoder of comm-channel messages.
 */
#include <errno.h>
#include <string.h>

#include "cc_msg.h"

static void
put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void
put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint16_t
get16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t
get32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static void
set_why(const char **why, const char *text)
{
    if (why != NULL)
        *why = text;
}

void
ptth_cc_msg_put_header(uint8_t *out, uint8_t type, uint32_t tunnel, size_t len)
{
    out[0] = type;
    out[1] = 0;
    put16(out + 2, (uint16_t)len);
    put32(out + 4, tunnel);
}

ssize_t
ptth_cc_msg_encode(uint8_t *out, size_t cap, uint8_t type, uint32_t tunnel, const void *payload, size_t len)
{
    if (len > 65535 || cap < PTTH_CC_MSG_HEADER || len > cap - PTTH_CC_MSG_HEADER)
        return -EMSGSIZE;
    ptth_cc_msg_put_header(out, type, tunnel, len);
    if (len > 0)
        memcpy(out + PTTH_CC_MSG_HEADER, payload, len);
    return (ssize_t)(PTTH_CC_MSG_HEADER + len);
}

size_t
ptth_cc_msg_encode_hello(uint8_t *out, const ptth_cc_hello *h)
{
    uint8_t *p = out + PTTH_CC_MSG_HEADER;
    ptth_cc_msg_put_header(out, PTTH_CC_HELLO, 0, PTTH_CC_HELLO_LEN);
    put16(p, h->version);
    put16(p + 2, 0);
    put32(p + 4, h->max_msg);
    put32(p + 8, h->window);
    put32(p + 12, h->max_clients);
    return PTTH_CC_MSG_HEADER + PTTH_CC_HELLO_LEN;
}

size_t
ptth_cc_msg_encode_credit(uint8_t *out, uint32_t tunnel, uint32_t count)
{
    ptth_cc_msg_put_header(out, PTTH_CC_CREDIT, tunnel, 4);
    put32(out + PTTH_CC_MSG_HEADER, count);
    return PTTH_CC_MSG_HEADER + 4;
}

/* Header checks shared by whole-message and stream decoding. */
static int
check_header(const uint8_t *hdr, const char **why)
{
    if (hdr[0] < PTTH_CC_HELLO || hdr[0] > PTTH_CC_CLOSE) {
        set_why(why, "unknown message type");
        return -EPROTO;
    }
    if (hdr[1] != 0) {
        set_why(why, "reserved flags set");
        return -EPROTO;
    }
    return 0;
}

ssize_t
ptth_cc_msg_frame_length(const uint8_t *hdr, size_t max, const char **why)
{
    int r = check_header(hdr, why);
    if (r != 0)
        return r;
    size_t total = PTTH_CC_MSG_HEADER + (size_t)get16(hdr + 2);
    if (total > max) {
        set_why(why, "message larger than the limit");
        return -EMSGSIZE;
    }
    return (ssize_t)total;
}

/* The payload rules of each type (lengths only; text is not interpreted). */
static int
check_payload(uint8_t type, uint32_t tunnel, const uint8_t *payload, size_t len, const char **why)
{
    if (type == PTTH_CC_HELLO) {
        if (tunnel != 0) {
            set_why(why, "HELLO on a tunnel id");
            return -EPROTO;
        }
        if (len < PTTH_CC_HELLO_LEN) {
            set_why(why, "HELLO payload too short");
            return -EPROTO;
        }
        return 0;
    }
    if (tunnel == 0) {
        set_why(why, "tunnel message with tunnel id 0");
        return -EPROTO;
    }
    switch (type) {
    case PTTH_CC_OPEN:
    case PTTH_CC_OPEN_FAIL:
    case PTTH_CC_ABORT:
    case PTTH_CC_CLOSE:
        if (len > PTTH_CC_TEXT_MAX) {
            set_why(why, "text payload longer than 255 bytes");
            return -EPROTO;
        }
        return 0;
    case PTTH_CC_OPEN_OK:
    case PTTH_CC_FIN:
        if (len != 0) {
            set_why(why, "payload on a message that has none");
            return -EPROTO;
        }
        return 0;
    case PTTH_CC_DATA:
        if (len == 0) {
            set_why(why, "empty DATA");
            return -EPROTO;
        }
        return 0;
    case PTTH_CC_CREDIT:
        if (len != 4) {
            set_why(why, "CREDIT payload is not 4 bytes");
            return -EPROTO;
        }
        if (get32(payload) == 0) {
            set_why(why, "CREDIT of 0");
            return -EPROTO;
        }
        return 0;
    default:
        set_why(why, "unknown message type");
        return -EPROTO;
    }
}

int
ptth_cc_msg_decode(const uint8_t *buf, size_t len, size_t max, ptth_cc_msg *out, const char **why)
{
    if (len > max) {
        set_why(why, "message larger than the limit");
        return -EMSGSIZE;
    }
    if (len < PTTH_CC_MSG_HEADER) {
        set_why(why, "message shorter than its header");
        return -EBADMSG;
    }
    int r = check_header(buf, why);
    if (r != 0)
        return r;
    size_t plen = get16(buf + 2);
    if (plen > len - PTTH_CC_MSG_HEADER) {
        set_why(why, "message shorter than its length field says");
        return -EBADMSG;
    }
    if (plen < len - PTTH_CC_MSG_HEADER) {
        set_why(why, "bytes after the payload");
        return -EPROTO;
    }
    uint32_t tunnel = get32(buf + 4);
    r = check_payload(buf[0], tunnel, buf + PTTH_CC_MSG_HEADER, plen, why);
    if (r != 0)
        return r;
    out->type = buf[0];
    out->tunnel = tunnel;
    out->payload = buf + PTTH_CC_MSG_HEADER;
    out->len = plen;
    return 0;
}

int
ptth_cc_msg_parse_hello(const ptth_cc_msg *m, ptth_cc_hello *out, const char **why)
{
    if (m->type != PTTH_CC_HELLO || m->len < PTTH_CC_HELLO_LEN) {
        set_why(why, "not a HELLO");
        return -EPROTO;
    }
    const uint8_t *p = m->payload;
    out->version = get16(p);
    out->max_msg = get32(p + 4);
    out->window = get32(p + 8);
    out->max_clients = get32(p + 12);
    if (out->version == 0) {
        set_why(why, "HELLO version 0");
        return -EPROTO;
    }
    if (get16(p + 2) != 0) {
        set_why(why, "HELLO reserved field set");
        return -EPROTO;
    }
    if (out->max_msg < PTTH_CC_MSG_MIN_MAX) {
        set_why(why, "HELLO message limit below 512");
        return -EPROTO;
    }
    if (out->max_msg > PTTH_CC_MSG_LIMIT)
        out->max_msg = PTTH_CC_MSG_LIMIT; /* the format cannot carry more anyway */
    if (out->window == 0) {
        set_why(why, "HELLO window 0");
        return -EPROTO;
    }
    return 0;
}

uint32_t
ptth_cc_msg_credit_count(const ptth_cc_msg *m)
{
    return m->len >= 4 ? get32(m->payload) : 0;
}

const char *
ptth_cc_msg_type_name(uint8_t type)
{
    static const char *const names[] = {"?", "HELLO", "OPEN", "OPEN_OK", "OPEN_FAIL", "DATA", "FIN", "CREDIT", "ABORT", "CLOSE"};
    return type < sizeof(names) / sizeof(names[0]) ? names[type] : "?";
}
