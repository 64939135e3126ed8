/* Unit tests of the tunnel core's resumable tunnels (relay/tunnel_resume.c,
 * SPEC §9.3): tokens, SUSPENDED, held resumes, the new joint, the grace,
 * ended ids, tunnels from before a restart. Driven through the fake io
 * (tunnel_fake.h). */
#include <stdio.h>
#include <string.h>

#include "check_main.h"
#include "tunnel_fake.h"
#include "tunnel_internal.h"

#define BOTH (PTTH_ASK_UPGRADE | PTTH_ASK_RESUME)

/* listen, connect and accept asking for asks_c / asks_a: a JOINED tunnel. */
static ptth_tunnel *
joined(unsigned asks_c, unsigned asks_a, ptth_rq **c, ptth_rq **a)
{
    ptth_tunnel *t = connect_accept(asks_c, asks_a, c, a);
    ck_assert_int_eq(t->state, PTTH_TUNNEL_JOINED);
    return t;
}

static ptth_rq *
resume_raw(const char *id, bool server_side, const char *port, const char *client, uint64_t received, uint64_t sent,
           const char *bad)
{
    ptth_resume_in in = resume_fields(server_side, received, sent, true);
    in.port = port;
    in.port_len = strlen(port);
    in.client = client;
    in.bad_request = bad;
    return resume_send(id, &in);
}

static ptth_rq *
resume(const char *id, bool server_side, uint64_t received, uint64_t sent)
{
    return resume_raw(id, server_side, "ssh", "alice", received, sent, NULL);
}

static void
token(const ptth_tunnel *t, bool server_side, char out[PTTH_RESUME_TOKEN_LEN + 1])
{
    ck_assert_int_eq(ptth_resume_token(&resume_secret, t->id, server_side, "foo", "ssh", "tcp", "alice", out), 0);
}

START_TEST(tokens_only_when_both_asked_and_grace_on)
{
    cfg.resume_grace = 30;
    ptth_rq *c, *a;
    ptth_tunnel *t = joined(BOTH, BOTH, &c, &a);
    ck_assert(t->resumable);
    char ct[PTTH_RESUME_TOKEN_LEN + 1], st[PTTH_RESUME_TOKEN_LEN + 1];
    token(t, false, ct);
    token(t, true, st);
    ck_assert_str_eq(hdr(c, "ptth-resume"), ct);
    ck_assert_str_eq(hdr(a, "ptth-resume"), st);
    ck_assert_str_ne(ct, st);
    ck_assert_str_eq(hdr(c, "ptth-resume-grace"), "30");
    ck_assert_str_eq(hdr(a, "ptth-resume-grace"), "30");

    /* one side did not ask: no tokens, and a broken leg ends it as before */
    ptth_tunnel *t2 = joined(PTTH_ASK_UPGRADE, BOTH, &c, &a);
    ck_assert(!t2->resumable);
    ck_assert_ptr_null(hdr(c, "ptth-resume"));
    ck_assert_ptr_null(hdr(a, "ptth-resume"));
    ptth_tunnel_on_joint_end(t2, false, false, "client leg: reset");
    ck_assert_int_eq(last_reason, PTTH_END_RST);
    ptth_tunnel *t3 = joined(BOTH, PTTH_ASK_UPGRADE, &c, &a);
    ck_assert(!t3->resumable);
    ck_assert_ptr_null(hdr(c, "ptth-resume"));

    /* --resume-grace 0: off */
    cfg.resume_grace = 0;
    ptth_tunnel *t4 = joined(BOTH, BOTH, &c, &a);
    ck_assert(!t4->resumable);
    ck_assert_ptr_null(hdr(c, "ptth-resume"));
    ck_assert_ptr_null(hdr(a, "ptth-resume-grace"));
}
END_TEST

/* A reset after the other leg's clean end of stream is an end (a
 * terminator that aborted after its RST frame, or died, closed cleanly
 * first): reason rst at once, no suspension. */
START_TEST(reset_after_a_clean_end_of_stream_ends_the_tunnel)
{
    cfg.resume_grace = 30;
    ptth_rq *c, *a;
    ptth_tunnel *t = joined(BOTH, BOTH, &c, &a);
    ptth_tunnel_on_joint_end(t, false, true, "server's connection was reset");
    ck_assert_int_eq(ends, 1);
    ck_assert_int_eq(last_reason, PTTH_END_RST);
    ck_assert_uint_eq(core.nsuspended, 0);
    ck_assert_uint_eq(core.stats.tunnels_suspended, 0);
    ck_assert_int_eq(armed_of(PTTH_TIMER_RESUME), 0);
}
END_TEST

