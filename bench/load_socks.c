/*
 * ptth_load conns --socks NAME: the client half of a SOCKS5 CONNECT (RFC
 * 1928, no authentication, a domain-name destination) on a non-blocking
 * socket, one step per readiness event, before the connection's round trip.
 * Each message is written whole before the answer is read, as curl and
 * nc -X 5 do; the reply is read to its exact length (it follows from ATYP),
 * so no byte of the echo is taken for it.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "load.h"

enum { S_GREET, S_METHOD, S_REQUEST, S_REPLY_HEAD, S_REPLY_REST, S_DONE };

/* "socks_reply_N" for the reply codes of RFC 1928 (stage strings are
 * constants: load_reasons keeps the pointer). */
static const char *const reply_stage[] = {"socks_reply", "socks_reply_1", "socks_reply_2", "socks_reply_3", "socks_reply_4",
                                          "socks_reply_5", "socks_reply_6", "socks_reply_7", "socks_reply_8"};

static size_t
build(const load_socks *st, const char *target, uint8_t *out)
{
    if (st->step == S_GREET) {
        out[0] = 5, out[1] = 1, out[2] = 0; /* version 5, one method: no authentication */
        return 3;
    }
    size_t n = strlen(target);
    out[0] = 5, out[1] = 1, out[2] = 0, out[3] = 3, out[4] = (uint8_t)n; /* CONNECT, domain name */
    memcpy(out + 5, target, n);
    out[5 + n] = 0, out[6 + n] = 0; /* DST.PORT: the port is in the name */
    return 7 + n;
}

int
load_socks_progress(int fd, load_socks *st, const char *target, const char **stage, int *err)
{
    uint8_t msg[7 + 255];
    *err = 0;
    while (st->step != S_DONE) {
        if (st->step == S_GREET || st->step == S_REQUEST) {
            size_t len = build(st, target, msg);
            ssize_t n = send(fd, msg + st->off, len - st->off, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                if (errno == EAGAIN)
                    return LOAD_SOCKS_WANT_WRITE;
                *stage = "socks_write", *err = errno;
                return LOAD_SOCKS_FAILED;
            }
            st->off = (uint16_t)(st->off + n);
            if (st->off < len)
                continue;
            st->off = 0;
            st->need = st->step == S_GREET ? 2 : 5;
            st->step++;
            return LOAD_SOCKS_WANT_READ; /* the answer cannot be there yet */
        }
        /* the rest of the reply (BND.ADDR, BND.PORT) is read and dropped */
        uint8_t *into = st->step == S_REPLY_REST ? msg : st->buf + st->off;
        ssize_t n = recv(fd, into, (size_t)(st->need - st->off), 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return LOAD_SOCKS_WANT_READ;
            *stage = "socks_read", *err = errno;
            return LOAD_SOCKS_FAILED;
        }
        if (n == 0) {
            *stage = "socks_eof";
            return LOAD_SOCKS_FAILED;
        }
        st->off = (uint16_t)(st->off + n);
        if (st->off < st->need)
            continue;
        st->off = 0;
        if (st->step == S_METHOD) {
            if (st->buf[0] != 5 || st->buf[1] != 0) {
                *stage = "socks_method";
                return LOAD_SOCKS_FAILED;
            }
            st->step = S_REQUEST;
        } else if (st->step == S_REPLY_HEAD) {
            /* VER REP RSV ATYP and the first byte of BND.ADDR */
            if (st->buf[0] != 5) {
                *stage = "socks_reply";
                return LOAD_SOCKS_FAILED;
            }
            if (st->buf[1] != 0) {
                *stage = reply_stage[st->buf[1] <= 8 ? st->buf[1] : 0];
                return LOAD_SOCKS_FAILED;
            }
            uint8_t atyp = st->buf[3];
            st->need = atyp == 1 ? 4 - 1 + 2 : atyp == 4 ? 16 - 1 + 2 : atyp == 3 ? (uint16_t)(st->buf[4] + 2) : 0;
            if (st->need == 0) {
                *stage = "socks_reply";
                return LOAD_SOCKS_FAILED;
            }
            st->step = S_REPLY_REST;
        } else {
            st->step = S_DONE;
        }
    }
    return LOAD_SOCKS_DONE;
}
