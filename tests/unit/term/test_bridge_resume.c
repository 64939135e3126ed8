/* Unit tests of common/bridge_resume.c, the rules of a resumable tunnel
 * (docs/protocol.md "Resumable tunnels") on a bridge without a relay: the
 * bridge is made with a socketpair local end and put in the state of an
 * upgraded tunnel by hand (bridge_internal.h); no leg is opened. The
 * whole resume over sockets is tunnel_resume_fake's. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bridge_internal.h"
#include "check_main.h"

static ptth_loop *L;
static int peer_fd = -1;

static void
on_end(ptth_bridge *b, const ptth_bridge_result *res, void *data)
{
    (void)b;
    (void)res;
    (void)data;
}

/* An upgraded tunnel whose 101 carried a token (grace 30 s) when grant. */
static ptth_bridge *
make(size_t capacity, const char *kind, const char *client_name, bool grant)
{
    if (L == NULL)
        L = ptth_loop_new();
    ck_assert_ptr_nonnull(L);
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    peer_fd = sv[1];
    ptth_local_end e;
    ck_assert_int_eq(ptth_local_end_fds(&e, sv[0], sv[0]), 0);
    ptth_bridge_config cfg = {
        .loop = L,
        .server = "foo",
        .chunk_kind = kind,
        .local_name = "client",
        .max_chunk = 262144,
        .resume_buffer = capacity,
        .port = "ssh",
        .client_name = client_name,
        .on_end = on_end,
    };
    ptth_bridge *b = ptth_bridge_new(&cfg, &e);
    ck_assert_ptr_nonnull(b);
    b->state = ST_OPEN;
    b->path = PATH_UPGRADE;
    b->leg_open = true; /* as after the 101; no leg is behind it */
    snprintf(b->conn, sizeof(b->conn), "c1");
    b->conn_known = true;
    ptth_leg_response res;
    ptth_leg_response_reset(&res);
    if (grant) {
        snprintf(res.resume_token, sizeof(res.resume_token), "tok");
        res.resume_grace = 30;
    }
    ptth_bridge_resume_opened(b, &res);
    return b;
}

static void
drop(ptth_bridge *b)
{
    b->leg_open = false;
    b->failed = true; /* ends without the clean-close path */
    ptth_bridge_free(b);
    close(peer_fd);
}

/* n DATA bytes came and went to the local end at once. */
static void
deliver(ptth_bridge *b, size_t n)
{
    ck_assert(ptth_bridge_resume_decoded(b, n));
    ptth_bridge_resume_delivered(b, n);
}

#define WIN (4u << 20) /* the peer's window in our ACKs */

/* Frames into the bridge as if read from the leg. */
static void
feed_frames(ptth_bridge *b, const uint8_t *p, size_t len)
{
    ck_assert_uint_eq(b->env->feed(b, p, len, true), len);
}

static void
send_bytes(ptth_bridge *b, size_t n, uint8_t seed)
{
    uint8_t *buf = malloc(n);
    ck_assert_ptr_nonnull(buf);
    for (size_t i = 0; i < n; i++)
        buf[i] = (uint8_t)(seed + i);
    ck_assert(ptth_bridge_resume_sent(b, NULL, 0, buf, n, NULL));
    free(buf);
}

