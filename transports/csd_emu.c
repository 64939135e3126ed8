/*
 * csd_emu.c: the drive side of the nvme_csd relay commands (see csd_emu.h).
 *
 * A relay is a blocking TCP socket to the backend plus a reference count:
 * a transfer takes a reference for as long as it uses the socket, close
 * removes the relay from the table, marks it closed and shuts the socket down
 * (which wakes a transfer blocked in recv or send), and the socket is closed
 * by whoever drops the last reference. So a read that blocks for an hour on
 * one relay never stops another relay's commands, and a close never pulls a
 * socket out from under a running transfer.
 *
 * Descriptors are (generation << 16 | slot): small, positive, and a stale
 * descriptor of a reused slot does not reach the new relay.
 */
#include "csd_emu.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "nvme_cmd.h"
#include "sysutil.h"

typedef struct relay {
    int32_t desc;
    int fd;
    uint64_t owner;
    atomic_int refs;
    atomic_bool closed;
    bool ready; /* connected; set under the table lock */
    char node[PTTH_NVME_FIELD];
    char service[PTTH_NVME_FIELD];
    atomic_ullong bytes_to_backend;
    atomic_ullong bytes_from_backend;
    long long opened_ms;
} relay;

struct ptth_csd_emu {
    pthread_mutex_t lock;
    relay **slots;
    uint16_t *gens;
    unsigned max;
    unsigned count;
    unsigned connect_timeout_ms;
    int wake_rd, wake_wr; /* readable once shutdown() ran: aborts connects */
    atomic_bool stopping;
};

ptth_csd_emu *
ptth_csd_emu_new(const ptth_csd_emu_config *cfg)
{
    if (cfg->max_relays == 0 || cfg->max_relays > 65535)
        return NULL;
    ptth_csd_emu *emu = calloc(1, sizeof(*emu));
    if (emu == NULL)
        return NULL;
    emu->max = cfg->max_relays;
    emu->connect_timeout_ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms : 10000;
    emu->slots = calloc(emu->max, sizeof(*emu->slots));
    emu->gens = calloc(emu->max, sizeof(*emu->gens));
    int p[2];
    if (emu->slots == NULL || emu->gens == NULL || pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0) {
        free(emu->slots);
        free(emu->gens);
        free(emu);
        return NULL;
    }
    emu->wake_rd = p[0];
    emu->wake_wr = p[1];
    pthread_mutex_init(&emu->lock, NULL);
    atomic_init(&emu->stopping, false);
    return emu;
}

static void
relay_unref(relay *r)
{
    if (atomic_fetch_sub(&r->refs, 1) == 1) {
        if (r->fd >= 0)
            close(r->fd);
        free(r);
    }
}

/* The ready relay with this descriptor, with a reference taken; NULL when
 * there is none. */
static relay *
lookup(ptth_csd_emu *emu, int32_t desc)
{
    if (desc <= 0)
        return NULL;
    unsigned slot = (unsigned)desc & 0xffff;
    relay *r = NULL;
    pthread_mutex_lock(&emu->lock);
    if (slot < emu->max && emu->slots[slot] != NULL && emu->slots[slot]->desc == desc && emu->slots[slot]->ready) {
        r = emu->slots[slot];
        atomic_fetch_add(&r->refs, 1);
    }
    pthread_mutex_unlock(&emu->lock);
    return r;
}

/* Takes the relay out of the table (caller holds the lock); the caller then
 * calls finish_close() without the lock. */
static relay *
detach_locked(ptth_csd_emu *emu, unsigned slot)
{
    relay *r = emu->slots[slot];
    emu->slots[slot] = NULL;
    emu->count--;
    return r;
}

static void
finish_close(relay *r, const char *reason)
{
    atomic_store(&r->closed, true);
    if (r->fd >= 0)
        shutdown(r->fd, SHUT_RDWR);
    char qnode[300], qservice[300];
    ptth_log_info("event=relay_close desc=%d node=%s service=%s bytes_to_backend=%llu bytes_from_backend=%llu duration_ms=%lld "
                  "reason=%s",
                  (int)r->desc, ptth_log_quote(qnode, sizeof(qnode), r->node),
                  ptth_log_quote(qservice, sizeof(qservice), r->service), (unsigned long long)atomic_load(&r->bytes_to_backend),
                  (unsigned long long)atomic_load(&r->bytes_from_backend), ptth_now_ms() - r->opened_ms, reason);
    relay_unref(r);
}

