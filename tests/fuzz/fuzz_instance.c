/*
 * fuzz_instance.c: libFuzzer target for the PTTH-Instance parser
 * (common/instance.c), which the relay runs on every request's header.
 *
 * Input: the header value's bytes, as they came.
 *
 * Checked, besides memory safety and undefined behaviour:
 *   - 0 or -EINVAL, and -EINVAL always with a reason and a cleared result;
 *   - on 0: slot and life are 1..PTTH_INSTANCE_PART_MAX base64url
 *     characters, NUL-terminated inside their arrays, and "SLOT.LIFE"
 *     formatted again is exactly the input (nothing dropped or added).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "instance.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_part(const char *p, size_t cap)
{
    size_t n = strnlen(p, cap);
    if (n == 0 || n >= cap || n > PTTH_INSTANCE_PART_MAX)
        abort();
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            abort();
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ptth_instance in;
    const char *why = NULL;
    int rc = ptth_instance_parse((const char *)data, size, &in, &why);
    if (rc == -EINVAL) {
        if (why == NULL || in.slot[0] != '\0' || in.life[0] != '\0')
            abort();
        return 0;
    }
    if (rc != 0)
        abort();
    check_part(in.slot, sizeof(in.slot));
    check_part(in.life, sizeof(in.life));
    char text[PTTH_INSTANCE_TEXT_MAX + 1];
    ptth_instance_format(&in, text);
    if (strlen(text) != size || memcmp(text, data, size) != 0)
        abort();
    return 0;
}