START_TEST(asks_only_with_a_buffer_and_what_resume_needs)
{
    ptth_bridge *b = make(4 << 20, "upstream", NULL, true);
    ck_assert_str_eq(ptth_bridge_resume_request_header(b), "PTTH-Resumable: 1");
    ck_assert(ptth_bridge_resumable(b));
    drop(b);
    /* --resume-buffer 0: not asked; a granted token changes nothing */
    b = make(0, "upstream", NULL, true);
    ck_assert_ptr_null(ptth_bridge_resume_request_header(b));
    ck_assert(!ptth_bridge_resumable(b));
    ck_assert_uint_eq(ptth_bridge_resume_read_room(b), SIZE_MAX);
    drop(b);
    /* the server side without the client's name (an older relay) */
    b = make(4 << 20, "downstream", "", true);
    ck_assert_ptr_null(ptth_bridge_resume_request_header(b));
    drop(b);
    b = make(4 << 20, "downstream", "alice", true);
    ck_assert_ptr_nonnull(ptth_bridge_resume_request_header(b));
    drop(b);
    /* asked, not granted: exactly the tunnel of before */
    b = make(4 << 20, "upstream", NULL, false);
    ck_assert(!ptth_bridge_resumable(b));
    ck_assert(ptth_bridge_resume_settled(b));
    ck_assert(!ptth_bridge_resume_ack_due(b));
    drop(b);
}
END_TEST

START_TEST(ack_on_a_tunnel_not_resumable_is_an_error)
{
    ptth_bridge *b = make(4 << 20, "upstream", NULL, false);
    ck_assert(!ptth_bridge_resume_on_ack(b, 0, WIN));
    ck_assert(b->failed);
    ck_assert_str_eq(b->reason, "bad frame from relay: ACK frame on a tunnel that is not resumable");
    drop(b);
}
END_TEST

START_TEST(ack_rules)
{
    ptth_bridge *b = make(4 << 20, "upstream", NULL, true);
    /* decoded is not enough: the ACK counts what the local end took */
    ck_assert(ptth_bridge_resume_decoded(b, 128 * 1024));
    ck_assert(!ptth_bridge_resume_ack_due(b));
    ptth_bridge_resume_delivered(b, 128 * 1024 - 1);
    ck_assert(!ptth_bridge_resume_ack_due(b));
    ptth_bridge_resume_delivered(b, 1);
    ck_assert(ptth_bridge_resume_ack_due(b));
    uint8_t f[PTTH_FRAME_ACK_LEN];
    ptth_bridge_resume_ack_frame(b, f);
    /* the position, then our window: our --resume-buffer (4 MiB) */
    ck_assert(memcmp(f, "\x04\x00\x00\x0c\x00\x00\x00\x00\x00\x02\x00\x00\x00\x40\x00\x00", PTTH_FRAME_ACK_LEN) == 0);
    ck_assert(!ptth_bridge_resume_ack_due(b));
    /* a heartbeat with nothing unacknowledged: no ACK; with one byte: one */
    ptth_bridge_resume_beat(b);
    ck_assert(!ptth_bridge_resume_ack_due(b));
    deliver(b, 1);
    ck_assert(!ptth_bridge_resume_ack_due(b));
    ptth_bridge_resume_beat(b);
    ck_assert(ptth_bridge_resume_ack_due(b));
    ptth_bridge_resume_ack_frame(b, f);
    ck_assert_uint_eq(b->rs.ack_sent, 128 * 1024 + 1);
    /* the peer's FIN passed on: at once, and it counts one position */
    ptth_bridge_resume_delivered_fin(b);
    ck_assert(ptth_bridge_resume_ack_due(b));
    ptth_bridge_resume_ack_frame(b, f);
    ck_assert_uint_eq(b->rs.ack_sent, 128 * 1024 + 2);
    drop(b);
}
END_TEST

