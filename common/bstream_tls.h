/*
 * bstream_tls.h: the TLS layer of a byte stream (bstream.h), on OpenSSL,
 * stacked on a layer that carries the bytes (the socket, or later a forward
 * proxy's CONNECT tunnel).
 *
 * The handshake starts once the layer below is connected; connect() reports
 * its end. SNI carries the host unless it is an IP literal; unless told not
 * to verify, the certificate must chain to the context's CAs and match the
 * host (name or IP address). The protocol ALPN chose is asked with
 * PTTH_BSTREAM_Q_ALPN ("" when the server chose none).
 *
 * OpenSSL reads and writes the descriptor of the layer below
 * (PTTH_BSTREAM_Q_FD) itself: the layers below must pass bytes through
 * unchanged once connected (a CONNECT tunnel does). send writes from the
 * first buffer only (one SSL_write, partial writes allowed): callers gather
 * small buffers into large ones first, which makes large records.
 */
#ifndef PTTH_BSTREAM_TLS_H
#define PTTH_BSTREAM_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "bstream.h"

/* A client context in *out: TLS 1.2 or later, offering the ALPN list alpn
 * (wire format: length-prefixed names), verifying peers against ca_file
 * (NULL: the system's CAs) unless insecure. 0, or -ENOMEM, or -EINVAL (a CA
 * file that cannot be read) with the reason in err. Free it with
 * SSL_CTX_free(). */
int ptth_bstream_tls_ctx_new(const unsigned char *alpn, size_t alpn_len, const char *ca_file, bool insecure, SSL_CTX **out,
                             char *err, size_t errlen);

/* Stacks TLS on lower, which becomes this layer's own (closed with it, or at
 * once on failure). host is copied (SNI and the certificate check; at most
 * 255 bytes); peer names the other end in error reasons (kept, not copied);
 * the layer holds a reference to ctx. 0 with *out, or a negative errno
 * (-ENOMEM, -EINVAL host too long). */
int ptth_bstream_tls_open(ptth_bstream *lower, SSL_CTX *ctx, const char *host, bool verify, const char *peer, ptth_bstream **out);

#endif
