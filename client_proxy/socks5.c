/* socks5.c: the SOCKS5 handshake state machine; see socks5.h. */
#include "socks5.h"

#include <string.h>

#define SOCKS_VERSION 5
#define AUTH_VERSION 1
#define METHOD_NONE 0x00
#define METHOD_USERPASS 0x02
#define METHOD_NO_ACCEPTABLE 0xFF
#define CMD_CONNECT 0x01
#define ATYP_IPV4 0x01
#define ATYP_DOMAIN 0x03
#define ATYP_IPV6 0x04

const char *
ptth_socks_state_name(ptth_socks_state st)
{
    switch (st) {
    case PTTH_SOCKS_ST_GREETING:
        return "greeting";
    case PTTH_SOCKS_ST_AUTH:
        return "auth";
    case PTTH_SOCKS_ST_REQUEST:
        return "request";
    case PTTH_SOCKS_ST_CONNECTING:
        return "connecting";
    case PTTH_SOCKS_ST_OPEN:
        return "open";
    case PTTH_SOCKS_ST_CLOSED:
        return "closed";
    }
    return "?";
}

void
ptth_socks_init(ptth_socks *s, ptth_socks_auth_fn auth, void *auth_data)
{
    memset(s, 0, sizeof(*s));
    s->state = PTTH_SOCKS_ST_GREETING;
    s->auth = auth;
    s->auth_data = auth_data;
}

uint8_t
ptth_socks_reply_for_status(long status)
{
    switch (status) {
    case 403:
        return PTTH_SOCKS_REP_NOT_ALLOWED;
    case 404:
    case 503:
        return PTTH_SOCKS_REP_HOST_UNREACHABLE;
    case 502:
        return PTTH_SOCKS_REP_REFUSED;
    default:
        return PTTH_SOCKS_REP_FAILURE;
    }
}

/* The only place the state changes. */
static void
set_state(ptth_socks *s, ptth_socks_state to)
{
    s->state = to;
}

static void
need(ptth_socks_out *out, size_t want, size_t have)
{
    out->action = PTTH_SOCKS_NEED_MORE;
    out->need = want - have;
}

static void
close_with(ptth_socks *s, ptth_socks_out *out, const char *why)
{
    s->failed_in = s->state;
    set_state(s, PTTH_SOCKS_ST_CLOSED);
    s->error = why;
    out->action = PTTH_SOCKS_CLOSE;
}

/* VER REP RSV ATYP=IPv4 0.0.0.0:0: the bound address means nothing here (the
 * tunnel has no local address the client could use) */
static void
set_reply(ptth_socks_out *out, uint8_t rep)
{
    static const uint8_t tmpl[10] = {SOCKS_VERSION, 0, 0, ATYP_IPV4, 0, 0, 0, 0, 0, 0};
    memcpy(out->reply, tmpl, sizeof(tmpl));
    out->reply[1] = rep;
    out->reply_len = sizeof(tmpl);
}

static void
refuse(ptth_socks *s, ptth_socks_out *out, uint8_t rep, const char *why)
{
    close_with(s, out, why);
    set_reply(out, rep);
}

static void
on_greeting(ptth_socks *s, const uint8_t *p, size_t len, ptth_socks_out *out)
{
    if (len < 2) {
        need(out, 2, len);
        return;
    }
    if (p[0] != SOCKS_VERSION) {
        close_with(s, out, "not SOCKS version 5");
        return;
    }
    if (p[1] == 0) {
        close_with(s, out, "greeting offers no method");
        return;
    }
    size_t total = 2 + (size_t)p[1];
    if (len < total) {
        need(out, total, len);
        return;
    }
    out->used = total;
    uint8_t want = s->auth != NULL ? METHOD_USERPASS : METHOD_NONE;
    bool offered = memchr(p + 2, want, p[1]) != NULL;
    out->reply[0] = SOCKS_VERSION;
    out->reply[1] = offered ? want : METHOD_NO_ACCEPTABLE;
    out->reply_len = 2;
    if (!offered) {
        close_with(s, out, s->auth != NULL ? "client does not offer username/password" : "client does not offer no-auth");
        return;
    }
    set_state(s, want == METHOD_USERPASS ? PTTH_SOCKS_ST_AUTH : PTTH_SOCKS_ST_REQUEST);
    out->action = PTTH_SOCKS_REPLY;
}

