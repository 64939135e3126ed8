/*
 * keys.h: ptth keys and their hashes (SPEC §2).
 *
 * A key is 32 random bytes written as unpadded base64url: 43 characters.
 * Its hash is the lowercase hex SHA-256 of those 43 characters (64 chars).
 * The relay stores only hashes and compares them in constant time.
 *
 * Functions that can fail return 0 or a negative errno-style code and write a
 * one-line reason (naming the file and what was wrong) into err.
 */
#ifndef PTTH_KEYS_H
#define PTTH_KEYS_H

#include <stdbool.h>
#include <stddef.h>

#define PTTH_KEY_LEN 43
#define PTTH_KEY_HASH_LEN 64

/* A loaded key or hash, NUL-terminated. */
typedef struct ptth_key {
    char text[PTTH_KEY_LEN + 1];
} ptth_key;
typedef struct ptth_key_hash {
    char hex[PTTH_KEY_HASH_LEN + 1];
} ptth_key_hash;

/* Error codes beyond errno values. */
#define PTTH_KEY_ERR_PERMS (-1001)  /* file readable by group or others */
#define PTTH_KEY_ERR_FORMAT (-1002) /* content is not one 43-char base64url line */

/* true when text[0..len) is 43 base64url characters. */
bool ptth_key_format_valid(const char *text, size_t len);
/* true when hex is exactly 64 lowercase hex digits (NUL-terminated). */
bool ptth_key_hash_format_valid(const char *hex);

/* Fresh key from OpenSSL RAND_bytes. 0 or -EIO. */
int ptth_key_generate(ptth_key *out);

/* Reads a secret file whole into buf (at most cap - 1 bytes, then a NUL):
 * a regular file, not readable by group or others (PTTH_KEY_ERR_PERMS).
 * what names it in errors ("key file", "proxy user file"). 0 with *len;
 * -EFBIG when it holds more; -errno of open/read; err says why and never
 * holds the content. The caller wipes buf (OPENSSL_cleanse). */
int ptth_secret_file_read(const char *path, const char *what, char *buf, size_t cap, size_t *len, char *err, size_t errlen);

/* Reads a key file: must be a regular file not readable by group/others
 * (PTTH_KEY_ERR_PERMS), one line of 43 base64url chars, optional trailing
 * newline (PTTH_KEY_ERR_FORMAT). Other failures: -errno of open/read. */
int ptth_key_load_file(const char *path, ptth_key *out, char *err, size_t errlen);

/* The key of a terminator: from path when non-NULL, else from $PTTH_KEY.
 * -ENOENT with "no key: give --key-file or set PTTH_KEY" when neither. */
int ptth_key_load(const char *path_or_null, ptth_key *out, char *err, size_t errlen);

/* Writes a fresh key to path with mode 0600 (O_EXCL: refuses to overwrite,
 * -EEXIST). */
int ptth_key_write_new_file(const char *path, ptth_key *out, char *err, size_t errlen);

/* SHA-256 of the len bytes at text, as lowercase hex. */
void ptth_key_hash_of(const char *text, size_t len, ptth_key_hash *out);

/* Constant-time equality of two 64-char hashes (CRYPTO_memcmp). */
bool ptth_key_hash_equal(const ptth_key_hash *a, const ptth_key_hash *b);

/* Unpadded base64url (RFC 4648 §5) of len bytes into out, which must hold
 * (len * 4 + 2) / 3 characters and a NUL; returns the characters written. */
size_t ptth_base64url_encode(const void *in, size_t len, char *out);

/* 128 random bits as unpadded base64url (22 chars + NUL): connection ids. */
#define PTTH_ID_LEN 22
int ptth_random_id(char out[PTTH_ID_LEN + 1]);

#endif
