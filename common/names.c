/* names.c: see names.h. */
#include "names.h"

#include <string.h>

static bool
name_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

bool
ptth_name_valid(const char *name, size_t len)
{
    if (name == NULL || len == 0 || len > PTTH_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (!name_char((unsigned char)name[i]))
            return false;
    }
    return true;
}

bool
ptth_name_valid_str(const char *name)
{
    if (name == NULL)
        return false;
    /* strnlen bounds the scan: a longer string is invalid whatever follows */
    size_t len = strnlen(name, PTTH_NAME_MAX + 1);
    return ptth_name_valid(name, len);
}
