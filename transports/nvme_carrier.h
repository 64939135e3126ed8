/*
 * nvme_carrier.h: how the NVMe transport's admin commands reach the drive.
 * Two carriers behind one small table:
 *
 *   device    DEVICE is a character device (/dev/nvme0): each command is one
 *             NVME_IOCTL_ADMIN_CMD ioctl (nvme_carrier_dev.c).
 *   emulator  DEVICE is a UNIX socket: each command travels to ptth_csd_emu
 *             over that socket (csd_proto.h, nvme_carrier_emu.c).
 *
 * A channel carries one command at a time and blocks until its completion
 * (a transfer-read blocks until the backend sends something). Threads that
 * must issue commands at the same time open one channel each; descriptors
 * are valid on every channel to the same DEVICE.
 */
#ifndef PTTH_NVME_CARRIER_H
#define PTTH_NVME_CARRIER_H

#include <linux/nvme_ioctl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "target.h"

typedef struct ptth_nvme_chan ptth_nvme_chan;

typedef struct ptth_nvme_carrier {
    const char *name; /* "device" | "emulator" */
    /* Carries cmd with its 4 KiB buffer buf (out_len: how many of its first
     * bytes hold host data; the rest is zeros) and waits for the completion:
     * buf then holds what the drive wrote. Returns 0 with *status (NVMe
     * status, 0 = success) and *result (completion dword 0), or a negative
     * errno when the command could not be carried, with the reason in err. */
    int (*submit)(ptth_nvme_chan *c, struct nvme_passthru_cmd *cmd, void *buf, size_t out_len, uint32_t *status, uint32_t *result,
                  char *err, size_t errlen);
    void (*close)(ptth_nvme_chan *c);
} ptth_nvme_carrier;

struct ptth_nvme_chan {
    const ptth_nvme_carrier *carrier;
    char device[PTTH_TARGET_PATH_MAX];
};

/* Opens a channel to device, picking the carrier from what it is (a
 * character device or a UNIX socket). verify: check that it really is an NVMe
 * controller (an Identify command) or a ptth_csd_emu socket (the handshake,
 * always done). 0, or -errno with err naming the device:
 * "nvme device '/dev/null': not an NVMe controller (...)". */
int ptth_nvme_chan_open(const char *device, bool verify, ptth_nvme_chan **out, char *err, size_t errlen);

/* The two carriers' own open functions (used by ptth_nvme_chan_open). */
int ptth_nvme_dev_open(const char *device, bool verify, ptth_nvme_chan **out, char *err, size_t errlen);
int ptth_nvme_emu_open(const char *device, ptth_nvme_chan **out, char *err, size_t errlen);

static inline int
ptth_nvme_chan_submit(ptth_nvme_chan *c, struct nvme_passthru_cmd *cmd, void *buf, size_t out_len, uint32_t *status,
                      uint32_t *result, char *err, size_t errlen)
{
    return c->carrier->submit(c, cmd, buf, out_len, status, result, err, errlen);
}

static inline void
ptth_nvme_chan_close(ptth_nvme_chan *c)
{
    if (c != NULL)
        c->carrier->close(c);
}

#endif
