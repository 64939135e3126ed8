/*
 * Unit tests of the terminators' HTTP/2 client (common/h2_client.c), part
 * two: requests that end before their answer does. Timeouts (the relay
 * silent, or the connection never ready), ptth_req_cancel() in each state
 * a request can be in (queued, held by the relay, paused with its bytes
 * held, completed with its on_done still to run), and request bodies sent
 * from the caller's memory without a copy: after a cancel or an early
 * answer the caller may free the body at once, and the relay never gets
 * a byte that is not the caller's. Part one is test_h2_client.c.
 *
 * The relay is an in-process fake on the test's loop (h2_relay_fake.h);
 * the requests go through the real relay client (h2_client_harness.h).
 * Callbacks of requests freed after a cancel count any call in
 * stray_callbacks (and under ASan the request is gone).
 */
#include <stdlib.h>
#include <string.h>

#include <nghttp2/nghttp2.h>

#include "check_main.h"
#include "h2_client_harness.h"

/* ---- timeouts and cancel ---- */

START_TEST(timeout_while_relay_is_silent)
{
    env_start(""); /* no script: the request is held forever */
    treq *t = &T[NT];
    t->r.timeout_ms = 300;
    long long t0 = now_ms();
    start_req("/v1/slow", NULL, 0);
    WAIT(all_done);
    long long took = now_ms() - t0;
    assert_failed(t, "timed out");
    ck_assert(t->r.timed_out);
    ck_assert_int_ge(took, 290);
    ck_assert_int_lt(took, 3000);
    ck_assert_int_eq(F.nreqs, 1);
    watched = F.reqs[0];
    WAIT(watched_rst); /* and the relay is told */
    ck_assert_int_eq(watched->rst_code, NGHTTP2_CANCEL);
    run_for(20);
    ck_assert_int_eq(t->done, 1);
    env_stop();
}
END_TEST

/* ---- a connection that goes silent ---- */

static fstream *held;

static void
script_hold(fstream *st)
{
    held = st;
}

static bool
request_held(void)
{
    return held != NULL;
}

/* Starts one request with the client's liveness_ms, which the relay holds
 * unanswered; returns once the relay has it (in held). */
static treq *
start_held_request(long liveness_ms)
{
    env_liveness_ms = liveness_ms;
    env_start("");
    held = NULL;
    F.on_request = script_hold;
    treq *t = &T[NT];
    start_req("/v1/held", NULL, 0);
    WAIT(request_held);
    return t;
}

/* The relay stops reading connection c (its watch drops EPOLLIN); the
 * twin of server_read_again(). */
static void
server_stop_reading(fconn *c)
{
    c->no_read = true;
    ptth_watch_set(&c->watch, fconn_events(c, false));
}

static void
server_read_again(fconn *c)
{
    c->no_read = false;
    ptth_watch_set(&c->watch, fconn_events(c, false));
}


/* The relay takes a request and then reads and sends nothing more (a NAT
 * that dropped the connection without a reset): the client PINGs after
 * liveness_ms of silence and closes the connection as dead liveness_ms
 * later, failing what was on it. */
START_TEST(silent_connection_is_closed_as_dead)
{
    treq *t = start_held_request(150);
    long long t0 = now_ms();
    server_stop_reading(held->c); /* our PING is never read, so never answered */
    WAIT(all_done);
    long long took = now_ms() - t0;
    assert_failed(t, "not even the answer to a PING (the connection is dead?)");
    ck_assert_int_ge(took, 250);
    ck_assert_int_lt(took, 2000);
    env_stop();
}
END_TEST

/* A quiet connection whose relay answers the PINGs lives on: a request
 * held for many liveness periods is still waiting, and is answered. */
START_TEST(answered_pings_keep_a_quiet_connection)
{
    treq *t = start_held_request(100);
    run_for(800);
    ck_assert_int_eq(t->done, 0);
    ck_assert_int_ge(F.pings, 3);
    respond(held, (resp){.status = 200, .text = "late"});
    WAIT(all_done);
    assert_ok(t, 200);
    ck_assert_int_eq(F.accepted, 1);
    env_stop();
}
END_TEST

START_TEST(timeout_before_the_connection_is_ready)
{
    env_start("");
    F.silent = true; /* accepts, never sends SETTINGS */
    treq *t = &T[NT];
    t->r.timeout_ms = 200;
    start_req("/v1/never", NULL, 0);
    WAIT(all_done);
    assert_failed(t, "timed out");
    ck_assert(t->r.timed_out);
    ck_assert_int_eq(F.accepted, 1);
    env_stop();
}
END_TEST

