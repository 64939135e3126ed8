/* Unit tests of common/frame: the SPEC §4 framed-stream codec. */
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "frame.h"

/* What a decoder produced from a whole input, flattened for comparison. */
typedef struct decoded {
    uint8_t data[1 << 17];
    size_t data_len;
    int fins, pings, rsts, data_events;
    char reason[PTTH_FRAME_REASON_MAX + 1];
    size_t reason_len;
    const char *error;
    uint64_t acks[8];    /* the values of the first ACK events */
    uint32_t windows[8]; /* and their windows */
    int nacks;
    char order[64]; /* D F R P A E per event, DATA pieces merged */
    size_t norder;
} decoded;

static void
note(decoded *out, char c)
{
    if (c == 'D' && out->norder > 0 && out->order[out->norder - 1] == 'D')
        return;
    if (out->norder < sizeof(out->order) - 1)
        out->order[out->norder++] = c;
    out->order[out->norder] = '\0';
}

/* Feeds in[0..len) to d and records every event until NEED_MORE or ERROR. */
static void
feed(ptth_frame_decoder *d, const uint8_t *in, size_t len, decoded *out)
{
    for (;;) {
        ptth_frame_event ev;
        memset(&ev, 0xa5, sizeof(ev));
        size_t used = ptth_frame_decode(d, in, len, &ev);
        ck_assert_uint_le(used, len);
        in += used;
        len -= used;
        switch (ev.type) {
        case PTTH_FRAME_EV_NEED_MORE:
            ck_assert_uint_eq(len, 0);
            return;
        case PTTH_FRAME_EV_DATA:
            ck_assert_uint_gt(ev.len, 0);
            ck_assert(ev.data + ev.len == in); /* points into the input, just consumed */
            ck_assert_uint_le(out->data_len + ev.len, sizeof(out->data));
            memcpy(out->data + out->data_len, ev.data, ev.len);
            out->data_len += ev.len;
            out->data_events++;
            note(out, 'D');
            break;
        case PTTH_FRAME_EV_FIN:
            out->fins++;
            note(out, 'F');
            break;
        case PTTH_FRAME_EV_PING:
            out->pings++;
            note(out, 'P');
            break;
        case PTTH_FRAME_EV_RST:
            ck_assert_uint_le(ev.len, PTTH_FRAME_REASON_MAX);
            memcpy(out->reason, ev.data, ev.len);
            out->reason[ev.len] = '\0';
            out->reason_len = ev.len;
            out->rsts++;
            note(out, 'R');
            break;
        case PTTH_FRAME_EV_ACK:
            ck_assert_ptr_null(ev.data);
            ck_assert_uint_eq(ev.len, 0);
            if (out->nacks < 8)
                out->acks[out->nacks] = ev.value, out->windows[out->nacks] = ev.window;
            out->nacks++;
            note(out, 'A');
            break;
        case PTTH_FRAME_EV_ERROR:
            ck_assert_ptr_nonnull(ev.error);
            out->error = ev.error;
            note(out, 'E');
            return;
        default:
            ck_abort_msg("unexpected event type %d", (int)ev.type);
        }
    }
}

static size_t
put_frame(uint8_t *buf, uint8_t type, const void *payload, uint32_t len)
{
    ptth_frame_header(buf, type, len);
    if (len > 0)
        memcpy(buf + PTTH_FRAME_HEADER_LEN, payload, len);
    return PTTH_FRAME_HEADER_LEN + len;
}

/* A stream with every frame type: PING, DATA, DATA(empty), PING(payload), DATA, FIN, PING, RST */
static size_t
sample_stream(uint8_t *buf)
{
    size_t n = 0;
    n += put_frame(buf + n, PTTH_FRAME_PING, NULL, 0);
    n += put_frame(buf + n, PTTH_FRAME_DATA, "hello ", 6);
    n += put_frame(buf + n, PTTH_FRAME_DATA, NULL, 0);
    n += put_frame(buf + n, PTTH_FRAME_PING, "xyz", 3);
    n += put_frame(buf + n, PTTH_FRAME_DATA, "world", 5);
    n += put_frame(buf + n, PTTH_FRAME_FIN, NULL, 0);
    n += put_frame(buf + n, PTTH_FRAME_PING, NULL, 0);
    n += put_frame(buf + n, PTTH_FRAME_RST, "backend closed", 14);
    return n;
}