/* RFC 1929: VER ULEN UNAME PLEN PASSWD */
static void
on_auth(ptth_socks *s, const uint8_t *p, size_t len, ptth_socks_out *out)
{
    if (len < 2) {
        need(out, 2, len);
        return;
    }
    if (p[0] != AUTH_VERSION) {
        close_with(s, out, "username/password version is not 1");
        return;
    }
    size_t ulen = p[1];
    if (len < 2 + ulen + 1) {
        need(out, 2 + ulen + 1, len);
        return;
    }
    size_t plen = p[2 + ulen];
    size_t total = 3 + ulen + plen;
    if (len < total) {
        need(out, total, len);
        return;
    }
    out->used = total;
    bool ok = ulen > 0 && plen > 0 && s->auth(p + 2, ulen, p + 3 + ulen, plen, s->auth_data);
    out->reply[0] = AUTH_VERSION;
    out->reply[1] = ok ? 0x00 : 0x01;
    out->reply_len = 2;
    if (!ok) {
        close_with(s, out, "wrong username or password");
        return;
    }
    set_state(s, PTTH_SOCKS_ST_REQUEST);
    out->action = PTTH_SOCKS_REPLY;
}

/* "PORT.SERVER" split at the first dot, both SPEC §2 names */
static bool
split_destination(ptth_socks *s, const uint8_t *name, size_t len)
{
    const uint8_t *dot = memchr(name, '.', len);
    if (dot == NULL)
        return false;
    size_t plen = (size_t)(dot - name), slen = len - plen - 1;
    if (!ptth_name_valid((const char *)name, plen) || !ptth_name_valid((const char *)dot + 1, slen))
        return false;
    memcpy(s->port, name, plen);
    s->port[plen] = '\0';
    memcpy(s->server, dot + 1, slen);
    s->server[slen] = '\0';
    return true;
}

/* VER CMD RSV ATYP DST.ADDR DST.PORT. The whole message is read (its length
 * follows from ATYP) before it is answered, so that no byte of it is left
 * in the socket to be taken for tunnel data. */
static void
on_request(ptth_socks *s, const uint8_t *p, size_t len, ptth_socks_out *out)
{
    if (len < 5) {
        need(out, 5, len);
        return;
    }
    size_t total;
    switch (p[3]) {
    case ATYP_IPV4:
        total = 4 + 4 + 2;
        break;
    case ATYP_IPV6:
        total = 4 + 16 + 2;
        break;
    case ATYP_DOMAIN:
        total = 5 + (size_t)p[4] + 2;
        break;
    default: /* the length is unknown: answer now */
        out->used = len < 4 ? len : 4;
        refuse(s, out, PTTH_SOCKS_REP_ATYP_UNSUPPORTED, "unknown address type");
        return;
    }
    if (len < total) {
        need(out, total, len);
        return;
    }
    out->used = total;
    if (p[0] != SOCKS_VERSION) {
        refuse(s, out, PTTH_SOCKS_REP_FAILURE, "request is not SOCKS version 5");
        return;
    }
    if (p[1] != CMD_CONNECT) {
        refuse(s, out, PTTH_SOCKS_REP_CMD_UNSUPPORTED, "command not supported (only CONNECT)");
        return;
    }
    if (p[3] != ATYP_DOMAIN) {
        refuse(s, out, PTTH_SOCKS_REP_ATYP_UNSUPPORTED, "address type not supported (only a domain name PORT.SERVER)");
        return;
    }
    if (!split_destination(s, p + 5, p[4])) {
        refuse(s, out, PTTH_SOCKS_REP_HOST_UNREACHABLE, "destination is not PORT.SERVER");
        return;
    }
    set_state(s, PTTH_SOCKS_ST_CONNECTING);
    out->action = PTTH_SOCKS_CONNECT;
}

void
ptth_socks_step(ptth_socks *s, const ptth_socks_event *ev, ptth_socks_out *out)
{
    memset(out, 0, sizeof(*out));
    switch (ev->kind) {
    case PTTH_SOCKS_EV_BYTES:
        switch (s->state) {
        case PTTH_SOCKS_ST_GREETING:
            on_greeting(s, ev->data, ev->len, out);
            return;
        case PTTH_SOCKS_ST_AUTH:
            on_auth(s, ev->data, ev->len, out);
            return;
        case PTTH_SOCKS_ST_REQUEST:
            on_request(s, ev->data, ev->len, out);
            return;
        default:
            close_with(s, out, "bytes after the handshake");
            return;
        }
    case PTTH_SOCKS_EV_OPENED:
        if (s->state != PTTH_SOCKS_ST_CONNECTING) {
            close_with(s, out, "tunnel opened out of turn");
            return;
        }
        set_state(s, PTTH_SOCKS_ST_OPEN);
        set_reply(out, PTTH_SOCKS_REP_OK);
        out->action = PTTH_SOCKS_OPEN;
        return;
    case PTTH_SOCKS_EV_REFUSED:
        if (s->state != PTTH_SOCKS_ST_CONNECTING) {
            close_with(s, out, "tunnel refused out of turn");
            return;
        }
        refuse(s, out, ptth_socks_reply_for_status(ev->status), "tunnel refused");
        return;
    }
    close_with(s, out, "unknown event");
}
