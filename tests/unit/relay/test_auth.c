/* Unit tests of relay/auth: key tables, Authorization parsing, ACL rules. */
#include <stdio.h>
#include <string.h>

#include "auth.h"
#include "check_main.h"
#include "keys.h"
#include "principals.h"

#define KEY_A "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define KEY_B "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
#define KEY_C "CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC"
#define KEY_D "DDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDD"

static char items[16][PTTH_TEST_PRINCIPAL_LEN];
static char *ptrs[16];

/* A strlist of "PREFIX" + hash of key, for each (prefix, key) pair. */
static ptth_strlist
principals(size_t n, const char *const *names, const char *const *keys, size_t base)
{
    return ptth_test_principals(&items[base], &ptrs[base], n, names, keys);
}

static ptth_strlist
strs(size_t n, const char **v)
{
    return (ptth_strlist){(char **)v, n};
}

static void
build_ok(ptth_auth *a, const char **rules, size_t nrules, const char *admin)
{
    static const char *const snames[] = {"foo", "bar"}, *const skeys[] = {KEY_A, KEY_B};
    static const char *const cnames[] = {"alice", "bob"}, *const ckeys[] = {KEY_C, KEY_D};
    ptth_strlist servers = principals(2, snames, skeys, 0);
    ptth_strlist clients = principals(2, cnames, ckeys, 2);
    ptth_strlist allow = strs(nrules, rules);
    ptth_problems p = {0};
    int r = ptth_auth_build(a, &servers, &clients, &allow, admin, &p);
    for (size_t i = 0; i < p.count; i++)
        fprintf(stderr, "problem: %s\n", p.lines[i]);
    ck_assert_int_eq(r, 0);
    ck_assert_uint_eq(p.count, 0);
    ptth_problems_free(&p);
}

START_TEST(lookup_by_name_and_hash)
{
    ptth_auth a;
    build_ok(&a, NULL, 0, NULL);
    ck_assert_uint_eq(a.nservers, 2);
    ck_assert_uint_eq(a.nclients, 2);
    ck_assert_ptr_nonnull(ptth_auth_server(&a, "foo", 3));
    ck_assert_ptr_null(ptth_auth_server(&a, "alice", 5));
    ck_assert_ptr_nonnull(ptth_auth_client(&a, "bob", 3));
    ptth_key_hash h;
    ptth_key_hash_of(KEY_C, 43, &h);
    const ptth_principal *p = ptth_auth_client_by_hash(&a, &h);
    ck_assert_ptr_nonnull(p);
    ck_assert_str_eq(p->name, "alice");
    ck_assert_ptr_null(ptth_auth_server_by_hash(&a, &h));
    ptth_key_hash_of(KEY_B, 43, &h);
    ck_assert_str_eq(ptth_auth_server_by_hash(&a, &h)->name, "bar");
    ck_assert_ptr_null(ptth_auth_client_by_hash(&a, &h));
    ck_assert(!ptth_auth_is_admin(&a, &h));
    ptth_auth_free(&a);
}
END_TEST

START_TEST(acl_rules)
{
    const char *rules[] = {"alice=foo/ssh", "alice=bar/*", "bob=*/web", "bob=*/*"};
    ptth_auth a;
    build_ok(&a, rules, 3, NULL); /* the last rule (bob: any server, any port) left out */
    ck_assert(ptth_auth_allowed(&a, "alice", "foo", 3, "ssh", 3));
    ck_assert(!ptth_auth_allowed(&a, "alice", "foo", 3, "web", 3));
    ck_assert(ptth_auth_allowed(&a, "alice", "bar", 3, "anything", 8));
    ck_assert(!ptth_auth_allowed(&a, "alice", "baz", 3, "ssh", 3));
    ck_assert(ptth_auth_allowed(&a, "bob", "foo", 3, "web", 3));
    ck_assert(ptth_auth_allowed(&a, "bob", "whatever", 8, "web", 3));
    ck_assert(!ptth_auth_allowed(&a, "bob", "foo", 3, "ssh", 3));
    ck_assert(!ptth_auth_allowed(&a, "carol", "foo", 3, "ssh", 3));
    /* lengths are honoured: "fo" is not "foo" */
    ck_assert(!ptth_auth_allowed(&a, "alice", "foo", 2, "ssh", 3));
    ck_assert(!ptth_auth_allowed(&a, "alice", "foo", 3, "sshd", 4));
    ptth_auth_free(&a);

    build_ok(&a, NULL, 0, NULL);
    ck_assert(!ptth_auth_allowed(&a, "alice", "foo", 3, "ssh", 3)); /* no rule: nothing */
    ptth_auth_free(&a);
}
END_TEST

START_TEST(build_problems)
{
    static const char *const names[] = {"foo", "foo", "x"}, *const keys[] = {KEY_A, KEY_B, KEY_A};
    ptth_strlist servers = principals(3, names, keys, 0); /* foo twice; x shares foo's key */
    const char *bad_items[] = {"nohash", "bad name=0000000000000000000000000000000000000000000000000000000000000000",
                               "c=ABCDEF0000000000000000000000000000000000000000000000000000000000"};
    ptth_strlist clients = strs(3, bad_items);
    const char *rules[] = {"ghost=foo/ssh", "alice", "alice=foo", "x=nosuch/ssh"};
    ptth_strlist allow = strs(4, rules);
    ptth_problems p = {0};
    ptth_auth a;
    ck_assert_int_eq(ptth_auth_build(&a, &servers, &clients, &allow, "not-a-hash", &p), -1);
    ck_assert_uint_ge(p.count, 8);
    int dup = 0, same = 0, admin = 0, ghost = 0;
    for (size_t i = 0; i < p.count; i++) {
        dup += strstr(p.lines[i], "more than once") != NULL;
        same += strstr(p.lines[i], "same key hash") != NULL;
        admin += strstr(p.lines[i], "--admin-key-hash") != NULL;
        ghost += strstr(p.lines[i], "ghost") != NULL;
    }
    ck_assert_int_eq(dup, 1);
    ck_assert_int_eq(same, 1);
    ck_assert_int_eq(admin, 1);
    ck_assert_int_eq(ghost, 1);
    ptth_problems_free(&p);
    ck_assert_ptr_null(a.servers);
}
END_TEST

