/*
 * cc_testutil.h: what the comm-channel suites share: a temporary
 * PTTH_CC_DIR, a test backend (UNIX stream listener in a thread: echo, sink,
 * reset, or greet-and-close), a ptth_cc_agent running in a thread, and a raw
 * protocol peer speaking cc_msg over a seqpacket connection.
 */
#ifndef PTTH_CC_TESTUTIL_H
#define PTTH_CC_TESTUTIL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cc_agent.h"
#include "cc_msg.h"

/* Makes a fresh directory, sets PTTH_CC_DIR to DIR/cc (not created: the
 * agent creates it) and returns DIR (static storage). */
const char *cct_tmpdir(void);

typedef enum cct_mode {
    CCT_ECHO,  /* echoes; on EOF finishes echoing and shuts down writing */
    CCT_SINK,  /* accepts and never reads */
    CCT_RESET, /* reads once, then closes with RST */
    CCT_GREET, /* writes "bye\n" and closes */
    CCT_COUNT, /* writes "hi\n", half-closes, counts what comes until EOF */
    CCT_SLOW_COUNT, /* the same, but waits 700 ms before reading */
} cct_mode;

#define CCT_MAX_CONNS 256

typedef struct cct_backend {
    char path[108];
    int lfd;
    int stop_pipe[2];
    cct_mode mode;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_t conn_threads[CCT_MAX_CONNS];
    int conn_fds[CCT_MAX_CONNS];
    int nconns;
    int accepted;
    size_t counted;  /* CCT_COUNT: bytes of the connections that reached EOF */
    int count_done;  /* CCT_COUNT: connections that reached EOF */
} cct_backend;

void cct_backend_start(cct_backend *b, const char *path, cct_mode mode);
void cct_backend_stop(cct_backend *b);
int cct_backend_accepted(cct_backend *b);
/* CCT_COUNT: waits until n connections reached EOF; returns their bytes. */
size_t cct_backend_wait_counted(cct_backend *b, int n, int timeout_ms);

typedef struct cct_agent {
    ptth_cc_agent *agent;
    pthread_t thread;
    int stop_fd;
    int rc;
    bool running;
} cct_agent;

/* Starts an agent on SERVICE (seqpacket) with TARGET unix:target_path. */
void cct_agent_start(cct_agent *ta, const char *service, const char *target_path, uint32_t max_clients);
void cct_agent_stop(cct_agent *ta);

/* Raw protocol peer: a seqpacket connection to $PTTH_CC_DIR/SERVICE. */
int cct_raw_connect(const char *service);
void cct_raw_send(int fd, uint8_t type, uint32_t tunnel, const void *payload, size_t len);
void cct_raw_send_bytes(int fd, const void *msg, size_t len);
void cct_raw_hello(int fd, uint32_t window);
/* Receives one message within timeout_ms: its length (decoded into *msg
 * using buf), 0 on EOF, -ETIMEDOUT. Asserts the message decodes. */
ssize_t cct_raw_recv(int fd, uint8_t *buf, size_t cap, ptth_cc_msg *msg, int timeout_ms);
/* Receives until a message of type arrives (skipping CREDIT); asserts. */
void cct_raw_expect(int fd, uint8_t type, uint32_t tunnel, ptth_cc_msg *msg, uint8_t *buf, size_t cap);
/* True when the peer closed the connection within timeout_ms (messages
 * before the close are skipped). */
bool cct_raw_closed(int fd, int timeout_ms);

/* Blocking helpers on nonblocking fds, bounded by timeout_ms. */
void cct_write_all(int fd, const void *buf, size_t len, int timeout_ms);
void cct_read_exact(int fd, void *buf, size_t len, int timeout_ms);

long long cct_now_ms(void);

#endif
