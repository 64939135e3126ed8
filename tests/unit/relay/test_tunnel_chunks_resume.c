/* Unit tests of resumable tunnels on the chunked path at the relay
 * (relay/tunnel.c raw mode, relay/tunnel_resume.c; docs/protocol.md
 * "Resumable tunnels"): raw chunk bodies, suspension from OPEN and BROKEN,
 * the plain resume pair that opens the next epoch, stale epochs, and the
 * path a tunnel must resume on. Driven through the fake io
 * (tunnel_fake.h). */
#include <stdio.h>
#include <string.h>

#include "check_main.h"
#include "tunnel_fake.h"
#include "tunnel_internal.h"

/* listen, connect and accept asking for asks_c / asks_a, both on the
 * chunked path unless they asked for upgrade. */
static ptth_tunnel *
opened(unsigned asks_c, unsigned asks_a, ptth_rq **c, ptth_rq **a)
{
    return connect_accept(asks_c, asks_a, c, a);
}

static ptth_rq *
plain_resume(const char *id, bool server_side, uint64_t received, uint64_t sent, bool upgrade)
{
    ptth_resume_in in = resume_fields(server_side, received, sent, upgrade);
    return resume_send(id, &in);
}

/* A chunk with PTTH-Epoch epoch (NULL: none). */
static ptth_rq *
chunk_epoch(ptth_tunnel *t, bool from_client, const char *seq, bool fin, size_t len, const char *epoch)
{
    ptth_rq *r = rq_new();
    ptth_chunk_in in = {seq, strlen(seq), fin ? "1" : NULL, fin ? 1 : 0, len, epoch, epoch != NULL ? strlen(epoch) : 0};
    ptth_tunnel_on_chunk(t, r, from_client, &in);
    return r;
}

START_TEST(both_asked_makes_a_raw_tunnel)
{
    cfg.resume_grace = 30;
    ptth_rq *c, *a;
    ptth_tunnel *t = opened(PTTH_ASK_RESUME, PTTH_ASK_RESUME, &c, &a);
    ck_assert_int_eq(t->state, PTTH_TUNNEL_OPEN);
    ck_assert(t->resumable && t->raw);
    ck_assert_int_eq(c->status, 200);
    ck_assert_ptr_nonnull(hdr(c, "ptth-resume"));
    ck_assert_ptr_nonnull(hdr(a, "ptth-resume"));
    ck_assert_str_ne(hdr(c, "ptth-resume"), hdr(a, "ptth-resume"));
    ck_assert_str_eq(hdr(a, "ptth-resume-grace"), "30");
    /* chunk bodies go in verbatim */
    ptth_rq *u = chunk(t, true, 0, false, 100);
    ck_assert_int_eq(out_of(a)->raw, 1);
    ck_assert_int_eq(out_of(a)->data_bytes, 100);
    drain(out_of(a));
    ck_assert_int_eq(u->status, 204);
    /* the PTTH-Fin chunks write no frame; both done: the end, clean */
    ptth_rq *f1 = chunk(t, true, 1, true, 0);
    ck_assert_int_eq(f1->status, 204);
    ck_assert_int_eq(out_of(a)->fins, 0);
    ck_assert_int_eq(ends, 0);
    ptth_rq *f2 = chunk(t, false, 0, true, 0);
    ck_assert_int_eq(f2->status, 204);
    ck_assert_int_eq(ends, 1);
    ck_assert_int_eq(last_reason, PTTH_END_FIN);
    ck_assert(out_of(a)->finished && !out_of(a)->aborted);
    ck_assert(out_of(c)->finished && !out_of(c)->aborted);
    ck_assert_int_eq(out_of(c)->rsts, 0);

    /* one side did not ask: the chunked path of before (DATA frames) */
    ptth_rq *c2, *a2;
    ptth_tunnel *t2 = opened(0, PTTH_ASK_RESUME, &c2, &a2);
    ck_assert(!t2->resumable && !t2->raw);
    ck_assert_ptr_null(hdr(a2, "ptth-resume"));
    chunk(t2, true, 0, false, 10);
    ck_assert_int_eq(out_of(a2)->raw, 0);
    ck_assert_int_eq(out_of(a2)->data, 1);
    /* a hybrid side (asked for upgrade, got the stream) is raw too */
    ptth_rq *c3, *a3;
    ptth_tunnel *t3 = opened(PTTH_ASK_UPGRADE | PTTH_ASK_RESUME, PTTH_ASK_RESUME, &c3, &a3);
    ck_assert_int_eq(t3->state, PTTH_TUNNEL_OPEN);
    ck_assert(t3->raw);
    ck_assert_str_eq(hdr(c3, "ptth-upgrade"), "peer");
    /* --resume-grace 0: not resumable */
    cfg.resume_grace = 0;
    ptth_rq *c4, *a4;
    ck_assert(!opened(PTTH_ASK_RESUME, PTTH_ASK_RESUME, &c4, &a4)->raw);
}
END_TEST

