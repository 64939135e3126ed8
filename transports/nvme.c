/*
 * nvme.c: the NVMe CSD transport (nvme:DEVICE:PORT[@NODE], SPEC §7). A TCP
 * connection to NODE:PORT is opened by the drive itself (open relay), and
 * bytes move with transfer commands of at most 4 KiB, through one of the two
 * carriers (nvme_carrier.h).
 *
 * Device commands block (a transfer-read waits until the backend sends), so
 * the caller gets one end ("outer") of a socketpair and two threads per stream
 * pump the other end ("inner"):
 *
 *   reader  opens the relay, then loops: transfer-read (blocks) -> write the
 *           bytes to inner (blocks while the caller does not read: that is the
 *           backpressure towards the drive).
 *   writer  loops: read inner (blocks) -> transfer-write of up to 4096 bytes;
 *           and it is the one that issues the relay's close.
 *
 * While the relay is being opened the stream's fd is one end of a second
 * socketpair that becomes readable when the reader knows the outcome;
 * finish_open() then switches the fd to outer (a different number).
 *
 * Ends of the stream:
 *   - backend ends its stream (a transfer-read returns length 0): the caller
 *     reads end of stream; what the caller still writes keeps going to the
 *     drive; once the caller half-closes too, the relay is closed.
 *   - the caller half-closes (shutdown_write): the firmware has no half-close,
 *     only close, and a close ends both directions. So the writer forwards
 *     everything already written, then keeps the relay open for the answer
 *     while the backend keeps talking: the relay is closed when the backend
 *     ends its stream, or when nothing has come from it for
 *     PTTH_NVME_HALF_CLOSE_LINGER_MS. Then the caller reads end of stream.
 *     The backend itself never sees a half-close: it sees the close.
 *   - close(): the relay is closed at once (which also ends a transfer-read
 *     blocked in the drive).
 *   - a carrier or drive failure: logged (event=nvme_relay_failed), the relay
 *     is closed if the drive still answers, and read() returns -EIO (not 0) so
 *     the caller aborts the tunnel instead of ending it cleanly.
 *
 * Threads are detached and share the stream through a reference count, so
 * close() never waits for the drive; ptth_transports_cleanup() waits for them
 * at exit.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "nvme_carrier.h"
#include "nvme_cmd.h"
#include "sockstream.h"
#include "sysutil.h"
#include "transport.h"

/* How long a relay whose client half-closed waits for more from the backend. */
#define PTTH_NVME_HALF_CLOSE_LINGER_MS 3000
/* Relays one process keeps open on one real drive: each holds an admin
 * command (its blocked transfer-read) in the kernel's admin queue, which has
 * 32 entries, and writes, opens and closes need room too. */
#define PTTH_NVME_DEVICE_MAX_RELAYS 16
#define THREAD_STACK (256 * 1024)

enum { OPEN_PENDING, OPEN_OK, OPEN_FAILED };

typedef struct nvme_stream {
    ptth_stream base;
    atomic_int refs; /* the caller (until close), the reader, the writer */
    char text[PTTH_TARGET_TEXT_MAX];
    char device[PTTH_TARGET_PATH_MAX];
    char node[PTTH_TARGET_HOST_MAX];
    char service[8];
    bool device_slot; /* counted against PTTH_NVME_DEVICE_MAX_RELAYS */

    int outer;         /* caller's data end; closed by close() */
    int inner;         /* threads' data end; closed when the last reference goes */
    int notify_caller; /* caller's end of the open notification; closed by finish_open()/close() */
    int notify_thread; /* reader's end; closed by the reader once it has notified */

    ptth_nvme_chan *rchan, *wchan;
    int32_t desc;
    atomic_int open_state;
    int open_errno;
    char open_msg[1024];

    atomic_int fail;          /* errno of a drive/carrier failure, 0 if none */
    atomic_bool closing;      /* close() was called */
    atomic_bool relay_closed; /* the writer is closing the relay: reads that fail now are the expected end */

    pthread_mutex_t mu; /* guards reader_done, reader_busy, last_rx_ms; with cv */
    pthread_cond_t cv;
    bool reader_done;
    bool reader_busy; /* handing a block to the caller (blocked while it does not read) */
    long long last_rx_ms;
} nvme_stream;