START_TEST(broken_leg_suspends_clean_end_is_fin)
{
    cfg.resume_grace = 30;
    cfg.idle_timeout = 60;
    ptth_rq *c, *a;
    ptth_tunnel *t = joined(BOTH, BOTH, &c, &a);
    ck_assert_int_eq(armed_of(PTTH_TIMER_IDLE), 1);
    ptth_tunnel_on_joint_end(t, false, false, "server leg: reset");
    ck_assert_int_eq(t->state, PTTH_TUNNEL_SUSPENDED);
    ck_assert_int_eq(ends, 0);
    ck_assert(joins[0].closed && joins[0].reset); /* the other leg gets a reset */
    ck_assert_ptr_null(t->joint);
    ck_assert_int_eq(armed_of(PTTH_TIMER_RESUME), 1);
    ck_assert_int_eq(armed_of(PTTH_TIMER_IDLE), 0); /* the grace rules now */
    ck_assert_uint_eq(core.nsuspended, 1);
    ck_assert_uint_eq(ptth_tunnel_phase(t), 3);
    ck_assert_uint_eq(core.stats.tunnels_suspended, 1);
    /* no chunks, no accept while suspended */
    ptth_rq *ch = chunk(t, true, 0, false, 5);
    ck_assert_int_eq(ch->status, 409);
    ck_assert_str_eq(ch->body, "tunnel is on the upgraded path: no chunks\n");
    ptth_rq *acc = rq_new();
    ptth_tunnel_on_accept(t, acc, BOTH);
    ck_assert_int_eq(acc->status, 409);
    ck_assert_int_eq(t->state, PTTH_TUNNEL_SUSPENDED);

    ptth_tunnel *t2 = joined(BOTH, BOTH, &c, &a);
    ptth_tunnel_on_joint_end(t2, true, false, NULL);
    ck_assert_int_eq(ends, 1);
    ck_assert_int_eq(last_reason, PTTH_END_FIN);
    ck_assert(joins[1].closed && !joins[1].reset);
}
END_TEST

START_TEST(both_resumes_join_again)
{
    cfg.resume_grace = 30;
    ptth_rq *c, *a;
    ptth_tunnel *t = joined(BOTH, BOTH, &c, &a);
    char id[PTTH_ID_LEN + 1];
    snprintf(id, sizeof(id), "%s", t->id);
    ptth_tunnel_on_moved(t, true, 1000);
    ptth_tunnel_on_moved(t, false, 500);
    ptth_tunnel_on_joint_end(t, false, false, "client leg: reset");

    ptth_rq *rc = resume(id, false, 400, 900); /* the client received 400, sent 900 */
    ck_assert_int_eq(rc->status, 0);           /* held */
    ck_assert_ptr_nonnull(t->resume[0]);
    ck_assert_int_eq(njoins, 1);
    ptth_rq *rs = resume(id, true, 850, 480); /* the server received 850, sent 480 */
    ck_assert_int_eq(rc->status, 101);
    ck_assert_int_eq(rs->status, 101);
    ck_assert_int_eq(t->state, PTTH_TUNNEL_JOINED);
    ck_assert_int_eq(njoins, 2);
    ck_assert(joins[1].started);
    ck_assert_ptr_eq(joins[1].connect, rc);
    ck_assert_ptr_eq(joins[1].accept, rs);
    ck_assert_ptr_eq(t->joint, &joins[1]);
    /* each side learns the other's counts */
    ck_assert_str_eq(hdr(rc, "ptth-peer-received"), "850");
    ck_assert_str_eq(hdr(rc, "ptth-peer-sent"), "480");
    ck_assert_str_eq(hdr(rs, "ptth-peer-received"), "400");
    ck_assert_str_eq(hdr(rs, "ptth-peer-sent"), "900");
    ck_assert_str_eq(hdr(rc, "ptth-conn"), id);
    ck_assert_str_eq(hdr(rs, "ptth-heartbeat"), "20");
    char ct[PTTH_RESUME_TOKEN_LEN + 1], st[PTTH_RESUME_TOKEN_LEN + 1];
    token(t, false, ct);
    token(t, true, st);
    ck_assert_str_eq(hdr(rc, "ptth-resume"), ct);
    ck_assert_str_eq(hdr(rs, "ptth-resume"), st);
    ck_assert_str_eq(hdr(rs, "ptth-resume-grace"), "30");
    ck_assert_int_eq(armed_of(PTTH_TIMER_RESUME), 0);
    ck_assert_uint_eq(core.nsuspended, 0);
    ck_assert_uint_eq(core.stats.tunnels_resumed, 1);
    ck_assert_uint_eq(core.stats.replayed_up, 50);   /* 900 - 850 */
    ck_assert_uint_eq(core.stats.replayed_down, 80); /* 480 - 400 */
    /* same id, the counts go on */
    ck_assert_ptr_eq(ptth_tunnel_find(&core, id, PTTH_ID_LEN), t);
    ptth_tunnel_on_moved(t, true, 10);
    ck_assert_uint_eq(t->up.bytes, 1010);
    ck_assert_uint_eq(t->down.bytes, 500);
    /* and it can break and resume again */
    ptth_tunnel_on_joint_end(t, false, false, "server leg: reset");
    ck_assert_int_eq(t->state, PTTH_TUNNEL_SUSPENDED);
    ck_assert(joins[1].closed && joins[1].reset);
}
END_TEST

