/* Unit tests of common/resume_buf: the sent-but-unacknowledged DATA bytes of
 * one direction of a resumable tunnel. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "resume_buf.h"

/* Byte i of the test stream: position-dependent, so that a replay from the
 * wrong place shows. */
static uint8_t
byte_at(uint64_t pos)
{
    return (uint8_t)(pos * 131 + (pos >> 11));
}

static void
append_stream(ptth_resume_buf *rb, size_t len)
{
    uint8_t *buf = malloc(len > 0 ? len : 1);
    ck_assert_ptr_nonnull(buf);
    for (size_t i = 0; i < len; i++)
        buf[i] = byte_at(rb->sent + i);
    ck_assert_int_eq(ptth_resume_buf_append(rb, buf, len), 0);
    free(buf);
}

/* Reads [from, sent) through peek() and checks every byte. */
static void
check_replay(const ptth_resume_buf *rb, uint64_t from)
{
    uint64_t pos = from;
    for (;;) {
        const uint8_t *p;
        long n = ptth_resume_buf_peek(rb, pos, &p);
        ck_assert_int_ge(n, 0);
        if (n == 0)
            break;
        ck_assert_int_le(n, 1 << 18); /* a piece, or an adopted buffer's bytes */
        long bad = -1;
        for (long i = 0; i < n && bad < 0; i++)
            if (p[i] != byte_at(pos + (uint64_t)i))
                bad = i;
        ck_assert_msg(bad < 0, "byte at position %llu differs", (unsigned long long)(pos + (uint64_t)bad));
        pos += (uint64_t)n;
    }
    ck_assert_uint_eq(pos, rb->sent);
}

START_TEST(empty_holds_nothing)
{
    ptth_resume_buf rb;
    ptth_resume_buf_init(&rb, 4 << 20);
    ck_assert_ptr_null(rb.head);
    ck_assert_uint_eq(ptth_resume_buf_room(&rb), 4 << 20);
    ck_assert_uint_eq(ptth_resume_buf_held(&rb), 0);
    const uint8_t *p;
    ck_assert_int_eq(ptth_resume_buf_peek(&rb, 0, &p), 0);
    ck_assert_int_eq(ptth_resume_buf_peek(&rb, 1, &p), -ERANGE);
    ck_assert_int_eq(ptth_resume_buf_ack(&rb, 0), 0);
    ck_assert_int_eq(ptth_resume_buf_append(&rb, "", 0), 0);
    ck_assert_ptr_null(rb.head); /* an empty append takes no piece */
}
END_TEST

START_TEST(append_ack_replay_across_pieces)
{
    ptth_resume_buf rb;
    ptth_resume_buf_init(&rb, 1 << 20);
    append_stream(&rb, 10);
    append_stream(&rb, PTTH_RESUME_PIECE - 10); /* exactly one piece */
    append_stream(&rb, 1);                      /* the first byte of the second */
    append_stream(&rb, 3 * PTTH_RESUME_PIECE + 77);
    uint64_t total = 4 * PTTH_RESUME_PIECE + 78;
    ck_assert_uint_eq(rb.sent, total);
    ck_assert_uint_eq(ptth_resume_buf_held(&rb), total);
    ck_assert_uint_eq(ptth_resume_buf_room(&rb), (1 << 20) - total);
    check_replay(&rb, 0);
    check_replay(&rb, PTTH_RESUME_PIECE - 1);
    check_replay(&rb, PTTH_RESUME_PIECE);
    check_replay(&rb, total - 1);
    check_replay(&rb, total);
    /* ack piece by piece, across boundaries */
    uint64_t acks[] = {1, PTTH_RESUME_PIECE - 1, PTTH_RESUME_PIECE, PTTH_RESUME_PIECE, 2 * PTTH_RESUME_PIECE + 5, total - 1};
    for (size_t i = 0; i < sizeof(acks) / sizeof(acks[0]); i++) {
        ck_assert_int_eq(ptth_resume_buf_ack(&rb, acks[i]), 0);
        ck_assert_uint_eq(rb.acked, acks[i]);
        ck_assert_uint_eq(ptth_resume_buf_held(&rb), total - acks[i]);
        check_replay(&rb, acks[i]);
        const uint8_t *p;
        ck_assert_int_eq(ptth_resume_buf_peek(&rb, acks[i] - (acks[i] > 0 ? 1 : 0), &p), acks[i] > 0 ? -ERANGE : 1);
    }
    ck_assert_int_eq(ptth_resume_buf_ack(&rb, total), 0);
    ck_assert_ptr_null(rb.head); /* everything acknowledged: no piece held */
    ck_assert_ptr_null(rb.tail);
    /* and it goes on from there */
    append_stream(&rb, 5);
    check_replay(&rb, total);
    ptth_resume_buf_clear(&rb);
    ck_assert_ptr_null(rb.head);
    ck_assert_uint_eq(rb.acked, rb.sent);
}
END_TEST

