/* Unit tests of common/names: SPEC §2 names, 1 to 64 of A-Z a-z 0-9 . _ - */
#include <string.h>

#include "check_main.h"
#include "names.h"

static void
fill(char *buf, size_t n)
{
    for (size_t i = 0; i < n; i++)
        buf[i] = "abcXYZ019._-"[i % 12];
    buf[n] = '\0';
}

START_TEST(length_boundaries)
{
    char buf[100];
    fill(buf, 0);
    ck_assert(!ptth_name_valid(buf, 0));
    ck_assert(!ptth_name_valid_str(""));
    fill(buf, 1);
    ck_assert(ptth_name_valid(buf, 1));
    ck_assert(ptth_name_valid_str(buf));
    fill(buf, 64);
    ck_assert(ptth_name_valid(buf, 64));
    ck_assert(ptth_name_valid_str(buf));
    fill(buf, 65);
    ck_assert(!ptth_name_valid(buf, 65));
    ck_assert(!ptth_name_valid_str(buf));
    fill(buf, 99);
    ck_assert(!ptth_name_valid_str(buf));
}
END_TEST

static int
allowed(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

/* every byte value, alone and in the middle of an otherwise good name */
START_TEST(every_byte_value)
{
    int n_allowed = 0;
    for (int c = 0; c < 256; c++) {
        char one[1] = {(char)c};
        char mid[3] = {'a', (char)c, 'b'};
        ck_assert_msg(ptth_name_valid(one, 1) == (allowed(c) != 0), "byte 0x%02x alone", c);
        ck_assert_msg(ptth_name_valid(mid, 3) == (allowed(c) != 0), "byte 0x%02x inside", c);
        n_allowed += allowed(c) != 0;
    }
    ck_assert_int_eq(n_allowed, 26 + 26 + 10 + 3);
}
END_TEST

START_TEST(classes)
{
    ck_assert(ptth_name_valid_str("ABCDEFGHIJKLMNOPQRSTUVWXYZ"));
    ck_assert(ptth_name_valid_str("abcdefghijklmnopqrstuvwxyz"));
    ck_assert(ptth_name_valid_str("0123456789"));
    ck_assert(ptth_name_valid_str("."));
    ck_assert(ptth_name_valid_str(".."));
    ck_assert(ptth_name_valid_str("_"));
    ck_assert(ptth_name_valid_str("-"));
    ck_assert(ptth_name_valid_str("web-1.example_x"));
    const char *bad[] = {"a b", "a/b", "a=b", "a:b", "a@b", "a*b", "a\tb", "a\nb", "caf\xc3\xa9", "a%2fb", "a+b", "a~b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(!ptth_name_valid_str(bad[i]), "'%s' accepted", bad[i]);
}
END_TEST

/* the length-based form must not look past len nor stop at a NUL */
START_TEST(length_form_uses_len)
{
    ck_assert(ptth_name_valid("abc/def", 3));
    ck_assert(!ptth_name_valid("ab\0cd", 5));
    ck_assert(ptth_name_valid_str("ab\0cd"));
    ck_assert(!ptth_name_valid(NULL, 3));
    ck_assert(!ptth_name_valid_str(NULL));
}
END_TEST

Suite *
ptth_test_suite(void)
{
    Suite *s = suite_create("names");
    TCase *tc = tcase_create("names");
    tcase_add_test(tc, length_boundaries);
    tcase_add_test(tc, every_byte_value);
    tcase_add_test(tc, classes);
    tcase_add_test(tc, length_form_uses_len);
    suite_add_tcase(s, tc);
    return s;
}
