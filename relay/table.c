/*
 * table.c: see table.h. Separate chaining; the bucket array doubles when the
 * load passes 1 and never shrinks (the tables live as long as the relay).
 */
#include "table.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#define INITIAL_BUCKETS 64

void
ptth_table_init(ptth_table *t)
{
    memset(t, 0, sizeof(*t));
    t->seed = ptth_table_seed(t);
}

uint64_t
ptth_table_seed(const void *owner)
{
    uint64_t seed;
    if (RAND_bytes((unsigned char *)&seed, sizeof(seed)) != 1)
        seed = (uint64_t)(uintptr_t)owner ^ 0x9e3779b97f4a7c15ull;
    return seed;
}

void
ptth_table_dispose(ptth_table *t)
{
    for (size_t i = 0; i < t->nbuckets; i++) {
        ptth_table_entry *e = t->buckets[i];
        while (e != NULL) {
            ptth_table_entry *next = e->next;
            free(e);
            e = next;
        }
    }
    free(t->buckets);
    t->buckets = NULL;
    t->nbuckets = 0;
    t->count = 0;
}

/* FNV-1a over the seed and the key, then a final avalanche (splitmix64). */
uint64_t
ptth_table_hash(uint64_t seed, const void *key, size_t keylen)
{
    const unsigned char *p = key;
    uint64_t h = 0xcbf29ce484222325ull ^ seed;
    for (size_t i = 0; i < keylen; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 31;
    return h;
}

static ptth_table_entry **
find_slot(const ptth_table *t, const char *key, size_t keylen, uint64_t h)
{
    ptth_table_entry **slot = &t->buckets[h & (t->nbuckets - 1)];
    while (*slot != NULL) {
        if ((*slot)->hash == h && (*slot)->keylen == keylen && memcmp((*slot)->key, key, keylen) == 0)
            break;
        slot = &(*slot)->next;
    }
    return slot;
}

void *
ptth_table_get(const ptth_table *t, const char *key, size_t keylen)
{
    if (t->nbuckets == 0)
        return NULL;
    ptth_table_entry **slot = find_slot(t, key, keylen, ptth_table_hash(t->seed, key, keylen));
    return *slot != NULL ? (*slot)->value : NULL;
}

static int
grow(ptth_table *t)
{
    size_t n = t->nbuckets == 0 ? INITIAL_BUCKETS : t->nbuckets * 2;
    ptth_table_entry **buckets = calloc(n, sizeof(*buckets));
    if (buckets == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < t->nbuckets; i++) {
        ptth_table_entry *e = t->buckets[i];
        while (e != NULL) {
            ptth_table_entry *next = e->next;
            e->next = buckets[e->hash & (n - 1)];
            buckets[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    free(t->buckets);
    t->buckets = buckets;
    t->nbuckets = n;
    return 0;
}

int
ptth_table_put(ptth_table *t, const char *key, size_t keylen, void *value)
{
    if (t->count >= t->nbuckets) {
        int r = grow(t);
        if (r != 0 && t->nbuckets == 0)
            return r; /* a full table still works, only slower */
    }
    uint64_t h = ptth_table_hash(t->seed, key, keylen);
    ptth_table_entry **slot = find_slot(t, key, keylen, h);
    if (*slot != NULL)
        return -EEXIST;
    ptth_table_entry *e = malloc(sizeof(*e));
    if (e == NULL)
        return -ENOMEM;
    *e = (ptth_table_entry){.next = NULL, .key = key, .keylen = keylen, .hash = h, .value = value};
    *slot = e;
    t->count++;
    return 0;
}

void *
ptth_table_remove(ptth_table *t, const char *key, size_t keylen)
{
    if (t->nbuckets == 0)
        return NULL;
    ptth_table_entry **slot = find_slot(t, key, keylen, ptth_table_hash(t->seed, key, keylen));
    ptth_table_entry *e = *slot;
    if (e == NULL)
        return NULL;
    void *value = e->value;
    *slot = e->next;
    free(e);
    t->count--;
    return value;
}

void **
ptth_table_values(const ptth_table *t, size_t *n)
{
    *n = 0;
    if (t->count == 0)
        return NULL;
    void **out = malloc(t->count * sizeof(*out));
    if (out == NULL)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < t->nbuckets; i++)
        for (ptth_table_entry *e = t->buckets[i]; e != NULL; e = e->next)
            out[k++] = e->value;
    *n = k;
    return out;
}
