/*
 * fuzz_relay_http.c: libFuzzer target for the whole relay request path:
 * h2o's HTTP/1 parser (and HTTP/2 with prior knowledge), the handler's
 * routing and authentication, listens, connects, accepts, chunks, framed
 * streams, timeouts and reloads (relay/, driven the way h2o's fuzz/driver.cc
 * drives h2o: bytes into one end of a socketpair whose other end h2o
 * accepted, the evloop run until quiet).
 *
 * Every input gets a fresh relay (ptth_relay_init on one evloop kept for the
 * process), configured with server foo, clients alice (allowed foo/ssh and
 * foo/web) and bob (allowed nothing), an admin key, --max-chunk 1024, small
 * connection limits and --idle-timeout 120. The input is split at "@NEXT@"
 * into scripts, at most 8 of them connections. Each connection script is
 * written on a new connection, in order, after the relay went quiet on the
 * previous one, with placeholders replaced: "@ID@" by the id of the tunnel
 * the relay made last (so listen -> connect -> accept -> upstream/downstream/
 * close can be reached), "@SKEY@", "@AKEY@", "@BKEY@", "@XKEY@" by the keys
 * of foo, alice, bob and the admin, "@NKEY@" by foo's key after @RELOAD2@; "@IDIDIDIDIDIDIDIDIDID@" is "@ID@" for
 * HTTP/2 frames, where the length must not change. Two scripts are not
 * connections: "@WAIT<secs>@" moves the relay's clock forward (timeouts,
 * heartbeats) and "@RELOAD<n>@" reloads the configuration as on SIGHUP with
 * a variant of load_config() (keys removed or changed, ACLs and limits
 * changed). Then every connection is half-closed, the relay ends all tunnels
 * (as on SIGTERM), the connections are closed and the relay is disposed.
 *
 * Checked, besides crashes, leaks and undefined behaviour:
 *   - what the relay sends on each HTTP/1 connection is a sequence of
 *     well-formed responses: status line, header lines without control
 *     characters, a body of the announced length or chunked; framed-stream
 *     bodies (x-accel-buffering: no) decode as frames without an error;
 *   - a valid configuration is accepted on reload;
 *   - after the shutdown no tunnel or stream is left and every connection is
 *     closed within a bounded number of loop turns.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <h2o.h>

#include "config.h"
#include "frame.h"
#include "keys.h"
#include "log.h"
#include "relay.h"
#include "table.h"
#include "tunnel.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define MAX_CONNS 8
#define OUT_CAP (256 * 1024)
#define QUIET_TURNS 4     /* loop turns without any I/O that count as quiet */
#define MAX_TURNS 4000    /* per phase; a relay that needs more is stuck */
#define CLOSE_TURNS 20000 /* for every connection to go after the shutdown */

/* Keys of the test configuration (43 base64url characters each). */
static const char SERVER_KEY[] = "SSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSk";
static const char ALICE_KEY[] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAk";
static const char BOB_KEY[] = "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBk";
static const char ADMIN_KEY[] = "XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXk";
static const char NEW_SERVER_KEY[] = "NNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNNk"; /* foo's after @RELOAD2@ */

/* h2o's evloop reads the time with gettimeofday(); this definition takes its
 * place (the executable's symbol wins over libc's) and adds clock_skew_ms, so
 * that a "@WAIT<secs>@" script moves the relay's clock forward and its
 * timeouts (listen, connect, heartbeat, idle; h2o's request and idle
 * timeouts) fire without waiting. The skew only grows. */
static int64_t clock_skew_ms;

int
gettimeofday(struct timeval *restrict tv, void *restrict tz)
{
    (void)tz;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000 + clock_skew_ms * 1000;
    tv->tv_sec = (time_t)(us / 1000000);
    tv->tv_usec = (suseconds_t)(us % 1000000);
    return 0;
}

/* The same length as a connection id (PTTH_ID_LEN), for HTTP/2 scripts. */
#define ID_MARK_FIXED "@IDIDIDIDIDIDIDIDIDID@"

static h2o_evloop_t *loop;

typedef struct conn {
    int fd;              /* our end */
    bool h2o_open;       /* h2o's socket not closed yet */
    const uint8_t *wbuf; /* what is left to write */
    size_t wlen;
    uint8_t *script; /* owned copy after substitution */
    uint8_t *out;    /* what the relay sent (one static buffer per slot) */
    size_t out_len;
    bool out_overflow, eof, head_seen, is_h2, has_h2;
} conn;

