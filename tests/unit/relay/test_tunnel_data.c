/*
 * Unit tests of the relay's tunnel core, part two: chunks (order, retries,
 * errors, FIN conflicts), ends (FIN, RST, broken streams, idle, shutdown),
 * the upgraded path's joint, reload revoking changed keys, and the SPEC §4
 * order of events with its relaxed steps 5 to 8. The fake HTTP side is
 * tunnel_fake.c.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "keys.h"
#include "principals.h"
#include "tunnel_fake.h"

START_TEST(chunk_is_answered_when_the_stream_took_it)
{
    ptth_rq *c, *a;
    ptth_tunnel *t = open_tunnel(&c, &a);
    ptth_rq *u = chunk(t, true, 0, false, 100);
    ck_assert_int_eq(out_of(a)->data, 1); /* upstream goes into the accept stream */
    ck_assert_uint_eq(out_of(a)->data_bytes, 100);
    ck_assert_int_eq(u->status, 0);
    ptth_rq *u1 = chunk(t, true, 1, false, 50); /* the stream is busy: held */
    ck_assert_int_eq(out_of(a)->data, 1);
    drain(out_of(a));
    ck_assert_int_eq(u->status, 204);
    ck_assert_str_eq(hdr(u, "ptth-conn"), t->id);
    ck_assert_str_eq(hdr(u, "ptth-seq"), "0");
    ck_assert_int_eq(out_of(a)->data, 2); /* the next one went out */
    ck_assert_int_eq(u1->status, 0);
    drain(out_of(a));
    ck_assert_int_eq(u1->status, 204);
    ck_assert_uint_eq(t->up.bytes, 150);
    ck_assert_uint_eq(core.stats.bytes_up, 150);
    ptth_rq *d = chunk(t, false, 0, false, 7);
    ck_assert_int_eq(out_of(c)->data, 1); /* downstream into the connect stream */
    drain(out_of(c));
    ck_assert_int_eq(d->status, 204);
    ck_assert_uint_eq(core.stats.bytes_down, 7);
}
END_TEST

START_TEST(chunks_are_delivered_in_order)
{
    ptth_rq *c, *a;
    ptth_tunnel *t = open_tunnel(&c, &a);
    ptth_rq *r[8];
    for (int i = 7; i >= 1; i--)
        r[i] = chunk(t, true, (unsigned)i, false, 10);
    ck_assert_int_eq(out_of(a)->data, 0);
    r[0] = chunk(t, true, 0, false, 10);
    ck_assert_int_eq(out_of(a)->data, 8); /* one batch */
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(r[i]->status, 0);
    drain(out_of(a));
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(r[i]->status, 204);
    ck_assert_uint_eq(ptth_seqwin_next(&t->up.win), 8);
}
END_TEST

START_TEST(chunk_retries)
{
    ptth_rq *c, *a;
    ptth_tunnel *t = open_tunnel(&c, &a);
    chunk(t, true, 0, false, 10);
    drain(out_of(a));
    ptth_rq *again = chunk(t, true, 0, false, 10); /* delivered before */
    ck_assert_int_eq(again->status, 204);
    ck_assert_str_eq(hdr(again, "ptth-seq"), "0");
    ck_assert_int_eq(out_of(a)->data, 1);
    ptth_rq *first = chunk(t, true, 2, false, 10); /* held: 1 is missing */
    ptth_rq *second = chunk(t, true, 2, false, 10);
    ck_assert_int_eq(first->status, 409);
    ck_assert_str_eq(first->body, "superseded by a retry of the same PTTH-Seq\n");
    ck_assert_int_eq(second->status, 0);
    chunk(t, true, 1, false, 10);
    ck_assert_int_eq(out_of(a)->data, 3); /* 1 and 2, once */
    drain(out_of(a));
    ck_assert_int_eq(second->status, 204);
}
END_TEST

