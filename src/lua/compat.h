/*
 * compat.h -- one code base for Lua 5.4 and LuaJIT (cmake -DLUASERV_LUA=
 * luajit). Every file of the Lua layer includes this instead of lauxlib.h.
 * Under Lua 5.4 it adds nothing; under LuaJIT (the Lua 5.1 API plus the few
 * 5.2 functions LuaJIT 2.1 has) it supplies what the bindings use of 5.3
 * and 5.4, with 5.4's behaviour where that matters to the app:
 *
 *  - lua_getfield, lua_gettable, lua_rawget, lua_rawgeti, lua_getglobal and
 *    lua_getiuservalue return the type of the value pushed;
 *  - integers: LuaJIT's numbers are doubles, so "an integer" is a number
 *    with an integral value (lua_isinteger, lua_tointegerx,
 *    luaL_checkinteger refuse 2.5 as 5.4 does, instead of truncating);
 *  - a userdata's single user value lives in its environment table (nil
 *    while the environment is the registry, which no app value can be);
 *  - argument errors worded as 5.4's (luaL_argerror and the luaL_check*
 *    over it: a function the call site does not name is named after its
 *    place in package.loaded, "luaserv.after");
 *  - luaL_typeerror, luaL_argexpected, luaL_tolstring, luaL_getsubtable,
 *    lua_absindex, lua_rawgetp/lua_rawsetp, lua_rawlen, lua_resume's 5.4
 *    signature, lua_resetthread, lua_gc with two arguments, and
 *    luaL_newmetatable setting __name (5.4's messages name the type).
 *
 * What cannot be shimmed here is in its own place: a batch of messages in
 * one coroutine without lua_callk (lua_events.c), the state's ls_vm_t
 * without lua_getextraspace (binding.h), callbackTimeout inside compiled
 * traces (vm.c), and the 5.3 library functions Lua code uses
 * (lua/luaserv/compat.lua).
 */
#ifndef LS_COMPAT_H
#define LS_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

#include <math.h>
#include <stddef.h>
#include <string.h>

#if LUA_VERSION_NUM < 503
#define LS_LUAJIT 1
#else
#define LS_LUAJIT 0
#endif

#if LS_LUAJIT

/* lua_pushfstring has no %I: an integral lua_Number prints as one with %f. */
#define LS_FMT_INT "%f"
#define LS_FMT_INT_ARG(x) ((lua_Number)(x))

/* The largest integer a double holds exactly. */
#define LUA_MAXINTEGER ((lua_Integer)1 << 53)
#define LUA_PRELOAD_TABLE "_PRELOAD"
#define LUA_LOADED_TABLE "_LOADED"

static inline int
ls_compat_absindex(lua_State *L, int idx)
{
    return idx > 0 || idx <= LUA_REGISTRYINDEX ? idx : lua_gettop(L) + idx + 1;
}
#define lua_absindex ls_compat_absindex

static inline int
ls_compat_getfield(lua_State *L, int idx, const char *k)
{
    lua_getfield(L, idx, k);
    return lua_type(L, -1);
}

static inline int
ls_compat_gettable(lua_State *L, int idx)
{
    lua_gettable(L, idx);
    return lua_type(L, -1);
}

static inline int
ls_compat_rawget(lua_State *L, int idx)
{
    lua_rawget(L, idx);
    return lua_type(L, -1);
}

static inline int
ls_compat_rawgeti(lua_State *L, int idx, lua_Integer n)
{
    lua_rawgeti(L, idx, (int)n);
    return lua_type(L, -1);
}
/* (lua_getglobal is LuaJIT's macro over lua_getfield) */
#define lua_getfield ls_compat_getfield
#define lua_gettable ls_compat_gettable
#define lua_rawget ls_compat_rawget
#define lua_rawgeti ls_compat_rawgeti

static inline int
ls_compat_rawgetp(lua_State *L, int idx, const void *p)
{
    idx = lua_absindex(L, idx);
    lua_pushlightuserdata(L, (void *)p);
    return lua_rawget(L, idx);
}

