/* Unit tests: the emulator's command handling (csd_emu.c), fed directly:
 * well-formed open/transfer/close against a local listener, and malformed
 * commands (wrong opcode, unknown subcommand, bad sizes, bad or stale
 * descriptors, unterminated fields) that must get an error status. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check_main.h"
#include "csd_emu.h"
#include "nvme_cmd.h"

static ptth_csd_emu *emu;
static unsigned char in[PTTH_NVME_BUF], out[PTTH_NVME_BUF];
static size_t out_len;
static uint32_t result;

static void
setup(void)
{
    ptth_csd_emu_config cfg = {.max_relays = 4, .connect_timeout_ms = 2000};
    emu = ptth_csd_emu_new(&cfg);
    ck_assert_ptr_nonnull(emu);
}

static void
teardown(void)
{
    ptth_csd_emu_free(emu);
}

static int
listener(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(listen(fd, 8), 0);
    socklen_t len = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &len);
    *port = ntohs(a.sin_port);
    return fd;
}

static uint32_t
exec(const struct nvme_passthru_cmd *cmd, size_t in_len)
{
    out_len = 12345;
    result = 777;
    return ptth_csd_emu_execute(emu, 1, cmd, in, in_len, out, &out_len, &result);
}

/* Opens a relay to 127.0.0.1:port; returns the descriptor. */
static int32_t
open_relay(int port)
{
    struct nvme_passthru_cmd c;
    char svc[8];
    snprintf(svc, sizeof(svc), "%d", port);
    ck_assert_int_eq(ptth_nvme_encode_open(&c, in, "127.0.0.1", svc), 0);
    ck_assert_uint_eq(exec(&c, PTTH_NVME_OPEN_DATA), PTTH_NVME_SC_SUCCESS);
    ck_assert_uint_eq(out_len, 4);
    int32_t d;
    ck_assert_int_eq(ptth_nvme_decode_open(out, &d), 0);
    ck_assert_int_gt(d, 0);
    return d;
}

START_TEST(open_write_read_close)
{
    int port;
    int lfd = listener(&port);
    int32_t d = open_relay(port);
    ck_assert_uint_eq(ptth_csd_emu_open_relays(emu), 1);
    int peer = accept(lfd, NULL, NULL);
    ck_assert_int_ge(peer, 0);

    struct nvme_passthru_cmd c;
    ck_assert_int_eq(ptth_nvme_encode_write(&c, in, d, "hello", 5), 0);
    ck_assert_uint_eq(exec(&c, 5), PTTH_NVME_SC_SUCCESS);
    ck_assert_uint_eq(out_len, 0);
    char got[8];
    ck_assert_int_eq(recv(peer, got, 5, MSG_WAITALL), 5);
    ck_assert_int_eq(memcmp(got, "hello", 5), 0);

    ck_assert_int_eq(send(peer, "world!", 6, 0), 6);
    ptth_nvme_encode_read(&c, in, d);
    ck_assert_uint_eq(exec(&c, 0), PTTH_NVME_SC_SUCCESS);
    uint32_t len;
    ck_assert_int_eq(ptth_nvme_decode_read(out, &len), 0);
    ck_assert_uint_eq(len, 6);
    ck_assert_uint_eq(out_len, 10);
    ck_assert_int_eq(memcmp(out + 4, "world!", 6), 0);

    /* the backend's end of stream is a read of length 0 */
    shutdown(peer, SHUT_WR);
    ck_assert_uint_eq(exec(&c, 0), PTTH_NVME_SC_SUCCESS);
    ck_assert_int_eq(ptth_nvme_decode_read(out, &len), 0);
    ck_assert_uint_eq(len, 0);

    ptth_nvme_encode_close(&c, d);
    ck_assert_uint_eq(exec(&c, 0), PTTH_NVME_SC_SUCCESS);
    ck_assert_uint_eq(ptth_csd_emu_open_relays(emu), 0);
    /* the backend sees the close */
    ck_assert_int_eq(recv(peer, got, sizeof(got), 0), 0);
    /* the descriptor is gone */
    ck_assert_uint_eq(exec(&c, 0), PTTH_NVME_SC_BAD_DESCRIPTOR);
    ptth_nvme_encode_read(&c, in, d);
    ck_assert_uint_eq(exec(&c, 0), PTTH_NVME_SC_BAD_DESCRIPTOR);
    close(peer);
    close(lfd);
}
END_TEST

