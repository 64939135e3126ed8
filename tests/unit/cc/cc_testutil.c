/* cc_testutil.c: see cc_testutil.h. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cc_carrier.h"
#include "cc_testutil.h"
#include "check_main.h"
#include "log.h"

long long
cct_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *
cct_tmpdir(void)
{
    static char dir[64];
    static char ccdir[96];
    snprintf(dir, sizeof(dir), "/tmp/ptth-cc-test-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(ccdir, sizeof(ccdir), "%s/cc", dir);
    setenv("PTTH_CC_DIR", ccdir, 1);
    ptth_log_init("cc_test", getenv("PTTH_TEST_DEBUG") != NULL ? PTTH_LOG_DEBUG : PTTH_LOG_WARN);
    return dir;
}

/* ---- backend ------------------------------------------------------------ */

typedef struct conn_arg {
    cct_backend *b;
    int fd;
    int slot;
} conn_arg;

static void *
conn_main(void *arg)
{
    conn_arg *ca = arg;
    cct_backend *b = ca->b;
    int fd = ca->fd;
    int slot = ca->slot;
    free(ca);
    char buf[65536];
    switch (b->mode) {
    case CCT_ECHO:
        for (;;) {
            ssize_t n = read(fd, buf, sizeof(buf));
            if (n <= 0)
                break;
            for (ssize_t off = 0; off < n;) {
                ssize_t w = send(fd, buf + off, (size_t)(n - off), MSG_NOSIGNAL);
                if (w <= 0)
                    goto done;
                off += w;
            }
        }
        shutdown(fd, SHUT_WR);
        /* wait for the peer's close so that nothing is reset */
        while (read(fd, buf, sizeof(buf)) > 0) {
        }
        break;
    case CCT_SINK: {
        struct pollfd p = {.fd = b->stop_pipe[0], .events = POLLIN};
        poll(&p, 1, 30000);
        break;
    }
    case CCT_RESET: {
        ssize_t n = read(fd, buf, sizeof(buf));
        (void)n;
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        break;
    }
    case CCT_COUNT:
    case CCT_SLOW_COUNT: {
        size_t total = 0;
        if (send(fd, "hi\n", 3, MSG_NOSIGNAL) == 3 && shutdown(fd, SHUT_WR) == 0) {
            if (b->mode == CCT_SLOW_COUNT)
                usleep(700000);
            ssize_t n;
            while ((n = read(fd, buf, sizeof(buf))) > 0)
                total += (size_t)n;
            if (n == 0) {
                pthread_mutex_lock(&b->lock);
                b->counted += total;
                b->count_done++;
                pthread_mutex_unlock(&b->lock);
            }
        }
        break;
    }
    case CCT_GREET: {
        ssize_t n = send(fd, "bye\n", 4, MSG_NOSIGNAL);
        (void)n;
        break;
    }
    }
done:
    /* the thread owns fd; stop() only shuts down the ones still open */
    pthread_mutex_lock(&b->lock);
    b->conn_fds[slot] = -1;
    close(fd);
    pthread_mutex_unlock(&b->lock);
    return NULL;
}

