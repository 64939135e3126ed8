/*
 * metrics_server.h: the --metrics-listen endpoint of ptth_server and
 * ptth_proxy (SPEC §9.5): a small HTTP/1.1 responder on the terminator's own
 * event loop (loop.h), serving GET /metrics and nothing else.
 *
 * Each connection gets one answer and is closed after it (Connection:
 * close): the head is read (at most PTTH_METRICS_REQ_MAX bytes,
 * metrics_req.h decides the status), the whole response is rendered into
 * memory at once and written as the socket takes it. A connection that has
 * not sent its head or taken its answer within PTTH_METRICS_CONN_MS is
 * closed; beyond PTTH_METRICS_CONNS_MAX connections at once, new ones are
 * closed at accept. There is no authentication: bind it to loopback (or a
 * monitoring network) only.
 *
 * Ownership: the server owns its listening socket and connections; the
 * metrics (term_metrics.h) are the caller's and outlive the server. Each 200
 * answer renders them with ptth_tm_render() and the live callback set with
 * ptth_metrics_server_set_live() (none until then).
 */
#ifndef PTTH_METRICS_SERVER_H
#define PTTH_METRICS_SERVER_H

#include <stddef.h>

#include "loop.h"
#include "options.h"
#include "term_metrics.h"

#define PTTH_METRICS_CONN_MS 5000
#define PTTH_METRICS_CONNS_MAX 16

/* The --metrics-listen entry of a terminator's option table (options.h). */
#define PTTH_METRICS_LISTEN_OPTION(type, field)                                                                                    \
    {                                                                                                                              \
        "metrics-listen", PTTH_OPT_STRING, offsetof(type, field), "ADDR:PORT",                                                     \
            "serve Prometheus metrics at http://ADDR:PORT/metrics; no authentication, so use a loopback address such as "          \
            "127.0.0.1:9470 (port 0: the system chooses, see the metrics_listen log line)",                                        \
            NULL, 0, 0, ptth_check_listen                                                                                          \
    }

typedef struct ptth_metrics_server ptth_metrics_server;

/* Binds listen (a numeric ADDR:PORT or [V6]:PORT, checked by
 * ptth_check_listen; port 0: the kernel picks one), starts accepting and logs
 * event=metrics_listen with the bound address. 0, or a negative errno with
 * err saying which address failed and why. */
int ptth_metrics_server_new(ptth_loop *loop, const char *listen, ptth_term_metrics *m, ptth_metrics_server **out, char *err,
                            size_t errlen);

/* The live callback for ptth_tm_render() (term_metrics.h) and its data. */
void ptth_metrics_server_set_live(ptth_metrics_server *s, void (*live)(void *data, ptth_term_metrics *m), void *data);

/* The bound address, "127.0.0.1:9100" (the port the kernel chose for 0). */
const char *ptth_metrics_server_address(const ptth_metrics_server *s);

/* Closes the listener and every connection; NULL is a no-op. */
void ptth_metrics_server_free(ptth_metrics_server *s);

#endif
