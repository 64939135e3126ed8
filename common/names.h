/*
 * names.h: validation of server, port and client names (SPEC §2):
 * 1 to 64 characters of A-Z a-z 0-9 . _ -
 * Every program checks names with this one function, whether they come from
 * the command line, a config file or a request path.
 */
#ifndef PTTH_NAMES_H
#define PTTH_NAMES_H

#include <stdbool.h>
#include <stddef.h>

#define PTTH_NAME_MAX 64

/* true when the len bytes at name form a valid name (no NUL needed). */
bool ptth_name_valid(const char *name, size_t len);

/* Same for a NUL-terminated string. */
bool ptth_name_valid_str(const char *name);

#endif
