/*
 * ptth_load's one-connection clients: send (throughput, the count checked)
 * and pingpong (round-trip latency). Each drives a single blocking socket with
 * SO_SNDTIMEO/SO_RCVTIMEO: one system call per write or read and no readiness
 * round trip, so that the tool adds as little as possible to what it measures.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "load.h"

int
load_run_send(const struct sockaddr_storage *ss, socklen_t sslen)
{
    size_t wsize = (size_t)load_cfg.write_size;
    char *buf = malloc(wsize);
    if (buf == NULL) {
        load_fail("out of memory for a %zu-byte buffer", wsize);
        return 1;
    }
    for (size_t i = 0; i < wsize; i++)
        buf[i] = (char)('a' + i % 26);
    long long start = load_now_us();
    int fd = load_connect_blocking(ss, sslen);
    if (fd < 0) {
        free(buf);
        return 1;
    }
    int rc = 1;
    uint64_t left = load_cfg.bytes;
    while (left > 0) {
        size_t n = left < wsize ? (size_t)left : wsize;
        if (!load_write_all(fd, buf, n, "send"))
            goto out;
        left -= n;
    }
    if (shutdown(fd, SHUT_WR) != 0) {
        load_fail("shutdown: %s", strerror(errno));
        goto out;
    }
    unsigned char cnt[8];
    if (!load_read_exactly(fd, (char *)cnt, sizeof(cnt), "byte count"))
        goto out;
    long long end = load_now_us();
    uint64_t counted = 0;
    for (int i = 0; i < 8; i++)
        counted = counted << 8 | cnt[i];
    if (counted != load_cfg.bytes) {
        load_fail("the sink counted %" PRIu64 " bytes, %" PRIu64 " were sent", counted, load_cfg.bytes);
        printf("mode=send ok=0 bytes=%" PRIu64 " counted=%" PRIu64 "\n", load_cfg.bytes, counted);
        goto out;
    }
    double secs = (double)(end - start) / 1e6;
    double mbps = (double)load_cfg.bytes / 1e6 / secs;
    load_human("%" PRIu64 " bytes in %.3f s = %.1f MB/s (count confirmed)", load_cfg.bytes, secs, mbps);
    printf("mode=send ok=1 bytes=%" PRIu64 " write_size=%zu seconds=%.6f mb_per_s=%.1f\n", load_cfg.bytes, wsize, secs, mbps);
    rc = 0;
out:
    close(fd);
    free(buf);
    return rc;
}

int
load_run_pingpong(const struct sockaddr_storage *ss, socklen_t sslen)
{
    size_t size = (size_t)load_cfg.size, total = (size_t)(load_cfg.warmup + load_cfg.count);
    char *msg = malloc(size), *back = malloc(size);
    long long *lat = malloc(sizeof(*lat) * (size_t)load_cfg.count);
    int rc = 1, fd = -1;
    if (msg == NULL || back == NULL || lat == NULL) {
        load_fail("out of memory");
        goto out;
    }
    if ((fd = load_connect_blocking(ss, sslen)) < 0)
        goto out;
    for (size_t i = 0; i < total; i++) {
        for (size_t j = 0; j < size; j++)
            msg[j] = (char)('A' + (i + j) % 26);
        long long t0 = load_now_us();
        if (!load_write_all(fd, msg, size, "round trip") || !load_read_exactly(fd, back, size, "round trip"))
            goto out;
        long long t1 = load_now_us();
        if (memcmp(msg, back, size) != 0) {
            load_fail("round trip %zu: the echo differs from what was sent", i);
            goto out;
        }
        if (i >= load_cfg.warmup)
            lat[i - load_cfg.warmup] = t1 - t0;
    }
    size_t n = (size_t)load_cfg.count;
    long long sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += lat[i];
    qsort(lat, n, sizeof(*lat), load_cmp_ll);
    long long p50 = load_percentile(lat, n, 0.50), p90 = load_percentile(lat, n, 0.90), p99 = load_percentile(lat, n, 0.99),
              max = lat[n - 1];
    double mean = (double)sum / (double)n;
    load_human("%zu round trips of %zu bytes: p50 %lld us, p90 %lld us, p99 %lld us, max %lld us, mean %.1f us", n, size, p50, p90,
               p99, max, mean);
    printf("mode=pingpong ok=1 count=%zu size=%zu p50_us=%lld p90_us=%lld p99_us=%lld max_us=%lld mean_us=%.1f\n", n, size, p50,
           p90, p99, max, mean);
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    free(msg);
    free(back);
    free(lat);
    return rc;
}
