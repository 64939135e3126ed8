/* Unit tests of relay/route: request paths to routes. */
#include <stdio.h>
#include <string.h>

#include "check_main.h"
#include "route.h"

static ptth_route_kind
parse(const char *path, ptth_route *r)
{
    return ptth_route_parse(path, strlen(path), r);
}

static int
span_eq(ptth_span s, const char *lit)
{
    return s.len == strlen(lit) && memcmp(s.base, lit, s.len) == 0;
}

START_TEST(fixed_paths)
{
    ptth_route r;
    ck_assert_int_eq(parse("/healthz", &r), PTTH_ROUTE_HEALTHZ);
    ck_assert_int_eq(parse("/healthz?x=1", &r), PTTH_ROUTE_HEALTHZ);
    ck_assert_int_eq(parse("/metrics", &r), PTTH_ROUTE_METRICS);
    ck_assert_int_eq(parse("/v1/status", &r), PTTH_ROUTE_STATUS);
    ck_assert_int_eq(parse("/", &r), PTTH_ROUTE_INDEX);
    ck_assert_int_eq(parse("/?a", &r), PTTH_ROUTE_INDEX);
    ck_assert_int_eq(parse("/healthz/", &r), PTTH_ROUTE_NOT_FOUND);
    ck_assert_int_eq(parse("//healthz", &r), PTTH_ROUTE_NOT_FOUND);
    ck_assert_int_eq(parse("healthz", &r), PTTH_ROUTE_NOT_FOUND);
    ck_assert_int_eq(parse("", &r), PTTH_ROUTE_NOT_FOUND);
    ck_assert_int_eq(parse("/HEALTHZ", &r), PTTH_ROUTE_NOT_FOUND);
}
END_TEST

START_TEST(tunnel_paths)
{
    ptth_route r;
    ck_assert_int_eq(parse("/v1/servers/foo/listen", &r), PTTH_ROUTE_LISTEN);
    ck_assert(span_eq(r.server, "foo"));
    ck_assert_int_eq(parse("/v1/servers/foo.bar-1_x/ports/ssh/connect", &r), PTTH_ROUTE_CONNECT);
    ck_assert(span_eq(r.server, "foo.bar-1_x"));
    ck_assert(span_eq(r.port, "ssh"));
    static const struct {
        const char *verb;
        ptth_route_kind kind;
    } verbs[] = {{"accept", PTTH_ROUTE_ACCEPT},
                 {"reject", PTTH_ROUTE_REJECT},
                 {"downstream", PTTH_ROUTE_DOWNSTREAM},
                 {"upstream", PTTH_ROUTE_UPSTREAM},
                 {"close", PTTH_ROUTE_CLOSE},
                 {"resume", PTTH_ROUTE_RESUME}};
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
        char path[128];
        snprintf(path, sizeof(path), "/v1/servers/s/conns/AAAAAAAAAAAAAAAAAAAA-_/%s", verbs[i].verb);
        ck_assert_int_eq(parse(path, &r), verbs[i].kind);
        ck_assert(span_eq(r.id, "AAAAAAAAAAAAAAAAAAAA-_"));
        ck_assert(span_eq(r.server, "s"));
    }
    /* a dot-only name is a valid name and is not a path step */
    ck_assert_int_eq(parse("/v1/servers/../listen", &r), PTTH_ROUTE_LISTEN);
    ck_assert(span_eq(r.server, ".."));
}
END_TEST

