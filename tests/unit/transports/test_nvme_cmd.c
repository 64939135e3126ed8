/* Unit tests: encoding of the nvme_csd relay commands (every field of struct
 * nvme_passthru_cmd for each subcommand), decoding of what the drive returns,
 * and the emulator carrier's wire format. */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>

#include "check_main.h"
#include "csd_proto.h"
#include "nvme_cmd.h"

static unsigned char buf[PTTH_NVME_BUF] __attribute__((aligned(4096)));
#define BUF_ADDR ((uint64_t)(uintptr_t)buf)

/* What a relay command must hold: the admin opcode 0xC0 and these fields,
 * every field not named here zero. */
typedef struct want_cmd {
    uint64_t addr;
    uint32_t data_len, cdw10, cdw11, cdw12, cdw13, timeout_ms;
} want_cmd;

static void
assert_command(const struct nvme_passthru_cmd *c, want_cmd w)
{
    ck_assert_uint_eq(c->opcode, 0xC0);
    ck_assert_uint_eq(c->addr, w.addr);
    ck_assert_uint_eq(c->data_len, w.data_len);
    ck_assert_uint_eq(c->cdw10, w.cdw10);
    ck_assert_uint_eq(c->cdw11, w.cdw11);
    ck_assert_uint_eq(c->cdw12, w.cdw12);
    ck_assert_uint_eq(c->cdw13, w.cdw13);
    ck_assert_uint_eq(c->timeout_ms, w.timeout_ms);
    /* the fields no subcommand uses */
    ck_assert_uint_eq(c->flags, 0);
    ck_assert_uint_eq(c->rsvd1, 0);
    ck_assert_uint_eq(c->nsid, 0);
    ck_assert_uint_eq(c->cdw2, 0);
    ck_assert_uint_eq(c->cdw3, 0);
    ck_assert_uint_eq(c->metadata, 0);
    ck_assert_uint_eq(c->metadata_len, 0);
    ck_assert_uint_eq(c->cdw14, 0);
    ck_assert_uint_eq(c->cdw15, 0);
    ck_assert_uint_eq(c->result, 0);
}

START_TEST(struct_layout)
{
    /* the ioctl ABI: 72 bytes, cdw10 at 40 */
    ck_assert_uint_eq(sizeof(struct nvme_passthru_cmd), 72);
    unsigned long req = NVME_IOCTL_ADMIN_CMD;
    ck_assert_uint_eq(req, 0xC0484E41u);
}
END_TEST

START_TEST(encode_open)
{
    struct nvme_passthru_cmd c;
    memset(&c, 0xAB, sizeof(c));
    memset(buf, 0xEE, sizeof(buf));
    ck_assert_int_eq(ptth_nvme_encode_open(&c, buf, "10.0.0.7", "22"), 0);
    assert_command(&c, (want_cmd){.addr = BUF_ADDR, .data_len = 4096, .cdw10 = 128});
    /* node[256] then service[256], NUL-padded, then zeros to 4 KiB */
    ck_assert_str_eq((char *)buf, "10.0.0.7");
    for (size_t i = strlen("10.0.0.7"); i < 256; i++)
        ck_assert_uint_eq(buf[i], 0);
    ck_assert_str_eq((char *)buf + 256, "22");
    for (size_t i = 258; i < sizeof(buf); i++)
        ck_assert_uint_eq(buf[i], 0);
}
END_TEST

START_TEST(encode_open_limits)
{
    struct nvme_passthru_cmd c;
    char node[300];
    memset(node, 'n', 255);
    node[255] = '\0';
    ck_assert_int_eq(ptth_nvme_encode_open(&c, buf, node, "1"), 0);
    ck_assert_uint_eq(buf[254], 'n');
    ck_assert_uint_eq(buf[255], 0);
    node[255] = 'n';
    node[256] = '\0';
    ck_assert_int_eq(ptth_nvme_encode_open(&c, buf, node, "1"), -ENAMETOOLONG);
    ck_assert_int_eq(ptth_nvme_encode_open(&c, buf, "x", node), -ENAMETOOLONG);
    ck_assert_int_eq(ptth_nvme_encode_open(&c, buf, "", "22"), -EINVAL);
    ck_assert_int_eq(ptth_nvme_encode_open(&c, buf, "x", ""), -EINVAL);
}
END_TEST