static void
check_sample(const decoded *r)
{
    ck_assert_ptr_null(r->error);
    ck_assert_uint_eq(r->data_len, 11);
    ck_assert(memcmp(r->data, "hello world", 11) == 0);
    ck_assert_int_eq(r->fins, 1);
    ck_assert_int_eq(r->pings, 3);
    ck_assert_int_eq(r->rsts, 1);
    ck_assert_str_eq(r->reason, "backend closed");
    ck_assert_str_eq(r->order, "PDPDFPR");
}

START_TEST(header_encoding)
{
    uint8_t h[PTTH_FRAME_HEADER_LEN];
    ptth_frame_header(h, PTTH_FRAME_DATA, 0x123456);
    ck_assert(memcmp(h, "\x00\x12\x34\x56", 4) == 0);
    ptth_frame_header(h, PTTH_FRAME_RST, 0xFFFFFF);
    ck_assert(memcmp(h, "\x02\xff\xff\xff", 4) == 0);
    ptth_frame_header(h, PTTH_FRAME_FIN, 0);
    ck_assert(memcmp(h, "\x01\x00\x00\x00", 4) == 0);
    ptth_frame_header(h, PTTH_FRAME_PING, 1);
    ck_assert(memcmp(h, "\x03\x00\x00\x01", 4) == 0);
}
END_TEST

START_TEST(round_trip_all_types)
{
    static uint8_t buf[512];
    static decoded r;
    memset(&r, 0, sizeof(r));
    size_t n = sample_stream(buf);
    ptth_frame_decoder d;
    ptth_frame_decoder_init(&d, 0);
    feed(&d, buf, n, &r);
    check_sample(&r);
}
END_TEST

/* The decoder must give the same result however the network splits the input:
 * one byte at a time, and every split into two pieces. */
START_TEST(every_split)
{
    static uint8_t buf[512];
    static decoded r;
    size_t n = sample_stream(buf);
    ptth_frame_decoder d;

    memset(&r, 0, sizeof(r));
    ptth_frame_decoder_init(&d, 0);
    for (size_t i = 0; i < n; i++)
        feed(&d, buf + i, 1, &r);
    check_sample(&r);

    for (size_t cut = 0; cut <= n; cut++) {
        memset(&r, 0, sizeof(r));
        ptth_frame_decoder_init(&d, 0);
        feed(&d, buf, cut, &r);
        feed(&d, buf + cut, n - cut, &r);
        check_sample(&r);
    }
    for (size_t a = 0; a <= n; a += 3) {
        for (size_t b = a; b <= n; b += 5) {
            memset(&r, 0, sizeof(r));
            ptth_frame_decoder_init(&d, 0);
            feed(&d, buf, a, &r);
            feed(&d, buf + a, b - a, &r);
            feed(&d, buf + b, n - b, &r);
            check_sample(&r);
        }
    }
}
END_TEST

/* Truncated input yields what is complete and then waits, never errors. */
START_TEST(truncated_waits)
{
    static uint8_t buf[512];
    static decoded r;
    size_t n = sample_stream(buf);
    for (size_t cut = 0; cut < n; cut++) {
        memset(&r, 0, sizeof(r));
        ptth_frame_decoder d;
        ptth_frame_decoder_init(&d, 0);
        feed(&d, buf, cut, &r);
        ck_assert_ptr_null(r.error);
        ck_assert_int_le(r.rsts, 0);
        /* the data seen so far is a prefix of the whole */
        ck_assert(memcmp(r.data, "hello world", r.data_len) == 0);
    }
}
END_TEST

START_TEST(large_data_payload_in_pieces)
{
    static uint8_t buf[PTTH_FRAME_HEADER_LEN + 100000];
    static uint8_t payload[100000];
    static decoded r;
    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)(i * 7 + 3);
    size_t n = put_frame(buf, PTTH_FRAME_DATA, payload, sizeof(payload));
    memset(&r, 0, sizeof(r));
    ptth_frame_decoder d;
    ptth_frame_decoder_init(&d, 0);
    for (size_t off = 0; off < n; off += 4093)
        feed(&d, buf + off, n - off < 4093 ? n - off : 4093, &r);
    ck_assert_ptr_null(r.error);
    ck_assert_uint_eq(r.data_len, sizeof(payload));
    ck_assert(memcmp(r.data, payload, sizeof(payload)) == 0);
    /* no copy: one event per input piece */
    ck_assert_int_eq(r.data_events, (int)((n + 4092) / 4093));
}
END_TEST

