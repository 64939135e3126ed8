/* Unit tests: ptth_cc_agent's side of the protocol, driven by a raw peer
 * that speaks cc_msg over the seqpacket channel: HELLO, open/echo/FIN/CLOSE,
 * the --max-clients limit, credit flow control, and malformed input (garbage,
 * truncated, oversized, out of order, beyond the window), after each of which
 * the agent drops that channel and keeps serving new ones. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cc_testutil.h"
#include "check_main.h"

static uint8_t rbuf[PTTH_CC_MSG_LIMIT];
static char backend_path[128];
static cct_backend backend;
static cct_agent agent;

static void
start(cct_mode mode, uint32_t max_clients)
{
    const char *dir = cct_tmpdir();
    snprintf(backend_path, sizeof(backend_path), "%s/backend.sock", dir);
    cct_backend_start(&backend, backend_path, mode);
    cct_agent_start(&agent, "svc", backend_path, max_clients);
}

static void
wait_tunnels(size_t want)
{
    for (int i = 0; i < 500 && ptth_cc_agent_tunnels(agent.agent) != want; i++)
        usleep(10000);
    ck_assert_uint_eq(ptth_cc_agent_tunnels(agent.agent), want);
}

static void
stop(void)
{
    cct_agent_stop(&agent);
    cct_backend_stop(&backend);
}

/* Connects a raw host, exchanges HELLO; returns the fd. */
static int
raw_host(uint32_t window, ptth_cc_hello *agent_hello)
{
    int fd = cct_raw_connect("svc");
    cct_raw_hello(fd, window);
    ptth_cc_msg m;
    cct_raw_expect(fd, PTTH_CC_HELLO, 0, &m, rbuf, sizeof(rbuf));
    ptth_cc_hello h;
    ck_assert_int_eq(ptth_cc_msg_parse_hello(&m, &h, NULL), 0);
    if (agent_hello != NULL)
        *agent_hello = h;
    return fd;
}

static void
open_ok(int fd, uint32_t id)
{
    ptth_cc_msg m;
    cct_raw_send(fd, PTTH_CC_OPEN, id, "127.0.0.1:1", 11);
    cct_raw_expect(fd, PTTH_CC_OPEN_OK, id, &m, rbuf, sizeof(rbuf));
}

/* Reads DATA for tunnel id until want bytes came; returns the DATA count. */
static int
read_data(int fd, uint32_t id, uint8_t *out, size_t want)
{
    size_t got = 0;
    int msgs = 0;
    while (got < want) {
        ptth_cc_msg m;
        cct_raw_expect(fd, PTTH_CC_DATA, id, &m, rbuf, sizeof(rbuf));
        ck_assert_uint_le(got + m.len, want);
        memcpy(out + got, m.payload, m.len);
        got += m.len;
        msgs++;
    }
    return msgs;
}

START_TEST(hello_announces_limits)
{
    start(CCT_ECHO, 7);
    ptth_cc_hello h;
    int fd = raw_host(8, &h);
    ck_assert_uint_eq(h.version, PTTH_CC_PROTO_VERSION);
    ck_assert_uint_eq(h.max_msg, PTTH_CC_MSG_DEFAULT_MAX);
    ck_assert_uint_eq(h.window, 32);
    ck_assert_uint_eq(h.max_clients, 7);
    close(fd);
    stop();
}
END_TEST

START_TEST(open_echo_fin_close)
{
    start(CCT_ECHO, 8);
    int fd = raw_host(8, NULL);
    open_ok(fd, 5);
    cct_raw_send(fd, PTTH_CC_DATA, 5, "hello", 5);
    uint8_t got[16];
    read_data(fd, 5, got, 5);
    ck_assert_mem_eq(got, "hello", 5);
    /* our FIN: the backend sees EOF, finishes, half-closes: the agent sends
     * FIN and waits for our CLOSE (the host ends a connection) */
    cct_raw_send(fd, PTTH_CC_FIN, 5, NULL, 0);
    ptth_cc_msg m;
    cct_raw_expect(fd, PTTH_CC_FIN, 5, &m, rbuf, sizeof(rbuf));
    ck_assert_int_eq(cct_raw_recv(fd, rbuf, sizeof(rbuf), &m, 200) == -ETIMEDOUT || m.type == PTTH_CC_CREDIT, 1);
    cct_raw_send(fd, PTTH_CC_CLOSE, 5, "done", 4);
    /* the id is free again: the same id opens a new tunnel */
    open_ok(fd, 5);
    cct_raw_send(fd, PTTH_CC_CLOSE, 5, NULL, 0);
    for (int i = 0; i < 200 && cct_backend_accepted(&backend) < 2; i++)
        usleep(10000);
    ck_assert_int_eq(cct_backend_accepted(&backend), 2);
    close(fd);
    stop();
}
END_TEST

