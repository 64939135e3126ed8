/*
 * fuzz_csd.c: libFuzzer target for the NVMe CSD emulator side (transports/
 * csd_proto.h, csd_emu.h: what ptth_csd_emu does with every request a client
 * sends over its UNIX socket) and the decoding of what a drive or the
 * emulator returns (csd_proto.h responses, nvme_cmd.h open and read buffers).
 *
 * Input: byte 0 picks the mode.
 *   even: the rest is a request body (72-byte command + data). It must decode
 *         exactly when its length is 72..72+4096, re-encode to the same bytes
 *         (metadata and addr, host pointers, are sent as 0), and is then
 *         carried out by one emulator kept for the process. That emulator has
 *         max_relays 1 and its one relay is open to a local socket of this
 *         harness, so an open with acceptable fields gets "too many" instead
 *         of a real connect. A transfer or close whose CDW13 is 0 is aimed at
 *         that live relay instead (a close of it is skipped, and the harness
 *         puts one byte on the backend side before a read so that the read
 *         returns at once). The status must be one of nvme_cmd.h's, the
 *         returned length at most 4 KiB, and a read's buffer must decode.
 *   odd:  the rest is a response body: decode it (8..8+4096 bytes) and put
 *         its data into a 4 KiB buffer for ptth_nvme_decode_open/read.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "csd_emu.h"
#include "csd_proto.h"
#include "log.h"
#include "nvme_cmd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static ptth_csd_emu *emu;
static int32_t live_desc;
static int backend_fd = -1; /* our end of the live relay's TCP connection */

static void
fail(const char *what)
{
    fprintf(stderr, "fuzz_csd: invariant broken: %s\n", what);
    abort();
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    ptth_log_init("fuzz_csd", getenv("PTTH_FUZZ_LOG") != NULL ? PTTH_LOG_DEBUG : PTTH_LOG_ERROR);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t slen = sizeof(sin);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) != 0 || listen(lfd, 1) != 0 ||
        getsockname(lfd, (struct sockaddr *)&sin, &slen) != 0)
        abort();
    char port[8];
    snprintf(port, sizeof(port), "%u", (unsigned)ntohs(sin.sin_port));

    ptth_csd_emu_config cfg = {.max_relays = 1, .connect_timeout_ms = 2000};
    if ((emu = ptth_csd_emu_new(&cfg)) == NULL)
        abort();
    static unsigned char buf[PTTH_NVME_BUF], out[PTTH_NVME_BUF];
    struct nvme_passthru_cmd cmd;
    if (ptth_nvme_encode_open(&cmd, buf, "127.0.0.1", port) != 0)
        abort();
    size_t out_len;
    uint32_t result;
    if (ptth_csd_emu_execute(emu, 1, &cmd, buf, PTTH_NVME_BUF, out, &out_len, &result) != PTTH_NVME_SC_SUCCESS ||
        ptth_nvme_decode_open(out, &live_desc) != 0)
        abort();
    if ((backend_fd = accept(lfd, NULL, NULL)) < 0 || fcntl(backend_fd, F_SETFL, O_NONBLOCK) != 0)
        abort();
    close(lfd);
    return 0;
}

static bool
known_status(uint32_t st)
{
    switch (st) {
    case PTTH_NVME_SC_SUCCESS:
    case PTTH_NVME_SC_INVALID_OPCODE:
    case PTTH_NVME_SC_INVALID_FIELD:
    case PTTH_NVME_SC_INTERNAL:
    case PTTH_NVME_SC_BAD_DESCRIPTOR:
    case PTTH_NVME_SC_CONNECT_FAILED:
    case PTTH_NVME_SC_RESOLVE_FAILED:
    case PTTH_NVME_SC_TOO_MANY:
    case PTTH_NVME_SC_RELAY_IO:
        return true;
    default:
        return false;
    }
}

/* Empties the backend side of the live relay (what transfer-writes sent). */
static void
drain_backend(void)
{
    char sink[8192];
    while (read(backend_fd, sink, sizeof(sink)) > 0)
        ;
}