static conn conns[MAX_CONNS];
static size_t nconns;
static bool verbose; /* PTTH_FUZZ_LOG set: relay log at debug, statuses per connection */
static char last_id[PTTH_ID_LEN + 1];

static void
fail(const char *what, size_t ci)
{
    fprintf(stderr, "fuzz_relay_http: invariant broken: %s (connection %zu)\n", what, ci);
    if (ci < nconns && conns[ci].out != NULL)
        fprintf(stderr, "---- relay output of that connection (%zu bytes):\n%.*s\n----\n", conns[ci].out_len,
                (int)(conns[ci].out_len < 4096 ? conns[ci].out_len : 4096), (const char *)conns[ci].out);
    abort();
}

static char server_opt[128], alice_opt[128], bob_opt[128], admin_opt[128], server2_opt[128];

/* The configuration of an input (variant 0), or one of the variants a
 * "@RELOAD<n>@" script applies: 1 alice removed, 2 foo's key changed (to
 * NEW_SERVER_KEY, "@NKEY@"), 3 bob allowed everywhere and tighter limits,
 * 4 foo removed (with the rules naming it). The
 * caller frees it with ptth_options_free(). */
static void
load_config(unsigned variant, ptth_relay_config *out)
{
    const char *args[32];
    int n = 0;
    args[n++] = "ptth_relay";
    if (variant != 4)
        args[n++] = variant == 2 ? server2_opt : server_opt;
    if (variant != 1)
        args[n++] = alice_opt;
    args[n++] = bob_opt;
    args[n++] = admin_opt;
    if (variant != 1 && variant != 4) {
        args[n++] = "--allow=alice=foo/ssh";
        args[n++] = "--allow=alice=foo/web";
    }
    if (variant == 3) {
        args[n++] = "--allow=bob=*/*";
        args[n++] = "--max-connections=2";
        args[n++] = "--max-connections-per-server=1";
    } else {
        args[n++] = "--max-connections=4";
        args[n++] = "--max-connections-per-server=3";
    }
    args[n++] = "--max-chunk=1024";
    args[n++] = "--listen-timeout=25";
    args[n++] = "--connect-timeout=10";
    args[n++] = "--heartbeat=20";
    args[n++] = "--idle-timeout=120";
    args[n++] = "--trusted-proxy=127.0.0.1/32";
    args[n] = NULL;
    ptth_cli cli;
    ptth_problems problems = {NULL, 0};
    if (ptth_options_load(&ptth_relay_program, out, &cli, n, (char **)args, &problems, NULL) != 0) {
        for (size_t i = 0; i < problems.count; i++)
            fprintf(stderr, "fuzz_relay_http: config: %s\n", problems.lines[i]);
        abort();
    }
    ptth_cli_free(&cli);
    ptth_problems_free(&problems);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    verbose = getenv("PTTH_FUZZ_LOG") != NULL;
    ptth_log_init("fuzz_relay_http", verbose ? PTTH_LOG_DEBUG : PTTH_LOG_ERROR);
    signal(SIGPIPE, SIG_IGN);
    ptth_key_hash s, s2, a, b, x;
    ptth_key_hash_of(SERVER_KEY, strlen(SERVER_KEY), &s);
    ptth_key_hash_of(NEW_SERVER_KEY, strlen(NEW_SERVER_KEY), &s2);
    ptth_key_hash_of(ALICE_KEY, strlen(ALICE_KEY), &a);
    ptth_key_hash_of(BOB_KEY, strlen(BOB_KEY), &b);
    ptth_key_hash_of(ADMIN_KEY, strlen(ADMIN_KEY), &x);
    snprintf(server_opt, sizeof(server_opt), "--server=foo=%s", s.hex);
    snprintf(server2_opt, sizeof(server2_opt), "--server=foo=%s", s2.hex);
    snprintf(alice_opt, sizeof(alice_opt), "--client=alice=%s", a.hex);
    snprintf(bob_opt, sizeof(bob_opt), "--client=bob=%s", b.hex);
    snprintf(admin_opt, sizeof(admin_opt), "--admin-key-hash=%s", x.hex);
    loop = h2o_evloop_create();
    return 0;
}

static void
on_h2o_close(void *data)
{
    ((conn *)data)->h2o_open = false;
}

