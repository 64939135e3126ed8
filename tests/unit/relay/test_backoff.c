/* Unit tests of relay/backoff: how long the listeners pause when accept()
 * runs out of descriptors. */
#include "backoff.h"
#include "check_main.h"

START_TEST(doubles_up_to_the_max)
{
    ptth_backoff b;
    ptth_backoff_init(&b, 100, 1000);
    long long now = 5000, want[] = {100, 200, 400, 800, 1000, 1000, 1000};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        long long p = ptth_backoff_next(&b, now);
        ck_assert_int_eq(p, want[i]);
        now += p; /* the failure comes again as soon as the pause ends */
    }
    ck_assert_uint_eq(b.pauses, 7);
}
END_TEST

START_TEST(quiet_spell_starts_again_from_the_min)
{
    ptth_backoff b;
    ptth_backoff_init(&b, 100, 1000);
    ck_assert_int_eq(ptth_backoff_next(&b, 0), 100);
    ck_assert_int_eq(ptth_backoff_next(&b, 100), 200);
    /* within max of the end of the last pause: still doubling */
    ck_assert_int_eq(ptth_backoff_next(&b, 300 + 1000), 400);
    /* more than max after the end of the last pause: from the start */
    ck_assert_int_eq(ptth_backoff_next(&b, 1300 + 400 + 1001), 100);
}
END_TEST

START_TEST(bad_bounds_are_made_sane)
{
    ptth_backoff b;
    ptth_backoff_init(&b, 0, 0);
    ck_assert_int_eq(b.min_ms, 1);
    ck_assert_int_eq(b.max_ms, 1);
    ck_assert_int_eq(ptth_backoff_next(&b, 0), 1);
    ck_assert_int_eq(ptth_backoff_next(&b, 1), 1);
}
END_TEST

Suite *
ptth_test_suite(void)
{
    Suite *s = suite_create("relay_backoff");
    TCase *tc = tcase_create("backoff");
    tcase_add_test(tc, doubles_up_to_the_max);
    tcase_add_test(tc, quiet_spell_starts_again_from_the_min);
    tcase_add_test(tc, bad_bounds_are_made_sane);
    suite_add_tcase(s, tc);
    return s;
}
