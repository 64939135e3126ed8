/* Unit tests of common/loop: timers, deferred calls, watches (level-triggered,
 * stopped mid-batch, no events), always-ready descriptors and signals. */
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_main.h"
#include "loop.h"

typedef struct rec {
    ptth_loop *loop;
    int order[16];
    int n;
} rec;

typedef struct tmark {
    ptth_timer t;
    rec *r;
    int id;
} tmark;

static void
on_mark(ptth_timer *t)
{
    tmark *m = t->data;
    m->r->order[m->r->n++] = m->id;
}

static void
on_stop(ptth_timer *t)
{
    ptth_loop_stop(t->data);
}

START_TEST(timers_fire_in_due_order)
{
    rec r = {.loop = ptth_loop_new()};
    ck_assert_ptr_nonnull(r.loop);
    tmark a = {.r = &r, .id = 1}, b = {.r = &r, .id = 2}, c = {.r = &r, .id = 3};
    ptth_timer stop;
    memset(&stop, 0, sizeof(stop));
    ptth_timer_start(r.loop, &c.t, 30, on_mark, &c);
    ptth_timer_start(r.loop, &a.t, 0, on_mark, &a);
    ptth_timer_start(r.loop, &b.t, 10, on_mark, &b);
    ptth_timer_start(r.loop, &stop, 60, on_stop, r.loop);
    ck_assert_int_eq(ptth_loop_run(r.loop), 0);
    ck_assert_int_eq(r.n, 3);
    ck_assert_int_eq(r.order[0], 1);
    ck_assert_int_eq(r.order[1], 2);
    ck_assert_int_eq(r.order[2], 3);
    ptth_loop_free(r.loop);
}
END_TEST

START_TEST(stopped_and_restarted_timers)
{
    rec r = {.loop = ptth_loop_new()};
    tmark a = {.r = &r, .id = 1}, b = {.r = &r, .id = 2};
    ptth_timer stop;
    memset(&stop, 0, sizeof(stop));
    ptth_timer_start(r.loop, &a.t, 5, on_mark, &a);
    ptth_timer_start(r.loop, &b.t, 5, on_mark, &b);
    ck_assert(ptth_timer_active(&a.t));
    ptth_timer_stop(r.loop, &a.t);
    ck_assert(!ptth_timer_active(&a.t));
    ptth_timer_stop(r.loop, &a.t); /* twice: a no-op */
    ptth_timer_start(r.loop, &b.t, 20, on_mark, &b); /* re-arming moves it */
    ptth_timer_start(r.loop, &stop, 40, on_stop, r.loop);
    ptth_loop_run(r.loop);
    ck_assert_int_eq(r.n, 1);
    ck_assert_int_eq(r.order[0], 2);
    ptth_loop_free(r.loop);
}
END_TEST

typedef struct dmark {
    ptth_defer d;
    rec *r;
    int id;
    int requeue;
} dmark;

static void
on_deferred(ptth_defer *d)
{
    dmark *m = d->data;
    m->r->order[m->r->n++] = m->id;
    if (m->requeue-- > 0)
        ptth_defer_call(m->r->loop, &m->d, on_deferred, m);
    else if (m->id == 2)
        ptth_loop_stop(m->r->loop);
}

START_TEST(deferred_calls_run_once_in_order)
{
    rec r = {.loop = ptth_loop_new()};
    dmark a = {.r = &r, .id = 1}, b = {.r = &r, .id = 2, .requeue = 1}, c = {.r = &r, .id = 3};
    ptth_defer_call(r.loop, &a.d, on_deferred, &a);
    ptth_defer_call(r.loop, &a.d, on_deferred, &a); /* already queued: no-op */
    ptth_defer_call(r.loop, &c.d, on_deferred, &c);
    ptth_defer_call(r.loop, &b.d, on_deferred, &b);
    ptth_defer_cancel(r.loop, &c.d);
    ptth_loop_run(r.loop);
    ck_assert_int_eq(r.n, 3);
    ck_assert_int_eq(r.order[0], 1);
    ck_assert_int_eq(r.order[1], 2);
    ck_assert_int_eq(r.order[2], 2); /* queued again from its own call */
    ptth_loop_free(r.loop);
}
END_TEST

typedef struct wctx {
    ptth_watch w;
    int calls;
    uint32_t last;
    struct wctx *victim; /* stopped by this one's callback */
    ptth_loop *loop;
} wctx;

static void
on_readable(ptth_watch *w, uint32_t events)
{
    wctx *c = w->data;
    c->calls++;
    c->last = events;
    if (c->victim != NULL) {
        ptth_watch_stop(&c->victim->w);
        c->victim = NULL;
    }
}

static void
run_for(ptth_loop *loop, long long ms)
{
    ptth_timer stop;
    memset(&stop, 0, sizeof(stop));
    ptth_timer_start(loop, &stop, ms, on_stop, loop);
    ptth_loop_run(loop);
    ptth_timer_stop(loop, &stop);
}