START_TEST(nonsense_counts_replay_zero)
{
    cfg.resume_grace = 30;
    ptth_rq *c, *a;
    ptth_tunnel *t = joined(BOTH, BOTH, &c, &a);
    ptth_tunnel_on_joint_end(t, false, false, "x");
    ptth_rq *rc = resume(t->id, false, 10, 5);
    ptth_rq *rs = resume(t->id, true, 100, 3);
    ck_assert_int_eq(rc->status, 101);
    ck_assert_int_eq(rs->status, 101);
    ck_assert_uint_eq(core.stats.replayed_up, 0);   /* client sent 5 < server received 100 */
    ck_assert_uint_eq(core.stats.replayed_down, 0); /* server sent 3 < client received 10 */
}
END_TEST

START_TEST(resume_of_a_joined_tunnel_breaks_it)
{
    cfg.resume_grace = 30;
    ptth_rq *c, *a;
    ptth_tunnel *t = joined(BOTH, BOTH, &c, &a);
    ptth_rq *rs = resume(t->id, true, 0, 0);
    ck_assert_int_eq(rs->status, 0);
    ck_assert_int_eq(t->state, PTTH_TUNNEL_SUSPENDED);
    ck_assert(joins[0].closed && joins[0].reset);
    ck_assert_ptr_nonnull(t->resume[1]);
    ck_assert_int_eq(armed_of(PTTH_TIMER_RESUME), 1);
}
END_TEST

START_TEST(second_resume_of_a_side_supersedes)
{
    cfg.resume_grace = 30;
    ptth_rq *c, *a;
    ptth_tunnel *t = joined(BOTH, BOTH, &c, &a);
    ptth_tunnel_on_joint_end(t, false, false, "x");
    ptth_rq *r1 = resume(t->id, false, 0, 0);
    ptth_rq *r2 = resume(t->id, false, 0, 0);
    ck_assert_int_eq(r1->status, 409);
    ck_assert_str_eq(r1->body, "superseded\n");
    ck_assert_int_eq(r2->status, 0);
    ck_assert_uint_eq(core.stats.resume_refused[PTTH_REFUSED_SUPERSEDED], 1);
    ptth_rq *rs = resume(t->id, true, 0, 0);
    ck_assert_int_eq(r2->status, 101);
    ck_assert_int_eq(rs->status, 101);
}
END_TEST

START_TEST(held_resume_gone_is_dropped)
{
    cfg.resume_grace = 30;
    ptth_rq *c, *a;
    ptth_tunnel *t = joined(BOTH, BOTH, &c, &a);
    ptth_tunnel_on_joint_end(t, false, false, "x");
    ptth_rq *r1 = resume(t->id, false, 0, 0);
    rq_gone(r1);
    ck_assert_ptr_null(t->resume[0]);
    ptth_rq *rs = resume(t->id, true, 0, 0);
    ck_assert_int_eq(rs->status, 0); /* held: the client side is not there */
    ck_assert_int_eq(njoins, 1);
    /* a held one whose peer closed unnoticed is not joined either */
    rs->closed = true;
    ptth_rq *r2 = resume(t->id, false, 0, 0);
    ck_assert_int_eq(r2->status, 0);
    ck_assert_int_eq(rs->status, 404);
    ck_assert_ptr_null(t->resume[1]);
    ck_assert_int_eq(t->state, PTTH_TUNNEL_SUSPENDED);
}
END_TEST

