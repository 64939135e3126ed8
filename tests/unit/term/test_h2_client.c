/*
 * Unit tests of the terminators' HTTP/2 client (common/h2_client.c), part
 * one: what the relay sees of a request and what the caller gets back, many
 * requests sharing connections under the relay's stream limit, flow control
 * per stream (a paused reader holds only its own window), REFUSED_STREAM,
 * GOAWAY, a connection reset mid-response, the fallback to libcurl when the
 * relay speaks only HTTP/1.1, and a relay that is not listening. Part two,
 * test_h2_client_cancel.c, has the timeouts and cancels.
 *
 * The relay is an in-process fake on the test's loop (h2_relay_fake.h);
 * the requests go through the real relay client (h2_client_harness.h).
 * on_done must run from the loop, outside the client's nghttp2 calls;
 * basic_post checks that on_headers of an HTTP/2 request runs inside them,
 * which shows the --wrap count of those calls works.
 */
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>

#include "check_main.h"
#include "h2_client.h"
#include "h2_client_harness.h"

/* ---- 1. one POST: what the relay sees, what the caller gets ---- */

static void
script_basic(fstream *st)
{
    if (strcmp(st->path, "/pre/fix/v1/ok") == 0)
        respond(st, (resp){.status = 200,
                           .h = {"ptth-conn", "c0nn-ID_1", "ptth-seq", "42", "ptth-max-chunk", "65536", "retry-after", "7",
                                 "ptth-reason", "all fine", NULL},
                           .text = "hello from relay"});
    else if (strcmp(st->path, "/pre/fix/v1/busy") == 0)
        respond(st, (resp){.status = 503, .h = {"retry-after", "3", NULL}, .text = "relay is busy\r\nsecond line\r\n"});
    else if (strcmp(st->path, "/pre/fix/v1/gone") == 0)
        respond(st, (resp){.status = 404, .h = {"ptth-reason", "no such connection", NULL}, .text = "body line\n"});
    else if (strcmp(st->path, "/pre/fix/v1/big") == 0)
        respond(st, (resp){.status = 204});
    else
        ck_abort_msg("unexpected path %s", st->path);
}

