/* Unit tests of relay/instances.c: the instance of each tunnel side, and
 * the end of a restarted terminator's suspended tunnels (reason
 * peer_restarted, docs/protocol.md "Restarted terminators"). Driven through
 * the fake io (tunnel_fake.h). */
#include <stdio.h>
#include <string.h>

#include "check_main.h"
#include "instances.h"
#include "tunnel_fake.h"
#include "tunnel_internal.h"

#define BOTH (PTTH_ASK_UPGRADE | PTTH_ASK_RESUME)

static ptth_instance
inst(const char *slot, const char *life)
{
    ptth_instance i;
    memset(&i, 0, sizeof(i));
    snprintf(i.slot, sizeof(i.slot), "%s", slot);
    snprintf(i.life, sizeof(i.life), "%s", life);
    return i;
}

/* A joined resumable tunnel whose client is instance cs.cl and server ss.sl
 * (NULL: the request carried none), as the HTTP side records them. */
static ptth_tunnel *
joined_as(const ptth_instance *ci, const ptth_instance *si)
{
    listen_on("foo", "ssh");
    ptth_rq *c = rq_new();
    ptth_tunnel *t = ptth_tunnel_connect(&core, c, "foo", 3, "ssh", 3, "alice", "192.0.2.1:4242", BOTH, PTTH_PROTO_TCP);
    ck_assert_ptr_nonnull(t);
    ptth_instances_record(t, false, ci);
    ptth_rq *a = rq_new();
    ptth_instances_record(t, true, si);
    ptth_tunnel_on_accept(t, a, BOTH);
    ck_assert_int_eq(t->state, PTTH_TUNNEL_JOINED);
    ck_assert(t->resumable);
    return t;
}

static ptth_rq *
resume_as(const char *id, bool server_side, const ptth_instance *i)
{
    ptth_resume_in in = resume_fields(server_side, 0, 0, true); /* the tunnels here are joined ones (joined_as) */
    in.addr = "198.51.100.1:6000";
    in.instance = i;
    return resume_send(id, &in);
}

START_TEST(restarted_server_ends_its_suspended_tunnels)
{
    cfg.resume_grace = 60;
    ptth_instance c1 = inst("CLIENTSLOT", "life1"), s1 = inst("SERVERSLOT", "life1"), s2 = inst("SERVERSLOT", "life2");
    ptth_tunnel *t = joined_as(&c1, &s1);
    char id[PTTH_ID_LEN + 1];
    snprintf(id, sizeof(id), "%s", t->id);
    ck_assert_uint_eq(core.instance_slots.count, 2);
    /* the server is killed: its leg breaks, the client resumes and waits */
    ptth_tunnel_on_joint_end(t, false, false, "server leg: reset");
    ck_assert_int_eq(t->state, PTTH_TUNNEL_SUSPENDED);
    ptth_rq *rc = resume_as(id, false, &c1);
    ck_assert_int_eq(rc->status, 0);
    /* the same life again changes nothing */
    ck_assert_uint_eq(ptth_instances_seen(&core, true, "foo", &s1), 0);
    ck_assert_int_eq(ends, 0);
    /* the new process's first request */
    ck_assert_uint_eq(ptth_instances_seen(&core, true, "foo", &s2), 1);
    ck_assert_int_eq(ends, 1);
    ck_assert_int_eq(last_reason, PTTH_END_PEER_RESTARTED);
    ck_assert_str_eq(ptth_end_reason_name(PTTH_END_PEER_RESTARTED), "peer_restarted");
    ck_assert_int_eq(rc->status, 404);
    ck_assert_str_eq(rc->body, "peer restarted\n");
    ck_assert_ptr_null(ptth_tunnel_find(&core, id, PTTH_ID_LEN));
    ck_assert_uint_eq(core.instance_slots.count, 0); /* no sides: no slots */
    ck_assert_uint_eq(core.stats.tunnels_ended[PTTH_END_PEER_RESTARTED], 1);
    /* a late resume learns why */
    ptth_rq *late = resume_as(id, false, &c1);
    ck_assert_int_eq(late->status, 404);
    ck_assert_str_eq(late->body, "peer restarted\n");
}
END_TEST

