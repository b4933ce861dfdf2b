/*
 * lua_connect.h -- luaserv.connect(): outbound connections with the same
 * callbacks, methods and protocols as accepted ones.
 */
#ifndef LS_LUA_CONNECT_H
#define LS_LUA_CONNECT_H

#include "net/loop.h"

struct lua_State;

int ls_lua_connect(struct lua_State *L);
void ls_lua_connect_close_all(ls_worker_t *w);

#endif
