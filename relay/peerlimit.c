/*
 * peerlimit.c: see peerlimit.h. A fixed array of entries with chained
 * buckets (indices, not pointers) and an intrusive LRU list of the entries
 * that may be forgotten.
 */
#include "peerlimit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "table.h"

static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

int
ptth_peer_key_make(ptth_peer_key *k, int family, const uint8_t *addr)
{
    memset(k, 0, sizeof(*k));
    if (family == AF_INET) {
        k->family = AF_INET;
        memcpy(k->addr, addr, 4);
        return 0;
    }
    if (family != AF_INET6)
        return -EAFNOSUPPORT;
    if (memcmp(addr, v4mapped, sizeof(v4mapped)) == 0) {
        k->family = AF_INET;
        memcpy(k->addr, addr + 12, 4);
        return 0;
    }
    k->family = AF_INET6;
    memcpy(k->addr, addr, 8); /* the /64 */
    return 0;
}

int
ptth_peer_key_from_sockaddr(ptth_peer_key *k, const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return ptth_peer_key_make(k, AF_INET, (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr);
    if (sa->sa_family == AF_INET6)
        return ptth_peer_key_make(k, AF_INET6, ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr);
    memset(k, 0, sizeof(*k));
    return -EAFNOSUPPORT;
}

int
ptth_peer_key_from_text(ptth_peer_key *k, const char *text)
{
    char buf[INET6_ADDRSTRLEN + 1];
    uint8_t addr[16];
    size_t len = strlen(text);
    const char *ip = text;
    if (len > 0 && text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL)
            return -EINVAL;
        ip = text + 1;
        len = (size_t)(close - ip);
    } else {
        const char *colon = strchr(text, ':');
        if (colon != NULL && strchr(colon + 1, ':') == NULL)
            len = (size_t)(colon - text); /* IPv4:PORT; a bare IPv6 has several colons */
    }
    if (len == 0 || len >= sizeof(buf))
        return -EINVAL;
    memcpy(buf, ip, len);
    buf[len] = '\0';
    memset(addr, 0, sizeof(addr));
    if (inet_pton(AF_INET, buf, addr) == 1)
        return ptth_peer_key_make(k, AF_INET, addr);
    if (inet_pton(AF_INET6, buf, addr) == 1)
        return ptth_peer_key_make(k, AF_INET6, addr);
    return -EINVAL;
}

void
ptth_peer_key_format(const ptth_peer_key *k, char *out, size_t outlen)
{
    char ip[INET6_ADDRSTRLEN];
    if (inet_ntop(k->family == AF_INET ? AF_INET : AF_INET6, k->addr, ip, sizeof(ip)) == NULL) {
        snprintf(out, outlen, "unknown");
        return;
    }
    snprintf(out, outlen, k->family == AF_INET ? "%s" : "%s/64", ip);
}

int
ptth_peertable_init(ptth_peertable *t, uint32_t capacity)
{
    memset(t, 0, sizeof(*t));
    if (capacity < PTTH_PEER_CAPACITY_MIN || capacity > PTTH_PEER_CAPACITY_MAX)
        return -EINVAL;
    uint32_t nb = 1;
    while (nb < capacity)
        nb <<= 1;
    t->entries = calloc(capacity, sizeof(*t->entries));
    t->buckets = malloc((size_t)nb * sizeof(*t->buckets));
    if (t->entries == NULL || t->buckets == NULL) {
        free(t->entries);
        free(t->buckets);
        memset(t, 0, sizeof(*t));
        return -ENOMEM;
    }
    t->capacity = capacity;
    t->nbuckets = nb;
    for (uint32_t i = 0; i < nb; i++)
        t->buckets[i] = PTTH_PEER_NONE;
    /* entries are handed out in order first (fresh), so that calloc's pages
     * are touched only as addresses arrive; removed ones are chained */
    t->free_head = PTTH_PEER_NONE;
    t->fresh = 0;
    t->lru_head = t->lru_tail = PTTH_PEER_NONE;
    t->seed = ptth_table_seed(t);
    return 0;
}

void
ptth_peertable_dispose(ptth_peertable *t)
{
    free(t->entries);
    free(t->buckets);
    memset(t, 0, sizeof(*t));
}

