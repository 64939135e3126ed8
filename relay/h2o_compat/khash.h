/*
 * khash.h (relay/h2o_compat): just enough for <h2o/http2_internal.h> to
 * compile, which includes "khash.h" (klib's hash table, not shipped by
 * Debian's libh2o-evloop-dev).
 *
 * relay/h2obuf.c needs that header only for the layout of an HTTP/2 stream
 * (h2o_http2_stream_t). The connection's stream table it declares with these
 * macros is a pointer (its layout does not depend on the table type) and is
 * never used by the relay: the lookups below find nothing and must not be
 * called. Only h2obuf.c includes http2_internal.h.
 */
#ifndef PTTH_RELAY_H2O_COMPAT_KHASH_H
#define PTTH_RELAY_H2O_COMPAT_KHASH_H

typedef unsigned khiter_t;

#define KHASH_MAP_INIT_INT64(name, type) typedef struct ptth_no_khash_##name kh_##name##_t;
#define khash_t(name) kh_##name##_t
#define kh_get(name, h, key) ((void)(h), (void)(key), (khiter_t)0)
#define kh_end(h) ((void)(h), (khiter_t)0)
#define kh_val(h, it) ((void)(h), (void)(it), NULL)

#endif
