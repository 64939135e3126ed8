/*
 * resume.c: see resume.h.
 */
#include "resume.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "keys.h"
#include "names.h"

void
ptth_resume_secret_set(ptth_resume_secret *s, const void *bytes, size_t len)
{
    if (len > sizeof(s->bytes))
        len = sizeof(s->bytes);
    memcpy(s->bytes, bytes, len);
    s->len = len;
}

void
ptth_resume_secret_wipe(ptth_resume_secret *s)
{
    OPENSSL_cleanse(s->bytes, sizeof(s->bytes));
    s->len = 0;
}

int
ptth_resume_secret_load(ptth_resume_secret *s, const char *path, char *err, size_t errlen)
{
    ptth_resume_secret_wipe(s);
    if (path == NULL) {
        if (RAND_bytes(s->bytes, PTTH_RESUME_SECRET_MIN) != 1) {
            snprintf(err, errlen, "cannot draw %d random bytes for the resume secret (OpenSSL RAND_bytes)", PTTH_RESUME_SECRET_MIN);
            return -1;
        }
        s->len = PTTH_RESUME_SECRET_MIN;
        return 0;
    }
    char buf[PTTH_RESUME_SECRET_MAX + 1];
    size_t len = 0;
    char why[512];
    int rc = ptth_secret_file_read(path, "--resume-secret-file", buf, sizeof(buf), &len, why, sizeof(why));
    if (rc != 0) {
        snprintf(err, errlen, "%s", why);
        OPENSSL_cleanse(buf, sizeof(buf));
        return -1;
    }
    if (len < PTTH_RESUME_SECRET_MIN) {
        snprintf(err, errlen, "--resume-secret-file '%s' holds %zu bytes; at least %d are needed (e.g. head -c 32 /dev/urandom)",
                 path, len, PTTH_RESUME_SECRET_MIN);
        OPENSSL_cleanse(buf, sizeof(buf));
        return -1;
    }
    ptth_resume_secret_set(s, buf, len);
    OPENSSL_cleanse(buf, sizeof(buf));
    return 0;
}

/* The MAC's input: the fields are names and ids (no '\n' in them, names.h),
 * so the separators make the string unambiguous. */
static size_t
message(char *buf, size_t cap, const char *id, bool server_side, const char *server, const char *port, const char *proto,
        const char *client)
{
    int n = snprintf(buf, cap, "ptth-resume/1\n%s\n%s\n%s\n%s\n%s\n%s", id, server_side ? "server" : "client", server, port, proto,
                     client);
    return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

int
ptth_resume_token(const ptth_resume_secret *s, const char *id, bool server_side, const char *server, const char *port,
                  const char *proto, const char *client, char out[PTTH_RESUME_TOKEN_LEN + 1])
{
    char msg[4 * PTTH_NAME_MAX + PTTH_ID_LEN + 64];
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned maclen = 0;
    out[0] = '\0';
    size_t n = message(msg, sizeof(msg), id, server_side, server, port, proto, client);
    if (n == 0 || s->len == 0 ||
        HMAC(EVP_sha256(), s->bytes, (int)s->len, (const unsigned char *)msg, n, mac, &maclen) == NULL || maclen != 32)
        return -1;
    size_t len = ptth_base64url_encode(mac, maclen, out);
    out[len] = '\0';
    OPENSSL_cleanse(mac, sizeof(mac));
    return len == PTTH_RESUME_TOKEN_LEN ? 0 : -1;
}

bool
ptth_resume_token_ok(const ptth_resume_secret *s, const char *id, bool server_side, const char *server, const char *port,
                     const char *proto, const char *client, const char *token, size_t token_len)
{
    char want[PTTH_RESUME_TOKEN_LEN + 1];
    if (token == NULL || token_len != PTTH_RESUME_TOKEN_LEN ||
        ptth_resume_token(s, id, server_side, server, port, proto, client, want) != 0)
        return false;
    bool ok = CRYPTO_memcmp(want, token, PTTH_RESUME_TOKEN_LEN) == 0;
    OPENSSL_cleanse(want, sizeof(want));
    return ok;
}

int
ptth_resume_parse_count(const char *text, size_t len, uint64_t *out)
{
    if (text == NULL || len == 0 || len > 20)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] < '0' || text[i] > '9')
            return -1;
        uint64_t d = (uint64_t)(text[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}
