/*
 * target.h: the backend a port map points at (SPEC §5), parsed in one place.
 *
 *   PORT                     TCP to 127.0.0.1:PORT
 *   HOST:PORT, [V6]:PORT     TCP (host names resolved at open time)
 *   unix:PATH                UNIX stream socket
 *   nvme:DEVICE:PORT[@NODE]  NVMe CSD relay to NODE:PORT (NODE default 127.0.0.1)
 *   cc:SERVICE               DPU comm channel, UNIX SOCK_SEQPACKET carrier
 *   cc:vsock:CID:PORT        DPU comm channel, AF_VSOCK carrier
 *   udp:HOST:PORT, udp:[V6]:PORT  UDP datagrams (a connected UDP socket; SPEC §9.4)
 *
 * Parsing is pure (no file system or network access); ptth_target_check()
 * does the start-up checks that look at the machine.
 */
#ifndef PTTH_TARGET_H
#define PTTH_TARGET_H

#include <stddef.h>
#include <stdint.h>

typedef enum ptth_target_kind {
    PTTH_TARGET_TCP,
    PTTH_TARGET_UNIX,
    PTTH_TARGET_NVME,
    PTTH_TARGET_CC,
    PTTH_TARGET_UDP, /* host and port as for TCP */
} ptth_target_kind;

typedef enum ptth_cc_carrier_kind {
    PTTH_CC_SEQPACKET,
    PTTH_CC_VSOCK,
} ptth_cc_carrier_kind;

#define PTTH_TARGET_TEXT_MAX 512
#define PTTH_TARGET_HOST_MAX 256 /* also NVMe node[] size, NUL included */
#define PTTH_TARGET_PATH_MAX 108 /* sun_path */

typedef struct ptth_target {
    ptth_target_kind kind;
    char text[PTTH_TARGET_TEXT_MAX]; /* as written, for logs */
    /* TCP, UDP: host and port. NVMe: node in host, port in port_text. */
    char host[PTTH_TARGET_HOST_MAX];
    uint16_t port;
    char port_text[8];
    /* UNIX: socket path. NVMe: DEVICE path. */
    char path[PTTH_TARGET_PATH_MAX];
    /* CC */
    ptth_cc_carrier_kind cc_carrier;
    char cc_service[65]; /* SPEC §2 name */
    uint32_t vsock_cid;
    uint32_t vsock_port;
} ptth_target;

/* 0, or -EINVAL with the reason in err ("nvme target 'nvme:x': missing PORT"). */
int ptth_target_parse(const char *text, ptth_target *out, char *err, size_t errlen);

/* Start-up / --check-config checks that look at the machine: an NVMe DEVICE
 * must exist and be a character device or a UNIX socket. 0 or -errno with
 * err naming the path. */
int ptth_target_check(const ptth_target *t, char *err, size_t errlen);

#endif