/* Live streams (including those whose threads are still finishing), for
 * ptth_transports_cleanup(). */
static pthread_mutex_t live_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t live_cv = PTHREAD_COND_INITIALIZER;
static unsigned live_streams;

/* Open relays per real drive (by path). */
typedef struct dev_count {
    struct dev_count *next;
    char path[PTTH_TARGET_PATH_MAX];
    unsigned n;
} dev_count;
static dev_count *dev_counts;

static bool
device_slot_take(const char *path)
{
    bool ok = false;
    pthread_mutex_lock(&live_mu);
    dev_count *d = dev_counts;
    while (d != NULL && strcmp(d->path, path) != 0)
        d = d->next;
    if (d == NULL && (d = calloc(1, sizeof(*d))) != NULL) {
        snprintf(d->path, sizeof(d->path), "%s", path);
        d->next = dev_counts;
        dev_counts = d;
    }
    if (d != NULL && d->n < PTTH_NVME_DEVICE_MAX_RELAYS) {
        d->n++;
        ok = true;
    }
    pthread_mutex_unlock(&live_mu);
    return ok;
}

static void
device_slot_give(const char *path)
{
    pthread_mutex_lock(&live_mu);
    for (dev_count **pp = &dev_counts; *pp != NULL; pp = &(*pp)->next) {
        dev_count *d = *pp;
        if (strcmp(d->path, path) == 0) {
            if (--d->n == 0) {
                *pp = d->next;
                free(d);
            }
            break;
        }
    }
    pthread_mutex_unlock(&live_mu);
}

static void
stream_release(nvme_stream *s)
{
    if (atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    if (s->inner >= 0)
        close(s->inner);
    if (s->notify_thread >= 0)
        close(s->notify_thread);
    if (s->notify_caller >= 0)
        close(s->notify_caller);
    ptth_nvme_chan_close(s->rchan);
    ptth_nvme_chan_close(s->wchan);
    if (s->device_slot)
        device_slot_give(s->device);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
    pthread_mutex_lock(&live_mu);
    if (--live_streams == 0)
        pthread_cond_broadcast(&live_cv);
    pthread_mutex_unlock(&live_mu);
}

static int
start_thread(void *(*fn)(void *), void *arg)
{
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, THREAD_STACK);
    pthread_t th;
    int rc = pthread_create(&th, &attr, fn, arg);
    pthread_attr_destroy(&attr);
    return rc;
}

static void *
alloc_buffer(void)
{
    void *buf = NULL;
    if (posix_memalign(&buf, 4096, PTTH_NVME_BUF) != 0)
        return NULL;
    memset(buf, 0, PTTH_NVME_BUF);
    return buf;
}

/* Records a failure once and logs it; the caller's read() then returns
 * -errno. */
static void
record_failure(nvme_stream *s, int e, const char *msg)
{
    int expected = 0;
    if (!atomic_compare_exchange_strong(&s->fail, &expected, e ? e : EIO))
        return;
    char qt[PTTH_TARGET_TEXT_MAX + 8], qm[600];
    ptth_log_warn("event=nvme_relay_failed target=%s desc=%d error=%s", ptth_log_quote(qt, sizeof(qt), s->text), (int)s->desc,
                  ptth_log_quote(qm, sizeof(qm), msg));
}

