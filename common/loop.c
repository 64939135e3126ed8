/* loop.c: the terminators' epoll loop; see loop.h. */
#include "loop.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 256

struct ptth_loop {
    int epfd;
    bool stopping;
    long long now_ms;
    /* events fetched by the current epoll_wait; stopping a watch clears its
     * entries from here so that no callback runs for a stopped watch */
    struct epoll_event events[MAX_EVENTS];
    int n_events;
    int cur_event;
    ptth_timer *timers;           /* root of the pairing heap of active timers */
    unsigned long long timer_seq; /* seq of the next timer started */
    ptth_defer *defer_head, *defer_tail;
    ptth_watch *ready; /* always-ready watches (epoll refused the fd) */
    unsigned ready_changes;
    /* signals */
    int sigfd;
    ptth_watch sigwatch;
    void (*on_signal)(int, void *);
    void *signal_data;
};

static long long
monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

ptth_loop *
ptth_loop_new(void)
{
    ptth_loop *loop = calloc(1, sizeof(*loop));
    if (loop == NULL)
        return NULL;
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd < 0) {
        int e = errno;
        free(loop);
        errno = e;
        return NULL;
    }
    loop->sigfd = -1;
    loop->now_ms = monotonic_ms();
    return loop;
}

void
ptth_loop_free(ptth_loop *loop)
{
    if (loop == NULL)
        return;
    if (loop->sigfd >= 0) {
        ptth_watch_stop(&loop->sigwatch);
        close(loop->sigfd);
    }
    close(loop->epfd);
    free(loop);
}

long long
ptth_loop_now(ptth_loop *loop)
{
    return loop->now_ms;
}

void
ptth_loop_stop(ptth_loop *loop)
{
    loop->stopping = true;
}

/* ---- watches ---- */

static void
ready_link(ptth_loop *loop, ptth_watch *w)
{
    loop->ready_changes++;
    w->ready_prev = NULL;
    w->ready_next = loop->ready;
    if (loop->ready != NULL)
        loop->ready->ready_prev = w;
    loop->ready = w;
}

static void
ready_unlink(ptth_loop *loop, ptth_watch *w)
{
    loop->ready_changes++;
    if (w->ready_prev != NULL)
        w->ready_prev->ready_next = w->ready_next;
    else
        loop->ready = w->ready_next;
    if (w->ready_next != NULL)
        w->ready_next->ready_prev = w->ready_prev;
    w->ready_next = w->ready_prev = NULL;
}

/* Forgets events already fetched for w in the current batch. */
static void
clear_fetched(ptth_loop *loop, ptth_watch *w)
{
    for (int i = loop->cur_event; i < loop->n_events; i++)
        if (loop->events[i].data.ptr == w)
            loop->events[i].data.ptr = NULL;
}

int
ptth_watch_start(ptth_loop *loop, ptth_watch *w, int fd, uint32_t events, ptth_watch_cb cb, void *data)
{
    struct epoll_event ev = {.events = events, .data.ptr = w};
    w->fd = fd;
    w->events = events;
    w->cb = cb;
    w->data = data;
    w->loop = loop;
    w->always_ready = false;
    w->registered = false;
    /* probe with an add even for no events, to learn whether epoll takes the
     * fd at all; a watch that wants nothing is kept out of the set (below) */
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        if (errno != EPERM)
            return -errno;
        /* regular files and the like cannot be polled: they never block */
        w->always_ready = true;
        ready_link(loop, w);
    } else if (events == 0) {
        epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
    } else {
        w->registered = true;
    }
    w->active = true;
    return 0;
}

int
ptth_watch_set(ptth_watch *w, uint32_t events)
{
    if (!w->active)
        return -EINVAL;
    if (w->events == events)
        return 0;
    w->events = events;
    if (w->always_ready)
        return 0;
    /* A watch that wants nothing leaves the set: epoll would otherwise keep
     * reporting EPOLLHUP/EPOLLERR to an owner that is not ready to act. */
    struct epoll_event ev = {.events = events, .data.ptr = w};
    int op = EPOLL_CTL_MOD;
    if (events == 0)
        op = EPOLL_CTL_DEL;
    else if (!w->registered)
        op = EPOLL_CTL_ADD;
    if (epoll_ctl(w->loop->epfd, op, w->fd, &ev) != 0)
        return -errno;
    w->registered = events != 0;
    if (events == 0)
        clear_fetched(w->loop, w);
    return 0;
}

