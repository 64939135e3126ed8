/*
 * proxy.h: the client terminator's core (SPEC §6).
 *
 * A forward is a local listening socket tied to one SERVER/PORT at the relay.
 * Each accepted connection becomes one tunnel: a `connect` POST whose 200
 * response carries what the backend sends, and `upstream` chunks for what
 * the client sends (common/bridge.h). Until the 200 arrives nothing is read
 * from the connection: early bytes wait in the socket. A refused connect
 * closes the connection and logs the status and the relay's reason; after a
 * 503 or 429 with Retry-After, connections to that forward are closed at once
 * (and logged) until the time given has passed, instead of asking the relay.
 *
 * In stdio mode there is one tunnel, on stdin/stdout, and on_stdio_end is
 * called when it is over.
 */
#ifndef PTTH_PROXY_H
#define PTTH_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bridge.h"
#include "loop.h"
#include "names.h"
#include "relay_client.h"
#include "term_metrics.h"

typedef struct ptth_forward_spec {
    char bind_host[256]; /* numeric or a name; "127.0.0.1" by default */
    uint16_t bind_port;  /* 0: the kernel chooses */
    char server[PTTH_NAME_MAX + 1];
    char port[PTTH_NAME_MAX + 1];
    bool udp; /* "udp:" prefix (or --udp): a UDP forward, served by udp_front.h, not bound here */
} ptth_forward_spec;

/* Parses "[udp:][ADDR:]LPORT=SERVER/PORT" (ADDR may be [V6]). 0, or -EINVAL
 * with the reason in err. */
int ptth_forward_parse(const char *text, ptth_forward_spec *out, char *err, size_t errlen);

typedef struct ptth_proxy_params {
    const ptth_forward_spec *forwards; /* listening forwards, or in stdio mode the one target */
    size_t n_forwards;
    size_t max_chunk;
    struct ptth_data_path *data_path; /* --data-path; the caller's, outlives the program object */
    size_t resume_buffer;             /* --resume-buffer: bytes per direction, 0: tunnels are not resumable */
    bool stdio;
    ptth_term_metrics *metrics; /* the caller's, outlives the proxy: counted into (term_metrics.h) */
    /* stdio mode: the tunnel is over; ok when it was established */
    void (*on_stdio_end)(bool ok, void *data);
    void *data;
} ptth_proxy_params;

typedef struct ptth_proxy ptth_proxy;

/* Binds every TCP forward (UDP ones are left to udp_front.h) and prints "listening on ADDR:PORT" for each on stderr,
 * or starts the stdio tunnel. params must outlive the proxy. 0, or a negative
 * errno with err saying which address failed. */
int ptth_proxy_new(ptth_loop *loop, ptth_relay_client *client, const ptth_proxy_params *params, ptth_proxy **out, char *err,
                   size_t errlen);

/* What a front (SOCKS5, UDP) that accepted a local end of its own learns of
 * its tunnel. on_established: as ptth_bridge_config's (the tunnel opened,
 * nothing written to the local end yet; may run inside libcurl: only write
 * to the local end). on_end: once, from the loop, after the tunnel's log
 * line and after the local end was closed (ops->close or ops->abort) with
 * the result (res->established false: refused, res->status the HTTP status
 * or 0). Either may be NULL. */
typedef struct ptth_proxy_tunnel_hooks {
    void (*on_established)(ptth_bridge *b, void *data);
    void (*on_end)(const ptth_bridge_result *res, void *data);
    void *data;
    const char *stream_header; /* optional header of the connect ("PTTH-Proto: udp") */
    const char *proto;         /* what the tunnel carries, "udp" or "tcp" (NULL: tcp), sent with resume requests */
} ptth_proxy_tunnel_hooks;

/* Opens one tunnel to SERVER/PORT for a local end a front accepted; takes
 * the local end (closed on failure too). The tunnel is one of the proxy's:
 * logged and ended on shutdown like a forward's. peer names the local end
 * in log lines. 0, -ENOMEM, or -ESHUTDOWN after ptth_proxy_shutdown(); on
 * failure no hook is called. */
int ptth_proxy_open_tunnel(ptth_proxy *p, const char *server, const char *port, const ptth_local_end *local, const char *peer,
                           const ptth_proxy_tunnel_hooks *hooks);

/* SIGTERM: stops accepting and ends every tunnel with reason "shutdown"
 * (open tunnels are closed at the relay with PTTH-Reason: shutdown).
 * on_drained(data) runs from the loop once no tunnel is left (at once when
 * there is none); the caller bounds the wait, then calls ptth_proxy_free(). */
void ptth_proxy_shutdown(ptth_proxy *p, void (*on_drained)(void *data), void *data);

void ptth_proxy_free(ptth_proxy *p);

/* The live callback of ptth_tm_render() (data: the proxy): the bytes of the
 * tunnels open now. */
void ptth_proxy_metrics_live(void *data, ptth_term_metrics *m);

#endif
