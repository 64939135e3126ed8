/*
 * guard.c: see guard.h.
 */
#include "guard.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "listener.h"
#include "log.h"
#include "reply.h"
#include "sysutil.h"

#define REFUSAL_LOG_INTERVAL_MS 60000

void
ptth_guard_client_addr(ptth_relay *relay, h2o_req_t *req, char *out, size_t outlen)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    socklen_t n = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    size_t xlen;
    const char *xff = ptth_req_header(req, "x-forwarded-for", &xlen);
    ptth_client_addr(n != 0 ? (struct sockaddr *)&ss : NULL, xff, xlen, relay->trusted, relay->ntrusted, out, outlen);
}

void
ptth_guard_note_request(h2o_req_t *req)
{
    ptth_accepted_note_request(ptth_accepted_of(req));
}

/* true when text (an address as addr.h writes it) is itself a trusted
 * proxy's; false for anything that does not parse. */
static bool
is_proxy(const ptth_relay *relay, const char *text)
{
    if (relay->ntrusted == 0)
        return false;
    char ip[INET6_ADDRSTRLEN + 1];
    const char *p = text;
    size_t len = strlen(text);
    if (p[0] == '[') {
        const char *close = strchr(p, ']');
        if (close == NULL)
            return false;
        p++;
        len = (size_t)(close - p);
    } else {
        const char *colon = strchr(p, ':');
        if (colon != NULL && strchr(colon + 1, ':') == NULL)
            len = (size_t)(colon - p); /* IPv4:PORT; a bare IPv6 has several colons */
    }
    if (len >= sizeof(ip))
        return false;
    memcpy(ip, p, len);
    ip[len] = '\0';
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (inet_pton(AF_INET, ip, &((struct sockaddr_in *)&ss)->sin_addr) == 1)
        ss.ss_family = AF_INET;
    else if (inet_pton(AF_INET6, ip, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1)
        ss.ss_family = AF_INET6;
    else
        return false;
    return ptth_addr_trusted((struct sockaddr *)&ss, relay->trusted, relay->ntrusted);
}

static bool
answer_penalty(ptth_relay *relay, h2o_req_t *req, long long left_ms)
{
    if (left_ms <= 0)
        return false;
    relay->stats.penalty_refused++;
    unsigned secs = (unsigned)((left_ms + 999) / 1000);
    ptth_reply_retry(req, 429, secs, "too many failed authentications from this address (--auth-fail-limit); retry later\n");
    return true;
}

bool
ptth_guard_request(ptth_relay *relay, h2o_req_t *req)
{
    long long now = ptth_now_ms();
    ptth_accepted *a = ptth_accepted_of(req);
    /* the common case, a direct peer: its connection's entry is its
     * address's, so no address is formatted or looked up */
    if (a != NULL && !ptth_accepted_trusted(a)) {
        uint32_t slot = ptth_accepted_slot(a);
        if (slot != PTTH_PEER_NONE)
            return answer_penalty(relay, req, ptth_peertable_penalty_left_at(&relay->addrs, slot, now));
    }
    char addr[PTTH_ADDR_STRLEN];
    ptth_peer_key k;
    ptth_guard_client_addr(relay, req, addr, sizeof(addr));
    if (ptth_peer_key_from_text(&k, addr) != 0 || is_proxy(relay, addr))
        return false;
    if (answer_penalty(relay, req, ptth_peertable_penalty_left(&relay->addrs, &k, now)))
        return true;
    if (a == NULL || !ptth_accepted_trusted(a))
        return false;
    uint32_t slot;
    if (ptth_accepted_attribute(a, &relay->addrs, &k, (uint32_t)relay->cfg->max_connections_per_address, &slot) !=
        PTTH_PEER_OVER_CAP)
        return false;
    relay->stats.requests_refused_address++;
    uint32_t refused;
    if (ptth_peertable_refusal_log(&relay->addrs, slot, now, REFUSAL_LOG_INTERVAL_MS, &refused)) {
        char text[PTTH_PEER_KEY_STRLEN];
        const ptth_peer_entry *e = ptth_peertable_at(&relay->addrs, slot);
        ptth_peer_key_format(&e->key, text, sizeof(text));
        ptth_log_warn("event=conn_refused addr=%s reason=max_connections_per_address open=%u limit=%llu refused=%u via=proxy", text,
                      e->conns, (unsigned long long)relay->cfg->max_connections_per_address, refused);
    }
    ptth_reply_retry(req, 429, PTTH_RETRY_LIMIT,
                     "too many connections from this address through the proxy (--max-connections-per-address)\n");
    return true;
}

ptth_peer_fail
ptth_guard_failure(ptth_relay *relay, const char *ip, uint32_t *failures)
{
    relay->stats.auth_failures++;
    *failures = 0;
    ptth_peer_key k;
    if (ptth_peer_key_from_text(&k, ip) != 0 || is_proxy(relay, ip))
        return PTTH_PEER_FAIL_LOG;
    ptth_peer_auth_limits lim = {
        .limit = (uint32_t)relay->cfg->auth_fail_limit,
        .window_ms = PTTH_AUTH_FAIL_WINDOW_MS,
        .penalty_ms = (long long)relay->cfg->auth_fail_penalty * 1000,
    };
    ptth_peer_fail v = ptth_peertable_auth_failed(&relay->addrs, &k, &lim, ptth_now_ms(), failures);
    if (v == PTTH_PEER_FAIL_PENALTY)
        relay->stats.auth_penalties++;
    return v;
}

/* The address without its port (in place): what fail2ban bans. */
static char *
strip_port(char *addr)
{
    char *ip = addr, *end;
    if (addr[0] == '[') {
        ip = addr + 1;
        if ((end = strchr(ip, ']')) != NULL)
            *end = '\0';
    } else if ((end = strrchr(addr, ':')) != NULL) {
        *end = '\0';
    }
    return ip;
}

static void
log_penalty(ptth_relay *relay, const char *ip, uint32_t failures)
{
    ptth_peer_key k;
    char group[PTTH_PEER_KEY_STRLEN] = "";
    if (ptth_peer_key_from_text(&k, ip) == 0 && k.family == AF_INET6)
        ptth_peer_key_format(&k, group, sizeof(group));
    ptth_log_warn("event=auth_penalty addr=%s failures=%u for_s=%llu%s%s", ip, failures,
                  (unsigned long long)relay->cfg->auth_fail_penalty, group[0] != '\0' ? " prefix=" : "", group);
}

/* One authentication failure of req's address (IPv6: /64), counted: the
 * address without its port in addr, and whether to log it (not when the
 * address is in a penalty that its auth_penalty line stands for). */
typedef struct failure_note {
    char addr[PTTH_ADDR_STRLEN];
    const char *ip; /* addr without the port */
    uint32_t failures;
    ptth_peer_fail verdict;
} failure_note;

static bool
count_failure(ptth_relay *relay, h2o_req_t *req, failure_note *f)
{
    ptth_guard_client_addr(relay, req, f->addr, sizeof(f->addr));
    f->verdict = ptth_guard_failure(relay, f->addr, &f->failures);
    if (f->verdict == PTTH_PEER_FAIL_QUIET)
        return false;
    f->ip = strip_port(f->addr);
    return true;
}

/* After the failure's own line: the penalty's, when this one began it. */
static void
after_failure_line(ptth_relay *relay, const failure_note *f)
{
    if (f->verdict == PTTH_PEER_FAIL_PENALTY)
        log_penalty(relay, f->ip, f->failures);
}

void
ptth_guard_resume_refused(ptth_relay *relay, h2o_req_t *req, const char *id, bool server_side)
{
    failure_note f;
    if (!count_failure(relay, req, &f))
        return;
    ptth_log_warn("event=resume_refused addr=%s conn=%s side=%s reason=bad_proof", f.ip, id, server_side ? "server" : "client");
    after_failure_line(relay, &f);
}

void
ptth_guard_auth_failed(ptth_relay *relay, h2o_req_t *req, const char *reason, const ptth_key_hash *key)
{
    char path[160];
    /* counted per address (IPv6: /64); beyond --auth-fail-limit the address
     * is in a penalty and one auth_penalty line stands for what follows, so
     * that one address cannot fill the disk (SPEC §9.6) */
    failure_note f;
    if (!count_failure(relay, req, &f))
        return;
    /* the path is the client's: printable ASCII only, so that no line can be
     * forged into the log that fail2ban reads */
    char p[128];
    size_t n = req->input.path.len < sizeof(p) - 8 ? req->input.path.len : sizeof(p) - 8;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)req->input.path.base[i];
        p[i] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
    }
    p[n] = '\0';
    ptth_log_warn("event=auth_failed addr=%s reason=%s key=%.12s path=%s", f.ip, reason, key != NULL ? key->hex : "-",
                  ptth_log_quote(path, sizeof(path), p));
    after_failure_line(relay, &f);
}
