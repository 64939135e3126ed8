/* Unit tests of the terminators' metrics: common/term_metrics (counting,
 * classification, the Prometheus text), common/metrics_req (what a request
 * head is answered) and common/metrics_server (the responder on a real loop
 * and loopback sockets: answers, limits, idle connections closed). */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check_main.h"
#include "loop.h"
#include "metrics_req.h"
#include "metrics_server.h"
#include "term_metrics.h"

/* The rendered text (malloc'd, NUL-terminated). */
static char *
render(ptth_term_metrics *m, void (*live)(void *, ptth_term_metrics *), void *data)
{
    ptth_sbuf b = {0};
    ptth_tm_render(m, live, data, &b);
    ptth_sbuf_add(&b, "", 1);
    ck_assert(!b.failed);
    return b.p;
}

/* true when text has the line exactly */
static bool
has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return true;
    return false;
}

START_TEST(tunnels_are_counted_by_result_and_port)
{
    ptth_term_metrics m;
    ptth_tm_init(&m, "ptth_server");
    int ssh = ptth_tm_add_port(&m, "foo", "ssh");
    int web = ptth_tm_add_port(&m, "foo", "web");
    ck_assert_int_eq(ssh, 0);
    ck_assert_int_eq(web, 1);
    ck_assert_int_eq(ptth_tm_add_port(&m, "foo", "ssh"), ssh); /* the same series once */
    ptth_tm_tunnel_open(&m, ssh);
    ptth_tm_tunnel_open(&m, ssh);
    ptth_tm_tunnel_open(&m, web);
    ptth_tm_tunnel_open(&m, -1); /* an unknown port: totals only */
    ptth_tm_tunnel_end(&m, ssh, PTTH_TM_FIN, 100, 2000);
    ptth_tm_tunnel_end(&m, web, PTTH_TM_REFUSED, 0, 0);
    ptth_tm_tunnel_end(&m, -1, PTTH_TM_BACKEND, 0, 0);
    char *t = render(&m, NULL, NULL);
    ck_assert(has_line(t, "ptth_terminator_info{program=\"ptth_server\",version=\"" PTTH_VERSION "\"} 1"));
    ck_assert(has_line(t, "ptth_terminator_tunnels_open 1"));
    ck_assert(has_line(t, "ptth_terminator_tunnels_opened_total 4"));
    ck_assert(has_line(t, "ptth_terminator_tunnels_total{result=\"fin\"} 1"));
    ck_assert(has_line(t, "ptth_terminator_tunnels_total{result=\"refused\"} 1"));
    ck_assert(has_line(t, "ptth_terminator_tunnels_total{result=\"backend\"} 1"));
    ck_assert(has_line(t, "ptth_terminator_tunnels_total{result=\"rst\"} 0"));
    ck_assert(has_line(t, "ptth_terminator_bytes_total{direction=\"up\"} 100"));
    ck_assert(has_line(t, "ptth_terminator_bytes_total{direction=\"down\"} 2000"));
    ck_assert(has_line(t, "ptth_terminator_port_tunnels_open{server=\"foo\",port=\"ssh\"} 1"));
    ck_assert(has_line(t, "ptth_terminator_port_tunnels_open{server=\"foo\",port=\"web\"} 0"));
    ck_assert(has_line(t, "ptth_terminator_port_tunnels_total{server=\"foo\",port=\"ssh\",result=\"fin\"} 1"));
    ck_assert(has_line(t, "ptth_terminator_port_tunnels_total{server=\"foo\",port=\"web\",result=\"refused\"} 1"));
    ck_assert(has_line(t, "ptth_terminator_port_bytes_total{server=\"foo\",port=\"ssh\",direction=\"down\"} 2000"));
    free(t);
    ptth_tm_dispose(&m);
}
END_TEST

static void
add_live(void *data, ptth_term_metrics *m)
{
    int *port = data;
    ptth_tm_live(m, *port, 7, 9);
}

