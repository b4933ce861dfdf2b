/*
 * lua_shdict.c -- luaserv.shared.NAME: the "luaserv.shdict" userdata over a
 * shared dict (core/shdict.c), with OpenResty's ngx.shared.DICT methods and
 * return values; and the `shared` setting that declares them.
 *
 * Misuse (a bad exptime, flags, step) raises; the dict's answers ("not
 * found", "exists", "no memory", ...) are returned. Nothing here raises
 * while a dict's lock is held: values come out into a C buffer, and are
 * pushed once the store call has returned.
 */
#include "lua/lua_shdict.h"
#include "core/log.h"
#include "core/shdict.h"

#include "lua/compat.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SHDICT_MT "luaserv.shdict"

/* A dict's userdata; tag is &shdict_tag (shdict_check). */
typedef struct shdict_box {
    const char *tag;
    ls_shdict_t *d;
} shdict_box_t;

static const char shdict_tag = 0;

static const ls_conf_t *shdict_conf; /* the master's, in a worker */
static ls_shd_buf_t shdict_buf;      /* values and keys coming out */
static const char shdict_shared_key = 0;  /* registry: luaserv.shared */
static const char shdict_scratch_key = 0; /* registry: the scratch */

/* Scratch regions of the validator (see shdict_scratch); the registry
 * holds this, and lua_close unmaps them. */
typedef struct shdict_scratch {
    ls_shdict_t *d[LS_SHARED_MAX];
    int n;
} shdict_scratch_t;

void
ls_lua_shdict_use(const ls_conf_t *conf)
{
    shdict_conf = conf;
}

/* ---- the `shared` setting ---------------------------------------------- */

/* "10m", "512k", "1g" or a number of bytes; 0 if malformed. */
static size_t
shdict_parse_size(lua_State *L)
{
    if (lua_isinteger(L, -1)) {
        lua_Integer v = lua_tointeger(L, -1);
        return v > 0 ? (size_t)v : 0;
    }
    if (lua_type(L, -1) == LUA_TSTRING) {
        const char *s = lua_tostring(L, -1);
        char *end;
        unsigned long long v;
        size_t mul = 1;
        if (!isdigit((unsigned char)*s))
            return 0;
        v = strtoull(s, &end, 10);
        switch (*end) {
        case 'k': case 'K': mul = (size_t)1 << 10; end++; break;
        case 'm': case 'M': mul = (size_t)1 << 20; end++; break;
        case 'g': case 'G': mul = (size_t)1 << 30; end++; break;
        }
        if (*end != '\0' || v == 0 || v > LS_SHDICT_MAX_SIZE / mul)
            return 0;
        return (size_t)v * mul;
    }
    return 0;
}

static int
shdict_scratch_gc(lua_State *L)
{
    shdict_scratch_t *sc = lua_touserdata(L, 1);

    for (int i = 0; i < sc->n; i++)
        ls_shdict_destroy(sc->d[i]);
    sc->n = 0;
    return 0;
}

/*
 * Outside a worker (the validator of a start or reload, `luaserv check`) no
 * dict is mapped yet: each dict the setting declares gets a scratch region
 * of its own, empty and gone with the process, so that top-level code using
 * luaserv.shared.NAME runs there as it does in a worker, and a script being
 * checked never touches the dicts that running workers share.
 */
