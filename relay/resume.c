/*
 * resume.c: see resume.h.
 */
#include "resume.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
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

/* HMAC, fetched from OpenSSL's providers once: the one-shot HMAC() fetches
 * the MAC and the digest again on every call, which was most of the
 * relay's instructions per tunnel (two tokens each). Kept for the life of
 * the process; single-threaded, as the relay. */
static EVP_MAC *
hmac_alg(void)
{
    static EVP_MAC *mac;
    if (mac == NULL)
        mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    return mac;
}

/* HMAC-SHA256 of msg under the secret into mac (32 bytes). 0 or -1. */
static int
hmac_sha256(const ptth_resume_secret *s, const char *msg, size_t n, unsigned char mac[32])
{
    EVP_MAC *alg = hmac_alg();
    EVP_MAC_CTX *ctx = alg != NULL ? EVP_MAC_CTX_new(alg) : NULL;
    if (ctx == NULL)
        return -1;
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", digest, 0), OSSL_PARAM_construct_end()};
    size_t maclen = 0;
    int ok = EVP_MAC_init(ctx, s->bytes, s->len, params) == 1 && EVP_MAC_update(ctx, (const unsigned char *)msg, n) == 1 &&
             EVP_MAC_final(ctx, mac, &maclen, 32) == 1 && maclen == 32;
    EVP_MAC_CTX_free(ctx);
    return ok ? 0 : -1;
}

int
ptth_resume_token(const ptth_resume_secret *s, const char *id, bool server_side, const char *server, const char *port,
                  const char *proto, const char *client, char out[PTTH_RESUME_TOKEN_LEN + 1])
{
    char msg[4 * PTTH_NAME_MAX + PTTH_ID_LEN + 64];
    unsigned char mac[32];
    out[0] = '\0';
    size_t n = message(msg, sizeof(msg), id, server_side, server, port, proto, client);
    if (n == 0 || s->len == 0 || hmac_sha256(s, msg, n, mac) != 0)
        return -1;
    size_t len = ptth_base64url_encode(mac, sizeof(mac), out);
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
