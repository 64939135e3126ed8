/*
 * table.h: a small string-keyed hash table (tunnels by id, servers by name).
 *
 * The table stores pointers: it owns its bucket array and its entries, never
 * the keys or the values. A key pointer must stay valid (and unchanged) while
 * its entry is in the table; usually it points into the value itself.
 * The hash is seeded at init from OpenSSL's RAND_bytes so that request paths
 * cannot be chosen to collide.
 */
#ifndef PTTH_RELAY_TABLE_H
#define PTTH_RELAY_TABLE_H

#include <stddef.h>
#include <stdint.h>

typedef struct ptth_table_entry {
    struct ptth_table_entry *next;
    const char *key;
    size_t keylen;
    uint64_t hash;
    void *value;
} ptth_table_entry;

typedef struct ptth_table {
    ptth_table_entry **buckets;
    size_t nbuckets; /* power of two, or 0 before the first put */
    size_t count;
    uint64_t seed;
} ptth_table;

void ptth_table_init(ptth_table *t);
/* Frees the buckets and entries (not keys or values). */
void ptth_table_dispose(ptth_table *t);

void *ptth_table_get(const ptth_table *t, const char *key, size_t keylen);
/* 0, -EEXIST when the key is present, -ENOMEM. */
int ptth_table_put(ptth_table *t, const char *key, size_t keylen, void *value);
/* Removes the entry; returns its value or NULL when absent. */
void *ptth_table_remove(ptth_table *t, const char *key, size_t keylen);

/* Iteration over a snapshot: returns a malloc'd array of the t->count values
 * (in no particular order; *n set to the count), or NULL with *n = 0 when the
 * table is empty or memory ran out. The caller frees the array; the table may
 * change while the caller walks it. */
void **ptth_table_values(const ptth_table *t, size_t *n);

/* The table's hash, for other tables of the relay (peerlimit.c): a seed
 * from RAND_bytes (owner's address mixed in should that fail), and seeded
 * FNV-1a with a splitmix64 finish over keylen bytes of key. */
uint64_t ptth_table_seed(const void *owner);
uint64_t ptth_table_hash(uint64_t seed, const void *key, size_t keylen);

#endif