START_TEST(encode_write)
{
    struct nvme_passthru_cmd c;
    memset(&c, 0xAB, sizeof(c));
    unsigned char data[4096];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (unsigned char)(i * 7);
    ck_assert_int_eq(ptth_nvme_encode_write(&c, buf, 0x12345, data, 100), 0);
    assert_command(&c, (want_cmd){.addr = BUF_ADDR, .data_len = 4096, .cdw10 = 64, .cdw11 = 1, .cdw12 = 100, .cdw13 = 0x12345});
    ck_assert_int_eq(memcmp(buf, data, 100), 0);
    /* full buffer; data already in place */
    memcpy(buf, data, 4096);
    ck_assert_int_eq(ptth_nvme_encode_write(&c, buf, 7, buf, 4096), 0);
    ck_assert_uint_eq(c.cdw12, 4096);
    ck_assert_int_eq(memcmp(buf, data, 4096), 0);
    ck_assert_int_eq(ptth_nvme_encode_write(&c, buf, 7, data, 0), -EINVAL);
    ck_assert_int_eq(ptth_nvme_encode_write(&c, buf, 7, data, 4097), -EINVAL);
}
END_TEST

START_TEST(encode_read)
{
    struct nvme_passthru_cmd c;
    memset(&c, 0xAB, sizeof(c));
    ptth_nvme_encode_read(&c, buf, 42);
    /* reads wait for data: the longest timeout instead of the kernel's 60 s */
    assert_command(&c, (want_cmd){.addr = BUF_ADDR, .data_len = 4096, .cdw10 = 64, .cdw13 = 42, .timeout_ms = UINT32_MAX});
    /* descriptors are int32 in CDW13 */
    ptth_nvme_encode_read(&c, buf, INT32_MAX);
    ck_assert_uint_eq(c.cdw13, 0x7fffffffu);
}
END_TEST

START_TEST(encode_close)
{
    struct nvme_passthru_cmd c;
    memset(&c, 0xAB, sizeof(c));
    ptth_nvme_encode_close(&c, 9);
    assert_command(&c, (want_cmd){.cdw10 = 129, .cdw13 = 9});
}
END_TEST

START_TEST(decode_results)
{
    int32_t d = -5;
    unsigned char b[8] = {0x2a, 0x00, 0x01, 0x00};
    ck_assert_int_eq(ptth_nvme_decode_open(b, &d), 0);
    ck_assert_int_eq(d, 0x1002a);
    unsigned char neg[4] = {0xff, 0xff, 0xff, 0xff};
    ck_assert_int_eq(ptth_nvme_decode_open(neg, &d), -EPROTO);

    uint32_t len = 0;
    unsigned char r[4] = {0xfc, 0x0f, 0, 0}; /* 4092 */
    ck_assert_int_eq(ptth_nvme_decode_read(r, &len), 0);
    ck_assert_uint_eq(len, 4092);
    r[0] = 0xfd; /* 4093 */
    ck_assert_int_eq(ptth_nvme_decode_read(r, &len), -EPROTO);
    unsigned char z[4] = {0, 0, 0, 0};
    ck_assert_int_eq(ptth_nvme_decode_read(z, &len), 0);
    ck_assert_uint_eq(len, 0);
    /* a read leaves a sentinel that a drive must overwrite */
    struct nvme_passthru_cmd c;
    ptth_nvme_encode_read(&c, buf, 1);
    ck_assert_int_eq(ptth_nvme_decode_read(buf, &len), -EPROTO);
}
END_TEST

START_TEST(status_texts)
{
    ck_assert_str_eq(ptth_nvme_status_text(0), "success");
    ck_assert_ptr_nonnull(strstr(ptth_nvme_status_text(0x4001), "invalid command opcode"));
    ck_assert_str_eq(ptth_nvme_status_text(PTTH_NVME_SC_BAD_DESCRIPTOR), "bad relay descriptor");
    ck_assert_str_eq(ptth_nvme_status_text(0x0123), "command failed");
}
END_TEST

