/*
 * resume.h: the relay's resume secret and the proofs of resumable tunnels
 * (SPEC §9.3, docs/protocol.md "Resumable tunnels").
 *
 * A token is HMAC-SHA256 under the secret over exactly
 *   "ptth-resume/1\n" ID "\n" SIDE "\n" SERVER "\n" PORT "\n" PROTO "\n" CLIENT
 * written as unpadded base64url (43 characters). It is a secret: nothing
 * here logs it, and callers must not either.
 *
 * The secret is the bytes of --resume-secret-file (at least
 * PTTH_RESUME_SECRET_MIN, at most PTTH_RESUME_SECRET_MAX, taken as they are,
 * a trailing newline included: relays sharing the file read the same bytes),
 * or PTTH_RESUME_SECRET_MIN random bytes from OpenSSL at start. Pure logic
 * plus one file read; no h2o.
 */
#ifndef PTTH_RELAY_RESUME_H
#define PTTH_RELAY_RESUME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PTTH_RESUME_SECRET_MIN 32
#define PTTH_RESUME_SECRET_MAX 1024
#define PTTH_RESUME_TOKEN_LEN 43

typedef struct ptth_resume_secret {
    unsigned char bytes[PTTH_RESUME_SECRET_MAX];
    size_t len;
} ptth_resume_secret;

/* Loads path (NULL: draws random bytes). 0, or -1 with err saying what
 * failed and naming the file (mode, size, read error). */
int ptth_resume_secret_load(ptth_resume_secret *s, const char *path, char *err, size_t errlen);

/* Sets the secret from len bytes (tests, fuzzing). */
void ptth_resume_secret_set(ptth_resume_secret *s, const void *bytes, size_t len);

/* Wipes the secret. */
void ptth_resume_secret_wipe(ptth_resume_secret *s);

/* The token of one side (server_side: SIDE "server", else "client") into
 * out (PTTH_RESUME_TOKEN_LEN characters and a NUL). 0, or -1 when HMAC
 * failed (out is then empty). */
int ptth_resume_token(const ptth_resume_secret *s, const char *id, bool server_side, const char *server, const char *port,
                      const char *proto, const char *client, char out[PTTH_RESUME_TOKEN_LEN + 1]);

/* true when the token_len bytes at token are that side's token (compared in
 * constant time). */
bool ptth_resume_token_ok(const ptth_resume_secret *s, const char *id, bool server_side, const char *server, const char *port,
                          const char *proto, const char *client, const char *token, size_t token_len);

/* A PTTH-Received / PTTH-Sent value: 1 to 20 decimal digits that fit a
 * uint64. 0 or -1. */
int ptth_resume_parse_count(const char *text, size_t len, uint64_t *out);

#endif
