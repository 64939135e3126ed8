/*
 * loop.h: the one event loop of a terminator (ptth_server, ptth_proxy).
 *
 * An epoll loop with three kinds of sources:
 *   - watches: a file descriptor and the events (EPOLLIN/EPOLLOUT) wanted.
 *     Level-triggered: a watch keeps firing while the condition holds, so a
 *     callback may do one bounded piece of work and return. A descriptor that
 *     epoll refuses (a regular file on stdin) is treated as always ready.
 *   - timers: one-shot, millisecond resolution on the monotonic clock.
 *   - deferred calls: run once after the current batch of events, before the
 *     loop sleeps again. Used to leave a library callback (libcurl's write
 *     callback may not call back into libcurl) and to free objects safely.
 *
 * Signals arrive through a signalfd as ordinary events (SIGINT/SIGTERM).
 *
 * Ownership: watches, timers and deferred calls are structs embedded in the
 * caller's objects; the loop only links them. Stopping one that is not active
 * is a no-op, and once stopped the loop never touches it again, even for
 * events already fetched in the current batch, so the owner may free it right
 * after the stop call.
 *
 * Single-threaded: every call must come from the loop's thread.
 */
#ifndef PTTH_LOOP_H
#define PTTH_LOOP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

typedef struct ptth_loop ptth_loop;
typedef struct ptth_watch ptth_watch;
typedef struct ptth_timer ptth_timer;
typedef struct ptth_defer ptth_defer;

typedef void (*ptth_watch_cb)(ptth_watch *w, uint32_t events);
typedef void (*ptth_timer_cb)(ptth_timer *t);
typedef void (*ptth_defer_cb)(ptth_defer *d);

struct ptth_watch {
    int fd;
    uint32_t events; /* wanted: EPOLLIN | EPOLLOUT; EPOLLERR/EPOLLHUP are always reported */
    ptth_watch_cb cb;
    void *data; /* the owner's, untouched by the loop */
    /* private */
    ptth_loop *loop;
    bool active;
    bool always_ready; /* epoll refused the fd (EPERM): reported ready every round */
    bool registered;   /* in the epoll set (only while events != 0) */
    ptth_watch *ready_next, *ready_prev;
};

struct ptth_timer {
    ptth_timer_cb cb;
    void *data;
    /* private: a node of the loop's pairing heap (see loop.c) */
    long long due_ms;
    unsigned long long seq; /* arming order, breaks ties in due_ms */
    bool active;
    ptth_timer *child; /* first child */
    ptth_timer *next;  /* next sibling */
    ptth_timer *prev;  /* previous sibling, or the parent of a first child; NULL for the root */
};

struct ptth_defer {
    ptth_defer_cb cb;
    void *data;
    /* private */
    bool active;
    ptth_defer *next;
};

/* NULL on failure with errno set. */
ptth_loop *ptth_loop_new(void);
/* Frees the loop itself; the owner stops its watches and timers first. */
void ptth_loop_free(ptth_loop *loop);

/* Runs until ptth_loop_stop(). 0, or a negative errno when epoll failed. */
int ptth_loop_run(ptth_loop *loop);
/* Makes ptth_loop_run() return after the current round. */
void ptth_loop_stop(ptth_loop *loop);

/* Starts watching fd for events (fills w->fd, w->events, w->cb, w->data).
 * 0 or a negative errno. */
int ptth_watch_start(ptth_loop *loop, ptth_watch *w, int fd, uint32_t events, ptth_watch_cb cb, void *data);
/* Changes the wanted events of an active watch (a no-op when unchanged). */
int ptth_watch_set(ptth_watch *w, uint32_t events);
/* Stops an active watch (see the ownership note above). */
void ptth_watch_stop(ptth_watch *w);

/* Timers are one-shot: the loop stops a timer just before calling its
 * callback, which may then start it again or start and stop any other timer.
 *
 * Order: the timers due when a round's timer phase begins fire in order of
 * due time; those due in the same millisecond fire in the order they were
 * (last) started. A timer started while the timer phase runs (by a timer
 * callback) fires in a later round at the earliest, even with delay 0, so a
 * timer that re-arms itself cannot keep the loop from polling. A timer stopped
 * or restarted by a callback before its turn does not fire in that round.
 * After ptth_loop_stop() no further timer callback runs.
 *
 * Cost: start O(1), stop and firing O(log n) amortized over the n active
 * timers; no memory is allocated, so starting a timer cannot fail. */

/* (Re)arms t to fire once after delay_ms (0 or less: at the next timer phase,
 * which is a later round when called from a timer callback). */
void ptth_timer_start(ptth_loop *loop, ptth_timer *t, long long delay_ms, ptth_timer_cb cb, void *data);
/* Disarms t; a no-op when it is not active (see the ownership note above). */
void ptth_timer_stop(ptth_loop *loop, ptth_timer *t);
static inline bool
ptth_timer_active(const ptth_timer *t)
{
    return t->active;
}

/* Queues d to run once after the current batch; a no-op when already queued. */
void ptth_defer_call(ptth_loop *loop, ptth_defer *d, ptth_defer_cb cb, void *data);
void ptth_defer_cancel(ptth_loop *loop, ptth_defer *d);

/* Blocks SIGINT, SIGTERM and SIGHUP, ignores SIGPIPE, and reports the
 * blocked ones through on_signal(signo, data) from the loop. 0 or -errno. */
int ptth_loop_catch_signals(ptth_loop *loop, void (*on_signal)(int signo, void *data), void *data);

/* The loop's clock: monotonic milliseconds, read once per round. */
long long ptth_loop_now(ptth_loop *loop);

#endif
