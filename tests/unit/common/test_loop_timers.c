/* Unit tests of the timers of common/loop (a pairing heap since the sorted
 * list made each start a linear scan): many timers in random order fire in
 * due order and ties in arming order; restart and stop from callbacks,
 * including of other timers due in the same round; timers freed right after
 * their stop (meant for the ASan build); ptth_loop_stop() ends the timer
 * phase; delays are honoured. Also prints how long arming and stopping
 * 100,000 timers took, as a diagnostic (no assertion on speed). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check_main.h"
#include "loop.h"

static long long
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A small deterministic generator, so that a failure can be replayed. */
static unsigned long long rng_state;

static unsigned
rng(unsigned bound)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (unsigned)((rng_state >> 33) % bound);
}

static void
on_stop_loop(ptth_timer *t)
{
    ptth_loop_stop(t->data);
}

/* Runs the loop until a guard timer of ms stops it. */
static void
run_for(ptth_loop *loop, long long ms)
{
    ptth_timer guard;
    memset(&guard, 0, sizeof(guard));
    ptth_timer_start(loop, &guard, ms, on_stop_loop, loop);
    ck_assert_int_eq(ptth_loop_run(loop), 0);
    ptth_timer_stop(loop, &guard);
}

/* ---- many timers ---- */

enum { MANY = 100000, MANY_DELAYS = 150 };

typedef struct many {
    ptth_loop *loop;
    ptth_timer *timers;
    int *delay;
    long long *lo, *hi; /* the due time lies in [lo, hi]: clock read around the start call */
    int *armed;         /* arming order (the last start call) */
    int *fired;         /* how often each fired */
    int *last_of_delay; /* arming order of the last one fired per delay value */
    int n_fired;
    long long max_lo; /* the largest lower bound among those fired so far */
    int out_of_order, ties_out_of_order, early;
} many;

static void
on_many(ptth_timer *t)
{
    many *m = t->data;
    int i = (int)(t - m->timers);
    m->fired[i]++;
    m->n_fired++;
    /* due order: this one's due time may not be certainly earlier than one
     * that already fired */
    if (m->hi[i] < m->max_lo)
        m->out_of_order++;
    if (m->lo[i] > m->max_lo)
        m->max_lo = m->lo[i];
    /* equal delays: due in arming order, so fired in arming order (a tie
     * in due time goes to the one started first) */
    if (m->last_of_delay[m->delay[i]] > m->armed[i])
        m->ties_out_of_order++;
    m->last_of_delay[m->delay[i]] = m->armed[i];
    if (ptth_loop_now(m->loop) < m->lo[i])
        m->early++;
    if (m->n_fired == MANY)
        ptth_loop_stop(m->loop);
}

START_TEST(many_timers_in_random_order_fire_in_due_order)
{
    many m = {.loop = ptth_loop_new()};
    ck_assert_ptr_nonnull(m.loop);
    m.timers = calloc(MANY, sizeof(*m.timers));
    m.delay = calloc(MANY, sizeof(*m.delay));
    m.lo = calloc(MANY, sizeof(*m.lo));
    m.hi = calloc(MANY, sizeof(*m.hi));
    m.armed = calloc(MANY, sizeof(*m.armed));
    m.fired = calloc(MANY, sizeof(*m.fired));
    m.last_of_delay = calloc(MANY_DELAYS, sizeof(*m.last_of_delay));
    ck_assert(m.timers && m.delay && m.lo && m.hi && m.armed && m.fired && m.last_of_delay);
    rng_state = 1;
    int n_armed = 0;
    for (int i = 0; i < MANY; i++) {
        m.delay[i] = (int)rng(MANY_DELAYS);
        m.lo[i] = now_ms() + m.delay[i];
        ptth_timer_start(m.loop, &m.timers[i], m.delay[i], on_many, &m);
        m.hi[i] = now_ms() + m.delay[i];
        m.armed[i] = n_armed++;
    }
    /* a few restarted: they count as armed at the restart, with a new delay */
    for (int i = 0; i < MANY; i += 97) {
        m.delay[i] = MANY_DELAYS - 1;
        m.lo[i] = now_ms() + m.delay[i];
        ptth_timer_start(m.loop, &m.timers[i], m.delay[i], on_many, &m);
        m.hi[i] = now_ms() + m.delay[i];
        m.armed[i] = n_armed++;
    }
    for (int d = 0; d < MANY_DELAYS; d++)
        m.last_of_delay[d] = -1;
    ptth_timer guard;
    memset(&guard, 0, sizeof(guard));
    ptth_timer_start(m.loop, &guard, 5000, on_stop_loop, m.loop);
    ck_assert_int_eq(ptth_loop_run(m.loop), 0);
    ck_assert(ptth_timer_active(&guard)); /* stopped by the last one, not the guard */
    ptth_timer_stop(m.loop, &guard);
    ck_assert_int_eq(m.n_fired, MANY);
    for (int i = 0; i < MANY; i++) {
        ck_assert_int_eq(m.fired[i], 1);
        ck_assert(!ptth_timer_active(&m.timers[i]));
    }
    ck_assert_int_eq(m.out_of_order, 0);
    ck_assert_int_eq(m.ties_out_of_order, 0);
    ck_assert_int_eq(m.early, 0);
    ptth_loop_free(m.loop);
    free(m.timers), free(m.delay), free(m.lo), free(m.hi), free(m.armed), free(m.fired), free(m.last_of_delay);
}
END_TEST