START_TEST(open_tunnels_bytes_are_added_at_render)
{
    ptth_term_metrics m;
    ptth_tm_init(&m, "ptth_proxy");
    int p = ptth_tm_add_port(&m, "foo", "ssh");
    ptth_tm_tunnel_end(&m, p, PTTH_TM_FIN, 1, 1);
    char *t = render(&m, add_live, &p);
    ck_assert(has_line(t, "ptth_terminator_bytes_total{direction=\"up\"} 8"));
    ck_assert(has_line(t, "ptth_terminator_port_bytes_total{server=\"foo\",port=\"ssh\",direction=\"down\"} 10"));
    free(t);
    /* live bytes are not kept: a render without them shows the ended ones only */
    t = render(&m, NULL, NULL);
    ck_assert(has_line(t, "ptth_terminator_bytes_total{direction=\"up\"} 1"));
    free(t);
    ptth_tm_dispose(&m);
}
END_TEST

START_TEST(relay_failures_by_reason_and_reconnects)
{
    ptth_term_metrics m;
    ptth_tm_init(&m, "ptth_server");
    ptth_tm_relay_failure(&m, 0);
    ptth_tm_relay_failure(&m, 0);
    ck_assert(!m.relay_up);
    ck_assert_uint_eq(m.relay_connects, 0);
    ptth_tm_relay_answered(&m);
    ptth_tm_relay_answered(&m);
    ck_assert_uint_eq(m.relay_connects, 1);
    ptth_tm_relay_failure(&m, 401);
    ptth_tm_relay_failure(&m, 403);
    ptth_tm_relay_failure(&m, 429);
    ptth_tm_relay_failure(&m, 503);
    ptth_tm_relay_failure(&m, 502);
    ptth_tm_relay_failure(&m, 404);
    ck_assert(m.relay_up); /* an error status is still an answer */
    ck_assert_uint_eq(m.relay_connects, 1);
    ptth_tm_relay_failure(&m, 0);
    ptth_tm_relay_failure(&m, 404); /* answered again: a reconnection */
    ck_assert_uint_eq(m.relay_connects, 2);
    ptth_tm_failure(&m, PTTH_TM_F_BACKEND);
    char *t = render(&m, NULL, NULL);
    ck_assert(has_line(t, "ptth_terminator_failures_total{reason=\"relay_unreachable\"} 3"));
    ck_assert(has_line(t, "ptth_terminator_failures_total{reason=\"relay_auth\"} 2"));
    ck_assert(has_line(t, "ptth_terminator_failures_total{reason=\"relay_busy\"} 2"));
    ck_assert(has_line(t, "ptth_terminator_failures_total{reason=\"relay_error\"} 1"));
    ck_assert(has_line(t, "ptth_terminator_failures_total{reason=\"relay_refused\"} 2"));
    ck_assert(has_line(t, "ptth_terminator_failures_total{reason=\"backend\"} 1"));
    ck_assert(has_line(t, "ptth_terminator_failures_total{reason=\"accept\"} 0"));
    ck_assert(has_line(t, "ptth_terminator_relay_up 1"));
    ck_assert(has_line(t, "ptth_terminator_relay_connects_total 2"));
    ck_assert(has_line(t, "ptth_terminator_resumes_total 0"));
    ck_assert(has_line(t, "ptth_terminator_replayed_bytes_total 0"));
    free(t);
    ptth_tm_resumed(&m, 1000);
    ptth_tm_resumed(&m, 0);
    t = render(&m, NULL, NULL);
    ck_assert(has_line(t, "ptth_terminator_resumes_total 2"));
    ck_assert(has_line(t, "ptth_terminator_replayed_bytes_total 1000"));
    free(t);
    ptth_tm_dispose(&m);
}
END_TEST

START_TEST(results_are_classified)
{
    ck_assert_int_eq(ptth_tm_classify(true, true, 200, "fin"), PTTH_TM_FIN);
    ck_assert_int_eq(ptth_tm_classify(true, false, 200, "closed by client: reset"), PTTH_TM_RST);
    ck_assert_int_eq(ptth_tm_classify(true, false, 101, "shutdown"), PTTH_TM_SHUTDOWN);
    ck_assert_int_eq(ptth_tm_classify(false, false, 404, "unknown server"), PTTH_TM_REFUSED);
    ck_assert_int_eq(ptth_tm_classify(false, false, 0, "connection refused"), PTTH_TM_FAILED);
    ck_assert_str_eq(ptth_tm_result_name(PTTH_TM_BACKEND), "backend");
    ck_assert_str_eq(ptth_tm_failure_name(PTTH_TM_F_RELAY_BUSY), "relay_busy");
}
END_TEST