START_TEST(bad_tunnel_paths)
{
    ptth_route r;
    const char *bad[] = {
        "/v1/servers//listen",
        "/v1/servers/foo/listen/",
        "/v1/servers/foo/listen/x",
        "/v1/servers/fo%20o/listen",
        "/v1/servers/foo bar/listen",
        "/v1/servers/foo/ports/ssh",
        "/v1/servers/foo/ports//connect",
        "/v1/servers/foo/ports/s$h/connect",
        "/v1/servers/foo/conns/short/upstream",
        "/v1/servers/foo/conns/AAAAAAAAAAAAAAAAAAAAAAA/upstream",
        "/v1/servers/foo/conns/AAAAAAAAAAAAAAAAAAAA+/upstream",
        "/v1/servers/foo/conns/AAAAAAAAAAAAAAAAAAAAAA/sideways",
        "/v2/servers/foo/listen",
        "/v1/server/foo/listen",
        "/v1/servers/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/listen", /* 65 chars */
        "/a/b/c/d/e/f/g/h",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(parse(bad[i], &r) == PTTH_ROUTE_NOT_FOUND, "%s", bad[i]);
        ck_assert_uint_eq(r.server.len, 0);
    }
}
END_TEST

START_TEST(methods_and_sides)
{
    ck_assert(ptth_route_method_ok(PTTH_ROUTE_LISTEN, "POST", 4));
    ck_assert(!ptth_route_method_ok(PTTH_ROUTE_LISTEN, "GET", 3));
    ck_assert(!ptth_route_method_ok(PTTH_ROUTE_CONNECT, "PUT", 3));
    ck_assert(ptth_route_method_ok(PTTH_ROUTE_HEALTHZ, "GET", 3));
    ck_assert(ptth_route_method_ok(PTTH_ROUTE_HEALTHZ, "HEAD", 4));
    ck_assert(!ptth_route_method_ok(PTTH_ROUTE_HEALTHZ, "POST", 4));
    ck_assert(!ptth_route_method_ok(PTTH_ROUTE_STATUS, "POS", 3));
    ck_assert_int_eq(ptth_route_side_of(PTTH_ROUTE_LISTEN), PTTH_SIDE_SERVER);
    ck_assert_int_eq(ptth_route_side_of(PTTH_ROUTE_ACCEPT), PTTH_SIDE_SERVER);
    ck_assert_int_eq(ptth_route_side_of(PTTH_ROUTE_REJECT), PTTH_SIDE_SERVER);
    ck_assert_int_eq(ptth_route_side_of(PTTH_ROUTE_DOWNSTREAM), PTTH_SIDE_SERVER);
    ck_assert_int_eq(ptth_route_side_of(PTTH_ROUTE_CONNECT), PTTH_SIDE_CLIENT);
    ck_assert_int_eq(ptth_route_side_of(PTTH_ROUTE_UPSTREAM), PTTH_SIDE_CLIENT);
    ck_assert_int_eq(ptth_route_side_of(PTTH_ROUTE_CLOSE), PTTH_SIDE_EITHER);
    ck_assert_int_eq(ptth_route_side_of(PTTH_ROUTE_RESUME), PTTH_SIDE_EITHER);
    ck_assert_str_eq(ptth_route_name(PTTH_ROUTE_RESUME), "resume");
    ck_assert_int_eq(ptth_route_side_of(PTTH_ROUTE_HEALTHZ), PTTH_SIDE_NONE);
    ck_assert_str_eq(ptth_route_name(PTTH_ROUTE_UPSTREAM), "upstream");
    ck_assert_str_eq(ptth_route_name((ptth_route_kind)99), "unknown");
}
END_TEST

START_TEST(ids)
{
    ck_assert(ptth_route_id_valid("abcdefghijklmnopqrstuv", 22));
    ck_assert(ptth_route_id_valid("ABC-_0123456789xyzXYZa", 22));
    ck_assert(!ptth_route_id_valid("abcdefghijklmnopqrstu", 21));
    ck_assert(!ptth_route_id_valid("abcdefghijklmnopqrstu=", 22));
    ck_assert(!ptth_route_id_valid("abcdefghijklmnopqrstu/", 22));
}
END_TEST

Suite *
ptth_test_suite(void)
{
    Suite *s = suite_create("relay_route");
    TCase *tc = tcase_create("route");
    tcase_add_test(tc, fixed_paths);
    tcase_add_test(tc, tunnel_paths);
    tcase_add_test(tc, bad_tunnel_paths);
    tcase_add_test(tc, methods_and_sides);
    tcase_add_test(tc, ids);
    suite_add_tcase(s, tc);
    return s;
}