START_TEST(large_read_is_capped)
{
    int port;
    int lfd = listener(&port);
    int32_t d = open_relay(port);
    int peer = accept(lfd, NULL, NULL);
    static char big[10000];
    memset(big, 'b', sizeof(big));
    ck_assert_int_eq(send(peer, big, sizeof(big), 0), (int)sizeof(big));
    usleep(50 * 1000);
    struct nvme_passthru_cmd c;
    ptth_nvme_encode_read(&c, in, d);
    ck_assert_uint_eq(exec(&c, 0), PTTH_NVME_SC_SUCCESS);
    uint32_t len;
    ck_assert_int_eq(ptth_nvme_decode_read(out, &len), 0);
    ck_assert_uint_eq(len, PTTH_NVME_READ_MAX);
    /* a full 4096-byte write */
    memset(in, 'w', sizeof(in));
    ck_assert_int_eq(ptth_nvme_encode_write(&c, in, d, in, 4096), 0);
    ck_assert_uint_eq(exec(&c, 4096), PTTH_NVME_SC_SUCCESS);
    ck_assert_int_eq(recv(peer, big, 4096, MSG_WAITALL), 4096);
    close(peer);
    close(lfd);
}
END_TEST

START_TEST(wrong_opcode)
{
    struct nvme_passthru_cmd c;
    ptth_nvme_encode_close(&c, 1);
    c.opcode = 0x06;
    ck_assert_uint_eq(exec(&c, 0), PTTH_NVME_SC_INVALID_OPCODE);
    c.opcode = 0xC1;
    ck_assert_uint_eq(exec(&c, 0), PTTH_NVME_SC_INVALID_OPCODE);
    ck_assert_uint_eq(out_len, 0);
}
END_TEST

START_TEST(unknown_subcommand)
{
    struct nvme_passthru_cmd c;
    ptth_nvme_encode_close(&c, 1);
    uint32_t subs[] = {0, 63, 65, 127, 130, 0xffffffffu};
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
        c.cdw10 = subs[i];
        ck_assert_uint_eq(exec(&c, 0), PTTH_NVME_SC_INVALID_FIELD);
    }
}
END_TEST

START_TEST(bad_transfer_fields)
{
    int port;
    int lfd = listener(&port);
    int32_t d = open_relay(port);
    struct nvme_passthru_cmd c;
    ck_assert_int_eq(ptth_nvme_encode_write(&c, in, d, "x", 1), 0);
    c.cdw11 = 2; /* neither read nor write */
    ck_assert_uint_eq(exec(&c, 1), PTTH_NVME_SC_INVALID_FIELD);
    c.cdw11 = 1;
    c.cdw12 = 0; /* empty write */
    ck_assert_uint_eq(exec(&c, 1), PTTH_NVME_SC_INVALID_FIELD);
    c.cdw12 = 4097; /* larger than the buffer */
    ck_assert_uint_eq(exec(&c, 4096), PTTH_NVME_SC_INVALID_FIELD);
    c.cdw12 = 100; /* more than the host sent */
    ck_assert_uint_eq(exec(&c, 10), PTTH_NVME_SC_INVALID_FIELD);
    c.cdw12 = 1;
    c.data_len = 512; /* not the 4 KiB buffer */
    ck_assert_uint_eq(exec(&c, 1), PTTH_NVME_SC_INVALID_FIELD);
    c.data_len = 4096;
    ck_assert_uint_eq(exec(&c, 4097), PTTH_NVME_SC_INVALID_FIELD); /* data beyond the buffer */
    ck_assert_uint_eq(exec(&c, 1), PTTH_NVME_SC_SUCCESS);
    close(lfd);
}
END_TEST

