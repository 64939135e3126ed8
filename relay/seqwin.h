/*
 * seqwin.h: the reorder window of one tunnel direction (SPEC §4 chunks).
 *
 * A sender numbers its chunks 0, 1, 2, ... and may have up to
 * PTTH_SEQWIN_SIZE of them in flight. The window holds the chunks that arrived
 * but are not yet delivered, one slot per sequence number in
 * [next, next + PTTH_SEQWIN_SIZE). Chunks are delivered strictly in order:
 * only the chunk numbered `next` can be taken, which advances `next`.
 *
 * The window stores opaque pointers; it never owns or frees them. Pure logic,
 * no I/O, so that it is unit-tested on its own.
 */
#ifndef PTTH_RELAY_SEQWIN_H
#define PTTH_RELAY_SEQWIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PTTH_SEQWIN_SIZE 8

typedef struct ptth_seqwin {
    uint64_t next; /* sequence number of the next chunk to deliver */
    void *slot[PTTH_SEQWIN_SIZE];
    size_t held; /* occupied slots */
} ptth_seqwin;

typedef enum ptth_seqwin_verdict {
    PTTH_SEQWIN_STORED = 0, /* placed in its slot (waiting for its turn, or deliverable now) */
    PTTH_SEQWIN_DELIVERED,  /* seq < next: already delivered, nothing stored */
    PTTH_SEQWIN_TOO_FAR,    /* seq >= next + PTTH_SEQWIN_SIZE: nothing stored */
} ptth_seqwin_verdict;

void ptth_seqwin_init(ptth_seqwin *w);

/* Offers item for sequence number seq. When the slot already held an item
 * (a retry arrived while the first copy still waits), the new item takes the
 * slot and the old one is returned in *replaced (else *replaced = NULL). */
ptth_seqwin_verdict ptth_seqwin_put(ptth_seqwin *w, uint64_t seq, void *item, void **replaced);

/* The item numbered `next`, or NULL when it has not arrived. */
void *ptth_seqwin_peek(const ptth_seqwin *w);

/* Removes and returns the item numbered `next` (NULL when absent: then
 * nothing changes) and advances `next` by one. */
void *ptth_seqwin_take(ptth_seqwin *w);

/* Removes item from whatever slot holds it (its request went away before its
 * turn). Returns true when it was found. */
bool ptth_seqwin_remove(ptth_seqwin *w, const void *item);

/* The sequence number of the next chunk to deliver. */
uint64_t ptth_seqwin_next(const ptth_seqwin *w);

/* true when an item numbered above seq is held (a FIN at seq must not leave
 * data behind it). */
bool ptth_seqwin_holds_after(const ptth_seqwin *w, uint64_t seq);

/* Removes and returns any one held item, NULL when empty: for draining. */
void *ptth_seqwin_pop_any(ptth_seqwin *w);

/* Parses a PTTH-Seq value: 1 to 20 decimal digits, no sign, no spaces, at
 * most UINT64_MAX - PTTH_SEQWIN_SIZE. 0 or -EINVAL. */
int ptth_seqwin_parse_seq(const char *text, size_t len, uint64_t *out);

#endif
