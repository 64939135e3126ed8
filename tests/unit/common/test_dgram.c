/* Unit tests of common/dgram: datagrams framed over a tunnel's byte stream
 * (2-byte length, payload), over one end of an AF_UNIX SOCK_SEQPACKET pair
 * as ptth_proxy's UDP sessions use it: framing, frames cut by small reads
 * and writes, the largest and the empty datagram, a broken length, a full
 * socket dropping the newest, and the two ways a session's reading ends. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check_main.h"
#include "dgram.h"

/* sv[0]: the io's socket; sv[1]: the peer the test plays. */
static int sv[2];
static ptth_dgram_io io;

static void
setup(void)
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    ptth_dgram_io_init(&io, sv[0]);
}

static void
teardown(void)
{
    ptth_dgram_io_dispose(&io);
    close(sv[0]);
    close(sv[1]);
}

static void
peer_send(const void *p, size_t len)
{
    ck_assert_int_eq(send(sv[1], p, len, 0), (ssize_t)len);
}

/* The next datagram the peer got: its length (-1: none waiting). */
static ssize_t
peer_recv(void *buf, size_t cap)
{
    ssize_t n = recv(sv[1], buf, cap, MSG_DONTWAIT);
    return n < 0 ? -1 : n;
}

START_TEST(frame_is_length_then_payload)
{
    uint8_t out[8];
    ck_assert_uint_eq(ptth_dgram_frame(out, "hello", 5), 7);
    ck_assert_int_eq(out[0], 0);
    ck_assert_int_eq(out[1], 5);
    ck_assert_int_eq(memcmp(out + 2, "hello", 5), 0);
    uint8_t *big = malloc(PTTH_DGRAM_FRAME_MAX);
    ck_assert_uint_eq(ptth_dgram_frame(big, big + 2, PTTH_DGRAM_MAX), PTTH_DGRAM_FRAME_MAX);
    ck_assert_int_eq(big[0], 0xff); /* 65507 = 0xffe3 */
    ck_assert_int_eq(big[1], 0xe3);
    free(big);
}
END_TEST

START_TEST(each_datagram_is_one_frame)
{
    peer_send("one", 3);
    peer_send("", 0);
    peer_send("three", 5);
    uint8_t buf[PTTH_DGRAM_FRAME_MAX * 2];
    ssize_t n = ptth_dgram_io_read(&io, buf, sizeof(buf));
    ck_assert_int_eq(n, 5 + 2 + 7);
    ck_assert_int_eq(memcmp(buf, "\0\3one\0\0\0\5three", 14), 0);
    ck_assert_int_eq(ptth_dgram_io_read(&io, buf, sizeof(buf)), -EAGAIN);
    ck_assert_uint_eq(io.stats.datagrams_in, 3);
}
END_TEST

/* A buffer smaller than a frame gets the frame in pieces, never two frames
 * mixed: the bytes read one piece at a time are the frames in order. */
START_TEST(small_reads_get_frames_in_pieces)
{
    char big[3000];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)(i * 7);
    peer_send(big, sizeof(big));
    peer_send("x", 1);
    uint8_t got[3100];
    size_t off = 0;
    for (int i = 0; i < 10000 && off < sizeof(big) + 2 + 3; i++) {
        ssize_t n = ptth_dgram_io_read(&io, got + off, 7);
        ck_assert_int_gt(n, 0);
        ck_assert_int_le(n, 7);
        off += (size_t)n;
    }
    ck_assert_uint_eq(off, sizeof(big) + 2 + 3);
    ck_assert_int_eq(got[0], sizeof(big) >> 8);
    ck_assert_int_eq(got[1], sizeof(big) & 0xff);
    ck_assert_int_eq(memcmp(got + 2, big, sizeof(big)), 0);
    ck_assert_int_eq(memcmp(got + 2 + sizeof(big), "\0\1x", 3), 0);
    ck_assert_int_eq(ptth_dgram_io_read(&io, got, 7), -EAGAIN);
}
END_TEST

/* Frames cut anywhere by the writes (as DATA frames and chunks cut them)
 * leave as whole datagrams, in order; every byte is always taken. */