START_TEST(bad_descriptors)
{
    int port;
    int lfd = listener(&port);
    int32_t d = open_relay(port);
    struct nvme_passthru_cmd c;
    int32_t bad[] = {0, -1, INT32_MIN, INT32_MAX, d + 1, d ^ 0x10000, (int32_t)((uint32_t)d & 0xffff), 65535};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ptth_nvme_encode_read(&c, in, bad[i]);
        ck_assert_uint_eq(exec(&c, 0), PTTH_NVME_SC_BAD_DESCRIPTOR);
        ck_assert_int_eq(ptth_nvme_encode_write(&c, in, bad[i], "x", 1), 0);
        ck_assert_uint_eq(exec(&c, 1), PTTH_NVME_SC_BAD_DESCRIPTOR);
        ptth_nvme_encode_close(&c, bad[i]);
        ck_assert_uint_eq(exec(&c, 0), PTTH_NVME_SC_BAD_DESCRIPTOR);
    }
    /* the real one still works, and a stale one does not reach a new relay
     * in the same slot */
    ptth_nvme_encode_close(&c, d);
    ck_assert_uint_eq(exec(&c, 0), PTTH_NVME_SC_SUCCESS);
    int32_t d2 = open_relay(port);
    ck_assert_int_ne(d2, d);
    ck_assert_int_eq(d2 & 0xffff, d & 0xffff);
    ptth_nvme_encode_close(&c, d);
    ck_assert_uint_eq(exec(&c, 0), PTTH_NVME_SC_BAD_DESCRIPTOR);
    ptth_nvme_encode_close(&c, d2);
    ck_assert_uint_eq(exec(&c, 0), PTTH_NVME_SC_SUCCESS);
    close(lfd);
}
END_TEST

START_TEST(bad_open_fields)
{
    struct nvme_passthru_cmd c;
    ck_assert_int_eq(ptth_nvme_encode_open(&c, in, "127.0.0.1", "22"), 0);
    /* node not NUL-terminated within its 256 bytes */
    memset(in, 'a', 256);
    ck_assert_uint_eq(exec(&c, 512), PTTH_NVME_SC_INVALID_FIELD);
    /* empty node */
    memset(in, 0, 256);
    ck_assert_uint_eq(exec(&c, 512), PTTH_NVME_SC_INVALID_FIELD);
    /* service not terminated */
    strcpy((char *)in, "127.0.0.1");
    memset(in + 256, '1', 256);
    ck_assert_uint_eq(exec(&c, 512), PTTH_NVME_SC_INVALID_FIELD);
    /* empty service: the host sent only the node */
    ck_assert_uint_eq(exec(&c, 256), PTTH_NVME_SC_INVALID_FIELD);
    /* nothing sent at all */
    ck_assert_uint_eq(exec(&c, 0), PTTH_NVME_SC_INVALID_FIELD);
    /* control characters */
    memset(in, 0, 512);
    strcpy((char *)in, "127.0.0.1\n");
    strcpy((char *)in + 256, "22");
    ck_assert_uint_eq(exec(&c, 512), PTTH_NVME_SC_INVALID_FIELD);
    /* wrong buffer size */
    ck_assert_int_eq(ptth_nvme_encode_open(&c, in, "127.0.0.1", "22"), 0);
    c.data_len = 0;
    ck_assert_uint_eq(exec(&c, 512), PTTH_NVME_SC_INVALID_FIELD);
    ck_assert_uint_eq(ptth_csd_emu_open_relays(emu), 0);
}
END_TEST

