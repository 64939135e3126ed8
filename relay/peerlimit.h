/*
 * peerlimit.h: the relay's per-address table (SPEC §9.6): how many
 * connections each client address holds, its recent authentication failures
 * and its penalty. Pure logic: no sockets, no clock (every call takes "now"
 * in milliseconds), no logging (calls say what to log).
 *
 * Addresses are grouped: an IPv4 address is its own group, an IPv6 address
 * counts as its /64 (one subscriber usually gets a whole /64, so counting
 * single IPv6 addresses would be no limit at all). IPv4-mapped IPv6 is IPv4.
 *
 * Memory is fixed at init: `capacity` entries and a bucket array, nothing
 * allocated afterwards. An entry that counts open connections is pinned; the
 * others (failure counts, penalties, refusal counters of addresses with no
 * connection open) sit on an LRU list and the least recently seen is
 * forgotten when a new address needs its room. When every entry is pinned
 * (capacity addresses with connections open at once) the table is full: a
 * new address is then not tracked at all (its connections are accepted
 * without a per-address count and its failures are not counted), which is
 * counted in `full`. Failing open is deliberate: an attacker who can fill
 * the table holds that many addresses, which a per-address limit cannot stop
 * anyway, and failing closed would lock out every newcomer.
 *
 * Keys are hashed with a seed from RAND_bytes, so that addresses cannot be
 * chosen to collide. One thread; nothing is locked.
 */
#ifndef PTTH_RELAY_PEERLIMIT_H
#define PTTH_RELAY_PEERLIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define PTTH_PEER_NONE UINT32_MAX /* "no entry" for slots */
#define PTTH_PEER_KEY_STRLEN 48   /* "ffff:ffff:ffff:ffff::/64" and any IPv4 fit */
#define PTTH_PEER_CAPACITY_MIN 16
#define PTTH_PEER_CAPACITY_MAX (1u << 20)

/* An address group: family, then the address masked to its group. */
typedef struct ptth_peer_key {
    uint8_t family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
} ptth_peer_key;

/* The key of family/addr (4 or 16 bytes): IPv6 masked to /64, IPv4-mapped
 * IPv6 turned into IPv4. 0, or -EAFNOSUPPORT for another family. */
int ptth_peer_key_make(ptth_peer_key *k, int family, const uint8_t *addr);
/* The same from a socket address (AF_INET, AF_INET6). */
int ptth_peer_key_from_sockaddr(ptth_peer_key *k, const struct sockaddr *sa);
/* The same from an address as addr.h writes it: "IP", "IP:PORT" or
 * "[IPV6]:PORT". -EINVAL when it is none of these. */
int ptth_peer_key_from_text(ptth_peer_key *k, const char *text);
/* "203.0.113.9" or "2001:db8:1:2::/64". */
void ptth_peer_key_format(const ptth_peer_key *k, char *out, size_t outlen);

typedef struct ptth_peer_entry {
    ptth_peer_key key;
    uint32_t conns;              /* connections counted under this address now */
    uint32_t refused;            /* connections refused since the last refusal line */
    uint32_t failures;           /* authentication failures in the current window */
    long long window_start_ms;   /* start of that window */
    long long penalty_until_ms;  /* 0: no penalty */
    long long refusal_logged_ms; /* last refusal line; 0: none yet */
    uint32_t hnext;              /* bucket chain */
    uint32_t lru_prev, lru_next; /* LRU list of unpinned entries */
    bool in_use;
} ptth_peer_entry;

typedef struct ptth_peertable {
    ptth_peer_entry *entries;
    uint32_t *buckets;
    uint32_t capacity, nbuckets; /* nbuckets: a power of two >= capacity */
    uint32_t count;              /* entries in use */
    uint32_t free_head;          /* removed entries, chained through hnext */
    uint32_t fresh;              /* entries from here on were never used */
    uint32_t lru_head, lru_tail; /* least recently seen first */
    uint64_t seed;
    uint64_t evicted; /* entries forgotten to make room */
    uint64_t full;    /* lookups that found no room (address untracked) */
} ptth_peertable;