/* Reads what the relay sent and writes what is left of the scripts.
 * Returns true when any byte moved. */
static bool
pump(void)
{
    bool moved = false;
    for (size_t i = 0; i < nconns; i++) {
        conn *c = &conns[i];
        if (c->fd < 0)
            continue;
        while (c->wlen > 0) {
            ssize_t n = write(c->fd, c->wbuf, c->wlen);
            if (n <= 0)
                break;
            c->wbuf += n;
            c->wlen -= (size_t)n;
            moved = true;
        }
        for (;;) {
            uint8_t buf[16384];
            ssize_t n = read(c->fd, buf, sizeof(buf));
            if (n == 0)
                c->eof = true;
            if (n <= 0)
                break;
            moved = true;
            size_t keep = (size_t)n;
            if (keep > OUT_CAP - c->out_len) {
                keep = OUT_CAP - c->out_len;
                c->out_overflow = true;
            }
            memcpy(c->out + c->out_len, buf, keep);
            c->out_len += keep;
        }
    }
    return moved;
}

/* Runs the loop until nothing moves for QUIET_TURNS turns. */
static void
run_until_quiet(void)
{
    int quiet = 0;
    for (int turn = 0; turn < MAX_TURNS && quiet < QUIET_TURNS; turn++) {
        h2o_evloop_run(loop, 0);
        quiet = pump() ? 0 : quiet + 1;
    }
}

/* Takes the id of a tunnel that appeared since the last call as the new
 * "@ID@" (when several did, the smallest id, so that the choice does not
 * depend on the table's order). Read from the relay's table rather than
 * from the responses, which HTTP/2 compresses. */
static void
note_new_tunnel(ptth_relay *relay)
{
    static char seen[64][PTTH_ID_LEN + 1];
    static size_t nseen;
    if (relay == NULL) { /* a new input */
        nseen = 0;
        return;
    }
    size_t n;
    ptth_tunnel **tuns = (ptth_tunnel **)ptth_table_values(&relay->core.tunnels, &n);
    const char *pick = NULL;
    for (size_t i = 0; i < n; i++) {
        bool known = false;
        for (size_t k = 0; k < nseen && !known; k++)
            known = strcmp(seen[k], tuns[i]->id) == 0;
        if (!known && (pick == NULL || strcmp(tuns[i]->id, pick) < 0))
            pick = tuns[i]->id;
    }
    if (pick != NULL) {
        memcpy(last_id, pick, PTTH_ID_LEN + 1);
        if (nseen < sizeof(seen) / sizeof(seen[0]))
            memcpy(seen[nseen++], pick, PTTH_ID_LEN + 1);
    }
    free(tuns);
}

/* Copies a script, replacing the placeholders. "@ID@" and the key markers
 * change the length of the text, which is fine for HTTP/1; inside HTTP/2
 * frames (whose lengths are counted) use ID_MARK_FIXED, exactly as long as an
 * id, and the keys themselves. */
static uint8_t *
substitute(const uint8_t *s, size_t len, size_t *out_len)
{
    static const struct {
        const char *mark;
        const char *text;
    } subs[] = {{ID_MARK_FIXED, last_id}, {"@ID@", last_id},          {"@SKEY@", SERVER_KEY}, {"@AKEY@", ALICE_KEY},
                {"@BKEY@", BOB_KEY},      {"@NKEY@", NEW_SERVER_KEY}, {"@XKEY@", ADMIN_KEY}};
    uint8_t *out = malloc(len * 11 + 1); /* "@ID@" (4) -> 22, "@XKEY@" (6) -> 43: at most 11 times longer */
    if (out == NULL)
        abort();
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        bool done = false;
        for (size_t k = 0; !done && s[i] == '@' && k < sizeof(subs) / sizeof(subs[0]); k++) {
            size_t ml = strlen(subs[k].mark);
            if (len - i >= ml && memcmp(s + i, subs[k].mark, ml) == 0) {
                size_t tl = strlen(subs[k].text);
                memcpy(out + o, subs[k].text, tl);
                o += tl;
                i += ml;
                done = true;
            }
        }
        if (!done)
            out[o++] = s[i++];
    }
    *out_len = o;
    return out;
}

