/* Unit tests of common/tunnel_set (a terminator's open tunnels): adds and
 * removes keep the count and the newest-first order; removing inside
 * PTTH_TUNNEL_SET_EACH (the tunnel being visited, or its successor's
 * predecessor) visits every other tunnel once; on_drained runs once, from
 * the loop and not inside the remove that emptied the set, also when the
 * set was empty at the drain; fini cancels a pending on_drained. */
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "loop.h"
#include "tunnel_set.h"

typedef struct item {
    int id;
    ptth_tunnel_link link;
} item;

static int drained_calls;
static bool inside_remove;

static void
on_drained(void *data)
{
    ck_assert(!inside_remove);
    drained_calls++;
    ptth_loop_stop(data);
}

static void
on_guard(ptth_timer *t)
{
    ptth_loop_stop(t->data);
}

/* Runs the loop until on_drained stops it, or ms pass. */
static void
run_for(ptth_loop *loop, long long ms)
{
    ptth_timer guard;
    memset(&guard, 0, sizeof(guard));
    ptth_timer_start(loop, &guard, ms, on_guard, loop);
    ck_assert_int_eq(ptth_loop_run(loop), 0);
    ptth_timer_stop(loop, &guard);
}

START_TEST(add_remove_keep_count_and_order)
{
    ptth_loop *loop = ptth_loop_new();
    ptth_tunnel_set set;
    ptth_tunnel_set_init(&set, loop);
    item it[5];
    memset(it, 0, sizeof(it));
    for (int i = 0; i < 5; i++) {
        it[i].id = i;
        ptth_tunnel_set_add(&set, &it[i].link);
    }
    ck_assert_uint_eq(set.count, 5);
    int want = 4;
    PTTH_TUNNEL_SET_EACH(&set, l, nx)
    {
        ck_assert_int_eq(PTTH_TUNNEL_OF(l, item, link)->id, want);
        want--;
    }
    ck_assert_int_eq(want, -1);
    ptth_tunnel_set_remove(&set, &it[2].link); /* the middle */
    ptth_tunnel_set_remove(&set, &it[4].link); /* the head */
    ptth_tunnel_set_remove(&set, &it[0].link); /* the tail */
    ck_assert_uint_eq(set.count, 2);
    int seen[2], n = 0;
    PTTH_TUNNEL_SET_EACH(&set, l, nx) seen[n++] = PTTH_TUNNEL_OF(l, item, link)->id;
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(seen[0], 3);
    ck_assert_int_eq(seen[1], 1);
    ck_assert(!it[2].link.linked && it[3].link.linked);
    ptth_tunnel_set_add(&set, &it[2].link); /* removed links can come back */
    ck_assert_ptr_eq(set.head, &it[2].link);
    ck_assert_uint_eq(set.count, 3);
    ptth_tunnel_set_fini(&set);
    ptth_loop_free(loop);
}
END_TEST

START_TEST(removing_while_iterating_visits_the_others_once)
{
    ptth_loop *loop = ptth_loop_new();
    ptth_tunnel_set set;
    ptth_tunnel_set_init(&set, loop);
    enum { N = 64 };
    item *it = calloc(N, sizeof(*it));
    for (int i = 0; i < N; i++) {
        it[i].id = i;
        ptth_tunnel_set_add(&set, &it[i].link);
    }
    int visits[N] = {0};
    /* every visited tunnel with an even id removes itself (as a shutdown
     * that ends some tunnels at once does) */
    PTTH_TUNNEL_SET_EACH(&set, l, nx)
    {
        item *x = PTTH_TUNNEL_OF(l, item, link);
        visits[x->id]++;
        if (x->id % 2 == 0)
            ptth_tunnel_set_remove(&set, &x->link);
    }
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(visits[i], 1);
    ck_assert_uint_eq(set.count, N / 2);
    PTTH_TUNNEL_SET_EACH(&set, l, nx) ck_assert_int_eq(PTTH_TUNNEL_OF(l, item, link)->id % 2, 1);
    ptth_tunnel_set_fini(&set);
    free(it);
    ptth_loop_free(loop);
}
END_TEST

START_TEST(drained_once_from_the_loop_after_the_last_remove)
{
    ptth_loop *loop = ptth_loop_new();
    ptth_tunnel_set set;
    ptth_tunnel_set_init(&set, loop);
    item it[3];
    memset(it, 0, sizeof(it));
    for (int i = 0; i < 3; i++)
        ptth_tunnel_set_add(&set, &it[i].link);
    drained_calls = 0;
    ptth_tunnel_set_drain(&set, on_drained, loop);
    run_for(loop, 50);
    ck_assert_int_eq(drained_calls, 0); /* tunnels are still open */
    inside_remove = true;
    ptth_tunnel_set_remove(&set, &it[0].link);
    ptth_tunnel_set_remove(&set, &it[1].link);
    ptth_tunnel_set_remove(&set, &it[2].link);
    inside_remove = false;
    ck_assert_int_eq(drained_calls, 0); /* deferred, not inside the remove */
    run_for(loop, 2000);
    ck_assert_int_eq(drained_calls, 1);
    run_for(loop, 50);
    ck_assert_int_eq(drained_calls, 1);
    ptth_tunnel_set_fini(&set);
    ptth_loop_free(loop);
}
END_TEST

START_TEST(drain_of_an_empty_set_and_fini_cancels)
{
    ptth_loop *loop = ptth_loop_new();
    ptth_tunnel_set set;
    ptth_tunnel_set_init(&set, loop);
    drained_calls = 0;
    ptth_tunnel_set_drain(&set, on_drained, loop);
    ck_assert_int_eq(drained_calls, 0);
    run_for(loop, 2000);
    ck_assert_int_eq(drained_calls, 1);

    /* a pending on_drained is cancelled by fini (the owner is being freed) */
    ptth_tunnel_set set2;
    ptth_tunnel_set_init(&set2, loop);
    item a;
    memset(&a, 0, sizeof(a));
    ptth_tunnel_set_add(&set2, &a.link);
    ptth_tunnel_set_drain(&set2, on_drained, loop);
    ptth_tunnel_set_remove(&set2, &a.link);
    ptth_tunnel_set_fini(&set2);
    run_for(loop, 50);
    ck_assert_int_eq(drained_calls, 1);
    ptth_tunnel_set_fini(&set);
    ptth_loop_free(loop);
}
END_TEST

Suite *
ptth_test_suite(void)
{
    Suite *s = suite_create("tunnel_set");
    TCase *tc = tcase_create("tunnel_set");
    tcase_add_test(tc, add_remove_keep_count_and_order);
    tcase_add_test(tc, removing_while_iterating_visits_the_others_once);
    tcase_add_test(tc, drained_once_from_the_loop_after_the_last_remove);
    tcase_add_test(tc, drain_of_an_empty_set_and_fini_cancels);
    suite_add_tcase(s, tc);
    return s;
}
