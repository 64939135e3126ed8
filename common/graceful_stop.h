/*
 * graceful_stop.h: how both terminators stop on SIGINT/SIGTERM (SPEC §2: a
 * clean exit 0, tunnels ended with reason "shutdown").
 *
 * The first signal starts a drain: the program ends every tunnel (telling the
 * relay) and calls ptth_graceful_stop_drained() when that is done; the loop
 * stops then, or after drain_ms, whichever comes first. A second signal, or a
 * signal before there is anything to drain, stops the loop at once.
 *
 * The struct is owned by the caller (usually inside its app struct) and must
 * outlive the loop run; ptth_graceful_stop_dispose() stops its timer.
 */
#ifndef PTTH_GRACEFUL_STOP_H
#define PTTH_GRACEFUL_STOP_H

#include <stdbool.h>

#include "loop.h"

typedef struct ptth_graceful_stop {
    ptth_loop *loop;
    long long drain_ms;
    bool draining;
    ptth_timer timer;
} ptth_graceful_stop;

void ptth_graceful_stop_init(ptth_graceful_stop *g, ptth_loop *loop, long long drain_ms);

/* Called on a stop signal. Returns true when the caller must start draining
 * now (and call ptth_graceful_stop_drained(g) when done); false when the loop
 * was stopped at once (already draining, or can_drain is false). */
bool ptth_graceful_stop_begin(ptth_graceful_stop *g, bool can_drain);

/* The drain is over: stops the loop. A void * so that it fits the terminators'
 * completion callbacks (void (*)(void *data)) with g as data. */
void ptth_graceful_stop_drained(void *g);

void ptth_graceful_stop_dispose(ptth_graceful_stop *g);

#endif
