/*
 * lua_shdict_ffi.h -- the shared dict entry points that LuaJIT builds call
 * through the FFI (lua/luaserv/shdict_ffi.lua declares the same with
 * ffi.cdef: keep the two in step), as lua-resty-core calls
 * ngx_http_lua_ffi_shdict_*: a JIT-compiled loop calls straight into C,
 * with no Lua C API in between.
 *
 * Plain C types only. Each returns an LS_SHD_* outcome; the Lua side turns
 * it into OpenResty's return values exactly as src/lua/lua_shdict.c does,
 * and hands whatever is not the common case (a key that is not a string,
 * a bad argument) to the C methods, which raise or answer as they always
 * have.
 */
#ifndef LS_LUA_SHDICT_FFI_H
#define LS_LUA_SHDICT_FFI_H

#include <stddef.h>
#include <stdint.h>

#include "core/shdict.h"

#define LS_FFI __attribute__((visibility("default"), used))

/* What comes out of a get or an incr. */
typedef struct ls_lua_shdict_ffi_val {
    const char *s;   /* STR: the bytes, valid until the next call */
    size_t len;
    double n;        /* INT and NUM as a Lua number; BOOL: 0 or 1 */
    uint32_t flags;
    int type;        /* LS_SHD_* */
    int stale;
    int forcible;
} ls_lua_shdict_ffi_val_t;

/* get / get_stale. */
LS_FFI int ls_lua_shdict_ffi_get(ls_shdict_t *d, const char *k, size_t kl,
                                 int stale_ok, ls_lua_shdict_ffi_val_t *v);
/* set, add, replace and their safe_ forms; type LS_SHD_NONE deletes,
 * LS_SHD_NUM is any number (stored as an integer when it is integral, as
 * the C methods do), LS_SHD_BOOL takes n 0 or 1. */
LS_FFI int ls_lua_shdict_ffi_store(ls_shdict_t *d, int op, int safe,
                                   const char *k, size_t kl, int type,
                                   const char *s, size_t len, double n,
                                   double ttl, uint32_t flags,
                                   int *forcible);
/* incr: the new value into v->n (v->type INT or NUM), v->forcible. */
LS_FFI int ls_lua_shdict_ffi_incr(ls_shdict_t *d, const char *k, size_t kl,
                                  double step, int has_init, double init,
                                  double init_ttl,
                                  ls_lua_shdict_ffi_val_t *v);

#endif