/* ---- callbacks that start and stop timers ---- */

typedef struct cbrec {
    ptth_loop *loop;
    ptth_defer round_end; /* counts rounds: deferred calls run once at the end of each */
    int rounds;
    ptth_timer self;
    int self_fired;
    int self_rounds[8];
    bool active_in_cb;
    ptth_timer mover, moved;
    int moved_fired;
    long long pushed_at, moved_at;
    int order[8], n;
} cbrec;

static void
on_round_end(ptth_defer *d)
{
    cbrec *r = d->data;
    r->rounds++;
}

static void
on_self(ptth_timer *t)
{
    cbrec *r = t->data;
    r->active_in_cb = r->active_in_cb || ptth_timer_active(t);
    r->self_rounds[r->self_fired++] = r->rounds;
    ptth_defer_call(r->loop, &r->round_end, on_round_end, r);
    ptth_timer_stop(r->loop, t); /* already stopped: a no-op */
    if (r->self_fired < 5)
        ptth_timer_start(r->loop, t, 0, on_self, r);
}

static void
on_mover(ptth_timer *t)
{
    cbrec *r = t->data;
    r->order[r->n++] = 1;
    /* moved is due in this same round: stopped, it must not fire */
    ck_assert(ptth_timer_active(&r->moved));
    ptth_timer_stop(r->loop, &r->moved);
}

static void
on_moved(ptth_timer *t)
{
    cbrec *r = t->data;
    r->order[r->n++] = 2;
    r->moved_fired++;
    r->moved_at = now_ms();
}

static void
on_mover_restart(ptth_timer *t)
{
    cbrec *r = t->data;
    r->order[r->n++] = 1;
    ck_assert(ptth_timer_active(&r->moved));
    /* moved is due in this same round: pushed back, it must not fire now */
    r->pushed_at = now_ms();
    ptth_timer_start(r->loop, &r->moved, 30, on_moved, r);
}

START_TEST(restart_and_stop_inside_callbacks)
{
    cbrec r = {.loop = ptth_loop_new()};
    ck_assert_ptr_nonnull(r.loop);
    /* a timer that re-arms itself with delay 0 fires once per round */
    ptth_timer_start(r.loop, &r.self, 0, on_self, &r);
    run_for(r.loop, 100);
    ck_assert_int_eq(r.self_fired, 5);
    ck_assert(!r.active_in_cb);
    for (int i = 1; i < r.self_fired; i++)
        ck_assert_int_gt(r.self_rounds[i], r.self_rounds[i - 1]);
    ck_assert(!ptth_timer_active(&r.self));

    /* a callback stops another timer due in the same round */
    ptth_timer_start(r.loop, &r.mover, 0, on_mover, &r);
    ptth_timer_start(r.loop, &r.moved, 0, on_moved, &r);
    run_for(r.loop, 60);
    ck_assert_int_eq(r.n, 1);
    ck_assert_int_eq(r.moved_fired, 0);
    ck_assert(!ptth_timer_active(&r.moved));

    /* a callback pushes back another timer due in the same round */
    r.n = 0;
    ptth_timer_start(r.loop, &r.mover, 0, on_mover_restart, &r);
    ptth_timer_start(r.loop, &r.moved, 0, on_moved, &r);
    run_for(r.loop, 200);
    ck_assert_int_eq(r.n, 2);
    ck_assert_int_eq(r.order[0], 1);
    ck_assert_int_eq(r.order[1], 2);
    ck_assert_int_eq(r.moved_fired, 1);
    ck_assert_int_ge(r.moved_at - r.pushed_at, 30 - 1);
    ptth_defer_cancel(r.loop, &r.round_end);
    ptth_loop_free(r.loop);
}
END_TEST

/* ---- stopping and freeing other due timers from callbacks ---- */

enum { KILLERS = 2000 };

typedef struct killer {
    ptth_timer t;
    struct killers *ks;
    int id;
} killer;

typedef struct killers {
    ptth_loop *loop;
    killer *k[KILLERS]; /* NULL once freed */
    int fired, freed;
    int fired_after_stop;
} killers;