START_TEST(broken_stream_suspends_at_the_end_of_the_round)
{
    cfg.resume_grace = 30;
    cfg.idle_timeout = 60;
    ptth_rq *c, *a;
    ptth_tunnel *t = opened(PTTH_ASK_RESUME, PTTH_ASK_RESUME, &c, &a);
    ptth_rq *d0 = chunk(t, false, 0, false, 10); /* written into the client's stream, not answered yet */
    ptth_rq *d2 = chunk(t, false, 2, false, 10); /* held: 1 is missing */
    ck_assert_int_eq(d0->status, 0);
    ptth_out *up = out_of(a);
    ptth_tunnel_on_broken(t, up);
    ck_assert_int_eq(t->state, PTTH_TUNNEL_BROKEN);
    ck_assert_int_eq(ends, 0);
    ck_assert_int_eq(fire(PTTH_TIMER_NOW), 1);
    ck_assert_int_eq(t->state, PTTH_TUNNEL_SUSPENDED);
    ck_assert_int_eq(ends, 0);
    ck_assert(out_of(c)->aborted); /* the client's terminator sees a broken stream */
    ck_assert_int_eq(out_of(c)->rsts, 0);
    ck_assert_int_eq(d0->status, 409);
    ck_assert_int_eq(d2->status, 409);
    ck_assert_ptr_null(t->up.out);
    ck_assert_ptr_null(t->down.out);
    ck_assert_int_eq(armed_of(PTTH_TIMER_RESUME), 1);
    ck_assert_int_eq(armed_of(PTTH_TIMER_IDLE), 0);
    ck_assert_uint_eq(core.nsuspended, 1);
    ck_assert_uint_eq(core.stats.tunnels_suspended, 1);
    ptth_rq *late = chunk(t, true, 0, false, 10);
    ck_assert_int_eq(late->status, 409);
    ck_assert_str_eq(late->body, "tunnel is suspended: resume it first\n");
    /* the grace runs out: resume_timeout */
    ck_assert_int_eq(fire(PTTH_TIMER_RESUME), 1);
    ck_assert_int_eq(last_reason, PTTH_END_RESUME_TIMEOUT);

    /* not raw: a broken stream ends it (rst), as before */
    ptth_rq *c2, *a2;
    ptth_tunnel *t2 = opened(0, 0, &c2, &a2);
    ptth_tunnel_on_broken(t2, out_of(a2));
    fire(PTTH_TIMER_NOW);
    ck_assert_int_eq(last_reason, PTTH_END_RST);
    ck_assert_int_eq(ends, 2);
}
END_TEST