START_TEST(backend_eof_sends_fin_and_keeps_the_tunnel)
{
    start(CCT_GREET, 1);
    int fd = raw_host(8, NULL);
    open_ok(fd, 1);
    uint8_t got[4];
    read_data(fd, 1, got, 4);
    ck_assert_mem_eq(got, "bye\n", 4);
    ptth_cc_msg m;
    cct_raw_expect(fd, PTTH_CC_FIN, 1, &m, rbuf, sizeof(rbuf));
    /* the slot stays taken until our CLOSE: with --max-clients 1 another
     * open is refused now ... */
    cct_raw_send(fd, PTTH_CC_OPEN, 2, NULL, 0);
    cct_raw_expect(fd, PTTH_CC_OPEN_FAIL, 2, &m, rbuf, sizeof(rbuf));
    /* ... and accepted after it */
    cct_raw_send(fd, PTTH_CC_CLOSE, 1, NULL, 0);
    open_ok(fd, 3);
    close(fd);
    stop();
}
END_TEST

START_TEST(max_clients_refuses_one_over_and_others_keep_working)
{
    start(CCT_ECHO, 3);
    int fd = raw_host(8, NULL);
    for (uint32_t id = 1; id <= 3; id++)
        open_ok(fd, id);
    ptth_cc_msg m;
    cct_raw_send(fd, PTTH_CC_OPEN, 4, NULL, 0);
    cct_raw_expect(fd, PTTH_CC_OPEN_FAIL, 4, &m, rbuf, sizeof(rbuf));
    char reason[300];
    snprintf(reason, sizeof(reason), "%.*s", (int)m.len, (const char *)m.payload);
    ck_assert_msg(strstr(reason, "--max-clients 3") != NULL, "reason: %s", reason);
    for (uint32_t id = 1; id <= 3; id++) {
        char text[16];
        int n = snprintf(text, sizeof(text), "tunnel %u", id);
        cct_raw_send(fd, PTTH_CC_DATA, id, text, (size_t)n);
        uint8_t got[16];
        read_data(fd, id, got, (size_t)n);
        ck_assert_mem_eq(got, text, (size_t)n);
    }
    ck_assert_uint_eq(ptth_cc_agent_tunnels(agent.agent), 3);
    close(fd);
    stop();
}
END_TEST

START_TEST(unreachable_target_gets_open_fail)
{
    const char *dir = cct_tmpdir();
    char missing[160];
    snprintf(missing, sizeof(missing), "%s/nobody.sock", dir);
    cct_agent_start(&agent, "svc", missing, 4);
    int fd = raw_host(8, NULL);
    ptth_cc_msg m;
    cct_raw_send(fd, PTTH_CC_OPEN, 9, NULL, 0);
    cct_raw_expect(fd, PTTH_CC_OPEN_FAIL, 9, &m, rbuf, sizeof(rbuf));
    char reason[300];
    snprintf(reason, sizeof(reason), "%.*s", (int)m.len, (const char *)m.payload);
    ck_assert_msg(strstr(reason, "cannot connect to target unix:") != NULL && strstr(reason, "nobody.sock") != NULL, "reason: %s",
                  reason);
    ck_assert_uint_eq(ptth_cc_agent_tunnels(agent.agent), 0);
    close(fd);
    cct_agent_stop(&agent);
}
END_TEST

/* Counts DATA messages until max came or none came for quiet_ms. */
static int
count_data(int fd, int max, int quiet_ms)
{
    int msgs = 0;
    ptth_cc_msg m;
    while (msgs < max) {
        ssize_t r = cct_raw_recv(fd, rbuf, sizeof(rbuf), &m, quiet_ms);
        if (r == -ETIMEDOUT)
            break;
        ck_assert_int_gt(r, 0);
        if (m.type == PTTH_CC_DATA)
            msgs++;
    }
    return msgs;
}