START_TEST(grace_runs_out)
{
    cfg.resume_grace = 30;
    ptth_rq *c, *a;
    ptth_tunnel *t = joined(BOTH, BOTH, &c, &a);
    char id[PTTH_ID_LEN + 1];
    snprintf(id, sizeof(id), "%s", t->id);
    ptth_tunnel_on_joint_end(t, false, false, "x");
    ptth_rq *rc = resume(id, false, 0, 0);
    ck_assert_int_eq(fire(PTTH_TIMER_RESUME), 1);
    ck_assert_int_eq(rc->status, 404);
    ck_assert_str_eq(rc->body, "resume timed out\n");
    ck_assert_int_eq(last_reason, PTTH_END_RESUME_TIMEOUT);
    ck_assert_str_eq(ptth_end_reason_name(PTTH_END_RESUME_TIMEOUT), "resume_timeout");
    ck_assert_ptr_null(ptth_tunnel_find(&core, id, PTTH_ID_LEN));
    ck_assert_uint_eq(core.nsuspended, 0);
    ck_assert_uint_eq(core.stats.resume_refused[PTTH_REFUSED_TIMED_OUT], 1);
    /* an ended id is remembered: 404, not a phantom */
    ck_assert(ptth_tunnel_ended_recently(&core, id));
    ptth_rq *again = resume(id, true, 0, 0);
    ck_assert_int_eq(again->status, 404);
    ck_assert_str_eq(again->body, "tunnel ended\n");
    ck_assert_uint_eq(core.ntunnels, 0);
}
END_TEST

/* Both legs ended cleanly: the terminators' own end, or a proxy in between
 * that closed both connections (a squid restart). The relay cannot tell,
 * so it does not remember the id: the terminators' resumes (which come
 * only in the second case) recreate the tunnel as after a restart. Any
 * other end is remembered (404). */
START_TEST(ended_by_fin_is_not_remembered)
{
    cfg.resume_grace = 30;
    ptth_rq *c, *a;
    ptth_tunnel *t = joined(BOTH, BOTH, &c, &a);
    char id[PTTH_ID_LEN + 1];
    snprintf(id, sizeof(id), "%s", t->id);
    ptth_tunnel_on_joint_end(t, true, false, NULL);
    ck_assert_int_eq(last_reason, PTTH_END_FIN);
    ck_assert(!ptth_tunnel_ended_recently(&core, id));
    ptth_rq *rc = resume(id, false, 3, 5);
    ck_assert_int_eq(rc->status, 0); /* held: the tunnel is back, suspended */
    ptth_rq *rs = resume(id, true, 5, 3);
    ck_assert_int_eq(rs->status, 101);
    ck_assert_int_eq(rc->status, 101);
    ck_assert_uint_eq(core.stats.resume_refused[PTTH_REFUSED_ENDED], 0);
    /* a reset after a clean end of stream (a dying terminator): remembered */
    t = joined(BOTH, BOTH, &c, &a);
    snprintf(id, sizeof(id), "%s", t->id);
    ptth_tunnel_on_joint_end(t, false, true, "client's connection was reset");
    ck_assert(ptth_tunnel_ended_recently(&core, id));
    ck_assert_int_eq(resume(id, false, 0, 0)->status, 404);
}
END_TEST

START_TEST(unknown_id_is_a_tunnel_from_before)
{
    cfg.resume_grace = 30;
    const char *id = "k3Jx0v4GZ9yS1b3mYw2aQQ";
    ptth_rq *rs = resume(id, true, 7, 9);
    ck_assert_int_eq(rs->status, 0);
    ptth_tunnel *t = ptth_tunnel_find(&core, id, PTTH_ID_LEN);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->state, PTTH_TUNNEL_SUSPENDED);
    ck_assert(t->resumable && t->upgraded);
    ck_assert_str_eq(t->server, "foo");
    ck_assert_str_eq(t->port, "ssh");
    ck_assert_str_eq(t->client, "alice");
    ck_assert_uint_eq(core.ntunnels, 1);
    ck_assert_uint_eq(core.nsuspended, 1);
    ck_assert_int_eq(armed_of(PTTH_TIMER_RESUME), 1);
    ptth_rq *rc = resume(id, false, 9, 7);
    ck_assert_int_eq(rc->status, 101);
    ck_assert_int_eq(rs->status, 101);
    ck_assert_int_eq(t->state, PTTH_TUNNEL_JOINED);
    ck_assert_str_eq(t->addr, "198.51.100.1:6000"); /* the client side's address, now known */
    ptth_tunnel_on_joint_end(t, true, false, NULL);
    ck_assert_int_eq(last_reason, PTTH_END_FIN);
}
END_TEST

