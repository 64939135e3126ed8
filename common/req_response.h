/*
 * req_response.h: how a relay answer fills the response fields of a
 * ptth_req (status, PTTH-* headers, reason). Shared by the two HTTP paths of
 * relay_client.c (libcurl and our own HTTP/2 client, h2_client.c), so both
 * read the relay's headers the same way.
 *
 * Every value is untrusted: copied bounded (truncated to the field), numbers
 * capped, never parsed beyond the given length.
 */
#ifndef PTTH_REQ_RESPONSE_H
#define PTTH_REQ_RESPONSE_H

#include <stddef.h>

#include "relay_client.h"

/* Clears the response fields before a (new) response starts. */
void ptth_req_response_reset(ptth_req *r);

/* One response header (name without the colon, any case; value without
 * leading blanks may still carry trailing CR/LF/blanks). Unknown names are
 * ignored. */
void ptth_req_response_header(ptth_req *r, const char *name, size_t nlen, const char *value, size_t vlen);

/* Bytes of a non-2xx body: the first line becomes r->reason when the relay
 * sent no PTTH-Reason header. */
void ptth_req_response_error_body(ptth_req *r, const char *p, size_t len);

#endif
