/*
 * cc_carrier.h: what carries comm-channel messages between host and agent.
 * A carrier is a table of operations, one file per implementation:
 *
 *   cc_carrier_seqpacket.c  UNIX SOCK_SEQPACKET at $PTTH_CC_DIR/SERVICE
 *                           (one carrier message = one ptth message)
 *   cc_carrier_vsock.c      AF_VSOCK SOCK_STREAM, messages framed by the
 *                           header's length field
 *
 * A DOCA Comm Channel carrier would be a third file with the same table: its
 * endpoint's event channel fd is `fd`, send/recv map to the endpoint's
 * sendto/recvfrom (message based like seqpacket). See docs/comm-channel.md.
 *
 * Every connection is nonblocking and has one fd to poll:
 *   - while `connecting` is set, wait for EPOLLOUT then call finish_connect();
 *   - send() takes a whole message or nothing: 0 = taken (sent, or the rest
 *     buffered inside the carrier: `send_pending` is then set; wait for
 *     EPOLLOUT and call flush() before the next send), -EAGAIN = full, nothing
 *     taken; other negative = the channel is broken;
 *   - recv() returns one whole message (its length), 0 when the peer closed,
 *     -EAGAIN when none is complete, -EMSGSIZE for a message above cap,
 *     -EBADMSG/-EPROTO for a framing error (stream), other negative = broken.
 *     After any error other than -EAGAIN the connection is unusable.
 * The carrier owns the fd: close() closes it and frees the connection.
 */
#ifndef PTTH_CC_CARRIER_H
#define PTTH_CC_CARRIER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "target.h"

#define PTTH_CC_DIR_DEFAULT "/tmp/ptth-cc"

/* Where a channel is: a SOCK_SEQPACKET path or a vsock CID:PORT. */
typedef struct ptth_cc_addr {
    ptth_cc_carrier_kind kind;
    char path[PTTH_TARGET_PATH_MAX];      /* seqpacket: $PTTH_CC_DIR/SERVICE */
    uint32_t cid, port;                   /* vsock */
    char text[PTTH_TARGET_PATH_MAX + 32]; /* "seqpacket:/tmp/ptth-cc/svc", "vsock:3:5000" for logs */
} ptth_cc_addr;

typedef struct ptth_cc_conn {
    const struct ptth_cc_carrier *carrier;
    int fd;
    bool connecting;   /* connect() in progress */
    bool send_pending; /* part of a message is buffered: flush() on EPOLLOUT */
} ptth_cc_conn;

typedef struct ptth_cc_carrier {
    const char *name; /* "seqpacket", "vsock" */
    /* Agent side: binds and listens; returns the listening fd (nonblocking). */
    int (*listen)(const ptth_cc_addr *addr, int *fd, char *err, size_t errlen);
    /* Accepts one connection: 0, -EAGAIN when none is waiting, other -errno. */
    int (*accept)(int listen_fd, ptth_cc_conn **out, char *err, size_t errlen);
    /* Undoes listen() (closes fd; removes the socket file). */
    void (*unlisten)(const ptth_cc_addr *addr, int fd);
    /* Host side: starts connecting (nonblocking); `connecting` may be set. */
    int (*connect)(const ptth_cc_addr *addr, ptth_cc_conn **out, char *err, size_t errlen);
    /* After EPOLLOUT while connecting: 0 connected, -EINPROGRESS, -errno. */
    int (*finish_connect)(ptth_cc_conn *c, char *err, size_t errlen);
    /* Wraps an already connected socket of this carrier's kind (takes fd). */
    int (*adopt)(int fd, ptth_cc_conn **out);
    int (*send)(ptth_cc_conn *c, const uint8_t *msg, size_t len);
    int (*flush)(ptth_cc_conn *c);
    ssize_t (*recv)(ptth_cc_conn *c, uint8_t *buf, size_t cap);
    void (*close)(ptth_cc_conn *c);
} ptth_cc_carrier;

extern const ptth_cc_carrier ptth_cc_carrier_seqpacket;
extern const ptth_cc_carrier ptth_cc_carrier_vsock;

const ptth_cc_carrier *ptth_cc_carrier_for(ptth_cc_carrier_kind kind);

/* $PTTH_CC_DIR, or PTTH_CC_DIR_DEFAULT when unset or empty. */
const char *ptth_cc_dir(void);

/* "CID:PORT" (the part after "vsock:"). CID is decimal 0 .. 4294967294, or
 * "any" (VMADDR_CID_ANY) when listening. PORT is decimal 0 .. 4294967294
 * (the same rule as target.c for cc:vsock:CID:PORT). Digits only: no sign,
 * spaces or hex. 0, or -EINVAL with the reason in err. */
int ptth_cc_vsock_parse(const char *text, bool listening, uint32_t *cid, uint32_t *port, char *err, size_t errlen);

/* A channel name as the agent's --cc-name takes it: SERVICE (a SPEC §2 name;
 * the seqpacket carrier at $PTTH_CC_DIR/SERVICE) or vsock:CID:PORT.
 * 0, or -EINVAL / -ENAMETOOLONG with the reason in err. */
int ptth_cc_addr_parse(const char *name, bool listening, ptth_cc_addr *out, char *err, size_t errlen);

/* The address of a parsed cc: target (host side). Same errors. */
int ptth_cc_addr_from_target(const ptth_target *t, ptth_cc_addr *out, char *err, size_t errlen);

/* For the carrier implementations: what every socket-based carrier does the
 * same way. */

/* accept()s one nonblocking connection on listen_fd and wraps it with
 * carrier->adopt: the carrier table's accept() contract (0, -EAGAIN when none
 * is waiting or it was aborted before being taken, other -errno with err). */
int ptth_cc_carrier_accept(const ptth_cc_carrier *carrier, int listen_fd, ptth_cc_conn **out, char *err, size_t errlen);

/* One nonblocking send() (no SIGPIPE, retried on EINTR): the bytes the
 * socket took (a seqpacket socket takes all or nothing, a stream socket
 * perhaps a part), -EAGAIN when it takes none now, other -errno broken. */
ssize_t ptth_cc_carrier_send_some(int fd, const uint8_t *buf, size_t len);

#endif