static int
write_inner(int fd, const unsigned char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Issues the relay's close on chan (once per stream). */
static void
close_relay(nvme_stream *s, ptth_nvme_chan *chan)
{
    atomic_store(&s->relay_closed, true);
    void *buf = alloc_buffer();
    struct nvme_passthru_cmd cmd;
    ptth_nvme_encode_close(&cmd, s->desc);
    uint32_t status = 0, result = 0;
    char msg[512] = "";
    int rc = buf != NULL ? ptth_nvme_chan_submit(chan, &cmd, buf, 0, &status, &result, msg, sizeof(msg)) : -ENOMEM;
    free(buf);
    char qt[PTTH_TARGET_TEXT_MAX + 8];
    if (rc != 0 || status != 0)
        ptth_log_debug("event=nvme_relay_close_failed target=%s desc=%d status=0x%04x error=\"%s\"",
                       ptth_log_quote(qt, sizeof(qt), s->text), (int)s->desc, status,
                       rc != 0 ? msg : ptth_nvme_status_text(status));
    else
        ptth_log_debug("event=nvme_relay_closed target=%s desc=%d", ptth_log_quote(qt, sizeof(qt), s->text), (int)s->desc);
}

/* After the caller half-closed: keep the relay open while the backend keeps
 * answering, and close it once the backend ended its stream, or has been
 * silent for PTTH_NVME_HALF_CLOSE_LINGER_MS. Silence is counted from the later
 * of the half-close and the last block read, and not while the reader is
 * blocked handing a block to a slow caller. */
static void
linger(nvme_stream *s)
{
    pthread_mutex_lock(&s->mu);
    long long now = ptth_now_ms();
    if (s->last_rx_ms < now)
        s->last_rx_ms = now;
    while (!s->reader_done && !atomic_load(&s->closing)) {
        long long deadline = s->reader_busy ? now + 1000 : s->last_rx_ms + PTTH_NVME_HALF_CLOSE_LINGER_MS;
        if (!s->reader_busy && now >= deadline)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        long long ns = (long long)ts.tv_nsec + (deadline - now) * 1000000LL;
        ts.tv_sec += (time_t)(ns / 1000000000LL);
        ts.tv_nsec = (long)(ns % 1000000000LL);
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
        now = ptth_now_ms();
    }
    pthread_mutex_unlock(&s->mu);
}

static void *
writer_main(void *arg)
{
    nvme_stream *s = arg;
    void *buf = alloc_buffer();
    char msg[512];
    while (buf != NULL) {
        ssize_t n = recv(s->inner, buf, PTTH_NVME_WRITE_MAX, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n > 0) {
            struct nvme_passthru_cmd cmd;
            ptth_nvme_encode_write(&cmd, buf, s->desc, buf, (size_t)n);
            uint32_t status = 0, result = 0;
            int rc = ptth_nvme_chan_submit(s->wchan, &cmd, buf, (size_t)n, &status, &result, msg, sizeof(msg));
            if (rc == 0 && status == 0)
                continue;
            if (rc == 0)
                snprintf(msg, sizeof(msg), "nvme device '%s': transfer-write: %s (NVMe status 0x%04x%s%s)", s->device,
                         ptth_nvme_status_text(status), status, result ? ", " : "", result ? strerror((int)result) : "");
            record_failure(s, rc == 0 && (status & PTTH_NVME_SC_MASK) == PTTH_NVME_SC_RELAY_IO && result ? (int)result : EIO, msg);
            shutdown(s->inner, SHUT_RDWR);
            break;
        }
        /* end of the caller's stream: half-close, close() or a failure */
        if (atomic_load(&s->closing) || atomic_load(&s->fail) != 0)
            break;
        linger(s);
        break;
    }
    if (buf == NULL)
        record_failure(s, ENOMEM, "out of memory");
    close_relay(s, s->wchan);
    free(buf);
    stream_release(s);
    return NULL;
}

/* Opens both channels and the relay. 0, or -errno with s->open_msg set. */
static int
open_relay(nvme_stream *s, void *buf)
{
    int rc = ptth_nvme_chan_open(s->device, true, &s->rchan, s->open_msg, sizeof(s->open_msg));
    if (rc == 0)
        rc = ptth_nvme_chan_open(s->device, false, &s->wchan, s->open_msg, sizeof(s->open_msg));
    if (rc != 0)
        return rc;
    struct nvme_passthru_cmd cmd;
    if (ptth_nvme_encode_open(&cmd, buf, s->node, s->service) != 0) {
        snprintf(s->open_msg, sizeof(s->open_msg), "nvme target '%s': node or service does not fit the open command", s->text);
        return -EINVAL;
    }
    uint32_t status = 0, result = 0;
    rc = ptth_nvme_chan_submit(s->rchan, &cmd, buf, PTTH_NVME_OPEN_DATA, &status, &result, s->open_msg, sizeof(s->open_msg));
    if (rc != 0)
        return rc;
    if (status != 0) {
        int e = EIO;
        if ((status & PTTH_NVME_SC_MASK) == PTTH_NVME_SC_CONNECT_FAILED && result != 0 && result < 4096)
            e = (int)result;
        else if ((status & PTTH_NVME_SC_MASK) == PTTH_NVME_SC_RESOLVE_FAILED)
            e = EHOSTUNREACH;
        if (e != EIO)
            snprintf(s->open_msg, sizeof(s->open_msg), "nvme device '%s': open relay to %s:%s: %s", s->device, s->node, s->service,
                     strerror(e));
        else
            snprintf(s->open_msg, sizeof(s->open_msg),
                     "nvme device '%s': open relay to %s:%s refused by the drive: %s (NVMe status 0x%04x)", s->device, s->node,
                     s->service, ptth_nvme_status_text(status), status);
        return -e;
    }
    if (ptth_nvme_decode_open(buf, &s->desc) != 0) {
        snprintf(s->open_msg, sizeof(s->open_msg), "nvme device '%s': open relay returned a negative descriptor (%d)", s->device,
                 (int)(int32_t)ptth_get_le32(buf));
        return -EPROTO;
    }
    return 0;
}

static void
notify_caller(nvme_stream *s, int state)
{
    atomic_store(&s->open_state, state);
    char c = 1;
    (void)!send(s->notify_thread, &c, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    close(s->notify_thread);
    s->notify_thread = -1;
}

static void *
reader_main(void *arg)
{
    nvme_stream *s = arg;
    void *buf = alloc_buffer();
    int rc = buf != NULL ? open_relay(s, buf) : -ENOMEM;
    if (rc == -ENOMEM && buf == NULL)
        snprintf(s->open_msg, sizeof(s->open_msg), "nvme device '%s': out of memory", s->device);
    bool opened = rc == 0;
    if (opened) {
        char qt[PTTH_TARGET_TEXT_MAX + 8];
        ptth_log_debug("event=nvme_relay_open target=%s desc=%d", ptth_log_quote(qt, sizeof(qt), s->text), (int)s->desc);
        pthread_mutex_lock(&s->mu);
        s->last_rx_ms = ptth_now_ms();
        pthread_mutex_unlock(&s->mu);
        if (!atomic_load(&s->closing)) {
            atomic_fetch_add(&s->refs, 1);
            int trc = start_thread(writer_main, s);
            if (trc != 0) {
                atomic_fetch_sub(&s->refs, 1);
                snprintf(s->open_msg, sizeof(s->open_msg), "nvme device '%s': cannot start a thread: %s", s->device, strerror(trc));
                rc = -trc;
            }
        } else {
            rc = -ECANCELED;
            snprintf(s->open_msg, sizeof(s->open_msg), "closed while opening");
        }
        if (rc != 0)
            close_relay(s, s->rchan);
    }
    s->open_errno = -rc;
    notify_caller(s, rc == 0 ? OPEN_OK : OPEN_FAILED);
    if (rc != 0) {
        free(buf);
        stream_release(s);
        return NULL;
    }

    bool clean = true;
    char msg[512];
    for (;;) {
        struct nvme_passthru_cmd cmd;
        ptth_nvme_encode_read(&cmd, buf, s->desc);
        uint32_t status = 0, result = 0;
        rc = ptth_nvme_chan_submit(s->rchan, &cmd, buf, 0, &status, &result, msg, sizeof(msg));
        if (atomic_load(&s->relay_closed) || atomic_load(&s->closing))
            break; /* the writer closed the relay: this read's failure is expected */
        if (rc != 0) {
            record_failure(s, EIO, msg); /* the carrier's errno (EPIPE...) would misname it */
            clean = false;
            break;
        }
        uint32_t len;
        if (status != 0) {
            snprintf(msg, sizeof(msg), "nvme device '%s': transfer-read: %s (NVMe status 0x%04x%s%s)", s->device,
                     ptth_nvme_status_text(status), status, result ? ", " : "", result ? strerror((int)result) : "");
            record_failure(s, (status & PTTH_NVME_SC_MASK) == PTTH_NVME_SC_RELAY_IO && result ? (int)result : EIO, msg);
            clean = false;
            break;
        }
        if (ptth_nvme_decode_read(buf, &len) != 0) {
            snprintf(msg, sizeof(msg), "nvme device '%s': transfer-read returned length %u (the most is %d)", s->device,
                     ptth_get_le32(buf), PTTH_NVME_READ_MAX);
            record_failure(s, EPROTO, msg);
            clean = false;
            break;
        }
        if (len == 0)
            break; /* the backend ended its stream */
        pthread_mutex_lock(&s->mu);
        s->reader_busy = true;
        pthread_mutex_unlock(&s->mu);
        int wrc = write_inner(s->inner, (unsigned char *)buf + 4, len);
        pthread_mutex_lock(&s->mu);
        s->reader_busy = false;
        s->last_rx_ms = ptth_now_ms();
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        if (wrc != 0)
            break; /* the caller closed */
    }
    shutdown(s->inner, clean ? SHUT_WR : SHUT_RDWR);
    pthread_mutex_lock(&s->mu);
    s->reader_done = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    free(buf);
    stream_release(s);
    return NULL;
}

static int
nvme_open(const ptth_target *t, const ptth_open_info *info, ptth_stream **out, char *err, size_t errlen)
{
    (void)info;
    struct stat st;
    if (stat(t->path, &st) != 0) {
        int e = errno;
        snprintf(err, errlen, "nvme device '%s': %s", t->path, strerror(e));
        return -e;
    }
    if (!S_ISCHR(st.st_mode) && !S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "nvme device '%s': not a character device (an NVMe controller) nor a UNIX socket (ptth_csd_emu)",
                 t->path);
        return -ENODEV;
    }
    nvme_stream *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(err, errlen, "nvme target '%s': out of memory", t->text);
        return -ENOMEM;
    }
    s->base.transport = &ptth_transport_nvme;
    snprintf(s->text, sizeof(s->text), "%s", t->text);
    snprintf(s->device, sizeof(s->device), "%s", t->path);
    snprintf(s->node, sizeof(s->node), "%s", t->host);
    snprintf(s->service, sizeof(s->service), "%u", (unsigned)t->port);
    s->desc = -1;
    s->outer = s->inner = s->notify_caller = s->notify_thread = -1;
    if (S_ISCHR(st.st_mode)) {
        if (!device_slot_take(s->device)) {
            snprintf(err, errlen, "nvme device '%s': %d relays are open, the most kept on one drive", s->device,
                     PTTH_NVME_DEVICE_MAX_RELAYS);
            free(s);
            return -EBUSY;
        }
        s->device_slot = true;
    }
    int data[2], note[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, data) != 0) {
        int e = errno;
        snprintf(err, errlen, "nvme target '%s': socketpair: %s", t->text, strerror(e));
        if (s->device_slot)
            device_slot_give(s->device);
        free(s);
        return -e;
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, note) != 0) {
        int e = errno;
        snprintf(err, errlen, "nvme target '%s': socketpair: %s", t->text, strerror(e));
        close(data[0]);
        close(data[1]);
        if (s->device_slot)
            device_slot_give(s->device);
        free(s);
        return -e;
    }
    s->outer = data[0];
    s->inner = data[1];
    s->notify_caller = note[0];
    s->notify_thread = note[1];
    (void)ptth_set_nonblocking(s->outer);
    (void)ptth_set_nonblocking(s->notify_caller);
    atomic_init(&s->refs, 2);
    atomic_init(&s->open_state, OPEN_PENDING);
    atomic_init(&s->fail, 0);
    atomic_init(&s->closing, false);
    atomic_init(&s->relay_closed, false);
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_lock(&live_mu);
    live_streams++;
    pthread_mutex_unlock(&live_mu);

    int rc = start_thread(reader_main, s);
    if (rc != 0) {
        snprintf(err, errlen, "nvme target '%s': cannot start a thread: %s", t->text, strerror(rc));
        close(s->outer);
        atomic_store(&s->refs, 1);
        stream_release(s);
        return -rc;
    }
    s->base.fd = s->notify_caller;
    s->base.open_events = EPOLLIN;
    *out = &s->base;
    return 0;
}

