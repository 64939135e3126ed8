/*
 * A recording fake of the relay core's HTTP side (ptth_core_io, relay/core.h)
 * for the Check suites of the tunnel core (test_tunnel.c, test_tunnel_data.c).
 * Requests are answered into struct ptth_rq, frames are counted per fake
 * stream (struct ptth_out), joints recorded (struct ptth_join), timers
 * fired by the test (fire). tunnel_fake_setup() makes a fresh core with
 * small limits; tunnel_fake_teardown() ends every tunnel and checks that no
 * timer outlived its object.
 */
#ifndef PTTH_TEST_TUNNEL_FAKE_H
#define PTTH_TEST_TUNNEL_FAKE_H

#include <stdbool.h>
#include <stddef.h>

#include "frame.h"
#include "resume.h"
#include "tunnel.h"

#define MAX_RQ 128
#define MAX_HDR 12

struct ptth_rq {
    int status; /* 0 until answered */
    unsigned retry;
    char body[512];
    char hname[MAX_HDR][32], hvalue[MAX_HDR][128];
    int nhdr;
    bool closed;     /* its peer closed (peer_closed answers true) */
    ptth_held *held; /* the core's record, when held */
    bool streamed;   /* became a framed stream or a joint leg */
};

struct ptth_out {
    ptth_rq *rq;
    ptth_tunnel *t;
    int data, fins, rsts; /* frames written, by type */
    size_t data_bytes;
    char rst[PTTH_FRAME_REASON_MAX + 1];
    bool pending, busy, finished;
    bool aborted; /* finished by out_abort */
    int raw;      /* chunks written raw (a resumable chunked tunnel) */
    int fail; /* the next write_chunk fails with this */
};

struct ptth_join {
    ptth_tunnel *t;
    ptth_rq *connect, *accept;
    bool started, closed, reset;
};

extern struct ptth_rq rqs[MAX_RQ];
extern int nouts;
extern struct ptth_join joins[8];
extern int njoins;
extern bool join_fails;
extern ptth_timer *armed[64];
extern int narmed;
extern ptth_relay_config cfg;
extern ptth_core core;
extern ptth_resume_secret resume_secret; /* the core's: 32 fixed bytes */
extern int ends;
extern ptth_end_reason last_reason;
extern char last_detail[256];

void tunnel_fake_setup(void);
void tunnel_fake_teardown(void);

ptth_rq *rq_new(void);
const char *hdr(const ptth_rq *r, const char *name);
void rq_gone(ptth_rq *r);
int armed_of(ptth_timer_kind kind);
int fire(ptth_timer_kind kind);
ptth_rq *listen_on(const char *server, const char *ports);
ptth_tunnel *connect_to(const char *server, const char *port, ptth_rq **out, bool upgrade);
ptth_tunnel *open_tunnel(ptth_rq **connect, ptth_rq **accept);
ptth_out *out_of(ptth_rq *r);
ptth_rq *chunk_raw(ptth_tunnel *t, bool from_client, const char *seq, const char *fin, size_t len);
ptth_rq *chunk(ptth_tunnel *t, bool from_client, unsigned seq, bool fin, size_t len);
void drain(ptth_out *o);
/* listen_on("foo", "ssh"), then a connect of alice asking for asks_c and the
 * server's accept asking for asks_a (PTTH_ASK_* bits); the tunnel is in
 * whatever state the core gave it. */
ptth_tunnel *connect_accept(unsigned asks_c, unsigned asks_a, ptth_rq **connect, ptth_rq **accept);
/* A resume request's fields as the HTTP side gives them for a tunnel of
 * server foo, port ssh, client alice, TCP, from the given side's address;
 * callers change what their test is about. */
ptth_resume_in resume_fields(bool server_side, uint64_t received, uint64_t sent, bool upgrade);
/* Sends *in as a resume of tunnel id to the core; the request. */
ptth_rq *resume_send(const char *id, const ptth_resume_in *in);

#endif
