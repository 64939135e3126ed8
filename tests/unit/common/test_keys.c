/* Unit tests of common/keys: key files, hashes, constant-time comparison. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check_main.h"
#include "keys.h"

/* From the shell: printf %s KNOWN_KEY | sha256sum */
#define KNOWN_KEY "Dq3Eq2cIb1XrZHJwZ4pq9c3sTxgZ8Yk2W1X5i8nYb-A"
static char tmpdir[64];

static void
make_tmpdir(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/ptth-keys-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void
remove_tmpdir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}

static const char *
tmp_path(const char *name)
{
    static char path[128];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    return path;
}

static const char *
write_file(const char *name, const char *content, size_t len, mode_t mode)
{
    const char *path = tmp_path(name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, content, len), (ssize_t)len);
    ck_assert_int_eq(fchmod(fd, mode), 0);
    close(fd);
    return path;
}

/* sha256sum of text computed by the coreutils program, not by our code. */
static void
sha256sum_of(const char *text, char out[65])
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "printf %%s '%s' | sha256sum", text);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_nonnull(fgets(out, 65, p));
    pclose(p);
    ck_assert_uint_eq(strlen(out), 64);
}

static bool
only_b64url(const char *s)
{
    return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == strlen(s);
}

START_TEST(format_valid)
{
    ck_assert(ptth_key_format_valid(KNOWN_KEY, 43));
    ck_assert(!ptth_key_format_valid(KNOWN_KEY, 42));
    ck_assert(!ptth_key_format_valid(KNOWN_KEY "A", 44));
    ck_assert(!ptth_key_format_valid("", 0));
    ck_assert(!ptth_key_format_valid(NULL, 43));
    char k[44];
    for (int c = 0; c < 256; c++) {
        memcpy(k, KNOWN_KEY, 44);
        k[20] = (char)c;
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
        ck_assert_msg(ptth_key_format_valid(k, 43) == ok, "byte 0x%02x", c);
    }
    /* standard base64 and padding are not base64url */
    ck_assert(!ptth_key_format_valid("Dq3Eq2cIb1XrZHJwZ4pq9c3sTxgZ8Yk2W1X5i8nYb+A", 43));
    ck_assert(!ptth_key_format_valid("Dq3Eq2cIb1XrZHJwZ4pq9c3sTxgZ8Yk2W1X5i8nYb/A", 43));
    ck_assert(!ptth_key_format_valid("Dq3Eq2cIb1XrZHJwZ4pq9c3sTxgZ8Yk2W1X5i8nYb-=", 43));
}
END_TEST

START_TEST(hash_format_valid)
{
    ck_assert(ptth_key_hash_format_valid("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"));
    ck_assert(!ptth_key_hash_format_valid("0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef"));
    ck_assert(!ptth_key_hash_format_valid("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde"));
    ck_assert(!ptth_key_hash_format_valid("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0"));
    ck_assert(!ptth_key_hash_format_valid("0123456789abcdeg0123456789abcdef0123456789abcdef0123456789abcdef"));
    ck_assert(!ptth_key_hash_format_valid(""));
    ck_assert(!ptth_key_hash_format_valid(NULL));
}
END_TEST

