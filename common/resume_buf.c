/*
 * resume_buf.c: see resume_buf.h. A singly linked list of pieces:
 * appends fill the tail, acks empty the head; a piece goes back to the
 * process-wide free list the moment its last byte is acknowledged.
 */
#include "resume_buf.h"

#include <assert.h>
#include <stdbool.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ptth_resume_piece {
    struct ptth_resume_piece *next;
    size_t cap;    /* PTTH_RESUME_PIECE_SMALL or PTTH_RESUME_PIECE; an adopted one: its length */
    size_t used;   /* bytes in it once it is not the tail any more (the tail's: tail_len) */
    uint8_t *base; /* its bytes: data[], or inside the adopted buffer */
    /* adopted (ptth_resume_buf_adopt): the caller's buffer, given back with release() */
    void *ext;
    size_t ext_size;
    void (*release)(void *buf, size_t size);
    uint8_t data[];
};

/* Two free lists, one per piece size. */
static struct pool {
    struct ptth_resume_piece *free;
    size_t count, keep;
} pools[2] = {{NULL, 0, PTTH_RESUME_POOL_KEEP_SMALL}, {NULL, 0, PTTH_RESUME_POOL_KEEP}};

static struct pool *
pool_of(size_t cap)
{
    return &pools[cap == PTTH_RESUME_PIECE ? 1 : 0];
}

static struct ptth_resume_piece *
piece_get(size_t cap)
{
    struct pool *pl = pool_of(cap);
    struct ptth_resume_piece *p = pl->free;
    if (p != NULL) {
        pl->free = p->next;
        pl->count--;
    } else {
        p = malloc(sizeof(*p) + cap);
        if (p == NULL)
            return NULL;
        p->cap = cap;
        p->base = p->data;
        p->ext = NULL;
        p->ext_size = 0;
        p->release = NULL;
    }
    p->next = NULL;
    p->used = 0;
    return p;
}

static void
piece_put(struct ptth_resume_piece *p)
{
    if (p->release != NULL) {
        p->release(p->ext, p->ext_size);
        free(p);
        return;
    }
    struct pool *pl = pool_of(p->cap);
    if (pl->count >= pl->keep) {
        free(p);
        return;
    }
    p->next = pl->free;
    pl->free = p;
    pl->count++;
}

void
ptth_resume_buf_release_pool(void)
{
    for (size_t i = 0; i < 2; i++) {
        while (pools[i].free != NULL) {
            struct ptth_resume_piece *p = pools[i].free;
            pools[i].free = p->next;
            free(p);
        }
        pools[i].count = 0;
    }
}

void
ptth_resume_buf_init(ptth_resume_buf *rb, size_t capacity)
{
    memset(rb, 0, sizeof(*rb));
    rb->capacity = capacity;
}

size_t
ptth_resume_buf_held(const ptth_resume_buf *rb)
{
    return (size_t)(rb->sent - rb->acked);
}

size_t
ptth_resume_buf_room(const ptth_resume_buf *rb)
{
    size_t held = ptth_resume_buf_held(rb);
    return held >= rb->capacity ? 0 : rb->capacity - held;
}

/* Bytes used in piece p (the tail may be partly filled; so may a piece
 * that an adopted one followed). */
static size_t
piece_len(const ptth_resume_buf *rb, const struct ptth_resume_piece *p)
{
    return p == rb->tail ? rb->tail_len : p->used;
}

/* n becomes the tail behind the one there (which keeps what it holds). */
static void
link_tail(ptth_resume_buf *rb, struct ptth_resume_piece *n, size_t n_len)
{
    n->next = NULL;
    if (rb->tail != NULL) {
        rb->tail->used = rb->tail_len;
        rb->tail->next = n;
    } else {
        rb->head = n;
        rb->head_off = 0;
    }
    rb->tail = n;
    rb->tail_len = n_len;
}

/* The size of the next piece when `held` bytes are held before it: small
 * ones first, so that a tunnel with a few unacknowledged bytes (a UDP
 * session between ACKs) holds 4 KiB, not 64; large ones after, so that a
 * full buffer is few pieces (its walks stay short). */
static size_t
next_cap(size_t held)
{
    return held < PTTH_RESUME_PIECE ? PTTH_RESUME_PIECE_SMALL : PTTH_RESUME_PIECE;
}

size_t
ptth_resume_buf_footprint(const ptth_resume_buf *rb)
{
    size_t n = 0;
    for (const struct ptth_resume_piece *p = rb->head; p != NULL; p = p->next)
        n += p->release != NULL ? p->ext_size : p->cap;
    return n;
}