/* A NUL-terminated, non-empty string of printable characters in a 256-byte
 * field. */
static bool
field_ok(const char *f)
{
    size_t n = strnlen(f, PTTH_NVME_FIELD);
    if (n == 0 || n == PTTH_NVME_FIELD)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)f[i] <= 0x20 || (unsigned char)f[i] == 0x7f)
            return false;
    return true;
}

/* Blocking-with-timeout connect to node:service; aborts when the emulator
 * shuts down. Returns the connected (blocking) socket or -errno; *gai set to
 * the getaddrinfo error when it was resolution that failed. */
static int
connect_backend(ptth_csd_emu *emu, const char *node, const char *service, int *gai)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    *gai = getaddrinfo(node, service, &hints, &res);
    if (*gai != 0)
        return -EHOSTUNREACH;
    int last = ECONNREFUSED;
    long long deadline = ptth_now_ms() + emu->connect_timeout_ms;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            last = errno;
            continue;
        }
        int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
        if (rc != 0 && errno == EINPROGRESS) {
            for (;;) {
                long long left = deadline - ptth_now_ms();
                if (left <= 0) {
                    errno = ETIMEDOUT;
                    break;
                }
                struct pollfd p[2] = {{.fd = fd, .events = POLLOUT}, {.fd = emu->wake_rd, .events = POLLIN}};
                int n = poll(p, 2, (int)left);
                if (n < 0 && errno == EINTR)
                    continue;
                if (p[1].revents != 0) {
                    errno = ECANCELED;
                    break;
                }
                if (n > 0 && p[0].revents != 0) {
                    int soerr = 0;
                    socklen_t len = sizeof(soerr);
                    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
                    if (soerr == 0)
                        rc = 0;
                    errno = soerr;
                    break;
                }
            }
        }
        if (rc == 0) {
            freeaddrinfo(res);
            int flags = fcntl(fd, F_GETFL);
            fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            return fd;
        }
        last = errno;
        close(fd);
        if (last == ECANCELED || last == ETIMEDOUT)
            break;
    }
    freeaddrinfo(res);
    return -last;
}

