/*
 * keys.c: see keys.h. SHA-256, random bytes and constant-time comparison come
 * from OpenSSL; base64url is small enough to do here. Error texts never
 * contain key material.
 */
#include "keys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#define KEY_BYTES 32
#define ID_BYTES 16
/* A key file holds 43 chars and a newline; anything much larger is not a key. */
#define KEY_FILE_READ_MAX 128

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void
set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

size_t
ptth_base64url_encode(const void *data, size_t len, char *out)
{
    const uint8_t *in = data;
    size_t o = 0, i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8) | in[i + 2];
        out[o++] = b64url[(v >> 18) & 63];
        out[o++] = b64url[(v >> 12) & 63];
        out[o++] = b64url[(v >> 6) & 63];
        out[o++] = b64url[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = b64url[(v >> 18) & 63];
        out[o++] = b64url[(v >> 12) & 63];
    } else if (len - i == 2) {
        uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8);
        out[o++] = b64url[(v >> 18) & 63];
        out[o++] = b64url[(v >> 12) & 63];
        out[o++] = b64url[(v >> 6) & 63];
    }
    out[o] = '\0';
    return o;
}

static bool
b64url_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

bool
ptth_key_format_valid(const char *text, size_t len)
{
    if (text == NULL || len != PTTH_KEY_LEN)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (!b64url_char((unsigned char)text[i]))
            return false;
    }
    return true;
}

bool
ptth_key_hash_format_valid(const char *hex)
{
    if (hex == NULL)
        return false;
    for (size_t i = 0; i < PTTH_KEY_HASH_LEN; i++) {
        char c = hex[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return hex[PTTH_KEY_HASH_LEN] == '\0';
}

int
ptth_key_generate(ptth_key *out)
{
    uint8_t raw[KEY_BYTES];
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return -EIO;
    ptth_base64url_encode(raw, sizeof(raw), out->text);
    OPENSSL_cleanse(raw, sizeof(raw));
    return 0;
}

int
ptth_random_id(char out[PTTH_ID_LEN + 1])
{
    uint8_t raw[ID_BYTES];
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return -EIO;
    ptth_base64url_encode(raw, sizeof(raw), out);
    return 0;
}

/* Accepts the key text followed by an optional "\n" or "\r\n". */
static bool
parse_key_text(const char *buf, size_t len, ptth_key *out)
{
    if (len > 0 && buf[len - 1] == '\n') {
        len--;
        if (len > 0 && buf[len - 1] == '\r')
            len--;
    }
    if (!ptth_key_format_valid(buf, len))
        return false;
    memcpy(out->text, buf, PTTH_KEY_LEN);
    out->text[PTTH_KEY_LEN] = '\0';
    return true;
}

int
ptth_secret_file_read(const char *path, const char *what, char *buf, size_t cap, size_t *len, char *err, size_t errlen)
{
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        int e = errno;
        set_err(err, errlen, "cannot open %s '%s': %s", what, path, strerror(e));
        return -e;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        set_err(err, errlen, "cannot stat %s '%s': %s", what, path, strerror(e));
        return -e;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        set_err(err, errlen, "%s '%s' is not a regular file", what, path);
        return -EINVAL;
    }
    if ((st.st_mode & (S_IRGRP | S_IROTH)) != 0) {
        close(fd);
        set_err(err, errlen, "%s '%s' is readable by group or others (mode %04o); run chmod 600 '%s'", what, path,
                (unsigned)(st.st_mode & 07777), path);
        return PTTH_KEY_ERR_PERMS;
    }
    size_t have = 0;
    for (;;) {
        ssize_t n = read(fd, buf + have, cap - 1 - have);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            close(fd);
            OPENSSL_cleanse(buf, cap);
            set_err(err, errlen, "cannot read %s '%s': %s", what, path, strerror(e));
            return -e;
        }
        if (n == 0)
            break;
        if ((have += (size_t)n) == cap - 1) {
            char extra;
            if (read(fd, &extra, 1) == 1) {
                close(fd);
                OPENSSL_cleanse(buf, cap);
                set_err(err, errlen, "%s '%s' is too large (more than %zu bytes)", what, path, cap - 1);
                return -EFBIG;
            }
            break;
        }
    }
    close(fd);
    buf[have] = '\0';
    *len = have;
    return 0;
}

