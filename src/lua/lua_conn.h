/*
 * lua_conn.h -- the "luaserv.conn" userdata.
 */
#ifndef LS_LUA_CONN_H
#define LS_LUA_CONN_H

#include "conn.h"

#include <lua.h>

void ls_lua_conn_register(lua_State *L);
int ls_lua_conn_attach(lua_State *L, ls_conn_t *c);
void ls_lua_conn_detach(lua_State *L, ls_conn_t *c);

#endif