void
ptth_watch_stop(ptth_watch *w)
{
    if (!w->active)
        return;
    ptth_loop *loop = w->loop;
    w->active = false;
    if (w->always_ready) {
        ready_unlink(loop, w);
    } else if (w->registered) {
        /* the fd may already be closed (curl closes before telling us): the
         * kernel then dropped it from the set and this fails harmlessly */
        epoll_ctl(loop->epfd, EPOLL_CTL_DEL, w->fd, NULL);
        w->registered = false;
    }
    clear_fetched(loop, w);
}

/* ---- timers ----
 *
 * The active timers form a pairing heap ordered by (due_ms, seq), linked
 * through the timers themselves: each has its first child, its next sibling,
 * and prev (the previous sibling, or the parent when it is a first child).
 * Chosen over a binary heap in an array because it needs no memory of its
 * own: ptth_timer_start() returns nothing and must not lose a timer when an
 * array could not grow, and with 10,000 tunnels the terminators keep tens of
 * thousands of timers. Start is O(1) (one comparison and a link), stop and
 * taking the earliest O(log n) amortized (the two-pass pairing of the removed
 * node's children; a single call may walk many children, e.g. the first
 * removal after many starts, but the total stays bounded). The sorted list it
 * replaces made each start a linear scan. seq, the arming order, makes the
 * order total, so equal due times fire in the order they were started.
 */

static bool
timer_before(const ptth_timer *a, const ptth_timer *b)
{
    return a->due_ms < b->due_ms || (a->due_ms == b->due_ms && a->seq < b->seq);
}

/* Joins two heaps given by their roots (either may be NULL, neither has
 * siblings): the later root becomes the first child of the earlier one,
 * which is returned. */
static ptth_timer *
heap_meld(ptth_timer *a, ptth_timer *b)
{
    if (a == NULL)
        return b;
    if (b == NULL)
        return a;
    if (timer_before(b, a)) {
        ptth_timer *x = a;
        a = b;
        b = x;
    }
    b->prev = a;
    b->next = a->child;
    if (a->child != NULL)
        a->child->prev = b;
    a->child = b;
    return a;
}

/* Makes one heap of a list of siblings (the children of a removed node):
 * melds them in pairs left to right, then the pairs right to left. Iterative,
 * with the pairs stacked through their next pointers, as a node may have
 * tens of thousands of children. */
static ptth_timer *
heap_merge_siblings(ptth_timer *first)
{
    ptth_timer *pairs = NULL;
    while (first != NULL) {
        ptth_timer *a = first, *b = a->next;
        first = b != NULL ? b->next : NULL;
        a->next = a->prev = NULL;
        if (b != NULL)
            b->next = b->prev = NULL;
        ptth_timer *m = heap_meld(a, b);
        m->next = pairs;
        pairs = m;
    }
    ptth_timer *root = NULL;
    while (pairs != NULL) {
        ptth_timer *m = pairs;
        pairs = m->next;
        m->next = NULL;
        root = heap_meld(root, m);
    }
    return root;
}

/* Takes t (active) out of the heap and clears its links. */
static void
heap_remove(ptth_loop *loop, ptth_timer *t)
{
    ptth_timer *sub = heap_merge_siblings(t->child);
    if (t == loop->timers) {
        loop->timers = sub;
    } else {
        if (t->prev->child == t)
            t->prev->child = t->next;
        else
            t->prev->next = t->next;
        if (t->next != NULL)
            t->next->prev = t->prev;
        loop->timers = heap_meld(loop->timers, sub);
    }
    t->child = t->next = t->prev = NULL;
}

void
ptth_timer_start(ptth_loop *loop, ptth_timer *t, long long delay_ms, ptth_timer_cb cb, void *data)
{
    ptth_timer_stop(loop, t);
    long long now = monotonic_ms();
    if (delay_ms < 0)
        delay_ms = 0;
    t->cb = cb;
    t->data = data;
    /* a delay too long to add is as good as never */
    t->due_ms = delay_ms > LLONG_MAX - now ? LLONG_MAX : now + delay_ms;
    t->seq = loop->timer_seq++;
    t->active = true;
    t->child = t->next = t->prev = NULL;
    loop->timers = heap_meld(loop->timers, t);
}

void
ptth_timer_stop(ptth_loop *loop, ptth_timer *t)
{
    if (!t->active)
        return;
    heap_remove(loop, t);
    t->active = false;
}

/* ---- deferred calls ---- */

void
ptth_defer_call(ptth_loop *loop, ptth_defer *d, ptth_defer_cb cb, void *data)
{
    if (d->active)
        return;
    d->cb = cb;
    d->data = data;
    d->active = true;
    d->next = NULL;
    if (loop->defer_tail != NULL)
        loop->defer_tail->next = d;
    else
        loop->defer_head = d;
    loop->defer_tail = d;
}

