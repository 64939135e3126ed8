/* http_proxy.c: the forward proxy's settings for libcurl; see http_proxy.h. */
#include "http_proxy.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "keys.h"

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static bool
printable(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f)
            return false;
    return true;
}

/* Checks the URL with libcurl's own parser (the one that will use it) and
 * writes what may be shown of it. */
static int
check_url(ptth_http_proxy *p, const char *url, char *err, size_t errlen)
{
    if (strlen(url) > PTTH_HTTP_PROXY_URL_MAX) {
        set_err(err, errlen, "--http-proxy: the URL is longer than %d bytes", PTTH_HTTP_PROXY_URL_MAX);
        return -EINVAL;
    }
    if (!printable(url)) {
        set_err(err, errlen, "--http-proxy: the URL has a space or a control character");
        return -EINVAL;
    }
    if (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0) {
        set_err(err, errlen, "--http-proxy: the URL must start with http:// or https:// (or be 'none')");
        return -EINVAL;
    }
    CURLU *u = curl_url();
    if (u == NULL) {
        set_err(err, errlen, "--http-proxy: out of memory");
        return -ENOMEM;
    }
    char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL, *query = NULL;
    int rc = -EINVAL;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK || curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || host[0] == '\0') {
        set_err(err, errlen, "--http-proxy: not a URL with a host name");
        goto out;
    }
    if (curl_url_get(u, CURLUPART_PATH, &path, 0) == CURLUE_OK && strcmp(path, "/") != 0 && path[0] != '\0') {
        set_err(err, errlen, "--http-proxy: a proxy URL has no path (%s://%s...%s)", scheme, host, path);
        goto out;
    }
    if (curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK) {
        set_err(err, errlen, "--http-proxy: a proxy URL has no query");
        goto out;
    }
    if (curl_url_get(u, CURLUPART_PORT, &port, 0) != CURLUE_OK)
        port = NULL;
    snprintf(p->shown, sizeof(p->shown), "%s://%s%s%s", scheme, host, port != NULL ? ":" : "", port != NULL ? port : "");
    rc = 0;
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_free(query);
    curl_url_cleanup(u);
    return rc;
}

/* One USER:PASS line, an optional line end, nothing else. */
static int
read_user_file(ptth_http_proxy *p, const char *path, char *err, size_t errlen)
{
    char buf[PTTH_HTTP_PROXY_USER_MAX + 3];
    size_t len = 0;
    int rc = ptth_secret_file_read(path, "proxy user file", buf, sizeof(buf), &len, err, errlen);
    if (rc != 0) {
        if (rc == -EFBIG)
            set_err(err, errlen, "proxy user file '%s' is longer than one USER:PASS line of %d bytes", path,
                    PTTH_HTTP_PROXY_USER_MAX);
        OPENSSL_cleanse(buf, sizeof(buf));
        return -EINVAL;
    }
    if (len > 0 && buf[len - 1] == '\n')
        buf[--len] = '\0';
    if (len > 0 && buf[len - 1] == '\r')
        buf[--len] = '\0';
    const char *colon = strchr(buf, ':');
    bool ok = len > 0 && len <= PTTH_HTTP_PROXY_USER_MAX && colon != NULL && colon != buf && strlen(buf) == len;
    for (size_t i = 0; ok && i < len; i++)
        ok = (unsigned char)buf[i] >= 0x20 && (unsigned char)buf[i] != 0x7f;
    if (!ok) {
        OPENSSL_cleanse(buf, sizeof(buf));
        set_err(err, errlen, "proxy user file '%s' does not hold one USER:PASS line (a user name, a colon, the password)", path);
        return -EINVAL;
    }
    p->userpwd = strdup(buf);
    OPENSSL_cleanse(buf, sizeof(buf));
    if (p->userpwd == NULL) {
        set_err(err, errlen, "out of memory");
        return -ENOMEM;
    }
    return 0;
}

/* The file must open now: libcurl would only say so at the first
 * connection, as a TLS error. */