START_TEST(chunk_errors)
{
    ptth_rq *c, *a;
    ptth_tunnel *t = open_tunnel(&c, &a);
    ptth_rq *r = chunk_raw(t, true, NULL, NULL, 10);
    ck_assert_int_eq(r->status, 400);
    ck_assert_ptr_nonnull(strstr(r->body, "PTTH-Seq"));
    ck_assert_int_eq(chunk_raw(t, true, "-1", NULL, 10)->status, 400);
    ck_assert_int_eq(chunk_raw(t, true, "1x", NULL, 10)->status, 400);
    r = chunk_raw(t, true, "0", "yes", 10);
    ck_assert_int_eq(r->status, 400);
    ck_assert_str_eq(r->body, "bad PTTH-Fin (1 or 0)\n");
    r = chunk_raw(t, true, "0", "0", 0);
    ck_assert_int_eq(r->status, 400);
    ck_assert_str_eq(r->body, "empty chunk without PTTH-Fin: 1\n");
    r = chunk(t, true, 0, false, 1001);
    ck_assert_int_eq(r->status, 413);
    ck_assert_str_eq(r->body, "chunk of 1001 bytes is above --max-chunk 1000\n");
    ck_assert_int_eq(chunk(t, true, 0, false, 1000)->status, 0); /* the limit itself is fine */
    r = chunk(t, true, 9, false, 10);                            /* next is 1: 1..8 fit */
    ck_assert_int_eq(r->status, 409);
    ck_assert_str_eq(r->body, "PTTH-Seq 9 is more than 8 ahead of the last delivered chunk (next is 1)\n");
    ck_assert_int_eq(chunk(t, true, 8, false, 10)->status, 0);
    /* a FIN while later chunks are held */
    r = chunk(t, true, 3, true, 0);
    ck_assert_int_eq(r->status, 409);
    ck_assert_str_eq(r->body, "FIN at 3 but later chunks are held\n");
    ck_assert_int_eq(ends, 0);
}
END_TEST

START_TEST(chunks_after_fin_conflict)
{
    ptth_rq *c, *a;
    ptth_tunnel *t = open_tunnel(&c, &a);
    ptth_rq *f = chunk(t, false, 2, true, 0); /* FIN at 2, held */
    ck_assert_int_eq(f->status, 0);
    ck_assert_int_eq(t->down.fin, PTTH_FIN_HELD);
    ptth_rq *r = chunk(t, false, 3, false, 10);
    ck_assert_int_eq(r->status, 409);
    ck_assert_str_eq(r->body, "chunk 3 conflicts with FIN at 2\n");
    r = chunk(t, false, 1, true, 0); /* a second FIN elsewhere */
    ck_assert_int_eq(r->status, 409);
    ptth_rq *f2 = chunk(t, false, 2, true, 0); /* a retry of the FIN itself supersedes it */
    ck_assert_int_eq(f2->status, 0);
    ck_assert_int_eq(f->status, 409);
    ck_assert_int_eq(chunk(t, false, 0, false, 10)->status, 0);
    ck_assert_int_eq(chunk(t, false, 1, false, 10)->status, 0);
    ck_assert_int_eq(out_of(c)->data, 1);
    drain(out_of(c)); /* 1 and the FIN at 2 go out together */
    ck_assert_int_eq(out_of(c)->data, 2);
    ck_assert_int_eq(out_of(c)->fins, 1);
    ck_assert_int_eq(t->down.fin, PTTH_FIN_WRITTEN);
    ck_assert_int_eq(f2->status, 0);
    drain(out_of(c));
    ck_assert_int_eq(f2->status, 204);
    ck_assert_int_eq(t->down.fin, PTTH_FIN_DONE);
    ck_assert_int_eq(t->state, PTTH_TUNNEL_OPEN); /* the other way is still open */
}
END_TEST

START_TEST(chunk_before_accept_is_409)
{
    listen_on("foo", "ssh");
    ptth_rq *c;
    ptth_tunnel *t = connect_to("foo", "ssh", &c, false);
    ptth_rq *r = chunk(t, true, 0, false, 10);
    ck_assert_int_eq(r->status, 409);
    ck_assert_str_eq(r->body, "tunnel not accepted yet\n");
}
END_TEST

