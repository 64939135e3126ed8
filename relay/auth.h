/*
 * auth.h: who may do what at the relay (SPEC §3, §4).
 *
 * A ptth_auth is an immutable snapshot built from the --server, --client,
 * --allow and --admin-key-hash options; SIGHUP builds a new one and swaps it
 * in. It holds only key hashes. A request's key (Authorization: Bearer KEY)
 * is hashed once (ptth_auth_bearer) and compared in constant time
 * (CRYPTO_memcmp through ptth_key_hash_equal) with the configured hashes.
 *
 * ACL rules are "CLIENT=SERVER/PORT" where SERVER and PORT may be "*". A client
 * without a matching rule may reach nothing.
 *
 * The snapshot owns all its memory; ptth_auth_free() releases it.
 */
#ifndef PTTH_RELAY_AUTH_H
#define PTTH_RELAY_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "keys.h"
#include "names.h"
#include "options.h"
#include "table.h"

typedef struct ptth_principal {
    char name[PTTH_NAME_MAX + 1];
    ptth_key_hash hash;
} ptth_principal;

typedef struct ptth_acl_rule {
    char client[PTTH_NAME_MAX + 1];
    char server[PTTH_NAME_MAX + 1]; /* a name or "*" */
    char port[PTTH_NAME_MAX + 1];   /* a name or "*" */
} ptth_acl_rule;

typedef struct ptth_auth {
    ptth_principal *servers;
    size_t nservers;
    ptth_principal *clients;
    size_t nclients;
    ptth_acl_rule *rules;
    size_t nrules;
    bool has_admin;
    ptth_key_hash admin;
    ptth_table servers_by_name; /* name -> ptth_principal * */
    ptth_table clients_by_name;
} ptth_auth;

/* Builds a snapshot from the option lists (items as given on the command
 * line). Every problem (bad item, duplicate name, a key hash used twice, a
 * rule naming an unknown client or server) is added to problems with the
 * option's name in front. Returns 0, or -1 when there were problems (then a
 * is left empty and needs no free). */
int ptth_auth_build(ptth_auth *a, const ptth_strlist *servers, const ptth_strlist *clients, const ptth_strlist *allow,
                    const char *admin_hash, ptth_problems *problems);
void ptth_auth_free(ptth_auth *a);

/* Option check of one --allow value: "CLIENT=SERVER/PORT". */
int ptth_auth_check_allow(const char *value, char *err, size_t errlen);

/* Parses an Authorization header value "Bearer KEY" (scheme case-insensitive,
 * one or more spaces) and hashes KEY. -EINVAL when it is not that form or KEY
 * is not a well-formed key. */
int ptth_auth_bearer(const char *value, size_t len, ptth_key_hash *out);

/* Also accepts HTTP Basic credentials whose password is a key (for the admin
 * page in a browser). Same return values. */
int ptth_auth_basic_password(const char *value, size_t len, ptth_key_hash *out);

const ptth_principal *ptth_auth_server(const ptth_auth *a, const char *name, size_t len);
const ptth_principal *ptth_auth_client(const ptth_auth *a, const char *name, size_t len);

/* The client whose key has this hash, or NULL. Compares with every client
 * (no early exit). */
const ptth_principal *ptth_auth_client_by_hash(const ptth_auth *a, const ptth_key_hash *h);
/* The server whose key has this hash, or NULL (same manner). */
const ptth_principal *ptth_auth_server_by_hash(const ptth_auth *a, const ptth_key_hash *h);
/* true when h is the admin key's hash. */
bool ptth_auth_is_admin(const ptth_auth *a, const ptth_key_hash *h);

/* true when a rule lets client reach server/port. */
bool ptth_auth_allowed(const ptth_auth *a, const char *client, const char *server, size_t server_len, const char *port,
                       size_t port_len);

#endif
