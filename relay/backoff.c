/*
 * backoff.c: see backoff.h.
 */
#include "backoff.h"

void
ptth_backoff_init(ptth_backoff *b, long long min_ms, long long max_ms)
{
    b->min_ms = min_ms < 1 ? 1 : min_ms;
    b->max_ms = max_ms < b->min_ms ? b->min_ms : max_ms;
    b->pause_ms = 0;
    b->paused_at_ms = 0;
    b->pauses = 0;
}

long long
ptth_backoff_next(ptth_backoff *b, long long now_ms)
{
    long long next = b->min_ms;
    if (b->pause_ms != 0 && now_ms - (b->paused_at_ms + b->pause_ms) <= b->max_ms) {
        next = b->pause_ms * 2;
        if (next > b->max_ms)
            next = b->max_ms;
    }
    b->pause_ms = next;
    b->paused_at_ms = now_ms;
    b->pauses++;
    return next;
}
