/*
 * instance.h: a terminator's instance id (docs/protocol.md "PTTH-Instance"),
 * sent as `PTTH-Instance: SLOT.LIFE` on every request to the relay.
 *
 *   SLOT  the same across restarts of the same terminator: unpadded
 *         base64url of SHA-256 over the host name, the program and what
 *         identifies that terminator (its options), cut to
 *         PTTH_INSTANCE_SLOT_LEN characters. Not a secret, and never made
 *         from one (no key goes into it).
 *   LIFE  new at each start: 16 random bytes (RAND_bytes), base64url, 22
 *         characters.
 *
 * The relay ends the suspended tunnels of an earlier LIFE of a SLOT at once
 * (reason peer_restarted, relay/instances.h). The parser is strict and for
 * untrusted bytes: each part 1..PTTH_INSTANCE_PART_MAX base64url characters,
 * exactly one '.' between them, nothing else (no spaces, no NUL).
 */
#ifndef PTTH_INSTANCE_H
#define PTTH_INSTANCE_H

#include <stddef.h>

#define PTTH_INSTANCE_SLOT_LEN 22 /* what ptth_instance_make writes (132 bits of the hash) */
#define PTTH_INSTANCE_LIFE_LEN 22 /* 128 random bits */
#define PTTH_INSTANCE_PART_MAX 43 /* what the parser takes per part (a whole SHA-256) */
#define PTTH_INSTANCE_TEXT_MAX (2 * PTTH_INSTANCE_PART_MAX + 1)

typedef struct ptth_instance {
    char slot[PTTH_INSTANCE_PART_MAX + 1]; /* "" : no instance */
    char life[PTTH_INSTANCE_PART_MAX + 1];
} ptth_instance;

/* Parses the len bytes of a PTTH-Instance value (no NUL needed). 0, or
 * -EINVAL with out cleared (a constant reason in *why when why != NULL). */
int ptth_instance_parse(const char *v, size_t len, ptth_instance *out, const char **why);

/* The slot of a terminator: host, program, then the n identifying texts
 * (each hashed with its length, so that ("ab","c") and ("a","bc") differ).
 * Writes PTTH_INSTANCE_SLOT_LEN characters and a NUL. 0, or -EIO. */
int ptth_instance_slot(const char *host, const char *program, const char *const *ident, size_t n,
                       char out[PTTH_INSTANCE_PART_MAX + 1]);

/* This process's instance: the slot of gethostname(), program and ident,
 * and a random life. 0, or -EIO (no randomness). */
int ptth_instance_make(const char *program, const char *const *ident, size_t n, ptth_instance *out);

/* "SLOT.LIFE" into out (PTTH_INSTANCE_TEXT_MAX + 1 bytes). */
void ptth_instance_format(const ptth_instance *in, char out[PTTH_INSTANCE_TEXT_MAX + 1]);

#endif
