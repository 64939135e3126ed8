/*
 * tunnel_internal.h: what tunnel.c and tunnel_resume.c share (the tunnel
 * core, tunnel.h). Not for the HTTP side.
 */
#ifndef PTTH_RELAY_TUNNEL_INTERNAL_H
#define PTTH_RELAY_TUNNEL_INTERNAL_H

#include <stdbool.h>

#include "tunnel.h"

/* ---- tunnel.c ---- */

/* The one place a tunnel's state changes (asserts the step and the new
 * state's invariants; counts core->nsuspended). */
void ptth_tunnel_set_state(ptth_tunnel *t, ptth_tunnel_state next);

/* A tunnel in AWAIT_LISTEN with its timers initialised, in core->tunnels
 * under id (NULL: a fresh random one) and counted at srv and core; nothing
 * held, no timer armed. NULL when out of memory or id is taken. */
ptth_tunnel *ptth_tunnel_alloc(ptth_core *core, ptth_srv *srv, const char *id, const char *port, size_t port_len,
                               const char *client, const char *addr, ptth_tunnel_proto proto);

/* PTTH-Conn, PTTH-Heartbeat, PTTH-Idle-Timeout of a 101. */
void ptth_tunnel_add_upgrade_headers(ptth_tunnel *t, ptth_rq *rq);

/* (Re)arms the idle timer when the tunnel carries bytes and has one. */
void ptth_tunnel_touch_idle(ptth_tunnel *t);

/* ---- tunnel_resume.c ---- */

void ptth_tunnel_resume_init(ptth_tunnel *t);

/* PTTH-Resume (each side its token) and PTTH-Resume-Grace on both 101s;
 * false (no header added) when a token could not be made. */
bool ptth_tunnel_add_resume_headers(ptth_tunnel *t, ptth_rq *connect, ptth_rq *accept);

/* JOINED -> SUSPENDED: closes the joint with a reset, starts the grace. */
void ptth_tunnel_suspend(ptth_tunnel *t, const char *detail);

/* At the end: answers the held resumes (404 resume timed out, 503 at
 * shutdown, else 404). */
/* Answers the held resumes of an ending tunnel; rst_text (may be NULL) is
 * the reason of a `close`, which the other side then learns. */
void ptth_tunnel_drop_resumes(ptth_tunnel *t, ptth_end_reason reason, const char *rst_text);

/* Remembers t's id for --resume-grace (ptth_tunnel_ended_recently). */
void ptth_tunnel_remember_end(ptth_tunnel *t);

#endif
