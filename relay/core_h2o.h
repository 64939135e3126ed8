/*
 * core_h2o.h: the tunnel core (core.h) bound to h2o: the relay's
 * ptth_core_io. Held requests are ptth_holds (reply.h) in the request's
 * pool with the core's record right behind them; framed streams are
 * ptth_fstreams (fstream.h); the upgraded path is a ptth_joint (joint.h);
 * timers are h2o timeout entries on the relay's timeouts. The events of
 * streams and joints go back to the core (ptth_tunnel_on_*).
 */
#ifndef PTTH_RELAY_CORE_H2O_H
#define PTTH_RELAY_CORE_H2O_H

#include <h2o.h>

#include "core.h"
#include "relay.h"

/* Sets up relay->core with this io (relay->cfg and the timeouts must be
 * ready). */
void ptth_core_h2o_init(ptth_relay *relay);

/* The core's name for an h2o request. */
static inline ptth_rq *
ptth_rq_of(h2o_req_t *req)
{
    return (ptth_rq *)(void *)req;
}

#endif