/* max_payload bounds every frame; a length over it is an error at once. */
START_TEST(oversized_length)
{
    uint8_t buf[8];
    static decoded r;
    ptth_frame_decoder d;

    memset(&r, 0, sizeof(r));
    ptth_frame_decoder_init(&d, 1000);
    ptth_frame_header(buf, PTTH_FRAME_DATA, 1001);
    feed(&d, buf, 4, &r);
    ck_assert_ptr_nonnull(r.error);
    ck_assert_str_eq(r.error, "frame payload too large");

    memset(&r, 0, sizeof(r));
    ptth_frame_decoder_init(&d, 1000);
    ptth_frame_header(buf, PTTH_FRAME_DATA, 1000);
    feed(&d, buf, 4, &r);
    ck_assert_ptr_null(r.error);

    memset(&r, 0, sizeof(r));
    ptth_frame_decoder_init(&d, 1000);
    ptth_frame_header(buf, PTTH_FRAME_RST, 1001);
    feed(&d, buf, 4, &r);
    ck_assert_ptr_nonnull(r.error);

    /* PING payloads above 256 bytes are refused whatever max_payload says */
    memset(&r, 0, sizeof(r));
    ptth_frame_decoder_init(&d, 0);
    ptth_frame_header(buf, PTTH_FRAME_PING, 257);
    feed(&d, buf, 4, &r);
    ck_assert_str_eq(r.error, "PING payload too large");

    memset(&r, 0, sizeof(r));
    ptth_frame_decoder_init(&d, 0);
    ptth_frame_header(buf, PTTH_FRAME_PING, 256);
    feed(&d, buf, 4, &r);
    ck_assert_ptr_null(r.error);

    /* the largest length (0xFFFFFF) is accepted by default, refused when bounded */
    memset(&r, 0, sizeof(r));
    ptth_frame_decoder_init(&d, 0);
    ptth_frame_header(buf, PTTH_FRAME_DATA, PTTH_FRAME_MAX_PAYLOAD);
    feed(&d, buf, 4, &r);
    ck_assert_ptr_null(r.error);
    memset(&r, 0, sizeof(r));
    ptth_frame_decoder_init(&d, 262144);
    feed(&d, buf, 4, &r);
    ck_assert_ptr_nonnull(r.error);
}
END_TEST

START_TEST(unknown_type)
{
    for (int t = 5; t < 256; t++) {
        uint8_t buf[4] = {(uint8_t)t, 0, 0, 0};
        static decoded r;
        memset(&r, 0, sizeof(r));
        ptth_frame_decoder d;
        ptth_frame_decoder_init(&d, 0);
        feed(&d, buf, 4, &r);
        ck_assert_ptr_nonnull(r.error);
        ck_assert_str_eq(r.error, "unknown frame type");
    }
}
END_TEST

START_TEST(fin_with_payload)
{
    uint8_t buf[16];
    static decoded r;
    memset(&r, 0, sizeof(r));
    size_t n = put_frame(buf, PTTH_FRAME_FIN, "x", 1);
    ptth_frame_decoder d;
    ptth_frame_decoder_init(&d, 0);
    feed(&d, buf, n, &r);
    ck_assert_str_eq(r.error, "FIN frame with a payload");
    ck_assert_int_eq(r.fins, 0);
}
END_TEST

START_TEST(data_after_fin)
{
    uint8_t buf[32];
    static decoded r;
    memset(&r, 0, sizeof(r));
    size_t n = put_frame(buf, PTTH_FRAME_DATA, "ab", 2);
    n += put_frame(buf + n, PTTH_FRAME_FIN, NULL, 0);
    n += put_frame(buf + n, PTTH_FRAME_DATA, "cd", 2);
    ptth_frame_decoder d;
    ptth_frame_decoder_init(&d, 0);
    feed(&d, buf, n, &r);
    ck_assert_str_eq(r.order, "DFE");
    ck_assert_str_eq(r.error, "DATA frame after FIN");
    ck_assert_uint_eq(r.data_len, 2);

    /* even an empty DATA frame after FIN */
    memset(&r, 0, sizeof(r));
    n = put_frame(buf, PTTH_FRAME_FIN, NULL, 0);
    n += put_frame(buf + n, PTTH_FRAME_DATA, NULL, 0);
    ptth_frame_decoder_init(&d, 0);
    feed(&d, buf, n, &r);
    ck_assert_str_eq(r.order, "FE");

    /* and a second FIN */
    memset(&r, 0, sizeof(r));
    n = put_frame(buf, PTTH_FRAME_FIN, NULL, 0);
    n += put_frame(buf + n, PTTH_FRAME_FIN, NULL, 0);
    ptth_frame_decoder_init(&d, 0);
    feed(&d, buf, n, &r);
    ck_assert_str_eq(r.order, "FE");
}
END_TEST

