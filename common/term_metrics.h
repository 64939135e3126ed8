/*
 * term_metrics.h: the counters of a terminator (ptth_server, ptth_proxy) and
 * their Prometheus text, served by --metrics-listen (SPEC §9.5; the HTTP side
 * is metrics_server.h).
 *
 * What is counted, and by whom:
 *   - tunnels: the program calls ptth_tm_tunnel_open() when a tunnel starts
 *     (ptth_server: a listen brought a client; ptth_proxy: a connection was
 *     accepted, or stdio began) and ptth_tm_tunnel_end() exactly once when it
 *     is over, with its result and its bytes. "Open" is between the two.
 *   - the relay: ptth_tm_relay_answered() for every request the relay answered
 *     (any status), ptth_tm_relay_failure() for every one that failed, with its
 *     status (0: no answer: connect, TLS, timeout). relay_up is 1 after an
 *     answer, 0 after a request without one; relay_connects counts the times it
 *     went from 0 (or the start) to 1: the (re)connections an operator wants
 *     to see.
 *   - other failures: ptth_tm_failure() (a backend that could not be opened,
 *     accept() failing on a forward).
 *
 * Ports are known at start (ptth_server's --port-map, ptth_proxy's
 * --forward targets) and added once with ptth_tm_add_port(); a tunnel of an
 * unknown port (index -1) counts in the totals only. Bytes: "up" is client
 * to server, as on the relay. Ended tunnels' bytes are kept here; the bytes
 * of tunnels still open are added at render time by the live callback, so
 * that a long ssh session shows its traffic before it ends.
 *
 * Ownership: the struct is the caller's (ptth_tm_init/ptth_tm_dispose); the
 * strings given are copied. Single-threaded, like the loop that updates it.
 */
#ifndef PTTH_TERM_METRICS_H
#define PTTH_TERM_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "names.h"
#include "sbuf.h"

typedef enum ptth_tm_result {
    PTTH_TM_FIN = 0,  /* established and ended by FIN both ways */
    PTTH_TM_RST,      /* established, then broken (RST, a local error, the relay gone) */
    PTTH_TM_SHUTDOWN, /* ended because this program was stopping */
    PTTH_TM_REFUSED,  /* the relay answered the connect/accept with an error status */
    PTTH_TM_BACKEND,  /* ptth_server: the backend could not be opened (the client got 502) */
    PTTH_TM_FAILED,   /* the relay never answered the connect/accept */
    PTTH_TM_RESULT__COUNT,
} ptth_tm_result;

typedef enum ptth_tm_fail {
    PTTH_TM_F_RELAY_UNREACHABLE = 0, /* no HTTP answer */
    PTTH_TM_F_RELAY_AUTH,            /* 401, 403 */
    PTTH_TM_F_RELAY_BUSY,            /* 429, 503 */
    PTTH_TM_F_RELAY_ERROR,           /* other 5xx */
    PTTH_TM_F_RELAY_REFUSED,         /* other non-2xx (404: unknown server or port...) */
    PTTH_TM_F_BACKEND,               /* a backend could not be opened */
    PTTH_TM_F_ACCEPT,                /* accept() on a forward failed (out of descriptors...) */
    PTTH_TM_FAILURE__COUNT,
} ptth_tm_fail;

typedef struct ptth_tm_port {
    char server[PTTH_NAME_MAX + 1];
    char port[PTTH_NAME_MAX + 1];
    uint64_t open;
    uint64_t ended[PTTH_TM_RESULT__COUNT];
    uint64_t bytes_up, bytes_down; /* of ended tunnels */
    uint64_t live_up, live_down;   /* of open tunnels, filled by the live callback */
} ptth_tm_port;

typedef struct ptth_term_metrics {
    char program[32]; /* "ptth_server" or "ptth_proxy": the info metric's label */
    double start_time_s;
    ptth_tm_port *ports;
    size_t n_ports, cap_ports;
    uint64_t open;
    uint64_t opened;
    uint64_t ended[PTTH_TM_RESULT__COUNT];
    uint64_t bytes_up, bytes_down;
    uint64_t live_up, live_down;
    uint64_t failures[PTTH_TM_FAILURE__COUNT];
    uint64_t relay_connects;
    bool relay_up;
    uint64_t resumes;        /* tunnels resumed after a lost relay connection (SPEC §9.3) */
    uint64_t replayed_bytes; /* positions written again by those resumes */
} ptth_term_metrics;

/* 0; start_time_s is taken from the wall clock. */
int ptth_tm_init(ptth_term_metrics *m, const char *program);
void ptth_tm_dispose(ptth_term_metrics *m);

/* The index of the series server/port, added when new. -1 when out of
 * memory (the tunnels of that port then count in the totals only). */
int ptth_tm_add_port(ptth_term_metrics *m, const char *server, const char *port);

void ptth_tm_tunnel_open(ptth_term_metrics *m, int port);
void ptth_tm_tunnel_end(ptth_term_metrics *m, int port, ptth_tm_result result, uint64_t bytes_up, uint64_t bytes_down);
/* Adds the bytes of one open tunnel (from the live callback). */
void ptth_tm_live(ptth_term_metrics *m, int port, uint64_t bytes_up, uint64_t bytes_down);

void ptth_tm_relay_answered(ptth_term_metrics *m);
/* status: the relay's HTTP status, 0 when it never answered. */
void ptth_tm_relay_failure(ptth_term_metrics *m, long status);
void ptth_tm_failure(ptth_term_metrics *m, ptth_tm_fail what);
/* A tunnel was resumed and wrote replayed positions again. */
void ptth_tm_resumed(ptth_term_metrics *m, uint64_t replayed);

/* The result of a tunnel from what the bridge reports (common/bridge.h's
 * ptth_bridge_result): established, ended cleanly, the status of the
 * connect/accept and the reason ("shutdown" when this program stopped it). */
ptth_tm_result ptth_tm_classify(bool established, bool clean, long status, const char *reason);

/* The names used as label values. */
const char *ptth_tm_result_name(ptth_tm_result r);
const char *ptth_tm_failure_name(ptth_tm_fail f);

/* Appends the whole /metrics text. live(data, m), when not NULL, runs first
 * with every live counter zeroed and adds the open tunnels' bytes through
 * ptth_tm_live(). */
void ptth_tm_render(ptth_term_metrics *m, void (*live)(void *data, ptth_term_metrics *m), void *data, ptth_sbuf *b);

#endif
