/*
 * binding.h -- what the luaserv.* bindings share: the ls_vm_t of a Lua
 * state, and calling the app's callbacks for a connection (lua_events.c).
 * Only files of the Lua layer include it: they are the ones that know
 * lua.h.
 */
#ifndef LS_BINDING_H
#define LS_BINDING_H

#include "lua/vm.h"
#include "net/conn.h"

#include "lua/compat.h"

/* The state's ls_vm_t: kept in its extra space (Lua 5.4); LuaJIT has none,
 * but the allocator's ud is the ls_vm_t (ls_vm_new). */
static inline ls_vm_t *
ls_vm_of(lua_State *L)
{
#if LS_LUAJIT
    void *ud;
    (void)lua_getallocf(L, &ud);
    return ud;
#else
    return *(ls_vm_t **)lua_getextraspace(L);
#endif
}

/* The registry key of the luaserv.worker table (set by lua_core.c). */
extern const char ls_lua_worker_key;

/* Push the luaserv.worker table (nil outside a worker). */
static inline void
ls_lua_push_worker(lua_State *L)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &ls_lua_worker_key);
}

/* Push srv[name] and the connection on L; 0 (nothing pushed) when the app
 * has no such callback. */
int ls_lua_callback_push(lua_State *L, ls_conn_t *c, const char *name);
/* Call what ls_lua_callback_push pushed on ls_vm_L (a callback that may
 * not wait), with nextra more arguments and nres results: LS_EV_OK or
 * LS_EV_ERROR (logged, with the traceback). */
int ls_lua_callback_call(ls_conn_t *c, const char *name, int nextra,
                         int nres);

#endif