static uint32_t
do_open(ptth_csd_emu *emu, uint64_t owner, const struct nvme_passthru_cmd *cmd, const unsigned char *in, size_t in_len,
        unsigned char *out, size_t *out_len, uint32_t *result)
{
    if (cmd->data_len != PTTH_NVME_BUF)
        return PTTH_NVME_SC_INVALID_FIELD;
    char fields[PTTH_NVME_OPEN_DATA];
    memset(fields, 0, sizeof(fields));
    memcpy(fields, in, in_len < sizeof(fields) ? in_len : sizeof(fields));
    const char *node = fields, *service = fields + PTTH_NVME_FIELD;
    if (!field_ok(node) || !field_ok(service))
        return PTTH_NVME_SC_INVALID_FIELD;

    relay *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return PTTH_NVME_SC_INTERNAL;
    r->fd = -1;
    r->owner = owner;
    atomic_init(&r->refs, 1);
    atomic_init(&r->closed, false);
    memcpy(r->node, node, strlen(node) + 1);
    memcpy(r->service, service, strlen(service) + 1);

    /* Reserve a slot first, so a full table is refused before connecting. */
    unsigned slot = 0;
    pthread_mutex_lock(&emu->lock);
    if (atomic_load(&emu->stopping)) {
        pthread_mutex_unlock(&emu->lock);
        free(r);
        return PTTH_NVME_SC_INTERNAL;
    }
    if (emu->count >= emu->max) {
        pthread_mutex_unlock(&emu->lock);
        free(r);
        ptth_log_warn("event=relay_refused reason=too_many max_relays=%u", emu->max);
        return PTTH_NVME_SC_TOO_MANY;
    }
    while (emu->slots[slot] != NULL)
        slot++;
    emu->gens[slot] = (uint16_t)(emu->gens[slot] % 32767 + 1);
    r->desc = (int32_t)((uint32_t)emu->gens[slot] << 16 | slot);
    emu->slots[slot] = r;
    emu->count++;
    pthread_mutex_unlock(&emu->lock);

    int gai = 0;
    int fd = connect_backend(emu, node, service, &gai);
    char qnode[300], qservice[300];
    ptth_log_quote(qservice, sizeof(qservice), service);
    if (fd < 0) {
        pthread_mutex_lock(&emu->lock);
        detach_locked(emu, slot);
        pthread_mutex_unlock(&emu->lock);
        free(r);
        if (gai != 0) {
            ptth_log_warn("event=relay_open_failed node=%s service=%s error=\"%s\"", ptth_log_quote(qnode, sizeof(qnode), node),
                          qservice, gai_strerror(gai));
            *result = EHOSTUNREACH;
            return PTTH_NVME_SC_RESOLVE_FAILED;
        }
        ptth_log_warn("event=relay_open_failed node=%s service=%s error=\"%s\"", ptth_log_quote(qnode, sizeof(qnode), node),
                      qservice, strerror(-fd));
        *result = (uint32_t)-fd;
        return PTTH_NVME_SC_CONNECT_FAILED;
    }
    pthread_mutex_lock(&emu->lock);
    r->fd = fd;
    r->opened_ms = ptth_now_ms();
    r->ready = true;
    bool stopping = atomic_load(&emu->stopping);
    if (stopping)
        detach_locked(emu, slot);
    pthread_mutex_unlock(&emu->lock);
    if (stopping) {
        finish_close(r, "shutdown");
        return PTTH_NVME_SC_INTERNAL;
    }
    ptth_log_info("event=relay_open desc=%d node=%s service=%s", (int)r->desc, ptth_log_quote(qnode, sizeof(qnode), node),
                  qservice);
    ptth_put_le32(out, (uint32_t)r->desc);
    *out_len = 4;
    return PTTH_NVME_SC_SUCCESS;
}

