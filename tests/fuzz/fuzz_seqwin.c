/*
 * fuzz_seqwin.c: libFuzzer target for the relay's chunk sequencing
 * (relay/seqwin.h): the PTTH-Seq header parser and the reorder window that
 * decides, for every upstream/downstream chunk, whether it is delivered now,
 * held, a retry of a delivered one, or too far ahead (409).
 *
 * Input: bytes 0-7 the window's starting `next` (so that numbers near the
 * top of the range are reached), then a list of operations, each an opcode
 * byte and its argument bytes: put (relative or near-UINT64_MAX sequence
 * numbers), peek, take, remove (of a held item or a stranger), pop_any, and
 * parse (a PTTH-Seq text, whose value is then put). A model of the window
 * (a map of sequence numbers to items) is kept beside it; after every
 * operation the verdict, the returned and replaced items, `next` and `held`
 * must match the model. Items are heap blocks owned by the harness: every one
 * the window hands back is freed, so losing one is a leak and handing one
 * back twice a double free, both reported by the sanitizers.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seqwin.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fail(const char *what)
{
    fprintf(stderr, "fuzz_seqwin: invariant broken: %s\n", what);
    abort();
}

/* The model: items of [next, next + SIZE), indexed by seq - next. */
typedef struct model {
    uint64_t next;
    void *item[PTTH_SEQWIN_SIZE];
} model;

static size_t
model_held(const model *m)
{
    size_t n = 0;
    for (size_t i = 0; i < PTTH_SEQWIN_SIZE; i++)
        n += m->item[i] != NULL;
    return n;
}

static bool
model_forget(model *m, const void *item)
{
    for (size_t i = 0; i < PTTH_SEQWIN_SIZE; i++) {
        if (item != NULL && m->item[i] == item) {
            m->item[i] = NULL;
            return true;
        }
    }
    return false;
}

static void
check_state(const ptth_seqwin *w, const model *m)
{
    if (w->next != m->next)
        fail("next differs from the model");
    if (w->held != model_held(m))
        fail("held differs from the model");
    if (ptth_seqwin_peek(w) != m->item[0])
        fail("peek differs from the model");
}

/* PTTH-Seq: 1 to 20 decimal digits, at most UINT64_MAX - SIZE. */
static bool
ref_parse(const uint8_t *t, size_t len, uint64_t *out)
{
    if (len == 0 || len > 20)
        return false;
    unsigned __int128 v = 0;
    for (size_t i = 0; i < len; i++) {
        if (t[i] < '0' || t[i] > '9')
            return false;
        v = v * 10 + (unsigned)(t[i] - '0');
    }
    if (v > (unsigned __int128)(UINT64_MAX - PTTH_SEQWIN_SIZE))
        return false;
    *out = (uint64_t)v;
    return true;
}

static void
put(ptth_seqwin *w, model *m, uint64_t seq)
{
    void *item = malloc(1);
    if (item == NULL)
        abort();
    void *replaced = (void *)1;
    ptth_seqwin_verdict v = ptth_seqwin_put(w, seq, item, &replaced);
    ptth_seqwin_verdict want;
    if (seq < m->next)
        want = PTTH_SEQWIN_DELIVERED;
    else if (seq - m->next >= PTTH_SEQWIN_SIZE)
        want = PTTH_SEQWIN_TOO_FAR;
    else
        want = PTTH_SEQWIN_STORED;
    if (v != want)
        fail("put verdict differs from the model");
    if (v != PTTH_SEQWIN_STORED) {
        if (replaced != NULL)
            fail("put refused the item but replaced another");
        free(item);
        return;
    }
    void *old = m->item[seq - m->next];
    if (replaced != old)
        fail("put replaced another item than the one in the slot");
    m->item[seq - m->next] = item;
    free(replaced);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 8)
        return 0;
    uint64_t start = 0;
    for (int i = 0; i < 8; i++)
        start = start << 8 | data[i];
    /* the window is only ever reached with next <= UINT64_MAX - SIZE + 1 */
    if (start > UINT64_MAX - PTTH_SEQWIN_SIZE)
        start = UINT64_MAX - PTTH_SEQWIN_SIZE;
    if (data[0] & 0x80)
        start = data[1]; /* half the inputs start near 0 */

    ptth_seqwin w;
    ptth_seqwin_init(&w);
    w.next = start;
    model m;
    memset(&m, 0, sizeof(m));
    m.next = start;
    check_state(&w, &m);

    size_t pos = 8;
    while (pos < size) {
        uint8_t op = data[pos++];
        uint8_t arg = pos < size ? data[pos] : 0;
        switch (op % 7) {
        case 0: /* put relative to next: next - 8 .. next + 15 */
        case 1: {
            pos++;
            int delta = (int)(arg % 24) - 8;
            if (delta < 0 && m.next < (uint64_t)-delta)
                delta = 0;
            put(&w, &m, m.next + (uint64_t)(int64_t)delta);
            break;
        }
        case 2: /* put a far number (overflow of seq - next) */
            pos++;
            put(&w, &m, UINT64_MAX - arg);
            break;
        case 3: { /* take */
            void *want = m.item[0];
            void *got = ptth_seqwin_take(&w);
            if (got != want)
                fail("take returned another item than the model's next");
            if (got != NULL) {
                memmove(m.item, m.item + 1, sizeof(m.item) - sizeof(m.item[0]));
                m.item[PTTH_SEQWIN_SIZE - 1] = NULL;
                m.next++;
                free(got);
            }
            break;
        }
        case 4: { /* remove: a held item (its request went away) or a stranger */
            pos++;
            void *target = m.item[arg % PTTH_SEQWIN_SIZE];
            static char stranger;
            const void *which = target != NULL ? target : (const void *)&stranger;
            bool found = ptth_seqwin_remove(&w, which);
            if (found != model_forget(&m, which))
                fail("remove found what the model does not hold, or missed it");
            if (found)
                free(target);
            if (ptth_seqwin_remove(&w, NULL))
                fail("remove(NULL) found something");
            break;
        }
        case 5: { /* pop_any */
            void *got = ptth_seqwin_pop_any(&w);
            if (got == NULL ? model_held(&m) != 0 : !model_forget(&m, got))
                fail("pop_any returned NULL while items are held, or an item the model does not hold");
            free(got);
            break;
        }
        default: { /* parse a PTTH-Seq text of arg % 24 bytes, then put it */
            pos++;
            size_t len = arg % 24;
            if (len > size - pos)
                len = size - pos;
            char *text = malloc(len > 0 ? len : 1); /* exact size: no NUL to lean on */
            if (text == NULL)
                abort();
            memcpy(text, data + pos, len);
            pos += len;
            uint64_t v = 12345, want;
            int rc = ptth_seqwin_parse_seq(text, len, &v);
            bool ok = ref_parse((const uint8_t *)text, len, &want);
            free(text);
            if ((rc == 0) != ok || (rc != 0 && rc != -EINVAL))
                fail("parse_seq accepted or refused against the rule");
            if (rc != 0 && v != 12345)
                fail("parse_seq wrote a value while failing");
            if (rc == 0) {
                if (v != want)
                    fail("parse_seq value differs");
                put(&w, &m, v);
            }
            break;
        }
        }
        check_state(&w, &m);
    }
    /* drain: what remains is handed back exactly once */
    void *item;
    while ((item = ptth_seqwin_pop_any(&w)) != NULL) {
        if (!model_forget(&m, item))
            fail("drain returned an item the model does not hold");
        free(item);
    }
    if (model_held(&m) != 0 || w.held != 0)
        fail("items left after draining");
    return 0;
}