static inline void
ls_compat_rawsetp(lua_State *L, int idx, const void *p)
{
    idx = lua_absindex(L, idx);
    lua_pushlightuserdata(L, (void *)p);
    lua_insert(L, -2);
    lua_rawset(L, idx);
}
#define lua_rawgetp ls_compat_rawgetp
#define lua_rawsetp ls_compat_rawsetp

#define lua_rawlen(L, i) lua_objlen(L, (i))

/* ---- integers ---- */

static inline lua_Integer
ls_compat_tointegerx(lua_State *L, int idx, int *isint)
{
    int isnum = 0;
    lua_Number n = lua_tonumberx(L, idx, &isnum);
    int ok = isnum && n == floor(n) && n >= -9223372036854775808.0 &&
             n < 9223372036854775808.0;

    if (isint != NULL)
        *isint = ok;
    return ok ? (lua_Integer)n : 0;
}
#define lua_tointegerx ls_compat_tointegerx

static inline int
ls_compat_isinteger(lua_State *L, int idx)
{
    int ok;

    if (lua_type(L, idx) != LUA_TNUMBER)
        return 0;
    (void)lua_tointegerx(L, idx, &ok);
    return ok;
}
#define lua_isinteger ls_compat_isinteger

/* ---- errors ---- */

/* 5.4 names a function the call site does not name by where it is found
 * in package.loaded ("luaserv.after" for pcall(luaserv.after, ...)). */
static inline int
ls_compat_funcname(lua_State *L, lua_Debug *ar)
{
    int top = lua_gettop(L);

    lua_getinfo(L, "f", ar);                             /* fn */
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE); /* fn loaded */
    lua_pushnil(L);
    while (lua_next(L, -2)) {                            /* fn loaded k m */
        if (lua_type(L, -2) == LUA_TSTRING && lua_istable(L, -1)) {
            lua_pushnil(L);
            while (lua_next(L, -2)) {                    /* ... m k2 v */
                if (lua_type(L, -2) == LUA_TSTRING &&
                    lua_rawequal(L, -1, top + 1)) {
                    const char *mod = lua_tostring(L, -4);
                    const char *fn = lua_tostring(L, -2);
                    if (strcmp(mod, "_G") == 0)
                        lua_pushstring(L, fn);
                    else
                        lua_pushfstring(L, "%s.%s", mod, fn);
                    lua_replace(L, top + 1);
                    lua_settop(L, top + 1);
                    return 1;
                }
                lua_pop(L, 1);
            }
        }
        lua_pop(L, 1);
    }
    lua_settop(L, top);
    return 0;
}

/* luaL_argerror as 5.4 words it; the luaL_check* below use it (LuaJIT's
 * own would name such a function '?'). */
static inline int
ls_compat_argerror(lua_State *L, int arg, const char *extramsg)
{
    lua_Debug ar;

    if (!lua_getstack(L, 0, &ar))
        return luaL_error(L, "bad argument #%d (%s)", arg, extramsg);
    lua_getinfo(L, "n", &ar);
    if (ar.namewhat != NULL && strcmp(ar.namewhat, "method") == 0) {
        arg--;
        if (arg == 0)
            return luaL_error(L, "calling '%s' on bad self (%s)", ar.name,
                              extramsg);
    }
    if (ar.name == NULL)
        ar.name = ls_compat_funcname(L, &ar) ? lua_tostring(L, -1) : "?";
    return luaL_error(L, "bad argument #%d to '%s' (%s)", arg, ar.name,
                      extramsg);
}
#define luaL_argerror ls_compat_argerror

/* 5.4's: "bad argument #2 to 'send' (string expected, got luaserv.conn)" */
static inline int
ls_compat_typeerror(lua_State *L, int arg, const char *tname)
{
    const char *got;

    if (luaL_getmetafield(L, arg, "__name") &&
        lua_type(L, -1) == LUA_TSTRING)
        got = lua_tostring(L, -1);
    else if (lua_type(L, arg) == LUA_TLIGHTUSERDATA)
        got = "light userdata";
    else
        got = luaL_typename(L, arg);
    return luaL_argerror(L, arg,
                         lua_pushfstring(L, "%s expected, got %s", tname, got));
}
#define luaL_typeerror ls_compat_typeerror
#define luaL_argexpected(L, cond, arg, tname) \
    ((void)((cond) || ls_compat_typeerror(L, (arg), (tname))))