static void *
accept_main(void *arg)
{
    cct_backend *b = arg;
    for (;;) {
        struct pollfd p[2] = {{.fd = b->lfd, .events = POLLIN}, {.fd = b->stop_pipe[0], .events = POLLIN}};
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            break;
        if (p[1].revents)
            break;
        if (!(p[0].revents & POLLIN))
            continue;
        int fd = accept4(b->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        pthread_mutex_lock(&b->lock);
        b->accepted++;
        if (b->nconns >= CCT_MAX_CONNS) {
            pthread_mutex_unlock(&b->lock);
            close(fd);
            continue;
        }
        conn_arg *ca = malloc(sizeof(*ca));
        ck_assert_ptr_nonnull(ca);
        ca->b = b;
        ca->fd = fd;
        ca->slot = b->nconns;
        b->conn_fds[b->nconns] = fd;
        ck_assert_int_eq(pthread_create(&b->conn_threads[b->nconns], NULL, conn_main, ca), 0);
        b->nconns++;
        pthread_mutex_unlock(&b->lock);
    }
    return NULL;
}

void
cct_backend_start(cct_backend *b, const char *path, cct_mode mode)
{
    memset(b, 0, sizeof(*b));
    snprintf(b->path, sizeof(b->path), "%s", path);
    b->mode = mode;
    pthread_mutex_init(&b->lock, NULL);
    ck_assert_int_eq(pipe2(b->stop_pipe, O_CLOEXEC), 0);
    b->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(b->lfd, 0);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
    unlink(path);
    ck_assert_int_eq(bind(b->lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    ck_assert_int_eq(listen(b->lfd, 512), 0);
    ck_assert_int_eq(pthread_create(&b->thread, NULL, accept_main, b), 0);
}

int
cct_backend_accepted(cct_backend *b)
{
    pthread_mutex_lock(&b->lock);
    int n = b->accepted;
    pthread_mutex_unlock(&b->lock);
    return n;
}

size_t
cct_backend_wait_counted(cct_backend *b, int n, int timeout_ms)
{
    long long end = cct_now_ms() + timeout_ms;
    for (;;) {
        pthread_mutex_lock(&b->lock);
        int done = b->count_done;
        size_t counted = b->counted;
        pthread_mutex_unlock(&b->lock);
        if (done >= n || cct_now_ms() > end)
            return counted;
        usleep(10000);
    }
}

void
cct_backend_stop(cct_backend *b)
{
    ssize_t n = write(b->stop_pipe[1], "x", 1);
    (void)n;
    pthread_join(b->thread, NULL);
    close(b->lfd);
    unlink(b->path);
    pthread_mutex_lock(&b->lock);
    for (int i = 0; i < b->nconns; i++)
        if (b->conn_fds[i] >= 0)
            shutdown(b->conn_fds[i], SHUT_RDWR);
    pthread_mutex_unlock(&b->lock);
    for (int i = 0; i < b->nconns; i++)
        pthread_join(b->conn_threads[i], NULL);
    close(b->stop_pipe[0]);
    close(b->stop_pipe[1]);
    pthread_mutex_destroy(&b->lock);
}

/* ---- agent -------------------------------------------------------------- */

static void *
agent_main(void *arg)
{
    cct_agent *ta = arg;
    ta->rc = ptth_cc_agent_run(ta->agent, ta->stop_fd);
    return NULL;
}

void
cct_agent_start(cct_agent *ta, const char *service, const char *target_path, uint32_t max_clients)
{
    char err[512];
    char target[160];
    memset(ta, 0, sizeof(*ta));
    ptth_cc_agent_config cfg;
    ptth_cc_agent_config_init(&cfg);
    cfg.max_clients = max_clients;
    ck_assert_int_eq(ptth_cc_addr_parse(service, true, &cfg.addr, err, sizeof(err)), 0);
    snprintf(target, sizeof(target), "unix:%s", target_path);
    ck_assert_int_eq(ptth_cc_agent_parse_target(target, &cfg, err, sizeof(err)), 0);
    ta->agent = ptth_cc_agent_new(&cfg, err, sizeof(err));
    ck_assert_msg(ta->agent != NULL, "agent: %s", err);
    ta->stop_fd = eventfd(0, EFD_CLOEXEC);
    ck_assert_int_ge(ta->stop_fd, 0);
    ck_assert_int_eq(pthread_create(&ta->thread, NULL, agent_main, ta), 0);
    ta->running = true;
}

void
cct_agent_stop(cct_agent *ta)
{
    if (!ta->running)
        return;
    uint64_t one = 1;
    ck_assert_int_eq(write(ta->stop_fd, &one, sizeof(one)), sizeof(one));
    pthread_join(ta->thread, NULL);
    ck_assert_int_eq(ta->rc, 0);
    ptth_cc_agent_free(ta->agent);
    close(ta->stop_fd);
    ta->running = false;
}

/* ---- raw peer ----------------------------------------------------------- */

int
cct_raw_connect(const char *service)
{
    ptth_cc_addr addr;
    char err[256];
    ck_assert_int_eq(ptth_cc_addr_parse(service, false, &addr, err, sizeof(err)), 0);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", addr.path);
    ck_assert_msg(connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0, "connect %s: %s", addr.path, strerror(errno));
    return fd;
}

void
cct_raw_send_bytes(int fd, const void *msg, size_t len)
{
    ck_assert_int_eq(send(fd, msg, len, MSG_NOSIGNAL), (ssize_t)len);
}

void
cct_raw_send(int fd, uint8_t type, uint32_t tunnel, const void *payload, size_t len)
{
    uint8_t buf[PTTH_CC_MSG_LIMIT];
    ssize_t n = ptth_cc_msg_encode(buf, sizeof(buf), type, tunnel, payload, len);
    ck_assert_int_gt(n, 0);
    cct_raw_send_bytes(fd, buf, (size_t)n);
}

void
cct_raw_hello(int fd, uint32_t window)
{
    uint8_t buf[64];
    ptth_cc_hello h = {.version = PTTH_CC_PROTO_VERSION, .max_msg = PTTH_CC_MSG_DEFAULT_MAX, .window = window};
    cct_raw_send_bytes(fd, buf, ptth_cc_msg_encode_hello(buf, &h));
}

ssize_t
cct_raw_recv(int fd, uint8_t *buf, size_t cap, ptth_cc_msg *msg, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = poll(&p, 1, timeout_ms);
    ck_assert_int_ge(r, 0);
    if (r == 0)
        return -ETIMEDOUT;
    ssize_t n = recv(fd, buf, cap, 0);
    if (n < 0 && errno == ECONNRESET)
        return 0;
    ck_assert_int_ge(n, 0);
    if (n == 0)
        return 0;
    const char *why = NULL;
    ck_assert_msg(ptth_cc_msg_decode(buf, (size_t)n, cap, msg, &why) == 0, "agent sent a bad message: %s", why);
    return n;
}

void
cct_raw_expect(int fd, uint8_t type, uint32_t tunnel, ptth_cc_msg *msg, uint8_t *buf, size_t cap)
{
    for (;;) {
        ssize_t n = cct_raw_recv(fd, buf, cap, msg, 5000);
        ck_assert_msg(n > 0, "waiting for %s on tunnel %u: %s", ptth_cc_msg_type_name(type), tunnel,
                      n == 0 ? "channel closed" : "timeout");
        if (msg->type == PTTH_CC_CREDIT && type != PTTH_CC_CREDIT)
            continue;
        ck_assert_msg(msg->type == type && msg->tunnel == tunnel, "expected %s on tunnel %u, got %s on tunnel %u",
                      ptth_cc_msg_type_name(type), tunnel, ptth_cc_msg_type_name(msg->type), msg->tunnel);
        return;
    }
}

bool
cct_raw_closed(int fd, int timeout_ms)
{
    long long end = cct_now_ms() + timeout_ms;
    uint8_t buf[PTTH_CC_MSG_LIMIT];
    for (;;) {
        long long left = end - cct_now_ms();
        if (left <= 0)
            return false;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)left) <= 0)
            return false;
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            return true;
    }
}

/* ---- blocking helpers ---------------------------------------------------- */

void
cct_write_all(int fd, const void *buf, size_t len, int timeout_ms)
{
    const uint8_t *p = buf;
    long long end = cct_now_ms() + timeout_ms;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        ck_assert_msg(n < 0 && (errno == EAGAIN || errno == EINTR), "write: %s", strerror(errno));
        long long left = end - cct_now_ms();
        ck_assert_msg(left > 0, "write timed out with %zu bytes left", len);
        struct pollfd pf = {.fd = fd, .events = POLLOUT};
        poll(&pf, 1, (int)left);
    }
}

void
cct_read_exact(int fd, void *buf, size_t len, int timeout_ms)
{
    uint8_t *p = buf;
    long long end = cct_now_ms() + timeout_ms;
    while (len > 0) {
        ssize_t n = recv(fd, p, len, MSG_DONTWAIT);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        ck_assert_msg(n != 0, "end of stream with %zu bytes missing", len);
        ck_assert_msg(errno == EAGAIN || errno == EINTR, "read: %s", strerror(errno));
        long long left = end - cct_now_ms();
        ck_assert_msg(left > 0, "read timed out with %zu bytes missing", len);
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        poll(&pf, 1, (int)left);
    }
}