static uint32_t
bucket_of(const ptth_peertable *t, const ptth_peer_key *k)
{
    return (uint32_t)(ptth_table_hash(t->seed, k, sizeof(*k)) & (t->nbuckets - 1));
}

static bool
same_key(const ptth_peer_key *a, const ptth_peer_key *b)
{
    return a->family == b->family && memcmp(a->addr, b->addr, sizeof(a->addr)) == 0;
}

static void
lru_unlink(ptth_peertable *t, uint32_t i)
{
    ptth_peer_entry *e = &t->entries[i];
    if (e->lru_prev != PTTH_PEER_NONE)
        t->entries[e->lru_prev].lru_next = e->lru_next;
    else if (t->lru_head == i)
        t->lru_head = e->lru_next;
    if (e->lru_next != PTTH_PEER_NONE)
        t->entries[e->lru_next].lru_prev = e->lru_prev;
    else if (t->lru_tail == i)
        t->lru_tail = e->lru_prev;
    e->lru_prev = e->lru_next = PTTH_PEER_NONE;
}

static void
lru_push_tail(ptth_peertable *t, uint32_t i)
{
    ptth_peer_entry *e = &t->entries[i];
    e->lru_next = PTTH_PEER_NONE;
    e->lru_prev = t->lru_tail;
    if (t->lru_tail != PTTH_PEER_NONE)
        t->entries[t->lru_tail].lru_next = i;
    else
        t->lru_head = i;
    t->lru_tail = i;
}

/* An unpinned entry was seen: it moves to the recent end. */
static void
touch(ptth_peertable *t, uint32_t i)
{
    if (t->entries[i].conns != 0)
        return;
    lru_unlink(t, i);
    lru_push_tail(t, i);
}

static uint32_t
find_index(const ptth_peertable *t, const ptth_peer_key *k)
{
    if (t->capacity == 0)
        return PTTH_PEER_NONE;
    for (uint32_t i = t->buckets[bucket_of(t, k)]; i != PTTH_PEER_NONE; i = t->entries[i].hnext)
        if (same_key(&t->entries[i].key, k))
            return i;
    return PTTH_PEER_NONE;
}

static void
remove_index(ptth_peertable *t, uint32_t i)
{
    ptth_peer_entry *e = &t->entries[i];
    uint32_t *link = &t->buckets[bucket_of(t, &e->key)];
    while (*link != i)
        link = &t->entries[*link].hnext;
    *link = e->hnext;
    lru_unlink(t, i);
    memset(e, 0, sizeof(*e));
    e->hnext = t->free_head;
    t->free_head = i;
    t->count--;
}

/* The entry of k, made when missing (forgetting the least recently seen
 * unpinned entry when there is no free one). NONE when the table is full. */
static uint32_t
find_or_add(ptth_peertable *t, const ptth_peer_key *k)
{
    uint32_t i = find_index(t, k);
    if (i != PTTH_PEER_NONE) {
        touch(t, i);
        return i;
    }
    if (t->capacity == 0)
        return PTTH_PEER_NONE;
    if (t->free_head == PTTH_PEER_NONE && t->fresh < t->capacity) {
        t->entries[t->fresh].hnext = PTTH_PEER_NONE;
        t->free_head = t->fresh++;
    }
    if (t->free_head == PTTH_PEER_NONE) {
        if (t->lru_head == PTTH_PEER_NONE) {
            t->full++;
            return PTTH_PEER_NONE;
        }
        remove_index(t, t->lru_head);
        t->evicted++;
    }
    i = t->free_head;
    ptth_peer_entry *e = &t->entries[i];
    t->free_head = e->hnext;
    memset(e, 0, sizeof(*e));
    e->key = *k;
    e->in_use = true;
    uint32_t b = bucket_of(t, k);
    e->hnext = t->buckets[b];
    t->buckets[b] = i;
    e->lru_prev = e->lru_next = PTTH_PEER_NONE;
    lru_push_tail(t, i);
    t->count++;
    return i;
}

ptth_peer_entry *
ptth_peertable_find(ptth_peertable *t, const ptth_peer_key *k)
{
    uint32_t i = find_index(t, k);
    return i != PTTH_PEER_NONE ? &t->entries[i] : NULL;
}

ptth_peer_entry *
ptth_peertable_at(ptth_peertable *t, uint32_t slot)
{
    return slot < t->capacity && t->entries[slot].in_use ? &t->entries[slot] : NULL;
}

