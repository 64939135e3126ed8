/*
 * Unit tests of the relay's tunnel core (relay/tunnel.c, registry.c,
 * core.c) without h2o, part one: the state machine's transitions, matching
 * listens and connects, accept, reject and the connect timeout. The fake HTTP
 * side is tunnel_fake.c; the data (chunks, FINs, RSTs, the upgraded path),
 * reload and the SPEC §4 order of events are test_tunnel_data.c.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "keys.h"
#include "principals.h"
#include "tunnel_fake.h"

START_TEST(transitions_are_the_diagrams)
{
    /* [from][to]: AWAIT_LISTEN, AWAIT_ACCEPT, OPEN, JOINED, BROKEN, SUSPENDED, ENDING */
    static const bool legal[PTTH_TUNNEL__STATES][PTTH_TUNNEL__STATES] = {
        {0, 1, 0, 0, 0, 1, 1}, /* AWAIT_LISTEN (to SUSPENDED: made from a resume token) */
        {0, 0, 1, 1, 0, 0, 1}, /* AWAIT_ACCEPT */
        {0, 0, 0, 0, 1, 1, 1}, /* OPEN (to SUSPENDED: a raw tunnel got a resume) */
        {0, 0, 0, 0, 0, 1, 1}, /* JOINED */
        {0, 0, 0, 0, 0, 1, 1}, /* BROKEN (to SUSPENDED: a raw tunnel, at the end of the round) */
        {0, 0, 1, 1, 0, 0, 1}, /* SUSPENDED (to OPEN: a raw tunnel's plain resumes) */
        {0, 0, 0, 0, 0, 0, 0}, /* ENDING */
    };
    for (int f = 0; f < PTTH_TUNNEL__STATES; f++)
        for (int to = 0; to < PTTH_TUNNEL__STATES; to++)
            ck_assert_msg(ptth_tunnel_transition_ok((ptth_tunnel_state)f, (ptth_tunnel_state)to) == legal[f][to], "%s -> %s",
                          ptth_tunnel_state_name((ptth_tunnel_state)f), ptth_tunnel_state_name((ptth_tunnel_state)to));
    ck_assert_str_eq(ptth_tunnel_state_name(PTTH_TUNNEL_BROKEN), "broken");
    ck_assert_str_eq(ptth_tunnel_phase_name(2), "open");
    ck_assert_str_eq(ptth_tunnel_state_name(PTTH_TUNNEL_SUSPENDED), "suspended");
    ck_assert_str_eq(ptth_tunnel_phase_name(3), "suspended");
}
END_TEST

START_TEST(connect_waits_for_a_listen_then_matches)
{
    listen_on("foo", "ssh")->closed = false;
    fire(PTTH_TIMER_LISTEN); /* that listen ran out: 204 */
    ck_assert_int_eq(rqs[0].status, 204);
    ck_assert_str_eq(hdr(&rqs[0], "ptth-max-chunk"), "1000");
    ptth_rq *c;
    ptth_tunnel *t = connect_to("foo", "ssh", &c, false);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->state, PTTH_TUNNEL_AWAIT_LISTEN);
    ck_assert_int_eq(ptth_tunnel_phase(t), 0);
    ck_assert_int_eq(armed_of(PTTH_TIMER_CONNECT), 1);
    ck_assert_int_eq(c->status, 0);
    ptth_rq *l = listen_on("foo", NULL); /* a later listen keeps the ports */
    ck_assert_int_eq(l->status, 200);
    ck_assert_str_eq(hdr(l, "ptth-conn"), t->id);
    ck_assert_str_eq(hdr(l, "ptth-port"), "ssh");
    ck_assert_str_eq(hdr(l, "ptth-client-addr"), "192.0.2.1:4242");
    ck_assert_str_eq(hdr(l, "ptth-client"), "alice");
    ck_assert_str_eq(hdr(l, "ptth-max-chunk"), "1000");
    ck_assert_str_eq(hdr(l, "ptth-proto"), "tcp");
    ck_assert_int_eq(t->state, PTTH_TUNNEL_AWAIT_ACCEPT);
    ck_assert_int_eq(ptth_tunnel_phase(t), 1);
    ck_assert_int_eq(armed_of(PTTH_TIMER_CONNECT), 1);
    ck_assert_int_eq(c->status, 0);
}
END_TEST