START_TEST(proto_request_round_trip)
{
    struct nvme_passthru_cmd c, d;
    unsigned char data[100];
    memset(data, 0x5a, sizeof(data));
    ck_assert_int_eq(ptth_nvme_encode_write(&c, buf, 77, data, sizeof(data)), 0);
    c.nsid = 0x01020304;
    c.flags = 3;
    c.rsvd1 = 0xbeef;
    c.cdw14 = 0xa1b2c3d4;
    static unsigned char wire[4 + PTTH_CSD_REQ_BODY_MAX];
    int n = ptth_csd_encode_request(&c, buf, 100, wire);
    ck_assert_int_eq(n, 4 + 72 + 100);
    /* length prefix and a few fields at their documented offsets */
    ck_assert_uint_eq(ptth_get_le32(wire), 172);
    ck_assert_uint_eq(wire[4], 0xC0);
    ck_assert_uint_eq(wire[5], 3);
    ck_assert_uint_eq(ptth_get_le32(wire + 4 + 4), 0x01020304);
    ck_assert_uint_eq(ptth_get_le32(wire + 4 + 24), 0); /* addr is not sent */
    ck_assert_uint_eq(ptth_get_le32(wire + 4 + 36), 4096);
    ck_assert_uint_eq(ptth_get_le32(wire + 4 + 40), 64);
    ck_assert_uint_eq(ptth_get_le32(wire + 4 + 52), 77);
    const unsigned char *dp;
    size_t dl;
    ck_assert_int_eq(ptth_csd_decode_request(wire + 4, (size_t)n - 4, &d, &dp, &dl), 0);
    ck_assert_uint_eq(d.opcode, c.opcode);
    ck_assert_uint_eq(d.flags, 3);
    ck_assert_uint_eq(d.rsvd1, 0xbeef);
    ck_assert_uint_eq(d.nsid, c.nsid);
    ck_assert_uint_eq(d.addr, 0);
    ck_assert_uint_eq(d.data_len, 4096);
    ck_assert_uint_eq(d.cdw10, 64);
    ck_assert_uint_eq(d.cdw11, 1);
    ck_assert_uint_eq(d.cdw12, 100);
    ck_assert_uint_eq(d.cdw13, 77);
    ck_assert_uint_eq(d.cdw14, 0xa1b2c3d4);
    ck_assert_uint_eq(dl, 100);
    ck_assert_int_eq(memcmp(dp, data, 100), 0);
    ck_assert_int_eq(ptth_csd_encode_request(&c, buf, 4097, wire), -EINVAL);
}
END_TEST

START_TEST(proto_malformed)
{
    struct nvme_passthru_cmd d;
    const unsigned char *dp;
    size_t dl;
    static unsigned char body[PTTH_CSD_REQ_BODY_MAX + 1];
    ck_assert_int_eq(ptth_csd_decode_request(body, 0, &d, &dp, &dl), -EINVAL);
    ck_assert_int_eq(ptth_csd_decode_request(body, 71, &d, &dp, &dl), -EINVAL);
    ck_assert_int_eq(ptth_csd_decode_request(body, 72, &d, &dp, &dl), 0);
    ck_assert_uint_eq(dl, 0);
    ck_assert_int_eq(ptth_csd_decode_request(body, PTTH_CSD_REQ_BODY_MAX, &d, &dp, &dl), 0);
    ck_assert_int_eq(ptth_csd_decode_request(body, PTTH_CSD_REQ_BODY_MAX + 1, &d, &dp, &dl), -EINVAL);

    uint32_t st, res;
    ck_assert_int_eq(ptth_csd_decode_response(body, 7, &st, &res, &dp, &dl), -EINVAL);
    ck_assert_int_eq(ptth_csd_decode_response(body, 8 + 4097, &st, &res, &dp, &dl), -EINVAL);
    static unsigned char wire[4 + PTTH_CSD_RESP_BODY_MAX];
    unsigned char four[4] = {1, 2, 3, 4};
    ck_assert_int_eq(ptth_csd_encode_response(0x0702, 111, four, 4, wire), 16);
    ck_assert_int_eq(ptth_csd_decode_response(wire + 4, 12, &st, &res, &dp, &dl), 0);
    ck_assert_uint_eq(st, 0x0702);
    ck_assert_uint_eq(res, 111);
    ck_assert_uint_eq(dl, 4);
    ck_assert_int_eq(memcmp(dp, four, 4), 0);
    ck_assert_int_eq(ptth_csd_encode_response(0, 0, four, 4097, wire), -EINVAL);
}
END_TEST

Suite *
ptth_test_suite(void)
{
    Suite *s = suite_create("nvme_cmd");
    TCase *tc = tcase_create("encode");
    tcase_add_test(tc, struct_layout);
    tcase_add_test(tc, encode_open);
    tcase_add_test(tc, encode_open_limits);
    tcase_add_test(tc, encode_write);
    tcase_add_test(tc, encode_read);
    tcase_add_test(tc, encode_close);
    tcase_add_test(tc, decode_results);
    tcase_add_test(tc, status_texts);
    suite_add_tcase(s, tc);
    TCase *tp = tcase_create("proto");
    tcase_add_test(tp, proto_request_round_trip);
    tcase_add_test(tp, proto_malformed);
    suite_add_tcase(s, tp);
    return s;
}