START_TEST(hash_matches_sha256sum)
{
    char expect[65];
    ptth_key_hash h;
    sha256sum_of(KNOWN_KEY, expect);
    ptth_key_hash_of(KNOWN_KEY, 43, &h);
    ck_assert_str_eq(h.hex, expect);
    ck_assert(ptth_key_hash_format_valid(h.hex));

    for (int i = 0; i < 5; i++) {
        ptth_key k;
        ck_assert_int_eq(ptth_key_generate(&k), 0);
        sha256sum_of(k.text, expect);
        ptth_key_hash_of(k.text, strlen(k.text), &h);
        ck_assert_str_eq(h.hex, expect);
    }
    /* the well-known empty-input digest */
    ptth_key_hash_of("", 0, &h);
    ck_assert_str_eq(h.hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}
END_TEST

START_TEST(generate)
{
    ptth_key a, b;
    ck_assert_int_eq(ptth_key_generate(&a), 0);
    ck_assert_int_eq(ptth_key_generate(&b), 0);
    ck_assert_uint_eq(strlen(a.text), 43);
    ck_assert(ptth_key_format_valid(a.text, 43));
    ck_assert(only_b64url(a.text));
    ck_assert_str_ne(a.text, b.text);
    /* 32 bytes = 256 bits in 43 chars: the last char carries 4 bits, low 2 zero */
    const char *alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for (int i = 0; i < 50; i++) {
        ck_assert_int_eq(ptth_key_generate(&a), 0);
        long idx = strchr(alphabet, a.text[42]) - alphabet;
        ck_assert_int_eq(idx & 3, 0);
    }
}
END_TEST

/* RFC 4648 §10 vectors without padding, plus bytes that use '-' and '_'. */
START_TEST(base64url_vectors)
{
    const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar", "\xfb\xff", "\xfb\xef\xbe", "\x00\x00\x00"};
    const char *want[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy", "-_8", "----", "AAAA"};
    char out[16];
    for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
        memset(out, '#', sizeof(out));
        size_t n = ptth_base64url_encode(in[i], strlen(in[i]) + (i == 9 ? 3 : 0), out);
        ck_assert_str_eq(out, want[i]);
        ck_assert_uint_eq(n, strlen(want[i]));
    }
    /* 32 bytes -> 43 chars, 16 -> 22 */
    uint8_t raw[32];
    memset(raw, 0xff, sizeof(raw));
    char key[64];
    ck_assert_uint_eq(ptth_base64url_encode(raw, 32, key), 43);
    ck_assert_str_eq(key, "__________________________________________8");
    ck_assert_uint_eq(ptth_base64url_encode(raw, 16, key), 22);
    ck_assert_str_eq(key, "_____________________w");
}
END_TEST

START_TEST(random_id)
{
    char a[PTTH_ID_LEN + 1], b[PTTH_ID_LEN + 1];
    ck_assert_int_eq(ptth_random_id(a), 0);
    ck_assert_int_eq(ptth_random_id(b), 0);
    ck_assert_uint_eq(strlen(a), 22);
    ck_assert(only_b64url(a));
    ck_assert_str_ne(a, b);
}
END_TEST

START_TEST(hash_equal)
{
    ptth_key_hash a, b;
    ptth_key_hash_of("one", 3, &a);
    ptth_key_hash_of("one", 3, &b);
    ck_assert(ptth_key_hash_equal(&a, &b));
    for (int i = 0; i < PTTH_KEY_HASH_LEN; i++) {
        b = a;
        b.hex[i] = b.hex[i] == '0' ? '1' : '0';
        ck_assert_msg(!ptth_key_hash_equal(&a, &b), "difference at %d not seen", i);
    }
}
END_TEST

/* ptth_key_hash_equal must come from CRYPTO_memcmp: a timing test would be
 * flaky, so check that the object file calls it and not memcmp/strcmp. */
START_TEST(hash_equal_is_constant_time)
{
    const char *build = getenv("PTTH_BUILD_DIR");
    if (build == NULL)
        build = ".";
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "nm -u '%s/common/libptth_common.a.p/keys.c.o' 2>/dev/null", build);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    char line[256];
    bool crypto_memcmp = false, plain_cmp = false;
    while (fgets(line, sizeof(line), p) != NULL) {
        if (strstr(line, "CRYPTO_memcmp"))
            crypto_memcmp = true;
        if (strstr(line, " memcmp") || strstr(line, " strcmp") || strstr(line, " strncmp"))
            plain_cmp = true;
    }
    pclose(p);
    ck_assert_msg(crypto_memcmp, "keys.c.o does not call CRYPTO_memcmp (PTTH_BUILD_DIR=%s)", build);
    ck_assert_msg(!plain_cmp, "keys.c.o calls a non-constant-time comparison");
}
END_TEST

START_TEST(load_good_files)
{
    make_tmpdir();
    ptth_key k;
    char err[256] = "";
    const char *p = write_file("a.key", KNOWN_KEY "\n", 44, 0600);
    ck_assert_int_eq(ptth_key_load_file(p, &k, err, sizeof(err)), 0);
    ck_assert_str_eq(k.text, KNOWN_KEY);
    p = write_file("b.key", KNOWN_KEY, 43, 0400);
    ck_assert_int_eq(ptth_key_load_file(p, &k, err, sizeof(err)), 0);
    ck_assert_str_eq(k.text, KNOWN_KEY);
    p = write_file("c.key", KNOWN_KEY "\r\n", 45, 0600);
    ck_assert_int_eq(ptth_key_load_file(p, &k, err, sizeof(err)), 0);
    ck_assert_str_eq(k.text, KNOWN_KEY);
    /* group/other write or execute bits are not "readable" */
    p = write_file("d.key", KNOWN_KEY "\n", 44, 0622);
    ck_assert_int_eq(ptth_key_load_file(p, &k, err, sizeof(err)), 0);
    remove_tmpdir();
}
END_TEST

