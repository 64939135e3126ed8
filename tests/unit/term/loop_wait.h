/*
 * loop_wait.h: runs a test's ptth_loop until a condition holds, bounded by
 * a guard timer, for the term suites that drive real sockets
 * (h2_client_harness.c, leg_harness.c).
 *
 * The condition is checked before the loop runs, every 2 ms from a timer,
 * and whenever the test calls loop_wait_poke() (from a callback that may
 * have made it true), which stops the loop once it holds.
 */
#ifndef PTTH_TEST_LOOP_WAIT_H
#define PTTH_TEST_LOOP_WAIT_H

#include <stdbool.h>

#include "loop.h"

/* Runs loop until cond() holds: true, or false when ms passed first. The
 * loop must not fail (ck_assert). */
bool loop_wait(ptth_loop *loop, bool (*cond)(void), long ms);
/* Stops the loop of the running loop_wait() when its condition holds; a
 * no-op outside one. */
void loop_wait_poke(void);

#endif