static int
check_ca_file(ptth_http_proxy *p, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        set_err(err, errlen, "--http-proxy-ca-file '%s': %s", path, strerror(errno));
        return -EINVAL;
    }
    fclose(f);
    p->ca_file = strdup(path);
    if (p->ca_file == NULL) {
        set_err(err, errlen, "out of memory");
        return -ENOMEM;
    }
    return 0;
}

int
ptth_http_proxy_init(ptth_http_proxy *p, const char *url_opt, const char *user_file, const char *ca_file, char *err,
                     size_t errlen)
{
    memset(p, 0, sizeof(*p));
    int rc = 0;
    if (url_opt != NULL && strcmp(url_opt, "none") == 0) {
        if (user_file != NULL || ca_file != NULL) {
            set_err(err, errlen, "--http-proxy-%s: no proxy to use it with (--http-proxy none)",
                    user_file != NULL ? "user-file" : "ca-file");
            return -EINVAL;
        }
        p->url = strdup("");
    } else if (url_opt != NULL) {
        if ((rc = check_url(p, url_opt, err, errlen)) != 0)
            return rc;
        p->url = strdup(url_opt);
    }
    if (url_opt != NULL && p->url == NULL) {
        set_err(err, errlen, "out of memory");
        return -ENOMEM;
    }
    if ((user_file != NULL && (rc = read_user_file(p, user_file, err, errlen)) != 0) ||
        (ca_file != NULL && (rc = check_ca_file(p, ca_file, err, errlen)) != 0)) {
        ptth_http_proxy_dispose(p);
        return rc;
    }
    return 0;
}

void
ptth_http_proxy_dispose(ptth_http_proxy *p)
{
    if (p->url != NULL) {
        OPENSSL_cleanse(p->url, strlen(p->url)); /* may carry USER:PASS */
        free(p->url);
    }
    if (p->userpwd != NULL) {
        OPENSSL_cleanse(p->userpwd, strlen(p->userpwd));
        free(p->userpwd);
    }
    free(p->ca_file);
    memset(p, 0, sizeof(*p));
}

static bool
env_set(const char *name)
{
    const char *v = getenv(name);
    return v != NULL && v[0] != '\0';
}

bool
ptth_http_proxy_may_apply(const ptth_http_proxy *p, bool https_relay)
{
    if (p != NULL && p->url != NULL)
        return p->url[0] != '\0';
    /* libcurl's names: for http it reads http_proxy in lower case only */
    bool scheme = https_relay ? env_set("https_proxy") || env_set("HTTPS_PROXY") : env_set("http_proxy");
    return scheme || env_set("all_proxy") || env_set("ALL_PROXY");
}

/* The first of the variables that is set, in libcurl's order. */
static const char *
env_first(const char *const *names)
{
    for (; *names != NULL; names++)
        if (env_set(*names))
            return getenv(*names);
    return NULL;
}

bool
ptth_http_proxy_is_tls(const ptth_http_proxy *p, bool https_relay)
{
    const char *url = p != NULL ? p->url : NULL;
    if (url == NULL) {
        static const char *const for_https[] = {"https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", NULL};
        static const char *const for_http[] = {"http_proxy", "all_proxy", "ALL_PROXY", NULL};
        url = env_first(https_relay ? for_https : for_http);
    }
    return url != NULL && strncasecmp(url, "https://", 8) == 0;
}

void
ptth_http_proxy_setup_easy(const ptth_http_proxy *p, CURL *h, bool tunnel)
{
    if (p != NULL && p->url != NULL)
        curl_easy_setopt(h, CURLOPT_PROXY, p->url); /* "" disables the environment's */
    if (p != NULL && p->ca_file != NULL)
        curl_easy_setopt(h, CURLOPT_PROXY_CAINFO, p->ca_file);
    if (p != NULL && p->userpwd != NULL)
        curl_easy_setopt(h, CURLOPT_PROXYUSERPWD, p->userpwd);
    if (tunnel)
        curl_easy_setopt(h, CURLOPT_HTTPPROXYTUNNEL, 1L);
}

