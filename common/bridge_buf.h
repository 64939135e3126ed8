/*
 * bridge_buf.h: the chunk-sized buffers of the bridges (bridge.h), from one
 * process-wide free list, so that the hot path does not allocate: every
 * bridge of a process uses the same max_chunk, and a buffer given back is
 * the next one taken.
 *
 * The bottom of the bridge's layers: bridge.c (chunks, local reads),
 * bridge_leg.c (frames for the leg) take and give back buffers here; it
 * calls nothing of theirs. Single-threaded, like the loop.
 */
#ifndef PTTH_BRIDGE_BUF_H
#define PTTH_BRIDGE_BUF_H

#include <stddef.h>

/* A buffer of size bytes (the caller's until put back), NULL when out of
 * memory. */
void *ptth_bridge_buf_get(size_t size);
/* Gives buf (of size bytes, from ptth_bridge_buf_get; NULL: a no-op) back:
 * kept for the next get when the list has room, else freed. A size other
 * than the list's empties the list first. */
void ptth_bridge_buf_put(void *buf, size_t size);
/* Frees every buffer the list keeps. */
void ptth_bridge_buf_release(void);

#endif
