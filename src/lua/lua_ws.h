/*
 * lua_ws.h -- conn:send and conn:close on a WebSocket.
 */
#ifndef LS_LUA_WS_H
#define LS_LUA_WS_H

#include "net/conn.h"

struct lua_State;

int ls_lua_ws_send(ls_conn_t *c, struct lua_State *L, int idx);
void ls_lua_ws_close(ls_conn_t *c, struct lua_State *L, int idx);

#endif
