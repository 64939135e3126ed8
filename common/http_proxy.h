/*
 * http_proxy.h: the forward proxy both terminators reach the relay through
 * (SPEC §9.2, docs/proxies.md), as settings for libcurl, which does the
 * proxying itself: CONNECT (and, for http relays, absolute-form requests),
 * TLS to an https:// proxy, and every proxy auth scheme it knows: Basic
 * sent at once when there are credentials, and once a 407 offers Digest,
 * NTLM or Negotiate, the strongest of those (ptth_http_proxy_next_auth).
 *
 * Three ways to say it:
 *   - --http-proxy URL: http://[USER:PASS@]HOST[:PORT] or https://...;
 *   - --http-proxy none: no proxy, whatever the environment says;
 *   - neither: the environment exactly as libcurl reads it (https_proxy /
 *     HTTPS_PROXY for an https relay, http_proxy for an http relay (libcurl
 *     ignores HTTP_PROXY in upper case), ALL_PROXY / all_proxy, NO_PROXY /
 *     no_proxy with its suffix and CIDR rules), because libcurl applies it.
 * --http-proxy-user-file FILE holds one USER:PASS line (mode 0600, like key
 * files): the credentials stay off the command line and out of `ps`.
 * --http-proxy-ca-file FILE: the CAs that sign an https:// proxy's
 * certificate, instead of the system's (a company's own CA, say); the
 * proxy's name is always checked against its certificate.
 *
 * Secrets: the user file's content and a URL's USER:PASS are never logged,
 * never in an error text; ptth_http_proxy_shown() is the URL without them.
 *
 * Ownership: the caller's struct; init copies what it keeps, dispose wipes
 * and frees it.
 */
#ifndef PTTH_HTTP_PROXY_H
#define PTTH_HTTP_PROXY_H

#include <stdbool.h>
#include <stddef.h>

#include <curl/curl.h>

/* The three options, for the option table (options.h) of a terminator whose
 * config struct has the char * members url_member, file_member and
 * ca_member. */
#define PTTH_HTTP_PROXY_OPTIONS(config_type, url_member, file_member, ca_member)                                               \
    {"http-proxy", PTTH_OPT_STRING, offsetof(config_type, url_member), "URL|none",                                              \
     "reach the relay through this HTTP proxy: http://HOST:PORT or https://HOST:PORT (none: not even the one of "             \
     "HTTPS_PROXY, http_proxy, ALL_PROXY; default: those variables, with NO_PROXY, as curl reads them)",                    \
     NULL, 0, 0, NULL},                                                                                                       \
    {"http-proxy-user-file", PTTH_OPT_STRING, offsetof(config_type, file_member), "FILE",                                    \
     "USER:PASS for the proxy (one line, mode 0600); Basic, Digest, NTLM or Negotiate, as the proxy asks", NULL, 0, 0, NULL}, \
    {"http-proxy-ca-file", PTTH_OPT_STRING, offsetof(config_type, ca_member), "FILE",                                        \
     "trust these CAs (PEM) for an https:// proxy's certificate instead of the system's", NULL, 0, 0, NULL}

#define PTTH_HTTP_PROXY_URL_MAX 1024
#define PTTH_HTTP_PROXY_USER_MAX 512 /* USER:PASS */

typedef struct ptth_http_proxy {
    char *url;       /* NULL: the environment (libcurl's rules); "": none */
    char *userpwd;   /* USER:PASS from the user file, or NULL (a secret) */
    char *ca_file;   /* --http-proxy-ca-file, or NULL: the system's CAs */
    char shown[300]; /* the URL for logs, without USER:PASS; "" unless given */
} ptth_http_proxy;

/* From the option values (any may be NULL). 0, or -EINVAL with err saying
 * what is wrong (never quoting a password): a URL that is not http:// or
 * https:// with a host, over PTTH_HTTP_PROXY_URL_MAX, with a path, query or
 * control character; a user file that cannot be read, is readable by
 * others, or is not one USER:PASS line of at most PTTH_HTTP_PROXY_USER_MAX
 * bytes; a CA file that cannot be opened; a user or CA file next to "none". */
int ptth_http_proxy_init(ptth_http_proxy *p, const char *url_opt, const char *user_file, const char *ca_file, char *err,
                         size_t errlen);

void ptth_http_proxy_dispose(ptth_http_proxy *p);

/* Whether requests to an http (https_relay false) or https relay may go
 * through a proxy: one was given, or libcurl would find one in the
 * environment for that scheme (NO_PROXY aside: libcurl decides that per
 * connection). */
bool ptth_http_proxy_may_apply(const ptth_http_proxy *p, bool https_relay);

/* Whether the proxy libcurl will use for an http or https relay is reached
 * over TLS (an https:// URL, given or from the variables as libcurl reads
 * them). Then even a cleartext relay's connection carries libcurl's TLS
 * state, and its bytes must go through curl_easy_send/recv. NO_PROXY is not
 * weighed: true may mean "perhaps", which costs speed, never correctness. */
bool ptth_http_proxy_is_tls(const ptth_http_proxy *p, bool https_relay);

/* The proxy settings on an easy handle; tunnel: always CONNECT, also for
 * an http relay (the upgraded legs need a raw connection). */
void ptth_http_proxy_setup_easy(const ptth_http_proxy *p, CURL *h, bool tunnel);

/* The CURLOPT_PROXYAUTH to start with: Basic sent at once when there are
 * credentials (curl's own default), else CURLAUTH_ANY. */
long ptth_http_proxy_first_auth(const ptth_http_proxy *p);

/* After a 407 that offered the schemes in offered (CURLINFO_PROXYAUTH_AVAIL):
 * the CURLOPT_PROXYAUTH for the next tries. */
long ptth_http_proxy_next_auth(long current, long offered);

/* What a failed transfer says about the proxy, for the error text and the
 * log: when the proxy answered CONNECT with other than 2xx (or answered an
 * absolute-form request with 407, given status), fills out (for example
 * "the HTTP proxy 127.0.0.1:3128 wants authentication (407; it offers
 * Basic; credentials were sent)") and returns that status; else 0. */
long ptth_http_proxy_failure(CURL *h, long status, char *out, size_t outlen);

/* The port of an http(s) URL, its scheme's default when it names none; 0
 * when it cannot be parsed. */
long ptth_http_proxy_url_port(const char *url);

/* After a transfer failed for a reason of its own (not the proxy's answer
 * to CONNECT): when it went to another port than relay_port, a proxy
 * answered, and " (through the HTTP proxy IP:PORT)" is appended to error.
 * libcurl's words ("Received HTTP/0.9 when not allowed") do not say so. */
void ptth_http_proxy_note(CURL *h, long relay_port, char *error, size_t errlen);

#endif
