/* Unit tests of relay/peerlimit: the per-address table (SPEC §9.6):
 * address groups (IPv6 /64, IPv4-mapped), the connection cap at its
 * boundary, refusal-line throttling, authentication failures, penalties and
 * their end, and what a full table does. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "check_main.h"
#include "peerlimit.h"

static ptth_peer_key
key_of(const char *text)
{
    ptth_peer_key k;
    ck_assert_msg(ptth_peer_key_from_text(&k, text) == 0, "bad address %s", text);
    return k;
}

static const ptth_peer_auth_limits lim = {.limit = 3, .window_ms = 60000, .penalty_ms = 10000};

START_TEST(keys_group_ipv6_by_64)
{
    char out[PTTH_PEER_KEY_STRLEN];
    ptth_peer_key a = key_of("2001:db8:1:2::1"), b = key_of("[2001:db8:1:2:ffff:ffff:ffff:ffff]:443"),
                  c = key_of("2001:db8:1:3::1");
    ck_assert_int_eq(memcmp(&a, &b, sizeof(a)), 0);
    ck_assert_int_ne(memcmp(&a, &c, sizeof(a)), 0);
    ptth_peer_key_format(&a, out, sizeof(out));
    ck_assert_str_eq(out, "2001:db8:1:2::/64");
    /* IPv4 addresses are their own group; mapped IPv6 is IPv4 */
    ptth_peer_key d = key_of("203.0.113.9:5000"), e = key_of("::ffff:203.0.113.9"), f = key_of("203.0.113.10");
    ck_assert_int_eq(memcmp(&d, &e, sizeof(d)), 0);
    ck_assert_int_ne(memcmp(&d, &f, sizeof(d)), 0);
    ptth_peer_key_format(&d, out, sizeof(out));
    ck_assert_str_eq(out, "203.0.113.9");
    /* from a socket address */
    struct sockaddr_in6 sin6;
    memset(&sin6, 0, sizeof(sin6));
    sin6.sin6_family = AF_INET6;
    inet_pton(AF_INET6, "2001:db8:1:2:abcd::7", &sin6.sin6_addr);
    ptth_peer_key g;
    ck_assert_int_eq(ptth_peer_key_from_sockaddr(&g, (struct sockaddr *)&sin6), 0);
    ck_assert_int_eq(memcmp(&a, &g, sizeof(a)), 0);
    struct sockaddr sa = {.sa_family = AF_UNIX};
    ck_assert_int_eq(ptth_peer_key_from_sockaddr(&g, &sa), -EAFNOSUPPORT);
    /* what is no address */
    const char *bad[] = {"", "unknown", "1.2.3", "[::1", "1.2.3.4.5", "host:80", "[]:1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(ptth_peer_key_from_text(&g, bad[i]) == -EINVAL, "accepted '%s'", bad[i]);
}
END_TEST

START_TEST(init_bounds)
{
    ptth_peertable t;
    ck_assert_int_eq(ptth_peertable_init(&t, PTTH_PEER_CAPACITY_MIN - 1), -EINVAL);
    ck_assert_int_eq(ptth_peertable_init(&t, PTTH_PEER_CAPACITY_MAX + 1), -EINVAL);
    ck_assert_int_eq(ptth_peertable_init(&t, 100), 0);
    ck_assert_uint_eq(t.capacity, 100);
    ck_assert_uint_eq(t.nbuckets, 128);
    ptth_peertable_dispose(&t);
}
END_TEST