static inline int
ls_compat_tagerror(lua_State *L, int arg, int tag)
{
    return ls_compat_typeerror(L, arg, lua_typename(L, tag));
}

static inline const char *
ls_compat_checklstring(lua_State *L, int arg, size_t *len)
{
    const char *s = lua_tolstring(L, arg, len);

    if (s == NULL)
        ls_compat_tagerror(L, arg, LUA_TSTRING);
    return s;
}

static inline const char *
ls_compat_optlstring(lua_State *L, int arg, const char *def, size_t *len)
{
    if (lua_isnoneornil(L, arg)) {
        if (len != NULL)
            *len = def ? strlen(def) : 0;
        return def;
    }
    return ls_compat_checklstring(L, arg, len);
}

static inline lua_Number
ls_compat_checknumber(lua_State *L, int arg)
{
    int isnum;
    lua_Number d = lua_tonumberx(L, arg, &isnum);

    if (!isnum)
        ls_compat_tagerror(L, arg, LUA_TNUMBER);
    return d;
}

static inline lua_Number
ls_compat_optnumber(lua_State *L, int arg, lua_Number def)
{
    return lua_isnoneornil(L, arg) ? def : ls_compat_checknumber(L, arg);
}

static inline void
ls_compat_checktype(lua_State *L, int arg, int t)
{
    if (lua_type(L, arg) != t)
        ls_compat_tagerror(L, arg, t);
}

static inline void
ls_compat_checkany(lua_State *L, int arg)
{
    if (lua_type(L, arg) == LUA_TNONE)
        luaL_argerror(L, arg, "value expected");
}

static inline void *
ls_compat_checkudata(lua_State *L, int ud, const char *tname)
{
    void *p = luaL_testudata(L, ud, tname);

    if (p == NULL)
        ls_compat_typeerror(L, ud, tname);
    return p;
}

static inline int
ls_compat_checkoption(lua_State *L, int arg, const char *def,
                      const char *const lst[])
{
    const char *name = def ? ls_compat_optlstring(L, arg, def, NULL)
                           : ls_compat_checklstring(L, arg, NULL);

    for (int i = 0; lst[i]; i++)
        if (strcmp(lst[i], name) == 0)
            return i;
    return luaL_argerror(L, arg,
                         lua_pushfstring(L, "invalid option '%s'", name));
}
#define luaL_checklstring ls_compat_checklstring
#define luaL_optlstring ls_compat_optlstring
#define luaL_checknumber ls_compat_checknumber
#define luaL_optnumber ls_compat_optnumber
#define luaL_checktype ls_compat_checktype
#define luaL_checkany ls_compat_checkany
#define luaL_checkudata ls_compat_checkudata
#define luaL_checkoption ls_compat_checkoption

static inline lua_Integer
ls_compat_checkinteger(lua_State *L, int arg)
{
    int ok;
    lua_Integer v = lua_tointegerx(L, arg, &ok);

    if (!ok) {
        if (lua_isnumber(L, arg))
            luaL_argerror(L, arg, "number has no integer representation");
        else
            ls_compat_typeerror(L, arg, "number");
    }
    return v;
}

static inline lua_Integer
ls_compat_optinteger(lua_State *L, int arg, lua_Integer def)
{
    return lua_isnoneornil(L, arg) ? def : ls_compat_checkinteger(L, arg);
}
#define luaL_checkinteger ls_compat_checkinteger
#define luaL_optinteger ls_compat_optinteger

/* ---- tables, metatables, user values ---- */

static inline int
ls_compat_getsubtable(lua_State *L, int idx, const char *fname)
{
    if (lua_getfield(L, idx, fname) == LUA_TTABLE)
        return 1;
    lua_pop(L, 1);
    idx = lua_absindex(L, idx);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, idx, fname);
    return 0;
}
#define luaL_getsubtable ls_compat_getsubtable

