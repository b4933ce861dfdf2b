/*
 * lua_request.h -- the req table handed to an http:// onMessage and to
 * onWebSocketConnect, built from a parsed request (http/http.h).
 */
#ifndef LS_LUA_REQUEST_H
#define LS_LUA_REQUEST_H

#include "http/http.h"

#include <lua.h>

void ls_lua_request_push(lua_State *L, ls_http_t *h, char *base);

#endif
