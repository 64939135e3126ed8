/* Unit tests: the NVMe transport end to end against the real ptth_csd_emu
 * (emulator carrier): echo, bulk data with a checksum, half-close both ways,
 * concurrent streams, the errors of a bad DEVICE, a refused backend, the
 * emulator killed and restarted, and throughput through one stream. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check_main.h"
#include "target.h"
#include "transport.h"

static char dir[64];
static char sock_path[128];
static pid_t emu_pid = -1;
static char err[1024];

static long long
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
start_emulator(void)
{
    const char *build = getenv("PTTH_BUILD_DIR");
    char prog[512];
    snprintf(prog, sizeof(prog), "%s/transports/ptth_csd_emu", build ? build : "build");
    emu_pid = fork();
    ck_assert_int_ge(emu_pid, 0);
    if (emu_pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        if (getenv("PTTH_TEST_VERBOSE") == NULL)
            dup2(devnull, 2);
        execl(prog, prog, "--socket", sock_path, "--log-level", "warn", (char *)NULL);
        _exit(127);
    }
    /* ready when the socket accepts a connection */
    for (int i = 0; i < 500; i++) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        memcpy(sun.sun_path, sock_path, strlen(sock_path) + 1);
        int rc = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
        close(fd);
        if (rc == 0)
            return;
        int status;
        ck_assert_msg(waitpid(emu_pid, &status, WNOHANG) == 0, "ptth_csd_emu (%s) exited at start", prog);
        usleep(10 * 1000);
    }
    ck_abort_msg("ptth_csd_emu did not come up on %s", sock_path);
}

/* SIGTERM and a clean exit 0 (a sanitizer report would make it non-zero). */
static void
stop_emulator(void)
{
    if (emu_pid <= 0)
        return;
    kill(emu_pid, SIGTERM);
    int status = 0;
    ck_assert_int_eq(waitpid(emu_pid, &status, 0), emu_pid);
    emu_pid = -1;
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "ptth_csd_emu exit status %d", status);
}