static int releases;
static size_t released_bytes;

static void
count_release(void *buf, size_t size)
{
    releases++;
    released_bytes += size;
    free(buf);
}

/* The caller's buffer of size bytes holding the next len bytes of the
 * stream at offset off, adopted. */
static int
adopt_stream(ptth_resume_buf *rb, size_t off, size_t len, size_t size)
{
    uint8_t *buf = malloc(size);
    ck_assert_ptr_nonnull(buf);
    for (size_t i = 0; i < len; i++)
        buf[off + i] = byte_at(rb->sent + i);
    int rc = ptth_resume_buf_adopt(rb, buf + off, len, buf, size, count_release);
    if (rc != 0)
        free(buf); /* still ours */
    return rc;
}

/* Adopted buffers (no copy) between copied bytes: the order, the replay,
 * the acks across them, each buffer given back once with its last byte
 * acknowledged (or at clear), none when refused. */
START_TEST(adopted_buffers_between_copies)
{
    releases = 0;
    released_bytes = 0;
    ptth_resume_buf rb;
    ptth_resume_buf_init(&rb, 1 << 20);
    append_stream(&rb, 10); /* a small piece, mostly empty: it stays so */
    ck_assert_int_eq(adopt_stream(&rb, 7, 100000, 120000), 0);
    append_stream(&rb, 5000); /* a new piece after the adopted one */
    ck_assert_int_eq(adopt_stream(&rb, 4, 70000, 262144), 0);
    append_stream(&rb, 3);
    uint64_t total = 10 + 100000 + 5000 + 70000 + 3;
    ck_assert_uint_eq(rb.sent, total);
    /* past the first 64 KiB held, copies go to large pieces */
    ck_assert_uint_eq(ptth_resume_buf_footprint(&rb), PTTH_RESUME_PIECE_SMALL + 120000 + PTTH_RESUME_PIECE + 262144 + PTTH_RESUME_PIECE);
    uint64_t at[] = {0, 9, 10, 11, 100009, 100010, 105009, 105010, 175009, 175010, total};
    for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++)
        check_replay(&rb, at[i]);
    /* too large for the room: refused, the buffer stays the caller's */
    ck_assert_int_eq(adopt_stream(&rb, 0, (1 << 20) - (size_t)total + 1, (1 << 20)), -ENOBUFS);
    ck_assert_int_eq(releases, 0);
    ck_assert_int_eq(ptth_resume_buf_ack(&rb, 50000), 0); /* inside the first adopted one */
    ck_assert_int_eq(releases, 0);
    check_replay(&rb, 50000);
    ck_assert_int_eq(ptth_resume_buf_ack(&rb, 100010), 0); /* its last byte */
    ck_assert_int_eq(releases, 1);
    ck_assert_uint_eq(released_bytes, 120000);
    check_replay(&rb, 100010);
    ck_assert_int_eq(ptth_resume_buf_ack(&rb, 105011), 0); /* into the second */
    check_replay(&rb, 105011);
    ptth_resume_buf_clear(&rb);
    ck_assert_int_eq(releases, 2);
    ck_assert_uint_eq(released_bytes, 120000 + 262144);
    ck_assert_ptr_null(rb.head);
    /* a buffer adopted into an empty one, then acknowledged whole */
    ck_assert_int_eq(adopt_stream(&rb, 0, 1000, 1000), 0);
    ck_assert_ptr_eq(rb.head, rb.tail);
    check_replay(&rb, rb.acked);
    ck_assert_int_eq(ptth_resume_buf_ack(&rb, rb.sent), 0);
    ck_assert_int_eq(releases, 3);
    ck_assert_ptr_null(rb.head);
    ptth_resume_buf_release_pool();
}
END_TEST