/* After an error the decoder stays failed and consumes nothing. */
START_TEST(error_is_sticky)
{
    uint8_t bad[4] = {9, 0, 0, 0};
    uint8_t good[8];
    size_t n = put_frame(good, PTTH_FRAME_DATA, "abcd", 4);
    ptth_frame_decoder d;
    ptth_frame_decoder_init(&d, 0);
    ptth_frame_event ev;
    size_t used = ptth_frame_decode(&d, bad, 4, &ev);
    ck_assert_int_eq(ev.type, PTTH_FRAME_EV_ERROR);
    ck_assert_uint_le(used, 4);
    for (int i = 0; i < 3; i++) {
        used = ptth_frame_decode(&d, good, n, &ev);
        ck_assert_int_eq(ev.type, PTTH_FRAME_EV_ERROR);
        ck_assert_str_eq(ev.error, "unknown frame type");
        ck_assert_uint_eq(used, 0);
    }
}
END_TEST

START_TEST(rst_reason_bounded)
{
    static uint8_t buf[PTTH_FRAME_HEADER_LEN + 1000 + 16];
    static uint8_t reason[1000];
    static decoded r;
    memset(reason, 'r', sizeof(reason));
    memcpy(reason, "start", 5);
    size_t n = put_frame(buf, PTTH_FRAME_RST, reason, sizeof(reason));
    n += put_frame(buf + n, PTTH_FRAME_PING, NULL, 0);
    ptth_frame_decoder d;

    memset(&r, 0, sizeof(r));
    ptth_frame_decoder_init(&d, 0);
    for (size_t i = 0; i < n; i++)
        feed(&d, buf + i, 1, &r);
    ck_assert_ptr_null(r.error);
    ck_assert_int_eq(r.rsts, 1);
    ck_assert_uint_eq(r.reason_len, PTTH_FRAME_REASON_MAX);
    ck_assert(memcmp(r.reason, "startrrr", 8) == 0);
    ck_assert_str_eq(r.order, "RP");

    /* an empty reason */
    memset(&r, 0, sizeof(r));
    n = put_frame(buf, PTTH_FRAME_RST, NULL, 0);
    ptth_frame_decoder_init(&d, 0);
    feed(&d, buf, n, &r);
    ck_assert_int_eq(r.rsts, 1);
    ck_assert_uint_eq(r.reason_len, 0);
}
END_TEST

/* Random bytes: the decoder never crashes, never over-reads, and either
 * errors or keeps waiting. Run under ASan this also proves the bounds. */
START_TEST(garbage)
{
    unsigned seed = 12345;
    for (int round = 0; round < 2000; round++) {
        size_t len = (size_t)(rand_r(&seed) % 64);
        uint8_t *buf = malloc(len + 1);
        ck_assert_ptr_nonnull(buf);
        for (size_t i = 0; i < len; i++)
            buf[i] = (uint8_t)rand_r(&seed);
        /* bias toward known types so that payload paths are taken too */
        if (len > 0 && (round & 1))
            buf[0] &= 3;
        ptth_frame_decoder d;
        ptth_frame_decoder_init(&d, (uint32_t)(rand_r(&seed) % 3 == 0 ? 16 : 0));
        static decoded r;
        memset(&r, 0, sizeof(r));
        size_t step = 1 + (size_t)(rand_r(&seed) % 7);
        for (size_t off = 0; off < len && r.error == NULL; off += step)
            feed(&d, buf + off, len - off < step ? len - off : step, &r);
        free(buf);
    }
}
END_TEST

