/*
 * nvme_cmd.h: the vendor admin commands of the open nvme_csd firmware that
 * relay a TCP connection through an NVMe computational storage drive (SPEC §7),
 * as `struct nvme_passthru_cmd` (linux/nvme_ioctl.h: the argument of
 * NVME_IOCTL_ADMIN_CMD, 72 bytes: the fields of the 64-byte submission entry
 * the kernel lets user space set, plus timeout_ms and result), plus the
 * decoding of what the drive returns.
 *
 *   opcode 0xC0, subcommand in CDW10:
 *     128 open relay  4 KiB buffer: node[256] then service[256], NUL-padded;
 *                     the drive writes the relay descriptor (int32, little
 *                     endian) into the first 4 bytes.
 *      64 transfer    CDW11 1 = write / 0 = read, CDW12 = length of a write,
 *                     CDW13 = descriptor, 4 KiB buffer. A read fills the
 *                     buffer with a uint32 length then up to 4092 bytes, and
 *                     may block until data comes.
 *     129 close       CDW13 = descriptor, no data.
 *
 * Pure functions: no I/O. `buf` is always the caller's 4 KiB data buffer
 * (PTTH_NVME_BUF bytes; page-aligned for the device carrier); the encoders
 * store its address in cmd->addr.
 */
#ifndef PTTH_NVME_CMD_H
#define PTTH_NVME_CMD_H

#include <linux/nvme_ioctl.h>
#include <stddef.h>
#include <stdint.h>

#define PTTH_NVME_OPC_CSD 0xC0
#define PTTH_NVME_SUB_TRANSFER 64
#define PTTH_NVME_SUB_OPEN 128
#define PTTH_NVME_SUB_CLOSE 129
#define PTTH_NVME_XFER_READ 0
#define PTTH_NVME_XFER_WRITE 1

#define PTTH_NVME_BUF 4096      /* data buffer of open and transfer */
#define PTTH_NVME_FIELD 256     /* node[] and service[] of open, NUL included */
#define PTTH_NVME_OPEN_DATA 512 /* meaningful bytes of an open buffer */
#define PTTH_NVME_READ_MAX 4092 /* payload of one transfer-read */
#define PTTH_NVME_WRITE_MAX 4096

/* Admin commands time out in the kernel after its default (60 s) unless the
 * command says otherwise, and a timed-out admin command resets the
 * controller. A transfer-read legitimately waits as long as the backend is
 * quiet, so reads carry the longest timeout the ioctl can express. */
#define PTTH_NVME_READ_TIMEOUT_MS UINT32_MAX

/* NVMe status values (SCT << 8 | SC) used by the drive and the emulator. */
#define PTTH_NVME_SC_SUCCESS 0x0000
#define PTTH_NVME_SC_INVALID_OPCODE 0x0001
#define PTTH_NVME_SC_INVALID_FIELD 0x0002
#define PTTH_NVME_SC_INTERNAL 0x0006
#define PTTH_NVME_SC_BAD_DESCRIPTOR 0x0701 /* vendor specific: no such open relay */
#define PTTH_NVME_SC_CONNECT_FAILED 0x0702 /* result = errno of the connect */
#define PTTH_NVME_SC_RESOLVE_FAILED 0x0703 /* node:service did not resolve */
#define PTTH_NVME_SC_TOO_MANY 0x0704       /* no free relay slot */
#define PTTH_NVME_SC_RELAY_IO 0x0705       /* result = errno of the relay's socket */
#define PTTH_NVME_SC_MASK 0x07ff           /* without the More and Do Not Retry bits */

/* -ENAMETOOLONG when node or service does not fit its 256-byte field, -EINVAL
 * when one is empty. */
int ptth_nvme_encode_open(struct nvme_passthru_cmd *cmd, void *buf, const char *node, const char *service);
/* -EINVAL when len is 0 or above PTTH_NVME_WRITE_MAX. Copies data into buf. */
int ptth_nvme_encode_write(struct nvme_passthru_cmd *cmd, void *buf, int32_t desc, const void *data, size_t len);
void ptth_nvme_encode_read(struct nvme_passthru_cmd *cmd, void *buf, int32_t desc);
void ptth_nvme_encode_close(struct nvme_passthru_cmd *cmd, int32_t desc);

/* The descriptor an open left in buf: 0, or -EPROTO when it is negative. */
int ptth_nvme_decode_open(const void *buf, int32_t *desc);
/* The length a read left in buf (data follows at buf + 4): 0, or -EPROTO when
 * it is above PTTH_NVME_READ_MAX. */
int ptth_nvme_decode_read(const void *buf, uint32_t *len);

/* Text for a status value: "invalid field in command", "bad descriptor"... */
const char *ptth_nvme_status_text(uint32_t status);

/* Little-endian helpers shared with the emulator protocol. */
static inline void
ptth_put_le32(void *p, uint32_t v)
{
    unsigned char *b = p;
    b[0] = (unsigned char)v;
    b[1] = (unsigned char)(v >> 8);
    b[2] = (unsigned char)(v >> 16);
    b[3] = (unsigned char)(v >> 24);
}
static inline uint32_t
ptth_get_le32(const void *p)
{
    const unsigned char *b = p;
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

#endif
