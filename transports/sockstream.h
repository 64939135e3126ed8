/*
 * sockstream.h: read/write/half-close on a socket for the transports whose
 * stream fd is a socket (tcp, unix, and the socketpair ends handed out by
 * nvme and cc). Never blocks (MSG_DONTWAIT), never raises SIGPIPE
 * (MSG_NOSIGNAL). Same return convention as the ptth_transport table:
 * >0 bytes, 0 end of stream (read), -EAGAIN would block, other -errno broken.
 */
#ifndef PTTH_SOCKSTREAM_H
#define PTTH_SOCKSTREAM_H

#include <stddef.h>
#include <sys/types.h>

ssize_t ptth_sock_read(int fd, void *buf, size_t len);
ssize_t ptth_sock_write(int fd, const void *buf, size_t len);
int ptth_sock_shutdown_write(int fd);
/* The coming close() resets the connection (TCP RST, SO_LINGER 0): the peer
 * must take it for a broken stream, not an end. Nothing for other sockets. */
void ptth_sock_reset_on_close(int fd);

#endif