START_TEST(plain_resumes_open_the_next_epoch)
{
    cfg.resume_grace = 30;
    ptth_rq *c, *a;
    ptth_tunnel *t = opened(PTTH_ASK_RESUME, PTTH_ASK_RESUME, &c, &a);
    char id[PTTH_ID_LEN + 1];
    snprintf(id, sizeof(id), "%s", t->id);
    chunk(t, true, 0, false, 10);
    drain(out_of(a));
    chunk(t, true, 1, false, 10);
    /* a resume while OPEN: news of a broken stream */
    ptth_rq *rc = plain_resume(id, false, 400, 900, false);
    ck_assert_int_eq(rc->status, 0);
    ck_assert_int_eq(t->state, PTTH_TUNNEL_SUSPENDED);
    ck_assert(out_of(a)->aborted && out_of(c)->aborted);
    ptth_rq *rs = plain_resume(id, true, 850, 480, false);
    ck_assert_int_eq(t->state, PTTH_TUNNEL_OPEN);
    ck_assert_int_eq(rc->status, 200);
    ck_assert_int_eq(rs->status, 200);
    ck_assert_ptr_eq(out_of(rc)->t, t);
    ck_assert_ptr_eq(t->down.out, out_of(rc));
    ck_assert_ptr_eq(t->up.out, out_of(rs));
    ck_assert_str_eq(hdr(rc, "ptth-epoch"), "1");
    ck_assert_str_eq(hdr(rs, "ptth-epoch"), "1");
    ck_assert_str_eq(hdr(rc, "ptth-peer-received"), "850");
    ck_assert_str_eq(hdr(rs, "ptth-peer-sent"), "900");
    ck_assert_str_eq(hdr(rc, "ptth-conn"), id);
    ck_assert_ptr_nonnull(hdr(rs, "ptth-resume"));
    ck_assert_ptr_nonnull(hdr(rs, "ptth-max-chunk"));
    ck_assert_uint_eq(core.stats.tunnels_resumed, 1);
    ck_assert_uint_eq(core.stats.replayed_up, 50);
    ck_assert_int_eq(armed_of(PTTH_TIMER_RESUME), 0);
    /* numbers start at 0 again, with the epoch */
    ptth_rq *n0 = chunk_epoch(t, true, "0", false, 10, "1");
    ck_assert_int_eq(out_of(rs)->raw, 1);
    drain(out_of(rs));
    ck_assert_int_eq(n0->status, 204);
    /* a chunk of the epoch before, still on its way: 409, nothing written */
    ptth_rq *stale = chunk_epoch(t, true, "1", false, 10, "0");
    ck_assert_int_eq(stale->status, 409);
    ck_assert_str_eq(stale->body, "chunk of epoch 0, the tunnel is at epoch 1\n");
    ck_assert_int_eq(out_of(rs)->raw, 1);
    ck_assert_int_eq(chunk(t, false, 0, false, 5)->status, 409); /* no epoch: 0 */
    ck_assert_int_eq(chunk_epoch(t, false, "0", false, 5, "x")->status, 400);
    /* and again: epoch 2 */
    ptth_tunnel_on_broken(t, out_of(rc));
    fire(PTTH_TIMER_NOW);
    ck_assert_int_eq(t->state, PTTH_TUNNEL_SUSPENDED);
    plain_resume(id, true, 0, 0, false);
    ptth_rq *rc2 = plain_resume(id, false, 0, 0, false);
    ck_assert_int_eq(rc2->status, 200);
    ck_assert_str_eq(hdr(rc2, "ptth-epoch"), "2");
    ck_assert_int_eq(t->state, PTTH_TUNNEL_OPEN);
}
END_TEST

/* Resumes that come while the tunnel is BROKEN are held; the suspension
 * at the end of the round finds both and opens it again. */
START_TEST(resumes_while_broken_are_held)
{
    cfg.resume_grace = 30;
    ptth_rq *c, *a;
    ptth_tunnel *t = opened(PTTH_ASK_RESUME, PTTH_ASK_RESUME, &c, &a);
    ptth_tunnel_on_broken(t, out_of(c));
    ptth_rq *rc = plain_resume(t->id, false, 0, 0, false);
    ptth_rq *rs = plain_resume(t->id, true, 0, 0, false);
    ck_assert_int_eq(t->state, PTTH_TUNNEL_BROKEN);
    ck_assert_int_eq(rc->status, 0);
    ck_assert_int_eq(rs->status, 0);
    fire(PTTH_TIMER_NOW);
    ck_assert_int_eq(t->state, PTTH_TUNNEL_OPEN);
    ck_assert_int_eq(rc->status, 200);
    ck_assert_int_eq(rs->status, 200);
    ck_assert_str_eq(hdr(rs, "ptth-epoch"), "1");
}
END_TEST