static void
setup(void)
{
    signal(SIGPIPE, SIG_IGN);
    snprintf(dir, sizeof(dir), "/tmp/ptth-nvme-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(sock_path, sizeof(sock_path), "%s/csd.sock", dir);
    start_emulator();
}

static void
teardown(void)
{
    ptth_transports_cleanup();
    stop_emulator();
    unlink(sock_path);
    rmdir(dir);
}

/* ---- backends -------------------------------------------------------- */

enum backend_mode { ECHO, SAY_BYE_THEN_READ, SEND_BULK, SINK };

typedef struct backend {
    int lfd;
    int port;
    enum backend_mode mode;
    size_t bulk;
    atomic_int accepted;
    atomic_int eofs;            /* connections that saw our end of stream */
    atomic_ullong bytes_in;     /* received from the stream */
    unsigned char last_got[16]; /* SAY_BYE_THEN_READ: what came after the bye */
    pthread_t th;
} backend;

typedef struct bconn {
    backend *b;
    int fd;
} bconn;

static void *
serve_conn(void *arg)
{
    bconn *c = arg;
    backend *b = c->b;
    static char buf[65536];
    char local[65536];
    (void)buf;
    if (b->mode == SAY_BYE_THEN_READ) {
        send(c->fd, "bye", 3, MSG_NOSIGNAL);
        shutdown(c->fd, SHUT_WR);
        size_t off = 0;
        ssize_t n;
        while ((n = recv(c->fd, local, sizeof(local), 0)) > 0) {
            size_t k = (size_t)n < sizeof(b->last_got) - 1 - off ? (size_t)n : sizeof(b->last_got) - 1 - off;
            memcpy(b->last_got + off, local, k);
            off += k;
        }
        if (n == 0)
            atomic_fetch_add(&b->eofs, 1);
    } else if (b->mode == SEND_BULK) {
        memset(local, 'd', sizeof(local));
        size_t left = b->bulk;
        while (left > 0) {
            ssize_t n = send(c->fd, local, left < sizeof(local) ? left : sizeof(local), MSG_NOSIGNAL);
            if (n <= 0)
                break;
            left -= (size_t)n;
        }
        shutdown(c->fd, SHUT_WR);
        while (recv(c->fd, local, sizeof(local), 0) > 0)
            ;
    } else {
        ssize_t n;
        while ((n = recv(c->fd, local, sizeof(local), 0)) > 0) {
            atomic_fetch_add(&b->bytes_in, (unsigned long long)n);
            if (b->mode == ECHO && send(c->fd, local, (size_t)n, MSG_NOSIGNAL) != n)
                break;
        }
        if (n == 0)
            atomic_fetch_add(&b->eofs, 1);
        shutdown(c->fd, SHUT_WR);
    }
    close(c->fd);
    free(c);
    return NULL;
}

static void *
accept_loop(void *arg)
{
    backend *b = arg;
    for (;;) {
        int fd = accept(b->lfd, NULL, NULL);
        if (fd < 0)
            return NULL;
        atomic_fetch_add(&b->accepted, 1);
        bconn *c = malloc(sizeof(*c));
        c->b = b;
        c->fd = fd;
        pthread_t th;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_create(&th, &attr, serve_conn, c);
        pthread_attr_destroy(&attr);
    }
}

static backend *
backend_start(enum backend_mode mode)
{
    backend *b = calloc(1, sizeof(*b));
    b->mode = mode;
    b->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(b->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(listen(b->lfd, 64), 0);
    socklen_t len = sizeof(a);
    getsockname(b->lfd, (struct sockaddr *)&a, &len);
    b->port = ntohs(a.sin_port);
    pthread_create(&b->th, NULL, accept_loop, b);
    return b;
}

/* The backend's threads are left to the process's exit (fork mode: one
 * process per test). */
static void
wait_value(atomic_int *v, int want, int ms)
{
    long long end = now_ms() + ms;
    while (atomic_load(v) < want && now_ms() < end)
        usleep(10 * 1000);
    ck_assert_int_ge(atomic_load(v), want);
}

/* ---- stream helpers ---------------------------------------------------- */

static short
poll_events(uint32_t ev)
{
    return (short)((ev & EPOLLIN ? POLLIN : 0) | (ev & EPOLLOUT ? POLLOUT : 0));
}

static int
open_stream(const char *text, ptth_stream **out)
{
    ptth_target t;
    int rc = ptth_target_parse(text, &t, err, sizeof(err));
    ck_assert_msg(rc == 0, "%s", err);
    rc = ptth_transport_open(&t, NULL, out, err, sizeof(err));
    if (rc != 0)
        return rc;
    ptth_stream *s = *out;
    long long end = now_ms() + 15000;
    for (;;) {
        struct pollfd p = {.fd = s->fd, .events = poll_events(s->open_events)};
        ck_assert_int_ne(p.events, 0);
        int n = poll(&p, 1, 1000);
        ck_assert_int_ge(n, 0);
        rc = ptth_stream_finish_open(s, err, sizeof(err));
        if (rc != -EINPROGRESS)
            break;
        ck_assert_msg(now_ms() < end, "open %s did not finish", text);
    }
    if (rc != 0) {
        ptth_stream_close(s);
        *out = NULL;
    }
    return rc;
}

static ptth_stream *
open_ok(int port)
{
    char text[256];
    snprintf(text, sizeof(text), "nvme:%s:%d", sock_path, port);
    ptth_stream *s = NULL;
    int rc = open_stream(text, &s);
    ck_assert_msg(rc == 0, "open %s: %d %s", text, rc, err);
    ck_assert_str_eq(s->transport->name, "nvme");
    return s;
}

typedef struct xfer {
    ptth_stream *s;
    const unsigned char *send;
    size_t send_len, sent;
    int shut_after_send;
    int shut_done;
    unsigned char *recv;
    size_t recv_cap, got;
    int eof;
    ssize_t error; /* a negative read result */
    unsigned long long hash;
} xfer;

static void
xfer_init(xfer *x, ptth_stream *s, const void *send_buf, size_t send_len, int shut, unsigned char *recv_buf, size_t cap)
{
    memset(x, 0, sizeof(*x));
    x->s = s;
    x->send = send_buf;
    x->send_len = send_len;
    x->shut_after_send = shut;
    x->recv = recv_buf;
    x->recv_cap = cap;
    x->hash = 1469598103934665603ULL;
}

/* Moves bytes for every xfer until each one has received want[i] bytes (or
 * reached end of stream / an error), within ms. */
static void
pump(xfer *xs, size_t n, const size_t *want, int ms)
{
    long long end = now_ms() + ms;
    static unsigned char scratch[65536];
    for (;;) {
        struct pollfd p[64];
        int reading[64];
        size_t active = 0;
        for (size_t i = 0; i < n; i++) {
            xfer *x = &xs[i];
            p[i].fd = x->s->fd;
            p[i].events = 0;
            p[i].revents = 0;
            int need_read = !x->eof && x->error == 0 && x->got < want[i];
            int need_write = x->sent < x->send_len && x->error == 0;
            reading[i] = need_read;
            if (need_read)
                p[i].events |= POLLIN;
            if (need_write)
                p[i].events |= POLLOUT;
            if (need_read || need_write)
                active++;
        }
        if (active == 0)
            return;
        ck_assert_msg(now_ms() < end, "transfer did not finish in %d ms (got %zu of %zu)", ms, xs[0].got, want[0]);
        int rc = poll(p, (nfds_t)n, 200);
        ck_assert_int_ge(rc, 0);
        for (size_t i = 0; i < n; i++) {
            xfer *x = &xs[i];
            if (p[i].revents & (POLLOUT | POLLERR | POLLHUP)) {
                while (x->sent < x->send_len) {
                    size_t chunk = x->send_len - x->sent < 65536 ? x->send_len - x->sent : 65536;
                    ssize_t w = ptth_stream_write(x->s, x->send + x->sent, chunk);
                    if (w == -EAGAIN)
                        break;
                    if (w < 0) {
                        x->error = w;
                        break;
                    }
                    x->sent += (size_t)w;
                }
            }
            if (x->sent == x->send_len && x->shut_after_send && !x->shut_done) {
                ck_assert_int_eq(ptth_stream_shutdown_write(x->s), 0);
                x->shut_done = 1;
            }
            if (reading[i] && (p[i].revents & (POLLIN | POLLERR | POLLHUP))) {
                for (;;) {
                    unsigned char *dst = x->recv != NULL ? x->recv + x->got : scratch;
                    size_t room = x->recv != NULL ? x->recv_cap - x->got : sizeof(scratch);
                    if (room == 0)
                        break;
                    ssize_t r = ptth_stream_read(x->s, dst, room);
                    if (r == -EAGAIN)
                        break;
                    if (r == 0) {
                        x->eof = 1;
                        break;
                    }
                    if (r < 0) {
                        x->error = r;
                        break;
                    }
                    for (ssize_t k = 0; k < r; k++)
                        x->hash = (x->hash ^ dst[k]) * 1099511628211ULL;
                    x->got += (size_t)r;
                }
            }
        }
    }
}

static unsigned long long
fnv(const unsigned char *p, size_t n)
{
    unsigned long long h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

/* ---- tests ------------------------------------------------------------- */

START_TEST(echo_round_trip)
{
    backend *b = backend_start(ECHO);
    ptth_stream *s = open_ok(b->port);
    unsigned char got[5];
    xfer x;
    xfer_init(&x, s, "hello", 5, 0, got, sizeof(got));
    size_t want = 5;
    pump(&x, 1, &want, 5000);
    ck_assert_uint_eq(x.got, 5);
    ck_assert_int_eq(memcmp(got, "hello", 5), 0);
    ck_assert_int_eq(atomic_load(&b->accepted), 1);
    ptth_stream_close(s);
    /* close() closes the relay: the backend sees it */
    wait_value(&b->eofs, 1, 5000);
}
END_TEST

START_TEST(bulk_with_half_close_and_checksum)
{
    backend *b = backend_start(ECHO);
    ptth_stream *s = open_ok(b->port);
    size_t len = 8u << 20;
    unsigned char *data = malloc(len);
    for (size_t i = 0; i < len; i++)
        data[i] = (unsigned char)((i * 2654435761u) >> 13);
    xfer x;
    xfer_init(&x, s, data, len, 1, NULL, 0);
    size_t want = len + 1; /* until end of stream */
    long long t0 = now_ms();
    pump(&x, 1, &want, 60000);
    long long dt = now_ms() - t0;
    ck_assert_int_eq(x.error, 0);
    ck_assert_uint_eq(x.got, len);
    ck_assert_int_eq(x.eof, 1);
    ck_assert_uint_eq(x.hash, fnv(data, len));
    fprintf(stderr, "# nvme echo of %zu MiB with half-close: %lld ms (incl. the %d ms linger)\n", len >> 20, dt, 3000);
    /* the backend saw the end (the relay's close) */
    wait_value(&b->eofs, 1, 5000);
    ck_assert_uint_eq(atomic_load(&b->bytes_in), len);
    ptth_stream_close(s);
    free(data);
}
END_TEST

/* The caller half-closes after the stream was idle for longer than the
 * linger: the backend's answer still arrives, then the stream ends about one
 * linger after the half-close. */
START_TEST(half_close_then_answer)
{
    backend *b = backend_start(ECHO);
    ptth_stream *s = open_ok(b->port);
    usleep(3500 * 1000);
    unsigned char got[100];
    xfer x;
    xfer_init(&x, s, "question", 8, 1, got, sizeof(got));
    size_t want = 9;
    long long t0 = now_ms();
    pump(&x, 1, &want, 10000);
    ck_assert_uint_eq(x.got, 8);
    ck_assert_int_eq(memcmp(got, "question", 8), 0);
    ck_assert_int_eq(x.eof, 1);
    long long dt = now_ms() - t0;
    /* ends after the linger (3 s of silence), not before, not much later */
    ck_assert_int_ge(dt, 2500);
    ck_assert_int_le(dt, 8000);
    ptth_stream_close(s);
}
END_TEST

/* The backend ends its stream first: the caller reads end of stream, can
 * still write, and its half-close then closes the relay. */
START_TEST(backend_ends_first)
{
    backend *b = backend_start(SAY_BYE_THEN_READ);
    ptth_stream *s = open_ok(b->port);
    unsigned char got[16];
    xfer x;
    xfer_init(&x, s, NULL, 0, 0, got, sizeof(got));
    size_t want = sizeof(got);
    pump(&x, 1, &want, 5000);
    ck_assert_uint_eq(x.got, 3);
    ck_assert_int_eq(memcmp(got, "bye", 3), 0);
    ck_assert_int_eq(x.eof, 1);
    ck_assert_int_eq(x.error, 0);
    xfer_init(&x, s, "more", 4, 1, NULL, 0);
    want = 0;
    pump(&x, 1, &want, 5000);
    ck_assert_uint_eq(x.sent, 4);
    wait_value(&b->eofs, 1, 5000);
    ck_assert_str_eq((char *)b->last_got, "more");
    ptth_stream_close(s);
}
END_TEST

START_TEST(concurrent_streams)
{
    enum { N = 20 };
    backend *b = backend_start(ECHO);
    ptth_stream *s[N];
    xfer x[N];
    size_t want[N];
    size_t len = 256 * 1024;
    unsigned char *data = malloc(len);
    for (size_t i = 0; i < len; i++)
        data[i] = (unsigned char)(i * 31 + 7);
    for (int i = 0; i < N; i++) {
        s[i] = open_ok(b->port);
        xfer_init(&x[i], s[i], data + i, len - (size_t)i, 0, NULL, 0);
        want[i] = len - (size_t)i;
    }
    pump(x, N, want, 60000);
    for (int i = 0; i < N; i++) {
        ck_assert_uint_eq(x[i].got, len - (size_t)i);
        ck_assert_uint_eq(x[i].hash, fnv(data + i, len - (size_t)i));
        ptth_stream_close(s[i]);
    }
    wait_value(&b->eofs, N, 10000);
    free(data);
}
END_TEST

START_TEST(refused_backend)
{
    int holder = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(holder, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t len = sizeof(a);
    getsockname(holder, (struct sockaddr *)&a, &len);
    char text[256], want[512];
    snprintf(text, sizeof(text), "nvme:%s:%d", sock_path, ntohs(a.sin_port));
    ptth_stream *s;
    ck_assert_int_eq(open_stream(text, &s), -ECONNREFUSED);
    snprintf(want, sizeof(want), "nvme device '%s': open relay to 127.0.0.1:%d: Connection refused", sock_path, ntohs(a.sin_port));
    ck_assert_str_eq(err, want);
    close(holder);
}
END_TEST

START_TEST(bad_devices)
{
    ptth_stream *s;
    ck_assert_int_eq(open_stream("nvme:/nonexistent/nvme7:22", &s), -ENOENT);
    ck_assert_str_eq(err, "nvme device '/nonexistent/nvme7': No such file or directory");

    char text[256], file[160];
    snprintf(file, sizeof(file), "%s/plain", dir);
    FILE *f = fopen(file, "w");
    fclose(f);
    snprintf(text, sizeof(text), "nvme:%s:22", file);
    ck_assert_int_eq(open_stream(text, &s), -ENODEV);
    ck_assert_msg(strstr(err, file) && strstr(err, "not a character device"), "%s", err);
    unlink(file);

    /* a character device that is not an NVMe controller */
    ck_assert_int_lt(open_stream("nvme:/dev/null:22", &s), 0);
    ck_assert_msg(strstr(err, "nvme device '/dev/null': not an NVMe controller") != NULL, "%s", err);

    /* a socket file with nothing behind it */
    char dead[160];
    snprintf(dead, sizeof(dead), "%s/dead.sock", dir);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    memcpy(sun.sun_path, dead, strlen(dead) + 1);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    close(fd);
    snprintf(text, sizeof(text), "nvme:%s:22", dead);
    ck_assert_int_eq(open_stream(text, &s), -ECONNREFUSED);
    ck_assert_msg(strstr(err, dead) && strstr(err, "is ptth_csd_emu running?"), "%s", err);
    unlink(dead);
}
END_TEST

static void *
wrong_server(void *arg)
{
    int lfd = *(int *)arg;
    int c = accept(lfd, NULL, NULL);
    char buf[8];
    recv(c, buf, sizeof(buf), MSG_WAITALL);
    send(c, "HTTP/1.1", 8, MSG_NOSIGNAL);
    close(c);
    return NULL;
}

START_TEST(not_an_emulator)
{
    char other[160];
    snprintf(other, sizeof(other), "%s/other.sock", dir);
    int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    memcpy(sun.sun_path, other, strlen(other) + 1);
    ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    ck_assert_int_eq(listen(lfd, 4), 0);
    pthread_t th;
    pthread_create(&th, NULL, wrong_server, &lfd);
    char text[256];
    snprintf(text, sizeof(text), "nvme:%s:22", other);
    ptth_stream *s;
    ck_assert_int_lt(open_stream(text, &s), 0);
    ck_assert_msg(strstr(err, other) && strstr(err, "not a ptth_csd_emu socket"), "%s", err);
    pthread_join(th, NULL);
    close(lfd);
    unlink(other);
}
END_TEST

START_TEST(emulator_killed_and_back)
{
    backend *b = backend_start(ECHO);
    ptth_stream *s = open_ok(b->port);
    unsigned char got[4];
    xfer x;
    xfer_init(&x, s, "ping", 4, 0, got, sizeof(got));
    size_t want = 4;
    pump(&x, 1, &want, 5000);
    ck_assert_uint_eq(x.got, 4);

    kill(emu_pid, SIGKILL);
    waitpid(emu_pid, NULL, 0);
    emu_pid = -1;
    /* the stream fails (an error, not a clean end of stream) */
    xfer_init(&x, s, NULL, 0, 0, got, sizeof(got));
    want = 1;
    pump(&x, 1, &want, 5000);
    ck_assert_int_eq(x.eof, 0);
    ck_assert_int_lt(x.error, 0);
    ptth_stream_close(s);

    /* new streams fail clearly while it is down */
    char text[256];
    snprintf(text, sizeof(text), "nvme:%s:%d", sock_path, b->port);
    ck_assert_int_lt(open_stream(text, &s), 0);
    ck_assert_msg(strstr(err, sock_path) && strstr(err, "is ptth_csd_emu running?"), "%s", err);

    /* and work again once it is back (it replaces the stale socket file) */
    start_emulator();
    s = open_ok(b->port);
    xfer_init(&x, s, "pong", 4, 0, got, sizeof(got));
    want = 4;
    pump(&x, 1, &want, 5000);
    ck_assert_int_eq(memcmp(got, "pong", 4), 0);
    ptth_stream_close(s);
}
END_TEST

START_TEST(close_at_any_time)
{
    backend *b = backend_start(ECHO);
    char text[256];
    snprintf(text, sizeof(text), "nvme:%s:%d", sock_path, b->port);
    ptth_target t;
    ck_assert_int_eq(ptth_target_parse(text, &t, err, sizeof(err)), 0);
    /* before the open finished */
    for (int i = 0; i < 10; i++) {
        ptth_stream *s = NULL;
        ck_assert_int_eq(ptth_transport_open(&t, NULL, &s, err, sizeof(err)), 0);
        if (i % 2)
            usleep(2000);
        ptth_stream_close(s);
    }
    /* while the reader is blocked in the drive with nothing coming, and with
     * unread data in the stream */
    for (int i = 0; i < 10; i++) {
        ptth_stream *s = open_ok(b->port);
        if (i % 2)
            (void)!ptth_stream_write(s, "data", 4);
        ptth_stream_close(s);
    }
    ptth_transports_cleanup();
    /* every relay got closed */
    wait_value(&b->eofs, atomic_load(&b->accepted), 5000);
}
END_TEST

START_TEST(throughput_one_stream)
{
    size_t len = 32u << 20;
    backend *down = backend_start(SEND_BULK);
    down->bulk = len;
    ptth_stream *s = open_ok(down->port);
    xfer x;
    xfer_init(&x, s, NULL, 0, 0, NULL, 0);
    size_t want = len + 1;
    long long t0 = now_ms();
    pump(&x, 1, &want, 120000);
    long long dt = now_ms() - t0;
    ck_assert_uint_eq(x.got, len);
    ck_assert_int_eq(x.eof, 1);
    ptth_stream_close(s);
    double down_mbs = (double)len / 1e6 / ((double)(dt ? dt : 1) / 1000.0);

    backend *up = backend_start(SINK);
    s = open_ok(up->port);
    unsigned char *data = calloc(1, len);
    xfer_init(&x, s, data, len, 0, NULL, 0);
    want = 0;
    t0 = now_ms();
    pump(&x, 1, &want, 120000);
    long long end = now_ms() + 60000;
    while (atomic_load(&up->bytes_in) < len && now_ms() < end)
        usleep(1000);
    dt = now_ms() - t0;
    ck_assert_uint_eq(atomic_load(&up->bytes_in), len);
    ptth_stream_close(s);
    free(data);
    double up_mbs = (double)len / 1e6 / ((double)(dt ? dt : 1) / 1000.0);
    fprintf(stderr, "# nvme over ptth_csd_emu, one stream, %zu MiB: backend->caller %.1f MB/s, caller->backend %.1f MB/s\n",
            len >> 20, down_mbs, up_mbs);
}
END_TEST

Suite *
ptth_test_suite(void)
{
    Suite *s = suite_create("nvme");
    TCase *tc = tcase_create("emulator");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, echo_round_trip);
    tcase_add_test(tc, bulk_with_half_close_and_checksum);
    tcase_add_test(tc, half_close_then_answer);
    tcase_add_test(tc, backend_ends_first);
    tcase_add_test(tc, concurrent_streams);
    tcase_add_test(tc, refused_backend);
    tcase_add_test(tc, bad_devices);
    tcase_add_test(tc, not_an_emulator);
    tcase_add_test(tc, emulator_killed_and_back);
    tcase_add_test(tc, close_at_any_time);
    tcase_add_test(tc, throughput_one_stream);
    suite_add_tcase(s, tc);
    return s;
}