/* The agent never has more than our window of DATA messages outstanding on
 * a tunnel: with no CREDIT from us it stops, and resumes on CREDIT. */
START_TEST(agent_respects_our_window)
{
    start(CCT_ECHO, 4);
    int fd = raw_host(4, NULL);
    open_ok(fd, 1);
    /* 40 KiB through the echo: about 10+ DATA messages back */
    static uint8_t data[40960];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 31);
    size_t off = 0;
    uint32_t credit = 32; /* the agent's window */
    while (off < sizeof(data)) {
        size_t n = sizeof(data) - off < 4000 ? sizeof(data) - off : 4000;
        ck_assert_uint_gt(credit, 0);
        cct_raw_send(fd, PTTH_CC_DATA, 1, data + off, n);
        credit--;
        off += n;
    }
    /* exactly our window of 4 DATA messages, then nothing */
    ck_assert_int_eq(count_data(fd, 4, 5000), 4);
    ck_assert_int_eq(count_data(fd, 100, 500), 0);
    /* credit 2: exactly two more (there is more than enough echoed data) */
    uint8_t cbuf[16];
    cct_raw_send_bytes(fd, cbuf, ptth_cc_msg_encode_credit(cbuf, 1, 2));
    ck_assert_int_eq(count_data(fd, 2, 5000), 2);
    ck_assert_int_eq(count_data(fd, 100, 500), 0);
    close(fd);
    stop();
}
END_TEST

/* A well-behaved sender stalls once the backend stops reading (no more
 * CREDIT comes back): the agent then holds a whole window of our DATA. One
 * DATA more breaks the protocol and the agent drops the channel, while a new
 * channel is served. */
START_TEST(data_beyond_window_drops_the_channel)
{
    start(CCT_SINK, 4);
    ptth_cc_hello h;
    int fd = raw_host(8, &h);
    open_ok(fd, 1);
    uint8_t data[4000];
    memset(data, 'x', sizeof(data));
    uint32_t credit = h.window;
    int sent = 0;
    for (;;) {
        while (credit > 0) {
            cct_raw_send(fd, PTTH_CC_DATA, 1, data, sizeof(data));
            credit--;
            sent++;
        }
        ptth_cc_msg m;
        ssize_t r = cct_raw_recv(fd, rbuf, sizeof(rbuf), &m, 1000);
        if (r == -ETIMEDOUT)
            break;
        ck_assert_int_gt(r, 0);
        if (m.type == PTTH_CC_CREDIT)
            credit += ptth_cc_msg_credit_count(&m);
        ck_assert_int_lt(sent, 100000);
    }
    ck_assert_uint_eq(credit, 0);
    ck_assert_int_ge(sent, (int)h.window);
    cct_raw_send(fd, PTTH_CC_DATA, 1, data, sizeof(data));
    ck_assert(cct_raw_closed(fd, 5000));
    close(fd);
    fd = raw_host(8, NULL);
    open_ok(fd, 1);
    close(fd);
    stop();
}
END_TEST

static void
expect_dropped(const void *bytes, size_t len, bool hello_first)
{
    int fd = cct_raw_connect("svc");
    if (hello_first) {
        cct_raw_hello(fd, 8);
    }
    cct_raw_send_bytes(fd, bytes, len);
    ck_assert(cct_raw_closed(fd, 5000));
    close(fd);
}