START_TEST(a_tunnel_resumes_on_its_path)
{
    cfg.resume_grace = 30;
    ptth_rq *c, *a;
    ptth_tunnel *t = opened(PTTH_ASK_RESUME, PTTH_ASK_RESUME, &c, &a);
    ptth_rq *r = plain_resume(t->id, false, 0, 0, true);
    ck_assert_int_eq(r->status, 409);
    ck_assert_str_eq(r->body, "tunnel is on the chunked path: resume it without Upgrade\n");
    ck_assert_int_eq(t->state, PTTH_TUNNEL_OPEN);
    const unsigned both = PTTH_ASK_UPGRADE | PTTH_ASK_RESUME;
    ptth_rq *jc, *ja;
    ptth_tunnel *j = opened(both, both, &jc, &ja);
    ck_assert_int_eq(j->state, PTTH_TUNNEL_JOINED);
    ck_assert(!j->raw);
    ptth_rq *r2 = plain_resume(j->id, true, 0, 0, false);
    ck_assert_int_eq(r2->status, 409);
    ck_assert_str_eq(r2->body, "tunnel is on the upgraded path: resume it with Upgrade\n");
    ck_assert_int_eq(j->state, PTTH_TUNNEL_JOINED);
    ck_assert_uint_eq(core.stats.resume_refused[PTTH_REFUSED_NOT_RESUMABLE], 2);
}
END_TEST

/* After a relay restart: a plain resume with a valid token for an unknown
 * id makes the tunnel again, raw, on the chunked path. */
START_TEST(unknown_id_resumes_on_the_path_of_its_resume)
{
    cfg.resume_grace = 30;
    const char *id = "k3Jx0v4GZ9yS1b3mYw2aQQ";
    ptth_rq *rs = plain_resume(id, true, 7, 9, false);
    ck_assert_int_eq(rs->status, 0);
    ptth_tunnel *t = ptth_tunnel_find(&core, id, PTTH_ID_LEN);
    ck_assert_ptr_nonnull(t);
    ck_assert(t->raw && !t->upgraded && t->resumable);
    ck_assert_int_eq(t->state, PTTH_TUNNEL_SUSPENDED);
    ck_assert_int_eq(plain_resume(id, false, 0, 0, true)->status, 409); /* not the path of the first */
    ptth_rq *rc = plain_resume(id, false, 9, 7, false);
    ck_assert_int_eq(rc->status, 200);
    ck_assert_int_eq(rs->status, 200);
    ck_assert_int_eq(t->state, PTTH_TUNNEL_OPEN);
    ck_assert_str_eq(hdr(rc, "ptth-epoch"), "1");
    chunk_epoch(t, true, "0", true, 0, "1");
    chunk_epoch(t, false, "0", true, 0, "1");
    ck_assert_int_eq(last_reason, PTTH_END_FIN);
}
END_TEST

Suite *
ptth_test_suite(void)
{
    Suite *s = suite_create("relay_tunnel_chunks_resume");
    TCase *tc = tcase_create("chunks_resume");
    tcase_add_checked_fixture(tc, tunnel_fake_setup, tunnel_fake_teardown);
    tcase_add_test(tc, both_asked_makes_a_raw_tunnel);
    tcase_add_test(tc, broken_stream_suspends_at_the_end_of_the_round);
    tcase_add_test(tc, plain_resumes_open_the_next_epoch);
    tcase_add_test(tc, resumes_while_broken_are_held);
    tcase_add_test(tc, a_tunnel_resumes_on_its_path);
    tcase_add_test(tc, unknown_id_resumes_on_the_path_of_its_resume);
    suite_add_tcase(s, tc);
    return s;
}