static void
fuzz_request(const uint8_t *body, size_t len)
{
    uint8_t *copy = malloc(len > 0 ? len : 1); /* exact size: ASan sees overreads */
    if (copy == NULL)
        abort();
    memcpy(copy, body, len);
    struct nvme_passthru_cmd cmd;
    const unsigned char *data = NULL;
    size_t dlen = 0;
    int rc = ptth_csd_decode_request(copy, len, &cmd, &data, &dlen);
    bool want = len >= PTTH_CSD_CMD_LEN && len <= PTTH_CSD_REQ_BODY_MAX;
    if ((rc == 0) != want || (rc != 0 && rc != -EINVAL))
        fail("request decoded or refused against its length");
    if (rc != 0) {
        free(copy);
        return;
    }
    if (data != copy + PTTH_CSD_CMD_LEN || dlen != len - PTTH_CSD_CMD_LEN)
        fail("request data does not follow the command");

    static unsigned char enc[4 + PTTH_CSD_REQ_BODY_MAX];
    int n = ptth_csd_encode_request(&cmd, data, dlen, enc);
    uint8_t expect[PTTH_CSD_CMD_LEN];
    memcpy(expect, copy, sizeof(expect));
    memset(expect + 16, 0, 16); /* metadata and addr go as 0 */
    if (n != (int)(4 + len) || ptth_get_le32(enc) != len || memcmp(enc + 4, expect, sizeof(expect)) != 0 ||
        memcmp(enc + 4 + PTTH_CSD_CMD_LEN, data, dlen) != 0)
        fail("re-encoding a request gives other bytes");

    /* carry it out, aimed at the live relay when CDW13 is 0 */
    bool csd = cmd.opcode == PTTH_NVME_OPC_CSD;
    if (csd && cmd.cdw13 == 0 && (cmd.cdw10 == PTTH_NVME_SUB_TRANSFER || cmd.cdw10 == PTTH_NVME_SUB_CLOSE))
        cmd.cdw13 = (uint32_t)live_desc;
    if (csd && cmd.cdw10 == PTTH_NVME_SUB_CLOSE && (int32_t)cmd.cdw13 == live_desc) {
        free(copy);
        return; /* keep the live relay for the next inputs */
    }
    bool read_live = csd && cmd.cdw10 == PTTH_NVME_SUB_TRANSFER && cmd.cdw11 == PTTH_NVME_XFER_READ &&
                     (int32_t)cmd.cdw13 == live_desc && cmd.data_len == PTTH_NVME_BUF;
    if (read_live && write(backend_fd, "r", 1) != 1)
        abort();
    static unsigned char out[PTTH_NVME_BUF];
    size_t out_len = 12345;
    uint32_t result = 0;
    uint32_t st = ptth_csd_emu_execute(emu, 2, &cmd, data, dlen, out, &out_len, &result);
    if (!known_status(st))
        fail("execute returned an unknown status");
    if (out_len > PTTH_NVME_BUF)
        fail("execute returned more than the 4 KiB buffer");
    if (csd && cmd.cdw10 == PTTH_NVME_SUB_OPEN && st == PTTH_NVME_SC_SUCCESS)
        fail("an open got a relay although the only slot is taken");
    if (read_live && st == PTTH_NVME_SC_SUCCESS) {
        uint32_t rl;
        if (out_len < 4 || ptth_nvme_decode_read(out, &rl) != 0 || rl + 4 != out_len || rl == 0)
            fail("a read of the live relay returned a buffer that does not decode");
    }
    if (ptth_nvme_status_text(st) == NULL)
        fail("no text for a status");
    drain_backend();
    free(copy);
}

static void
fuzz_response(const uint8_t *body, size_t len)
{
    uint8_t *copy = malloc(len > 0 ? len : 1);
    if (copy == NULL)
        abort();
    memcpy(copy, body, len);
    uint32_t status, result;
    const unsigned char *data;
    size_t dlen;
    int rc = ptth_csd_decode_response(copy, len, &status, &result, &data, &dlen);
    bool want = len >= PTTH_CSD_RESP_HEAD && len <= PTTH_CSD_RESP_BODY_MAX;
    if ((rc == 0) != want || (rc != 0 && rc != -EINVAL))
        fail("response decoded or refused against its length");
    if (rc == 0) {
        if (data != copy + PTTH_CSD_RESP_HEAD || dlen != len - PTTH_CSD_RESP_HEAD || status != ptth_get_le32(copy) ||
            result != ptth_get_le32(copy + 4))
            fail("response fields do not match the bytes");
        static unsigned char enc[4 + PTTH_CSD_RESP_BODY_MAX];
        if (ptth_csd_encode_response(status, result, data, dlen, enc) != (int)(4 + len) || memcmp(enc + 4, copy, len) != 0)
            fail("re-encoding a response gives other bytes");
        /* the drive's buffer: its data, the rest zero */
        static unsigned char buf[PTTH_NVME_BUF];
        memset(buf, 0, sizeof(buf));
        memcpy(buf, data, dlen);
        int32_t desc;
        uint32_t rl;
        int32_t raw = (int32_t)ptth_get_le32(buf);
        if ((ptth_nvme_decode_open(buf, &desc) == 0) != (raw >= 0) || (raw >= 0 && desc != raw))
            fail("decode_open disagrees with the buffer");
        if ((ptth_nvme_decode_read(buf, &rl) == 0) != (ptth_get_le32(buf) <= PTTH_NVME_READ_MAX))
            fail("decode_read accepted a length above 4092 or refused a good one");
        if (ptth_nvme_status_text(status) == NULL)
            fail("no text for a status");
    }
    free(copy);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] & 1)
        fuzz_response(data + 1, size - 1);
    else
        fuzz_request(data + 1, size - 1);
    return 0;
}