void
ptth_defer_cancel(ptth_loop *loop, ptth_defer *d)
{
    if (!d->active)
        return;
    ptth_defer *prev = NULL;
    for (ptth_defer *cur = loop->defer_head; cur != NULL; prev = cur, cur = cur->next) {
        if (cur != d)
            continue;
        if (prev != NULL)
            prev->next = d->next;
        else
            loop->defer_head = d->next;
        if (loop->defer_tail == d)
            loop->defer_tail = prev;
        break;
    }
    d->active = false;
    d->next = NULL;
}

/* Runs the calls queued so far, and those they queue, until none is left. */
static void
run_deferred(ptth_loop *loop)
{
    ptth_defer *d;
    while ((d = loop->defer_head) != NULL) {
        loop->defer_head = d->next;
        if (loop->defer_head == NULL)
            loop->defer_tail = NULL;
        d->next = NULL;
        d->active = false;
        d->cb(d);
    }
}

/* ---- signals ---- */

static void
on_signalfd(ptth_watch *w, uint32_t events)
{
    (void)events;
    ptth_loop *loop = w->data;
    struct signalfd_siginfo si;
    while (read(loop->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (loop->on_signal != NULL)
            loop->on_signal((int)si.ssi_signo, loop->signal_data);
    }
}

int
ptth_loop_catch_signals(ptth_loop *loop, void (*on_signal)(int signo, void *data), void *data)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    signal(SIGPIPE, SIG_IGN);
    if (sigprocmask(SIG_BLOCK, &set, NULL) != 0)
        return -errno;
    int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    loop->sigfd = fd;
    loop->on_signal = on_signal;
    loop->signal_data = data;
    int rc = ptth_watch_start(loop, &loop->sigwatch, fd, EPOLLIN, on_signalfd, loop);
    if (rc != 0) {
        close(fd);
        loop->sigfd = -1;
    }
    return rc;
}

/* ---- the loop ---- */

static int
next_timeout(ptth_loop *loop)
{
    if (loop->defer_head != NULL)
        return 0;
    for (ptth_watch *w = loop->ready; w != NULL; w = w->ready_next)
        if (w->events != 0)
            return 0;
    if (loop->timers == NULL)
        return -1;
    long long wait = loop->timers->due_ms - monotonic_ms();
    if (wait <= 0)
        return 0;
    return wait > 60000 ? 60000 : (int)wait;
}

/* Fires the timers due at the round's time, earliest first. One at a time
 * from the root, as a callback may start or stop any timer. Those started
 * during this phase (seq from limit on) wait for a later round: they sort
 * after every timer due now that was started before (their due time is not
 * earlier than now), so the first one met ends the phase. */
static void
run_timers(ptth_loop *loop)
{
    long long now = loop->now_ms;
    unsigned long long limit = loop->timer_seq;
    ptth_timer *t;
    while ((t = loop->timers) != NULL && t->due_ms <= now && t->seq < limit && !loop->stopping) {
        ptth_timer_stop(loop, t);
        t->cb(t);
    }
}

/* Reports every always-ready watch that wants something. A callback may
 * stop (and free) any watch, so the walk ends as soon as the list changed;
 * the rest get their turn in the next round, which does not sleep. */
static void
run_ready(ptth_loop *loop)
{
    unsigned changes = loop->ready_changes;
    ptth_watch *w = loop->ready;
    while (w != NULL && !loop->stopping) {
        ptth_watch *next = w->ready_next;
        if (w->events != 0) {
            w->cb(w, w->events);
            if (loop->ready_changes != changes)
                break;
        }
        w = next;
    }
}

int
ptth_loop_run(ptth_loop *loop)
{
    loop->stopping = false;
    while (!loop->stopping) {
        int timeout = next_timeout(loop);
        int n = epoll_wait(loop->epfd, loop->events, MAX_EVENTS, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        loop->now_ms = monotonic_ms();
        loop->n_events = n;
        for (loop->cur_event = 0; loop->cur_event < n && !loop->stopping; loop->cur_event++) {
            ptth_watch *w = loop->events[loop->cur_event].data.ptr;
            if (w == NULL || !w->active)
                continue;
            uint32_t ev = loop->events[loop->cur_event].events;
            /* report only what was asked for, plus errors and hang-ups */
            ev &= w->events | EPOLLERR | EPOLLHUP | EPOLLRDHUP;
            if (ev != 0)
                w->cb(w, ev);
        }
        loop->n_events = 0;
        loop->cur_event = 0;
        if (loop->stopping)
            break;
        run_ready(loop);
        run_timers(loop);
        run_deferred(loop);
    }
    /* whatever was deferred still runs: owners free objects there */
    run_deferred(loop);
    return 0;
}
