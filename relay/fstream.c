/*
 * fstream.c: see fstream.h.
 */
#include "fstream.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "reply.h"

/* Makes room for len more bytes in b. A buffer starts at the size of what it
 * first holds, so that an idle stream (and a stream carrying one chunk at a
 * time) keeps no slack; further appends of a batch double it. */
static int
buf_reserve(ptth_fstream_buf *b, size_t len)
{
    if (b->capacity - b->size >= len)
        return 0;
    size_t cap = b->capacity == 0 ? (len < 256 ? 256 : len) : b->capacity * 2;
    if (cap - b->size < len)
        cap = b->size + len;
    uint8_t *n = realloc(b->bytes, cap);
    if (n == NULL)
        return -ENOMEM;
    b->bytes = n;
    b->capacity = cap;
    return 0;
}

/* Frees b's bytes and disposes the payload buffers it owns. */
static void
buf_free(ptth_fstream_buf *b)
{
    free(b->bytes);
    if (b->owned != NULL) {
        for (unsigned i = 0; i < b->owned->n; i++)
            h2o_buffer_dispose(&b->owned->buf[i]);
        free(b->owned);
    }
    *b = (ptth_fstream_buf){.bytes = NULL};
}

static unsigned
buf_nowned(const ptth_fstream_buf *b)
{
    return b->owned != NULL ? b->owned->n : 0;
}

/* The iovecs of b in order: its bytes, cut where the owned payloads go.
 * Returns how many (at most 2 * PTTH_FSTREAM_MAX_OWNED + 1). */
static size_t
buf_iovecs(const ptth_fstream_buf *b, h2o_iovec_t *vecs, size_t *total)
{
    size_t n = 0, from = 0;
    *total = 0;
    for (unsigned i = 0; i < buf_nowned(b); i++) {
        const h2o_buffer_t *o = b->owned->buf[i];
        if (b->owned->at[i] > from)
            vecs[n++] = h2o_iovec_init(b->bytes + from, b->owned->at[i] - from);
        from = b->owned->at[i];
        vecs[n++] = h2o_iovec_init(o->bytes, o->size);
        *total += o->size;
    }
    if (b->size > from)
        vecs[n++] = h2o_iovec_init(b->bytes + from, b->size - from);
    *total += b->size;
    return n;
}

/* Detaches the owner and tells it the response broke (once). */
static void
notify_broken(ptth_fstream *s)
{
    void *owner = s->owner;
    s->owner = NULL;
    if (owner != NULL && s->cb->on_broken != NULL)
        s->cb->on_broken(s, owner);
}

static void
rearm_heartbeat(ptth_fstream *s)
{
    h2o_timeout_unlink(&s->heartbeat_entry);
    if (s->req != NULL && !s->finishing && s->heartbeat != NULL)
        h2o_timeout_link(s->loop, s->heartbeat, &s->heartbeat_entry);
}

/* Gives pending to h2o: swaps it into inflight (which h2o then holds until
 * proceed) and sends it, with the final flag when finishing. */
static void
do_send(ptth_fstream *s)
{
    if (s->sending || s->req == NULL)
        return;
    bool final = s->finishing;
    if (s->pending.size == 0 && buf_nowned(&s->pending) == 0 && !final)
        return;

    s->inflight = s->pending; /* inflight is empty: freed at proceed */
    s->pending = (ptth_fstream_buf){.bytes = NULL};

    h2o_iovec_t vecs[2 * PTTH_FSTREAM_MAX_OWNED + 1];
    size_t total;
    size_t nvecs = buf_iovecs(&s->inflight, vecs, &total);
    h2o_req_t *req = s->req;
    s->bytes_written += total;
    if (final) {
        s->req = NULL; /* h2o drops the generator with a final send: no proceed, no stop */
        h2o_timeout_unlink(&s->heartbeat_entry);
        ptth_peer_watch_stop(&s->peer);
    } else {
        s->sending = true;
        rearm_heartbeat(s);
    }
    /* h2o copies the iovec array (not the bytes it points to) */
    h2o_send(req, nvecs != 0 ? vecs : NULL, nvecs,
             !final ? H2O_SEND_STATE_IN_PROGRESS : s->aborting ? H2O_SEND_STATE_ERROR : H2O_SEND_STATE_FINAL);
}

static void
on_proceed(h2o_generator_t *generator, h2o_req_t *req)
{
    (void)req;
    ptth_fstream *s = (ptth_fstream *)generator;
    s->sending = false;
    buf_free(&s->inflight); /* h2o is done with it (and with the owned payloads); idle streams hold no buffer */
    if (s->pending.size != 0 || s->finishing) {
        do_send(s);
        return;
    }
    if (s->owner != NULL && s->cb->on_writable != NULL)
        s->cb->on_writable(s, s->owner);
}

/* h2o gives up on the response (connection closed, stream reset). */
static void
on_stop(h2o_generator_t *generator, h2o_req_t *req)
{
    (void)req;
    ptth_fstream *s = (ptth_fstream *)generator;
    s->req = NULL;
    s->sending = false;
    h2o_timeout_unlink(&s->heartbeat_entry);
    ptth_peer_watch_stop(&s->peer);
    notify_broken(s);
}

static void
on_dispose(void *p)
{
    ptth_fstream *s = p;
    s->req = NULL;
    h2o_timeout_unlink(&s->heartbeat_entry);
    ptth_peer_watch_stop(&s->peer);
    notify_broken(s);
    buf_free(&s->pending);
    buf_free(&s->inflight);
    if (s->live_counter != NULL)
        (*s->live_counter)--;
}

