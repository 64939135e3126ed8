/* Unit tests of common/sysutil. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/un.h>
#include <unistd.h>

#include "check_main.h"
#include "sysutil.h"

START_TEST(raise_nofile)
{
    struct rlimit rl;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    /* lower the soft limit first so that raising it is observable */
    if (rl.rlim_max > 64) {
        struct rlimit low = {64, rl.rlim_max};
        ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    }
    ck_assert_int_eq(ptth_raise_nofile_limit(), 0);
    struct rlimit after;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &after), 0);
    if (rl.rlim_max != RLIM_INFINITY)
        ck_assert_uint_eq(after.rlim_cur, rl.rlim_max);
    else
        ck_assert_uint_gt(after.rlim_cur, 64);
    /* idempotent */
    ck_assert_int_eq(ptth_raise_nofile_limit(), 0);
}
END_TEST

START_TEST(nonblocking_and_cloexec)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    ck_assert_int_eq(fcntl(p[0], F_GETFL) & O_NONBLOCK, 0);
    ck_assert_int_eq(ptth_set_nonblocking(p[0]), 0);
    ck_assert_int_ne(fcntl(p[0], F_GETFL) & O_NONBLOCK, 0);
    ck_assert_int_eq(ptth_set_nonblocking(p[0]), 0);
    char c;
    ck_assert_int_eq(read(p[0], &c, 1), -1);
    ck_assert_int_eq(errno, EAGAIN);

    ck_assert_int_eq(fcntl(p[1], F_GETFD) & FD_CLOEXEC, 0);
    ck_assert_int_eq(ptth_set_cloexec(p[1]), 0);
    ck_assert_int_ne(fcntl(p[1], F_GETFD) & FD_CLOEXEC, 0);
    close(p[0]);
    close(p[1]);

    ck_assert_int_eq(ptth_set_nonblocking(p[0]), -EBADF);
    ck_assert_int_eq(ptth_set_cloexec(p[0]), -EBADF);
    ck_assert_int_eq(ptth_set_nodelay(p[0]), -EBADF);
}
END_TEST

START_TEST(nodelay)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(s, 0);
    ck_assert_int_eq(ptth_set_nodelay(s), 0);
    int v = 0;
    socklen_t len = sizeof(v);
    ck_assert_int_eq(getsockopt(s, IPPROTO_TCP, TCP_NODELAY, &v, &len), 0);
    ck_assert_int_ne(v, 0);
    close(s);

    /* other kinds: success without doing anything */
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    ck_assert_int_eq(ptth_set_nodelay(sv[0]), 0);
    close(sv[0]);
    close(sv[1]);
    s = socket(AF_INET, SOCK_DGRAM, 0);
    ck_assert_int_eq(ptth_set_nodelay(s), 0);
    close(s);
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    ck_assert_int_eq(ptth_set_nodelay(p[0]), 0);
    close(p[0]);
    close(p[1]);
}
END_TEST

START_TEST(format_sockaddr)
{
    char out[128];
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(4000)};
    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    ptth_format_sockaddr((struct sockaddr *)&sin, out, sizeof(out));
    ck_assert_str_eq(out, "127.0.0.1:4000");

    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_port = htons(65535)};
    inet_pton(AF_INET6, "::1", &sin6.sin6_addr);
    ptth_format_sockaddr((struct sockaddr *)&sin6, out, sizeof(out));
    ck_assert_str_eq(out, "[::1]:65535");
    inet_pton(AF_INET6, "2001:db8::ffff:1", &sin6.sin6_addr);
    sin6.sin6_port = 0;
    ptth_format_sockaddr((struct sockaddr *)&sin6, out, sizeof(out));
    ck_assert_str_eq(out, "[2001:db8::ffff:1]:0");

    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    strcpy(sun.sun_path, "/run/x.sock");
    ptth_format_sockaddr((struct sockaddr *)&sun, out, sizeof(out));
    ck_assert_str_eq(out, "unix:/run/x.sock");
    memset(sun.sun_path, 'p', sizeof(sun.sun_path)); /* not NUL-terminated */
    ptth_format_sockaddr((struct sockaddr *)&sun, out, sizeof(out));
    ck_assert_uint_eq(strlen(out), 5 + sizeof(sun.sun_path) < sizeof(out) ? 5 + sizeof(sun.sun_path) : sizeof(out) - 1);

    struct sockaddr other = {.sa_family = AF_APPLETALK};
    ptth_format_sockaddr(&other, out, sizeof(out));
    ck_assert_str_eq(out, "?");

    /* truncation is safe */
    char small[6];
    ptth_format_sockaddr((struct sockaddr *)&sin, small, sizeof(small));
    ck_assert_str_eq(small, "127.0");
}
END_TEST

START_TEST(now_ms)
{
    long long a = ptth_now_ms();
    usleep(50000);
    long long b = ptth_now_ms();
    ck_assert_int_ge(b - a, 45);
    ck_assert_int_lt(b - a, 5000);
    ck_assert_int_gt(a, 0);
}
END_TEST

Suite *
ptth_test_suite(void)
{
    Suite *s = suite_create("sysutil");
    TCase *tc = tcase_create("sysutil");
    tcase_add_test(tc, raise_nofile);
    tcase_add_test(tc, nonblocking_and_cloexec);
    tcase_add_test(tc, nodelay);
    tcase_add_test(tc, format_sockaddr);
    tcase_add_test(tc, now_ms);
    suite_add_tcase(s, tc);
    return s;
}
