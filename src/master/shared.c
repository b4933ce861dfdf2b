/*
 * shared.c -- shared dict regions, per generation (see shared.h).
 *
 * A region is mapped by the master (core/shdict.c), so every worker forked
 * afterwards has it at the same address. Each generation's configuration
 * points at the regions its workers use; a reload that keeps a dict's name
 * and size hands the new generation the same region, so both generations
 * see the same data while the old one drains. The count of generations
 * using a region is kept in the region's header (only the master touches
 * it); the last one to go unmaps it in the master (workers of that
 * generation still hold their own mapping until they exit).
 */
#include "master/shared.h"
#include "core/log.h"
#include "core/shdict.h"

#include <stdio.h>
#include <string.h>

static const ls_shared_conf_t *
shared_find(const ls_conf_t *c, const char *name)
{
    for (int i = 0; c != NULL && i < c->nshared; i++)
        if (strcmp(c->shared[i].name, name) == 0)
            return &c->shared[i];
    return NULL;
}

int
ls_shared_attach(ls_conf_t *next, const ls_conf_t *cur, char *err,
                 size_t errlen)
{
    for (int i = 0; i < next->nshared; i++) {
        ls_shared_conf_t *s = &next->shared[i];
        const ls_shared_conf_t *old = shared_find(cur, s->name);

        if (old != NULL && old->dict != NULL && old->size == s->size) {
            s->dict = old->dict;
            (*ls_shdict_refs(s->dict))++;
            continue;
        }
        s->dict = ls_shdict_create(s->name, s->size, err, errlen);
        if (s->dict == NULL) {
            ls_shared_release(next);
            return -1;
        }
        *ls_shdict_refs(s->dict) = 1;
        if (old != NULL)
            ls_log(LS_LOG_INFO, 0, "shared dict \"%s\" changes size from "
                   "%zu to %zu bytes: it starts afresh (empty)", s->name,
                   old->size, s->size);
        else if (cur != NULL)
            ls_log(LS_LOG_INFO, 0, "shared dict \"%s\" (%zu bytes) is new",
                   s->name, s->size);
    }
    for (int i = 0; cur != NULL && i < cur->nshared; i++)
        if (shared_find(next, cur->shared[i].name) == NULL)
            ls_log(LS_LOG_INFO, 0, "shared dict \"%s\" is no longer "
                   "declared: its contents go with the old generation "
                   "(declared again later, it starts afresh)",
                   cur->shared[i].name);
    return 0;
}

void
ls_shared_release(ls_conf_t *c)
{
    for (int i = 0; i < c->nshared; i++) {
        ls_shared_conf_t *s = &c->shared[i];
        if (s->dict != NULL && --*ls_shdict_refs(s->dict) == 0)
            ls_shdict_destroy(s->dict);
        s->dict = NULL;
    }
}

size_t
ls_shared_status(const ls_conf_t *c, char *buf, size_t size)
{
    size_t n = 0;

    for (int i = 0; i < c->nshared && size > 0; i++) {
        ls_shdict_usage_t u;
        int r;
        if (c->shared[i].dict == NULL)
            continue;
        ls_shdict_usage(c->shared[i].dict, &u);
        r = snprintf(buf + n, size - n, "shared dict %s: %llu keys, %llu of "
                     "%llu bytes used, %llu evicted, %llu lock recoveries\n",
                     c->shared[i].name, (unsigned long long)u.keys,
                     (unsigned long long)u.used,
                     (unsigned long long)u.capacity,
                     (unsigned long long)u.evictions,
                     (unsigned long long)u.recoveries);
        if (r < 0 || (size_t)r >= size - n)
            break;
        n += (size_t)r;
    }
    if (n < size)
        buf[n] = '\0';
    return n;
}
