/*
 * cc_missing.c: stands in for the comm-channel transport while transports/cc/
 * provides no sources, so that libptth_transports always links. Every cc:
 * target is refused with a clear reason.
 */
#include <errno.h>
#include <stdio.h>

#include "transport.h"

static int
cc_open(const ptth_target *t, const ptth_open_info *info, ptth_stream **out, char *err, size_t errlen)
{
    (void)info;
    (void)out;
    snprintf(err, errlen, "cc target '%s': comm channel transport not built", t->text);
    return -ENOTSUP;
}

static int
cc_finish_open(ptth_stream *s, char *err, size_t errlen)
{
    (void)s;
    snprintf(err, errlen, "comm channel transport not built");
    return -ENOTSUP;
}

static ssize_t
cc_read(ptth_stream *s, void *buf, size_t len)
{
    (void)s, (void)buf, (void)len;
    return -ENOTSUP;
}

static ssize_t
cc_write(ptth_stream *s, const void *buf, size_t len)
{
    (void)s, (void)buf, (void)len;
    return -ENOTSUP;
}

static int
cc_shutdown_write(ptth_stream *s)
{
    (void)s;
    return -ENOTSUP;
}

static void
cc_close(ptth_stream *s)
{
    (void)s;
}

const ptth_transport ptth_transport_cc = {
    .name = "cc",
    .open = cc_open,
    .finish_open = cc_finish_open,
    .read = cc_read,
    .write = cc_write,
    .shutdown_write = cc_shutdown_write,
    .close = cc_close,
};
