/* Unit tests: ptth_transport_cc (the host side) against a real agent in a
 * thread: open, echo, half-close, close, the --max-clients limit, refused and
 * unreachable targets, agent restarts, open timeouts, a slow tunnel that must
 * not stall the others, and a bulk transfer whose throughput is printed. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cc_host.h"
#include "cc_testutil.h"
#include "check_main.h"
#include "transport.h"

static char err[512];
static char backend_path[128];
static cct_backend backend;
static cct_agent agent;

static void
target_for(ptth_target *t, const char *service)
{
    memset(t, 0, sizeof(*t));
    t->kind = PTTH_TARGET_CC;
    t->cc_carrier = PTTH_CC_SEQPACKET;
    snprintf(t->cc_service, sizeof(t->cc_service), "%s", service);
    snprintf(t->text, sizeof(t->text), "cc:%s", service);
}

/* open + finish_open driven by poll(); returns the result, the stream in *out
 * (closed and NULL on failure). */
static int
open_stream(ptth_stream **out, int timeout_ms)
{
    ptth_target t;
    target_for(&t, "svc");
    ptth_open_info info = {.client_addr = "203.0.113.7:5555"};
    ptth_stream *s = NULL;
    err[0] = '\0';
    int r = ptth_transport_cc.open(&t, &info, &s, err, sizeof(err));
    if (r != 0) {
        *out = NULL;
        return r;
    }
    ck_assert_ptr_eq(s->transport, &ptth_transport_cc);
    ck_assert_uint_eq(s->open_events, EPOLLIN);
    long long end = cct_now_ms() + timeout_ms;
    for (;;) {
        struct pollfd p = {.fd = s->fd, .events = POLLIN};
        long long left = end - cct_now_ms();
        ck_assert_msg(left > 0, "open did not finish within %d ms", timeout_ms);
        poll(&p, 1, (int)left);
        r = ptth_transport_cc.finish_open(s, err, sizeof(err));
        if (r != -EINPROGRESS)
            break;
    }
    if (r != 0) {
        ptth_transport_cc.close(s);
        s = NULL;
    }
    *out = s;
    return r;
}

static ptth_stream *
must_open(void)
{
    ptth_stream *s;
    int r = open_stream(&s, 5000);
    ck_assert_msg(r == 0, "open: %d %s", r, err);
    return s;
}

static void
write_all(ptth_stream *s, const void *buf, size_t len)
{
    const char *p = buf;
    long long end = cct_now_ms() + 10000;
    while (len > 0) {
        ssize_t n = ptth_transport_cc.write(s, p, len);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        ck_assert_int_eq(n, -EAGAIN);
        ck_assert_msg(cct_now_ms() < end, "write stalled");
        struct pollfd pf = {.fd = s->fd, .events = POLLOUT};
        poll(&pf, 1, 100);
    }
}

/* Reads exactly len bytes (asserts), or with len 0 waits for the end of
 * stream; returns the last read() result. */
static ssize_t
read_exact(ptth_stream *s, void *buf, size_t len, int timeout_ms)
{
    char *p = buf;
    long long end = cct_now_ms() + timeout_ms;
    for (;;) {
        ssize_t n = ptth_transport_cc.read(s, p, len > 0 ? len : 1);
        if (n > 0) {
            ck_assert_uint_ne(len, 0);
            p += n;
            len -= (size_t)n;
            if (len == 0)
                return n;
            continue;
        }
        if (n != -EAGAIN)
            return n;
        long long left = end - cct_now_ms();
        ck_assert_msg(left > 0, "read timed out");
        struct pollfd pf = {.fd = s->fd, .events = POLLIN};
        poll(&pf, 1, (int)left);
    }
}

static void
echo_check(ptth_stream *s, const char *text)
{
    char got[256];
    size_t n = strlen(text);
    write_all(s, text, n);
    ck_assert_int_gt(read_exact(s, got, n, 5000), 0);
    ck_assert_mem_eq(got, text, n);
}

