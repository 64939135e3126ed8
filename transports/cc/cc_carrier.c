/*
 * cc_carrier.c: channel addresses (service names, vsock CID:PORT) and the
 * choice of carrier, and the socket steps the carriers share. The carriers
 * themselves are in cc_carrier_*.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "cc_carrier.h"
#include "names.h"

const ptth_cc_carrier *
ptth_cc_carrier_for(ptth_cc_carrier_kind kind)
{
    return kind == PTTH_CC_VSOCK ? &ptth_cc_carrier_vsock : &ptth_cc_carrier_seqpacket;
}

const char *
ptth_cc_dir(void)
{
    const char *dir = getenv("PTTH_CC_DIR");
    return dir != NULL && dir[0] != '\0' ? dir : PTTH_CC_DIR_DEFAULT;
}

/* Strict unsigned decimal: digits only, no sign or spaces, no overflow. */
static int
parse_u32(const char *s, size_t len, uint32_t *out)
{
    if (len == 0 || len > 10)
        return -EINVAL;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EINVAL;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > UINT32_MAX)
        return -EINVAL;
    *out = (uint32_t)v;
    return 0;
}

int
ptth_cc_vsock_parse(const char *text, bool listening, uint32_t *cid, uint32_t *port, char *err, size_t errlen)
{
    const char *colon = strchr(text, ':');
    if (colon == NULL) {
        snprintf(err, errlen, "vsock address '%s': expected CID:PORT", text);
        return -EINVAL;
    }
    size_t cid_len = (size_t)(colon - text);
    const char *port_text = colon + 1;
    uint32_t c, p;
    if (cid_len == 3 && memcmp(text, "any", 3) == 0) {
        if (!listening) {
            snprintf(err, errlen, "vsock address '%s': CID 'any' is only for listening", text);
            return -EINVAL;
        }
        c = UINT32_MAX; /* VMADDR_CID_ANY */
    } else if (parse_u32(text, cid_len, &c) != 0 || c == UINT32_MAX) {
        snprintf(err, errlen, "vsock address '%s': CID is not a number in 0..4294967294%s", text, listening ? " or 'any'" : "");
        return -EINVAL;
    }
    if (parse_u32(port_text, strlen(port_text), &p) != 0 || p == UINT32_MAX) {
        snprintf(err, errlen, "vsock address '%s': PORT is not a number in 0..4294967294", text);
        return -EINVAL;
    }
    *cid = c;
    *port = p;
    return 0;
}

static int
addr_seqpacket(const char *service, ptth_cc_addr *out, char *err, size_t errlen)
{
    if (!ptth_name_valid_str(service)) {
        snprintf(err, errlen, "cc service '%s': not a name (1 to 64 of A-Z a-z 0-9 . _ -)", service);
        return -EINVAL;
    }
    const char *dir = ptth_cc_dir();
    int n = snprintf(out->path, sizeof(out->path), "%s/%s", dir, service);
    if (n < 0 || (size_t)n >= sizeof(out->path)) {
        snprintf(err, errlen, "cc service '%s': socket path '%s/%s' is longer than %zu bytes (PTTH_CC_DIR too long)", service, dir,
                 service, sizeof(out->path) - 1);
        return -ENAMETOOLONG;
    }
    out->kind = PTTH_CC_SEQPACKET;
    snprintf(out->text, sizeof(out->text), "seqpacket:%s", out->path);
    return 0;
}

int
ptth_cc_addr_parse(const char *name, bool listening, ptth_cc_addr *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (strncmp(name, "vsock:", 6) == 0) {
        int r = ptth_cc_vsock_parse(name + 6, listening, &out->cid, &out->port, err, errlen);
        if (r != 0)
            return r;
        out->kind = PTTH_CC_VSOCK;
        if (out->cid == UINT32_MAX)
            snprintf(out->text, sizeof(out->text), "vsock:any:%u", out->port);
        else
            snprintf(out->text, sizeof(out->text), "vsock:%u:%u", out->cid, out->port);
        return 0;
    }
    return addr_seqpacket(name, out, err, errlen);
}

int
ptth_cc_addr_from_target(const ptth_target *t, ptth_cc_addr *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (t->kind != PTTH_TARGET_CC) {
        snprintf(err, errlen, "target '%s' is not a cc: target", t->text);
        return -EINVAL;
    }
    if (t->cc_carrier == PTTH_CC_VSOCK) {
        if (t->vsock_cid == UINT32_MAX || t->vsock_port == UINT32_MAX) {
            snprintf(err, errlen, "cc target '%s': bad vsock CID or PORT", t->text);
            return -EINVAL;
        }
        out->kind = PTTH_CC_VSOCK;
        out->cid = t->vsock_cid;
        out->port = t->vsock_port;
        snprintf(out->text, sizeof(out->text), "vsock:%u:%u", out->cid, out->port);
        return 0;
    }
    return addr_seqpacket(t->cc_service, out, err, errlen);
}

int
ptth_cc_carrier_accept(const ptth_cc_carrier *carrier, int listen_fd, ptth_cc_conn **out, char *err, size_t errlen)
{
    int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == EAGAIN || e == EWOULDBLOCK || e == EINTR || e == ECONNABORTED)
            return -EAGAIN;
        snprintf(err, errlen, "accept: %s", strerror(e));
        return -e;
    }
    int r = carrier->adopt(fd, out);
    if (r != 0)
        snprintf(err, errlen, "accept: out of memory");
    return r;
}

ssize_t
ptth_cc_carrier_send_some(int fd, const uint8_t *buf, size_t len)
{
    ssize_t n;
    do {
        n = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    return n;
}