START_TEST(peer_acks_checked_and_dropped)
{
    ptth_bridge *b = make(4 << 20, "upstream", NULL, true);
    send_bytes(b, 1000, 0);
    ck_assert(ptth_bridge_resume_on_ack(b, 500, WIN));
    ck_assert_uint_eq(b->rs.buf.acked, 500);
    ck_assert(ptth_bridge_resume_on_ack(b, 500, WIN)); /* the same again is fine */
    ck_assert(!ptth_bridge_resume_on_ack(b, 499, WIN));
    ck_assert_str_eq(b->reason, "bad frame from relay: ACK of position 499 below the last ACK 500");
    drop(b);

    b = make(4 << 20, "upstream", NULL, true);
    send_bytes(b, 1000, 0);
    ck_assert(!ptth_bridge_resume_on_ack(b, 1001, WIN));
    ck_assert_str_eq(b->reason, "bad frame from relay: ACK of position 1001 above what was sent, 1000");
    drop(b);

    /* our FIN framed: position 1001 is it; the clean end waits for that ACK */
    b = make(4 << 20, "upstream", NULL, true);
    send_bytes(b, 1000, 0);
    b->to_relay = TO_RELAY_DONE;
    b->from_relay = FROM_RELAY_SHUT;
    ptth_bridge_resume_delivered_fin(b);
    uint8_t f[PTTH_FRAME_ACK_LEN];
    ptth_bridge_resume_ack_frame(b, f);
    ck_assert(ptth_bridge_resume_on_ack(b, 1000, WIN));
    ck_assert(!ptth_bridge_resume_peer_done(b));
    ck_assert(!ptth_bridge_resume_settled(b));
    ck_assert(!ptth_bridge_leg_done(b));
    ck_assert(ptth_bridge_resume_on_ack(b, 1001, WIN));
    ck_assert(ptth_bridge_resume_peer_done(b));
    ck_assert(ptth_bridge_resume_settled(b));
    ck_assert(ptth_bridge_leg_done(b));
    ck_assert_uint_eq(ptth_resume_buf_footprint(&b->rs.buf), 0);
    drop(b);
}
END_TEST

START_TEST(full_buffer_stops_reading)
{
    ptth_bridge *b = make(524288, "upstream", NULL, true);
    ck_assert(ptth_bridge_leg_reading_wanted(b));
    send_bytes(b, 524288 - 10, 0);
    ck_assert_uint_eq(ptth_bridge_resume_read_room(b), 10);
    send_bytes(b, 10, 0);
    ck_assert_uint_eq(ptth_bridge_resume_read_room(b), 0);
    ck_assert(!ptth_bridge_leg_reading_wanted(b));
    ck_assert(ptth_bridge_resume_on_ack(b, 100, WIN));
    ck_assert_uint_eq(ptth_bridge_resume_read_room(b), 100);
    ck_assert(ptth_bridge_leg_reading_wanted(b));
    drop(b);
}
END_TEST

/* A full local end pauses the leg, except while we may send nothing more:
 * the peer's ACKs are behind its DATA on the leg, so the leg is read on
 * into memory to find them (an echo backend would otherwise stall the
 * tunnel for good). What is read so is bounded by our window: the peer
 * keeps to it, and DATA past it is a protocol error. */
START_TEST(full_buffer_reads_the_leg_past_a_full_local_end)
{
    ptth_bridge *b = make(524288, "upstream", NULL, true);
    ck_assert(ptth_bridge_leg_reading_wanted(b));
    b->out_blocked = true; /* the local end said -EAGAIN */
    ck_assert(!ptth_bridge_resume_overfill(b));
    send_bytes(b, 524288, 0);                      /* our buffer is full now */
    ck_assert(!ptth_bridge_leg_reading_wanted(b)); /* the local end is not read */
    ck_assert(ptth_bridge_resume_overfill(b));     /* but the leg is */
    /* what the leg gives is taken although the local end is full, and the
     * ACK behind the DATA is found */
    static uint8_t frames[PTTH_FRAME_HEADER_LEN + 300000 + PTTH_FRAME_ACK_LEN];
    ptth_frame_header(frames, PTTH_FRAME_DATA, 300000);
    memset(frames + PTTH_FRAME_HEADER_LEN, 'x', 300000);
    ptth_frame_ack(frames + PTTH_FRAME_HEADER_LEN + 300000, 4096, WIN);
    feed_frames(b, frames, sizeof(frames));
    ck_assert(!b->failed);
    ck_assert_uint_eq(b->out_len - b->out_off, 300000);
    ck_assert_uint_eq(b->rs.undelivered, 300000);
    ck_assert_uint_eq(b->rs.received, 0);
    ck_assert_uint_eq(b->rs.buf.acked, 4096);
    /* room again: back to the ordinary rule (a full local end pauses the leg) */
    ck_assert(!ptth_bridge_resume_overfill(b));
    /* more than our window past what the local end took: a protocol error */
    static uint8_t more[PTTH_FRAME_HEADER_LEN + 524288 - 300000 + 1];
    ptth_frame_header(more, PTTH_FRAME_DATA, 524288 - 300000 + 1);
    memset(more + PTTH_FRAME_HEADER_LEN, 'y', sizeof(more) - PTTH_FRAME_HEADER_LEN);
    feed_frames(b, more, sizeof(more));
    ck_assert(b->failed);
    ck_assert_str_eq(b->reason,
                     "bad frame from relay: DATA past our receive window (300000 bytes undelivered, 224289 more, window 524288)");
    b->out_blocked = false;
    drop(b);
}
END_TEST

