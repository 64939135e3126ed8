/*
 * h2obuf.c: see h2obuf.h.
 */
#include "h2obuf.h"

#include <stdlib.h>

#if H2O_VERSION_MAJOR == 2 && H2O_VERSION_MINOR == 2
#include <h2o/http2.h>
#include <h2o/http2_internal.h>
#define HAVE_H2_STREAM 1 /* h2o 2.2.x: an HTTP/2 request is the req member of an h2o_http2_stream_t */
#else
#define HAVE_H2_STREAM 0
#endif

/* Input buffers of HTTP/2 connections. At most two free ones are kept for
 * reuse (h2o's own prototype keeps 16). */
static __thread h2o_buffer_prototype_t bulk_input = {.allocator = {.max = 2}, ._initial_buf = {.capacity = PTTH_H2OBUF_BULK_INPUT}};

/* Input buffers of the other connections: h2o's own start (8 KiB). */
static __thread h2o_buffer_prototype_t small_input = {.allocator = {.max = 16},
                                                      ._initial_buf = {.capacity = H2O_SOCKET_INITIAL_INPUT_BUFFER_SIZE * 2}};

void
ptth_h2obuf_init(size_t max_chunk)
{
    h2o_buffer_prototype_t *p = &h2o_socket_buffer_prototype;
    size_t start = max_chunk < PTTH_H2OBUF_BODY_START_MAX ? max_chunk : PTTH_H2OBUF_BODY_START_MAX;
    if (start < small_input._initial_buf.capacity)
        start = small_input._initial_buf.capacity;
    bulk_input.mmap_settings = p->mmap_settings;
    small_input.mmap_settings = p->mmap_settings;
    if (!HAVE_H2_STREAM)
        start = small_input._initial_buf.capacity; /* bodies could not be freed early: keep h2o's start */
    if (p->_initial_buf.capacity == start)
        return;
    /* h2o hands out a free buffer of the prototype without checking its
     * size: the free ones (of the old size) must go before the size changes */
    while (p->allocator.cnt != 0)
        free(h2o_mem_alloc_recycle(&p->allocator, p->_initial_buf.capacity));
    p->_initial_buf.capacity = start;
    /* each buffer kept free is now a chunk's size (h2o keeps 16 by default) */
    p->allocator.max = 4;
}

void
ptth_h2obuf_on_accept(h2o_socket_t *sock)
{
    h2o_buffer_set_prototype(&sock->input, &small_input);
}

/* Frees an HTTP/2 request's body buffer that the relay will not read. */
static void
drop_body(h2o_req_t *req)
{
    h2o_buffer_t *body = ptth_h2obuf_take_body(req);
    if (body != NULL)
        h2o_buffer_dispose(&body);
}

void
ptth_h2obuf_on_request(h2o_req_t *req, bool uses_body)
{
    if (req->version < 0x200)
        return;
    if (!uses_body)
        drop_body(req);
    h2o_socket_t *sock = req->conn->callbacks->get_socket != NULL ? req->conn->callbacks->get_socket(req->conn) : NULL;
    if (sock == NULL || sock->input->_prototype == &bulk_input || sock->input == &bulk_input._initial_buf)
        return;
    /* large reads of an HTTP/2 connection (many DATA frames in one go) go
     * into one buffer instead of one doubled from 8 KiB at every read event;
     * a buffer already allocated keeps its size and is freed (not recycled)
     * when h2o is done with it */
    h2o_buffer_set_prototype(&sock->input, &bulk_input);
}

h2o_buffer_t *
ptth_h2obuf_take_body(h2o_req_t *req)
{
#if HAVE_H2_STREAM
    if (req == NULL || req->version < 0x200 || req->entity.base == NULL)
        return NULL;
    h2o_http2_stream_t *stream = H2O_STRUCT_FROM_MEMBER(h2o_http2_stream_t, req, req);
    h2o_buffer_t *body = stream->_req_body;
    /* h2o set entity to exactly this buffer's bytes once the body was
     * complete; anything else (a trailer, another layout) is left alone */
    if (body == NULL || body->bytes != req->entity.base || body->size != req->entity.len)
        return NULL;
    /* h2o 2.2.5 reads _req_body only while the body arrives and disposes it
     * when the stream closes if it is not NULL */
    stream->_req_body = NULL;
    req->entity = h2o_iovec_init(NULL, 0);
    return body;
#else
    (void)req;
    return NULL;
#endif
}