START_TEST(basic_post)
{
    env_start("/pre/fix/");
    F.on_request = script_basic;
    static const char body[] = "hello relay";
    static uint8_t big[100 * 1024];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = pattern(9, i);
    treq *ok = &T[NT];
    ok->headers[0] = "PTTH-Conn-Id: AbC";
    ok->headers[1] = "X-Mixed-Case:value";
    start_req("/v1/ok", body, sizeof(body) - 1);
    treq *busy = start_req("/v1/busy", NULL, 0);
    treq *gone = start_req("/v1/gone", "x", 1);
    treq *bigr = start_req("/v1/big", (const char *)big, sizeof(big));
    WAIT(all_done);

    /* what the relay saw */
    char authority[64];
    snprintf(authority, sizeof(authority), "127.0.0.1:%d", F.port);
    fstream *st = find_req("/pre/fix/v1/ok", -1);
    ck_assert_ptr_nonnull(st);
    ck_assert_str_eq(st->method, "POST");
    ck_assert_str_eq(st->scheme, "http");
    ck_assert_str_eq(st->authority, authority);
    ck_assert_ptr_nonnull(fheader(st, "authorization"));
    ck_assert_str_eq(fheader(st, "authorization"), AUTH);
    ck_assert_ptr_nonnull(fheader(st, "user-agent"));
    ck_assert_str_eq(fheader(st, "user-agent"), "h2test-agent");
    ck_assert_ptr_nonnull(fheader(st, "content-length"));
    ck_assert_str_eq(fheader(st, "content-length"), "11");
    ck_assert_uint_eq(st->body_len, 11);
    ck_assert_mem_eq(st->body, body, 11);
    ck_assert_ptr_nonnull(fheader(st, "ptth-conn-id"));
    ck_assert_str_eq(fheader(st, "ptth-conn-id"), "AbC");
    ck_assert_ptr_nonnull(fheader(st, "x-mixed-case"));
    ck_assert_str_eq(fheader(st, "x-mixed-case"), "value");
    for (int i = 0; i < st->nh; i++)
        for (const char *p = st->hname[i]; *p != '\0'; p++)
            ck_assert_msg(!(*p >= 'A' && *p <= 'Z'), "header name %s is not lowercase", st->hname[i]);
    st = find_req("/pre/fix/v1/busy", -1);
    ck_assert_ptr_nonnull(st);
    ck_assert_str_eq(fheader(st, "content-length"), "0");
    ck_assert_uint_eq(st->body_len, 0);
    st = find_req("/pre/fix/v1/big", -1);
    ck_assert_ptr_nonnull(st);
    ck_assert_str_eq(fheader(st, "content-length"), "102400");
    ck_assert_uint_eq(st->body_len, sizeof(big));
    ck_assert_mem_eq(st->body, big, sizeof(big));
    ck_assert_int_eq(F.accepted, 1);

    /* what the caller got */
    assert_ok(ok, 200);
    ck_assert_int_eq(ok->headers_calls, 1);
    ck_assert_int_eq(ok->status_at_headers, 200);
    ck_assert_msg(!ok->headers_outside_ng, "on_headers of an HTTP/2 request ran outside nghttp2 (the --wrap count is off)");
    ck_assert_str_eq(ok->r.conn, "c0nn-ID_1");
    ck_assert_int_eq(ok->r.seq, 42);
    ck_assert_int_eq(ok->r.max_chunk, 65536);
    ck_assert_int_eq(ok->r.retry_after, 7);
    ck_assert_str_eq(ok->r.reason, "all fine");
    ck_assert_str_eq(ok->text, "hello from relay");
    ck_assert(!ok->r.timed_out);

    assert_ok(busy, 503);
    ck_assert_str_eq(busy->r.reason, "relay is busy");
    ck_assert_int_eq(busy->r.retry_after, 3);
    ck_assert_int_eq(busy->r.seq, -1);
    ck_assert_str_eq(busy->r.conn, "");
    ck_assert_int_eq(busy->body_calls, 0); /* a non-2xx body is not the caller's */

    assert_ok(gone, 404);
    ck_assert_str_eq(gone->r.reason, "no such connection");
    ck_assert_int_eq(gone->body_calls, 0);

    assert_ok(bigr, 204);
    ck_assert_int_eq(bigr->r.retry_after, -1);
    ck_assert_int_eq(bigr->body_calls, 0);
    env_stop();
}
END_TEST

/* ---- 2. many requests share connections ---- */

static void
script_echo_path(fstream *st)
{
    respond(st, (resp){.status = 200, .text = st->path});
}

START_TEST(fifty_requests_one_connection)
{
    env_start("");
    F.on_request = script_echo_path;
    char paths[50][32];
    for (int i = 0; i < 50; i++) {
        snprintf(paths[i], sizeof(paths[i]), "/v1/n/%d", i);
        start_req(paths[i], paths[i], strlen(paths[i]));
    }
    WAIT(all_done);
    for (int i = 0; i < 50; i++) {
        assert_ok(&T[i], 200);
        ck_assert_str_eq(T[i].text, paths[i]); /* each got its own answer */
    }
    ck_assert_int_eq(F.nreqs, 50);
    ck_assert_int_eq(F.accepted, 1);
    env_stop();
}
END_TEST