static void
start(cct_mode mode, uint32_t max_clients)
{
    const char *dir = cct_tmpdir();
    snprintf(backend_path, sizeof(backend_path), "%s/backend.sock", dir);
    cct_backend_start(&backend, backend_path, mode);
    cct_agent_start(&agent, "svc", backend_path, max_clients);
}

static void
stop(void)
{
    ptth_cc_host_shutdown();
    cct_agent_stop(&agent);
    cct_backend_stop(&backend);
}

static void
wait_agent_tunnels(size_t want)
{
    for (int i = 0; i < 500 && ptth_cc_agent_tunnels(agent.agent) != want; i++)
        usleep(10000);
    ck_assert_uint_eq(ptth_cc_agent_tunnels(agent.agent), want);
}

START_TEST(open_echo_close)
{
    start(CCT_ECHO, 8);
    ptth_stream *s = must_open();
    echo_check(s, "hello over the comm channel");
    echo_check(s, "and again");
    ck_assert_uint_eq(ptth_cc_agent_tunnels(agent.agent), 1);
    ptth_transport_cc.close(s);
    wait_agent_tunnels(0);
    stop();
}
END_TEST

START_TEST(half_close_both_ways)
{
    start(CCT_ECHO, 8);
    ptth_stream *s = must_open();
    write_all(s, "last words", 10);
    ck_assert_int_eq(ptth_transport_cc.shutdown_write(s), 0);
    char got[16];
    ck_assert_int_gt(read_exact(s, got, 10, 5000), 0);
    ck_assert_mem_eq(got, "last words", 10);
    /* the backend half-closed after our FIN: end of stream, not an error */
    ck_assert_int_eq(read_exact(s, got, 0, 5000), 0);
    /* the agent keeps the tunnel until the host closes it */
    ck_assert_uint_eq(ptth_cc_agent_tunnels(agent.agent), 1);
    ptth_transport_cc.close(s);
    wait_agent_tunnels(0);
    stop();
}
END_TEST

START_TEST(backend_close_is_end_of_stream)
{
    start(CCT_GREET, 8);
    ptth_stream *s = must_open();
    char got[8];
    ck_assert_int_gt(read_exact(s, got, 4, 5000), 0);
    ck_assert_mem_eq(got, "bye\n", 4);
    ck_assert_int_eq(read_exact(s, got, 0, 5000), 0);
    ptth_transport_cc.close(s);
    stop();
}
END_TEST

/* The backend half-closes first; the client then uploads, half-closes and
 * closes at once (what the server terminator does when both FINs are done).
 * close() must not cut the upload short: every byte written before it
 * reaches the backend, then its end of stream. */
START_TEST(close_after_shutdown_delivers_everything)
{
    start(CCT_COUNT, 8);
    enum { ROUNDS = 5 };
    const size_t size = (size_t)3 << 20;
    static char data[(size_t)3 << 20];
    memset(data, 'u', size);
    for (int i = 0; i < ROUNDS; i++) {
        ptth_stream *s = must_open();
        char got[4];
        ck_assert_int_gt(read_exact(s, got, 3, 5000), 0);
        ck_assert_mem_eq(got, "hi\n", 3);
        ck_assert_int_eq(read_exact(s, got, 0, 5000), 0);
        write_all(s, data, size);
        ck_assert_int_eq(ptth_transport_cc.shutdown_write(s), 0);
        ptth_transport_cc.close(s);
    }
    ck_assert_uint_eq(cct_backend_wait_counted(&backend, ROUNDS, 20000), ROUNDS * size);
    wait_agent_tunnels(0);
    stop();
}
END_TEST

START_TEST(backend_reset_breaks_the_stream)
{
    start(CCT_RESET, 8);
    ptth_stream *s = must_open();
    write_all(s, "x", 1);
    char got[8];
    ssize_t r = read_exact(s, got, 0, 5000);
    /* RST from the backend: the tunnel breaks; some kernels report the close
     * of an AF_UNIX peer as plain end of stream */
    ck_assert_msg(r == -ECONNRESET || r == 0, "read: %zd", r);
    ptth_transport_cc.close(s);
    wait_agent_tunnels(0);
    stop();
}
END_TEST

