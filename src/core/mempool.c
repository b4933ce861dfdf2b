/*
 * mempool.c -- size-class free lists for a Lua state's small blocks.
 *
 * A worker's Lua state allocates and frees a few small blocks per message
 * (the message string, a request's tables); glibc's malloc spends a few
 * hundred instructions on each once the collector frees them in bulk
 * (unsorted bins, fastbin consolidation). Lua always tells the size of the
 * block it frees, so blocks up to LS_POOL_MAX bytes need no header: they are
 * carved from 64 KiB slabs and go back to a free list per 16-byte class, a
 * pointer swap each way. Larger blocks use malloc. Freed small blocks stay in
 * the pool for reuse (the memory is given back when the state closes).
 *
 * Under AddressSanitizer the pool is off, so that ASan still sees every
 * block.
 *
 * ls_cache_t, at the end, keeps a few freed C structs of one size for reuse.
 */
#include "core/mempool.h"

#include <stdlib.h>
#include <string.h>

#define LS_POOL_SLAB (64 * 1024)

#if defined(__SANITIZE_ADDRESS__)
#define LS_POOL_ENABLED 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LS_POOL_ENABLED 0
#endif
#endif
#ifndef LS_POOL_ENABLED
#define LS_POOL_ENABLED 1
#endif

/* Slabs are kept in a list (through their first 16 bytes) to be freed. */
typedef struct ls_pool_slab {
    struct ls_pool_slab *next;
    char pad[LS_POOL_STEP - sizeof(void *)];
} ls_pool_slab_t;

static inline size_t
pool_class(size_t n)
{
    return (n - 1) / LS_POOL_STEP;
}

ls_pool_t *
ls_pool_new(void)
{
    if (!LS_POOL_ENABLED)
        return NULL;
    return calloc(1, sizeof(ls_pool_t));
}

void
ls_pool_destroy(ls_pool_t *pool)
{
    if (pool == NULL)
        return;
    while (pool->slabs) {
        ls_pool_slab_t *next = pool->slabs->next;
        free(pool->slabs);
        pool->slabs = next;
    }
    free(pool);
}

static void *
pool_get(ls_pool_t *pool, size_t cls)
{
    size_t size = (cls + 1) * LS_POOL_STEP;
    void *b = ls_pool_take(pool, size);

    if (b != NULL)
        return b;
    if ((size_t)(pool->end - pool->cur) < size) {
        /* The rest of the old slab (< 512 bytes) is left unused. */
        ls_pool_slab_t *s = malloc(LS_POOL_SLAB);
        if (s == NULL)
            return NULL;
        s->next = pool->slabs;
        pool->slabs = s;
        pool->cur = (char *)(s + 1);
        pool->end = (char *)s + LS_POOL_SLAB;
    }
    b = pool->cur;
    pool->cur += size;
    return b;
}

void
ls_pool_free(ls_pool_t *pool, void *ptr, size_t osize)
{
    if (ptr == NULL)
        return;
    if (pool != NULL && osize <= LS_POOL_MAX)
        ls_pool_give(pool, ptr, osize);
    else
        free(ptr);
}

/* Lua's frealloc with nsize > 0; osize is 0 when ptr is NULL. */
void *
ls_pool_realloc(ls_pool_t *pool, void *ptr, size_t osize, size_t nsize)
{
    int small_old, small_new;
    void *p;

    if (pool == NULL)
        return realloc(ptr, nsize);
    small_old = ptr != NULL && osize <= LS_POOL_MAX;
    small_new = nsize <= LS_POOL_MAX;
    if (ptr == NULL)
        return small_new ? pool_get(pool, pool_class(nsize)) : malloc(nsize);
    if (!small_old && !small_new)
        return realloc(ptr, nsize);
    if (small_old && small_new && pool_class(osize) == pool_class(nsize))
        return ptr;
    p = small_new ? pool_get(pool, pool_class(nsize)) : malloc(nsize);
    if (p == NULL)
        return NULL;
    memcpy(p, ptr, osize < nsize ? osize : nsize);
    if (small_old)
        ls_pool_give(pool, ptr, osize);
    else
        free(ptr);
    return p;
}

/* ---- ls_cache_t ----------------------------------------------------------- */

void *
ls_cache_get(ls_cache_t *cache)
{
    void *p = cache->head;

    if (!LS_POOL_ENABLED || p == NULL)
        return calloc(1, cache->size);
    cache->head = *(void **)p;
    cache->n--;
    memset(p, 0, cache->size);
    return p;
}

void
ls_cache_put(ls_cache_t *cache, void *p)
{
    if (p == NULL)
        return;
    if (!LS_POOL_ENABLED || cache->n >= cache->max) {
        free(p);
        return;
    }
    *(void **)p = cache->head;
    cache->head = p;
    cache->n++;
}
