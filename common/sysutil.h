/*
 * sysutil.h: small process and socket helpers every program needs.
 * All return 0 or a negative errno.
 */
#ifndef PTTH_SYSUTIL_H
#define PTTH_SYSUTIL_H

#include <stddef.h>
#include <sys/socket.h>

/* Raises RLIMIT_NOFILE's soft limit to the hard limit (SPEC §2). */
int ptth_raise_nofile_limit(void);

int ptth_set_nonblocking(int fd);
int ptth_set_cloexec(int fd);
/* TCP_NODELAY on a TCP socket; a no-op success on other kinds of socket and
 * on descriptors that are not sockets (pipes, stdio). */
int ptth_set_nodelay(int fd);

/* "127.0.0.1:4000" / "[::1]:4000" for a socket address, "unix:PATH" for a
 * named UNIX socket ("unix:" for an unnamed or abstract one), "?" for other
 * families. Truncated to fit outlen. */
void ptth_format_sockaddr(const struct sockaddr *sa, char *out, size_t outlen);

/* Monotonic clock in milliseconds. */
long long ptth_now_ms(void);

#endif
