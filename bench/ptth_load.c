/*
 * ptth_load: the load tool of the benchmark (bench/run, docs/performance.md).
 * This file is its command line; the modes are in bench/load_*.c, the shared
 * helpers and the contract of every mode in load.h.
 *
 * Two servers and four clients, one per mode:
 *   sink      counts the bytes of each connection; when the client half-closes
 *             it answers the count as 8 bytes (big-endian) and closes.
 *   echo      writes back what it reads; when the client half-closes it
 *             finishes writing, half-closes too and closes.
 *   send      one connection: N bytes with large writes, half-close, read the
 *             count back and check it; prints MB/s (10^6 bytes per second).
 *   pingpong  one connection: M round trips of a small message against echo;
 *             prints latency percentiles in microseconds.
 *   conns     N connections, each one round trip against echo, at most P of
 *             them setting up at once; prints the set-up rate, successes and
 *             failures with their reasons. --hold keeps them open afterwards
 *             (so that the memory of N open tunnels can be measured).
 *   rr        N connections doing ping-pong against echo at once for T
 *             seconds (request/response traffic); prints the round trips per
 *             second of all of them together and latency percentiles.
 *   udpecho, udprr, udprate   the same for UDP (bench/load_udp.c): an echo
 *             server, round trips of N peers, loss at a fixed offered rate.
 * conns --socks NAME does a SOCKS5 CONNECT to NAME first (bench/load_socks.c).
 *
 * Output: a human line on stderr and, on stdout, one line of key=value fields
 * per result (the first field is mode=...), which bench/run parses. Every wait
 * is bounded by --timeout.
 */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "load.h"
#include "sysutil.h"

static void
usage(FILE *f)
{
    fprintf(f, "Usage: " LOAD_PROG " MODE [OPTIONS]\n"
               "\n"
               "The benchmark's load tool (see docs/performance.md). Modes:\n"
               "  sink      server: counts each connection's bytes; when the client half-closes,\n"
               "            answers the count as 8 bytes (big-endian) and closes\n"
               "  echo      server: writes back what it reads; on half-close finishes and half-closes\n"
               "  send      client: sends --bytes with large writes, half-closes, reads the count\n"
               "            back and checks it; prints MB/s (10^6 bytes/s, connect to count received)\n"
               "  pingpong  client: --count round trips of --size bytes against echo over one\n"
               "            connection; prints p50/p90/p99/max in microseconds\n"
               "  conns     client: --count connections, each one round trip of --size bytes against\n"
               "            echo, at most --parallel setting up at once; prints the set-up rate per\n"
               "            second, successes, and failures with their reasons\n"
               "  rr        client: --connections connections doing round trips of --size bytes\n"
               "            against echo at once, each sending its next message when the echo of\n"
               "            the last is back, for --duration seconds; prints the round trips per\n"
               "            second of all connections together and p50/p90/p99/max in microseconds\n"
               "  udpecho   server: one UDP socket sending every datagram back to its sender\n"
               "  udprr     client: --connections UDP peers (sockets) doing round trips of --size bytes\n"
               "            (at least 12) against udpecho for --duration seconds; a datagram without\n"
               "            an echo for 250 ms is lost and the peer goes on; prints round trips/s,\n"
               "            lost, p50/p90/p99/max in microseconds\n"
               "  udprate   client: --rate datagrams/s of --size bytes over --connections peers for\n"
               "            --duration seconds, paced, echoes read meanwhile, then the last echoes\n"
               "            waited for (until 0.5 s without one); prints sent, received, lost, loss_pct\n"
               "\n"
               "Options:\n"
               "  --listen ADDR:PORT   (sink, echo, udpecho) address to bind, port 0 = any; default 127.0.0.1:0\n"
               "  --connect ADDR:PORT  (send, pingpong, conns, rr, udprr, udprate) where to connect\n"
               "  --bytes N            (send) bytes to send; default 1G\n"
               "  --write-size N       (send) bytes per write(); default 1M\n"
               "  --count N            (pingpong) round trips, default 10000; (conns) connections, default 1000\n"
               "  --size N             (pingpong, rr, udprr) message bytes, default 64; (conns) default 16;\n"
               "                       (udprate) default 512; at most 65536 (UDP: 12 to 65507)\n"
               "  --warmup N           (pingpong) round trips before measuring, default 100; (rr) round trips\n"
               "                       of each connection before the clock starts, default 10\n"
               "  --parallel N         (conns) connections setting up at once, default 256\n"
               "  --connections N      (rr) connections, default 50; (udprr, udprate) UDP peers, default 1\n"
               "  --duration SECS      (rr, udprr) how long the measured round trips go on; (udprate)\n"
               "                       how long datagrams are sent; default 10\n"
               "  --rate N             (udprate) datagrams per second, all peers together; default 10000\n"
               "  --socks NAME         (conns) each connection first does a SOCKS5 CONNECT (no\n"
               "                       authentication) to the domain name NAME, e.g. echo.bench\n"
               "  --hold SECS          (conns) after the round trips keep every connection open until\n"
               "                       stdin reaches end of file or SECS pass; default 0 (close at once)\n"
               "  --timeout SECS       bound of every wait: a connect, a read or write making no progress,\n"
               "                       one connection's round trip (conns, rr); servers close connections\n"
               "                       idle this long; default 30\n"
               "  --backlog N          (sink, echo) listen backlog, default 4096\n"
               "  --quiet              no human lines on stderr, only the key=value lines on stdout\n"
               "  -h, --help           this text\n"
               "\n"
               "Sizes take a suffix k, M or G (powers of 1024). Every result is one stdout line of\n"
               "key=value fields starting with mode=; servers print mode=... event=listening addr=ADDR:PORT\n"
               "when ready and their totals when SIGINT/SIGTERM stops them (exit 0).\n"
               "Exit codes: 0 success, 1 a measurement failed (count mismatch, timeout, a failed\n"
               "connection), 2 usage error.\n");
}

