/* principals.c: see principals.h. */
#include "principals.h"

#include <stdio.h>
#include <string.h>

#include "keys.h"

ptth_strlist
ptth_test_principals(char (*items)[PTTH_TEST_PRINCIPAL_LEN], char **ptrs, size_t n, const char *const *names, const char *const *keys)
{
    for (size_t i = 0; i < n; i++) {
        ptth_key_hash h;
        ptth_key_hash_of(keys[i], strlen(keys[i]), &h);
        snprintf(items[i], PTTH_TEST_PRINCIPAL_LEN, "%s=%s", names[i], h.hex);
        ptrs[i] = items[i];
    }
    return (ptth_strlist){ptrs, n};
}
