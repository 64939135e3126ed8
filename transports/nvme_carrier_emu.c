/*
 * nvme_carrier_emu.c: the emulator carrier. DEVICE is the UNIX socket of
 * ptth_csd_emu; each command is one request/response on a connection of its
 * own channel (csd_proto.h). The handshake tells a ptth_csd_emu socket from
 * any other UNIX socket, with a 5 s limit so a silent peer cannot hang the
 * opener.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "csd_proto.h"
#include "nvme_carrier.h"
#include "nvme_cmd.h"

typedef struct emu_chan {
    ptth_nvme_chan base;
    int fd;
    unsigned char req[4 + PTTH_CSD_REQ_BODY_MAX];
    unsigned char resp[PTTH_CSD_RESP_BODY_MAX];
} emu_chan;

/* ptth_csd_recv_exact with the peer closing at any point as -EPIPE: between
 * commands the emulator has nothing to close cleanly for. */
static int
recv_exact(int fd, void *buf, size_t len)
{
    int rc = ptth_csd_recv_exact(fd, buf, len);
    return rc == 1 ? 0 : rc == 0 ? -EPIPE : rc;
}

static int
lost(emu_chan *e, int rc, char *err, size_t errlen)
{
    if (rc == -EPIPE || rc == -ECONNRESET)
        snprintf(err, errlen, "nvme device '%s': the emulator closed the connection", e->base.device);
    else
        snprintf(err, errlen, "nvme device '%s': emulator connection: %s", e->base.device, strerror(-rc));
    return rc;
}

static int
emu_submit(ptth_nvme_chan *c, struct nvme_passthru_cmd *cmd, void *buf, size_t out_len, uint32_t *status, uint32_t *result,
           char *err, size_t errlen)
{
    emu_chan *e = (emu_chan *)c;
    if (out_len > cmd->data_len)
        out_len = cmd->data_len;
    int n = ptth_csd_encode_request(cmd, buf, out_len, e->req);
    if (n < 0) {
        snprintf(err, errlen, "nvme device '%s': command data too long", c->device);
        return -EINVAL;
    }
    int rc = ptth_csd_send_all(e->fd, e->req, (size_t)n);
    if (rc != 0)
        return lost(e, rc, err, errlen);
    unsigned char hdr[4];
    if ((rc = recv_exact(e->fd, hdr, 4)) != 0)
        return lost(e, rc, err, errlen);
    uint32_t len = ptth_get_le32(hdr);
    if (len < PTTH_CSD_RESP_HEAD || len > PTTH_CSD_RESP_BODY_MAX) {
        snprintf(err, errlen, "nvme device '%s': malformed emulator response (length %u)", c->device, len);
        return -EPROTO;
    }
    if ((rc = recv_exact(e->fd, e->resp, len)) != 0)
        return lost(e, rc, err, errlen);
    const unsigned char *data;
    size_t dlen;
    if (ptth_csd_decode_response(e->resp, len, status, result, &data, &dlen) != 0 || dlen > cmd->data_len) {
        snprintf(err, errlen, "nvme device '%s': malformed emulator response", c->device);
        return -EPROTO;
    }
    if (dlen > 0)
        memcpy(buf, data, dlen);
    cmd->result = *result;
    return 0;
}

static void
emu_close(ptth_nvme_chan *c)
{
    emu_chan *e = (emu_chan *)c;
    close(e->fd);
    free(e);
}

static const ptth_nvme_carrier emu_carrier = {
    .name = "emulator",
    .submit = emu_submit,
    .close = emu_close,
};

int
ptth_nvme_emu_open(const char *device, ptth_nvme_chan **out, char *err, size_t errlen)
{
    *out = NULL;
    struct sockaddr_un sun;
    if (ptth_csd_sockaddr(device, &sun) != 0) {
        snprintf(err, errlen, "nvme device '%s': socket path too long", device);
        return -ENAMETOOLONG;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "nvme device '%s': socket: %s", device, strerror(e));
        return -e;
    }
    int rc;
    do {
        rc = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) {
        int e = errno;
        snprintf(err, errlen, "nvme device '%s': cannot reach the emulator: %s%s", device, strerror(e),
                 e == ECONNREFUSED ? " (is ptth_csd_emu running?)" : "");
        close(fd);
        return -e;
    }
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    char magic[PTTH_CSD_MAGIC_LEN];
    rc = ptth_csd_send_all(fd, PTTH_CSD_MAGIC, PTTH_CSD_MAGIC_LEN);
    if (rc == 0)
        rc = recv_exact(fd, magic, sizeof(magic));
    if (rc != 0 || memcmp(magic, PTTH_CSD_MAGIC, PTTH_CSD_MAGIC_LEN) != 0) {
        if (rc == -EPIPE || rc == -ECONNRESET)
            snprintf(err, errlen,
                     "nvme device '%s': the emulator closed the connection during the handshake (its "
                     "--max-connections reached?)",
                     device);
        else
            snprintf(err, errlen, "nvme device '%s': not a ptth_csd_emu socket (handshake %s)", device,
                     rc == 0 ? "answered wrongly" : (rc == -EAGAIN ? "timed out" : strerror(-rc)));
        close(fd);
        return rc == 0 ? -EPROTO : rc;
    }
    tv.tv_sec = 0;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    emu_chan *e = malloc(sizeof(*e));
    if (e == NULL) {
        close(fd);
        snprintf(err, errlen, "nvme device '%s': out of memory", device);
        return -ENOMEM;
    }
    memset(&e->base, 0, sizeof(e->base));
    e->base.carrier = &emu_carrier;
    memcpy(e->base.device, device, strlen(device) + 1);
    e->fd = fd;
    *out = &e->base;
    return 0;
}
