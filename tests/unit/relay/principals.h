/*
 * principals.h: for the relay's Check suites, the --server / --client
 * values ("NAME=KEYHASH") of named keys, as ptth_auth_build() takes them.
 */
#ifndef PTTH_TEST_PRINCIPALS_H
#define PTTH_TEST_PRINCIPALS_H

#include <stddef.h>

#include "options.h"

#define PTTH_TEST_PRINCIPAL_LEN 128

/* A strlist of names[i] + "=" + the hash of keys[i], written into items and
 * pointed at by ptrs (both the caller's, n entries each). */
ptth_strlist ptth_test_principals(char (*items)[PTTH_TEST_PRINCIPAL_LEN], char **ptrs, size_t n, const char *const *names,
                                  const char *const *keys);

#endif