START_TEST(restarted_client_ends_its_suspended_tunnels)
{
    cfg.resume_grace = 60;
    ptth_instance c1 = inst("CS", "a"), c2 = inst("CS", "b"), s1 = inst("SS", "a");
    ptth_tunnel *t = joined_as(&c1, &s1);
    char id[PTTH_ID_LEN + 1];
    snprintf(id, sizeof(id), "%s", t->id);
    ptth_tunnel_on_joint_end(t, false, false, "client leg: reset");
    ptth_rq *rs = resume_as(id, true, &s1);
    ck_assert_int_eq(rs->status, 0);
    /* another client name, or the server side of the same slot text: not this one */
    ck_assert_uint_eq(ptth_instances_seen(&core, false, "bob", &c2), 0);
    ck_assert_uint_eq(ptth_instances_seen(&core, true, "alice", &c2), 0);
    ck_assert_uint_eq(ptth_instances_seen(&core, false, "alice", &c2), 1);
    ck_assert_int_eq(last_reason, PTTH_END_PEER_RESTARTED);
    ck_assert_int_eq(rs->status, 404);
    ck_assert_str_eq(rs->body, "peer restarted\n");
}
END_TEST

/* A joined tunnel of another life: two running processes share the slot.
 * Nothing ends, then or later. */
START_TEST(collision_ends_nothing)
{
    cfg.resume_grace = 60;
    ptth_instance c1 = inst("CS", "a"), s1 = inst("SS", "a"), s2 = inst("SS", "b");
    ptth_tunnel *t1 = joined_as(&c1, &s1);
    ptth_tunnel *t2 = joined_as(&c1, &s2);
    ck_assert_uint_eq(ptth_instances_seen(&core, true, "foo", &s2), 0); /* t1 is joined: a collision */
    ck_assert_int_eq(t1->state, PTTH_TUNNEL_JOINED);
    ptth_tunnel_on_joint_end(t1, false, false, "server leg: reset");
    ck_assert_uint_eq(ptth_instances_seen(&core, true, "foo", &s1), 0);
    ck_assert_uint_eq(ptth_instances_seen(&core, true, "foo", &s2), 0);
    ck_assert_int_eq(ends, 0);
    ck_assert_int_eq(t1->state, PTTH_TUNNEL_SUSPENDED);
    ck_assert_int_eq(t2->state, PTTH_TUNNEL_JOINED);
}
END_TEST

/* The side's own resume is held: its process runs (a live side). */
START_TEST(held_resume_of_that_side_is_live)
{
    cfg.resume_grace = 60;
    ptth_instance c1 = inst("CS", "a"), s1 = inst("SS", "a"), s2 = inst("SS", "b");
    ptth_tunnel *t = joined_as(&c1, &s1);
    ptth_rq *rs = resume_as(t->id, true, &s1); /* the server resumes: suspended, its resume held */
    ck_assert_int_eq(t->state, PTTH_TUNNEL_SUSPENDED);
    ck_assert_uint_eq(ptth_instances_seen(&core, true, "foo", &s2), 0);
    ck_assert_int_eq(ends, 0);
    ck_assert_int_eq(rs->status, 0);
}
END_TEST

/* A resume records its instance: the side moves to the new life, and the
 * old life's requests then find it (the old process is the stale one). */