static bool
is_client(load_mode m)
{
    return m == MODE_SEND || m == MODE_PINGPONG || m == MODE_CONNS || m == MODE_RR || m == MODE_UDPRR || m == MODE_UDPRATE;
}

/* Fills load_cfg; returns -1 to go on, or the exit code (0 after --help, 2 on
 * a usage error, with a message). */
static int
parse_args(int argc, char **argv)
{
    static const struct {
        const char *name;
        load_mode m;
    } modes[] = {{"sink", MODE_SINK},         {"echo", MODE_ECHO},   {"send", MODE_SEND},
                 {"pingpong", MODE_PINGPONG}, {"conns", MODE_CONNS}, {"rr", MODE_RR},
                 {"udpecho", MODE_UDPECHO},   {"udprr", MODE_UDPRR}, {"udprate", MODE_UDPRATE}};
    enum {
        O_LISTEN = 256,
        O_CONNECT,
        O_BYTES,
        O_WSIZE,
        O_COUNT,
        O_SIZE,
        O_WARMUP,
        O_PARALLEL,
        O_CONNECTIONS,
        O_DURATION,
        O_HOLD,
        O_TIMEOUT,
        O_BACKLOG,
        O_RATE,
        O_SOCKS,
        O_QUIET
    };
    static const struct option longopts[] = {{"listen", required_argument, NULL, O_LISTEN},
                                             {"connect", required_argument, NULL, O_CONNECT},
                                             {"bytes", required_argument, NULL, O_BYTES},
                                             {"write-size", required_argument, NULL, O_WSIZE},
                                             {"count", required_argument, NULL, O_COUNT},
                                             {"size", required_argument, NULL, O_SIZE},
                                             {"warmup", required_argument, NULL, O_WARMUP},
                                             {"parallel", required_argument, NULL, O_PARALLEL},
                                             {"connections", required_argument, NULL, O_CONNECTIONS},
                                             {"duration", required_argument, NULL, O_DURATION},
                                             {"hold", required_argument, NULL, O_HOLD},
                                             {"timeout", required_argument, NULL, O_TIMEOUT},
                                             {"backlog", required_argument, NULL, O_BACKLOG},
                                             {"rate", required_argument, NULL, O_RATE},
                                             {"socks", required_argument, NULL, O_SOCKS},
                                             {"quiet", no_argument, NULL, O_QUIET},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    static const char mode_list[] = "sink, echo, send, pingpong, conns, rr, udpecho, udprr or udprate";
    bool count_set = false, size_set = false, warmup_set = false, connections_set = false;
    load_settings *s = &load_cfg;
    *s = (load_settings){.listen = "127.0.0.1:0",
                         .bytes = 1ull << 30,
                         .write_size = 1u << 20,
                         .warmup = 100,
                         .parallel = 256,
                         .connections = 50,
                         .duration = 10,
                         .timeout = 30,
                         .backlog = 4096,
                         .rate = 10000};
    if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc < 2 || argv[1][0] == '-') {
        load_fail("missing MODE (%s); see --help", mode_list);
        return 2;
    }
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
        if (strcmp(argv[1], modes[i].name) == 0) {
            s->mode = modes[i].m;
            s->mode_name = modes[i].name;
        }
    if (s->mode == MODE_NONE) {
        load_fail("unknown mode '%s' (%s)", argv[1], mode_list);
        return 2;
    }
    optind = 2;
    opterr = 0;
    int o;
    while ((o = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        uint64_t *target = NULL, lo = 0, hi = UINT64_MAX;
        switch (o) {
        case 'h':
            usage(stdout);
            return 0;
        case O_LISTEN:
            s->listen = optarg;
            continue;
        case O_CONNECT:
            s->connect = optarg;
            continue;
        case O_QUIET:
            s->quiet = true;
            continue;
        case O_SOCKS:
            if (strlen(optarg) == 0 || strlen(optarg) > 255) {
                load_fail("bad value '%s' for --socks (a domain name of 1 to 255 bytes, e.g. echo.bench)", optarg);
                return 2;
            }
            s->socks = optarg;
            continue;
        case O_RATE:
            target = &s->rate, lo = 1, hi = LOAD_MAX_COUNT;
            break;
        case O_BYTES:
            target = &s->bytes, lo = 1, hi = 1ull << 50;
            break;
        case O_WSIZE:
            target = &s->write_size, lo = 1, hi = 64u << 20;
            break;
        case O_COUNT:
            target = &s->count, lo = 1, hi = LOAD_MAX_COUNT, count_set = true;
            break;
        case O_SIZE:
            target = &s->size, lo = 1, hi = LOAD_MAX_SIZE, size_set = true;
            break;
        case O_WARMUP:
            target = &s->warmup, hi = LOAD_MAX_COUNT, warmup_set = true;
            break;
        case O_PARALLEL:
            target = &s->parallel, lo = 1, hi = LOAD_MAX_COUNT;
            break;
        case O_CONNECTIONS:
            target = &s->connections, lo = 1, hi = 100000, connections_set = true;
            break;
        case O_DURATION:
            target = &s->duration, lo = 1, hi = 86400;
            break;
        case O_HOLD:
            target = &s->hold, hi = 86400;
            break;
        case O_TIMEOUT:
            target = &s->timeout, lo = 1, hi = 86400;
            break;
        case O_BACKLOG:
            target = &s->backlog, lo = 1, hi = 65535;
            break;
        case ':':
            load_fail("option %s needs a value", argv[optind - 1]);
            return 2;
        default:
            load_fail("unknown option '%s'; see --help", argv[optind - 1]);
            return 2;
        }
        uint64_t v;
        if (load_parse_size(optarg, &v) != 0 || v < lo || v > hi) {
            load_fail("bad value '%s' for %s (a number from %" PRIu64 " to %" PRIu64 ", suffix k/M/G allowed)", optarg,
                      argv[optind - 1], lo, hi);
            return 2;
        }
        *target = v;
    }
    if (optind < argc) {
        load_fail("unexpected argument '%s'", argv[optind]);
        return 2;
    }
    if (!count_set)
        s->count = s->mode == MODE_CONNS ? 1000 : 10000;
    bool udp = s->mode == MODE_UDPRR || s->mode == MODE_UDPRATE;
    if (!size_set)
        s->size = s->mode == MODE_CONNS ? 16 : s->mode == MODE_UDPRATE ? 512 : 64;
    if (!warmup_set && (s->mode == MODE_RR || s->mode == MODE_UDPRR))
        s->warmup = 10;
    if (!connections_set && udp)
        s->connections = 1;
    if (udp && (s->size < 12 || s->size > 65507)) {
        load_fail("bad value %" PRIu64 " for --size: a UDP datagram of this tool has 12 to 65507 bytes", s->size);
        return 2;
    }
    if (s->mode == MODE_UDPRATE && s->rate * s->duration > 100000000) {
        load_fail("--rate x --duration is at most 100000000 datagrams");
        return 2;
    }
    if (is_client(s->mode) && s->connect == NULL) {
        load_fail("--connect ADDR:PORT is required");
        return 2;
    }
    return -1;
}

int
main(int argc, char **argv)
{
    int rc = parse_args(argc, argv);
    if (rc >= 0)
        return rc;
    bool client = is_client(load_cfg.mode);
    const char *addr = client ? load_cfg.connect : load_cfg.listen;
    struct sockaddr_storage ss;
    socklen_t sslen;
    if (load_resolve(addr, !client, &ss, &sslen) != 0) {
        load_fail("bad address '%s' (want IP:PORT or [IPv6]:PORT, numeric)", addr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    ptth_raise_nofile_limit();
    switch (load_cfg.mode) {
    case MODE_SEND:
        return load_run_send(&ss, sslen);
    case MODE_PINGPONG:
        return load_run_pingpong(&ss, sslen);
    case MODE_CONNS:
        return load_run_conns(&ss, sslen);
    case MODE_RR:
        return load_run_rr(&ss, sslen);
    case MODE_UDPECHO:
        return load_run_udpecho(&ss, sslen);
    case MODE_UDPRR:
        return load_run_udprr(&ss, sslen);
    case MODE_UDPRATE:
        return load_run_udprate(&ss, sslen);
    default:
        return load_run_server(&ss, sslen);
    }
}