START_TEST(max_concurrent_streams_opens_more_connections)
{
    env_start("");
    F.max_streams = 10; /* and F.on_request NULL: every answer held */
    for (int i = 0; i < 25; i++) {
        char path[32];
        snprintf(path, sizeof(path), "/v1/held/%d", i);
        start_req(path, NULL, 0);
    }
    want_n = 25;
    WAIT(reqs_reached);
    run_for(50); /* nothing more comes */
    ck_assert_int_eq(F.nreqs, 25);
    ck_assert_int_eq(F.accepted, 3);
    int per_conn[3] = {0, 0, 0};
    for (int i = 0; i < F.nreqs; i++)
        per_conn[F.reqs[i]->c->index]++;
    ck_assert_int_eq(per_conn[0], 10);
    ck_assert_int_eq(per_conn[1], 10);
    ck_assert_int_eq(per_conn[2], 5);
    for (int i = 0; i < NT; i++)
        ck_assert_int_eq(T[i].done, 0);
    for (int i = 0; i < F.nreqs; i++)
        respond(F.reqs[i], (resp){.status = 200, .text = F.reqs[i]->path});
    WAIT(all_done);
    for (int i = 0; i < NT; i++) {
        assert_ok(&T[i], 200);
        ck_assert_str_eq(T[i].text, T[i].path);
    }
    ck_assert_int_eq(F.accepted, 3);
    env_stop();
}
END_TEST

/* A relay whose SETTINGS allow no streams for now: the requests wait on
 * that one connection (no storm of new connections), and go out once a
 * later SETTINGS raises the limit. */
START_TEST(zero_stream_limit_waits_for_a_raised_limit)
{
    env_start("");
    F.max_streams = 0;
    F.on_request = script_echo_path;
    for (int i = 0; i < 3; i++) {
        char path[32];
        snprintf(path, sizeof(path), "/v1/wait/%d", i);
        start_req(path, NULL, 0);
    }
    run_for(200);
    ck_assert_int_eq(F.accepted, 1);
    ck_assert_int_eq(F.nreqs, 0);
    for (int i = 0; i < NT; i++)
        ck_assert_int_eq(T[i].done, 0);
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 10}};
    ck_assert_int_eq(nghttp2_submit_settings(F.conns->session, NGHTTP2_FLAG_NONE, iv, 1), 0);
    fconn_want_flush(F.conns);
    WAIT(all_done);
    for (int i = 0; i < NT; i++) {
        if (T[i].path[0] != '\0') {
            assert_ok(&T[i], 200);
            ck_assert_str_eq(T[i].text, T[i].path);
        }
    }
    ck_assert_int_eq(F.accepted, 1);
    env_stop();
}
END_TEST

/* ---- 3. flow control per stream ---- */

static void
script_a_b(fstream *st)
{
    if (strcmp(st->path, "/v1/a") == 0)
        respond(st, (resp){.status = 200, .gen = 1024 * 1024, .seed = 1});
    else if (strcmp(st->path, "/v1/b") == 0)
        respond(st, (resp){.status = 200, .gen = 4 * 1024 * 1024, .seed = 2});
}

static treq *flow_b;

static bool
b_done(void)
{
    return flow_b->done > 0;
}

START_TEST(paused_stream_holds_only_its_window)
{
    env_start("");
    F.on_request = script_a_b;
    treq *a = &T[NT];
    a->pause_first = true;
    a->check_pattern = true;
    a->seed = 1;
    start_req("/v1/a", NULL, 0);
    treq *b = &T[NT];
    b->check_pattern = true;
    b->seed = 2;
    start_req("/v1/b", NULL, 0);
    flow_b = b;
    WAIT(b_done);
    /* b got everything past the paused a, on the same connection */
    assert_ok(b, 200);
    ck_assert_uint_eq(b->taken, 4 * 1024 * 1024);
    ck_assert_int_eq(F.accepted, 1);
    /* a holds what its window let through, and the relay can send no more */
    fstream *sa = find_req("/v1/a", 0);
    ck_assert_ptr_nonnull(sa);
    ck_assert_int_eq(a->done, 0);
    ck_assert_int_eq(a->pauses, 1);
    ck_assert_uint_eq(a->taken, 0);
    ck_assert_uint_eq(sa->sent_data, STREAM_WINDOW);
    ck_assert_int_eq(nghttp2_session_get_stream_remote_window_size(sa->c->session, sa->id), 0);
    ck_assert(!sa->closed);
    run_for(30);
    ck_assert_uint_eq(sa->sent_data, STREAM_WINDOW);
    ck_assert_int_eq(a->done, 0);

    /* resumed: every byte in order, pausing again every 64 KiB */
    a->auto_resume = true;
    a->pause_every = 64 * 1024;
    a->since_resume = 0;
    ptth_req_resume(&a->r);
    ck_assert_int_eq(a->done, 0); /* on_done comes from the loop */
    WAIT(all_done);
    assert_ok(a, 200);
    ck_assert_uint_eq(a->taken, 1024 * 1024);
    ck_assert_uint_eq(a->taken_at_done, 1024 * 1024);
    ck_assert_int_ge(a->pauses, 3); /* it paused again after the resume */
    ck_assert_int_eq(F.accepted, 1);
    env_stop();
}
END_TEST

