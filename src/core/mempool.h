/*
 * mempool.h -- size-class free lists for a Lua state's small blocks.
 */
#ifndef LS_MEMPOOL_H
#define LS_MEMPOOL_H

#include <stddef.h>

typedef struct ls_pool ls_pool_t;

#define LS_POOL_MAX 512              /* larger blocks go to malloc */
#define LS_POOL_STEP 16              /* size classes: 16, 32, ... 512 */
#define LS_POOL_CLASSES (LS_POOL_MAX / LS_POOL_STEP)

typedef struct ls_pool_block {
    struct ls_pool_block *next;
} ls_pool_block_t;

struct ls_pool {
    ls_pool_block_t *free[LS_POOL_CLASSES];
    char *cur, *end;              /* the unused rest of the newest slab */
    struct ls_pool_slab *slabs;
};

ls_pool_t *ls_pool_new(void);
void ls_pool_destroy(ls_pool_t *pool);
void *ls_pool_realloc(ls_pool_t *pool, void *ptr, size_t osize, size_t nsize);
void ls_pool_free(ls_pool_t *pool, void *ptr, size_t osize);

/*
 * The fast paths, inline for the Lua allocator (a string per message):
 * a block of 1..LS_POOL_MAX bytes from its class's free list, NULL when
 * that list is empty (then ls_pool_realloc); and a block given back.
 */
static inline void *
ls_pool_take(ls_pool_t *pool, size_t n)
{
    ls_pool_block_t **head = &pool->free[(n - 1) / LS_POOL_STEP];
    ls_pool_block_t *b = *head;

    if (b != NULL)
        *head = b->next;
    return b;
}

static inline void
ls_pool_give(ls_pool_t *pool, void *p, size_t n)
{
    ls_pool_block_t *b = p, **head = &pool->free[(n - 1) / LS_POOL_STEP];

    b->next = *head;
    *head = b;
}

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