static void
shdict_scratch(lua_State *L, const ls_conf_t *c)
{
    shdict_scratch_t *sc;
    char err[LS_ERRLEN];

    lua_rawgetp(L, LUA_REGISTRYINDEX, &shdict_scratch_key);     /* sc */
    if ((sc = lua_touserdata(L, -1)) == NULL) {
        lua_pop(L, 1);
        sc = lua_newuserdatauv(L, sizeof(*sc), 0);               /* sc */
        sc->n = 0;
        lua_createtable(L, 0, 1);
        lua_pushcfunction(L, shdict_scratch_gc);
        lua_setfield(L, -2, "__gc");
        lua_setmetatable(L, -2);
        lua_pushvalue(L, -1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &shdict_scratch_key);
    }
    lua_rawgetp(L, LUA_REGISTRYINDEX, &shdict_shared_key);      /* sc shared */
    for (int i = 0; i < c->nshared; i++) {
        const ls_shared_conf_t *s = &c->shared[i];
        shdict_box_t *box;
        ls_shdict_t *d;
        if (lua_getfield(L, -1, s->name) != LUA_TNIL ||
            sc->n == LS_SHARED_MAX) {
            lua_pop(L, 1);
            continue;               /* declared by an earlier settings() */
        }
        lua_pop(L, 1);
        if ((d = ls_shdict_create(s->name, s->size, err, sizeof(err))) == NULL)
            luaL_error(L, "bad setting 'shared': %s", err);
        sc->d[sc->n++] = d;
        box = lua_newuserdatauv(L, sizeof(*box), 0);     /* sc shared ud */
        box->tag = &shdict_tag;
        box->d = d;
        luaL_setmetatable(L, SHDICT_MT);
        lua_setfield(L, -2, s->name);                    /* sc shared */
    }
    lua_pop(L, 2);
}

void
ls_lua_shdict_setting(lua_State *L, ls_conf_t *c)
{
    if (!lua_istable(L, -1))
        luaL_error(L, "bad setting 'shared' (a table of name = size "
                   "expected, e.g. { cache = \"10m\" })");
    c->nshared = 0;
    lua_pushnil(L);
    while (lua_next(L, -2)) {                            /* ... t k v */
        ls_shared_conf_t *s;
        size_t len, size;
        const char *name;
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_error(L, "bad setting 'shared' (dict names must be "
                       "strings)");
        name = lua_tolstring(L, -2, &len);
        if (len == 0 || len >= LS_NAME_MAX)
            luaL_error(L, "bad setting 'shared' (dict name of 1 to %d "
                       "characters expected)", LS_NAME_MAX - 1);
        for (size_t i = 0; i < len; i++)
            if (!isalnum((unsigned char)name[i]) && name[i] != '_')
                luaL_error(L, "bad setting 'shared' (dict name \"%s\": "
                           "letters, digits and _ only)", name);
        size = shdict_parse_size(L);
        if (size < LS_SHDICT_MIN_SIZE || size > LS_SHDICT_MAX_SIZE)
            luaL_error(L, "bad setting 'shared' (size of dict \"%s\": "
                       "bytes, or a number with k, m or g, from 8k to 64g "
                       "expected, got %s)", name, luaL_tolstring(L, -1, NULL));
        if (c->nshared == LS_SHARED_MAX)
            luaL_error(L, "bad setting 'shared' (at most %d dicts)",
                       LS_SHARED_MAX);
        s = &c->shared[c->nshared++];
        memset(s, 0, sizeof(*s));
        memcpy(s->name, name, len + 1);
        s->size = size;
        lua_pop(L, 1);                                   /* ... t k */
    }
    if (shdict_conf == NULL)
        shdict_scratch(L, c);
}

/* ---- arguments ---------------------------------------------------------- */

/* What every method costs before the dict is reached is the point here
 * (bench W9: 100 incr + 100 get a request): one Lua API call per argument
 * in the common case (a string key, an integer or string value, no exptime
 * and no flags), and the stack left as it is (the results are pushed on
 * top of the arguments). */

/* The dict at index 1: a full userdata of our size whose first word is
 * shdict_tag, as sock_at does (lua_rawlen is 0 for a light userdata, so
 * its memory is not read). */
static ls_shdict_t *
shdict_check(lua_State *L)
{
    shdict_box_t *b = lua_touserdata(L, 1);
    if (b == NULL || lua_rawlen(L, 1) != sizeof(*b) || b->tag != &shdict_tag)
        luaL_typeerror(L, 1, SHDICT_MT);
    return b->d;
}

