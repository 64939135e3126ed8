/* metrics_req.c: the metrics endpoint's request check and responses; see metrics_req.h. */
#include "metrics_req.h"

#include <stdio.h>
#include <string.h>

#include "picohttp.h"

static int
span_is(const char *p, size_t len, const char *lit)
{
    return len == strlen(lit) && memcmp(p, lit, len) == 0;
}

int
ptth_metrics_req_status(const char *buf, size_t len)
{
    const char *method, *path;
    size_t method_len, path_len;
    int minor = -1;
    struct phr_header headers[PTTH_METRICS_REQ_HEADERS];
    size_t n_headers = PTTH_METRICS_REQ_HEADERS;
    size_t plen = len < PTTH_METRICS_REQ_MAX ? len : PTTH_METRICS_REQ_MAX;
    int n = phr_parse_request(buf, plen, &method, &method_len, &path, &path_len, &minor, headers, &n_headers, 0);
    if (n == -2)
        return len >= PTTH_METRICS_REQ_MAX ? 431 : 0;
    if (n < 0 || (minor != 0 && minor != 1))
        return 400;
    if (!span_is(method, method_len, "GET"))
        return 405;
    const char *q = memchr(path, '?', path_len);
    size_t base_len = q != NULL ? (size_t)(q - path) : path_len;
    return span_is(path, base_len, "/metrics") ? 200 : 404;
}

static const char *
status_text(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 431:
        return "Request Header Fields Too Large";
    case 503:
        return "Service Unavailable";
    default:
        return "Error";
    }
}

void
ptth_metrics_response(ptth_sbuf *out, int status, const char *body, size_t body_len)
{
    const char *text = status_text(status);
    char line[64];
    if (status != 200) {
        /* the short body says what to ask for instead */
        int n = snprintf(line, sizeof(line), "%d %s: GET /metrics\n", status, text);
        body = line;
        body_len = n > 0 ? (size_t)n : 0;
    }
    ptth_sbuf_printf(out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%sConnection: close\r\n\r\n", status, text,
                     status == 200 ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain; charset=utf-8", body_len,
                     status == 405 ? "Allow: GET\r\n" : "");
    if (body_len > 0)
        ptth_sbuf_add(out, body, body_len);
}