/* Small pieces for the first 64 KiB, large ones after: a full 4 MiB
 * buffer costs about 4 MiB, a few bytes 4 KiB. */
START_TEST(piece_sizes)
{
    ptth_resume_buf rb;
    ptth_resume_buf_init(&rb, 4 << 20);
    append_stream(&rb, 1);
    ck_assert_uint_eq(ptth_resume_buf_footprint(&rb), PTTH_RESUME_PIECE_SMALL);
    append_stream(&rb, PTTH_RESUME_PIECE_SMALL); /* one byte into the second small piece */
    ck_assert_uint_eq(ptth_resume_buf_footprint(&rb), 2 * PTTH_RESUME_PIECE_SMALL);
    append_stream(&rb, (4 << 20) - 1 - PTTH_RESUME_PIECE_SMALL);
    ck_assert_uint_eq(ptth_resume_buf_room(&rb), 0);
    size_t fp = ptth_resume_buf_footprint(&rb);
    ck_assert_uint_ge(fp, 4 << 20);
    ck_assert_uint_le(fp, (4 << 20) + PTTH_RESUME_PIECE);
    check_replay(&rb, 0);
    check_replay(&rb, PTTH_RESUME_PIECE_SMALL - 1);
    check_replay(&rb, PTTH_RESUME_PIECE + 3);
    ck_assert_int_eq(ptth_resume_buf_ack(&rb, PTTH_RESUME_PIECE + 3), 0);
    check_replay(&rb, PTTH_RESUME_PIECE + 3);
    ptth_resume_buf_clear(&rb);
    ck_assert_uint_eq(ptth_resume_buf_footprint(&rb), 0);
}
END_TEST

START_TEST(bad_acks_change_nothing)
{
    ptth_resume_buf rb;
    ptth_resume_buf_init(&rb, 1 << 20);
    append_stream(&rb, 1000);
    ck_assert_int_eq(ptth_resume_buf_ack(&rb, 1001), -ERANGE); /* above sent */
    ck_assert_int_eq(ptth_resume_buf_ack(&rb, UINT64_MAX), -ERANGE);
    ck_assert_int_eq(ptth_resume_buf_ack(&rb, 400), 0);
    ck_assert_int_eq(ptth_resume_buf_ack(&rb, 399), -ERANGE); /* going back */
    ck_assert_int_eq(ptth_resume_buf_ack(&rb, 0), -ERANGE);
    ck_assert_int_eq(ptth_resume_buf_ack(&rb, 400), 0); /* the same again is fine */
    ck_assert_uint_eq(rb.acked, 400);
    ck_assert_uint_eq(rb.sent, 1000);
    check_replay(&rb, 400);
    const uint8_t *p;
    ck_assert_int_eq(ptth_resume_buf_peek(&rb, 1001, &p), -ERANGE);
    ck_assert_int_eq(ptth_resume_buf_peek(&rb, 399, &p), -ERANGE);
    ptth_resume_buf_clear(&rb);
}
END_TEST

