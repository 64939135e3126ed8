/* local_bind.c: see local_bind.h. */
#include "local_bind.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sysutil.h"

int
ptth_local_bind(const char *host, uint16_t port, int socktype, int *fd_out, char *bound, size_t boundlen, char *err, size_t errlen)
{
    *fd_out = -1;
    const char *kind = socktype == SOCK_DGRAM ? "udp " : "";
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = socktype, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char pstr[8];
    snprintf(pstr, sizeof(pstr), "%u", (unsigned)port);
    int gai = getaddrinfo(host, pstr, &hints, &res);
    if (gai != 0) {
        snprintf(err, errlen, "cannot resolve %slisten address '%s': %s", kind, host, gai_strerror(gai));
        return -EINVAL;
    }
    int fd = socket(res->ai_family, socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int e = errno;
        freeaddrinfo(res);
        snprintf(err, errlen, "%ssocket for %s:%s: %s", kind, host, pstr, strerror(e));
        return -e;
    }
    int one = 1;
    if (socktype == SOCK_STREAM)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (res->ai_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 || (socktype == SOCK_STREAM && listen(fd, 511) != 0)) {
        int e = errno;
        char a[96];
        ptth_format_sockaddr(res->ai_addr, a, sizeof(a));
        snprintf(err, errlen, "cannot %s on %s: %s", socktype == SOCK_DGRAM ? "bind udp" : "listen", a, strerror(e));
        freeaddrinfo(res);
        close(fd);
        return -e;
    }
    freeaddrinfo(res);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    ptth_format_sockaddr((struct sockaddr *)&ss, bound, boundlen);
    *fd_out = fd;
    return 0;
}
