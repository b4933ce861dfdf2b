/*
 * lua_shdict_ffi.c -- the shared dict's FFI entry points for LuaJIT builds
 * (see lua_shdict_ffi.h; lua/luaserv/shdict_ffi.lua calls them).
 *
 * A LuaJIT number is a double; one with an integral value is stored as an
 * integer, as the C methods store what compat.h's lua_isinteger accepts,
 * so a value reads back the same whichever path stored it.
 */
#include "lua/lua_shdict_ffi.h"

#include <stdlib.h>

static ls_shd_buf_t ffi_buf; /* strings coming out */

/* n as the C methods take a number: an integer when it is integral and
 * in range (compat.h's lua_tointegerx), else a float. NaN fails the range
 * test, so the cast is always defined. */
static inline void
ffi_number(double n, ls_shd_value_t *v)
{
    if (n >= -9223372036854775808.0 && n < 9223372036854775808.0 &&
        (double)(int64_t)n == n) {
        v->type = LS_SHD_INT;
        v->i = (int64_t)n;
    } else {
        v->type = LS_SHD_NUM;
        v->n = n;
    }
}

int
ls_lua_shdict_ffi_get(ls_shdict_t *d, const char *k, size_t kl, int stale_ok,
                      ls_lua_shdict_ffi_val_t *v)
{
    ls_shd_value_t x;
    int rc;

    v->flags = 0;
    v->stale = 0;
    rc = ls_shdict_get(d, k, kl, stale_ok, &x, &v->flags, &v->stale,
                       &ffi_buf);
    if (rc != LS_SHD_OK)
        return rc;
    v->type = x.type;
    switch (x.type) {
    case LS_SHD_STR:
        v->s = x.s;
        v->len = x.len;
        break;
    case LS_SHD_INT:
        v->n = (double)x.i;
        break;
    case LS_SHD_NUM:
        v->n = x.n;
        break;
    default:
        v->n = x.b ? 1 : 0;
    }
    return rc;
}

int
ls_lua_shdict_ffi_store(ls_shdict_t *d, int op, int safe, const char *k,
                        size_t kl, int type, const char *s, size_t len,
                        double n, double ttl, uint32_t flags, int *forcible)
{
    ls_shd_value_t v;

    v.type = type;
    if (type == LS_SHD_STR) {
        v.s = s;
        v.len = len;
    } else if (type == LS_SHD_NUM) {
        ffi_number(n, &v);
    } else if (type == LS_SHD_BOOL) {
        v.b = n != 0;
    } else {
        v.type = LS_SHD_NONE;
    }
    return ls_shdict_store(d, op, safe, k, kl, &v, ttl, flags, forcible);
}

int
ls_lua_shdict_ffi_incr(ls_shdict_t *d, const char *k, size_t kl, double step,
                       int has_init, double init, double init_ttl,
                       ls_lua_shdict_ffi_val_t *v)
{
    ls_shd_value_t io, iv;
    int rc;

    ffi_number(step, &io);
    if (has_init)
        ffi_number(init, &iv);
    v->forcible = 0;
    rc = ls_shdict_incr(d, k, kl, &io, has_init ? &iv : NULL, init_ttl,
                        &v->forcible);
    if (rc == LS_SHD_OK) {
        v->type = io.type;
        v->n = io.type == LS_SHD_INT ? (double)io.i : io.n;
    }
    return rc;
}