static void
script_a_now_b_held(fstream *st)
{
    if (strcmp(st->path, "/v1/a") == 0)
        respond(st, (resp){.status = 200, .gen = 100 * 1024, .seed = 3});
}

START_TEST(stream_ended_while_paused_completes_after_its_bytes)
{
    env_start("");
    F.on_request = script_a_now_b_held;
    treq *a = &T[NT];
    a->pause_first = true;
    a->check_pattern = true;
    a->seed = 3;
    start_req("/v1/a", NULL, 0);
    treq *b = start_req("/v1/b", NULL, 0);
    want_n = 2;
    WAIT(reqs_reached);
    watched = find_req("/v1/a", 0);
    ck_assert_ptr_nonnull(watched);
    WAIT(watched_closed); /* the relay sent all of a and ended it */
    ck_assert_uint_eq(watched->sent_data, 100 * 1024);
    ck_assert_int_eq(watched->close_code, NGHTTP2_NO_ERROR);
    /* b's answer follows a's end on the wire: once b is done, the client
     * has read the end of a */
    respond(find_req("/v1/b", 0), (resp){.status = 200, .text = "b"});
    flow_b = b;
    WAIT(b_done);
    assert_ok(b, 200);
    run_for(20);
    ck_assert_int_eq(a->done, 0); /* its bytes are still held */
    ck_assert_int_eq(a->pauses, 1);
    ck_assert_uint_eq(a->taken, 0);

    /* a resume whose reader pauses again at once: still nothing taken */
    a->pause_next = 1;
    ptth_req_resume(&a->r);
    ck_assert_int_eq(a->pauses, 2);
    ck_assert_uint_eq(a->taken, 0);
    run_for(20);
    ck_assert_int_eq(a->done, 0);
    /* then all of it, and on_done only from the loop */
    ptth_req_resume(&a->r);
    ck_assert_uint_eq(a->taken, 100 * 1024);
    ck_assert_int_eq(a->done, 0);
    WAIT(all_done);
    assert_ok(a, 200);
    ck_assert_uint_eq(a->taken, 100 * 1024);
    ck_assert_uint_eq(a->taken_at_done, 100 * 1024);
    ck_assert_int_eq(F.accepted, 1);
    env_stop();
}
END_TEST

/* ---- 4. REFUSED_STREAM ---- */

static int refuse_times;

static void
script_refuse(fstream *st)
{
    if (count_path(st->path) <= refuse_times)
        refuse(st);
    else
        respond(st, (resp){.status = 200, .h = {"ptth-seq", "5", NULL}, .text = "accepted"});
}

/* A lone refused request is sent again at once (h2_client.c of 95954e7
 * re-queued it without scheduling a dispatch: it waited for the
 * connection's 60 s idle close). */
START_TEST(refused_stream_is_sent_again)
{
    env_start("");
    F.on_request = script_refuse;
    refuse_times = 1;
    treq *t = start_req("/v1/refused-once", "body", 4);
    WAIT(all_done);
    assert_ok(t, 200);
    ck_assert_str_eq(t->text, "accepted");
    ck_assert_int_eq(t->r.seq, 5);
    ck_assert_int_eq(count_path("/v1/refused-once"), 2);
    /* the body was sent again in full */
    ck_assert_uint_eq(F.reqs[1]->body_len, 4);
    ck_assert_mem_eq(F.reqs[1]->body, "body", 4);
    env_stop();
}
END_TEST

