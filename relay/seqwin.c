/*
 * seqwin.c: see seqwin.h. The slots form a ring indexed by seq modulo the
 * window size; slot (next % SIZE) is always the next chunk's.
 */
#include "seqwin.h"

#include <errno.h>
#include <string.h>

void
ptth_seqwin_init(ptth_seqwin *w)
{
    memset(w, 0, sizeof(*w));
}

ptth_seqwin_verdict
ptth_seqwin_put(ptth_seqwin *w, uint64_t seq, void *item, void **replaced)
{
    *replaced = NULL;
    if (seq < w->next)
        return PTTH_SEQWIN_DELIVERED;
    if (seq - w->next >= PTTH_SEQWIN_SIZE)
        return PTTH_SEQWIN_TOO_FAR;
    void **slot = &w->slot[seq % PTTH_SEQWIN_SIZE];
    if (*slot != NULL)
        *replaced = *slot;
    else
        w->held++;
    *slot = item;
    return PTTH_SEQWIN_STORED;
}

void *
ptth_seqwin_peek(const ptth_seqwin *w)
{
    return w->slot[w->next % PTTH_SEQWIN_SIZE];
}

void *
ptth_seqwin_take(ptth_seqwin *w)
{
    void **slot = &w->slot[w->next % PTTH_SEQWIN_SIZE];
    void *item = *slot;
    if (item == NULL)
        return NULL;
    *slot = NULL;
    w->held--;
    w->next++;
    return item;
}

bool
ptth_seqwin_remove(ptth_seqwin *w, const void *item)
{
    for (size_t i = 0; i < PTTH_SEQWIN_SIZE; i++) {
        if (item != NULL && w->slot[i] == item) {
            w->slot[i] = NULL;
            w->held--;
            return true;
        }
    }
    return false;
}

void *
ptth_seqwin_pop_any(ptth_seqwin *w)
{
    for (size_t i = 0; i < PTTH_SEQWIN_SIZE; i++) {
        if (w->slot[i] != NULL) {
            void *item = w->slot[i];
            w->slot[i] = NULL;
            w->held--;
            return item;
        }
    }
    return NULL;
}

int
ptth_seqwin_parse_seq(const char *text, size_t len, uint64_t *out)
{
    if (len == 0 || len > 20)
        return -EINVAL;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] < '0' || text[i] > '9')
            return -EINVAL;
        uint64_t d = (uint64_t)(text[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -EINVAL;
        v = v * 10 + d;
    }
    if (v > UINT64_MAX - PTTH_SEQWIN_SIZE)
        return -EINVAL;
    *out = v;
    return 0;
}

uint64_t
ptth_seqwin_next(const ptth_seqwin *w)
{
    return w->next;
}

bool
ptth_seqwin_holds_after(const ptth_seqwin *w, uint64_t seq)
{
    for (uint64_t s = seq + 1 > w->next ? seq + 1 : w->next; s < w->next + PTTH_SEQWIN_SIZE; s++)
        if (w->slot[s % PTTH_SEQWIN_SIZE] != NULL)
            return true;
    return false;
}
