/*
 * auth.c: see auth.h.
 */
#include "auth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

/* Splits "NAME=REST" at the first '='; false when NAME is not a valid name. */
static bool
split_name(const char *value, char name[PTTH_NAME_MAX + 1], const char **rest)
{
    const char *eq = strchr(value, '=');
    if (eq == NULL || !ptth_name_valid(value, (size_t)(eq - value)))
        return false;
    memcpy(name, value, (size_t)(eq - value));
    name[eq - value] = '\0';
    *rest = eq + 1;
    return true;
}

static bool
name_or_star(const char *s, size_t len)
{
    return (len == 1 && s[0] == '*') || ptth_name_valid(s, len);
}

static int
parse_rule(const char *value, ptth_acl_rule *rule)
{
    const char *rest;
    if (!split_name(value, rule->client, &rest))
        return -1;
    const char *slash = strchr(rest, '/');
    if (slash == NULL)
        return -1;
    size_t slen = (size_t)(slash - rest), plen = strlen(slash + 1);
    if (!name_or_star(rest, slen) || !name_or_star(slash + 1, plen))
        return -1;
    memcpy(rule->server, rest, slen);
    rule->server[slen] = '\0';
    memcpy(rule->port, slash + 1, plen);
    rule->port[plen] = '\0';
    return 0;
}

int
ptth_auth_check_allow(const char *value, char *err, size_t errlen)
{
    ptth_acl_rule rule;
    if (parse_rule(value, &rule) != 0) {
        snprintf(err, errlen, "bad rule '%s': expected CLIENT=SERVER/PORT (names, or * for SERVER or PORT)", value);
        return -1;
    }
    return 0;
}

static int
parse_principals(const char *option, const ptth_strlist *list, ptth_principal **out, size_t *n, ptth_table *byname,
                 ptth_problems *problems)
{
    int bad = 0;
    *n = 0;
    *out = NULL;
    if (list == NULL || list->count == 0)
        return 0;
    *out = calloc(list->count, sizeof(**out));
    if (*out == NULL) {
        ptth_problems_add(problems, "--%s: out of memory", option);
        return -1;
    }
    for (size_t i = 0; i < list->count; i++) {
        const char *item = list->items[i], *hash;
        ptth_principal *p = &(*out)[*n];
        if (!split_name(item, p->name, &hash) || !ptth_key_hash_format_valid(hash)) {
            ptth_problems_add(problems, "--%s: bad value '%s': expected NAME=KEYHASH (64 lowercase hex digits)", option, item);
            bad = 1;
            continue;
        }
        memcpy(p->hash.hex, hash, PTTH_KEY_HASH_LEN + 1);
        if (ptth_table_put(byname, p->name, strlen(p->name), p) != 0) {
            ptth_problems_add(problems, "--%s: '%s' is given more than once", option, p->name);
            bad = 1;
            continue;
        }
        (*n)++;
    }
    return bad ? -1 : 0;
}

/* A key hash must name one principal only, or a request's key would be ambiguous. */
static int
check_unique_hashes(const ptth_auth *a, ptth_problems *problems)
{
    size_t total = a->nservers + a->nclients;
    int bad = 0;
    for (size_t i = 0; i < total; i++) {
        const ptth_principal *p = i < a->nservers ? &a->servers[i] : &a->clients[i - a->nservers];
        for (size_t j = i + 1; j < total; j++) {
            const ptth_principal *q = j < a->nservers ? &a->servers[j] : &a->clients[j - a->nservers];
            if (strcmp(p->hash.hex, q->hash.hex) == 0) {
                ptth_problems_add(problems, "%s '%s' and %s '%s' have the same key hash: each needs its own key",
                                  i < a->nservers ? "server" : "client", p->name, j < a->nservers ? "server" : "client", q->name);
                bad = 1;
            }
        }
        if (a->has_admin && strcmp(p->hash.hex, a->admin.hex) == 0) {
            ptth_problems_add(problems, "--admin-key-hash is also the key hash of %s '%s'", i < a->nservers ? "server" : "client",
                              p->name);
            bad = 1;
        }
    }
    return bad ? -1 : 0;
}

int
ptth_auth_build(ptth_auth *a, const ptth_strlist *servers, const ptth_strlist *clients, const ptth_strlist *allow,
                const char *admin_hash, ptth_problems *problems)
{
    int bad = 0;
    memset(a, 0, sizeof(*a));
    ptth_table_init(&a->servers_by_name);
    ptth_table_init(&a->clients_by_name);

    if (parse_principals("server", servers, &a->servers, &a->nservers, &a->servers_by_name, problems) != 0)
        bad = 1;
    if (parse_principals("client", clients, &a->clients, &a->nclients, &a->clients_by_name, problems) != 0)
        bad = 1;

    if (admin_hash != NULL && admin_hash[0] != '\0') {
        if (!ptth_key_hash_format_valid(admin_hash)) {
            ptth_problems_add(problems, "--admin-key-hash: bad value '%s': expected 64 lowercase hex digits", admin_hash);
            bad = 1;
        } else {
            a->has_admin = true;
            memcpy(a->admin.hex, admin_hash, PTTH_KEY_HASH_LEN + 1);
        }
    }
    if (check_unique_hashes(a, problems) != 0)
        bad = 1;

    if (allow != NULL && allow->count > 0) {
        a->rules = calloc(allow->count, sizeof(*a->rules));
        if (a->rules == NULL) {
            ptth_problems_add(problems, "--allow: out of memory");
            bad = 1;
        }
        for (size_t i = 0; a->rules != NULL && i < allow->count; i++) {
            ptth_acl_rule *r = &a->rules[a->nrules];
            if (parse_rule(allow->items[i], r) != 0) {
                ptth_problems_add(problems, "--allow: bad rule '%s': expected CLIENT=SERVER/PORT (names, or * for SERVER or PORT)",
                                  allow->items[i]);
                bad = 1;
                continue;
            }
            if (ptth_auth_client(a, r->client, strlen(r->client)) == NULL) {
                ptth_problems_add(problems, "--allow: rule '%s' names client '%s', which no --client defines", allow->items[i],
                                  r->client);
                bad = 1;
                continue;
            }
            if (strcmp(r->server, "*") != 0 && ptth_auth_server(a, r->server, strlen(r->server)) == NULL) {
                ptth_problems_add(problems, "--allow: rule '%s' names server '%s', which no --server defines", allow->items[i],
                                  r->server);
                bad = 1;
                continue;
            }
            a->nrules++;
        }
    }

    if (bad) {
        ptth_auth_free(a);
        return -1;
    }
    return 0;
}

