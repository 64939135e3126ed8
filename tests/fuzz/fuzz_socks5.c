/*
 * fuzz_socks5.c: libFuzzer target for ptth_proxy's SOCKS5 handshake
 * (client_proxy/socks5.h), the bytes a local client sends to --socks.
 *
 * Input: [mode] then the client's byte stream. mode bit 0: a user list is
 * wanted (the only pair accepted is "user"/"pass"); the byte after a CONNECT
 * picks the tunnel's fate (even: opened; odd: refused, with a status from a
 * small table). The stream is offered as the front reads it: only the bytes
 * the current message still needs (out.need) are added each time.
 * Checked: need >= 1 and a message never grows past PTTH_SOCKS_MSG_MAX;
 * used equals the message read; replies are 2 or 10 bytes, start with the
 * right version, and a 10-byte reply's code is the one the state machine
 * claims (success only after OPENED); CONNECT only with both names valid
 * (SPEC §2) and only after the right method (and, with users, the right
 * password); a closed handshake stays closed and says why; no handshake
 * takes more than PTTH_SOCKS_HANDSHAKE_MAX bytes.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"
#include "socks5.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fail(const char *what)
{
    fprintf(stderr, "fuzz_socks5: invariant broken: %s\n", what);
    abort();
}

static bool
auth_user_pass(const uint8_t *user, size_t ulen, const uint8_t *pass, size_t plen, void *d)
{
    bool *authed = d;
    if (ulen == 0 || ulen > 255 || plen == 0 || plen > 255)
        fail("auth called with a bad length");
    *authed = ulen == 4 && memcmp(user, "user", 4) == 0 && plen == 4 && memcmp(pass, "pass", 4) == 0;
    return *authed;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    bool with_users = (data[0] & 1) != 0;
    data++;
    size--;
    bool authed = false;
    ptth_socks s;
    ptth_socks_init(&s, with_users ? auth_user_pass : NULL, &authed);
    uint8_t msg[PTTH_SOCKS_MSG_MAX];
    size_t have = 0, need = 1, pos = 0, total = 0;
    bool method_ok = false;
    static const long statuses[] = {0, 401, 403, 404, 429, 502, 503, 504};
    static const uint8_t codes[] = {1, 1, 2, 4, 1, 5, 4, 1};
    while (s.state != PTTH_SOCKS_ST_CLOSED && s.state != PTTH_SOCKS_ST_OPEN) {
        ptth_socks_event ev = {.kind = PTTH_SOCKS_EV_BYTES};
        ptth_socks_state before = s.state;
        size_t fate = 0;
        if (s.state == PTTH_SOCKS_ST_CONNECTING) {
            if (pos >= size)
                return 0;
            fate = data[pos++];
            ev.kind = (fate & 1) == 0 ? PTTH_SOCKS_EV_OPENED : PTTH_SOCKS_EV_REFUSED;
            ev.status = statuses[(fate >> 1) % 8];
        } else {
            if (pos + need > size)
                return 0; /* the client went quiet: the front's timer ends it */
            if (have + need > sizeof(msg))
                fail("a message grows past PTTH_SOCKS_MSG_MAX");
            memcpy(msg + have, data + pos, need);
            have += need;
            pos += need;
            total += need;
            if (total > PTTH_SOCKS_HANDSHAKE_MAX)
                fail("handshake longer than PTTH_SOCKS_HANDSHAKE_MAX");
            ev.data = msg;
            ev.len = have;
        }
        ptth_socks_out out;
        ptth_socks_step(&s, &ev, &out);
        if (out.reply_len != 0 && out.reply_len != 2 && out.reply_len != 10)
            fail("reply length");
        if (out.reply_len == 10 && (out.reply[0] != 5 || out.reply[2] != 0 || out.reply[3] != 1))
            fail("reply header");
        if (out.action != PTTH_SOCKS_NEED_MORE && ev.kind == PTTH_SOCKS_EV_BYTES && out.used > have)
            fail("used more than given");
        switch (out.action) {
        case PTTH_SOCKS_NEED_MORE:
            if (out.need < 1 || s.state != before)
                fail("NEED_MORE without need, or with a state change");
            need = out.need;
            break;
        case PTTH_SOCKS_REPLY:
            if (out.used != have || out.reply_len != 2)
                fail("REPLY: used or reply length");
            if (before == PTTH_SOCKS_ST_GREETING) {
                if (out.reply[0] != 5 || out.reply[1] != (with_users ? 2 : 0))
                    fail("method reply");
                method_ok = true;
            } else if (before != PTTH_SOCKS_ST_AUTH || !authed || out.reply[0] != 1 || out.reply[1] != 0) {
                fail("auth reply");
            }
            have = 0;
            need = 1;
            break;
        case PTTH_SOCKS_CONNECT:
            if (!method_ok || (with_users && !authed) || out.used != have || out.reply_len != 0)
                fail("CONNECT out of turn");
            if (!ptth_name_valid_str(s.server) || !ptth_name_valid_str(s.port))
                fail("CONNECT to an invalid name");
            if (s.state != PTTH_SOCKS_ST_CONNECTING)
                fail("CONNECT state");
            have = 0;
            break;
        case PTTH_SOCKS_OPEN:
            if (ev.kind != PTTH_SOCKS_EV_OPENED || out.reply_len != 10 || out.reply[1] != 0)
                fail("OPEN without OPENED or success reply");
            break;
        case PTTH_SOCKS_CLOSE:
            if (s.state != PTTH_SOCKS_ST_CLOSED || s.error == NULL || s.error[0] == '\0')
                fail("CLOSE without ST_CLOSED and a reason");
            if (out.reply_len == 10 && out.reply[1] == 0)
                fail("success code on a close");
            if (ev.kind == PTTH_SOCKS_EV_REFUSED && (out.reply_len != 10 || out.reply[1] != codes[(fate >> 1) % 8]))
                fail("refusal code");
            break;
        }
    }
    /* after the end every event is refused */
    ptth_socks_event again = {.kind = PTTH_SOCKS_EV_BYTES, .data = data, .len = size};
    ptth_socks_out out;
    ptth_socks_step(&s, &again, &out);
    if (out.action != PTTH_SOCKS_CLOSE || s.state != PTTH_SOCKS_ST_CLOSED)
        fail("bytes after the end accepted");
    return 0;
}