START_TEST(max_clients_refuses_one_over)
{
    start(CCT_ECHO, 3);
    ptth_stream *s[3];
    for (int i = 0; i < 3; i++)
        s[i] = must_open();
    ptth_stream *over;
    int r = open_stream(&over, 5000);
    ck_assert_int_eq(r, -ECONNREFUSED);
    ck_assert_ptr_null(over);
    ck_assert_msg(strstr(err, "agent refused") != NULL && strstr(err, "--max-clients 3") != NULL, "%s", err);
    for (int i = 0; i < 3; i++) {
        char text[32];
        snprintf(text, sizeof(text), "tunnel %d still works", i);
        echo_check(s[i], text);
    }
    /* closing one frees its slot for a new tunnel */
    ptth_transport_cc.close(s[1]);
    wait_agent_tunnels(2);
    s[1] = must_open();
    echo_check(s[1], "new one");
    for (int i = 0; i < 3; i++)
        ptth_transport_cc.close(s[i]);
    wait_agent_tunnels(0);
    stop();
}
END_TEST

START_TEST(unreachable_target_fails_open)
{
    const char *dir = cct_tmpdir();
    char missing[160];
    snprintf(missing, sizeof(missing), "%s/nobody.sock", dir);
    cct_agent_start(&agent, "svc", missing, 4);
    ptth_stream *s;
    ck_assert_int_eq(open_stream(&s, 5000), -ECONNREFUSED);
    ck_assert_msg(strstr(err, "cannot connect to target unix:") != NULL, "%s", err);
    ptth_cc_host_shutdown();
    cct_agent_stop(&agent);
}
END_TEST

START_TEST(no_agent_fails_open_clearly)
{
    cct_tmpdir();
    ptth_stream *s;
    ck_assert_int_eq(open_stream(&s, 5000), -ECONNREFUSED);
    ck_assert_msg(strstr(err, "cannot connect to agent") != NULL && strstr(err, "svc") != NULL, "%s", err);
    ptth_cc_host_shutdown();
}
END_TEST

/* The agent restarts: open tunnels break (read reports the reset), opens
 * while it is down fail, and once it is back new tunnels work over a new
 * channel connection. */
START_TEST(agent_restart)
{
    start(CCT_ECHO, 8);
    ptth_stream *a = must_open();
    ptth_stream *b = must_open();
    echo_check(a, "before");
    cct_agent_stop(&agent);
    char got[8];
    ck_assert_int_eq(read_exact(a, got, 0, 5000), -ECONNRESET);
    ck_assert_int_eq(read_exact(b, got, 0, 5000), -ECONNRESET);
    ck_assert_int_lt(ptth_transport_cc.write(a, "x", 1), 0);
    ptth_transport_cc.close(a);
    ptth_transport_cc.close(b);
    ptth_stream *s;
    ck_assert_int_eq(open_stream(&s, 5000), -ECONNREFUSED);
    ck_assert_msg(strstr(err, "cannot connect to agent") != NULL, "%s", err);
    cct_agent_start(&agent, "svc", backend_path, 8);
    s = must_open();
    echo_check(s, "after");
    ptth_transport_cc.close(s);
    stop();
}
END_TEST

/* An "agent" that accepts the channel and never answers: open gives up
 * after the open timeout, with a reason. */