/* Every family: HELP, then TYPE, then samples; counters end in _total. A
 * stricter parse of the same text is in the integration test (promtext.py). */
START_TEST(text_has_help_and_type_before_samples)
{
    ptth_term_metrics m;
    ptth_tm_init(&m, "ptth_proxy");
    ptth_tm_add_port(&m, "a.b-c_d", "p1");
    char *t = render(&m, NULL, NULL);
    ck_assert(t[strlen(t) - 1] == '\n');
    char family[128] = "";
    int state = 0; /* 0: want HELP, 1: want TYPE, 2: samples */
    for (char *line = strtok(t, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        if (strncmp(line, "# HELP ", 7) == 0) {
            ck_assert_int_ne(state, 1);
            sscanf(line + 7, "%127s", family);
            ck_assert_msg(strncmp(family, "ptth_terminator_", 16) == 0, "%s", family);
            state = 1;
        } else if (strncmp(line, "# TYPE ", 7) == 0) {
            char name[128], type[16];
            ck_assert_int_eq(state, 1);
            ck_assert_int_eq(sscanf(line + 7, "%127s %15s", name, type), 2);
            ck_assert_str_eq(name, family);
            if (strcmp(type, "counter") == 0)
                ck_assert_msg(strlen(name) > 6 && strcmp(name + strlen(name) - 6, "_total") == 0, "%s", name);
            else
                ck_assert_str_eq(type, "gauge");
            state = 2;
        } else {
            ck_assert_int_eq(state, 2);
            ck_assert_msg(strncmp(line, family, strlen(family)) == 0 &&
                              (line[strlen(family)] == ' ' || line[strlen(family)] == '{'),
                          "sample outside its family: %s", line);
        }
    }
    free(t);
    ptth_tm_dispose(&m);
}
END_TEST

static int
status_of(const char *req)
{
    return ptth_metrics_req_status(req, strlen(req));
}

START_TEST(requests_get_their_status)
{
    ck_assert_int_eq(status_of("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), 200);
    ck_assert_int_eq(status_of("GET /metrics HTTP/1.0\r\n\r\n"), 200);
    ck_assert_int_eq(status_of("GET /metrics?name[]=x HTTP/1.1\r\n\r\n"), 200);
    ck_assert_int_eq(status_of("GET / HTTP/1.1\r\n\r\n"), 404);
    ck_assert_int_eq(status_of("GET /metricsx HTTP/1.1\r\n\r\n"), 404);
    ck_assert_int_eq(status_of("GET /metrics/ HTTP/1.1\r\n\r\n"), 404);
    ck_assert_int_eq(status_of("POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n"), 405);
    ck_assert_int_eq(status_of("HEAD /metrics HTTP/1.1\r\n\r\n"), 405);
    ck_assert_int_eq(status_of("get /metrics HTTP/1.1\r\n\r\n"), 405);
    ck_assert_int_eq(status_of("GET /metrics HTTP/1.1\r\nHost: x\r\n"), 0); /* not complete yet */
    ck_assert_int_eq(status_of("GET /metr"), 0);
    ck_assert_int_eq(status_of(""), 0);
    ck_assert_int_eq(status_of("GET /metrics HTTP/2.0\r\n\r\n"), 400);
    ck_assert_int_eq(status_of("\x01\x02 garbage\r\n\r\n"), 400);
    ck_assert_int_eq(status_of("GET /metrics HTTP/1.1\r\nbad header\r\n\r\n"), 400);
}
END_TEST

START_TEST(long_heads_and_many_headers_are_refused)
{
    char *big = malloc(PTTH_METRICS_REQ_MAX + 100);
    int n = snprintf(big, 64, "GET /metrics HTTP/1.1\r\nX: ");
    memset(big + n, 'a', PTTH_METRICS_REQ_MAX + 100 - (size_t)n);
    ck_assert_int_eq(ptth_metrics_req_status(big, PTTH_METRICS_REQ_MAX - 1), 0);
    ck_assert_int_eq(ptth_metrics_req_status(big, PTTH_METRICS_REQ_MAX), 431);
    ck_assert_int_eq(ptth_metrics_req_status(big, PTTH_METRICS_REQ_MAX + 100), 431);
    free(big);
    char many[4096];
    for (int extra = 0; extra <= 1; extra++) {
        size_t len = (size_t)snprintf(many, sizeof(many), "GET /metrics HTTP/1.1\r\n");
        for (int i = 0; i < PTTH_METRICS_REQ_HEADERS + extra; i++)
            len += (size_t)snprintf(many + len, sizeof(many) - len, "H%d: v\r\n", i);
        snprintf(many + len, sizeof(many) - len, "\r\n");
        ck_assert_int_eq(status_of(many), extra ? 400 : 200);
    }
}
END_TEST

START_TEST(responses_are_whole)
{
    ptth_sbuf b = {0};
    ptth_metrics_response(&b, 200, "x 1\n", 4);
    ptth_sbuf_add(&b, "", 1);
    ck_assert_str_eq(b.p, "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: 4\r\n"
                          "Connection: close\r\n\r\nx 1\n");
    ptth_sbuf_free(&b);
    ptth_metrics_response(&b, 405, NULL, 0);
    ptth_sbuf_add(&b, "", 1);
    ck_assert_ptr_nonnull(strstr(b.p, "HTTP/1.1 405 Method Not Allowed\r\n"));
    ck_assert_ptr_nonnull(strstr(b.p, "\r\nAllow: GET\r\n"));
    const char *body = strstr(b.p, "\r\n\r\n") + 4;
    char want[64];
    snprintf(want, sizeof(want), "Content-Length: %zu\r\n", strlen(body));
    ck_assert_ptr_nonnull(strstr(b.p, want));
    ptth_sbuf_free(&b);
}
END_TEST

/* ---- the server on a real loop ---- */

static void
on_stop_timer(ptth_timer *t)
{
    ptth_loop_stop(t->data);
}

/* Runs the loop for ms milliseconds. */
static void
run_for(ptth_loop *loop, long long ms)
{
    ptth_timer t = {0};
    ptth_timer_start(loop, &t, ms, on_stop_timer, loop);
    ck_assert_int_eq(ptth_loop_run(loop), 0);
    ptth_timer_stop(loop, &t);
}

static int
connect_to(const ptth_metrics_server *s)
{
    const char *addr = ptth_metrics_server_address(s);
    const char *colon = strrchr(addr, ':');
    struct sockaddr_in sin = {
        .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1)), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    return fd;
}

/* Everything the server sent until it closed (the loop must have run). */
static char *
read_all(int fd)
{
    static char buf[65536];
    size_t len = 0;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 0) <= 0)
            break;
        ssize_t n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    return buf;
}

