/*
 * nvme_cmd.c: encoding of the nvme_csd relay commands (see nvme_cmd.h).
 */
#include "nvme_cmd.h"

#include <errno.h>
#include <string.h>

/* Every command starts from zero: the fields the firmware does not use
 * (flags, nsid, cdw2/3, metadata, cdw14/15) are 0. */
static void
base(struct nvme_passthru_cmd *cmd, uint32_t sub)
{
    memset(cmd, 0, sizeof(*cmd));
    cmd->opcode = PTTH_NVME_OPC_CSD;
    cmd->cdw10 = sub;
}

static void
with_buffer(struct nvme_passthru_cmd *cmd, void *buf)
{
    cmd->addr = (uint64_t)(uintptr_t)buf;
    cmd->data_len = PTTH_NVME_BUF;
}

int
ptth_nvme_encode_open(struct nvme_passthru_cmd *cmd, void *buf, const char *node, const char *service)
{
    size_t nl = strlen(node), sl = strlen(service);
    if (nl == 0 || sl == 0)
        return -EINVAL;
    if (nl >= PTTH_NVME_FIELD || sl >= PTTH_NVME_FIELD)
        return -ENAMETOOLONG;
    base(cmd, PTTH_NVME_SUB_OPEN);
    with_buffer(cmd, buf);
    memset(buf, 0, PTTH_NVME_BUF);
    memcpy(buf, node, nl);
    memcpy((char *)buf + PTTH_NVME_FIELD, service, sl);
    return 0;
}

int
ptth_nvme_encode_write(struct nvme_passthru_cmd *cmd, void *buf, int32_t desc, const void *data, size_t len)
{
    if (len == 0 || len > PTTH_NVME_WRITE_MAX)
        return -EINVAL;
    base(cmd, PTTH_NVME_SUB_TRANSFER);
    with_buffer(cmd, buf);
    cmd->cdw11 = PTTH_NVME_XFER_WRITE;
    cmd->cdw12 = (uint32_t)len;
    cmd->cdw13 = (uint32_t)desc;
    if (data != buf)
        memcpy(buf, data, len);
    return 0;
}

void
ptth_nvme_encode_read(struct nvme_passthru_cmd *cmd, void *buf, int32_t desc)
{
    base(cmd, PTTH_NVME_SUB_TRANSFER);
    with_buffer(cmd, buf);
    cmd->cdw11 = PTTH_NVME_XFER_READ;
    cmd->cdw13 = (uint32_t)desc;
    cmd->timeout_ms = PTTH_NVME_READ_TIMEOUT_MS;
    ptth_put_le32(buf, UINT32_MAX); /* a drive that leaves it unwritten is caught by decode */
}

void
ptth_nvme_encode_close(struct nvme_passthru_cmd *cmd, int32_t desc)
{
    base(cmd, PTTH_NVME_SUB_CLOSE);
    cmd->cdw13 = (uint32_t)desc;
}

int
ptth_nvme_decode_open(const void *buf, int32_t *desc)
{
    int32_t d = (int32_t)ptth_get_le32(buf);
    if (d < 0)
        return -EPROTO;
    *desc = d;
    return 0;
}

int
ptth_nvme_decode_read(const void *buf, uint32_t *len)
{
    uint32_t n = ptth_get_le32(buf);
    if (n > PTTH_NVME_READ_MAX)
        return -EPROTO;
    *len = n;
    return 0;
}

const char *
ptth_nvme_status_text(uint32_t status)
{
    switch (status & PTTH_NVME_SC_MASK) {
    case PTTH_NVME_SC_SUCCESS:
        return "success";
    case PTTH_NVME_SC_INVALID_OPCODE:
        return "invalid command opcode (the drive does not run the nvme_csd relay firmware?)";
    case PTTH_NVME_SC_INVALID_FIELD:
        return "invalid field in command";
    case PTTH_NVME_SC_INTERNAL:
        return "internal error in the drive";
    case PTTH_NVME_SC_BAD_DESCRIPTOR:
        return "bad relay descriptor";
    case PTTH_NVME_SC_CONNECT_FAILED:
        return "connect failed";
    case PTTH_NVME_SC_RESOLVE_FAILED:
        return "node did not resolve";
    case PTTH_NVME_SC_TOO_MANY:
        return "too many open relays";
    case PTTH_NVME_SC_RELAY_IO:
        return "I/O error on the relay's connection";
    default:
        return "command failed";
    }
}
