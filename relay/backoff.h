/*
 * backoff.h: how long the relay stops accepting after an accept failed for
 * want of descriptors (EMFILE, ENFILE) or kernel memory (ENOBUFS, ENOMEM).
 *
 * Retrying at once cannot help: the connection stays in the listen queue, the
 * listener stays readable and the loop would spin at 100 % of a core (h2o's
 * evloop is level-triggered). So the listeners pause: min_ms after the first
 * failure, doubling for each failure that comes soon after the previous
 * pause (within max_ms of its end), up to max_ms; a failure after a quiet
 * spell of more than max_ms starts again from min_ms. Each pause is one log
 * line, so the log gets at most one line per interval. Pure logic: the
 * caller passes the time.
 */
#ifndef PTTH_RELAY_BACKOFF_H
#define PTTH_RELAY_BACKOFF_H

#include <stdint.h>

#define PTTH_BACKOFF_MIN_MS 100
#define PTTH_BACKOFF_MAX_MS 1000

typedef struct ptth_backoff {
    long long min_ms, max_ms;
    long long pause_ms;     /* the last pause; 0 before the first */
    long long paused_at_ms; /* when it started */
    uint64_t pauses;        /* pauses so far */
} ptth_backoff;

/* min_ms >= 1, max_ms >= min_ms. */
void ptth_backoff_init(ptth_backoff *b, long long min_ms, long long max_ms);

/* An accept failed at now_ms: returns how long to pause (ms). */
long long ptth_backoff_next(ptth_backoff *b, long long now_ms);

#endif