START_TEST(unknown_id_counts_against_the_limits)
{
    cfg.resume_grace = 30;
    cfg.max_connections_per_server = 1;
    ptth_rq *r1 = resume("AAAAAAAAAAAAAAAAAAAAAA", true, 0, 0);
    ck_assert_int_eq(r1->status, 0);
    ptth_rq *r2 = resume("BBBBBBBBBBBBBBBBBBBBBB", true, 0, 0);
    ck_assert_int_eq(r2->status, 429);
    ck_assert_uint_eq(r2->retry, PTTH_RETRY_LIMIT);
    ck_assert_ptr_nonnull(strstr(r2->body, "--max-connections-per-server"));
    cfg.max_connections = 1;
    cfg.max_connections_per_server = 4;
    ptth_rq *r3 = resume("CCCCCCCCCCCCCCCCCCCCCC", true, 0, 0);
    ck_assert_int_eq(r3->status, 429);
    ck_assert_ptr_nonnull(strstr(r3->body, "(--max-connections)"));
    ck_assert_uint_eq(core.ntunnels, 1);
    ck_assert_uint_eq(core.stats.resume_refused[PTTH_REFUSED_LIMIT], 2);
}
END_TEST

START_TEST(not_resumable_is_409)
{
    cfg.resume_grace = 30;
    ptth_rq *c, *a;
    ptth_tunnel *t = joined(PTTH_ASK_UPGRADE, PTTH_ASK_UPGRADE, &c, &a);
    ptth_rq *r = resume(t->id, false, 0, 0);
    ck_assert_int_eq(r->status, 409);
    ck_assert_int_eq(t->state, PTTH_TUNNEL_JOINED);
    ck_assert(!joins[0].closed);
    /* the chunked path */
    ptth_rq *oc, *oa;
    ptth_tunnel *o = open_tunnel(&oc, &oa);
    ck_assert_int_eq(resume(o->id, true, 0, 0)->status, 409);
    ck_assert_int_eq(o->state, PTTH_TUNNEL_OPEN);
    /* fields that are not the tunnel's */
    ptth_tunnel *j = joined(BOTH, BOTH, &c, &a);
    ck_assert_int_eq(resume_raw(j->id, false, "web", "alice", 0, 0, NULL)->status, 409);
    ck_assert_int_eq(j->state, PTTH_TUNNEL_JOINED);
    /* not open yet */
    ptth_rq *wc;
    ptth_tunnel *w = connect_to("foo", "ssh", &wc, true);
    ck_assert_int_eq(resume(w->id, true, 0, 0)->status, 409);
    ck_assert_uint_eq(core.stats.resume_refused[PTTH_REFUSED_NOT_RESUMABLE], 4);
}
END_TEST

START_TEST(bad_request_is_400_after_the_tunnel_checks)
{
    cfg.resume_grace = 30;
    ptth_rq *c, *a;
    ptth_tunnel *t = joined(BOTH, BOTH, &c, &a);
    ptth_rq *r = resume_raw(t->id, false, "ssh", "alice", 0, 0, "missing or bad PTTH-Sent: a decimal count\n");
    ck_assert_int_eq(r->status, 400);
    ck_assert_str_eq(r->body, "missing or bad PTTH-Sent: a decimal count\n");
    ck_assert_int_eq(t->state, PTTH_TUNNEL_JOINED); /* nothing changed */
    ptth_rq *u = resume_raw("DDDDDDDDDDDDDDDDDDDDDD", false, "ssh", "alice", 0, 0, "bad\n");
    ck_assert_int_eq(u->status, 400);
    ck_assert_ptr_null(ptth_tunnel_find(&core, "DDDDDDDDDDDDDDDDDDDDDD", PTTH_ID_LEN));
}
END_TEST