START_TEST(silent_agent_times_out)
{
    cct_tmpdir();
    ptth_cc_addr addr;
    ck_assert_int_eq(ptth_cc_addr_parse("svc", true, &addr, err, sizeof(err)), 0);
    int lfd;
    ck_assert_int_eq(ptth_cc_carrier_seqpacket.listen(&addr, &lfd, err, sizeof(err)), 0);
    ptth_cc_host_set_open_timeout(300);
    long long t0 = cct_now_ms();
    ptth_stream *s;
    ck_assert_int_eq(open_stream(&s, 5000), -ECONNREFUSED);
    long long took = cct_now_ms() - t0;
    ck_assert_msg(strstr(err, "did not answer") != NULL, "%s", err);
    ck_assert_msg(took >= 250 && took < 3000, "took %lld ms", took);
    ptth_cc_host_shutdown();
    ptth_cc_carrier_seqpacket.unlisten(&addr, lfd);
}
END_TEST

/* Tunnel A's reader stops (its echo backs up all the way: backend, agent
 * buffers, credits, socketpair); its writes then report -EAGAIN instead of
 * buffering without bound, and tunnel B keeps echoing meanwhile. */
START_TEST(slow_tunnel_does_not_stall_others)
{
    start(CCT_ECHO, 8);
    ptth_stream *a = must_open();
    ptth_stream *b = must_open();
    static char chunk[65536];
    memset(chunk, 'a', sizeof(chunk));
    size_t pushed = 0;
    long long quiet_since = 0;
    for (;;) {
        ssize_t n = ptth_transport_cc.write(a, chunk, sizeof(chunk));
        if (n > 0) {
            pushed += (size_t)n;
            quiet_since = 0;
            ck_assert_msg(pushed < (size_t)256 << 20, "256 MiB taken without backpressure");
            continue;
        }
        ck_assert_int_eq(n, -EAGAIN);
        if (quiet_since == 0)
            quiet_since = cct_now_ms();
        else if (cct_now_ms() - quiet_since > 500)
            break; /* A is full and stays full */
        struct pollfd pf = {.fd = a->fd, .events = POLLOUT};
        poll(&pf, 1, 50);
    }
    ck_assert_uint_gt(pushed, 0);
    for (int i = 0; i < 20; i++)
        echo_check(b, "b is not stalled");
    /* A drains once read again */
    static char sink[65536];
    size_t drained = 0;
    while (drained < pushed) {
        ssize_t n = read_exact(a, sink, sizeof(sink) < pushed - drained ? sizeof(sink) : pushed - drained, 10000);
        ck_assert_int_gt(n, 0);
        drained += sizeof(sink) < pushed - drained ? sizeof(sink) : pushed - drained;
    }
    echo_check(a, "a works again");
    ptth_transport_cc.close(a);
    ptth_transport_cc.close(b);
    stop();
}
END_TEST

/* Bulk both ways at once with a checksum, and the MB/s on stderr. */
START_TEST(bulk_echo_throughput)
{
    start(CCT_ECHO, 8);
    ptth_stream *s = must_open();
    const size_t total = (size_t)32 << 20;
    static char out[65536], in[65536];
    uint64_t sum_out = 0, sum_in = 0;
    size_t sent = 0, recvd = 0, out_off = 0, out_len = 0;
    long long t0 = cct_now_ms();
    uint32_t x = 1;
    while (recvd < total) {
        if (out_off == out_len && sent < total) {
            out_len = total - sent < sizeof(out) ? total - sent : sizeof(out);
            out_off = 0;
            for (size_t i = 0; i < out_len; i++) {
                x = x * 1103515245 + 12345;
                out[i] = (char)(x >> 16);
                sum_out = sum_out * 31 + (uint8_t)out[i];
            }
        }
        struct pollfd pf = {.fd = s->fd, .events = POLLIN | (out_off < out_len ? POLLOUT : 0)};
        ck_assert_int_ge(poll(&pf, 1, 10000), 1);
        if (out_off < out_len) {
            ssize_t w = ptth_transport_cc.write(s, out + out_off, out_len - out_off);
            ck_assert(w > 0 || w == -EAGAIN);
            if (w > 0) {
                out_off += (size_t)w;
                sent += (size_t)w;
            }
        }
        ssize_t r = ptth_transport_cc.read(s, in, sizeof(in));
        if (r > 0) {
            for (ssize_t i = 0; i < r; i++)
                sum_in = sum_in * 31 + (uint8_t)in[i];
            recvd += (size_t)r;
        } else {
            ck_assert_int_eq(r, -EAGAIN);
        }
    }
    long long ms = cct_now_ms() - t0;
    ck_assert_uint_eq(recvd, total);
    ck_assert(sum_in == sum_out);
    fprintf(stderr, "# cc echo throughput: %zu MiB each way in %lld ms = %.1f MB/s each way\n", total >> 20, ms,
            ms > 0 ? (double)total / 1e6 / ((double)ms / 1000.0) : 0.0);
    ptth_transport_cc.close(s);
    stop();
}
END_TEST

