/* loop_wait.c: a test's loop run until a condition holds; see loop_wait.h. */
#include "loop_wait.h"

#include <stddef.h>

#include <check.h>

static ptth_loop *cur_loop;
static bool (*cur_cond)(void);
static bool guard_fired;
static ptth_timer guard_timer, poll_timer;

void
loop_wait_poke(void)
{
    if (cur_cond != NULL && cur_cond())
        ptth_loop_stop(cur_loop);
}

static void
on_guard(ptth_timer *t)
{
    (void)t;
    guard_fired = true;
    ptth_loop_stop(cur_loop);
}

static void
on_poll(ptth_timer *t)
{
    loop_wait_poke();
    ptth_timer_start(cur_loop, t, 2, on_poll, NULL);
}

bool
loop_wait(ptth_loop *loop, bool (*cond)(void), long ms)
{
    if (cond())
        return true;
    cur_loop = loop;
    cur_cond = cond;
    guard_fired = false;
    ptth_timer_start(loop, &guard_timer, ms, on_guard, NULL);
    ptth_timer_start(loop, &poll_timer, 2, on_poll, NULL);
    while (!cond() && !guard_fired)
        ck_assert_int_eq(ptth_loop_run(loop), 0);
    ptth_timer_stop(loop, &guard_timer);
    ptth_timer_stop(loop, &poll_timer);
    cur_cond = NULL;
    return cond();
}