/* A UDP session is a tunnel like any other; the server learns what it
 * carries from the listen answer. */
START_TEST(udp_session_is_told_to_the_server)
{
    ptth_rq *l = listen_on("foo", "dns");
    ptth_rq *c = rq_new();
    ptth_tunnel *t = ptth_tunnel_connect(&core, c, "foo", 3, "dns", 3, "alice", "192.0.2.1:4242", false, PTTH_PROTO_UDP);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->proto, PTTH_PROTO_UDP);
    ck_assert_int_eq(l->status, 200);
    ck_assert_str_eq(hdr(l, "ptth-proto"), "udp");
    ck_assert_str_eq(hdr(l, "ptth-port"), "dns");
    ck_assert_str_eq(ptth_tunnel_proto_name(PTTH_PROTO_UDP), "udp");
    ck_assert_str_eq(ptth_tunnel_proto_name(PTTH_PROTO_TCP), "tcp");
    ck_assert_uint_eq(ptth_srv_get(&core, "foo", 3)->ntunnels, 1); /* counted against the limits as a tunnel */
}
END_TEST

START_TEST(held_listen_is_given_to_the_connect)
{
    ptth_rq *l1 = listen_on("foo", "ssh");
    ptth_rq *l2 = listen_on("foo", "ssh");
    ptth_srv *srv = ptth_srv_get(&core, "foo", 3);
    ck_assert_uint_eq(srv->nlistens, 2);
    ck_assert(srv->online);
    ck_assert_int_eq(l1->status, 0);
    ptth_rq *c1, *c2;
    ptth_tunnel *t1 = connect_to("foo", "ssh", &c1, false);
    ck_assert_int_eq(l1->status, 200); /* oldest listen first */
    ck_assert_int_eq(l2->status, 0);
    ck_assert_str_eq(hdr(l1, "ptth-conn"), t1->id);
    ptth_tunnel *t2 = connect_to("foo", "ssh", &c2, false);
    ck_assert_int_eq(l2->status, 200);
    ck_assert_str_eq(hdr(l2, "ptth-conn"), t2->id);
    ck_assert_uint_eq(srv->nlistens, 0);
    ck_assert_uint_eq(srv->ntunnels, 2);
    ck_assert_uint_eq(core.ntunnels, 2);
    ck_assert_uint_eq(core.stats.tunnels_opened, 2);
}
END_TEST

START_TEST(waiting_connects_are_matched_oldest_first)
{
    listen_on("foo", "ssh");
    fire(PTTH_TIMER_LISTEN);
    ptth_rq *c1, *c2;
    ptth_tunnel *t1 = connect_to("foo", "ssh", &c1, false);
    ptth_tunnel *t2 = connect_to("foo", "ssh", &c2, false);
    ptth_rq *l = listen_on("foo", NULL);
    ck_assert_str_eq(hdr(l, "ptth-conn"), t1->id);
    ck_assert_int_eq(t2->state, PTTH_TUNNEL_AWAIT_LISTEN);
    /* a waiting connect whose client left is skipped (and ends) */
    ptth_rq *c3;
    ptth_tunnel *t3 = connect_to("foo", "ssh", &c3, false);
    (void)t3;
    c2->closed = true;
    l = listen_on("foo", NULL);
    ck_assert_str_eq(hdr(l, "ptth-conn"), t3->id);
    ck_assert_int_eq(ends, 1);
    ck_assert_int_eq(last_reason, PTTH_END_RST);
    ck_assert_str_eq(last_detail, "client went away before the tunnel opened");
}
END_TEST