START_TEST(chunk_gone_while_held_must_be_sent_again)
{
    ptth_rq *c, *a;
    ptth_tunnel *t = open_tunnel(&c, &a);
    ptth_rq *r1 = chunk(t, true, 1, false, 10);
    rq_gone(r1);
    ck_assert_uint_eq(t->up.win.held, 0);
    chunk(t, true, 0, false, 10);
    ck_assert_int_eq(out_of(a)->data, 1);
    drain(out_of(a));
    ptth_rq *r1b = chunk(t, true, 1, false, 10);
    ck_assert_int_eq(out_of(a)->data, 2);
    rq_gone(r1b); /* gone after it was written: no answer, nothing breaks */
    drain(out_of(a));
    ck_assert_int_eq(r1b->status, 0);
    ck_assert_int_eq(ends, 0);
}
END_TEST

START_TEST(write_failure_ends_the_tunnel)
{
    ptth_rq *c, *a;
    ptth_tunnel *t = open_tunnel(&c, &a);
    ptth_rq *held = chunk(t, true, 1, false, 10);
    out_of(a)->fail = -ENOMEM;
    ptth_rq *r = chunk(t, true, 0, false, 10);
    ck_assert_int_eq(r->status, 500);
    ck_assert_int_eq(held->status, 404);
    ck_assert_int_eq(last_reason, PTTH_END_RST);
    ck_assert_str_eq(last_detail, "relay out of memory");
}
END_TEST

/* ---- ends ----------------------------------------------------------------------------------------- */

START_TEST(both_fins_end_with_fin)
{
    ptth_rq *c, *a;
    ptth_tunnel *t = open_tunnel(&c, &a);
    ptth_rq *u = chunk(t, true, 0, true, 5); /* data and FIN in one */
    ck_assert_int_eq(out_of(a)->data, 1);
    ck_assert_int_eq(out_of(a)->fins, 1);
    drain(out_of(a));
    ck_assert_int_eq(u->status, 204);
    ck_assert_int_eq(t->up.fin, PTTH_FIN_DONE);
    ptth_rq *d = chunk(t, false, 0, true, 0);
    drain(out_of(c));
    ck_assert_int_eq(d->status, 204);
    ck_assert_int_eq(ends, 1);
    ck_assert_int_eq(last_reason, PTTH_END_FIN);
    ck_assert(out_of(a)->finished && out_of(c)->finished);
    ck_assert_int_eq(out_of(a)->rsts + out_of(c)->rsts, 0);
    ck_assert_uint_eq(core.ntunnels, 0);
}
END_TEST

START_TEST(end_writes_rst_and_answers_what_is_held)
{
    ptth_rq *c, *a;
    ptth_tunnel *t = open_tunnel(&c, &a);
    ptth_rq *w = chunk(t, true, 0, false, 10); /* written, not yet answered */
    ptth_rq *h = chunk(t, true, 2, false, 10); /* held in the window */
    ptth_tunnel_end(t, PTTH_END_RST, "closed by client: bye");
    ck_assert_int_eq(w->status, 404);
    ck_assert_int_eq(h->status, 404);
    ck_assert_str_eq(out_of(a)->rst, "closed by client: bye");
    ck_assert_str_eq(out_of(c)->rst, "closed by client: bye");
    ck_assert(out_of(a)->finished && out_of(c)->finished);
    ck_assert_int_eq(last_reason, PTTH_END_RST);
    ck_assert_ptr_null(ptth_tunnel_find(&core, hdr(c, "ptth-conn"), PTTH_ID_LEN));
}
END_TEST