long
ptth_http_proxy_first_auth(const ptth_http_proxy *p)
{
    bool creds = p != NULL && (p->userpwd != NULL || (p->url != NULL && strchr(p->url, '@') != NULL));
    /* with credentials Basic at once, as curl's own --proxy-user does: a
     * first request without them would be answered 407, and libcurl 7.88
     * then reuses a connection whose POST body it did not finish for the
     * next request, which hangs behind squid */
    return creds ? (long)CURLAUTH_BASIC : (long)CURLAUTH_ANY;
}

long
ptth_http_proxy_next_auth(long current, long offered)
{
    /* the proxy asks for a scheme other than Basic (Digest, NTLM,
     * Negotiate): let libcurl choose among them, the strongest first, never
     * Basic again */
    if ((offered & ~(long)CURLAUTH_BASIC) != 0)
        return (long)CURLAUTH_ANYSAFE;
    return current;
}

static void
auth_names(long avail, char *out, size_t outlen)
{
    static const struct {
        long bit;
        const char *name;
    } names[] = {
        {(long)CURLAUTH_BASIC, "Basic"},         {(long)CURLAUTH_DIGEST, "Digest"},
        {(long)CURLAUTH_NTLM, "NTLM"},           {(long)CURLAUTH_NEGOTIATE, "Negotiate"},
        {(long)CURLAUTH_BEARER, "Bearer"},
    };
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if ((avail & names[i].bit) == 0)
            continue;
        int n = snprintf(out + len, outlen - len, "%s%s", len > 0 ? "," : "", names[i].name);
        if (n < 0 || (size_t)n >= outlen - len)
            break;
        len += (size_t)n;
    }
    if (len == 0)
        snprintf(out, outlen, "none");
}

long
ptth_http_proxy_failure(CURL *h, long status, char *out, size_t outlen)
{
    long code = 0;
    if (curl_easy_getinfo(h, CURLINFO_HTTP_CONNECTCODE, &code) != CURLE_OK)
        code = 0;
    bool via_connect = code >= 300;
    if (!via_connect && status != 407)
        return 0;
    if (!via_connect)
        code = status;
    char *ip = NULL;
    long port = 0;
    if (curl_easy_getinfo(h, CURLINFO_PRIMARY_IP, &ip) != CURLE_OK || ip == NULL)
        ip = "?";
    if (curl_easy_getinfo(h, CURLINFO_PRIMARY_PORT, &port) != CURLE_OK)
        port = 0;
    if (code == 407) {
        long avail = 0;
        char schemes[64];
        if (curl_easy_getinfo(h, CURLINFO_PROXYAUTH_AVAIL, &avail) != CURLE_OK)
            avail = 0;
        auth_names(avail, schemes, sizeof(schemes));
        snprintf(out, outlen, "the HTTP proxy %s:%ld wants authentication (407; it offers %s)", ip, port, schemes);
    } else {
        snprintf(out, outlen, "the HTTP proxy %s:%ld refused CONNECT to the relay (HTTP %ld)", ip, port, code);
    }
    return code;
}

long
ptth_http_proxy_url_port(const char *url)
{
    long port = 0;
    CURLU *u = curl_url();
    char *text = NULL;
    if (u != NULL && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PORT, &text, CURLU_DEFAULT_PORT) == CURLUE_OK)
        port = strtol(text, NULL, 10);
    curl_free(text);
    curl_url_cleanup(u);
    return port;
}

void
ptth_http_proxy_note(CURL *h, long relay_port, char *error, size_t errlen)
{
    char *ip = NULL;
    long port = 0;
    if (curl_easy_getinfo(h, CURLINFO_PRIMARY_IP, &ip) != CURLE_OK || ip == NULL || ip[0] == '\0' ||
        curl_easy_getinfo(h, CURLINFO_PRIMARY_PORT, &port) != CURLE_OK || port == 0 || port == relay_port)
        return;
    size_t len = strlen(error);
    if (len < errlen)
        snprintf(error + len, errlen - len, " (through the HTTP proxy %s:%ld)", ip, port);
}
