/* Unit tests: target parsing (every form of SPEC §5, every error) and the
 * start-up checks of ptth_target_check(). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "check_main.h"
#include "target.h"
#include "transport.h"

static ptth_target t;
static char err[512];

static int
parse(const char *text)
{
    memset(err, 'x', sizeof(err));
    err[sizeof(err) - 1] = '\0';
    return ptth_target_parse(text, &t, err, sizeof(err));
}

/* Asserts that text is refused and that the reason holds `needle`. */
#define REFUSED(text, needle)                                                                                                      \
    do {                                                                                                                           \
        ck_assert_int_eq(parse(text), -EINVAL);                                                                                    \
        ck_assert_msg(strstr(err, needle) != NULL, "error for '%s' is '%s', expected it to hold '%s'", text, err, needle);         \
    } while (0)

START_TEST(port_only)
{
    ck_assert_int_eq(parse("22"), 0);
    ck_assert_int_eq(t.kind, PTTH_TARGET_TCP);
    ck_assert_str_eq(t.host, "127.0.0.1");
    ck_assert_int_eq(t.port, 22);
    ck_assert_str_eq(t.port_text, "22");
    ck_assert_str_eq(t.text, "22");
    ck_assert_str_eq(err, "");
    ck_assert_int_eq(parse("65535"), 0);
    ck_assert_int_eq(t.port, 65535);
    ck_assert_int_eq(parse("1"), 0);
    ck_assert_int_eq(t.port, 1);
}
END_TEST

START_TEST(host_port)
{
    ck_assert_int_eq(parse("10.1.2.3:5432"), 0);
    ck_assert_int_eq(t.kind, PTTH_TARGET_TCP);
    ck_assert_str_eq(t.host, "10.1.2.3");
    ck_assert_int_eq(t.port, 5432);
    ck_assert_int_eq(parse("db.internal-1.example_x:80"), 0);
    ck_assert_str_eq(t.host, "db.internal-1.example_x");
    ck_assert_int_eq(t.port, 80);
    ck_assert_int_eq(parse("localhost:8080"), 0);
    ck_assert_str_eq(t.host, "localhost");
    ck_assert_str_eq(t.port_text, "8080");
}
END_TEST

START_TEST(v6_port)
{
    ck_assert_int_eq(parse("[::1]:22"), 0);
    ck_assert_int_eq(t.kind, PTTH_TARGET_TCP);
    ck_assert_str_eq(t.host, "::1");
    ck_assert_int_eq(t.port, 22);
    ck_assert_int_eq(parse("[fe80::1%eth0]:443"), 0);
    ck_assert_str_eq(t.host, "fe80::1%eth0");
    ck_assert_int_eq(parse("[::ffff:10.0.0.1]:9"), 0);
    ck_assert_str_eq(t.host, "::ffff:10.0.0.1");
}
END_TEST

START_TEST(unix_path)
{
    ck_assert_int_eq(parse("unix:/run/app.sock"), 0);
    ck_assert_int_eq(t.kind, PTTH_TARGET_UNIX);
    ck_assert_str_eq(t.path, "/run/app.sock");
    ck_assert_str_eq(t.text, "unix:/run/app.sock");
    ck_assert_int_eq(parse("unix:rel/with:colon@at"), 0);
    ck_assert_str_eq(t.path, "rel/with:colon@at");
    ck_assert_int_eq(parse("unix:@abstract"), 0);
    ck_assert_str_eq(t.path, "@abstract");
    char longest[6 + PTTH_TARGET_PATH_MAX];
    strcpy(longest, "unix:");
    memset(longest + 5, 'a', PTTH_TARGET_PATH_MAX - 1);
    longest[5 + PTTH_TARGET_PATH_MAX - 1] = '\0';
    ck_assert_int_eq(parse(longest), 0);
    ck_assert_uint_eq(strlen(t.path), PTTH_TARGET_PATH_MAX - 1);
}
END_TEST

