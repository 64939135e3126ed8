/* resolve.c: host names looked up in a helper thread; see resolve.h. */
#include "resolve.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sysutil.h"
#include "target.h"

/* Shared between the caller and the resolver thread; freed by whichever
 * drops the last reference. The thread owns notify_fd (its end of the
 * socketpair). */
struct ptth_resolve {
    atomic_int refs;
    char host[PTTH_TARGET_HOST_MAX];
    char port[8];
    int socktype;
    int gai_rc;
    struct addrinfo *res;
    int notify_fd;
    atomic_bool done; /* gai_rc and res are set */
};

void
ptth_resolve_release(ptth_resolve *job)
{
    if (job == NULL)
        return;
    if (atomic_fetch_sub(&job->refs, 1) == 1) {
        if (job->res != NULL)
            freeaddrinfo(job->res);
        if (job->notify_fd >= 0)
            close(job->notify_fd);
        free(job);
    }
}

static void *
resolve_main(void *arg)
{
    ptth_resolve *job = arg;
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = job->socktype;
    hints.ai_flags = AI_ADDRCONFIG | AI_NUMERICSERV;
    job->gai_rc = getaddrinfo(job->host, job->port, &hints, &job->res);
    atomic_store(&job->done, true);
    char one = 1;
    /* The caller may be gone; then this fails with EPIPE, which is fine. */
    (void)!send(job->notify_fd, &one, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    close(job->notify_fd);
    job->notify_fd = -1;
    ptth_resolve_release(job);
    return NULL;
}

int
ptth_resolve_start(const char *host, const char *port, int socktype, ptth_resolve **out, int *fd_out, char *err, size_t errlen)
{
    *out = NULL;
    *fd_out = -1;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        int e = errno;
        snprintf(err, errlen, "resolve '%s': socketpair: %s", host, strerror(e));
        return -e;
    }
    ptth_resolve *job = calloc(1, sizeof(*job));
    if (job == NULL) {
        close(sv[0]);
        close(sv[1]);
        snprintf(err, errlen, "resolve '%s': out of memory", host);
        return -ENOMEM;
    }
    atomic_init(&job->refs, 2);
    atomic_init(&job->done, false);
    snprintf(job->host, sizeof(job->host), "%s", host);
    snprintf(job->port, sizeof(job->port), "%s", port);
    job->socktype = socktype;
    job->notify_fd = sv[1];
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t th;
    int rc = pthread_create(&th, &attr, resolve_main, job);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        close(sv[0]);
        close(sv[1]);
        free(job);
        snprintf(err, errlen, "resolve '%s': cannot start a thread: %s", host, strerror(rc));
        return -rc;
    }
    (void)ptth_set_nonblocking(sv[0]);
    *out = job;
    *fd_out = sv[0];
    return 0;
}

bool
ptth_resolve_take(ptth_resolve *job, int fd, int *gai_rc, struct addrinfo **res)
{
    char c;
    (void)!recv(fd, &c, 1, MSG_DONTWAIT); /* drain the wake-up */
    if (!atomic_load(&job->done))
        return false;
    *gai_rc = job->gai_rc;
    *res = NULL;
    if (job->gai_rc == 0) {
        *res = job->res;
        job->res = NULL;
    }
    return true;
}