/* shdict_key for what is neither a string nor a number. */
static const char *
shdict_key_other(lua_State *L, size_t *kl)
{
    if (lua_isnoneornil(L, 2)) {
        lua_pushnil(L);
        lua_pushliteral(L, "nil key");
        return NULL;
    }
    return luaL_tolstring(L, 2, kl); /* pushed: no index past 2 moves */
}

/* The key at index 2, or NULL with nil, err pushed (OpenResty's "nil key",
 * "empty key", "key too long"). A number is converted in place. */
static inline const char *
shdict_key(lua_State *L, size_t *kl)
{
    const char *k = lua_tolstring(L, 2, kl);
    if (k == NULL && (k = shdict_key_other(L, kl)) == NULL)
        return NULL;
    if (*kl - 1 >= LS_SHDICT_KEY_MAX) { /* 0 or over the limit */
        lua_pushnil(L);
        if (*kl == 0)
            lua_pushliteral(L, "empty key");
        else
            lua_pushliteral(L, "key too long");
        return NULL;
    }
    return k;
}

/* The value at idx; -1 for a type a dict cannot hold. */
static int
shdict_value(lua_State *L, int idx, ls_shd_value_t *v, int lists)
{
    switch (lua_type(L, idx)) {
    case LUA_TNONE:
    case LUA_TNIL:
        v->type = LS_SHD_NONE;
        return lists ? -1 : 0;
    case LUA_TSTRING:
        v->type = LS_SHD_STR;
        v->s = lua_tolstring(L, idx, &v->len);
        return v->len > UINT32_MAX ? -1 : 0;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            v->type = LS_SHD_INT;
            v->i = (int64_t)lua_tointegerx(L, idx, NULL);
        } else {
            v->type = LS_SHD_NUM;
            v->n = (double)lua_tonumberx(L, idx, NULL);
        }
        return 0;
    case LUA_TBOOLEAN:
        if (lists)
            return -1;
        v->type = LS_SHD_BOOL;
        v->b = lua_toboolean(L, idx);
        return 0;
    default:
        return -1;
    }
}

/* shdict_number for what is not an integer. */
static int
shdict_number_other(lua_State *L, int idx, ls_shd_value_t *v)
{
    int isint = 0;
    lua_Integer i;
    if (lua_type(L, idx) == LUA_TNUMBER) {
        v->type = LS_SHD_NUM;
        v->n = (double)lua_tonumberx(L, idx, NULL);
        return 1;
    }
    i = lua_tointegerx(L, idx, &isint); /* a string: "2" is an integer */
    if (isint) {
        v->type = LS_SHD_INT;
        v->i = (int64_t)i;
        return 1;
    }
    if (lua_isnumber(L, idx)) {
        v->type = LS_SHD_NUM;
        v->n = (double)lua_tonumberx(L, idx, NULL);
        return 1;
    }
    return 0;
}

/* A number (or a string that converts) at idx into v; 0 if it is none. */
static inline int
shdict_number(lua_State *L, int idx, ls_shd_value_t *v)
{
    if (lua_isinteger(L, idx)) {
        v->type = LS_SHD_INT;
        v->i = (int64_t)lua_tointegerx(L, idx, NULL);
        return 1;
    }
    return shdict_number_other(L, idx, v);
}

static double
shdict_exptime(lua_State *L, int idx, const char *what)
{
    lua_Number t;
    if (lua_isnoneornil(L, idx))
        return 0;
    t = luaL_checknumber(L, idx);
    if (!(t >= 0))
        luaL_error(L, "bad \"%s\" argument", what);
    return (double)t;
}

static void
shdict_push_value(lua_State *L, const ls_shd_value_t *v)
{
    switch (v->type) {
    case LS_SHD_STR:
        lua_pushlstring(L, v->s, v->len);
        break;
    case LS_SHD_INT:
        lua_pushinteger(L, (lua_Integer)v->i);
        break;
    case LS_SHD_NUM:
        lua_pushnumber(L, (lua_Number)v->n);
        break;
    case LS_SHD_BOOL:
        lua_pushboolean(L, v->b);
        break;
    default:
        lua_pushnil(L);
    }
}