static void
script_cancel(fstream *st)
{
    if (strcmp(st->path, "/v1/paused") == 0) {
        respond(st, (resp){.status = 200, .gen = 100 * 1024, .seed = 4});
    } else if (strcmp(st->path, "/v1/paused-open") == 0) {
        respond(st, (resp){.status = 200, .gen = 1024 * 1024, .seed = 5});
    } else if (strcmp(st->path, "/v1/pair2") == 0) {
        /* both answers in one write: both requests end in one read */
        respond(find_req("/v1/pair1", -1), (resp){.status = 200, .text = "1"});
        respond(st, (resp){.status = 200, .text = "2"});
    } else if (strncmp(st->path, "/v1/after", 9) == 0) {
        respond(st, (resp){.status = 200, .text = "ok"});
    }
    /* /v1/held and /v1/pair1: held */
}

/* Requests freed right after ptth_req_cancel() use these callbacks: any
 * call after the cancel is counted (and under ASan the ptth_req is gone). */
static bool pauser_cancelled;
static int pauser_pauses;

static void
pauser_on_headers(ptth_req *r)
{
    (void)r;
    stray_callbacks += pauser_cancelled;
}

static size_t
pauser_on_body(ptth_req *r, const uint8_t *p, size_t len)
{
    (void)r;
    (void)p;
    (void)len;
    stray_callbacks += pauser_cancelled;
    pauser_pauses++;
    poke();
    return PTTH_REQ_PAUSE;
}

static const ptth_req_ops pauser_ops = {pauser_on_headers, pauser_on_body, stray_on_done};

static ptth_req *victim; /* cancelled and freed by its partner's on_done */

static void
partner_on_done(ptth_req *r, const char *error)
{
    t_on_done(r, error);
    if (victim != NULL) {
        ptth_req_cancel(victim);
        ck_assert(!ptth_req_active(victim));
        free(victim);
        victim = NULL;
    }
}

static const ptth_req_ops partner_ops = {t_on_headers, t_on_body, partner_on_done};

/* The victim's headers and body may come before its partner's on_done
 * cancels it; after that nothing may. */
static void
victim_on_headers(ptth_req *r)
{
    (void)r;
    stray_callbacks += victim == NULL;
}

static size_t
victim_on_body(ptth_req *r, const uint8_t *p, size_t len)
{
    (void)r;
    (void)p;
    stray_callbacks += victim == NULL;
    return len;
}

static const ptth_req_ops victim_ops = {victim_on_headers, victim_on_body, stray_on_done};

static ptth_req *
start_heap_req(const char *path, const ptth_req_ops *ops)
{
    ptth_req *r = calloc(1, sizeof(*r));
    ck_assert_ptr_nonnull(r);
    r->ops = ops;
    ck_assert_int_eq(ptth_req_start(C, r, PTTH_REQ_SHORT, path, NULL, "gone", 4), 0);
    return r;
}

static bool
pauser_paused(void)
{
    return pauser_pauses >= want_n;
}