START_TEST(nvme_forms)
{
    ck_assert_int_eq(parse("nvme:/dev/nvme0:22"), 0);
    ck_assert_int_eq(t.kind, PTTH_TARGET_NVME);
    ck_assert_str_eq(t.path, "/dev/nvme0");
    ck_assert_int_eq(t.port, 22);
    ck_assert_str_eq(t.port_text, "22");
    ck_assert_str_eq(t.host, "127.0.0.1");

    ck_assert_int_eq(parse("nvme:/dev/nvme1:8080@10.0.0.7"), 0);
    ck_assert_str_eq(t.path, "/dev/nvme1");
    ck_assert_str_eq(t.port_text, "8080");
    ck_assert_str_eq(t.host, "10.0.0.7");

    ck_assert_int_eq(parse("nvme:/tmp/csd.sock:22@localhost"), 0);
    ck_assert_str_eq(t.path, "/tmp/csd.sock");
    ck_assert_str_eq(t.host, "localhost");

    ck_assert_int_eq(parse("nvme:/dev/nvme0:22@::1"), 0);
    ck_assert_str_eq(t.host, "::1");
    ck_assert_int_eq(parse("nvme:/dev/nvme0:22@[fd00::2]"), 0);
    ck_assert_str_eq(t.host, "fd00::2");

    /* a DEVICE path holding ':' and '@' */
    ck_assert_int_eq(parse("nvme:/tmp/a:b@c/csd.sock:7000"), 0);
    ck_assert_str_eq(t.path, "/tmp/a:b@c/csd.sock");
    ck_assert_int_eq(t.port, 7000);
    ck_assert_str_eq(t.host, "127.0.0.1");
}
END_TEST

START_TEST(cc_forms)
{
    ck_assert_int_eq(parse("cc:ssh-relay.1"), 0);
    ck_assert_int_eq(t.kind, PTTH_TARGET_CC);
    ck_assert_int_eq(t.cc_carrier, PTTH_CC_SEQPACKET);
    ck_assert_str_eq(t.cc_service, "ssh-relay.1");

    ck_assert_int_eq(parse("cc:vsock:3:5000"), 0);
    ck_assert_int_eq(t.kind, PTTH_TARGET_CC);
    ck_assert_int_eq(t.cc_carrier, PTTH_CC_VSOCK);
    ck_assert_uint_eq(t.vsock_cid, 3);
    ck_assert_uint_eq(t.vsock_port, 5000);
    ck_assert_int_eq(parse("cc:vsock:4294967294:0"), 0);
    ck_assert_uint_eq(t.vsock_cid, 4294967294u);
    ck_assert_uint_eq(t.vsock_port, 0);

    /* "vsock" alone is a valid service name */
    ck_assert_int_eq(parse("cc:vsock"), 0);
    ck_assert_int_eq(t.cc_carrier, PTTH_CC_SEQPACKET);
    ck_assert_str_eq(t.cc_service, "vsock");

    char name64[3 + 65] = "cc:";
    memset(name64 + 3, 'n', 64);
    name64[67] = '\0';
    ck_assert_int_eq(parse(name64), 0);
    ck_assert_uint_eq(strlen(t.cc_service), 64);
}
END_TEST

START_TEST(udp_forms)
{
    ck_assert_int_eq(parse("udp:127.0.0.1:53"), 0);
    ck_assert_int_eq(t.kind, PTTH_TARGET_UDP);
    ck_assert_str_eq(t.host, "127.0.0.1");
    ck_assert_int_eq(t.port, 53);
    ck_assert_str_eq(t.port_text, "53");
    ck_assert_str_eq(t.text, "udp:127.0.0.1:53");
    ck_assert_int_eq(parse("udp:dns.internal:5353"), 0);
    ck_assert_int_eq(t.kind, PTTH_TARGET_UDP);
    ck_assert_str_eq(t.host, "dns.internal");
    ck_assert_int_eq(t.port, 5353);
    ck_assert_int_eq(parse("udp:[::1]:514"), 0);
    ck_assert_int_eq(t.kind, PTTH_TARGET_UDP);
    ck_assert_str_eq(t.host, "::1");
    ck_assert_int_eq(t.port, 514);
    ck_assert_int_eq(parse("udp:[fe80::1%eth0]:65535"), 0);
    ck_assert_str_eq(t.host, "fe80::1%eth0");
    ck_assert_int_eq(t.port, 65535);
}
END_TEST