static int
nvme_finish_open(ptth_stream *base, char *err, size_t errlen)
{
    nvme_stream *s = (nvme_stream *)base;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (s->base.fd == s->outer)
        return 0;
    int state = atomic_load(&s->open_state);
    if (state == OPEN_PENDING)
        return -EINPROGRESS;
    if (state == OPEN_FAILED) {
        snprintf(err, errlen, "%s", s->open_msg);
        return s->open_errno > 0 ? -s->open_errno : -EIO;
    }
    s->base.fd = s->outer;
    s->base.open_events = 0;
    close(s->notify_caller);
    s->notify_caller = -1;
    return 0;
}

static ssize_t
nvme_read(ptth_stream *base, void *buf, size_t len)
{
    nvme_stream *s = (nvme_stream *)base;
    ssize_t n = ptth_sock_read(s->outer, buf, len);
    if (n == 0 || n == -ECONNRESET) {
        int e = atomic_load(&s->fail);
        if (e != 0)
            return -e;
    }
    return n;
}

static ssize_t
nvme_write(ptth_stream *base, const void *buf, size_t len)
{
    nvme_stream *s = (nvme_stream *)base;
    ssize_t n = ptth_sock_write(s->outer, buf, len);
    if (n == -EPIPE || n == -ECONNRESET) {
        int e = atomic_load(&s->fail);
        if (e != 0)
            return -e;
    }
    return n;
}

static int
nvme_shutdown_write(ptth_stream *base)
{
    nvme_stream *s = (nvme_stream *)base;
    return ptth_sock_shutdown_write(s->outer);
}

static void
nvme_close(ptth_stream *base)
{
    nvme_stream *s = (nvme_stream *)base;
    atomic_store(&s->closing, true);
    pthread_mutex_lock(&s->mu);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    close(s->outer);
    s->outer = -1;
    if (s->notify_caller >= 0) {
        close(s->notify_caller);
        s->notify_caller = -1;
    }
    stream_release(s);
}

void
ptth_transports_cleanup(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 3;
    pthread_mutex_lock(&live_mu);
    while (live_streams > 0)
        if (pthread_cond_timedwait(&live_cv, &live_mu, &ts) != 0)
            break;
    pthread_mutex_unlock(&live_mu);
}

const ptth_transport ptth_transport_nvme = {
    .name = "nvme",
    .open = nvme_open,
    .finish_open = nvme_finish_open,
    .read = nvme_read,
    .write = nvme_write,
    .shutdown_write = nvme_shutdown_write,
    .close = nvme_close,
};
