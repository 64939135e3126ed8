/* Unit tests of common/data_path: the --data-path values and what a
 * terminator remembers when its relay connection does not allow upgrades. */
#include <string.h>

#include "check_main.h"
#include "data_path.h"

START_TEST(values_are_checked)
{
    char err[128];
    ck_assert_int_eq(ptth_data_path_check("auto", err, sizeof(err)), 0);
    ck_assert_int_eq(ptth_data_path_check("upgrade", err, sizeof(err)), 0);
    ck_assert_int_eq(ptth_data_path_check("chunks", err, sizeof(err)), 0);
    ck_assert_int_eq(ptth_data_path_check("Upgrade", err, sizeof(err)), -1);
    ck_assert_str_eq(err, "'Upgrade' is not auto, upgrade or chunks");
    ck_assert_int_eq(ptth_data_path_check("", err, sizeof(err)), -1);
    ptth_data_path dp;
    ck_assert_int_eq(ptth_data_path_init(&dp, NULL), 0);
    ck_assert_int_eq(dp.mode, PTTH_DATA_PATH_AUTO);
    ck_assert_int_eq(ptth_data_path_init(&dp, "chunks"), 0);
    ck_assert_int_eq(dp.mode, PTTH_DATA_PATH_CHUNKS);
    ck_assert_int_lt(ptth_data_path_init(&dp, "both"), 0);
}
END_TEST

START_TEST(auto_remembers_for_a_while)
{
    ptth_data_path dp;
    ck_assert_int_eq(ptth_data_path_init(&dp, "auto"), 0);
    ck_assert(ptth_data_path_try_upgrade(&dp, 1000));
    ptth_data_path_unavailable(&dp, 1000, "test");
    ck_assert(!ptth_data_path_try_upgrade(&dp, 1001));
    ck_assert(!ptth_data_path_try_upgrade(&dp, 1000 + PTTH_DATA_PATH_MEMORY_MS - 1));
    ck_assert(ptth_data_path_try_upgrade(&dp, 1000 + PTTH_DATA_PATH_MEMORY_MS));
    /* learning it again extends the memory from then */
    ptth_data_path_unavailable(&dp, 5000, "again");
    ck_assert(!ptth_data_path_try_upgrade(&dp, 5000 + PTTH_DATA_PATH_MEMORY_MS - 1));
}
END_TEST

START_TEST(upgrade_and_chunks_never_change)
{
    ptth_data_path up, ch;
    ck_assert_int_eq(ptth_data_path_init(&up, "upgrade"), 0);
    ck_assert_int_eq(ptth_data_path_init(&ch, "chunks"), 0);
    ptth_data_path_unavailable(&up, 0, "test");
    ptth_data_path_unavailable(&ch, 0, "test");
    ck_assert(ptth_data_path_try_upgrade(&up, 1));
    ck_assert(!ptth_data_path_try_upgrade(&ch, 1));
    ck_assert(!ptth_data_path_try_upgrade(&ch, 1LL << 40));
}
END_TEST

Suite *
ptth_test_suite(void)
{
    Suite *s = suite_create("data_path");
    TCase *tc = tcase_create("data_path");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, values_are_checked);
    tcase_add_test(tc, auto_remembers_for_a_while);
    tcase_add_test(tc, upgrade_and_chunks_never_change);
    suite_add_tcase(s, tc);
    return s;
}