START_TEST(open_failures)
{
    /* a port with nothing listening */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t len = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &len);
    char svc[8];
    snprintf(svc, sizeof(svc), "%d", ntohs(a.sin_port));
    struct nvme_passthru_cmd c;
    ck_assert_int_eq(ptth_nvme_encode_open(&c, in, "127.0.0.1", svc), 0);
    ck_assert_uint_eq(exec(&c, 512), PTTH_NVME_SC_CONNECT_FAILED);
    ck_assert_uint_eq(result, ECONNREFUSED);
    close(fd);
    /* a node that does not resolve */
    ck_assert_int_eq(ptth_nvme_encode_open(&c, in, "no-such-host.invalid", "22"), 0);
    ck_assert_uint_eq(exec(&c, 512), PTTH_NVME_SC_RESOLVE_FAILED);
    ck_assert_uint_eq(ptth_csd_emu_open_relays(emu), 0);
}
END_TEST

START_TEST(too_many_relays)
{
    int port;
    int lfd = listener(&port);
    int32_t d[4];
    for (int i = 0; i < 4; i++)
        d[i] = open_relay(port);
    struct nvme_passthru_cmd c;
    char svc[8];
    snprintf(svc, sizeof(svc), "%d", port);
    ck_assert_int_eq(ptth_nvme_encode_open(&c, in, "127.0.0.1", svc), 0);
    ck_assert_uint_eq(exec(&c, 512), PTTH_NVME_SC_TOO_MANY);
    ptth_nvme_encode_close(&c, d[2]);
    ck_assert_uint_eq(exec(&c, 0), PTTH_NVME_SC_SUCCESS);
    (void)open_relay(port);
    ck_assert_uint_eq(ptth_csd_emu_open_relays(emu), 4);
    close(lfd);
}
END_TEST

START_TEST(drop_owner_closes_its_relays)
{
    int port;
    int lfd = listener(&port);
    int32_t mine = open_relay(port); /* owner 1 */
    struct nvme_passthru_cmd c;
    char svc[8];
    snprintf(svc, sizeof(svc), "%d", port);
    ck_assert_int_eq(ptth_nvme_encode_open(&c, in, "127.0.0.1", svc), 0);
    ck_assert_uint_eq(ptth_csd_emu_execute(emu, 2, &c, in, 512, out, &out_len, &result), 0);
    int32_t other;
    ck_assert_int_eq(ptth_nvme_decode_open(out, &other), 0);
    ptth_csd_emu_drop_owner(emu, 2);
    ck_assert_uint_eq(ptth_csd_emu_open_relays(emu), 1);
    ptth_nvme_encode_read(&c, in, other);
    ck_assert_uint_eq(exec(&c, 0), PTTH_NVME_SC_BAD_DESCRIPTOR);
    ptth_nvme_encode_close(&c, mine);
    ck_assert_uint_eq(exec(&c, 0), PTTH_NVME_SC_SUCCESS);
    close(lfd);
}
END_TEST

typedef struct blocked_read {
    int32_t desc;
    uint32_t status;
    unsigned char buf[PTTH_NVME_BUF];
} blocked_read;

static void *
do_blocked_read(void *arg)
{
    blocked_read *b = arg;
    struct nvme_passthru_cmd c;
    unsigned char ibuf[PTTH_NVME_BUF];
    size_t olen;
    uint32_t res;
    ptth_nvme_encode_read(&c, ibuf, b->desc);
    b->status = ptth_csd_emu_execute(emu, 3, &c, ibuf, 0, b->buf, &olen, &res);
    return NULL;
}

/* A read blocked on one relay does not stop commands on another, and a close
 * from elsewhere ends it with "bad descriptor". */