START_TEST(check_allow_option)
{
    char err[256];
    ck_assert_int_eq(ptth_auth_check_allow("alice=foo/ssh", err, sizeof(err)), 0);
    ck_assert_int_eq(ptth_auth_check_allow("alice=*/*", err, sizeof(err)), 0);
    ck_assert_int_eq(ptth_auth_check_allow("*=foo/ssh", err, sizeof(err)), -1);
    ck_assert_int_eq(ptth_auth_check_allow("alice=foo", err, sizeof(err)), -1);
    ck_assert_int_eq(ptth_auth_check_allow("alice=foo/", err, sizeof(err)), -1);
    ck_assert_int_eq(ptth_auth_check_allow("alice=/ssh", err, sizeof(err)), -1);
    ck_assert_int_eq(ptth_auth_check_allow("alice=f*/ssh", err, sizeof(err)), -1);
    ck_assert_int_eq(ptth_auth_check_allow("alice=foo/ssh/x", err, sizeof(err)), -1);
    ck_assert(strstr(err, "alice=foo/ssh/x") != NULL);
}
END_TEST

START_TEST(bearer_parsing)
{
    ptth_key_hash h, want;
    ptth_key_hash_of(KEY_A, 43, &want);
    ck_assert_int_eq(ptth_auth_bearer("Bearer " KEY_A, strlen("Bearer " KEY_A), &h), 0);
    ck_assert(ptth_key_hash_equal(&h, &want));
    ck_assert_int_eq(ptth_auth_bearer("bearer   " KEY_A "  ", strlen("bearer   " KEY_A "  "), &h), 0);
    ck_assert(ptth_key_hash_equal(&h, &want));
    ck_assert_int_lt(ptth_auth_bearer(KEY_A, 43, &h), 0);
    ck_assert_int_lt(ptth_auth_bearer("Bearer", 6, &h), 0);
    ck_assert_int_lt(ptth_auth_bearer("Bearer ", 7, &h), 0);
    ck_assert_int_lt(ptth_auth_bearer("Bearer abc", 10, &h), 0);
    ck_assert_int_lt(ptth_auth_bearer("Basic " KEY_A, strlen("Basic " KEY_A), &h), 0);
    ck_assert_int_lt(ptth_auth_bearer("Bearer " KEY_A "A", strlen("Bearer " KEY_A "A"), &h), 0);
    ck_assert_int_lt(ptth_auth_bearer("BearerX" KEY_A, strlen("BearerX" KEY_A), &h), 0);
    /* the length bounds the parse, not a NUL */
    ck_assert_int_lt(ptth_auth_bearer("Bearer " KEY_A, 20, &h), 0);
}
END_TEST

START_TEST(basic_password)
{
    /* "admin:" + KEY_A, base64 */
    char in[128], b64[256];
    snprintf(in, sizeof(in), "anyone:%s", KEY_A);
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = strlen(in), o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned char)in[i] << 16 | (i + 1 < n ? (unsigned char)in[i + 1] << 8 : 0) |
                     (i + 2 < n ? (unsigned char)in[i + 2] : 0);
        b64[o++] = tbl[(v >> 18) & 63];
        b64[o++] = tbl[(v >> 12) & 63];
        b64[o++] = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
        b64[o++] = i + 2 < n ? tbl[v & 63] : '=';
    }
    b64[o] = '\0';
    char header[300];
    snprintf(header, sizeof(header), "Basic %s", b64);
    ptth_key_hash h, want;
    ptth_key_hash_of(KEY_A, 43, &want);
    ck_assert_int_eq(ptth_auth_basic_password(header, strlen(header), &h), 0);
    ck_assert(ptth_key_hash_equal(&h, &want));
    ck_assert_int_lt(ptth_auth_basic_password("Basic !!!!", 10, &h), 0);
    ck_assert_int_lt(ptth_auth_basic_password("Basic YWJj", 10, &h), 0); /* "abc": no colon */
    ck_assert_int_lt(ptth_auth_bearer(header, strlen(header), &h), 0);
}
END_TEST

START_TEST(admin_key)
{
    ptth_key_hash h;
    ptth_key_hash_of("EEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEE", 43, &h);
    ptth_auth a;
    build_ok(&a, NULL, 0, h.hex);
    ck_assert(a.has_admin);
    ck_assert(ptth_auth_is_admin(&a, &h));
    ptth_key_hash other;
    ptth_key_hash_of(KEY_A, 43, &other);
    ck_assert(!ptth_auth_is_admin(&a, &other));
    ptth_auth_free(&a);
}
END_TEST

Suite *
ptth_test_suite(void)
{
    Suite *s = suite_create("relay_auth");
    TCase *tc = tcase_create("auth");
    tcase_add_test(tc, lookup_by_name_and_hash);
    tcase_add_test(tc, acl_rules);
    tcase_add_test(tc, build_problems);
    tcase_add_test(tc, check_allow_option);
    tcase_add_test(tc, bearer_parsing);
    tcase_add_test(tc, basic_password);
    tcase_add_test(tc, admin_key);
    suite_add_tcase(s, tc);
    return s;
}