START_TEST(load_refuses_readable_by_others)
{
    make_tmpdir();
    ptth_key k;
    char err[256];
    const mode_t modes[] = {0640, 0604, 0644, 0660, 0606, 0444, 0440, 0404, 0666};
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        const char *p = write_file("perm.key", KNOWN_KEY "\n", 44, modes[i]);
        err[0] = '\0';
        ck_assert_int_eq(ptth_key_load_file(p, &k, err, sizeof(err)), PTTH_KEY_ERR_PERMS);
        ck_assert_msg(strstr(err, p) != NULL, "no path in '%s'", err);
        ck_assert_msg(strstr(err, "readable by group or others") != NULL, "'%s'", err);
        char mode[16];
        snprintf(mode, sizeof(mode), "%04o", (unsigned)modes[i]);
        ck_assert_msg(strstr(err, mode) != NULL, "no mode %s in '%s'", mode, err);
        ck_assert_ptr_null(strstr(err, KNOWN_KEY));
    }
    remove_tmpdir();
}
END_TEST

START_TEST(load_bad_format)
{
    make_tmpdir();
    ptth_key k;
    char err[256];
    const char *bad[] = {
        "",
        "\n",
        KNOWN_KEY "\n\n",
        KNOWN_KEY " \n",
        " " KNOWN_KEY "\n",
        KNOWN_KEY "A\n",
        "Dq3Eq2cIb1XrZHJwZ4pq9c3sTxgZ8Yk2W1X5i8nYb-\n",
        "Dq3Eq2cIb1XrZHJwZ4pq9c3sTxgZ8Yk2W1X5i8nYb+A\n",
        KNOWN_KEY "\n" KNOWN_KEY "\n",
        "Dq3Eq2cIb1XrZHJwZ4pq9c3sTxgZ8Yk2W1X5i8nYb\0A\n",
    };
    const size_t lens[] = {0, 1, 45, 45, 45, 45, 43, 44, 88, 44};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *p = write_file("bad.key", bad[i], lens[i], 0600);
        err[0] = '\0';
        ck_assert_msg(ptth_key_load_file(p, &k, err, sizeof(err)) == PTTH_KEY_ERR_FORMAT, "case %zu accepted", i);
        ck_assert(strstr(err, p) != NULL);
        ck_assert(strstr(err, "does not hold a key") != NULL);
    }
    /* a large file is refused without reading it all */
    static char big[1 << 20];
    memset(big, 'A', sizeof(big));
    const char *p = write_file("big.key", big, sizeof(big), 0600);
    ck_assert_int_eq(ptth_key_load_file(p, &k, err, sizeof(err)), PTTH_KEY_ERR_FORMAT);
    remove_tmpdir();
}
END_TEST

START_TEST(load_missing_and_not_regular)
{
    make_tmpdir();
    ptth_key k;
    char err[256];
    const char *p = tmp_path("missing.key");
    ck_assert_int_eq(ptth_key_load_file(p, &k, err, sizeof(err)), -ENOENT);
    ck_assert(strstr(err, p) != NULL);
    ck_assert(strstr(err, strerror(ENOENT)) != NULL);
    ck_assert_int_eq(ptth_key_load_file(tmpdir, &k, err, sizeof(err)), -EINVAL);
    ck_assert(strstr(err, "not a regular file") != NULL);
    /* a NULL or tiny error buffer is fine */
    ck_assert_int_eq(ptth_key_load_file(p, &k, NULL, 0), -ENOENT);
    ck_assert_int_eq(ptth_key_load_file(p, &k, err, 1), -ENOENT);
    ck_assert_str_eq(err, "");
    remove_tmpdir();
}
END_TEST

