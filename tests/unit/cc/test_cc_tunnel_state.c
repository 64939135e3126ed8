/*
 * Unit tests of transports/cc/cc_tunnel: a comm-channel tunnel's steps
 * between states and the deadline queues that go with them (a mux's
 * expiry looks only at their heads).
 */
#include <string.h>

#include "cc_tunnel.h"
#include "check_main.h"

START_TEST(steps_are_the_documented_ones)
{
    enum { N = PTTH_CC_T_DEAD + 1 };
    /* [from][to]: NEW, OPENING, OPEN, CLOSING, DEAD */
    static const bool legal[N][N] = {
        {0, 1, 0, 0, 0}, /* NEW */
        {0, 0, 1, 0, 1}, /* OPENING */
        {0, 0, 0, 1, 1}, /* OPEN */
        {0, 0, 0, 0, 1}, /* CLOSING */
        {0, 0, 0, 0, 0}, /* DEAD */
    };
    for (int f = 0; f < N; f++)
        for (int t = 0; t < N; t++)
            ck_assert_msg(ptth_cc_tunnel_step_ok((ptth_cc_tunnel_state)f, (ptth_cc_tunnel_state)t) == legal[f][t], "%d -> %d", f,
                          t);
}
END_TEST

static ptth_cc_mux mux;
static ptth_cc_tunnel tun[4];

static void
setup(void)
{
    memset(&mux, 0, sizeof(mux));
    memset(tun, 0, sizeof(tun));
    mux.cfg.open_timeout_ms = 5000;
}

START_TEST(opening_queue_in_order_and_left_on_open)
{
    for (int i = 0; i < 3; i++)
        ptth_cc_tunnel_set_state(&mux, &tun[i], PTTH_CC_T_OPENING);
    ck_assert_ptr_eq(mux.opening.head, &tun[0]);
    ck_assert_ptr_eq(mux.opening.tail, &tun[2]);
    ck_assert_int_ne(tun[0].deadline, 0);
    ck_assert(tun[0].deadline <= tun[1].deadline && tun[1].deadline <= tun[2].deadline);
    ptth_cc_tunnel_set_state(&mux, &tun[1], PTTH_CC_T_OPEN); /* the middle one leaves */
    ck_assert_int_eq(tun[1].deadline, 0);
    ck_assert_ptr_eq(tun[0].dl_next, &tun[2]);
    ck_assert_ptr_eq(tun[2].dl_prev, &tun[0]);
    ck_assert(ptth_cc_tunnel_is_open(&tun[1]));
    ck_assert(!ptth_cc_tunnel_is_open(&tun[0]));
    ptth_cc_tunnel_set_state(&mux, &tun[0], PTTH_CC_T_DEAD); /* the head leaves */
    ck_assert_ptr_eq(mux.opening.head, &tun[2]);
    ptth_cc_tunnel_set_state(&mux, &tun[2], PTTH_CC_T_DEAD);
    ck_assert_ptr_null(mux.opening.head);
    ck_assert_ptr_null(mux.opening.tail);
    ck_assert(!ptth_cc_tunnel_is_open(&tun[2]));
}
END_TEST

START_TEST(no_open_timeout_no_queue)
{
    mux.cfg.open_timeout_ms = 0;
    ptth_cc_tunnel_set_state(&mux, &tun[0], PTTH_CC_T_OPENING);
    ck_assert_ptr_null(mux.opening.head);
    ck_assert_int_eq(tun[0].deadline, 0);
    ptth_cc_tunnel_set_state(&mux, &tun[0], PTTH_CC_T_OPEN);
    ck_assert_ptr_null(mux.opening.head);
}
END_TEST

START_TEST(closing_lingers_in_its_queue)
{
    ptth_cc_tunnel_set_state(&mux, &tun[0], PTTH_CC_T_OPENING);
    ptth_cc_tunnel_set_state(&mux, &tun[0], PTTH_CC_T_OPEN);
    ptth_cc_tunnel_set_state(&mux, &tun[0], PTTH_CC_T_CLOSING);
    ck_assert_ptr_eq(mux.closing.head, &tun[0]);
    ck_assert_ptr_null(mux.opening.head);
    ck_assert(ptth_cc_tunnel_is_open(&tun[0])); /* it still delivers */
    ptth_cc_tunnel_set_state(&mux, &tun[0], PTTH_CC_T_DEAD);
    ck_assert_ptr_null(mux.closing.head);
    ck_assert_int_eq(tun[0].deadline, 0);
}
END_TEST

Suite *
ptth_test_suite(void)
{
    Suite *s = suite_create("cc_tunnel_state");
    TCase *tc = tcase_create("cc_tunnel_state");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, steps_are_the_documented_ones);
    tcase_add_test(tc, opening_queue_in_order_and_left_on_open);
    tcase_add_test(tc, no_open_timeout_no_queue);
    tcase_add_test(tc, closing_lingers_in_its_queue);
    suite_add_tcase(s, tc);
    return s;
}