START_TEST(refused_stream_with_company_is_sent_again)
{
    /* the same with another request open on the connection */
    env_start("");
    F.on_request = script_refuse;
    refuse_times = 2;
    treq *t = start_req("/v1/refused-twice", NULL, 0);
    treq *u = start_req("/v1/other", NULL, 0);
    WAIT(all_done);
    assert_ok(t, 200);
    assert_ok(u, 200);
    ck_assert_int_eq(count_path("/v1/refused-twice"), 3);
    env_stop();
}
END_TEST

/* Refused more often than MAX_REFUSALS: on_done gets an error. */
START_TEST(refused_four_times_fails)
{
    env_start("");
    F.on_request = script_refuse;
    refuse_times = 100;
    treq *t = start_req("/v1/always-refused", NULL, 0);
    WAIT(all_done);
    assert_failed(t, "REFUSED_STREAM");
    ck_assert_int_eq(count_path("/v1/always-refused"), 1 + MAX_REFUSALS);
    run_for(20);
    ck_assert_int_eq(count_path("/v1/always-refused"), 1 + MAX_REFUSALS);
    ck_assert_int_eq(t->done, 1);
    env_stop();
}
END_TEST

/* ---- 5. GOAWAY ---- */

static int32_t goaway_last_id;

static void
script_goaway(fstream *st)
{
    if (st->c->index > 0) { /* the new connection answers at once */
        respond(st, (resp){.status = 200, .text = st->path});
        return;
    }
    if (F.nreqs < 6)
        return; /* held */
    /* all six here: GOAWAY naming the third, answer those at or below it */
    int32_t ids[6];
    for (int i = 0; i < 6; i++)
        ids[i] = F.reqs[i]->id;
    for (int i = 0; i < 6; i++)
        for (int j = i + 1; j < 6; j++)
            if (ids[j] < ids[i]) {
                int32_t x = ids[i];
                ids[i] = ids[j];
                ids[j] = x;
            }
    goaway_last_id = ids[2];
    ck_assert_int_eq(nghttp2_submit_goaway(st->c->session, NGHTTP2_FLAG_NONE, goaway_last_id, NGHTTP2_NO_ERROR, NULL, 0), 0);
    for (int i = 0; i < 6; i++)
        if (F.reqs[i]->id <= goaway_last_id)
            respond(F.reqs[i], (resp){.status = 200, .text = F.reqs[i]->path});
    fconn_want_flush(st->c);
}

START_TEST(goaway_retries_streams_above_last_id)
{
    env_start("");
    F.on_request = script_goaway;
    for (int i = 0; i < 6; i++) {
        char path[32];
        snprintf(path, sizeof(path), "/v1/g/%d", i);
        start_req(path, NULL, 0);
    }
    WAIT(all_done);
    int low = 0, high = 0;
    for (int i = 0; i < NT; i++) {
        assert_ok(&T[i], 200);
        ck_assert_str_eq(T[i].text, T[i].path);
        fstream *first = find_req(T[i].path, 0);
        ck_assert_ptr_nonnull(first);
        if (first->id <= goaway_last_id) {
            low++;
            ck_assert_int_eq(count_path(T[i].path), 1);
        } else {
            high++;
            ck_assert_int_eq(count_path(T[i].path), 2);
            ck_assert_ptr_nonnull(find_req(T[i].path, 1)); /* again, on the new connection */
        }
    }
    ck_assert_int_eq(low, 3);
    ck_assert_int_eq(high, 3);
    ck_assert_int_eq(F.accepted, 2);
    env_stop();
}
END_TEST

/* ---- 6. connection reset mid-response ---- */

static bool
all_have_body(void)
{
    for (int i = 0; i < NT; i++)
        if (T[i].taken == 0)
            return false;
    return true;
}

