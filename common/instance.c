/*
 * instance.c: see instance.h. SHA-256 and the random bytes come from
 * OpenSSL, base64url from keys.c.
 */
#include "instance.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "keys.h"

static int
b64url_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/* One part: 1..PTTH_INSTANCE_PART_MAX base64url characters. */
static const char *
part_ok(const char *p, size_t len)
{
    if (len == 0)
        return "an empty part";
    if (len > PTTH_INSTANCE_PART_MAX)
        return "a part longer than 43 characters";
    for (size_t i = 0; i < len; i++)
        if (!b64url_char((unsigned char)p[i]))
            return "a character that is not base64url";
    return NULL;
}

int
ptth_instance_parse(const char *v, size_t len, ptth_instance *out, const char **why)
{
    const char *bad = NULL;
    memset(out, 0, sizeof(*out));
    const char *dot = v != NULL ? memchr(v, '.', len) : NULL;
    if (v == NULL || len == 0)
        bad = "empty";
    else if (len > PTTH_INSTANCE_TEXT_MAX)
        bad = "longer than 87 characters";
    else if (dot == NULL)
        bad = "no '.' between SLOT and LIFE";
    else if ((bad = part_ok(v, (size_t)(dot - v))) == NULL)
        bad = part_ok(dot + 1, len - (size_t)(dot - v) - 1); /* a second '.' is not base64url */
    if (bad != NULL) {
        if (why != NULL)
            *why = bad;
        return -EINVAL;
    }
    size_t slen = (size_t)(dot - v);
    memcpy(out->slot, v, slen);
    memcpy(out->life, dot + 1, len - slen - 1);
    return 0;
}

static int
hash_text(EVP_MD_CTX *md, const char *s)
{
    uint64_t n = strlen(s);
    uint8_t lenbytes[8];
    for (int i = 0; i < 8; i++)
        lenbytes[i] = (uint8_t)(n >> (8 * i));
    return EVP_DigestUpdate(md, lenbytes, sizeof(lenbytes)) == 1 && EVP_DigestUpdate(md, s, n) == 1 ? 0 : -EIO;
}

int
ptth_instance_slot(const char *host, const char *program, const char *const *ident, size_t n, char out[PTTH_INSTANCE_PART_MAX + 1])
{
    uint8_t digest[EVP_MAX_MD_SIZE];
    unsigned dlen = 0;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int rc = md != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 ? 0 : -EIO;
    if (rc == 0)
        rc = hash_text(md, "ptth-instance-slot/1");
    if (rc == 0)
        rc = hash_text(md, host);
    if (rc == 0)
        rc = hash_text(md, program);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = hash_text(md, ident[i] != NULL ? ident[i] : "");
    if (rc == 0 && (EVP_DigestFinal_ex(md, digest, &dlen) != 1 || dlen != 32))
        rc = -EIO;
    EVP_MD_CTX_free(md);
    if (rc != 0)
        return rc;
    char full[PTTH_INSTANCE_PART_MAX + 1];
    full[ptth_base64url_encode(digest, dlen, full)] = '\0';
    memcpy(out, full, PTTH_INSTANCE_SLOT_LEN);
    out[PTTH_INSTANCE_SLOT_LEN] = '\0';
    return 0;
}

int
ptth_instance_make(const char *program, const char *const *ident, size_t n, ptth_instance *out)
{
    char host[256];
    memset(out, 0, sizeof(*out));
    if (gethostname(host, sizeof(host)) != 0)
        snprintf(host, sizeof(host), "localhost");
    host[sizeof(host) - 1] = '\0';
    _Static_assert(PTTH_ID_LEN == PTTH_INSTANCE_LIFE_LEN, "a life is a random id");
    int rc = ptth_instance_slot(host, program, ident, n, out->slot);
    if (rc == 0)
        rc = ptth_random_id(out->life);
    if (rc != 0)
        memset(out, 0, sizeof(*out));
    return rc;
}

void
ptth_instance_format(const ptth_instance *in, char out[PTTH_INSTANCE_TEXT_MAX + 1])
{
    snprintf(out, PTTH_INSTANCE_TEXT_MAX + 1, "%s.%s", in->slot, in->life);
}