/* true when the server closed fd (EOF or reset readable now) */
static bool
closed_by_server(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 0) != 1)
        return false;
    char c;
    return recv(fd, &c, 1, MSG_DONTWAIT) <= 0;
}

/* A loop and metrics for the server tests; srv is listening on a loopback port
 * when started. */
typedef struct world {
    ptth_loop *loop;
    ptth_term_metrics m;
    ptth_metrics_server *srv;
} world;

static void
world_init(world *w, bool start)
{
    w->loop = ptth_loop_new();
    ck_assert_ptr_nonnull(w->loop);
    ptth_tm_init(&w->m, "ptth_server");
    w->srv = NULL;
    char err[256];
    if (start)
        ck_assert_int_eq(ptth_metrics_server_new(w->loop, "127.0.0.1:0", &w->m, &w->srv, err, sizeof(err)), 0);
}

static void
world_free(world *w)
{
    ptth_metrics_server_free(w->srv);
    ptth_tm_dispose(&w->m);
    ptth_loop_free(w->loop);
}

START_TEST(server_answers_on_the_loop)
{
    world w;
    world_init(&w, true);
    ptth_loop *loop = w.loop;
    ptth_metrics_server *s = w.srv;
    ptth_tm_tunnel_open(&w.m, -1);
    int a = connect_to(s), b = connect_to(s), c = connect_to(s);
    const char *ra = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    ck_assert_int_eq(send(a, ra, strlen(ra), 0), (ssize_t)strlen(ra));
    ck_assert_int_eq(send(b, "GET /nope HTTP/1.1\r\n\r\n", 22, 0), 22);
    ck_assert_int_eq(send(c, "GET /metrics HTTP/1.1\r\n", 23, 0), 23); /* the rest never comes */
    run_for(loop, 300);
    char *got = read_all(a);
    ck_assert_msg(strncmp(got, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", got);
    ck_assert(has_line(got, "ptth_terminator_tunnels_open 1"));
    got = read_all(b);
    ck_assert_msg(strncmp(got, "HTTP/1.1 404 Not Found\r\n", 24) == 0, "%s", got);
    ck_assert(!closed_by_server(c));
    run_for(loop, PTTH_METRICS_CONN_MS + 300);
    ck_assert_msg(closed_by_server(c), "an incomplete request is closed after %d ms", PTTH_METRICS_CONN_MS);
    close(a);
    close(b);
    close(c);
    world_free(&w);
}
END_TEST

START_TEST(server_caps_connections)
{
    world w;
    world_init(&w, true);
    ptth_loop *loop = w.loop;
    ptth_metrics_server *s = w.srv;
    int fds[PTTH_METRICS_CONNS_MAX + 1];
    for (int i = 0; i <= PTTH_METRICS_CONNS_MAX; i++) {
        fds[i] = connect_to(s);
        run_for(loop, 20); /* accepted in this order */
    }
    for (int i = 0; i < PTTH_METRICS_CONNS_MAX; i++)
        ck_assert_msg(!closed_by_server(fds[i]), "connection %d closed", i);
    ck_assert_msg(closed_by_server(fds[PTTH_METRICS_CONNS_MAX]), "the one over the cap is closed at accept");
    for (int i = 0; i <= PTTH_METRICS_CONNS_MAX; i++)
        close(fds[i]);
    world_free(&w);
}
END_TEST

START_TEST(bad_addresses_fail_with_a_reason)
{
    world w;
    world_init(&w, false);
    ptth_loop *loop = w.loop;
    ptth_metrics_server *s = NULL;
    char err[256];
    ck_assert_int_lt(ptth_metrics_server_new(loop, "localhost:9100", &w.m, &s, err, sizeof(err)), 0);
    ck_assert_ptr_nonnull(strstr(err, "localhost"));
    ck_assert_ptr_null(s);
    ck_assert_int_lt(ptth_metrics_server_new(loop, "192.0.2.1:9100", &w.m, &s, err, sizeof(err)), 0);
    ck_assert_msg(strstr(err, "cannot listen on 192.0.2.1:9100") != NULL, "%s", err);
    /* the port is taken */
    ptth_metrics_server *first = NULL;
    ck_assert_int_eq(ptth_metrics_server_new(loop, "127.0.0.1:0", &w.m, &first, err, sizeof(err)), 0);
    ck_assert_int_lt(ptth_metrics_server_new(loop, ptth_metrics_server_address(first), &w.m, &s, err, sizeof(err)), 0);
    ck_assert_msg(strstr(err, "Address already in use") != NULL, "%s", err);
    ptth_metrics_server_free(first);
    world_free(&w);
}
END_TEST

Suite *
ptth_test_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("metrics");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, tunnels_are_counted_by_result_and_port);
    tcase_add_test(tc, open_tunnels_bytes_are_added_at_render);
    tcase_add_test(tc, relay_failures_by_reason_and_reconnects);
    tcase_add_test(tc, results_are_classified);
    tcase_add_test(tc, text_has_help_and_type_before_samples);
    tcase_add_test(tc, requests_get_their_status);
    tcase_add_test(tc, long_heads_and_many_headers_are_refused);
    tcase_add_test(tc, responses_are_whole);
    tcase_add_test(tc, server_answers_on_the_loop);
    tcase_add_test(tc, server_caps_connections);
    tcase_add_test(tc, bad_addresses_fail_with_a_reason);
    suite_add_tcase(s, tc);
    return s;
}
