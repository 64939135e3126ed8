/*
 * A fake relay for the Check suites of common/h2_client.c (test_h2_client.c,
 * test_h2_client_cancel.c, over h2_client_harness.h): a loopback listener
 * served on the test's loop, each connection by an nghttp2 server session,
 * or with h1_only by a bare HTTP/1.1 responder that turns the HTTP/2
 * preface away with 400, or with silent by nothing at all.
 *
 * Every request it sees is recorded in an fstream (pseudo-headers, headers,
 * body, how its stream ended) and, once complete, listed in F.reqs in
 * arrival order. The test scripts the relay: F.on_headers and F.on_request
 * run as a request's headers and its end arrive, and answer with respond()
 * or refuse(), or hold it (do nothing) to answer later.
 *
 * fake_start() opens the listener on a loop and takes a hook it calls after
 * each thing it did, so that a test waiting on the loop re-checks its
 * condition; fake_free() closes every connection and frees every record.
 *
 * It also counts how deep the client's own nghttp2 sessions are in
 * nghttp2_session_mem_recv/mem_send (ng_depth): the test binaries are
 * linked with --wrap for those two, and the wrappers live here because only
 * the fake knows which sessions are its own (those are not counted).
 */
#ifndef PTTH_TEST_H2_RELAY_FAKE_H
#define PTTH_TEST_H2_RELAY_FAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nghttp2/nghttp2.h>

#include "loop.h"

#define MAX_FHEADERS 16

typedef struct fconn fconn;
typedef struct fstream fstream;

/* One request as the fake relay saw it, and its scripted response. */
struct fstream {
    fconn *c;
    int32_t id;
    char method[16], scheme[16], authority[64], path[512];
    char hname[MAX_FHEADERS][64], hval[MAX_FHEADERS][256];
    int nh;
    uint8_t *body;
    size_t body_len, body_cap;
    bool complete; /* the whole request arrived */
    bool closed;   /* the server session closed the stream */
    uint32_t close_code;
    bool got_rst;
    uint32_t rst_code;
    bool complete_at_rst; /* the whole request had arrived when RST_STREAM did */
    bool responded;
    /* response body: text, or resp_len bytes of pattern(seed) */
    const char *resp_text;
    size_t resp_len, resp_off;
    uint8_t seed;
    bool keep_open;   /* do not end the stream after the body */
    size_t sent_data; /* DATA payload bytes sent on it */
    fstream *next_all;
};

enum fmode {
    MODE_H2,
    MODE_SNIFF,  /* h1_only: first bytes decide */
    MODE_REJECT, /* answered the HTTP/2 preface with HTTP/1.1 400 */
    MODE_H1,
    MODE_SILENT, /* accepts, reads, never answers */
};

struct fconn {
    int fd; /* -1 once closed */
    int index;
    enum fmode mode;
    ptth_watch watch;
    ptth_defer flush_defer;
    nghttp2_session *session;
    uint8_t *out;
    size_t out_len, out_off, out_cap;
    char in[64 * 1024];
    size_t in_len;
    bool shut_after_flush;
    bool no_read; /* the relay stops reading this connection */
    fconn *next;
};

/* The fake relay's state, zeroed by fake_start(): a test sets max_streams,
 * h1_only, silent and the two scripts before its requests go out, and
 * reads what the rest recorded. */
struct fake_relay {
    int lfd, port;
    ptth_watch lwatch;
    int accepted;
    int h2_prefaces;                 /* h1_only: HTTP/2 prefaces answered with 400 */
    int pings;                       /* PING frames received (nghttp2 answers each) */
    uint32_t max_streams;            /* SETTINGS_MAX_CONCURRENT_STREAMS */
    bool h1_only;                    /* answers the HTTP/2 preface with HTTP/1.1 400, serves HTTP/1.1 */
    bool silent;                     /* never answers anything */
    bool big_window;                 /* 64 MiB windows for request bodies */
    void (*on_request)(fstream *st); /* a whole request arrived */
    void (*on_headers)(fstream *st); /* a request's headers arrived */
    nghttp2_session_callbacks *cbs;
    fconn *conns;
    fstream *all;
    fstream *reqs[512]; /* complete requests in arrival order */
    int nreqs;
};

extern struct fake_relay F;

/* How deep the client's nghttp2 sessions are in mem_recv/mem_send now. */
extern int ng_depth;

/* Body bytes of generated responses and uploads: byte i of a pattern that
 * does not repeat at any frame size. */
uint8_t pattern(uint8_t seed, size_t i);

/* The value of a request header (lowercase name), or NULL. */
const char *fheader(const fstream *st, const char *name);
/* How many complete requests had this path. */
int count_path(const char *path);
/* The first complete request with this path (on connection conn_index, or
 * on any with -1), or NULL. */
fstream *find_req(const char *path, int conn_index);

/* Closes one connection; with abort, by a TCP reset. Never call it from
 * inside that connection's session callbacks. */
void fconn_close(fconn *c, bool abort);
/* The epoll events the connection waits for (no EPOLLIN while no_read). */
uint32_t fconn_events(const fconn *c, bool want_out);
/* Sends what the connection's session has queued, from the loop. */
void fconn_want_flush(fconn *c);

/* A scripted answer: status, header pairs (lowercase name, value; NULL
 * ends), and a text body or gen bytes of pattern(seed). */
typedef struct resp {
    int status;
    const char *h[12];
    const char *text;
    size_t gen;
    uint8_t seed;
    bool keep_open;
} resp;

/* Answers the request (once) as rp says. */
void respond(fstream *st, resp rp);
/* Resets the request's stream with REFUSED_STREAM. */
void refuse(fstream *st);

/* Opens the listener on loop (F.port), with 100 streams a connection. */
void fake_start(ptth_loop *loop, void (*on_progress)(void));
/* 64 MiB windows for request bodies and a small socket buffer: a relay that
 * stops reading then leaves most of a big body in the client. */
void fake_big_window(void);
void fake_free(void);

#endif