START_TEST(cancel_is_silent_and_frees)
{
    env_start("");
    F.on_request = script_cancel;
    pauser_cancelled = false;
    pauser_pauses = 0;

    /* queued, before any connection: cancelled and freed at once */
    ptth_req *q = start_heap_req("/v1/queued", &stray_ops);
    ptth_req_cancel(q);
    ck_assert(!ptth_req_active(q));
    free(q);

    /* active, the relay holding it: the relay sees RST_STREAM CANCEL */
    ptth_req *r = start_heap_req("/v1/held", &stray_ops);
    want_n = 1;
    WAIT(reqs_reached);
    ck_assert_str_eq(F.reqs[0]->path, "/v1/held"); /* the queued one never went out */
    ptth_req_cancel(r);
    ck_assert(!ptth_req_active(r));
    free(r);
    watched = F.reqs[0];
    WAIT(watched_rst);
    ck_assert_int_eq(watched->rst_code, NGHTTP2_CANCEL);

    ck_assert_int_eq(stray_callbacks, 0);

    /* paused, the relay done sending (its bytes held by the client) */
    ptth_req *p = start_heap_req("/v1/paused", &pauser_ops);
    want_n = 2;
    WAIT(reqs_reached);
    watched = F.reqs[1];
    WAIT(watched_closed);
    ck_assert_uint_eq(watched->sent_data, 100 * 1024);
    treq *a1 = start_req("/v1/after1", NULL, 0); /* answered after p's end */
    WAIT(all_done);
    assert_ok(a1, 200);
    ck_assert_int_eq(pauser_pauses, 1);
    pauser_cancelled = true;
    ptth_req_cancel(p);
    free(p);
    pauser_cancelled = false;

    ck_assert_int_eq(stray_callbacks, 0);

    /* paused with its window full, the stream still open */
    p = start_heap_req("/v1/paused-open", &pauser_ops);
    want_n = 2;
    WAIT(pauser_paused);
    watched = find_req("/v1/paused-open", -1);
    ck_assert_ptr_nonnull(watched);
    pauser_cancelled = true;
    ptth_req_cancel(p);
    free(p);
    WAIT(watched_rst);
    ck_assert_int_eq(watched->rst_code, NGHTTP2_CANCEL);
    ck_assert_uint_le(watched->sent_data, STREAM_WINDOW);

    ck_assert_int_eq(stray_callbacks, 0);

    /* completed, its on_done not run yet: cancelled from another on_done */
    treq *partner = &T[NT];
    partner->r.ops = &partner_ops;
    start_req("/v1/pair1", NULL, 0);
    victim = start_heap_req("/v1/pair2", &victim_ops);
    WAIT(all_done);
    assert_ok(partner, 200);
    ck_assert_ptr_null(victim);

    ck_assert_int_eq(stray_callbacks, 0);

    /* the connection still works, and nothing called the freed requests */
    treq *a2 = start_req("/v1/after2", NULL, 0);
    WAIT(all_done);
    assert_ok(a2, 200);
    run_for(20);
    ck_assert_int_eq(stray_callbacks, 0);
    ck_assert_int_eq(F.accepted, 1);
    env_stop();
}
END_TEST

/* ---- request bodies go out from the caller's memory (no copy) ---- */

#define BIG_BODY (16 * 1024 * 1024) /* more than the socket buffers take */

static fstream *headers_seen;

static bool
saw_headers(void)
{
    return headers_seen != NULL;
}

/* The relay takes the headers, then stops reading: the client's socket
 * fills and body bytes stay queued in the client. */
static void
script_stop_reading(fstream *st)
{
    headers_seen = st;
    st->c->no_read = true;
}

static void
script_stop_reading_and_answer(fstream *st)
{
    script_stop_reading(st);
    respond(st, (resp){.status = 200, .text = "early"});
}

/* The part of a big body the relay got is the caller's bytes, in order. */
static void
assert_body_prefix(const fstream *st, uint8_t seed)
{
    for (size_t i = 0; i < st->body_len; i++)
        if (st->body[i] != pattern(seed, i))
            ck_abort_msg("body byte %zu of %zu is 0x%02x, not 0x%02x", i, st->body_len, st->body[i], pattern(seed, i));
}

static void
script_answer_after(fstream *st)
{
    if (strncmp(st->path, "/v1/after", 9) == 0)
        respond(st, (resp){.status = 200, .text = "ok"});
}

/* Starts a heap request with a BIG_BODY body of pattern(seed) while the
 * relay stops reading after the headers; returns once the client's socket
 * is full, with the relay's stream in *stp. */
static ptth_req *
start_big_upload(uint8_t **bodyp, uint8_t seed, fstream **stp)
{
    fake_big_window();
    F.on_headers = script_stop_reading;
    F.on_request = script_answer_after;
    headers_seen = NULL;
    uint8_t *body = malloc(BIG_BODY);
    ck_assert_ptr_nonnull(body);
    for (size_t i = 0; i < BIG_BODY; i++)
        body[i] = pattern(seed, i);
    ptth_req *r = calloc(1, sizeof(*r));
    ck_assert_ptr_nonnull(r);
    r->ops = &stray_ops;
    ck_assert_int_eq(ptth_req_start(C, r, PTTH_REQ_SHORT, "/v1/upload", NULL, body, BIG_BODY), 0);
    WAIT(saw_headers);
    run_for(100); /* the client writes until its socket is full */
    ck_assert(!headers_seen->complete);
    *bodyp = body;
    *stp = headers_seen;
    return r;
}