START_TEST(full_is_bounded)
{
    const size_t cap = 512 * 1024;
    ptth_resume_buf rb;
    ptth_resume_buf_init(&rb, cap);
    append_stream(&rb, cap - 1);
    ck_assert_uint_eq(ptth_resume_buf_room(&rb), 1);
    uint8_t two[2] = {0, 0};
    ck_assert_int_eq(ptth_resume_buf_append(&rb, two, 2), -ENOBUFS);
    ck_assert_uint_eq(rb.sent, cap - 1); /* nothing appended */
    append_stream(&rb, 1);
    ck_assert_uint_eq(ptth_resume_buf_room(&rb), 0);
    ck_assert_int_eq(ptth_resume_buf_append(&rb, two, 1), -ENOBUFS);
    /* an ack makes exactly that much room */
    ck_assert_int_eq(ptth_resume_buf_ack(&rb, 100), 0);
    ck_assert_uint_eq(ptth_resume_buf_room(&rb), 100);
    append_stream(&rb, 100);
    check_replay(&rb, 100);
    ptth_resume_buf_clear(&rb);
}
END_TEST

/* Many tunnels with a few bytes each hold a piece each, not a capacity. */
START_TEST(pieces_come_back)
{
    enum { N = 1000 };
    static ptth_resume_buf rbs[N];
    for (int i = 0; i < N; i++) {
        ptth_resume_buf_init(&rbs[i], 4 << 20);
        append_stream(&rbs[i], 10);
        ck_assert_ptr_eq(rbs[i].head, rbs[i].tail);
        ck_assert_uint_eq(ptth_resume_buf_footprint(&rbs[i]), PTTH_RESUME_PIECE_SMALL);
    }
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(ptth_resume_buf_ack(&rbs[i], 10), 0);
        ck_assert_ptr_null(rbs[i].head);
        ck_assert_uint_eq(ptth_resume_buf_footprint(&rbs[i]), 0);
    }
    ptth_resume_buf_release_pool();
}
END_TEST

START_TEST(option_values)
{
    char err[160];
    ck_assert_int_eq(ptth_resume_buffer_check("0", err, sizeof(err)), 0);
    ck_assert_int_eq(ptth_resume_buffer_check("524288", err, sizeof(err)), 0);
    ck_assert_int_eq(ptth_resume_buffer_check("4194304", err, sizeof(err)), 0);
    ck_assert_int_eq(ptth_resume_buffer_check("1073741824", err, sizeof(err)), 0);
    ck_assert_int_eq(ptth_resume_buffer_check("524287", err, sizeof(err)), -1);
    ck_assert_str_eq(err, "524287 bytes is out of range: 0 (no resumption) or 524288 to 1073741824");
    ck_assert_int_eq(ptth_resume_buffer_check("1073741825", err, sizeof(err)), -1);
    ck_assert_int_eq(ptth_resume_buffer_check("4M", err, sizeof(err)), -1);
    ck_assert_str_eq(err, "'4M' is not a number of bytes (decimal digits only; 0 turns resumption off)");
    ck_assert_int_eq(ptth_resume_buffer_check("-1", err, sizeof(err)), -1);
    ck_assert_int_eq(ptth_resume_buffer_check("99999999999999999999", err, sizeof(err)), -1);
}
END_TEST

Suite *
ptth_test_suite(void)
{
    Suite *s = suite_create("resume_buf");
    TCase *tc = tcase_create("resume_buf");
    tcase_add_test(tc, empty_holds_nothing);
    tcase_add_test(tc, append_ack_replay_across_pieces);
    tcase_add_test(tc, piece_sizes);
    tcase_add_test(tc, bad_acks_change_nothing);
    tcase_add_test(tc, full_is_bounded);
    tcase_add_test(tc, pieces_come_back);
    tcase_add_test(tc, adopted_buffers_between_copies);
    tcase_add_test(tc, option_values);
    suite_add_tcase(s, tc);
    return s;
}
