/*
 * log.h: one line per event on stderr, for every ptth program.
 *
 * Line format (SPEC §2):
 *   2026-11-22T23:09:01.123Z info prog=ptth_relay event=tunnel_end id=... reason=fin
 * i.e. UTC timestamp with milliseconds, level, then the caller's key=value
 * fields. The logger replaces every control character (and DEL) in the
 * formatted text with \xNN, so bytes that came from the network can never
 * forge a second line. Values that may hold spaces or quotes must be passed
 * through ptth_log_quote() by the caller.
 *
 * Not thread-safe for level changes; ptth_log() itself writes each line with a
 * single write(2) so lines from helper threads do not interleave.
 */
#ifndef PTTH_LOG_H
#define PTTH_LOG_H

#include <stdbool.h>
#include <stddef.h>

typedef enum ptth_log_level {
    PTTH_LOG_ERROR = 0,
    PTTH_LOG_WARN = 1,
    PTTH_LOG_INFO = 2,
    PTTH_LOG_DEBUG = 3,
} ptth_log_level;

/* Sets the program name put in every line and the threshold (default info). */
void ptth_log_init(const char *program, ptth_log_level threshold);
void ptth_log_set_level(ptth_log_level threshold);

/* "error" | "warn" | "info" | "debug" -> 0, anything else -> -EINVAL. */
int ptth_log_parse_level(const char *text, ptth_log_level *out);

bool ptth_log_enabled(ptth_log_level level);

/* fmt produces the key=value fields, e.g. "event=listen server=%s". Lines longer
 * than 4 KiB are truncated, never split. */
void ptth_log(ptth_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Writes text into out as a double-quoted value with \" and \\ escaped,
 * truncated to fit; returns out. Control characters are handled by ptth_log. */
const char *ptth_log_quote(char *out, size_t outlen, const char *text);

#define ptth_log_error(...) ptth_log(PTTH_LOG_ERROR, __VA_ARGS__)
#define ptth_log_warn(...) ptth_log(PTTH_LOG_WARN, __VA_ARGS__)
#define ptth_log_info(...) ptth_log(PTTH_LOG_INFO, __VA_ARGS__)
#define ptth_log_debug(...)                                                                                                        \
    do {                                                                                                                           \
        if (ptth_log_enabled(PTTH_LOG_DEBUG))                                                                                      \
            ptth_log(PTTH_LOG_DEBUG, __VA_ARGS__);                                                                                 \
    } while (0)

#endif