int
ptth_key_load_file(const char *path, ptth_key *out, char *err, size_t errlen)
{
    char buf[KEY_FILE_READ_MAX + 1];
    size_t have = 0;
    int rc = ptth_secret_file_read(path, "key file", buf, sizeof(buf), &have, err, errlen);
    if (rc == -EFBIG)
        rc = PTTH_KEY_ERR_FORMAT;
    bool ok = rc == 0 && parse_key_text(buf, have, out);
    OPENSSL_cleanse(buf, sizeof(buf));
    if (rc != 0 && rc != PTTH_KEY_ERR_FORMAT)
        return rc;
    if (!ok) {
        set_err(err, errlen, "key file '%s' does not hold a key: expected one line of %d base64url characters", path, PTTH_KEY_LEN);
        return PTTH_KEY_ERR_FORMAT;
    }
    return 0;
}

int
ptth_key_load(const char *path_or_null, ptth_key *out, char *err, size_t errlen)
{
    if (path_or_null != NULL)
        return ptth_key_load_file(path_or_null, out, err, errlen);
    const char *env = getenv("PTTH_KEY");
    if (env == NULL || env[0] == '\0') {
        set_err(err, errlen, "no key: give --key-file or set PTTH_KEY");
        return -ENOENT;
    }
    if (!parse_key_text(env, strlen(env), out)) {
        set_err(err, errlen, "PTTH_KEY does not hold a key: expected %d base64url characters", PTTH_KEY_LEN);
        return PTTH_KEY_ERR_FORMAT;
    }
    return 0;
}

static int
write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

int
ptth_key_write_new_file(const char *path, ptth_key *out, char *err, size_t errlen)
{
    ptth_key key;
    if (ptth_key_generate(&key) != 0) {
        set_err(err, errlen, "cannot generate a key: no random bytes from OpenSSL");
        return -EIO;
    }
    /* O_EXCL also refuses a dangling symlink, so nothing is written elsewhere */
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0600);
    if (fd < 0) {
        int e = errno;
        if (e == EEXIST)
            set_err(err, errlen, "key file '%s' already exists; not overwriting it", path);
        else
            set_err(err, errlen, "cannot create key file '%s': %s", path, strerror(e));
        OPENSSL_cleanse(&key, sizeof(key));
        return -e;
    }
    /* the umask may have taken bits away; make it exactly 0600 */
    int rc = fchmod(fd, 0600) != 0 ? -errno : 0;
    char line[PTTH_KEY_LEN + 1];
    memcpy(line, key.text, PTTH_KEY_LEN);
    line[PTTH_KEY_LEN] = '\n';
    if (rc == 0)
        rc = write_all(fd, line, sizeof(line));
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    OPENSSL_cleanse(line, sizeof(line));
    if (rc != 0) {
        unlink(path);
        set_err(err, errlen, "cannot write key file '%s': %s", path, strerror(-rc));
        OPENSSL_cleanse(&key, sizeof(key));
        return rc;
    }
    if (out != NULL)
        *out = key;
    OPENSSL_cleanse(&key, sizeof(key));
    return 0;
}

/* SHA-256, fetched from OpenSSL's providers once: EVP_sha256() in every
 * call makes EVP_Digest fetch it again, which cost more than the hash of a
 * key (the relay hashes the key of every request). Kept for the life of
 * the process, like OpenSSL's own store; single-threaded, as every caller. */
static EVP_MD *
sha256_md(void)
{
    static EVP_MD *md;
    if (md == NULL)
        md = EVP_MD_fetch(NULL, "SHA256", NULL);
    return md;
}

void
ptth_key_hash_of(const char *text, size_t len, ptth_key_hash *out)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD *sha256 = sha256_md();
    if (sha256 == NULL || EVP_Digest(text, len, md, &mdlen, sha256, NULL) != 1 || mdlen != PTTH_KEY_HASH_LEN / 2) {
        /* cannot happen with a working libcrypto; a hash that matches nothing */
        memset(out->hex, 'x', PTTH_KEY_HASH_LEN);
        out->hex[PTTH_KEY_HASH_LEN] = '\0';
        return;
    }
    for (unsigned i = 0; i < mdlen; i++) {
        out->hex[2 * i] = hex[md[i] >> 4];
        out->hex[2 * i + 1] = hex[md[i] & 0xf];
    }
    out->hex[PTTH_KEY_HASH_LEN] = '\0';
}

bool
ptth_key_hash_equal(const ptth_key_hash *a, const ptth_key_hash *b)
{
    return CRYPTO_memcmp(a->hex, b->hex, PTTH_KEY_HASH_LEN) == 0;
}