/* Many tunnels moving bulk data at once, both ways: the channel fills, the
 * channel-level pause starts and stops again and again, and every tunnel
 * must be resumed each time (no tunnel may be left unwatched). */
START_TEST(concurrent_bulk_tunnels)
{
    start(CCT_ECHO, 64);
    enum { N = 20 };
    const size_t size = 512 * 1024;
    ptth_stream *s[N];
    size_t sent[N], recvd[N];
    uint64_t sum_out[N], sum_in[N];
    static char out[N][65536];
    static char in[65536];
    for (int i = 0; i < N; i++) {
        s[i] = must_open();
        sent[i] = recvd[i] = 0;
        sum_out[i] = sum_in[i] = 0;
        for (size_t k = 0; k < sizeof(out[i]); k++)
            out[i][k] = (char)(k * 7 + (size_t)i);
    }
    long long end = cct_now_ms() + 60000;
    int done = 0;
    while (done < N) {
        ck_assert_msg(cct_now_ms() < end, "stalled: %d of %d tunnels done", done, N);
        struct pollfd pf[N];
        for (int i = 0; i < N; i++) {
            pf[i].fd = s[i]->fd;
            pf[i].events = (short)((recvd[i] < size ? POLLIN : 0) | (sent[i] < size ? POLLOUT : 0));
            if (pf[i].events == 0)
                pf[i].fd = -1;
        }
        ck_assert_int_ge(poll(pf, N, 5000), 1);
        for (int i = 0; i < N; i++) {
            if (sent[i] < size && (pf[i].revents & POLLOUT)) {
                size_t off = sent[i] % sizeof(out[i]);
                size_t n = sizeof(out[i]) - off < size - sent[i] ? sizeof(out[i]) - off : size - sent[i];
                ssize_t w = ptth_transport_cc.write(s[i], out[i] + off, n);
                ck_assert(w > 0 || w == -EAGAIN);
                for (ssize_t k = 0; k < w; k++)
                    sum_out[i] = sum_out[i] * 31 + (uint8_t)out[i][off + (size_t)k];
                if (w > 0)
                    sent[i] += (size_t)w;
            }
            if (recvd[i] < size && (pf[i].revents & (POLLIN | POLLHUP | POLLERR))) {
                ssize_t r = ptth_transport_cc.read(s[i], in, sizeof(in));
                ck_assert_msg(r > 0 || r == -EAGAIN, "tunnel %d: read %zd after %zu bytes", i, r, recvd[i]);
                for (ssize_t k = 0; k < r; k++)
                    sum_in[i] = sum_in[i] * 31 + (uint8_t)in[k];
                if (r > 0) {
                    recvd[i] += (size_t)r;
                    if (recvd[i] == size)
                        done++;
                }
            }
        }
    }
    for (int i = 0; i < N; i++) {
        ck_assert_msg(sum_in[i] == sum_out[i], "tunnel %d: checksum differs", i);
        ptth_transport_cc.close(s[i]);
    }
    wait_agent_tunnels(0);
    stop();
}
END_TEST