/* "@WAIT<secs>@" (1 to 3600 seconds) as a whole script: move the clock. */
static bool
parse_wait(const uint8_t *s, size_t len, unsigned *secs)
{
    if (len < 7 || memcmp(s, "@WAIT", 5) != 0 || s[len - 1] != '@')
        return false;
    unsigned v = 0;
    for (size_t i = 5; i < len - 1; i++) {
        if (s[i] < '0' || s[i] > '9' || i > 9)
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v == 0 || v > 3600)
        return false;
    *secs = v;
    return true;
}

/* "@RELOAD<n>@" as a whole script: SIGHUP with configuration variant n. */
static bool
parse_reload(const uint8_t *s, size_t len, unsigned *variant)
{
    if (len != 9 || memcmp(s, "@RELOAD", 7) != 0 || s[8] != '@' || s[7] < '0' || s[7] > '4')
        return false;
    *variant = (unsigned)(s[7] - '0');
    return true;
}

static void
open_conn(const uint8_t *script, size_t len, h2o_accept_ctx_t *actx)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
        abort();
    static uint8_t out_bufs[MAX_CONNS][OUT_CAP];
    conn *c = &conns[nconns];
    memset(c, 0, sizeof(*c));
    c->out = out_bufs[nconns++];
    c->fd = sv[0];
    c->script = substitute(script, len, &c->wlen);
    c->wbuf = c->script;
    c->is_h2 = c->wlen >= 3 && memcmp(c->script, "PRI", 3) == 0;
    c->head_seen = memmem(c->script, c->wlen, "HEAD", 4) != NULL;
    /* h2o switches to HTTP/2 when a request starts with the preface, also
     * after HTTP/1 requests on the same connection */
    c->has_h2 = memmem(c->script, c->wlen, "PRI * HTTP/2", 12) != NULL;
    h2o_socket_t *sock = h2o_evloop_socket_create(loop, sv[1], 0);
    c->h2o_open = true;
    sock->on_close.cb = on_h2o_close;
    sock->on_close.data = c;
    h2o_accept(actx, sock);
}

/* ---- checking what the relay sent ---------------------------------------- */

