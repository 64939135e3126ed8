/* Unit tests of relay/seqwin: the reorder window of one tunnel direction. */
#include <stdint.h>

#include "check_main.h"
#include "seqwin.h"

static int items[32];

START_TEST(in_order_delivery)
{
    ptth_seqwin w;
    void *rep;
    ptth_seqwin_init(&w);
    ck_assert_ptr_null(ptth_seqwin_peek(&w));
    for (int i = 0; i < 20; i++) {
        ck_assert_int_eq(ptth_seqwin_put(&w, (uint64_t)i, &items[i % 32], &rep), PTTH_SEQWIN_STORED);
        ck_assert_ptr_null(rep);
        ck_assert_ptr_eq(ptth_seqwin_peek(&w), &items[i % 32]);
        ck_assert_ptr_eq(ptth_seqwin_take(&w), &items[i % 32]);
        ck_assert_uint_eq(w.next, (uint64_t)i + 1);
        ck_assert_uint_eq(w.held, 0);
    }
}
END_TEST

START_TEST(reorders_within_window)
{
    ptth_seqwin w;
    void *rep;
    ptth_seqwin_init(&w);
    for (int i = 7; i >= 1; i--)
        ck_assert_int_eq(ptth_seqwin_put(&w, (uint64_t)i, &items[i], &rep), PTTH_SEQWIN_STORED);
    ck_assert_uint_eq(w.held, 7);
    ck_assert_ptr_null(ptth_seqwin_peek(&w));
    ck_assert_ptr_null(ptth_seqwin_take(&w)); /* nothing deliverable: no change */
    ck_assert_uint_eq(w.next, 0);
    ck_assert_int_eq(ptth_seqwin_put(&w, 0, &items[0], &rep), PTTH_SEQWIN_STORED);
    for (int i = 0; i < 8; i++)
        ck_assert_ptr_eq(ptth_seqwin_take(&w), &items[i]);
    ck_assert_uint_eq(w.held, 0);
    ck_assert_uint_eq(w.next, 8);
}
END_TEST

START_TEST(window_bounds)
{
    ptth_seqwin w;
    void *rep;
    ptth_seqwin_init(&w);
    /* next = 0: 0..7 fit, 8 is too far */
    ck_assert_int_eq(ptth_seqwin_put(&w, 7, &items[7], &rep), PTTH_SEQWIN_STORED);
    ck_assert_int_eq(ptth_seqwin_put(&w, 8, &items[8], &rep), PTTH_SEQWIN_TOO_FAR);
    ck_assert_int_eq(ptth_seqwin_put(&w, UINT64_MAX, &items[8], &rep), PTTH_SEQWIN_TOO_FAR);
    ck_assert_uint_eq(w.held, 1);
    ck_assert_int_eq(ptth_seqwin_put(&w, 0, &items[0], &rep), PTTH_SEQWIN_STORED);
    ck_assert_ptr_eq(ptth_seqwin_take(&w), &items[0]);
    /* next = 1: 8 fits now, 9 does not */
    ck_assert_int_eq(ptth_seqwin_put(&w, 8, &items[8], &rep), PTTH_SEQWIN_STORED);
    ck_assert_int_eq(ptth_seqwin_put(&w, 9, &items[9], &rep), PTTH_SEQWIN_TOO_FAR);
}
END_TEST

START_TEST(delivered_and_duplicates)
{
    ptth_seqwin w;
    void *rep;
    ptth_seqwin_init(&w);
    ck_assert_int_eq(ptth_seqwin_put(&w, 0, &items[0], &rep), PTTH_SEQWIN_STORED);
    ptth_seqwin_take(&w);
    ck_assert_int_eq(ptth_seqwin_put(&w, 0, &items[1], &rep), PTTH_SEQWIN_DELIVERED);
    ck_assert_uint_eq(w.held, 0);
    /* a retry of a held chunk replaces it and hands back the old one */
    ck_assert_int_eq(ptth_seqwin_put(&w, 3, &items[3], &rep), PTTH_SEQWIN_STORED);
    ck_assert_ptr_null(rep);
    ck_assert_int_eq(ptth_seqwin_put(&w, 3, &items[4], &rep), PTTH_SEQWIN_STORED);
    ck_assert_ptr_eq(rep, &items[3]);
    ck_assert_uint_eq(w.held, 1);
}
END_TEST

START_TEST(remove_and_drain)
{
    ptth_seqwin w;
    void *rep;
    ptth_seqwin_init(&w);
    for (int i = 0; i < 5; i++)
        ptth_seqwin_put(&w, (uint64_t)i + 1, &items[i], &rep);
    ck_assert(ptth_seqwin_remove(&w, &items[2]));
    ck_assert(!ptth_seqwin_remove(&w, &items[2]));
    ck_assert(!ptth_seqwin_remove(&w, NULL));
    ck_assert_uint_eq(w.held, 4);
    int n = 0;
    while (ptth_seqwin_pop_any(&w) != NULL)
        n++;
    ck_assert_int_eq(n, 4);
    ck_assert_uint_eq(w.held, 0);
    ck_assert_ptr_null(ptth_seqwin_pop_any(&w));
}
END_TEST

START_TEST(parse_seq)
{
    uint64_t v;
    ck_assert_int_eq(ptth_seqwin_parse_seq("0", 1, &v), 0);
    ck_assert_uint_eq(v, 0);
    ck_assert_int_eq(ptth_seqwin_parse_seq("12345", 5, &v), 0);
    ck_assert_uint_eq(v, 12345);
    ck_assert_int_eq(ptth_seqwin_parse_seq("123", 2, &v), 0); /* length bounds the parse */
    ck_assert_uint_eq(v, 12);
    ck_assert_int_eq(ptth_seqwin_parse_seq("18446744073709551607", 20, &v), 0); /* UINT64_MAX - 8 */
    ck_assert_int_lt(ptth_seqwin_parse_seq("18446744073709551608", 20, &v), 0);
    ck_assert_int_lt(ptth_seqwin_parse_seq("18446744073709551616", 20, &v), 0);
    ck_assert_int_lt(ptth_seqwin_parse_seq("999999999999999999999", 21, &v), 0);
    ck_assert_int_lt(ptth_seqwin_parse_seq("", 0, &v), 0);
    ck_assert_int_lt(ptth_seqwin_parse_seq("-1", 2, &v), 0);
    ck_assert_int_lt(ptth_seqwin_parse_seq("+1", 2, &v), 0);
    ck_assert_int_lt(ptth_seqwin_parse_seq(" 1", 2, &v), 0);
    ck_assert_int_lt(ptth_seqwin_parse_seq("1 ", 2, &v), 0);
    ck_assert_int_lt(ptth_seqwin_parse_seq("0x10", 4, &v), 0);
}
END_TEST

Suite *
ptth_test_suite(void)
{
    Suite *s = suite_create("relay_seqwin");
    TCase *tc = tcase_create("seqwin");
    tcase_add_test(tc, in_order_delivery);
    tcase_add_test(tc, reorders_within_window);
    tcase_add_test(tc, window_bounds);
    tcase_add_test(tc, delivered_and_duplicates);
    tcase_add_test(tc, remove_and_drain);
    tcase_add_test(tc, parse_seq);
    suite_add_tcase(s, tc);
    return s;
}
