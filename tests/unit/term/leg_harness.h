/*
 * leg_harness.h: what the leg suites (test_leg.c, test_leg_tls.c) share: a
 * fake relay (a thread with a loopback listener that takes one connection,
 * records the request head, answers canned bytes in pieces, then echoes,
 * holds the connection recording how it ended, or closes it; optionally
 * TLS with a throwaway self-signed certificate for localhost), and the
 * client side (a loop, a relay client, one leg whose callbacks record what
 * came, run_until() bounded by a guard timer).
 */
#ifndef LEG_HARNESS_H
#define LEG_HARNESS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <openssl/ssl.h>

#include "leg.h"
#include "loop.h"
#include "relay_client.h"

#define KEY "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define GUARD_MS 5000
#define MAX_PIECES 8
#define BIG (4 * 1024 * 1024)
#define HEAD_101 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: ptth-tunnel/1\r\nConnection: Upgrade\r\n"

enum after { AFTER_CLOSE, AFTER_ECHO, AFTER_HOLD };

struct leg_fake {
    int lfd, port;
    bool tls;
    SSL_CTX *ctx;
    char ca_path[64]; /* TLS: the certificate in PEM, for a client that verifies it */
    bool close_at_once;            /* close before reading the request */
    const char *piece[MAX_PIECES]; /* the answer, sent piece by piece */
    size_t piece_len[MAX_PIECES];  /* 0: strlen */
    int npieces;
    int piece_delay_ms;
    enum after after;
    int echo_delay_ms; /* before the echo starts reading */
    char req[8192];    /* the request head as received */
    size_t req_len;
    char alpn[64]; /* the protocols the client offered */
    size_t alpn_len;
    int end_errno; /* AFTER_HOLD/ECHO: 0 EOF, else the errno of the failed read */
    size_t echoed;
    atomic_bool done;
    pthread_t thread;
    bool started;
};
extern struct leg_fake F;

int listen_loopback(int *port);
void fake_start(void);
void fake_join(void);

extern ptth_loop *loop;
extern ptth_relay_client *C;
extern char url[160];

struct leg_client {
    ptth_leg leg;
    int responses;
    ptth_leg_response res;
    char error[512];
    bool error_null;
    char *in;
    size_t in_len, in_cap;
    bool eof;
    ssize_t read_err;
    const char *out;
    size_t out_len, out_off;
    int write_again; /* -EAGAIN from ptth_leg_write */
    int readable_calls;
    bool close_on_response, abort_on_response;
    bool close_when_read_all; /* close (not abort) once in_len == want_in */
    size_t want_in;
};
extern struct leg_client T;
extern const ptth_leg_ops ops;

bool run_until(bool (*cond)(void), long ms);
bool cond_response(void);
bool cond_eof(void);
bool cond_fake_done(void);
bool cond_echo_done(void);
long long now_ms(void);
/* A loop and a relay client for scheme://127.0.0.1:port+prefix, insecure. */
void client_new(const char *scheme, int port, const char *prefix);
/* The same for scheme://host:port, checking the certificate against
 * ca_file (NULL: the system's CAs). */
void client_new_verified(const char *scheme, const char *host, int port, const char *ca_file);
void open_leg(const char *path, const char *const *headers, long timeout_ms);
void teardown_all(void);
/* Starts the fake, opens a leg on it, waits for on_response. */
void start_and_answer(const char *prefix, long timeout_ms);
void answer(const char *a);
void assert_failed_with(const char *what);
char *pattern(size_t n);

#endif
