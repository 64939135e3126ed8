/* Unit tests of common/api_path: the paths of the relay's API, as the
 * relay's router (relay/route.c) expects them. */
#include <errno.h>
#include <string.h>

#include "api_path.h"
#include "check_main.h"

START_TEST(builds_each_path)
{
    char p[PTTH_API_PATH_MAX];
    ck_assert_int_eq(ptth_api_listen_path(p, sizeof(p), "foo"), 0);
    ck_assert_str_eq(p, "/v1/servers/foo/listen");
    ck_assert_int_eq(ptth_api_connect_path(p, sizeof(p), "foo", "ssh"), 0);
    ck_assert_str_eq(p, "/v1/servers/foo/ports/ssh/connect");
    ck_assert_int_eq(ptth_api_conn_path(p, sizeof(p), "foo", "abc_-DEF", "upstream"), 0);
    ck_assert_str_eq(p, "/v1/servers/foo/conns/abc_-DEF/upstream");
    ck_assert_int_eq(ptth_api_conn_path(p, sizeof(p), "foo", "abc", "close"), 0);
    ck_assert_str_eq(p, "/v1/servers/foo/conns/abc/close");
}
END_TEST

START_TEST(too_small_is_e2big_and_empty)
{
    char p[22]; /* "/v1/servers/foo/listen" is 22 bytes: no room for its NUL */
    ck_assert_int_eq(ptth_api_listen_path(p, sizeof(p), "foo"), -E2BIG);
    ck_assert_str_eq(p, "");
    ck_assert_int_eq(ptth_api_listen_path(p, sizeof(p), "fo"), 0);
    ck_assert_str_eq(p, "/v1/servers/fo/listen");
    ck_assert_int_eq(ptth_api_connect_path(p, sizeof(p), "foo", "ssh"), -E2BIG);
    ck_assert_int_eq(ptth_api_conn_path(p, sizeof(p), "foo", "id", "accept"), -E2BIG);
    ck_assert_int_eq(ptth_api_conn_path(p, 0, "foo", "id", "accept"), -E2BIG);
}
END_TEST

Suite *
ptth_test_suite(void)
{
    Suite *s = suite_create("api_path");
    TCase *tc = tcase_create("api_path");
    tcase_add_test(tc, builds_each_path);
    tcase_add_test(tc, too_small_is_e2big_and_empty);
    suite_add_tcase(s, tc);
    return s;
}
