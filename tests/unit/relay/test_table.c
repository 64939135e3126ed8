/* Unit tests of relay/table: the string-keyed hash table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "table.h"

START_TEST(put_get_remove)
{
    ptth_table t;
    ptth_table_init(&t);
    ck_assert_ptr_null(ptth_table_get(&t, "a", 1));
    ck_assert_ptr_null(ptth_table_remove(&t, "a", 1));
    int v1 = 1, v2 = 2;
    ck_assert_int_eq(ptth_table_put(&t, "a", 1, &v1), 0);
    ck_assert_int_eq(ptth_table_put(&t, "ab", 2, &v2), 0);
    ck_assert_int_lt(ptth_table_put(&t, "a", 1, &v2), 0);
    ck_assert_ptr_eq(ptth_table_get(&t, "a", 1), &v1);
    ck_assert_ptr_eq(ptth_table_get(&t, "abc", 2), &v2); /* length bounds the key */
    ck_assert_ptr_null(ptth_table_get(&t, "b", 1));
    ck_assert_uint_eq(t.count, 2);
    ck_assert_ptr_eq(ptth_table_remove(&t, "a", 1), &v1);
    ck_assert_ptr_null(ptth_table_get(&t, "a", 1));
    ck_assert_uint_eq(t.count, 1);
    ptth_table_dispose(&t);
}
END_TEST

START_TEST(grows_and_iterates)
{
    enum { N = 5000 };
    static char keys[N][16];
    static int values[N];
    ptth_table t;
    ptth_table_init(&t);
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof(keys[i]), "k%d", i);
        values[i] = i;
        ck_assert_int_eq(ptth_table_put(&t, keys[i], strlen(keys[i]), &values[i]), 0);
    }
    ck_assert_uint_eq(t.count, N);
    for (int i = 0; i < N; i++)
        ck_assert_ptr_eq(ptth_table_get(&t, keys[i], strlen(keys[i])), &values[i]);
    size_t n;
    void **all = ptth_table_values(&t, &n);
    ck_assert_uint_eq(n, N);
    long sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += *(int *)all[i];
    ck_assert_int_eq(sum, (long)N * (N - 1) / 2);
    /* the snapshot stays usable while the table changes */
    for (size_t i = 0; i < n; i++) {
        int *v = all[i];
        ck_assert_ptr_eq(ptth_table_remove(&t, keys[*v], strlen(keys[*v])), v);
    }
    free(all);
    ck_assert_uint_eq(t.count, 0);
    ck_assert_ptr_null(ptth_table_values(&t, &n));
    ck_assert_uint_eq(n, 0);
    ptth_table_dispose(&t);
}
END_TEST

Suite *
ptth_test_suite(void)
{
    Suite *s = suite_create("relay_table");
    TCase *tc = tcase_create("table");
    tcase_add_test(tc, put_get_remove);
    tcase_add_test(tc, grows_and_iterates);
    suite_add_tcase(s, tc);
    return s;
}