START_TEST(broken_stream_ends_at_the_end_of_the_round)
{
    ptth_rq *c, *a;
    ptth_tunnel *t = open_tunnel(&c, &a);
    ptth_rq *d = chunk(t, false, 0, false, 10);
    ptth_tunnel_on_broken(t, out_of(a)); /* the server's stream */
    ck_assert_int_eq(t->state, PTTH_TUNNEL_BROKEN);
    ck_assert_ptr_null(t->up.out);
    ck_assert_int_eq(armed_of(PTTH_TIMER_NOW), 1);
    ck_assert_int_eq(ends, 0);
    ptth_tunnel_on_broken(t, out_of(c)); /* the other breaking too changes nothing more */
    ck_assert_int_eq(t->state, PTTH_TUNNEL_BROKEN);
    ck_assert_int_eq(armed_of(PTTH_TIMER_NOW), 1);
    ck_assert_int_eq(armed_of(PTTH_TIMER_CONNECT), 0); /* its own timer, not the connect timer */
    fire(PTTH_TIMER_NOW);
    ck_assert_int_eq(ends, 1);
    ck_assert_int_eq(last_reason, PTTH_END_RST);
    ck_assert_str_eq(last_detail, "server's stream broke");
    ck_assert_int_eq(d->status, 404);
}
END_TEST

START_TEST(broken_tunnel_still_moves_the_other_way)
{
    ptth_rq *c, *a;
    ptth_tunnel *t = open_tunnel(&c, &a);
    ptth_tunnel_on_broken(t, out_of(c)); /* the client's stream */
    ptth_rq *u = chunk(t, true, 0, false, 10);
    ck_assert_int_eq(out_of(a)->data, 1);
    drain(out_of(a));
    ck_assert_int_eq(u->status, 204);
    fire(PTTH_TIMER_NOW);
    ck_assert_str_eq(last_detail, "client's stream broke");
    ck_assert_str_eq(out_of(a)->rst, "client's stream broke");
}
END_TEST

START_TEST(idle_timeout)
{
    cfg.idle_timeout = 30;
    ptth_rq *c, *a;
    ptth_tunnel *t = open_tunnel(&c, &a);
    ck_assert_int_eq(armed_of(PTTH_TIMER_IDLE), 1);
    ck_assert(t->idle_timer.armed);
    chunk(t, true, 0, false, 10); /* traffic restarts it (the fake checks the disarm) */
    ck_assert_int_eq(armed_of(PTTH_TIMER_IDLE), 1);
    fire(PTTH_TIMER_IDLE);
    ck_assert_int_eq(last_reason, PTTH_END_IDLE);
    ck_assert_str_eq(out_of(a)->rst, "idle");
}
END_TEST

START_TEST(shutdown_answers_everything)
{
    ptth_rq *l = listen_on("foo", "ssh");
    listen_on("bar", "ssh");
    fire(PTTH_TIMER_LISTEN);
    ck_assert_int_eq(l->status, 204);
    ptth_rq *held = listen_on("bar", NULL);
    ptth_rq *c;
    connect_to("foo", "ssh", &c, false);
    ptth_tunnel_end_all(&core);
    ck_assert_int_eq(c->status, 503);
    ck_assert_uint_eq(c->retry, PTTH_RETRY_OFFLINE);
    ck_assert_int_eq(held->status, 503);
    ck_assert_int_eq(last_reason, PTTH_END_SHUTDOWN);
    ck_assert_uint_eq(core.servers.count, 0);
    ck_assert_int_eq(narmed, 0);
}
END_TEST

/* ---- the upgraded path ------------------------------------------------------------------------------ */

