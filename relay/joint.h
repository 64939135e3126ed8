/*
 * joint.h: the upgraded data path at the relay (SPEC §9.1): the two
 * connections of one tunnel, joined after both got `101 Switching
 * Protocols`, and the bytes moved between them.
 *
 * The relay does not read the frames on this path: the terminators speak
 * the framed stream of SPEC §4 end to end (DATA, FIN, RST, PING), so the
 * joint only moves bytes, in both directions at once:
 *   - both legs in cleartext: splice(2) from one socket into a pipe and from
 *     the pipe into the other socket; the bytes never enter user space. A
 *     direction holds a pipe only while bytes wait in it (the other side is
 *     slow): an idle tunnel holds just its two sockets, and drained pipes go
 *     back to a pool shared by all joints.
 *   - a leg over TLS: h2o decrypts what one read brings into the socket's
 *     input buffer, and the whole of it goes out with one h2o_socket_write()
 *     on the other leg (one SSL_write per burst); the source is not read
 *     while that write is in flight.
 * Backpressure is TCP's: a direction whose destination does not take bytes
 * stops reading its source.
 *
 * Ends (docs/protocol.md):
 *   - a leg's end of stream (the terminator closed or half-closed it) is
 *     passed on once its bytes went through: the other leg's sending side is
 *     shut down (TCP FIN). When both directions ended so, the joint ends
 *     clean (reason fin).
 *   - a reset or an error on either leg ends the joint broken; the owner
 *     then closes both legs with a TCP reset (ptth_joint_close), so that each
 *     terminator sees the tunnel aborted.
 *
 * Bursts: every chunk of bytes moved is reported through on_moved() with its
 * size; a burst of exactly PTTH_FRAME_HEADER_LEN bytes is most likely a
 * lone PING (or FIN) frame, which the owner may choose not to count as
 * activity for its idle timeout.
 *
 * Ownership: the owner (a tunnel) creates the joint, hands it both requests
 * with ptth_joint_upgrade(), and ends it with ptth_joint_close(), exactly
 * once, also after on_end. After close no callback runs; the joint frees
 * itself as soon as h2o has handed back every socket it was upgrading.
 */
#ifndef PTTH_RELAY_JOINT_H
#define PTTH_RELAY_JOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <h2o.h>
#include <h2o/http1.h>

#define PTTH_UPGRADE_TOKEN "ptth-tunnel/1"

typedef struct ptth_joint ptth_joint;

typedef enum ptth_joint_side {
    PTTH_JOINT_CLIENT = 0, /* the connect's connection (ptth_proxy) */
    PTTH_JOINT_SERVER = 1, /* the accept's connection (ptth_server) */
} ptth_joint_side;

typedef struct ptth_joint_callbacks {
    /* n bytes went from side `from` to the other side. */
    void (*on_moved)(ptth_joint *j, void *owner, ptth_joint_side from, size_t n);
    /* The joint is over: clean (both directions ended with end of stream) or
     * broken (detail says which leg and what). Runs once; the owner then
     * calls ptth_joint_close(). */
    void (*on_end)(ptth_joint *j, void *owner, bool clean, const char *detail);
} ptth_joint_callbacks;

/* true when req asks for the upgraded path: HTTP/1.1, Upgrade with our token
 * and Connection: upgrade (h2o fills req->upgrade only then). */
bool ptth_joint_wanted(const h2o_req_t *req);

/* NULL when out of memory. */
ptth_joint *ptth_joint_new(const ptth_joint_callbacks *cb, void *owner);

/* Answers req with 101 (Upgrade: PTTH_UPGRADE_TOKEN, and the headers already
 * added to req->res.headers); once h2o wrote it, the connection is this
 * side's leg. The bytes start moving when both legs are there. A leg whose
 * 101 could not be written ends the joint broken. req must satisfy
 * ptth_joint_wanted(); each side once. */
void ptth_joint_upgrade(ptth_joint *j, ptth_joint_side side, h2o_req_t *req);

/* true once both legs are joined and bytes may move. */
bool ptth_joint_joined(const ptth_joint *j);

/* true when a leg's end of stream was read (a direction is past flowing). */
bool ptth_joint_saw_eof(const ptth_joint *j);

/* true when both legs are cleartext and the bytes go through splice(2). */
bool ptth_joint_spliced(const ptth_joint *j);

/* Ends the joint: both legs are closed, with a TCP reset when reset is set.
 * No callback runs afterwards. */
void ptth_joint_close(ptth_joint *j, bool reset);

/* Closes the pipes kept for reuse (at exit). */
void ptth_joint_release_pool(void);

#endif