START_TEST(shutdown_ends_suspended_tunnels)
{
    cfg.resume_grace = 30;
    ptth_rq *c, *a;
    ptth_tunnel *t = joined(BOTH, BOTH, &c, &a);
    ptth_tunnel_on_joint_end(t, false, false, "x");
    ptth_rq *r = resume(t->id, true, 0, 0);
    ptth_tunnel_end_all(&core);
    ck_assert_int_eq(r->status, 503);
    ck_assert_int_eq(last_reason, PTTH_END_SHUTDOWN);
    ck_assert_uint_eq(core.nsuspended, 0);
    ck_assert_int_eq(narmed, 0);
}
END_TEST

START_TEST(close_while_suspended_answers_the_held_resume)
{
    cfg.resume_grace = 30;
    ptth_rq *c, *a;
    ptth_tunnel *t = joined(BOTH, BOTH, &c, &a);
    char id[PTTH_ID_LEN + 1];
    snprintf(id, sizeof(id), "%s", t->id);
    ptth_tunnel_on_joint_end(t, false, false, "x");
    ptth_rq *r = resume(id, false, 0, 0);
    ptth_tunnel_end(t, PTTH_END_RST, "closed by server");
    ck_assert_int_eq(r->status, 404);
    ck_assert_str_eq(r->body, "closed by server\n"); /* the other side learns why */
    ck_assert_int_eq(last_reason, PTTH_END_RST);
    ck_assert_int_eq(armed_of(PTTH_TIMER_RESUME), 0);
    ck_assert_uint_eq(core.nsuspended, 0);
    ck_assert_int_eq(resume(id, true, 0, 0)->status, 404); /* remembered */
}
END_TEST

START_TEST(ended_ids_are_bounded)
{
    cfg.resume_grace = 30;
    ptth_rq *c, *a;
    ptth_tunnel *t = joined(BOTH, BOTH, &c, &a);
    char first[PTTH_ID_LEN + 1];
    snprintf(first, sizeof(first), "%s", t->id);
    ptth_tunnel_on_joint_end(t, false, true, "reset after an end of stream");
    ck_assert(ptth_tunnel_ended_recently(&core, first));
    /* PTTH_ENDED_MAX later ends overwrite the oldest: the ring stays its size */
    for (size_t i = 0; i < PTTH_ENDED_MAX; i++) {
        ptth_tunnel fake;
        memset(&fake, 0, sizeof(fake));
        fake.core = &core;
        snprintf(fake.id, sizeof(fake.id), "%022zu", i);
        ptth_tunnel_remember_end(&fake, PTTH_END_RST);
    }
    ck_assert(!ptth_tunnel_ended_recently(&core, first));
    ck_assert(ptth_tunnel_ended_recently(&core, "0000000000000000004095"));
}
END_TEST

Suite *
ptth_test_suite(void)
{
    Suite *s = suite_create("relay_tunnel_resume");
    TCase *tc = tcase_create("resume");
    tcase_add_checked_fixture(tc, tunnel_fake_setup, tunnel_fake_teardown);
    tcase_add_test(tc, tokens_only_when_both_asked_and_grace_on);
    tcase_add_test(tc, broken_leg_suspends_clean_end_is_fin);
    tcase_add_test(tc, reset_after_a_clean_end_of_stream_ends_the_tunnel);
    tcase_add_test(tc, both_resumes_join_again);
    tcase_add_test(tc, nonsense_counts_replay_zero);
    tcase_add_test(tc, resume_of_a_joined_tunnel_breaks_it);
    tcase_add_test(tc, second_resume_of_a_side_supersedes);
    tcase_add_test(tc, held_resume_gone_is_dropped);
    tcase_add_test(tc, grace_runs_out);
    tcase_add_test(tc, ended_by_fin_is_not_remembered);
    tcase_add_test(tc, unknown_id_is_a_tunnel_from_before);
    tcase_add_test(tc, unknown_id_counts_against_the_limits);
    tcase_add_test(tc, not_resumable_is_409);
    tcase_add_test(tc, bad_request_is_400_after_the_tunnel_checks);
    tcase_add_test(tc, shutdown_ends_suspended_tunnels);
    tcase_add_test(tc, close_while_suspended_answers_the_held_resume);
    tcase_add_test(tc, ended_ids_are_bounded);
    suite_add_tcase(s, tc);
    return s;
}