START_TEST(both_ask_for_upgrade_then_joined)
{
    cfg.idle_timeout = 30;
    listen_on("foo", "ssh");
    ptth_rq *c;
    ptth_tunnel *t = connect_to("foo", "ssh", &c, true);
    ptth_rq *a = rq_new();
    ptth_tunnel_on_accept(t, a, true);
    ck_assert_int_eq(t->state, PTTH_TUNNEL_JOINED);
    ck_assert_int_eq(njoins, 1);
    ck_assert(joins[0].started);
    ck_assert_ptr_eq(joins[0].connect, c);
    ck_assert_ptr_eq(joins[0].accept, a);
    ck_assert_str_eq(hdr(c, "ptth-conn"), t->id);
    ck_assert_str_eq(hdr(a, "ptth-heartbeat"), "20");
    ck_assert_str_eq(hdr(c, "ptth-idle-timeout"), "30");
    ck_assert_int_eq(nouts, 0);
    ck_assert_int_eq(armed_of(PTTH_TIMER_CONNECT), 0);
    ck_assert_int_eq(armed_of(PTTH_TIMER_IDLE), 1);
    ptth_rq *r = chunk(t, true, 0, false, 10);
    ck_assert_int_eq(r->status, 409);
    ck_assert_str_eq(r->body, "tunnel is on the upgraded path: no chunks\n");
    ptth_tunnel_on_moved(t, true, 100);
    ptth_tunnel_on_moved(t, false, PTTH_FRAME_HEADER_LEN);
    ck_assert_uint_eq(t->up.bytes, 100);
    ck_assert_uint_eq(t->down.bytes, PTTH_FRAME_HEADER_LEN);
    ptth_tunnel_on_joint_end(t, true, false, NULL);
    ck_assert_int_eq(last_reason, PTTH_END_FIN);
    ck_assert(joins[0].closed && !joins[0].reset);
}
END_TEST

START_TEST(joint_broken_ends_with_reset)
{
    listen_on("foo", "ssh");
    ptth_rq *c;
    ptth_tunnel *t = connect_to("foo", "ssh", &c, true);
    ptth_tunnel_on_accept(t, rq_new(), true);
    ptth_tunnel_on_joint_end(t, false, false, "server leg: reset");
    ck_assert_int_eq(last_reason, PTTH_END_RST);
    ck_assert_str_eq(last_detail, "server leg: reset");
    ck_assert(joins[0].closed && joins[0].reset);
}
END_TEST

START_TEST(one_side_asks_for_upgrade)
{
    listen_on("foo", "ssh");
    ptth_rq *c;
    ptth_tunnel *t = connect_to("foo", "ssh", &c, true);
    ptth_rq *a = rq_new();
    ptth_tunnel_on_accept(t, a, false);
    ck_assert_int_eq(t->state, PTTH_TUNNEL_OPEN);
    ck_assert_str_eq(hdr(c, "ptth-upgrade"), "peer");
    ck_assert_ptr_null(hdr(a, "ptth-upgrade"));
    /* --upgrade off: both asked, neither gets it */
    cfg.upgrade = "off";
    listen_on("foo", NULL);
    t = connect_to("foo", "ssh", &c, true);
    a = rq_new();
    ptth_tunnel_on_accept(t, a, true);
    ck_assert_int_eq(t->state, PTTH_TUNNEL_OPEN);
    ck_assert_str_eq(hdr(c, "ptth-upgrade"), "off");
    ck_assert_str_eq(hdr(a, "ptth-upgrade"), "off");
}
END_TEST

START_TEST(joint_out_of_memory_is_500)
{
    join_fails = true;
    listen_on("foo", "ssh");
    ptth_rq *c;
    ptth_tunnel *t = connect_to("foo", "ssh", &c, true);
    ptth_rq *a = rq_new();
    ptth_tunnel_on_accept(t, a, true);
    ck_assert_int_eq(a->status, 500);
    ck_assert_int_eq(c->status, 502);
    ck_assert_str_eq(last_detail, "relay out of memory");
}
END_TEST

/* ---- reload --------------------------------------------------------------------------------------------- */

static char pitems[8][PTTH_TEST_PRINCIPAL_LEN];
static char *pptrs[8];

