/* sysutil.c: see sysutil.h. */
#include "sysutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/un.h>
#include <time.h>

/* The kernel refuses RLIM_INFINITY for RLIMIT_NOFILE; its real ceiling is
 * fs.nr_open. */
static rlim_t
nr_open(void)
{
    rlim_t value = 1024 * 1024;
    FILE *f = fopen("/proc/sys/fs/nr_open", "re");
    if (f != NULL) {
        unsigned long long v;
        if (fscanf(f, "%llu", &v) == 1 && v > 0)
            value = (rlim_t)v;
        fclose(f);
    }
    return value;
}

int
ptth_raise_nofile_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -errno;
    if (rl.rlim_cur == rl.rlim_max)
        return 0;
    rlim_t want = rl.rlim_max;
    if (want == RLIM_INFINITY)
        want = nr_open();
    if (want <= rl.rlim_cur)
        return 0;
    rl.rlim_cur = want;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -errno;
    return 0;
}

int
ptth_set_nonblocking(int fd)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0)
        return -errno;
    if ((flags & O_NONBLOCK) == 0 && fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0)
        return -errno;
    return 0;
}

int
ptth_set_cloexec(int fd)
{
    int flags = fcntl(fd, F_GETFD);
    if (flags < 0)
        return -errno;
    if ((flags & FD_CLOEXEC) == 0 && fcntl(fd, F_SETFD, flags | FD_CLOEXEC) != 0)
        return -errno;
    return 0;
}

int
ptth_set_nodelay(int fd)
{
    int domain = 0, type = 0;
    socklen_t len = sizeof(domain);
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0)
        return errno == ENOTSOCK ? 0 : -errno;
    len = sizeof(type);
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0)
        return -errno;
    if ((domain != AF_INET && domain != AF_INET6) || type != SOCK_STREAM)
        return 0;
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
        return -errno;
    return 0;
}

void
ptth_format_sockaddr(const struct sockaddr *sa, char *out, size_t outlen)
{
    char host[INET6_ADDRSTRLEN];
    if (outlen == 0)
        return;
    if (sa == NULL) {
        snprintf(out, outlen, "?");
        return;
    }
    switch (sa->sa_family) {
    case AF_INET: {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)sa;
        if (inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host)) == NULL)
            snprintf(host, sizeof(host), "?");
        snprintf(out, outlen, "%s:%u", host, (unsigned)ntohs(sin->sin_port));
        break;
    }
    case AF_INET6: {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)sa;
        if (inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host)) == NULL)
            snprintf(host, sizeof(host), "?");
        snprintf(out, outlen, "[%s]:%u", host, (unsigned)ntohs(sin6->sin6_port));
        break;
    }
    case AF_UNIX: {
        const struct sockaddr_un *sun = (const struct sockaddr_un *)(const void *)sa;
        if (sun->sun_path[0] == '\0')
            snprintf(out, outlen, "unix:");
        else
            snprintf(out, outlen, "unix:%.*s", (int)strnlen(sun->sun_path, sizeof(sun->sun_path)), sun->sun_path);
        break;
    }
    default:
        snprintf(out, outlen, "?");
        break;
    }
}

long long
ptth_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