static const char *
shdict_errstr(int rc)
{
    switch (rc) {
    case LS_SHD_NOTFOUND: return "not found";
    case LS_SHD_EXISTS: return "exists";
    case LS_SHD_NOMEM: return "no memory";
    case LS_SHD_NOTNUM: return "not a number";
    case LS_SHD_NOTLIST: return "value not a list";
    case LS_SHD_ISLIST: return "value is a list";
    case LS_SHD_ELOCK: return "lock failed";
    default: return "out of memory";
    }
}

/* nil, err   [-0, +2] */
static int
shdict_fail(lua_State *L, int rc)
{
    lua_pushnil(L);
    lua_pushstring(L, shdict_errstr(rc));
    return 2;
}

/* ---- methods ------------------------------------------------------------ */

static int
shdict_get_common(lua_State *L, int stale_ok)
{
    ls_shdict_t *d = shdict_check(L);
    ls_shd_value_t v;
    uint32_t flags = 0;
    int stale = 0, rc;
    size_t kl;
    const char *k = shdict_key(L, &kl);

    if (k == NULL)
        return 2;
    rc = ls_shdict_get(d, k, kl, stale_ok, &v, &flags, &stale, &shdict_buf);
    if (rc == LS_SHD_NOTFOUND) {
        lua_pushnil(L);
        return 1;
    }
    if (rc != LS_SHD_OK)
        return shdict_fail(L, rc);
    shdict_push_value(L, &v);
    if (flags)
        lua_pushinteger(L, (lua_Integer)flags);
    else if (stale_ok)
        lua_pushnil(L);
    else
        return 1;
    if (!stale_ok)
        return 2;
    lua_pushboolean(L, stale);
    return 3;
}

/* dict:get(key) -> value [, flags] | nil [, err]   [-2, +1..2, e] */
static int
lshdict_get(lua_State *L)
{
    return shdict_get_common(L, 0);
}

/* dict:get_stale(key) -> value, flags | nil, stale | nil   [-2, +1..3, e] */
static int
lshdict_get_stale(lua_State *L)
{
    return shdict_get_common(L, 1);
}

static int
shdict_store(lua_State *L, int op, int safe)
{
    int top = lua_gettop(L); /* before shdict_key, which may push */
    ls_shdict_t *d = shdict_check(L);
    ls_shd_value_t v;
    double ttl = 0;
    lua_Integer flags = 0;
    int forcible = 0, rc;
    size_t kl;
    const char *k = shdict_key(L, &kl);

    if (k == NULL)
        return 2;
    if (top >= 4)
        ttl = shdict_exptime(L, 4, "exptime");
    if (top >= 5) {
        flags = luaL_optinteger(L, 5, 0);
        if (flags < 0 || flags > (lua_Integer)UINT32_MAX)
            return luaL_error(L, "bad \"flags\" argument");
    }
    if (shdict_value(L, 3, &v, 0) < 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "bad value type");
        return 2;
    }
    rc = ls_shdict_store(d, op, safe, k, kl, &v, ttl, (uint32_t)flags,
                         &forcible);
    if (rc == LS_SHD_OK) {
        lua_pushboolean(L, 1);
        lua_pushnil(L);
    } else {
        lua_pushboolean(L, 0);
        lua_pushstring(L, shdict_errstr(rc));
    }
    lua_pushboolean(L, forcible);
    return 3;
}

/* dict:set(key, value [, exptime [, flags]]) -> ok, err, forcible
 * [-3..5, +3, e] (likewise safe_set, add, safe_add, replace) */
static int
lshdict_set(lua_State *L)
{
    return shdict_store(L, LS_SHD_SET, 0);
}

static int
lshdict_safe_set(lua_State *L)
{
    return shdict_store(L, LS_SHD_SET, 1);
}

static int
lshdict_add(lua_State *L)
{
    return shdict_store(L, LS_SHD_ADD, 0);
}

static int
lshdict_safe_add(lua_State *L)
{
    return shdict_store(L, LS_SHD_ADD, 1);
}