START_TEST(cap_at_its_boundary)
{
    ptth_peertable t;
    ck_assert_int_eq(ptth_peertable_init(&t, 16), 0);
    ptth_peer_key k = key_of("198.51.100.7"), other = key_of("198.51.100.8");
    uint32_t slots[5], s;
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(ptth_peertable_conn_open(&t, &k, 4, 0, &slots[i]), PTTH_PEER_ADMIT);
        ck_assert_uint_eq(slots[i], slots[0]);
    }
    ck_assert_uint_eq(ptth_peertable_at(&t, slots[0])->conns, 4);
    /* the fifth is refused, and so is every further one, counted */
    ck_assert_int_eq(ptth_peertable_conn_open(&t, &k, 4, 0, &slots[4]), PTTH_PEER_OVER_CAP);
    ck_assert_uint_eq(slots[4], slots[0]);
    ck_assert_int_eq(ptth_peertable_conn_open(&t, &k, 4, 0, &s), PTTH_PEER_OVER_CAP);
    ck_assert_uint_eq(ptth_peertable_at(&t, s)->refused, 2);
    ck_assert_uint_eq(ptth_peertable_at(&t, s)->conns, 4);
    /* another address is not affected */
    ck_assert_int_eq(ptth_peertable_conn_open(&t, &other, 4, 0, &s), PTTH_PEER_ADMIT);
    ck_assert_uint_eq(ptth_peertable_heaviest(&t), slots[0]);
    /* one closes: one more fits, not two */
    ptth_peertable_conn_close(&t, slots[3]);
    ck_assert_int_eq(ptth_peertable_conn_open(&t, &k, 4, 0, &s), PTTH_PEER_ADMIT);
    ck_assert_int_eq(ptth_peertable_conn_open(&t, &k, 4, 0, &s), PTTH_PEER_OVER_CAP);
    /* cap 0: no cap, still counted */
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(ptth_peertable_conn_open(&t, &k, 0, 0, &s), PTTH_PEER_ADMIT);
    ck_assert_uint_eq(ptth_peertable_at(&t, s)->conns, 104);
    /* closing NONE or an unknown slot is harmless */
    ptth_peertable_conn_close(&t, PTTH_PEER_NONE);
    ptth_peertable_conn_close(&t, 12345);
    ptth_peertable_dispose(&t);
}
END_TEST

START_TEST(refusal_lines_once_per_interval)
{
    ptth_peertable t;
    ck_assert_int_eq(ptth_peertable_init(&t, 16), 0);
    ptth_peer_key k = key_of("198.51.100.7");
    uint32_t s, refused;
    ck_assert_int_eq(ptth_peertable_conn_open(&t, &k, 1, 0, &s), PTTH_PEER_ADMIT);
    ck_assert(!ptth_peertable_refusal_log(&t, s, 1000, 60000, &refused)); /* nothing refused yet */
    ck_assert_int_eq(ptth_peertable_conn_open(&t, &k, 1, 0, &s), PTTH_PEER_OVER_CAP);
    ck_assert(ptth_peertable_refusal_log(&t, s, 1000, 60000, &refused));
    ck_assert_uint_eq(refused, 1);
    for (int i = 0; i < 500; i++) {
        ck_assert_int_eq(ptth_peertable_conn_open(&t, &k, 1, 0, &s), PTTH_PEER_OVER_CAP);
        ck_assert(!ptth_peertable_refusal_log(&t, s, 1000 + i * 100, 60000, &refused));
    }
    ck_assert_int_eq(ptth_peertable_conn_open(&t, &k, 1, 0, &s), PTTH_PEER_OVER_CAP);
    ck_assert(ptth_peertable_refusal_log(&t, s, 61000, 60000, &refused));
    ck_assert_uint_eq(refused, 501);
    ck_assert(!ptth_peertable_refusal_log(&t, PTTH_PEER_NONE, 200000, 60000, &refused));
    ptth_peertable_dispose(&t);
}
END_TEST

START_TEST(failures_start_a_penalty_that_ends_on_time)
{
    ptth_peertable t;
    ck_assert_int_eq(ptth_peertable_init(&t, 16), 0);
    ptth_peer_key k = key_of("203.0.113.9"), other = key_of("203.0.113.10");
    uint32_t n;
    ck_assert_int_eq(ptth_peertable_penalty_left(&t, &k, 0), 0);
    ck_assert_int_eq(ptth_peertable_auth_failed(&t, &k, &lim, 1000, &n), PTTH_PEER_FAIL_LOG);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(ptth_peertable_auth_failed(&t, &k, &lim, 1001, &n), PTTH_PEER_FAIL_LOG);
    ck_assert_int_eq(ptth_peertable_penalty_left(&t, &k, 1001), 0);
    /* the limit-th failure starts the penalty */
    ck_assert_int_eq(ptth_peertable_auth_failed(&t, &k, &lim, 1002, &n), PTTH_PEER_FAIL_PENALTY);
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(ptth_peertable_penalty_left(&t, &k, 1002), 10000);
    ck_assert_int_eq(ptth_peertable_penalty_left(&t, &k, 11001), 1);
    ck_assert_int_eq(ptth_peertable_penalty_left(&t, &other, 5000), 0);
    /* failures in the penalty (a request that got through somehow) log nothing */
    ck_assert_int_eq(ptth_peertable_auth_failed(&t, &k, &lim, 5000, &n), PTTH_PEER_FAIL_QUIET);
    /* it ends on time, and the address starts again from no failures */
    ck_assert_int_eq(ptth_peertable_penalty_left(&t, &k, 11002), 0);
    ck_assert_int_eq(ptth_peertable_auth_failed(&t, &k, &lim, 11003, &n), PTTH_PEER_FAIL_LOG);
    ck_assert_uint_eq(n, 1);
    ptth_peertable_dispose(&t);
}
END_TEST

