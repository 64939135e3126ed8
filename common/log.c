/*
 * log.c: see log.h. Each line is built in a stack buffer and written with a
 * single write(2), so no stdio buffering is involved and lines from helper
 * threads or child processes sharing stderr never interleave.
 */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 4096
#define PROGRAM_MAX 64

static char program_name[PROGRAM_MAX] = "";
static ptth_log_level current_threshold = PTTH_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void
ptth_log_init(const char *program, ptth_log_level threshold)
{
    snprintf(program_name, sizeof(program_name), "%s", program != NULL ? program : "");
    ptth_log_set_level(threshold);
}

void
ptth_log_set_level(ptth_log_level threshold)
{
    if (threshold < PTTH_LOG_ERROR)
        threshold = PTTH_LOG_ERROR;
    if (threshold > PTTH_LOG_DEBUG)
        threshold = PTTH_LOG_DEBUG;
    current_threshold = threshold;
}

int
ptth_log_parse_level(const char *text, ptth_log_level *out)
{
    if (text == NULL)
        return -EINVAL;
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcmp(text, level_names[i]) == 0) {
            *out = (ptth_log_level)i;
            return 0;
        }
    }
    return -EINVAL;
}

bool
ptth_log_enabled(ptth_log_level level)
{
    return level <= current_threshold;
}

/* Writes all of buf, retrying on EINTR and short writes; gives up silently
 * on other errors (there is nowhere left to report them). */
static void
write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        buf += n;
        len -= (size_t)n;
    }
}

/* Copies src into dst (capacity cap, at least 1 left for the newline),
 * replacing control characters and DEL with \xNN. An escape that would not
 * fit whole is dropped, so truncation never leaves half an escape. */
static size_t
copy_escaped(char *dst, size_t cap, const char *src, size_t srclen)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < srclen; i++) {
        unsigned char c = (unsigned char)src[i];
        if (c < 0x20 || c == 0x7f) {
            if (o + 4 > cap)
                break;
            dst[o++] = '\\';
            dst[o++] = 'x';
            dst[o++] = hex[c >> 4];
            dst[o++] = hex[c & 0xf];
        } else {
            if (o + 1 > cap)
                break;
            dst[o++] = (char)c;
        }
    }
    return o;
}

void
ptth_log(ptth_log_level level, const char *fmt, ...)
{
    if (!ptth_log_enabled(level))
        return;
    int saved_errno = errno;

    char line[LINE_MAX_BYTES];
    size_t len = 0;

    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int lvl = level < PTTH_LOG_ERROR ? 0 : level > PTTH_LOG_DEBUG ? 3 : (int)level;
    int n;
    if (program_name[0] != '\0')
        n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s prog=%s ", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, level_names[lvl], program_name);
    else
        n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, level_names[lvl]);
    if (n > 0)
        len = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;

    char fields[LINE_MAX_BYTES];
    va_list ap;
    va_start(ap, fmt);
    n = vsnprintf(fields, sizeof(fields), fmt, ap);
    va_end(ap);
    if (n > 0) {
        size_t flen = (size_t)n < sizeof(fields) ? (size_t)n : sizeof(fields) - 1;
        /* keep one byte for the newline */
        len += copy_escaped(line + len, sizeof(line) - 1 - len, fields, flen);
    }
    line[len++] = '\n';
    write_all(STDERR_FILENO, line, len);
    errno = saved_errno;
}

const char *
ptth_log_quote(char *out, size_t outlen, const char *text)
{
    if (outlen == 0)
        return out;
    if (outlen < 3) {
        out[0] = '\0';
        return out;
    }
    if (text == NULL)
        text = "";
    size_t o = 0;
    out[o++] = '"';
    /* room for the closing quote and the NUL */
    size_t limit = outlen - 2;
    for (const char *p = text; *p != '\0'; p++) {
        bool esc = *p == '"' || *p == '\\';
        if (o + (esc ? 2 : 1) > limit)
            break;
        if (esc)
            out[o++] = '\\';
        out[o++] = *p;
    }
    out[o++] = '"';
    out[o] = '\0';
    return out;
}
