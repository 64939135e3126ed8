/*
 * nvme_carrier_dev.c: the device carrier. Each command is one
 * NVME_IOCTL_ADMIN_CMD ioctl on the controller's character device
 * (/dev/nvmeN, or a namespace's generic device /dev/ngNnM). The kernel needs
 * CAP_SYS_ADMIN for admin passthrough. Several threads may have commands in
 * flight on the same device at once; each uses its own channel (its own fd).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "nvme_carrier.h"
#include "nvme_cmd.h"

#define NVME_ADMIN_IDENTIFY 0x06
#define NVME_ID_CNS_CTRL 0x01

typedef struct dev_chan {
    ptth_nvme_chan base;
    int fd;
} dev_chan;

static int
dev_submit(ptth_nvme_chan *c, struct nvme_passthru_cmd *cmd, void *buf, size_t out_len, uint32_t *status, uint32_t *result,
           char *err, size_t errlen)
{
    dev_chan *d = (dev_chan *)c;
    (void)out_len;
    if (cmd->data_len != 0)
        cmd->addr = (uint64_t)(uintptr_t)buf;
    cmd->result = 0;
    int rc = ioctl(d->fd, NVME_IOCTL_ADMIN_CMD, cmd);
    if (rc < 0) {
        int e = errno;
        snprintf(err, errlen, "nvme device '%s': admin command failed: %s", c->device, strerror(e));
        return -e;
    }
    *status = (uint32_t)rc;
    *result = cmd->result;
    return 0;
}

static void
dev_close(ptth_nvme_chan *c)
{
    dev_chan *d = (dev_chan *)c;
    close(d->fd);
    free(d);
}

static const ptth_nvme_carrier dev_carrier = {
    .name = "device",
    .submit = dev_submit,
    .close = dev_close,
};

/* Identify Controller: harmless, mandatory for every NVMe controller, and
 * refused by anything that is not one (ENOTTY/EINVAL from the ioctl). */
static int
identify(dev_chan *d, char *err, size_t errlen)
{
    void *buf = NULL;
    if (posix_memalign(&buf, 4096, PTTH_NVME_BUF) != 0)
        return -ENOMEM;
    memset(buf, 0, PTTH_NVME_BUF);
    struct nvme_passthru_cmd cmd;
    memset(&cmd, 0, sizeof(cmd));
    cmd.opcode = NVME_ADMIN_IDENTIFY;
    cmd.addr = (uint64_t)(uintptr_t)buf;
    cmd.data_len = PTTH_NVME_BUF;
    cmd.cdw10 = NVME_ID_CNS_CTRL;
    int rc = ioctl(d->fd, NVME_IOCTL_ADMIN_CMD, &cmd);
    int e = errno;
    free(buf);
    if (rc == 0)
        return 0;
    if (rc > 0) {
        snprintf(err, errlen, "nvme device '%s': Identify Controller failed with NVMe status 0x%04x", d->base.device, (unsigned)rc);
        return -EIO;
    }
    if (e == ENOTTY || e == EINVAL || e == ENOSYS || e == EOPNOTSUPP) {
        snprintf(err, errlen, "nvme device '%s': not an NVMe controller (the NVMe admin ioctl is refused: %s)", d->base.device,
                 strerror(e));
        return -ENODEV;
    }
    if (e == EPERM || e == EACCES) {
        snprintf(err, errlen, "nvme device '%s': NVMe admin commands need CAP_SYS_ADMIN (%s)", d->base.device, strerror(e));
        return -e;
    }
    snprintf(err, errlen, "nvme device '%s': Identify Controller failed: %s", d->base.device, strerror(e));
    return -e;
}

int
ptth_nvme_dev_open(const char *device, bool verify, ptth_nvme_chan **out, char *err, size_t errlen)
{
    *out = NULL;
    if (strlen(device) >= sizeof(((ptth_nvme_chan *)0)->device)) {
        snprintf(err, errlen, "nvme device '%s': path too long", device);
        return -ENAMETOOLONG;
    }
    int fd = open(device, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "nvme device '%s': %s", device, strerror(e));
        return -e;
    }
    dev_chan *d = calloc(1, sizeof(*d));
    if (d == NULL) {
        close(fd);
        snprintf(err, errlen, "nvme device '%s': out of memory", device);
        return -ENOMEM;
    }
    d->base.carrier = &dev_carrier;
    memcpy(d->base.device, device, strlen(device) + 1);
    d->fd = fd;
    if (verify) {
        int rc = identify(d, err, errlen);
        if (rc != 0) {
            dev_close(&d->base);
            return rc;
        }
    }
    *out = &d->base;
    return 0;
}