ptth_peer_admit
ptth_peertable_conn_open(ptth_peertable *t, const ptth_peer_key *k, uint32_t cap, long long now_ms, uint32_t *slot)
{
    (void)now_ms;
    uint32_t i = find_or_add(t, k);
    *slot = i;
    if (i == PTTH_PEER_NONE)
        return PTTH_PEER_UNTRACKED;
    ptth_peer_entry *e = &t->entries[i];
    if (cap != 0 && e->conns >= cap) {
        if (e->refused < UINT32_MAX)
            e->refused++;
        return PTTH_PEER_OVER_CAP;
    }
    if (e->conns++ == 0)
        lru_unlink(t, i); /* pinned while it counts connections */
    return PTTH_PEER_ADMIT;
}

void
ptth_peertable_conn_close(ptth_peertable *t, uint32_t slot)
{
    ptth_peer_entry *e = ptth_peertable_at(t, slot);
    if (e == NULL || e->conns == 0)
        return;
    if (--e->conns == 0)
        lru_push_tail(t, slot);
}

bool
ptth_peertable_refusal_log(ptth_peertable *t, uint32_t slot, long long now_ms, long long interval_ms, uint32_t *refused)
{
    ptth_peer_entry *e = ptth_peertable_at(t, slot);
    *refused = 0;
    if (e == NULL || e->refused == 0)
        return false;
    if (e->refusal_logged_ms != 0 && now_ms - e->refusal_logged_ms < interval_ms)
        return false;
    *refused = e->refused;
    e->refused = 0;
    e->refusal_logged_ms = now_ms != 0 ? now_ms : 1;
    return true;
}

uint32_t
ptth_peertable_heaviest(const ptth_peertable *t)
{
    uint32_t best = PTTH_PEER_NONE, most = 0;
    for (uint32_t i = 0; i < t->fresh; i++) {
        if (t->entries[i].in_use && t->entries[i].conns > most) {
            most = t->entries[i].conns;
            best = i;
        }
    }
    return best;
}

long long
ptth_peertable_penalty_left(ptth_peertable *t, const ptth_peer_key *k, long long now_ms)
{
    return ptth_peertable_penalty_left_at(t, find_index(t, k), now_ms);
}

long long
ptth_peertable_penalty_left_at(ptth_peertable *t, uint32_t i, long long now_ms)
{
    if (ptth_peertable_at(t, i) == NULL)
        return 0;
    ptth_peer_entry *e = &t->entries[i];
    if (e->penalty_until_ms == 0)
        return 0;
    touch(t, i); /* an address that keeps knocking is remembered */
    if (now_ms < e->penalty_until_ms)
        return e->penalty_until_ms - now_ms;
    e->penalty_until_ms = 0;
    e->failures = 0;
    e->window_start_ms = 0;
    return 0;
}

ptth_peer_fail
ptth_peertable_auth_failed(ptth_peertable *t, const ptth_peer_key *k, const ptth_peer_auth_limits *lim, long long now_ms,
                           uint32_t *failures)
{
    *failures = 0;
    if (lim->limit == 0)
        return PTTH_PEER_FAIL_LOG;
    uint32_t i = find_or_add(t, k);
    if (i == PTTH_PEER_NONE)
        return PTTH_PEER_FAIL_LOG;
    ptth_peer_entry *e = &t->entries[i];
    if (e->penalty_until_ms != 0) {
        if (now_ms < e->penalty_until_ms) {
            *failures = e->failures;
            return PTTH_PEER_FAIL_QUIET;
        }
        e->penalty_until_ms = 0;
        e->failures = 0;
    }
    if (e->failures == 0 || now_ms - e->window_start_ms >= lim->window_ms) {
        e->failures = 0;
        e->window_start_ms = now_ms;
    }
    if (e->failures < UINT32_MAX)
        e->failures++;
    *failures = e->failures;
    if (e->failures < lim->limit)
        return PTTH_PEER_FAIL_LOG;
    if (e->failures == lim->limit) {
        e->penalty_until_ms = now_ms + (lim->penalty_ms > 0 ? lim->penalty_ms : 1);
        return PTTH_PEER_FAIL_PENALTY;
    }
    return PTTH_PEER_FAIL_QUIET;
}