void
ptth_auth_free(ptth_auth *a)
{
    ptth_table_dispose(&a->servers_by_name);
    ptth_table_dispose(&a->clients_by_name);
    free(a->servers);
    free(a->clients);
    free(a->rules);
    memset(a, 0, sizeof(*a));
}

static int
hash_key_text(const char *key, size_t len, ptth_key_hash *out)
{
    if (!ptth_key_format_valid(key, len))
        return -EINVAL;
    ptth_key_hash_of(key, len, out);
    return 0;
}

/* Skips "SCHEME" and the spaces after it; NULL when value does not start so. */
static const char *
after_scheme(const char *value, size_t len, const char *scheme, size_t *rest_len)
{
    size_t n = strlen(scheme), i;
    if (len <= n || strncasecmp(value, scheme, n) != 0 || value[n] != ' ')
        return NULL;
    for (i = n; i < len && value[i] == ' '; i++)
        ;
    size_t end = len;
    while (end > i && (value[end - 1] == ' ' || value[end - 1] == '\t'))
        end--;
    *rest_len = end - i;
    return value + i;
}

int
ptth_auth_bearer(const char *value, size_t len, ptth_key_hash *out)
{
    size_t klen;
    const char *key = after_scheme(value, len, "Bearer", &klen);
    if (key == NULL)
        return -EINVAL;
    return hash_key_text(key, klen, out);
}

static int
b64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

int
ptth_auth_basic_password(const char *value, size_t len, ptth_key_hash *out)
{
    size_t blen;
    const char *b64 = after_scheme(value, len, "Basic", &blen);
    if (b64 == NULL || blen > 512)
        return -EINVAL;
    char decoded[400];
    size_t dlen = 0;
    unsigned acc = 0;
    int bits = 0, r = -EINVAL;
    for (size_t i = 0; i < blen && b64[i] != '='; i++) {
        int v = b64_value(b64[i]);
        if (v < 0)
            goto Exit;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (dlen == sizeof(decoded))
                goto Exit;
            decoded[dlen++] = (char)((acc >> bits) & 0xff);
        }
    }
    const char *colon = memchr(decoded, ':', dlen);
    if (colon != NULL)
        r = hash_key_text(colon + 1, dlen - (size_t)(colon + 1 - decoded), out);
Exit:
    OPENSSL_cleanse(decoded, sizeof(decoded));
    return r;
}

const ptth_principal *
ptth_auth_server(const ptth_auth *a, const char *name, size_t len)
{
    return ptth_table_get(&a->servers_by_name, name, len);
}

const ptth_principal *
ptth_auth_client(const ptth_auth *a, const char *name, size_t len)
{
    return ptth_table_get(&a->clients_by_name, name, len);
}

static const ptth_principal *
by_hash(const ptth_principal *list, size_t n, const ptth_key_hash *h)
{
    const ptth_principal *found = NULL;
    for (size_t i = 0; i < n; i++) {
        if (ptth_key_hash_equal(&list[i].hash, h) && found == NULL)
            found = &list[i];
    }
    return found;
}

const ptth_principal *
ptth_auth_client_by_hash(const ptth_auth *a, const ptth_key_hash *h)
{
    return by_hash(a->clients, a->nclients, h);
}

const ptth_principal *
ptth_auth_server_by_hash(const ptth_auth *a, const ptth_key_hash *h)
{
    return by_hash(a->servers, a->nservers, h);
}

bool
ptth_auth_is_admin(const ptth_auth *a, const ptth_key_hash *h)
{
    return a->has_admin && ptth_key_hash_equal(&a->admin, h);
}

static bool
part_matches(const char *pattern, const char *s, size_t len)
{
    if (pattern[0] == '*' && pattern[1] == '\0')
        return true;
    return strlen(pattern) == len && memcmp(pattern, s, len) == 0;
}

bool
ptth_auth_allowed(const ptth_auth *a, const char *client, const char *server, size_t server_len, const char *port, size_t port_len)
{
    for (size_t i = 0; i < a->nrules; i++) {
        const ptth_acl_rule *r = &a->rules[i];
        if (strcmp(r->client, client) == 0 && part_matches(r->server, server, server_len) && part_matches(r->port, port, port_len))
            return true;
    }
    return false;
}