START_TEST(close_wakes_blocked_read)
{
    int port;
    int lfd = listener(&port);
    blocked_read b = {.desc = open_relay(port)};
    int32_t other = open_relay(port);
    int p1 = accept(lfd, NULL, NULL), p2 = accept(lfd, NULL, NULL);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, do_blocked_read, &b), 0);
    usleep(100 * 1000);
    struct nvme_passthru_cmd c;
    ck_assert_int_eq(ptth_nvme_encode_write(&c, in, other, "abc", 3), 0);
    ck_assert_uint_eq(exec(&c, 3), PTTH_NVME_SC_SUCCESS);
    ptth_nvme_encode_close(&c, b.desc);
    ck_assert_uint_eq(exec(&c, 0), PTTH_NVME_SC_SUCCESS);
    pthread_join(th, NULL);
    ck_assert_uint_eq(b.status, PTTH_NVME_SC_BAD_DESCRIPTOR);
    close(p1);
    close(p2);
    close(lfd);
}
END_TEST

START_TEST(shutdown_wakes_and_refuses)
{
    int port;
    int lfd = listener(&port);
    blocked_read b = {.desc = open_relay(port)};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, do_blocked_read, &b), 0);
    usleep(100 * 1000);
    ptth_csd_emu_shutdown(emu);
    pthread_join(th, NULL);
    ck_assert_uint_eq(b.status, PTTH_NVME_SC_BAD_DESCRIPTOR);
    ck_assert_uint_eq(ptth_csd_emu_open_relays(emu), 0);
    struct nvme_passthru_cmd c;
    char svc[8];
    snprintf(svc, sizeof(svc), "%d", port);
    ck_assert_int_eq(ptth_nvme_encode_open(&c, in, "127.0.0.1", svc), 0);
    ck_assert_uint_eq(exec(&c, 512), PTTH_NVME_SC_INTERNAL);
    close(lfd);
}
END_TEST

START_TEST(garbage_commands)
{
    /* random commands and data: every one gets a status, none crashes */
    srand(1234);
    struct nvme_passthru_cmd c;
    for (int i = 0; i < 20000; i++) {
        unsigned char *p = (unsigned char *)&c;
        for (size_t j = 0; j < sizeof(c); j++)
            p[j] = (unsigned char)rand();
        if (i % 2)
            c.opcode = 0xC0;
        if (i % 4 == 1)
            c.cdw10 = (uint32_t[]){64, 129, 64, 64}[i / 4 % 4];
        if (i % 8 == 1)
            c.data_len = 4096;
        for (size_t j = 0; j < 600; j++)
            in[j] = (unsigned char)rand();
        size_t in_len = (size_t)rand() % 5000;
        uint32_t st = exec(&c, in_len);
        ck_assert_uint_ne(st, PTTH_NVME_SC_SUCCESS);
        ck_assert_uint_le(out_len, PTTH_NVME_BUF);
    }
    ck_assert_uint_eq(ptth_csd_emu_open_relays(emu), 0);
}
END_TEST

START_TEST(bad_config)
{
    ptth_csd_emu_config cfg = {.max_relays = 0};
    ck_assert_ptr_null(ptth_csd_emu_new(&cfg));
    cfg.max_relays = 65536;
    ck_assert_ptr_null(ptth_csd_emu_new(&cfg));
}
END_TEST

Suite *
ptth_test_suite(void)
{
    Suite *s = suite_create("csd_emu");
    TCase *tc = tcase_create("commands");
    tcase_set_timeout(tc, 30);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, open_write_read_close);
    tcase_add_test(tc, large_read_is_capped);
    tcase_add_test(tc, wrong_opcode);
    tcase_add_test(tc, unknown_subcommand);
    tcase_add_test(tc, bad_transfer_fields);
    tcase_add_test(tc, bad_descriptors);
    tcase_add_test(tc, bad_open_fields);
    tcase_add_test(tc, open_failures);
    tcase_add_test(tc, too_many_relays);
    tcase_add_test(tc, drop_owner_closes_its_relays);
    tcase_add_test(tc, close_wakes_blocked_read);
    tcase_add_test(tc, shutdown_wakes_and_refuses);
    tcase_add_test(tc, garbage_commands);
    tcase_add_test(tc, bad_config);
    suite_add_tcase(s, tc);
    return s;
}