static bool
is_tchar(uint8_t ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

/* Finds "\r\n" at or after p; returns its offset or SIZE_MAX. */
static size_t
find_crlf(const uint8_t *b, size_t len, size_t p)
{
    for (; p + 1 < len; p++)
        if (b[p] == '\r' && b[p + 1] == '\n')
            return p;
    return SIZE_MAX;
}

/* Feeds a framed-stream body piece to the decoder; fails on a decode error. */
static void
feed_frames(ptth_frame_decoder *d, const uint8_t *p, size_t n, size_t ci)
{
    while (n > 0) {
        ptth_frame_event ev;
        size_t used = ptth_frame_decode(d, p, n, &ev);
        if (ev.type == PTTH_FRAME_EV_ERROR) {
            fprintf(stderr, "fuzz_relay_http: frame error: %s\n", ev.error);
            fail("the relay sent a framed stream that does not decode", ci);
        }
        p += used;
        n -= used;
        if (ev.type == PTTH_FRAME_EV_NEED_MORE)
            break;
    }
}

/* Walks the responses on one connection. Incomplete tails are fine (the
 * connection may have been cut); malformed complete parts are not. */
static void
check_output(size_t ci)
{
    const conn *c = &conns[ci];
    const uint8_t *b = c->out;
    size_t len = c->out_len, p = 0;
    if (c->is_h2 && verbose) {
        /* frame by frame: type, flags, stream, length (HEADERS 1, DATA 0, RST_STREAM 3, GOAWAY 7) */
        for (size_t f = 0; f + 9 <= len;) {
            size_t flen = (size_t)b[f] << 16 | (size_t)b[f + 1] << 8 | b[f + 2];
            uint32_t stream =
                ((uint32_t)b[f + 5] << 24 | (uint32_t)b[f + 6] << 16 | (uint32_t)b[f + 7] << 8 | b[f + 8]) & 0x7fffffff;
            fprintf(stderr, "fuzz_relay_http: connection %zu: HTTP/2 frame type %u flags 0x%02x stream %u length %zu\n", ci,
                    b[f + 3], b[f + 4], stream, flen);
            if (b[f + 3] == 7 && f + 9 + 8 <= len)
                fprintf(stderr, "fuzz_relay_http:   GOAWAY error %u: %.*s\n", (unsigned)b[f + 16],
                        (int)(flen - 8 < len - f - 17 ? flen - 8 : len - f - 17), (const char *)b + f + 17);
            f += 9 + flen;
        }
    }
    if (c->is_h2 || c->out_overflow)
        return; /* HTTP/2 frames, or a tail we did not keep */
    while (p < len) {
        /* status line */
        static const char proto[] = "HTTP/1.1 ";
        if (len - p < 12)
            return;
        if (c->has_h2 && memcmp(b + p, proto, 9) != 0)
            return; /* HTTP/2 from here on */
        if (memcmp(b + p, proto, 9) != 0 || b[p + 9] < '1' || b[p + 9] > '5' || b[p + 10] < '0' || b[p + 10] > '9' ||
            b[p + 11] < '0' || b[p + 11] > '9')
            fail("a response does not start with a status line", ci);
        int status = (b[p + 9] - '0') * 100 + (b[p + 10] - '0') * 10 + (b[p + 11] - '0');

        size_t eol = find_crlf(b, len, p);
        if (eol == SIZE_MAX)
            return;
        p = eol + 2;
        /* headers */
        long long content_length = -1;
        bool chunked = false, framed = false;
        for (;;) {
            eol = find_crlf(b, len, p);
            if (eol == SIZE_MAX)
                return;
            if (eol == p) {
                p += 2;
                break;
            }
            size_t colon = p;
            while (colon < eol && is_tchar(b[colon]))
                colon++;
            if (colon == p || colon == eol || b[colon] != ':')
                fail("a response header line is not 'name: value'", ci);
            for (size_t k = colon + 1; k < eol; k++)
                if ((b[k] < 0x20 && b[k] != '\t') || b[k] == 0x7f)
                    fail("a control character in a response header value", ci);
            size_t nlen = colon - p, v = colon + 1;
            while (v < eol && (b[v] == ' ' || b[v] == '\t'))
                v++;
            if (nlen == 14 && strncasecmp((const char *)b + p, "content-length", 14) == 0) {
                content_length = 0;
                for (size_t k = v; k < eol; k++) {
                    if (b[k] < '0' || b[k] > '9' || content_length > (1LL << 40))
                        fail("a bad content-length", ci);
                    content_length = content_length * 10 + (b[k] - '0');
                }
            } else if (nlen == 17 && strncasecmp((const char *)b + p, "transfer-encoding", 17) == 0) {
                chunked = eol - v == 7 && strncasecmp((const char *)b + v, "chunked", 7) == 0;
            } else if (nlen == 17 && strncasecmp((const char *)b + p, "x-accel-buffering", 17) == 0) {
                framed = true;
            }
            p = eol + 2;
        }
        if (verbose) {
            /* the status and the first line of a short text body */
            size_t show = 0;
            while (p + show < len && show < 100 && b[p + show] >= 0x20 && b[p + show] < 0x7f)
                show++;
            fprintf(stderr, "fuzz_relay_http: connection %zu: response %d %.*s\n", ci, status, framed ? 0 : (int)show,
                    (const char *)b + p);
        }
        /* body */
        if (status == 101)
            return; /* upgraded (h2c): HTTP/2 from here on */
        if (status < 200 || status == 204 || status == 304)
            continue;
        if (c->head_seen)
            return; /* a HEAD response has no body: we cannot tell which one it was */
        if (chunked) {
            ptth_frame_decoder d;
            ptth_frame_decoder_init(&d, 0);
            for (;;) {
                eol = find_crlf(b, len, p);
                if (eol == SIZE_MAX)
                    return;
                size_t size = 0, k = p;
                for (; k < eol && k - p < 8; k++) {
                    uint8_t h = b[k];
                    int v = h >= '0' && h <= '9'   ? h - '0'
                            : h >= 'a' && h <= 'f' ? h - 'a' + 10
                            : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                                   : -1;
                    if (v < 0)
                        break;
                    size = size * 16 + (size_t)v;
                }
                if (k == p || k != eol)
                    fail("a bad chunk size line", ci);
                p = eol + 2;
                if (size == 0) {
                    if (len - p < 2)
                        return;
                    if (b[p] != '\r' || b[p + 1] != '\n')
                        fail("no CRLF after the last chunk", ci);
                    p += 2;
                    break;
                }
                if (len - p < size + 2) {
                    if (framed)
                        feed_frames(&d, b + p, len - p < size ? len - p : size, ci);
                    return;
                }
                if (framed)
                    feed_frames(&d, b + p, size, ci);
                if (framed && verbose)
                    fprintf(stderr, "fuzz_relay_http: connection %zu: %zu bytes of framed stream\n", ci, size);
                if (b[p + size] != '\r' || b[p + size + 1] != '\n')
                    fail("no CRLF after a chunk", ci);
                p += size + 2;
            }
        } else if (content_length >= 0) {
            if ((unsigned long long)(len - p) < (unsigned long long)content_length)
                return;
            if (framed) {
                ptth_frame_decoder d;
                ptth_frame_decoder_init(&d, 0);
                feed_frames(&d, b + p, (size_t)content_length, ci);
            }
            p += (size_t)content_length;
        } else {
            return; /* body until the connection closes */
        }
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static ptth_relay relay;
    static ptth_relay_config cfg; /* reload changes it: one per input */
    ptth_problems problems = {NULL, 0};
    load_config(0, &cfg);
    if (ptth_relay_init(&relay, &cfg, loop, &problems) != 0)
        abort();
    h2o_accept_ctx_t actx;
    memset(&actx, 0, sizeof(actx));
    actx.ctx = &relay.ctx;
    actx.hosts = relay.globalconf.hosts;

    nconns = 0;
    note_new_tunnel(NULL);
    memset(last_id, 'A', PTTH_ID_LEN);
    last_id[PTTH_ID_LEN] = '\0';

    /* one connection per script, each after the relay went quiet */
    static const char sep[] = "@NEXT@";
    const uint8_t *p = data, *end = data + size;
    for (int segments = 0; p <= end && nconns < MAX_CONNS && segments < 2 * MAX_CONNS; segments++) {
        const uint8_t *next = memmem(p, (size_t)(end - p), sep, sizeof(sep) - 1);
        const uint8_t *stop = next != NULL && nconns + 1 < MAX_CONNS ? next : end;
        note_new_tunnel(&relay);
        unsigned wait_s, variant;
        if (parse_wait(p, (size_t)(stop - p), &wait_s)) {
            clock_skew_ms += (int64_t)wait_s * 1000;
            run_until_quiet();
        } else if (parse_reload(p, (size_t)(stop - p), &variant)) {
            ptth_relay_config fresh;
            load_config(variant, &fresh);
            if (ptth_relay_reload(&relay, &fresh, &problems) != 0)
                fail("a valid configuration was refused on reload", 0);
            ptth_options_free(&ptth_relay_program, &fresh);
            run_until_quiet();
        } else if (nconns < MAX_CONNS) {
            open_conn(p, (size_t)(stop - p), &actx);
            run_until_quiet();
        }
        if (stop == end)
            break;
        p = stop + sizeof(sep) - 1;
    }

    /* the clients are done sending; then the relay shuts down */
    for (size_t i = 0; i < nconns; i++)
        shutdown(conns[i].fd, SHUT_WR);
    run_until_quiet();
    ptth_relay_end_all(&relay);
    run_until_quiet();
    for (size_t i = 0; i < nconns; i++)
        check_output(i);
    for (size_t i = 0; i < nconns; i++) {
        close(conns[i].fd);
        conns[i].fd = -1;
    }
    bool open = true;
    for (int turn = 0; turn < CLOSE_TURNS && open; turn++) {
        h2o_evloop_run(loop, 0);
        open = false;
        for (size_t i = 0; i < nconns; i++)
            open = open || conns[i].h2o_open;
    }
    for (size_t i = 0; i < nconns; i++)
        if (conns[i].h2o_open)
            fail("a connection is still open after the relay shut down and the peer closed", i);
    /* let h2o free what it closed */
    for (int turn = 0; turn < 4; turn++)
        h2o_evloop_run(loop, 0);
    if (relay.core.ntunnels != 0 || relay.nstreams != 0)
        fail("tunnels or streams left after the shutdown", 0);
    ptth_relay_dispose(&relay);
    /* h2o 2.2.5 (evloop) never frees the context's multithread queue:
     * h2o_multithread_destroy_queue() closes it but leaves the struct. The
     * relay makes one context per process, so only a harness that makes one
     * per input has to release it. */
    free(relay.ctx.queue);
    ptth_options_free(&ptth_relay_program, &cfg);
    ptth_problems_free(&problems);
    for (size_t i = 0; i < nconns; i++) {
        free(conns[i].script);
    }
    nconns = 0;
    return 0;
}
