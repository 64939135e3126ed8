/*
 * h2obuf.c: see h2obuf.h.
 */
#include "h2obuf.h"

/* Input buffers of HTTP/2 connections. At most two free ones are kept for
 * reuse (h2o's own prototype keeps 16 of 8 KiB). */
static __thread h2o_buffer_prototype_t bulk_input = {.allocator = {.max = 2}, ._initial_buf = {.capacity = PTTH_H2OBUF_BULK_INPUT}};

void
ptth_h2obuf_on_request(h2o_req_t *req)
{
    if (req->version < 0x200 || req->conn->callbacks->get_socket == NULL)
        return;
    h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
    if (sock == NULL || sock->input->_prototype == &bulk_input || sock->input == &bulk_input._initial_buf)
        return;
    /* large reads of an HTTP/2 connection (many DATA frames in one go) go
     * into one buffer instead of one doubled from 8 KiB at every read event;
     * a buffer already allocated keeps its size and is freed (not recycled)
     * when h2o is done with it */
    bulk_input.mmap_settings = &h2o_socket_buffer_mmap_settings;
    h2o_buffer_set_prototype(&sock->input, &bulk_input);
}

