/*
 * binding.c -- finding the app's callbacks for a connection (the listener's
 * srv.<name>), and calling one that may not wait under ls_vm_call, which
 * logs an error with its traceback and enforces callbackTimeout and the
 * memory limit (the others run in coroutines: co.c).
 *
 * Callbacks are looked up on each call, not cached, so that an app that
 * reassigns srv.onMessage at run time is seen at once; the names come
 * interned (ls_vm_push_name), so the lookup hashes no C string.
 */
#include "lua/binding.h"

#include "lua/compat.h"

const char ls_lua_worker_key;

int
ls_lua_callback_push(lua_State *L, ls_conn_t *c, const char *name)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->srv->lua_ref);  /* srv */
    ls_vm_push_name(ls_worker->vm, L, name);             /* srv name */
    if (lua_gettable(L, -2) != LUA_TFUNCTION) {          /* srv f */
        lua_pop(L, 2);
        return 0;
    }
    lua_replace(L, -2);                                  /* f */
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->lua_ref);       /* f conn */
    return 1;
}

int
ls_lua_callback_call(ls_conn_t *c, const char *name, int nextra, int nres)
{
    return ls_vm_call(ls_worker->vm, 1 + nextra, nres, name, c->id) == LUA_OK
               ? LS_EV_OK
               : LS_EV_ERROR;
}
