/* data_path.c: see data_path.h. */
#include "data_path.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

static const char *const names[] = {"auto", "upgrade", "chunks"};

static int
parse(const char *value, ptth_data_path_mode *out)
{
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(value, names[i]) == 0) {
            *out = (ptth_data_path_mode)i;
            return 0;
        }
    }
    return -EINVAL;
}

int
ptth_data_path_check(const char *value, char *err, size_t errlen)
{
    ptth_data_path_mode m;
    if (parse(value, &m) == 0)
        return 0;
    snprintf(err, errlen, "'%s' is not auto, upgrade or chunks", value);
    return -1;
}

int
ptth_data_path_init(ptth_data_path *dp, const char *value)
{
    dp->mode = PTTH_DATA_PATH_AUTO;
    dp->chunks_until_ms = 0;
    return value == NULL ? 0 : parse(value, &dp->mode);
}

bool
ptth_data_path_try_upgrade(const ptth_data_path *dp, long long now_ms)
{
    switch (dp->mode) {
    case PTTH_DATA_PATH_UPGRADE:
        return true;
    case PTTH_DATA_PATH_CHUNKS:
        return false;
    case PTTH_DATA_PATH_AUTO:
        break;
    }
    return now_ms >= dp->chunks_until_ms;
}

void
ptth_data_path_unavailable(ptth_data_path *dp, long long now_ms, const char *why)
{
    if (dp->mode != PTTH_DATA_PATH_AUTO)
        return;
    char quoted[300];
    if (now_ms >= dp->chunks_until_ms)
        ptth_log_info("event=upgrade_unavailable for_s=%lld reason=%s", PTTH_DATA_PATH_MEMORY_MS / 1000,
                      ptth_log_quote(quoted, sizeof(quoted), why));
    dp->chunks_until_ms = now_ms + PTTH_DATA_PATH_MEMORY_MS;
}