int
ptth_resume_buf_append(ptth_resume_buf *rb, const void *p, size_t len)
{
    if (len > ptth_resume_buf_room(rb))
        return -ENOBUFS;
    /* take every piece first, so that a failed allocation appends nothing */
    size_t held = ptth_resume_buf_held(rb);
    size_t fits = rb->tail != NULL ? rb->tail->cap - rb->tail_len : 0;
    struct ptth_resume_piece *fresh = NULL, **link = &fresh;
    while (fits < len) {
        struct ptth_resume_piece *n = piece_get(next_cap(held + fits));
        if (n == NULL) {
            while (fresh != NULL) {
                struct ptth_resume_piece *next = fresh->next;
                piece_put(fresh);
                fresh = next;
            }
            return -ENOMEM;
        }
        fits += n->cap;
        *link = n;
        link = &n->next;
    }
    const uint8_t *src = p;
    size_t left = len;
    while (left > 0) {
        if (rb->tail == NULL || rb->tail_len == rb->tail->cap) {
            struct ptth_resume_piece *n = fresh;
            assert(n != NULL);
            fresh = n->next;
            link_tail(rb, n, 0);
        }
        size_t take = rb->tail->cap - rb->tail_len;
        if (take > left)
            take = left;
        memcpy(rb->tail->base + rb->tail_len, src, take);
        rb->tail_len += take;
        src += take;
        left -= take;
    }
    assert(fresh == NULL);
    rb->sent += len;
    return 0;
}

int
ptth_resume_buf_adopt(ptth_resume_buf *rb, const uint8_t *p, size_t len, void *buf, size_t size,
                      void (*release)(void *buf, size_t size))
{
    assert(len > 0 && release != NULL);
    assert(p >= (const uint8_t *)buf && p + len <= (const uint8_t *)buf + size);
    if (len > ptth_resume_buf_room(rb))
        return -ENOBUFS;
    struct ptth_resume_piece *n = malloc(sizeof(*n));
    if (n == NULL)
        return -ENOMEM;
    n->cap = n->used = len;
    n->base = (uint8_t *)p; /* ours to read until release(); never written */
    n->ext = buf;
    n->ext_size = size;
    n->release = release;
    /* the tail (if any) keeps what it holds; appends go to a new piece */
    link_tail(rb, n, len);
    rb->sent += len;
    return 0;
}

int
ptth_resume_buf_ack(ptth_resume_buf *rb, uint64_t pos)
{
    if (pos < rb->acked || pos > rb->sent)
        return -ERANGE;
    uint64_t drop = pos - rb->acked;
    while (drop > 0) {
        assert(rb->head != NULL);
        size_t avail = piece_len(rb, rb->head) - rb->head_off;
        size_t take = drop < avail ? (size_t)drop : avail;
        rb->head_off += take;
        drop -= take;
        if (rb->head_off == piece_len(rb, rb->head)) {
            struct ptth_resume_piece *done = rb->head;
            rb->head = done->next;
            rb->head_off = 0;
            if (rb->head == NULL) {
                rb->tail = NULL;
                rb->tail_len = 0;
            }
            piece_put(done);
        }
    }
    rb->acked = pos;
    /* an empty tail piece (everything in it acknowledged) is given back too */
    if (rb->head != NULL && rb->head == rb->tail && rb->head_off == rb->tail_len) {
        piece_put(rb->head);
        rb->head = rb->tail = NULL;
        rb->head_off = rb->tail_len = 0;
    }
    assert((rb->head == NULL) == (rb->acked == rb->sent));
    return 0;
}

long
ptth_resume_buf_peek(const ptth_resume_buf *rb, uint64_t pos, const uint8_t **p)
{
    if (pos < rb->acked || pos > rb->sent)
        return -ERANGE;
    *p = NULL;
    if (pos == rb->sent)
        return 0;
    uint64_t off = rb->head_off + (pos - rb->acked);
    const struct ptth_resume_piece *piece = rb->head;
    while (off >= piece_len(rb, piece)) {
        off -= piece_len(rb, piece);
        piece = piece->next;
        assert(piece != NULL);
    }
    *p = piece->base + off;
    return (long)(piece_len(rb, piece) - (size_t)off);
}

void
ptth_resume_buf_clear(ptth_resume_buf *rb)
{
    while (rb->head != NULL) {
        struct ptth_resume_piece *next = rb->head->next;
        piece_put(rb->head);
        rb->head = next;
    }
    rb->tail = NULL;
    rb->head_off = rb->tail_len = 0;
    rb->acked = rb->sent;
}

int
ptth_resume_buffer_check(const char *value, char *err, size_t errlen)
{
    uint64_t v = 0;
    size_t n = strlen(value);
    bool digits = n > 0 && n <= 12;
    for (size_t i = 0; digits && i < n; i++) {
        if (value[i] < '0' || value[i] > '9')
            digits = false;
        else
            v = v * 10 + (uint64_t)(value[i] - '0');
    }
    if (!digits) {
        snprintf(err, errlen, "'%s' is not a number of bytes (decimal digits only; 0 turns resumption off)", value);
        return -1;
    }
    if (v != 0 && (v < PTTH_RESUME_BUFFER_MIN || v > PTTH_RESUME_BUFFER_MAX)) {
        snprintf(err, errlen, "%s bytes is out of range: 0 (no resumption) or %u to %u", value, PTTH_RESUME_BUFFER_MIN,
                 PTTH_RESUME_BUFFER_MAX);
        return -1;
    }
    return 0;
}