/* We send at most the peer's window past its last ACK: the least a peer
 * can have (512 KiB) until its first ACK says; a window outside what a
 * --resume-buffer can be is a protocol error. */
START_TEST(peer_window_bounds_what_is_sent)
{
    ptth_bridge *b = make(8u << 20, "upstream", NULL, true);
    ck_assert_uint_eq(ptth_bridge_resume_read_room(b), 524288);
    send_bytes(b, 524288, 0);
    ck_assert_uint_eq(ptth_bridge_resume_read_room(b), 0);
    ck_assert(ptth_bridge_resume_on_ack(b, 1000, WIN));
    ck_assert_uint_eq(ptth_bridge_resume_read_room(b), WIN - (524288 - 1000));
    /* a smaller window later: nothing more until the ACKs catch up */
    ck_assert(ptth_bridge_resume_on_ack(b, 2000, 524288));
    ck_assert_uint_eq(ptth_bridge_resume_read_room(b), 2000);
    ck_assert(!ptth_bridge_resume_on_ack(b, 2000, 524287));
    ck_assert_str_eq(b->reason, "bad frame from relay: ACK with a window of 524287 bytes (not 524288 to 1073741824)");
    drop(b);
    b = make(8u << 20, "upstream", NULL, true);
    ck_assert(!ptth_bridge_resume_on_ack(b, 0, (1u << 30) + 1));
    drop(b);
}
END_TEST

/* A lost leg: what waits for the local end is dropped (the peer sends it
 * again from our `received`), a FIN not passed on with it. */
START_TEST(lost_leg_drops_what_was_not_delivered)
{
    ptth_bridge *b = make(4 << 20, "upstream", NULL, true);
    b->out_blocked = true;
    send_bytes(b, 524288, 0); /* the window is full: the leg is read on */
    static uint8_t frames[PTTH_FRAME_HEADER_LEN + 1000 + PTTH_FRAME_HEADER_LEN];
    ptth_frame_header(frames, PTTH_FRAME_DATA, 1000);
    memset(frames + PTTH_FRAME_HEADER_LEN, 'z', 1000);
    ptth_frame_header(frames + PTTH_FRAME_HEADER_LEN + 1000, PTTH_FRAME_FIN, 0);
    feed_frames(b, frames, sizeof(frames));
    ck_assert(!b->failed);
    ck_assert_int_eq(b->from_relay, FROM_RELAY_FIN);
    ck_assert_uint_eq(b->bytes_from_relay, 1000);
    ck_assert(ptth_bridge_resume_lost(b, "test"));
    ck_assert_uint_eq(b->out_len - b->out_off, 0);
    ck_assert(!b->out_blocked);
    ck_assert_uint_eq(b->rs.undelivered, 0);
    ck_assert_uint_eq(b->rs.received, 0);
    ck_assert_int_eq(b->from_relay, FROM_RELAY_OPEN);
    ck_assert_uint_eq(b->bytes_from_relay, 0);
    drop(b);
}
END_TEST