static uint32_t
do_write(relay *r, const struct nvme_passthru_cmd *cmd, const unsigned char *in, size_t in_len, uint32_t *result)
{
    size_t len = cmd->cdw12;
    if (len == 0 || len > PTTH_NVME_WRITE_MAX || len > in_len)
        return PTTH_NVME_SC_INVALID_FIELD;
    size_t off = 0;
    while (off < len) {
        ssize_t n = send(r->fd, in + off, len - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (atomic_load(&r->closed))
            return PTTH_NVME_SC_BAD_DESCRIPTOR;
        if (n < 0) {
            *result = (uint32_t)errno;
            return PTTH_NVME_SC_RELAY_IO;
        }
        off += (size_t)n;
        atomic_fetch_add(&r->bytes_to_backend, (unsigned long long)n);
    }
    return PTTH_NVME_SC_SUCCESS;
}

/* Blocks until the backend sends something, ends its stream (length 0), or
 * the relay is closed. */
static uint32_t
do_read(relay *r, unsigned char *out, size_t *out_len, uint32_t *result)
{
    ssize_t n;
    do {
        n = recv(r->fd, out + 4, PTTH_NVME_READ_MAX, 0);
    } while (n < 0 && errno == EINTR && !atomic_load(&r->closed));
    if (atomic_load(&r->closed))
        return PTTH_NVME_SC_BAD_DESCRIPTOR;
    if (n < 0) {
        *result = (uint32_t)errno;
        return PTTH_NVME_SC_RELAY_IO;
    }
    atomic_fetch_add(&r->bytes_from_backend, (unsigned long long)n);
    ptth_put_le32(out, (uint32_t)n);
    *out_len = 4 + (size_t)n;
    return PTTH_NVME_SC_SUCCESS;
}

static uint32_t
do_close(ptth_csd_emu *emu, int32_t desc)
{
    relay *r = NULL;
    if (desc > 0) {
        unsigned slot = (unsigned)desc & 0xffff;
        pthread_mutex_lock(&emu->lock);
        if (slot < emu->max && emu->slots[slot] != NULL && emu->slots[slot]->desc == desc && emu->slots[slot]->ready)
            r = detach_locked(emu, slot);
        pthread_mutex_unlock(&emu->lock);
    }
    if (r == NULL)
        return PTTH_NVME_SC_BAD_DESCRIPTOR;
    finish_close(r, "close");
    return PTTH_NVME_SC_SUCCESS;
}

uint32_t
ptth_csd_emu_execute(ptth_csd_emu *emu, uint64_t owner, const struct nvme_passthru_cmd *cmd, const unsigned char *in, size_t in_len,
                     unsigned char *out, size_t *out_len, uint32_t *result)
{
    *out_len = 0;
    *result = 0;
    if (in_len > PTTH_NVME_BUF)
        return PTTH_NVME_SC_INVALID_FIELD;
    if (cmd->opcode != PTTH_NVME_OPC_CSD)
        return PTTH_NVME_SC_INVALID_OPCODE;
    if (atomic_load(&emu->stopping))
        return PTTH_NVME_SC_INTERNAL;
    switch (cmd->cdw10) {
    case PTTH_NVME_SUB_OPEN:
        return do_open(emu, owner, cmd, in, in_len, out, out_len, result);
    case PTTH_NVME_SUB_CLOSE:
        return do_close(emu, (int32_t)cmd->cdw13);
    case PTTH_NVME_SUB_TRANSFER: {
        if (cmd->data_len != PTTH_NVME_BUF || (cmd->cdw11 != PTTH_NVME_XFER_READ && cmd->cdw11 != PTTH_NVME_XFER_WRITE))
            return PTTH_NVME_SC_INVALID_FIELD;
        relay *r = lookup(emu, (int32_t)cmd->cdw13);
        if (r == NULL)
            return PTTH_NVME_SC_BAD_DESCRIPTOR;
        uint32_t st = cmd->cdw11 == PTTH_NVME_XFER_WRITE ? do_write(r, cmd, in, in_len, result) : do_read(r, out, out_len, result);
        relay_unref(r);
        return st;
    }
    default:
        return PTTH_NVME_SC_INVALID_FIELD;
    }
}

/* Closes the relays matching owner (all of them when all is true). */
static void
close_matching(ptth_csd_emu *emu, bool all, uint64_t owner, const char *reason)
{
    for (;;) {
        relay *r = NULL;
        pthread_mutex_lock(&emu->lock);
        for (unsigned i = 0; i < emu->max && r == NULL; i++)
            if (emu->slots[i] != NULL && emu->slots[i]->ready && (all || emu->slots[i]->owner == owner))
                r = detach_locked(emu, i);
        pthread_mutex_unlock(&emu->lock);
        if (r == NULL)
            return;
        finish_close(r, reason);
    }
}

void
ptth_csd_emu_drop_owner(ptth_csd_emu *emu, uint64_t owner)
{
    close_matching(emu, false, owner, "client_gone");
}

void
ptth_csd_emu_shutdown(ptth_csd_emu *emu)
{
    pthread_mutex_lock(&emu->lock);
    atomic_store(&emu->stopping, true);
    pthread_mutex_unlock(&emu->lock);
    char c = 1;
    (void)!write(emu->wake_wr, &c, 1);
    close_matching(emu, true, 0, "shutdown");
}

unsigned
ptth_csd_emu_open_relays(ptth_csd_emu *emu)
{
    pthread_mutex_lock(&emu->lock);
    unsigned n = emu->count;
    pthread_mutex_unlock(&emu->lock);
    return n;
}

void
ptth_csd_emu_free(ptth_csd_emu *emu)
{
    if (emu == NULL)
        return;
    close_matching(emu, true, 0, "shutdown");
    close(emu->wake_rd);
    close(emu->wake_wr);
    pthread_mutex_destroy(&emu->lock);
    free(emu->slots);
    free(emu->gens);
    free(emu);
}
