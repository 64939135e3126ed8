/*
 * data_path.h: --data-path auto|upgrade|chunks of the terminators (SPEC
 * §9.1), and what a terminator learned about its relay connection.
 *
 *   upgrade  every connect/accept asks to upgrade; a tunnel that cannot is
 *            refused (the log says why);
 *   chunks   never asks: the chunked path of SPEC §4 only;
 *   auto     asks, and when the path in between does not allow it (a proxy
 *            that drops Upgrade or answers otherwise, a relay with
 *            --upgrade off, an HTTP/2-only front) the tunnel goes on on the
 *            chunked path without a user-visible failure; that is
 *            remembered for PTTH_DATA_PATH_MEMORY_MS, during which tunnels
 *            take the chunked path at once (one event=upgrade_unavailable
 *            line each time it starts being remembered).
 * A tunnel whose other side is on the chunked path (PTTH-Upgrade: peer) is
 * not a reason to remember anything.
 */
#ifndef PTTH_DATA_PATH_H
#define PTTH_DATA_PATH_H

#include <stdbool.h>
#include <stddef.h>

#define PTTH_DATA_PATH_MEMORY_MS (10 * 60 * 1000LL)

typedef enum ptth_data_path_mode {
    PTTH_DATA_PATH_AUTO = 0,
    PTTH_DATA_PATH_UPGRADE,
    PTTH_DATA_PATH_CHUNKS,
} ptth_data_path_mode;

typedef struct ptth_data_path {
    ptth_data_path_mode mode;
    long long chunks_until_ms; /* auto: take the chunked path until then */
} ptth_data_path;

/* Option check: auto, upgrade or chunks. */
int ptth_data_path_check(const char *value, char *err, size_t errlen);

/* Sets dp from an option value (NULL: auto). 0 or -EINVAL. */
int ptth_data_path_init(ptth_data_path *dp, const char *value);

/* true when a new tunnel should ask to upgrade. */
bool ptth_data_path_try_upgrade(const ptth_data_path *dp, long long now_ms);

/* auto: the relay connection does not allow upgrades (why, for the log). */
void ptth_data_path_unavailable(ptth_data_path *dp, long long now_ms, const char *why);

#endif
