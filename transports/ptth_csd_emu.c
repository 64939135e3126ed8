/*
 * ptth_csd_emu: emulates the drive side of the NVMe transport (SPEC §7). It
 * listens on a UNIX socket and carries out the nvme_csd relay commands that
 * ptth_server's emulator carrier sends there (docs/csd-emulator.md), opening
 * the TCP connections itself, so the NVMe transport can be run and tested
 * without a computational storage drive.
 *
 * One thread per client connection reads a request, carries it out
 * (csd_emu.c; it may block, e.g. a read waiting for data) and answers. The
 * NVMe transport opens two connections per relay, one for its blocking reads
 * and one for its writes and close, so one blocked read never holds up
 * anything else.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "csd_emu.h"
#include "csd_proto.h"
#include "log.h"
#include "nvme_cmd.h"
#include "options.h"
#include "sysutil.h"

#define PROG "ptth_csd_emu"

typedef struct emu_options {
    char *socket;
    uint64_t max_relays;
    uint64_t connect_timeout;
    uint64_t max_connections;
} emu_options;

static int
check_socket_path(const char *value, char *err, size_t errlen)
{
    size_t len = strlen(value);
    if (len == 0 || len >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        snprintf(err, errlen, "socket path '%s' must be 1 to 107 bytes", value);
        return -1;
    }
    return 0;
}

static const ptth_option option_table[] = {
    {"socket", PTTH_OPT_STRING, offsetof(emu_options, socket), "PATH",
     "UNIX socket to listen on: the DEVICE of nvme:DEVICE:PORT[@NODE] targets", NULL, 0, 0, check_socket_path},
    {"max-relays", PTTH_OPT_UINT, offsetof(emu_options, max_relays), "N", "relays (TCP connections) open at once", "1024", 1, 65535,
     NULL},
    {"connect-timeout", PTTH_OPT_UINT, offsetof(emu_options, connect_timeout), "SECS",
     "how long an open relay command waits for its TCP connection", "10", 1, 3600, NULL},
    {"max-connections", PTTH_OPT_UINT, offsetof(emu_options, max_connections), "N",
     "client connections at once (the NVMe transport uses two per relay)", "4096", 1, 1000000, NULL},
};

static void
validate(void *config, ptth_problems *problems)
{
    emu_options *o = config;
    if (o->socket == NULL)
        ptth_problems_add(problems, "--socket PATH is required");
}

static const ptth_program program = {
    .name = PROG,
    .version = PTTH_VERSION,
    .usage = "--socket PATH [OPTIONS]",
    .summary = "Emulates an NVMe computational storage drive running the nvme_csd relay firmware: listens on a UNIX socket\n"
               "for the relay commands of ptth_server's nvme:SOCKET:PORT[@NODE] targets and opens the TCP connections\n"
               "to NODE:PORT itself. See docs/csd-emulator.md.",
    .epilog = "Exit status: 0 after SIGINT/SIGTERM, 2 usage or configuration error, 1 other fatal error\n"
              "(for example the socket is served by another process).",
    .options = option_table,
    .n_options = sizeof(option_table) / sizeof(option_table[0]),
    .max_positional = 0,
    .validate = validate,
};

typedef struct conn {
    struct conn *next;
    pthread_t thread;
    int fd;
    uint64_t id;
    atomic_bool done;
    ptth_csd_emu *emu;
} conn;

/* Serves one client connection: handshake, then request/response until the
 * client goes away or sends something that cannot be framed. */