/* After a resume: DATA from replay_pos in frames of at most room bytes,
 * then the FIN, and no local reading until it is all out. */
START_TEST(replay_frames)
{
    ptth_bridge *b = make(4 << 20, "upstream", NULL, true);
    send_bytes(b, 70000, 7);
    ck_assert(ptth_bridge_resume_on_ack(b, 100, WIN));
    b->to_relay = TO_RELAY_DONE;
    b->rs.replay_pos = 100;
    b->rs.replay_fin = true;
    ck_assert_uint_eq(ptth_bridge_resume_read_room(b), 0);
    static uint8_t buf[40000];
    size_t pos = 100;
    bool fin = false;
    int frames = 0;
    for (;;) {
        size_t n = ptth_bridge_resume_next_replay(b, buf, sizeof(buf), &fin);
        if (n == 0)
            break;
        frames++;
        if (fin) {
            ck_assert_uint_eq(n, PTTH_FRAME_HEADER_LEN);
            ck_assert_uint_eq(buf[0], PTTH_FRAME_FIN);
            continue;
        }
        ck_assert_uint_le(n, sizeof(buf));
        ck_assert_uint_eq(buf[0], PTTH_FRAME_DATA);
        size_t len = ((size_t)buf[1] << 16) | ((size_t)buf[2] << 8) | buf[3];
        ck_assert_uint_eq(len, n - PTTH_FRAME_HEADER_LEN);
        for (size_t i = 0; i < len; i++)
            if (buf[PTTH_FRAME_HEADER_LEN + i] != (uint8_t)(7 + pos + i))
                ck_abort_msg("replayed byte at position %zu differs", pos + i);
        pos += len;
    }
    ck_assert_uint_eq(pos, 70000);
    ck_assert_int_eq(frames, 3); /* 39996 + 29904 bytes, then the FIN */
    ck_assert_uint_eq(ptth_bridge_resume_read_room(b), (4 << 20) - (70000 - 100));
    drop(b);
}
END_TEST

START_TEST(lost_leg_waits_without_reading)
{
    ptth_bridge *b = make(4 << 20, "upstream", NULL, true);
    send_bytes(b, 10, 0);
    ck_assert(ptth_bridge_resume_lost(b, "test"));
    ck_assert_int_eq(b->rs.state, RS_WAITING);
    ck_assert(!b->leg_open);
    ck_assert(!b->failed);
    ck_assert(!ptth_bridge_resume_live(b));
    ck_assert_uint_eq(ptth_bridge_resume_read_room(b), 0);
    ck_assert(!ptth_bridge_leg_reading_wanted(b));
    ck_assert(!ptth_bridge_resume_ack_due(b));
    /* a second loss while resuming is not one */
    ck_assert(!ptth_bridge_resume_lost(b, "again"));
    drop(b);
    /* a tunnel that is not resumable does not resume */
    b = make(4 << 20, "upstream", NULL, false);
    ck_assert(!ptth_bridge_resume_lost(b, "test"));
    drop(b);
}
END_TEST

Suite *
ptth_test_suite(void)
{
    Suite *s = suite_create("bridge_resume");
    TCase *tc = tcase_create("bridge_resume");
    tcase_add_test(tc, asks_only_with_a_buffer_and_what_resume_needs);
    tcase_add_test(tc, ack_on_a_tunnel_not_resumable_is_an_error);
    tcase_add_test(tc, ack_rules);
    tcase_add_test(tc, peer_acks_checked_and_dropped);
    tcase_add_test(tc, full_buffer_stops_reading);
    tcase_add_test(tc, full_buffer_reads_the_leg_past_a_full_local_end);
    tcase_add_test(tc, peer_window_bounds_what_is_sent);
    tcase_add_test(tc, lost_leg_drops_what_was_not_delivered);
    tcase_add_test(tc, replay_frames);
    tcase_add_test(tc, lost_leg_waits_without_reading);
    suite_add_tcase(s, tc);
    return s;
}
