/*
 * The client side of the Check suites of common/h2_client.c
 * (test_h2_client.c, test_h2_client_cancel.c), driven through the real relay
 * client (ptth_relay_client_new, ptth_req_start, cancel, resume) against the
 * fake relay of h2_relay_fake.h.
 *
 * env_start() makes a loop, starts the fake relay on it and a relay client C
 * whose URL (url) points at it with the given path prefix; env_stop() frees
 * all three. Each test's requests are the records T[0] to T[NT - 1]: their
 * callbacks (t_ops) note what the client delivered and where from, inside
 * the client's nghttp2 calls (ng_depth > 0) or from the loop. A test may set
 * a record's fields (headers, pausing, ops) before start_req() starts it;
 * assert_ok() and assert_failed() check how it ended.
 *
 * run_until() and WAIT() run the loop until a condition holds, bounded: a
 * guard timer fails the wait; nothing sleeps. Anything that may have made a
 * condition true calls poke(), which stops the loop once it holds.
 */
#ifndef PTTH_TEST_H2_CLIENT_HARNESS_H
#define PTTH_TEST_H2_CLIENT_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <check.h>

#include "h2_relay_fake.h"
#include "loop.h"
#include "relay_client.h"

#define KEY "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define AUTH "Bearer " KEY
/* mirrors of h2_client.c's limits, which these tests check */
#define STREAM_WINDOW (256 * 1024)
#define MAX_REFUSALS 3
#define GUARD_MS 5000 /* the longest any single wait of a test may take */
#define MAX_TREQS 64

/* ---- the client's requests ---- */

typedef struct treq {
    ptth_req r; /* first: the callbacks get &t->r */
    int done;
    bool error_null;
    char error[512];
    bool done_inside_ng; /* on_done ran inside the client's nghttp2 calls */
    bool active_at_done; /* ptth_req_active() in on_done */
    size_t taken_at_done;
    int headers_calls;
    bool headers_outside_ng; /* on_headers ran outside nghttp2 */
    long status_at_headers;
    int body_calls;
    size_t taken; /* body bytes accepted */
    bool check_pattern;
    uint8_t seed;
    bool bad_byte;
    size_t bad_at;
    char text[512];
    size_t text_len;
    /* pausing */
    bool pause_first;   /* PTTH_REQ_PAUSE at the first body bytes */
    size_t pause_every; /* after resuming: pause again once this many were taken (0: never) */
    size_t since_resume;
    int pause_next;   /* PTTH_REQ_PAUSE at the next this many calls */
    bool auto_resume; /* resume from a deferred call after each pause */
    int pauses;
    ptth_defer resume_defer;
    const char *headers[PTTH_REQ_HEADERS_MAX + 1];
    char path[64];
} treq;

extern treq T[MAX_TREQS];
extern int NT;
extern int stray_callbacks; /* callbacks of requests that were cancelled */

extern ptth_loop *loop;
extern ptth_relay_client *C;
extern long env_liveness_ms; /* the client's liveness_ms at env_start() (0: the default) */
extern char url[160];

/* The callbacks of treq records (t_ops); tests that wrap them call these. */
void t_on_headers(ptth_req *r);
size_t t_on_body(ptth_req *r, const uint8_t *p, size_t len);
void t_on_done(ptth_req *r, const char *error);
extern const ptth_req_ops t_ops;

/* Callbacks of requests freed right after ptth_req_cancel(): any call is
 * counted in stray_callbacks as a defect. */
void stray_on_done(ptth_req *r, const char *error);
extern const ptth_req_ops stray_ops;

/* Starts T[NT] (POST path with an optional body) and counts it in NT. */
treq *start_req(const char *path, const char *body, size_t body_len);
/* t ended once with a whole response of this status, delivered from the loop. */
void assert_ok(const treq *t, long status);
/* t failed once, from the loop, with an error text containing what. */
void assert_failed(const treq *t, const char *what);

/* Stops the loop when the condition run_until() waits for holds. */
void poke(void);
/* Runs the loop until cond() holds; false when ms passed first. */
bool run_until(bool (*cond)(void), long ms);
/* Runs the loop for ms (to see that nothing more happens). */
void run_for(long ms);
#define WAIT(cond) ck_assert_msg(run_until(cond, GUARD_MS), "timed out waiting for " #cond)

/* Conditions to wait for. */
bool all_done(void);       /* every request started has had its on_done */
extern int want_n;         /* for reqs_reached */
bool reqs_reached(void);   /* the relay has seen want_n complete requests */
extern fstream *watched;   /* for the two below */
bool watched_closed(void); /* the relay closed its stream or connection */
bool watched_rst(void);    /* the client reset it */

/* CLOCK_MONOTONIC in milliseconds. */
long long now_ms(void);

void env_start(const char *prefix);
void env_stop(void);

#endif