static void
serve(conn *c)
{
    struct timeval tv = {.tv_sec = 5};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char magic[PTTH_CSD_MAGIC_LEN];
    int r = ptth_csd_recv_exact(c->fd, magic, sizeof(magic));
    if (r == 0) {
        ptth_log_debug("event=client_closed_early client=%llu", (unsigned long long)c->id);
        return;
    }
    if (r < 0 || memcmp(magic, PTTH_CSD_MAGIC, PTTH_CSD_MAGIC_LEN) != 0) {
        ptth_log_warn("event=client_rejected client=%llu reason=%s", (unsigned long long)c->id,
                      r < 0 ? "no_handshake" : "bad_handshake");
        return;
    }
    if (ptth_csd_send_all(c->fd, PTTH_CSD_MAGIC, PTTH_CSD_MAGIC_LEN) != 0)
        return;
    tv.tv_sec = 0;
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));

    unsigned char *req = malloc(PTTH_CSD_REQ_BODY_MAX);
    unsigned char *out = malloc(PTTH_NVME_BUF);
    unsigned char *resp = malloc(4 + PTTH_CSD_RESP_BODY_MAX);
    if (req == NULL || out == NULL || resp == NULL)
        goto done;
    for (;;) {
        unsigned char hdr[4];
        r = ptth_csd_recv_exact(c->fd, hdr, 4);
        if (r <= 0)
            break;
        uint32_t len = ptth_get_le32(hdr);
        if (len < PTTH_CSD_CMD_LEN || len > PTTH_CSD_REQ_BODY_MAX) {
            ptth_log_warn("event=client_dropped client=%llu reason=bad_length length=%u", (unsigned long long)c->id, len);
            break;
        }
        if (ptth_csd_recv_exact(c->fd, req, len) <= 0)
            break;
        struct nvme_passthru_cmd cmd;
        const unsigned char *data;
        size_t data_len;
        if (ptth_csd_decode_request(req, len, &cmd, &data, &data_len) != 0)
            break;
        size_t out_len = 0;
        uint32_t result = 0;
        uint32_t status = ptth_csd_emu_execute(c->emu, c->id, &cmd, data, data_len, out, &out_len, &result);
        if (status != PTTH_NVME_SC_SUCCESS)
            ptth_log_debug("event=command_failed client=%llu cdw10=%u desc=%d status=0x%04x result=%u", (unsigned long long)c->id,
                           cmd.cdw10, (int)cmd.cdw13, status, result);
        int n = ptth_csd_encode_response(status, result, out, out_len, resp);
        if (n < 0 || ptth_csd_send_all(c->fd, resp, (size_t)n) != 0)
            break;
    }
done:
    free(req);
    free(out);
    free(resp);
}

static void *
conn_main(void *arg)
{
    conn *c = arg;
    ptth_log_debug("event=client_connected client=%llu", (unsigned long long)c->id);
    serve(c);
    ptth_csd_emu_drop_owner(c->emu, c->id);
    ptth_log_debug("event=client_closed client=%llu", (unsigned long long)c->id);
    atomic_store(&c->done, true);
    return NULL;
}

/* Joins finished connection threads; all of them (after shutting their
 * sockets down) when all is true. Returns how many are left. */
static size_t
reap(conn **list, bool all)
{
    size_t left = 0;
    for (conn **pp = list; *pp != NULL;) {
        conn *c = *pp;
        if (all)
            shutdown(c->fd, SHUT_RDWR);
        if (all || atomic_load(&c->done)) {
            pthread_join(c->thread, NULL);
            close(c->fd);
            *pp = c->next;
            free(c);
        } else {
            left++;
            pp = &c->next;
        }
    }
    return left;
}

/* Binds the socket, replacing a stale socket file left by a dead emulator but
 * never a live one or a file that is not a socket. */
static int
listen_on(const char *path)
{
    struct sockaddr_un sun;
    if (ptth_csd_sockaddr(path, &sun) != 0) { /* --socket was checked: cannot happen */
        fprintf(stderr, PROG ": socket path '%s' too long\n", path);
        return -ENAMETOOLONG;
    }
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            fprintf(stderr, PROG ": %s exists and is not a socket; not replacing it\n", path);
            return -EEXIST;
        }
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe >= 0 && connect(probe, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
            close(probe);
            fprintf(stderr, PROG ": socket %s is served by another process\n", path);
            return -EADDRINUSE;
        }
        if (probe >= 0)
            close(probe);
        unlink(path);
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0 || listen(fd, 256) != 0) {
        int e = errno;
        fprintf(stderr, PROG ": cannot listen on %s: %s\n", path, strerror(e));
        if (fd >= 0)
            close(fd);
        return -e;
    }
    return fd;
}

