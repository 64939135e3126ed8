/* The client side of the h2_client suites: see h2_client_harness.h. */

#include "h2_client_harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "loop_wait.h"

treq T[MAX_TREQS];
int NT;
int stray_callbacks;

ptth_loop *loop;
ptth_relay_client *C;
long env_liveness_ms;
char url[160];

/* ---- the client's requests ---- */

static void
on_resume_deferred(ptth_defer *d)
{
    treq *t = d->data;
    t->since_resume = 0;
    ptth_req_resume(&t->r);
}

void
t_on_headers(ptth_req *r)
{
    treq *t = (treq *)r;
    t->headers_calls++;
    t->status_at_headers = r->status;
    if (ng_depth == 0)
        t->headers_outside_ng = true;
}

size_t
t_on_body(ptth_req *r, const uint8_t *p, size_t len)
{
    treq *t = (treq *)r;
    t->body_calls++;
    ck_assert_uint_gt(len, 0);
    if ((t->pause_first && t->pauses == 0) || (t->pause_every > 0 && t->since_resume >= t->pause_every) || t->pause_next > 0) {
        t->pauses++;
        if (t->pause_next > 0)
            t->pause_next--;
        if (t->auto_resume)
            ptth_defer_call(loop, &t->resume_defer, on_resume_deferred, t);
        poke();
        return PTTH_REQ_PAUSE;
    }
    if (t->check_pattern) {
        for (size_t i = 0; i < len && !t->bad_byte; i++) {
            if (p[i] != pattern(t->seed, t->taken + i)) {
                t->bad_byte = true;
                t->bad_at = t->taken + i;
            }
        }
    } else {
        size_t n = len < sizeof(t->text) - 1 - t->text_len ? len : sizeof(t->text) - 1 - t->text_len;
        memcpy(t->text + t->text_len, p, n);
        t->text_len += n;
        t->text[t->text_len] = '\0';
    }
    t->taken += len;
    t->since_resume += len;
    poke();
    return len;
}

void
t_on_done(ptth_req *r, const char *error)
{
    treq *t = (treq *)r;
    t->done++;
    t->done_inside_ng = t->done_inside_ng || ng_depth > 0;
    t->active_at_done = ptth_req_active(r);
    t->taken_at_done = t->taken;
    t->error_null = error == NULL;
    snprintf(t->error, sizeof(t->error), "%s", error != NULL ? error : "");
    poke();
}

const ptth_req_ops t_ops = {t_on_headers, t_on_body, t_on_done};

/* Callbacks of requests freed right after ptth_req_cancel(): any call is a
 * defect (and under ASan the ptth_req is gone). */
static void
stray_on_headers(ptth_req *r)
{
    (void)r;
    stray_callbacks++;
}

static size_t
stray_on_body(ptth_req *r, const uint8_t *p, size_t len)
{
    (void)r;
    (void)p;
    stray_callbacks++;
    return len;
}

void
stray_on_done(ptth_req *r, const char *error)
{
    (void)r;
    (void)error;
    stray_callbacks++;
}

const ptth_req_ops stray_ops = {stray_on_headers, stray_on_body, stray_on_done};

/* Starts request T[NT] (POST path, optional body). */
treq *
start_req(const char *path, const char *body, size_t body_len)
{
    ck_assert_int_lt(NT, MAX_TREQS);
    treq *t = &T[NT++];
    if (t->r.ops == NULL)
        t->r.ops = &t_ops;
    t->r.data = t;
    snprintf(t->path, sizeof(t->path), "%s", path);
    ck_assert_int_eq(ptth_req_start(C, &t->r, PTTH_REQ_SHORT, t->path, t->headers[0] != NULL ? t->headers : NULL, body, body_len),
                     0);
    ck_assert(ptth_req_active(&t->r));
    return t;
}

/* t ended with a whole response, delivered from the loop. */
void
assert_ok(const treq *t, long status)
{
    ck_assert_msg(t->done == 1, "%s: on_done ran %d times", t->path, t->done);
    ck_assert_msg(t->error_null, "%s: on_done error '%s'", t->path, t->error);
    ck_assert_msg(!t->done_inside_ng, "%s: on_done ran inside nghttp2", t->path);
    ck_assert(!t->active_at_done);
    ck_assert_int_eq(t->r.status, status);
    ck_assert(!t->bad_byte);
}

/* t failed once with an error text containing what. */
void
assert_failed(const treq *t, const char *what)
{
    ck_assert_msg(t->done == 1, "%s: on_done ran %d times", t->path, t->done);
    ck_assert_msg(!t->error_null, "%s: no error", t->path);
    ck_assert_msg(strstr(t->error, what) != NULL, "%s: error '%s' does not contain '%s'", t->path, t->error, what);
    ck_assert(!t->done_inside_ng);
    ck_assert(!t->active_at_done);
}

/* ---- running the loop, bounded (loop_wait.c) ---- */

void
poke(void)
{
    loop_wait_poke();
}

bool
run_until(bool (*cond)(void), long ms)
{
    return loop_wait(loop, cond, ms);
}

static bool
cond_never(void)
{
    return false;
}

/* Runs the loop for ms (to see that nothing more happens). */
void
run_for(long ms)
{
    ck_assert(!run_until(cond_never, ms));
}

int want_n;

bool
all_done(void)
{
    for (int i = 0; i < NT; i++)
        if (T[i].done == 0)
            return false;
    return true;
}

bool
reqs_reached(void)
{
    return F.nreqs >= want_n;
}

fstream *watched;

bool
watched_closed(void)
{
    return watched->closed;
}

bool
watched_rst(void)
{
    return watched->got_rst;
}

long long
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- set-up ---- */

void
env_start(const char *prefix)
{
    unsetenv("PTTH_HTTP_CLIENT");
    memset(T, 0, sizeof(T));
    NT = 0;
    stray_callbacks = 0;
    loop = ptth_loop_new();
    ck_assert_ptr_nonnull(loop);
    fake_start(loop, poke);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", F.port, prefix);
    char err[256];
    ptth_relay_client_config cfg = {.url = url, .key = KEY, .user_agent = "h2test-agent", .liveness_ms = env_liveness_ms};
    ck_assert_msg(ptth_relay_client_new(loop, &cfg, &C, err, sizeof(err)) == 0, "%s", err);
}

void
env_stop(void)
{
    ptth_relay_client_free(C);
    C = NULL;
    for (int i = 0; i < NT; i++)
        ptth_defer_cancel(loop, &T[i].resume_defer);
    fake_free();
    ptth_loop_free(loop);
    loop = NULL;
}