/* 5.4's luaL_newmetatable sets __name, which typeerror and tolstring use. */
static inline int
ls_compat_newmetatable(lua_State *L, const char *tname)
{
    if (!(luaL_newmetatable)(L, tname))
        return 0;
    lua_pushstring(L, tname);
    lua_setfield(L, -2, "__name");
    return 1;
}
#define luaL_newmetatable ls_compat_newmetatable

static inline const char *
ls_compat_tolstring(lua_State *L, int idx, size_t *len)
{
    idx = lua_absindex(L, idx);
    if (luaL_callmeta(L, idx, "__tostring")) {
        if (!lua_isstring(L, -1))
            luaL_error(L, "'__tostring' must return a string");
    } else {
        switch (lua_type(L, idx)) {
        case LUA_TNUMBER:
        case LUA_TSTRING:
            lua_pushvalue(L, idx);
            break;
        case LUA_TBOOLEAN:
            lua_pushstring(L, lua_toboolean(L, idx) ? "true" : "false");
            break;
        case LUA_TNIL:
            lua_pushliteral(L, "nil");
            break;
        default: {
            int named = luaL_getmetafield(L, idx, "__name");
            const char *kind = named && lua_type(L, -1) == LUA_TSTRING
                                   ? lua_tostring(L, -1)
                                   : luaL_typename(L, idx);
            lua_pushfstring(L, "%s: %p", kind, lua_topointer(L, idx));
            if (named)
                lua_remove(L, -2);
        }
        }
    }
    return lua_tolstring(L, -1, len);
}
#define luaL_tolstring ls_compat_tolstring

/* One user value (n == 1), kept as the userdata's environment; the
 * registry as the environment means nil. */
static inline void *
ls_compat_newuserdatauv(lua_State *L, size_t size, int nuv)
{
    void *p = lua_newuserdata(L, size);

    if (nuv > 0) {
        lua_pushvalue(L, LUA_REGISTRYINDEX);
        lua_setfenv(L, -2);
    }
    return p;
}

static inline int
ls_compat_getiuservalue(lua_State *L, int idx, int n)
{
    (void)n;
    lua_getfenv(L, idx);
    if (lua_rawequal(L, -1, LUA_REGISTRYINDEX)) {
        lua_pop(L, 1);
        lua_pushnil(L);
    }
    return lua_type(L, -1);
}

static inline int
ls_compat_setiuservalue(lua_State *L, int idx, int n)
{
    (void)n;
    idx = lua_absindex(L, idx);
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        lua_pushvalue(L, LUA_REGISTRYINDEX);
    }
    return lua_setfenv(L, idx);
}
#define lua_newuserdatauv ls_compat_newuserdatauv
#define lua_getiuservalue ls_compat_getiuservalue
#define lua_setiuservalue ls_compat_setiuservalue

/* ---- threads, the collector ---- */

/* 5.4's signature; the values yielded or returned are co's whole stack. */
static inline int
ls_compat_resume(lua_State *co, lua_State *from, int nargs, int *nres)
{
    int status;

    (void)from;
    status = (lua_resume)(co, nargs);
    *nres = status == LUA_OK || status == LUA_YIELD ? lua_gettop(co) : 0;
    return status;
}
#define lua_resume ls_compat_resume

/* A failed coroutine is never run again (co.c); letting go of its stack
 * is what 5.4's lua_resetthread does for the collector. */
static inline int
ls_compat_resetthread(lua_State *co)
{
    lua_settop(co, 0);
    return LUA_OK;
}
#define lua_resetthread ls_compat_resetthread

/* lua_gc(L, what) as in 5.4: LuaJIT's takes a third argument. */
#define LS_COMPAT_GC(L, what, data, ...) (lua_gc)(L, what, data)
#define lua_gc(...) LS_COMPAT_GC(__VA_ARGS__, 0, 0)

#else /* Lua 5.4 */

#define LS_FMT_INT "%I"
#define LS_FMT_INT_ARG(x) ((lua_Integer)(x))

#endif

#endif