static int
lshdict_replace(lua_State *L)
{
    return shdict_store(L, LS_SHD_REPLACE, 0);
}

/* dict:delete(key) -> true   [-2, +1..2, e] */
static int
lshdict_delete(lua_State *L)
{
    lua_settop(L, 2);
    lua_pushnil(L);                                      /* dict key nil */
    if (shdict_store(L, LS_SHD_SET, 0) == 2)             /* ... nil err */
        return 2;
    lua_pop(L, 2);                                       /* ... true */
    return 1;
}

/* dict:incr(key, value [, init [, init_ttl]]) -> new, nil, forcible |
 * nil, err   [-3..5, +1..3, e] */
static int
lshdict_incr(lua_State *L)
{
    int top = lua_gettop(L); /* before shdict_key, which may push */
    ls_shdict_t *d = shdict_check(L);
    ls_shd_value_t io, init;
    double init_ttl = 0;
    int has_init = 0, forcible = 0, rc;
    size_t kl;
    const char *k = shdict_key(L, &kl);

    if (k == NULL)
        return 2;
    if (!shdict_number(L, 3, &io))
        return luaL_error(L, "cannot convert 'value' to a number");
    if (top >= 4) {
        has_init = shdict_number(L, 4, &init);
        if (!has_init && !lua_isnil(L, 4))
            return luaL_error(L, "bad init arg: number expected, got %s",
                              luaL_typename(L, 4));
    }
    if (top >= 5 && !lua_isnil(L, 5)) {
        if (!has_init)
            return luaL_error(L, "must provide \"init\" when providing "
                              "\"init_ttl\"");
        if (lua_type(L, 5) != LUA_TNUMBER)
            return luaL_error(L, "bad init_ttl arg: number expected, got %s",
                              luaL_typename(L, 5));
        init_ttl = shdict_exptime(L, 5, "init_ttl");
    }
    rc = ls_shdict_incr(d, k, kl, &io, has_init ? &init : NULL, init_ttl,
                        &forcible);
    if (rc != LS_SHD_OK)
        return shdict_fail(L, rc);
    shdict_push_value(L, &io);
    lua_pushnil(L);
    lua_pushboolean(L, forcible);
    return 3;
}

static int
shdict_push(lua_State *L, int left)
{
    ls_shdict_t *d = shdict_check(L);
    ls_shd_value_t v;
    size_t kl, len = 0;
    const char *k = shdict_key(L, &kl);
    int rc;

    if (k == NULL)
        return 2;
    if (shdict_value(L, 3, &v, 1) < 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "bad value type");
        return 2;
    }
    rc = ls_shdict_push(d, k, kl, left, &v, &len);
    if (rc != LS_SHD_OK)
        return shdict_fail(L, rc);
    lua_pushinteger(L, (lua_Integer)len);
    return 1;
}

/* dict:lpush(key, value) -> length | nil, err   [-3, +1..2, e] */
static int
lshdict_lpush(lua_State *L)
{
    return shdict_push(L, 1);
}

static int
lshdict_rpush(lua_State *L)
{
    return shdict_push(L, 0);
}

static int
shdict_pop(lua_State *L, int left)
{
    ls_shdict_t *d = shdict_check(L);
    ls_shd_value_t v;
    size_t kl;
    const char *k = shdict_key(L, &kl);
    int rc;

    if (k == NULL)
        return 2;
    rc = ls_shdict_pop(d, k, kl, left, &v, &shdict_buf);
    if (rc == LS_SHD_NOTFOUND) {
        lua_pushnil(L);
        return 1;
    }
    if (rc != LS_SHD_OK)
        return shdict_fail(L, rc);
    shdict_push_value(L, &v);
    return 1;
}

/* dict:lpop(key) -> value | nil [, err]   [-2, +1..2, e] */
static int
lshdict_lpop(lua_State *L)
{
    return shdict_pop(L, 1);
}

static int
lshdict_rpop(lua_State *L)
{
    return shdict_pop(L, 0);
}

