/*
 * ptth_load's shared parts (bench/ptth_load.c is the entry point): the parsed
 * settings, the human and failure messages, the blocking-socket helpers of the
 * one-connection clients, percentiles, the failure tally of the
 * many-connection clients, and one entry point per mode.
 *
 * Output contract of every mode: human lines on stderr (none with --quiet),
 * one stdout line of key=value fields per result, starting with mode=NAME;
 * event lines (mode=NAME event=...) are progress, not results. A mode's entry
 * point returns the process exit code: 0 success, 1 a measurement failed.
 */
#ifndef PTTH_BENCH_LOAD_H
#define PTTH_BENCH_LOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define LOAD_PROG "ptth_load"
#define LOAD_MAX_COUNT 1000000
#define LOAD_MAX_SIZE 65536

typedef enum load_mode {
    MODE_NONE,
    MODE_SINK,
    MODE_ECHO,
    MODE_SEND,
    MODE_PINGPONG,
    MODE_CONNS,
    MODE_RR,
    MODE_UDPECHO,
    MODE_UDPRR,
    MODE_UDPRATE
} load_mode;

typedef struct load_settings {
    load_mode mode;
    const char *mode_name;
    const char *listen;
    const char *connect;
    uint64_t bytes;
    uint64_t write_size;
    uint64_t count;
    uint64_t size;
    uint64_t warmup;
    uint64_t parallel;
    uint64_t connections;
    uint64_t duration;
    uint64_t hold;
    uint64_t timeout;
    uint64_t backlog;
    uint64_t rate;     /* udprate: datagrams per second, all peers together */
    const char *socks; /* conns: a SOCKS5 CONNECT to this domain name first */
    bool quiet;
} load_settings;

/* Set once by the argument parser, read by every mode. */
extern load_settings load_cfg;

/* A human line on stderr, "ptth_load MODE: ...", unless --quiet. */
void load_human(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A failure on stderr, printed even with --quiet. */
void load_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* CLOCK_MONOTONIC in microseconds. */
long long load_now_us(void);

/* A decimal number with an optional k/M/G suffix (powers of 1024); 0 or -1. */
int load_parse_size(const char *s, uint64_t *out);
/* A numeric "HOST:PORT" / "[V6]:PORT" into a socket address; 0 or -1.
 * allow_zero accepts port 0 (servers: any port). */
int load_resolve(const char *value, bool allow_zero, struct sockaddr_storage *ss, socklen_t *len);

/* A connected blocking socket with TCP_NODELAY and SO_SNDTIMEO/SO_RCVTIMEO of
 * --timeout, the connect itself bounded by --timeout; -1 with a message. */
int load_connect_blocking(const struct sockaddr_storage *ss, socklen_t len);
/* All of buf on a blocking socket; false with a message ("what: ...") on an
 * error or a write without progress for --timeout. */
bool load_write_all(int fd, const char *buf, size_t len, const char *what);
/* Exactly len bytes from a blocking socket; false with a message on an error,
 * end of stream or --timeout without progress. */
bool load_read_exactly(int fd, char *buf, size_t len, const char *what);

/* qsort comparator of long long, and the nearest-rank percentile (q in 0..1)
 * of a sorted array (0 when empty). */
int load_cmp_ll(const void *a, const void *b);
long long load_percentile(const long long *v, size_t n, double q);

/* Failures of a many-connection client, counted by (stage, errno). stage is a
 * constant string (connect, write, read, eof, mismatch, timeout); err is 0
 * when the stage says it all. Past LOAD_MAX_REASONS distinct pairs the last
 * entry takes the rest. */
#define LOAD_MAX_REASONS 32
typedef struct load_reason {
    const char *stage;
    int err;
    uint64_t count;
} load_reason;
typedef struct load_reasons {
    load_reason r[LOAD_MAX_REASONS];
    size_t n;
} load_reasons;
void load_reasons_add(load_reasons *rs, const char *stage, int err);
/* One human line and one "mode=NAME event=failure stage=S errno=E count=N"
 * line per entry. */
void load_reasons_print(const load_reasons *rs);

/* The client half of a SOCKS5 CONNECT to the domain name target (conns
 * --socks), driven on a non-blocking socket: call it when the socket is
 * connected and then at each readiness event it asked for. */
typedef struct load_socks {
    uint8_t step;
    uint16_t off, need;
    uint8_t buf[5];
} load_socks;
enum { LOAD_SOCKS_DONE, LOAD_SOCKS_WANT_READ, LOAD_SOCKS_WANT_WRITE, LOAD_SOCKS_FAILED };
/* On LOAD_SOCKS_FAILED: *stage a constant (socks_write, socks_read,
 * socks_eof, socks_method, socks_reply, socks_reply_N for reply code N),
 * *err an errno or 0. */
int load_socks_progress(int fd, load_socks *st, const char *target, const char **stage, int *err);

/* The modes (bench/load_*.c). */
int load_run_server(const struct sockaddr_storage *ss, socklen_t sslen); /* sink, echo */
int load_run_send(const struct sockaddr_storage *ss, socklen_t sslen);
int load_run_pingpong(const struct sockaddr_storage *ss, socklen_t sslen);
int load_run_conns(const struct sockaddr_storage *ss, socklen_t sslen);
int load_run_rr(const struct sockaddr_storage *ss, socklen_t sslen);
int load_run_udpecho(const struct sockaddr_storage *ss, socklen_t sslen); /* bench/load_udp.c */
int load_run_udprr(const struct sockaddr_storage *ss, socklen_t sslen);
int load_run_udprate(const struct sockaddr_storage *ss, socklen_t sslen);

#endif
