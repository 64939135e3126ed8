/* Unit tests of common/sbuf: the text buffer of the admin pages and its JSON,
 * HTML and Prometheus-label escapes, with hostile strings (markup, quotes,
 * control characters, NUL, invalid UTF-8) and random bytes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "sbuf.h"

typedef void (*escape_fn)(ptth_sbuf *, const char *, size_t);

/* The escape of len bytes of s, as a NUL-terminated malloc'd string. */
static char *
esc(escape_fn fn, const char *s, size_t len)
{
    ptth_sbuf b = {0};
    fn(&b, s, len);
    ptth_sbuf_lit(&b, ""); /* makes p non-NULL for empty input */
    ck_assert(!b.failed);
    return b.p;
}

#define ck_esc(fn, in, expected)                                                                                                   \
    do {                                                                                                                           \
        char *out_ = esc(fn, in, sizeof(in) - 1);                                                                                  \
        ck_assert_str_eq(out_, expected);                                                                                          \
        free(out_);                                                                                                                \
    } while (0)

START_TEST(json_markup_and_quotes)
{
    ck_esc(ptth_sbuf_json, "<script>alert(\"x\")</script>", "\\u003cscript\\u003ealert(\\\"x\\\")\\u003c/script\\u003e");
    ck_esc(ptth_sbuf_json, "a & b 'c' \\d /e", "a \\u0026 b 'c' \\\\d /e");
    ck_esc(ptth_sbuf_json, "\"}]}, {\"x\":1", "\\\"}]}, {\\\"x\\\":1");
    ck_esc(ptth_sbuf_json, "", "");
}
END_TEST

START_TEST(json_control_characters)
{
    ck_esc(ptth_sbuf_json, "\x01\x1f\x7f\n\t\r\b\f", "\\u0001\\u001f\\u007f\\n\\t\\u000d\\u0008\\u000c");
    ck_esc(ptth_sbuf_json, "a\0b", "a\\u0000b"); /* NUL inside the given length */
    ck_esc(ptth_sbuf_json, "\x1b[31mred", "\\u001b[31mred");
}
END_TEST