/* dict:llen(key) -> length | nil, err   [-2, +1..2, e] */
static int
lshdict_llen(lua_State *L)
{
    ls_shdict_t *d = shdict_check(L);
    size_t kl, len;
    const char *k = shdict_key(L, &kl);
    int rc;

    if (k == NULL)
        return 2;
    rc = ls_shdict_llen(d, k, kl, &len);
    if (rc != LS_SHD_OK)
        return shdict_fail(L, rc);
    lua_pushinteger(L, (lua_Integer)len);
    return 1;
}

/* dict:ttl(key) -> seconds | nil, err   [-2, +1..2, e] */
static int
lshdict_ttl(lua_State *L)
{
    ls_shdict_t *d = shdict_check(L);
    double ttl = 0;
    size_t kl;
    const char *k = shdict_key(L, &kl);
    int rc;

    if (k == NULL)
        return 2;
    rc = ls_shdict_ttl(d, k, kl, &ttl);
    if (rc != LS_SHD_OK)
        return shdict_fail(L, rc);
    lua_pushnumber(L, (lua_Number)ttl);
    return 1;
}

/* dict:expire(key, exptime) -> true | nil, err   [-3, +1..2, e] */
static int
lshdict_expire(lua_State *L)
{
    ls_shdict_t *d = shdict_check(L);
    double ttl;
    size_t kl;
    const char *k = shdict_key(L, &kl);
    int rc;

    if (k == NULL)
        return 2;
    luaL_checknumber(L, 3);
    ttl = shdict_exptime(L, 3, "exptime");
    rc = ls_shdict_expire(d, k, kl, ttl);
    if (rc != LS_SHD_OK)
        return shdict_fail(L, rc);
    lua_pushboolean(L, 1);
    return 1;
}

/* dict:flush_all()   [-1, +0, e] */
static int
lshdict_flush_all(lua_State *L)
{
    ls_shdict_flush_all(shdict_check(L));
    return 0;
}

/* dict:flush_expired([max]) -> count   [-1..2, +1, e] */
static int
lshdict_flush_expired(lua_State *L)
{
    ls_shdict_t *d = shdict_check(L);
    lua_Integer max = luaL_optinteger(L, 2, 0);
    luaL_argcheck(L, max >= 0, 2, "non-negative integer expected");
    lua_pushinteger(L, (lua_Integer)ls_shdict_flush_expired(d, (size_t)max));
    return 1;
}

/* dict:get_keys([max]) -> { key, ... }   [-1..2, +1, e] (max 1024 by
 * default, 0: all of them) */
static int
lshdict_get_keys(lua_State *L)
{
    ls_shdict_t *d = shdict_check(L);
    lua_Integer max = luaL_optinteger(L, 2, 1024);
    const char *p;
    long n;

    luaL_argcheck(L, max >= 0, 2, "non-negative integer expected");
    n = ls_shdict_keys(d, (size_t)max, &shdict_buf);
    if (n < 0)
        return shdict_fail(L, LS_SHD_ENOMEM);
    lua_createtable(L, (int)(n < 1 << 24 ? n : 1 << 24), 0);
    p = shdict_buf.p;
    for (long i = 1; i <= n; i++) {
        uint16_t kl;
        memcpy(&kl, p, 2);
        lua_pushlstring(L, p + 2, kl);
        lua_rawseti(L, -2, i);
        p += 2 + kl;
    }
    return 1;
}

/* dict:capacity() -> bytes (as declared)   [-1, +1, e] */
static int
lshdict_capacity(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)ls_shdict_capacity(shdict_check(L)));
    return 1;
}

/* dict:free_space() -> bytes in free blocks   [-1, +1, e] */
static int
lshdict_free_space(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)ls_shdict_free_space(shdict_check(L)));
    return 1;
}

static int
lshdict_tostring(lua_State *L)
{
    ls_shdict_t *d = shdict_check(L);
    lua_pushfstring(L, "luaserv.shdict (%s)", ls_shdict_name(d));
    return 1;
}

