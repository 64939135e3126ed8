/*
 * instances.c: see instances.h.
 */
#include "instances.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "tunnel_internal.h"

/* "S name slot" / "C name slot": names and slots have no spaces. */
#define KEY_MAX (2 + PTTH_NAME_MAX + 1 + PTTH_INSTANCE_PART_MAX + 1)

typedef struct ptth_inst_slot {
    char key[KEY_MAX];
    size_t keylen;
    ptth_list sides;                       /* ptth_tunnel_side_instance.link */
    char life[PTTH_INSTANCE_PART_MAX + 1]; /* the newest life seen */
    bool shared;                           /* two lives ran at once: ends nothing */
    bool walking;                          /* ptth_instances_seen is in its list: not freed */
} ptth_inst_slot;

static size_t
make_key(char out[KEY_MAX], bool server_side, const char *name, const char *slot)
{
    int n = snprintf(out, KEY_MAX, "%c %s %s", server_side ? 'S' : 'C', name, slot);
    return n < 0 ? 0 : (size_t)n < KEY_MAX ? (size_t)n : KEY_MAX - 1;
}

static const char *
name_of(const ptth_tunnel *t, int side)
{
    return side == 1 ? t->server : t->client;
}

static void
unlink_side(ptth_core *core, ptth_tunnel_side_instance *s)
{
    ptth_inst_slot *slot = s->slot;
    if (slot == NULL)
        return;
    ptth_list_unlink(&s->link);
    s->slot = NULL;
    if (ptth_list_empty(&slot->sides) && !slot->walking) {
        ptth_table_remove(&core->instance_slots, slot->key, slot->keylen);
        free(slot);
    }
}

static void
link_side(ptth_tunnel *t, int side)
{
    ptth_tunnel_side_instance *s = &t->inst[side];
    if (s->slot != NULL || s->id.slot[0] == '\0')
        return;
    ptth_core *core = t->core;
    char key[KEY_MAX];
    size_t klen = make_key(key, side == 1, name_of(t, side), s->id.slot);
    ptth_inst_slot *slot = ptth_table_get(&core->instance_slots, key, klen);
    if (slot == NULL) {
        if ((slot = calloc(1, sizeof(*slot))) == NULL)
            return;
        memcpy(slot->key, key, klen + 1);
        slot->keylen = klen;
        ptth_list_init(&slot->sides);
        snprintf(slot->life, sizeof(slot->life), "%s", s->id.life);
        if (ptth_table_put(&core->instance_slots, slot->key, slot->keylen, slot) != 0) {
            free(slot);
            return;
        }
    }
    ptth_list_push(&slot->sides, &s->link);
    s->slot = slot;
}

void
ptth_instances_record(ptth_tunnel *t, bool server_side, const ptth_instance *inst)
{
    int side = server_side ? 1 : 0;
    ptth_tunnel_side_instance *s = &t->inst[side];
    bool relink = s->slot != NULL || t->resumable;
    unlink_side(t->core, s);
    if (inst != NULL)
        s->id = *inst;
    else
        memset(&s->id, 0, sizeof(s->id));
    if (relink)
        link_side(t, side);
}

void
ptth_instances_link(ptth_tunnel *t)
{
    link_side(t, 0);
    link_side(t, 1);
}

void
ptth_instances_unlink(ptth_tunnel *t)
{
    unlink_side(t->core, &t->inst[0]);
    unlink_side(t->core, &t->inst[1]);
}

/* The tunnel whose inst[side] s is. */
static ptth_tunnel *
tunnel_of(ptth_tunnel_side_instance *s, int side)
{
    return (ptth_tunnel *)(void *)((char *)(s - side) - offsetof(ptth_tunnel, inst));
}

/* Lost: its process is gone (instances.h). */
static bool
side_lost(const ptth_tunnel *t, int side)
{
    return t->state == PTTH_TUNNEL_SUSPENDED && t->resume[side] == NULL;
}

size_t
ptth_instances_seen(ptth_core *core, bool server_side, const char *name, const ptth_instance *inst)
{
    if (inst == NULL || inst->slot[0] == '\0')
        return 0;
    char key[KEY_MAX];
    size_t klen = make_key(key, server_side, name, inst->slot);
    ptth_inst_slot *slot = ptth_table_get(&core->instance_slots, key, klen);
    if (slot == NULL || strcmp(slot->life, inst->life) == 0)
        return 0;
    int side = server_side ? 1 : 0;
    const char *what = server_side ? "server" : "client";
    snprintf(slot->life, sizeof(slot->life), "%s", inst->life);
    if (slot->shared)
        return 0;

    size_t lost = 0, live = 0;
    for (ptth_list *l = slot->sides.next; l != &slot->sides; l = l->next) {
        ptth_tunnel_side_instance *s = PTTH_CONTAINER_OF(l, ptth_tunnel_side_instance, link);
        ptth_tunnel *t = tunnel_of(s, side);
        if (strcmp(s->id.life, inst->life) == 0)
            continue;
        if (side_lost(t, side))
            lost++;
        else
            live++;
    }
    if (live > 0) {
        slot->shared = true;
        ptth_log_info("event=instance_collision side=%s name=%s slot=%s live_tunnels=%zu message=\"two running %s processes "
                      "share this instance slot: their tunnels are left to the resume grace\"",
                      what, name, inst->slot, live, what);
        return 0;
    }
    if (lost == 0)
        return 0;
    ptth_log_info("event=peer_restarted side=%s name=%s slot=%s life=%s tunnels=%zu", what, name, inst->slot, inst->life, lost);
    /* ending a tunnel unlinks only its own sides: the next link stays valid;
     * the slot itself is kept until the walk is over */
    size_t ended = 0;
    slot->walking = true;
    for (ptth_list *l = slot->sides.next, *next; l != &slot->sides; l = next) {
        next = l->next;
        ptth_tunnel_side_instance *s = PTTH_CONTAINER_OF(l, ptth_tunnel_side_instance, link);
        ptth_tunnel *t = tunnel_of(s, side);
        if (strcmp(s->id.life, inst->life) == 0 || !side_lost(t, side))
            continue;
        ptth_tunnel_end(t, PTTH_END_PEER_RESTARTED, server_side ? "server restarted" : "client restarted");
        ended++;
    }
    slot->walking = false;
    if (ptth_list_empty(&slot->sides)) {
        ptth_table_remove(&core->instance_slots, slot->key, slot->keylen);
        free(slot);
    }
    return ended;
}
