/* Unit tests of relay/addr: CIDR rules and client addresses (X-Forwarded-For). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "addr.h"
#include "check_main.h"

static struct sockaddr_storage peer;

static const struct sockaddr *
v4(const char *ip, unsigned port)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)&peer;
    memset(&peer, 0, sizeof(peer));
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, ip, &sin->sin_addr);
    return (const struct sockaddr *)&peer;
}

static const struct sockaddr *
v6(const char *ip, unsigned port)
{
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&peer;
    memset(&peer, 0, sizeof(peer));
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons((uint16_t)port);
    inet_pton(AF_INET6, ip, &sin6->sin6_addr);
    return (const struct sockaddr *)&peer;
}

START_TEST(cidr_parse_and_match)
{
    ptth_cidr c;
    uint8_t a[16];
    ck_assert_int_eq(ptth_cidr_parse("10.0.0.0/8", &c), 0);
    ck_assert_uint_eq(c.prefix, 8);
    inet_pton(AF_INET, "10.200.3.4", a);
    ck_assert(ptth_cidr_match(&c, AF_INET, a));
    inet_pton(AF_INET, "11.0.0.1", a);
    ck_assert(!ptth_cidr_match(&c, AF_INET, a));
    ck_assert_int_eq(ptth_cidr_parse("192.168.1.7", &c), 0);
    ck_assert_uint_eq(c.prefix, 32);
    inet_pton(AF_INET, "192.168.1.7", a);
    ck_assert(ptth_cidr_match(&c, AF_INET, a));
    inet_pton(AF_INET, "192.168.1.6", a);
    ck_assert(!ptth_cidr_match(&c, AF_INET, a));
    ck_assert_int_eq(ptth_cidr_parse("172.16.0.0/12", &c), 0);
    inet_pton(AF_INET, "172.31.255.255", a);
    ck_assert(ptth_cidr_match(&c, AF_INET, a));
    inet_pton(AF_INET, "172.32.0.0", a);
    ck_assert(!ptth_cidr_match(&c, AF_INET, a));
    ck_assert_int_eq(ptth_cidr_parse("0.0.0.0/0", &c), 0);
    ck_assert(ptth_cidr_match(&c, AF_INET, a));
    ck_assert_int_eq(ptth_cidr_parse("fd00::/8", &c), 0);
    inet_pton(AF_INET6, "fd12::1", a);
    ck_assert(ptth_cidr_match(&c, AF_INET6, a));
    ck_assert(!ptth_cidr_match(&c, AF_INET, a));
    ck_assert_int_eq(ptth_cidr_parse("::1", &c), 0);
    ck_assert_uint_eq(c.prefix, 128);
    /* IPv4-mapped form counts as IPv4 */
    ck_assert_int_eq(ptth_cidr_parse("::ffff:127.0.0.1", &c), 0);
    ck_assert_int_eq(c.family, AF_INET);

    const char *bad[] = {"", "10.0.0.0/33", "::/129", "10.0.0/8", "10.0.0.0/", "10.0.0.0/8x", "host", "1.2.3.4/-1", "1.2.3.4/0008"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(ptth_cidr_parse(bad[i], &c) < 0, "%s", bad[i]);
    char err[128];
    ck_assert_int_eq(ptth_cidr_check("10.0.0.0/8", err, sizeof(err)), 0);
    ck_assert_int_eq(ptth_cidr_check("nope", err, sizeof(err)), -1);
    ck_assert(strstr(err, "nope") != NULL);
}
END_TEST

START_TEST(peer_address)
{
    char out[PTTH_ADDR_STRLEN];
    ptth_client_addr(v4("192.0.2.1", 5555), NULL, 0, NULL, 0, out, sizeof(out));
    ck_assert_str_eq(out, "192.0.2.1:5555");
    ptth_client_addr(v6("2001:db8::1", 443), NULL, 0, NULL, 0, out, sizeof(out));
    ck_assert_str_eq(out, "[2001:db8::1]:443");
    ptth_client_addr(v6("::ffff:10.1.2.3", 80), NULL, 0, NULL, 0, out, sizeof(out));
    ck_assert_str_eq(out, "10.1.2.3:80");
    ptth_client_addr(NULL, NULL, 0, NULL, 0, out, sizeof(out));
    ck_assert_str_eq(out, "unknown");
}
END_TEST