START_TEST(writes_cut_anywhere_give_whole_datagrams)
{
    uint8_t stream[64];
    size_t len = 0;
    len += ptth_dgram_frame(stream + len, "alpha", 5);
    len += ptth_dgram_frame(stream + len, "", 0);
    len += ptth_dgram_frame(stream + len, "be", 2);
    len += ptth_dgram_frame(stream + len, "gamma ray", 9);
    for (size_t cut = 1; cut <= len; cut++) { /* pieces of `cut` bytes */
        for (size_t off = 0; off < len; off += cut) {
            size_t n = len - off < cut ? len - off : cut;
            ck_assert_int_eq(ptth_dgram_io_write(&io, stream + off, n), (ssize_t)n);
        }
        char buf[32];
        ck_assert_int_eq(peer_recv(buf, sizeof(buf)), 5);
        ck_assert_int_eq(memcmp(buf, "alpha", 5), 0);
        ck_assert_int_eq(peer_recv(buf, sizeof(buf)), 0);
        ck_assert_int_eq(peer_recv(buf, sizeof(buf)), 2);
        ck_assert_int_eq(memcmp(buf, "be", 2), 0);
        ck_assert_int_eq(peer_recv(buf, sizeof(buf)), 9);
        ck_assert_int_eq(memcmp(buf, "gamma ray", 9), 0);
        ck_assert_int_eq(peer_recv(buf, sizeof(buf)), -1);
    }
    ck_assert_uint_eq(io.stats.datagrams_out, 4 * len);
    ck_assert_uint_eq(io.stats.dropped, 0);
}
END_TEST

START_TEST(largest_datagram_both_ways)
{
    int size = 1 << 20;
    ck_assert_int_eq(setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size)), 0);
    ck_assert_int_eq(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size)), 0);
    uint8_t *d = malloc(PTTH_DGRAM_MAX);
    for (size_t i = 0; i < PTTH_DGRAM_MAX; i++)
        d[i] = (uint8_t)(i ^ (i >> 8));
    peer_send(d, PTTH_DGRAM_MAX);
    uint8_t *buf = malloc(PTTH_DGRAM_FRAME_MAX);
    ck_assert_int_eq(ptth_dgram_io_read(&io, buf, PTTH_DGRAM_FRAME_MAX), PTTH_DGRAM_FRAME_MAX);
    ck_assert_int_eq(memcmp(buf + 2, d, PTTH_DGRAM_MAX), 0);
    ck_assert_int_eq(ptth_dgram_io_write(&io, buf, PTTH_DGRAM_FRAME_MAX), PTTH_DGRAM_FRAME_MAX);
    uint8_t *back = malloc(PTTH_DGRAM_MAX + 10);
    ck_assert_int_eq(peer_recv(back, PTTH_DGRAM_MAX + 10), PTTH_DGRAM_MAX);
    ck_assert_int_eq(memcmp(back, d, PTTH_DGRAM_MAX), 0);
    free(back);
    free(buf);
    free(d);
}
END_TEST

/* A length above 65507 cannot be a UDP datagram: the stream is broken. */
START_TEST(length_above_max_is_eproto)
{
    ck_assert_int_eq(ptth_dgram_io_write(&io, "\xff\xe4", 2), -EPROTO);
    ptth_dgram_io_dispose(&io);
    ptth_dgram_io_init(&io, sv[0]);
    ck_assert_int_eq(ptth_dgram_io_write(&io, "\xff", 1), 1); /* cut after one byte of the length */
    ck_assert_int_eq(ptth_dgram_io_write(&io, "\xff", 1), -EPROTO);
    ptth_dgram_io_dispose(&io);
    ptth_dgram_io_init(&io, sv[0]);
    ck_assert_int_eq(ptth_dgram_io_write(&io, "\0\1a\xff\xff", 5), -EPROTO); /* after a good frame */
    char buf[4];
    ck_assert_int_eq(peer_recv(buf, sizeof(buf)), 1);
}
END_TEST

/* The peer does not read: once its queue is full, the newest datagrams are
 * dropped and counted; the writes still take every byte (no backpressure),
 * and what arrives is the oldest ones, in order. */
