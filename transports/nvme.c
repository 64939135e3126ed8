/*
 * nvme.c: the NVMe CSD transport (nvme:DEVICE:PORT[@NODE]). Being written:
 * until then every nvme: target is refused with a clear reason.
 */
#include <errno.h>
#include <stdio.h>

#include "transport.h"

static int
nvme_open(const ptth_target *t, const ptth_open_info *info, ptth_stream **out, char *err, size_t errlen)
{
    (void)info;
    (void)out;
    snprintf(err, errlen, "nvme target '%s': the NVMe transport is not available in this build yet", t->text);
    return -ENOTSUP;
}

static int
nvme_finish_open(ptth_stream *s, char *err, size_t errlen)
{
    (void)s;
    snprintf(err, errlen, "NVMe transport not available");
    return -ENOTSUP;
}

static ssize_t
nvme_read(ptth_stream *s, void *buf, size_t len)
{
    (void)s, (void)buf, (void)len;
    return -ENOTSUP;
}

static ssize_t
nvme_write(ptth_stream *s, const void *buf, size_t len)
{
    (void)s, (void)buf, (void)len;
    return -ENOTSUP;
}

static int
nvme_shutdown_write(ptth_stream *s)
{
    (void)s;
    return -ENOTSUP;
}

static void
nvme_close(ptth_stream *s)
{
    (void)s;
}

const ptth_transport ptth_transport_nvme = {
    .name = "nvme",
    .open = nvme_open,
    .finish_open = nvme_finish_open,
    .read = nvme_read,
    .write = nvme_write,
    .shutdown_write = nvme_shutdown_write,
    .close = nvme_close,
};