static void
auth_of(ptth_auth *a, const char *foo_key, bool with_bar, const char *alice_key)
{
    const char *snames[] = {"foo", "bar"}, *skeys[] = {foo_key, "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"};
    const char *cnames[] = {"alice"}, *ckeys[] = {alice_key};
    ptth_strlist servers = ptth_test_principals(&pitems[0], &pptrs[0], with_bar ? 2 : 1, snames, skeys);
    ptth_strlist clients = ptth_test_principals(&pitems[4], &pptrs[4], 1, cnames, ckeys);
    ptth_strlist allow = {0};
    ptth_problems p = {0};
    ck_assert_int_eq(ptth_auth_build(a, &servers, &clients, &allow, NULL, &p), 0);
    ptth_problems_free(&p);
}

#define KEY_A "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define KEY_C "CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC"
#define KEY_E "EEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEE"

START_TEST(reload_revokes_changed_keys)
{
    ptth_auth old, same, foo_changed, alice_changed, bar_gone;
    auth_of(&old, KEY_A, true, KEY_C);
    auth_of(&same, KEY_A, true, KEY_C);
    auth_of(&foo_changed, KEY_E, true, KEY_C);
    auth_of(&alice_changed, KEY_A, true, KEY_E);
    auth_of(&bar_gone, KEY_A, false, KEY_C);

    ptth_rq *c, *a;
    ptth_tunnel *t = open_tunnel(&c, &a);
    ptth_rq *bar_listen = listen_on("bar", "ssh");
    ptth_tunnel_apply_auth(&core, &old, &same);
    ck_assert_int_eq(ends, 0);
    ck_assert_int_eq(bar_listen->status, 0);

    ptth_tunnel_apply_auth(&core, &old, &bar_gone); /* bar: listens 401, and forgotten */
    ck_assert_int_eq(bar_listen->status, 401);
    ck_assert_ptr_null(ptth_srv_get(&core, "bar", 3));
    ck_assert_int_eq(ends, 0);

    ptth_tunnel_apply_auth(&core, &old, &alice_changed);
    ck_assert_int_eq(ends, 1);
    ck_assert_str_eq(last_detail, "client key revoked");
    ck_assert_str_eq(out_of(a)->rst, "client key revoked");
    (void)t;

    t = open_tunnel(&c, &a);
    ptth_rq *foo_listen = listen_on("foo", NULL);
    ptth_tunnel_apply_auth(&core, &old, &foo_changed);
    ck_assert_int_eq(ends, 2);
    ck_assert_str_eq(last_detail, "server key revoked");
    ck_assert_int_eq(foo_listen->status, 401);
    ck_assert_ptr_nonnull(ptth_srv_get(&core, "foo", 3)); /* changed, not removed: kept */

    ptth_auth_free(&old);
    ptth_auth_free(&same);
    ptth_auth_free(&foo_changed);
    ptth_auth_free(&alice_changed);
    ptth_auth_free(&bar_gone);
}
END_TEST

/* ---- the order of events (SPEC §4) ------------------------------------------------------------------------ */

/* The order as the SPEC tells it: listen, connect, the listen's 200, accept
 * (both 200), chunks each way, FIN each way, the end. */
START_TEST(order_of_events_as_specified)
{
    ptth_rq *l = listen_on("foo", "ssh"); /* 1. the server listens */
    ptth_rq *c;
    ptth_tunnel *t = connect_to("foo", "ssh", &c, false); /* 2. a client connects */
    ck_assert_int_eq(l->status, 200);                     /* 3. the listen learns the id */
    ck_assert_int_eq(c->status, 0);                       /*    the connect is held */
    ptth_rq *a = rq_new();
    ptth_tunnel_on_accept(t, a, false); /* 4. accept: both streams at once */
    ck_assert_int_eq(c->status, 200);
    ck_assert_int_eq(a->status, 200);
    ptth_rq *u0 = chunk(t, true, 0, false, 10); /* 5. upstream */
    drain(out_of(a));
    ptth_rq *d0 = chunk(t, false, 0, false, 20); /* 6. downstream */
    drain(out_of(c));
    ptth_rq *uf = chunk(t, true, 1, true, 0); /* 7. the client half-closes */
    drain(out_of(a));
    ptth_rq *df = chunk(t, false, 1, true, 0); /* 8. the server half-closes */
    drain(out_of(c));
    ck_assert_int_eq(u0->status, 204);
    ck_assert_int_eq(d0->status, 204);
    ck_assert_int_eq(uf->status, 204);
    ck_assert_int_eq(df->status, 204);
    ck_assert_int_eq(last_reason, PTTH_END_FIN); /* 9. the end */
    ck_assert_int_eq(ends, 1);
}
END_TEST