START_TEST(json_invalid_utf8)
{
    ck_esc(ptth_sbuf_json, "\xff", "\\ufffd");
    ck_esc(ptth_sbuf_json, "a\xc0\xaf\x62", "a\\ufffd\\ufffdb");                /* overlong '/' */
    ck_esc(ptth_sbuf_json, "\xed\xa0\x80", "\\ufffd\\ufffd\\ufffd");            /* surrogate U+D800 */
    ck_esc(ptth_sbuf_json, "\xf4\x90\x80\x80", "\\ufffd\\ufffd\\ufffd\\ufffd"); /* above U+10FFFF */
    ck_esc(ptth_sbuf_json, "\xe2\x82", "\\ufffd\\ufffd");                       /* cut off by the end */
    ck_esc(ptth_sbuf_json, "\xe2\x82x", "\\ufffd\\ufffdx");                     /* cut off by an ASCII byte */
    ck_esc(ptth_sbuf_json, "\x80\xbf", "\\ufffd\\ufffd");                       /* lone continuation bytes */
    /* valid sequences pass as they are */
    ck_esc(ptth_sbuf_json, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
}
END_TEST

START_TEST(html_markup_and_quotes)
{
    ck_esc(ptth_sbuf_html, "<script>alert(\"x\")</script>", "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;");
    ck_esc(ptth_sbuf_html, "<img src=x onerror='alert(1)'>", "&lt;img src=x onerror=&#39;alert(1)&#39;&gt;");
    ck_esc(ptth_sbuf_html, "a & b &amp;", "a &amp; b &amp;amp;");
    ck_esc(ptth_sbuf_html, "</td></tr></table><h1>x", "&lt;/td&gt;&lt;/tr&gt;&lt;/table&gt;&lt;h1&gt;x");
}
END_TEST

START_TEST(html_control_characters_and_invalid_utf8)
{
    ck_esc(ptth_sbuf_html, "a\0b\x01\x7f\n", "a\xef\xbf\xbd\x62\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    ck_esc(ptth_sbuf_html, "\xff\xfe", "\xef\xbf\xbd\xef\xbf\xbd");
    ck_esc(ptth_sbuf_html, "\xc0<", "\xef\xbf\xbd&lt;"); /* the < after a broken lead byte is still escaped */
    ck_esc(ptth_sbuf_html, "\xe2\x82\xac 5", "\xe2\x82\xac 5");
}
END_TEST

START_TEST(prometheus_labels)
{
    ck_esc(ptth_sbuf_label, "a\"b\\c\nd", "a\\\"b\\\\c\\nd");
    ck_esc(ptth_sbuf_label, "x\x01y\xffz", "x\xef\xbf\xbdy\xef\xbf\xbdz");
    ck_esc(ptth_sbuf_label, "<ok> & 'ok'", "<ok> & 'ok'");
}
END_TEST

START_TEST(utf8_sequence_boundaries)
{
    static const struct {
        const char *s;
        size_t len, want;
    } cases[] = {
        {"\x7f", 1, 1},
        {"\xc2\x80", 2, 2},         /* U+0080 */
        {"\xdf\xbf", 2, 2},         /* U+07FF */
        {"\xc1\xbf", 2, 0},         /* overlong */
        {"\xc0\x80", 2, 0},         /* overlong NUL */
        {"\xe0\xa0\x80", 3, 3},     /* U+0800 */
        {"\xe0\x9f\xbf", 3, 0},     /* overlong */
        {"\xed\x9f\xbf", 3, 3},     /* U+D7FF */
        {"\xed\xa0\x80", 3, 0},     /* U+D800 */
        {"\xed\xbf\xbf", 3, 0},     /* U+DFFF */
        {"\xee\x80\x80", 3, 3},     /* U+E000 */
        {"\xef\xbf\xbf", 3, 3},     /* U+FFFF */
        {"\xf0\x90\x80\x80", 4, 4}, /* U+10000 */
        {"\xf0\x8f\xbf\xbf", 4, 0}, /* overlong */
        {"\xf4\x8f\xbf\xbf", 4, 4}, /* U+10FFFF */
        {"\xf4\x90\x80\x80", 4, 0}, /* U+110000 */
        {"\xf5\x80\x80\x80", 4, 0},
        {"\xf8\x88\x80\x80", 4, 0},
        {"\xff", 1, 0},
        {"\x80", 1, 0},
        {"\xc2", 1, 0},
        {"\xc2\x41", 2, 0},
        {"\xf0\x90\x80", 3, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        ck_assert_msg(ptth_utf8_seq((const unsigned char *)cases[i].s, cases[i].len) == cases[i].want, "case %zu", i);
}
END_TEST

/* An independent check that s is valid UTF-8 (decodes code points). */
static int
valid_utf8(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        size_t n;
        if (s[i] < 0x80) {
            i++;
            continue;
        } else if (s[i] >= 0xc2 && s[i] <= 0xdf) {
            n = 2, cp = s[i] & 0x1f;
        } else if (s[i] >= 0xe0 && s[i] <= 0xef) {
            n = 3, cp = s[i] & 0x0f;
        } else if (s[i] >= 0xf0 && s[i] <= 0xf4) {
            n = 4, cp = s[i] & 0x07;
        } else {
            return 0;
        }
        if (i + n > len)
            return 0;
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += n;
    }
    return 1;
}

/* Decodes a JSON string body made by ptth_sbuf_json (no surrounding quotes)
 * back into bytes; returns its length or -1 when it is not valid JSON. Code
 * points from \u escapes are written as UTF-8. */
static long
json_decode(const char *in, char *out)
{
    size_t o = 0;
    for (size_t i = 0; in[i] != '\0'; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c < 0x20 || c == '"')
            return -1;
        if (c != '\\') {
            out[o++] = (char)c;
            continue;
        }
        char e = in[++i];
        if (e == '"' || e == '\\' || e == '/')
            out[o++] = e;
        else if (e == 'n')
            out[o++] = '\n';
        else if (e == 't')
            out[o++] = '\t';
        else if (e == 'u') {
            unsigned cp;
            if (sscanf(in + i + 1, "%4x", &cp) != 1 || strspn(in + i + 1, "0123456789abcdef") < 4)
                return -1;
            i += 4;
            if (cp < 0x80) {
                out[o++] = (char)cp;
            } else if (cp < 0x800) {
                out[o++] = (char)(0xc0 | cp >> 6);
                out[o++] = (char)(0x80 | (cp & 0x3f));
            } else {
                out[o++] = (char)(0xe0 | cp >> 12);
                out[o++] = (char)(0x80 | ((cp >> 6) & 0x3f));
                out[o++] = (char)(0x80 | (cp & 0x3f));
            }
        } else {
            return -1;
        }
    }
    return (long)o;
}

/* Random bytes (biased toward the interesting ones) through every escape:
 * the output is valid UTF-8 and has no raw character its syntax forbids;
 * JSON decodes back to the input wherever the input was valid UTF-8. */
START_TEST(random_bytes_fuzz)
{
    static const unsigned char spicy[] = {'<',  '>',  '&',  '"',  '\'', '\\', '\n', '\r', 0,   0x7f, 0x80, 0xbf, 0xc0,
                                          0xc2, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf8, 0xff, 'a', ' ',  0x1b, 0xa0, 0x9f};
    unsigned seed = 12345;
    char in[64], dec[64 * 4];
    for (int iter = 0; iter < 20000; iter++) {
        size_t len = (size_t)(rand_r(&seed) % 40);
        for (size_t i = 0; i < len; i++)
            in[i] = (char)(rand_r(&seed) % 3 ? spicy[rand_r(&seed) % sizeof(spicy)] : rand_r(&seed) % 256);

        char *j = esc(ptth_sbuf_json, in, len);
        ck_assert(valid_utf8((const unsigned char *)j, strlen(j)));
        long n = json_decode(j, dec);
        ck_assert_msg(n >= 0, "not JSON: %s", j);
        if (valid_utf8((const unsigned char *)in, len))
            ck_assert(n == (long)len && memcmp(dec, in, len) == 0);
        for (const char *q = j; (q = strchr(q, '"')) != NULL; q++)
            ck_assert_msg(q > j && q[-1] == '\\', "raw quote in %s", j);
        ck_assert(strpbrk(j, "<>&") == NULL);
        free(j);

        char *h = esc(ptth_sbuf_html, in, len);
        ck_assert(valid_utf8((const unsigned char *)h, strlen(h)));
        ck_assert_msg(strpbrk(h, "<>\"'") == NULL, "raw markup in %s", h);
        for (const char *q = h; (q = strchr(q, '&')) != NULL; q++)
            ck_assert(strncmp(q, "&amp;", 5) == 0 || strncmp(q, "&lt;", 4) == 0 || strncmp(q, "&gt;", 4) == 0 ||
                      strncmp(q, "&quot;", 6) == 0 || strncmp(q, "&#39;", 5) == 0);
        for (const unsigned char *q = (const unsigned char *)h; *q; q++)
            ck_assert(*q >= 0x20 && *q != 0x7f);
        free(h);

        char *l = esc(ptth_sbuf_label, in, len);
        ck_assert(valid_utf8((const unsigned char *)l, strlen(l)));
        for (const char *q = l; *q; q++) {
            ck_assert((unsigned char)*q >= 0x20 && *q != 0x7f);
            if (*q == '\\') {
                ck_assert(q[1] == '\\' || q[1] == '"' || q[1] == 'n');
                q++;
            } else {
                ck_assert(*q != '"');
            }
        }
        free(l);
    }
}
END_TEST

START_TEST(growth_and_limits)
{
    ptth_sbuf b = {0};
    for (int i = 0; i < 10000; i++)
        ptth_sbuf_printf(&b, "%d,", i);
    ck_assert(!b.failed);
    ck_assert_uint_eq(b.len, strlen(b.p));
    ck_assert(strncmp(b.p, "0,1,2,", 6) == 0 && strcmp(b.p + b.len - 5, "9999,") == 0);
    size_t before = b.len;
    /* past PTTH_SBUF_MAX: refused before anything is read, and sticky */
    static const char small[] = "x";
    ptth_sbuf_add(&b, small, PTTH_SBUF_MAX);
    ck_assert(b.failed);
    ptth_sbuf_lit(&b, "more");
    ptth_sbuf_printf(&b, "%s", "more");
    ptth_sbuf_json(&b, "more", 4);
    ck_assert_uint_eq(b.len, before);
    ptth_sbuf_free(&b);
    ck_assert(b.p == NULL && b.len == 0 && !b.failed);
}
END_TEST

Suite *
ptth_test_suite(void)
{
    Suite *s = suite_create("ops_sbuf");
    TCase *tc = tcase_create("sbuf");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, json_markup_and_quotes);
    tcase_add_test(tc, json_control_characters);
    tcase_add_test(tc, json_invalid_utf8);
    tcase_add_test(tc, html_markup_and_quotes);
    tcase_add_test(tc, html_control_characters_and_invalid_utf8);
    tcase_add_test(tc, prometheus_labels);
    tcase_add_test(tc, utf8_sequence_boundaries);
    tcase_add_test(tc, random_bytes_fuzz);
    tcase_add_test(tc, growth_and_limits);
    suite_add_tcase(s, tc);
    return s;
}