/* Plain text (e.g. an HTML error page from a proxy) is rejected at once. */
START_TEST(http_text_rejected)
{
    const char *text = "<html><body>502 Bad Gateway</body></html>";
    static decoded r;
    memset(&r, 0, sizeof(r));
    ptth_frame_decoder d;
    ptth_frame_decoder_init(&d, 262144);
    feed(&d, (const uint8_t *)text, strlen(text), &r);
    ck_assert_ptr_nonnull(r.error);
}
END_TEST

START_TEST(ack_encoding)
{
    uint8_t f[PTTH_FRAME_ACK_LEN];
    ptth_frame_ack(f, 0x0102030405060708ULL, 0x090a0b0cU);
    ck_assert(memcmp(f, "\x04\x00\x00\x0c\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c", PTTH_FRAME_ACK_LEN) == 0);
    ptth_frame_ack(f, 0, 0);
    ck_assert(memcmp(f, "\x04\x00\x00\x0c\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", PTTH_FRAME_ACK_LEN) == 0);
}
END_TEST

/* ACKs between DATA, after FIN (the other direction's), in every split of
 * the stream, the largest value included. */
START_TEST(ack_decoded_in_every_split)
{
    uint8_t buf[128];
    size_t n = 0;
    n += put_frame(buf + n, PTTH_FRAME_DATA, "ab", 2);
    ptth_frame_ack(buf + n, 131072, 4194304);
    n += PTTH_FRAME_ACK_LEN;
    n += put_frame(buf + n, PTTH_FRAME_FIN, NULL, 0);
    ptth_frame_ack(buf + n, UINT64_MAX, UINT32_MAX);
    n += PTTH_FRAME_ACK_LEN;
    for (size_t cut1 = 0; cut1 <= n; cut1++) {
        for (size_t cut2 = cut1; cut2 <= n; cut2++) {
            static decoded r;
            memset(&r, 0, sizeof(r));
            ptth_frame_decoder d;
            ptth_frame_decoder_init(&d, 0);
            feed(&d, buf, cut1, &r);
            feed(&d, buf + cut1, cut2 - cut1, &r);
            feed(&d, buf + cut2, n - cut2, &r);
            ck_assert_ptr_null(r.error);
            ck_assert_str_eq(r.order, "DAFA");
            ck_assert_int_eq(r.nacks, 2);
            ck_assert_uint_eq(r.acks[0], 131072);
            ck_assert_uint_eq(r.acks[1], UINT64_MAX);
            ck_assert_uint_eq(r.windows[0], 4194304);
            ck_assert_uint_eq(r.windows[1], UINT32_MAX);
        }
    }
}
END_TEST

START_TEST(ack_bad_length)
{
    static const uint32_t lens[] = {0, 1, 8, 11, 13, 16, 0xFFFFFF};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        uint8_t buf[PTTH_FRAME_HEADER_LEN + 16] = {0};
        ptth_frame_header(buf, PTTH_FRAME_ACK, lens[i]);
        static decoded r;
        memset(&r, 0, sizeof(r));
        ptth_frame_decoder d;
        ptth_frame_decoder_init(&d, 0);
        feed(&d, buf, sizeof(buf), &r);
        ck_assert_msg(r.error != NULL, "ACK with a payload of %u bytes accepted", lens[i]);
        if (lens[i] != 0xFFFFFF)
            ck_assert_str_eq(r.error, "ACK frame payload is not 12 bytes");
        ck_assert_int_eq(r.nacks, 0);
    }
}
END_TEST

Suite *
ptth_test_suite(void)
{
    Suite *s = suite_create("frame");
    TCase *tc = tcase_create("frame");
    tcase_add_test(tc, header_encoding);
    tcase_add_test(tc, round_trip_all_types);
    tcase_add_test(tc, every_split);
    tcase_add_test(tc, truncated_waits);
    tcase_add_test(tc, large_data_payload_in_pieces);
    tcase_add_test(tc, oversized_length);
    tcase_add_test(tc, unknown_type);
    tcase_add_test(tc, fin_with_payload);
    tcase_add_test(tc, data_after_fin);
    tcase_add_test(tc, error_is_sticky);
    tcase_add_test(tc, rst_reason_bounded);
    tcase_add_test(tc, garbage);
    tcase_add_test(tc, http_text_rejected);
    tcase_add_test(tc, ack_encoding);
    tcase_add_test(tc, ack_decoded_in_every_split);
    tcase_add_test(tc, ack_bad_length);
    suite_add_tcase(s, tc);
    return s;
}
