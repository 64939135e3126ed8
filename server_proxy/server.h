/*
 * server.h: the server terminator's core (SPEC §5).
 *
 * Keeps `listens` listen requests outstanding at the relay. When one comes
 * back with a client (200), opens the mapped backend through transports/
 * (without blocking the loop); on failure posts `reject` with the reason, on
 * success bridges the backend with the tunnel (accept stream = what the
 * client sends; downstream chunks = what the backend sends).
 *
 * The relay being unreachable or answering 5xx is never fatal: listens are
 * retried with exponential backoff and jitter from 0.5 s to 30 s, or later
 * when the relay says Retry-After. 401/403 are logged as errors and retried
 * every 30 s (the relay may learn the key on reload).
 *
 * The server object owns its tunnels and frees them (closing the backends)
 * in ptth_server_free().
 */
#ifndef PTTH_SERVER_H
#define PTTH_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loop.h"
#include "names.h"
#include "relay_client.h"
#include "target.h"
#include "term_metrics.h"

typedef struct ptth_server_port {
    char name[PTTH_NAME_MAX + 1];
    ptth_target target;
} ptth_server_port;

typedef struct ptth_server_params {
    const char *name; /* this server's name at the relay */
    const ptth_server_port *ports;
    size_t n_ports;
    unsigned listens;
    size_t max_chunk;
    struct ptth_data_path *data_path; /* --data-path; the caller's, outlives the program object */
    size_t resume_buffer;             /* --resume-buffer: bytes per direction, 0: tunnels are not resumable */
    bool proxy_protocol;
    ptth_term_metrics *metrics; /* the caller's, outlives the server: counted into (term_metrics.h) */
} ptth_server_params;

typedef struct ptth_server ptth_server;

/* Starts the listens. The params (and the ports array) must outlive the
 * server. 0 or a negative errno with err filled. */
int ptth_server_new(ptth_loop *loop, ptth_relay_client *client, const ptth_server_params *params, ptth_server **out, char *err,
                    size_t errlen);

/* SIGTERM: stops the listens and ends every tunnel with reason "shutdown"
 * (bridged tunnels are closed at the relay with PTTH-Reason: shutdown, tunnels
 * still opening their backend are rejected). on_drained(data) runs from the
 * loop once no tunnel is left (at once when there is none); the caller
 * bounds the wait and then calls ptth_server_free(). */
void ptth_server_shutdown(ptth_server *s, void (*on_drained)(void *data), void *data);

/* Cancels the listens, aborts every tunnel (closing the backends) and frees. */
void ptth_server_free(ptth_server *s);

/* Open tunnels (for tests and logs). */
size_t ptth_server_tunnels(const ptth_server *s);

/* The live callback of ptth_tm_render() (data: the server): the bytes of the
 * tunnels open now. */
void ptth_server_metrics_live(void *data, ptth_term_metrics *m);

#endif