START_TEST(held_listen_whose_peer_closed_is_skipped)
{
    ptth_rq *l1 = listen_on("foo", "ssh");
    ptth_rq *l2 = listen_on("foo", "ssh");
    l1->closed = true;
    ptth_rq *c;
    ptth_tunnel *t = connect_to("foo", "ssh", &c, false);
    ck_assert_int_eq(l1->status, 204);
    ck_assert_ptr_null(hdr(l1, "ptth-conn"));
    ck_assert_int_eq(l2->status, 200);
    ck_assert_str_eq(hdr(l2, "ptth-conn"), t->id);
}
END_TEST

START_TEST(listen_gone_leaves_the_queue)
{
    ptth_rq *l1 = listen_on("foo", "ssh");
    ptth_rq *l2 = listen_on("foo", "ssh");
    ptth_srv *srv = ptth_srv_get(&core, "foo", 3);
    rq_gone(l1);
    ck_assert_uint_eq(srv->nlistens, 1);
    ck_assert_int_eq(armed_of(PTTH_TIMER_LISTEN), 1);
    rq_gone(l2);
    ck_assert_uint_eq(srv->nlistens, 0);
    /* the last one left: the online window runs */
    ck_assert_int_eq(armed_of(PTTH_TIMER_LISTEN), 1);
    ck_assert(srv->online);
    fire(PTTH_TIMER_LISTEN);
    ck_assert(!srv->online);
}
END_TEST

START_TEST(listen_errors)
{
    ptth_rq *r = listen_on("foo", NULL);
    ck_assert_int_eq(r->status, 400);
    ck_assert_ptr_nonnull(strstr(r->body, "missing PTTH-Ports"));
    r = listen_on("foo", "ssh,,web");
    ck_assert_int_eq(r->status, 400);
    ck_assert_ptr_nonnull(strstr(r->body, "bad PTTH-Ports"));
    char longname[PTTH_NAME_MAX + 8];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    r = listen_on(longname, "ssh");
    ck_assert_int_eq(r->status, 500);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(listen_on("foo", "ssh")->status, 0);
    r = listen_on("foo", "ssh");
    ck_assert_int_eq(r->status, 429);
    ck_assert_uint_eq(r->retry, PTTH_RETRY_LIMIT);
    ck_assert_ptr_nonnull(strstr(r->body, "--max-listens-per-server"));
}
END_TEST

START_TEST(online_window_and_offline)
{
    ptth_rq *c;
    ck_assert_ptr_null(connect_to("foo", "ssh", &c, false));
    ck_assert_int_eq(c->status, 503);
    ck_assert_uint_eq(c->retry, PTTH_RETRY_OFFLINE);
    ck_assert_str_eq(c->body, "server 'foo' is offline\n");
    listen_on("foo", "ssh");
    ptth_srv *srv = ptth_srv_get(&core, "foo", 3);
    ck_assert(srv->online);
    fire(PTTH_TIMER_LISTEN); /* the listen: 204, and the window starts */
    ck_assert(srv->online);
    ck_assert_ptr_nonnull(connect_to("foo", "ssh", &c, false)); /* still online: the connect waits */
    fire(PTTH_TIMER_LISTEN);                                    /* the window ran out */
    ck_assert(!srv->online);
    ptth_rq *c2;
    ck_assert_ptr_null(connect_to("foo", "ssh", &c2, false));
    ck_assert_int_eq(c2->status, 503);
}
END_TEST

START_TEST(connect_checks_and_limits)
{
    listen_on("foo", "ssh");
    listen_on("bar", "ssh");
    ptth_rq *c;
    ck_assert_ptr_null(connect_to("foo", "web", &c, false));
    ck_assert_int_eq(c->status, 404);
    ck_assert_str_eq(c->body, "server 'foo' does not offer port 'web'\n");
    for (int i = 0; i < 4; i++)
        ck_assert_ptr_nonnull(connect_to("foo", "ssh", &c, false));
    ck_assert_ptr_null(connect_to("foo", "ssh", &c, false));
    ck_assert_int_eq(c->status, 429);
    ck_assert_uint_eq(c->retry, PTTH_RETRY_LIMIT);
    ck_assert_ptr_nonnull(strstr(c->body, "--max-connections-per-server"));
    for (int i = 0; i < 2; i++)
        ck_assert_ptr_nonnull(connect_to("bar", "ssh", &c, false));
    ck_assert_ptr_null(connect_to("bar", "ssh", &c, false));
    ck_assert_int_eq(c->status, 429);
    ck_assert_ptr_nonnull(strstr(c->body, "(--max-connections)"));
    /* a limit is on tunnels open now: one ends, one more fits */
    ptth_tunnel_end(ptth_tunnel_find(&core, hdr(&rqs[1], "ptth-conn"), PTTH_ID_LEN), PTTH_END_RST, "test");
    ck_assert_ptr_nonnull(connect_to("bar", "ssh", &c, false));
}
END_TEST

