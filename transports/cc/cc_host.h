/*
 * cc_host.h: the host side of the comm channel, i.e. ptth_transport_cc
 * (declared in transport.h) as ptth_server uses it for `cc:SERVICE` and
 * `cc:vsock:CID:PORT` targets.
 *
 * Each channel address gets one pump thread, started by the first open() and
 * running its own epoll loop, so the terminator's event loop never runs comm
 * channel code. A stream is one end of a socketpair (`fd`, never blocking);
 * the pump thread bridges the other end with the channel:
 *
 *   open()        queues the open and returns at once; poll fd for EPOLLIN.
 *   finish_open() 0 once the agent connected TARGET; -EINPROGRESS before;
 *                 -ECONNREFUSED with the reason when the agent refused (its
 *                 --max-clients, TARGET unreachable), could not be reached,
 *                 or did not answer within the open timeout (9 s).
 *   read()        >0, 0 when the target half-closed (FIN), -EAGAIN, or
 *                 -ECONNRESET when the tunnel broke (the target's connection
 *                 failed, or the channel to the agent was lost).
 *   write()       >0, -EAGAIN when the tunnel's buffers are full (the agent
 *                 gives credit as TARGET reads), -ECONNRESET/-EPIPE when broken.
 *   shutdown_write()  FIN to the agent, which half-closes TARGET.
 *   close()       CLOSE to the agent (it closes TARGET and frees the slot).
 *
 * When the channel breaks (agent restarted), every tunnel on it fails
 * (opening ones fail finish_open, open ones read -ECONNRESET); the next
 * open() connects the channel again.
 */
#ifndef PTTH_CC_HOST_H
#define PTTH_CC_HOST_H

/* Stops every pump thread and frees the channels. Registered with atexit()
 * by the first open(); may be called earlier once no stream is open. */
void ptth_cc_host_shutdown(void);

/* How long open waits for the agent's answer (default 9000 ms). For tests;
 * call before the first open. */
void ptth_cc_host_set_open_timeout(unsigned ms);

#endif
