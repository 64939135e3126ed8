/*
 * csd_proto.h: how the NVMe emulator carrier carries the nvme_csd admin
 * commands to ptth_csd_emu over a UNIX stream socket (docs/csd-emulator.md).
 *
 *   client -> emulator, once per connection:  "PTTHCSD1" (8 bytes)
 *   emulator -> client, once per connection:  "PTTHCSD1"
 *   then, one at a time (the next request only after the response):
 *   request:  u32 body_len | 72-byte command | data (body_len - 72 bytes, 0..4096)
 *   response: u32 body_len | u32 status | u32 result | data (body_len - 8, 0..4096)
 *
 * All integers little-endian. The 72-byte command is struct nvme_passthru_cmd
 * field by field (opcode u8, flags u8, rsvd1 u16, nsid, cdw2, cdw3 u32,
 * metadata u64, addr u64, metadata_len, data_len, cdw10..cdw15, timeout_ms,
 * result u32), with metadata and addr sent as 0 (they are host pointers).
 * Request data are the first bytes of the command's host buffer (the rest of
 * the buffer counts as zeros); response data are the first bytes of the
 * buffer as the drive left it. status is the NVMe status value (0 success).
 *
 * The codec functions are pure (no I/O). Below them, the blocking socket
 * I/O and socket address that both ends (nvme_carrier_emu.c, the client, and
 * ptth_csd_emu.c, the server) share.
 */
#ifndef PTTH_CSD_PROTO_H
#define PTTH_CSD_PROTO_H

#include <linux/nvme_ioctl.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/un.h>

#define PTTH_CSD_MAGIC "PTTHCSD1"
#define PTTH_CSD_MAGIC_LEN 8
#define PTTH_CSD_CMD_LEN 72
#define PTTH_CSD_DATA_MAX 4096
#define PTTH_CSD_REQ_BODY_MAX (PTTH_CSD_CMD_LEN + PTTH_CSD_DATA_MAX)
#define PTTH_CSD_RESP_HEAD 8
#define PTTH_CSD_RESP_BODY_MAX (PTTH_CSD_RESP_HEAD + PTTH_CSD_DATA_MAX)

/* Writes the whole request (length prefix included) into out, which holds
 * 4 + PTTH_CSD_REQ_BODY_MAX bytes; returns its length, or -EINVAL when len is
 * above PTTH_CSD_DATA_MAX. */
int ptth_csd_encode_request(const struct nvme_passthru_cmd *cmd, const void *data, size_t len, unsigned char *out);

/* Parses a request body (after the length prefix): 0, or -EINVAL when
 * body_len is outside 72..72+4096. *data points into body. */
int ptth_csd_decode_request(const unsigned char *body, size_t body_len, struct nvme_passthru_cmd *cmd, const unsigned char **data,
                            size_t *len);

/* Writes the whole response into out (4 + PTTH_CSD_RESP_BODY_MAX bytes);
 * returns its length or -EINVAL. */
int ptth_csd_encode_response(uint32_t status, uint32_t result, const void *data, size_t len, unsigned char *out);

/* Parses a response body: 0, or -EINVAL when body_len is outside 8..8+4096. */
int ptth_csd_decode_response(const unsigned char *body, size_t body_len, uint32_t *status, uint32_t *result,
                             const unsigned char **data, size_t *len);

/* Fills *sun with the UNIX socket address of path: 0, or -ENAMETOOLONG when
 * path does not fit sun_path (107 bytes). */
int ptth_csd_sockaddr(const char *path, struct sockaddr_un *sun);

/* Blocking I/O on a connected stream socket. Both retry on EINTR, never
 * raise SIGPIPE, and honour SO_RCVTIMEO/SO_SNDTIMEO (a timeout comes back as
 * -EAGAIN). */

/* Sends all len bytes: 0, or -errno (-EPIPE or -ECONNRESET: the peer went
 * away). */
int ptth_csd_send_all(int fd, const void *buf, size_t len);

/* Receives exactly len bytes into buf: 1 when all arrived; 0 when the peer
 * closed before the first byte (a clean end between messages); -EPIPE when it
 * closed part-way; other -errno. */
int ptth_csd_recv_exact(int fd, void *buf, size_t len);

#endif
