/* Unit tests of common/instance: the PTTH-Instance parser (strict, for
 * untrusted bytes) and the slot and life of a terminator. */
#include <errno.h>
#include <string.h>

#include "check_main.h"
#include "instance.h"

static int
parse(const char *v, ptth_instance *out)
{
    return ptth_instance_parse(v, strlen(v), out, NULL);
}

START_TEST(parses_slot_and_life)
{
    ptth_instance i;
    ck_assert_int_eq(parse("abcDEF012_-.Zz9", &i), 0);
    ck_assert_str_eq(i.slot, "abcDEF012_-");
    ck_assert_str_eq(i.life, "Zz9");
    ck_assert_int_eq(parse("a.b", &i), 0);
    char max[2 * PTTH_INSTANCE_PART_MAX + 2];
    memset(max, 'x', sizeof(max));
    max[PTTH_INSTANCE_PART_MAX] = '.';
    max[sizeof(max) - 1] = '\0';
    ck_assert_int_eq(parse(max, &i), 0);
    ck_assert_uint_eq(strlen(i.slot), PTTH_INSTANCE_PART_MAX);
    ck_assert_uint_eq(strlen(i.life), PTTH_INSTANCE_PART_MAX);
}
END_TEST

START_TEST(refuses_malformed)
{
    static const char *const bad[] = {"",     ".",    "abc",   "abc.",  ".abc", "a..b",  "a.b.c",      "a b.c",
                                      "a.b ", " a.b", "a+b.c", "a/b.c", "a.b=", "a.b\r", "a.\xc3\xa9", "a,b.c"};
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        ptth_instance i;
        memset(&i, 'q', sizeof(i));
        const char *why = NULL;
        ck_assert_msg(ptth_instance_parse(bad[k], strlen(bad[k]), &i, &why) == -EINVAL, "took '%s'", bad[k]);
        ck_assert_ptr_nonnull(why);
        ck_assert_str_eq(i.slot, ""); /* cleared */
    }
    /* a NUL inside, a part too long, the whole too long */
    ptth_instance i;
    ck_assert_int_eq(ptth_instance_parse("ab\0c.d", 6, &i, NULL), -EINVAL);
    char longer[2 * PTTH_INSTANCE_PART_MAX + 3];
    memset(longer, 'x', sizeof(longer));
    longer[PTTH_INSTANCE_PART_MAX + 1] = '.';
    longer[PTTH_INSTANCE_PART_MAX + 3] = '\0';
    ck_assert_int_eq(parse(longer, &i), -EINVAL);
    longer[PTTH_INSTANCE_PART_MAX + 1] = 'x';
    longer[PTTH_INSTANCE_PART_MAX + 3] = 'x';
    longer[2] = '.';
    longer[sizeof(longer) - 1] = '\0';
    ck_assert_int_eq(parse(longer, &i), -EINVAL);
    ck_assert_int_eq(ptth_instance_parse(NULL, 0, &i, NULL), -EINVAL);
}
END_TEST

START_TEST(slot_is_stable_and_depends_on_everything)
{
    const char *id1[] = {"web", "ssh=127.0.0.1:22"};
    const char *id2[] = {"web", "ssh=127.0.0.1:23"};
    const char *split1[] = {"ab", "c"};
    const char *split2[] = {"a", "bc"};
    char a[PTTH_INSTANCE_PART_MAX + 1], b[PTTH_INSTANCE_PART_MAX + 1];
    ck_assert_int_eq(ptth_instance_slot("host1", "ptth_server", id1, 2, a), 0);
    ck_assert_int_eq(ptth_instance_slot("host1", "ptth_server", id1, 2, b), 0);
    ck_assert_str_eq(a, b);
    ck_assert_uint_eq(strlen(a), PTTH_INSTANCE_SLOT_LEN);
    ptth_instance p;
    char text[PTTH_INSTANCE_TEXT_MAX + 1];
    memset(&p, 0, sizeof(p));
    memcpy(p.slot, a, sizeof(a));
    strcpy(p.life, "x");
    ptth_instance_format(&p, text);
    ck_assert_int_eq(parse(text, &p), 0); /* base64url */
    ck_assert_int_eq(ptth_instance_slot("host2", "ptth_server", id1, 2, b), 0);
    ck_assert_str_ne(a, b);
    ck_assert_int_eq(ptth_instance_slot("host1", "ptth_proxy", id1, 2, b), 0);
    ck_assert_str_ne(a, b);
    ck_assert_int_eq(ptth_instance_slot("host1", "ptth_server", id2, 2, b), 0);
    ck_assert_str_ne(a, b);
    ck_assert_int_eq(ptth_instance_slot("host1", "ptth_server", id1, 1, b), 0);
    ck_assert_str_ne(a, b);
    ck_assert_int_eq(ptth_instance_slot("h", "p", split1, 2, a), 0);
    ck_assert_int_eq(ptth_instance_slot("h", "p", split2, 2, b), 0);
    ck_assert_str_ne(a, b);
}
END_TEST

START_TEST(make_keeps_the_slot_and_draws_a_new_life)
{
    const char *id[] = {"web"};
    ptth_instance x, y;
    ck_assert_int_eq(ptth_instance_make("ptth_server", id, 1, &x), 0);
    ck_assert_int_eq(ptth_instance_make("ptth_server", id, 1, &y), 0);
    ck_assert_str_eq(x.slot, y.slot);
    ck_assert_str_ne(x.life, y.life);
    ck_assert_uint_eq(strlen(x.life), PTTH_INSTANCE_LIFE_LEN);
    char text[PTTH_INSTANCE_TEXT_MAX + 1];
    ptth_instance_format(&x, text);
    ck_assert_uint_eq(strlen(text), PTTH_INSTANCE_SLOT_LEN + 1 + PTTH_INSTANCE_LIFE_LEN);
    ptth_instance back;
    ck_assert_int_eq(parse(text, &back), 0);
    ck_assert_str_eq(back.slot, x.slot);
    ck_assert_str_eq(back.life, x.life);
}
END_TEST

Suite *
ptth_test_suite(void)
{
    Suite *s = suite_create("common_instance");
    TCase *tc = tcase_create("instance");
    tcase_add_test(tc, parses_slot_and_life);
    tcase_add_test(tc, refuses_malformed);
    tcase_add_test(tc, slot_is_stable_and_depends_on_everything);
    tcase_add_test(tc, make_keeps_the_slot_and_draws_a_new_life);
    suite_add_tcase(s, tc);
    return s;
}