START_TEST(resume_records_its_instance)
{
    cfg.resume_grace = 60;
    ptth_instance c1 = inst("CS", "a"), s1 = inst("SS", "a"), s2 = inst("SS", "b");
    ptth_tunnel *t = joined_as(&c1, &s1);
    ptth_tunnel_on_joint_end(t, false, false, "x");
    (void)resume_as(t->id, true, &s2);
    ck_assert_str_eq(t->inst[1].id.life, "b");
    ck_assert_ptr_nonnull(t->inst[1].slot);
    ck_assert_uint_eq(core.instance_slots.count, 2);
}
END_TEST

/* Requests without PTTH-Instance, and tunnels made without one: as before. */
START_TEST(no_instance_changes_nothing)
{
    cfg.resume_grace = 60;
    ptth_instance s2 = inst("SS", "b");
    ptth_tunnel *t = joined_as(NULL, NULL);
    ck_assert_uint_eq(core.instance_slots.count, 0);
    ptth_tunnel_on_joint_end(t, false, false, "x");
    ck_assert_uint_eq(ptth_instances_seen(&core, true, "foo", &s2), 0);
    ck_assert_uint_eq(ptth_instances_seen(&core, true, "foo", NULL), 0);
    ck_assert_int_eq(ends, 0);
    ck_assert_int_eq(t->state, PTTH_TUNNEL_SUSPENDED);
}
END_TEST

/* Several suspended tunnels of the old life end together; the slot of the
 * other side goes when its last tunnel does. */
START_TEST(all_lost_tunnels_of_the_slot_end)
{
    cfg.resume_grace = 60;
    ptth_instance c1 = inst("CS", "a"), s1 = inst("SS", "a"), s2 = inst("SS", "b");
    ptth_tunnel *t1 = joined_as(&c1, &s1);
    ptth_tunnel *t2 = joined_as(&c1, &s1);
    ptth_tunnel *t3 = joined_as(&c1, &s1);
    ptth_tunnel_on_joint_end(t1, false, false, "x");
    ptth_tunnel_on_joint_end(t2, false, false, "x");
    ptth_tunnel_on_joint_end(t3, false, false, "x");
    ck_assert_uint_eq(ptth_instances_seen(&core, true, "foo", &s2), 3);
    ck_assert_int_eq(ends, 3);
    ck_assert_uint_eq(core.ntunnels, 0);
    ck_assert_uint_eq(core.instance_slots.count, 0);
}
END_TEST

/* Not resumable (one side did not ask): never linked, never ended so. */
START_TEST(not_resumable_is_not_linked)
{
    cfg.resume_grace = 60;
    ptth_instance c1 = inst("CS", "a"), s1 = inst("SS", "a");
    listen_on("foo", "ssh");
    ptth_rq *c = rq_new();
    ptth_tunnel *t = ptth_tunnel_connect(&core, c, "foo", 3, "ssh", 3, "alice", "192.0.2.1:4242", PTTH_ASK_UPGRADE, PTTH_PROTO_TCP);
    ptth_instances_record(t, false, &c1);
    ptth_instances_record(t, true, &s1);
    ptth_tunnel_on_accept(t, rq_new(), BOTH);
    ck_assert(!t->resumable);
    ck_assert_uint_eq(core.instance_slots.count, 0);
}
END_TEST

Suite *
ptth_test_suite(void)
{
    Suite *s = suite_create("relay_instances");
    TCase *tc = tcase_create("instances");
    tcase_add_checked_fixture(tc, tunnel_fake_setup, tunnel_fake_teardown);
    tcase_add_test(tc, restarted_server_ends_its_suspended_tunnels);
    tcase_add_test(tc, restarted_client_ends_its_suspended_tunnels);
    tcase_add_test(tc, collision_ends_nothing);
    tcase_add_test(tc, held_resume_of_that_side_is_live);
    tcase_add_test(tc, resume_records_its_instance);
    tcase_add_test(tc, no_instance_changes_nothing);
    tcase_add_test(tc, all_lost_tunnels_of_the_slot_end);
    tcase_add_test(tc, not_resumable_is_not_linked);
    suite_add_tcase(s, tc);
    return s;
}