static void
script_partial(fstream *st)
{
    if (st->c->index == 0)
        respond(st, (resp){.status = 200, .text = "partial", .keep_open = true}); /* and the stream stays open */
    else
        respond(st, (resp){.status = 200, .text = "fresh"});
}

START_TEST(reset_connection_fails_its_requests)
{
    env_start("");
    F.on_request = script_partial;
    for (int i = 0; i < 3; i++) {
        char path[32];
        snprintf(path, sizeof(path), "/v1/r/%d", i);
        start_req(path, NULL, 0);
    }
    WAIT(all_have_body);
    ck_assert(!all_done());
    ck_assert_int_eq(F.accepted, 1);
    fconn_close(F.conns, true); /* TCP reset */
    WAIT(all_done);
    char name[64];
    snprintf(name, sizeof(name), "relay connection 127.0.0.1:%d", F.port);
    for (int i = 0; i < NT; i++) {
        assert_failed(&T[i], name);
        ck_assert_str_eq(T[i].text, "partial");
    }
    treq *t = start_req("/v1/after", NULL, 0);
    WAIT(all_done);
    assert_ok(t, 200);
    ck_assert_str_eq(t->text, "fresh");
    ck_assert_int_eq(F.accepted, 2);
    env_stop();
}
END_TEST

/* ---- 7. a relay that does not speak HTTP/2 ---- */

START_TEST(http1_relay_falls_back_to_libcurl)
{
    env_start("/pre");
    F.h1_only = true;
    char bodies[3][16];
    for (int i = 0; i < 3; i++) {
        char path[32];
        snprintf(path, sizeof(path), "/v1/x%d", i);
        snprintf(bodies[i], sizeof(bodies[i]), "body-%d", i);
        treq *t = &T[NT];
        t->headers[0] = "PTTH-Conn-Id: Z9";
        start_req(path, bodies[i], strlen(bodies[i]));
    }
    WAIT(all_done);
    ck_assert_int_eq(F.h2_prefaces, 1);
    for (int i = 0; i < 3; i++) {
        assert_ok(&T[i], 204);
        ck_assert_str_eq(T[i].r.conn, "h1conn");
        ck_assert_int_eq(T[i].r.seq, 9);
        char path[32];
        snprintf(path, sizeof(path), "/pre/v1/x%d", i);
        fstream *st = find_req(path, -1);
        ck_assert_ptr_nonnull(st);
        ck_assert_str_eq(st->method, "POST");
        ck_assert_str_eq(fheader(st, "authorization"), AUTH);
        ck_assert_str_eq(fheader(st, "ptth-conn-id"), "Z9");
        ck_assert_uint_eq(st->body_len, strlen(bodies[i]));
        ck_assert_mem_eq(st->body, bodies[i], st->body_len);
    }
    /* later requests go to libcurl at once: no second HTTP/2 attempt */
    treq *t = start_req("/v1/later", NULL, 0);
    WAIT(all_done);
    assert_ok(t, 204);
    ck_assert_ptr_nonnull(find_req("/pre/v1/later", -1));
    ck_assert_int_eq(F.h2_prefaces, 1);
    env_stop();
}
END_TEST

/* The same seen from h2_client itself: unavailable, and the request handed
 * over with its arguments. */
static int fallbacks;
static ptth_req *fb_req;
static char fb_path[64];
static const char *fb_header0;
static const void *fb_body;
static size_t fb_body_len;
static ptth_req_kind fb_kind;

static void
on_test_fallback(void *data, ptth_req *r, ptth_req_kind kind, const char *path, const char *const *headers, const void *body,
                 size_t body_len)
{
    (void)data;
    fallbacks++;
    fb_req = r;
    fb_kind = kind;
    snprintf(fb_path, sizeof(fb_path), "%s", path);
    fb_header0 = headers[0];
    fb_body = body;
    fb_body_len = body_len;
    poke();
}

