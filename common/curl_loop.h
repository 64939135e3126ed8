/*
 * curl_loop.h: one libcurl multi handle driven by the program's epoll loop
 * (loop.h) through libcurl's socket interface.
 *
 * libcurl says which sockets it wants watched and when it wants a timeout
 * (CURLMOPT_SOCKETFUNCTION, CURLMOPT_TIMERFUNCTION); this module keeps one
 * watch per such socket and one timer, calls curl_multi_socket_action() when
 * either fires, and then the owner's after() callback, which reads the
 * finished transfers (curl_multi_info_read). What the transfers are, and
 * how the multi handle is tuned (pipelining, connection limits), is the
 * owner's business: relay_client.c.
 *
 * A ptth_curl_loop is embedded in its owner; init and cleanup pair up, and
 * cleanup on a zeroed or already cleaned-up one does nothing.
 */
#ifndef PTTH_CURL_LOOP_H
#define PTTH_CURL_LOOP_H

#include <curl/curl.h>

#include "loop.h"

struct ptth_curl_sock;

typedef struct ptth_curl_loop {
    ptth_loop *loop;
    CURLM *multi;                 /* NULL: not initialised or cleaned up */
    ptth_timer timer;             /* libcurl's timeout */
    struct ptth_curl_sock *socks; /* every socket libcurl asked us to watch */
    void (*after)(void *data);    /* after every curl_multi_socket_action() */
    void *data;
} ptth_curl_loop;

/* Creates the multi handle and hooks it to loop. after(data) runs, from the
 * loop, after every action libcurl took on a socket event or its timeout.
 * 0, or -ENOMEM. */
int ptth_curl_loop_init(ptth_curl_loop *cl, ptth_loop *loop, void (*after)(void *data), void *data);

/* curl_multi_cleanup() of the handle (every easy handle must have been
 * removed by then), then every watch and the timer are stopped. */
void ptth_curl_loop_cleanup(ptth_curl_loop *cl);

#endif