/* Sizes the table for capacity entries (PTTH_PEER_CAPACITY_MIN..MAX).
 * 0, -EINVAL (capacity out of range) or -ENOMEM. */
int ptth_peertable_init(ptth_peertable *t, uint32_t capacity);
void ptth_peertable_dispose(ptth_peertable *t);

/* The entry of key, or NULL. Does not change the LRU order. */
ptth_peer_entry *ptth_peertable_find(ptth_peertable *t, const ptth_peer_key *k);
/* The entry at slot (from conn_open), or NULL for PTTH_PEER_NONE. */
ptth_peer_entry *ptth_peertable_at(ptth_peertable *t, uint32_t slot);

/* ---- connections ---- */

typedef enum ptth_peer_admit {
    PTTH_PEER_ADMIT = 0, /* counted: *slot names the entry; close it with conn_close */
    PTTH_PEER_OVER_CAP,  /* the address holds cap connections already: refuse it;
                          *slot names the entry (its `refused` was incremented) */
    PTTH_PEER_UNTRACKED, /* the table is full: accept it uncounted; *slot = NONE */
} ptth_peer_admit;

/* One more connection from k; cap 0 means no cap (still counted). */
ptth_peer_admit ptth_peertable_conn_open(ptth_peertable *t, const ptth_peer_key *k, uint32_t cap, long long now_ms, uint32_t *slot);
/* A counted connection ended (slot from ADMIT; NONE is ignored). */
void ptth_peertable_conn_close(ptth_peertable *t, uint32_t slot);

/* Whether to log a refusal of slot's address now: true for its first refusal
 * and for the first one at least interval_ms after the last line; then
 * *refused is the number of refusals the line covers (since the last line)
 * and the count starts again. */
bool ptth_peertable_refusal_log(ptth_peertable *t, uint32_t slot, long long now_ms, long long interval_ms, uint32_t *refused);

/* The slot of the address that holds the most connections (NONE when no
 * address holds any): whom to shed first when descriptors run out. O(capacity). */
uint32_t ptth_peertable_heaviest(const ptth_peertable *t);

/* ---- authentication failures ---- */

typedef struct ptth_peer_auth_limits {
    uint32_t limit;       /* failures per window that start a penalty; 0: never */
    long long window_ms;  /* the window failures are counted in */
    long long penalty_ms; /* how long a penalty lasts */
} ptth_peer_auth_limits;

/* Milliseconds left of k's penalty (rounded up to 1), or 0 when it has none.
 * A penalty that has run out is cleared here: its address starts again from
 * no failures. */
long long ptth_peertable_penalty_left(ptth_peertable *t, const ptth_peer_key *k, long long now_ms);

/* The same for the entry at slot (a connection's own address: no lookup). */
long long ptth_peertable_penalty_left_at(ptth_peertable *t, uint32_t slot, long long now_ms);

typedef enum ptth_peer_fail {
    PTTH_PEER_FAIL_LOG = 0, /* at or below the limit: log this failure */
    PTTH_PEER_FAIL_PENALTY, /* this failure reached the limit: log it and the start of the penalty */
    PTTH_PEER_FAIL_QUIET,   /* already beyond the limit (or in a penalty): log nothing */
} ptth_peer_fail;

/* Counts one failure from k. Windows start at an address's first failure
 * and last window_ms; the failure that makes `limit` within one starts a
 * penalty of penalty_ms. *failures gets the count in the window (0 when the
 * address is not tracked: the table is full, and then the answer is LOG). */
ptth_peer_fail ptth_peertable_auth_failed(ptth_peertable *t, const ptth_peer_key *k, const ptth_peer_auth_limits *lim,
                                          long long now_ms, uint32_t *failures);

#endif
