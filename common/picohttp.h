/*
 * picohttp.h: the parts of picohttpparser that common/leg_parse.c (responses)
 * and common/metrics_req.c (requests) use.
 *
 * Why this file exists: Debian's libh2o-evloop (h2o 2.2.5) exports
 * picohttpparser's symbols (phr_parse_response, phr_decode_chunked...) but
 * ships no header for them. These are the upstream prototypes of h2o
 * v2.2.5 deps/picohttpparser/picohttpparser.h, declared again; keep them
 * identical to that file (link with libh2o-evloop).
 */
#ifndef PTTH_PICOHTTP_H
#define PTTH_PICOHTTP_H

#include <stddef.h>
#include <sys/types.h>

/* name == NULL for a continuation line of a multi-line header */
struct phr_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

/* Bytes consumed when the head is complete, -2 partial, -1 failed.
 * last_len: the length already parsed in an earlier call (0 the first
 * time); *num_headers: in, the array's size; out, the headers found. */
int phr_parse_response(const char *_buf, size_t len, int *minor_version, int *status, const char **msg, size_t *msg_len,
                       struct phr_header *headers, size_t *num_headers, size_t last_len);

/* The same for a request head: method and path point into buf. */
int phr_parse_request(const char *buf, size_t len, const char **method, size_t *method_len, const char **path, size_t *path_len,
                      int *minor_version, struct phr_header *headers, size_t *num_headers, size_t last_len);

/* Zero-filled before the first call. */
struct phr_chunked_decoder {
    size_t bytes_left_in_chunk;
    char consume_trailer; /* consume the trailer section too */
    char _hex_count;
    char _state;
};

/* Decodes chunked bytes in place: *bufsz becomes the number of payload
 * bytes now at the start of buf. -2 more to come, -1 malformed, else the end
 * was reached and the value is the number of bytes left after it (moved to
 * buf + *bufsz). */
ssize_t phr_decode_chunked(struct phr_chunked_decoder *decoder, char *buf, size_t *bufsz);

#endif