static const luaL_Reg lshdict_methods[] = {
    {"add", lshdict_add},
    {"capacity", lshdict_capacity},
    {"delete", lshdict_delete},
    {"expire", lshdict_expire},
    {"flush_all", lshdict_flush_all},
    {"flush_expired", lshdict_flush_expired},
    {"free_space", lshdict_free_space},
    {"get", lshdict_get},
    {"get_keys", lshdict_get_keys},
    {"get_stale", lshdict_get_stale},
    {"incr", lshdict_incr},
    {"llen", lshdict_llen},
    {"lpop", lshdict_lpop},
    {"lpush", lshdict_lpush},
    {"replace", lshdict_replace},
    {"rpop", lshdict_rpop},
    {"rpush", lshdict_rpush},
    {"safe_add", lshdict_safe_add},
    {"safe_set", lshdict_safe_set},
    {"set", lshdict_set},
    {"ttl", lshdict_ttl},
    {NULL, NULL},
};

static const luaL_Reg lshdict_meta[] = {
    {"__tostring", lshdict_tostring},
    {NULL, NULL},
};

#if LS_LUAJIT
/* LuaJIT: replace the hot methods with luaserv.shdict_ffi's, which call
 * lua_shdict_ffi.c through the FFI (the C methods stay for what they hand
 * back). A failure is logged and leaves the C methods.   [-0, +0] */
static void
shdict_use_ffi(lua_State *L)
{
    int top = lua_gettop(L);                             /* ... shared */

    lua_getglobal(L, "require");
    lua_pushliteral(L, "luaserv.shdict_ffi");
    if (lua_pcall(L, 1, 1, 0) != 0) {                    /* ... replace */
        ls_log(LS_LOG_WARN, 0, "shared dicts: cannot load "
               "luaserv.shdict_ffi (%s); using the C methods",
               lua_tostring(L, -1));
        lua_settop(L, top);
        return;
    }
    luaL_getmetatable(L, SHDICT_MT);                     /* ... replace mt */
    lua_getfield(L, -1, "__index");                      /* ... mt methods */
    lua_replace(L, -2);                                  /* ... replace methods */
    lua_newtable(L);                                     /* ... methods dicts */
    lua_pushnil(L);
    while (lua_next(L, top)) {                           /* ... dicts name ud */
        shdict_box_t *b = lua_touserdata(L, -1);
        lua_pushlightuserdata(L, b->d);                  /* ... name ud d */
        lua_rawset(L, -4);                               /* ... dicts name */
    }
    if (lua_pcall(L, 2, 0, 0) != 0)
        ls_log(LS_LOG_WARN, 0, "shared dicts: luaserv.shdict_ffi failed "
               "(%s); using the C methods", lua_tostring(L, -1));
    lua_settop(L, top);
}
#endif

void
ls_lua_shdict_register(lua_State *L)
{
    int ndicts;

    luaL_newmetatable(L, SHDICT_MT);                     /* core mt */
    luaL_setfuncs(L, lshdict_meta, 0);
    luaL_newlib(L, lshdict_methods);                     /* core mt methods */
    lua_setfield(L, -2, "__index");                      /* core mt */
    lua_pop(L, 1);                                       /* core */
    lua_newtable(L);                                     /* core shared */
    ndicts = 0;
    for (int i = 0; shdict_conf != NULL && i < shdict_conf->nshared; i++) {
        const ls_shared_conf_t *s = &shdict_conf->shared[i];
        shdict_box_t *box;
        if (s->dict == NULL)
            continue;
        box = lua_newuserdatauv(L, sizeof(*box), 0);     /* core shared ud */
        box->tag = &shdict_tag;
        box->d = s->dict;
        luaL_setmetatable(L, SHDICT_MT);
        lua_setfield(L, -2, s->name);                    /* core shared */
        ndicts++;
    }
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &shdict_shared_key);
#if LS_LUAJIT
    if (ndicts > 0)
        shdict_use_ffi(L);
#endif
    lua_setfield(L, -2, "shared");                       /* core */
}