START_TEST(forwarded_for)
{
    char out[PTTH_ADDR_STRLEN];
    ptth_cidr trusted[2];
    ck_assert_int_eq(ptth_cidr_parse("127.0.0.0/8", &trusted[0]), 0);
    ck_assert_int_eq(ptth_cidr_parse("10.0.0.0/8", &trusted[1]), 0);
    const char *xff = "198.51.100.7, 10.0.0.5";

    /* untrusted peer: the header is ignored */
    ptth_client_addr(v4("192.0.2.1", 1), xff, strlen(xff), trusted, 2, out, sizeof(out));
    ck_assert_str_eq(out, "192.0.2.1:1");
    /* no rules: ignored too */
    ptth_client_addr(v4("127.0.0.1", 1), xff, strlen(xff), trusted, 0, out, sizeof(out));
    ck_assert_str_eq(out, "127.0.0.1:1");
    /* trusted peer: rightmost untrusted entry, port 0 */
    ptth_client_addr(v4("127.0.0.1", 1), xff, strlen(xff), trusted, 2, out, sizeof(out));
    ck_assert_str_eq(out, "198.51.100.7:0");
    /* a client that forges the left part cannot hide behind it */
    const char *forged = "1.1.1.1, 203.0.113.9";
    ptth_client_addr(v4("127.0.0.1", 1), forged, strlen(forged), trusted, 2, out, sizeof(out));
    ck_assert_str_eq(out, "203.0.113.9:0");
    /* all trusted: the leftmost */
    const char *all = "10.1.1.1,10.2.2.2";
    ptth_client_addr(v4("127.0.0.1", 1), all, strlen(all), trusted, 2, out, sizeof(out));
    ck_assert_str_eq(out, "10.1.1.1:0");
    /* IPv6 and port forms */
    const char *v6x = "[2001:db8::7]:1234";
    ptth_client_addr(v4("127.0.0.1", 1), v6x, strlen(v6x), trusted, 2, out, sizeof(out));
    ck_assert_str_eq(out, "[2001:db8::7]:0");
    const char *v4p = "198.51.100.8:999";
    ptth_client_addr(v4("127.0.0.1", 1), v4p, strlen(v4p), trusted, 2, out, sizeof(out));
    ck_assert_str_eq(out, "198.51.100.8:0");
    /* garbage falls back to the peer */
    const char *junk = "not an address";
    ptth_client_addr(v4("127.0.0.1", 7), junk, strlen(junk), trusted, 2, out, sizeof(out));
    ck_assert_str_eq(out, "127.0.0.1:7");
    const char *junk2 = ",,,";
    ptth_client_addr(v4("127.0.0.1", 7), junk2, strlen(junk2), trusted, 2, out, sizeof(out));
    ck_assert_str_eq(out, "127.0.0.1:7");
    /* garbage left of a good entry stops the walk at the good one */
    const char *mixed = "garbage, 198.51.100.9";
    ptth_client_addr(v4("127.0.0.1", 7), mixed, strlen(mixed), trusted, 2, out, sizeof(out));
    ck_assert_str_eq(out, "198.51.100.9:0");
}
END_TEST

START_TEST(trusted_peers)
{
    ptth_cidr c[2];
    ck_assert_int_eq(ptth_cidr_parse("127.0.0.0/8", &c[0]), 0);
    ck_assert_int_eq(ptth_cidr_parse("fd00::/8", &c[1]), 0);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    inet_pton(AF_INET, "127.0.0.9", &sin.sin_addr);
    ck_assert(ptth_addr_trusted((struct sockaddr *)&sin, c, 2));
    ck_assert(!ptth_addr_trusted((struct sockaddr *)&sin, c, 0));
    inet_pton(AF_INET, "10.0.0.1", &sin.sin_addr);
    ck_assert(!ptth_addr_trusted((struct sockaddr *)&sin, c, 2));
    struct sockaddr_in6 sin6;
    memset(&sin6, 0, sizeof(sin6));
    sin6.sin6_family = AF_INET6;
    inet_pton(AF_INET6, "::ffff:127.0.0.1", &sin6.sin6_addr); /* mapped: as IPv4 */
    ck_assert(ptth_addr_trusted((struct sockaddr *)&sin6, c, 2));
    inet_pton(AF_INET6, "fd12::1", &sin6.sin6_addr);
    ck_assert(ptth_addr_trusted((struct sockaddr *)&sin6, c, 2));
    inet_pton(AF_INET6, "2001:db8::1", &sin6.sin6_addr);
    ck_assert(!ptth_addr_trusted((struct sockaddr *)&sin6, c, 2));
    struct sockaddr sa = {.sa_family = AF_UNIX};
    ck_assert(!ptth_addr_trusted(&sa, c, 2));
    ck_assert(!ptth_addr_trusted(NULL, c, 2));
}
END_TEST

Suite *
ptth_test_suite(void)
{
    Suite *s = suite_create("relay_addr");
    TCase *tc = tcase_create("addr");
    tcase_add_test(tc, cidr_parse_and_match);
    tcase_add_test(tc, peer_address);
    tcase_add_test(tc, forwarded_for);
    tcase_add_test(tc, trusted_peers);
    suite_add_tcase(s, tc);
    return s;
}