START_TEST(full_socket_drops_the_newest)
{
    uint8_t frame[2 + 1000];
    uint64_t sent = 0;
    for (uint32_t i = 0; i < 5000 && io.stats.dropped == 0; i++) {
        memset(frame + 2, 0, 1000);
        memcpy(frame + 2, &i, sizeof(i));
        ptth_dgram_frame(frame, frame + 2, 1000);
        ck_assert_int_eq(ptth_dgram_io_write(&io, frame, sizeof(frame)), (ssize_t)sizeof(frame));
        sent++;
    }
    ck_assert_uint_gt(io.stats.dropped, 0);
    ck_assert_uint_eq(io.stats.datagrams_out + io.stats.dropped, sent);
    for (int i = 0; i < 10; i++) /* still full: dropped, still taken */
        ck_assert_int_eq(ptth_dgram_io_write(&io, frame, sizeof(frame)), (ssize_t)sizeof(frame));
    ck_assert_uint_eq(io.stats.dropped, sent - io.stats.datagrams_out + 10);
    char buf[1100];
    uint32_t want = 0;
    for (ssize_t n; (n = peer_recv(buf, sizeof(buf))) >= 0; want++) {
        ck_assert_int_eq(n, 1000);
        uint32_t seq;
        memcpy(&seq, buf, sizeof(seq));
        ck_assert_uint_eq(seq, want);
    }
    ck_assert_uint_eq(want, io.stats.datagrams_out);
}
END_TEST

/* The other end shut its writing (ptth_proxy's idle timer): the datagrams
 * queued before come out, an empty datagram stays an empty frame, then the
 * read says end of stream. */
START_TEST(peer_shutdown_ends_reading_after_the_queue)
{
    peer_send("last", 4);
    peer_send("", 0);
    ck_assert_int_eq(shutdown(sv[1], SHUT_WR), 0);
    uint8_t buf[PTTH_DGRAM_FRAME_MAX];
    uint8_t small[4];
    ck_assert_int_eq(ptth_dgram_io_read(&io, small, sizeof(small)), 4); /* a frame cut by a small buffer */
    ck_assert_int_eq(memcmp(small, "\0\4la", 4), 0);
    ck_assert_int_eq(ptth_dgram_io_read(&io, buf, sizeof(buf)), 2);
    ck_assert_int_eq(memcmp(buf, "st", 2), 0);
    ssize_t n = ptth_dgram_io_read(&io, buf, sizeof(buf));
    if (n == 2) /* the empty datagram, then the end */
        n = ptth_dgram_io_read(&io, buf, sizeof(buf));
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(ptth_dgram_io_read(&io, buf, sizeof(buf)), 0);
}
END_TEST

/* finish (the other side's FIN): what was queued comes out, then 0, also
 * on a socket whose shut reading says EAGAIN rather than 0 (UDP). */
START_TEST(finish_ends_reading_after_the_queue)
{
    peer_send("queued", 6);
    ck_assert_int_eq(ptth_dgram_io_finish(&io), 0);
    uint8_t buf[PTTH_DGRAM_FRAME_MAX];
    ck_assert_int_eq(ptth_dgram_io_read(&io, buf, sizeof(buf)), 8);
    ck_assert_int_eq(memcmp(buf, "\0\6queued", 8), 0);
    ck_assert_int_eq(ptth_dgram_io_read(&io, buf, sizeof(buf)), 0);

    int u = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(u, 0);
    ptth_dgram_io uio;
    ptth_dgram_io_init(&uio, u);
    ck_assert_int_eq(ptth_dgram_io_read(&uio, buf, sizeof(buf)), -EAGAIN);
    ck_assert_int_eq(ptth_dgram_io_finish(&uio), 0); /* not connected: ENOTCONN is fine */
    ck_assert_int_eq(ptth_dgram_io_read(&uio, buf, sizeof(buf)), 0);
    ptth_dgram_io_dispose(&uio);
    close(u);
}
END_TEST

Suite *
ptth_test_suite(void)
{
    Suite *s = suite_create("dgram");
    TCase *tc = tcase_create("dgram");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, frame_is_length_then_payload);
    tcase_add_test(tc, each_datagram_is_one_frame);
    tcase_add_test(tc, small_reads_get_frames_in_pieces);
    tcase_add_test(tc, writes_cut_anywhere_give_whole_datagrams);
    tcase_add_test(tc, largest_datagram_both_ways);
    tcase_add_test(tc, length_above_max_is_eproto);
    tcase_add_test(tc, full_socket_drops_the_newest);
    tcase_add_test(tc, peer_shutdown_ends_reading_after_the_queue);
    tcase_add_test(tc, finish_ends_reading_after_the_queue);
    suite_add_tcase(s, tc);
    return s;
}