static void
on_killer(ptth_timer *t)
{
    killer *self = t->data;
    killers *ks = self->ks;
    if (ks->k[self->id] != self)
        ks->fired_after_stop++;
    ks->fired++;
    /* stop and free another one, most likely due in this round too; then
     * free this one (a fired timer is stopped, so it may go at once) */
    int victim = (int)rng(KILLERS);
    killer *v = ks->k[victim];
    if (v != NULL && v != self) {
        ptth_timer_stop(ks->loop, &v->t);
        ks->k[victim] = NULL;
        free(v);
        ks->freed++;
    }
    ks->k[self->id] = NULL;
    free(self);
    if (ks->fired + ks->freed == KILLERS)
        ptth_loop_stop(ks->loop);
}

START_TEST(stopping_another_due_timer_prevents_it_firing)
{
    killers ks = {.loop = ptth_loop_new()};
    ck_assert_ptr_nonnull(ks.loop);
    rng_state = 7;
    for (int i = 0; i < KILLERS; i++) {
        killer *k = calloc(1, sizeof(*k));
        ck_assert_ptr_nonnull(k);
        k->ks = &ks;
        k->id = i;
        ks.k[i] = k;
        /* few distinct delays: most are due in the same round */
        ptth_timer_start(ks.loop, &k->t, (long long)rng(3), on_killer, k);
    }
    ptth_timer guard;
    memset(&guard, 0, sizeof(guard));
    ptth_timer_start(ks.loop, &guard, 5000, on_stop_loop, ks.loop);
    ck_assert_int_eq(ptth_loop_run(ks.loop), 0);
    ck_assert(ptth_timer_active(&guard));
    ptth_timer_stop(ks.loop, &guard);
    ck_assert_int_eq(ks.fired_after_stop, 0);
    ck_assert_int_gt(ks.freed, 0);
    ck_assert_int_eq(ks.fired + ks.freed, KILLERS);
    for (int i = 0; i < KILLERS; i++)
        ck_assert_ptr_null(ks.k[i]);
    ptth_loop_free(ks.loop);
}
END_TEST

/* ---- free after stop, under churn ---- */

typedef struct churn {
    ptth_loop *loop;
    int fired;
    long long last_lo;
    int out_of_order;
} churn;

typedef struct ctimer {
    ptth_timer t;
    churn *c;
    long long lo, hi;
} ctimer;

static void
on_churn(ptth_timer *t)
{
    ctimer *ct = t->data;
    churn *c = ct->c;
    if (ct->hi < c->last_lo)
        c->out_of_order++;
    if (ct->lo > c->last_lo)
        c->last_lo = ct->lo;
    c->fired++;
    free(ct);
}

START_TEST(timers_freed_right_after_stop)
{
    enum { SLOTS = 5000, OPS = 100000 };
    churn c = {.loop = ptth_loop_new()};
    ck_assert_ptr_nonnull(c.loop);
    ctimer **slot = calloc(SLOTS, sizeof(*slot));
    ck_assert_ptr_nonnull(slot);
    rng_state = 11;
    /* random starts, restarts and stops (each stop followed by free) */
    for (int op = 0; op < OPS; op++) {
        int i = (int)rng(SLOTS);
        if (slot[i] != NULL && rng(3) == 0) {
            ptth_timer_stop(c.loop, &slot[i]->t);
            ptth_timer_stop(c.loop, &slot[i]->t); /* again: a no-op */
            free(slot[i]);
            slot[i] = NULL;
            continue;
        }
        if (slot[i] == NULL) {
            slot[i] = calloc(1, sizeof(**slot));
            ck_assert_ptr_nonnull(slot[i]);
            slot[i]->c = &c;
        }
        long long delay = 20 + (long long)rng(100);
        slot[i]->lo = now_ms() + delay;
        ptth_timer_start(c.loop, &slot[i]->t, delay, on_churn, slot[i]);
        slot[i]->hi = now_ms() + delay;
    }
    /* the survivors fire once each, in due order, and free themselves */
    int alive = 0;
    for (int i = 0; i < SLOTS; i++)
        alive += slot[i] != NULL;
    ck_assert_int_gt(alive, 0);
    free(slot);
    run_for(c.loop, 400);
    ck_assert_int_eq(c.fired, alive);
    ck_assert_int_eq(c.out_of_order, 0);
    ptth_loop_free(c.loop);
}
END_TEST

/* ---- ptth_loop_stop() and delays ---- */

typedef struct srec {
    ptth_loop *loop;
    ptth_timer t[4];
    long long fired_at[4];
    int order[8], n;
} srec;

static void
on_srec(ptth_timer *t)
{
    srec *s = t->data;
    int i = (int)(t - s->t);
    s->order[s->n++] = i;
    s->fired_at[i] = now_ms();
    if (i == 0)
        ptth_loop_stop(s->loop);
}

