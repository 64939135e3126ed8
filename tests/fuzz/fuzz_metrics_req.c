/*
 * fuzz_metrics_req.c: libFuzzer target for what a scraper (or anyone who
 * can reach --metrics-listen) sends the terminators' metrics endpoint:
 * common/metrics_req.c (picohttpparser's phr_parse_request from the system's
 * libh2o-evloop) fed as common/metrics_server.c feeds it, and the response
 * built for the status it chose.
 *
 * Input: [split seed] then the bytes of the connection. They arrive in
 * pieces (sizes from the seed) into a buffer of PTTH_METRICS_REQ_MAX bytes,
 * and the status is asked after each piece, as the server does, until one
 * is given.
 *
 * Checked, besides memory safety and undefined behaviour:
 *   - the status is one of 0, 200, 400, 404, 405, 431; 0 (wait for more)
 *     only while the buffer is not full; 431 only when it is;
 *   - the same status whatever the pieces: the one asked on all the bytes
 *     (up to the buffer's size) at once;
 *   - 200 and 404 only for a head starting "GET " (after empty lines,
 *     which picohttpparser skips), 200 only for the path /metrics (with or
 *     without a query), 405 never for one starting "GET ";
 *   - the response is one HTTP/1.1 head with that status, Connection: close,
 *     Allow: GET exactly for 405, and a Content-Length equal to its body.
 * A broken invariant prints which and aborts, so libFuzzer keeps the input.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics_req.h"

#define CHECK(cond, ...)                                                                                                           \
    do {                                                                                                                           \
        if (!(cond)) {                                                                                                             \
            fprintf(stderr, "fuzz_metrics_req: " __VA_ARGS__);                                                                     \
            fputc('\n', stderr);                                                                                                   \
            abort();                                                                                                               \
        }                                                                                                                          \
    } while (0)

/* p starts with lit after the empty lines a request may begin with (RFC 9112 2.2) */
static bool
starts(const char *p, size_t len, const char *lit)
{
    while (len > 0 && (*p == '\r' || *p == '\n')) {
        p++;
        len--;
    }
    return len >= strlen(lit) && memcmp(p, lit, strlen(lit)) == 0;
}

static void
check_response(int status)
{
    ptth_sbuf b = {0};
    ptth_metrics_response(&b, status, "x 1\n", 4);
    ptth_sbuf_add(&b, "", 1);
    CHECK(!b.failed, "response buffer failed");
    char want[32];
    snprintf(want, sizeof(want), "HTTP/1.1 %d ", status);
    CHECK(strncmp(b.p, want, strlen(want)) == 0, "response to %d starts %.20s", status, b.p);
    const char *end = strstr(b.p, "\r\n\r\n");
    CHECK(end != NULL, "no end of head");
    size_t body = strlen(end + 4);
    const char *cl = strstr(b.p, "\r\nContent-Length: ");
    CHECK(cl != NULL && cl < end && strtoul(cl + 18, NULL, 10) == body, "Content-Length is not the body's %zu", body);
    const char *cc = strstr(b.p, "\r\nConnection: close\r\n");
    CHECK(cc != NULL && cc < end, "no Connection: close");
    const char *allow = strstr(b.p, "\r\nAllow: GET\r\n");
    CHECK((allow != NULL && allow < end) == (status == 405), "Allow for status %d", status);
    ptth_sbuf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned seed = data[0];
    const char *in = (const char *)data + 1;
    size_t n = size - 1;
    static char buf[PTTH_METRICS_REQ_MAX];

    size_t len = 0, off = 0;
    int status = 0;
    while (status == 0) {
        size_t room = sizeof(buf) - len;
        size_t piece = 1 + (seed % 97);
        seed = seed * 1103515245u + 12345u;
        if (piece > room)
            piece = room;
        if (piece > n - off)
            piece = n - off;
        memcpy(buf + len, in + off, piece);
        len += piece;
        off += piece;
        status = ptth_metrics_req_status(buf, len);
        if (off == n)
            break; /* the client sent all it will */
    }
    CHECK(status == 0 || status == 200 || status == 400 || status == 404 || status == 405 || status == 431, "status %d", status);
    CHECK(status != 0 || len < PTTH_METRICS_REQ_MAX, "0 with a full buffer");
    CHECK(status != 431 || len >= PTTH_METRICS_REQ_MAX, "431 at %zu bytes", len);
    size_t whole = n < PTTH_METRICS_REQ_MAX ? n : PTTH_METRICS_REQ_MAX;
    int at_once = ptth_metrics_req_status(in, whole);
    CHECK(status == 0 || at_once == status, "%d in pieces, %d at once", status, at_once);
    if (status == 200 || status == 404)
        CHECK(starts(buf, len, "GET "), "%d for a head not starting GET", status);
    if (status == 200)
        CHECK(starts(buf, len, "GET /metrics ") || starts(buf, len, "GET /metrics?"), "200 for another path");
    if (status == 405)
        CHECK(!starts(buf, len, "GET "), "405 for a GET");
    if (status != 0)
        check_response(status);
    return 0;
}
