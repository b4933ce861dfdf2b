/*
 * lua_conn.h -- the "luaserv.conn" userdata.
 */
#ifndef LS_LUA_CONN_H
#define LS_LUA_CONN_H

#include "net/conn.h"

#include <lua.h>

/* The Lua userdata: a pointer that is cleared when the socket closes. tag
 * is the address of a static in lua_conn.c: what lua_conn.c checks to know
 * that a userdata is a conn (Lua code cannot forge a userdata's bytes), in
 * place of comparing metatables on every conn:send(). The 24 bytes take
 * the same 16-byte size class in the Lua allocator as 16 did. */
typedef struct ls_conn_box {
    const void *tag;
    ls_conn_t *c;
    uint64_t id;
} ls_conn_box_t;

void ls_lua_conn_register(lua_State *L);
int ls_lua_conn_attach(lua_State *L, ls_conn_t *c);
void ls_lua_conn_detach(lua_State *L, ls_conn_t *c);

#endif
