/*
 * sbuf.h: a growable text buffer for the admin pages (the relay's /metrics,
 * /v1/status, /), with the escapes each output format needs.
 *
 * The admin pages show text the relay did not make: reasons from
 * PTTH-Reason headers (any bytes a terminator sends), client addresses,
 * names. Everything that is not a constant of the page goes through one of
 * the escapes below, which accept any bytes (NUL included, when a length is
 * given) and always produce valid UTF-8 in the target syntax:
 *   - JSON string contents: `"` `\` and control characters escaped
 *     (\n \t \uXXXX), `<` `>` `&` as \u003c \u003e \u0026 (so the text is safe
 *     even if someone pastes it into HTML), DEL as \u007f; bytes that are not
 *     valid UTF-8 become \ufffd, one per byte;
 *   - HTML text and attribute values: & < > " ' as entities; control
 *     characters and DEL become U+FFFD; invalid UTF-8 becomes U+FFFD;
 *   - Prometheus label values: `\` `"` and newline escaped as the text format
 *     wants; other control characters and invalid UTF-8 become U+FFFD.
 * "Valid UTF-8" means shortest-form sequences of code points up to U+10FFFF
 * without surrogates.
 *
 * Memory: the buffer owns p (malloc). Once an allocation fails (or the
 * buffer would pass PTTH_SBUF_MAX) every later call is a no-op and failed
 * is set; the caller checks failed once at the end. ptth_sbuf_free() frees p.
 */
#ifndef PTTH_SBUF_H
#define PTTH_SBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PTTH_SBUF_MAX (64u << 20) /* no admin page grows past 64 MiB */

typedef struct ptth_sbuf {
    char *p;
    size_t len, cap;
    bool failed;
} ptth_sbuf;

void ptth_sbuf_printf(ptth_sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ptth_sbuf_add(ptth_sbuf *b, const char *s, size_t len);

/* A string literal. */
#define ptth_sbuf_lit(b, s) ptth_sbuf_add((b), "" s, sizeof(s) - 1)

/* The escapes: s of len bytes (any bytes). */
void ptth_sbuf_json(ptth_sbuf *b, const char *s, size_t len);
void ptth_sbuf_html(ptth_sbuf *b, const char *s, size_t len);
void ptth_sbuf_label(ptth_sbuf *b, const char *s, size_t len);

/* The same for NUL-terminated strings. */
#define ptth_sbuf_jsons(b, s) ptth_sbuf_json((b), (s), strlen(s))
#define ptth_sbuf_htmls(b, s) ptth_sbuf_html((b), (s), strlen(s))
#define ptth_sbuf_labels(b, s) ptth_sbuf_label((b), (s), strlen(s))

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when the byte at s
 * does not start one (invalid, overlong, surrogate, above U+10FFFF, or cut
 * off by the end). len > 0. */
size_t ptth_utf8_seq(const unsigned char *s, size_t len);

void ptth_sbuf_free(ptth_sbuf *b);

/* Prometheus text format 0.0.4 (every /metrics: the relay's, the
 * terminators'): a family's "# HELP" and "# TYPE" lines (name, type and help
 * are constants of the program), and one sample with a server label, an
 * optional port label (NULL: none) and optional further labels written out
 * by the caller (",result=\"fin\"", or NULL). server and port are escaped. */
void ptth_sbuf_prom_family(ptth_sbuf *b, const char *name, const char *type, const char *help);
void ptth_sbuf_prom_sample(ptth_sbuf *b, const char *name, const char *server, const char *port, const char *extra, uint64_t value);

#endif
