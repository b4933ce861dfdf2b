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

#endif