/* Steps 5 to 8 are not ordered against each other: downstream first, a
 * FIN of one way while the other keeps sending, chunks out of order, both
 * FINs in one batch. */
START_TEST(order_of_events_relaxed_steps)
{
    ptth_rq *c, *a;
    ptth_tunnel *t = open_tunnel(&c, &a);
    ptth_rq *df = chunk(t, false, 1, true, 0); /* 8 before 6: the server's FIN, before its data */
    ck_assert_int_eq(out_of(c)->fins, 0);
    ptth_rq *d0 = chunk(t, false, 0, false, 20); /* 6 */
    ck_assert_int_eq(out_of(c)->data, 1);
    ck_assert_int_eq(out_of(c)->fins, 1); /* data and FIN in one batch */
    drain(out_of(c));
    ck_assert_int_eq(d0->status, 204);
    ck_assert_int_eq(df->status, 204);
    ck_assert_int_eq(t->down.fin, PTTH_FIN_DONE);
    /* the client goes on after the server's half-close (5 after 8) */
    for (unsigned i = 0; i < 3; i++) {
        ptth_rq *u = chunk(t, true, i, false, 10);
        drain(out_of(a));
        ck_assert_int_eq(u->status, 204);
    }
    ck_assert_int_eq(ends, 0);
    ptth_rq *uf = chunk(t, true, 3, true, 0); /* 7, last */
    drain(out_of(a));
    ck_assert_int_eq(uf->status, 204);
    ck_assert_int_eq(last_reason, PTTH_END_FIN);
    ck_assert_uint_eq(core.stats.tunnels_ended[PTTH_END_FIN], 1);
}
END_TEST

Suite *
ptth_test_suite(void)
{
    Suite *s = suite_create("relay_tunnel_data");
    TCase *tc = tcase_create("tunnel");
    tcase_add_checked_fixture(tc, tunnel_fake_setup, tunnel_fake_teardown);
    tcase_add_test(tc, chunk_is_answered_when_the_stream_took_it);
    tcase_add_test(tc, chunks_are_delivered_in_order);
    tcase_add_test(tc, chunk_retries);
    tcase_add_test(tc, chunk_errors);
    tcase_add_test(tc, chunks_after_fin_conflict);
    tcase_add_test(tc, chunk_before_accept_is_409);
    tcase_add_test(tc, chunk_gone_while_held_must_be_sent_again);
    tcase_add_test(tc, write_failure_ends_the_tunnel);
    tcase_add_test(tc, both_fins_end_with_fin);
    tcase_add_test(tc, end_writes_rst_and_answers_what_is_held);
    tcase_add_test(tc, broken_stream_ends_at_the_end_of_the_round);
    tcase_add_test(tc, broken_tunnel_still_moves_the_other_way);
    tcase_add_test(tc, idle_timeout);
    tcase_add_test(tc, shutdown_answers_everything);
    tcase_add_test(tc, both_ask_for_upgrade_then_joined);
    tcase_add_test(tc, joint_broken_ends_with_reset);
    tcase_add_test(tc, one_side_asks_for_upgrade);
    tcase_add_test(tc, joint_out_of_memory_is_500);
    tcase_add_test(tc, reload_revokes_changed_keys);
    tcase_add_test(tc, order_of_events_as_specified);
    tcase_add_test(tc, order_of_events_relaxed_steps);
    suite_add_tcase(s, tc);
    return s;
}