/* ---- accept and reject ---------------------------------------------------------------- */

START_TEST(accept_opens_both_streams)
{
    ptth_rq *c, *a;
    ptth_tunnel *t = open_tunnel(&c, &a);
    ck_assert_int_eq(c->status, 200);
    ck_assert_int_eq(a->status, 200);
    ck_assert_str_eq(hdr(c, "ptth-conn"), t->id);
    ck_assert_str_eq(hdr(c, "ptth-max-chunk"), "1000");
    ck_assert_str_eq(hdr(a, "ptth-max-chunk"), "1000");
    ck_assert_ptr_null(hdr(c, "ptth-upgrade"));
    ck_assert_ptr_eq(t->down.out, out_of(c));
    ck_assert_ptr_eq(t->up.out, out_of(a));
    ck_assert_ptr_null(t->connect);
    ck_assert_int_eq(armed_of(PTTH_TIMER_CONNECT), 0);
    ck_assert_int_eq(armed_of(PTTH_TIMER_IDLE), 0); /* --idle-timeout 0 */
    ck_assert_int_eq(ptth_tunnel_phase(t), 2);
}
END_TEST

START_TEST(accept_in_the_wrong_state_is_409)
{
    listen_on("foo", "ssh");
    fire(PTTH_TIMER_LISTEN);
    ptth_rq *c;
    ptth_tunnel *t = connect_to("foo", "ssh", &c, false);
    ptth_rq *a = rq_new();
    ptth_tunnel_on_accept(t, a, false);
    ck_assert_int_eq(a->status, 409);
    ck_assert_str_eq(a->body, "tunnel not offered to a listen yet\n");
    ptth_rq *r = rq_new();
    ptth_tunnel_on_reject(t, r, "x", 1);
    ck_assert_int_eq(r->status, 409);
    listen_on("foo", NULL);
    a = rq_new();
    ptth_tunnel_on_accept(t, a, false);
    ck_assert_int_eq(t->state, PTTH_TUNNEL_OPEN);
    ptth_rq *a2 = rq_new();
    ptth_tunnel_on_accept(t, a2, false);
    ck_assert_int_eq(a2->status, 409);
    ck_assert_str_eq(a2->body, "tunnel already accepted\n");
    r = rq_new();
    ptth_tunnel_on_reject(t, r, NULL, 0);
    ck_assert_int_eq(r->status, 409);
    ck_assert_int_eq(ends, 0);
}
END_TEST

START_TEST(accept_after_the_client_left_is_404)
{
    listen_on("foo", "ssh");
    ptth_rq *c;
    ptth_tunnel *t = connect_to("foo", "ssh", &c, false);
    c->closed = true;
    ptth_rq *a = rq_new();
    ptth_tunnel_on_accept(t, a, false);
    ck_assert_int_eq(a->status, 404);
    ck_assert_int_eq(ends, 1);
    ck_assert_int_eq(last_reason, PTTH_END_RST);
    ck_assert_int_eq(c->status, 502);
    ck_assert_uint_eq(core.ntunnels, 0);
}
END_TEST

