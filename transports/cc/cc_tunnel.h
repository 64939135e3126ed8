/*
 * cc_tunnel.h: the life of one comm-channel tunnel (ptth_cc_tunnel in
 * cc_mux.h): the steps between its states and the mux's deadline queues
 * that go with them. cc_mux.c changes a tunnel's state only here.
 *
 * Deadlines: an OPENING tunnel (when the mux has an open timeout) and a
 * CLOSING one (PTTH_CC_LINGER_MS) sit in the mux's queue of that kind. All
 * entries of a queue have the same period, so a queue is in deadline order
 * by construction and ptth_cc_mux_expire() looks at its heads only, never
 * at every tunnel.
 */
#ifndef PTTH_CC_TUNNEL_H
#define PTTH_CC_TUNNEL_H

#include <stdbool.h>

#include "cc_mux.h"

/* true for the steps NEW -> OPENING -> OPEN -> CLOSING -> DEAD and OPENING
 * or OPEN -> DEAD. */
bool ptth_cc_tunnel_step_ok(ptth_cc_tunnel_state from, ptth_cc_tunnel_state to);

/* Moves t to next (asserting the step): t leaves the deadline queue of its
 * old state and joins the one of the new state, with its deadline from now. */
void ptth_cc_tunnel_set_state(ptth_cc_mux *m, ptth_cc_tunnel *t, ptth_cc_tunnel_state next);

/* OPEN_OK was sent or received and t is not dead: DATA, FIN, CREDIT and
 * ABORT belong to it (also while it lingers). */
bool ptth_cc_tunnel_is_open(const ptth_cc_tunnel *t);

#endif