START_TEST(failures_are_counted_in_a_window)
{
    ptth_peertable t;
    ck_assert_int_eq(ptth_peertable_init(&t, 16), 0);
    ptth_peer_key k = key_of("203.0.113.9");
    uint32_t n;
    ck_assert_int_eq(ptth_peertable_auth_failed(&t, &k, &lim, 0, &n), PTTH_PEER_FAIL_LOG);
    ck_assert_int_eq(ptth_peertable_auth_failed(&t, &k, &lim, 59999, &n), PTTH_PEER_FAIL_LOG);
    ck_assert_uint_eq(n, 2);
    /* 60 s after the window's first failure a new window starts */
    ck_assert_int_eq(ptth_peertable_auth_failed(&t, &k, &lim, 60000, &n), PTTH_PEER_FAIL_LOG);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(ptth_peertable_penalty_left(&t, &k, 60000), 0);
    /* limit 0: never a penalty */
    ptth_peer_auth_limits off = lim;
    off.limit = 0;
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(ptth_peertable_auth_failed(&t, &k, &off, 60001, &n), PTTH_PEER_FAIL_LOG);
    ck_assert_int_eq(ptth_peertable_penalty_left(&t, &k, 60001), 0);
    ptth_peertable_dispose(&t);
}
END_TEST

START_TEST(ipv6_neighbours_share_a_penalty)
{
    ptth_peertable t;
    ck_assert_int_eq(ptth_peertable_init(&t, 16), 0);
    ptth_peer_key a = key_of("2001:db8:1:2::1"), b = key_of("2001:db8:1:2::2"), c = key_of("2001:db8:1:3::1");
    uint32_t n;
    ck_assert_int_eq(ptth_peertable_auth_failed(&t, &a, &lim, 0, &n), PTTH_PEER_FAIL_LOG);
    ck_assert_int_eq(ptth_peertable_auth_failed(&t, &b, &lim, 0, &n), PTTH_PEER_FAIL_LOG);
    ck_assert_int_eq(ptth_peertable_auth_failed(&t, &a, &lim, 0, &n), PTTH_PEER_FAIL_PENALTY);
    ck_assert_int_gt(ptth_peertable_penalty_left(&t, &b, 1), 0);
    ck_assert_int_eq(ptth_peertable_penalty_left(&t, &c, 1), 0);
    /* and the same /64's connections count together */
    uint32_t s;
    ck_assert_int_eq(ptth_peertable_conn_open(&t, &a, 2, 0, &s), PTTH_PEER_ADMIT);
    ck_assert_int_eq(ptth_peertable_conn_open(&t, &b, 2, 0, &s), PTTH_PEER_ADMIT);
    ck_assert_int_eq(ptth_peertable_conn_open(&t, &a, 2, 0, &s), PTTH_PEER_OVER_CAP);
    ck_assert_int_eq(ptth_peertable_conn_open(&t, &c, 2, 0, &s), PTTH_PEER_ADMIT);
    ptth_peertable_dispose(&t);
}
END_TEST

static ptth_peer_key
nth_key(unsigned i)
{
    char text[32];
    snprintf(text, sizeof(text), "10.%u.%u.%u", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff);
    return key_of(text);
}

START_TEST(full_table_forgets_the_least_recently_seen)
{
    ptth_peertable t;
    ck_assert_int_eq(ptth_peertable_init(&t, 16), 0);
    uint32_t n;
    /* 16 addresses with failures fill it */
    for (unsigned i = 0; i < 16; i++) {
        ptth_peer_key k = nth_key(i);
        ck_assert_int_eq(ptth_peertable_auth_failed(&t, &k, &lim, 0, &n), PTTH_PEER_FAIL_LOG);
    }
    ck_assert_uint_eq(t.count, 16);
    /* address 0 is seen again: address 1 is now the least recently seen */
    ptth_peer_key k0 = nth_key(0), k1 = nth_key(1), k16 = nth_key(16);
    ck_assert_int_eq(ptth_peertable_auth_failed(&t, &k0, &lim, 0, &n), PTTH_PEER_FAIL_LOG);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(ptth_peertable_auth_failed(&t, &k16, &lim, 0, &n), PTTH_PEER_FAIL_LOG);
    ck_assert_uint_eq(t.count, 16);
    ck_assert_uint_eq(t.evicted, 1);
    ck_assert_ptr_null(ptth_peertable_find(&t, &k1));
    ck_assert_ptr_nonnull(ptth_peertable_find(&t, &k0));
    ck_assert_uint_eq(ptth_peertable_find(&t, &k0)->failures, 2);
    ptth_peertable_dispose(&t);
}
END_TEST

