/* bridge_buf.c: the bridges' pooled chunk buffers; see bridge_buf.h. */
#include "bridge_buf.h"

#include <stdlib.h>

#define POOL_KEEP 64

static struct {
    size_t size;
    size_t count;
    void *bufs[POOL_KEEP];
} pool;

void *
ptth_bridge_buf_get(size_t size)
{
    if (pool.size == size && pool.count > 0)
        return pool.bufs[--pool.count];
    return malloc(size);
}

void
ptth_bridge_buf_put(void *buf, size_t size)
{
    if (buf == NULL)
        return;
    if (pool.size != size) {
        ptth_bridge_buf_release();
        pool.size = size;
    }
    if (pool.count < POOL_KEEP)
        pool.bufs[pool.count++] = buf;
    else
        free(buf);
}

void
ptth_bridge_buf_release(void)
{
    while (pool.count > 0)
        free(pool.bufs[--pool.count]);
}
