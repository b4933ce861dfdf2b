/*
 * mempool.h -- size-class free lists for a Lua state's small blocks.
 */
#ifndef LS_MEMPOOL_H
#define LS_MEMPOOL_H

#include <stddef.h>

typedef struct ls_pool ls_pool_t;

ls_pool_t *ls_pool_new(void);
void ls_pool_destroy(ls_pool_t *pool);
void *ls_pool_realloc(ls_pool_t *pool, void *ptr, size_t osize, size_t nsize);
void ls_pool_free(ls_pool_t *pool, void *ptr, size_t osize);

/*
 * A free list of fixed-size C structs (connections, HTTP states) that a
 * connection per request would otherwise calloc and free each time: up to
 * max blocks are kept. Blocks come back zeroed, like calloc's.
 */
typedef struct ls_cache {
    size_t size;
    int n, max;
    void *head;
} ls_cache_t;

#define LS_CACHE(type, max) { sizeof(type), 0, (max), NULL }

void *ls_cache_get(ls_cache_t *cache);
void ls_cache_put(ls_cache_t *cache, void *p);

#endif