START_TEST(many_tunnels_at_once)
{
    start(CCT_ECHO, 512);
    enum { N = 100 };
    ptth_stream *s[N];
    for (int i = 0; i < N; i++)
        s[i] = must_open();
    for (int i = 0; i < N; i++) {
        char text[32];
        snprintf(text, sizeof(text), "tunnel %d", i);
        write_all(s[i], text, strlen(text));
    }
    for (int i = 0; i < N; i++) {
        char text[32], got[32];
        snprintf(text, sizeof(text), "tunnel %d", i);
        ck_assert_int_gt(read_exact(s[i], got, strlen(text), 5000), 0);
        ck_assert_mem_eq(got, text, strlen(text));
    }
    ck_assert_uint_eq(ptth_cc_agent_tunnels(agent.agent), N);
    for (int i = 0; i < N; i++)
        ptth_transport_cc.close(s[i]);
    wait_agent_tunnels(0);
    stop();
}
END_TEST

/* vsock to a CID nobody answers on (this machine has no vsock loopback;
 * CID 1 connects time out, and where AF_VSOCK is missing socket() fails):
 * the open fails with a reason, through the carrier's asynchronous connect. */
START_TEST(vsock_unreachable_fails_cleanly)
{
    ptth_target t;
    memset(&t, 0, sizeof(t));
    t.kind = PTTH_TARGET_CC;
    t.cc_carrier = PTTH_CC_VSOCK;
    t.vsock_cid = 1;
    t.vsock_port = 5999;
    snprintf(t.text, sizeof(t.text), "cc:vsock:1:5999");
    ptth_cc_host_set_open_timeout(1000);
    ptth_stream *s = NULL;
    int r = ptth_transport_cc.open(&t, NULL, &s, err, sizeof(err));
    ck_assert_int_eq(r, 0);
    long long end = cct_now_ms() + 10000;
    do {
        struct pollfd p = {.fd = s->fd, .events = POLLIN};
        poll(&p, 1, 100);
        r = ptth_transport_cc.finish_open(s, err, sizeof(err));
    } while (r == -EINPROGRESS && cct_now_ms() < end);
    ck_assert_int_eq(r, -ECONNREFUSED);
    ck_assert_msg(strstr(err, "vsock") != NULL || strstr(err, "did not answer") != NULL, "%s", err);
    ptth_transport_cc.close(s);
    ptth_cc_host_shutdown();
}
END_TEST

START_TEST(bad_target_is_refused_at_open)
{
    ptth_target t;
    memset(&t, 0, sizeof(t));
    t.kind = PTTH_TARGET_TCP;
    snprintf(t.text, sizeof(t.text), "127.0.0.1:1");
    ptth_stream *s = NULL;
    ck_assert_int_eq(ptth_transport_cc.open(&t, NULL, &s, err, sizeof(err)), -EINVAL);
    ck_assert_ptr_null(s);
    ck_assert_ptr_nonnull(strstr(err, "not a cc: target"));
}
END_TEST

Suite *
ptth_test_suite(void)
{
    Suite *s = suite_create("cc_host");
    TCase *tc = tcase_create("host");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, open_echo_close);
    tcase_add_test(tc, half_close_both_ways);
    tcase_add_test(tc, backend_close_is_end_of_stream);
    tcase_add_test(tc, close_after_shutdown_delivers_everything);
    tcase_add_test(tc, backend_reset_breaks_the_stream);
    tcase_add_test(tc, max_clients_refuses_one_over);
    tcase_add_test(tc, unreachable_target_fails_open);
    tcase_add_test(tc, no_agent_fails_open_clearly);
    tcase_add_test(tc, agent_restart);
    tcase_add_test(tc, silent_agent_times_out);
    tcase_add_test(tc, slow_tunnel_does_not_stall_others);
    tcase_add_test(tc, bulk_echo_throughput);
    tcase_add_test(tc, concurrent_bulk_tunnels);
    tcase_add_test(tc, many_tunnels_at_once);
    tcase_add_test(tc, bad_target_is_refused_at_open);
    tcase_add_test(tc, vsock_unreachable_fails_cleanly);
    suite_add_tcase(s, tc);
    return s;
}