START_TEST(loop_stop_ends_the_timer_phase_and_delays_hold)
{
    srec s = {.loop = ptth_loop_new()};
    ck_assert_ptr_nonnull(s.loop);
    /* three due in the same round; the first stops the loop */
    ptth_timer_start(s.loop, &s.t[0], 0, on_srec, &s);
    ptth_timer_start(s.loop, &s.t[1], 0, on_srec, &s);
    ptth_timer_start(s.loop, &s.t[2], 0, on_srec, &s);
    ck_assert_int_eq(ptth_loop_run(s.loop), 0);
    ck_assert_int_eq(s.n, 1);
    ck_assert_int_eq(s.order[0], 0);
    ck_assert(ptth_timer_active(&s.t[1]));
    ck_assert(ptth_timer_active(&s.t[2]));
    /* the others keep their place and fire when the loop runs again */
    run_for(s.loop, 20);
    ck_assert_int_eq(s.n, 3);
    ck_assert_int_eq(s.order[1], 1);
    ck_assert_int_eq(s.order[2], 2);

    /* delays: never early, and 30 ms before 60 ms whatever the arming order */
    s.n = 0;
    long long t0 = now_ms();
    ptth_timer_start(s.loop, &s.t[2], 60, on_srec, &s);
    ptth_timer_start(s.loop, &s.t[1], 30, on_srec, &s);
    ptth_timer_start(s.loop, &s.t[3], -5, on_srec, &s); /* negative: as 0 */
    run_for(s.loop, 150);
    ck_assert_int_eq(s.n, 3);
    ck_assert_int_eq(s.order[0], 3);
    ck_assert_int_eq(s.order[1], 1);
    ck_assert_int_eq(s.order[2], 2);
    /* the loop's clock is whole milliseconds: allow the one lost in truncation */
    ck_assert_int_ge(s.fired_at[1] - t0, 30 - 1);
    ck_assert_int_ge(s.fired_at[2] - t0, 60 - 1);
    ck_assert_int_ge(s.fired_at[2], s.fired_at[1]);

    /* a delay too large to add to the clock is armed, not overflowed */
    ptth_timer_start(s.loop, &s.t[0], 0x7fffffffffffffffLL, on_srec, &s);
    ck_assert(ptth_timer_active(&s.t[0]));
    s.n = 0;
    run_for(s.loop, 10);
    ck_assert_int_eq(s.n, 0);
    ptth_timer_stop(s.loop, &s.t[0]);
    ptth_loop_free(s.loop);
}
END_TEST

/* ---- a diagnostic figure, not an assertion ---- */

static void
on_never(ptth_timer *t)
{
    (void)t;
}

START_TEST(arm_and_stop_many_timers_diagnostic)
{
    ptth_loop *loop = ptth_loop_new();
    ck_assert_ptr_nonnull(loop);
    ptth_timer *ts = calloc(MANY, sizeof(*ts));
    int *perm = calloc(MANY, sizeof(*perm));
    ck_assert(ts && perm);
    rng_state = 3;
    for (int i = 0; i < MANY; i++)
        perm[i] = i;
    for (int i = MANY - 1; i > 0; i--) {
        int j = (int)rng((unsigned)i + 1), x = perm[i];
        perm[i] = perm[j];
        perm[j] = x;
    }
    double t0 = now_s();
    for (int i = 0; i < MANY; i++)
        ptth_timer_start(loop, &ts[i], 1000 + (long long)rng(1000000), on_never, NULL);
    double t1 = now_s();
    for (int i = 0; i < MANY; i++)
        ptth_timer_stop(loop, &ts[perm[i]]);
    double t2 = now_s();
    for (int i = 0; i < MANY; i++)
        ck_assert(!ptth_timer_active(&ts[i]));
    fprintf(stderr, "# %d timers, random delays: arm %.1f ms, stop (random order) %.1f ms\n", MANY, (t1 - t0) * 1e3,
            (t2 - t1) * 1e3);
    ptth_loop_free(loop);
    free(ts);
    free(perm);
}
END_TEST

Suite *
ptth_test_suite(void)
{
    Suite *s = suite_create("loop_timers");
    TCase *tc = tcase_create("loop_timers");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, many_timers_in_random_order_fire_in_due_order);
    tcase_add_test(tc, restart_and_stop_inside_callbacks);
    tcase_add_test(tc, stopping_another_due_timer_prevents_it_firing);
    tcase_add_test(tc, timers_freed_right_after_stop);
    tcase_add_test(tc, loop_stop_ends_the_timer_phase_and_delays_hold);
    tcase_add_test(tc, arm_and_stop_many_timers_diagnostic);
    suite_add_tcase(s, tc);
    return s;
}