START_TEST(udp_errors)
{
    REFUSED("udp:", "udp target 'udp:': expected udp:HOST:PORT or udp:[V6]:PORT");
    REFUSED("udp:53", "expected udp:HOST:PORT"); /* no bare PORT: a UDP backend's host is said */
    REFUSED("udp:host:0", "udp target 'udp:host:0': port '0' is not a number in 1..65535");
    REFUSED("udp:host:", "udp target 'udp:host:': missing PORT");
    REFUSED("udp::53", "missing HOST");
    REFUSED("udp:ho st:53", "bad host 'ho st'");
    REFUSED("udp:::1:53", "too many ':'");
    REFUSED("udp:[::1]", "missing ':PORT'");
    REFUSED("udp:[1.2.3.4]:53", "bad IPv6 address");
    REFUSED("udp:unix:/x", "port '/x' is not a number");
    REFUSED("::1:22", "udp:HOST:PORT"); /* the hint lists the UDP form too */
}
END_TEST

START_TEST(general_errors)
{
    REFUSED("", "empty target");
    ck_assert_int_eq(ptth_target_parse(NULL, &t, err, sizeof(err)), -EINVAL);
    REFUSED("ssh", "not a port number");
    REFUSED("ssh", "unix:PATH");
    REFUSED("0", "not a port number");
    REFUSED("65536", "not a port number");
    REFUSED("-1", "not a port number");
    REFUSED("+22", "not a port number");
    REFUSED(" 22", "not a port number");
    REFUSED("22\n", "control character");
    char big[PTTH_TARGET_TEXT_MAX + 10];
    memset(big, '1', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    REFUSED(big, "the limit is 511");
    /* the output is untouched on failure... */
    ck_assert_int_eq(parse("unix:/ok"), 0);
    ck_assert_int_eq(parse("nope:"), -EINVAL);
    ck_assert_int_eq(t.kind, 0);
    /* ...and err may be NULL */
    ck_assert_int_eq(ptth_target_parse("x:y:z", &t, NULL, 0), -EINVAL);
}
END_TEST

START_TEST(tcp_errors)
{
    REFUSED(":22", "missing HOST");
    REFUSED("host:", "missing PORT");
    REFUSED("host:0", "port '0' is not a number in 1..65535");
    REFUSED("host:70000", "port '70000'");
    REFUSED("host:22x", "port '22x'");
    REFUSED("host:123456", "port '123456'");
    REFUSED("ho st:22", "bad host 'ho st'");
    REFUSED("h/x:22", "bad host");
    REFUSED("::1:22", "too many ':'");
    REFUSED("::1:22", "[V6]:PORT");
    REFUSED("ftp:/x:1", "too many ':'");
    REFUSED("[::1:22", "missing ']'");
    REFUSED("[::1]22", "missing ':PORT'");
    REFUSED("[::1]", "missing ':PORT'");
    REFUSED("[::1]:", "missing PORT");
    REFUSED("[]:22", "bad IPv6 address");
    REFUSED("[1.2.3.4]:22", "bad IPv6 address");
    REFUSED("[::g]:22", "bad IPv6 address");
    REFUSED("[fe80::1%]:22", "bad IPv6 address");
    char host[300 + 4];
    memset(host, 'h', 300);
    strcpy(host + 300, ":22");
    REFUSED(host, "bad host");
}
END_TEST

START_TEST(unix_errors)
{
    REFUSED("unix:", "unix target 'unix:': missing PATH");
    REFUSED("unix:@", "abstract socket name");
    char p[5 + PTTH_TARGET_PATH_MAX + 1];
    strcpy(p, "unix:");
    memset(p + 5, 'a', PTTH_TARGET_PATH_MAX);
    p[5 + PTTH_TARGET_PATH_MAX] = '\0';
    REFUSED(p, "path is 108 bytes, the limit is 107");
}
END_TEST

START_TEST(nvme_errors)
{
    REFUSED("nvme:", "missing PORT");
    REFUSED("nvme:/dev/nvme0", "missing PORT");
    REFUSED("nvme:/dev/nvme0:", "missing PORT");
    REFUSED("nvme:/dev/nvme0:ssh", "missing PORT");
    REFUSED("nvme::22", "missing DEVICE");
    REFUSED("nvme:22", "missing PORT");
    REFUSED("nvme:/dev/nvme0:0", "port '0' is not a number in 1..65535");
    REFUSED("nvme:/dev/nvme0:65536", "port '65536'");
    REFUSED("nvme:/dev/nvme0:22@", "empty NODE");
    REFUSED("nvme:/dev/nvme0:22@bad node", "bad NODE 'bad node'");
    REFUSED("nvme:/dev/nvme0:22@[::1", "bad NODE");
    REFUSED("nvme:/dev/nvme0:22@[1.2.3.4]", "bad IPv6 NODE");
    REFUSED("nvme:/dev/nvme0:22x", "missing PORT");
    char dev[5 + PTTH_TARGET_PATH_MAX + 4];
    strcpy(dev, "nvme:");
    memset(dev + 5, 'd', PTTH_TARGET_PATH_MAX);
    strcpy(dev + 5 + PTTH_TARGET_PATH_MAX, ":22");
    REFUSED(dev, "DEVICE is 108 bytes");
    /* the error names the target */
    REFUSED("nvme:/dev/nvme0", "nvme target 'nvme:/dev/nvme0'");
}
END_TEST

START_TEST(cc_errors)
{
    REFUSED("cc:", "missing SERVICE");
    REFUSED("cc:bad name", "service 'bad name' is not a name");
    REFUSED("cc:a/b", "is not a name");
    char name65[3 + 66] = "cc:";
    memset(name65 + 3, 'n', 65);
    name65[68] = '\0';
    REFUSED(name65, "is not a name");
    REFUSED("cc:vsock:", "missing PORT");
    REFUSED("cc:vsock:3", "missing PORT");
    REFUSED("cc:vsock::5", "CID ''");
    REFUSED("cc:vsock:x:5", "CID 'x'");
    REFUSED("cc:vsock:4294967295:5", "CID '4294967295'");
    REFUSED("cc:vsock:4294967296:5", "CID");
    REFUSED("cc:vsock:3:", "vsock port ''");
    REFUSED("cc:vsock:3:4294967295", "vsock port '4294967295'");
    REFUSED("cc:vsock:3:5:6", "vsock port '5:6'");
    REFUSED("cc:vsock:-1:5", "CID '-1'");
}
END_TEST

START_TEST(check_ignores_non_nvme)
{
    ck_assert_int_eq(parse("unix:/nonexistent/x.sock"), 0);
    ck_assert_int_eq(ptth_target_check(&t, err, sizeof(err)), 0);
    ck_assert_int_eq(parse("1234"), 0);
    ck_assert_int_eq(ptth_target_check(&t, err, sizeof(err)), 0);
}
END_TEST

START_TEST(check_nvme_device)
{
    ck_assert_int_eq(parse("nvme:/nonexistent/nvme9:22"), 0);
    ck_assert_int_eq(ptth_target_check(&t, err, sizeof(err)), -ENOENT);
    ck_assert_msg(strstr(err, "nvme device '/nonexistent/nvme9'") != NULL, "%s", err);
    ck_assert_msg(strstr(err, "No such file") != NULL, "%s", err);

    char dir[] = "/tmp/ptth-target-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char file[128], sock[128], text[200];
    snprintf(file, sizeof(file), "%s/plain", dir);
    FILE *f = fopen(file, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    snprintf(text, sizeof(text), "nvme:%s:22", file);
    ck_assert_int_eq(parse(text), 0);
    ck_assert_int_eq(ptth_target_check(&t, err, sizeof(err)), -ENODEV);
    ck_assert_msg(strstr(err, file) != NULL && strstr(err, "not a character device") != NULL, "%s", err);

    snprintf(text, sizeof(text), "nvme:%s:22", dir);
    ck_assert_int_eq(parse(text), 0);
    ck_assert_int_eq(ptth_target_check(&t, err, sizeof(err)), -ENODEV);

    /* a character device passes (whether it is NVMe is found out at open) */
    ck_assert_int_eq(parse("nvme:/dev/null:22"), 0);
    ck_assert_int_eq(ptth_target_check(&t, err, sizeof(err)), 0);

    /* a UNIX socket passes (the emulator) */
    snprintf(sock, sizeof(sock), "%s/csd.sock", dir);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    ck_assert_uint_lt(strlen(sock), sizeof(sun.sun_path));
    memcpy(sun.sun_path, sock, strlen(sock) + 1);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    snprintf(text, sizeof(text), "nvme:%s:22@10.0.0.1", sock);
    ck_assert_int_eq(parse(text), 0);
    ck_assert_int_eq(ptth_target_check(&t, err, sizeof(err)), 0);
    close(fd);
    unlink(sock);
    unlink(file);
    rmdir(dir);
}
END_TEST

START_TEST(check_cc_dir)
{
    ck_assert_int_eq(parse("cc:svc"), 0);
    setenv("PTTH_CC_DIR", "/tmp/ptth-cc-check", 1);
    ck_assert_int_eq(ptth_target_check(&t, err, sizeof(err)), 0);
    /* $PTTH_CC_DIR/SERVICE must fit a UNIX socket address */
    char dir[200] = "/tmp/";
    memset(dir + 5, 'd', 150);
    dir[155] = '\0';
    setenv("PTTH_CC_DIR", dir, 1);
    ck_assert_int_lt(ptth_target_check(&t, err, sizeof(err)), 0);
    ck_assert_str_ne(err, "");
    unsetenv("PTTH_CC_DIR");
}
END_TEST

START_TEST(transport_table)
{
    ck_assert_int_eq(parse("22"), 0);
    ck_assert_str_eq(ptth_transport_for(&t)->name, "tcp");
    ck_assert_int_eq(parse("unix:/x"), 0);
    ck_assert_str_eq(ptth_transport_for(&t)->name, "unix");
    ck_assert_int_eq(parse("nvme:/dev/x:1"), 0);
    ck_assert_str_eq(ptth_transport_for(&t)->name, "nvme");
    ck_assert_int_eq(parse("cc:svc"), 0);
    ck_assert_str_eq(ptth_transport_for(&t)->name, "cc");
    ck_assert_int_eq(parse("udp:127.0.0.1:53"), 0);
    ck_assert_str_eq(ptth_transport_for(&t)->name, "udp");
}
END_TEST

Suite *
ptth_test_suite(void)
{
    Suite *s = suite_create("target");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, port_only);
    tcase_add_test(tc, host_port);
    tcase_add_test(tc, v6_port);
    tcase_add_test(tc, unix_path);
    tcase_add_test(tc, nvme_forms);
    tcase_add_test(tc, cc_forms);
    tcase_add_test(tc, udp_forms);
    tcase_add_test(tc, udp_errors);
    tcase_add_test(tc, general_errors);
    tcase_add_test(tc, tcp_errors);
    tcase_add_test(tc, unix_errors);
    tcase_add_test(tc, nvme_errors);
    tcase_add_test(tc, cc_errors);
    suite_add_tcase(s, tc);
    TCase *tc2 = tcase_create("check");
    tcase_add_test(tc2, check_ignores_non_nvme);
    tcase_add_test(tc2, check_nvme_device);
    tcase_add_test(tc2, check_cc_dir);
    tcase_add_test(tc2, transport_table);
    suite_add_tcase(s, tc2);
    return s;
}
