/*
 * lua_core.h -- the "luaserv.core" module.
 */
#ifndef LS_LUA_CORE_H
#define LS_LUA_CORE_H

#include <lua.h>

int luaopen_luaserv_core(lua_State *L);
void ls_lua_core_push_worker(lua_State *L);

struct ls_listen_conf;
void ls_lua_core_defaults(struct ls_listen_conf *l);
void ls_lua_core_options(lua_State *L, int idx, struct ls_listen_conf *l,
                         int outbound);

#endif