START_TEST(level_triggered_until_drained_and_quiet_without_interest)
{
    ptth_loop *loop = ptth_loop_new();
    int p[2];
    ck_assert_int_eq(pipe2(p, O_NONBLOCK), 0);
    wctx c = {.loop = loop};
    ck_assert_int_eq(ptth_watch_start(loop, &c.w, p[0], EPOLLIN, on_readable, &c), 0);
    run_for(loop, 20);
    ck_assert_int_eq(c.calls, 0);
    ck_assert_int_eq(write(p[1], "x", 1), 1);
    run_for(loop, 20);
    ck_assert_int_gt(c.calls, 1); /* not drained: keeps firing */
    ck_assert(c.last & EPOLLIN);
    /* no interest: no reports, not even the hang-up after the writer closes */
    ck_assert_int_eq(ptth_watch_set(&c.w, 0), 0);
    close(p[1]);
    c.calls = 0;
    run_for(loop, 20);
    ck_assert_int_eq(c.calls, 0);
    ck_assert_int_eq(ptth_watch_set(&c.w, EPOLLIN), 0);
    run_for(loop, 5);
    ck_assert_int_gt(c.calls, 0);
    ptth_watch_stop(&c.w);
    close(p[0]);
    ptth_loop_free(loop);
}
END_TEST

START_TEST(watch_stopped_mid_batch_is_not_called)
{
    ptth_loop *loop = ptth_loop_new();
    int p1[2], p2[2];
    ck_assert_int_eq(pipe2(p1, O_NONBLOCK), 0);
    ck_assert_int_eq(pipe2(p2, O_NONBLOCK), 0);
    wctx a = {.loop = loop}, b = {.loop = loop};
    ck_assert_int_eq(ptth_watch_start(loop, &a.w, p1[0], EPOLLIN, on_readable, &a), 0);
    ck_assert_int_eq(ptth_watch_start(loop, &b.w, p2[0], EPOLLIN, on_readable, &b), 0);
    a.victim = &b;
    b.victim = &a;
    /* both readable before the loop looks: one batch holds both; whichever
     * runs first stops the other, which must then never be called */
    ck_assert_int_eq(write(p1[1], "x", 1), 1);
    ck_assert_int_eq(write(p2[1], "x", 1), 1);
    run_for(loop, 10);
    ck_assert_int_eq((a.calls > 0) + (b.calls > 0), 1);
    ptth_watch_stop(&a.w);
    ptth_watch_stop(&b.w);
    close(p1[0]), close(p1[1]), close(p2[0]), close(p2[1]);
    ptth_loop_free(loop);
}
END_TEST

START_TEST(regular_file_is_always_ready)
{
    ptth_loop *loop = ptth_loop_new();
    char path[] = "/tmp/ptth-test-loop-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    unlink(path);
    wctx c = {.loop = loop};
    ck_assert_int_eq(ptth_watch_start(loop, &c.w, fd, EPOLLIN, on_readable, &c), 0);
    run_for(loop, 10);
    ck_assert_int_gt(c.calls, 0);
    ck_assert(c.last & EPOLLIN);
    ptth_watch_set(&c.w, 0);
    c.calls = 0;
    run_for(loop, 10);
    ck_assert_int_eq(c.calls, 0);
    ptth_watch_stop(&c.w);
    close(fd);
    ptth_loop_free(loop);
}
END_TEST

static int got_signal;

static void
on_signal(int signo, void *data)
{
    got_signal = signo;
    ptth_loop_stop(data);
}

START_TEST(signals_arrive_through_the_loop)
{
    ptth_loop *loop = ptth_loop_new();
    ck_assert_int_eq(ptth_loop_catch_signals(loop, on_signal, loop), 0);
    raise(SIGTERM); /* blocked: stays pending until the loop reads it */
    ptth_timer guard;
    memset(&guard, 0, sizeof(guard));
    ptth_timer_start(loop, &guard, 2000, on_stop, loop);
    ptth_loop_run(loop);
    ptth_timer_stop(loop, &guard);
    ck_assert_int_eq(got_signal, SIGTERM);
    ptth_loop_free(loop);
}
END_TEST

Suite *
ptth_test_suite(void)
{
    Suite *s = suite_create("loop");
    TCase *tc = tcase_create("loop");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, timers_fire_in_due_order);
    tcase_add_test(tc, stopped_and_restarted_timers);
    tcase_add_test(tc, deferred_calls_run_once_in_order);
    tcase_add_test(tc, level_triggered_until_drained_and_quiet_without_interest);
    tcase_add_test(tc, watch_stopped_mid_batch_is_not_called);
    tcase_add_test(tc, regular_file_is_always_ready);
    tcase_add_test(tc, signals_arrive_through_the_loop);
    suite_add_tcase(s, tc);
    return s;
}