static void
on_heartbeat(h2o_timeout_entry_t *entry)
{
    ptth_fstream *s = H2O_STRUCT_FROM_MEMBER(ptth_fstream, heartbeat_entry, entry);
    if (s->req == NULL || s->finishing)
        return;
    if (ptth_req_peer_closed(s->req)) {
        /* an HTTP/1 peer that went away: tell the owner now, then let h2o
         * find out with the final write */
        notify_broken(s);
        ptth_fstream_finish(s);
        return;
    }
    if (s->sending) {
        rearm_heartbeat(s); /* the peer is slow to read; a PING would only queue up */
        return;
    }
    if (ptth_fstream_write(s, PTTH_FRAME_PING, NULL, 0) == 0)
        ptth_fstream_flush(s);
}

/* The HTTP/1 peer closed its connection: the owner learns it now, and the
 * final write lets h2o find out and close the connection. */
static void
on_peer_gone(ptth_peer_watch *w)
{
    ptth_fstream *s = H2O_STRUCT_FROM_MEMBER(ptth_fstream, peer, w);
    if (s->req == NULL)
        return;
    notify_broken(s);
    ptth_fstream_finish(s);
}

ptth_fstream *
ptth_fstream_open(h2o_req_t *req, h2o_loop_t *loop, h2o_timeout_t *heartbeat, const ptth_fstream_callbacks *cb, void *owner,
                 size_t *live_counter, ptth_peerset *peers)
{
    ptth_fstream *s = h2o_mem_alloc_shared(&req->pool, sizeof(*s), on_dispose);
    memset(s, 0, sizeof(*s));
    s->super.proceed = on_proceed;
    s->super.stop = on_stop;
    s->req = req;
    s->cb = cb;
    s->owner = owner;
    s->loop = loop;
    s->heartbeat = heartbeat;
    s->heartbeat_entry.cb = on_heartbeat;
    s->live_counter = live_counter;
    if (live_counter != NULL)
        (*live_counter)++;

    req->res.status = 200;
    req->res.reason = "OK";
    req->res.content_length = SIZE_MAX;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/octet-stream"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-accel-buffering"), 0, NULL, H2O_STRLIT("no"));
    h2o_start_response(req, &s->super);
    ptth_peer_watch_start(peers, &s->peer, req, on_peer_gone);

    if (ptth_fstream_write(s, PTTH_FRAME_PING, NULL, 0) == 0)
        ptth_fstream_flush(s);
    return s;
}

int
ptth_fstream_write(ptth_fstream *s, uint8_t type, const void *payload, size_t len)
{
    if (s->req == NULL || s->finishing)
        return -EPIPE;
    if (len > PTTH_FRAME_MAX_PAYLOAD)
        return -EINVAL;
    /* header and payload in one reservation: a chunk never reallocs midway */
    if (buf_reserve(&s->pending, PTTH_FRAME_HEADER_LEN + len) != 0)
        return -ENOMEM;
    ptth_frame_header(s->pending.bytes + s->pending.size, type, (uint32_t)len);
    s->pending.size += PTTH_FRAME_HEADER_LEN;
    if (len != 0)
        memcpy(s->pending.bytes + s->pending.size, payload, len);
    s->pending.size += len;
    return 0;
}

int
ptth_fstream_write_owned(ptth_fstream *s, uint8_t type, h2o_buffer_t **body)
{
    h2o_buffer_t *b = *body;
    *body = NULL;
    int err;
    if (s->req == NULL || s->finishing) {
        err = -EPIPE;
    } else if (b->size > PTTH_FRAME_MAX_PAYLOAD) {
        err = -EINVAL;
    } else if (b->size < PTTH_FSTREAM_COPY_BELOW || buf_nowned(&s->pending) == PTTH_FSTREAM_MAX_OWNED ||
               s->pending.size > UINT32_MAX - PTTH_FRAME_HEADER_LEN) {
        err = ptth_fstream_write(s, type, b->bytes, b->size); /* no slot left: copy */
    } else if (s->pending.owned == NULL && (s->pending.owned = calloc(1, sizeof(*s->pending.owned))) == NULL) {
        err = -ENOMEM;
    } else if ((err = ptth_fstream_write(s, type, NULL, 0)) == 0) {
        /* the header just written carries b's length */
        ptth_fstream_owned *o = s->pending.owned;
        ptth_frame_header(s->pending.bytes + s->pending.size - PTTH_FRAME_HEADER_LEN, type, (uint32_t)b->size);
        o->buf[o->n] = b;
        o->at[o->n] = (uint32_t)s->pending.size;
        o->n++;
        return 0;
    }
    h2o_buffer_dispose(&b);
    return err;
}

int
ptth_fstream_write_raw(ptth_fstream *s, const void *bytes, size_t len)
{
    if (s->req == NULL || s->finishing)
        return -EPIPE;
    if (buf_reserve(&s->pending, len) != 0)
        return -ENOMEM;
    memcpy(s->pending.bytes + s->pending.size, bytes, len);
    s->pending.size += len;
    return 0;
}

void
ptth_fstream_abort(ptth_fstream *s)
{
    s->owner = NULL;
    if (s->req == NULL || s->finishing)
        return;
    buf_free(&s->pending);
    s->finishing = s->aborting = true;
    h2o_timeout_unlink(&s->heartbeat_entry);
    do_send(s);
}

void
ptth_fstream_flush(ptth_fstream *s)
{
    do_send(s);
}

bool
ptth_fstream_idle(const ptth_fstream *s)
{
    return s->req != NULL && !s->sending && s->pending.size == 0 && buf_nowned(&s->pending) == 0;
}

void
ptth_fstream_finish(ptth_fstream *s)
{
    s->owner = NULL;
    if (s->req == NULL || s->finishing)
        return;
    s->finishing = true;
    h2o_timeout_unlink(&s->heartbeat_entry);
    do_send(s);
}
