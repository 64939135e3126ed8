/*
 * csd_emu.h: the drive side of the nvme_csd relay commands, as ptth_csd_emu
 * carries them out (SPEC §7): open relay = a TCP connection from this host to
 * node:service, transfer = write to it / blocking read from it, close.
 *
 * The command handling is separate from the program (ptth_csd_emu.c) so that
 * unit tests can feed it malformed commands directly. Every command gets a
 * status (nvme_cmd.h); nothing a client sends can crash it.
 *
 * Threads: execute() is called by one thread per client connection and may
 * block (open connects, a read waits for data, a write waits until the backend
 * takes the bytes); a command blocked on one relay never holds a lock that
 * another relay's command needs. Relays are global to the emulator (like the
 * drive's descriptors), and each remembers the client connection that opened
 * it (owner), so drop_owner() can close them when that client goes away.
 */
#ifndef PTTH_CSD_EMU_H
#define PTTH_CSD_EMU_H

#include <linux/nvme_ioctl.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ptth_csd_emu ptth_csd_emu;

typedef struct ptth_csd_emu_config {
    unsigned max_relays;         /* 1..65535 relays open at once */
    unsigned connect_timeout_ms; /* of open relay's TCP connect */
} ptth_csd_emu_config;

/* NULL when out of memory. */
ptth_csd_emu *ptth_csd_emu_new(const ptth_csd_emu_config *cfg);

/* Carries out one command. in/in_len: the data the host sent (the first
 * in_len bytes of its 4 KiB buffer; the rest counts as zeros). out: a
 * PTTH_NVME_BUF-byte buffer for what the drive writes back; *out_len is set
 * to how many of its bytes to return. Returns the NVMe status; *result is
 * the completion's dword 0 (an errno for connect and I/O failures). */
uint32_t ptth_csd_emu_execute(ptth_csd_emu *emu, uint64_t owner, const struct nvme_passthru_cmd *cmd, const unsigned char *in,
                              size_t in_len, unsigned char *out, size_t *out_len, uint32_t *result);

/* Closes every relay that owner opened (its client connection ended). */
void ptth_csd_emu_drop_owner(ptth_csd_emu *emu, uint64_t owner);

/* Closes every relay and wakes every blocked command; commands after this
 * fail with an internal-error status. */
void ptth_csd_emu_shutdown(ptth_csd_emu *emu);

/* Relays open now. */
unsigned ptth_csd_emu_open_relays(ptth_csd_emu *emu);

/* Frees the emulator; every execute() must have returned. */
void ptth_csd_emu_free(ptth_csd_emu *emu);

#endif