int
main(int argc, char **argv)
{
    emu_options opts;
    ptth_cli cli;
    ptth_parse_result pr = ptth_options_parse(&program, &opts, &cli, argc, argv);
    if (pr != PTTH_PARSE_RUN) {
        ptth_options_free(&program, &opts);
        ptth_cli_free(&cli);
        return pr == PTTH_PARSE_EXIT_OK ? 0 : 2;
    }
    (void)ptth_raise_nofile_limit();

    /* Signals: INT/TERM through a signalfd in the main loop; blocked in every
     * thread (they inherit this mask). SIGPIPE ignored (sends use
     * MSG_NOSIGNAL anyway). */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    int sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);

    int status = 1;
    int lfd = -1;
    ptth_csd_emu *emu = NULL;
    conn *conns = NULL;
    if (sfd < 0) {
        fprintf(stderr, PROG ": signalfd: %s\n", strerror(errno));
        goto out;
    }
    ptth_csd_emu_config ecfg = {.max_relays = (unsigned)opts.max_relays,
                                .connect_timeout_ms = (unsigned)(opts.connect_timeout * 1000)};
    emu = ptth_csd_emu_new(&ecfg);
    if (emu == NULL) {
        fprintf(stderr, PROG ": out of memory\n");
        goto out;
    }
    lfd = listen_on(opts.socket);
    if (lfd < 0)
        goto out;
    char qpath[300];
    ptth_log_info("event=listening socket=%s max_relays=%llu", ptth_log_quote(qpath, sizeof(qpath), opts.socket),
                  (unsigned long long)opts.max_relays);

    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    uint64_t next_id = 1;
    size_t live = 0;
    for (;;) {
        struct pollfd p[2] = {{.fd = lfd, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
        int n = poll(p, 2, 1000);
        if (n < 0 && errno != EINTR) {
            fprintf(stderr, PROG ": poll: %s\n", strerror(errno));
            break;
        }
        if (n > 0 && p[1].revents != 0) {
            struct signalfd_siginfo si;
            (void)!read(sfd, &si, sizeof(si));
            ptth_log_info("event=shutdown signal=%u relays=%u", si.ssi_signo, ptth_csd_emu_open_relays(emu));
            status = 0;
            break;
        }
        live = reap(&conns, false);
        if (n <= 0 || p[0].revents == 0)
            continue;
        int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                ptth_log_warn("event=accept_failed error=\"%s\"", strerror(errno));
            if (errno == EMFILE || errno == ENFILE)
                usleep(100 * 1000);
            continue;
        }
        if (live >= opts.max_connections) {
            ptth_log_warn("event=client_refused reason=max_connections max_connections=%llu",
                          (unsigned long long)opts.max_connections);
            close(cfd);
            continue;
        }
        conn *c = calloc(1, sizeof(*c));
        if (c == NULL) {
            close(cfd);
            continue;
        }
        c->fd = cfd;
        c->id = next_id++;
        c->emu = emu;
        atomic_init(&c->done, false);
        int rc = pthread_create(&c->thread, &attr, conn_main, c);
        if (rc != 0) {
            ptth_log_warn("event=client_refused reason=no_thread error=\"%s\"", strerror(rc));
            close(cfd);
            free(c);
            continue;
        }
        c->next = conns;
        conns = c;
        live++;
    }
    pthread_attr_destroy(&attr);

out:
    if (emu != NULL)
        ptth_csd_emu_shutdown(emu);
    reap(&conns, true);
    ptth_csd_emu_free(emu);
    if (lfd >= 0) {
        close(lfd);
        unlink(opts.socket);
    }
    if (sfd >= 0)
        close(sfd);
    ptth_options_free(&program, &opts);
    ptth_cli_free(&cli);
    return status;
}
