/*
 * lua_ws.c -- conn:send and conn:close on a WebSocket connection: the Lua
 * arguments checked and turned into http/ws.c's calls.
 *
 *   conn:send("text")            a text frame
 *   conn:send{binary = bytes}    a binary frame; {text = s} a text one
 *   conn:close([data])           data as a text frame, then close 1000
 *   conn:close(code [, reason])  close with that code (1000-1003,
 *                                1007-1014, 3000-4999) and UTF-8 reason
 */
#include "lua/lua_ws.h"
#include "http/ws.h"
#include "lua/binding.h"

#include "lua/compat.h"

#define WS_NORMAL_CLOSURE 1000

int
ls_lua_ws_send(ls_conn_t *c, lua_State *L, int idx)
{
    const char *p;
    size_t n;
    int t = lua_type(L, idx), binary = 0, r;

    if (t == LUA_TTABLE) {
        idx = lua_absindex(L, idx);
        if (lua_getfield(L, idx, "binary") != LUA_TNIL) {
            binary = 1;
        } else {
            lua_pop(L, 1);
            lua_getfield(L, idx, "text");
        }
        t = lua_type(L, -1);
        if (t != LUA_TSTRING && t != LUA_TNUMBER)
            return luaL_error(L, "websocket send: want {binary = string} "
                              "or {text = string}");
        p = lua_tolstring(L, -1, &n);
    } else {
        if (t != LUA_TSTRING && t != LUA_TNUMBER)
            luaL_typeerror(L, idx, "string or table");
        p = lua_tolstring(L, idx, &n);
    }
    r = ls_ws_send(c, p, n, binary);
    if (r == LS_WS_EARLY)
        return luaL_error(L, "websocket send: the handshake is not done");
    return r;
}

void
ls_lua_ws_close(ls_conn_t *c, lua_State *L, int idx)
{
    lua_Integer code = WS_NORMAL_CLOSURE;
    const char *reason = NULL;
    size_t rlen = 0;

    if (lua_type(L, idx) == LUA_TNUMBER) {
        code = luaL_checkinteger(L, idx);
        luaL_argcheck(L, ls_ws_close_code_ok(code), idx,
                      "not a close code a server may send (1000-1003, "
                      "1007-1014, 3000-4999)");
        reason = luaL_optlstring(L, idx + 1, NULL, &rlen);
        luaL_argcheck(L, rlen <= 123, idx + 1,
                      "a close reason is at most 123 bytes");
        luaL_argcheck(L, reason == NULL ||
                             ls_ws_utf8_ok((const unsigned char *)reason,
                                           rlen),
                      idx + 1, "a close reason must be UTF-8");
    } else if (!lua_isnoneornil(L, idx)) {
        ls_lua_ws_send(c, L, idx);
    }
    ls_ws_close(c, (int)code, reason, rlen);
}