START_TEST(reject_ends_with_backend)
{
    listen_on("foo", "ssh");
    ptth_rq *c;
    ptth_tunnel *t = connect_to("foo", "ssh", &c, false);
    ptth_rq *r = rq_new();
    ptth_tunnel_on_reject(t, r, "connection refused", 18);
    ck_assert_int_eq(r->status, 204);
    ck_assert_int_eq(c->status, 502);
    ck_assert_str_eq(c->body, "server could not reach its backend: connection refused\n");
    ck_assert_int_eq(last_reason, PTTH_END_BACKEND);
    ck_assert_uint_eq(core.stats.tunnels_ended[PTTH_END_BACKEND], 1);
    ck_assert_uint_eq(ptth_srv_get(&core, "foo", 3)->ntunnels, 0);
    /* without a reason */
    listen_on("foo", NULL);
    t = connect_to("foo", "ssh", &c, false);
    ptth_tunnel_on_reject(t, rq_new(), NULL, 0);
    ck_assert_str_eq(c->body, "server could not reach its backend: server could not reach its backend\n");
}
END_TEST

START_TEST(connect_timeout_is_504_in_either_wait)
{
    ptth_rq *c1, *c2;
    listen_on("foo", "ssh");
    ptth_tunnel *t1 = connect_to("foo", "ssh", &c1, false); /* AWAIT_ACCEPT */
    ptth_tunnel *t2 = connect_to("foo", "ssh", &c2, false); /* AWAIT_LISTEN */
    ck_assert_int_eq(t1->state, PTTH_TUNNEL_AWAIT_ACCEPT);
    ck_assert_int_eq(t2->state, PTTH_TUNNEL_AWAIT_LISTEN);
    ck_assert_int_eq(fire(PTTH_TIMER_CONNECT), 2);
    ck_assert_int_eq(c1->status, 504);
    ck_assert_int_eq(c2->status, 504);
    ck_assert_int_eq(last_reason, PTTH_END_TIMEOUT);
    ck_assert_uint_eq(core.stats.tunnels_ended[PTTH_END_TIMEOUT], 2);
    ck_assert(ptth_list_empty(&ptth_srv_get(&core, "foo", 3)->waiting));
    /* a listen now is held: nobody waits any more */
    ck_assert_int_eq(listen_on("foo", NULL)->status, 0);
}
END_TEST

START_TEST(connect_gone_ends_the_tunnel)
{
    listen_on("foo", "ssh");
    fire(PTTH_TIMER_LISTEN);
    ptth_rq *c;
    connect_to("foo", "ssh", &c, false);
    rq_gone(c);
    ck_assert_int_eq(ends, 1);
    ck_assert_int_eq(last_reason, PTTH_END_RST);
    ck_assert_int_eq(c->status, 0); /* nothing to answer */
    ck_assert_int_eq(armed_of(PTTH_TIMER_CONNECT), 0);
    ck_assert_int_eq(listen_on("foo", NULL)->status, 0); /* no longer queued */
}
END_TEST

/* ---- chunks ---------------------------------------------------------------------------------- */

Suite *
ptth_test_suite(void)
{
    Suite *s = suite_create("relay_tunnel");
    TCase *tc = tcase_create("tunnel");
    tcase_add_checked_fixture(tc, tunnel_fake_setup, tunnel_fake_teardown);
    tcase_add_test(tc, transitions_are_the_diagrams);
    tcase_add_test(tc, connect_waits_for_a_listen_then_matches);
    tcase_add_test(tc, udp_session_is_told_to_the_server);
    tcase_add_test(tc, held_listen_is_given_to_the_connect);
    tcase_add_test(tc, waiting_connects_are_matched_oldest_first);
    tcase_add_test(tc, held_listen_whose_peer_closed_is_skipped);
    tcase_add_test(tc, listen_gone_leaves_the_queue);
    tcase_add_test(tc, listen_errors);
    tcase_add_test(tc, online_window_and_offline);
    tcase_add_test(tc, connect_checks_and_limits);
    tcase_add_test(tc, accept_opens_both_streams);
    tcase_add_test(tc, accept_in_the_wrong_state_is_409);
    tcase_add_test(tc, accept_after_the_client_left_is_404);
    tcase_add_test(tc, reject_ends_with_backend);
    tcase_add_test(tc, connect_timeout_is_504_in_either_wait);
    tcase_add_test(tc, connect_gone_ends_the_tunnel);
    suite_add_tcase(s, tc);
    return s;
}
