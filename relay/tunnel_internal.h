/*
 * tunnel_internal.h: what the two halves of the tunnel core (tunnel.h)
 * share; not for the HTTP side.
 *
 *   tunnel.c         one tunnel's life: the states (ptth_tunnel_set_state),
 *                    its timers, matching listens with connects, chunks,
 *                    the upgraded path's events, the end
 *   tunnel_resume.c  resumable tunnels on top of it (SPEC §9.3): the
 *                    tokens, SUSPENDED, the held resumes, the new joint,
 *                    the ended ids
 *   instances.c      which terminator instance made each side, and the end
 *                    of a restarted one's suspended tunnels (instances.h)
 *
 * The calls go one way, from tunnel_resume.c down to tunnel.c: the resume
 * half uses the calls below to make, change and end tunnels, and tunnel.c
 * never calls it by name. Where a tunnel's life touches resumption (a
 * joint opens, a joint breaks, the tunnel ends) tunnel.c calls through the
 * core's ptth_tunnel_resume_ops table, which tunnel_resume.c fills when
 * ptth_tunnel_resume_enable() registers it; with no table registered no
 * tunnel is resumable.
 */
#ifndef PTTH_RELAY_TUNNEL_INTERNAL_H
#define PTTH_RELAY_TUNNEL_INTERNAL_H

#include <stdbool.h>

#include "tunnel.h"

/* ---- tunnel.c, for tunnel_resume.c ---- */

/* The one place a tunnel's state changes (asserts the step and the new
 * state's invariants; counts core->nsuspended). */
void ptth_tunnel_set_state(ptth_tunnel *t, ptth_tunnel_state next);

/* A tunnel in AWAIT_LISTEN with its timers initialised (grace_timer ends
 * it with reason resume_timeout), in core->tunnels under id (NULL: a fresh
 * random one) and counted at srv and core; nothing held, no timer armed.
 * NULL when out of memory or id is taken. */
ptth_tunnel *ptth_tunnel_alloc(ptth_core *core, ptth_srv *srv, const char *id, const char *port, size_t port_len,
                               const char *client, const char *addr, ptth_tunnel_proto proto);

/* A raw tunnel (OPEN, BROKEN) loses its streams: the end timer stopped,
 * each stream still there aborted (out_abort: its reader sees a broken
 * stream), every held chunk and every one waiting for its 204 answered
 * status with body, and both directions' windows and FIN states back to
 * their start (the next epoch numbers chunks from 0). */
void ptth_tunnel_drop_streams(ptth_tunnel *t, int status, const char *body);

/* PTTH-Conn, PTTH-Heartbeat, PTTH-Idle-Timeout of a 101. */
void ptth_tunnel_add_upgrade_headers(ptth_tunnel *t, ptth_rq *rq);

/* (Re)arms the idle timer when the tunnel carries bytes and has one. */
void ptth_tunnel_touch_idle(ptth_tunnel *t);

/* ---- tunnel_resume.c, as tunnel.c sees it ---- */

/* What tunnel.c tells the resume half (core->resume_ops). Each runs inside
 * a call of tunnel.c, on a tunnel that is not freed before it returns. */
typedef struct ptth_tunnel_resume_ops {
    /* A joint opens, or the framed streams of the chunked path, after an
     * accept, both sides asked for resumption and --resume-grace > 0: adds
     * PTTH-Resume (each side its token) and PTTH-Resume-Grace to both
     * answers. Returns whether the tunnel is resumable (false: no header
     * added, e.g. no token could be made). */
    bool (*on_granted)(ptth_tunnel *t, ptth_rq *connect, ptth_rq *accept);
    /* The joint of a resumable JOINED tunnel broke with a reset and no
     * clean end of stream before it: must take the tunnel to SUSPENDED
     * (the joint closed with a reset, the grace started). */
    void (*on_leg_lost)(ptth_tunnel *t, const char *detail);
    /* A raw tunnel (resumable on the chunked path) was BROKEN and this
     * loop round is over: must take it to SUSPENDED (the other stream
     * aborted, held chunks answered 409, the grace started) and, when both
     * resumes were already held, open it again. */
    void (*on_stream_lost)(ptth_tunnel *t, const char *detail);
    /* ptth_tunnel_end(), the tunnel ENDING and its timers disarmed, before
     * anything else is answered: answers the held resumes (rst_text, may
     * be NULL, is the reason of a `close`, which the other side then
     * learns) and remembers a resumable tunnel's id. */
    void (*on_end)(ptth_tunnel *t, ptth_end_reason reason, const char *rst_text);
} ptth_tunnel_resume_ops;

/* ---- tunnel_resume.c, for its unit tests ---- */

/* Remembers t's id for --resume-grace (ptth_tunnel_ended_recently). */
void ptth_tunnel_remember_end(ptth_tunnel *t, ptth_end_reason reason);

#endif
