/*
 * sbuf.c: see sbuf.h.
 */
#include "sbuf.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Makes room for need more bytes plus a NUL; false once failed. */
static bool
reserve(ptth_sbuf *b, size_t need)
{
    if (b->failed)
        return false;
    if (need >= PTTH_SBUF_MAX || b->len >= PTTH_SBUF_MAX - need) {
        b->failed = true;
        return false;
    }
    if (b->cap - b->len > need)
        return true;
    size_t cap = b->cap == 0 ? 4096 : b->cap;
    while (cap - b->len <= need)
        cap *= 2;
    char *q = realloc(b->p, cap);
    if (q == NULL) {
        b->failed = true;
        return false;
    }
    b->p = q;
    b->cap = cap;
    return true;
}

void
ptth_sbuf_printf(ptth_sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = true;
        return;
    }
    if (!reserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void
ptth_sbuf_add(ptth_sbuf *b, const char *s, size_t len)
{
    if (!reserve(b, len))
        return;
    memcpy(b->p + b->len, s, len);
    b->len += len;
    b->p[b->len] = '\0';
}

size_t
ptth_utf8_seq(const unsigned char *s, size_t len)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t n;
    uint32_t cp, min;
    if ((c & 0xe0) == 0xc0)
        n = 2, cp = c & 0x1f, min = 0x80;
    else if ((c & 0xf0) == 0xe0)
        n = 3, cp = c & 0x0f, min = 0x800;
    else if ((c & 0xf8) == 0xf0)
        n = 4, cp = c & 0x07, min = 0x10000;
    else
        return 0; /* a continuation byte or 0xf8..0xff */
    if (len < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

static const char replacement[] = "\xef\xbf\xbd"; /* U+FFFD */

/* Appends s to b, copying valid multi-byte UTF-8 sequences as they are and
 * handing every single byte to escape_ascii; an invalid byte becomes
 * invalid_text. The three escapers below differ only in those two. */
static void
escape_utf8(ptth_sbuf *b, const char *s, size_t len, const char *invalid_text, void (*escape_ascii)(ptth_sbuf *b, unsigned c))
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < len && !b->failed;) {
        size_t n = ptth_utf8_seq(u + i, len - i);
        if (n == 0) {
            ptth_sbuf_add(b, invalid_text, strlen(invalid_text));
            i++;
            continue;
        }
        if (n > 1)
            ptth_sbuf_add(b, s + i, n);
        else
            escape_ascii(b, u[i]);
        i += n;
    }
}

static void
add_byte(ptth_sbuf *b, unsigned c)
{
    char ch = (char)c;
    ptth_sbuf_add(b, &ch, 1);
}

/* JSON string content; <, > and & too, so the text is safe inside <script>. */
static void
escape_json_ascii(ptth_sbuf *b, unsigned c)
{
    if (c == '"' || c == '\\') {
        char e[2] = {'\\', (char)c};
        ptth_sbuf_add(b, e, 2);
    } else if (c == '\n') {
        ptth_sbuf_add(b, "\\n", 2);
    } else if (c == '\t') {
        ptth_sbuf_add(b, "\\t", 2);
    } else if (c < 0x20 || c == 0x7f || c == '<' || c == '>' || c == '&') {
        ptth_sbuf_printf(b, "\\u%04x", c);
    } else {
        add_byte(b, c);
    }
}

static void
escape_html_ascii(ptth_sbuf *b, unsigned c)
{
    switch (c) {
    case '&':
        ptth_sbuf_add(b, "&amp;", 5);
        break;
    case '<':
        ptth_sbuf_add(b, "&lt;", 4);
        break;
    case '>':
        ptth_sbuf_add(b, "&gt;", 4);
        break;
    case '"':
        ptth_sbuf_add(b, "&quot;", 6);
        break;
    case '\'':
        ptth_sbuf_add(b, "&#39;", 5);
        break;
    default:
        if (c < 0x20 || c == 0x7f)
            ptth_sbuf_add(b, replacement, 3);
        else
            add_byte(b, c);
    }
}

/* Prometheus label values: \\, \" and \n are the only escapes it knows. */
static void
escape_label_ascii(ptth_sbuf *b, unsigned c)
{
    if (c == '"' || c == '\\') {
        char e[2] = {'\\', (char)c};
        ptth_sbuf_add(b, e, 2);
    } else if (c == '\n') {
        ptth_sbuf_add(b, "\\n", 2);
    } else if (c < 0x20 || c == 0x7f) {
        ptth_sbuf_add(b, replacement, 3);
    } else {
        add_byte(b, c);
    }
}

void
ptth_sbuf_json(ptth_sbuf *b, const char *s, size_t len)
{
    escape_utf8(b, s, len, "\\ufffd", escape_json_ascii);
}

void
ptth_sbuf_html(ptth_sbuf *b, const char *s, size_t len)
{
    escape_utf8(b, s, len, replacement, escape_html_ascii);
}

void
ptth_sbuf_label(ptth_sbuf *b, const char *s, size_t len)
{
    escape_utf8(b, s, len, replacement, escape_label_ascii);
}

void
ptth_sbuf_free(ptth_sbuf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    b->failed = false;
}

void
ptth_sbuf_prom_family(ptth_sbuf *b, const char *name, const char *type, const char *help)
{
    ptth_sbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void
ptth_sbuf_prom_sample(ptth_sbuf *b, const char *name, const char *server, const char *port, const char *extra, uint64_t value)
{
    ptth_sbuf_printf(b, "%s{server=\"", name);
    ptth_sbuf_labels(b, server);
    if (port != NULL) {
        ptth_sbuf_lit(b, "\",port=\"");
        ptth_sbuf_labels(b, port);
    }
    ptth_sbuf_printf(b, "\"%s} %" PRIu64 "\n", extra != NULL ? extra : "", value);
}
