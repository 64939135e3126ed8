/*
 * socks5.h: the SOCKS5 handshake of ptth_proxy --socks (SPEC §9.4), as a
 * pure state machine over bytes: no I/O, no clock, no allocation. The front
 * (socks_front.c) reads bytes, feeds them here, writes the replies this
 * module composes, and opens the tunnel it names.
 *
 * Accepted: RFC 1928 version 5; method 0x00 (no authentication) when no user
 * list is given, else only 0x02 (RFC 1929 username/password, checked against
 * the list); CMD CONNECT (0x01) with ATYP 0x03 (domain name) of the form
 * PORT.SERVER, split at the first dot, both SPEC §2 names (the request's
 * port number is ignored). Everything else is answered and closed:
 *   - no acceptable method: method reply 0xFF;
 *   - wrong username or password: RFC 1929 status 0x01;
 *   - BIND, UDP ASSOCIATE or another command: reply 0x07;
 *   - ATYP IPv4, IPv6 or unknown: reply 0x08;
 *   - a domain name not of the form PORT.SERVER: reply 0x04 (no such host);
 *   - a request whose version is not 5: reply 0x01;
 *   - a greeting whose version is not 5, or NMETHODS 0, or an auth
 *     sub-negotiation whose version is not 1: closed without a reply (the
 *     peer does not speak the protocol).
 * Every message has a bound: 2 + 255 bytes (greeting), 3 + 255 + 255 (auth),
 * 7 + 255 (request), so a handshake is at most PTTH_SOCKS_HANDSHAKE_MAX
 * bytes; the caller bounds the time.
 *
 * The one transition function, ptth_socks_step(), takes an event (bytes of
 * the current message, the tunnel opened, the tunnel refused with an HTTP
 * status) and says what to do next. The caller is expected to read only the
 * bytes the current message still needs (out.need), so that nothing after
 * the request (the client's first bytes of the tunnel) is taken from the
 * socket.
 */
#ifndef PTTH_SOCKS5_H
#define PTTH_SOCKS5_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "names.h"

#define PTTH_SOCKS_MSG_MAX 513 /* the longest message: an RFC 1929 request */
#define PTTH_SOCKS_HANDSHAKE_MAX (257 + 513 + 262)
#define PTTH_SOCKS_REPLY_MAX 10

/* SOCKS5 reply codes (RFC 1928 §6) */
enum {
    PTTH_SOCKS_REP_OK = 0x00,
    PTTH_SOCKS_REP_FAILURE = 0x01,
    PTTH_SOCKS_REP_NOT_ALLOWED = 0x02,
    PTTH_SOCKS_REP_NET_UNREACHABLE = 0x03,
    PTTH_SOCKS_REP_HOST_UNREACHABLE = 0x04,
    PTTH_SOCKS_REP_REFUSED = 0x05,
    PTTH_SOCKS_REP_TTL_EXPIRED = 0x06,
    PTTH_SOCKS_REP_CMD_UNSUPPORTED = 0x07,
    PTTH_SOCKS_REP_ATYP_UNSUPPORTED = 0x08,
};

typedef enum ptth_socks_state {
    PTTH_SOCKS_ST_GREETING,   /* waiting for VER NMETHODS METHODS */
    PTTH_SOCKS_ST_AUTH,       /* waiting for the RFC 1929 request */
    PTTH_SOCKS_ST_REQUEST,    /* waiting for VER CMD RSV ATYP DST.ADDR DST.PORT */
    PTTH_SOCKS_ST_CONNECTING, /* the tunnel is being opened; no input taken */
    PTTH_SOCKS_ST_OPEN,       /* success replied: the socket is the tunnel's */
    PTTH_SOCKS_ST_CLOSED,     /* refused or broken: close after the reply */
} ptth_socks_state;

/* Checks a username/password pair (RFC 1929: each 1..255 bytes, not
 * terminated). true when it may use the proxy. */
typedef bool (*ptth_socks_auth_fn)(const uint8_t *user, size_t ulen, const uint8_t *pass, size_t plen, void *data);

typedef struct ptth_socks {
    ptth_socks_state state;
    ptth_socks_auth_fn auth; /* NULL: no authentication (method 0x00) */
    void *auth_data;
    /* the destination, once the request was read (ST_CONNECTING on) */
    char server[PTTH_NAME_MAX + 1];
    char port[PTTH_NAME_MAX + 1];
    const char *error;          /* why the handshake was closed (constant string; no secret) */
    ptth_socks_state failed_in; /* the state it was closed in (valid in ST_CLOSED) */
} ptth_socks;

typedef enum ptth_socks_event_kind {
    PTTH_SOCKS_EV_BYTES,   /* data/len: the bytes of the current message read so far */
    PTTH_SOCKS_EV_OPENED,  /* the tunnel is established */
    PTTH_SOCKS_EV_REFUSED, /* the tunnel was refused: status is the HTTP status, 0 when there was none */
} ptth_socks_event_kind;

typedef struct ptth_socks_event {
    ptth_socks_event_kind kind;
    const uint8_t *data;
    size_t len;
    long status;
} ptth_socks_event;

typedef enum ptth_socks_action {
    PTTH_SOCKS_NEED_MORE, /* read `need` more bytes of this message, then call again with all of them */
    PTTH_SOCKS_REPLY,     /* write reply, drop the `used` bytes, go on reading (the next message) */
    PTTH_SOCKS_CONNECT,   /* drop `used` bytes; open the tunnel to server/port; stop reading */
    PTTH_SOCKS_OPEN,      /* write reply (success): from now on the socket is the tunnel's */
    PTTH_SOCKS_CLOSE,     /* write reply (maybe none), then close */
} ptth_socks_action;

typedef struct ptth_socks_out {
    ptth_socks_action action;
    size_t need; /* NEED_MORE: bytes still missing (>= 1) */
    size_t used; /* bytes of the event's data that made the message */
    uint8_t reply[PTTH_SOCKS_REPLY_MAX];
    size_t reply_len;
} ptth_socks_out;

/* A fresh handshake; auth NULL: no authentication. */
void ptth_socks_init(ptth_socks *s, ptth_socks_auth_fn auth, void *auth_data);

/* The transition function. An event that does not fit the state (bytes
 * while connecting, OPENED while reading) closes the handshake with
 * PTTH_SOCKS_CLOSE and no reply. Bytes beyond the current message are not
 * looked at (out->used tells how many were). */
void ptth_socks_step(ptth_socks *s, const ptth_socks_event *ev, ptth_socks_out *out);

/* SPEC §9.4: the reply code for a refused tunnel's HTTP status: 403 0x02,
 * 404 and 503 0x04, 502 0x05, any other (0: no answer at all) 0x01. */
uint8_t ptth_socks_reply_for_status(long status);

const char *ptth_socks_state_name(ptth_socks_state st);

#endif
