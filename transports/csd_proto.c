/*
 * csd_proto.c: the emulator carrier's wire format (see csd_proto.h).
 */
#include "csd_proto.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "nvme_cmd.h"

static void
put_le16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static uint16_t
get_le16(const unsigned char *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static void
put_le64(unsigned char *p, uint64_t v)
{
    ptth_put_le32(p, (uint32_t)v);
    ptth_put_le32(p + 4, (uint32_t)(v >> 32));
}

static uint64_t
get_le64(const unsigned char *p)
{
    return (uint64_t)ptth_get_le32(p) | (uint64_t)ptth_get_le32(p + 4) << 32;
}

int
ptth_csd_encode_request(const struct nvme_passthru_cmd *cmd, const void *data, size_t len, unsigned char *out)
{
    if (len > PTTH_CSD_DATA_MAX)
        return -EINVAL;
    ptth_put_le32(out, (uint32_t)(PTTH_CSD_CMD_LEN + len));
    unsigned char *c = out + 4;
    c[0] = cmd->opcode;
    c[1] = cmd->flags;
    put_le16(c + 2, cmd->rsvd1);
    ptth_put_le32(c + 4, cmd->nsid);
    ptth_put_le32(c + 8, cmd->cdw2);
    ptth_put_le32(c + 12, cmd->cdw3);
    put_le64(c + 16, 0); /* metadata: a host pointer */
    put_le64(c + 24, 0); /* addr: a host pointer */
    ptth_put_le32(c + 32, cmd->metadata_len);
    ptth_put_le32(c + 36, cmd->data_len);
    ptth_put_le32(c + 40, cmd->cdw10);
    ptth_put_le32(c + 44, cmd->cdw11);
    ptth_put_le32(c + 48, cmd->cdw12);
    ptth_put_le32(c + 52, cmd->cdw13);
    ptth_put_le32(c + 56, cmd->cdw14);
    ptth_put_le32(c + 60, cmd->cdw15);
    ptth_put_le32(c + 64, cmd->timeout_ms);
    ptth_put_le32(c + 68, cmd->result);
    if (len > 0)
        memcpy(out + 4 + PTTH_CSD_CMD_LEN, data, len);
    return (int)(4 + PTTH_CSD_CMD_LEN + len);
}

int
ptth_csd_decode_request(const unsigned char *body, size_t body_len, struct nvme_passthru_cmd *cmd, const unsigned char **data,
                        size_t *len)
{
    if (body_len < PTTH_CSD_CMD_LEN || body_len > PTTH_CSD_REQ_BODY_MAX)
        return -EINVAL;
    const unsigned char *c = body;
    memset(cmd, 0, sizeof(*cmd));
    cmd->opcode = c[0];
    cmd->flags = c[1];
    cmd->rsvd1 = get_le16(c + 2);
    cmd->nsid = ptth_get_le32(c + 4);
    cmd->cdw2 = ptth_get_le32(c + 8);
    cmd->cdw3 = ptth_get_le32(c + 12);
    cmd->metadata = get_le64(c + 16);
    cmd->addr = get_le64(c + 24);
    cmd->metadata_len = ptth_get_le32(c + 32);
    cmd->data_len = ptth_get_le32(c + 36);
    cmd->cdw10 = ptth_get_le32(c + 40);
    cmd->cdw11 = ptth_get_le32(c + 44);
    cmd->cdw12 = ptth_get_le32(c + 48);
    cmd->cdw13 = ptth_get_le32(c + 52);
    cmd->cdw14 = ptth_get_le32(c + 56);
    cmd->cdw15 = ptth_get_le32(c + 60);
    cmd->timeout_ms = ptth_get_le32(c + 64);
    cmd->result = ptth_get_le32(c + 68);
    *data = body + PTTH_CSD_CMD_LEN;
    *len = body_len - PTTH_CSD_CMD_LEN;
    return 0;
}

int
ptth_csd_encode_response(uint32_t status, uint32_t result, const void *data, size_t len, unsigned char *out)
{
    if (len > PTTH_CSD_DATA_MAX)
        return -EINVAL;
    ptth_put_le32(out, (uint32_t)(PTTH_CSD_RESP_HEAD + len));
    ptth_put_le32(out + 4, status);
    ptth_put_le32(out + 8, result);
    if (len > 0)
        memcpy(out + 4 + PTTH_CSD_RESP_HEAD, data, len);
    return (int)(4 + PTTH_CSD_RESP_HEAD + len);
}

int
ptth_csd_decode_response(const unsigned char *body, size_t body_len, uint32_t *status, uint32_t *result, const unsigned char **data,
                         size_t *len)
{
    if (body_len < PTTH_CSD_RESP_HEAD || body_len > PTTH_CSD_RESP_BODY_MAX)
        return -EINVAL;
    *status = ptth_get_le32(body);
    *result = ptth_get_le32(body + 4);
    *data = body + PTTH_CSD_RESP_HEAD;
    *len = body_len - PTTH_CSD_RESP_HEAD;
    return 0;
}

int
ptth_csd_sockaddr(const char *path, struct sockaddr_un *sun)
{
    size_t len = strlen(path);
    if (len >= sizeof(sun->sun_path))
        return -ENAMETOOLONG;
    memset(sun, 0, sizeof(*sun));
    sun->sun_family = AF_UNIX;
    memcpy(sun->sun_path, path, len + 1);
    return 0;
}

int
ptth_csd_send_all(int fd, const void *buf, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t n = send(fd, (const char *)buf + off, len - off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        off += (size_t)n;
    }
    return 0;
}

int
ptth_csd_recv_exact(int fd, void *buf, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t n = recv(fd, (char *)buf + off, len - off, 0);
        if (n == 0)
            return off == 0 ? 0 : -EPIPE;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        off += (size_t)n;
    }
    return 1;
}