START_TEST(cancel_with_body_queued_then_free_body)
{
    env_start("");
    uint8_t *body;
    fstream *st;
    ptth_req *r = start_big_upload(&body, 7, &st);
    ptth_req_cancel(r);
    memset(body, 0xEE, BIG_BODY); /* the caller reuses the memory... */
    free(body);                   /* ...or frees it */
    free(r);
    server_read_again(st->c);
    watched = st;
    WAIT(watched_rst);
    ck_assert_int_eq(st->rst_code, NGHTTP2_CANCEL);
    ck_assert_uint_gt(st->body_len, 0);
    assert_body_prefix(st, 7); /* only the caller's bytes, never freed memory */
    /* the connection's framing survived */
    F.on_headers = NULL;
    treq *t = start_req("/v1/after", "x", 1);
    WAIT(all_done);
    assert_ok(t, 200);
    ck_assert_int_eq(F.accepted, 1);
    ck_assert_int_eq(stray_callbacks, 0);
    env_stop();
}
END_TEST

/* The request-body queue holds about OUT_GATHER bytes, so a cancel stops
 * the body there and the relay never sees a complete request. (In
 * h2_client.c of 95954e7 one nghttp2_session_mem_send() call queued every
 * NO_COPY DATA frame the window allowed, END_STREAM included, ahead of the
 * RST_STREAM.) */
START_TEST(cancelled_upload_stops_short)
{
    env_start("");
    uint8_t *body;
    fstream *st;
    ptth_req *r = start_big_upload(&body, 6, &st);
    ptth_req_cancel(r);
    free(body);
    free(r);
    server_read_again(st->c);
    watched = st;
    WAIT(watched_rst);
    ck_assert_int_eq(st->rst_code, NGHTTP2_CANCEL);
    ck_assert_msg(!st->complete_at_rst, "the relay got the whole cancelled request (%zu bytes and END_STREAM) before RST_STREAM",
                  st->body_len);
    ck_assert_uint_lt(st->body_len, BIG_BODY / 2);
    assert_body_prefix(st, 6);
    env_stop();
}
END_TEST

static uint8_t *early_body;

static void
free_body_on_done(ptth_req *r, const char *error)
{
    t_on_done(r, error);
    memset(early_body, 0xEE, BIG_BODY);
    free(early_body);
    early_body = NULL;
}

static const ptth_req_ops free_body_ops = {t_on_headers, t_on_body, free_body_on_done};

static bool
first_has_headers(void)
{
    return T[0].headers_calls > 0;
}

START_TEST(early_answer_with_body_queued_then_free_body)
{
    env_start("");
    fake_big_window();
    F.on_headers = script_stop_reading_and_answer;
    F.on_request = script_answer_after;
    headers_seen = NULL;
    early_body = malloc(BIG_BODY);
    ck_assert_ptr_nonnull(early_body);
    for (size_t i = 0; i < BIG_BODY; i++)
        early_body[i] = pattern(8, i);
    treq *t = &T[NT];
    t->r.ops = &free_body_ops;
    start_req("/v1/early", (const char *)early_body, BIG_BODY);
    WAIT(first_has_headers);
    run_for(100); /* the client writes until its socket is full */
    fstream *st = headers_seen;
    if (t->done == 0) {
        /* the request is not all sent: the relay says it is done with it,
         * RST_STREAM NO_ERROR (RFC 9113 8.1). (With every body byte queued
         * in the client at once, see cancelled_upload_stops_short, the
         * request is over already.) */
        ck_assert_int_eq(nghttp2_submit_rst_stream(st->c->session, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_NO_ERROR), 0);
        fconn_want_flush(st->c);
    }
    WAIT(all_done);
    assert_ok(t, 200); /* on_done freed the body */
    ck_assert_str_eq(t->text, "early");
    ck_assert_ptr_null(early_body);
    server_read_again(st->c);
    F.on_headers = NULL;
    treq *u = start_req("/v1/after", "x", 1);
    WAIT(all_done);
    assert_ok(u, 200);
    ck_assert_uint_gt(st->body_len, 0);
    assert_body_prefix(st, 8);
    ck_assert_int_eq(F.accepted, 1);
    env_stop();
}
END_TEST

Suite *
ptth_test_suite(void)
{
    Suite *s = suite_create("h2_client_cancel");
    TCase *tc = tcase_create("h2_client_cancel");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, timeout_while_relay_is_silent);
    tcase_add_test(tc, timeout_before_the_connection_is_ready);
    tcase_add_test(tc, silent_connection_is_closed_as_dead);
    tcase_add_test(tc, answered_pings_keep_a_quiet_connection);
    tcase_add_test(tc, cancel_is_silent_and_frees);
    tcase_add_test(tc, cancel_with_body_queued_then_free_body);
    tcase_add_test(tc, cancelled_upload_stops_short);
    tcase_add_test(tc, early_answer_with_body_queued_then_free_body);
    suite_add_tcase(s, tc);
    return s;
}