START_TEST(full_table_of_open_connections_fails_open)
{
    ptth_peertable t;
    ck_assert_int_eq(ptth_peertable_init(&t, 16), 0);
    uint32_t slots[16], s, n;
    for (unsigned i = 0; i < 16; i++) {
        ptth_peer_key k = nth_key(i);
        ck_assert_int_eq(ptth_peertable_conn_open(&t, &k, 1, 0, &slots[i]), PTTH_PEER_ADMIT);
    }
    /* every entry is pinned by an open connection: a newcomer is not
     * tracked (accepted uncounted), its failures are logged, never penalised */
    ptth_peer_key nk = nth_key(100);
    ck_assert_int_eq(ptth_peertable_conn_open(&t, &nk, 1, 0, &s), PTTH_PEER_UNTRACKED);
    ck_assert_uint_eq(s, PTTH_PEER_NONE);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(ptth_peertable_auth_failed(&t, &nk, &lim, 0, &n), PTTH_PEER_FAIL_LOG);
    ck_assert_int_eq(ptth_peertable_penalty_left(&t, &nk, 0), 0);
    ck_assert_uint_eq(t.full, 11);
    /* the pinned ones keep their counts */
    ptth_peer_key k3 = nth_key(3);
    ck_assert_int_eq(ptth_peertable_conn_open(&t, &k3, 1, 0, &s), PTTH_PEER_OVER_CAP);
    /* one closes: its entry may go, and the newcomer gets in */
    ptth_peertable_conn_close(&t, slots[5]);
    ck_assert_int_eq(ptth_peertable_conn_open(&t, &nk, 1, 0, &s), PTTH_PEER_ADMIT);
    ck_assert_uint_eq(s, slots[5]);
    ptth_peer_key k5 = nth_key(5);
    ck_assert_ptr_null(ptth_peertable_find(&t, &k5));
    ptth_peertable_dispose(&t);
}
END_TEST

START_TEST(churn_keeps_the_table_consistent)
{
    /* many addresses coming and going through a small table: counts stay
     * exact for the pinned ones and nothing is lost or doubled */
    ptth_peertable t;
    ck_assert_int_eq(ptth_peertable_init(&t, 64), 0);
    uint32_t held[32], s, n;
    for (unsigned i = 0; i < 32; i++) {
        ptth_peer_key k = nth_key(i);
        ck_assert_int_eq(ptth_peertable_conn_open(&t, &k, 0, 0, &held[i]), PTTH_PEER_ADMIT);
    }
    for (unsigned i = 1000; i < 21000; i++) {
        ptth_peer_key k = nth_key(i);
        (void)ptth_peertable_auth_failed(&t, &k, &lim, i, &n);
        if (i % 3 == 0) {
            ck_assert_int_eq(ptth_peertable_conn_open(&t, &k, 0, i, &s), PTTH_PEER_ADMIT);
            ptth_peertable_conn_close(&t, s);
        }
    }
    ck_assert_uint_eq(t.count, 64);
    for (unsigned i = 0; i < 32; i++) {
        ptth_peer_key k = nth_key(i);
        ck_assert_ptr_eq(ptth_peertable_find(&t, &k), ptth_peertable_at(&t, held[i]));
        ck_assert_uint_eq(ptth_peertable_at(&t, held[i])->conns, 1);
    }
    ptth_peertable_dispose(&t);
}
END_TEST

Suite *
ptth_test_suite(void)
{
    Suite *s = suite_create("relay_peerlimit");
    TCase *tc = tcase_create("peerlimit");
    tcase_add_test(tc, keys_group_ipv6_by_64);
    tcase_add_test(tc, init_bounds);
    tcase_add_test(tc, cap_at_its_boundary);
    tcase_add_test(tc, refusal_lines_once_per_interval);
    tcase_add_test(tc, failures_start_a_penalty_that_ends_on_time);
    tcase_add_test(tc, failures_are_counted_in_a_window);
    tcase_add_test(tc, ipv6_neighbours_share_a_penalty);
    tcase_add_test(tc, full_table_forgets_the_least_recently_seen);
    tcase_add_test(tc, full_table_of_open_connections_fails_open);
    tcase_add_test(tc, churn_keeps_the_table_consistent);
    suite_add_tcase(s, tc);
    return s;
}
