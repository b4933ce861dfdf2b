/*
 * lua_response.h -- conn:send on http://: the app's value as a response.
 */
#ifndef LS_LUA_RESPONSE_H
#define LS_LUA_RESPONSE_H

#include "net/conn.h"

struct lua_State;

int ls_lua_response_send(ls_conn_t *c, struct lua_State *L, int idx,
                         int raw);

#endif
