/*
 * nvme_carrier.c: picks the carrier for an NVMe DEVICE (see nvme_carrier.h).
 */
#include "nvme_carrier.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

int
ptth_nvme_chan_open(const char *device, bool verify, ptth_nvme_chan **out, char *err, size_t errlen)
{
    struct stat st;
    *out = NULL;
    if (stat(device, &st) != 0) {
        int e = errno;
        snprintf(err, errlen, "nvme device '%s': %s", device, strerror(e));
        return -e;
    }
    if (S_ISCHR(st.st_mode))
        return ptth_nvme_dev_open(device, verify, out, err, errlen);
    if (S_ISSOCK(st.st_mode))
        return ptth_nvme_emu_open(device, out, err, errlen);
    snprintf(err, errlen, "nvme device '%s': not a character device (an NVMe controller) nor a UNIX socket (ptth_csd_emu)", device);
    return -ENODEV;
}