static bool
fell_back(void)
{
    return fallbacks > 0;
}

START_TEST(h2_client_unavailable_after_http1_answer)
{
    env_start("");
    F.h1_only = true;
    ptth_h2_client *cl = NULL;
    char err[256];
    ptth_h2_client_config cfg = {.url = url, .auth_value = AUTH, .user_agent = "x", .on_fallback = on_test_fallback};
    ck_assert_msg(ptth_h2_client_new(loop, &cfg, &cl, err, sizeof(err)) == 0, "%s", err);
    ck_assert(!ptth_h2_client_unavailable(cl));
    treq *t = &T[NT++];
    t->r.ops = &t_ops;
    const char *headers[] = {"PTTH-Conn-Id: Q", NULL};
    static const char body[] = "payload";
    fallbacks = 0;
    ck_assert_int_eq(ptth_h2_req_start(cl, &t->r, PTTH_REQ_STREAM, "/v1/s", headers, body, 7), 0);
    WAIT(fell_back);
    ck_assert(ptth_h2_client_unavailable(cl));
    ck_assert_int_eq(fallbacks, 1);
    ck_assert_ptr_eq(fb_req, &t->r);
    ck_assert_int_eq(fb_kind, PTTH_REQ_STREAM);
    ck_assert_str_eq(fb_path, "/v1/s");
    ck_assert_ptr_eq(fb_header0, headers[0]);
    ck_assert_ptr_eq(fb_body, body);
    ck_assert_uint_eq(fb_body_len, 7);
    ck_assert_ptr_null(t->r.h2);
    ck_assert_int_eq(F.h2_prefaces, 1);
    ck_assert_int_eq(t->done, 0);
    ptth_h2_client_free(cl);
    env_stop();
}
END_TEST

/* ---- 8. nothing listening ---- */

START_TEST(connection_refused_fails_fast)
{
    env_start("");
    /* a bound port without listen() refuses connections and stays ours */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t len = sizeof(sa);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    ptth_relay_client_free(C);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", ntohs(sa.sin_port));
    char err[256];
    ptth_relay_client_config cfg = {.url = url, .key = KEY};
    ck_assert_msg(ptth_relay_client_new(loop, &cfg, &C, err, sizeof(err)) == 0, "%s", err);
    long long t0 = now_ms();
    treq *a = start_req("/v1/a", NULL, 0);
    treq *b = start_req("/v1/b", NULL, 0);
    WAIT(all_done);
    assert_failed(a, "Connection refused");
    assert_failed(b, "Connection refused");
    /* and again: the client is not stuck */
    treq *c = start_req("/v1/c", NULL, 0);
    WAIT(all_done);
    assert_failed(c, "Connection refused");
    ck_assert_int_lt(now_ms() - t0, 2000);
    close(fd);
    env_stop();
}
END_TEST

Suite *
ptth_test_suite(void)
{
    Suite *s = suite_create("h2_client");
    TCase *tc = tcase_create("h2_client");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, basic_post);
    tcase_add_test(tc, fifty_requests_one_connection);
    tcase_add_test(tc, max_concurrent_streams_opens_more_connections);
    tcase_add_test(tc, zero_stream_limit_waits_for_a_raised_limit);
    tcase_add_test(tc, paused_stream_holds_only_its_window);
    tcase_add_test(tc, stream_ended_while_paused_completes_after_its_bytes);
    tcase_add_test(tc, refused_stream_is_sent_again);
    tcase_add_test(tc, refused_stream_with_company_is_sent_again);
    tcase_add_test(tc, refused_four_times_fails);
    tcase_add_test(tc, goaway_retries_streams_above_last_id);
    tcase_add_test(tc, reset_connection_fails_its_requests);
    tcase_add_test(tc, http1_relay_falls_back_to_libcurl);
    tcase_add_test(tc, h2_client_unavailable_after_http1_answer);
    tcase_add_test(tc, connection_refused_fails_fast);
    suite_add_tcase(s, tc);
    return s;
}
