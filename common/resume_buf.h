/*
 * resume_buf.h: the resume buffer of one direction of a resumable tunnel
 * (docs/protocol.md "Resumable tunnels"): the DATA bytes a terminator sent
 * that the peer has not acknowledged end to end yet, kept so that they can
 * be written again on a new leg after a resume.
 *
 * Positions are u64 and count DATA payload bytes from 0 (the tunnel's FIN
 * is one more position; that one is the caller's: the buffer holds DATA
 * bytes only). The buffer holds positions [acked, sent): append() adds at
 * `sent`, ack() drops below a position, peek() reads from any position in
 * between, for the replay.
 *
 * Memory: bytes live in pieces taken from process-wide free lists as they
 * are needed and given back as soon as they are acknowledged, so an idle or
 * fully acknowledged tunnel holds no piece (thousands of tunnels exist at
 * once: UDP sessions). The first 64 KiB held are in small pieces
 * (PTTH_RESUME_PIECE_SMALL: a few unacknowledged bytes cost 4 KiB), the
 * rest in large ones (PTTH_RESUME_PIECE); a caller's own buffer can be
 * kept as a piece instead of a copy (ptth_resume_buf_adopt: the bridge's
 * large reads, so that the hot path copies nothing). At most `capacity` bytes are
 * held (plus, for the whole process, the spare pieces the free lists keep:
 * PTTH_RESUME_POOL_KEEP_SMALL small and PTTH_RESUME_POOL_KEEP large). "Full" means room() is 0: the caller stops reading its local
 * end until an ACK makes room.
 *
 * Not thread-safe (the loop's thread only). Every function is O(pieces
 * held) at most (16 small ones and capacity / 64 KiB large ones).
 */
#ifndef PTTH_RESUME_BUF_H
#define PTTH_RESUME_BUF_H

#include <stddef.h>
#include <stdint.h>

#define PTTH_RESUME_PIECE 65536
#define PTTH_RESUME_PIECE_SMALL 4096
#define PTTH_RESUME_POOL_KEEP 64
#define PTTH_RESUME_POOL_KEEP_SMALL 256

struct ptth_resume_piece;

typedef struct ptth_resume_buf {
    size_t capacity;
    uint64_t acked; /* position of the first byte held */
    uint64_t sent;  /* position after the last byte held */
    struct ptth_resume_piece *head, *tail;
    size_t head_off; /* where position `acked` is in head */
    size_t tail_len; /* bytes used in tail */
} ptth_resume_buf;

/* An empty buffer for at most capacity bytes, positions from 0. Allocates
 * nothing. */
void ptth_resume_buf_init(ptth_resume_buf *rb, size_t capacity);

/* Bytes that can be appended now: capacity minus what is held. */
size_t ptth_resume_buf_room(const ptth_resume_buf *rb);

/* Bytes held (sent - acked). */
size_t ptth_resume_buf_held(const ptth_resume_buf *rb);

/* Bytes of the pieces held (what the buffer costs now, without overhead). */
size_t ptth_resume_buf_footprint(const ptth_resume_buf *rb);

/* Appends len bytes at position `sent`. 0; -ENOBUFS when len > room()
 * (nothing appended); -ENOMEM (nothing appended). */
int ptth_resume_buf_append(ptth_resume_buf *rb, const void *p, size_t len);

/* Appends the len bytes at p without a copy: they live in the caller's
 * buffer buf (size bytes, p inside it), which the resume buffer keeps, as
 * one piece, until its last byte is acknowledged (or the buffer is
 * cleared), then gives to release(buf, size). Until then the caller may
 * read buf (write its bytes to the leg) but not change or reuse it. For
 * large reads, so that the hot path copies nothing; held memory is then up
 * to size per len (the caller bounds that ratio). 0; -ENOBUFS when len >
 * room() or -ENOMEM: nothing appended, buf stays the caller's. */
int ptth_resume_buf_adopt(ptth_resume_buf *rb, const uint8_t *p, size_t len, void *buf, size_t size,
                          void (*release)(void *buf, size_t size));

/* The peer acknowledged everything below pos: those bytes are dropped.
 * 0; -ERANGE when pos < acked (an ACK going back) or pos > sent (an ACK of
 * bytes never sent), and nothing changes. */
int ptth_resume_buf_ack(ptth_resume_buf *rb, uint64_t pos);

/* The held bytes from position pos on: *p points at them, the return value
 * says how many follow there contiguously (0 when pos == sent). Call again
 * with pos + that for the rest. -ERANGE when pos is outside [acked, sent].
 * The pointer is valid until the next append or ack. */
long ptth_resume_buf_peek(const ptth_resume_buf *rb, uint64_t pos, const uint8_t **p);

/* Drops every byte as if acknowledged (acked = sent) and gives the pieces
 * back: the end of a tunnel. */
void ptth_resume_buf_clear(ptth_resume_buf *rb);

/* --resume-buffer of the terminators: 0 (do not ask for resumable tunnels)
 * or PTTH_RESUME_BUFFER_MIN to PTTH_RESUME_BUFFER_MAX bytes, decimal. An
 * option check (options.h): 0, or -1 with the reason in err. */
#define PTTH_RESUME_BUFFER_DEFAULT "4194304" /* SPEC §9.3 */
#define PTTH_RESUME_BUFFER_MIN (512u * 1024)
#define PTTH_RESUME_BUFFER_MAX (1024u * 1024 * 1024)
int ptth_resume_buffer_check(const char *value, char *err, size_t errlen);

/* Frees the process-wide spare pieces (at exit, for leak checks). */
void ptth_resume_buf_release_pool(void);

#endif