START_TEST(load_from_env)
{
    ptth_key k;
    char err[256];
    unsetenv("PTTH_KEY");
    ck_assert_int_eq(ptth_key_load(NULL, &k, err, sizeof(err)), -ENOENT);
    ck_assert_str_eq(err, "no key: give --key-file or set PTTH_KEY");
    setenv("PTTH_KEY", "", 1);
    ck_assert_int_eq(ptth_key_load(NULL, &k, err, sizeof(err)), -ENOENT);
    setenv("PTTH_KEY", KNOWN_KEY, 1);
    ck_assert_int_eq(ptth_key_load(NULL, &k, err, sizeof(err)), 0);
    ck_assert_str_eq(k.text, KNOWN_KEY);
    setenv("PTTH_KEY", "short", 1);
    ck_assert_int_eq(ptth_key_load(NULL, &k, err, sizeof(err)), PTTH_KEY_ERR_FORMAT);
    ck_assert(strstr(err, "PTTH_KEY") != NULL);
    ck_assert(strstr(err, "short") == NULL); /* never echo what might be a secret */

    /* a file wins over the environment */
    make_tmpdir();
    setenv("PTTH_KEY", KNOWN_KEY, 1);
    ptth_key other;
    ck_assert_int_eq(ptth_key_generate(&other), 0);
    char line[45];
    memcpy(line, other.text, 43);
    line[43] = '\n';
    const char *p = write_file("f.key", line, 44, 0600);
    ck_assert_int_eq(ptth_key_load(p, &k, err, sizeof(err)), 0);
    ck_assert_str_eq(k.text, other.text);
    p = write_file("g.key", line, 44, 0644);
    ck_assert_int_eq(ptth_key_load(p, &k, err, sizeof(err)), PTTH_KEY_ERR_PERMS);
    remove_tmpdir();
}
END_TEST

START_TEST(write_new_file)
{
    make_tmpdir();
    ptth_key k, loaded;
    char err[256];
    const char *p = tmp_path("new.key");
    mode_t old = umask(0);
    ck_assert_int_eq(ptth_key_write_new_file(p, &k, err, sizeof(err)), 0);
    umask(old);
    struct stat st;
    ck_assert_int_eq(stat(p, &st), 0);
    ck_assert_int_eq(st.st_mode & 07777, 0600);
    ck_assert_int_eq(st.st_size, 44);
    ck_assert_int_eq(ptth_key_load_file(p, &loaded, err, sizeof(err)), 0);
    ck_assert_str_eq(loaded.text, k.text);

    /* refuses to overwrite, and leaves the file as it was */
    ptth_key k2;
    ck_assert_int_eq(ptth_key_write_new_file(p, &k2, err, sizeof(err)), -EEXIST);
    ck_assert(strstr(err, p) != NULL);
    ck_assert(strstr(err, "already exists") != NULL);
    ck_assert_int_eq(ptth_key_load_file(p, &loaded, err, sizeof(err)), 0);
    ck_assert_str_eq(loaded.text, k.text);

    /* nor through a symlink, dangling or not */
    char link[128];
    snprintf(link, sizeof(link), "%s/link.key", tmpdir);
    ck_assert_int_eq(symlink(tmp_path("target.key"), link), 0);
    ck_assert_int_eq(ptth_key_write_new_file(link, &k2, err, sizeof(err)), -EEXIST);
    ck_assert_int_eq(access(tmp_path("target.key"), F_OK), -1);

    /* a restrictive umask still gives 0600 */
    old = umask(0277);
    ck_assert_int_eq(ptth_key_write_new_file(tmp_path("umask.key"), &k2, err, sizeof(err)), 0);
    umask(old);
    ck_assert_int_eq(stat(tmp_path("umask.key"), &st), 0);
    ck_assert_int_eq(st.st_mode & 07777, 0600);

    /* a directory that does not exist */
    ck_assert_int_eq(ptth_key_write_new_file(tmp_path("nodir/x.key"), &k2, err, sizeof(err)), -ENOENT);
    ck_assert(strstr(err, "cannot create key file") != NULL);
    remove_tmpdir();
}
END_TEST

Suite *
ptth_test_suite(void)
{
    Suite *s = suite_create("keys");
    TCase *tc = tcase_create("keys");
    tcase_add_test(tc, format_valid);
    tcase_add_test(tc, hash_format_valid);
    tcase_add_test(tc, hash_matches_sha256sum);
    tcase_add_test(tc, generate);
    tcase_add_test(tc, base64url_vectors);
    tcase_add_test(tc, random_id);
    tcase_add_test(tc, hash_equal);
    tcase_add_test(tc, hash_equal_is_constant_time);
    tcase_add_test(tc, load_good_files);
    tcase_add_test(tc, load_refuses_readable_by_others);
    tcase_add_test(tc, load_bad_format);
    tcase_add_test(tc, load_missing_and_not_regular);
    tcase_add_test(tc, load_from_env);
    tcase_add_test(tc, write_new_file);
    suite_add_tcase(s, tc);
    return s;
}