START_TEST(malformed_input_drops_only_that_channel)
{
    start(CCT_ECHO, 4);
    /* a healthy channel with an open tunnel, which must survive */
    int good = raw_host(8, NULL);
    open_ok(good, 1);

    static const uint8_t garbage[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    expect_dropped(garbage, sizeof(garbage), false);
    expect_dropped(garbage, sizeof(garbage), true);
    uint8_t m[PTTH_CC_MSG_LIMIT];
    /* truncated: the header says 100 bytes, 10 follow */
    ptth_cc_msg_put_header(m, PTTH_CC_DATA, 1, 100);
    expect_dropped(m, 18, true);
    /* shorter than a header */
    expect_dropped("\x05\x00", 2, true);
    /* oversized: one byte over the agent's 4096 */
    memset(m, 'z', sizeof(m));
    ptth_cc_msg_put_header(m, PTTH_CC_DATA, 1, 4089);
    expect_dropped(m, 4097, true);
    /* a DATA before HELLO */
    ptth_cc_msg_put_header(m, PTTH_CC_DATA, 1, 1);
    expect_dropped(m, 9, false);
    /* messages only the agent may send */
    ptth_cc_msg_put_header(m, PTTH_CC_OPEN_OK, 1, 0);
    expect_dropped(m, 8, true);
    /* a second HELLO */
    ptth_cc_hello h = {.version = 1, .max_msg = 4096, .window = 8};
    size_t n = ptth_cc_msg_encode_hello(m, &h);
    expect_dropped(m, n, true);
    /* an unknown protocol version */
    h.version = 2;
    n = ptth_cc_msg_encode_hello(m, &h);
    expect_dropped(m, n, false);
    /* DATA on a tunnel that is not open yet is refused too */
    {
        int fd = raw_host(8, NULL);
        cct_raw_send(fd, PTTH_CC_OPEN, 3, NULL, 0);
        ptth_cc_msg mm;
        cct_raw_expect(fd, PTTH_CC_OPEN_OK, 3, &mm, rbuf, sizeof(rbuf));
        cct_raw_send(fd, PTTH_CC_OPEN, 3, NULL, 0); /* duplicate id */
        ck_assert(cct_raw_closed(fd, 5000));
        close(fd);
    }
    /* CREDIT beyond the window we announced */
    {
        int fd = raw_host(8, NULL);
        open_ok(fd, 1);
        uint8_t cb[16];
        cct_raw_send_bytes(fd, cb, ptth_cc_msg_encode_credit(cb, 1, 1));
        ck_assert(cct_raw_closed(fd, 5000));
        close(fd);
    }
    /* messages for unknown tunnels are ignored (they may cross a CLOSE) */
    {
        int fd = raw_host(8, NULL);
        cct_raw_send(fd, PTTH_CC_DATA, 77, "x", 1);
        cct_raw_send(fd, PTTH_CC_CLOSE, 78, NULL, 0);
        ck_assert(!cct_raw_closed(fd, 300));
        close(fd);
    }

    /* the healthy channel's tunnel still echoes */
    cct_raw_send(good, PTTH_CC_DATA, 1, "still here", 10);
    uint8_t got[16];
    read_data(good, 1, got, 10);
    ck_assert_mem_eq(got, "still here", 10);
    close(good);
    stop();
}
END_TEST

/* When the host's channel goes away (ptth_server restarted), the agent
 * closes that channel's tunnels and takes a new channel. */
START_TEST(channel_loss_frees_tunnels_and_a_new_channel_works)
{
    start(CCT_ECHO, 2);
    int fd = raw_host(8, NULL);
    open_ok(fd, 1);
    open_ok(fd, 2);
    close(fd);
    fd = raw_host(8, NULL);
    /* both slots were freed: two tunnels open again */
    open_ok(fd, 1);
    open_ok(fd, 2);
    cct_raw_send(fd, PTTH_CC_DATA, 2, "again", 5);
    uint8_t got[8];
    read_data(fd, 2, got, 5);
    ck_assert_mem_eq(got, "again", 5);
    close(fd);
    stop();
}
END_TEST

/* The host sends FIN then CLOSE while the agent still holds DATA that the
 * backend has not read yet: the agent delivers it all before it shuts the
 * backend down (graceful close, like close() of a TCP socket). */
START_TEST(close_after_fin_delivers_held_data)
{
    start(CCT_SLOW_COUNT, 4);
    ptth_cc_hello h;
    int fd = raw_host(8, &h);
    open_ok(fd, 1);
    uint8_t data[4000];
    memset(data, 'd', sizeof(data));
    uint32_t credit = h.window;
    size_t sent = 0;
    /* send while credit lasts; stop once the backend (asleep) holds things up */
    for (;;) {
        while (credit > 0) {
            cct_raw_send(fd, PTTH_CC_DATA, 1, data, sizeof(data));
            credit--;
            sent += sizeof(data);
        }
        ptth_cc_msg m;
        ssize_t r = cct_raw_recv(fd, rbuf, sizeof(rbuf), &m, 200);
        if (r == -ETIMEDOUT)
            break;
        ck_assert_int_gt(r, 0);
        if (m.type == PTTH_CC_CREDIT)
            credit += ptth_cc_msg_credit_count(&m);
        ck_assert_uint_lt(sent, (size_t)64 << 20);
    }
    ck_assert_uint_eq(credit, 0); /* the agent holds a whole window */
    cct_raw_send(fd, PTTH_CC_FIN, 1, NULL, 0);
    cct_raw_send(fd, PTTH_CC_CLOSE, 1, NULL, 0);
    ck_assert_uint_eq(cct_backend_wait_counted(&backend, 1, 10000), sent);
    wait_tunnels(0);
    close(fd);
    stop();
}
END_TEST

static long long
cpu_ms(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000LL + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000;
}

/* Out of file descriptors, the agent cannot accept a channel: it pauses the
 * listener (no busy loop) and accepts once descriptors are free again. */
START_TEST(accept_without_fds_pauses_then_recovers)
{
    start(CCT_ECHO, 4);
    ptth_cc_addr addr;
    char err[256];
    ck_assert_int_eq(ptth_cc_addr_parse("svc", false, &addr, err, sizeof(err)), 0);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct rlimit old;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
    /* take every free descriptor below a low limit */
    struct rlimit low = {.rlim_cur = (rlim_t)fd + 64, .rlim_max = old.rlim_max};
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    int fillers[128], nf = 0;
    for (;;) {
        int d = dup(fd);
        if (d < 0)
            break;
        ck_assert_int_lt(nf, 128);
        fillers[nf++] = d;
    }
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", addr.path);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    cct_raw_hello(fd, 8);
    long long cpu0 = cpu_ms();
    usleep(300000);
    long long spent = cpu_ms() - cpu0;
    ck_assert_msg(spent < 150, "the agent spun: %lld ms of CPU in 300 ms", spent);
    for (int i = 0; i < nf; i++)
        close(fillers[i]);
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
    ptth_cc_msg m;
    cct_raw_expect(fd, PTTH_CC_HELLO, 0, &m, rbuf, sizeof(rbuf));
    open_ok(fd, 1);
    close(fd);
    stop();
}
END_TEST

START_TEST(backend_reset_sends_abort)
{
    start(CCT_RESET, 2);
    int fd = raw_host(8, NULL);
    open_ok(fd, 1);
    cct_raw_send(fd, PTTH_CC_DATA, 1, "x", 1);
    ptth_cc_msg m;
    for (;;) {
        ssize_t n = cct_raw_recv(fd, rbuf, sizeof(rbuf), &m, 5000);
        ck_assert_int_gt(n, 0);
        if (m.type == PTTH_CC_ABORT || m.type == PTTH_CC_FIN)
            break;
    }
    /* a reset is an ABORT with the reason; some kernels report the close
     * as end of stream first, which is a FIN */
    if (m.type == PTTH_CC_ABORT) {
        char reason[300];
        snprintf(reason, sizeof(reason), "%.*s", (int)m.len, (const char *)m.payload);
        ck_assert_msg(strstr(reason, "target") != NULL, "%s", reason);
    }
    ck_assert_uint_eq(ptth_cc_agent_tunnels(agent.agent), 1);
    cct_raw_send(fd, PTTH_CC_CLOSE, 1, NULL, 0);
    close(fd);
    stop();
}
END_TEST

Suite *
ptth_test_suite(void)
{
    Suite *s = suite_create("cc_agent");
    TCase *tc = tcase_create("agent");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, hello_announces_limits);
    tcase_add_test(tc, open_echo_fin_close);
    tcase_add_test(tc, backend_eof_sends_fin_and_keeps_the_tunnel);
    tcase_add_test(tc, max_clients_refuses_one_over_and_others_keep_working);
    tcase_add_test(tc, unreachable_target_gets_open_fail);
    tcase_add_test(tc, agent_respects_our_window);
    tcase_add_test(tc, data_beyond_window_drops_the_channel);
    tcase_add_test(tc, malformed_input_drops_only_that_channel);
    tcase_add_test(tc, channel_loss_frees_tunnels_and_a_new_channel_works);
    tcase_add_test(tc, close_after_fin_delivers_held_data);
    tcase_add_test(tc, backend_reset_sends_abort);
    tcase_add_test(tc, accept_without_fds_pauses_then_recovers);
    suite_add_tcase(s, tc);
    return s;
}
